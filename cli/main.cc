// The pyhost command: exec, call and serve over the same library as the C++ API. This
// file walks argv, reads code files and standard input, and writes answers; what a
// flag means is protocol/request_codec.h's, as for serve's JSON fields. Exit status:
// pyhost/outcome.h (kExitOk, kExitCodeFailed, kExitUsage, kExitHostError; 128+N).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/protocol_channel.h"
#include "cli/serve.h"
#include "cli/stop_signals.h"
#include "protocol/request_codec.h"
#include "protocol/requests.h"
#include "pyhost/host.h"
#include "pyhost/outcome.h"
#include "worker/worker.h"

namespace pyhost::cli {
namespace {

using json = nlohmann::json;
using protocol::Field;
using protocol::FieldForFlag;

constexpr char kUsage[] = R"(usage:
  pyhost exec [--args JSON] [--policy NAME|FILE.json] [--isolation fresh|resident|process]
              [--timeout-ms N] [--cpu-ms N] [--memory-mb N] [--allow-net PATTERN]...
              [--max-output-bytes N] (-c CODE | FILE | -)
  pyhost call FILE [--args JSON] [--isolation fresh|resident] [--policy NAME|FILE.json]
  pyhost serve [--workers N] [--pool-size N] [--prewarm MODULE,...]

exec   runs Python code in a fresh subinterpreter and prints one JSON object:
       {"ok", "stdout", "stderr", "result", "error", "stats", ...}. The code sees
       `args`; the global `result` afterwards is the result.
call   loads FILE as a run(args) tool, calls it once and prints the envelope
       {"ok": true, "data": ...} or {"ok": false, "error": {"message", "type"}}.
serve  answers JSON lines on stdin, one line per request:
       {"id", "op": "exec", "code", "args"?, ...}, {"id", "op": "register", "name",
       "source", "isolation"?, "policy"?}, {"id", "op": "call", "name", "args"?}.
       Flags and JSON fields are the same: --timeout-ms is "timeout_ms", --allow-net
       "network_allowlist", and so on.
isolation: fresh (default), resident (a long-lived interpreter; "tool" is accepted as
       an old name for it), process (a child process per execution, forked by a
       worker: hard limits, seccomp; data_science and policies with packages always
       run there).
policies: yolo, balanced, data_science, strict (default), enterprise, or a JSON file;
--allow-net and PYHOST_NETWORK_ALLOWLIST add host patterns (host, *.suffix, *).
limits of an execution: --timeout-ms (wall clock), --cpu-ms (CPU time of the code's
       thread), --memory-mb (MiB); unset: PYHOST_TIMEOUT_MS, PYHOST_MAX_MEMORY_MB, else
       30000 ms and 256 MB, the CPU limit following the wall limit; a policy's limits are
       ceilings (above one: a usage error). Past one the error type is Timeout,
       CpuLimitExceeded or MemoryLimitExceeded. For a tool (call, register), they hold
       for its load and each call.
limits of input: FILE and - at most 16 MiB of code, a policy file at most 1 MiB (regular files
only); serve: a line at most 16 MiB, reading stops while 64 requests (or 64 MiB of
them) wait for an answer.
exit status: 0 ok; 1 the code failed, was stopped or hit a limit (or its answer could
not be written); 2 usage error: the request was bad and nothing ran (an unknown flag,
a bad value, a file that cannot be read, a prewarm module that does not import, what
is not implemented yet); 3 pyhost itself failed (e.g. no interpreter can be created);
128+N stopped by signal N (SIGINT, SIGTERM, SIGHUP: running code gets
KeyboardInterrupt, then the command exits).
)";

int UsageError(absl::string_view message) {
  std::cerr << "pyhost: " << message << "\n(run 'pyhost --help' for usage)\n";
  return kExitUsage;
}

// A request that got a Status instead of an answer: said on stderr, and the exit
// status for it (usage, host error, or code failed for one that was interrupted).
int StatusError(const absl::Status& status, absl::string_view context = "") {
  int code = ExitCodeForStatus(status);
  if (code == kExitUsage) return UsageError(absl::StrCat(context, status.message()));
  std::cerr << "pyhost: " << context << status.message() << "\n";
  return code;
}

// Walks argv, taking "--flag VALUE" and "--flag=VALUE" alike.
class ArgReader {
 public:
  ArgReader(int argc, char** argv, int first) : args_(argv + first, argv + argc) {}
  bool Done() const { return next_ >= args_.size(); }
  std::string Next() { return args_[next_++]; }
  // For a flag just taken with Next(): its value, from "=..." or the next argument.
  absl::StatusOr<std::string> Value(std::string& flag) {
    if (size_t eq = flag.find('='); eq != std::string::npos) {
      std::string value = flag.substr(eq + 1);
      flag.resize(eq);
      return value;
    }
    if (Done()) return absl::InvalidArgumentError(absl::StrCat(flag, " needs a value"));
    return Next();
  }

 private:
  std::vector<std::string> args_;
  size_t next_ = 0;
};

std::string FlagName(const std::string& arg) { return arg.substr(0, arg.find('=')); }

// Whether `flag` is one of a command's flags: checked before its value is looked for,
// so a typo is reported as unknown, not as missing its value.
bool IsOneOf(const std::string& flag, std::initializer_list<absl::string_view> flags) {
  return std::find(flags.begin(), flags.end(), flag) != flags.end();
}

// One-shot commands need one interpreter and nothing prewarmed: a bigger pool would
// only make the process start slower.
HostOptions OneShotOptions() {
  HostOptions options;
  options.pool_size = 1;
  options.prewarm_modules.clear();
  return options;
}

// The host, or the exit status of its failure (said on stderr): a bad option (a
// prewarm module that does not import) is a usage error, anything else pyhost's own.
absl::StatusOr<std::unique_ptr<Host>> MakeHost(HostOptions options, int& exit_status) {
  // Process isolation's workers are this very binary.
  char self[4096];
  const ssize_t length = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (length > 0 && options.worker_program.empty()) options.worker_program.assign(self, length);
  absl::StatusOr<std::unique_ptr<Host>> host = Host::Create(std::move(options));
  if (!host.ok()) exit_status = StatusError(host.status(), "cannot start: ");
  return host;
}

// While it lives, a stop signal interrupts what `host` runs, and a process that does
// not stop in time (or dies of a fatal signal) removes the host's directories first.
// Declared after the host: disconnected before the host is destroyed.
class StopConnection {
 public:
  explicit StopConnection(Host& host) {
    StopSignals& stop = StopSignals::Install();
    std::string root = host.work_root();
    stop.RemoveOnCrash(root);
    stop.SetEmergencyExit([&host] { host.RemoveUnreportedFiles(); });
    stop.OnStop([&host](int) { host.InterruptAll(); });
  }
  ~StopConnection() {
    StopSignals::Install().OnStop(nullptr);
    StopSignals::Install().SetEmergencyExit(nullptr);
  }
  StopConnection(const StopConnection&) = delete;
  StopConnection& operator=(const StopConnection&) = delete;
};

// Writes the command's one answer; false (said on stderr) when it could not be written
// (stdout closed or full): the answer is lost, and the exit status must say so.
bool WriteAnswer(std::ostream& out, const json& answer) {
  out << answer.dump(-1, ' ', false, json::error_handler_t::replace) << "\n" << std::flush;
  if (out) return true;
  std::cerr << "pyhost: the answer could not be written to standard output\n";
  return false;
}

// The exit status: 128 + the stop signal if one came, else `status`.
int ExitStatus(int status) {
  int signo = StopSignals::Install().received();
  return signo != 0 ? 128 + signo : status;
}

int Exec(ArgReader& reader) {
  ExecRequest request;
  std::optional<std::string> code, file;
  while (!reader.Done()) {
    std::string arg = reader.Next();
    std::string flag = FlagName(arg);
    if (arg == "-c" || arg == "-" || !absl::StartsWith(arg, "-")) {
      if (code || file) return UsageError("exec takes one of -c CODE, FILE or -");
      if (arg == "-c") {
        if (reader.Done()) return UsageError("-c needs the code");
        code = reader.Next();
      } else {
        file = arg;
      }
      continue;
    }
    const Field<ExecRequest>* field = FieldForFlag(protocol::ExecFields(), flag);
    if (field == nullptr) return UsageError(absl::StrCat("exec: unknown flag ", flag));
    absl::StatusOr<std::string> value = reader.Value(arg);
    if (!value.ok()) return UsageError(value.status().message());
    if (absl::Status read = field->from_text(*value, request); !read.ok()) {
      return UsageError(read.message());
    }
  }
  if (!code && !file) return UsageError("exec needs -c CODE, FILE or - (standard input)");
  if (file) {
    absl::StatusOr<std::string> source = protocol::ReadSource(*file);
    if (!source.ok()) return UsageError(source.status().message());
    code = *std::move(source);
  }
  request.code = *std::move(code);
  absl::StatusOr<std::unique_ptr<ProtocolChannel>> channel = ProtocolChannel::Take();
  if (!channel.ok()) return StatusError(channel.status());
  int failed = kExitHostError;
  absl::StatusOr<std::unique_ptr<Host>> host = MakeHost(OneShotOptions(), failed);
  if (!host.ok()) return failed;
  StopConnection stoppable(**host);
  // One answer, whoever gives it: a forced exit (code stuck in C past the stop grace)
  // answers for the execution it abandons.
  std::atomic<bool> answered{false};
  std::ostream& out = (*channel)->out();
  StopSignals::Install().SetLastWords([&answered, &out] {
    if (answered.exchange(true)) return;
    ExecResult abandoned;
    abandoned.outcome = Outcome::kInterrupted;
    abandoned.error = ExecError{std::string(error_type::kInterrupted),
                                "stopped by a signal; the code did not stop in time"};
    WriteAnswer(out, abandoned.ToJson());
  });
  absl::StatusOr<ExecResult> result = (*host)->Execute(request);
  StopSignals::Install().SetLastWords(nullptr);
  if (answered.exchange(true)) return ExitStatus(kExitCodeFailed);  // the last words answered
  if (!result.ok()) return ExitStatus(StatusError(result.status()));
  if (!WriteAnswer(out, result->ToJson())) return ExitStatus(kExitCodeFailed);
  return ExitStatus(ExitCodeForOutcome(result->outcome));
}

// A tool name from a file name: "tools/word_count.py" -> "word_count".
std::string ToolNameFor(const std::string& path) {
  std::string stem = std::filesystem::path(path).stem().string();
  for (char& c : stem) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') c = '_';
  }
  if (stem.empty()) stem = "tool";
  return stem.substr(0, 64);
}

int Call(ArgReader& reader) {
  std::optional<std::string> file;
  // `pyhost call FILE` registers FILE, then calls it: its flags are the fields of both.
  protocol::RegisterRequest tool;
  protocol::CallRequest call;
  while (!reader.Done()) {
    std::string arg = reader.Next();
    std::string flag = FlagName(arg);
    if (!absl::StartsWith(arg, "-") || arg == "-") {
      if (file) return UsageError("call takes one FILE");
      file = arg;
      continue;
    }
    const Field<protocol::RegisterRequest>* tool_field =
        FieldForFlag(protocol::RegisterFields(), flag);
    const Field<protocol::CallRequest>* call_field =
        tool_field != nullptr ? nullptr : FieldForFlag(protocol::CallFields(), flag);
    if (tool_field == nullptr && call_field == nullptr) {
      return UsageError(absl::StrCat("call: unknown flag ", flag));
    }
    absl::StatusOr<std::string> value = reader.Value(arg);
    if (!value.ok()) return UsageError(value.status().message());
    absl::Status read = tool_field != nullptr ? tool_field->from_text(*value, tool)
                                              : call_field->from_text(*value, call);
    if (!read.ok()) return UsageError(read.message());
  }
  if (!file) return UsageError("call needs a FILE defining run(args)");
  absl::StatusOr<std::string> source = protocol::ReadSource(*file);
  if (!source.ok()) return UsageError(source.status().message());
  tool.name = call.name = ToolNameFor(*file);
  tool.source = *std::move(source);
  absl::StatusOr<std::unique_ptr<ProtocolChannel>> channel = ProtocolChannel::Take();
  if (!channel.ok()) return StatusError(channel.status());
  std::ostream& out = (*channel)->out();
  int failed = kExitHostError;
  absl::StatusOr<std::unique_ptr<Host>> host = MakeHost(OneShotOptions(), failed);
  if (!host.ok()) return failed;
  StopConnection stoppable(**host);
  if (absl::Status registered = (*host)->RegisterTool(tool.name, tool.source, tool.options);
      !registered.ok()) {
    // A tool that does not load (or was interrupted loading) is the code's failure,
    // answered as an envelope; what is not implemented, or pyhost's own failure, is not.
    absl::string_view type = ErrorTypeForStatus(registered, error_type::kToolLoad);
    if (type != error_type::kToolLoad && type != error_type::kInterrupted) {
      return ExitStatus(StatusError(registered));
    }
    json envelope = {
        {"ok", false},
        {"error", {{"type", std::string(type)}, {"message", std::string(registered.message())}}}};
    WriteAnswer(out, envelope);
    return ExitStatus(kExitCodeFailed);
  }
  absl::StatusOr<ToolCallResult> result = (*host)->CallTool(call.name, call.args);
  if (!result.ok()) return ExitStatus(StatusError(result.status()));
  // What run() printed goes to stderr, so stdout stays one JSON document.
  std::cerr << result->stdout_stream.text << result->stderr_stream.text;
  if (!WriteAnswer(out, result->envelope)) return ExitStatus(kExitCodeFailed);
  // run() returned (outcome ok) but may have returned {"ok": <anything but true>}.
  auto ok = result->envelope.find("ok");
  int status = ExitCodeForOutcome(result->outcome);
  if (status == kExitOk && (ok == result->envelope.end() || *ok != true)) status = kExitCodeFailed;
  return ExitStatus(status);
}

int Serve(ArgReader& reader) {
  int workers = 4;
  HostOptions options;
  while (!reader.Done()) {
    std::string arg = reader.Next();
    std::string flag = FlagName(arg);
    if (!IsOneOf(flag, {"--workers", "--pool-size", "--prewarm"})) {
      return UsageError(absl::StrCat("serve: unknown flag ", flag));
    }
    absl::StatusOr<std::string> value = reader.Value(arg);
    if (!value.ok()) return UsageError(value.status().message());
    if (flag == "--prewarm") {
      options.prewarm_modules = absl::StrSplit(*value, ',', absl::SkipEmpty());
      continue;
    }
    absl::StatusOr<int64_t> count = protocol::ParsePositive(flag, *value);
    if (!count.ok() || *count > 256) return UsageError(absl::StrCat(flag, " takes 1 to 256"));
    (flag == "--workers" ? workers : options.pool_size) = static_cast<int>(*count);
  }
  StopSignals& stop = StopSignals::Install();
  absl::StatusOr<std::unique_ptr<ProtocolChannel>> channel = ProtocolChannel::Take(stop.wake_fd());
  if (!channel.ok()) return StatusError(channel.status());
  int failed = kExitHostError;
  absl::StatusOr<std::unique_ptr<Host>> host = MakeHost(std::move(options), failed);
  if (!host.ok()) return failed;
  StopConnection stoppable(**host);
  return ExitStatus(cli::Serve(**host, (*channel)->in(), (*channel)->out(), workers,
                               [&stop] { return stop.received() != 0; }));
}

int Main(int argc, char** argv) {
  // The process-isolation worker the host starts (worker/worker.h): single-threaded,
  // with the default signal dispositions, so before the stop signals' thread.
  if (argc >= 2 && std::string(argv[1]) == "worker") {
    absl::StatusOr<WorkerOptions> options =
        ParseWorkerArgs(std::vector<std::string>(argv + 2, argv + argc));
    if (!options.ok()) return UsageError(absl::StrCat("worker: ", options.status().message()));
    return RunWorker(*options);
  }
  StopSignals::Install();  // before any thread starts: they inherit the signal mask
  if (argc < 2) return UsageError("missing command (exec, call or serve)");
  std::string command = argv[1];
  if (command == "-h" || command == "--help" || command == "help") {
    std::cout << kUsage;
    return kExitOk;
  }
  ArgReader reader(argc, argv, 2);
  if (command == "exec") return Exec(reader);
  if (command == "call") return Call(reader);
  if (command == "serve") return Serve(reader);
  return UsageError(absl::StrCat("unknown command '", command, "' (exec, call or serve)"));
}

}  // namespace
}  // namespace pyhost::cli

int main(int argc, char** argv) { return pyhost::cli::Main(argc, argv); }

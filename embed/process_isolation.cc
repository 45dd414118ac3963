#include "embed/process_isolation.h"

#include <ftw.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bindings/json_text.h"
#include "embed/execution_wire.h"
#include "embed/stopwatch.h"
#include "process/channel.h"
#include "process/child_process.h"
#include "process/child_uids.h"
#include "process/worker_options.h"

namespace pyhost {
namespace {

using json = nlohmann::json;

// WORK_DIR and OUTPUT_DIR become the child's own (its uid when the host is root), and
// no one else's: other children run as other uids. Not the directory holding them,
// which stays the host's: the child cannot put a link in their place, which the host
// would follow when it lists and tidies the outputs.
absl::Status HandOver(const std::string& dir, const ChildIdentity& identity) {
  if (!identity.switched()) return absl::OkStatus();
  if (chmod(dir.c_str(), 0711) != 0) {
    return absl::InternalError(absl::StrCat("handing ", dir, " over: ", strerror(errno)));
  }
  for (const std::string& path : {dir + "/work", dir + "/output"}) {
    if (chown(path.c_str(), identity.uid, identity.gid) != 0 || chmod(path.c_str(), 0700) != 0) {
      return absl::InternalError(absl::StrCat("handing ", path, " over: ", strerror(errno)));
    }
  }
  return absl::OkStatus();
}

// The outputs the caller keeps are the host's again, not a uid's the next child may
// get (nothing of the child runs any more: it ended, and its uid was swept).
void TakeBack(const std::string& output, const ChildIdentity& identity) {
  if (!identity.switched()) return;
  nftw(
      output.c_str(),
      [](const char* path, const struct stat*, int, FTW*) {
        (void)lchown(path, geteuid(), getegid());
        return 0;
      },
      16, FTW_PHYS);
}

Failure Ended(Outcome outcome, std::string message, std::string hint = "") {
  return Failure{outcome, ExecError{std::string(ErrorTypeForOutcome(outcome)), std::move(message),
                                    0, "", std::move(hint)}};
}

}  // namespace

std::string DefaultWorkerProgram() {
  if (const char* env = getenv("PYHOST_WORKER"); env != nullptr && *env != '\0') return env;
  for (const char* candidate : {PYHOST_BUILD_WORKER, PYHOST_INSTALLED_WORKER}) {
    if (access(candidate, X_OK) == 0) return candidate;
  }
  return PYHOST_INSTALLED_WORKER;
}

ProcessIsolation::ProcessIsolation(ProcessIsolationOptions options,
                                   std::shared_ptr<WorkDirStock> dirs)
    : options_(std::move(options)), dirs_(std::move(dirs)) {
  if (options_.worker_program.empty()) options_.worker_program = DefaultWorkerProgram();
}

ProcessIsolation::~ProcessIsolation() = default;

absl::StatusOr<ForkserverClient*> ProcessIsolation::ServerFor(const Policy& policy) {
  WorkerOptions worker;
  worker.prewarm = options_.prewarm;
  worker.prewarm_if_found = policy.prewarm;
  worker.packages = policy.packages;
  worker.max_output_bytes = options_.max_output_bytes;
  std::vector<std::string> argv = {options_.worker_program, "worker"};
  for (std::string& arg : WorkerArgs(worker)) argv.push_back(std::move(arg));
  const std::string key = absl::StrJoin(argv, "\n");
  absl::MutexLock lock(&mu_);
  if (servers_.count(key) == 0 && servers_.size() >= kMaxWorkers) {
    return absl::ResourceExhaustedError(
        absl::StrCat("process isolation already runs ", kMaxWorkers,
                     " workers (one per distinct packages and prewarm of the policies used)"));
  }
  std::unique_ptr<ForkserverClient>& server = servers_[key];
  if (server == nullptr) {
    // One BLAS thread: the worker forks, and its children share two cores here. The
    // sanitizers' settings (a sanitized build) are configuration, not the host's data.
    std::vector<std::pair<std::string, std::string>> env = {{"OPENBLAS_NUM_THREADS", "1"},
                                                            {"OMP_NUM_THREADS", "1"}};
    for (const char* name : {"ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS"}) {
      if (const char* value = getenv(name)) env.emplace_back(name, value);
    }
    server = std::make_unique<ForkserverClient>(std::move(argv), std::move(env));
  }
  return server.get();
}

absl::Status ProcessIsolation::Run(const ExecutionSettings& settings,
                                   const std::shared_ptr<ExecutionControl>& control,
                                   Execution& execution) {
  const Policy& policy = *settings.policy;
  absl::StatusOr<ForkserverClient*> found = ServerFor(policy);
  if (!found.ok()) return found.status();
  ForkserverClient& server = **found;
  absl::StatusOr<ChildIdentity> identity =
      ChildUids::ForThisProcess().Reserve(control->limits.deadline());
  if (!identity.ok()) return identity.status();
  std::string dir;
  if (policy.work_dir) {
    absl::StatusOr<std::string> taken = dirs_->Take();
    absl::Status handed = taken.ok() ? HandOver(*taken, *identity) : taken.status();
    if (!handed.ok()) {
      if (taken.ok()) dirs_->Return(*taken, false);
      ChildUids::ForThisProcess().Release(*identity);
      return handed;
    }
    dir = *std::move(taken);
  }
  UniqueFd ours, theirs;
  absl::Status made = MakeSocketPair(/*records=*/false, ours, theirs);
  if (!made.ok()) {
    if (!dir.empty()) dirs_->Return(dir, false);
    ChildUids::ForThisProcess().Release(*identity);
    return made;
  }

  // The child's own limits stop code in Python at the limits (naming the line); the
  // worker kills the group kStuckGrace past them, for code stuck in C.
  const absl::Time kill_at = control->limits.deadline() + kStuckGrace;
  // The policy's variables, from the host's environment: the worker has none of it.
  json environment = json::object();
  for (const std::string& name : policy.env) {
    if (const char* value = getenv(name.c_str())) environment[name] = value;
  }
  json wire_request = RequestToWire(settings, execution, dir);
  wire_request["environment"] = std::move(environment);
  const std::string request = wire_request.dump(-1, ' ', false, json::error_handler_t::replace);
  // What the socket's buffer takes goes before the fork: the child reads it at once.
  const ssize_t early =
      send(ours.get(), request.data(), request.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  const size_t sent = early > 0 ? static_cast<size_t>(early) : 0;
  if (sent == request.size()) shutdown(ours.get(), SHUT_WR);
  Stopwatch starting;
  absl::StatusOr<pid_t> pid = server.Fork(theirs.get(), *identity, kill_at - absl::Now(),
                                          absl::Milliseconds(settings.limits.cpu_ms.value_or(0)),
                                          /*sweep=*/!policy.enforce || policy.processes);
  theirs.reset();
  if (!pid.ok()) {
    if (!dir.empty()) dirs_->Return(dir, false);
    return pid.status();
  }
  const double start_us = starting.WallUs();
  if (sent < request.size()) {
    // A child that dies before reading all of it makes the write fail: its end says why.
    (void)WriteAll(ours.get(), absl::string_view(request).substr(sent), kill_at);
    shutdown(ours.get(), SHUT_WR);
  }

  // What the child sends, read to its end: a line of the restrictions in force (before
  // the code runs, so the code cannot forge it), then the answer. An interruption
  // kills it.
  const size_t cap = kMaxProcessAnswerBytes + 2 * settings.max_output_bytes;
  std::string received;
  absl::Status read;
  bool interrupted = false;
  const absl::Time give_up = kill_at + absl::Seconds(2);
  for (;;) {
    read = ReadToEnd(ours.get(), cap, std::min(give_up, absl::Now() + absl::Milliseconds(20)),
                     received);
    if (!absl::IsDeadlineExceeded(read) || absl::Now() >= give_up) break;
    // A limit's stop is the child's to enforce; only an interruption kills it here.
    if (!interrupted && control->cancellation.cancelled() &&
        !control->cancellation.stop_reason().has_value()) {
      interrupted = true;
      server.Kill(*pid);
    }
  }
  const bool too_large = absl::IsResourceExhausted(read);
  if (too_large || !read.ok()) server.Kill(*pid);
  ours.reset();
  // The answer counts only from a child that then exited by itself: code that wrote
  // one and went on running is judged by how it ended.
  absl::StatusOr<ChildEnd> end = server.AwaitEnd(*pid, give_up + absl::Seconds(5));
  if (!end.ok() && absl::IsDeadlineExceeded(end.status())) {
    server.Kill(*pid);
    end = server.AwaitEnd(*pid, absl::Now() + absl::Seconds(5));
    if (!end.ok()) server.Abandon(*pid);
  }
  const size_t newline = received.find('\n');
  const json restrictions =
      ParseJsonText(received.substr(0, newline), kWireAnswerDepth).value_or(json());
  const std::string rest = newline == std::string::npos ? "" : received.substr(newline + 1);
  const bool exited_cleanly = end.ok() && WIFEXITED(end->wait_status) &&
                              WEXITSTATUS(end->wait_status) == 0 && !end->killed_at_deadline &&
                              !end->killed_over_cpu;
  // Read as text from outside: a value nested deeper than a result may be (the child
  // runs untrusted code) would overflow the stack when copied or dumped.
  absl::StatusOr<json> parsed = exited_cleanly && read.ok() && !interrupted
                                    ? ParseJsonText(rest, kMaxValueDepth + kWireAnswerDepth)
                                    : absl::StatusOr<json>(json());
  const json wire = parsed.ok() ? *std::move(parsed) : json();

  ExecStats& stats = execution.answer().stats;
  json process = {{"pid", *pid}, {"fork_us", start_us}};
  if (identity->switched()) process["uid"] = identity->uid;
  if (restrictions.is_object() && !restrictions.contains("worker_error")) {
    process["restrictions"] = restrictions;
  }
  if (restrictions.is_object() && restrictions.contains("worker_error")) {
    // The child failed before the code ran (its request, a restriction that must hold).
    execution.Abandon(Ended(
        Outcome::kHostError,
        absl::StrCat("the process-isolation child failed: ", restrictions["worker_error"].dump())));
  } else if (wire.is_object()) {
    if (absl::Status taken = execution.AdoptWireAnswer(wire); !taken.ok()) {
      execution.Abandon(Ended(Outcome::kHostError, std::string(taken.message())));
    }
    // The caps hold whatever the child says (its code may write the answer itself).
    for (CapturedStream* stream :
         {&execution.answer().stdout_stream, &execution.answer().stderr_stream}) {
      if (stream->text.size() > settings.max_output_bytes) {
        stream->text.resize(settings.max_output_bytes);
        stream->truncated = true;
      }
    }
  } else if (!parsed.ok()) {
    execution.Abandon(Ended(Outcome::kHostError,
                            absl::StrCat("the child's answer: ", parsed.status().message())));
  } else if (interrupted) {
    execution.Abandon(Failure{Outcome::kInterrupted,
                              ExecError{std::string(error_type::kKeyboardInterrupt),
                                        "interrupted: the process was killed", 0, "", ""}});
  } else if (too_large) {
    execution.Abandon(
        Ended(Outcome::kOutputLimit, absl::StrCat("the answer was larger than the ", cap,
                                                  " bytes a process-isolation answer may be; "
                                                  "the process was killed")));
  } else if (!end.ok()) {
    execution.Abandon(Ended(Outcome::kWorkerExited, std::string(end.status().message())));
  } else {
    const std::string violation = absl::StartsWith(rest, "seccomp ") ? rest : "";
    EndOutcome outcome = ClassifyEnd(*end, violation, settings.limits);
    execution.Abandon(Ended(outcome.outcome, outcome.message));
  }
  if (end.ok()) {
    if (!wire.is_object()) {  // else the child's own figures (its code's thread)
      stats.cpu_us = absl::ToDoubleMicroseconds(end->user + end->system);
      stats.peak_memory_bytes = end->max_rss_kb * 1024;
    }
    process["wait_status"] = end->wait_status;
    process["max_rss_kb"] = end->max_rss_kb;
    process["user_us"] = absl::ToInt64Microseconds(end->user);
    process["system_us"] = absl::ToInt64Microseconds(end->system);
    process["swept"] = end->swept;
  }
  const ForkserverStats counts = server.stats();
  process["worker_starts"] = counts.starts;
  process["worker_deaths"] = counts.deaths;
  stats.process = std::move(process);
  stats.wait_us = start_us;
  if (!dir.empty()) {
    Answer& out = execution.answer();
    // Listed here, not taken from the child's word: what is in output/ now.
    if (execution.ReportsOutputs() && policy.work_dir) {
      out.output.files = RegularFilesUnder(dir + "/output");
      if (!out.output.files.empty()) out.output.dir = dir + "/output";
    }
    if (!out.output.files.empty()) TakeBack(dir + "/output", *identity);
    dirs_->Return(dir, !out.output.files.empty());
  }
  return absl::OkStatus();
}

}  // namespace pyhost

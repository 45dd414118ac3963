#include "worker/child_execution.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "bindings/asan.h"
#include "bindings/thread_state.h"
#include "embed/execution_context.h"
#include "embed/execution_wire.h"
#include "guards/execution_limits.h"
#include "process/channel.h"
#include "process/restrictions.h"

namespace pyhost {
namespace {

using json = nlohmann::json;

// Ends the child with `answer` sent: no destructor runs (what they would tear down
// dies with the process, and the code's finalizers must not run after its answer).
[[noreturn]] void SendAndExit(int channel, const json& answer) {
  (void)WriteAll(channel, answer.dump(-1, ' ', false, json::error_handler_t::replace),
                 absl::InfiniteFuture());
  shutdown(channel, SHUT_WR);  // the host has the answer now, not when teardown ends
  _exit(0);
}

[[noreturn]] void WorkerError(int channel, absl::string_view what, const absl::Status& status) {
  SendAndExit(channel, json{{"worker_error", absl::StrCat(what, ": ", status.ToString())}});
}

// The address space the child holds now (VmSize), which RLIMIT_AS counts too: the
// limit is what the execution may add to it.
int64_t AddressSpaceBytes() {
  FILE* statm = fopen("/proc/self/statm", "re");
  long pages = 0;
  if (statm != nullptr) {
    if (fscanf(statm, "%ld", &pages) != 1) pages = 0;
    fclose(statm);
  }
  return int64_t{pages} * sysconf(_SC_PAGESIZE);
}

ChildRestrictions RestrictionsFor(const ExecutionSettings& settings,
                                  const ExecutionContext& context, int channel,
                                  const ChildIdentity& identity) {
  const Policy& policy = *settings.policy;
  ChildRestrictions r;
  r.keep_fds = {channel};
  if (identity.switched()) {
    r.uid = identity.uid;
    r.gid = identity.gid;
  }
  r.violation_fd = channel;
  for (const std::string& name : policy.env) {
    if (const char* value = getenv(name.c_str())) r.environment.emplace_back(name, value);
  }
  const json globals = context.Globals();
  if (globals.contains("WORK_DIR")) {
    r.environment.emplace_back("HOME", globals["WORK_DIR"].get<std::string>());
    r.environment.emplace_back("TMPDIR", globals["WORK_DIR"].get<std::string>());
  }
  const Limits& limits = settings.limits;
  // Not under ASan: its allocator and quarantine take address space RLIMIT_AS counts
  // (the budget still holds Python's allocations there).
  if (limits.memory_mb && !kAsanBuild) {
    r.memory_bytes = AddressSpaceBytes() + (*limits.memory_mb << 20);
  }
  // The worker kills the group at the CPU limit (+ grace, checked every 10 ms);
  // RLIMIT_CPU, whole seconds only, is the kernel's backstop a second past it.
  if (limits.cpu_ms) r.cpu_seconds = (*limits.cpu_ms + 999) / 1000 + 1;
  r.allow_network = !policy.enforce || !policy.network.empty() || !settings.extra_network.empty();
  r.allow_processes = !policy.enforce || policy.processes;
  if (policy.enforce) {
    std::vector<std::string> writable = policy.write_paths;
    for (const char* dir : {"WORK_DIR", "OUTPUT_DIR"}) {
      if (globals.contains(dir)) writable.push_back(globals[dir].get<std::string>());
    }
    writable.push_back("/dev/null");
    r.writable_paths = std::move(writable);
  }
  return r;
}

// A MemoryError the code did not catch is the memory limit's here: RLIMIT_AS refused
// an allocation the budget does not see (a C library's malloc).
void MemoryErrorIsTheLimit(json& answer) {
  if (answer.value("outcome", "") != OutcomeName(Outcome::kCodeError)) return;
  json* error = answer.contains("error") && answer["error"].is_object() ? &answer["error"]
                : answer.contains("envelope") && answer["envelope"].is_object() &&
                        answer["envelope"].contains("error")
                    ? &answer["envelope"]["error"]
                    : nullptr;
  if (error == nullptr || error->value("type", "") != "MemoryError") return;
  // An allocation that failed says so (CPython's bare MemoryError, NumPy's "Unable
  // to allocate ..."); a MemoryError the code raised with its own words is its own.
  const std::string message = error->value("message", "");
  if (!message.empty() && message.rfind("Unable to allocate", 0) != 0) return;
  answer["outcome"] = std::string(OutcomeName(Outcome::kMemoryLimit));
  (*error)["type"] = std::string(error_type::kMemoryLimit);
  (*error)["message"] = absl::StrCat(
      "memory limit (memory_mb) reached: the process's address space limit (RLIMIT_AS) "
      "refused an allocation (MemoryError",
      error->value("message", "").empty() ? "" : ": " + error->value("message", ""), ")");
}

}  // namespace

void RunChild(UniqueFd channel, Interpreter& interp, pid_t forkserver,
              const ChildIdentity& identity) {
  const int fd = channel.get();
  std::string text;
  if (absl::Status read =
          ReadToEnd(fd, kMaxWireRequestBytes, absl::Now() + absl::Seconds(60), text);
      !read.ok()) {
    WorkerError(fd, "reading the request", read);
  }
  const json wire_request = json::parse(text, nullptr, /*allow_exceptions=*/false);
  text.clear();
  absl::StatusOr<std::unique_ptr<WireRequest>> request = RequestFromWire(wire_request);
  if (!request.ok()) WorkerError(fd, "the request", request.status());
  // The policy's variables, from the host (the worker's own environment is empty):
  // the context reads them from here.
  if (const auto env = wire_request.find("environment"); env != wire_request.end()) {
    for (const auto& [name, value] : env->items()) {
      if (value.is_string()) setenv(name.c_str(), value.get_ref<const std::string&>().c_str(), 1);
    }
  }
  Policy& policy = (*request)->policy;
  // The packages are on sys.path (the worker's); the code may read them like the stdlib.
  policy.read_paths.insert(policy.read_paths.end(), policy.packages.begin(), policy.packages.end());
  const ExecutionSettings& settings = (*request)->settings;
  Execution& execution = *(*request)->execution;

  ThreadStateScope scope(interp.state());
  interp.sandbox().set_own_process();
  // No code of the user's has run in this interpreter: nothing to interrupt yet.
  absl::StatusOr<std::unique_ptr<ExecutionContext>> context = ExecutionContext::Enter(
      interp, policy, ExecutionSetup{settings.extra_network, nullptr, (*request)->dir});
  if (!context.ok()) {  // answered as in-process: no restrictions were applied
    execution.Fail(context.status());
    (void)WriteAll(fd, "{}\n", absl::InfiniteFuture());
    SendAndExit(fd, execution.WireAnswer());
  }
  // After the context read the policy's variables from the environment (step 4 clears
  // it), and before the limits' watchdog thread starts (a uid switch with threads
  // running signals each of them).
  RestrictionsInForce in_force =
      ApplyRestrictions(RestrictionsFor(settings, **context, fd, identity), forkserver);
  if (!in_force.status.ok()) WorkerError(fd, "applying the restrictions", in_force.status);
  if (kAsanBuild) in_force.notes.push_back("ASan build: no RLIMIT_AS");
  // The first line, sent before the code runs: the code cannot forge it.
  (void)WriteAll(fd, in_force.ToJson().dump() + "\n", absl::InfiniteFuture());
  ExecutionControl control(settings.limits);
  ExecutionLimits::OnThisThread here(control.limits);
  execution.Run(settings, interp, **context, control.cancellation);
  control.limits.Disarm();
  Answer& answer = execution.answer();
  answer.stats.cpu_us = static_cast<double>(control.limits.cpu_us());
  answer.stats.peak_memory_bytes = control.limits.budget().peak_bytes();
  answer.stats.interpreter_id = interp.id();
  json wire = execution.WireAnswer();
  MemoryErrorIsTheLimit(wire);
  SendAndExit(fd, wire);
}

}  // namespace pyhost

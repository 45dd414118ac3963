// What a caller asks of a Host: run a snippet (ExecRequest) or register a tool
// (ToolOptions). See host.h for the calls and result.h for the answers.
#ifndef PYHOST_REQUEST_H_
#define PYHOST_REQUEST_H_

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pyhost/limits.h"
#include "pyhost/policy.h"

namespace pyhost {

// Where code runs.
enum class Isolation {
  kFresh,     // a never-used subinterpreter, destroyed afterwards: nothing leaks
  kResident,  // a long-lived interpreter: module state persists, globals do not
  kProcess,   // a forked worker process (not implemented yet)
};

// "fresh", "resident", "process": the names used on the command line and in JSON
// (answers' stats.isolation). ParseIsolation also takes "tool", kResident's old name.
absl::string_view IsolationName(Isolation isolation);
absl::StatusOr<Isolation> ParseIsolation(absl::string_view name);

struct ExecRequest {
  // Python source. `args` is a global; the global `result` afterwards is the result.
  std::string code;
  nlohmann::json args = nlohmann::json::object();
  Isolation isolation = Isolation::kFresh;
  // Caps on captured stdout and stderr, each; unset: the host's default.
  std::optional<size_t> max_output_bytes;
  // Unset: the host's default policy (HostOptions::default_policy, "strict").
  std::optional<Policy> policy;
  // Host patterns added to the policy's network allowlist for this request.
  std::vector<std::string> allow_net;
  // Unset fields: the environment's or the defaults, lowered to the policy's ceilings
  // (pyhost/limits.h); a field above its ceiling is refused (InvalidArgument).
  Limits limits;
};

struct ToolOptions {
  // kFresh (default, for untrusted tools): every call in a never-used interpreter.
  // kResident (trusted tools, lowest latency): one interpreter kept for the tool; its
  // module state persists between calls, globals a call assigns do not.
  Isolation isolation = Isolation::kFresh;
  // Unset: the host's default policy. A resident tool's policy is in force from its
  // registration (its module body runs under it) to its removal.
  std::optional<Policy> policy;
  // Of the tool's load and of each of its calls, as ExecRequest::limits.
  Limits limits;
};

}  // namespace pyhost

#endif  // PYHOST_REQUEST_H_

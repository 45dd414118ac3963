// Registered run(args) tools: compiled once at registration, called many times.
//
//   ToolRegistry tools(isolations, /*max_output_bytes=*/1 << 20, *NamedPolicy("strict"), {});
//   ToolOptions resident;
//   resident.isolation = Isolation::kResident;
//   absl::Status s = tools.Register("wc", "def run(args):\n  return len(args['t'].split())\n",
//                                   resident);
//   absl::StatusOr<ToolCallResult> r = tools.Call("wc", {{"t", "a b c"}});
//   // r->envelope == {"ok": true, "data": 3}
//
// Registration compiles the source and runs its module body once (in the interpreter
// a resident tool keeps, or in a throwaway one for fresh tools) so a syntax error, an
// exception at import time or a missing run() is reported then, with its line.
// Registering an existing name replaces the tool.
//
// Thread-safety: thread-safe. Calls of one resident tool are serialized (they share
// its interpreter's stdout/stderr captures; on 3.11 the shared GIL serializes them
// anyway); calls of different tools, and of fresh tools, run concurrently.
#ifndef PYHOST_EMBED_TOOL_REGISTRY_H_
#define PYHOST_EMBED_TOOL_REGISTRY_H_

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "embed/isolation.h"
#include "embed/runner.h"
#include "pyhost/request.h"
#include "pyhost/result.h"

namespace pyhost {

class ToolRegistry {
 public:
  // Tools registered without a policy get `default_policy`; `extra_network` joins
  // every tool's network allowlist (PYHOST_NETWORK_ALLOWLIST).
  // `default_limits`: the host's (policy/limits.h's DefaultLimitsFromEnvironment).
  ToolRegistry(Isolations& isolations, size_t max_output_bytes, Policy default_policy,
               Limits default_limits, std::vector<std::string> extra_network)
      : isolations_(isolations),
        max_output_bytes_(max_output_bytes),
        default_policy_(std::move(default_policy)),
        default_limits_(default_limits),
        extra_network_(std::move(extra_network)) {}

  // InvalidArgument for a bad name, a source that does not compile or load, or no
  // run(); Unimplemented for process isolation or policy limits; the execution
  // context's own Status when it cannot be entered (e.g. Unavailable: no execution
  // directory), Cancelled when interrupted then.
  absl::Status Register(absl::string_view name, absl::string_view source, ToolOptions options)
      ABSL_LOCKS_EXCLUDED(mu_);
  // NotFound for an unknown tool. Failures of the tool itself, and of pyhost once an
  // interpreter was taken, are in the envelope (and the answer's outcome).
  absl::StatusOr<ToolCallResult> Call(absl::string_view name, const nlohmann::json& args)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Unregister(absl::string_view name) ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<std::string> Names() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Tool {
    Tool() = default;
    Tool(const Tool&) = delete;  // `settings` points at `policy`
    Tool& operator=(const Tool&) = delete;
    CompiledTool compiled;
    Policy policy;
    ExecutionSettings settings;  // points at `policy`
    // kResident: the tool's own mode, its interpreter and its policy in force from
    // the load to the removal; kFresh: the host's.
    std::unique_ptr<IsolationMode> dedicated;
    IsolationMode* mode = nullptr;
    ToolModule module;  // kResident only: lives in the dedicated interpreter
  };
  absl::StatusOr<std::shared_ptr<Tool>> Find(absl::string_view name) ABSL_LOCKS_EXCLUDED(mu_);

  Isolations& isolations_;
  const size_t max_output_bytes_;
  const Policy default_policy_;
  const Limits default_limits_;
  const std::vector<std::string> extra_network_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Tool>> tools_ ABSL_GUARDED_BY(mu_);
};

// Checks a tool name: 1-64 characters of [A-Za-z0-9_.-].
absl::Status ValidateToolName(absl::string_view name);

}  // namespace pyhost

#endif  // PYHOST_EMBED_TOOL_REGISTRY_H_

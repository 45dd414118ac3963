#include "pyhost/host.h"

#include <stdlib.h>

#include "bindings/cancellation.h"
#include "embed/executions.h"
#include "embed/isolation.h"
#include "embed/pool.h"
#include "embed/runtime.h"
#include "embed/tool_registry.h"
#include "embed/work_dirs.h"
#include "policy/limits.h"

namespace pyhost {

// What a Host is: its options, its interpreters and directories, its isolation modes
// and its tools. A request's path: Execute (or the ToolRegistry) resolves the request
// into ExecutionSettings and a mode, and Isolations::Run runs it (isolation.h).
class Host::Impl {
 public:
  Impl(HostOptions options, std::unique_ptr<InterpreterPool> pool, std::string version,
       Limits default_limits, std::vector<std::string> env_network);

  absl::StatusOr<ExecResult> Execute(const ExecRequest& request);
  ToolRegistry& tools() { return tools_; }
  void InterruptAll() { running_.CancelAll(); }
  PoolStats pool_stats() { return pool_->stats(); }
  const std::string& work_root() const { return dirs_->root(); }
  void RemoveUnreportedFiles() { dirs_->RemoveAllButKeptOutputs(); }
  const std::string& python_version() const { return python_version_; }

 private:
  const HostOptions options_;
  const std::string python_version_;
  const Limits default_limits_;                 // PYHOST_TIMEOUT_MS, ... (policy/limits.h)
  const std::vector<std::string> env_network_;  // PYHOST_NETWORK_ALLOWLIST
  // Declared before the pool and the modes: their executions return directories.
  const std::shared_ptr<WorkDirStock> dirs_;
  CancellationSet running_;
  // Declared before the members holding leases, so destroyed after them.
  std::unique_ptr<InterpreterPool> pool_;
  Isolations isolations_;
  ToolRegistry tools_;
};

absl::StatusOr<std::unique_ptr<Host>> Host::Create(HostOptions options) {
  absl::StatusOr<Runtime*> runtime = Runtime::Get();
  if (!runtime.ok()) return runtime.status();
  PoolOptions pool_options;
  pool_options.size = options.pool_size;
  pool_options.interpreter.prewarm_modules = options.prewarm_modules;
  pool_options.interpreter.max_output_bytes = options.max_output_bytes;
  absl::StatusOr<std::unique_ptr<InterpreterPool>> pool =
      InterpreterPool::Start(std::move(pool_options));
  if (!pool.ok()) return pool.status();
  absl::StatusOr<Limits> default_limits = DefaultLimitsFromEnvironment();
  if (!default_limits.ok()) return default_limits.status();
  const char* env_list = getenv("PYHOST_NETWORK_ALLOWLIST");
  auto impl = std::make_unique<Impl>(std::move(options), *std::move(pool),
                                     (*runtime)->python_version(), *default_limits,
                                     SplitHostPatterns(env_list != nullptr ? env_list : ""));
  return std::unique_ptr<Host>(new Host(std::move(impl)));
}

Host::Host(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Host::~Host() {
  // Code stuck in C holds the GIL (shared by every interpreter on 3.11), which tearing
  // the host down needs: a host that still has some is left as it is, for the process
  // to end (the command prints its answer and exits at the deadline plus the grace).
  if (impl_->pool_stats().quarantined > 0) (void)impl_.release();
}

Host::Impl::Impl(HostOptions options, std::unique_ptr<InterpreterPool> pool, std::string version,
                 Limits default_limits, std::vector<std::string> env_network)
    : options_(std::move(options)),
      python_version_(std::move(version)),
      default_limits_(default_limits),
      env_network_(std::move(env_network)),
      dirs_(std::make_shared<WorkDirStock>(options_.work_root, options_.pool_size)),
      pool_(std::move(pool)),
      isolations_(*pool_, dirs_, running_,
                  ProcessIsolationOptions{options_.worker_program, options_.prewarm_modules,
                                          options_.max_output_bytes}),
      tools_(isolations_, options_.max_output_bytes, options_.default_policy, default_limits_,
             env_network_) {}

absl::StatusOr<ExecResult> Host::Impl::Execute(const ExecRequest& request) {
  ExecutionSettings settings;
  settings.policy = request.policy ? &*request.policy : &options_.default_policy;
  settings.requested = request.isolation;
  IsolationMode& mode = isolations_.Shared(request.isolation, *settings.policy);
  absl::StatusOr<Limits> limits = ResolveLimits(settings.policy->name, settings.policy->limits,
                                                request.limits, default_limits_);
  if (!limits.ok()) return limits.status();
  settings.limits = *std::move(limits);
  settings.max_output_bytes = request.max_output_bytes.value_or(options_.max_output_bytes);
  settings.extra_network = env_network_;
  settings.extra_network.insert(settings.extra_network.end(), request.allow_net.begin(),
                                request.allow_net.end());
  ExecResult result;
  SnippetExecution snippet(request, result);
  if (absl::Status ran = isolations_.Run(mode, settings, snippet); !ran.ok()) return ran;
  return result;
}

absl::StatusOr<ExecResult> Host::Execute(const ExecRequest& request) {
  return impl_->Execute(request);
}

absl::Status Host::RegisterTool(absl::string_view name, absl::string_view source,
                                ToolOptions options) {
  return impl_->tools().Register(name, source, options);
}

absl::StatusOr<ToolCallResult> Host::CallTool(absl::string_view name, const nlohmann::json& args) {
  return impl_->tools().Call(name, args);
}

absl::Status Host::UnregisterTool(absl::string_view name) {
  return impl_->tools().Unregister(name);
}

std::vector<std::string> Host::ToolNames() { return impl_->tools().Names(); }
void Host::InterruptAll() { impl_->InterruptAll(); }
PoolStats Host::pool_stats() { return impl_->pool_stats(); }
const std::string& Host::work_root() const { return impl_->work_root(); }
void Host::RemoveUnreportedFiles() { impl_->RemoveUnreportedFiles(); }
const std::string& Host::python_version() const { return impl_->python_version(); }

}  // namespace pyhost

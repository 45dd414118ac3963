#include "embed/host.h"

#include <stdlib.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "embed/executor.h"
#include "embed/runtime.h"
#include "embed/stopwatch.h"
#include "embed/thread_state.h"

namespace pyhost {

absl::StatusOr<std::unique_ptr<Host>> Host::Create(HostOptions options) {
  absl::StatusOr<Runtime*> runtime = Runtime::Get();
  if (!runtime.ok()) return runtime.status();
  if (absl::Status limits = CheckLimitsSupported(options.default_policy.limits); !limits.ok()) {
    return limits;
  }
  PoolOptions pool_options;
  pool_options.size = options.pool_size;
  pool_options.interpreter.prewarm_modules = options.prewarm_modules;
  pool_options.interpreter.max_output_bytes = options.max_output_bytes;
  absl::StatusOr<std::unique_ptr<InterpreterPool>> pool =
      InterpreterPool::Start(std::move(pool_options));
  if (!pool.ok()) return pool.status();
  const char* env_list = getenv("PYHOST_NETWORK_ALLOWLIST");
  return std::unique_ptr<Host>(new Host(std::move(options), *std::move(pool),
                                        (*runtime)->python_version(),
                                        SplitHostPatterns(env_list != nullptr ? env_list : "")));
}

Host::Host(HostOptions options, std::unique_ptr<InterpreterPool> pool, std::string version,
           std::vector<std::string> env_network)
    : options_(std::move(options)),
      python_version_(std::move(version)),
      env_network_(std::move(env_network)),
      dirs_(options_.work_root, options_.pool_size),
      pool_(std::move(pool)),
      tools_(*pool_, options_.max_output_bytes, options_.default_policy,
             ExecutionSetup{env_network_, &dirs_, &running_}) {}

Host::~Host() = default;

absl::Status Host::CheckSupported(const ExecRequest& request, const Policy& policy) const {
  if (request.isolation == Isolation::kProcess) {
    return absl::UnimplementedError("process isolation is not implemented yet");
  }
  if (absl::Status limits = CheckLimitsSupported(policy.limits); !limits.ok()) return limits;
  return CheckLimitsSupported(request.limits);
}

absl::StatusOr<ExecResult> Host::Execute(const ExecRequest& request) {
  const Policy& policy = request.policy ? *request.policy : options_.default_policy;
  if (absl::Status supported = CheckSupported(request, policy); !supported.ok()) return supported;
  InterpreterPool::Busy busy(*pool_);
  Cancellation cancellation(Cancellation::kInterrupt);
  CancellationSet::Member interruptible(running_, cancellation);
  ExecResult result;
  result.stats.isolation = request.isolation;
  result.stats.policy = policy.name;
  Stopwatch watch;
  if (request.isolation == Isolation::kResident) {
    absl::MutexLock lock(&resident_mu_);  // one snippet at a time: shared captures
    if (!resident_) {
      absl::StatusOr<InterpreterLease> lease = pool_->Acquire();
      if (!lease.ok()) return lease.status();
      resident_ = *std::move(lease);
    }
    result.stats.interpreter_id = resident_->id();
    ThreadStateScope scope(resident_->ThreadStateForThisThread(), ThreadStateScope::Borrow{});
    RunUnderPolicy(resident_.get(), request, policy, cancellation, result);
  } else {
    absl::StatusOr<InterpreterLease> lease = pool_->Acquire();
    if (!lease.ok()) return lease.status();
    result.stats.wait_us = watch.WallUs();
    result.stats.interpreter_id = (*lease)->id();
    ThreadStateScope scope((*lease)->state());
    RunUnderPolicy(lease->get(), request, policy, cancellation, result);
  }
  result.stats.cpu_us = watch.CpuUs();
  result.stats.wall_us = watch.WallUs();
  return result;
}

void Host::RunUnderPolicy(Interpreter& interp, const ExecRequest& request, const Policy& policy,
                          Cancellation& cancellation, ExecResult& result) {
  ExecutionSetup setup{env_network_, &dirs_, &running_};
  setup.extra_network.insert(setup.extra_network.end(), request.allow_net.begin(),
                             request.allow_net.end());
  absl::StatusOr<std::unique_ptr<ExecutionContext>> context =
      ExecutionContext::Enter(interp, policy, setup, &cancellation);
  if (!context.ok()) {
    result.error = ExecError{absl::IsCancelled(context.status()) ? "KeyboardInterrupt" : "HostError",
                             std::string(context.status().message())};
    return;
  }
  RunSnippet(interp, request, request.max_output_bytes.value_or(options_.max_output_bytes),
             (*context)->Globals(), result, &cancellation);
  result.output.files = (*context)->OutputFiles();
  if (!result.output.files.empty()) result.output.dir = (*context)->output_dir();
}

absl::Status Host::RegisterTool(absl::string_view name, absl::string_view source,
                                ToolOptions options) {
  return tools_.Register(name, source, options);
}

absl::StatusOr<ToolCallResult> Host::CallTool(absl::string_view name,
                                              const nlohmann::json& args) {
  return tools_.Call(name, args);
}

absl::Status Host::UnregisterTool(absl::string_view name) { return tools_.Unregister(name); }

std::vector<std::string> Host::ToolNames() { return tools_.Names(); }

}  // namespace pyhost

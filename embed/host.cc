#include "embed/host.h"

#include "absl/strings/str_cat.h"
#include "embed/executor.h"
#include "embed/runtime.h"
#include "embed/stopwatch.h"
#include "embed/thread_state.h"

namespace pyhost {

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
  return std::unique_ptr<Host>(
      new Host(std::move(options), *std::move(pool), (*runtime)->python_version()));
}

Host::Host(HostOptions options, std::unique_ptr<InterpreterPool> pool, std::string version)
    : options_(std::move(options)),
      python_version_(std::move(version)),
      pool_(std::move(pool)),
      tools_(*pool_, options_.max_output_bytes) {}

Host::~Host() = default;

absl::Status Host::CheckSupported(const ExecRequest& request) const {
  if (!request.policy.empty()) {
    return absl::UnimplementedError(
        absl::StrCat("policy '", request.policy, "': policies are not implemented yet"));
  }
  if (!request.allow_net.empty()) {
    return absl::UnimplementedError("network allowlists are not implemented yet");
  }
  if (request.isolation == Isolation::kProcess) {
    return absl::UnimplementedError("process isolation is not implemented yet");
  }
  return CheckLimitsSupported(request.limits);
}

absl::StatusOr<ExecResult> Host::Execute(const ExecRequest& request) {
  if (absl::Status supported = CheckSupported(request); !supported.ok()) return supported;
  const size_t max_output = request.max_output_bytes.value_or(options_.max_output_bytes);
  InterpreterPool::Busy busy(*pool_);
  ExecResult result;
  result.stats.isolation = request.isolation;
  Stopwatch watch;
  if (request.isolation == Isolation::kResident) {
    RunResident(request, max_output, result);
  } else {
    absl::StatusOr<InterpreterLease> lease = pool_->Acquire();
    if (!lease.ok()) return lease.status();
    result.stats.wait_us = watch.WallUs();
    result.stats.interpreter_id = (*lease)->id();
    ThreadStateScope scope((*lease)->state());
    RunSnippet(lease->get(), request, max_output, result);
  }
  result.stats.cpu_us = watch.CpuUs();
  result.stats.wall_us = watch.WallUs();
  return result;
}

void Host::RunResident(const ExecRequest& request, size_t max_output_bytes,
                       ExecResult& result) {
  absl::MutexLock lock(&resident_mu_);  // one snippet at a time: shared captures
  if (!resident_) {
    absl::StatusOr<InterpreterLease> lease = pool_->Acquire();
    if (!lease.ok()) {
      result.error = ExecError{"HostError", std::string(lease.status().message())};
      return;
    }
    resident_ = *std::move(lease);
  }
  result.stats.interpreter_id = resident_->id();
  ThreadStateScope scope(resident_->ThreadStateForThisThread(), ThreadStateScope::Borrow{});
  RunSnippet(resident_.get(), request, max_output_bytes, result);
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

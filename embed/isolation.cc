#include "embed/isolation.h"

#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "bindings/thread_state.h"
#include "embed/stopwatch.h"
#include "guards/execution_limits.h"

namespace pyhost {
namespace {

// Enters the execution's context in `interp` (entered), runs the execution in it and
// reports the files it left. A context that cannot be entered is the execution's to
// report.
// The execution's limits hold on this thread (its CPU clock, its allocations) from
// here: the thread that runs the code.
void RunInNewContext(Interpreter& interp, const ExecutionSettings& settings, WorkDirStock& dirs,
                     Cancellation& cancellation, ExecutionLimits& limits, Execution& execution,
                     std::unique_ptr<ExecutionContext>* keep = nullptr) {
  ExecutionLimits::OnThisThread here(limits);
  absl::StatusOr<std::unique_ptr<ExecutionContext>> context = ExecutionContext::Enter(
      interp, *settings.policy, ExecutionSetup{settings.extra_network, &dirs}, &cancellation);
  if (!context.ok()) {
    execution.Fail(context.status());
    return;
  }
  execution.Run(settings, interp, **context, cancellation);
  if (execution.ReportsOutputs()) {
    Answer& answer = execution.answer();
    answer.output.files = (*context)->OutputFiles();
    if (!answer.output.files.empty()) answer.output.dir = (*context)->output_dir();
  }
  if (keep != nullptr) *keep = *std::move(context);
}

// Every execution in a never-used interpreter from the pool, destroyed afterwards:
// nothing one execution does is seen by the next.
class FreshIsolation : public IsolationMode {
 public:
  FreshIsolation(InterpreterPool& pool, WorkDirStock& dirs) : pool_(pool), dirs_(dirs) {}
  Isolation isolation() const override { return Isolation::kFresh; }
  EnforcedLimits enforced() const override { return {true, true, true}; }

  absl::Status Run(const ExecutionSettings& settings, Cancellation& cancellation,
                   ExecutionLimits& limits, Execution& execution) override {
    Stopwatch waiting;
    absl::StatusOr<InterpreterLease> lease = pool_.Acquire();
    if (!lease.ok()) return lease.status();
    ExecStats& stats = execution.answer().stats;
    stats.wait_us = waiting.WallUs();
    stats.interpreter_id = (*lease)->id();
    ThreadStateScope scope((*lease)->state());
    RunInNewContext(lease->get(), settings, dirs_, cancellation, limits, execution);
    return absl::OkStatus();
  }

 private:
  InterpreterPool& pool_;
  WorkDirStock& dirs_;
};

// Executions in one long-lived interpreter, taken from the pool on first use, one at
// a time (they share its stdout/stderr captures): module state persists, each
// execution's globals do not. With `keep_first_context` (a resident tool), the first
// execution's context stays in force for every later one until the mode is
// destroyed: the tool's policy and directories from its load to its removal.
class ResidentIsolation : public IsolationMode {
 public:
  ResidentIsolation(InterpreterPool& pool, WorkDirStock& dirs, bool keep_first_context)
      : pool_(pool), dirs_(dirs), keep_first_context_(keep_first_context) {}
  Isolation isolation() const override { return Isolation::kResident; }
  EnforcedLimits enforced() const override { return {true, true, true}; }

  absl::Status Run(const ExecutionSettings& settings, Cancellation& cancellation,
                   ExecutionLimits& limits, Execution& execution) override {
    absl::MutexLock lock(&mu_);
    if (!lease_) {
      absl::StatusOr<InterpreterLease> lease = pool_.Acquire();
      if (!lease.ok()) return lease.status();
      lease_ = *std::move(lease);
    }
    execution.answer().stats.interpreter_id = lease_->id();
    ThreadStateScope scope(lease_->ThreadStateForThisThread(), ThreadStateScope::Borrow{});
    if (kept_context_ != nullptr) {
      ExecutionLimits::OnThisThread here(limits);
      execution.Run(settings, lease_.get(), *kept_context_, cancellation);
      return absl::OkStatus();
    }
    RunInNewContext(lease_.get(), settings, dirs_, cancellation, limits, execution,
                    keep_first_context_ ? &kept_context_ : nullptr);
    return absl::OkStatus();
  }

 private:
  InterpreterPool& pool_;
  WorkDirStock& dirs_;
  const bool keep_first_context_;
  absl::Mutex mu_;
  InterpreterLease lease_ ABSL_GUARDED_BY(mu_);
  // Declared after the lease: ends (policy off) before the interpreter goes back.
  std::unique_ptr<ExecutionContext> kept_context_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::Status CheckEnforced(const IsolationMode& mode, const Limits& limits) {
  EnforcedLimits enforced = mode.enforced();
  const struct {
    const char* name;
    const std::optional<int64_t>& value;
    bool enforced;
  } fields[] = {{"timeout_ms", limits.timeout_ms, enforced.timeout},
                {"cpu_ms", limits.cpu_ms, enforced.cpu},
                {"memory_mb", limits.memory_mb, enforced.memory}};
  for (const auto& field : fields) {
    if (!field.value.has_value()) continue;
    if (*field.value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field.name, " must be positive, got ", *field.value));
    }
    if (!field.enforced) {
      return absl::UnimplementedError(absl::StrCat("limit ", field.name,
                                                   " is not implemented yet (isolation ",
                                                   IsolationName(mode.isolation()), ")"));
    }
  }
  return absl::OkStatus();
}

Isolations::Isolations(InterpreterPool& pool, WorkDirStock& dirs, CancellationSet& running)
    : pool_(pool),
      dirs_(dirs),
      running_(running),
      fresh_(std::make_unique<FreshIsolation>(pool, dirs)),
      resident_(std::make_unique<ResidentIsolation>(pool, dirs, /*keep_first_context=*/false)) {}

Isolations::~Isolations() = default;

absl::StatusOr<IsolationMode*> Isolations::Shared(Isolation isolation) {
  switch (isolation) {
    case Isolation::kFresh:
      return fresh_.get();
    case Isolation::kResident:
      return resident_.get();
    case Isolation::kProcess:
      break;
  }
  return absl::UnimplementedError("process isolation is not implemented yet");
}

std::unique_ptr<IsolationMode> Isolations::DedicatedResident() {
  return std::make_unique<ResidentIsolation>(pool_, dirs_, /*keep_first_context=*/true);
}

absl::Status Isolations::Run(IsolationMode& mode, const ExecutionSettings& settings,
                             Execution& execution) {
  if (absl::Status enforced = CheckEnforced(mode, settings.limits); !enforced.ok()) {
    return enforced;
  }
  InterpreterPool::Busy busy(pool_);
  Cancellation cancellation(Cancellation::kInterrupt);
  CancellationSet::Member interruptible(running_, cancellation);
  Answer& answer = execution.answer();
  answer.stats.isolation = mode.isolation();
  answer.stats.policy = settings.policy->name;
  Stopwatch watch;
  ExecutionLimits limits(settings.limits, cancellation);
  absl::Status ran = mode.Run(settings, cancellation, limits, execution);
  limits.Disarm();
  answer.stats.wall_us = watch.WallUs();
  answer.stats.cpu_us = static_cast<double>(limits.cpu_us());
  answer.stats.limits = settings.limits;
  answer.stats.peak_memory_bytes = limits.budget().peak_bytes();
  answer.stats.limit_hit = std::string(LimitName(answer.outcome));
  return ran;
}

}  // namespace pyhost

#include "embed/isolation.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "bindings/thread_state.h"
#include "embed/process_isolation.h"
#include "embed/runner.h"
#include "embed/stopwatch.h"
#include "guards/execution_limits.h"
#include "guards/gil_sharing.h"

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

// The answer of an execution given up on (`why`): the limit that stopped it, or its
// deadline.
Failure TimedOut(const ExecutionControl& control, const ExecutionSettings& settings,
                 absl::string_view why) {
  std::optional<Cancellation::StopReason> stop = control.cancellation.stop_reason();
  Outcome outcome = stop ? stop->outcome : Outcome::kTimeout;
  std::string reason = stop ? stop->message
                            : absl::StrCat("wall-clock limit of ", *settings.limits.timeout_ms,
                                           " ms (timeout_ms) reached");
  return Failure{
      outcome,
      ExecError{std::string(ErrorTypeForOutcome(outcome)), absl::StrCat(reason, "; ", why), 0, "",
                "code stuck in C cannot be stopped in-process: run code you cannot "
                "trust to stay in Python in process isolation"}};
}

// The threads fresh executions run on, kept for the next ones: a thread started per
// execution added ~250 us to each (docs/benchmarks.md). One stuck in C is the pool's
// again only when the code returns; more are started as needed, and at most
// kMaxIdle wait for work.
class FreshThreads {
 public:
  static FreshThreads& Global() {
    static FreshThreads* threads = new FreshThreads();  // leaked: its threads outlive hosts
    return *threads;
  }

  void Run(std::function<void()> work) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(work));
    if (static_cast<size_t>(idle_) < queue_.size()) std::thread([this] { Loop(); }).detach();
  }

 private:
  static constexpr int kMaxIdle = 8;

  void Loop() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    for (;;) {
      ++idle_;
      auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty(); };
      mu_.Await(absl::Condition(&has_work));
      --idle_;
      std::function<void()> work = std::move(queue_.front());
      queue_.pop_front();
      mu_.Unlock();
      work();
      work = nullptr;  // what it holds goes before the thread waits again
      mu_.Lock();
      if (idle_ >= kMaxIdle) return;
    }
  }

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  int idle_ ABSL_GUARDED_BY(mu_) = 0;
};

// One fresh execution on its own thread, owning everything that thread touches: the
// caller may stop waiting for it (code stuck in C) and return while it still runs.
class FreshJob {
 public:
  FreshJob(const ExecutionSettings& settings, std::shared_ptr<ExecutionControl> control,
           std::unique_ptr<Execution> execution, InterpreterLease lease,
           std::shared_ptr<WorkDirStock> dirs)
      : policy_(*settings.policy),
        settings_(settings),
        control_(std::move(control)),
        execution_(std::move(execution)),
        interp_(lease.get()),
        lease_(std::move(lease)),
        dirs_(std::move(dirs)) {
    settings_.policy = &policy_;
  }

  static void Start(const std::shared_ptr<FreshJob>& job) {
    FreshThreads::Global().Run([job] { job->Run(); });
  }

  // Waits for the execution to end: until `kStuckGrace` past its deadline, or past
  // the moment a limit stopped it. True if it ended: its answer can be adopted. Else
  // the job is abandoned: its interpreter is quarantined, and the thread tears it down
  // if the code ever returns.
  bool WaitOrAbandon() {
    absl::MutexLock lock(&mu_);
    const ExecutionLimits& limits = control_->limits;
    for (;;) {
      absl::Time give_up = limits.deadline() + kStuckGrace;
      if (std::optional<absl::Time> stopped = limits.stopped_at()) {
        give_up = std::min(give_up, *stopped + kStuckGrace);
      }
      // Woken when it ends; else every few ms, to see whether a limit stopped it.
      auto ended = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_; };
      mu_.AwaitWithDeadline(absl::Condition(&ended),
                            std::min(give_up, absl::Now() + absl::Milliseconds(10)));
      if (done_) return true;
      if (absl::Now() >= give_up) break;
    }
    lease_.Quarantine();
    return false;
  }

  Execution& execution() { return *execution_; }

 private:
  void Run() {
    {
      ThreadStateScope scope(interp_.state());
      RunInNewContext(interp_, settings_, *dirs_, control_->cancellation, control_->limits,
                      *execution_);
    }
    absl::MutexLock lock(&mu_);
    // Handed back before the caller learns it ended, so a caller's host never outlives
    // it. A quarantined one the pool no longer waits for: it may be gone.
    lease_ = InterpreterLease();
    done_ = true;
  }

  const Policy policy_;  // settings_.policy points here
  ExecutionSettings settings_;
  const std::shared_ptr<ExecutionControl> control_;
  const std::unique_ptr<Execution> execution_;
  Interpreter& interp_;  // the lease's, for as long as the job runs
  absl::Mutex mu_;
  InterpreterLease lease_ ABSL_GUARDED_BY(mu_);
  const std::shared_ptr<WorkDirStock> dirs_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

// Every execution in a never-used interpreter from the pool, destroyed afterwards:
// nothing one execution does is seen by the next. It runs on a thread of its own so
// that code stuck in C past its deadline holds up only that thread: its caller gets
// a Timeout kStuckGrace after the deadline.
class FreshIsolation : public IsolationMode {
 public:
  FreshIsolation(InterpreterPool& pool, std::shared_ptr<WorkDirStock> dirs)
      : pool_(pool), dirs_(std::move(dirs)) {}
  Isolation isolation() const override { return Isolation::kFresh; }
  EnforcedLimits enforced() const override { return {true, true, true}; }

  absl::Status Run(const ExecutionSettings& settings,
                   const std::shared_ptr<ExecutionControl>& control,
                   Execution& execution) override {
    Stopwatch waiting;
    absl::StatusOr<InterpreterLease> lease = pool_.Acquire(control->limits.deadline());
    if (absl::IsDeadlineExceeded(lease.status())) {
      execution.Abandon(TimedOut(*control, settings, lease.status().message()));
      return absl::OkStatus();
    }
    if (!lease.ok()) return lease.status();
    const double wait_us = waiting.WallUs();
    const int64_t interpreter_id = (*lease)->id();
    auto job = std::make_shared<FreshJob>(settings, control, execution.Detached(),
                                          *std::move(lease), dirs_);
    FreshJob::Start(job);
    const bool ended = job->WaitOrAbandon();
    if (ended) {
      execution.Adopt(job->execution());
    } else {
      execution.Abandon(TimedOut(
          *control, settings,
          absl::StrCat("the code did not stop within ", absl::ToInt64Milliseconds(kStuckGrace),
                       " ms: it is stuck in C (one long builtin call); "
                       "its interpreter was quarantined")));
    }
    ExecStats& stats = execution.answer().stats;
    stats.wait_us = wait_us;
    stats.interpreter_id = interpreter_id;
    stats.quarantined = !ended;
    return absl::OkStatus();
  }

 private:
  InterpreterPool& pool_;
  const std::shared_ptr<WorkDirStock> dirs_;
};

// Executions in one long-lived interpreter, taken from the pool on first use, one at
// a time (they share its stdout/stderr captures): module state persists, each
// execution's globals do not. With `keep_first_context` (a resident tool), the first
// execution's context stays in force for every later one until the mode is
// destroyed: the tool's policy and directories from its load to its removal.
class ResidentIsolation : public IsolationMode {
 public:
  ResidentIsolation(InterpreterPool& pool, std::shared_ptr<WorkDirStock> dirs,
                    bool keep_first_context)
      : pool_(pool), dirs_(std::move(dirs)), keep_first_context_(keep_first_context) {}
  Isolation isolation() const override { return Isolation::kResident; }
  EnforcedLimits enforced() const override { return {true, true, true}; }

  absl::Status Run(const ExecutionSettings& settings,
                   const std::shared_ptr<ExecutionControl>& control,
                   Execution& execution) override {
    Cancellation& cancellation = control->cancellation;
    ExecutionLimits& limits = control->limits;
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
    RunInNewContext(lease_.get(), settings, *dirs_, cancellation, limits, execution,
                    keep_first_context_ ? &kept_context_ : nullptr);
    return absl::OkStatus();
  }

 private:
  InterpreterPool& pool_;
  const std::shared_ptr<WorkDirStock> dirs_;
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

Isolations::Isolations(InterpreterPool& pool, std::shared_ptr<WorkDirStock> dirs,
                       CancellationSet& running, ProcessIsolationOptions process)
    : pool_(pool),
      dirs_(std::move(dirs)),
      running_(running),
      fresh_(std::make_unique<FreshIsolation>(pool, dirs_)),
      resident_(std::make_unique<ResidentIsolation>(pool, dirs_, /*keep_first_context=*/false)),
      process_(std::make_unique<ProcessIsolation>(std::move(process), dirs_)) {}

Isolations::~Isolations() = default;

IsolationMode& Isolations::Shared(Isolation requested, const Policy& policy) {
  if (policy.process_isolation || !policy.packages.empty()) return *process_;
  switch (requested) {
    case Isolation::kFresh:
      return *fresh_;
    case Isolation::kResident:
      return *resident_;
    case Isolation::kProcess:
      break;
  }
  return *process_;
}

std::unique_ptr<IsolationMode> Isolations::DedicatedResident() {
  return std::make_unique<ResidentIsolation>(pool_, dirs_, /*keep_first_context=*/true);
}

absl::Status Isolations::Run(IsolationMode& mode, const ExecutionSettings& settings,
                             Execution& execution) {
  if (absl::Status enforced = CheckEnforced(mode, settings.limits); !enforced.ok()) {
    return enforced;
  }
  // A request in this process's interpreters keeps the factory and the reaper off the
  // GIL and needs the GIL ticker; one in a child process needs neither.
  std::optional<InterpreterPool::Busy> busy;
  std::optional<GilSharing::Running> sharing;
  if (mode.isolation() != Isolation::kProcess) {
    busy.emplace(pool_);
    sharing.emplace();
  }
  Stopwatch watch;
  auto control = std::make_shared<ExecutionControl>(settings.limits);
  CancellationSet::Member interruptible(running_, control->cancellation);
  absl::Status ran = mode.Run(settings, control, execution);
  control->limits.Disarm();
  ExecStats& stats = execution.answer().stats;
  stats.isolation = mode.isolation();
  stats.policy = settings.policy->name;
  stats.wall_us = watch.WallUs();
  stats.limits = settings.limits;
  if (mode.isolation() != Isolation::kProcess) {  // else the child's own figures
    stats.cpu_us = static_cast<double>(control->limits.cpu_us());
    stats.peak_memory_bytes = control->limits.budget().peak_bytes();
  }
  if (mode.isolation() != settings.requested)
    stats.rerouted = std::string(IsolationName(mode.isolation()));
  stats.limit_hit = std::string(LimitName(execution.answer().outcome));
  return ran;
}

}  // namespace pyhost

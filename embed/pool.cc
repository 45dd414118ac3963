#include "embed/pool.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "audit_hooks/sandbox.h"
#include "bindings/check.h"
#include "bindings/thread_state.h"
#include "embed/runtime.h"
#include "guards/watchdog.h"

namespace pyhost {

// Lock order: mu is never held while waiting for the GIL, and never taken with the GIL
// held (the factory and the reaper release it first).
struct PoolState {
  using State = PoolState;
  explicit PoolState(PoolOptions o) : options(std::move(o)) {}
  // The last owner may be a lease that outlived the pool (a quarantined interpreter
  // whose code returned), on a thread without the GIL: what is left is kept, not ended.
  ~PoolState() ABSL_NO_THREAD_SAFETY_ANALYSIS {  // no other owner is left
    for (auto& interpreter : ready) Interpreter::KeepForever(std::move(interpreter));
    for (auto& interpreter : retired) Interpreter::KeepForever(std::move(interpreter));
  }

  // Gives up on the reaper of `generation` (its teardown is past abandon_after) and
  // starts another. Called by the watchdog.
  void Abandon(const std::shared_ptr<State>& self, int64_t generation) ABSL_LOCKS_EXCLUDED(mu) {
    absl::MutexLock lock(&mu);
    if (generation != reaper_generation) return;
    ++reaper_generation;
    ++stats.abandoned;
    --in_flight;  // its teardown is no longer waited for
    std::thread(InterpreterPool::ReaperLoop, self, reaper_generation).detach();
  }

  const PoolOptions options;
  absl::Mutex mu;
  std::deque<std::unique_ptr<Interpreter>> ready ABSL_GUARDED_BY(mu);
  std::deque<std::unique_ptr<Interpreter>> retired ABSL_GUARDED_BY(mu);
  absl::Status creation_error ABSL_GUARDED_BY(mu);   // permanent: no more creation
  absl::Status transient_error ABSL_GUARDED_BY(mu);  // the last attempt's, retried
  int waiters ABSL_GUARDED_BY(mu) = 0;
  int busy ABSL_GUARDED_BY(mu) = 0;  // requests running (see Busy)
  // The first `urgent` of `retired` may run threads: torn down even while requests
  // run (Interpreter::MayRunThreads).
  int urgent ABSL_GUARDED_BY(mu) = 0;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  bool closed ABSL_GUARDED_BY(mu) = false;            // the pool is gone: the reaper exits
  int64_t reaper_generation ABSL_GUARDED_BY(mu) = 0;  // the live reaper's
  int in_flight ABSL_GUARDED_BY(mu) = 0;              // teardowns the live reaper has in hand
  PoolStats stats ABSL_GUARDED_BY(mu);
};

namespace {

// How long the factory waits before trying again after a creation that may succeed
// later (a full descriptor table).
constexpr absl::Duration kCreationRetry = absl::Milliseconds(100);
// How long a request waits for the factory's retries before it fails.
constexpr absl::Duration kTransientWait = absl::Seconds(1);

// Descriptors the factory keeps open (on /dev/null) and closes just before it creates
// an interpreter: on 3.11 a Py_NewInterpreter that fails exits the process, and the
// code of running executions can open descriptors while it reads stdlib files (it
// releases the GIL then). Held between creations, so the code cannot take those
// descriptors; no creation without it.
class DescriptorReserve {
 public:
  static constexpr int kSize = 64;
  ~DescriptorReserve() { Release(); }
  bool Refill() {
    while (count_ < kSize) {
      int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) return false;
      fds_[count_++] = fd;
    }
    return true;
  }
  void Release() {
    while (count_ > 0) close(fds_[--count_]);
  }

 private:
  int fds_[kSize];
  int count_ = 0;
};

// This thread's own main-interpreter thread state: creating and ending interpreters
// needs the GIL held with some thread state current. Made and deleted on the thread.
class HomeThreadState {
 public:
  HomeThreadState() : tstate_(PyThreadState_New((*Runtime::Get())->main_interpreter())) {
    PYHOST_CHECK(tstate_ != nullptr, "PyThreadState_New failed (out of memory)");
  }
  ~HomeThreadState() {
    PyEval_RestoreThread(tstate_);
    PyThreadState_Clear(tstate_);
    PyThreadState_DeleteCurrent();
  }
  void Enter() { PyEval_RestoreThread(tstate_); }
  void Leave() { PyEval_SaveThread(); }

 private:
  PyThreadState* const tstate_;
};

}  // namespace

InterpreterLease& InterpreterLease::operator=(InterpreterLease&& other) {
  if (this != &other) {
    Return();
    pool_ = std::move(other.pool_);
    interpreter_ = std::move(other.interpreter_);
    quarantined_ = std::exchange(other.quarantined_, false);
  }
  return *this;
}

InterpreterLease::~InterpreterLease() { Return(); }

void InterpreterLease::Quarantine() {
  if (quarantined_ || !interpreter_) return;
  quarantined_ = true;
  absl::MutexLock lock(&pool_->mu);
  ++pool_->stats.quarantined;
  ++pool_->stats.quarantined_total;
}

void InterpreterLease::Return() {
  if (!interpreter_) return;
  if (quarantined_) {
    absl::MutexLock lock(&pool_->mu);
    --pool_->stats.quarantined;
  }
  quarantined_ = false;
  InterpreterPool::Retire(*pool_, std::move(interpreter_));
}

InterpreterPool::InterpreterPool(std::shared_ptr<State> state) : state_(std::move(state)) {}

absl::StatusOr<std::unique_ptr<InterpreterPool>> InterpreterPool::Start(PoolOptions options) {
  if (options.size < 1) return absl::InvalidArgumentError("pool size must be at least 1");
  absl::StatusOr<Runtime*> runtime = Runtime::Get();
  if (!runtime.ok()) return runtime.status();
  auto state = std::make_shared<State>(std::move(options));
  std::unique_ptr<InterpreterPool> pool(new InterpreterPool(state));
  pool->factory_ = std::thread(FactoryLoop, state);
  std::thread(ReaperLoop, state, int64_t{0}).detach();
  absl::Status error;
  {
    absl::MutexLock lock(&state->mu);
    auto first = [&state]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) {
      return !state->ready.empty() || !state->creation_error.ok() || !state->transient_error.ok();
    };
    state->mu.Await(absl::Condition(&first));
    error = state->ready.empty()
                ? (state->creation_error.ok() ? state->transient_error : state->creation_error)
                : absl::OkStatus();
  }
  if (!error.ok()) return error;  // ~InterpreterPool stops the threads
  return pool;
}

InterpreterPool::~InterpreterPool() {
  {
    absl::MutexLock lock(&state_->mu);
    state_->stopping = true;
  }
  factory_.join();
  absl::MutexLock lock(&state_->mu);
  // Never-used interpreters are torn down like used ones (they ran no code: quickly).
  for (auto& interpreter : state_->ready) state_->retired.push_back(std::move(interpreter));
  state_->ready.clear();
  State* state = state_.get();
  auto done = [state]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) {
    return state->retired.empty() && state->in_flight == 0;
  };
  state_->mu.Await(absl::Condition(&done));
  state_->closed = true;
}

absl::StatusOr<InterpreterLease> InterpreterPool::Acquire(absl::Time deadline) {
  State* state = state_.get();
  absl::MutexLock lock(&state->mu);
  ++state->waiters;
  auto available = [state]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) {
    return !state->ready.empty() || !state->creation_error.ok() || !state->transient_error.ok() ||
           state->stopping;
  };
  if (!state->mu.AwaitWithDeadline(absl::Condition(&available), deadline)) {
    --state->waiters;
    return absl::DeadlineExceededError(
        "no interpreter was ready before the deadline (creating one needs the GIL, which code "
        "stuck in C may hold)");
  }
  if (state->ready.empty() && state->creation_error.ok() && !state->stopping) {
    // The factory failed but retries (descriptors may be closed meanwhile): give it
    // a few attempts before the request fails.
    auto created = [state]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) {
      return !state->ready.empty() || !state->creation_error.ok() || state->stopping;
    };
    state->mu.AwaitWithDeadline(absl::Condition(&created),
                                std::min(deadline, absl::Now() + kTransientWait));
  }
  --state->waiters;
  if (!state->ready.empty()) {
    std::unique_ptr<Interpreter> interpreter = std::move(state->ready.front());
    state->ready.pop_front();
    return InterpreterLease(state_, std::move(interpreter));
  }
  if (state->stopping) return absl::FailedPreconditionError("the interpreter pool is stopping");
  const absl::Status& cause =
      state->creation_error.ok() ? state->transient_error : state->creation_error;
  return absl::UnavailableError(absl::StrCat("no interpreter can be created: ", cause.message()));
}

InterpreterPool::Busy::Busy(InterpreterPool& pool) : pool_(pool) {
  absl::MutexLock lock(&pool_.state_->mu);
  ++pool_.state_->busy;
}

InterpreterPool::Busy::~Busy() {
  absl::MutexLock lock(&pool_.state_->mu);
  --pool_.state_->busy;
}

void InterpreterPool::Retire(State& state, std::unique_ptr<Interpreter> interpreter) {
  // Torn down at once, not when requests are idle: threads would keep the GIL, and
  // descriptors it holds would keep the next executions short of them.
  const bool urgent = interpreter->MayRunThreads() || Sandbox::DescriptorsScarce();
  absl::MutexLock lock(&state.mu);
  if (urgent) {
    state.retired.push_front(std::move(interpreter));
    ++state.urgent;
  } else {
    state.retired.push_back(std::move(interpreter));
  }
}

PoolStats InterpreterPool::stats() {
  absl::MutexLock lock(&state_->mu);
  PoolStats stats = state_->stats;
  stats.ready = static_cast<int>(state_->ready.size());
  stats.retired = static_cast<int>(state_->retired.size());
  return stats;
}

void InterpreterPool::FactoryLoop(std::shared_ptr<State> state) {
  HomeThreadState home;
  DescriptorReserve reserve;
  reserve.Refill();
  const size_t target = static_cast<size_t>(state->options.size);
  absl::Time retry_at = absl::InfinitePast();
  for (;;) {
    {
      absl::MutexLock lock(&state->mu);
      auto has_work = [&state, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) {
        if (state->stopping) return true;
        if (!state->creation_error.ok() || state->ready.size() >= target) return false;
        // Urgent work goes ahead even while requests run: a request waits for one.
        return state->busy == 0 || (state->waiters > 0 && state->ready.empty());
      };
      if (retry_at > absl::Now()) {
        auto stopping = [&state]()
                            ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) { return state->stopping; };
        state->mu.AwaitWithDeadline(absl::Condition(&stopping), retry_at);
      }
      state->mu.Await(absl::Condition(&has_work));
      if (state->stopping) return;
    }
    absl::StatusOr<std::unique_ptr<Interpreter>> created = absl::ResourceExhaustedError(
        "the process's descriptor table is full: no interpreter is created until "
        "descriptors are closed");
    if (reserve.Refill()) {
      reserve.Release();
      home.Enter();
      created = Interpreter::Create(state->options.interpreter);
      home.Leave();
      reserve.Refill();  // held until the next creation
    }
    absl::MutexLock lock(&state->mu);
    if (created.ok()) {
      state->ready.push_back(*std::move(created));
      ++state->stats.created;
      state->transient_error = absl::OkStatus();
    } else if (state->stats.created > 0 || absl::IsResourceExhausted(created.status())) {
      // A pool that once created interpreters can again: the cause (descriptors,
      // memory) passes. Only a bad configuration (a prewarm module) is final.
      state->transient_error = created.status();
      retry_at = absl::Now() + kCreationRetry;
    } else {
      state->creation_error = created.status();
    }
  }
}

void InterpreterPool::ReaperLoop(std::shared_ptr<State> state, int64_t generation) {
  HomeThreadState home;
  const size_t target = static_cast<size_t>(state->options.size);
  const PoolOptions& options = state->options;
  for (;;) {
    std::unique_ptr<Interpreter> interpreter;
    {
      absl::MutexLock lock(&state->mu);
      auto has_work = [&state, target, generation]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) {
        if (generation != state->reaper_generation || state->closed) return true;
        if (state->retired.empty()) return false;
        // Used interpreters must not pile up (each holds its memory).
        return state->busy == 0 || state->stopping || state->retired.size() > target ||
               state->urgent > 0;
      };
      state->mu.Await(absl::Condition(&has_work));
      if (generation != state->reaper_generation || state->closed) return;
      interpreter = std::move(state->retired.front());
      state->retired.pop_front();
      if (state->urgent > 0) --state->urgent;
      ++state->in_flight;
    }
    Watchdog::Watch abandon =
        Watchdog::Global().Arm(absl::Now() + options.abandon_after, absl::ZeroDuration(),
                               [&state, generation] { state->Abandon(state, generation); });
    const int threads_left = interpreter->Quiesce(options.thread_grace);
    home.Enter();
    if (threads_left > 0) {
      Interpreter::KeepForever(std::move(interpreter));  // Py_EndInterpreter would abort
    } else {
      interpreter.reset();
    }
    home.Leave();
    abandon.Drop();
    absl::MutexLock lock(&state->mu);
    ++(threads_left > 0 ? state->stats.leaked : state->stats.destroyed);
    if (generation != state->reaper_generation) return;  // abandoned meanwhile
    --state->in_flight;
  }
}

}  // namespace pyhost

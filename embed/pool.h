// The warm pool: never-used interpreters, created and prewarmed ahead of need by a
// factory thread, and used ones torn down by a reaper thread, so that no
// Py_NewInterpreter or Py_EndInterpreter runs on the request path while the pool is
// not drained.
//
//   PoolOptions options;
//   options.size = 4;
//   options.interpreter.prewarm_modules = {"json"};
//   absl::StatusOr<std::unique_ptr<InterpreterPool>> pool =
//       InterpreterPool::Start(std::move(options));
//   absl::StatusOr<InterpreterLease> lease = (*pool)->Acquire();  // waits if drained
//   { ThreadStateScope scope(lease->get().state()); ... }
//   // ~InterpreterLease hands the interpreter back, to be torn down off the path
//
// An interpreter is handed out once, never shared and never reused.
// Why two threads: teardown (Interpreter::Quiesce) lets none of the code's Python
// run, but C code can still block it (a thread that never returns from a C call
// holds it back, a dealloc that waits); the factory must never wait for that. A
// reaper still busy at `abandon_after` is given up on (it may finish later, or never)
// and a new one takes over.
//
// Thread-safety: all methods are thread-safe. The factory and the reaper hold the GIL
// while they create or tear down one interpreter (~5-20 ms). On 3.11 the GIL is shared
// and a thread of another interpreter cannot make them drop it (the drop request is
// per interpreter), so they work only while no request is running (see Busy), unless
// a request is waiting for an interpreter or used ones pile up.
#ifndef PYHOST_EMBED_POOL_H_
#define PYHOST_EMBED_POOL_H_

#include <cstdint>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "embed/interpreter.h"
#include "pyhost/host.h"  // PoolStats

namespace pyhost {

struct PoolOptions {
  int size = 4;  // interpreters kept ready (at least 1)
  InterpreterConfig interpreter;
  // Teardown: threads the code left get this long to stop; a teardown still running
  // at `abandon_after` is given up on.
  absl::Duration thread_grace = absl::Milliseconds(200);
  absl::Duration abandon_after = absl::Seconds(3);
};

class InterpreterPool;
// What the pool's threads and its leases share; an abandoned reaper and a lease that
// outlives the pool keep it alive.
struct PoolState;

// Exclusive use of one interpreter; hands it back to the pool when destroyed.
class InterpreterLease {
 public:
  InterpreterLease() = default;
  InterpreterLease(InterpreterLease&&) = default;
  InterpreterLease& operator=(InterpreterLease&& other);
  ~InterpreterLease();

  // The code in it is stuck in C past its deadline: from now on the interpreter is
  // counted as quarantined (PoolStats) until the lease hands it back, to be torn down.
  // It was never going to be reused; the lease may outlive the pool.
  void Quarantine();

  Interpreter& get() const { return *interpreter_; }
  Interpreter* operator->() const { return interpreter_.get(); }
  explicit operator bool() const { return interpreter_ != nullptr; }

 private:
  friend class InterpreterPool;
  InterpreterLease(std::shared_ptr<PoolState> pool, std::unique_ptr<Interpreter> interpreter)
      : pool_(std::move(pool)), interpreter_(std::move(interpreter)) {}
  void Return();

  std::shared_ptr<PoolState> pool_;  // kept alive by the lease
  std::unique_ptr<Interpreter> interpreter_;
  bool quarantined_ = false;
};

class InterpreterPool {
 public:
  using State = PoolState;

  // Starts the factory and waits for the first interpreter, so that a bad
  // configuration (a prewarm module that does not import) is reported here.
  static absl::StatusOr<std::unique_ptr<InterpreterPool>> Start(PoolOptions options);
  // Tears down every interpreter it holds. Leases must all have been returned.
  ~InterpreterPool();

  // A never-used interpreter; waits for one when the pool is drained, until
  // `deadline` (DeadlineExceeded). Fails otherwise only if the factory can no longer
  // create interpreters.
  absl::StatusOr<InterpreterLease> Acquire(absl::Time deadline = absl::InfiniteFuture());

  PoolStats stats();

  // Marks a request as running (any isolation, resident ones too) for as long as it
  // lives, so the factory and the reaper do not take the GIL from it.
  class Busy {
   public:
    explicit Busy(InterpreterPool& pool);
    ~Busy();
    Busy(const Busy&) = delete;
    Busy& operator=(const Busy&) = delete;

   private:
    InterpreterPool& pool_;
  };

 private:
  friend class InterpreterLease;
  friend struct PoolState;
  explicit InterpreterPool(std::shared_ptr<State> state);
  static void Retire(State& state, std::unique_ptr<Interpreter> interpreter);
  static void FactoryLoop(std::shared_ptr<State> state);
  static void ReaperLoop(std::shared_ptr<State> state, int64_t generation);

  std::shared_ptr<State> state_;
  std::thread factory_;
};

}  // namespace pyhost

#endif  // PYHOST_EMBED_POOL_H_

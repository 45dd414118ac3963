// The warm pool: never-used interpreters, created and prewarmed ahead of need, and
// used ones destroyed, all on one background thread (the factory), so that no
// Py_NewInterpreter or Py_EndInterpreter runs on the request path while the pool is
// not drained.
//
//   absl::StatusOr<std::unique_ptr<InterpreterPool>> pool =
//       InterpreterPool::Start({.size = 4, .interpreter = {.prewarm_modules = {"json"}}});
//   absl::StatusOr<InterpreterLease> lease = (*pool)->Acquire();  // waits if drained
//   { ThreadStateScope scope(lease->get().state()); ... }
//   // ~InterpreterLease hands the interpreter back, to be destroyed off the path
//
// An interpreter is handed out once, never shared and never reused.
// Why one thread does both: an interpreter is ended with the thread state that
// Py_NewInterpreter made, which belongs to the thread that made it.
//
// Thread-safety: all methods are thread-safe. The factory holds the GIL while it
// creates or destroys one interpreter (~5-20 ms). On 3.11 the GIL is shared and a
// thread of another interpreter cannot make the factory drop it (the drop request
// is per interpreter), so the factory works only while no request is running
// (see Busy), unless a request is waiting for an interpreter or used ones pile up.
#ifndef PYHOST_EMBED_POOL_H_
#define PYHOST_EMBED_POOL_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "embed/interpreter.h"

namespace pyhost {

struct PoolOptions {
  int size = 4;  // interpreters kept ready (at least 1)
  InterpreterConfig interpreter;
};

struct PoolStats {
  int64_t created = 0;
  int64_t destroyed = 0;
  int64_t leaked = 0;  // ended with threads still running: kept, never destroyed
  int ready = 0;
  int retired = 0;     // waiting to be destroyed
};

class InterpreterPool;

// Exclusive use of one interpreter; hands it back to the pool when destroyed.
class InterpreterLease {
 public:
  InterpreterLease() = default;
  InterpreterLease(InterpreterLease&&) = default;
  InterpreterLease& operator=(InterpreterLease&& other);
  ~InterpreterLease();

  Interpreter& get() const { return *interpreter_; }
  Interpreter* operator->() const { return interpreter_.get(); }
  explicit operator bool() const { return interpreter_ != nullptr; }

 private:
  friend class InterpreterPool;
  InterpreterLease(InterpreterPool* pool, std::unique_ptr<Interpreter> interpreter)
      : pool_(pool), interpreter_(std::move(interpreter)) {}

  InterpreterPool* pool_ = nullptr;
  std::unique_ptr<Interpreter> interpreter_;
};

class InterpreterPool {
 public:
  // Starts the factory and waits for the first interpreter, so that a bad
  // configuration (a prewarm module that does not import) is reported here.
  static absl::StatusOr<std::unique_ptr<InterpreterPool>> Start(PoolOptions options);
  // Destroys every interpreter it holds. Leases must all have been returned.
  ~InterpreterPool();

  // A never-used interpreter; waits for one when the pool is drained. Fails only if
  // the factory can no longer create interpreters.
  absl::StatusOr<InterpreterLease> Acquire() ABSL_LOCKS_EXCLUDED(mu_);

  PoolStats stats() ABSL_LOCKS_EXCLUDED(mu_);

  // Marks a request as running (any isolation, resident ones too) for as long as it
  // lives, so the factory does not take the GIL from it to build or end interpreters.
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
  explicit InterpreterPool(PoolOptions options);
  void Retire(std::unique_ptr<Interpreter> interpreter) ABSL_LOCKS_EXCLUDED(mu_);
  void FactoryLoop();
  void Destroy(std::unique_ptr<Interpreter> interpreter);

  const PoolOptions options_;
  absl::Mutex mu_;
  std::deque<std::unique_ptr<Interpreter>> ready_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Interpreter>> retired_ ABSL_GUARDED_BY(mu_);
  absl::Status creation_error_ ABSL_GUARDED_BY(mu_);
  int waiters_ ABSL_GUARDED_BY(mu_) = 0;
  int busy_ ABSL_GUARDED_BY(mu_) = 0;  // requests running (see Busy)
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  PoolStats stats_ ABSL_GUARDED_BY(mu_);
  std::thread factory_;
};

}  // namespace pyhost

#endif  // PYHOST_EMBED_POOL_H_

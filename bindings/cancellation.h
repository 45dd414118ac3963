// Stopping Python code that runs on another thread, from a thread that does not hold
// the GIL (a signal thread, the watchdog).
//
//   Cancellation cancellation(Cancellation::kInterrupt);  // one per execution
//   {
//     Cancellation::UserCode running(&cancellation);      // GIL held, around the code
//     PyEval_EvalCode(code, globals, globals);
//   }
//   cancellation.Cancel();  // any thread, no GIL: KeyboardInterrupt in the code
//
// Cancel() raises the exception at the code's next bytecode boundary, and wakes it
// from pyhost's time.sleep (hardened into every interpreter): at once when code runs
// under the cancellation, else as soon as some starts. Two kinds:
//   kInterrupt  KeyboardInterrupt, as Ctrl-C in python3: code may catch it and go on;
//               each later Cancel() raises it again.
//   kStop       ExecutionStopped (a BaseException): when code catches it, it is raised
//               again at the thread's next bytecode boundary, so no Python code can
//               keep running (at most the handler's first instructions do).
// The exception never lands in pyhost's own code around the user's: UserCode takes
// back what was not raised before it ends.
// What it cannot stop: code stuck in C (`sum(range(10**11))`) reaches no bytecode
// boundary until it returns, and blocking calls other than time.sleep wake only when
// they return (docs/security.md).
//
// Thread-safety: Cancel() and cancelled() are thread-safe and need no GIL. A UserCode
// lives on one thread, GIL held with the code's thread state current, and is nested
// in no other UserCode of the same Cancellation.
#ifndef PYHOST_BINDINGS_CANCELLATION_H_
#define PYHOST_BINDINGS_CANCELLATION_H_

#include <Python.h>

#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "pyhost/outcome.h"

namespace pyhost {

class Cancellation {
 public:
  enum Kind { kInterrupt, kStop };

  explicit Cancellation(Kind kind);
  Cancellation(const Cancellation&) = delete;
  Cancellation& operator=(const Cancellation&) = delete;

  void Cancel() ABSL_LOCKS_EXCLUDED(mu_);
  // Stops the code for good, whatever the kind (ExecutionStopped, raised again each
  // time it is caught), because of `reason` (a limit: kTimeout, kCpuLimit...), which
  // `message` describes for the answer. The first Stop's reason is kept.
  void Stop(Outcome reason, std::string message) ABSL_LOCKS_EXCLUDED(mu_);
  bool cancelled() const ABSL_LOCKS_EXCLUDED(mu_);
  // After a Stop: makes sure the running code's interpreter looks at the exception if
  // it is still pending (never delivers a new one). Any thread.
  void Resignal() ABSL_LOCKS_EXCLUDED(mu_);
  // What the first Stop() gave, if it came.
  struct StopReason {
    Outcome outcome;
    std::string message;
  };
  std::optional<StopReason> stop_reason() const ABSL_LOCKS_EXCLUDED(mu_);

  class UserCode {
   public:
    // null: does nothing. `now`: a Cancel() that came before is delivered at once
    // (false for code pyhost runs after the user's was stopped, e.g. describing the
    // exception that stopped it: only a later Cancel() interrupts that).
    explicit UserCode(Cancellation* cancellation, bool now = true);
    ~UserCode();
    UserCode(const UserCode&) = delete;
    UserCode& operator=(const UserCode&) = delete;

   private:
    Cancellation* const cancellation_;
  };

 private:
  void DeliverLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Kind kind_;
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<StopReason> stop_ ABSL_GUARDED_BY(mu_);
  PyThreadState* running_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// The cancellations of the executions running now, so that all of them can be
// cancelled at once (Host::InterruptAll). Thread-safe; needs no GIL.
//
//   CancellationSet running;
//   Cancellation cancellation;
//   CancellationSet::Member member(running, cancellation);  // for the execution
//   running.CancelAll();  // any thread
class CancellationSet {
 public:
  class Member {
   public:
    Member(CancellationSet& set, Cancellation& cancellation);
    ~Member();
    Member(const Member&) = delete;
    Member& operator=(const Member&) = delete;

   private:
    CancellationSet& set_;
    Cancellation& cancellation_;
  };
  // Cancels every member now; later members are not affected.
  void CancelAll() ABSL_LOCKS_EXCLUDED(mu_);
  int size() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  absl::flat_hash_set<Cancellation*> members_ ABSL_GUARDED_BY(mu_);
};

// Readies pyhost.ExecutionStopped (a static type, shared by every interpreter on 3.11)
// and sets aside the references that let Cancel() run without the GIL. Once, at
// start-up, GIL held in the main interpreter.
absl::Status ReadyCancellation();

// Stops the thread running with `tstate` (one of the current interpreter's, e.g. a
// thread the code started; the current one too): ExecutionStopped at its next
// bytecode boundary, again each time it is caught, and a wake-up from time.sleep.
// GIL held.
void StopThread(PyThreadState* tstate);

// For a thread that will not stop (it catches ExecutionStopped in a loop): the next
// line of Python it runs, or the next function it calls, releases the GIL and blocks
// the thread for good. Its interpreter must then be leaked, never ended. Not for the
// current thread. GIL held.
void ParkThread(PyThreadState* tstate);

// Whether an exception of `type` is what a Cancellation raises: KeyboardInterrupt
// (kInterrupt) or pyhost.ExecutionStopped (kStop), or a subclass. GIL held.
bool IsCancellationException(PyObject* type);

// Takes back an asynchronous exception pending for the current thread state, so it
// cannot land in what runs next (pyhost's own code). GIL held.
void DropPendingInterrupt();

// Raises the exception a Cancellation left pending for the current thread, as the
// eval loop would at its next bytecode boundary: for waits in C that check between
// slices (guards/interruptible_waits.h). True if there was one. GIL held.
bool RaisePendingInterrupt();

// pyhost's time.sleep(seconds): python3's argument checks and errors, and woken early
// when an asynchronous exception is pending for the sleeping thread (it is raised
// as the call returns). GIL held.
PyObject* InterruptibleSleep(PyObject* seconds);

}  // namespace pyhost

#endif  // PYHOST_BINDINGS_CANCELLATION_H_

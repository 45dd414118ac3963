// Stopping Python code that runs on another thread, from a thread that does not hold
// the GIL (a signal thread, the watchdog).
//
//   Cancellation cancellation;                          // one per execution
//   {
//     Cancellation::UserCode running(&cancellation);    // GIL held, around the code
//     PyEval_EvalCode(code, globals, globals);
//   }
//   cancellation.Cancel();  // any thread, no GIL: KeyboardInterrupt in the code
//
// Cancel() raises the exception at the code's next bytecode boundary, and wakes it
// from pyhost's time.sleep (hardened into every interpreter): at once when code runs
// under the cancellation, else as soon as some starts. Code may catch it; every later
// Cancel() raises it again (up to kDeliveries times per UserCode). The exception never
// lands in pyhost's own code around the user's: UserCode takes back what was not
// raised before it ends.
// What it cannot stop: code stuck in C (`sum(range(10**11))`) reaches no bytecode
// boundary until it returns, and blocking calls other than time.sleep wake only when
// they return (docs/security.md).
//
// Thread-safety: Cancel() and cancelled() are thread-safe and need no GIL. A UserCode
// lives on one thread, GIL held with the code's thread state current, and is nested
// in no other UserCode of the same Cancellation.
#ifndef PYHOST_EMBED_CANCELLATION_H_
#define PYHOST_EMBED_CANCELLATION_H_

#include <Python.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"

namespace pyhost {

class Cancellation {
 public:
  // How many times one UserCode can be interrupted (references are set aside with
  // the GIL held, so that Cancel() needs none).
  static constexpr int kDeliveries = 32;

  // `exception_type`: a built-in exception type (static: it outlives everything);
  // null means KeyboardInterrupt.
  explicit Cancellation(PyObject* exception_type = nullptr);
  Cancellation(const Cancellation&) = delete;
  Cancellation& operator=(const Cancellation&) = delete;

  void Cancel() ABSL_LOCKS_EXCLUDED(mu_);
  bool cancelled() const ABSL_LOCKS_EXCLUDED(mu_);

  class UserCode {
   public:
    explicit UserCode(Cancellation* cancellation);  // null: does nothing
    ~UserCode();
    UserCode(const UserCode&) = delete;
    UserCode& operator=(const UserCode&) = delete;

   private:
    Cancellation* const cancellation_;
  };

 private:
  void DeliverLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  PyObject* const exception_type_;
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  PyThreadState* running_ ABSL_GUARDED_BY(mu_) = nullptr;
  int banked_ ABSL_GUARDED_BY(mu_) = 0;  // references to exception_type_ set aside
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

// Raises `exception_type` in the thread running with `tstate` (a thread of the
// current interpreter, e.g. one the code started) and wakes it from time.sleep.
// GIL held.
void RaiseInThread(PyThreadState* tstate, PyObject* exception_type);

// pyhost's time.sleep(seconds): python3's argument checks and errors, and woken early
// when an asynchronous exception is pending for the sleeping thread (it is raised
// as the call returns). GIL held.
PyObject* InterruptibleSleep(PyObject* seconds);

}  // namespace pyhost

#endif  // PYHOST_EMBED_CANCELLATION_H_

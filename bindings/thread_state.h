// Entering an interpreter on the calling thread: thread state + GIL, as RAII.
//
//   {
//     pyhost::ThreadStateScope scope(interpreter_state);  // new thread state, GIL held
//     ... C API calls in that interpreter ...
//   }                                                     // deleted, GIL released
//
// Why on the caller's thread: a hand-off to a per-interpreter thread costs ~17 us
// (docs/architecture.md, "Pitfalls" 1), more than a whole tool call. The price is that code inside
// uses the C API for errors and the GIL, never pybind11's GIL helpers.
//
// Preconditions (checked): the calling thread has no current thread state, i.e. it
// is not already inside Python; a thread is in at most one interpreter at a time.
// Not for: calling from Python code (a host callback) back into another interpreter.
#ifndef PYHOST_BINDINGS_THREAD_STATE_H_
#define PYHOST_BINDINGS_THREAD_STATE_H_

#include <Python.h>

namespace pyhost {

// The current thread state, or nullptr; never fails. On 3.11 this is the GIL holder's
// (the slot is process-wide), so it tells which thread state the CALLER runs with
// only while the caller holds the GIL.
PyThreadState* CurrentThreadStateOrNull();

// Whether the calling thread is inside a ThreadStateScope (a per-thread fact, unlike
// CurrentThreadStateOrNull on 3.11).
bool InsideThreadStateScope();

class ThreadStateScope {
 public:
  // Creates a thread state for `interp` on this thread and takes the GIL with it; the
  // destructor clears and deletes it (on this same thread, as CPython wants).
  explicit ThreadStateScope(PyInterpreterState* interp);

  struct Borrow {};
  // Takes the GIL with a thread state that outlives the scope (made for this thread
  // earlier, see Interpreter::ThreadStateForThisThread); the destructor only
  // releases the GIL.
  ThreadStateScope(PyThreadState* tstate, Borrow);

  ~ThreadStateScope();
  ThreadStateScope(const ThreadStateScope&) = delete;
  ThreadStateScope& operator=(const ThreadStateScope&) = delete;

  PyThreadState* tstate() const { return tstate_; }

 private:
  void Enter();

  PyThreadState* tstate_;
  bool owned_;
  PyThreadState* previous_gilstate_ = nullptr;
};

}  // namespace pyhost

#endif  // PYHOST_BINDINGS_THREAD_STATE_H_

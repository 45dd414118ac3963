#include "bindings/thread_state.h"

#include "bindings/cancellation.h"
#include "bindings/check.h"
#include "bindings/gilstate_binding.h"

namespace pyhost {

PyThreadState* CurrentThreadStateOrNull() {
#if PY_VERSION_HEX >= 0x030D0000
  return PyThreadState_GetUnchecked();
#else
  return _PyThreadState_UncheckedGet();
#endif
}

namespace {
thread_local bool t_inside_scope = false;

// What a thread state holds of the code's (async generator hooks, context
// variables, thread-locals, trace and profile functions) is released with the
// thread stopped: finalizers it triggers raise ExecutionStopped at their first
// bytecode instead of running after the answer, outside any cancellation.
void ReleaseCodesState(PyThreadState* tstate) {
  if (tstate->async_gen_finalizer == nullptr && tstate->async_gen_firstiter == nullptr &&
      tstate->dict == nullptr && tstate->context == nullptr && tstate->c_traceobj == nullptr &&
      tstate->c_profileobj == nullptr) {
    return;
  }
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  StopThread(tstate);
  PyEval_SetTrace(nullptr, nullptr);
  PyEval_SetProfile(nullptr, nullptr);
  Py_CLEAR(tstate->async_gen_finalizer);
  Py_CLEAR(tstate->async_gen_firstiter);
  Py_CLEAR(tstate->dict);
  Py_CLEAR(tstate->context);
  ++tstate->context_ver;
  PyErr_Clear();
  PyErr_Restore(type, value, traceback);
}

}  // namespace

bool InsideThreadStateScope() { return t_inside_scope; }

ThreadStateScope::ThreadStateScope(PyInterpreterState* interp) : tstate_(nullptr), owned_(true) {
  PYHOST_CHECK(!t_inside_scope, "this thread is already inside an interpreter");
  tstate_ = PyThreadState_New(interp);  // needs no GIL (documented)
  PYHOST_CHECK(tstate_ != nullptr, "PyThreadState_New failed (out of memory)");
  Enter();
}

ThreadStateScope::ThreadStateScope(PyThreadState* tstate, Borrow) : tstate_(tstate), owned_(false) {
  PYHOST_CHECK(!t_inside_scope, "this thread is already inside an interpreter");
  Enter();
}

void ThreadStateScope::Enter() {
  previous_gilstate_ = pyhost_gilstate_bind(tstate_);
  PyEval_RestoreThread(tstate_);
  t_inside_scope = true;
}

ThreadStateScope::~ThreadStateScope() {
  PYHOST_CHECK(CurrentThreadStateOrNull() == tstate_,
               "left an interpreter with another thread state current");
  ReleaseCodesState(tstate_);
  DropPendingInterrupt();  // what was not raised must not reach whatever runs next
  if (owned_) {
    PyThreadState_Clear(tstate_);
    PyThreadState_DeleteCurrent();  // releases the GIL
  } else {
    PyEval_SaveThread();
  }
  pyhost_gilstate_bind(previous_gilstate_);
  t_inside_scope = false;
}

}  // namespace pyhost

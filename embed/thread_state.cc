#include "embed/thread_state.h"

#include "embed/check.h"
#include "embed/gilstate_binding.h"

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
}  // namespace

bool InsideThreadStateScope() { return t_inside_scope; }

ThreadStateScope::ThreadStateScope(PyInterpreterState* interp)
    : tstate_(nullptr), owned_(true) {
  PYHOST_CHECK(!t_inside_scope, "this thread is already inside an interpreter");
  tstate_ = PyThreadState_New(interp);  // needs no GIL (documented)
  PYHOST_CHECK(tstate_ != nullptr, "PyThreadState_New failed (out of memory)");
  Enter();
}

ThreadStateScope::ThreadStateScope(PyThreadState* tstate, Borrow)
    : tstate_(tstate), owned_(false) {
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

/* Binds a thread state as "this OS thread's" for the PyGILState API.
 *
 * PyGILState_Ensure (used by stdlib C modules for callbacks: sqlite3 user functions,
 * ssl SNI callbacks, ctypes) trusts a per-thread slot holding the first thread state
 * ever created on the thread. pyhost runs many interpreters on one caller thread, so
 * that slot would name the wrong interpreter (deadlock) or a deleted thread state
 * (crash). Pointing the slot at the running thread state for the time it runs keeps
 * those callbacks working. CPython has no public API for it; the slot lives in
 * _PyRuntime, whose layout is read from the headers of the Python we build against.
 * C, not C++: the internal headers use C11 atomics. */
#define Py_BUILD_CORE 1
#include "bindings/gilstate_binding.h"

#include <Python.h>

#include "internal/pycore_runtime.h"

PyThreadState* pyhost_gilstate_bind(PyThreadState* tstate) {
#if PY_VERSION_HEX >= 0x030C0000
  Py_tss_t* key = &_PyRuntime.autoTSSkey;
#else
  Py_tss_t* key = &_PyRuntime.gilstate.autoTSSkey;
#endif
  PyThreadState* previous = (PyThreadState*)PyThread_tss_get(key);
  PyThread_tss_set(key, tstate);
  return previous;
}

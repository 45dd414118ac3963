/* CPython internals pyhost relies on, for 3.11.
 *
 * Asynchronous exceptions offered without the GIL.
 * PyThreadState_SetAsyncExc needs the GIL, and on 3.11 a thread waiting for the GIL
 * cannot make a holder in another interpreter drop it (the drop request is per
 * interpreter), so a watchdog or a signal thread could wait forever to stop a loop.
 * CPython's own eval loop reads tstate->async_exc when its interpreter's eval breaker
 * is set (ceval.c, eval_frame_handle_pending), and _PyEval_SignalAsyncExc sets that
 * breaker with plain stores: both can be done from any thread. The pointer is
 * published with a compare-and-swap, so an exception already pending (pyhost's or the
 * code's own) is never overwritten.
 * C, not C++: the internal headers use C11 atomics. */
#define Py_BUILD_CORE 1
#include "bindings/cpython_internals.h"

#include <Python.h>

#include "internal/pycore_ceval.h"
#include "internal/pycore_interp.h"
#include "internal/pycore_pystate.h"

#if PY_VERSION_HEX >= 0x030C0000
#error "cpython_internals.c reads 3.11's eval-breaker layout: port it to this Python"
#endif

int pyhost_async_exc_offer(PyThreadState* tstate, PyObject* exception_type) {
  PyObject* expected = NULL;
  int handed_over = __atomic_compare_exchange_n(&tstate->async_exc, &expected, exception_type, 0,
                                                __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  /* Signal in both cases: the holder may have cleared the interpreter's flag after
   * consuming an earlier exception while this one was being published. */
  _PyEval_SignalAsyncExc(tstate->interp);
  return handed_over;
}

PyObject* pyhost_async_exc_take_back(PyThreadState* tstate) {
  PyObject* pending = __atomic_exchange_n(&tstate->async_exc, NULL, __ATOMIC_SEQ_CST);
  if (pending == NULL) return NULL;
  /* ceval.c's UNSIGNAL_ASYNC_EXC: a request left set would send every later bytecode
   * of this interpreter through the slow path. */
  PyInterpreterState* interp = tstate->interp;
  struct _ceval_runtime_state* ceval = &interp->runtime->ceval;
  struct _ceval_state* ceval2 = &interp->ceval;
  ceval2->pending.async_exc = 0;
  _Py_atomic_store_relaxed(
      &ceval2->eval_breaker,
      _Py_atomic_load_relaxed(&ceval2->gil_drop_request) |
          (_Py_atomic_load_relaxed(&ceval->signals_pending) && _Py_ThreadCanHandleSignals(interp)) |
          (_Py_atomic_load_relaxed(&ceval2->pending.calls_to_do) &&
           _Py_ThreadCanHandlePendingCalls()) |
          ceval2->pending.async_exc);
  return pending;
}

void pyhost_clear_audit_hooks(PyInterpreterState* interp) { Py_CLEAR(interp->audit_hooks); }

void pyhost_inherit_int_max_str_digits(PyInterpreterState* interp) {
  interp->int_max_str_digits = PyInterpreterState_Main()->int_max_str_digits;
}

long pyhost_running_threads_hint(PyInterpreterState* interp) {
  return *(volatile long*)&interp->threads.count;
}

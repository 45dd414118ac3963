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

#include <pthread.h>

#include "internal/pycore_ceval.h"
#include "internal/pycore_interp.h"
#include "internal/pycore_pystate.h"

#if PY_VERSION_HEX >= 0x030C0000
#error "cpython_internals.c reads 3.11's eval-breaker layout: port it to this Python"
#endif

/* ceval.c's COMPUTE_EVAL_BREAKER: whether the eval loop must leave its fast path. */
static void ComputeEvalBreaker(PyInterpreterState* interp) {
  struct _ceval_state* ceval2 = &interp->ceval;
  int signals = _Py_atomic_load_relaxed(&interp->runtime->ceval.signals_pending) &&
                _Py_ThreadCanHandleSignals(interp);
  int calls =
      _Py_atomic_load_relaxed(&ceval2->pending.calls_to_do) && _Py_ThreadCanHandlePendingCalls();
  _Py_atomic_store_relaxed(&ceval2->eval_breaker,
                           _Py_atomic_load_relaxed(&ceval2->gil_drop_request) | signals | calls |
                               ceval2->pending.async_exc);
}

int pyhost_async_exc_offer(PyThreadState* tstate, PyObject* exception_type) {
  PyObject* expected = NULL;
  int handed_over = __atomic_compare_exchange_n(&tstate->async_exc, &expected, exception_type, 0,
                                                __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  /* Signal in both cases: the holder may have cleared the interpreter's flag after
   * consuming an earlier exception while this one was being published. */
  _PyEval_SignalAsyncExc(tstate->interp);
  return handed_over;
}

void pyhost_async_exc_resignal(PyThreadState* tstate) {
  if (__atomic_load_n(&tstate->async_exc, __ATOMIC_SEQ_CST) != NULL) {
    _PyEval_SignalAsyncExc(tstate->interp);
  }
}

PyObject* pyhost_async_exc_take_back(PyThreadState* tstate) {
  PyObject* pending = __atomic_exchange_n(&tstate->async_exc, NULL, __ATOMIC_SEQ_CST);
  if (pending == NULL) return NULL;
  /* ceval.c's UNSIGNAL_ASYNC_EXC: a request left set would send every later bytecode
   * of this interpreter through the slow path. */
  tstate->interp->ceval.pending.async_exc = 0;
  ComputeEvalBreaker(tstate->interp);
  return pending;
}

void pyhost_clear_audit_hooks(PyInterpreterState* interp) { Py_CLEAR(interp->audit_hooks); }

void pyhost_inherit_int_max_str_digits(PyInterpreterState* interp) {
  interp->int_max_str_digits = PyInterpreterState_Main()->int_max_str_digits;
}

long pyhost_running_threads_hint(PyInterpreterState* interp) {
  return *(volatile long*)&interp->threads.count;
}

/* Fair sharing of the GIL between interpreters.
 * A thread waiting for the GIL longer than the switch interval asks for it by setting
 * the drop request of its *own* interpreter (ceval_gil.h, take_gil), which only that
 * interpreter's eval loop reads: a holder looping in another interpreter never sees
 * it. The ticker forwards the request to the holder's interpreter, found by walking
 * the interpreters' thread lists (the holder's thread state is compared, never read:
 * it may be gone) under the runtime's HEAD_LOCK, which also keeps every listed
 * interpreter alive. The holder drops the GIL at its next bytecode boundary and, with
 * a drop request set, waits until another thread has taken it (FORCE_SWITCHING).
 * A forwarded request can outlive the wait it answered (the waiter got the GIL
 * another way meanwhile): a thread of that interpreter would then drop the GIL and
 * wait for a taker that never comes. So the ticker follows up on its request
 * (FollowUp), never taking the GIL itself. */

static PyInterpreterState* g_forwarded_to = NULL; /* the ticker's thread only */
static unsigned long g_forwarded_at = 0;          /* gil->switch_number then */

static int Listed(PyInterpreterState* interp) {
  for (PyInterpreterState* i = _PyRuntime.interpreters.head; i != NULL; i = i->next) {
    if (i == interp) return 1;
  }
  return 0;
}

static PyInterpreterState* HolderInterpreter(PyThreadState* holder) {
  for (PyInterpreterState* i = _PyRuntime.interpreters.head; i != NULL; i = i->next) {
    for (PyThreadState* t = i->threads.head; t != NULL; t = t->next) {
      if (t == holder) return i;
    }
  }
  return NULL;
}

/* Follows up the request forwarded last. While the GIL lies free, a thread may be in
 * drop_gil's FORCE_SWITCHING wait for a taker: 3.11 waits there once (an `if`, not a
 * loop), so a broadcast of switch_cond ends it without taking the GIL. Once the GIL
 * has changed hands, a request still set where no thread holds the GIL is taken back
 * (only the flag: eval_breaker is left as it is, so no other reason to break is lost;
 * the next take_gil recomputes it). */
static void FollowUp(struct _gil_runtime_state* gil) {
  const int locked = _Py_atomic_load_relaxed(&gil->locked);
  if (!locked) {
    pthread_mutex_lock(&gil->switch_mutex);
    pthread_cond_broadcast(&gil->switch_cond);
    pthread_mutex_unlock(&gil->switch_mutex);
  }
  pthread_mutex_lock(&gil->mutex); /* switch_number and last_holder change under it */
  const unsigned long switches = gil->switch_number;
  PyThreadState* holder = (PyThreadState*)_Py_atomic_load_relaxed(&gil->last_holder);
  pthread_mutex_unlock(&gil->mutex);
  if (switches == g_forwarded_at) return; /* not reacted yet: keep following */
  PyThread_acquire_lock(_PyRuntime.interpreters.mutex, WAIT_LOCK);
  if (!Listed(g_forwarded_to) ||
      !_Py_atomic_load_relaxed(&g_forwarded_to->ceval.gil_drop_request)) {
    g_forwarded_to = NULL; /* consumed */
  } else if (!(locked && HolderInterpreter(holder) == g_forwarded_to)) {
    _Py_atomic_store_relaxed(&g_forwarded_to->ceval.gil_drop_request, 0); /* left over */
    g_forwarded_to = NULL;
  }
  PyThread_release_lock(_PyRuntime.interpreters.mutex);
}

int pyhost_gil_share_tick(void) {
  struct _gil_runtime_state* gil = &_PyRuntime.ceval.gil;
  if (g_forwarded_to != NULL) {
    FollowUp(gil);
    return 0;
  }
  if (!_Py_atomic_load_relaxed(&gil->locked)) return 0;
  PyThreadState* holder = (PyThreadState*)_Py_atomic_load_relaxed(&gil->last_holder);
  if (holder == NULL) return 0;
  int forwarded = 0;
  PyThread_acquire_lock(_PyRuntime.interpreters.mutex, WAIT_LOCK);
  PyInterpreterState* holder_interp = HolderInterpreter(holder);
  int asked = 0;
  for (PyInterpreterState* i = _PyRuntime.interpreters.head; i != NULL; i = i->next) {
    if (i != holder_interp && _Py_atomic_load_relaxed(&i->ceval.gil_drop_request)) asked = 1;
  }
  if (holder_interp != NULL && asked &&
      !_Py_atomic_load_relaxed(&holder_interp->ceval.gil_drop_request)) {
    g_forwarded_at = gil->switch_number;
    /* ceval_gil.h's SET_GIL_DROP_REQUEST */
    _Py_atomic_store_relaxed(&holder_interp->ceval.gil_drop_request, 1);
    _Py_atomic_store_relaxed(&holder_interp->ceval.eval_breaker, 1);
    g_forwarded_to = holder_interp;
    forwarded = 1;
  }
  PyThread_release_lock(_PyRuntime.interpreters.mutex);
  return forwarded;
}

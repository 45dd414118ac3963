/* What pyhost does with CPython's internal structures (3.11's layout; the .c file
 * refuses to build against another), in one place. See cpython_internals.c. */
#ifndef PYHOST_BINDINGS_CPYTHON_INTERNALS_H_
#define PYHOST_BINDINGS_CPYTHON_INTERNALS_H_

#include <Python.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Makes `exception_type` the pending asynchronous exception of `tstate` if it has
 * none, and asks its interpreter's eval loop to look (it raises at the next bytecode
 * boundary). Needs no GIL. `tstate` must stay alive during the call (the caller's
 * guarantee). Returns 1 if the caller's reference to `exception_type` was handed
 * over (the thread consumes it), 0 if another exception was already pending (the
 * interpreter is asked to look again; the caller keeps its reference). */
int pyhost_async_exc_offer(PyThreadState* tstate, PyObject* exception_type);

/* Asks `tstate`'s interpreter again to look at an asynchronous exception still
 * pending for it (an eval_breaker store racing the offer's may have hidden it). Needs
 * no GIL; `tstate` must stay alive during the call. */
void pyhost_async_exc_resignal(PyThreadState* tstate);

/* Takes back the pending asynchronous exception of the current thread state, if any,
 * and clears its interpreter's request for it. Returns the reference (the caller owns
 * it) or NULL. GIL held, `tstate` current. */
PyObject* pyhost_async_exc_take_back(PyThreadState* tstate);

/* Drops the Python-level audit hooks the code added with sys.addaudithook (they
 * would run at every event of the interpreter's teardown). pyhost's own C hook is
 * process-wide and stays. GIL held in `interp`. */
void pyhost_clear_audit_hooks(PyInterpreterState* interp);

/* Gives `interp` the main interpreter's limit on int<->str conversion digits
 * (sys.get_int_max_str_digits(): 4300 unless configured): 3.11 sets it only in the
 * main interpreter, and subinterpreters start unlimited (CVE-2020-10735's protection
 * off). GIL held. */
void pyhost_inherit_int_max_str_digits(PyInterpreterState* interp);

/* How many threads `_thread` started in `interp` are running now (its C count, which
 * the code cannot change). Read without the GIL, so only a hint that may be stale. */
long pyhost_running_threads_hint(PyInterpreterState* interp);

/* One tick of fair GIL sharing (guards/gil_sharing.h): when the GIL's holder runs in
 * one interpreter and a thread of another has asked for the GIL (its wait passed the
 * switch interval), asks the holder's interpreter to drop it, as 3.11 asks only the
 * waiter's own; on the next ticks, follows that request up (see the .c file). From
 * one thread only, without the GIL and with no thread state current. Returns 1 if it
 * forwarded a request. */
int pyhost_gil_share_tick(void);

#ifdef __cplusplus
}
#endif

#endif /* PYHOST_BINDINGS_CPYTHON_INTERNALS_H_ */

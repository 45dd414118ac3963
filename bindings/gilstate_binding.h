/* See gilstate_binding.c. */
#ifndef PYHOST_BINDINGS_GILSTATE_BINDING_H_
#define PYHOST_BINDINGS_GILSTATE_BINDING_H_

#include <Python.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Makes `tstate` (may be NULL) this thread's PyGILState thread state; returns the one
 * it replaces. Needs no GIL: the slot is thread-local. */
PyThreadState* pyhost_gilstate_bind(PyThreadState* tstate);

#ifdef __cplusplus
}
#endif

#endif /* PYHOST_BINDINGS_GILSTATE_BINDING_H_ */

// Guards on the built-in types every interpreter shares. On 3.11 a static type (its
// slots, its __dict__, the C functions behind its methods) is one object for the
// whole process, so what it lets code do cannot be replaced per interpreter the way
// guards/hardening.h replaces module functions: these guards are installed once, in
// the type itself, and ask Sandbox::Current() at each call whose code is calling.
//
//   // Once, GIL held in the main interpreter, before any sandbox exists:
//   absl::Status guarded = GuardSharedTypes();
//
// What they cover (none of it raises an audit event of its own on 3.11):
//   type.__subclasses__()      in a sandbox, only the heap types its own interpreter
//                              created (recorded by type.__new__; a type made by C code
//                              counts if its own sys.modules names it)
//   setting a class attribute  refused on a class another interpreter created (shared
//                              through a single-phase extension module: socket.herror)
//   io.FileIO(opener=f)        f must return a descriptor the code opened itself
//   socket.socket(fileno=n)    n must be a descriptor the code opened itself; a socket
//                              the code creates (also by accept, socketpair) is its own
//   socket.listen()            raises a "socket.listen" audit event (the policy's rule)
//   socket(fileno=n) of a      lets the "socket.__new__" event through once: a
//     socketpair() descriptor  connected pair inside the process (asyncio's self-pipe)
//   code.replace(co_flags=)    adding CO_ITERABLE_COROUTINE to a generator's code (what
//                              types.coroutine does) may keep a trusted filename
//   socket waits               recv, send, accept, connect... in slices a limit can end
//                              (guards/socket_waits.h, around the guards above)
// Each replaces both the type's slot and the descriptor in its __dict__ (or the C
// function behind a method), so calling the descriptor directly
// (`FileIO.__init__(f, ..., opener)`) is guarded too.
#ifndef PYHOST_GUARDS_SHARED_TYPES_H_
#define PYHOST_GUARDS_SHARED_TYPES_H_

#include <Python.h>

#include <cstdint>
#include <functional>
#include <optional>

#include <pybind11/pytypes.h>

#include "absl/status/status.h"

namespace pyhost {

absl::Status GuardSharedTypes();

// The id of the interpreter whose type.__new__ created heap type `type`, or nullopt
// (made by C code, or not a live heap type). Reads a table only: `type` may be any
// address. Thread-safe.
std::optional<int64_t> HeapTypeCreator(const void* type);

// Points the slot wrapper `type.__dict__[name]` (which calls `original`) at
// `replacement`, so that calling the descriptor directly is guarded like the slot.
// GIL held.
absl::Status SwapSlotWrapper(PyTypeObject* type, const char* name, void* original,
                             void* replacement);

// Calls `visit` on `root` and each of its subclasses, at any depth, as
// type.__subclasses__ lists them unfiltered (so: of every interpreter). For guards
// installed at start-up and at interpreter creation. GIL held.
void ForEachSubclass(PyTypeObject* root, const std::function<void(PyTypeObject*)>& visit);
// Replaces `type`'s tp_init and the C function its __init__ descriptor calls; the
// original in `*original`. GIL held.
absl::Status SwapInit(PyTypeObject* type, initproc replacement, initproc* original);

// Replaces the C function behind `dict[name]`, a type's method or a module's function
// (one PyMethodDef, shared by every interpreter and every bound copy), after checking
// its calling convention is `flags`; the original in `*original`. GIL held.
absl::Status SwapMethod(PyObject* dict, const char* name, int flags, PyCFunction replacement,
                        PyCFunction* original);

// For open()/FileIO(): copies of a call's arguments whose opener (keyword "opener",
// or positional argument `position`) is wrapped so that the descriptor it returns
// must be one the running code opened. Without an opener, the copies are the
// arguments themselves. False with a Python error on failure. GIL held.
bool WrapOpener(PyObject* args, PyObject* kwargs, Py_ssize_t position, pybind11::object* new_args,
                pybind11::object* new_kwargs);

// A copy of a call's keywords whose names are exact str objects (null with a Python
// error if one is not a str). A guard that reads a keyword must read it from this
// copy and pass this copy on: a str subclass can answer a dict lookup one way for the
// guard and another for the original function's own parsing. GIL held.
pybind11::object PlainKeywords(PyObject* kwargs);

}  // namespace pyhost

#endif  // PYHOST_GUARDS_SHARED_TYPES_H_

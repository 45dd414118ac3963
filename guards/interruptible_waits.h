// Blocking waits that a Cancellation (a limit, Host::InterruptAll) can end, as it
// ends time.sleep: each wait the code can make without end is made in slices of at
// most kWaitSlice, and between slices an exception pending for the thread
// (ExecutionStopped at a deadline, KeyboardInterrupt) is raised. The answers are
// python3's: a wait of T seconds still waits T in all, and arguments are checked by
// the original call.
//
//   // When the module is executed in a sandboxed interpreter, GIL held:
//   absl::Status made = MakeWaitsInterruptible(module, "_thread");
//
// Covered: _thread.lock and _thread.RLock's acquire() and `with` (and so every
// threading wait: Condition, Event, Semaphore, Barrier, Thread.join, queue.Queue),
// _queue.SimpleQueue.get(), select.select() and the poll() of select's poll and epoll
// objects (and so selectors, asyncio's event loop); sockets: guards/socket_waits.h.
// Not covered (docs/security.md): waits in C extensions; code blocked in one past its
// deadline is handled as code stuck in C (embed/isolation.h).
#ifndef PYHOST_GUARDS_INTERRUPTIBLE_WAITS_H_
#define PYHOST_GUARDS_INTERRUPTIBLE_WAITS_H_

#include <Python.h>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/time/time.h"

namespace pyhost {

inline constexpr absl::Duration kWaitSlice = absl::Milliseconds(20);

// `module` is the module object named `name` (_thread, _queue or select; others are
// left alone). Replaces the methods in the module's types, per interpreter. GIL held.
absl::Status MakeWaitsInterruptible(PyObject* module, const char* name);

// select.select(rlist, wlist, xlist, timeout=None) in slices: `call(args)` runs the
// original with a tuple of arguments (the hardening's guard, guards/hardening.cc).
PyObject* SelectSliced(PyObject* args, PyObject* kwargs,
                       absl::FunctionRef<PyObject*(PyObject* args)> call);

}  // namespace pyhost

#endif  // PYHOST_GUARDS_INTERRUPTIBLE_WAITS_H_

// One process-isolation child: what a forkserver's fork runs (worker/worker.h). It
// reads its request from its channel, enters the execution's context in the
// worker's interpreter, applies its restrictions to itself (process/restrictions.h:
// seccomp last), runs the execution with the in-process layers still on (policy,
// hardening, limits), writes the answer and exits. It never returns.
//
// Preconditions: the calling process is the fork of a single-threaded worker; no GIL
// held; `interp` was made in the worker (its modules prewarmed).
#ifndef PYHOST_WORKER_CHILD_EXECUTION_H_
#define PYHOST_WORKER_CHILD_EXECUTION_H_

#include <sys/types.h>

#include "embed/interpreter.h"
#include "process/forkserver.h"
#include "process/unique_fd.h"

namespace pyhost {

// The largest request a child reads (code, args and a tool's source).
inline constexpr size_t kMaxWireRequestBytes = size_t{256} << 20;

// `identity`: who the child becomes (the host's pool of uids), or unswitched.
[[noreturn]] void RunChild(UniqueFd channel, Interpreter& interp, pid_t forkserver,
                           const ChildIdentity& identity);

}  // namespace pyhost

#endif  // PYHOST_WORKER_CHILD_EXECUTION_H_

// The forkserver: a single-threaded process that forks one child per execution on the
// host's request, kills a child's whole process group at its deadline, reaps it and
// reports how it ended (sandbox2's forkserver is the model). It has no Python of its
// own here: the worker (worker/) gives it the child's body, which runs in the fork
// with everything the worker prepared (an interpreter, prewarmed modules) already in
// memory, copy-on-write.
//
// The control channel (a SOCK_SEQPACKET socket; one JSON object per record):
//   host -> server  {"op": "fork", "kill_after_us": N} + the child's channel (SCM_RIGHTS)
//   server -> host  {"forked": pid} | {"fork_failed": "why"}  (in the order asked)
//   host -> server  {"op": "kill", "pid": pid}            (an interrupted execution)
//   server -> host  {"ended": pid, "status": wait status, "killed": bool (at its
//                    deadline), "wall_us", "user_us", "system_us", "max_rss_kb"}
// The host's end of the control channel closing ends the server: every child's group
// is killed and reaped first.
//
//   return ServeForks(std::move(control), [&](UniqueFd channel) { return RunChild(...); });
//
// Preconditions: the calling process is single-threaded (fork copies only the calling
// thread, and locks held by others would stay held in the child).
#ifndef PYHOST_PROCESS_FORKSERVER_H_
#define PYHOST_PROCESS_FORKSERVER_H_

#include "absl/functional/function_ref.h"
#include "process/unique_fd.h"

namespace pyhost {

// Serves until the host's end closes; returns the process's exit code (0, or 1 when
// the channel failed). `child` runs in each forked child, which exits with its value.
int ServeForks(UniqueFd control, absl::FunctionRef<int(UniqueFd channel)> child);

}  // namespace pyhost

#endif  // PYHOST_PROCESS_FORKSERVER_H_

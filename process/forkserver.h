// The forkserver: a single-threaded process that forks one child per execution on the
// host's request, kills a child's whole process group at its deadline (or when its
// CPU time passes its limit), reaps it, kills whatever its uid still runs, and reports
// how it ended (sandbox2's forkserver is the model). It has no Python of its own here:
// the worker (worker/) gives it the child's body, which runs in the fork with
// everything the worker prepared (an interpreter, prewarmed modules) already in
// memory, copy-on-write.
//
// The control channel (a SOCK_SEQPACKET socket; one JSON object per record):
//   host -> server  {"op": "fork", "kill_after_us": N, "cpu_limit_us": N (0: none),
//                    "uid": U, "gid": G (-1: keep the server's), "sweep": bool (it
//                    may start processes: kill what its uid runs after it)}
//                   + the child's channel (SCM_RIGHTS)
//   server -> host  {"forked": pid} | {"fork_failed": "why"}  (in the order asked)
//   host -> server  {"op": "kill", "pid": pid}            (an interrupted execution)
//   server -> host  {"ended": pid, "status": wait status, "killed": bool (at its
//                    deadline), "cpu_killed": bool, "wall_us", "user_us", "system_us",
//                    "max_rss_kb", "swept": rounds of the sweep that found some}
// An "ended" record is sent once nothing of the child's uid runs any more (a uid the
// host gives one execution at a time), so the host may reuse the uid then.
// The host's end of the control channel closing ends the server: every child's group
// is killed and reaped first.
//
//   return ServeForks(std::move(control), [&](UniqueFd channel, const ChildIdentity& id) {
//     return RunChild(...);
//   });
//
// Preconditions: the calling process is single-threaded (fork copies only the calling
// thread, and locks held by others would stay held in the child).
#ifndef PYHOST_PROCESS_FORKSERVER_H_
#define PYHOST_PROCESS_FORKSERVER_H_

#include <sys/types.h>

#include "absl/functional/function_ref.h"
#include "process/unique_fd.h"

namespace pyhost {

// Who a child becomes (process/restrictions.h's uid switch); -1: not switched.
struct ChildIdentity {
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  bool switched() const { return uid != static_cast<uid_t>(-1); }
};

// Serves until the host's end closes; returns the process's exit code (0, or 1 when
// the channel failed). `child` runs in each forked child, which exits with its value.
int ServeForks(UniqueFd control,
               absl::FunctionRef<int(UniqueFd channel, const ChildIdentity& identity)> child);

}  // namespace pyhost

#endif  // PYHOST_PROCESS_FORKSERVER_H_

// What a process-isolation child applies to itself before it runs user code (issue
// 10): one call, in one order, each mechanism in its own file (nsjail's subproc.cc is
// the model: "seccomp last").
//
//   // In the forked child, single-threaded, before Python runs the user's code:
//   RestrictionsInForce in_force = ApplyRestrictions(restrictions, parent);
//   if (!in_force.status.ok()) _exit(...);  // a restriction that must hold did not
//
// The order, and why:
//   1. setsid: a new session and process group, so the host kills the child and
//      everything it started with one kill(-pgid).
//   2. PR_SET_PDEATHSIG(SIGKILL), then getppid() == parent: a parent that died before
//      the prctl would never signal (the race), so the child ends itself.
//   3. descriptors: 0, 1, 2 on /dev/null (the child never writes to the host's
//      output), every other but the kept ones closed (close_range).
//   4. environment cleared, the policy's variables set.
//   5. an IPC namespace (System V segments die with the child), and a network
//      namespace (unshare(CLONE_NEWNET)) when no network is allowed: both need
//      CAP_SYS_ADMIN, so before the uid switch; without the latter, the seccomp rule
//      still refuses sockets other than AF_UNIX.
//   6. rlimits: memory, CPU (soft < hard, so an overrun is SIGXCPU first), processes,
//      file size, descriptors, core = 0. Before the uid switch: a lowered hard limit
//      cannot be raised again by anyone unprivileged.
//   7. uid/gid switch when running as root (RLIMIT_NPROC does not bind root).
//   8. PR_SET_NO_NEW_PRIVS: nothing exec'd can gain privileges, and it lets an
//      unprivileged process load a seccomp filter and a Landlock ruleset; then
//      Landlock: writes only beneath the execution's directories and the policy's
//      write paths (falls back with a note on a kernel without it).
//   9. seccomp last: the filter would refuse what the steps above need (unshare,
//      setuid, prctl); a refused call raises SIGSYS, whose handler writes the
//      call's number to `violation_fd` and ends the process by SIGSYS.
#ifndef PYHOST_PROCESS_RESTRICTIONS_H_
#define PYHOST_PROCESS_RESTRICTIONS_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"

namespace pyhost {

struct ChildRestrictions {
  std::vector<int> keep_fds;  // besides 0, 1, 2 (which point at /dev/null)
  std::vector<std::pair<std::string, std::string>> environment;
  // rlimits (soft values; CPU's hard limit is one second more).
  std::optional<int64_t> memory_bytes;        // RLIMIT_AS
  std::optional<int64_t> cpu_seconds;         // RLIMIT_CPU
  int64_t max_processes = 64;                 // RLIMIT_NPROC (threads count too)
  int64_t max_file_bytes = int64_t{1} << 30;  // RLIMIT_FSIZE
  int64_t max_open_files = 256;               // RLIMIT_NOFILE
  // Who the child becomes when it starts as root (nobody:nogroup by default).
  uid_t uid = 65534;
  gid_t gid = 65534;
  bool allow_network = false;
  // The policy allows processes: fork and exec stay (RLIMIT_NPROC and the uid bound
  // them, the group kill ends them).
  bool allow_processes = false;
  int violation_fd = -1;  // where the SIGSYS handler writes "seccomp <nr> <name>\n"
  // Where the child may change the file system (Landlock), when set: WORK_DIR,
  // OUTPUT_DIR and the policy's write paths. Unset: no rule (yolo).
  std::optional<std::vector<std::string>> writable_paths;
};

// Which restrictions held, for the answer's stats; `status` is not OK when one that
// must hold failed (the child must not run the code then).
struct RestrictionsInForce {
  absl::Status status;
  bool new_session = false;
  bool parent_death_signal = false;
  bool descriptors_closed = false;
  bool environment_cleared = false;
  bool network_namespace = false;  // false: not asked, or the kernel refused (see notes)
  bool ipc_namespace = false;      // System V IPC of its own (false: refused, see notes)
  bool rlimits = false;
  bool uid_switched = false;  // false when not root (nothing to switch from)
  bool no_new_privs = false;
  bool landlock_writes = false;  // false: not asked, or the kernel has no Landlock (notes)
  bool seccomp = false;
  std::vector<std::string> notes;  // why something optional is not in force

  nlohmann::json ToJson() const;
};

// In the child, single-threaded, after fork. `parent`: the pid that forked it.
RestrictionsInForce ApplyRestrictions(const ChildRestrictions& restrictions, pid_t parent);

// The mechanisms, one file each (process/*.cc).
absl::Status ApplyRlimits(const ChildRestrictions& restrictions);
absl::Status SwitchToUnprivileged(uid_t uid, gid_t gid);
// Writes only beneath `writable` (Landlock); Unavailable when the kernel has none.
absl::Status RestrictWritesTo(const std::vector<std::string>& writable);
// Refuses process creation unless `allow_processes` (fork, vfork, clone without
// CLONE_THREAD; clone3 answers ENOSYS so the C library falls back to clone) and exec,
// always ptrace and other processes'
// memory, mounting and namespaces, kernel modules and keyrings, and (unless
// `allow_network`) sockets other than AF_UNIX.
absl::Status LoadSeccompFilter(bool allow_network, bool allow_processes, int violation_fd);

}  // namespace pyhost

#endif  // PYHOST_PROCESS_RESTRICTIONS_H_

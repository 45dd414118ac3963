#include "process/restrictions.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace pyhost {
namespace {

absl::Status Errno(const char* what) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(errno)));
}

// 0, 1 and 2 on /dev/null; every descriptor but `keep` closed.
absl::Status CloseDescriptors(std::vector<int> keep) {
  const int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return Errno("open /dev/null");
  for (int fd = 0; fd <= 2; ++fd) {
    if (dup2(null, fd) < 0) return Errno("dup2");
  }
  keep.insert(keep.end(), {0, 1, 2});
  std::sort(keep.begin(), keep.end());
  unsigned from = 0;
  for (int fd : keep) {
    if (static_cast<unsigned>(fd) > from) close_range(from, fd - 1, 0);
    from = std::max(from, static_cast<unsigned>(fd) + 1);
  }
  if (close_range(from, ~0U, 0) != 0) return Errno("close_range");
  return absl::OkStatus();
}

}  // namespace

RestrictionsInForce ApplyRestrictions(const ChildRestrictions& r, pid_t parent) {
  RestrictionsInForce in;
  auto fail = [&in](absl::Status s) {
    in.status = std::move(s);
    return in;
  };
  // 1, 2: its own process group; dies with its parent, the race checked.
  if (setsid() < 0) return fail(Errno("setsid"));
  in.new_session = true;
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return fail(Errno("PR_SET_PDEATHSIG"));
  if (getppid() != parent) return fail(absl::AbortedError("the parent ended before the child"));
  in.parent_death_signal = true;
  // 3, 4: nothing of the host's but the kept descriptors; the policy's environment.
  std::vector<int> keep = r.keep_fds;
  if (r.violation_fd >= 0) keep.push_back(r.violation_fd);
  if (absl::Status s = CloseDescriptors(keep); !s.ok()) return fail(s);
  in.descriptors_closed = true;
  if (clearenv() != 0) return fail(Errno("clearenv"));
  for (const auto& [name, value] : r.environment) setenv(name.c_str(), value.c_str(), 1);
  in.environment_cleared = true;
  // 5: System V IPC of its own (segments die with it, and no other execution's are
  // seen), and a network of its own (loopback, down) when none is allowed, if the
  // kernel lets us.
  if (unshare(CLONE_NEWIPC) == 0) {
    in.ipc_namespace = true;
  } else {
    in.notes.push_back(absl::StrCat("no IPC namespace (unshare: ", strerror(errno),
                                    "): System V segments outlive the child"));
  }
  if (!r.allow_network) {
    if (unshare(CLONE_NEWNET) == 0) {
      in.network_namespace = true;
    } else {
      in.notes.push_back(absl::StrCat("no network namespace (unshare: ", strerror(errno),
                                      "): the seccomp filter refuses non-Unix sockets"));
    }
  }
  // 6, 7: limits, then an unprivileged uid.
  if (absl::Status s = ApplyRlimits(r); !s.ok()) return fail(s);
  in.rlimits = true;
  if (geteuid() == 0) {
    if (absl::Status s = SwitchToUnprivileged(r.uid, r.gid); !s.ok()) return fail(s);
    in.uid_switched = true;
  } else {
    in.notes.push_back("not root: no uid switch (RLIMIT_NPROC binds this uid)");
  }
  // 8, 9: no new privileges, then seccomp.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail(Errno("PR_SET_NO_NEW_PRIVS"));
  in.no_new_privs = true;
  if (r.writable_paths) {
    absl::Status landlocked = RestrictWritesTo(*r.writable_paths);
    if (landlocked.ok()) {
      in.landlock_writes = true;
    } else if (absl::IsUnavailable(landlocked)) {
      in.notes.push_back(absl::StrCat("no Landlock (", landlocked.message(),
                                      "): writes are bounded by the uid and the policy's rules"));
    } else {
      return fail(landlocked);
    }
  }
  if (absl::Status s = LoadSeccompFilter(r.allow_network, r.allow_processes, r.violation_fd);
      !s.ok())
    return fail(s);
  in.seccomp = true;
  return in;
}

nlohmann::json RestrictionsInForce::ToJson() const {
  return {{"new_session", new_session},
          {"parent_death_signal", parent_death_signal},
          {"descriptors_closed", descriptors_closed},
          {"environment_cleared", environment_cleared},
          {"network_namespace", network_namespace},
          {"ipc_namespace", ipc_namespace},
          {"rlimits", rlimits},
          {"uid_switched", uid_switched},
          {"no_new_privs", no_new_privs},
          {"landlock_writes", landlock_writes},
          {"seccomp", seccomp},
          {"notes", notes}};
}

}  // namespace pyhost

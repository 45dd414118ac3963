#include <grp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "process/restrictions.h"

namespace pyhost {

// Groups first, then gid, then uid: once the uid is unprivileged nothing else can
// change. Checked afterwards: a switch that left a saved root id behind would let
// the code become root again.
absl::Status SwitchToUnprivileged(uid_t uid, gid_t gid) {
  if (setgroups(0, nullptr) != 0 || setresgid(gid, gid, gid) != 0 ||
      setresuid(uid, uid, uid) != 0) {
    return absl::InternalError(absl::StrCat("switching to uid ", uid, ": ", strerror(errno)));
  }
  uid_t ruid, euid, suid;
  gid_t rgid, egid, sgid;
  if (getresuid(&ruid, &euid, &suid) != 0 || getresgid(&rgid, &egid, &sgid) != 0 || ruid != uid ||
      euid != uid || suid != uid || rgid != gid || egid != gid || sgid != gid || setuid(0) == 0) {
    return absl::InternalError(absl::StrCat("uid ", uid, " did not hold"));
  }
  return absl::OkStatus();
}

}  // namespace pyhost

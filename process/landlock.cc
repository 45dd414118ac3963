// Landlock (Linux 5.13+): the child may write only beneath the paths it is given, by
// the kernel's word, whatever its code is (native code included). Reads are left to
// the uid and the in-process rules.
#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "process/restrictions.h"
#include "process/unique_fd.h"

namespace pyhost {
namespace {
// ABI 3 (Linux 6.2); Debian 12's headers stop at ABI 2.
constexpr __u64 kAccessFsTruncate = 1ULL << 14;
}  // namespace

absl::Status RestrictWritesTo(const std::vector<std::string>& writable) {
  const long abi =
      syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  if (abi < 1) {
    return absl::UnavailableError(absl::StrCat("Landlock: ", strerror(errno)));
  }
  // Every way to change the file system the kernel's ABI knows.
  __u64 writes = LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |
                 LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
                 LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
                 LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |
                 LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
  if (abi >= 2) writes |= LANDLOCK_ACCESS_FS_REFER;
  if (abi >= 3) writes |= kAccessFsTruncate;
  landlock_ruleset_attr attr{};
  attr.handled_access_fs = writes;
  UniqueFd ruleset(static_cast<int>(syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0)));
  if (!ruleset)
    return absl::InternalError(absl::StrCat("landlock_create_ruleset: ", strerror(errno)));
  for (const std::string& path : writable) {
    UniqueFd dir(open(path.c_str(), O_PATH | O_CLOEXEC));
    if (!dir) continue;  // a policy path that does not exist: nothing to allow
    landlock_path_beneath_attr rule{};
    rule.parent_fd = dir.get();
    struct stat info {};
    // A file (/dev/null) takes only the rights that apply to files.
    const bool directory = fstat(dir.get(), &info) == 0 && S_ISDIR(info.st_mode);
    rule.allowed_access =
        directory ? writes
                  : writes & (LANDLOCK_ACCESS_FS_WRITE_FILE | (abi >= 3 ? kAccessFsTruncate : 0));
    if (syscall(SYS_landlock_add_rule, ruleset.get(), LANDLOCK_RULE_PATH_BENEATH, &rule, 0) != 0) {
      return absl::InternalError(absl::StrCat("landlock_add_rule ", path, ": ", strerror(errno)));
    }
  }
  if (syscall(SYS_landlock_restrict_self, ruleset.get(), 0) != 0) {
    return absl::InternalError(absl::StrCat("landlock_restrict_self: ", strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace pyhost

#include "bindings/user_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"

namespace pyhost {
namespace {

const char* KindOf(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

absl::StatusOr<std::string> ReadUserFile(const std::string& path, size_t max_bytes,
                                         absl::string_view what) {
  auto cannot_read = [&](absl::string_view why) {
    return absl::StrCat("cannot read ", what, what.empty() ? "" : " ", "'", path, "': ", why);
  };
  // O_NONBLOCK: opening a FIFO does not wait for a writer; O_NOCTTY: a terminal does
  // not become the process's controlling terminal.
  int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return absl::NotFoundError(cannot_read(std::strerror(errno)));
  absl::Cleanup close_fd = [fd] { close(fd); };
  struct stat st;
  if (fstat(fd, &st) != 0) return absl::NotFoundError(cannot_read(std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        cannot_read(absl::StrCat(KindOf(st.st_mode), ", not a regular file")));
  }
  auto too_large = [&] {
    return absl::InvalidArgumentError(
        cannot_read(absl::StrCat("larger than the limit of ", max_bytes, " bytes")));
  };
  if (static_cast<uintmax_t>(st.st_size) > max_bytes) return too_large();
  std::string text;
  text.resize(static_cast<size_t>(st.st_size) + 1);  // +1: sees a file that grew
  size_t done = 0;
  for (;;) {
    if (done == text.size()) {
      if (text.size() > max_bytes) return too_large();
      text.resize(std::min(max_bytes + 1, text.size() * 2));
    }
    ssize_t n = read(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::NotFoundError(cannot_read(std::strerror(errno)));
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  if (done > max_bytes) return too_large();
  text.resize(done);
  return text;
}

}  // namespace pyhost

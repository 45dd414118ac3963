#include "cli/protocol_channel.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "audit_hooks/sandbox.h"

namespace pyhost::cli {

FdStreambuf::~FdStreambuf() {
  Flush();
  close(fd_);
}

FdStreambuf::int_type FdStreambuf::underflow() {
  if (wake_fd_ >= 0) {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    while (poll(fds, 2, -1) < 0 && errno == EINTR) {
    }
    if (fds[1].revents != 0) return traits_type::eof();
  }
  ssize_t n;
  do {
    n = read(fd_, in_, sizeof(in_));
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return traits_type::eof();
  setg(in_, in_, in_ + n);
  return traits_type::to_int_type(in_[0]);
}

FdStreambuf::int_type FdStreambuf::overflow(int_type c) {
  if (c == traits_type::eof()) return traits_type::not_eof(c);
  char ch = traits_type::to_char_type(c);
  return xsputn(&ch, 1) == 1 ? c : traits_type::eof();
}

std::streamsize FdStreambuf::xsputn(const char* data, std::streamsize size) {
  out_.append(data, static_cast<size_t>(size));
  // Whole lines go out at once: an answer is never interleaved with another.
  if (out_.find('\n') != std::string::npos && !Flush()) return 0;
  return size;
}

int FdStreambuf::sync() { return Flush() ? 0 : -1; }

bool FdStreambuf::Flush() {
  size_t done = 0;
  while (done < out_.size()) {
    ssize_t n = write(fd_, out_.data() + done, out_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  out_.clear();
  return true;
}

ProtocolChannel::ProtocolChannel(int in_fd, int out_fd, int stop_fd)
    : in_buf_(in_fd, stop_fd), out_buf_(out_fd), in_(&in_buf_), out_(&out_buf_) {}

absl::StatusOr<std::unique_ptr<ProtocolChannel>> ProtocolChannel::Take(int stop_fd) {
  std::cout.flush();
  int in_fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
  int out_fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (in_fd < 0 || out_fd < 0 || null_fd < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0 ||
      dup2(null_fd, STDIN_FILENO) < 0) {
    return absl::InternalError(
        absl::StrCat("moving the protocol off stdin/stdout: ", std::strerror(errno)));
  }
  close(null_fd);
  // Code must not reach them by a path either (/proc/self/fd/N, or the file's name
  // when the protocol is a file): audit_hooks/sandbox.h.
  ProtectHostDescriptor(in_fd);
  ProtectHostDescriptor(out_fd);
  return std::unique_ptr<ProtocolChannel>(new ProtocolChannel(in_fd, out_fd, stop_fd));
}

}  // namespace pyhost::cli

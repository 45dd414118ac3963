#include "process/channel.h"

#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"

namespace pyhost {
namespace {

absl::Status Errno(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", strerror(errno)));
}

// Waits until `fd` is ready for `events` or `deadline` passes.
absl::Status WaitReady(int fd, short events, absl::Time deadline, absl::string_view what) {
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat(what, ": deadline passed"));
    }
    pollfd p{fd, events, 0};
    const int64_t ms = deadline == absl::InfiniteFuture()
                           ? -1
                           : std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1 << 30);
    const int ready = poll(&p, 1, static_cast<int>(ms));
    if (ready > 0) return absl::OkStatus();
    if (ready < 0 && errno != EINTR) return Errno(what);
  }
}

}  // namespace

absl::Status MakeSocketPair(bool records, UniqueFd& a, UniqueFd& b) {
  int fds[2];
  if (socketpair(AF_UNIX, (records ? SOCK_SEQPACKET : SOCK_STREAM) | SOCK_CLOEXEC, 0, fds) != 0) {
    return Errno("socketpair");
  }
  a.reset(fds[0]);
  b.reset(fds[1]);
  return absl::OkStatus();
}

absl::Status SendRecord(int fd, absl::string_view record, int pass_fd) {
  if (record.size() > kMaxRecordBytes) {
    return absl::InvalidArgumentError(absl::StrCat("record of ", record.size(), " bytes"));
  }
  iovec iov{const_cast<char*>(record.data()), record.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (pass_fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  for (;;) {
    if (sendmsg(fd, &msg, MSG_NOSIGNAL) >= 0) return absl::OkStatus();
    if (errno != EINTR) return Errno("sending a record");
  }
}

absl::StatusOr<std::optional<std::string>> ReceiveRecord(int fd, UniqueFd* passed) {
  std::string record(kMaxRecordBytes, '\0');
  iovec iov{record.data(), record.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t got;
  while ((got = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC)) < 0) {
    if (errno != EINTR) return Errno("receiving a record");
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int received;
    memcpy(&received, CMSG_DATA(c), sizeof(int));
    UniqueFd owned(received);
    if (passed != nullptr) *passed = std::move(owned);
  }
  if (got == 0) return std::nullopt;
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    return absl::DataLossError("a record longer than expected was cut");
  }
  record.resize(static_cast<size_t>(got));
  return record;
}

absl::Status WriteAll(int fd, absl::string_view data, absl::Time deadline) {
  while (!data.empty()) {
    const ssize_t sent = send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent > 0) {
      data.remove_prefix(static_cast<size_t>(sent));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Errno("writing");
    if (absl::Status ready = WaitReady(fd, POLLOUT, deadline, "writing"); !ready.ok()) {
      return ready;
    }
  }
  return absl::OkStatus();
}

absl::Status ReadToEnd(int fd, size_t max_bytes, absl::Time deadline, std::string& out) {
  char buffer[64 << 10];
  for (;;) {
    const ssize_t got = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (got == 0) return absl::OkStatus();
    if (got > 0) {
      out.append(buffer, static_cast<size_t>(got));
      if (out.size() > max_bytes) {
        return absl::ResourceExhaustedError(
            absl::StrCat("more than ", max_bytes, " bytes were sent"));
      }
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Errno("reading");
    if (absl::Status ready = WaitReady(fd, POLLIN, deadline, "reading"); !ready.ok()) {
      return ready;
    }
  }
}

}  // namespace pyhost

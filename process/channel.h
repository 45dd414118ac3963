// Bytes between the host and its worker processes, over Unix sockets:
// - records (SOCK_SEQPACKET: one send is one receive), each of at most kMaxRecordBytes,
//   optionally carrying one descriptor (SCM_RIGHTS): the forkserver's control channel;
// - a stream read to its end or written whole, under a deadline and a size cap: one
//   execution's request and answer.
//
//   UniqueFd passed;
//   absl::StatusOr<std::optional<std::string>> record = ReceiveRecord(control, &passed);
//   absl::StatusOr<std::string> answer = ReadToEnd(channel, 64 << 20, deadline);
//
// EINTR is retried everywhere. Sends never raise SIGPIPE (MSG_NOSIGNAL).
// Thread-safety: plain functions; one reader and one writer per descriptor.
#ifndef PYHOST_PROCESS_CHANNEL_H_
#define PYHOST_PROCESS_CHANNEL_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "process/unique_fd.h"

namespace pyhost {

inline constexpr size_t kMaxRecordBytes = 16 << 10;

// A connected pair (close-on-exec): SOCK_SEQPACKET for records, SOCK_STREAM else.
absl::Status MakeSocketPair(bool records, UniqueFd& a, UniqueFd& b);

// `pass_fd` (-1: none) travels with the record; the sender keeps its own copy.
absl::Status SendRecord(int fd, absl::string_view record, int pass_fd = -1);
// The next record, or nullopt at the peer's end. A descriptor that came with it goes
// to `passed` (close-on-exec); one sent where none is expected is closed.
absl::StatusOr<std::optional<std::string>> ReceiveRecord(int fd, UniqueFd* passed = nullptr);

// Writes all of `data` by `deadline` (DeadlineExceeded otherwise).
absl::Status WriteAll(int fd, absl::string_view data, absl::Time deadline);
// Reads until the peer's end, by `deadline`; ResourceExhausted past `max_bytes` (what
// was read stays in `out`).
absl::Status ReadToEnd(int fd, size_t max_bytes, absl::Time deadline, std::string& out);

}  // namespace pyhost

#endif  // PYHOST_PROCESS_CHANNEL_H_

// The command's own stdin/stdout, kept away from the code it runs.
//
//   absl::StatusOr<std::unique_ptr<ProtocolChannel>> channel = ProtocolChannel::Take();
//   (*channel)->out() << answer.dump() << "\n";
//
// Python code in the process can write to file descriptor 1 (os.write, C extensions)
// and read descriptor 0, below the sys.stdout capture. Take() moves the protocol to
// private close-on-exec duplicates of 0 and 1, then points descriptor 1 at stderr and
// 0 at /dev/null: stray writes end up on stderr, never inside the JSON answers, and
// code cannot read requests meant for the server. The duplicates' files are also
// protected from every path the code could name (ProtectHostDescriptor): the
// /proc/self/fd links, and the file's own name when stdin or stdout is a file.
#ifndef PYHOST_CLI_PROTOCOL_CHANNEL_H_
#define PYHOST_CLI_PROTOCOL_CHANNEL_H_

#include <istream>
#include <memory>
#include <ostream>
#include <streambuf>

#include "absl/status/statusor.h"

namespace pyhost::cli {

// An unbuffered-read, line-buffered-write streambuf over one file descriptor it owns.
// Reading ends (end of file) once `wake_fd` (not owned; -1: none) is readable.
class FdStreambuf : public std::streambuf {
 public:
  explicit FdStreambuf(int fd, int wake_fd = -1) : fd_(fd), wake_fd_(wake_fd) {}
  ~FdStreambuf() override;

 protected:
  int_type underflow() override;
  int_type overflow(int_type c) override;
  std::streamsize xsputn(const char* data, std::streamsize size) override;
  int sync() override;

 private:
  bool Flush();

  int fd_;
  int wake_fd_;
  char in_[4096];
  std::string out_;
};

class ProtocolChannel {
 public:
  // `stop_fd`: reading the protocol ends once it is readable (-1: never).
  static absl::StatusOr<std::unique_ptr<ProtocolChannel>> Take(int stop_fd = -1);

  std::istream& in() { return in_; }
  std::ostream& out() { return out_; }

 private:
  ProtocolChannel(int in_fd, int out_fd, int stop_fd);

  FdStreambuf in_buf_;
  FdStreambuf out_buf_;
  std::istream in_;
  std::ostream out_;
};

}  // namespace pyhost::cli

#endif  // PYHOST_CLI_PROTOCOL_CHANNEL_H_

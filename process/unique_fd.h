// A file descriptor, owned: closed when the owner goes (absl's RAII style, as
// sandbox2's FDCloser).
//
//   UniqueFd fd(open(path, O_RDONLY | O_CLOEXEC));
//   if (!fd) return ...;  // open failed
//   read(fd.get(), ...);
#ifndef PYHOST_PROCESS_UNIQUE_FD_H_
#define PYHOST_PROCESS_UNIQUE_FD_H_

#include <unistd.h>

#include <utility>

namespace pyhost {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace pyhost

#endif  // PYHOST_PROCESS_UNIQUE_FD_H_

// Child processes for tests: descriptors and pipes that close themselves, a child that
// is killed and reaped if the test leaves it running, spawning a program, and running
// a shell command for its output.
#ifndef PYHOST_TESTS_TESTING_PROCESS_H_
#define PYHOST_TESTS_TESTING_PROCESS_H_

#include <spawn.h>
#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

namespace pyhost::testutil {

// A file descriptor closed when it goes out of scope.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Close();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~Fd() { Close(); }
  int get() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  void Close();

 private:
  int fd_ = -1;
};

// Both ends of a pipe, close-on-exec. A pipe that could not be made is a test failure
// (and has neither end open).
struct Pipe {
  Fd read, write;
  static Pipe Make();
};

// A child process; one still running when this goes out of scope is killed and reaped
// (only this process, by its pid).
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();
  void set_pid(pid_t pid) { pid_ = pid; }
  pid_t pid() const { return pid_; }
  void Kill();
  // Waits for the child; returns its wait status.
  int Wait();

 private:
  pid_t pid_ = -1;
};

// Starts the program `argv[0]` (a path) with `argv` and this process's environment,
// applying `actions` (nullptr: none); its pid, or -1 after reporting a test failure.
pid_t Spawn(const std::vector<std::string>& argv, const posix_spawn_file_actions_t* actions);

// Runs `command` with /bin/sh (popen) and reads its standard output to the end.
struct ShellResult {
  int status = -1;  // the wait status (pclose); -1 if the command could not be started
  std::string output;
};
ShellResult RunShell(const std::string& command);

}  // namespace pyhost::testutil

#endif  // PYHOST_TESTS_TESTING_PROCESS_H_

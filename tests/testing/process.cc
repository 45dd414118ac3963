#include "tests/testing/process.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <gtest/gtest.h>

extern char** environ;

namespace pyhost::testutil {

void Fd::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Pipe Pipe::Make() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return {};
  }
  Pipe pipe;
  pipe.read = Fd(fds[0]);
  pipe.write = Fd(fds[1]);
  return pipe;
}

Child::~Child() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

void Child::Kill() {
  if (pid_ > 0) ::kill(pid_, SIGKILL);
}

int Child::Wait() {
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return status;
}

pid_t Spawn(const std::vector<std::string>& argv, const posix_spawn_file_actions_t* actions) {
  std::vector<std::string> strings = argv;
  std::vector<char*> pointers;
  for (std::string& arg : strings) pointers.push_back(arg.data());
  pointers.push_back(nullptr);
  pid_t pid = -1;
  int spawned =
      ::posix_spawn(&pid, strings.at(0).c_str(), actions, nullptr, pointers.data(), environ);
  if (spawned != 0) {
    ADD_FAILURE() << "posix_spawn " << argv.at(0) << ": " << std::strerror(spawned);
    return -1;
  }
  return pid;
}

ShellResult RunShell(const std::string& command) {
  ShellResult result;
  if (FILE* pipe = popen(command.c_str(), "r")) {
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
    result.status = pclose(pipe);
  }
  return result;
}

}  // namespace pyhost::testutil

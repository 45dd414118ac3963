// The child restrictions of process isolation, applied in a forked child: each one
// holds, and what the filter refuses ends the child by SIGSYS naming the call.
#include "process/restrictions.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "bindings/asan.h"

namespace pyhost {
namespace {

using json = nlohmann::json;

struct Ended {
  int status = 0;
  std::string output;  // what the child wrote to its pipe
};

// Forks; the child applies `r` (its pipe kept, and the violation report on it), runs
// `body` and writes what it returns.
Ended InChild(ChildRestrictions r, const std::function<std::string()>& body) {
  int pipe_fds[2];
  EXPECT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    close(pipe_fds[0]);
    r.keep_fds.push_back(pipe_fds[1]);
    r.violation_fd = pipe_fds[1];
    RestrictionsInForce in = ApplyRestrictions(r, parent);
    std::string out = in.status.ok() ? in.ToJson().dump() + "\n" + body()
                                     : "failed: " + std::string(in.status.message());
    (void)!write(pipe_fds[1], out.data(), out.size());
    _exit(0);
  }
  close(pipe_fds[1]);
  Ended ended;
  char buffer[4096];
  for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof(buffer))) > 0;)
    ended.output.append(buffer, n);
  close(pipe_fds[0]);
  EXPECT_EQ(waitpid(pid, &ended.status, 0), pid);
  return ended;
}

std::string OpenDescriptors() {
  std::string fds;
  DIR* dir = opendir("/proc/self/fd");
  for (dirent* e; (e = readdir(dir)) != nullptr;) {
    if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(dir)) fds += std::string(e->d_name) + ",";
  }
  closedir(dir);
  return fds;
}

TEST(RestrictionsTest, EachRestrictionHoldsInTheChild) {
  ChildRestrictions r;
  r.environment = {{"ONLY", "this"}};
  r.cpu_seconds = 5;
  setenv("PYHOST_TEST_SECRET", "host's", 1);
  Ended ended = InChild(r, [] {
    json report;
    report["uid"] = getuid();
    report["pgid_is_pid"] = getpgrp() == getpid();
    report["no_new_privs"] = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    report["secret"] = getenv("PYHOST_TEST_SECRET") != nullptr;
    report["only"] = getenv("ONLY") != nullptr ? getenv("ONLY") : "";
    report["fds"] = OpenDescriptors();
    rlimit cpu, core;
    getrlimit(RLIMIT_CPU, &cpu);
    getrlimit(RLIMIT_CORE, &core);
    report["cpu"] = {cpu.rlim_cur, cpu.rlim_max};
    report["core"] = core.rlim_max;
    int pair[2];
    report["unix_socketpair"] = socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0;
    pthread_t thread;
    report["thread"] =
        pthread_create(
            &thread, nullptr, [](void*) -> void* { return nullptr; }, nullptr) == 0 &&
        pthread_join(thread, nullptr) == 0;
    std::ifstream dev("/proc/net/dev");
    int lines = 0;
    for (std::string line; std::getline(dev, line);) ++lines;
    report["net_dev_lines"] = lines;
    return report.dump();
  });
  ASSERT_TRUE(WIFEXITED(ended.status)) << ended.output;
  const size_t newline = ended.output.find('\n');
  ASSERT_NE(newline, std::string::npos) << ended.output;
  json in_force = json::parse(ended.output.substr(0, newline));
  json report = json::parse(ended.output.substr(newline + 1));
  EXPECT_TRUE(in_force["seccomp"]) << in_force;
  EXPECT_TRUE(in_force["no_new_privs"]);
  EXPECT_TRUE(in_force["descriptors_closed"]);
  EXPECT_EQ(report["no_new_privs"], 1);
  EXPECT_TRUE(report["pgid_is_pid"]);
  EXPECT_FALSE(report["secret"]);
  EXPECT_EQ(report["only"], "this");
  EXPECT_EQ(report["cpu"], json::array({5, 6}));
  EXPECT_EQ(report["core"], 0);
  EXPECT_TRUE(report["unix_socketpair"]);
  EXPECT_TRUE(report["thread"]);
  // 0, 1, 2 and the pipe (the socketpair's two came after the listing).
  const std::string fds = report["fds"];
  EXPECT_EQ(std::count(fds.begin(), fds.end(), ','), 4) << fds;
  if (geteuid() == 0) {
    EXPECT_TRUE(in_force["uid_switched"]);
    EXPECT_EQ(report["uid"], 65534);
    EXPECT_TRUE(in_force["network_namespace"]) << in_force;
  }
  if (in_force["network_namespace"]) {
    EXPECT_EQ(report["net_dev_lines"], 3) << "two header lines and lo only";
  }
}

TEST(RestrictionsTest, TheMemoryLimitRefusesABigAllocation) {
  if (kAsanBuild) {
    GTEST_SKIP() << "ASan's shadow memory needs terabytes of address space: RLIMIT_AS ends it";
  }
  ChildRestrictions r;
  r.memory_bytes = int64_t{512} << 20;
  Ended ended = InChild(r, [] {
    rlimit as;
    getrlimit(RLIMIT_AS, &as);
    void* big = malloc(size_t{1} << 30);
    return std::to_string(as.rlim_cur) + (big == nullptr ? " refused" : " allocated");
  });
  ASSERT_TRUE(WIFEXITED(ended.status)) << ended.output;
  EXPECT_NE(ended.output.find("\n" + std::to_string(int64_t{512} << 20) + " refused"),
            std::string::npos)
      << ended.output;
}

struct Refused {
  const char* name;
  long syscall_nr;
  std::function<void()> attempt;
};

TEST(RestrictionsTest, WhatTheFilterRefusesEndsTheChildBySigsysNamingTheCall) {
  const Refused cases[] = {
      {"fork", SYS_clone, [] { (void)fork(); }},
      {"vfork", SYS_vfork, [] { syscall(SYS_vfork); }},
      {"execve", SYS_execve,
       [] {
         char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
         execve("/bin/true", argv, nullptr);
       }},
      {"ptrace", SYS_ptrace, [] { ptrace(PTRACE_ATTACH, getppid(), nullptr, nullptr); }},
      {"mount", SYS_mount, [] { mount("none", "/tmp", "tmpfs", 0, nullptr); }},
      {"unshare", SYS_unshare, [] { unshare(CLONE_NEWUSER); }},
      {"an IPv4 socket", SYS_socket, [] { socket(AF_INET, SOCK_STREAM, 0); }},
      {"keyctl", SYS_keyctl, [] { syscall(SYS_keyctl, 0, 0, 0, 0, 0); }},
  };
  for (const Refused& c : cases) {
    SCOPED_TRACE(c.name);
    Ended ended = InChild(ChildRestrictions{}, [&c] {
      c.attempt();
      return std::string("not refused");
    });
    ASSERT_TRUE(WIFSIGNALED(ended.status)) << ended.output;
    EXPECT_EQ(WTERMSIG(ended.status), SIGSYS);
    EXPECT_NE(ended.output.find("seccomp " + std::to_string(c.syscall_nr) + "\n"),
              std::string::npos)
        << ended.output;
  }
}

TEST(RestrictionsTest, NetworkAllowedLetsAnIPv4SocketBe) {
  ChildRestrictions r;
  r.allow_network = true;
  Ended ended = InChild(
      r, [] { return std::string(socket(AF_INET, SOCK_STREAM, 0) >= 0 ? "socket" : "no socket"); });
  ASSERT_TRUE(WIFEXITED(ended.status)) << ended.output;
  EXPECT_NE(ended.output.find("\nsocket"), std::string::npos) << ended.output;
}

TEST(RestrictionsTest, ACpuOverrunIsSigxcpuFirst) {
  ChildRestrictions r;
  r.cpu_seconds = 1;
  Ended ended = InChild(r, [] {
    for (volatile unsigned long i = 0;; ++i) {
    }
    return std::string();
  });
  ASSERT_TRUE(WIFSIGNALED(ended.status)) << ended.output;
  EXPECT_EQ(WTERMSIG(ended.status), SIGXCPU);
}

}  // namespace
}  // namespace pyhost

#include "process/child_process.h"

#include <seccomp.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace pyhost {

absl::StatusOr<ChildProcess> ChildProcess::Fork(absl::FunctionRef<int()> body) {
  const pid_t pid = fork();
  if (pid < 0) return absl::UnavailableError(absl::StrCat("fork: ", strerror(errno)));
  if (pid == 0) _exit(body());
  return ChildProcess(pid);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_), started_(other.started_) {
  other.pid_ = -1;
}

ChildProcess::~ChildProcess() {
  if (pid_ <= 0) return;
  KillGroup();
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
}

void ChildProcess::KillGroup() const {
  kill(-pid_, SIGKILL);  // the group it leads once it called setsid()
  kill(pid_, SIGKILL);   // and itself, if it had not yet
}

// Polls the child (1 ms, then up to 10 ms): wait4 has no timeout, and a SIGCHLD
// handler would be process-wide state of the host's.
ChildEnd ChildProcess::WaitUntil(absl::Time deadline) {
  ChildEnd end;
  rusage usage{};
  absl::Duration pause = absl::Milliseconds(1);
  for (;;) {
    const pid_t done = wait4(pid_, &end.wait_status, WNOHANG, &usage);
    if (done == pid_ || (done < 0 && errno != EINTR)) break;
    if (absl::Now() >= deadline && !end.killed_at_deadline) {
      KillGroup();
      end.killed_at_deadline = true;
      while (wait4(pid_, &end.wait_status, 0, &usage) < 0 && errno == EINTR) {
      }
      break;
    }
    absl::SleepFor(std::min(pause, std::max(deadline - absl::Now(), absl::Microseconds(100))));
    pause = std::min(pause * 2, absl::Milliseconds(10));
  }
  // What it started may outlive it in the group: killed now too.
  KillGroup();
  end.wall = absl::Now() - started_;
  end.user = absl::DurationFromTimeval(usage.ru_utime);
  end.system = absl::DurationFromTimeval(usage.ru_stime);
  end.max_rss_kb = usage.ru_maxrss;
  pid_ = -1;
  return end;
}

namespace {

std::string SignalName(int signal) {
  const char* abbrev = sigabbrev_np(signal);
  return abbrev != nullptr ? absl::StrCat("SIG", abbrev, " (", strsignal(signal), ")")
                           : absl::StrCat("signal ", signal);
}

std::string SyscallName(const std::string& violation) {
  absl::string_view line = violation;
  int nr = -1;
  if (!absl::ConsumePrefix(&line, "seccomp ") ||
      !absl::SimpleAtoi(absl::StripTrailingAsciiWhitespace(line), &nr)) {
    return "a system call";
  }
  std::unique_ptr<char, void (*)(void*)> name(
      seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr), free);
  return name != nullptr ? absl::StrCat(name.get(), " (", nr, ")")
                         : absl::StrCat("system call ", nr);
}

}  // namespace

EndOutcome ClassifyEnd(const ChildEnd& end, const std::string& violation, const Limits& limits) {
  if (end.killed_at_deadline) {
    return {Outcome::kTimeout,
            absl::StrCat("wall-clock limit of ", limits.timeout_ms.value_or(0),
                         " ms (timeout_ms) reached after ", absl::ToInt64Milliseconds(end.wall),
                         " ms; the process group was killed")};
  }
  if (end.killed_over_cpu) {
    return {Outcome::kCpuLimit, absl::StrCat("CPU time limit of ", limits.cpu_ms.value_or(0),
                                             " ms (cpu_ms) reached after ",
                                             absl::ToInt64Milliseconds(end.user + end.system),
                                             " ms of CPU; the process group was killed")};
  }
  if (WIFEXITED(end.wait_status)) {
    return {Outcome::kWorkerExited,
            absl::StrCat("the process exited with code ", WEXITSTATUS(end.wait_status),
                         " before answering")};
  }
  const int signal = WIFSIGNALED(end.wait_status) ? WTERMSIG(end.wait_status) : 0;
  if (signal == SIGXCPU) {
    return {Outcome::kCpuLimit, "CPU time limit (cpu_ms) reached: SIGXCPU (RLIMIT_CPU)"};
  }
  if (signal == SIGSYS) {
    return {Outcome::kPolicyViolation,
            absl::StrCat("the seccomp filter refused ", SyscallName(violation))};
  }
  return {Outcome::kCrashed, absl::StrCat("the process died of ", SignalName(signal))};
}

}  // namespace pyhost

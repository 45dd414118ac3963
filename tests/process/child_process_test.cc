// Owned children: each way a child can end is classified, the whole process group
// goes at the deadline or when the child ends, and nothing is left in the process table.
#include "process/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "process/restrictions.h"

namespace pyhost {
namespace {

using ::testing::HasSubstr;

// Running: in the process table and not a zombie (a reaped orphan's entry may stay a
// moment as one under a container's init).
bool Running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

bool GoneWithin(pid_t pid, absl::Duration wait) {
  const absl::Time end = absl::Now() + wait;
  while (Running(pid) && absl::Now() < end) absl::SleepFor(absl::Milliseconds(5));
  return !Running(pid);
}

EndOutcome RunChild(absl::FunctionRef<int()> body, absl::Duration deadline = absl::Seconds(10),
                    std::string violation = "") {
  absl::StatusOr<ChildProcess> child = ChildProcess::Fork(body);
  EXPECT_TRUE(child.ok()) << child.status();
  ChildEnd end = child->WaitUntil(absl::Now() + deadline);
  return ClassifyEnd(end, violation, Limits{absl::ToInt64Milliseconds(deadline), {}, {}});
}

TEST(ChildProcessTest, ASegfaultIsCrashedNamingTheSignal) {
  EndOutcome o = RunChild([] {
    signal(SIGSEGV, SIG_DFL);
    raise(SIGSEGV);
    return 0;
  });
  EXPECT_EQ(o.outcome, Outcome::kCrashed);
  EXPECT_THAT(o.message, HasSubstr("SIGSEGV"));
}

TEST(ChildProcessTest, AnExitBeforeAnsweringIsWorkerExitedWithItsCode) {
  EndOutcome o = RunChild([] { return 5; });
  EXPECT_EQ(o.outcome, Outcome::kWorkerExited);
  EXPECT_THAT(o.message, HasSubstr("code 5"));
}

// The child and the grandchild it started, both sleeping: the deadline kills the group.
TEST(ChildProcessTest, TheDeadlineKillsTheWholeGroup) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<ChildProcess> child = ChildProcess::Fork([&] {
    setsid();
    const pid_t grandchild = fork();
    if (grandchild == 0) {
      pause();
      _exit(0);
    }
    (void)!write(fds[1], &grandchild, sizeof(grandchild));
    pause();
    return 0;
  });
  ASSERT_TRUE(child.ok());
  pid_t grandchild = 0;
  ASSERT_EQ(read(fds[0], &grandchild, sizeof(grandchild)), sizeof(grandchild));
  ChildEnd end = child->WaitUntil(absl::Now() + absl::Milliseconds(300));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EndOutcome o = ClassifyEnd(end, "", Limits{300, {}, {}});
  EXPECT_EQ(o.outcome, Outcome::kTimeout);
  EXPECT_THAT(o.message, HasSubstr("300 ms (timeout_ms)"));
  EXPECT_LT(seconds, 0.3 + 2);
  EXPECT_TRUE(GoneWithin(grandchild, absl::Seconds(2))) << "grandchild " << grandchild;
  close(fds[0]);
  close(fds[1]);
}

// A child that started a sleeper and exited at once: the orphan goes with the group.
TEST(ChildProcessTest, AnOrphanLeftInTheGroupIsKilledWhenTheChildEnds) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  absl::StatusOr<ChildProcess> child = ChildProcess::Fork([&] {
    setsid();
    const pid_t orphan = fork();
    if (orphan == 0) {
      execl("/bin/sleep", "sleep", "300", static_cast<char*>(nullptr));
      _exit(127);
    }
    (void)!write(fds[1], &orphan, sizeof(orphan));
    return 0;
  });
  ASSERT_TRUE(child.ok());
  pid_t orphan = 0;
  ASSERT_EQ(read(fds[0], &orphan, sizeof(orphan)), sizeof(orphan));
  ChildEnd end = child->WaitUntil(absl::Now() + absl::Seconds(10));
  EXPECT_EQ(ClassifyEnd(end, "", Limits{10000, {}, {}}).outcome, Outcome::kWorkerExited);
  EXPECT_TRUE(GoneWithin(orphan, absl::Seconds(2))) << "orphan " << orphan;
  close(fds[0]);
  close(fds[1]);
}

TEST(ChildProcessTest, ASeccompRefusalIsAPolicyViolationNamingTheCall) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  const pid_t parent = getpid();
  absl::StatusOr<ChildProcess> child = ChildProcess::Fork([&] {
    ChildRestrictions r;
    r.violation_fd = fds[1];
    if (!ApplyRestrictions(r, parent).status.ok()) return 99;
    (void)fork();  // a fork bomb's first step
    return 0;
  });
  ASSERT_TRUE(child.ok());
  close(fds[1]);
  ChildEnd end = child->WaitUntil(absl::Now() + absl::Seconds(10));
  char line[64] = {};
  (void)!read(fds[0], line, sizeof(line) - 1);
  close(fds[0]);
  EndOutcome o = ClassifyEnd(end, line, Limits{10000, {}, {}});
  EXPECT_EQ(o.outcome, Outcome::kPolicyViolation) << o.message;
  EXPECT_THAT(o.message, HasSubstr("refused clone"));
}

TEST(ChildProcessTest, ACpuOverrunIsCpuLimitExceeded) {
  const pid_t parent = getpid();
  EndOutcome o = RunChild([&] {
    ChildRestrictions r;
    r.cpu_seconds = 1;
    if (!ApplyRestrictions(r, parent).status.ok()) return 99;
    for (volatile unsigned long i = 0;; ++i) {
    }
    return 0;
  });
  EXPECT_EQ(o.outcome, Outcome::kCpuLimit) << o.message;
  EXPECT_THAT(o.message, HasSubstr("SIGXCPU"));
}

}  // namespace
}  // namespace pyhost

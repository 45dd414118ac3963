// Sandbox::JudgePath, the path resolver every file rule ends in, on a real directory
// tree: no interpreter is needed (the sandbox is never looked up by interpreter here).
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "audit_hooks/sandbox.h"
#include "pyhost/policy.h"
#include "tests/testing/files.h"

namespace pyhost {
namespace {

using Access = Sandbox::FileAccess;
using Verdict = Sandbox::PathVerdict;

// Stands for an interpreter: the registry keys sandboxes by it, nothing reads it.
int fake_interpreter;

class SandboxPathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path();
    ASSERT_FALSE(root_.empty());
    for (const char* dir : {"work", "out", "stdlib", "outside", "work/sub"}) {
      ASSERT_EQ(mkdir(Path(dir).c_str(), 0700), 0) << dir;
    }
    Touch("stdlib/os.py");
    Touch("outside/secret");
    Touch("work/mine");
    SetStdlibDir(Path("stdlib"));  // before an activation: it is a read root
    policy_ = *NamedPolicy("strict");
    Activate(policy_);
  }

  void TearDown() override {
    for (int fd : fds_) close(fd);
  }

  std::string Path(absl::string_view relative) const { return absl::StrCat(root_, "/", relative); }
  void Touch(absl::string_view relative) { std::ofstream(Path(relative)) << "x"; }
  void Activate(const Policy& policy) {
    sandbox_.Activate({&policy, Path("work"), Path("out"), {}});
  }
  int Open(const std::string& path, int flags) {
    int fd = open(path.c_str(), flags | O_CLOEXEC);
    EXPECT_GE(fd, 0) << path;
    fds_.push_back(fd);
    return fd;
  }
  Verdict Judge(const std::string& path, Access access, int dir_fd = -1) {
    return sandbox_.JudgePath(path, access, dir_fd);
  }

  testutil::TempDir dir_{"pyhost-paths"};
  std::string root_;
  Policy policy_;
  Sandbox sandbox_{reinterpret_cast<PyInterpreterState*>(&fake_interpreter)};
  std::vector<int> fds_;
};

TEST_F(SandboxPathsTest, WorkAndOutputDirectoriesAreWritable) {
  EXPECT_EQ(Judge(Path("work/new.txt"), Access::kWrite), Verdict::kAllowed);
  EXPECT_EQ(Judge(Path("work/sub/new.txt"), Access::kWriteEntry), Verdict::kAllowed);
  EXPECT_EQ(Judge(Path("work/mine"), Access::kRead), Verdict::kAllowed);  // writable is readable
  EXPECT_FALSE(sandbox_.output_written());
  EXPECT_EQ(Judge(Path("out/result.csv"), Access::kRead), Verdict::kAllowed);
  EXPECT_FALSE(sandbox_.output_written());  // reading writes nothing
  EXPECT_EQ(Judge(Path("out/result.csv"), Access::kWrite), Verdict::kAllowed);
  EXPECT_TRUE(sandbox_.output_written());
  EXPECT_TRUE(sandbox_.CanWrite(Path("work/x")));
  EXPECT_FALSE(sandbox_.CanWrite(Path("outside/x")));
}

TEST_F(SandboxPathsTest, TheStdlibIsAlwaysReadableAndNeverWritable) {
  EXPECT_EQ(Judge(Path("stdlib/os.py"), Access::kRead), Verdict::kAllowed);
  EXPECT_EQ(Judge(Path("stdlib"), Access::kRead), Verdict::kAllowed);
  EXPECT_EQ(Judge(Path("stdlib/os.py"), Access::kWrite), Verdict::kOutsideRoots);
  EXPECT_EQ(Judge(Path("stdlib/new.py"), Access::kWriteEntry), Verdict::kOutsideRoots);
  sandbox_.Deactivate();  // the lockdown policy between executions keeps it readable
  EXPECT_EQ(Judge(Path("stdlib/os.py"), Access::kRead), Verdict::kAllowed);
  EXPECT_EQ(Judge(Path("work/mine"), Access::kRead), Verdict::kOutsideRoots);
}

TEST_F(SandboxPathsTest, EverythingElseIsOutsideTheRoots) {
  EXPECT_EQ(Judge(Path("outside/secret"), Access::kRead), Verdict::kOutsideRoots);
  EXPECT_EQ(Judge(root_, Access::kRead), Verdict::kOutsideRoots);
  EXPECT_EQ(Judge("/", Access::kRead), Verdict::kOutsideRoots);
  // A name that only starts like a root is not under it.
  EXPECT_EQ(Judge(Path("workshop/x"), Access::kWrite), Verdict::kOutsideRoots);
}

TEST_F(SandboxPathsTest, DotDotIsAppliedBeforeJudging) {
  EXPECT_EQ(Judge(Path("work/../outside/secret"), Access::kRead), Verdict::kOutsideRoots);
  EXPECT_EQ(Judge(Path("work/sub/../../outside/secret"), Access::kRead), Verdict::kOutsideRoots);
  EXPECT_EQ(Judge(Path("outside/../work/mine"), Access::kWrite), Verdict::kAllowed);
  EXPECT_EQ(Judge(Path("work/./sub/./../mine"), Access::kWrite), Verdict::kAllowed);
  EXPECT_EQ(Judge(Path("work/../../../../.."), Access::kRead), Verdict::kOutsideRoots);
  // What does not exist is kept as written: the kernel fails on anything past it.
  const std::string past_missing = Path("work/missing/../../outside/secret");
  EXPECT_EQ(Judge(past_missing, Access::kRead), Verdict::kAllowed);
  errno = 0;
  EXPECT_LT(open(past_missing.c_str(), O_RDONLY), 0);
  EXPECT_EQ(errno, ENOENT);
}

TEST_F(SandboxPathsTest, RelativePathsResolveAgainstTheCurrentDirectory) {
  char cwd[PATH_MAX];
  ASSERT_NE(getcwd(cwd, sizeof(cwd)), nullptr);
  ASSERT_EQ(chdir(Path("work").c_str()), 0);
  EXPECT_EQ(Judge("new.txt", Access::kWrite), Verdict::kAllowed);
  EXPECT_EQ(Judge("sub/../mine", Access::kWrite), Verdict::kAllowed);
  EXPECT_EQ(Judge("../outside/secret", Access::kRead), Verdict::kOutsideRoots);
  EXPECT_EQ(Judge("", Access::kRead), Verdict::kAllowed);  // the directory itself
  EXPECT_EQ(Judge(".", Access::kWrite), Verdict::kAllowed);
  ASSERT_EQ(chdir(Path("outside").c_str()), 0);
  EXPECT_EQ(Judge("secret", Access::kRead), Verdict::kOutsideRoots);
  ASSERT_EQ(chdir(cwd), 0);
}

TEST_F(SandboxPathsTest, SymlinksAreFollowedToWhatTheyName) {
  ASSERT_EQ(symlink(Path("outside").c_str(), Path("work/out_link").c_str()), 0);
  ASSERT_EQ(symlink("../outside/secret", Path("work/relative_link").c_str()), 0);
  ASSERT_EQ(symlink("sub", Path("work/in_link").c_str()), 0);
  EXPECT_EQ(Judge(Path("work/out_link/secret"), Access::kRead), Verdict::kOutsideRoots);
  EXPECT_EQ(Judge(Path("work/relative_link"), Access::kRead), Verdict::kOutsideRoots);
  EXPECT_EQ(Judge(Path("work/in_link/new"), Access::kWrite), Verdict::kAllowed);
  // A link followed by "..": ".." applies to where the link led.
  EXPECT_EQ(Judge(Path("work/out_link/../work/mine"), Access::kWrite), Verdict::kAllowed);
  EXPECT_EQ(Judge(Path("work/in_link/../mine"), Access::kWrite), Verdict::kAllowed);
}

TEST_F(SandboxPathsTest, EntryCallsDoNotFollowTheLastLink) {
  ASSERT_EQ(symlink(Path("outside/secret").c_str(), Path("work/link").c_str()), 0);
  EXPECT_EQ(Judge(Path("work/link"), Access::kWriteEntry), Verdict::kAllowed);  // remove the link
  EXPECT_EQ(Judge(Path("work/link"), Access::kWrite), Verdict::kOutsideRoots);  // write its target
  EXPECT_EQ(Judge(Path("work/link"), Access::kRead), Verdict::kOutsideRoots);
  // Only the last component: a link on the way is followed.
  ASSERT_EQ(symlink(Path("outside").c_str(), Path("work/dir_link").c_str()), 0);
  EXPECT_EQ(Judge(Path("work/dir_link/secret"), Access::kWriteEntry), Verdict::kOutsideRoots);
}

TEST_F(SandboxPathsTest, LinkLoopsResolveToNothingAllowed) {
  ASSERT_EQ(symlink("loop_b", Path("work/loop_a").c_str()), 0);
  ASSERT_EQ(symlink("loop_a", Path("work/loop_b").c_str()), 0);
  EXPECT_EQ(Judge(Path("work/loop_a"), Access::kRead), Verdict::kOutsideRoots);
  EXPECT_EQ(Judge(Path("work/loop_a/x"), Access::kWrite), Verdict::kOutsideRoots);
}

TEST_F(SandboxPathsTest, DirFdIsTheBaseOfRelativePathsOnly) {
  int work = Open(Path("work"), O_RDONLY | O_DIRECTORY);
  int outside = Open(Path("outside"), O_RDONLY | O_DIRECTORY);
  sandbox_.RecordFd(work);
  sandbox_.RecordFd(outside);
  EXPECT_EQ(Judge("new.txt", Access::kWrite, work), Verdict::kAllowed);
  EXPECT_EQ(Judge("sub/new.txt", Access::kWrite, work), Verdict::kAllowed);
  EXPECT_EQ(Judge("../outside/secret", Access::kRead, work), Verdict::kOutsideRoots);
  EXPECT_EQ(Judge("secret", Access::kRead, outside), Verdict::kOutsideRoots);
  EXPECT_EQ(Judge("../work/mine", Access::kWrite, outside), Verdict::kAllowed);
  // An absolute path ignores dir_fd.
  EXPECT_EQ(Judge(Path("work/mine"), Access::kWrite, outside), Verdict::kAllowed);
  EXPECT_EQ(Judge(Path("outside/secret"), Access::kRead, work), Verdict::kOutsideRoots);
}

TEST_F(SandboxPathsTest, ADirFdTheCodeDidNotOpenIsTheHosts) {
  int host_dir = Open(Path("work"), O_RDONLY | O_DIRECTORY);  // never recorded
  EXPECT_EQ(Judge("mine", Access::kRead, host_dir), Verdict::kHostDescriptor);
  EXPECT_EQ(Judge(Path("work/mine"), Access::kRead, host_dir), Verdict::kAllowed);  // absolute
  Policy yolo = *NamedPolicy("yolo");
  Activate(yolo);
  EXPECT_EQ(Judge("mine", Access::kRead, host_dir),
            Verdict::kHostDescriptor);  // whatever the policy
}

TEST_F(SandboxPathsTest, NamesThatAreNotUtf8AreJudgedByTheirBytes) {
  EXPECT_EQ(Judge(Path("work/\xff\xfe.bin"), Access::kWrite), Verdict::kAllowed);
  EXPECT_EQ(Judge(Path("work/sub/\x80/x"), Access::kWrite), Verdict::kAllowed);
  EXPECT_EQ(Judge(Path("outside/\xff"), Access::kRead), Verdict::kOutsideRoots);
  EXPECT_EQ(Judge(Path("work/\xff/../../outside/secret"), Access::kRead),
            Verdict::kAllowed);  // "\xff" does not exist: kept as written, the kernel fails
  ASSERT_EQ(mkdir(Path("work/\xff").c_str(), 0700), 0);
  EXPECT_EQ(Judge(Path("work/\xff/../../outside/secret"), Access::kRead), Verdict::kOutsideRoots);
}

TEST_F(SandboxPathsTest, TrailingAndRepeatedSlashesNameTheSameEntry) {
  EXPECT_EQ(Judge(Path("work/"), Access::kWrite), Verdict::kAllowed);
  EXPECT_EQ(Judge(Path("work//sub//"), Access::kWrite), Verdict::kAllowed);
  EXPECT_EQ(Judge(Path("outside/"), Access::kRead), Verdict::kOutsideRoots);
  EXPECT_EQ(Judge(Path("outside//secret/"), Access::kRead), Verdict::kOutsideRoots);
  EXPECT_EQ(Judge(absl::StrCat("//", root_, "/work/mine"), Access::kWrite), Verdict::kAllowed);
}

TEST_F(SandboxPathsTest, DescriptorLinksReachOnlyTheCodesOwnDescriptors) {
  int own_file = Open(Path("work/mine"), O_RDONLY);
  int own_outside = Open(Path("outside/secret"), O_RDONLY);
  sandbox_.RecordFd(own_file);
  sandbox_.RecordFd(own_outside);
  EXPECT_EQ(Judge(absl::StrCat("/proc/self/fd/", own_file), Access::kRead), Verdict::kAllowed);
  EXPECT_EQ(Judge(absl::StrCat("/dev/fd/", own_file), Access::kRead), Verdict::kAllowed);
  EXPECT_EQ(Judge(absl::StrCat("/proc/self/fd/", own_outside), Access::kRead),
            Verdict::kOutsideRoots);                  // the file it names is judged
  int host_file = Open(Path("work/mine"), O_RDONLY);  // the host's: not recorded
  const std::string host_link = absl::StrCat("/proc/self/fd/", host_file);
  // The policy's own rule is named first when it refuses too.
  EXPECT_EQ(Judge(host_link, Access::kRead), Verdict::kOutsideRoots);
  ASSERT_EQ(symlink(host_link.c_str(), Path("work/fd_link").c_str()), 0);
  Policy yolo = *NamedPolicy("yolo");
  Activate(yolo);  // whatever the policy
  EXPECT_EQ(Judge(host_link, Access::kRead), Verdict::kHostDescriptor);
  EXPECT_EQ(Judge(absl::StrCat("/dev/fd/", host_file), Access::kRead), Verdict::kHostDescriptor);
  EXPECT_EQ(Judge(Path("work/fd_link"), Access::kRead),
            Verdict::kHostDescriptor);  // through a link
  EXPECT_EQ(Judge(absl::StrCat("/proc/self/fd/", own_file), Access::kWrite), Verdict::kAllowed);
}

TEST_F(SandboxPathsTest, ProtectedHostFilesAreUnreachableByAnyPath) {
  Touch("work/protocol");
  int protocol = Open(Path("work/protocol"), O_RDONLY);
  ProtectHostDescriptor(protocol);  // process-wide: this file only
  EXPECT_EQ(Judge(Path("work/protocol"), Access::kRead), Verdict::kHostDescriptor);
  ASSERT_EQ(link(Path("work/protocol").c_str(), Path("work/hard_link").c_str()), 0);
  EXPECT_EQ(Judge(Path("work/hard_link"), Access::kWrite), Verdict::kHostDescriptor);
  EXPECT_EQ(Judge(Path("work/mine"), Access::kWrite), Verdict::kAllowed);
}

TEST_F(SandboxPathsTest, ThePolicysOwnPathsAreResolvedAtActivation) {
  ASSERT_EQ(symlink(Path("outside").c_str(), Path("alias").c_str()), 0);
  Policy policy = *NamedPolicy("strict");
  policy.read_paths = {Path("alias")};  // resolved: the directory it names
  policy.write_paths = {Path("work/../out")};
  Activate(policy);
  EXPECT_EQ(Judge(Path("outside/secret"), Access::kRead), Verdict::kAllowed);
  EXPECT_EQ(Judge(Path("outside/secret"), Access::kWrite), Verdict::kOutsideRoots);
  EXPECT_EQ(Judge(Path("out/x"), Access::kWrite), Verdict::kAllowed);
}

TEST_F(SandboxPathsTest, WithoutRulesOnlyHostDescriptorsAreRefused) {
  Policy yolo = *NamedPolicy("yolo");
  Activate(yolo);
  EXPECT_EQ(Judge(Path("outside/secret"), Access::kWrite), Verdict::kAllowed);
  EXPECT_EQ(Judge("/", Access::kRead), Verdict::kAllowed);
  EXPECT_TRUE(sandbox_.output_written());  // yolo checks nothing: only a hint
}

}  // namespace
}  // namespace pyhost

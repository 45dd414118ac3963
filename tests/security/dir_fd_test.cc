// File operations that take dir_fd name a file in that descriptor's directory: the
// file roots must judge that file, not the relative path read against the host's
// working directory. Hostile-suite style: each escape is denied AND, checked from
// outside, the file it aimed at is unchanged; the same calls inside WORK_DIR work,
// and so do shutil.rmtree / tempfile.TemporaryDirectory on their descriptor-based path.
//
// The host runs with its working directory at "/", where WORK_DIR's own path, made
// relative, names WORK_DIR: inside WORK_DIR the code builds that same relative path
// as a symlink to a directory outside, so a check against the working directory
// passes while the call through dir_fd lands outside.
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <tuple>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "pyhost/host.h"
#include "tests/testing/files.h"

namespace pyhost {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using testutil::ReadFile;

// Name -> (mode, uid, gid, mtime, size, content) of everything in `dir`.
using Listing = std::map<std::string, std::tuple<mode_t, uid_t, gid_t, time_t, off_t, std::string>>;
Listing List(const std::string& dir) {
  Listing listing;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      struct stat st {};
      lstat((dir + "/" + name).c_str(), &st);
      listing[name] = {st.st_mode, st.st_uid,
                       st.st_gid,  st.st_mtime,
                       st.st_size, S_ISREG(st.st_mode) ? ReadFile(dir + "/" + name) : ""};
    }
    closedir(d);
  }
  return listing;
}

// Prepended to each escape: `w` is a descriptor of the farm (a writable directory
// of the policy's) and `rel` a relative path that names the farm from "/" but
// args['outside'] from `w`. The fixture makes the farm's link: strict refuses code a
// symlink to outside the writable paths.
constexpr char kFarm[] = R"PY(
import os
w = os.open(args['farm'], os.O_RDONLY)
rel = args['farm'].lstrip('/')
open(WORK_DIR + '/mine', 'w').write('mine')
)PY";

class DirFdTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string root = testutil::MakeTempDir("/tmp/dirfd-");
    ASSERT_FALSE(root.empty()) << "mkdtemp";
    root_ = new std::string(root);
    outside_ = new std::string(*root_ + "/outside");
    std::string work = *root_ + "/work";
    ASSERT_EQ(mkdir(outside_->c_str(), 0755), 0);
    ASSERT_EQ(mkdir(work.c_str(), 0755), 0);
    ASSERT_EQ(mkdir((*outside_ + "/emptydir").c_str(), 0755), 0);
    std::ofstream(*outside_ + "/secret.txt") << "dirfd-secret-5b1e\n";
    // farm/<farm's own path, relative> -> outside; tree/a/outside_link -> outside.
    farm_ = new std::string(*root_ + "/farm");
    std::filesystem::path in_farm = *farm_ + "/" + farm_->substr(1);
    std::filesystem::create_directories(in_farm.parent_path());
    std::filesystem::create_directory_symlink(*outside_, in_farm);
    tree_ = new std::string(*root_ + "/tree");
    std::filesystem::create_directories(*tree_ + "/a/b/c");
    for (const char* d : {"", "/a", "/a/b", "/a/b/c"}) std::ofstream(*tree_ + d + "/f.txt") << "x";
    std::filesystem::create_directory_symlink(*outside_, *tree_ + "/a/outside_link");
    char cwd[4096];
    original_cwd_ = new std::string(getcwd(cwd, sizeof(cwd)) != nullptr ? cwd : "/");
    ASSERT_EQ(chdir("/"), 0);
    HostOptions options;
    options.pool_size = 2;
    options.work_root = work;  // the same file system as outside_: hard links work
    absl::StatusOr<std::unique_ptr<Host>> host = Host::Create(options);
    ASSERT_TRUE(host.ok()) << host.status();
    host_ = host->release();
    before_ = new Listing(List(*outside_));
  }

  static void TearDownTestSuite() {
    delete host_;
    host_ = nullptr;
    if (original_cwd_ != nullptr && chdir(original_cwd_->c_str()) != 0) perror("chdir");
    if (root_ != nullptr) std::filesystem::remove_all(*root_);
  }

  static ExecResult Exec(const std::string& code) {
    ExecRequest request;
    request.code = code;
    request.args = {{"outside", *outside_}, {"farm", *farm_}, {"tree", *tree_}};
    Policy policy = *LoadPolicy("strict");  // the farm and the tree writable too
    policy.write_paths.push_back(*farm_);
    policy.write_paths.push_back(*tree_);
    request.policy = policy;
    absl::StatusOr<ExecResult> result = host_->Execute(request);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *std::move(result) : ExecResult{};
  }

  // Denied with PermissionError naming the policy, and nothing outside changed.
  static void ExpectEscapeDenied(const std::string& code,
                                 const std::string& rule = "denied by pyhost policy 'strict'") {
    ExecResult r = Exec(absl::StrCat(kFarm, code));
    EXPECT_FALSE(r.ok) << code << "\n" << r.ToJson().dump();
    if (r.error) {
      EXPECT_EQ(r.error->type, "PermissionError") << r.error->message;
      EXPECT_THAT(r.error->message, HasSubstr(rule));
    }
    EXPECT_EQ(r.ToJson().dump().find("dirfd-secret"), std::string::npos) << "the secret came back";
    EXPECT_EQ(List(*outside_), *before_) << "a file outside WORK_DIR changed: " << code;
    for (const auto& [name, entry] : List(*outside_)) {
      if (!before_->count(name)) std::filesystem::remove_all(*outside_ + "/" + name);
    }
  }

  static std::string* root_;
  static std::string* outside_;
  static std::string* farm_;
  static std::string* tree_;
  static std::string* original_cwd_;
  static Listing* before_;
  static Host* host_;
};

std::string* DirFdTest::root_ = nullptr;
std::string* DirFdTest::outside_ = nullptr;
std::string* DirFdTest::farm_ = nullptr;
std::string* DirFdTest::tree_ = nullptr;
std::string* DirFdTest::original_cwd_ = nullptr;
Listing* DirFdTest::before_ = nullptr;
Host* DirFdTest::host_ = nullptr;

// The lead's reproducer: the "open" event names the path but not dir_fd.
TEST_F(DirFdTest, OpenReadThroughDirFd) {
  ExpectEscapeDenied(
      "fd = os.open(rel + '/secret.txt', os.O_RDONLY, dir_fd=w)\n"
      "result = os.read(fd, 100).decode()\n");
  ExpectEscapeDenied(
      "fd = os.open(path=rel + '/secret.txt', flags=os.O_RDONLY, dir_fd=w)\n"
      "result = os.read(fd, 100).decode()\n");
  ExpectEscapeDenied(
      "fd = os.open(os.fsencode(rel + '/secret.txt'), os.O_RDONLY, dir_fd=w)\n"
      "result = os.read(fd, 100).decode()\n");
  ExpectEscapeDenied(
      "result = open(rel + '/secret.txt', opener=lambda p, f: os.open(p, f, dir_fd=w)).read()\n");
}

TEST_F(DirFdTest, OpenCreateThroughDirFd) {
  ExpectEscapeDenied("os.open(rel + '/canary', os.O_WRONLY | os.O_CREAT, dir_fd=w)\n");
}

TEST_F(DirFdTest, DirectoriesThroughDirFd) {
  ExpectEscapeDenied("os.mkdir(rel + '/canary', dir_fd=w)\n");
  ExpectEscapeDenied("os.rmdir(rel + '/emptydir', dir_fd=w)\n");
}

TEST_F(DirFdTest, RemoveThroughDirFd) {
  ExpectEscapeDenied("os.remove(rel + '/secret.txt', dir_fd=w)\n");
  ExpectEscapeDenied("os.unlink(rel + '/secret.txt', dir_fd=w)\n");
}

TEST_F(DirFdTest, RenameAndReplaceThroughDirFd) {
  ExpectEscapeDenied(
      "os.rename(rel + '/secret.txt', WORK_DIR + '/stolen', src_dir_fd=w)\n"
      "result = open(WORK_DIR + '/stolen').read()\n");
  ExpectEscapeDenied("os.replace(WORK_DIR + '/mine', rel + '/secret.txt', dst_dir_fd=w)\n");
}

TEST_F(DirFdTest, LinksThroughDirFd) {
  ExpectEscapeDenied(
      "os.link(rel + '/secret.txt', WORK_DIR + '/hard', src_dir_fd=w)\n"
      "result = open(WORK_DIR + '/hard').read()\n");
  ExpectEscapeDenied("os.link(WORK_DIR + '/mine', rel + '/planted', dst_dir_fd=w)\n");
  ExpectEscapeDenied("os.symlink('/etc/passwd', rel + '/planted', dir_fd=w)\n");
}

TEST_F(DirFdTest, MetadataChangesThroughDirFd) {
  ExpectEscapeDenied("os.chmod(rel + '/secret.txt', 0o777, dir_fd=w)\n");
  ExpectEscapeDenied("os.chown(rel + '/secret.txt', 1, 1, dir_fd=w)\n");
  ExpectEscapeDenied("os.utime(rel + '/secret.txt', (0, 0), dir_fd=w)\n");
}

// A sibling found while fixing the above: a Python audit hook of the code runs after
// pyhost's check of an open() and before the open itself, and can swap the symlink
// it checked.
TEST_F(DirFdTest, AuditHookCannotSwapACheckedSymlink) {
  ExpectEscapeDenied(R"PY(
import sys
link = WORK_DIR + '/link'
os.symlink(WORK_DIR + '/mine', link)
armed = []
def hook(event, hook_args):
    if event == 'open' and hook_args[0] == link and not armed:
        armed.append(1)
        os.remove(link)
        os.symlink(args['outside'] + '/secret.txt', link)
sys.addaudithook(hook)
result = open(link).read()
)PY",
                     "sys.addaudithook is not available in pyhost");
}

// python3: every call below works. Before, each relative path was judged against the
// host's working directory ("/"), so the calls failed with PermissionError.
TEST_F(DirFdTest, DirFdCallsInsideWorkDirWork) {
  ExecResult r = Exec(R"PY(
import os
w = os.open(WORK_DIR, os.O_RDONLY)
os.mkdir('sub', dir_fd=w)
fd = os.open('sub/a', os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=w)
os.write(fd, b'abc')
os.close(fd)
os.rename('sub/a', 'sub/b', src_dir_fd=w, dst_dir_fd=w)
os.replace('sub/b', 'sub/c', src_dir_fd=w, dst_dir_fd=w)
os.link('sub/c', 'sub/d', src_dir_fd=w, dst_dir_fd=w)
os.symlink('c', 'sub/e', dir_fd=w)
os.chmod('sub/c', 0o644, dir_fd=w)
os.utime('sub/c', (1, 1), dir_fd=w)
s = os.open('sub', os.O_RDONLY, dir_fd=w)
listed = sorted(os.listdir(s))
read = os.read(os.open('e', os.O_RDONLY, dir_fd=s), 10).decode()
for name in ('c', 'd', 'e'):
    os.remove(name, dir_fd=s)
os.rmdir('sub', dir_fd=w)
try:
    os.open('missing', os.O_RDONLY, dir_fd=w)
except FileNotFoundError as e:
    missing = [e.filename, str(e)]
result = [listed, read, os.listdir(WORK_DIR), missing]
)PY");
  ASSERT_TRUE(r.ok) << r.ToJson().dump();
  EXPECT_EQ(r.result, json({{"c", "d", "e"},
                            "abc",
                            json::array(),
                            {"missing", "[Errno 2] No such file or directory: 'missing'"}}));
}

// python3: [True, True, True, True]. The sets held the original functions, so
// shutil.rmtree took its path-based walk, which symlink races can redirect.
TEST_F(DirFdTest, SupportsSetsHoldTheFunctionsTheCodeCalls) {
  ExecResult r = Exec(R"PY(
import os, shutil
result = [os.open in os.supports_dir_fd, os.stat in os.supports_fd,
          shutil._use_fd_functions, shutil.rmtree.avoids_symlink_attacks]
)PY");
  ASSERT_TRUE(r.ok) << r.ToJson().dump();
  EXPECT_EQ(r.result, json({true, true, true, true}));
}

// shutil.rmtree and TemporaryDirectory on their descriptor-based walk: they work in
// writable directories and do not follow a symlink to a directory outside (the
// fixture's tree holds one: strict lets no code make it).
TEST_F(DirFdTest, RmtreeAndTemporaryDirectoryWork) {
  ExecResult r = Exec(R"PY(
import os, shutil, tempfile
tree = args['tree']
shutil.rmtree(tree)
with tempfile.TemporaryDirectory() as t:
    os.makedirs(t + '/x/y')
    open(t + '/x/y/z', 'w').write('z')
    os.symlink(t + '/x/y', t + '/x/link')
    kept = t
result = [os.path.exists(tree), os.path.exists(kept), kept.startswith(WORK_DIR)]
)PY");
  ASSERT_TRUE(r.ok) << r.ToJson().dump();
  EXPECT_EQ(r.result, json({false, false, true}));
  EXPECT_EQ(List(*outside_), *before_);
}

}  // namespace
}  // namespace pyhost

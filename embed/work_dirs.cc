#include "embed/work_dirs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "pyhost/host.h"  // DefaultWorkRoot

namespace pyhost {
namespace {

namespace fs = std::filesystem;

constexpr char kRootPrefix[] = "pyhost-";
constexpr char kLockFile[] = ".lock";

absl::StatusOr<std::string> MakeExecutionDir(const std::string& root) {
  std::error_code error;
  fs::create_directories(root, error);
  std::string pattern = absl::StrCat(root, "/exec-XXXXXX");
  if (error || mkdtemp(pattern.data()) == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot create an execution directory under '", root, "'"));
  }
  if (!fs::create_directory(pattern + "/work", error) ||
      !fs::create_directory(pattern + "/output", error)) {
    return absl::UnavailableError(absl::StrCat("cannot create directories in '", pattern, "'"));
  }
  return pattern;
}

// Leaves in `dir` only regular files and the directories that lead to them.
void KeepOnlyRegularFiles(const fs::path& dir) {
  std::error_code error;
  std::vector<fs::path> entries;
  for (auto it = fs::directory_iterator(dir, error); !error && it != fs::directory_iterator();
       it.increment(error)) {
    entries.push_back(it->path());
  }
  for (const fs::path& entry : entries) {
    fs::file_status status = fs::symlink_status(entry, error);
    if (fs::is_directory(status)) {
      KeepOnlyRegularFiles(entry);
      if (fs::is_empty(entry, error)) fs::remove(entry, error);
    } else if (!fs::is_regular_file(status)) {
      fs::remove(entry, error);  // symlinks, FIFOs, sockets: never the caller's outputs
    }
  }
}

// Removes what a returned directory must not keep: everything, or all but the
// caller's outputs.
void Tidy(const std::string& dir, bool keep_outputs) {
  std::error_code error;
  if (!keep_outputs) {
    fs::remove_all(dir, error);
    return;
  }
  fs::remove_all(dir + "/work", error);
  KeepOnlyRegularFiles(dir + "/output");
}

// The pid in a root's name ("pyhost-123", or "pyhost-123-Ab3dEf": see OwnRoot), or 0.
pid_t RootPid(const std::string& name) {
  int pid = 0;
  absl::string_view digits =
      absl::string_view(name).substr(std::min(name.size(), sizeof(kRootPrefix) - 1));
  digits = digits.substr(0, digits.find('-'));
  if (!absl::StartsWith(name, kRootPrefix) || !absl::SimpleAtoi(digits, &pid)) return 0;
  return pid;
}

// Whether the stock that made `root` died without tidying it: its lock file is still
// there and nobody holds it. (A stock that ended normally removed the file and left
// only the outputs it reported, which are the caller's: those are never swept.)
bool Abandoned(const fs::path& root) {
  int fd = open((root / kLockFile).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  bool free = flock(fd, LOCK_EX | LOCK_NB) == 0;
  close(fd);
  return free;
}

// Roots like ours ("pyhost-<pid>" beside it) whose stock died without tidying.
void RemoveAbandonedRoots(const fs::path& ours) {
  std::error_code error;
  for (auto it = fs::directory_iterator(ours.parent_path(), error);
       !error && it != fs::directory_iterator(); it.increment(error)) {
    const fs::path& candidate = it->path();
    if (candidate == ours || RootPid(candidate.filename()) == 0 ||
        !fs::is_directory(fs::symlink_status(candidate, error))) {
      continue;
    }
    if (Abandoned(candidate)) fs::remove_all(candidate, error);
  }
}

// A root this process's user owns: made now, or made by it before. One that
// exists as anything else (a symlink or a directory of another user, which anyone can
// plant at a predictable name in /dev/shm or /tmp, and process isolation's children
// run as other users) is not used: a fresh "<root>-XXXXXX" is made beside it.
std::string OwnRoot(const std::string& root) {
  std::error_code error;
  fs::create_directories(fs::path(root).parent_path(), error);
  // 0711: children of process isolation (other uids) pass through to their own
  // directory, and cannot list the others.
  if (mkdir(root.c_str(), 0711) == 0 || errno != EEXIST) return root;
  struct stat info {};
  if (lstat(root.c_str(), &info) == 0 && S_ISDIR(info.st_mode) && info.st_uid == geteuid()) {
    return root;
  }
  std::string fresh = root + "-XXXXXX";
  return mkdtemp(fresh.data()) != nullptr ? fresh : root;
}

// The root resolved (created first if needed), so the directories under it are
// canonical paths: the sandbox compares them with resolved paths as they are.
std::string CanonicalRoot(const std::string& root) {
  std::error_code error;
  const std::string own = OwnRoot(root);
  fs::path canonical = fs::canonical(own, error);
  return error ? own : canonical.string();
}

}  // namespace

std::string DefaultWorkRoot() {
  if (access("/dev/shm", W_OK | X_OK) == 0) {
    return absl::StrCat("/dev/shm/", kRootPrefix, getpid());
  }
  const char* tmp = getenv("TMPDIR");
  return absl::StrCat(tmp != nullptr && tmp[0] == '/' ? tmp : "/tmp", "/", kRootPrefix, getpid());
}

std::vector<std::string> RegularFilesUnder(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(dir, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    if (it->is_regular_file(error) && !it->is_symlink(error)) {
      files.push_back(fs::relative(it->path(), dir, error).string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

WorkDirStock::WorkDirStock(std::string root, int spares)
    : root_(CanonicalRoot(root)), spares_(static_cast<size_t>(spares > 0 ? spares : 0)) {
  lock_fd_ = open(absl::StrCat(root_, "/", kLockFile).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ >= 0) flock(lock_fd_, LOCK_EX | LOCK_NB);
  if (RootPid(fs::path(root_).filename()) == getpid()) RemoveAbandonedRoots(root_);
  thread_ = std::thread([this] { Loop(); });
}

WorkDirStock::~WorkDirStock() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
  for (const Returned& returned : returned_) Tidy(returned.dir, returned.keep_outputs);
  for (const std::string& dir : ready_) Tidy(dir, /*keep_outputs=*/false);
  std::error_code error;
  fs::remove(absl::StrCat(root_, "/", kLockFile), error);
  if (lock_fd_ >= 0) close(lock_fd_);
  rmdir(root_.c_str());  // only if empty: kept outputs stay
}

absl::StatusOr<std::string> WorkDirStock::Take() {
  {
    absl::MutexLock lock(&mu_);
    if (!ready_.empty()) {
      std::string dir = std::move(ready_.front());
      ready_.pop_front();
      return dir;
    }
  }
  return MakeExecutionDir(root_);
}

void WorkDirStock::Return(std::string dir, bool keep_outputs) {
  absl::MutexLock lock(&mu_);
  if (keep_outputs) kept_.insert(dir);
  returned_.push_back({std::move(dir), keep_outputs});
}

void WorkDirStock::RemoveAllButKeptOutputs() {
  absl::MutexLock lock(&mu_);
  std::error_code error;
  for (auto it = fs::directory_iterator(root_, error); !error && it != fs::directory_iterator();
       it.increment(error)) {
    const std::string dir = it->path().string();
    if (it->path().filename() == kLockFile) continue;
    if (kept_.contains(dir)) {
      Tidy(dir, /*keep_outputs=*/true);
    } else {
      fs::remove_all(dir, error);
    }
  }
  fs::remove(absl::StrCat(root_, "/", kLockFile), error);
  rmdir(root_.c_str());
}

void WorkDirStock::Loop() {
  for (;;) {
    std::vector<Returned> to_tidy;
    bool make = false;
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !returned_.empty() || (!failing_ && ready_.size() < spares_);
      };
      mu_.Await(absl::Condition(&has_work));
      if (stopping_) return;
      to_tidy.swap(returned_);
      make = !failing_ && ready_.size() < spares_;
    }
    for (const Returned& returned : to_tidy) Tidy(returned.dir, returned.keep_outputs);
    if (!make) continue;
    absl::StatusOr<std::string> dir = MakeExecutionDir(root_);
    absl::MutexLock lock(&mu_);
    if (dir.ok()) {
      ready_.push_back(*std::move(dir));
    } else {
      failing_ = true;  // Take() makes them on demand and reports the error
    }
  }
}

}  // namespace pyhost

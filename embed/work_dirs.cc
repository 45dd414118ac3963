#include "embed/work_dirs.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"

namespace pyhost {
namespace {

namespace fs = std::filesystem;

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

bool IsEmptyDir(const std::string& path) {
  std::error_code error;
  return fs::directory_iterator(path, error) == fs::directory_iterator() && !error;
}

// Empties dir/work. Returns true if dir can serve again (output/ is empty); else the
// outputs are the caller's, and only work/ is removed.
bool TidyExecutionDir(const std::string& dir) {
  std::error_code error;
  const std::string work = dir + "/work";
  if (IsEmptyDir(dir + "/output")) {
    if (!IsEmptyDir(work)) {
      fs::remove_all(work, error);
      fs::create_directory(work, error);
    }
    return !error && fs::is_directory(work, error);
  }
  fs::remove_all(work, error);
  return false;
}

}  // namespace

std::string DefaultWorkRoot() {
  if (access("/dev/shm", W_OK | X_OK) == 0) return absl::StrCat("/dev/shm/pyhost-", getpid());
  const char* tmp = getenv("TMPDIR");
  return absl::StrCat(tmp != nullptr && tmp[0] == '/' ? tmp : "/tmp", "/pyhost-", getpid());
}

// The root resolved (created first if needed), so the directories under it are
// canonical paths: the sandbox compares them with resolved paths as they are.
std::string CanonicalRoot(const std::string& root) {
  std::error_code error;
  fs::create_directories(root, error);
  fs::path canonical = fs::canonical(root, error);
  return error ? root : canonical.string();
}

WorkDirStock::WorkDirStock(std::string root, int spares)
    : root_(CanonicalRoot(root)), spares_(static_cast<size_t>(spares > 0 ? spares : 0)) {
  thread_ = std::thread([this] { Loop(); });
}

WorkDirStock::~WorkDirStock() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
  std::error_code error;
  for (const std::string& dir : returned_) {
    if (TidyExecutionDir(dir)) fs::remove_all(dir, error);
  }
  for (const std::string& dir : ready_) fs::remove_all(dir, error);
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

void WorkDirStock::Return(std::string dir) {
  absl::MutexLock lock(&mu_);
  returned_.push_back(std::move(dir));
}

void WorkDirStock::Loop() {
  for (;;) {
    std::vector<std::string> to_tidy;
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
    for (std::string& dir : to_tidy) {
      if (!TidyExecutionDir(dir)) continue;
      absl::MutexLock lock(&mu_);
      if (ready_.size() < spares_ * 2) {
        ready_.push_back(std::move(dir));  // left empty: serves again
      } else {
        std::error_code error;
        fs::remove_all(dir, error);
      }
    }
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

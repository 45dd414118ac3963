// A directory of a test's own under /tmp, by its canonical path (no symlinks, as the
// sandbox compares resolved paths), removed with all it holds when the object goes.
//
//   TempDir dir("pyhost-paths");
//   std::string file = dir.path() + "/x";
#ifndef PYHOST_TESTS_AUDIT_HOOKS_TEMP_DIR_H_
#define PYHOST_TESTS_AUDIT_HOOKS_TEMP_DIR_H_

#include <limits.h>
#include <stdlib.h>

#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace pyhost {

class TempDir {
 public:
  explicit TempDir(const char* prefix) {
    std::string pattern = absl::StrCat("/tmp/", prefix, "-XXXXXX");
    char resolved[PATH_MAX];
    if (mkdtemp(pattern.data()) == nullptr || realpath(pattern.c_str(), resolved) == nullptr) {
      ADD_FAILURE() << "cannot make " << pattern;
      return;
    }
    path_ = resolved;
  }
  ~TempDir() {
    if (!path_.empty()) (void)system(absl::StrCat("rm -rf '", path_, "'").c_str());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace pyhost

#endif  // PYHOST_TESTS_AUDIT_HOOKS_TEMP_DIR_H_

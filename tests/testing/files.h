// Files and directories for tests: whole files read and written, directories listed
// and removed, temporary files and directories.
#ifndef PYHOST_TESTS_TESTING_FILES_H_
#define PYHOST_TESTS_TESTING_FILES_H_

#include <filesystem>
#include <set>
#include <string>

namespace pyhost::testutil {

// The whole file, bytes as they are; "" if it cannot be read.
std::string ReadFile(const std::string& path);

// Replaces the file's contents with `text` (creating it).
void WriteFile(const std::string& path, const std::string& text);

// Whether anything is at `path`, a dangling symlink included (lstat).
bool PathExists(const std::string& path);

// The names in `dir`, without "." and ".." (empty if it cannot be read).
std::set<std::string> ListDir(const std::string& dir);

// Removes `path` and, for a directory, everything below it; symlinks are removed, never
// followed. Nothing there is not an error.
void RemoveTree(const std::string& path);

// A new directory named `prefix` + six random characters (mkdtemp), e.g.
// MakeTempDir("/tmp/hostile-"); "" if it could not be made.
std::string MakeTempDir(const std::string& prefix);

// A new file named `prefix` + six random characters (mkstemp) holding `text`; its path.
// A file that could not be made is a test failure.
std::string MakeTempFile(const std::string& prefix, const std::string& text);

// A scratch directory under the system's temporary directory ($TMPDIR or /tmp), named
// after `name`, by its canonical path (the sandbox compares resolved paths), removed
// with everything in it when this goes out of scope.
class TempDir {
 public:
  explicit TempDir(const std::string& name = "pyhost_test");
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();

  const std::filesystem::path& path() const { return path_; }
  // Writes `content` to the file `name` in the directory; its path.
  std::string Write(const std::string& name, const std::string& content) const;
  // The path of `name` in the directory (nothing is made).
  std::string PathOf(const std::string& name) const;

 private:
  std::filesystem::path path_;
};

}  // namespace pyhost::testutil

#endif  // PYHOST_TESTS_TESTING_FILES_H_

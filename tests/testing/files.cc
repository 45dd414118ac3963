#include "tests/testing/files.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <system_error>

#include <gtest/gtest.h>

namespace pyhost::testutil {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

bool PathExists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

std::set<std::string> ListDir(const std::string& dir) {
  std::set<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.insert(name);
    }
    closedir(d);
  }
  return names;
}

void RemoveTree(const std::string& path) {
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);
}

std::string MakeTempDir(const std::string& prefix) {
  std::string pattern = prefix + "XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) return "";
  return pattern;
}

std::string MakeTempFile(const std::string& prefix, const std::string& text) {
  std::string path = prefix + "XXXXXX";
  int fd = mkstemp(path.data());
  EXPECT_GE(fd, 0) << "mkstemp " << path << ": " << std::strerror(errno);
  if (fd >= 0) close(fd);
  WriteFile(path, text);
  return path;
}

TempDir::TempDir(const std::string& name) {
  std::string pattern = (std::filesystem::temp_directory_path() / name).string() + ".XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    path_ = pattern;
    return;
  }
  // Canonical (no symlinks in it): the sandbox compares resolved paths.
  path_ = std::filesystem::canonical(pattern);
}

TempDir::~TempDir() { RemoveTree(path_.string()); }

std::string TempDir::Write(const std::string& name, const std::string& content) const {
  std::string file = PathOf(name);
  WriteFile(file, content);
  return file;
}

std::string TempDir::PathOf(const std::string& name) const { return (path_ / name).string(); }

}  // namespace pyhost::testutil

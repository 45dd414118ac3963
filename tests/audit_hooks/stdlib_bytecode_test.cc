#include "audit_hooks/stdlib_bytecode.h"

#include <Python.h>  // PY_MAJOR_VERSION, PY_MINOR_VERSION

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/files.h"

namespace pyhost {
namespace {

// A marshal short-ASCII string: type 'z' | FLAG_REF, length, text.
std::string ShortString(const std::string& text) {
  return absl::StrCat(std::string(1, static_cast<char>(0xfa)),
                      std::string(1, static_cast<char>(text.size())), text);
}

// A marshal ASCII string with a four-byte little-endian length.
std::string LongString(const std::string& text) {
  std::string length(4, '\0');
  for (int i = 0; i < 4; ++i) length[i] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  return absl::StrCat("a", length, text);
}

class StdlibBytecodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string made = testutil::MakeTempDir("/tmp/pyhost-stdlib-");
    ASSERT_FALSE(made.empty()) << "mkdtemp";
    char resolved[PATH_MAX];
    ASSERT_NE(realpath(made.c_str(), resolved), nullptr);
    stdlib_ = resolved;
    ASSERT_EQ(mkdir((stdlib_ + "/__pycache__").c_str(), 0700), 0);
    source_ = stdlib_ + "/mod.py";
    body_ = absl::StrCat("\xe3...code...", ShortString(source_), "...rest");
    Write(CachedBytecodePath(source_), std::string(16, 'H') + body_);
  }
  void TearDown() override { testutil::RemoveTree(stdlib_); }

  static void Write(const std::string& path, const std::string& contents) {
    testutil::WriteFile(path, contents);
  }

  std::string stdlib_, source_, body_;
};

TEST_F(StdlibBytecodeTest, CachePathUsesThisInterpretersTag) {
  EXPECT_EQ(
      CachedBytecodePath("/a/b/json.py"),
      absl::StrCat("/a/b/__pycache__/json.cpython-", PY_MAJOR_VERSION, PY_MINOR_VERSION, ".pyc"));
}

TEST_F(StdlibBytecodeTest, DataNamingNoStdlibFileIsAccepted) {
  EXPECT_TRUE(CheckStdlibClaim(absl::StrCat("code", ShortString("/work/tool.py")), stdlib_).ok());
}

TEST_F(StdlibBytecodeTest, TheFilesOwnCachedBytecodeIsAccepted) {
  EXPECT_TRUE(CheckStdlibClaim(body_, stdlib_).ok());
}

TEST_F(StdlibBytecodeTest, OtherBytecodeClaimingTheFileIsRefusedNamingIt) {
  std::string forged = absl::StrCat("\xe3...evil...", ShortString(source_), "...rest");
  absl::Status status = CheckStdlibClaim(forged, stdlib_);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(status.message().find(source_), std::string::npos) << status;
}

TEST_F(StdlibBytecodeTest, LongStringFormsAreRecognized) {
  std::string body = absl::StrCat("\xe3...", LongString(source_), "...");
  EXPECT_FALSE(CheckStdlibClaim(body, stdlib_).ok());
  Write(CachedBytecodePath(source_), std::string(16, 'H') + body);
  EXPECT_TRUE(CheckStdlibClaim(body, stdlib_).ok());
}

TEST_F(StdlibBytecodeTest, GenuineBytecodeOfAnotherFileDoesNotVouchForAForgedOne) {
  // The forged data names a file with no cache, and a real one only in passing.
  std::string forged = absl::StrCat(ShortString(stdlib_ + "/zz.py"), ShortString(source_));
  EXPECT_FALSE(CheckStdlibClaim(forged, stdlib_).ok());
}

TEST_F(StdlibBytecodeTest, PathsLeavingTheStdlibCannotVouch) {
  // A cache the code could write, reached through "..": never the stdlib's.
  std::string outside = testutil::MakeTempDir("/tmp/pyhost-outside-");
  ASSERT_FALSE(outside.empty()) << "mkdtemp";
  ASSERT_EQ(mkdir((outside + "/__pycache__").c_str(), 0700), 0);
  std::string sneaky =
      absl::StrCat(stdlib_, "/..", outside.substr(4), "/evil.py");  // stdlib/../<tmp>/evil.py
  std::string body = absl::StrCat("x", ShortString(sneaky));
  Write(CachedBytecodePath(absl::StrCat(outside, "/evil.py")), std::string(16, 'H') + body);
  EXPECT_FALSE(CheckStdlibClaim(body, stdlib_).ok());
  testutil::RemoveTree(outside);
}

TEST_F(StdlibBytecodeTest, FrozenAndPyhostNamesAreClaimsToo) {
  EXPECT_FALSE(
      CheckStdlibClaim(absl::StrCat("x", ShortString("<frozen importlib._bootstrap>")), stdlib_)
          .ok());
  EXPECT_FALSE(CheckStdlibClaim(absl::StrCat("x", LongString("<pyhost_support>")), stdlib_).ok());
  EXPECT_TRUE(CheckStdlibClaim(absl::StrCat("x", ShortString("not <frozen os>")), stdlib_).ok());
  EXPECT_TRUE(IsTrustedFilename("<frozen os>", stdlib_));
  EXPECT_TRUE(IsTrustedFilename(stdlib_ + "/json/__init__.py", stdlib_));
  EXPECT_FALSE(IsTrustedFilename("<string>", stdlib_));
}

TEST_F(StdlibBytecodeTest, PrefixInsideANonStringIsRefused) {
  EXPECT_FALSE(CheckStdlibClaim(absl::StrCat("s\x05\0\0\0", stdlib_, "/x"), stdlib_).ok());
}

}  // namespace
}  // namespace pyhost

#include "embed/work_dirs.h"

#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

namespace pyhost {
namespace {

namespace fs = std::filesystem;

std::string FreshRoot(const char* name) {
  std::string root = ::testing::TempDir() + "/work_dirs_test_" + name;
  fs::remove_all(root);
  return root;
}

// Waits (bounded) until `done` holds; the stock works on its own thread.
template <typename F>
bool Eventually(F done) {
  for (int i = 0; i < 400; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

TEST(WorkDirStockTest, HandsOutCanonicalDirectoriesWithWorkAndOutput) {
  std::string root = FreshRoot("canonical");
  WorkDirStock stock(root + "/./sub/../sub", 2);
  EXPECT_EQ(stock.root(), fs::canonical(root + "/sub").string());
  absl::StatusOr<std::string> a = stock.Take();
  absl::StatusOr<std::string> b = stock.Take();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  for (const std::string& dir : {*a, *b}) {
    EXPECT_TRUE(fs::is_directory(dir + "/work"));
    EXPECT_TRUE(fs::is_directory(dir + "/output"));
    EXPECT_EQ(dir.rfind(stock.root() + "/", 0), 0u);
  }
}

// A predictable root (/dev/shm/pyhost-<pid>) can be planted by anyone before the
// host starts, a child of process isolation included: a symlink there is not followed,
// a fresh root is made beside it.
TEST(WorkDirStockTest, APlantedRootIsNotUsed) {
  std::string root = FreshRoot("planted");
  std::string target = FreshRoot("planted_target");
  fs::create_directories(target);
  fs::create_directories(fs::path(root).parent_path());
  fs::create_directory_symlink(target, root);
  {
    WorkDirStock stock(root, 1);
    EXPECT_NE(stock.root(), fs::canonical(target).string());
    EXPECT_EQ(stock.root().rfind(fs::canonical(fs::path(root).parent_path()).string() + "/", 0),
              0u);
    absl::StatusOr<std::string> dir = stock.Take();
    ASSERT_TRUE(dir.ok()) << dir.status();
    EXPECT_EQ(dir->rfind(fs::canonical(target).string(), 0), std::string::npos) << *dir;
    EXPECT_TRUE(fs::is_empty(target));
  }
  for (const auto& entry : fs::directory_iterator(fs::path(root).parent_path())) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(fs::path(root).filename().string() + "-", 0) == 0) fs::remove_all(entry.path());
  }
  fs::remove(root);
  fs::remove_all(target);
}

TEST(WorkDirStockTest, UsedDirectoriesAreRemovedReportedOutputsAreKept) {
  std::string root = FreshRoot("reuse");
  std::string kept;
  {
    WorkDirStock stock(root, 1);
    std::string used = *stock.Take();
    std::ofstream(used + "/work/scratch.txt") << "scratch";
    stock.Return(used, /*keep_outputs=*/false);
    ASSERT_TRUE(Eventually([&] { return !fs::exists(used + "/work/scratch.txt"); }));
    kept = *stock.Take();
    std::ofstream(kept + "/output/report.txt") << "result";
    std::ofstream(kept + "/work/tmp.txt") << "tmp";
    stock.Return(kept, /*keep_outputs=*/true);
    ASSERT_TRUE(Eventually([&] { return !fs::exists(kept + "/work"); }));
    for (int i = 0; i < 4; ++i) {
      std::string dir = *stock.Take();
      EXPECT_NE(dir, kept) << "a directory holding outputs was handed out again";
      stock.Return(dir, false);
    }
  }
  // Destroyed: spares gone, the caller's outputs stay (so the root stays too).
  EXPECT_TRUE(fs::exists(kept + "/output/report.txt"));
  size_t left = 0;
  for (const auto& entry : fs::directory_iterator(root)) left += entry.is_directory();
  EXPECT_EQ(left, 1u);
  fs::remove_all(root);
}

TEST(WorkDirStockTest, RootIsRemovedWhenNothingIsKept) {
  std::string root = FreshRoot("cleanup");
  {
    WorkDirStock stock(root, 3);
    std::string dir = *stock.Take();
    stock.Return(dir, false);
  }
  EXPECT_FALSE(fs::exists(root));
}

TEST(WorkDirStockTest, UnwritableRootIsAnError) {
  WorkDirStock stock("/proc/pyhost-cannot-be-here", 1);
  absl::StatusOr<std::string> dir = stock.Take();
  EXPECT_FALSE(dir.ok());
}

}  // namespace
}  // namespace pyhost

// RemoveTree: what std::filesystem::remove_all does, without it (Note [libtorch's
// std::filesystem] in harness/util/fs.cpp).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "harness/util/fs.h"

namespace moebench {
namespace {

namespace fs = std::filesystem;

TEST(RemoveTree, RemovesNestedFoldersAndLinksButNotWhatLinksPointTo) {
  const fs::path root = fs::temp_directory_path() / ("moebench_fs_" + std::to_string(getpid()));
  const fs::path outside = root.string() + "_outside";
  fs::create_directories(root / "a" / "b");
  fs::create_directories(outside);
  std::ofstream(root / "a" / "b" / "f.txt") << "x";
  std::ofstream(root / "g.txt") << "y";
  std::ofstream(outside / "keep.txt") << "z";
  fs::create_directory_symlink(outside, root / "a" / "link");
  RemoveTree(root.string());
  EXPECT_FALSE(fs::exists(root));
  EXPECT_TRUE(fs::exists(outside / "keep.txt"));  // the link went, not its target's contents
  RemoveTree(outside.string());
  EXPECT_FALSE(fs::exists(outside));
}

TEST(RemoveTree, AMissingPathIsNoErrorAndAFileIsRemoved) {
  const fs::path f = fs::temp_directory_path() / ("moebench_fs_file_" + std::to_string(getpid()));
  EXPECT_NO_THROW(RemoveTree(f.string()));
  std::ofstream(f) << "x";
  RemoveTree(f.string());
  EXPECT_FALSE(fs::exists(f));
}

TEST(RemoveTree, AFailureNamesTheEntry) {
  // A path through a regular file: nftw cannot walk it (ENOTDIR), and says which.
  const fs::path f = fs::temp_directory_path() / ("moebench_fs_nd_" + std::to_string(getpid()));
  std::ofstream(f) << "x";
  try {
    RemoveTree((f / "child").string());
    FAIL() << "no error for a path under a file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find((f / "child").string()), std::string::npos) << e.what();
  }
  RemoveTree(f.string());
}

}  // namespace
}  // namespace moebench

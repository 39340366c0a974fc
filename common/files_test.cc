#include "common/files.h"

#include <sys/stat.h>

#include <filesystem>

#include "gtest/gtest.h"

namespace swarm {
namespace {

TEST(Files, WriteFileAtomically_ReplacesWithModeAndLeavesNoTemporary) {
  const std::string dir = ::testing::TempDir() + "/files_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/record";
  ASSERT_TRUE(WriteFileAtomically(path, "first", 0600, /*sync=*/true).ok());
  ASSERT_TRUE(WriteFileAtomically(path, std::string("sec\0ond", 7), 0600).ok());
  EXPECT_EQ(*ReadFile(path), std::string("sec\0ond", 7));
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir),
                          std::filesystem::directory_iterator()),
            1);
  std::filesystem::remove_all(dir);
}

TEST(Files, ErrorsNameTheFile) {
  absl::StatusOr<std::string> missing = ReadFile("/nonexistent/file");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(missing.status().message()).find("/nonexistent/file"), std::string::npos);
  absl::Status s = WriteFileAtomically("/nonexistent/dir/file", "x");
  EXPECT_NE(std::string(s.message()).find("/nonexistent/dir/file"), std::string::npos) << s;
}

}  // namespace
}  // namespace swarm

#include "common/id.h"

#include <set>

#include "gtest/gtest.h"

namespace swarm {
namespace {

TEST(NewId, HasDockerShape) {
  for (int i = 0; i < 1000; ++i) {
    std::string id = NewId(SecureRandom::Get());
    ASSERT_EQ(id.size(), 25u) << id;
    ASSERT_TRUE(IsValidId(id)) << id;
  }
}

TEST(NewId, IsUnique) {
  std::set<std::string> ids;
  for (int i = 0; i < 10000; ++i) ids.insert(NewId(SecureRandom::Get()));
  EXPECT_EQ(ids.size(), 10000u);
}

TEST(NewId, SeededRandomReplays) {
  SeededRandom a(42), b(42), c(43);
  std::string first = NewId(a);
  EXPECT_EQ(first, NewId(b));
  EXPECT_NE(first, NewId(c));
}

TEST(NewId, LeadingZerosKeepTheLength) {
  // A source of all-zero bytes encodes 0: still 25 characters.
  struct Zeros : Random {
    void Fill(void* buf, size_t len) override { memset(buf, 0, len); }
  } zeros;
  EXPECT_EQ(NewId(zeros), std::string(25, '0'));
}

TEST(IsValidId, RejectsOtherShapes) {
  EXPECT_FALSE(IsValidId(""));
  EXPECT_FALSE(IsValidId("abc"));
  EXPECT_FALSE(IsValidId(std::string(25, 'A')));
  EXPECT_FALSE(IsValidId(std::string(24, 'a') + "-"));
  EXPECT_FALSE(IsValidId(std::string(26, 'a')));
  EXPECT_TRUE(IsValidId(std::string(25, 'z')));
}

TEST(Random, UniformStaysInRange) {
  SeededRandom r(1);
  std::set<uint64_t> seen;
  for (int i = 0; i < 1000; ++i) {
    uint64_t v = r.Uniform(7);
    ASSERT_LT(v, 7u);
    seen.insert(v);
  }
  EXPECT_EQ(seen.size(), 7u);
}

}  // namespace
}  // namespace swarm

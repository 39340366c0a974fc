#include "common/thread_priority.h"

#include <thread>

#include "gtest/gtest.h"

namespace swarm {
namespace {

TEST(ThreadPriorityTest, SetThreadNice_ActsOnTheCallingThreadOnly) {
  const int mine = ThreadNice();
  int seen_inside = 99;
  std::thread t([&] {
    EXPECT_TRUE(SetThreadNice(mine + 3).ok());
    seen_inside = ThreadNice();
  });
  t.join();
  EXPECT_EQ(seen_inside, mine + 3);
  EXPECT_EQ(ThreadNice(), mine);
}

TEST(ThreadPriorityTest, ScopedThreadNice_RestoresTheValueItFound) {
  std::thread t([] {
    ASSERT_TRUE(SetThreadNice(2).ok());
    {
      ScopedThreadNice raised(kRaftThreadNice);
      // Root (as in CI, and as swarmd runs) may raise a thread; others keep their value.
      EXPECT_EQ(ThreadNice(), kRaftThreadNice);
    }
    EXPECT_EQ(ThreadNice(), 2);
  });
  t.join();
}

TEST(ThreadPriorityTest, SetThreadNice_OutOfRangeIsClampedByTheKernel) {
  std::thread t([] {
    EXPECT_TRUE(SetThreadNice(100).ok());
    EXPECT_EQ(ThreadNice(), 19);
  });
  t.join();
}

}  // namespace
}  // namespace swarm

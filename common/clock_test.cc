#include "common/clock.h"

#include <thread>

#include "gtest/gtest.h"

namespace swarm {
namespace {

TEST(FakeClock, MovesOnlyWhenAdvanced) {
  FakeClock clock;
  absl::Time t0 = clock.Now();
  EXPECT_EQ(clock.Now(), t0);
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(clock.Now(), t0 + absl::Seconds(5));
}

TEST(FakeClock, SleepForWakesWhenTimeComes) {
  FakeClock clock;
  absl::Time t0 = clock.Now();
  std::thread sleeper([&] { clock.SleepFor(absl::Seconds(10)); });
  while (clock.Sleepers() == 0) std::this_thread::yield();
  clock.Advance(absl::Seconds(9));
  EXPECT_EQ(clock.Sleepers(), 1);  // not yet
  clock.Advance(absl::Seconds(1));
  sleeper.join();
  EXPECT_EQ(clock.Sleepers(), 0);
  EXPECT_EQ(clock.Now(), t0 + absl::Seconds(10));
}

TEST(RealClock, FollowsWallTime) {
  absl::Time before = absl::Now();
  absl::Time now = Clock::Real().Now();
  EXPECT_GE(now, before);
  EXPECT_LT(now - before, absl::Seconds(5));
}

}  // namespace
}  // namespace swarm

#include "agent/runtime/health.h"

#include "gtest/gtest.h"

namespace swarm::agent::runtime {
namespace {

TEST(NextHealth_Test, OneSuccessMakesHealthyAndResetsStreak) {
  HealthState s;
  s.failing_streak = 2;
  s = NextHealth(s, true, false, 3);
  EXPECT_EQ(s.status, HealthStatus::kHealthy);
  EXPECT_EQ(s.failing_streak, 0);
}

TEST(NextHealth_Test, RetriesConsecutiveFailuresMakeUnhealthy) {
  HealthState s = NextHealth(HealthState{}, true, false, 3);
  s = NextHealth(s, false, false, 3);
  s = NextHealth(s, false, false, 3);
  EXPECT_EQ(s.status, HealthStatus::kHealthy);
  EXPECT_EQ(s.failing_streak, 2);
  s = NextHealth(s, false, false, 3);
  EXPECT_EQ(s.status, HealthStatus::kUnhealthy);
}

TEST(NextHealth_Test, FailuresInStartPeriodDoNotCount) {
  HealthState s;
  for (int i = 0; i < 10; ++i) s = NextHealth(s, false, true, 1);
  EXPECT_EQ(s.status, HealthStatus::kStarting);
  EXPECT_EQ(s.failing_streak, 0);
  s = NextHealth(s, true, true, 1);  // a success during the start period counts
  EXPECT_EQ(s.status, HealthStatus::kHealthy);
}

}  // namespace
}  // namespace swarm::agent::runtime

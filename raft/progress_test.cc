#include "raft/progress.h"

#include "gtest/gtest.h"

namespace swarm::raft {
namespace {

TEST(Inflights, FullByCountAndFreedInOrder) {
  Inflights in(3, 0);
  in.Add(1, 10);
  in.Add(2, 10);
  EXPECT_FALSE(in.Full());
  in.Add(3, 10);
  EXPECT_TRUE(in.Full());
  in.FreeLE(2);
  EXPECT_EQ(in.Count(), 1u);
  // Wraps around the ring.
  in.Add(4, 10);
  in.Add(5, 10);
  EXPECT_TRUE(in.Full());
  in.FreeLE(4);
  EXPECT_EQ(in.Count(), 1u);
  in.FreeLE(9);
  EXPECT_EQ(in.Count(), 0u);
}

TEST(Inflights, FullByBytes) {
  Inflights in(100, 25);
  in.Add(1, 10);
  in.Add(2, 10);
  EXPECT_FALSE(in.Full());
  in.Add(3, 10);
  EXPECT_TRUE(in.Full());
  in.FreeLE(1);
  EXPECT_FALSE(in.Full());
}

TEST(Progress, MaybeDecrTo_InProbeOnlyForTheLastProbe) {
  Progress pr(10, 8, 0, false);
  pr.match = 3;
  EXPECT_FALSE(pr.MaybeDecrTo(5, 5));  // not the probe we sent (next - 1 = 9)
  EXPECT_TRUE(pr.MaybeDecrTo(9, 6));
  EXPECT_EQ(pr.next, 7u);  // the follower's hint + 1
  EXPECT_FALSE(pr.msg_app_flow_paused);
}

// Found by the simulation (seed 27): a delayed rejection that still matches next - 1 must not
// move next back to (or below) match.
TEST(Progress, MaybeDecrTo_StaleRejectionNeverGoesBelowMatch) {
  Progress pr(26, 8, 0, false);
  pr.match = 25;
  EXPECT_TRUE(pr.MaybeDecrTo(25, 24));
  EXPECT_EQ(pr.next, 26u);
  EXPECT_LT(pr.match, pr.next);
}

TEST(Progress, MaybeDecrTo_InReplicateFallsBackToMatch) {
  Progress pr(10, 8, 0, false);
  pr.match = 5;
  pr.BecomeReplicate();
  EXPECT_FALSE(pr.MaybeDecrTo(4, 4));  // stale
  EXPECT_TRUE(pr.MaybeDecrTo(8, 7));
  EXPECT_EQ(pr.next, 6u);
}

TEST(Progress, ReplicateIsPausedWhenWindowFull) {
  Progress pr(1, 2, 0, false);
  pr.BecomeReplicate();
  pr.SentEntries(3, 1);
  EXPECT_FALSE(pr.IsPaused());
  pr.SentEntries(5, 1);
  EXPECT_TRUE(pr.IsPaused());
  EXPECT_EQ(pr.next, 6u);
  pr.MaybeUpdate(3);
  pr.inflights.FreeLE(3);
  EXPECT_FALSE(pr.IsPaused());
}

TEST(Progress, BecomeProbeAfterSnapshotStartsAfterIt) {
  Progress pr(1, 8, 0, false);
  pr.BecomeSnapshot(20);
  EXPECT_TRUE(pr.IsPaused());
  pr.BecomeProbe();
  EXPECT_EQ(pr.next, 21u);
}

TEST(ProgressTracker, CommittedIsTheQuorumMatch) {
  ProgressTracker t(8, 0);
  t.SetConfig(ConfState{{1, 2, 3, 4, 5}, {6}}, 1);
  uint64_t matches[] = {0, 9, 7, 5, 3, 1, 100};
  for (uint64_t id = 1; id <= 6; ++id) t.Get(id)->match = matches[id];
  // Sorted voter matches 1,3,5,7,9: three voters have at least 5. The learner never counts.
  EXPECT_EQ(t.Committed(), 5u);
}

TEST(ProgressTracker, TallyVotes) {
  ProgressTracker t(8, 0);
  t.SetConfig(ConfState{{1, 2, 3}, {4}}, 1);
  t.RecordVote(4, true);  // learners do not vote
  t.RecordVote(1, true);
  EXPECT_EQ(t.TallyVotes(nullptr, nullptr), ProgressTracker::VoteResult::kPending);
  t.RecordVote(2, false);
  EXPECT_EQ(t.TallyVotes(nullptr, nullptr), ProgressTracker::VoteResult::kPending);
  t.RecordVote(3, false);
  EXPECT_EQ(t.TallyVotes(nullptr, nullptr), ProgressTracker::VoteResult::kLost);
  t.ResetVotes();
  t.RecordVote(1, true);
  t.RecordVote(3, true);
  EXPECT_EQ(t.TallyVotes(nullptr, nullptr), ProgressTracker::VoteResult::kWon);
}

TEST(ProgressTracker, SetConfigKeepsProgressOfStayingMembers) {
  ProgressTracker t(8, 0);
  t.SetConfig(ConfState{{1, 2}, {}}, 5);
  t.Get(2)->match = 4;
  t.SetConfig(ConfState{{1, 2, 3}, {}}, 9);
  EXPECT_EQ(t.Get(2)->match, 4u);
  EXPECT_EQ(t.Get(3)->next, 9u);
  t.SetConfig(ConfState{{1, 3}, {2}}, 9);
  EXPECT_TRUE(t.Get(2)->is_learner);
  EXPECT_TRUE(t.IsLearner(2));
  EXPECT_FALSE(t.IsVoter(2));
}

}  // namespace
}  // namespace swarm::raft

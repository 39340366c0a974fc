// The contract between the core and its caller: what Ready holds, what may be sent before the
// state is durable, and recovery from storage.
#include "raft/raw_node.h"

#include "gtest/gtest.h"
#include "raft/test_network.h"

namespace swarm::raft {
namespace {

std::unique_ptr<RawNode> NewNode(uint64_t id, MemoryStorage* s) {
  auto n = RawNode::Create(testing::TestConfig(id, s));
  EXPECT_TRUE(n.ok()) << n.status();
  return *std::move(n);
}

// Persists a Ready the way the caller must.
void Persist(MemoryStorage& s, const Ready& rd) {
  if (!rd.snapshot.empty()) {
    ASSERT_TRUE(s.ApplySnapshot(rd.snapshot).ok());
  }
  ASSERT_TRUE(s.Append(rd.entries).ok());
  if (!rd.hard_state.empty()) s.SetHardState(rd.hard_state);
}

TEST(RawNode, Create_ValidatesConfig) {
  MemoryStorage s;
  Config c = testing::TestConfig(0, &s);
  EXPECT_EQ(RawNode::Create(c).status().code(), absl::StatusCode::kInvalidArgument);
  c = testing::TestConfig(1, &s);
  c.heartbeat_tick = 10;
  EXPECT_EQ(RawNode::Create(c).status().code(), absl::StatusCode::kInvalidArgument);
  c = testing::TestConfig(1, nullptr);
  EXPECT_EQ(RawNode::Create(c).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RawNode, Step_RefusesLocalMessagesFromTheNetwork) {
  MemoryStorage s;
  s.Bootstrap(ConfState{{1}, {}});
  auto n = NewNode(1, &s);
  Message m;
  m.type = MessageType::kHup;
  m.from = 2;
  EXPECT_EQ(n->Step(m).code(), absl::StatusCode::kInvalidArgument);
}

TEST(RawNode, LeaderCommitsOnlyWhatItPersisted) {
  MemoryStorage s;
  s.Bootstrap(ConfState{{1}, {}});
  auto n = NewNode(1, &s);
  ASSERT_TRUE(n->Campaign().ok());
  // Becoming leader appends the no-op: it is to be persisted, not yet committed.
  Ready rd = n->GetReady();
  ASSERT_TRUE(rd.soft_state.has_value());
  EXPECT_EQ(rd.soft_state->state, StateType::kLeader);
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_TRUE(rd.must_sync);
  const uint64_t noop = rd.entries[0].index;
  for (const Entry& e : rd.committed_entries) EXPECT_LT(e.index, noop);
  Persist(s, rd);
  n->Advance();
  // Now durable: it commits.
  ASSERT_TRUE(n->HasReady());
  rd = n->GetReady();
  ASSERT_FALSE(rd.committed_entries.empty());
  EXPECT_EQ(rd.committed_entries.back().index, noop);
  EXPECT_FALSE(rd.must_sync);  // only the commit index moved
  Persist(s, rd);
  n->Advance();
  EXPECT_FALSE(n->HasReady());
}

TEST(RawNode, AcknowledgementsWaitForPersistence) {
  MemoryStorage s1, s2;
  s1.Bootstrap(ConfState{{1, 2}, {}});
  s2.Bootstrap(ConfState{{1, 2}, {}});
  auto n1 = NewNode(1, &s1);
  auto n2 = NewNode(2, &s2);
  ASSERT_TRUE(n1->Campaign().ok());
  Ready rd1 = n1->GetReady();
  // The vote request may leave before the candidate's term is durable.
  ASSERT_EQ(rd1.messages.size(), 1u);
  EXPECT_EQ(rd1.messages[0].type, MessageType::kPreVote);
  EXPECT_TRUE(rd1.messages_after_persist.empty());
  Persist(s1, rd1);
  n1->Advance();

  ASSERT_TRUE(n2->Step(rd1.messages[0]).ok());
  Ready rd2 = n2->GetReady();
  // A vote (or pre-vote) answer leaves only after the voter's state is durable.
  EXPECT_TRUE(rd2.messages.empty());
  ASSERT_EQ(rd2.messages_after_persist.size(), 1u);
  EXPECT_EQ(rd2.messages_after_persist[0].type, MessageType::kPreVoteResp);
  Persist(s2, rd2);
  n2->Advance();
}

TEST(RawNode, GetReadyTwiceWithoutAdvanceIsFatal) {
  MemoryStorage s;
  s.Bootstrap(ConfState{{1}, {}});
  auto n = NewNode(1, &s);
  ASSERT_TRUE(n->Campaign().ok());
  (void)n->GetReady();
  EXPECT_DEATH((void)n->GetReady(), "GetReady called again before Advance");
}

TEST(RawNode, RestartRecoversStateAndMembershipFromStorage) {
  testing::TestNetwork net({1, 2, 3});
  net.AddBlankNode(4);
  net.Campaign(1);
  ASSERT_TRUE(net.Propose(1, "a").ok());
  // An uncommitted membership change is in 2's log when everything restarts.
  net.Isolate(3);
  net.SetFilter([](Message& m) { return m.type == MessageType::kAppResp; });
  ASSERT_TRUE(
      net.node(1).ProposeConfChange(ConfChange{ConfChangeType::kAddLearnerNode, 4, ""}).ok());
  net.Stabilize();
  const raft::Status before = net.node(2).GetStatus();
  net.Crash(2);
  net.Restart(2);
  const raft::Status after = net.node(2).GetStatus();
  EXPECT_EQ(after.hard_state, before.hard_state);
  EXPECT_EQ(after.conf_state, (ConfState{{1, 2, 3}, {4}}));
  EXPECT_EQ(after.soft_state.state, StateType::kFollower);
}

TEST(RawNode, ProposeBatch_OneAppendCarriesAll) {
  testing::TestNetwork net({1, 2, 3});
  net.Campaign(1);
  net.sent().clear();
  ASSERT_TRUE(net.node(1).ProposeBatch({"a", "b", "c"}).ok());
  net.Stabilize();
  EXPECT_EQ(net.applied(2), (std::vector<std::string>{"a", "b", "c"}));
  // One append per follower with the batch, then one per follower with the commit index.
  EXPECT_EQ(net.sent()[MessageType::kApp], 4);
}

}  // namespace
}  // namespace swarm::raft

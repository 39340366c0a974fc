// Behaviour of the Raft core, one test per rule of the paper or feature of the issue, driven
// through TestNetwork (the full Ready loop over a network that tests cut and filter).
#include "raft/raft.h"

#include "gtest/gtest.h"
#include "raft/test_network.h"

namespace swarm::raft {

void PrintTo(StateType s, std::ostream* os) { *os << StateTypeName(s); }
void PrintTo(const ConfState& cs, std::ostream* os) {
  *os << "voters{";
  for (uint64_t v : cs.voters) *os << v << " ";
  *os << "} learners{";
  for (uint64_t v : cs.learners) *os << v << " ";
  *os << "}";
}

namespace {

using testing::TestNetwork;

void NoCheckQuorumNoPreVote(Config& c) {
  c.check_quorum = false;
  c.pre_vote = false;
}

// ---- Elections ----

TEST(Election, CampaignWinsWithAQuorum) {
  TestNetwork net({1, 2, 3});
  net.Campaign(1);
  EXPECT_EQ(net.Leader(), 1u);
  EXPECT_EQ(net.State(2), StateType::kFollower);
  EXPECT_EQ(net.Term(1), 2u);  // the bootstrap log is term 1
  EXPECT_EQ(net.Term(3), 2u);
}

TEST(Election, CampaignWithoutQuorumDoesNotWin) {
  TestNetwork net({1, 2, 3, 4, 5});
  net.Isolate(1);
  net.Cut(2, 3);
  net.Cut(2, 4);
  net.Cut(2, 5);
  net.Campaign(1);
  EXPECT_NE(net.State(1), StateType::kLeader);
}

TEST(Election, FollowerCampaignsAfterRandomizedTimeout) {
  TestNetwork net({1, 2, 3});
  // The timeout is drawn from [election_tick, 2 * election_tick): 20 ticks always suffice.
  net.Tick(2, 20);
  EXPECT_EQ(net.Leader(), 2u);
}

TEST(Election, RandomizedTimeoutsDiffer) {
  MemoryStorage s;
  s.Bootstrap(ConfState{{1, 2, 3}, {}});
  std::set<int> timeouts;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    Config c = testing::TestConfig(1, &s);
    c.seed = seed;
    Raft r(c);
    EXPECT_GE(r.randomized_election_timeout(), 10);
    EXPECT_LT(r.randomized_election_timeout(), 20);
    timeouts.insert(r.randomized_election_timeout());
  }
  EXPECT_GT(timeouts.size(), 5u);
}

TEST(Election, VoteOnlyForUpToDateLogs) {
  TestNetwork net({1, 2, 3});
  net.Campaign(1);
  ASSERT_TRUE(net.Propose(1, "a").ok());
  // Node 3 misses "b": its log is behind.
  net.Isolate(3);
  ASSERT_TRUE(net.Propose(1, "b").ok());
  net.Heal();
  net.Isolate(1);
  // 2 has everything, 3 does not: 3 can not win (2 refuses), 2 can.
  net.Campaign(3);
  EXPECT_NE(net.State(3), StateType::kLeader);
  net.Campaign(2);
  EXPECT_EQ(net.State(2), StateType::kLeader);
}

TEST(Election, OneVotePerTerm) {
  TestNetwork net({1, 2, 3}, {}, NoCheckQuorumNoPreVote);
  // 3 votes for 1; 2's request for the same term is then refused by 3.
  net.Cut(1, 2);
  net.Campaign(1);
  ASSERT_EQ(net.State(1), StateType::kLeader);
  Message vote;
  vote.type = MessageType::kVote;
  vote.from = 2;
  vote.to = 3;
  vote.term = net.Term(3);
  vote.index = 10;
  vote.log_term = 10;
  net.Deliver(vote);
  EXPECT_EQ(net.node(3).GetStatus().hard_state.vote, 1u);
  EXPECT_EQ(net.sent()[MessageType::kVoteResp], 2);  // the first grant, and this refusal
}

// A node cut off from the others, without pre-vote, raises its term on every timeout and
// disrupts the leader when it comes back. With pre-vote it cannot: nobody would vote for it.
TEST(PreVote, RejoiningNodeDoesNotDisruptTheTerm) {
  TestNetwork net({1, 2, 3}, {}, [](Config& c) {
    c.check_quorum = false;
    c.pre_vote = true;
  });
  net.Campaign(1);
  const uint64_t term = net.Term(1);
  net.Isolate(3);
  net.Tick(3, 100);
  EXPECT_EQ(net.Term(3), term);  // pre-votes failed: the term never moved
  net.Heal();
  net.TickAll(5);
  EXPECT_EQ(net.Leader(), 1u);
  EXPECT_EQ(net.Term(1), term);
}

TEST(PreVote, WithoutItARejoiningNodeDisrupts) {
  TestNetwork net({1, 2, 3}, {}, NoCheckQuorumNoPreVote);
  net.Campaign(1);
  const uint64_t term = net.Term(1);
  net.Isolate(3);
  net.Tick(3, 100);
  EXPECT_GT(net.Term(3), term);
  net.Heal();
  net.TickAll(5);
  EXPECT_GT(net.Term(1), term);  // the leader was forced into the higher term
}

TEST(CheckQuorum, IsolatedLeaderStepsDown) {
  TestNetwork net({1, 2, 3});
  net.Campaign(1);
  net.Isolate(1);
  // The first check still sees the answers from before the cut; the second one steps down.
  net.Tick(1, 10);
  EXPECT_EQ(net.State(1), StateType::kLeader);
  net.Tick(1, 10);
  EXPECT_EQ(net.State(1), StateType::kFollower);
}

TEST(CheckQuorum, LeaderLeaseRefusesDisruptiveVotes) {
  TestNetwork net({1, 2, 3}, {}, [](Config& c) { c.pre_vote = false; });
  net.Campaign(1);
  const uint64_t term = net.Term(1);
  // 3 asks for votes in a higher term while 2 has just heard from the leader: ignored.
  Message vote;
  vote.type = MessageType::kVote;
  vote.from = 3;
  vote.to = 2;
  vote.term = term + 1;
  vote.index = 100;
  vote.log_term = term;
  net.Deliver(vote);
  EXPECT_EQ(net.Term(2), term);
  EXPECT_EQ(net.Leader(), 1u);
}

// ---- Replication ----

TEST(Replication, ProposalsCommitOnAllNodes) {
  TestNetwork net({1, 2, 3});
  net.Campaign(1);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(net.Propose(1, "v" + std::to_string(i)).ok());
  for (uint64_t id : {1, 2, 3}) {
    ASSERT_EQ(net.applied(id).size(), 10u) << id;
    EXPECT_EQ(net.applied(id)[9], "v9");
  }
}

TEST(Replication, SingleNodeCommitsAlone) {
  TestNetwork net({1});
  net.Campaign(1);
  ASSERT_EQ(net.Leader(), 1u);
  ASSERT_TRUE(net.Propose(1, "x").ok());
  EXPECT_EQ(net.applied(1), std::vector<std::string>{"x"});
}

TEST(Replication, FollowerForwardsProposals) {
  TestNetwork net({1, 2, 3});
  net.Campaign(1);
  ASSERT_TRUE(net.Propose(2, "via-follower").ok());
  EXPECT_EQ(net.applied(3), std::vector<std::string>{"via-follower"});
}

TEST(Replication, FollowerRejectsProposalsWhenForwardingIsDisabled) {
  TestNetwork net({1, 2, 3}, {}, [](Config& c) { c.disable_proposal_forwarding = true; });
  net.Campaign(1);
  absl::Status s = net.Propose(2, "x");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(s.message()).find("send the proposal to the leader (1)"), std::string::npos)
      << s;
  EXPECT_TRUE(net.applied(1).empty());
}

TEST(Replication, ProposalWithoutLeaderIsRejected) {
  TestNetwork net({1, 2, 3});
  EXPECT_EQ(net.Propose(1, "x").code(), absl::StatusCode::kFailedPrecondition);
}

// The paper's Figure 8: a leader must not commit an entry of an earlier term by counting
// replicas, because a later leader may still overwrite it. Index base + 1 plays the paper's
// index 2.
TEST(Replication, Figure8_OldTermEntryIsNotCommittedByCounting) {
  TestNetwork net({1, 2, 3, 4, 5}, {}, NoCheckQuorumNoPreVote);
  // (a) S1 leads term 1 and replicates "a" (index 2) to S2 only.
  net.Campaign(1);
  ASSERT_EQ(net.Leader(), 1u);
  const uint64_t base = net.storage(1).LastIndex();  // the no-op of term 1's leader
  net.Isolate(3);
  net.Isolate(4);
  net.Isolate(5);
  ASSERT_TRUE(net.Propose(1, "a").ok());
  EXPECT_EQ(net.Committed(1), base);
  // (b) S1 crashes; S5 wins term 2 with S3 and S4 and appends an entry at index 2 that
  // reaches nobody.
  net.Heal();
  net.Crash(1);
  net.Restart(1);
  net.Isolate(1);
  net.Isolate(2);
  net.SetFilter([](Message& m) { return m.from == 5 && m.type == MessageType::kApp; });
  net.Campaign(5);
  ASSERT_EQ(net.State(5), StateType::kLeader);
  const uint64_t term5 = net.Term(5);
  // (c) S5 crashes; S1 wins the next term with S2 and S3 and replicates index 2 to S3, but
  // the messages carrying its own new-term entry (index 3) are lost.
  net.Heal();
  net.Crash(5);
  net.Restart(5);
  net.Isolate(4);
  net.Isolate(5);
  net.SetFilter([base](Message& m) {
    if (m.type == MessageType::kApp && m.from == 1) {
      std::erase_if(m.entries, [base](const Entry& e) { return e.index >= base + 2; });
    }
    return false;
  });
  net.Campaign(1);  // S1 is behind in terms: S3 refuses it, but now it knows term 2
  net.Campaign(1);
  ASSERT_EQ(net.State(1), StateType::kLeader);
  ASSERT_GT(net.Term(1), term5);
  EXPECT_EQ(net.storage(3).LastIndex(), base + 1);  // "a" is on S1, S2 and S3: a majority...
  EXPECT_EQ(net.Committed(1), base);                // ...yet it is not committed.
  // (d) S1 crashes; S5 can win again (its last term is higher) and overwrites index 2.
  net.Heal();
  net.Crash(1);
  net.Restart(1);
  net.Isolate(1);
  net.Campaign(5);  // S5 is behind in terms: refused once, then it campaigns in a newer one
  net.Campaign(5);
  ASSERT_EQ(net.State(5), StateType::kLeader);
  ASSERT_TRUE(net.Propose(5, "b").ok());
  for (uint64_t id : {2, 3, 4, 5}) {
    EXPECT_EQ(net.applied(id), std::vector<std::string>{"b"}) << id;
    EXPECT_EQ(*net.storage(id).Term(base + 1), term5) << id;
  }
  // The old leader rejoins, loses its uncommitted "a" and never applies it.
  net.Heal();
  net.TickAll(30);
  EXPECT_EQ(net.applied(1), std::vector<std::string>{"b"});
}

TEST(Replication, PartitionedOldLeaderDoesNotCommit) {
  TestNetwork net({1, 2, 3});
  net.Campaign(1);
  ASSERT_TRUE(net.Propose(1, "before").ok());
  net.Isolate(1);
  ASSERT_TRUE(net.Propose(1, "lost").ok());  // accepted, but can never commit
  EXPECT_EQ(net.applied(1), std::vector<std::string>{"before"});
  // 2 and 3 refuse votes while their lease from 1 runs, then elect one of them.
  net.TickAll(30);
  const uint64_t lead = net.State(2) == StateType::kLeader ? 2 : 3;
  ASSERT_EQ(net.State(lead), StateType::kLeader);
  ASSERT_TRUE(net.Propose(lead, "after").ok());
  net.Heal();
  net.TickAll(20);
  for (uint64_t id : {1, 2, 3}) {
    EXPECT_EQ(net.applied(id), (std::vector<std::string>{"before", "after"})) << id;
  }
  EXPECT_EQ(net.State(1), StateType::kFollower);
}

TEST(Replication, FastBacktrackingSkipsConflictingTerms) {
  TestNetwork net({1, 2, 3}, {}, NoCheckQuorumNoPreVote);
  net.Campaign(1);
  // 1 writes 50 entries that only it has, in its term.
  net.Isolate(1);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(net.Propose(1, "stale").ok());
  // 2 leads a later term; then 1 comes back as a follower.
  net.Campaign(2);
  ASSERT_TRUE(net.Propose(2, "fresh").ok());
  net.Heal();
  net.sent().clear();
  net.Tick(2, 1);  // a heartbeat finds 1 behind
  net.TickAll(3);
  EXPECT_EQ(net.applied(1), std::vector<std::string>{"fresh"});
  // One rejection skips all 50 stale entries (a whole term) instead of one round trip each.
  EXPECT_LE(net.sent()[MessageType::kApp], 10);
}

TEST(Replication, FlowControlLimitsAppendsInFlight) {
  TestNetwork net({1, 2}, {}, [](Config& c) { c.max_inflight_msgs = 3; });
  net.Campaign(1);
  ASSERT_TRUE(net.Propose(1, "x").ok());  // 2 is in replicate state now
  // 2 stops answering: the leader keeps at most 3 appends in flight.
  net.SetFilter([](Message& m) { return m.from == 2; });
  net.sent().clear();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(net.Propose(1, "y").ok());
  EXPECT_EQ(net.sent()[MessageType::kApp], 3);
  // Answers resume: the rest goes out and commits.
  net.Heal();
  net.TickAll(3);
  EXPECT_EQ(net.applied(2).size(), 11u);
}

TEST(Replication, UncommittedLogLimitRejectsProposals) {
  TestNetwork net({1, 2, 3}, {}, [](Config& c) { c.max_uncommitted_entries_size = 100; });
  net.Campaign(1);
  net.Isolate(1);
  EXPECT_TRUE(net.Propose(1, std::string(60, 'a')).ok());
  EXPECT_TRUE(net.Propose(1, std::string(30, 'b')).ok());
  EXPECT_EQ(net.Propose(1, std::string(30, 'c')).code(), absl::StatusCode::kUnavailable);
}

// ---- Snapshots ----

TEST(Snapshot, LaggingFollowerCatchesUpFromSnapshot) {
  TestNetwork net({1, 2, 3});
  net.Campaign(1);
  net.Isolate(3);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(net.Propose(1, "e" + std::to_string(i)).ok());
  // The leader compacts its log past what 3 has.
  const uint64_t applied = net.node(1).GetStatus().applied;
  ASSERT_TRUE(net.storage(1)
                  .CreateSnapshot(applied, ConfState{{1, 2, 3}, {}},
                                  Payload(testing::SnapshotData(net.applied(1))))
                  .ok());
  ASSERT_TRUE(net.storage(1).Compact(applied).ok());
  net.Heal();
  net.sent().clear();
  net.TickAll(3);
  EXPECT_EQ(net.sent()[MessageType::kSnap], 1);
  net.node(1).ReportSnapshot(3, /*failed=*/false);
  ASSERT_TRUE(net.Propose(1, "after").ok());
  EXPECT_EQ(net.applied(3), net.applied(1));
  EXPECT_EQ(net.applied(3).back(), "after");
  EXPECT_EQ(net.storage(3).FirstIndex(), applied + 1);
}

// ---- Learners and membership ----

TEST(Learner, NeverCountsTowardQuorumNorCampaigns) {
  TestNetwork net({1, 2}, {3});
  net.Campaign(1);
  ASSERT_TRUE(net.Propose(1, "a").ok());
  EXPECT_EQ(net.applied(3), std::vector<std::string>{"a"});  // learners receive the log
  // Voter 2 is gone: the learner's acknowledgement does not make a quorum.
  net.Isolate(2);
  ASSERT_TRUE(net.Propose(1, "b").ok());
  EXPECT_EQ(net.applied(1), std::vector<std::string>{"a"});
  EXPECT_EQ(net.storage(3).LastIndex(), net.storage(1).LastIndex());
  // A learner never campaigns, however long it waits.
  net.Isolate(1);
  net.Tick(3, 100);
  EXPECT_EQ(net.State(3), StateType::kFollower);
  EXPECT_EQ(net.node(3).Campaign().ok(), true);
  EXPECT_EQ(net.State(3), StateType::kFollower);
}

ConfChange Change(ConfChangeType type, uint64_t id) { return ConfChange{type, id, ""}; }

TEST(Membership, AddLearnerPromoteAndRemove) {
  TestNetwork net({1, 2, 3});
  net.AddBlankNode(4);
  net.Campaign(1);
  ASSERT_TRUE(net.Propose(1, "a").ok());

  ASSERT_TRUE(net.node(1).ProposeConfChange(Change(ConfChangeType::kAddLearnerNode, 4)).ok());
  // Takes effect on append, before it commits.
  EXPECT_EQ(net.node(1).GetStatus().conf_state, (ConfState{{1, 2, 3}, {4}}));
  net.Stabilize();
  EXPECT_EQ(net.applied(4), std::vector<std::string>{"a"});  // the learner caught up
  EXPECT_EQ(net.node(4).GetStatus().conf_state, (ConfState{{1, 2, 3}, {4}}));

  ASSERT_TRUE(net.node(1).ProposeConfChange(Change(ConfChangeType::kAddNode, 4)).ok());
  net.Stabilize();
  EXPECT_EQ(net.node(2).GetStatus().conf_state, (ConfState{{1, 2, 3, 4}, {}}));

  ASSERT_TRUE(net.node(1).ProposeConfChange(Change(ConfChangeType::kRemoveNode, 2)).ok());
  net.Stabilize();
  EXPECT_EQ(net.node(4).GetStatus().conf_state, (ConfState{{1, 3, 4}, {}}));
  // With 2 gone, 1, 3 and 4 keep committing even while 3 is down (2 of 3).
  net.Isolate(2);
  net.Isolate(3);
  ASSERT_TRUE(net.Propose(1, "b").ok());
  EXPECT_EQ(net.applied(4), (std::vector<std::string>{"a", "b"}));
}

TEST(Membership, OneChangeAtATime) {
  TestNetwork net({1, 2, 3});
  net.AddBlankNode(4);
  net.AddBlankNode(5);
  net.Campaign(1);
  net.Isolate(2);
  net.Isolate(3);  // nothing commits now
  ASSERT_TRUE(net.node(1).ProposeConfChange(Change(ConfChangeType::kAddLearnerNode, 4)).ok());
  absl::Status s = net.node(1).ProposeConfChange(Change(ConfChangeType::kAddLearnerNode, 5));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(net.node(1).GetStatus().conf_state, (ConfState{{1, 2, 3}, {4}}));
}

TEST(Membership, NewLeaderWaitsForItsFirstCommitBeforeAChange) {
  TestNetwork net({1, 2, 3});
  net.AddBlankNode(4);
  // 1 becomes leader but its no-op cannot commit yet.
  net.SetFilter([](Message& m) { return m.type == MessageType::kAppResp; });
  net.Campaign(1);
  ASSERT_EQ(net.State(1), StateType::kLeader);
  EXPECT_EQ(net.node(1).ProposeConfChange(Change(ConfChangeType::kAddNode, 4)).code(),
            absl::StatusCode::kFailedPrecondition);
  net.Heal();
  net.TickAll(2);
  EXPECT_TRUE(net.node(1).ProposeConfChange(Change(ConfChangeType::kAddNode, 4)).ok());
}

TEST(Membership, InvalidChangesAreRefusedWithReasons) {
  TestNetwork net({1});
  net.Campaign(1);
  EXPECT_EQ(net.node(1).ProposeConfChange(Change(ConfChangeType::kRemoveNode, 1)).code(),
            absl::StatusCode::kFailedPrecondition);  // the last voter
  EXPECT_EQ(net.node(1).ProposeConfChange(Change(ConfChangeType::kRemoveNode, 7)).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(net.node(1).ProposeConfChange(Change(ConfChangeType::kAddNode, 1)).code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(Membership, TruncatedChangeIsReverted) {
  TestNetwork net({1, 2, 3}, {}, NoCheckQuorumNoPreVote);
  net.AddBlankNode(4);
  net.Campaign(1);
  const uint64_t committed = net.Committed(2);
  const uint64_t term = net.Term(2);
  // The change reaches 2, but no acknowledgement gets back: it never commits.
  net.Isolate(3);
  net.SetFilter([](Message& m) { return m.type == MessageType::kAppResp; });
  ASSERT_TRUE(net.node(1).ProposeConfChange(Change(ConfChangeType::kAddLearnerNode, 4)).ok());
  net.Stabilize();
  EXPECT_EQ(net.node(2).GetStatus().conf_state, (ConfState{{1, 2, 3}, {4}}));
  // A leader of a later term overwrites 2's log after the last committed entry.
  Message app;
  app.type = MessageType::kApp;
  app.from = 3;
  app.to = 2;
  app.term = term + 1;
  app.index = committed;
  app.log_term = term;
  app.commit = committed;
  app.entries.push_back(Entry{committed + 1, term + 1, EntryType::kNormal, Payload()});
  net.Heal();
  net.Deliver(app);
  EXPECT_EQ(net.node(2).GetStatus().conf_state, (ConfState{{1, 2, 3}, {}}));
  EXPECT_EQ(*net.storage(2).Term(committed + 1), term + 1);
}

// ---- Leader transfer ----

TEST(Transfer, HandsLeadershipToAnUpToDateFollower) {
  TestNetwork net({1, 2, 3});
  net.Campaign(1);
  ASSERT_TRUE(net.Propose(1, "a").ok());
  net.node(1).TransferLeadership(2);
  net.Stabilize();
  EXPECT_EQ(net.Leader(), 2u);
  EXPECT_EQ(net.State(1), StateType::kFollower);
  ASSERT_TRUE(net.Propose(2, "b").ok());
  EXPECT_EQ(net.applied(1), (std::vector<std::string>{"a", "b"}));
}

TEST(Transfer, CatchesUpALaggingTargetFirst) {
  TestNetwork net({1, 2, 3});
  net.Campaign(1);
  net.Isolate(3);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(net.Propose(1, "x").ok());
  net.Heal();
  net.SetFilter([](Message& m) { return m.to == 3 && m.type == MessageType::kApp; });
  net.node(1).TransferLeadership(3);
  net.Stabilize();
  EXPECT_EQ(net.Leader(), 1u);  // 3 is behind: no TimeoutNow yet
  EXPECT_EQ(net.Propose(1, "during").code(), absl::StatusCode::kUnavailable);
  net.Heal();
  net.Tick(1, 1);  // the heartbeat answer triggers the catch-up, then TimeoutNow
  EXPECT_EQ(net.Leader(), 3u);
  EXPECT_EQ(net.applied(3).size(), 5u);
}

TEST(Transfer, AbandonedAfterAnElectionTimeout) {
  TestNetwork net({1, 2, 3});
  net.Campaign(1);
  net.Isolate(3);
  net.node(1).TransferLeadership(3);
  net.Stabilize();
  EXPECT_EQ(net.node(1).GetStatus().lead_transferee, 3u);
  net.Heal();
  net.Isolate(3);
  net.Tick(1, 10);
  EXPECT_EQ(net.node(1).GetStatus().lead_transferee, kNone);
  EXPECT_TRUE(net.Propose(1, "ok").ok());
}

// ---- ReadIndex ----

TEST(ReadIndex, LeaderAnswersAfterAHeartbeatQuorum) {
  TestNetwork net({1, 2, 3});
  net.Campaign(1);
  ASSERT_TRUE(net.Propose(1, "a").ok());
  net.node(1).ReadIndex("r1");
  net.Stabilize();
  ASSERT_EQ(net.read_states(1).size(), 1u);
  EXPECT_EQ(net.read_states(1)[0], (ReadState{net.Committed(1), "r1"}));
}

TEST(ReadIndex, NotAnsweredWithoutAQuorum) {
  TestNetwork net({1, 2, 3});
  net.Campaign(1);
  net.Isolate(1);
  net.node(1).ReadIndex("r");
  net.Stabilize();
  EXPECT_TRUE(net.read_states(1).empty());
}

TEST(ReadIndex, FollowerReadsThroughTheLeader) {
  TestNetwork net({1, 2, 3});
  net.Campaign(1);
  ASSERT_TRUE(net.Propose(1, "a").ok());
  net.node(3).ReadIndex("from-3");
  net.Stabilize();
  ASSERT_EQ(net.read_states(3).size(), 1u);
  EXPECT_EQ(net.read_states(3)[0].index, net.Committed(1));
  EXPECT_EQ(net.read_states(3)[0].context, "from-3");
}

TEST(ReadIndex, WaitsUntilTheLeaderCommitsInItsTerm) {
  TestNetwork net({1, 2, 3});
  net.SetFilter([](Message& m) { return m.type == MessageType::kAppResp; });
  net.Campaign(1);
  ASSERT_EQ(net.State(1), StateType::kLeader);
  net.node(1).ReadIndex("early");
  net.Stabilize();
  EXPECT_TRUE(net.read_states(1).empty());  // its commit index may be stale
  net.Heal();
  net.TickAll(2);
  ASSERT_EQ(net.read_states(1).size(), 1u);
  EXPECT_EQ(net.read_states(1)[0].index, net.Committed(1));
}

}  // namespace
}  // namespace swarm::raft

#include "raft/log.h"

#include "gtest/gtest.h"

namespace swarm::raft {
namespace {

std::vector<Entry> Ents(uint64_t from, std::vector<uint64_t> terms) {
  std::vector<Entry> out;
  for (uint64_t t : terms) out.push_back(Entry{from++, t, EntryType::kNormal, Payload()});
  return out;
}

TEST(RaftLog, FindConflict) {
  MemoryStorage s;
  RaftLog log(&s, UINT64_MAX);
  log.Append(Ents(1, {1, 2, 3}));
  EXPECT_EQ(log.FindConflict({}), 0u);
  EXPECT_EQ(log.FindConflict(Ents(1, {1, 2, 3})), 0u);     // all match
  EXPECT_EQ(log.FindConflict(Ents(2, {2, 3, 4, 4})), 4u);  // new entries
  EXPECT_EQ(log.FindConflict(Ents(2, {1, 4})), 2u);        // conflicts
  EXPECT_EQ(log.FindConflict(Ents(3, {3, 5})), 4u);
}

TEST(RaftLog, FindConflictByTerm_SkipsWholeTerms) {
  MemoryStorage s;
  RaftLog log(&s, UINT64_MAX);
  log.Append(Ents(1, {1, 1, 4, 4, 4, 6}));
  // The leader's entry at 6 has term 5: our last entry with term <= 5 is at 5 (term 4).
  EXPECT_EQ(log.FindConflictByTerm(6, 5), (std::pair<uint64_t, uint64_t>{5, 4}));
  EXPECT_EQ(log.FindConflictByTerm(5, 3), (std::pair<uint64_t, uint64_t>{2, 1}));
  EXPECT_EQ(log.FindConflictByTerm(6, 0), (std::pair<uint64_t, uint64_t>{0, 0}));
}

// Found by the simulation (seed 1320): an index outside the log has no term. Claiming 0 made a
// follower "match" an append after an entry it did not have, and commit past its log.
TEST(RaftLog, Term_OutsideTheLogIsAnError) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Ents(1, {1, 1, 2, 2})).ok());
  ASSERT_TRUE(s.Compact(2).ok());
  RaftLog log(&s, UINT64_MAX);
  EXPECT_TRUE(IsCompacted(log.Term(1).status()));
  EXPECT_EQ(*log.Term(2), 1u);  // the entry just before the first keeps its term
  EXPECT_TRUE(IsEntryUnavailable(log.Term(5).status()));
  EXPECT_FALSE(log.MatchTerm(5, 0));
  EXPECT_FALSE(log.MaybeAppend(5, 0, 9, {}).has_value());
  EXPECT_EQ(log.committed(), 2u);
}

TEST(RaftLog, MaybeAppend_MatchesTruncatesAndCommits) {
  MemoryStorage s;
  RaftLog log(&s, UINT64_MAX);
  log.Append(Ents(1, {1, 2, 3}));
  // Mismatched previous entry: refused.
  EXPECT_FALSE(log.MaybeAppend(3, 2, 3, Ents(4, {4})).has_value());
  // Replaces the conflicting suffix from index 3 and commits up to min(commit, last new).
  auto last = log.MaybeAppend(2, 2, 10, Ents(3, {4, 4}));
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(*last, 4u);
  EXPECT_EQ(log.LastIndex(), 4u);
  EXPECT_EQ(*log.Term(3), 4u);
  EXPECT_EQ(log.committed(), 4u);
}

TEST(RaftLog, MaybeAppend_ConflictWithCommittedIsFatal) {
  MemoryStorage s;
  RaftLog log(&s, UINT64_MAX);
  log.Append(Ents(1, {1, 2, 3}));
  log.CommitTo(3);
  EXPECT_DEATH(log.MaybeAppend(1, 1, 3, Ents(2, {5})), "conflicts with committed entry");
}

TEST(RaftLog, IsUpToDate_ComparesLastTermThenIndex) {
  MemoryStorage s;
  RaftLog log(&s, UINT64_MAX);
  log.Append(Ents(1, {1, 2, 3}));
  EXPECT_TRUE(log.IsUpToDate(1, 4));
  EXPECT_FALSE(log.IsUpToDate(5, 2));
  EXPECT_TRUE(log.IsUpToDate(3, 3));
  EXPECT_FALSE(log.IsUpToDate(2, 3));
}

TEST(RaftLog, StableTo_IgnoresReplacedEntries) {
  MemoryStorage s;
  RaftLog log(&s, UINT64_MAX);
  log.Append(Ents(1, {1, 1}));
  log.Append(Ents(2, {2}));  // replaces index 2 after the Ready with (2, 1) was handed out
  log.StableTo(2, 1);
  EXPECT_EQ(log.UnstableEntries().size(), 2u);
  log.StableTo(2, 2);
  EXPECT_TRUE(log.UnstableEntries().empty());
}

TEST(RaftLog, NextCommittedEntries_SpansStorageAndUnstable) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Ents(1, {1, 1})).ok());
  RaftLog log(&s, UINT64_MAX);
  log.Append(Ents(3, {2, 2}));
  log.CommitTo(3);
  auto ents = log.NextCommittedEntries();
  ASSERT_EQ(ents.size(), 3u);
  EXPECT_EQ(ents[2].index, 3u);
  log.AppliedTo(3);
  EXPECT_FALSE(log.HasNextCommittedEntries());
  EXPECT_DEATH(log.AppliedTo(4), "out of range");
}

TEST(RaftLog, Slice_ReportsCompaction) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Ents(1, {1, 1, 1, 1})).ok());
  ASSERT_TRUE(s.Compact(2).ok());
  RaftLog log(&s, UINT64_MAX);
  EXPECT_TRUE(IsCompacted(log.Slice(1, 3, UINT64_MAX).status()));
  EXPECT_EQ(log.Slice(3, 5, UINT64_MAX)->size(), 2u);
  EXPECT_EQ(log.committed(), 2u);  // a restarted log starts committed at its snapshot
}

}  // namespace
}  // namespace swarm::raft

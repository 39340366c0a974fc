#include "gtest/gtest.h"
#include "raft/storage.h"

namespace swarm::raft {
namespace {

std::vector<Entry> Ents(uint64_t from, std::vector<uint64_t> terms) {
  std::vector<Entry> out;
  for (uint64_t t : terms) out.push_back(Entry{from++, t, EntryType::kNormal, Payload()});
  return out;
}

TEST(MemoryStorage, Append_TruncatesConflictingSuffix) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Ents(1, {1, 1, 2})).ok());
  EXPECT_EQ(s.LastIndex(), 3u);
  ASSERT_TRUE(s.Append(Ents(2, {3})).ok());
  EXPECT_EQ(s.LastIndex(), 2u);
  EXPECT_EQ(*s.Term(2), 3u);
  // A gap is refused.
  EXPECT_FALSE(s.Append(Ents(5, {3})).ok());
}

TEST(MemoryStorage, Compact_MakesOldEntriesUnavailable) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Ents(1, {1, 1, 2, 2, 3})).ok());
  ASSERT_TRUE(s.Compact(3).ok());
  EXPECT_EQ(s.FirstIndex(), 4u);
  EXPECT_TRUE(IsCompacted(s.Term(2).status()));
  EXPECT_EQ(*s.Term(3), 2u);  // the dummy entry keeps the term at the compaction point
  EXPECT_TRUE(IsCompacted(s.Entries(3, 5, UINT64_MAX).status()));
  EXPECT_EQ(s.Entries(4, 6, UINT64_MAX)->size(), 2u);
  EXPECT_TRUE(IsCompacted(s.Compact(2)));
  EXPECT_TRUE(IsEntryUnavailable(s.Term(9).status()));
}

TEST(MemoryStorage, Entries_RespectsSizeLimitButReturnsOne) {
  MemoryStorage s;
  std::vector<Entry> ents;
  for (uint64_t i = 1; i <= 5; ++i) {
    ents.push_back(Entry{i, 1, EntryType::kNormal, Payload(std::string(100, 'x'))});
  }
  ASSERT_TRUE(s.Append(ents).ok());
  EXPECT_EQ(s.Entries(1, 6, 0)->size(), 1u);
  EXPECT_EQ(s.Entries(1, 6, 2 * ents[0].Size())->size(), 2u);
  EXPECT_EQ(s.Entries(1, 6, UINT64_MAX)->size(), 5u);
}

TEST(MemoryStorage, Snapshot_CreateAndApply) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Ents(1, {1, 2, 3})).ok());
  ConfState cs{{1, 2, 3}, {}};
  auto snap = s.CreateSnapshot(2, cs, Payload("state"));
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(snap->metadata.term, 2u);
  EXPECT_EQ(s.CreateSnapshot(2, cs, Payload("x")).status().code(),
            absl::StatusCode::kFailedPrecondition);

  MemoryStorage other;
  ASSERT_TRUE(other.ApplySnapshot(*snap).ok());
  EXPECT_EQ(other.FirstIndex(), 3u);
  EXPECT_EQ(other.LastIndex(), 2u);
  EXPECT_EQ(other.GetInitialState()->conf_state, cs);
  EXPECT_FALSE(other.ApplySnapshot(*snap).ok());  // not newer
}

}  // namespace
}  // namespace swarm::raft

#include "raft/disk_storage.h"

#include <rocksdb/db.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "gtest/gtest.h"

namespace swarm::raft {
namespace {

namespace fs = std::filesystem;

class DiskStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<DiskStorage> OpenStorage() { return OpenStorage(KeyRing(key_)); }
  std::unique_ptr<DiskStorage> OpenStorage(KeyRing keys) {
    auto s = DiskStorage::Open(dir_.string(), std::move(keys), random_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }

  static std::vector<Entry> Ents(uint64_t from, uint64_t to, uint64_t term,
                                 const std::string& prefix = "payload-") {
    std::vector<Entry> out;
    for (uint64_t i = from; i <= to; ++i) {
      out.push_back(Entry{i, term, EntryType::kNormal, Payload(prefix + std::to_string(i))});
    }
    return out;
  }

  fs::path dir_;
  SeededRandom random_{7};
  DataKey key_ = NewDataKey(1, random_);
};

TEST_F(DiskStorageTest, SaveAndLoad_RoundTrip) {
  {
    auto s = OpenStorage();
    ASSERT_TRUE(s->Save(HardState{3, 2, 5}, Ents(1, 10, 3), nullptr, true).ok());
  }
  auto s = OpenStorage();
  auto state = s->Load();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->hard_state, (HardState{3, 2, 5}));
  EXPECT_EQ(state->entries, Ents(1, 10, 3));
  EXPECT_TRUE(state->snapshot.empty());
}

TEST_F(DiskStorageTest, Save_ReplacesAConflictingSuffix) {
  auto s = OpenStorage();
  ASSERT_TRUE(s->Load().ok());
  ASSERT_TRUE(s->Save(HardState{2, 1, 3}, Ents(1, 10, 2), nullptr, true).ok());
  // A new leader overwrites from index 6 with a shorter log.
  ASSERT_TRUE(s->Save(HardState{4, 0, 3}, Ents(6, 7, 4), nullptr, true).ok());
  s.reset();
  auto state = OpenStorage()->Load();
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(state->entries.size(), 7u);
  EXPECT_EQ(state->entries.back().term, 4u);
}

TEST_F(DiskStorageTest, SnapshotsAndCompaction) {
  auto s = OpenStorage();
  ASSERT_TRUE(s->Load().ok());
  ASSERT_TRUE(s->Save(HardState{2, 1, 10}, Ents(1, 10, 2), nullptr, true).ok());
  // A snapshot bigger than one chunk.
  std::string big(3 * (1 << 20) + 17, 'z');
  ASSERT_TRUE(s->SaveSnapshot(Snapshot{Payload(big), {{{1, 2, 3}, {}}, 8, 2}}).ok());
  ASSERT_TRUE(s->Compact(8).ok());
  s.reset();
  auto state = OpenStorage()->Load();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->snapshot.metadata.index, 8u);
  EXPECT_EQ(state->snapshot.metadata.conf_state, (ConfState{{1, 2, 3}, {}}));
  EXPECT_EQ(state->snapshot.data.view(), big);
  ASSERT_EQ(state->entries.size(), 2u);
  EXPECT_EQ(state->entries.front().index, 9u);
}

TEST_F(DiskStorageTest, SnapshotFromLeaderReplacesTheLog) {
  auto s = OpenStorage();
  ASSERT_TRUE(s->Load().ok());
  ASSERT_TRUE(s->Save(HardState{2, 1, 3}, Ents(1, 5, 2), nullptr, true).ok());
  Snapshot snap{Payload("state"), {{{1, 2}, {}}, 100, 7}};
  ASSERT_TRUE(s->Save(HardState{7, 0, 100}, {}, &snap, true).ok());
  ASSERT_TRUE(s->Save(HardState{7, 0, 101}, Ents(101, 101, 7), nullptr, true).ok());
  s.reset();
  auto state = OpenStorage()->Load();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->snapshot.metadata.index, 100u);
  ASSERT_EQ(state->entries.size(), 1u);
  EXPECT_EQ(state->entries[0].index, 101u);
}

TEST_F(DiskStorageTest, CorruptedRecordRefusesToLoadAndNamesIt) {
  {
    auto s = OpenStorage();
    ASSERT_TRUE(s->Save(HardState{2, 1, 5}, Ents(1, 5, 2), nullptr, true).ok());
  }
  {
    // Flip one byte of entry 3's stored record, behind our back.
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::ColumnFamilyOptions cf;
    ASSERT_TRUE(
        rocksdb::DB::Open(
            rocksdb::DBOptions(), dir_.string(),
            {{rocksdb::kDefaultColumnFamilyName, cf}, {"log", cf}, {"meta", cf}, {"snapshot", cf}},
            &handles, &raw)
            .ok());
    std::string key(8, '\0');
    key[7] = 3;
    std::string value;
    ASSERT_TRUE(raw->Get(rocksdb::ReadOptions(), handles[1], key, &value).ok());
    value[value.size() / 2] ^= 0x40;
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), handles[1], key, value).ok());
    for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
    delete raw;
  }
  auto state = OpenStorage()->Load();
  ASSERT_FALSE(state.ok());
  EXPECT_EQ(state.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(std::string(state.status().message()).find(dir_.string()), std::string::npos);
  EXPECT_NE(std::string(state.status().message()).find("entry 3"), std::string::npos)
      << state.status();
}

TEST_F(DiskStorageTest, WrongKeyRefusesToLoad) {
  {
    auto s = OpenStorage();
    ASSERT_TRUE(s->Save(HardState{2, 1, 1}, Ents(1, 1, 2), nullptr, true).ok());
  }
  key_ = NewDataKey(1, random_);
  auto state = OpenStorage()->Load();
  EXPECT_EQ(state.status().code(), absl::StatusCode::kDataLoss) << state.status();
}

TEST_F(DiskStorageTest, NothingIsStoredInTheClear) {
  {
    auto s = OpenStorage();
    ASSERT_TRUE(
        s->Save(HardState{2, 1, 50}, Ents(1, 50, 2, "needle-in-the-log-"), nullptr, true).ok());
    ASSERT_TRUE(
        s->SaveSnapshot(Snapshot{Payload("needle-in-the-snapshot"), {{{1}, {}}, 40, 2}}).ok());
    ASSERT_TRUE(s->PutMeta("members", "needle-in-the-meta").ok());
  }
  for (const auto& f : fs::recursive_directory_iterator(dir_)) {
    if (!f.is_regular_file()) continue;
    std::ifstream in(f.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_EQ(ss.str().find("needle"), std::string::npos) << f.path();
  }
  EXPECT_EQ(**OpenStorage()->GetMeta("members"), "needle-in-the-meta");
}

// A rotation as the node runs it: new records under the new key, then a snapshot and
// compaction, then the rest re-sealed so the old key can go.
TEST_F(DiskStorageTest, RotateKey_OldAndNewRecordsReadUntilTheOldKeyRetires) {
  const DataKey next = NewDataKey(2, random_);
  {
    auto s = OpenStorage();
    ASSERT_TRUE(s->Save(HardState{2, 1, 10}, Ents(1, 10, 2), nullptr, true).ok());
    ASSERT_TRUE(s->PutMeta("raft_id", "7").ok());
    EXPECT_EQ(s->RotateKey(key_).code(), absl::StatusCode::kInvalidArgument);
    ASSERT_TRUE(s->RotateKey(next).ok());
    ASSERT_TRUE(s->Save(HardState{2, 1, 15}, Ents(11, 15, 2), nullptr, true).ok());
    EXPECT_EQ(*s->KeyIdsInUse(), (std::set<uint32_t>{1, 2}));
  }
  {
    // Before the old key retires, a restart needs both keys and reads everything.
    KeyRing both(next);
    both.AddOld(key_);
    auto s = OpenStorage(both);
    auto state = s->Load();
    ASSERT_TRUE(state.ok()) << state.status();
    EXPECT_EQ(state->entries, Ents(1, 15, 2));
    EXPECT_EQ(**s->GetMeta("raft_id"), "7");

    ASSERT_TRUE(s->SaveSnapshot(Snapshot{Payload("state at 12"), {{{1}, {}}, 12, 2}}).ok());
    ASSERT_TRUE(s->Compact(10).ok());  // entries 10 to 15 stay for slow followers
    ASSERT_TRUE(s->RetireOldKeys().ok());
    EXPECT_EQ(*s->KeyIdsInUse(), (std::set<uint32_t>{2}));
    EXPECT_EQ(s->keys().Find(1), nullptr);
  }
  // The old key is gone from the ring, and nothing needs it.
  auto s = OpenStorage(KeyRing(next));
  auto state = s->Load();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->hard_state, (HardState{2, 1, 15}));
  EXPECT_EQ(state->snapshot.metadata.index, 12u);
  EXPECT_EQ(state->snapshot.data.view(), "state at 12");
  EXPECT_EQ(state->entries, Ents(13, 15, 2));
  EXPECT_EQ(**s->GetMeta("raft_id"), "7");
}

TEST_F(DiskStorageTest, RotateKey_CrashBeforeRetiringLosesNothing) {
  const DataKey next = NewDataKey(2, random_);
  {
    auto s = OpenStorage();
    ASSERT_TRUE(s->Save(HardState{2, 1, 5}, Ents(1, 5, 2), nullptr, true).ok());
    ASSERT_TRUE(s->SaveSnapshot(Snapshot{Payload("old snapshot"), {{{1}, {}}, 3, 2}}).ok());
    ASSERT_TRUE(s->RotateKey(next).ok());
    ASSERT_TRUE(s->Save(HardState{2, 1, 6}, Ents(6, 6, 2), nullptr, true).ok());
    // "kill -9": the storage is dropped without retiring the old key.
  }
  // The restart finds the rotation pending (both keys in the key store) and finishes it,
  // even without a new snapshot: the old snapshot is re-sealed too.
  KeyRing both(next);
  both.AddOld(key_);
  {
    auto s = OpenStorage(both);
    ASSERT_TRUE(s->Load().ok());
    ASSERT_TRUE(s->RetireOldKeys().ok());
    EXPECT_EQ(*s->KeyIdsInUse(), (std::set<uint32_t>{2}));
  }
  for (const KeyRing& ring : {both, KeyRing(next)}) {
    auto s = OpenStorage(ring);
    auto state = s->Load();
    ASSERT_TRUE(state.ok()) << state.status();
    EXPECT_EQ(state->snapshot.data.view(), "old snapshot");
    EXPECT_EQ(state->entries, Ents(4, 6, 2));
    EXPECT_EQ(state->hard_state, (HardState{2, 1, 6}));
  }
}

TEST_F(DiskStorageTest, RotateKey_WithoutTheOldKeyTheLogRefusesToLoad) {
  const DataKey next = NewDataKey(2, random_);
  {
    auto s = OpenStorage();
    ASSERT_TRUE(s->Save(HardState{2, 1, 5}, Ents(1, 5, 2), nullptr, true).ok());
    ASSERT_TRUE(s->RotateKey(next).ok());
  }
  auto s = OpenStorage(KeyRing(next));
  const absl::Status st = s->Load().status();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(std::string(st.message()).find("uses key 1"), std::string::npos) << st;
}

}  // namespace
}  // namespace swarm::raft

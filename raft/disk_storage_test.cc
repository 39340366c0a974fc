#include "raft/disk_storage.h"

#include <rocksdb/db.h>

#include <filesystem>
#include <fstream>
#include <functional>
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

  // Writes data as this node's own snapshot and stores it.
  static void SaveOwnSnapshot(DiskStorage& s, const std::string& data, SnapshotMetadata md) {
    auto out = s.NewSnapshotWriter(md.index, /*received=*/false);
    ASSERT_TRUE(out->Write(data).ok());
    auto chunks = out->Finish();
    ASSERT_TRUE(chunks.ok()) << chunks.status();
    ASSERT_TRUE(s.SaveSnapshot(md, *chunks).ok());
  }
  // Writes data as a snapshot received from the leader, ready for the Save that installs it.
  static void Receive(DiskStorage& s, const std::string& data, uint64_t index) {
    auto out = s.NewSnapshotWriter(index, /*received=*/true);
    ASSERT_TRUE(out->Write(data).ok());
    ASSERT_TRUE(out->Finish().ok());
  }
  // The stored snapshot's data, or its error.
  static std::string SnapshotData(DiskStorage& s, uint64_t index) {
    absl::StatusOr<StoredSnapshot> stored = s.OpenSnapshot(index);
    if (!stored.ok()) return stored.status().ToString();
    absl::StatusOr<std::string> data = ReadAll(*stored->reader);
    return data.ok() ? *data : data.status().ToString();
  }
  // Runs fn on the database behind DiskStorage's back (closed meanwhile); handles 1 to 3 are
  // the column families log, meta and snapshot.
  void WithRawDatabase(
      const std::function<void(rocksdb::DB*, const std::vector<rocksdb::ColumnFamilyHandle*>&)>&
          fn) {
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::ColumnFamilyOptions cf;
    ASSERT_TRUE(
        rocksdb::DB::Open(
            rocksdb::DBOptions(), dir_.string(),
            {{rocksdb::kDefaultColumnFamilyName, cf}, {"log", cf}, {"meta", cf}, {"snapshot", cf}},
            &handles, &raw)
            .ok());
    fn(raw, handles);
    for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
    delete raw;
  }
  // Flips one byte in the middle of a stored record.
  void Corrupt(int column_family, const std::string& key) {
    WithRawDatabase([&](rocksdb::DB* db, const std::vector<rocksdb::ColumnFamilyHandle*>& cfs) {
      std::string value;
      ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), cfs[column_family], key, &value).ok());
      value[value.size() / 2] ^= 0x40;
      ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), cfs[column_family], key, value).ok());
    });
  }
  // Records in the snapshot column family whose key starts with prefix.
  size_t CountSnapshotRecords(const std::string& prefix) {
    size_t n = 0;
    WithRawDatabase([&](rocksdb::DB* db, const std::vector<rocksdb::ColumnFamilyHandle*>& cfs) {
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cfs[3]));
      for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) ++n;
    });
    return n;
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
  SaveOwnSnapshot(*s, big, {{{1, 2, 3}, {}}, 8, 2});
  ASSERT_TRUE(s->Compact(8).ok());
  s.reset();
  s = OpenStorage();
  auto state = s->Load();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->snapshot.metadata.index, 8u);
  EXPECT_EQ(state->snapshot.metadata.conf_state, (ConfState{{1, 2, 3}, {}}));
  EXPECT_EQ(SnapshotData(*s, 8), big);
  ASSERT_EQ(state->entries.size(), 2u);
  EXPECT_EQ(state->entries.front().index, 9u);
  // Asked for another index: the one stored is not it.
  EXPECT_NE(SnapshotData(*s, 7).find("NOT_FOUND"), std::string::npos);
}

// A reader keeps reading the snapshot it opened after a newer one replaced it (and deleted its
// chunks); chunks that no record names are gone after a restart.
TEST_F(DiskStorageTest, Snapshots_ReadersOutliveReplacementAndOrphansAreDeleted) {
  auto s = OpenStorage();
  ASSERT_TRUE(s->Load().ok());
  const std::string first(2 * (1 << 20) + 5, 'a');
  SaveOwnSnapshot(*s, first, {{{1}, {}}, 5, 1});
  absl::StatusOr<StoredSnapshot> reading = s->OpenSnapshot(5);
  ASSERT_TRUE(reading.ok()) << reading.status();
  SaveOwnSnapshot(*s, "second", {{{1}, {}}, 9, 1});
  EXPECT_EQ(*ReadAll(*reading->reader), first);
  reading->reader.reset();
  // A transfer cut short (its writer dropped) and one whose Save never came, and one of our
  // own never recorded (a crash mid-snapshot).
  s->NewSnapshotWriter(20, /*received=*/true)->Write(std::string(3 << 20, 'x')).IgnoreError();
  Receive(*s, "never installed", 21);
  auto own = s->NewSnapshotWriter(30, /*received=*/false);
  ASSERT_TRUE(own->Write(std::string(2 << 20, 'y')).ok());
  ASSERT_TRUE(own->Finish().ok());
  s.reset();
  s = OpenStorage();
  auto state = s->Load();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->snapshot.metadata.index, 9u);
  EXPECT_EQ(SnapshotData(*s, 9), "second");
  s.reset();
  EXPECT_EQ(CountSnapshotRecords("chunk/"), 1u);  // "second"
  EXPECT_EQ(CountSnapshotRecords("recv/"), 0u);
}

TEST_F(DiskStorageTest, SnapshotFromLeaderReplacesTheLog) {
  auto s = OpenStorage();
  ASSERT_TRUE(s->Load().ok());
  ASSERT_TRUE(s->Save(HardState{2, 1, 3}, Ents(1, 5, 2), nullptr, true).ok());
  Snapshot snap{Payload(), {{{1, 2}, {}}, 100, 7}};
  // Only a snapshot received in full can be installed.
  EXPECT_EQ(s->Save(HardState{7, 0, 100}, {}, &snap, true).code(),
            absl::StatusCode::kFailedPrecondition);
  Receive(*s, "state", 100);
  ASSERT_TRUE(s->Save(HardState{7, 0, 100}, {}, &snap, true).ok());
  ASSERT_TRUE(s->Save(HardState{7, 0, 101}, Ents(101, 101, 7), nullptr, true).ok());
  s.reset();
  s = OpenStorage();
  auto state = s->Load();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->snapshot.metadata.index, 100u);
  EXPECT_EQ(SnapshotData(*s, 100), "state");
  ASSERT_EQ(state->entries.size(), 1u);
  EXPECT_EQ(state->entries[0].index, 101u);
}

// A leader's retry (or a new leader) sends a snapshot already received: the first transfer
// stays, since the Ready that installs it may be running, and the second leaves nothing.
TEST_F(DiskStorageTest, SnapshotReceivedTwiceKeepsTheFirst) {
  auto s = OpenStorage();
  ASSERT_TRUE(s->Load().ok());
  Receive(*s, "first", 100);
  Receive(*s, "second", 100);
  Snapshot snap{Payload(), {{{1}, {}}, 100, 7}};
  ASSERT_TRUE(s->Save(HardState{7, 0, 100}, {}, &snap, true).ok());
  EXPECT_EQ(SnapshotData(*s, 100), "first");
  s.reset();
  EXPECT_EQ(CountSnapshotRecords("recv/"), 1u);
}

TEST_F(DiskStorageTest, CorruptedSnapshotChunkIsDataLossNamingIt) {
  {
    auto s = OpenStorage();
    ASSERT_TRUE(s->Load().ok());
    SaveOwnSnapshot(*s, std::string(2 * (1 << 20) + 1, 'q'), {{{1}, {}}, 8, 2});
  }
  // Chunk 1 of snapshot 8.
  Corrupt(3,
          std::string("chunk/") + std::string(7, '\0') + "\x08/" + std::string(7, '\0') + "\x01");
  auto s = OpenStorage();
  ASSERT_TRUE(s->Load().ok());
  const std::string error = SnapshotData(*s, 8);
  EXPECT_NE(error.find("DATA_LOSS"), std::string::npos) << error;
  EXPECT_NE(error.find("snapshot 8 chunk 1"), std::string::npos) << error;
  EXPECT_NE(error.find(dir_.string()), std::string::npos) << error;
}

TEST_F(DiskStorageTest, CorruptedRecordRefusesToLoadAndNamesIt) {
  {
    auto s = OpenStorage();
    ASSERT_TRUE(s->Save(HardState{2, 1, 5}, Ents(1, 5, 2), nullptr, true).ok());
  }
  // Entry 3.
  Corrupt(1, std::string(7, '\0') + "\x03");
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
    SaveOwnSnapshot(*s, "needle-in-the-snapshot", {{{1}, {}}, 40, 2});
    Receive(*s, "needle-in-a-received-snapshot", 60);
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

    SaveOwnSnapshot(*s, "state at 12", {{{1}, {}}, 12, 2});
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
  EXPECT_EQ(SnapshotData(*s, 12), "state at 12");
  EXPECT_EQ(state->entries, Ents(13, 15, 2));
  EXPECT_EQ(**s->GetMeta("raft_id"), "7");
}

TEST_F(DiskStorageTest, RotateKey_CrashBeforeRetiringLosesNothing) {
  const DataKey next = NewDataKey(2, random_);
  std::string old_snapshot(40 << 20, '\0');
  for (size_t i = 0; i < old_snapshot.size(); ++i) old_snapshot[i] = static_cast<char>(i * 7);
  {
    auto s = OpenStorage();
    ASSERT_TRUE(s->Save(HardState{2, 1, 5}, Ents(1, 5, 2), nullptr, true).ok());
    SaveOwnSnapshot(*s, old_snapshot, {{{1}, {}}, 3, 2});
    ASSERT_TRUE(s->RotateKey(next).ok());
    ASSERT_TRUE(s->Save(HardState{2, 1, 6}, Ents(6, 6, 2), nullptr, true).ok());
    // "kill -9": the storage is dropped without retiring the old key.
  }
  // The restart finds the rotation pending (both keys in the key store) and finishes it,
  // even without a new snapshot: the old snapshot is re-sealed too (in several batches: it is
  // larger than one).
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
    EXPECT_EQ(SnapshotData(*s, 3), old_snapshot);
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

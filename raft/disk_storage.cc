#include "raft/disk_storage.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstring>

#include "common/status_macros.h"
#include "proto/raft.pb.h"
#include "raft/codec.h"

namespace swarm::raft {
namespace {

constexpr size_t kChunkSize = 1 << 20;
constexpr char kHardStateKey[] = "hardstate";
constexpr char kSnapshotMetaKey[] = "meta";

std::string BigEndian(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

uint64_t FromBigEndian(const rocksdb::Slice& s) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8 && i < s.size(); ++i) v = (v << 8) | static_cast<uint8_t>(s[i]);
  return v;
}

std::string ChunkKey(uint64_t index, uint64_t n) {
  return "chunk/" + BigEndian(index) + "/" + BigEndian(n);
}

std::string LogAad(uint64_t index) { return "log/" + std::to_string(index); }
std::string ChunkAad(uint64_t index, uint64_t n) {
  return "snapshot/chunk/" + std::to_string(index) + "/" + std::to_string(n);
}

absl::Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = what + ": " + s.ToString();
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsIOError()) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

}  // namespace

DiskStorage::DiskStorage(std::string path, KeyRing keys, Random& random)
    : path_(std::move(path)), keys_(std::move(keys)), random_(random) {}

void DiskStorage::BufferedRandom::Fill(void* buf, size_t len) {
  if (len > sizeof(pool_)) {
    source_.Fill(buf, len);
    return;
  }
  auto* out = static_cast<unsigned char*>(buf);
  while (len > 0) {
    if (used_ == sizeof(pool_)) {
      source_.Fill(pool_, sizeof(pool_));
      used_ = 0;
    }
    const size_t n = std::min(len, sizeof(pool_) - used_);
    std::memcpy(out, pool_ + used_, n);
    used_ += n;
    out += n;
    len -= n;
  }
}

DiskStorage::~DiskStorage() {
  for (rocksdb::ColumnFamilyHandle* h : handles_) db_->DestroyColumnFamilyHandle(h);
  if (db_) db_->Close();
}

absl::StatusOr<std::unique_ptr<DiskStorage>> DiskStorage::Open(const std::string& path,
                                                               KeyRing keys, Random& random) {
  std::unique_ptr<DiskStorage> s(new DiskStorage(path, std::move(keys), random));
  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.paranoid_checks = true;
  // A corrupted write-ahead log is an error, never a silently shortened log.
  options.wal_recovery_mode = rocksdb::WALRecoveryMode::kAbsoluteConsistency;
  options.max_background_jobs = 1;
  options.keep_log_file_num = 2;
  rocksdb::ColumnFamilyOptions cf;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, cf}, {"log", cf}, {"meta", cf}, {"snapshot", cf}};
  rocksdb::DB* db = nullptr;
  rocksdb::Status st = rocksdb::DB::Open(options, path, cfs, &s->handles_, &db);
  if (!st.ok()) return FromRocks(st, "opening the raft log at " + path);
  s->db_.reset(db);
  s->log_ = s->handles_[1];
  s->meta_ = s->handles_[2];
  s->snap_ = s->handles_[3];
  return s;
}

std::string DiskStorage::SealValue(const std::string& aad, const std::string& plaintext) {
  return SealRecord(keys_.current(), plaintext, aad, random_);
}

absl::StatusOr<DiskStorage::State> DiskStorage::Load() {
  State state;
  const std::string where = "raft log " + path_ + ": ";
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;

  std::string value;
  rocksdb::Status st = db_->Get(ro, meta_, kHardStateKey, &value);
  if (st.ok()) {
    absl::StatusOr<std::string> plain = OpenRecord(keys_, value, kHardStateKey);
    raftpb::HardState pb;
    if (!plain.ok() || !pb.ParseFromString(*plain)) {
      return absl::DataLossError(
          where + "the hard state record is unreadable: " + std::string(plain.status().message()));
    }
    state.hard_state = FromProto(pb);
  } else if (!st.IsNotFound()) {
    return FromRocks(st, where + "reading the hard state");
  }

  st = db_->Get(ro, snap_, kSnapshotMetaKey, &value);
  if (st.ok()) {
    absl::StatusOr<std::string> plain = OpenRecord(keys_, value, "snapshot/meta");
    raftpb::SnapshotRecord rec;
    if (!plain.ok() || !rec.ParseFromString(*plain)) {
      return absl::DataLossError(
          where + "the snapshot record is unreadable: " + std::string(plain.status().message()));
    }
    state.snapshot.metadata = FromProto(rec.metadata());
    std::string data;
    data.reserve(rec.size());
    for (uint64_t n = 0; n < rec.chunks(); ++n) {
      const uint64_t index = state.snapshot.metadata.index;
      st = db_->Get(ro, snap_, ChunkKey(index, n), &value);
      if (!st.ok()) {
        return absl::DataLossError(where + "snapshot " + std::to_string(index) + " chunk " +
                                   std::to_string(n) + " is missing: " + st.ToString());
      }
      absl::StatusOr<std::string> chunk = OpenRecord(keys_, value, ChunkAad(index, n));
      if (!chunk.ok()) {
        return absl::DataLossError(where + "snapshot " + std::to_string(index) + " chunk " +
                                   std::to_string(n) + ": " +
                                   std::string(chunk.status().message()));
      }
      data += *chunk;
    }
    if (data.size() != rec.size()) {
      return absl::DataLossError(where + "snapshot data has the wrong size");
    }
    state.snapshot.data = Payload(std::move(data));
    snapshot_index_ = state.snapshot.metadata.index;
    snapshot_chunks_ = rec.chunks();
  } else if (!st.IsNotFound()) {
    return FromRocks(st, where + "reading the snapshot");
  }

  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, log_));
  uint64_t expected = state.snapshot.metadata.index + 1;
  for (it->Seek(BigEndian(expected)); it->Valid(); it->Next()) {
    const uint64_t index = FromBigEndian(it->key());
    if (index != expected) {
      return absl::DataLossError(where + "entry " + std::to_string(expected) +
                                 " is missing (the next stored entry is " + std::to_string(index) +
                                 ")");
    }
    absl::StatusOr<std::string> plain = OpenRecord(keys_, it->value().ToString(), LogAad(index));
    raftpb::Entry pb;
    if (!plain.ok() || !pb.ParseFromString(*plain) || pb.index() != index) {
      return absl::DataLossError(
          where + "entry " + std::to_string(index) + " is unreadable: " +
          (plain.ok() ? std::string("it does not parse") : std::string(plain.status().message())));
    }
    state.entries.push_back(FromProto(pb));
    ++expected;
  }
  if (!it->status().ok()) return FromRocks(it->status(), where + "reading the log");
  last_index_ = expected - 1;
  if (state.hard_state.commit > last_index_) {
    return absl::DataLossError(where + "the commit index " +
                               std::to_string(state.hard_state.commit) +
                               " is beyond the last stored entry " + std::to_string(last_index_));
  }
  return state;
}

absl::Status DiskStorage::SnapshotToBatch(const Snapshot& snapshot, void* b) {
  auto* batch = static_cast<rocksdb::WriteBatch*>(b);
  const uint64_t index = snapshot.metadata.index;
  const std::string_view data = snapshot.data.view();
  uint64_t chunks = 0;
  for (size_t off = 0; off < data.size(); off += kChunkSize, ++chunks) {
    std::string chunk(data.substr(off, kChunkSize));
    auto st = batch->Put(snap_, ChunkKey(index, chunks), SealValue(ChunkAad(index, chunks), chunk));
    if (!st.ok()) return FromRocks(st, "writing a snapshot chunk");
  }
  raftpb::SnapshotRecord rec;
  ToProto(snapshot.metadata, rec.mutable_metadata());
  rec.set_chunks(chunks);
  rec.set_size(data.size());
  auto st =
      batch->Put(snap_, kSnapshotMetaKey, SealValue("snapshot/meta", rec.SerializeAsString()));
  if (!st.ok()) return FromRocks(st, "writing the snapshot record");
  // The previous snapshot's chunks go with it.
  if (snapshot_index_ != index) {
    for (uint64_t n = 0; n < snapshot_chunks_; ++n) {
      st = batch->Delete(snap_, ChunkKey(snapshot_index_, n));
      if (!st.ok()) return FromRocks(st, "deleting an old snapshot chunk");
    }
  }
  return absl::OkStatus();
}

absl::Status DiskStorage::Write(void* b, bool sync) {
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  return FromRocks(db_->Write(wo, static_cast<rocksdb::WriteBatch*>(b)),
                   "writing the raft log at " + path_);
}

absl::Status DiskStorage::Save(const HardState& hs, const std::vector<Entry>& entries,
                               const Snapshot* snapshot, bool sync) {
  rocksdb::WriteBatch batch;
  uint64_t last = last_index_;
  if (snapshot != nullptr && !snapshot->empty()) {
    absl::Status s = SnapshotToBatch(*snapshot, &batch);
    if (!s.ok()) return s;
    // A snapshot from the leader replaces the whole log.
    auto st = batch.DeleteRange(log_, BigEndian(0), BigEndian(UINT64_MAX));
    if (!st.ok()) return FromRocks(st, "truncating the log");
    last = snapshot->metadata.index;
  }
  if (!entries.empty()) {
    raftpb::Entry pb;
    for (const Entry& e : entries) {
      pb.Clear();
      ToProto(e, &pb);
      auto st =
          batch.Put(log_, BigEndian(e.index), SealValue(LogAad(e.index), pb.SerializeAsString()));
      if (!st.ok()) return FromRocks(st, "writing an entry");
    }
    const uint64_t new_last = entries.back().index;
    // Entries after the new ones belonged to a replaced suffix.
    if (last > new_last) {
      auto st = batch.DeleteRange(log_, BigEndian(new_last + 1), BigEndian(last + 1));
      if (!st.ok()) return FromRocks(st, "truncating the log");
    }
    last = new_last;
  }
  if (!hs.empty()) {
    raftpb::HardState pb;
    ToProto(hs, &pb);
    auto st = batch.Put(meta_, kHardStateKey, SealValue(kHardStateKey, pb.SerializeAsString()));
    if (!st.ok()) return FromRocks(st, "writing the hard state");
  }
  if (batch.Count() == 0) return absl::OkStatus();
  absl::Status s = Write(&batch, sync);
  if (!s.ok()) return s;
  last_index_ = last;
  if (snapshot != nullptr && !snapshot->empty()) {
    snapshot_index_ = snapshot->metadata.index;
    snapshot_chunks_ = (snapshot->data.size() + kChunkSize - 1) / kChunkSize;
  }
  return absl::OkStatus();
}

absl::Status DiskStorage::SaveSnapshot(const Snapshot& snapshot) {
  rocksdb::WriteBatch batch;
  absl::Status s = SnapshotToBatch(snapshot, &batch);
  if (!s.ok()) return s;
  s = Write(&batch, /*sync=*/true);
  if (!s.ok()) return s;
  snapshot_index_ = snapshot.metadata.index;
  snapshot_chunks_ = (snapshot.data.size() + kChunkSize - 1) / kChunkSize;
  return absl::OkStatus();
}

absl::Status DiskStorage::Compact(uint64_t index) {
  rocksdb::WriteOptions wo;
  return FromRocks(db_->DeleteRange(wo, log_, BigEndian(0), BigEndian(index)),
                   "compacting the raft log at " + path_);
}

absl::Status DiskStorage::RotateKey(DataKey next) {
  if (next.id <= keys_.current().id) {
    return absl::InvalidArgumentError(
        "raft log " + path_ + ": a new key needs an ID above the current key's " +
        std::to_string(keys_.current().id) + ", not " + std::to_string(next.id));
  }
  keys_.Rotate(std::move(next));
  return absl::OkStatus();
}

absl::Status DiskStorage::ForEachRecord(
    const std::function<absl::Status(rocksdb::ColumnFamilyHandle*, const std::string&,
                                     const std::string&)>& visit) {
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  for (rocksdb::ColumnFamilyHandle* cf : {log_, meta_, snap_}) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      RETURN_IF_ERROR(visit(cf, it->key().ToString(), it->value().ToString()));
    }
    if (!it->status().ok()) return FromRocks(it->status(), "reading the raft log at " + path_);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> DiskStorage::AadFor(rocksdb::ColumnFamilyHandle* cf,
                                                const std::string& key) {
  if (cf == log_ && key.size() == 8) return LogAad(FromBigEndian(key));
  if (cf == meta_ && key == kHardStateKey) return std::string(kHardStateKey);
  if (cf == meta_ && key.starts_with("node/")) return "meta/" + key.substr(5);
  if (cf == snap_ && key == kSnapshotMetaKey) return std::string("snapshot/meta");
  // "chunk/" index(8) "/" n(8)
  if (cf == snap_ && key.size() == 23 && key.starts_with("chunk/") && key[14] == '/') {
    return ChunkAad(FromBigEndian(rocksdb::Slice(key.data() + 6, 8)),
                    FromBigEndian(rocksdb::Slice(key.data() + 15, 8)));
  }
  return absl::DataLossError("raft log " + path_ + ": unexpected record " + cf->GetName() + "/" +
                             key);
}

absl::Status DiskStorage::RetireOldKeys() {
  const uint32_t current = keys_.current().id;
  rocksdb::WriteBatch batch;
  RETURN_IF_ERROR(ForEachRecord([&](rocksdb::ColumnFamilyHandle* cf, const std::string& key,
                                    const std::string& value) -> absl::Status {
    ASSIGN_OR_RETURN(const uint32_t id, RecordKeyId(value));
    if (id == current) return absl::OkStatus();
    ASSIGN_OR_RETURN(const std::string aad, AadFor(cf, key));
    absl::StatusOr<std::string> plain = OpenRecord(keys_, value, aad);
    if (!plain.ok()) {
      return absl::DataLossError("raft log " + path_ + ": " + aad +
                                 " is unreadable: " + std::string(plain.status().message()));
    }
    return FromRocks(batch.Put(cf, key, SealValue(aad, *plain)), "re-sealing " + aad);
  }));
  if (batch.Count() > 0) RETURN_IF_ERROR(Write(&batch, /*sync=*/true));
  keys_.DropOld();
  return absl::OkStatus();
}

absl::StatusOr<std::set<uint32_t>> DiskStorage::KeyIdsInUse() {
  std::set<uint32_t> ids;
  RETURN_IF_ERROR(ForEachRecord([&](rocksdb::ColumnFamilyHandle*, const std::string&,
                                    const std::string& value) -> absl::Status {
    ASSIGN_OR_RETURN(const uint32_t id, RecordKeyId(value));
    ids.insert(id);
    return absl::OkStatus();
  }));
  return ids;
}

absl::Status DiskStorage::PutMeta(const std::string& key, const std::string& value) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return FromRocks(db_->Put(wo, meta_, "node/" + key, SealValue("meta/" + key, value)),
                   "writing " + key + " to " + path_);
}

absl::StatusOr<std::optional<std::string>> DiskStorage::GetMeta(const std::string& key) {
  std::string value;
  rocksdb::Status st = db_->Get(rocksdb::ReadOptions(), meta_, "node/" + key, &value);
  if (st.IsNotFound()) return std::optional<std::string>();
  if (!st.ok()) return FromRocks(st, "reading " + key + " from " + path_);
  absl::StatusOr<std::string> plain = OpenRecord(keys_, value, "meta/" + key);
  if (!plain.ok()) {
    return absl::DataLossError("raft log " + path_ + ": " + key +
                               " is unreadable: " + std::string(plain.status().message()));
  }
  return std::optional<std::string>(*std::move(plain));
}

}  // namespace swarm::raft

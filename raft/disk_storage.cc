#include "raft/disk_storage.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/write_batch.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <optional>

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

// Chunk n of a snapshot: "chunk/<index>/<n>" for this node's own, "recv/<id>/<n>" for one
// received; the associated data names it the same way.
std::string ChunkKey(const DiskStorage::StoredChunks& c, uint64_t n) {
  return c.received_id != 0 ? "recv/" + BigEndian(c.received_id) + "/" + BigEndian(n)
                            : "chunk/" + BigEndian(c.index) + "/" + BigEndian(n);
}
std::string ChunkAad(const DiskStorage::StoredChunks& c, uint64_t n) {
  return c.received_id != 0
             ? "snapshot/recv/" + std::to_string(c.received_id) + "/" + std::to_string(n)
             : "snapshot/chunk/" + std::to_string(c.index) + "/" + std::to_string(n);
}
std::string ChunkName(const DiskStorage::StoredChunks& c, uint64_t n) {
  return "snapshot " + std::to_string(c.index) + " chunk " + std::to_string(n);
}

std::string LogAad(uint64_t index) { return "log/" + std::to_string(index); }

absl::Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = what + ": " + s.ToString();
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsIOError()) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

}  // namespace

DiskStorage::DiskStorage(std::string path, KeyRing keys, Random& random)
    : path_(std::move(path)), keys_(std::move(keys)), source_random_(random), random_(random) {}

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
  // Every value is ciphertext: compressing it only costs CPU in each flush and compaction.
  cf.compression = rocksdb::kNoCompression;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, cf}, {"log", cf}, {"meta", cf}, {"snapshot", cf}};
  rocksdb::DB* db = nullptr;
  rocksdb::Status st = rocksdb::DB::Open(options, path, cfs, &s->handles_, &db);
  if (!st.ok()) return FromRocks(st, "opening the raft log at " + path);
  s->db_.reset(db);
  // Table files of snapshots being written when the node stopped.
  std::error_code ec;
  std::filesystem::remove_all(path + "/incoming", ec);
  if (!ec) std::filesystem::create_directory(path + "/incoming", ec);
  if (ec) return absl::UnavailableError("emptying " + path + "/incoming: " + ec.message());
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

  ASSIGN_OR_RETURN(const std::optional<SnapshotRecord> stored, ReadSnapshotRecord(ro, keys_));
  if (stored) {
    state.snapshot.metadata = stored->metadata;
    snapshot_ = stored->chunks;
  }
  // Chunks no record names: a snapshot being written or received when the node stopped.
  rocksdb::WriteBatch orphans;
  const std::pair<std::string, std::string> spaces[] = {{"chunk/", "chunk0"}, {"recv/", "recv0"}};
  for (const auto& [begin, end] : spaces) {
    if (snapshot_.index != 0 && ChunkKey(snapshot_, 0).starts_with(begin)) {
      (void)orphans.DeleteRange(snap_, begin, ChunkKey(snapshot_, 0));
      (void)orphans.DeleteRange(snap_, ChunkKey(snapshot_, UINT64_MAX), end);
    } else {
      (void)orphans.DeleteRange(snap_, begin, end);
    }
  }
  RETURN_IF_ERROR(Write(&orphans, /*sync=*/false));

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

absl::Status DiskStorage::SnapshotToBatch(const SnapshotMetadata& metadata,
                                          const StoredChunks& chunks, void* b,
                                          std::vector<uint64_t>* superseded) {
  auto* batch = static_cast<rocksdb::WriteBatch*>(b);
  raftpb::SnapshotRecord rec;
  ToProto(metadata, rec.mutable_metadata());
  rec.set_chunks(chunks.chunks);
  rec.set_size(chunks.size);
  rec.set_received_id(chunks.received_id);
  rec.set_format(chunks.format);
  auto st =
      batch->Put(snap_, kSnapshotMetaKey, SealValue("snapshot/meta", rec.SerializeAsString()));
  if (!st.ok()) return FromRocks(st, "writing the snapshot record");
  // The previous snapshot's chunks go with it, and so do received ones this one supersedes.
  std::vector<StoredChunks> old;
  if (snapshot_.index != 0 && ChunkKey(snapshot_, 0) != ChunkKey(chunks, 0)) {
    old.push_back(snapshot_);
  }
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [index, staged] : staged_) {
      if (index > metadata.index) break;
      superseded->push_back(index);
      if (staged.received_id != chunks.received_id) old.push_back(staged);
    }
  }
  for (const StoredChunks& c : old) {
    st = batch->DeleteRange(snap_, ChunkKey(c, 0), ChunkKey(c, UINT64_MAX));
    if (!st.ok()) return FromRocks(st, "deleting an old snapshot's chunks");
  }
  return absl::OkStatus();
}

void DiskStorage::NoteSnapshotStored(const StoredChunks& chunks,
                                     const std::vector<uint64_t>& superseded) {
  snapshot_ = chunks;
  absl::MutexLock lock(&mu_);
  for (uint64_t index : superseded) staged_.erase(index);
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
  std::optional<StoredChunks> chunks;
  std::vector<uint64_t> superseded;
  if (snapshot != nullptr && !snapshot->empty()) {
    {
      absl::MutexLock lock(&mu_);
      auto it = staged_.find(snapshot->metadata.index);
      if (it == staged_.end()) {
        return absl::FailedPreconditionError("raft log " + path_ + ": the snapshot at index " +
                                             std::to_string(snapshot->metadata.index) +
                                             " was not received in full");
      }
      chunks = it->second;
    }
    RETURN_IF_ERROR(SnapshotToBatch(snapshot->metadata, *chunks, &batch, &superseded));
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
  if (chunks) NoteSnapshotStored(*chunks, superseded);
  return absl::OkStatus();
}

absl::Status DiskStorage::SaveSnapshot(const SnapshotMetadata& metadata,
                                       const StoredChunks& chunks) {
  rocksdb::WriteBatch batch;
  std::vector<uint64_t> superseded;
  RETURN_IF_ERROR(SnapshotToBatch(metadata, chunks, &batch, &superseded));
  RETURN_IF_ERROR(Write(&batch, /*sync=*/true));
  NoteSnapshotStored(chunks, superseded);
  return absl::OkStatus();
}

// ---- Snapshot data, a chunk at a time ----

DiskStorage::SnapshotChunks::SnapshotChunks(DiskStorage* disk, StoredChunks where, DataKey key,
                                            std::string file)
    : disk_(disk),
      where_(where),
      key_(std::move(key)),
      random_(std::make_unique<BufferedRandom>(disk->source_random_)),
      file_(std::move(file)) {}

DiskStorage::SnapshotChunks::~SnapshotChunks() {
  if (finished_) return;
  table_.reset();
  unlink(file_.c_str());
}

absl::Status DiskStorage::SnapshotChunks::Write(std::string_view bytes) {
  where_.size += bytes.size();
  while (!bytes.empty()) {
    const size_t n = std::min(kChunkSize - buffer_.size(), bytes.size());
    buffer_.append(bytes.substr(0, n));
    bytes.remove_prefix(n);
    if (buffer_.size() == kChunkSize) RETURN_IF_ERROR(Flush());
  }
  return absl::OkStatus();
}

absl::Status DiskStorage::SnapshotChunks::Flush() {
  if (buffer_.empty()) return absl::OkStatus();
  const std::string where = "writing the snapshot table " + file_;
  if (!table_) {
    table_ = std::make_unique<rocksdb::SstFileWriter>(
        rocksdb::EnvOptions(), disk_->db_->GetOptions(disk_->snap_), disk_->snap_);
    RETURN_IF_ERROR(FromRocks(table_->Open(file_), where));
  }
  const uint64_t n = where_.chunks;
  RETURN_IF_ERROR(FromRocks(
      table_->Put(ChunkKey(where_, n), SealRecord(key_, buffer_, ChunkAad(where_, n), *random_)),
      where));
  ++where_.chunks;
  buffer_.clear();
  return absl::OkStatus();
}

absl::StatusOr<DiskStorage::StoredChunks> DiskStorage::SnapshotChunks::Finish() {
  RETURN_IF_ERROR(Flush());
  // Synced, then moved in: the chunks are durable before any record can name them.
  if (table_) RETURN_IF_ERROR(FromRocks(table_->Finish(), "finishing the snapshot table " + file_));
  // Under mu_ from the key check to the staging: RetireOldKeys, which holds it throughout,
  // either re-seals these chunks or sees the key it drops refused here.
  absl::MutexLock lock(&disk_->mu_);
  if (disk_->keys_.Find(key_.id) == nullptr) {
    return absl::AbortedError("the raft data key changed while the snapshot was written");
  }
  if (where_.received_id != 0 && disk_->staged_.count(where_.index)) {
    // Another transfer of this snapshot arrived first and may be being installed: it stays,
    // and this one is not needed (same index, same state).
    return disk_->staged_[where_.index];
  }
  if (table_) {
    rocksdb::IngestExternalFileOptions ingest;
    ingest.move_files = true;
    ingest.write_global_seqno = false;
    RETURN_IF_ERROR(FromRocks(disk_->db_->IngestExternalFile(disk_->snap_, {file_}, ingest),
                              "moving the snapshot table " + file_ + " into the raft log"));
  }
  finished_ = true;
  if (where_.received_id != 0) disk_->staged_[where_.index] = where_;
  return where_;
}

std::unique_ptr<DiskStorage::SnapshotChunks> DiskStorage::NewSnapshotWriter(uint64_t index,
                                                                            bool received,
                                                                            uint32_t format) {
  absl::MutexLock lock(&mu_);
  uint64_t id = 0;
  while (received && id == 0) id = source_random_.Next64();
  char file[64];
  snprintf(file, sizeof file, "/incoming/%016lx.sst",
           static_cast<unsigned long>(source_random_.Next64()));
  return std::unique_ptr<SnapshotChunks>(
      new SnapshotChunks(this, {index, id, 0, 0, format}, keys_.current(), path_ + file));
}

// Reads a stored snapshot's chunks in order, from a RocksDB snapshot of the database taken
// when it was opened.
class DiskStorage::ChunkReader final : public SnapshotReader {
 public:
  ChunkReader(DiskStorage* disk, const rocksdb::Snapshot* db_snapshot, KeyRing keys,
              StoredChunks where)
      : disk_(disk), db_snapshot_(db_snapshot), keys_(std::move(keys)), where_(where) {}
  ~ChunkReader() override { disk_->db_->ReleaseSnapshot(db_snapshot_); }

  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    if (pos_ == chunk_.size()) {
      if (next_ == where_.chunks) {
        if (read_ != where_.size) return Lost("the data has the wrong size");
        return 0;
      }
      rocksdb::ReadOptions ro;
      ro.verify_checksums = true;
      ro.fill_cache = false;  // read once
      ro.snapshot = db_snapshot_;
      std::string value;
      rocksdb::Status st = disk_->db_->Get(ro, disk_->snap_, ChunkKey(where_, next_), &value);
      if (!st.ok()) return Lost(ChunkName(where_, next_) + " is missing: " + st.ToString());
      absl::StatusOr<std::string> plain = OpenRecord(keys_, value, ChunkAad(where_, next_));
      if (!plain.ok()) {
        return Lost(ChunkName(where_, next_) + ": " + std::string(plain.status().message()));
      }
      chunk_ = *std::move(plain);
      pos_ = 0;
      ++next_;
    }
    n = std::min(n, chunk_.size() - pos_);
    std::memcpy(buf, chunk_.data() + pos_, n);
    pos_ += n;
    read_ += n;
    return n;
  }

 private:
  absl::Status Lost(const std::string& what) const {
    return absl::DataLossError("raft log " + disk_->path_ + ": " + what);
  }
  DiskStorage* disk_;
  const rocksdb::Snapshot* db_snapshot_;
  const KeyRing keys_;
  const StoredChunks where_;
  std::string chunk_;
  size_t pos_ = 0;
  uint64_t next_ = 0;  // the chunk to read next
  uint64_t read_ = 0;
};

absl::StatusOr<StoredSnapshot> DiskStorage::OpenSnapshot(uint64_t index) {
  // The keys and the database as of one moment: a rotation in between could leave us a
  // record sealed with a key we did not copy.
  std::optional<KeyRing> keys;
  const rocksdb::Snapshot* db_snapshot;
  {
    absl::MutexLock lock(&mu_);
    keys.emplace(keys_);
    db_snapshot = db_->GetSnapshot();
  }
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  ro.snapshot = db_snapshot;
  absl::StatusOr<std::optional<SnapshotRecord>> stored = ReadSnapshotRecord(ro, *keys);
  absl::Status error = stored.status();
  if (error.ok() && !*stored) {
    error = absl::NotFoundError("raft log " + path_ + ": no snapshot is stored");
  } else if (error.ok() && (*stored)->metadata.index != index) {
    error = absl::NotFoundError("raft log " + path_ + ": the snapshot at index " +
                                std::to_string(index) + " was replaced by the one at " +
                                std::to_string((*stored)->metadata.index));
  }
  if (!error.ok()) {
    db_->ReleaseSnapshot(db_snapshot);
    return error;
  }
  const StoredChunks& where = (*stored)->chunks;
  return StoredSnapshot{where.format, where.size,
                        std::make_unique<ChunkReader>(this, db_snapshot, *std::move(keys), where)};
}

absl::StatusOr<std::optional<DiskStorage::SnapshotRecord>> DiskStorage::ReadSnapshotRecord(
    const rocksdb::ReadOptions& ro, const KeyRing& keys) {
  std::string value;
  rocksdb::Status st = db_->Get(ro, snap_, kSnapshotMetaKey, &value);
  if (st.IsNotFound()) return std::nullopt;
  if (!st.ok()) return FromRocks(st, "reading the snapshot record of the raft log at " + path_);
  absl::StatusOr<std::string> plain = OpenRecord(keys, value, "snapshot/meta");
  raftpb::SnapshotRecord rec;
  if (!plain.ok() || !rec.ParseFromString(*plain)) {
    return absl::DataLossError(
        "raft log " + path_ + ": the snapshot record is unreadable: " +
        (plain.ok() ? std::string("it does not parse") : std::string(plain.status().message())));
  }
  const SnapshotMetadata metadata = FromProto(rec.metadata());
  return SnapshotRecord{
      metadata, {metadata.index, rec.received_id(), rec.chunks(), rec.size(), rec.format()}};
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
  absl::MutexLock lock(&mu_);
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
  // "chunk/" index(8) "/" n(8), or "recv/" id(8) "/" n(8)
  if (cf == snap_ && key.size() == 23 && key.starts_with("chunk/") && key[14] == '/') {
    return ChunkAad({.index = FromBigEndian(rocksdb::Slice(key.data() + 6, 8))},
                    FromBigEndian(rocksdb::Slice(key.data() + 15, 8)));
  }
  if (cf == snap_ && key.size() == 22 && key.starts_with("recv/") && key[13] == '/') {
    return ChunkAad({.received_id = FromBigEndian(rocksdb::Slice(key.data() + 5, 8))},
                    FromBigEndian(rocksdb::Slice(key.data() + 14, 8)));
  }
  return absl::DataLossError("raft log " + path_ + ": unexpected record " + cf->GetName() + "/" +
                             key);
}

absl::Status DiskStorage::RetireOldKeys() {
  // Throughout: a snapshot writer's Finish cannot slip chunks sealed with an old key in between.
  absl::MutexLock lock(&mu_);
  const uint32_t current = keys_.current().id;
  rocksdb::WriteBatch batch;
  bool unsynced = false;
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
    RETURN_IF_ERROR(FromRocks(batch.Put(cf, key, SealValue(aad, *plain)), "re-sealing " + aad));
    // Records are independent and both keys stay until the end: a snapshot's chunks need not
    // be held in one batch.
    if (batch.GetDataSize() < (16u << 20)) return absl::OkStatus();
    RETURN_IF_ERROR(Write(&batch, /*sync=*/false));
    batch.Clear();
    unsynced = true;
    return absl::OkStatus();
  }));
  if (batch.Count() > 0) {
    RETURN_IF_ERROR(Write(&batch, /*sync=*/true));  // also syncs what went before
  } else if (unsynced) {
    RETURN_IF_ERROR(FromRocks(db_->SyncWAL(), "syncing the raft log at " + path_));
  }
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

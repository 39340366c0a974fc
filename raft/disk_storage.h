// DiskStorage: the durable Raft log of one manager in RocksDB, encrypted at rest.
//
// The core reads a MemoryStorage (the log between two snapshots fits in memory, since the node
// snapshots and compacts every few thousand entries); DiskStorage is what makes it survive a
// crash: the node writes each Ready here, in one synced WriteBatch, before it acknowledges
// anything, and loads everything back at start.
//
// On-disk format (one RocksDB database, directory `path`):
//   column family "log":      key = index (8 bytes, big-endian) -> sealed raftpb.Entry
//   column family "meta":     "hardstate" -> sealed raftpb.HardState; other keys are the
//                              node's own (PutMeta)
//   column family "snapshot": "meta" -> sealed SnapshotRecord (metadata, chunk count, size);
//                              "chunk/<index>/<n>" (8 bytes each, big-endian) -> sealed data
//                              chunk of a snapshot this node took; "recv/<id>/<n>" -> one of a
//                              snapshot received from the leader, stored under a random ID as
//                              it arrives (so that no retry or second leader overwrites it)
// Every value is sealed with AES-256-GCM (common/aead.h) with its column family and key as
// associated data, so a corrupted, truncated or moved record is detected at load; RocksDB
// itself runs with paranoid checks and refuses a corrupted write-ahead log instead of
// silently dropping its tail. Any such failure makes Load() (for a snapshot's chunks, the
// reader OpenSnapshot returns, which the node reads through as it starts) return DATA_LOSS
// naming the database and the record: a node never starts on a log it cannot fully trust.
//
// Crash recovery: each Save() is one atomic WriteBatch, so after a crash the database holds a
// prefix of the Saves in order (synced ones all of them).
//
// Snapshots are written in chunks of 1 MiB as they are produced or received (a SnapshotChunks
// writer, outside any Save), and become the snapshot only when the record naming them is
// written (SaveSnapshot, or the Save of the Ready that installs one from the leader). Chunks
// that no record names (a crash mid-write, a transfer that failed) are deleted at Load and
// whenever a newer snapshot is stored. The stored snapshot is read back a chunk at a time
// (OpenSnapshot), from a RocksDB snapshot, so a sender is not disturbed by a newer one.
//
// Key rotation: RotateKey makes a new DEK current for every record written from then on, while
// records sealed before stay readable through the old keys in the ring (their key ID). Once a
// snapshot taken after the rotation is stored and the log below it compacted, RetireOldKeys
// re-seals what is left under an old key (the entries kept for slow followers, the hard state,
// the node's metadata) in one atomic, synced batch and forgets the old keys. The caller keeps
// the old keys in its key store until RetireOldKeys returns: a crash before that reopens with
// both keys and reads everything; a crash after leaves nothing that needs the old ones.
//
// Thread-safety: NewSnapshotWriter and OpenSnapshot are thread-safe (a snapshot arrives and
// leaves on transport threads), and so are the writers and readers they return, each used by
// one thread at a time; the Random given to Open must then be thread-safe too. Everything else
// is called from the node's Ready loop only.
#ifndef SWARM_RAFT_DISK_STORAGE_H_
#define SWARM_RAFT_DISK_STORAGE_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/aead.h"
#include "common/random.h"
#include "raft/snapshot_io.h"
#include "raft/types.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class SstFileWriter;
struct ReadOptions;
}  // namespace rocksdb

namespace swarm::raft {

class DiskStorage {
  class BufferedRandom;  // below

 public:
  // Opens (or creates) the database at path.
  static absl::StatusOr<std::unique_ptr<DiskStorage>> Open(const std::string& path, KeyRing keys,
                                                           Random& random);
  ~DiskStorage();

  struct State {
    HardState hard_state;
    // empty() when no snapshot was ever stored. Its data stays on disk: OpenSnapshot.
    Snapshot snapshot;
    // The log after the snapshot, contiguous.
    std::vector<Entry> entries;
  };
  // Reads everything back. DATA_LOSS when a record fails to open or the log has a gap.
  absl::StatusOr<State> Load();

  // Where a snapshot's chunks were written, as SnapshotChunks::Finish reports it.
  struct StoredChunks {
    uint64_t index = 0;
    uint64_t received_id = 0;  // 0 for this node's own snapshot
    uint64_t chunks = 0;
    uint64_t size = 0;
    uint32_t format = kSnapshotFormatStreamed;
  };

  // Writes a snapshot's data in sealed chunks as it comes, into a table file of its own
  // (under <path>/incoming) that Finish syncs and moves into the database: a snapshot of any
  // size passes through neither RocksDB's log nor its memtables. Nothing refers to the
  // chunks before the record (see above). Write fails with what RocksDB said.
  class SnapshotChunks final : public SnapshotWriter {
   public:
    // Deletes what it wrote unless finished.
    ~SnapshotChunks() override;
    absl::Status Write(std::string_view bytes) override;
    // Writes what is buffered. A received snapshot is then ready for the Save that installs it
    // (or, when another transfer of it arrived first, that one is, and this one is dropped).
    absl::StatusOr<StoredChunks> Finish();

   private:
    friend class DiskStorage;
    SnapshotChunks(DiskStorage* disk, StoredChunks where, DataKey key, std::string file);
    absl::Status Flush();
    DiskStorage* disk_;
    StoredChunks where_;
    DataKey key_;
    std::unique_ptr<BufferedRandom> random_;
    std::string buffer_;
    const std::string file_;
    std::unique_ptr<rocksdb::SstFileWriter> table_;  // open once the first chunk is written
    bool finished_ = false;
  };
  // A writer for the data of a snapshot at `index`: this node's own (format streamed), or one
  // received from the leader in `format`.
  std::unique_ptr<SnapshotChunks> NewSnapshotWriter(uint64_t index, bool received,
                                                    uint32_t format = kSnapshotFormatStreamed);
  // The stored snapshot's data if it is the one at `index`; NOT_FOUND when another replaced
  // it (or there is none). The reader returns DATA_LOSS, naming the chunk, for a chunk that
  // is missing or does not open, or data of the wrong size.
  absl::StatusOr<StoredSnapshot> OpenSnapshot(uint64_t index);

  // Persists one Ready: an optional snapshot received from the leader (its data written and
  // finished through NewSnapshotWriter; it replaces the whole log), entries (replacing any
  // conflicting suffix), and the hard state when not empty. sync = the Ready's must_sync.
  absl::Status Save(const HardState& hs, const std::vector<Entry>& entries,
                    const Snapshot* snapshot, bool sync);
  // Makes a snapshot this node wrote (through NewSnapshotWriter) the stored one; the log is
  // kept (see Compact).
  absl::Status SaveSnapshot(const SnapshotMetadata& metadata, const StoredChunks& chunks);
  // Deletes the log entries below index.
  absl::Status Compact(uint64_t index);

  // Seals every record written from now on with next. INVALID_ARGUMENT unless next.id is above
  // the current key's.
  absl::Status RotateKey(DataKey next);
  // Re-seals every record still sealed with an old key with the current one, then forgets the
  // old keys. DATA_LOSS when such a record does not open.
  absl::Status RetireOldKeys();
  // The IDs of the keys the stored records are sealed with.
  absl::StatusOr<std::set<uint32_t>> KeyIdsInUse();
  const KeyRing& keys() const { return keys_; }

  absl::Status PutMeta(const std::string& key, const std::string& value);
  // nullopt when absent.
  absl::StatusOr<std::optional<std::string>> GetMeta(const std::string& key);

  const std::string& path() const { return path_; }

 private:
  DiskStorage(std::string path, KeyRing keys, Random& random);
  std::string SealValue(const std::string& aad, const std::string& plaintext);
  // Adds the record of a snapshot to batch, and the deletion of every other snapshot's chunks
  // at or below it; *superseded gets the staged snapshots (by index) the batch deletes or
  // installs.
  absl::Status SnapshotToBatch(const SnapshotMetadata& metadata, const StoredChunks& chunks,
                               void* batch, std::vector<uint64_t>* superseded);
  // After the batch above is written.
  void NoteSnapshotStored(const StoredChunks& chunks, const std::vector<uint64_t>& superseded);
  // The stored snapshot's record as of ro, opened with keys: nullopt when there is none,
  // DATA_LOSS when it does not open.
  struct SnapshotRecord {
    SnapshotMetadata metadata;
    StoredChunks chunks;
  };
  absl::StatusOr<std::optional<SnapshotRecord>> ReadSnapshotRecord(const rocksdb::ReadOptions& ro,
                                                                   const KeyRing& keys);
  absl::Status Write(void* batch, bool sync);
  // Calls visit(column family, key, value) for every stored record.
  absl::Status ForEachRecord(
      const std::function<absl::Status(rocksdb::ColumnFamilyHandle*, const std::string&,
                                       const std::string&)>& visit);
  // The associated data a record of that column family and key is sealed with.
  absl::StatusOr<std::string> AadFor(rocksdb::ColumnFamilyHandle* cf, const std::string& key);

  class ChunkReader;

  // Draws from another Random 4 KiB at a time. Every log entry is sealed with a fresh random
  // nonce, and one call into OpenSSL's generator per entry cost about as much as sealing it.
  class BufferedRandom final : public Random {
   public:
    explicit BufferedRandom(Random& source) : source_(source) {}
    void Fill(void* buf, size_t len) override;

   private:
    Random& source_;
    unsigned char pool_[4096];
    // Bytes of pool_ handed out already (all of them until the first draw).
    size_t used_ = sizeof(pool_);
  };

  std::string path_;
  // Guards keys_ against the loop's rotations while a snapshot writer or reader copies it
  // (the loop itself reads keys_ without it), and staged_.
  absl::Mutex mu_;
  KeyRing keys_;
  // Snapshots received in full (their chunks written), by index, until a Save installs them.
  std::map<uint64_t, StoredChunks> staged_ ABSL_GUARDED_BY(mu_);
  Random& source_random_;
  BufferedRandom random_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* log_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* snap_ = nullptr;
  // Last index in the log (0 when empty), so Save can delete a replaced suffix.
  uint64_t last_index_ = 0;
  // The stored snapshot, whose chunks a newer snapshot deletes.
  StoredChunks snapshot_;
};

}  // namespace swarm::raft

#endif  // SWARM_RAFT_DISK_STORAGE_H_

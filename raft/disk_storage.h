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
//   column family "snapshot": "meta" -> sealed SnapshotRecord (metadata, chunk count);
//                              "chunk/<index>/<n>" (n 8 bytes, big-endian) -> sealed data chunk
// Every value is sealed with AES-256-GCM (common/aead.h) with its column family and key as
// associated data, so a corrupted, truncated or moved record is detected at load; RocksDB
// itself runs with paranoid checks and refuses a corrupted write-ahead log instead of
// silently dropping its tail. Any such failure makes Load() return DATA_LOSS naming the
// database and the record: a node never starts on a log it cannot fully trust.
//
// Crash recovery: each Save() is one atomic WriteBatch, so after a crash the database holds a
// prefix of the Saves in order (synced ones all of them).
//
// Key rotation: RotateKey makes a new DEK current for every record written from then on, while
// records sealed before stay readable through the old keys in the ring (their key ID). Once a
// snapshot taken after the rotation is stored and the log below it compacted, RetireOldKeys
// re-seals what is left under an old key (the entries kept for slow followers, the hard state,
// the node's metadata) in one atomic, synced batch and forgets the old keys. The caller keeps
// the old keys in its key store until RetireOldKeys returns: a crash before that reopens with
// both keys and reads everything; a crash after leaves nothing that needs the old ones.
//
// Thread-safety: not thread-safe; the node's Ready loop is the only caller.
#ifndef SWARM_RAFT_DISK_STORAGE_H_
#define SWARM_RAFT_DISK_STORAGE_H_

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/aead.h"
#include "common/random.h"
#include "raft/types.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace swarm::raft {

class DiskStorage {
 public:
  // Opens (or creates) the database at path.
  static absl::StatusOr<std::unique_ptr<DiskStorage>> Open(const std::string& path, KeyRing keys,
                                                           Random& random);
  ~DiskStorage();

  struct State {
    HardState hard_state;
    // empty() when no snapshot was ever stored.
    Snapshot snapshot;
    // The log after the snapshot, contiguous.
    std::vector<Entry> entries;
  };
  // Reads everything back. DATA_LOSS when a record fails to open or the log has a gap.
  absl::StatusOr<State> Load();

  // Persists one Ready: an optional snapshot received from the leader (which replaces the
  // whole log), entries (replacing any conflicting suffix), and the hard state when not
  // empty. sync = the Ready's must_sync.
  absl::Status Save(const HardState& hs, const std::vector<Entry>& entries,
                    const Snapshot* snapshot, bool sync);
  // Stores a snapshot made by this node (the log is kept; see Compact).
  absl::Status SaveSnapshot(const Snapshot& snapshot);
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
  absl::Status SnapshotToBatch(const Snapshot& snapshot, void* batch);
  absl::Status Write(void* batch, bool sync);
  // Calls visit(column family, key, value) for every stored record.
  absl::Status ForEachRecord(
      const std::function<absl::Status(rocksdb::ColumnFamilyHandle*, const std::string&,
                                       const std::string&)>& visit);
  // The associated data a record of that column family and key is sealed with.
  absl::StatusOr<std::string> AadFor(rocksdb::ColumnFamilyHandle* cf, const std::string& key);

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
  KeyRing keys_;
  BufferedRandom random_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* log_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* snap_ = nullptr;
  // Last index in the log (0 when empty), so Save can delete a replaced suffix.
  uint64_t last_index_ = 0;
  // Index of the stored snapshot, whose chunks a newer snapshot deletes.
  uint64_t snapshot_index_ = 0;
  uint64_t snapshot_chunks_ = 0;
};

}  // namespace swarm::raft

#endif  // SWARM_RAFT_DISK_STORAGE_H_

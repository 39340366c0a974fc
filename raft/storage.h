// The log storage the Raft core reads. The core never writes it: the application persists what
// Ready hands out (entries, hard state, snapshots) and then calls Advance(). MemoryStorage is
// the in-memory twin used by tests, the simulation and benchmarks; the RocksDB storage of the
// node implements the same interface.
//
// Thread-safety: the core calls Storage from the thread that drives it. MemoryStorage guards
// its state with a mutex so the application may append from another thread.
#ifndef SWARM_RAFT_STORAGE_H_
#define SWARM_RAFT_STORAGE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "raft/types.h"

namespace swarm::raft {

// The requested index is below the first available one (compacted into a snapshot).
absl::Status CompactedError();
bool IsCompacted(const absl::Status& s);
// The requested index is beyond the last one.
absl::Status EntryUnavailableError();
bool IsEntryUnavailable(const absl::Status& s);
// The snapshot is being built; the leader retries later.
absl::Status SnapshotTemporarilyUnavailableError();
bool IsSnapshotTemporarilyUnavailable(const absl::Status& s);
// A snapshot older than the one stored.
absl::Status SnapshotOutOfDateError();

struct InitialState {
  HardState hard_state;
  // Membership as of the snapshot (or the bootstrap membership when there is no snapshot).
  // The core replays conf change entries after it from the log.
  ConfState conf_state;
};

// The log a new cluster starts from: one conf change entry per initial member, in term 1, all
// committed. Every initial member starts from this same log, and members added later learn the
// initial membership from it like any other change. The hard state to store with it is
// {term 1, no vote, commit = entries.size()}.
// contexts optionally gives each member's conf change context (for example its address).
std::vector<Entry> BootstrapEntries(const ConfState& cs,
                                    const std::map<uint64_t, std::string>& contexts = {});

class Storage {
 public:
  virtual ~Storage() = default;
  virtual absl::StatusOr<InitialState> GetInitialState() const = 0;
  // Entries in [lo, hi), at least one if any, and no more than max_size bytes beyond the first.
  virtual absl::StatusOr<std::vector<Entry>> Entries(uint64_t lo, uint64_t hi,
                                                     uint64_t max_size) const = 0;
  // Term of entry i, for i in [FirstIndex()-1, LastIndex()].
  virtual absl::StatusOr<uint64_t> Term(uint64_t i) const = 0;
  virtual uint64_t LastIndex() const = 0;
  // Index of the first entry still in the log: at most the snapshot index + 1 (entries below
  // the snapshot may be kept for slow followers).
  virtual uint64_t FirstIndex() const = 0;
  // The most recent snapshot.
  virtual absl::StatusOr<Snapshot> GetSnapshot() const = 0;
};

class MemoryStorage final : public Storage {
 public:
  MemoryStorage();

  absl::StatusOr<InitialState> GetInitialState() const override;
  absl::StatusOr<std::vector<Entry>> Entries(uint64_t lo, uint64_t hi,
                                             uint64_t max_size) const override;
  absl::StatusOr<uint64_t> Term(uint64_t i) const override;
  uint64_t LastIndex() const override;
  uint64_t FirstIndex() const override;
  absl::StatusOr<Snapshot> GetSnapshot() const override;

  void SetHardState(const HardState& hs);
  // Starts the log of a new cluster's member (see BootstrapEntries).
  void Bootstrap(const ConfState& cs);
  // Replaces the contents with a snapshot received from the leader.
  absl::Status ApplySnapshot(const Snapshot& snap);
  // Makes a snapshot at index i (which must be applied) with the given data and membership.
  absl::StatusOr<Snapshot> CreateSnapshot(uint64_t i, const ConfState& cs, Payload data);
  // Drops entries below compact_index (which must not exceed the last index).
  absl::Status Compact(uint64_t compact_index);
  // Appends entries, truncating any conflicting suffix first. They must be contiguous.
  absl::Status Append(std::vector<Entry> entries);

 private:
  uint64_t FirstIndexLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t LastIndexLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  HardState hard_state_ ABSL_GUARDED_BY(mu_);
  Snapshot snapshot_ ABSL_GUARDED_BY(mu_);
  // ents_[0] is a dummy entry holding the snapshot's index and term; ents_[i] has index
  // ents_[0].index + i.
  std::vector<Entry> ents_ ABSL_GUARDED_BY(mu_);
};

}  // namespace swarm::raft

#endif  // SWARM_RAFT_STORAGE_H_

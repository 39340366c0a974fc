// RaftLog: the core's view of the replicated log, the durable part in Storage followed by the
// unstable part (entries and possibly a snapshot that the caller has not persisted yet).
//
// Owned by Raft; not thread-safe.
// Invariants: applied <= committed <= LastIndex(); the unstable entries start right after the
// unstable snapshot or the storage's last index they replace; committed entries are never
// truncated (an attempt stops the process: it would mean a broken Raft invariant).
#ifndef SWARM_RAFT_LOG_H_
#define SWARM_RAFT_LOG_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "raft/storage.h"
#include "raft/types.h"

namespace swarm::raft {

// Entries and snapshot not yet persisted. entries[i] has index offset + i.
class Unstable {
 public:
  std::optional<uint64_t> MaybeFirstIndex() const;
  std::optional<uint64_t> MaybeLastIndex() const;
  std::optional<uint64_t> MaybeTerm(uint64_t i) const;
  // The caller persisted entries up to (i, t).
  void StableTo(uint64_t i, uint64_t t);
  // The caller persisted the snapshot at index i.
  void StableSnapTo(uint64_t i);
  void Restore(const Snapshot& s);
  void TruncateAndAppend(std::vector<Entry> ents);
  // Entries [lo, hi); both must lie within the unstable entries.
  std::vector<Entry> Slice(uint64_t lo, uint64_t hi) const;

  std::optional<Snapshot> snapshot;
  std::vector<Entry> entries;
  uint64_t offset = 0;
};

class RaftLog {
 public:
  // Fatal error handling: the storage must be consistent.
  RaftLog(Storage* storage, uint64_t max_next_ents_size);

  // Appends ents after (index, log_term) if that entry matches; returns the new last index,
  // or nullopt when it does not match. Commits up to min(committed, new last index).
  std::optional<uint64_t> MaybeAppend(uint64_t index, uint64_t log_term, uint64_t committed,
                                      std::vector<Entry> ents);
  uint64_t Append(std::vector<Entry> ents);
  // The first index of ents whose term conflicts with the log (or that is new), 0 if none.
  uint64_t FindConflict(const std::vector<Entry>& ents) const;
  // The largest index <= index whose term is <= term (fast backtracking), and that term.
  std::pair<uint64_t, uint64_t> FindConflictByTerm(uint64_t index, uint64_t term) const;

  std::vector<Entry> UnstableEntries() const;
  // Committed entries not yet applied, up to max_next_ents_size bytes.
  std::vector<Entry> NextCommittedEntries() const;
  bool HasNextCommittedEntries() const;
  bool HasPendingSnapshot() const { return unstable_.snapshot.has_value(); }
  absl::StatusOr<Snapshot> GetSnapshot() const;

  uint64_t FirstIndex() const;
  uint64_t LastIndex() const;
  uint64_t LastTerm() const;
  absl::StatusOr<uint64_t> Term(uint64_t i) const;
  // Term(i), or 0 when compacted or unavailable.
  uint64_t ZeroTermOnError(uint64_t i) const;
  bool MatchTerm(uint64_t i, uint64_t term) const;
  // Whether a log ending at (last_index, term) is at least as up to date as this one.
  bool IsUpToDate(uint64_t last_index, uint64_t term) const;
  // Entries from i on, up to max_size bytes (at least one).
  absl::StatusOr<std::vector<Entry>> EntriesFrom(uint64_t i, uint64_t max_size) const;
  // Entries [lo, hi), up to max_size bytes (at least one).
  absl::StatusOr<std::vector<Entry>> Slice(uint64_t lo, uint64_t hi, uint64_t max_size) const;

  // Commits up to max_index if that entry has the given term.
  bool MaybeCommit(uint64_t max_index, uint64_t term);
  void CommitTo(uint64_t to_commit);
  void AppliedTo(uint64_t i);
  void StableTo(uint64_t i, uint64_t t) { unstable_.StableTo(i, t); }
  void StableSnapTo(uint64_t i) { unstable_.StableSnapTo(i); }
  void Restore(const Snapshot& s);

  uint64_t committed() const { return committed_; }
  uint64_t applied() const { return applied_; }
  Storage* storage() const { return storage_; }
  const Unstable& unstable() const { return unstable_; }

 private:
  absl::Status MustCheckOutOfBounds(uint64_t lo, uint64_t hi) const;

  Storage* storage_;
  Unstable unstable_;
  uint64_t committed_ = 0;
  uint64_t applied_ = 0;
  uint64_t max_next_ents_size_;
};

}  // namespace swarm::raft

#endif  // SWARM_RAFT_LOG_H_

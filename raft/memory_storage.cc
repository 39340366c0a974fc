#include <cstdio>
#include <cstdlib>

#include "raft/storage.h"

namespace swarm::raft {
namespace {

constexpr char kCompacted[] = "requested index is unavailable due to compaction";
constexpr char kUnavailable[] = "requested entry at index is unavailable";
constexpr char kSnapshotTemporarilyUnavailable[] = "snapshot is temporarily unavailable";

}  // namespace

absl::Status CompactedError() { return absl::OutOfRangeError(kCompacted); }
bool IsCompacted(const absl::Status& s) {
  return s.code() == absl::StatusCode::kOutOfRange && s.message() == kCompacted;
}
absl::Status EntryUnavailableError() { return absl::NotFoundError(kUnavailable); }
bool IsEntryUnavailable(const absl::Status& s) {
  return s.code() == absl::StatusCode::kNotFound && s.message() == kUnavailable;
}
absl::Status SnapshotTemporarilyUnavailableError() {
  return absl::UnavailableError(kSnapshotTemporarilyUnavailable);
}
bool IsSnapshotTemporarilyUnavailable(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable &&
         s.message() == kSnapshotTemporarilyUnavailable;
}
absl::Status SnapshotOutOfDateError() {
  return absl::FailedPreconditionError("requested snapshot is older than the existing one");
}

MemoryStorage::MemoryStorage() { ents_.emplace_back(); }

absl::StatusOr<InitialState> MemoryStorage::GetInitialState() const {
  absl::MutexLock lock(&mu_);
  return InitialState{hard_state_, snapshot_.metadata.conf_state};
}

void MemoryStorage::SetHardState(const HardState& hs) {
  absl::MutexLock lock(&mu_);
  hard_state_ = hs;
}

std::vector<Entry> BootstrapEntries(const ConfState& cs,
                                    const std::map<uint64_t, std::string>& contexts) {
  std::vector<Entry> ents;
  auto add = [&](ConfChangeType type, uint64_t id) {
    auto it = contexts.find(id);
    const std::string context = it == contexts.end() ? "" : it->second;
    ents.push_back(Entry{ents.size() + 1, 1, EntryType::kConfChange,
                         Payload(ConfChange{type, id, context}.Encode())});
  };
  for (uint64_t id : cs.voters) add(ConfChangeType::kAddNode, id);
  for (uint64_t id : cs.learners) add(ConfChangeType::kAddLearnerNode, id);
  return ents;
}

void MemoryStorage::Bootstrap(const ConfState& cs) {
  std::vector<Entry> ents = BootstrapEntries(cs);
  const uint64_t n = ents.size();
  if (!Append(std::move(ents)).ok()) Fatal("bootstrapping a non-empty storage");
  SetHardState(HardState{1, kNone, n});
}

uint64_t MemoryStorage::FirstIndexLocked() const { return ents_[0].index + 1; }
uint64_t MemoryStorage::LastIndexLocked() const { return ents_[0].index + ents_.size() - 1; }

uint64_t MemoryStorage::FirstIndex() const {
  absl::MutexLock lock(&mu_);
  return FirstIndexLocked();
}

uint64_t MemoryStorage::LastIndex() const {
  absl::MutexLock lock(&mu_);
  return LastIndexLocked();
}

absl::StatusOr<std::vector<Entry>> MemoryStorage::Entries(uint64_t lo, uint64_t hi,
                                                          uint64_t max_size) const {
  absl::MutexLock lock(&mu_);
  const uint64_t offset = ents_[0].index;
  if (lo <= offset) return CompactedError();
  if (hi > LastIndexLocked() + 1) {
    std::fprintf(stderr, "FATAL: raft storage: entries [%lu, %lu) out of bound, last %lu\n",
                 static_cast<unsigned long>(lo), static_cast<unsigned long>(hi),
                 static_cast<unsigned long>(LastIndexLocked()));
    std::abort();
  }
  std::vector<Entry> out;
  uint64_t size = 0;
  for (uint64_t i = lo; i < hi; ++i) {
    const Entry& e = ents_[i - offset];
    size += e.Size();
    if (!out.empty() && size > max_size) break;
    out.push_back(e);
  }
  return out;
}

absl::StatusOr<uint64_t> MemoryStorage::Term(uint64_t i) const {
  absl::MutexLock lock(&mu_);
  const uint64_t offset = ents_[0].index;
  if (i < offset) return CompactedError();
  if (i - offset >= ents_.size()) return EntryUnavailableError();
  return ents_[i - offset].term;
}

absl::StatusOr<Snapshot> MemoryStorage::GetSnapshot() const {
  absl::MutexLock lock(&mu_);
  return snapshot_;
}

absl::Status MemoryStorage::ApplySnapshot(const Snapshot& snap) {
  absl::MutexLock lock(&mu_);
  if (snapshot_.metadata.index >= snap.metadata.index) return SnapshotOutOfDateError();
  snapshot_ = snap;
  ents_.assign(1, Entry{snap.metadata.index, snap.metadata.term, EntryType::kNormal, {}});
  return absl::OkStatus();
}

absl::StatusOr<Snapshot> MemoryStorage::CreateSnapshot(uint64_t i, const ConfState& cs,
                                                       Payload data) {
  absl::MutexLock lock(&mu_);
  if (i <= snapshot_.metadata.index) return SnapshotOutOfDateError();
  const uint64_t offset = ents_[0].index;
  if (i < offset) return CompactedError();
  if (i > LastIndexLocked()) {
    return absl::InvalidArgumentError("snapshot index is beyond the last log index");
  }
  snapshot_.metadata.index = i;
  snapshot_.metadata.term = ents_[i - offset].term;
  snapshot_.metadata.conf_state = cs;
  snapshot_.data = std::move(data);
  return snapshot_;
}

absl::Status MemoryStorage::Compact(uint64_t compact_index) {
  absl::MutexLock lock(&mu_);
  const uint64_t offset = ents_[0].index;
  if (compact_index <= offset) return CompactedError();
  if (compact_index > LastIndexLocked()) {
    return absl::InvalidArgumentError("compact index is beyond the last log index");
  }
  const uint64_t i = compact_index - offset;
  ents_[i].data = Payload();
  ents_.erase(ents_.begin(), ents_.begin() + i);
  return absl::OkStatus();
}

absl::Status MemoryStorage::Append(std::vector<Entry> entries) {
  if (entries.empty()) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  const uint64_t first = FirstIndexLocked();
  const uint64_t last = entries.back().index;
  if (last < first) return absl::OkStatus();  // all compacted already
  // Drop the part that is already compacted.
  if (first > entries.front().index) {
    entries.erase(entries.begin(), entries.begin() + (first - entries.front().index));
  }
  const uint64_t offset = entries.front().index - ents_[0].index;
  if (offset > ents_.size()) {
    return absl::InternalError("raft storage: appending entries leaves a gap in the log");
  }
  ents_.resize(offset);
  for (Entry& e : entries) ents_.push_back(std::move(e));
  return absl::OkStatus();
}

}  // namespace swarm::raft

#include "raft/log.h"

#include <algorithm>
#include <string>

namespace swarm::raft {
namespace {

std::string Str(uint64_t v) { return std::to_string(v); }

}  // namespace

// ---- Unstable ----

std::optional<uint64_t> Unstable::MaybeFirstIndex() const {
  if (snapshot) return snapshot->metadata.index + 1;
  return std::nullopt;
}

std::optional<uint64_t> Unstable::MaybeLastIndex() const {
  if (!entries.empty()) return offset + entries.size() - 1;
  if (snapshot) return snapshot->metadata.index;
  return std::nullopt;
}

std::optional<uint64_t> Unstable::MaybeTerm(uint64_t i) const {
  if (i < offset) {
    if (snapshot && snapshot->metadata.index == i) return snapshot->metadata.term;
    return std::nullopt;
  }
  std::optional<uint64_t> last = MaybeLastIndex();
  if (!last || i > *last) return std::nullopt;
  return entries[i - offset].term;
}

void Unstable::StableTo(uint64_t i, uint64_t t) {
  std::optional<uint64_t> gt = MaybeTerm(i);
  // Only when the term matches: otherwise the entries were replaced after the Ready was made.
  if (!gt || *gt != t || i < offset) return;
  entries.erase(entries.begin(), entries.begin() + (i + 1 - offset));
  offset = i + 1;
  if (entries.empty()) entries.shrink_to_fit();
}

void Unstable::StableSnapTo(uint64_t i) {
  if (snapshot && snapshot->metadata.index == i) snapshot.reset();
}

void Unstable::Restore(const Snapshot& s) {
  offset = s.metadata.index + 1;
  entries.clear();
  snapshot = s;
}

void Unstable::TruncateAndAppend(std::vector<Entry> ents) {
  const uint64_t after = ents.front().index;
  if (after == offset + entries.size()) {
    // Directly after: the common case.
  } else if (after <= offset) {
    // Replaces every unstable entry.
    offset = after;
    entries.clear();
  } else {
    // Truncates to after - 1, then appends.
    entries.resize(after - offset);
  }
  if (entries.empty()) {
    entries = std::move(ents);
  } else {
    entries.insert(entries.end(), std::make_move_iterator(ents.begin()),
                   std::make_move_iterator(ents.end()));
  }
}

std::vector<Entry> Unstable::Slice(uint64_t lo, uint64_t hi) const {
  if (lo > hi || lo < offset || hi > offset + entries.size()) {
    Fatal("unstable.slice[" + Str(lo) + "," + Str(hi) + ") out of bound [" + Str(offset) + "," +
          Str(offset + entries.size()) + "]");
  }
  return std::vector<Entry>(entries.begin() + (lo - offset), entries.begin() + (hi - offset));
}

// ---- RaftLog ----

RaftLog::RaftLog(Storage* storage, uint64_t max_next_ents_size)
    : storage_(storage), max_next_ents_size_(max_next_ents_size) {
  const uint64_t first = storage->FirstIndex();
  const uint64_t last = storage->LastIndex();
  unstable_.offset = last + 1;
  // Initialize committed and applied as the first index minus one (the snapshot).
  committed_ = first - 1;
  applied_ = first - 1;
}

std::optional<uint64_t> RaftLog::MaybeAppend(uint64_t index, uint64_t log_term, uint64_t committed,
                                             std::vector<Entry> ents) {
  if (!MatchTerm(index, log_term)) return std::nullopt;
  const uint64_t last_new = index + ents.size();
  const uint64_t ci = FindConflict(ents);
  if (ci != 0) {
    if (ci <= committed_) {
      Fatal("entry " + Str(ci) + " conflicts with committed entry [committed(" + Str(committed_) +
            ")]");
    }
    const uint64_t offset = index + 1;
    ents.erase(ents.begin(), ents.begin() + (ci - offset));
    Append(std::move(ents));
  }
  CommitTo(std::min(committed, last_new));
  return last_new;
}

uint64_t RaftLog::Append(std::vector<Entry> ents) {
  if (ents.empty()) return LastIndex();
  const uint64_t after = ents.front().index - 1;
  if (after < committed_) {
    Fatal("after(" + Str(after) + ") is out of range [committed(" + Str(committed_) + ")]");
  }
  unstable_.TruncateAndAppend(std::move(ents));
  return LastIndex();
}

uint64_t RaftLog::FindConflict(const std::vector<Entry>& ents) const {
  for (const Entry& e : ents) {
    if (!MatchTerm(e.index, e.term)) return e.index;
  }
  return 0;
}

std::pair<uint64_t, uint64_t> RaftLog::FindConflictByTerm(uint64_t index, uint64_t term) const {
  for (;; --index) {
    absl::StatusOr<uint64_t> our_term = Term(index);
    // A compacted or unavailable term means we cannot know better: stop here.
    if (!our_term.ok()) return {index, 0};
    if (*our_term <= term) return {index, *our_term};
  }
}

std::vector<Entry> RaftLog::UnstableEntries() const { return unstable_.entries; }

std::vector<Entry> RaftLog::NextCommittedEntries() const {
  const uint64_t off = std::max(applied_ + 1, FirstIndex());
  if (committed_ + 1 > off) {
    absl::StatusOr<std::vector<Entry>> ents = Slice(off, committed_ + 1, max_next_ents_size_);
    if (!ents.ok())
      Fatal("unexpected error when getting unapplied entries: " +
            std::string(ents.status().message()));
    return *std::move(ents);
  }
  return {};
}

bool RaftLog::HasNextCommittedEntries() const {
  return committed_ + 1 > std::max(applied_ + 1, FirstIndex());
}

absl::StatusOr<Snapshot> RaftLog::GetSnapshot() const {
  if (unstable_.snapshot) return *unstable_.snapshot;
  return storage_->GetSnapshot();
}

uint64_t RaftLog::FirstIndex() const {
  if (auto i = unstable_.MaybeFirstIndex()) return *i;
  return storage_->FirstIndex();
}

uint64_t RaftLog::LastIndex() const {
  if (auto i = unstable_.MaybeLastIndex()) return *i;
  return storage_->LastIndex();
}

uint64_t RaftLog::LastTerm() const {
  absl::StatusOr<uint64_t> t = Term(LastIndex());
  if (!t.ok())
    Fatal("unexpected error when getting the last term: " + std::string(t.status().message()));
  return *t;
}

absl::StatusOr<uint64_t> RaftLog::Term(uint64_t i) const {
  // An entry in the unstable log is in the valid range by definition.
  if (auto t = unstable_.MaybeTerm(i)) return *t;
  // The valid term range is [FirstIndex() - 1, LastIndex()]: the compacted entry just before
  // the first one keeps its term for matching appends. Outside it there is no term, and
  // claiming 0 would let a follower "match" an entry it does not have.
  if (i + 1 < FirstIndex()) return CompactedError();
  if (i > LastIndex()) return EntryUnavailableError();
  absl::StatusOr<uint64_t> t = storage_->Term(i);
  if (t.ok()) return t;
  if (IsCompacted(t.status()) || IsEntryUnavailable(t.status())) return t.status();
  Fatal("storage term " + Str(i) + ": " + std::string(t.status().message()));
}

uint64_t RaftLog::ZeroTermOnError(uint64_t i) const {
  absl::StatusOr<uint64_t> t = Term(i);
  return t.ok() ? *t : 0;
}

bool RaftLog::MatchTerm(uint64_t i, uint64_t term) const {
  absl::StatusOr<uint64_t> t = Term(i);
  return t.ok() && *t == term;
}

bool RaftLog::IsUpToDate(uint64_t last_index, uint64_t term) const {
  const uint64_t our_term = LastTerm();
  return term > our_term || (term == our_term && last_index >= LastIndex());
}

absl::StatusOr<std::vector<Entry>> RaftLog::EntriesFrom(uint64_t i, uint64_t max_size) const {
  if (i > LastIndex()) return std::vector<Entry>();
  return Slice(i, LastIndex() + 1, max_size);
}

absl::Status RaftLog::MustCheckOutOfBounds(uint64_t lo, uint64_t hi) const {
  if (lo > hi) Fatal("invalid slice " + Str(lo) + " > " + Str(hi));
  const uint64_t fi = FirstIndex();
  if (lo < fi) return CompactedError();
  const uint64_t length = LastIndex() + 1 - fi;
  if (hi > fi + length) {
    Fatal("slice[" + Str(lo) + "," + Str(hi) + ") out of bound [" + Str(fi) + "," +
          Str(LastIndex()) + "]");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Entry>> RaftLog::Slice(uint64_t lo, uint64_t hi,
                                                  uint64_t max_size) const {
  absl::Status s = MustCheckOutOfBounds(lo, hi);
  if (!s.ok()) return s;
  std::vector<Entry> ents;
  if (lo == hi) return ents;
  if (lo < unstable_.offset) {
    absl::StatusOr<std::vector<Entry>> stored =
        storage_->Entries(lo, std::min(hi, unstable_.offset), max_size);
    if (!stored.ok()) {
      if (IsCompacted(stored.status())) return stored.status();
      Fatal("storage entries: " + std::string(stored.status().message()));
    }
    ents = *std::move(stored);
    // Stop if storage returned fewer entries than asked: the size limit was hit.
    if (ents.size() < std::min(hi, unstable_.offset) - lo) return ents;
  }
  if (hi > unstable_.offset) {
    std::vector<Entry> unstable = unstable_.Slice(std::max(lo, unstable_.offset), hi);
    ents.insert(ents.end(), std::make_move_iterator(unstable.begin()),
                std::make_move_iterator(unstable.end()));
  }
  // Limit by size, keeping at least one entry.
  uint64_t size = 0;
  for (size_t n = 0; n < ents.size(); ++n) {
    size += ents[n].Size();
    if (n > 0 && size > max_size) {
      ents.resize(n);
      break;
    }
  }
  return ents;
}

bool RaftLog::MaybeCommit(uint64_t max_index, uint64_t term) {
  if (max_index > committed_ && ZeroTermOnError(max_index) == term) {
    CommitTo(max_index);
    return true;
  }
  return false;
}

void RaftLog::CommitTo(uint64_t to_commit) {
  // Never decrease commit.
  if (committed_ < to_commit) {
    if (LastIndex() < to_commit) {
      Fatal("to_commit(" + Str(to_commit) + ") is out of range [last index(" + Str(LastIndex()) +
            ")]. Was the raft log corrupted, truncated, or lost?");
    }
    committed_ = to_commit;
  }
}

void RaftLog::AppliedTo(uint64_t i) {
  if (i == 0) return;
  if (committed_ < i || i < applied_) {
    Fatal("applied(" + Str(i) + ") is out of range [prev applied(" + Str(applied_) +
          "), committed(" + Str(committed_) + ")]");
  }
  applied_ = i;
}

void RaftLog::Restore(const Snapshot& s) {
  committed_ = s.metadata.index;
  unstable_.Restore(s);
}

}  // namespace swarm::raft

#include "raft/progress.h"

#include <algorithm>
#include <string>

namespace swarm::raft {

// ---- Inflights ----

void Inflights::Add(uint64_t index, uint64_t bytes) {
  if (Full()) Fatal("cannot add into a full inflights window");
  if (buffer_.empty()) buffer_.resize(max_count_);
  size_t next = start_ + count_;
  if (next >= buffer_.size()) next -= buffer_.size();
  buffer_[next] = Item{index, bytes};
  ++count_;
  bytes_ += bytes;
}

void Inflights::FreeLE(uint64_t index) {
  if (count_ == 0 || index < buffer_[start_].index) return;
  size_t i = 0;
  size_t idx = start_;
  uint64_t freed = 0;
  for (; i < count_; ++i) {
    if (index < buffer_[idx].index) break;
    freed += buffer_[idx].bytes;
    if (++idx >= buffer_.size()) idx -= buffer_.size();
  }
  count_ -= i;
  bytes_ -= freed;
  start_ = count_ == 0 ? 0 : idx;
}

bool Inflights::Full() const {
  return count_ == max_count_ || (max_bytes_ != 0 && bytes_ >= max_bytes_);
}

void Inflights::Reset() {
  count_ = 0;
  start_ = 0;
  bytes_ = 0;
}

// ---- Progress ----

const char* ProgressStateName(ProgressState s) {
  switch (s) {
    case ProgressState::kProbe:
      return "probe";
    case ProgressState::kReplicate:
      return "replicate";
    case ProgressState::kSnapshot:
      return "snapshot";
  }
  return "unknown";
}

void Progress::ResetState(ProgressState s) {
  msg_app_flow_paused = false;
  pending_snapshot = 0;
  state = s;
  inflights.Reset();
}

void Progress::BecomeProbe() {
  // Coming from a snapshot: the follower has at least the snapshot, so probe right after it.
  if (state == ProgressState::kSnapshot) {
    const uint64_t pending = pending_snapshot;
    ResetState(ProgressState::kProbe);
    next = std::max(match + 1, pending + 1);
  } else {
    ResetState(ProgressState::kProbe);
    next = match + 1;
  }
}

void Progress::BecomeReplicate() {
  ResetState(ProgressState::kReplicate);
  next = match + 1;
}

void Progress::BecomeSnapshot(uint64_t snapshot_index) {
  ResetState(ProgressState::kSnapshot);
  pending_snapshot = snapshot_index;
}

void Progress::SentEntries(uint64_t last_index, uint64_t bytes) {
  switch (state) {
    case ProgressState::kReplicate:
      if (last_index >= next) {
        inflights.Add(last_index, bytes);
        next = last_index + 1;
      }
      msg_app_flow_paused = inflights.Full();
      break;
    case ProgressState::kProbe:
      msg_app_flow_paused = true;
      break;
    case ProgressState::kSnapshot:
      Fatal("sending append in unhandled state snapshot");
  }
}

bool Progress::MaybeUpdate(uint64_t n) {
  bool updated = false;
  if (match < n) {
    match = n;
    updated = true;
    msg_app_flow_paused = false;
  }
  next = std::max(next, n + 1);
  return updated;
}

bool Progress::MaybeDecrTo(uint64_t rejected, uint64_t match_hint) {
  if (state == ProgressState::kReplicate) {
    // A rejection below match is stale: the follower already has it.
    if (rejected <= match) return false;
    // Directly fall back to the last known match.
    next = match + 1;
    return true;
  }
  // In probe, only the rejection of the append we sent last (next - 1) counts.
  if (next - 1 != rejected) return false;
  // Never below match + 1: a delayed, stale rejection must not move next back past what the
  // follower is known to have.
  next = std::max(std::min(rejected, match_hint + 1), match + 1);
  msg_app_flow_paused = false;
  return true;
}

bool Progress::IsPaused() const {
  switch (state) {
    case ProgressState::kProbe:
      return msg_app_flow_paused;
    case ProgressState::kReplicate:
      return msg_app_flow_paused;
    case ProgressState::kSnapshot:
      return true;
  }
  return true;
}

// ---- ProgressTracker ----

void ProgressTracker::SetConfig(const ConfState& cs, uint64_t next_index) {
  config_ = cs;
  std::sort(config_.voters.begin(), config_.voters.end());
  std::sort(config_.learners.begin(), config_.learners.end());
  std::map<uint64_t, Progress> next_progress;
  auto carry = [&](uint64_t id, bool learner) {
    auto it = progress_.find(id);
    if (it != progress_.end()) {
      it->second.is_learner = learner;
      next_progress.emplace(id, std::move(it->second));
    } else {
      Progress p(next_index, max_inflight_, max_inflight_bytes_, learner);
      // A new member counts as active so that adding it cannot trip check-quorum at once.
      p.recent_active = true;
      next_progress.emplace(id, std::move(p));
    }
  };
  for (uint64_t id : config_.voters) carry(id, false);
  for (uint64_t id : config_.learners) carry(id, true);
  progress_ = std::move(next_progress);
}

void ProgressTracker::ResetProgress(uint64_t next_index) {
  for (auto& [id, pr] : progress_) {
    pr = Progress(next_index, max_inflight_, max_inflight_bytes_, pr.is_learner);
  }
}

bool ProgressTracker::IsVoter(uint64_t id) const {
  return std::binary_search(config_.voters.begin(), config_.voters.end(), id);
}

bool ProgressTracker::IsLearner(uint64_t id) const {
  return std::binary_search(config_.learners.begin(), config_.learners.end(), id);
}

Progress* ProgressTracker::Get(uint64_t id) {
  auto it = progress_.find(id);
  return it == progress_.end() ? nullptr : &it->second;
}

const Progress* ProgressTracker::Get(uint64_t id) const {
  auto it = progress_.find(id);
  return it == progress_.end() ? nullptr : &it->second;
}

uint64_t ProgressTracker::Committed() const {
  const size_t n = config_.voters.size();
  if (n == 0) return UINT64_MAX;  // no voters: no constraint (like etcd's empty config)
  uint64_t stack[7];
  std::vector<uint64_t> heap;
  uint64_t* matches = stack;
  if (n > 7) {
    heap.resize(n);
    matches = heap.data();
  }
  for (size_t i = 0; i < n; ++i) matches[i] = progress_.at(config_.voters[i]).match;
  std::sort(matches, matches + n);
  // The largest index that at least n/2 + 1 voters have.
  return matches[n - (n / 2 + 1)];
}

bool ProgressTracker::QuorumActive() const {
  size_t active = 0;
  for (uint64_t id : config_.voters) {
    if (progress_.at(id).recent_active) ++active;
  }
  return active >= config_.voters.size() / 2 + 1;
}

void ProgressTracker::RecordVote(uint64_t id, bool granted) {
  votes_.emplace(id, granted);  // the first answer counts
}

ProgressTracker::VoteResult ProgressTracker::TallyVotes(int* granted, int* rejected) const {
  int g = 0, r = 0, missing = 0;
  for (uint64_t id : config_.voters) {
    auto it = votes_.find(id);
    if (it == votes_.end()) {
      ++missing;
    } else if (it->second) {
      ++g;
    } else {
      ++r;
    }
  }
  if (granted) *granted = g;
  if (rejected) *rejected = r;
  const int q = static_cast<int>(config_.voters.size() / 2 + 1);
  if (g >= q) return VoteResult::kWon;
  if (g + missing >= q) return VoteResult::kPending;
  return VoteResult::kLost;
}

void ProgressTracker::Visit(const std::function<void(uint64_t, Progress&)>& f) {
  for (auto& [id, p] : progress_) f(id, p);
}

}  // namespace swarm::raft

// The leader's bookkeeping of each member's replication (Progress), the flow control window of
// append messages in flight (Inflights), and the membership with its quorum arithmetic
// (ProgressTracker).
//
// Owned by Raft; not thread-safe.
// Invariants: match < next for every progress; in kSnapshot state pending_snapshot > 0; an
// Inflights never holds more than its limits, and its indexes increase.
#ifndef SWARM_RAFT_PROGRESS_H_
#define SWARM_RAFT_PROGRESS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "raft/types.h"

namespace swarm::raft {

// A sliding window of append messages sent but not yet acknowledged, by last index and size.
class Inflights {
 public:
  Inflights(size_t max_count, uint64_t max_bytes) : max_count_(max_count), max_bytes_(max_bytes) {}
  void Add(uint64_t index, uint64_t bytes);
  // Frees every message up to and including index.
  void FreeLE(uint64_t index);
  bool Full() const;
  size_t Count() const { return count_; }
  void Reset();

 private:
  struct Item {
    uint64_t index;
    uint64_t bytes;
  };
  size_t max_count_;
  uint64_t max_bytes_;
  // A ring buffer of max_count_ items, allocated on first use.
  std::vector<Item> buffer_;
  size_t start_ = 0;
  size_t count_ = 0;
  uint64_t bytes_ = 0;
};

enum class ProgressState : uint8_t {
  // Sends one append per heartbeat interval until the follower's position is found.
  kProbe,
  // Streams appends optimistically, bounded by the inflights window.
  kReplicate,
  // Waits for a snapshot to be delivered.
  kSnapshot,
};
const char* ProgressStateName(ProgressState s);

struct Progress {
  Progress(uint64_t next_index, size_t max_inflight, uint64_t max_inflight_bytes, bool learner)
      : next(next_index), inflights(max_inflight, max_inflight_bytes), is_learner(learner) {}

  void ResetState(ProgressState s);
  void BecomeProbe();
  void BecomeReplicate();
  void BecomeSnapshot(uint64_t snapshot_index);
  // Records an append sent with entries up to last_index (bytes in total).
  void SentEntries(uint64_t last_index, uint64_t bytes);
  // Returns false when n is stale (an older acknowledgement).
  bool MaybeUpdate(uint64_t n);
  // Handles a rejected append for index with the follower's hint; false when stale.
  bool MaybeDecrTo(uint64_t rejected, uint64_t match_hint);
  // True while the leader must not send more appends to this member.
  bool IsPaused() const;

  uint64_t match = 0;
  uint64_t next = 0;
  ProgressState state = ProgressState::kProbe;
  // The snapshot index being installed (kSnapshot).
  uint64_t pending_snapshot = 0;
  // Heard from since the last quorum check.
  bool recent_active = false;
  // kProbe: an append was sent this heartbeat interval; further ones wait.
  bool msg_app_flow_paused = false;
  Inflights inflights;
  bool is_learner = false;
};

class ProgressTracker {
 public:
  ProgressTracker(size_t max_inflight, uint64_t max_inflight_bytes)
      : max_inflight_(max_inflight), max_inflight_bytes_(max_inflight_bytes) {}

  // Replaces the membership; keeps the progress of members that stay, and creates progress
  // with next = next_index for new ones.
  void SetConfig(const ConfState& cs, uint64_t next_index);
  const ConfState& config() const { return config_; }
  // Forgets every member's progress (a new term): next = next_index, match = 0.
  void ResetProgress(uint64_t next_index);
  bool IsVoter(uint64_t id) const;
  bool IsLearner(uint64_t id) const;
  bool IsMember(uint64_t id) const { return IsVoter(id) || IsLearner(id); }

  Progress* Get(uint64_t id);
  const Progress* Get(uint64_t id) const;
  std::map<uint64_t, Progress>& progress() { return progress_; }
  const std::map<uint64_t, Progress>& progress() const { return progress_; }

  // The largest index acknowledged (matched) by a quorum of voters.
  uint64_t Committed() const;
  // Whether the voters that are recently active form a quorum.
  bool QuorumActive() const;

  enum class VoteResult { kPending, kLost, kWon };
  void ResetVotes() { votes_.clear(); }
  void RecordVote(uint64_t id, bool granted);
  VoteResult TallyVotes(int* granted, int* rejected) const;

  // Calls f for every member (voters and learners) in ID order.
  void Visit(const std::function<void(uint64_t, Progress&)>& f);

 private:
  size_t max_inflight_;
  uint64_t max_inflight_bytes_;
  ConfState config_;
  std::map<uint64_t, Progress> progress_;
  std::map<uint64_t, bool> votes_;
};

}  // namespace swarm::raft

#endif  // SWARM_RAFT_PROGRESS_H_

// RawNode: the public face of the Raft core. A pure, deterministic state machine in the style
// of etcd's raft: time is a count of Tick() calls, randomness comes from Config::seed, and
// nothing here performs I/O. The caller drives it:
//
//   loop:
//     feed it: Tick() on a timer, Step(m) for each message received, Propose(...) etc.
//     if HasReady():
//       Ready rd = GetReady();
//       send rd.messages                       (may leave before anything is durable)
//       persist rd.snapshot, rd.entries, rd.hard_state (synced when rd.must_sync)
//       send rd.messages_after_persist         (acknowledgements of what was just persisted)
//       apply rd.snapshot and rd.committed_entries to the state machine
//       Advance()
//
// Membership changes take effect when their entry is appended to the log (single-server
// changes, Raft dissertation §4.1), not when it commits; the core reverts one whose entry is
// truncated away. Only one may be uncommitted at a time, and a leader accepts one only after it
// has committed an entry of its own term.
//
// Thread-safety: none. One thread (or a lock held by the caller) drives a RawNode.
#ifndef SWARM_RAFT_RAW_NODE_H_
#define SWARM_RAFT_RAW_NODE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "raft/storage.h"
#include "raft/types.h"

namespace swarm::raft {

class Raft;

struct Config {
  // This node's ID; never kNone.
  uint64_t id = kNone;
  // Ticks without hearing from a leader before a follower campaigns. The actual timeout is
  // drawn at random from [election_tick, 2 * election_tick) after every term change.
  int election_tick = 10;
  // Ticks between a leader's heartbeats. Must be less than election_tick.
  int heartbeat_tick = 1;
  // The log; the core reads it and the caller writes it. Not owned; must outlive the node.
  Storage* storage = nullptr;
  // The last index already applied by the state machine when restarting.
  uint64_t applied = 0;
  // Bytes of entries in one append message (at least one entry is always sent).
  uint64_t max_size_per_msg = 1 << 20;
  // Bytes of committed entries handed out in one Ready.
  uint64_t max_committed_size_per_ready = 64 << 20;
  // Bytes of uncommitted entries a leader accepts before it rejects proposals (0 = no limit).
  uint64_t max_uncommitted_entries_size = 0;
  // Append messages in flight to one follower before the leader pauses it (at least 1).
  int max_inflight_msgs = 256;
  // Bytes in flight to one follower before the leader pauses it (0 = no limit).
  uint64_t max_inflight_bytes = 0;
  // A leader steps down when it has not heard from a quorum for an election timeout, and
  // followers that heard from a leader within the timeout refuse votes (the leader lease).
  bool check_quorum = true;
  // Candidates first ask whether they could win, so a node that was cut off does not disrupt
  // the cluster by raising the term when it comes back.
  bool pre_vote = true;
  // Followers reject proposals instead of forwarding them to the leader.
  bool disable_proposal_forwarding = false;
  // Seeds the randomized election timeout.
  uint64_t seed = 0;

  absl::Status Validate() const;
};

// What the caller must do next; see the loop above.
struct Ready {
  // Set when leader or role changed.
  std::optional<SoftState> soft_state;
  // To persist; empty when unchanged.
  HardState hard_state;
  // ReadIndex answers: each may be served once `index` is applied.
  std::vector<ReadState> read_states;
  // To append to the log (truncating any conflicting suffix first).
  std::vector<Entry> entries;
  // To persist and apply; empty() when none.
  Snapshot snapshot;
  // Committed entries to apply, in order, once this Ready's entries are persisted.
  std::vector<Entry> committed_entries;
  // May be sent at once, before this Ready's state is durable.
  std::vector<Message> messages;
  // Must be sent only after this Ready's entries, hard state and snapshot are durable.
  std::vector<Message> messages_after_persist;
  // The hard state's term or vote changed, or entries were added: a synced write is needed.
  bool must_sync = false;
};

// Replication progress of one member, as seen by the leader.
struct ProgressStatus {
  uint64_t match = 0;
  uint64_t next = 0;
  std::string state;  // "probe", "replicate" or "snapshot"
  bool learner = false;
  bool recent_active = false;
};

struct Status {
  uint64_t id = kNone;
  HardState hard_state;
  SoftState soft_state;
  uint64_t applied = 0;
  uint64_t lead_transferee = kNone;
  ConfState conf_state;
  // Only on the leader.
  std::map<uint64_t, ProgressStatus> progress;
};

class RawNode {
 public:
  // Restores from config.storage (hard state, snapshot, log) and returns a follower.
  static absl::StatusOr<std::unique_ptr<RawNode>> Create(const Config& config);
  ~RawNode();
  RawNode(const RawNode&) = delete;
  RawNode& operator=(const RawNode&) = delete;

  // Advances logical time by one tick.
  void Tick();
  // Starts an election now (a pre-vote first when configured).
  absl::Status Campaign();
  // Proposes data to be appended to the log. Errors: FAILED_PRECONDITION when there is no
  // leader or proposal forwarding is disabled on a follower, UNAVAILABLE while a leadership
  // transfer is in progress or the uncommitted log is full.
  absl::Status Propose(std::string data);
  // Proposes several entries at once: one append message per follower carries them all.
  absl::Status ProposeBatch(std::vector<std::string> data);
  // Proposes a membership change (same errors, plus FAILED_PRECONDITION while another change is
  // uncommitted or the leader has not yet committed an entry of its term).
  absl::Status ProposeConfChange(const ConfChange& cc);
  // Hands a message received from a peer to the core.
  absl::Status Step(Message m);
  // Asks for a linearizable read; the answer comes as a ReadState with the same context.
  void ReadIndex(std::string context);
  // Asks the leader to hand leadership to transferee.
  void TransferLeadership(uint64_t transferee);
  // The transport failed to deliver to id.
  void ReportUnreachable(uint64_t id);
  // A snapshot sent to id was delivered, or failed.
  void ReportSnapshot(uint64_t id, bool failed);

  bool HasReady() const;
  // Collects what the caller must do. Call Advance() once it is done.
  Ready GetReady();
  // Tells the core that the last Ready was persisted, sent and applied.
  void Advance();

  raft::Status GetStatus() const;
  uint64_t id() const;
  // Checks the core's internal invariants and aborts with a message when one is broken.
  void CheckInvariants() const;

 private:
  explicit RawNode(std::unique_ptr<Raft> raft);
  bool HasReadyPending() const;

  std::unique_ptr<Raft> raft_;
  SoftState prev_soft_state_;
  HardState prev_hard_state_;
  // What the last GetReady() handed out, for Advance().
  std::optional<Ready> pending_;
};

}  // namespace swarm::raft

#endif  // SWARM_RAFT_RAW_NODE_H_

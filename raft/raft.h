// Raft: the consensus state machine behind RawNode, following the Raft paper and etcd's raft.
// It holds the term, vote, role, log and (on the leader) every member's progress, and reacts to
// Step(message) and Tick(). What it wants done is queued: messages in msgs_ (may leave at once)
// and msgs_after_persist_ (acknowledgements that must wait until the state they acknowledge is
// durable), entries in the log's unstable part, read answers in read_states_.
//
// Owned by RawNode; not thread-safe; deterministic given its config and inputs.
//
// Membership: configurations take effect when their conf change entry is appended (and are
// reverted when it is truncated away). conf_history_ keeps the configurations of uncommitted
// conf change entries in log order, on top of base_conf_, the configuration at the commit
// index; the current configuration is the last of them. A leader appends a conf change only
// when pending_conf_index_ <= committed, which also guarantees that it has committed an entry
// of its own term first (the fix to the single-server change bug in the dissertation's errata).
//
// The leader's own log counts toward commitment only once persisted (OnPersisted()), so no
// index is ever reported committed that is not durable on a quorum.
#ifndef SWARM_RAFT_RAFT_H_
#define SWARM_RAFT_RAFT_H_

#include <cstdint>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "raft/log.h"
#include "raft/progress.h"
#include "raft/raw_node.h"
#include "raft/types.h"

namespace swarm::raft {

// The context of a vote request made for a leadership transfer: it overrides the leader lease.
inline constexpr char kCampaignTransfer[] = "CampaignTransfer";

class Raft {
 public:
  // Loads state from config.storage; aborts on inconsistent storage.
  explicit Raft(const Config& config);

  absl::Status Step(Message m);
  void Tick();

  // Called by RawNode::Advance once the last Ready's entries are durable.
  void OnPersisted();

  SoftState GetSoftState() const { return SoftState{lead_, state_}; }
  HardState GetHardState() const { return HardState{term_, vote_, raft_log_.committed()}; }
  const ConfState& conf_state() const { return trk_.config(); }

  uint64_t id() const { return id_; }
  uint64_t term() const { return term_; }
  uint64_t lead() const { return lead_; }
  StateType state() const { return state_; }
  uint64_t lead_transferee() const { return lead_transferee_; }
  RaftLog& log() { return raft_log_; }
  const RaftLog& log() const { return raft_log_; }
  const ProgressTracker& tracker() const { return trk_; }

  std::vector<Message>& msgs() { return msgs_; }
  std::vector<Message>& msgs_after_persist() { return msgs_after_persist_; }
  std::vector<ReadState>& read_states() { return read_states_; }

  // Bytes of committed entries handed to the application are no longer uncommitted.
  void ReduceUncommittedSize(const std::vector<Entry>& ents);

  void CheckInvariants() const;

  // Exposed for tests.
  void BecomeFollower(uint64_t term, uint64_t lead);
  void BecomeCandidate();
  void BecomePreCandidate();
  void BecomeLeader();
  int randomized_election_timeout() const { return randomized_election_timeout_; }
  int election_elapsed() const { return election_elapsed_; }

 private:
  enum class CampaignType { kPreElection, kElection, kTransfer };

  // One ReadIndex request waiting for a heartbeat quorum.
  struct ReadIndexStatus {
    Message req;
    uint64_t index = 0;
    std::map<uint64_t, bool> acks;
  };

  absl::Status StepLeader(Message& m);
  absl::Status StepCandidate(Message& m);
  absl::Status StepFollower(Message& m);

  void TickElection();
  void TickHeartbeat();
  void Reset(uint64_t term);
  void ResetRandomizedElectionTimeout();
  bool PastElectionTimeout() const;
  bool Promotable() const;

  void Hup(CampaignType t);
  void Campaign(CampaignType t);
  ProgressTracker::VoteResult Poll(uint64_t id, MessageType t, bool granted);

  void Send(Message m);
  bool MaybeSendAppend(uint64_t to, bool send_if_empty);
  void SendAppend(uint64_t to) { MaybeSendAppend(to, true); }
  void SendHeartbeat(uint64_t to, const std::string& ctx);
  void SendTimeoutNow(uint64_t to);
  void BcastAppend();
  void BcastHeartbeat(const std::string& ctx = "");

  bool AppendEntries(std::vector<Entry> ents);
  bool MaybeCommit();
  void AfterCommit();
  bool CommittedEntryInCurrentTerm() const;
  bool IncreaseUncommittedSize(const std::vector<Entry>& ents);

  void HandleAppendEntries(const Message& m);
  void HandleHeartbeat(const Message& m);
  void HandleSnapshot(const Message& m);
  bool Restore(const Snapshot& s);

  // ReadIndex.
  void HandleReadIndex(Message& m);
  void AnswerReadIndex(const Message& req, uint64_t read_index);
  void ReleasePendingReadIndexMessages();

  // Membership.
  absl::Status CheckConfChange(const Entry& e) const;
  void OnEntriesAppended(const std::vector<Entry>& ents, size_t from);
  void TruncateConfHistory(uint64_t from_index);
  void FoldCommittedConfs();
  void ApplyConfig(const ConfState& cs);
  const ConfState& CurrentConf() const {
    return conf_history_.empty() ? base_conf_ : conf_history_.back().second;
  }

  void AbortLeaderTransfer() { lead_transferee_ = kNone; }

  uint64_t id_;
  uint64_t term_ = 0;
  uint64_t vote_ = kNone;
  std::vector<ReadState> read_states_;
  RaftLog raft_log_;
  uint64_t max_msg_size_;
  uint64_t max_uncommitted_size_;
  ProgressTracker trk_;
  StateType state_ = StateType::kFollower;
  std::vector<Message> msgs_;
  std::vector<Message> msgs_after_persist_;
  uint64_t lead_ = kNone;
  uint64_t lead_transferee_ = kNone;
  uint64_t pending_conf_index_ = 0;
  uint64_t uncommitted_size_ = 0;

  ConfState base_conf_;
  std::deque<std::pair<uint64_t, ConfState>> conf_history_;

  std::map<std::string, ReadIndexStatus> pending_read_index_;
  std::deque<std::string> read_index_queue_;
  // Reads that arrived before this leader committed an entry of its term.
  std::vector<Message> pending_read_index_messages_;

  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  bool check_quorum_;
  bool pre_vote_;
  int heartbeat_timeout_;
  int election_timeout_;
  int randomized_election_timeout_ = 0;
  bool disable_proposal_forwarding_;
  std::mt19937_64 rng_;
};

// The configuration with voters and learners sorted.
ConfState Sorted(ConfState cs);
// Applies one membership change to a configuration (returns a sorted configuration).
ConfState ApplyConfChange(const ConfState& cs, const ConfChange& cc);

}  // namespace swarm::raft

#endif  // SWARM_RAFT_RAFT_H_

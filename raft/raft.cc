#include "raft/raft.h"

#include <algorithm>

namespace swarm::raft {
namespace {

std::string Str(uint64_t v) { return std::to_string(v); }

MessageType VoteRespType(MessageType t) {
  switch (t) {
    case MessageType::kVote:
      return MessageType::kVoteResp;
    case MessageType::kPreVote:
      return MessageType::kPreVoteResp;
    default:
      Fatal(std::string("not a vote message: ") + MessageTypeName(t));
  }
}

// Answers that acknowledge durable state: they may leave only once it is persisted.
bool MustWaitForPersist(MessageType t) {
  return t == MessageType::kAppResp || t == MessageType::kVoteResp ||
         t == MessageType::kPreVoteResp;
}

absl::Status ProposalDropped(const std::string& why) {
  return absl::FailedPreconditionError("raft proposal dropped: " + why);
}

void Insert(std::vector<uint64_t>& v, uint64_t id) {
  if (std::find(v.begin(), v.end(), id) == v.end()) v.push_back(id);
  std::sort(v.begin(), v.end());
}

void Erase(std::vector<uint64_t>& v, uint64_t id) {
  v.erase(std::remove(v.begin(), v.end(), id), v.end());
}

}  // namespace

ConfState Sorted(ConfState cs) {
  std::sort(cs.voters.begin(), cs.voters.end());
  std::sort(cs.learners.begin(), cs.learners.end());
  return cs;
}

ConfState ApplyConfChange(const ConfState& cs, const ConfChange& cc) {
  ConfState out = cs;
  switch (cc.type) {
    case ConfChangeType::kAddNode:
      Erase(out.learners, cc.node_id);
      Insert(out.voters, cc.node_id);
      break;
    case ConfChangeType::kAddLearnerNode:
      Erase(out.voters, cc.node_id);
      Insert(out.learners, cc.node_id);
      break;
    case ConfChangeType::kRemoveNode:
      Erase(out.voters, cc.node_id);
      Erase(out.learners, cc.node_id);
      break;
  }
  return Sorted(std::move(out));
}

Raft::Raft(const Config& c)
    : id_(c.id),
      raft_log_(c.storage, c.max_committed_size_per_ready),
      max_msg_size_(c.max_size_per_msg),
      max_uncommitted_size_(c.max_uncommitted_entries_size == 0 ? UINT64_MAX
                                                                : c.max_uncommitted_entries_size),
      trk_(static_cast<size_t>(c.max_inflight_msgs), c.max_inflight_bytes),
      check_quorum_(c.check_quorum),
      pre_vote_(c.pre_vote),
      heartbeat_timeout_(c.heartbeat_tick),
      election_timeout_(c.election_tick),
      disable_proposal_forwarding_(c.disable_proposal_forwarding),
      rng_(c.seed ^ (c.id * 0x9E3779B97F4A7C15ULL)) {
  absl::StatusOr<InitialState> init = c.storage->GetInitialState();
  if (!init.ok()) Fatal("reading initial state: " + std::string(init.status().message()));
  const HardState& hs = init->hard_state;

  // The membership: the snapshot's, then every conf change entry in the log after it.
  base_conf_ = Sorted(init->conf_state);
  // Entries kept below the snapshot (a compaction margin) are already in its membership.
  absl::StatusOr<Snapshot> snap = c.storage->GetSnapshot();
  if (!snap.ok()) Fatal("reading the snapshot: " + std::string(snap.status().message()));
  const uint64_t first = std::max(raft_log_.FirstIndex(), snap->metadata.index + 1);
  const uint64_t last = raft_log_.LastIndex();
  if (first <= last) {
    absl::StatusOr<std::vector<Entry>> ents = c.storage->Entries(first, last + 1, UINT64_MAX);
    if (!ents.ok()) Fatal("reading the log: " + std::string(ents.status().message()));
    OnEntriesAppended(*ents, 0);
  }

  if (!hs.empty()) {
    if (hs.commit < raft_log_.committed() || hs.commit > raft_log_.LastIndex()) {
      Fatal("state.commit " + Str(hs.commit) + " is out of range [" + Str(raft_log_.committed()) +
            ", " + Str(raft_log_.LastIndex()) + "]");
    }
    raft_log_.CommitTo(hs.commit);
    term_ = hs.term;
    vote_ = hs.vote;
  }
  FoldCommittedConfs();
  ApplyConfig(CurrentConf());
  if (c.applied > 0) raft_log_.AppliedTo(c.applied);
  BecomeFollower(term_, kNone);
}

// ---- Roles ----

void Raft::Reset(uint64_t term) {
  if (term_ != term) {
    term_ = term;
    vote_ = kNone;
  }
  lead_ = kNone;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  ResetRandomizedElectionTimeout();
  AbortLeaderTransfer();
  trk_.ResetVotes();
  // Only what is durable counts for this node's own match (see OnPersisted).
  const uint64_t stable = raft_log_.unstable().snapshot ? 0 : raft_log_.unstable().offset - 1;
  trk_.ResetProgress(raft_log_.LastIndex() + 1);
  if (Progress* self = trk_.Get(id_)) self->match = std::min(stable, raft_log_.LastIndex());
  pending_conf_index_ = 0;
  uncommitted_size_ = 0;
  pending_read_index_.clear();
  read_index_queue_.clear();
}

void Raft::BecomeFollower(uint64_t term, uint64_t lead) {
  Reset(term);
  lead_ = lead;
  state_ = StateType::kFollower;
}

void Raft::BecomeCandidate() {
  if (state_ == StateType::kLeader) Fatal("invalid transition [leader -> candidate]");
  Reset(term_ + 1);
  vote_ = id_;
  state_ = StateType::kCandidate;
}

void Raft::BecomePreCandidate() {
  if (state_ == StateType::kLeader) Fatal("invalid transition [leader -> pre-candidate]");
  // A pre-candidate changes neither term nor vote.
  trk_.ResetVotes();
  lead_ = kNone;
  state_ = StateType::kPreCandidate;
}

void Raft::BecomeLeader() {
  if (state_ == StateType::kFollower) Fatal("invalid transition [follower -> leader]");
  Reset(term_);
  lead_ = id_;
  state_ = StateType::kLeader;
  // Followers start in probe; this node's own progress replicates (it is never sent to).
  if (Progress* self = trk_.Get(id_)) self->BecomeReplicate();
  // No conf change until everything up to here, including the no-op below, is committed.
  pending_conf_index_ = raft_log_.LastIndex() + 1;
  // The no-op of the new term: committing it commits every earlier entry too.
  if (!AppendEntries({Entry{}})) Fatal("empty entry was dropped");
}

bool Raft::Promotable() const { return trk_.IsVoter(id_) && !raft_log_.HasPendingSnapshot(); }

// ---- Time ----

void Raft::ResetRandomizedElectionTimeout() {
  randomized_election_timeout_ =
      election_timeout_ + static_cast<int>(rng_() % static_cast<uint64_t>(election_timeout_));
}

bool Raft::PastElectionTimeout() const { return election_elapsed_ >= randomized_election_timeout_; }

void Raft::Tick() {
  if (state_ == StateType::kLeader) {
    TickHeartbeat();
  } else {
    TickElection();
  }
}

void Raft::TickElection() {
  ++election_elapsed_;
  if (Promotable() && PastElectionTimeout()) {
    election_elapsed_ = 0;
    Message m;
    m.type = MessageType::kHup;
    m.from = id_;
    (void)Step(std::move(m));
  }
}

void Raft::TickHeartbeat() {
  ++heartbeat_elapsed_;
  ++election_elapsed_;
  if (election_elapsed_ >= election_timeout_) {
    election_elapsed_ = 0;
    if (check_quorum_) {
      Message m;
      m.type = MessageType::kCheckQuorum;
      m.from = id_;
      (void)Step(std::move(m));
    }
    // A transfer that did not finish within an election timeout is abandoned.
    if (state_ == StateType::kLeader && lead_transferee_ != kNone) AbortLeaderTransfer();
  }
  if (state_ != StateType::kLeader) return;
  if (heartbeat_elapsed_ >= heartbeat_timeout_) {
    heartbeat_elapsed_ = 0;
    Message m;
    m.type = MessageType::kBeat;
    m.from = id_;
    (void)Step(std::move(m));
  }
}

// ---- Elections ----

void Raft::Hup(CampaignType t) {
  if (state_ == StateType::kLeader) return;
  if (!Promotable()) return;
  Campaign(t);
}

void Raft::Campaign(CampaignType t) {
  if (!Promotable()) return;
  uint64_t term;
  MessageType vote_msg;
  if (t == CampaignType::kPreElection) {
    BecomePreCandidate();
    vote_msg = MessageType::kPreVote;
    // Ask for votes in the next term without raising ours.
    term = term_ + 1;
  } else {
    BecomeCandidate();
    vote_msg = MessageType::kVote;
    term = term_;
  }
  if (Poll(id_, VoteRespType(vote_msg), true) == ProgressTracker::VoteResult::kWon) {
    // A single voter wins at once.
    if (t == CampaignType::kPreElection) {
      Campaign(CampaignType::kElection);
    } else {
      BecomeLeader();
    }
    return;
  }
  for (uint64_t id : trk_.config().voters) {
    if (id == id_) continue;
    Message m;
    m.type = vote_msg;
    m.to = id;
    m.term = term;
    m.index = raft_log_.LastIndex();
    m.log_term = raft_log_.LastTerm();
    if (t == CampaignType::kTransfer) m.context = kCampaignTransfer;
    Send(std::move(m));
  }
}

ProgressTracker::VoteResult Raft::Poll(uint64_t id, MessageType, bool granted) {
  trk_.RecordVote(id, granted);
  return trk_.TallyVotes(nullptr, nullptr);
}

// ---- Step ----

absl::Status Raft::Step(Message m) {
  if (m.term == 0) {
    // Local message.
  } else if (m.term > term_) {
    if (m.type == MessageType::kVote || m.type == MessageType::kPreVote) {
      const bool force = m.context == kCampaignTransfer;
      const bool in_lease =
          check_quorum_ && lead_ != kNone && election_elapsed_ < election_timeout_;
      // Heard from a leader within the minimum election timeout: refuse to be disrupted.
      if (!force && in_lease) return absl::OkStatus();
    }
    if (m.type == MessageType::kPreVote) {
      // Never change our term in response to a pre-vote.
    } else if (m.type == MessageType::kPreVoteResp && !m.reject) {
      // A granted pre-vote carries the future term we asked for; the term is raised only
      // once a quorum granted it.
    } else if (m.type == MessageType::kApp || m.type == MessageType::kHeartbeat ||
               m.type == MessageType::kSnap) {
      BecomeFollower(m.term, m.from);
    } else {
      BecomeFollower(m.term, kNone);
    }
  } else if (m.term < term_) {
    if ((check_quorum_ || pre_vote_) &&
        (m.type == MessageType::kHeartbeat || m.type == MessageType::kApp)) {
      // A stale leader (for example after a partition healed) learns our term from this and
      // steps down; otherwise, with check-quorum or pre-vote, it could never hear of it.
      Message resp;
      resp.type = MessageType::kAppResp;
      resp.to = m.from;
      Send(std::move(resp));
    } else if (m.type == MessageType::kPreVote) {
      Message resp;
      resp.type = MessageType::kPreVoteResp;
      resp.to = m.from;
      resp.term = term_;
      resp.reject = true;
      Send(std::move(resp));
    }
    // Otherwise ignore the stale message.
    return absl::OkStatus();
  }

  switch (m.type) {
    case MessageType::kHup:
      Hup(pre_vote_ ? CampaignType::kPreElection : CampaignType::kElection);
      return absl::OkStatus();
    case MessageType::kVote:
    case MessageType::kPreVote: {
      // We can vote again for the same candidate (a duplicate request), for anyone when we
      // have not voted and know no leader, and in a pre-vote for a future term.
      const bool can_vote = vote_ == m.from || (vote_ == kNone && lead_ == kNone) ||
                            (m.type == MessageType::kPreVote && m.term > term_);
      Message resp;
      resp.type = VoteRespType(m.type);
      resp.to = m.from;
      if (can_vote && raft_log_.IsUpToDate(m.index, m.log_term)) {
        // The response carries the request's term: for a pre-vote that is our future term.
        resp.term = m.term;
        if (m.type == MessageType::kVote) {
          election_elapsed_ = 0;
          vote_ = m.from;
        }
      } else {
        resp.term = term_;
        resp.reject = true;
      }
      Send(std::move(resp));
      return absl::OkStatus();
    }
    default:
      break;
  }
  switch (state_) {
    case StateType::kLeader:
      return StepLeader(m);
    case StateType::kCandidate:
    case StateType::kPreCandidate:
      return StepCandidate(m);
    case StateType::kFollower:
      return StepFollower(m);
  }
  return absl::OkStatus();
}

absl::Status Raft::StepLeader(Message& m) {
  switch (m.type) {
    case MessageType::kBeat:
      BcastHeartbeat();
      return absl::OkStatus();
    case MessageType::kCheckQuorum:
      // The leader always counts itself as active.
      if (Progress* self = trk_.Get(id_)) self->recent_active = true;
      if (!trk_.QuorumActive()) {
        BecomeFollower(term_, kNone);
        return absl::OkStatus();
      }
      trk_.Visit([&](uint64_t id, Progress& pr) {
        if (id != id_) pr.recent_active = false;
      });
      return absl::OkStatus();
    case MessageType::kProp: {
      if (m.entries.empty()) Fatal("stepped empty MsgProp");
      if (!trk_.IsMember(id_)) {
        return ProposalDropped("this node is the leader but no longer a member");
      }
      if (lead_transferee_ != kNone) {
        return absl::UnavailableError("raft proposal dropped: leadership is being transferred to " +
                                      Str(lead_transferee_));
      }
      for (const Entry& e : m.entries) {
        if (e.type != EntryType::kConfChange) continue;
        absl::Status st = CheckConfChange(e);
        if (!st.ok()) return st;
      }
      const size_t conf_changes = std::count_if(m.entries.begin(), m.entries.end(), [](auto& e) {
        return e.type == EntryType::kConfChange;
      });
      if (conf_changes > 1) {
        return ProposalDropped("only one membership change can be proposed at a time");
      }
      if (!AppendEntries(std::move(m.entries))) {
        return absl::UnavailableError(
            "raft proposal dropped: too many uncommitted entries; retry once they commit");
      }
      // A membership change may have shrunk the quorum.
      if (conf_changes > 0 && MaybeCommit()) {
        AfterCommit();
        if (state_ != StateType::kLeader) return absl::OkStatus();
      }
      BcastAppend();
      return absl::OkStatus();
    }
    case MessageType::kReadIndex:
      HandleReadIndex(m);
      return absl::OkStatus();
    default:
      break;
  }

  Progress* pr = trk_.Get(m.from);
  if (pr == nullptr) return absl::OkStatus();
  switch (m.type) {
    case MessageType::kAppResp: {
      pr->recent_active = true;
      if (m.reject) {
        uint64_t next_probe = m.reject_hint;
        if (m.log_term > 0) {
          // Skip every entry of the follower's conflicting term at once: the follower told us
          // the term at its hint, so our last entry with a term <= it is where logs may match.
          next_probe = raft_log_.FindConflictByTerm(m.reject_hint, m.log_term).first;
        }
        if (pr->MaybeDecrTo(m.index, next_probe)) {
          if (pr->state == ProgressState::kReplicate) pr->BecomeProbe();
          SendAppend(m.from);
        }
        return absl::OkStatus();
      }
      const bool old_paused = pr->IsPaused();
      if (!pr->MaybeUpdate(m.index)) return absl::OkStatus();
      switch (pr->state) {
        case ProgressState::kProbe:
          pr->BecomeReplicate();
          break;
        case ProgressState::kSnapshot:
          // The follower caught up past the snapshot (or with a newer one).
          if (pr->match + 1 >= raft_log_.FirstIndex()) {
            pr->BecomeProbe();
            pr->BecomeReplicate();
          }
          break;
        case ProgressState::kReplicate:
          pr->inflights.FreeLE(m.index);
          break;
      }
      if (MaybeCommit()) {
        AfterCommit();
        if (state_ != StateType::kLeader) return absl::OkStatus();
        BcastAppend();
      } else if (old_paused) {
        // The follower was paused (its window full or probing): it may take more now.
        SendAppend(m.from);
      }
      // Send as much as the flow control window allows.
      while (MaybeSendAppend(m.from, false)) {
      }
      if (m.from == lead_transferee_ && pr->match == raft_log_.LastIndex()) {
        SendTimeoutNow(m.from);
      }
      return absl::OkStatus();
    }
    case MessageType::kHeartbeatResp: {
      pr->recent_active = true;
      pr->msg_app_flow_paused = false;
      if (pr->match < raft_log_.LastIndex() || pr->state == ProgressState::kProbe) {
        SendAppend(m.from);
      }
      if (m.context.empty()) return absl::OkStatus();
      auto it = pending_read_index_.find(m.context);
      if (it == pending_read_index_.end()) return absl::OkStatus();
      it->second.acks[m.from] = true;
      size_t acks = 0;
      for (uint64_t v : trk_.config().voters) acks += it->second.acks.count(v);
      if (acks < trk_.config().voters.size() / 2 + 1) return absl::OkStatus();
      // Confirmed: answer this request and every one queued before it.
      while (!read_index_queue_.empty()) {
        std::string ctx = read_index_queue_.front();
        read_index_queue_.pop_front();
        auto rs = pending_read_index_.find(ctx);
        if (rs != pending_read_index_.end()) {
          AnswerReadIndex(rs->second.req, rs->second.index);
          pending_read_index_.erase(rs);
        }
        if (ctx == m.context) break;
      }
      return absl::OkStatus();
    }
    case MessageType::kSnapStatus:
      if (pr->state != ProgressState::kSnapshot) return absl::OkStatus();
      if (m.reject) pr->pending_snapshot = 0;
      pr->BecomeProbe();
      // Wait for the follower's answer (or a heartbeat) before the next append.
      pr->msg_app_flow_paused = true;
      return absl::OkStatus();
    case MessageType::kUnreachable:
      // Appends may have been lost: fall back to probing.
      if (pr->state == ProgressState::kReplicate) pr->BecomeProbe();
      return absl::OkStatus();
    case MessageType::kTransferLeader: {
      if (pr->is_learner) return absl::OkStatus();
      const uint64_t transferee = m.from;
      if (lead_transferee_ != kNone) {
        if (lead_transferee_ == transferee) return absl::OkStatus();
        AbortLeaderTransfer();
      }
      if (transferee == id_) return absl::OkStatus();
      // The transfer must finish within an election timeout.
      election_elapsed_ = 0;
      lead_transferee_ = transferee;
      if (pr->match == raft_log_.LastIndex()) {
        SendTimeoutNow(transferee);
      } else {
        SendAppend(transferee);
      }
      return absl::OkStatus();
    }
    default:
      return absl::OkStatus();
  }
}

absl::Status Raft::StepCandidate(Message& m) {
  const MessageType my_vote_resp =
      state_ == StateType::kPreCandidate ? MessageType::kPreVoteResp : MessageType::kVoteResp;
  switch (m.type) {
    case MessageType::kProp:
      return ProposalDropped("no leader (an election is in progress); retry shortly");
    case MessageType::kApp:
      BecomeFollower(m.term, m.from);
      HandleAppendEntries(m);
      return absl::OkStatus();
    case MessageType::kHeartbeat:
      BecomeFollower(m.term, m.from);
      HandleHeartbeat(m);
      return absl::OkStatus();
    case MessageType::kSnap:
      BecomeFollower(m.term, m.from);
      HandleSnapshot(m);
      return absl::OkStatus();
    case MessageType::kTimeoutNow:
      return absl::OkStatus();
    default:
      break;
  }
  if (m.type == my_vote_resp) {
    switch (Poll(m.from, m.type, !m.reject)) {
      case ProgressTracker::VoteResult::kWon:
        if (state_ == StateType::kPreCandidate) {
          Campaign(CampaignType::kElection);
        } else {
          BecomeLeader();
          BcastAppend();
        }
        break;
      case ProgressTracker::VoteResult::kLost:
        // A pre-vote response with a higher term was handled as a follower already.
        BecomeFollower(term_, kNone);
        break;
      case ProgressTracker::VoteResult::kPending:
        break;
    }
  }
  return absl::OkStatus();
}

absl::Status Raft::StepFollower(Message& m) {
  switch (m.type) {
    case MessageType::kProp:
      if (lead_ == kNone) return ProposalDropped("no leader; retry once one is elected");
      if (disable_proposal_forwarding_) {
        return ProposalDropped(
            "this node is a follower and forwarding is disabled; send the "
            "proposal to the leader (" +
            Str(lead_) + ")");
      }
      m.to = lead_;
      Send(std::move(m));
      return absl::OkStatus();
    case MessageType::kApp:
      election_elapsed_ = 0;
      lead_ = m.from;
      HandleAppendEntries(m);
      return absl::OkStatus();
    case MessageType::kHeartbeat:
      election_elapsed_ = 0;
      lead_ = m.from;
      HandleHeartbeat(m);
      return absl::OkStatus();
    case MessageType::kSnap:
      election_elapsed_ = 0;
      lead_ = m.from;
      HandleSnapshot(m);
      return absl::OkStatus();
    case MessageType::kTransferLeader:
      if (lead_ == kNone) return absl::OkStatus();
      m.to = lead_;
      Send(std::move(m));
      return absl::OkStatus();
    case MessageType::kTimeoutNow:
      // The leader hands over: campaign now, overriding the other members' lease.
      Hup(CampaignType::kTransfer);
      return absl::OkStatus();
    case MessageType::kReadIndex:
      if (lead_ == kNone) return absl::OkStatus();
      m.to = lead_;
      Send(std::move(m));
      return absl::OkStatus();
    case MessageType::kReadIndexResp:
      read_states_.push_back(ReadState{m.index, m.context});
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

// ---- Sending ----

void Raft::Send(Message m) {
  if (m.from == kNone) m.from = id_;
  if (m.type == MessageType::kVote || m.type == MessageType::kVoteResp ||
      m.type == MessageType::kPreVote || m.type == MessageType::kPreVoteResp) {
    if (m.term == 0)
      Fatal(std::string("term should be set when sending ") + MessageTypeName(m.type));
  } else {
    if (m.term != 0) {
      Fatal(std::string("term should not be set when sending ") + MessageTypeName(m.type));
    }
    // Proposals and read requests are forwarded as local messages (no term).
    if (m.type != MessageType::kProp && m.type != MessageType::kReadIndex) m.term = term_;
  }
  if (MustWaitForPersist(m.type)) {
    msgs_after_persist_.push_back(std::move(m));
  } else {
    msgs_.push_back(std::move(m));
  }
}

bool Raft::MaybeSendAppend(uint64_t to, bool send_if_empty) {
  Progress* pr = trk_.Get(to);
  if (pr == nullptr || pr->IsPaused()) return false;
  Message m;
  m.to = to;
  absl::StatusOr<uint64_t> term = raft_log_.Term(pr->next - 1);
  absl::StatusOr<std::vector<Entry>> ents = std::vector<Entry>();
  if (pr->state != ProgressState::kReplicate || !pr->inflights.Full()) {
    ents = raft_log_.EntriesFrom(pr->next, max_msg_size_);
  }
  if (ents.ok() && ents->empty() && !send_if_empty) return false;

  if (!term.ok() || !ents.ok()) {
    // The entries the follower needs are compacted: send a snapshot.
    if (!pr->recent_active) return false;
    absl::StatusOr<Snapshot> snap = raft_log_.GetSnapshot();
    if (!snap.ok()) {
      if (IsSnapshotTemporarilyUnavailable(snap.status())) return false;
      Fatal("getting the snapshot: " + std::string(snap.status().message()));
    }
    if (snap->empty()) Fatal("need non-empty snapshot");
    m.type = MessageType::kSnap;
    pr->BecomeSnapshot(snap->metadata.index);
    m.snapshot = *std::move(snap);
    Send(std::move(m));
    return true;
  }

  m.type = MessageType::kApp;
  m.index = pr->next - 1;
  m.log_term = *term;
  m.commit = raft_log_.committed();
  uint64_t bytes = 0;
  for (const Entry& e : *ents) bytes += e.Size();
  const uint64_t last = ents->empty() ? m.index : ents->back().index;
  m.entries = *std::move(ents);
  if (!m.entries.empty()) pr->SentEntries(last, bytes);
  if (pr->state == ProgressState::kProbe) pr->msg_app_flow_paused = true;
  Send(std::move(m));
  return true;
}

void Raft::SendHeartbeat(uint64_t to, const std::string& ctx) {
  // Never tell a follower to commit beyond what it is known to have: it might not have it.
  const Progress* pr = trk_.Get(to);
  Message m;
  m.type = MessageType::kHeartbeat;
  m.to = to;
  m.commit = std::min(pr->match, raft_log_.committed());
  m.context = ctx;
  Send(std::move(m));
}

void Raft::SendTimeoutNow(uint64_t to) {
  Message m;
  m.type = MessageType::kTimeoutNow;
  m.to = to;
  Send(std::move(m));
}

void Raft::BcastAppend() {
  trk_.Visit([&](uint64_t id, Progress&) {
    if (id != id_) SendAppend(id);
  });
}

void Raft::BcastHeartbeat(const std::string& ctx) {
  trk_.Visit([&](uint64_t id, Progress&) {
    if (id != id_) SendHeartbeat(id, ctx);
  });
}

// ---- Log ----

bool Raft::IncreaseUncommittedSize(const std::vector<Entry>& ents) {
  uint64_t s = 0;
  for (const Entry& e : ents) s += e.data.size();
  // Always accept one batch when nothing is uncommitted, so a large entry cannot wedge us.
  if (uncommitted_size_ > 0 && s > 0 && uncommitted_size_ + s > max_uncommitted_size_) {
    return false;
  }
  uncommitted_size_ += s;
  return true;
}

void Raft::ReduceUncommittedSize(const std::vector<Entry>& ents) {
  if (uncommitted_size_ == 0) return;  // fast path for followers
  uint64_t s = 0;
  for (const Entry& e : ents) s += e.data.size();
  uncommitted_size_ = s > uncommitted_size_ ? 0 : uncommitted_size_ - s;
}

bool Raft::AppendEntries(std::vector<Entry> ents) {
  const uint64_t li = raft_log_.LastIndex();
  for (size_t i = 0; i < ents.size(); ++i) {
    ents[i].term = term_;
    ents[i].index = li + 1 + i;
  }
  if (!IncreaseUncommittedSize(ents)) return false;
  for (const Entry& e : ents) {
    if (e.type == EntryType::kConfChange) pending_conf_index_ = e.index;
  }
  OnEntriesAppended(ents, 0);
  raft_log_.Append(std::move(ents));
  // This node's own progress advances in OnPersisted(), once the entries are durable.
  return true;
}

void Raft::OnPersisted() {
  if (state_ != StateType::kLeader) return;
  Progress* self = trk_.Get(id_);
  if (self == nullptr) {
    // Removed from the membership: only the other voters count; commit may still advance.
  } else if (!raft_log_.unstable().snapshot) {
    self->MaybeUpdate(raft_log_.unstable().offset - 1);
  }
  if (MaybeCommit()) {
    AfterCommit();
    if (state_ == StateType::kLeader) BcastAppend();
  }
}

bool Raft::MaybeCommit() {
  const uint64_t mci = trk_.Committed();
  if (mci == UINT64_MAX) return false;
  // Only entries of the current term are committed by counting (the paper's §5.4.2).
  return raft_log_.MaybeCommit(mci, term_);
}

void Raft::AfterCommit() {
  FoldCommittedConfs();
  if (state_ != StateType::kLeader) return;
  ReleasePendingReadIndexMessages();
  // A leader removed from the membership leads until its removal commits, then steps down.
  if (!trk_.IsVoter(id_) && pending_conf_index_ <= raft_log_.committed()) {
    BecomeFollower(term_, kNone);
  }
}

bool Raft::CommittedEntryInCurrentTerm() const {
  return raft_log_.ZeroTermOnError(raft_log_.committed()) == term_;
}

void Raft::HandleAppendEntries(const Message& m) {
  Message resp;
  resp.type = MessageType::kAppResp;
  resp.to = m.from;
  if (m.index < raft_log_.committed()) {
    resp.index = raft_log_.committed();
    Send(std::move(resp));
    return;
  }
  // Entries that conflict with ours (or are new) replace our suffix from there, together
  // with any configuration they carried.
  const uint64_t conflict =
      raft_log_.MatchTerm(m.index, m.log_term) ? raft_log_.FindConflict(m.entries) : 0;
  std::optional<uint64_t> last_new =
      raft_log_.MaybeAppend(m.index, m.log_term, m.commit, m.entries);
  if (last_new) {
    if (conflict != 0) {
      TruncateConfHistory(conflict);
      OnEntriesAppended(m.entries, conflict - (m.index + 1));
    }
    FoldCommittedConfs();
    resp.index = *last_new;
    Send(std::move(resp));
    return;
  }
  // Reject with a hint: the largest index <= m.index whose term is <= m.log_term, so the
  // leader can skip a whole conflicting term in one round trip.
  const uint64_t hint = std::min(m.index, raft_log_.LastIndex());
  auto [hint_index, hint_term] = raft_log_.FindConflictByTerm(hint, m.log_term);
  resp.index = m.index;
  resp.reject = true;
  resp.reject_hint = hint_index;
  resp.log_term = hint_term;
  Send(std::move(resp));
}

void Raft::HandleHeartbeat(const Message& m) {
  raft_log_.CommitTo(m.commit);
  FoldCommittedConfs();
  Message resp;
  resp.type = MessageType::kHeartbeatResp;
  resp.to = m.from;
  resp.context = m.context;
  Send(std::move(resp));
}

void Raft::HandleSnapshot(const Message& m) {
  Message resp;
  resp.type = MessageType::kAppResp;
  resp.to = m.from;
  if (m.snapshot && Restore(*m.snapshot)) {
    resp.index = raft_log_.LastIndex();
  } else {
    resp.index = raft_log_.committed();
  }
  Send(std::move(resp));
}

bool Raft::Restore(const Snapshot& s) {
  if (s.metadata.index <= raft_log_.committed()) return false;
  if (state_ != StateType::kFollower) Fatal("a non-follower was asked to restore a snapshot");
  if (raft_log_.MatchTerm(s.metadata.index, s.metadata.term)) {
    // We already have the log up to the snapshot: just commit it.
    raft_log_.CommitTo(s.metadata.index);
    FoldCommittedConfs();
    return false;
  }
  raft_log_.Restore(s);
  conf_history_.clear();
  base_conf_ = Sorted(s.metadata.conf_state);
  ApplyConfig(base_conf_);
  return true;
}

// ---- ReadIndex ----

void Raft::HandleReadIndex(Message& m) {
  if (trk_.config().voters.size() <= 1 && trk_.IsVoter(id_)) {
    // A single voter is its own quorum.
    AnswerReadIndex(m, raft_log_.committed());
    return;
  }
  // Until this leader commits an entry of its term, its commit index may lag behind the
  // cluster's: wait.
  if (!CommittedEntryInCurrentTerm()) {
    pending_read_index_messages_.push_back(std::move(m));
    return;
  }
  if (pending_read_index_.count(m.context)) return;  // a duplicate request
  ReadIndexStatus st;
  st.index = raft_log_.committed();
  st.acks[id_] = true;
  const std::string ctx = m.context;
  st.req = std::move(m);
  pending_read_index_.emplace(ctx, std::move(st));
  read_index_queue_.push_back(ctx);
  BcastHeartbeat(ctx);
}

void Raft::AnswerReadIndex(const Message& req, uint64_t read_index) {
  if (req.from == kNone || req.from == id_) {
    read_states_.push_back(ReadState{read_index, req.context});
    return;
  }
  Message resp;
  resp.type = MessageType::kReadIndexResp;
  resp.to = req.from;
  resp.index = read_index;
  resp.context = req.context;
  Send(std::move(resp));
}

void Raft::ReleasePendingReadIndexMessages() {
  if (pending_read_index_messages_.empty() || !CommittedEntryInCurrentTerm()) return;
  std::vector<Message> msgs = std::move(pending_read_index_messages_);
  pending_read_index_messages_.clear();
  for (Message& m : msgs) HandleReadIndex(m);
}

// ---- Membership ----

absl::Status Raft::CheckConfChange(const Entry& e) const {
  ConfChange cc;
  if (!ConfChange::Decode(e.data.view(), &cc)) {
    return absl::InvalidArgumentError("raft proposal dropped: malformed membership change");
  }
  if (pending_conf_index_ > raft_log_.committed()) {
    return ProposalDropped(
        "another membership change (or this leader's first entry) is not committed yet; "
        "retry once it is");
  }
  const ConfState& cs = trk_.config();
  const bool voter = trk_.IsVoter(cc.node_id);
  const bool learner = trk_.IsLearner(cc.node_id);
  switch (cc.type) {
    case ConfChangeType::kAddNode:
      if (voter) return absl::AlreadyExistsError("node " + Str(cc.node_id) + " is already a voter");
      break;
    case ConfChangeType::kAddLearnerNode:
      if (learner) {
        return absl::AlreadyExistsError("node " + Str(cc.node_id) + " is already a learner");
      }
      if (voter && cs.voters.size() == 1) {
        return absl::FailedPreconditionError("cannot demote the last voter");
      }
      break;
    case ConfChangeType::kRemoveNode:
      if (!voter && !learner) {
        return absl::NotFoundError("node " + Str(cc.node_id) + " is not a member");
      }
      if (voter && cs.voters.size() == 1) {
        return absl::FailedPreconditionError("cannot remove the last voter");
      }
      break;
  }
  return absl::OkStatus();
}

void Raft::OnEntriesAppended(const std::vector<Entry>& ents, size_t from) {
  bool changed = false;
  for (size_t i = from; i < ents.size(); ++i) {
    const Entry& e = ents[i];
    if (e.type != EntryType::kConfChange) continue;
    ConfChange cc;
    if (!ConfChange::Decode(e.data.view(), &cc)) {
      Fatal("malformed membership change at index " + Str(e.index));
    }
    conf_history_.emplace_back(e.index, ApplyConfChange(CurrentConf(), cc));
    changed = true;
  }
  if (changed) ApplyConfig(CurrentConf());
}

void Raft::TruncateConfHistory(uint64_t from_index) {
  bool changed = false;
  while (!conf_history_.empty() && conf_history_.back().first >= from_index) {
    conf_history_.pop_back();
    changed = true;
  }
  if (changed) ApplyConfig(CurrentConf());
}

void Raft::FoldCommittedConfs() {
  while (!conf_history_.empty() && conf_history_.front().first <= raft_log_.committed()) {
    base_conf_ = std::move(conf_history_.front().second);
    conf_history_.pop_front();
  }
}

void Raft::ApplyConfig(const ConfState& cs) {
  trk_.SetConfig(cs, raft_log_.LastIndex() + 1);
  if (lead_transferee_ != kNone && !trk_.IsVoter(lead_transferee_)) AbortLeaderTransfer();
}

// ---- Invariants ----

void Raft::CheckInvariants() const {
  const uint64_t committed = raft_log_.committed();
  const uint64_t applied = raft_log_.applied();
  const uint64_t last = raft_log_.LastIndex();
  if (applied > committed) Fatal("applied " + Str(applied) + " > committed " + Str(committed));
  if (committed > last) Fatal("committed " + Str(committed) + " > last index " + Str(last));
  if (state_ == StateType::kLeader && lead_ != id_) Fatal("leader does not know it leads");
  if ((state_ == StateType::kLeader || state_ == StateType::kCandidate) && vote_ != id_) {
    Fatal("a leader or candidate did not vote for itself");
  }
  if (!(trk_.config() == CurrentConf())) Fatal("tracker config differs from the log's");
  for (const auto& [index, cs] : conf_history_) {
    if (index <= committed) Fatal("committed configuration at " + Str(index) + " not folded");
    if (index > last) Fatal("configuration at " + Str(index) + " beyond the log");
  }
  const Unstable& u = raft_log_.unstable();
  for (size_t i = 0; i < u.entries.size(); ++i) {
    if (u.entries[i].index != u.offset + i) Fatal("unstable entries are not contiguous");
    if (i > 0 && u.entries[i].term < u.entries[i - 1].term) Fatal("unstable terms decrease");
  }
  if (state_ == StateType::kLeader) {
    for (const auto& [id, pr] : trk_.progress()) {
      if (pr.match >= pr.next) Fatal("progress of " + Str(id) + ": match >= next");
      if (pr.state == ProgressState::kSnapshot && pr.pending_snapshot == 0) {
        Fatal("progress of " + Str(id) + ": snapshot state without a snapshot");
      }
    }
  }
}

}  // namespace swarm::raft

#include "raft/raw_node.h"

#include "raft/raft.h"

namespace swarm::raft {

absl::Status Config::Validate() const {
  if (id == kNone) return absl::InvalidArgumentError("raft config: id must not be 0");
  if (heartbeat_tick <= 0) {
    return absl::InvalidArgumentError("raft config: heartbeat tick must be greater than 0");
  }
  if (election_tick <= heartbeat_tick) {
    return absl::InvalidArgumentError(
        "raft config: election tick must be greater than heartbeat tick");
  }
  if (storage == nullptr) return absl::InvalidArgumentError("raft config: storage is missing");
  if (max_inflight_msgs <= 0) {
    return absl::InvalidArgumentError("raft config: max inflight messages must be positive");
  }
  if (max_inflight_bytes != 0 && max_inflight_bytes < max_size_per_msg) {
    return absl::InvalidArgumentError(
        "raft config: max inflight bytes must be at least max size per message");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RawNode>> RawNode::Create(const Config& config) {
  absl::Status s = config.Validate();
  if (!s.ok()) return s;
  return std::unique_ptr<RawNode>(new RawNode(std::make_unique<Raft>(config)));
}

RawNode::RawNode(std::unique_ptr<Raft> raft)
    : raft_(std::move(raft)),
      prev_soft_state_(raft_->GetSoftState()),
      prev_hard_state_(raft_->GetHardState()) {}

RawNode::~RawNode() = default;

void RawNode::Tick() { raft_->Tick(); }

absl::Status RawNode::Campaign() {
  Message m;
  m.type = MessageType::kHup;
  return raft_->Step(std::move(m));
}

absl::Status RawNode::Propose(std::string data) {
  Message m;
  m.type = MessageType::kProp;
  m.from = raft_->id();
  m.entries.push_back(Entry{0, 0, EntryType::kNormal, Payload(std::move(data))});
  return raft_->Step(std::move(m));
}

absl::Status RawNode::ProposeBatch(std::vector<std::string> data) {
  if (data.empty()) return absl::OkStatus();
  Message m;
  m.type = MessageType::kProp;
  m.from = raft_->id();
  m.entries.reserve(data.size());
  for (std::string& d : data) {
    m.entries.push_back(Entry{0, 0, EntryType::kNormal, Payload(std::move(d))});
  }
  return raft_->Step(std::move(m));
}

absl::Status RawNode::ProposeConfChange(const ConfChange& cc) {
  Message m;
  m.type = MessageType::kProp;
  m.from = raft_->id();
  m.entries.push_back(Entry{0, 0, EntryType::kConfChange, Payload(cc.Encode())});
  return raft_->Step(std::move(m));
}

absl::Status RawNode::Step(Message m) {
  if (IsLocalMessage(m.type)) {
    return absl::InvalidArgumentError(std::string("raft: cannot step a local message (") +
                                      MessageTypeName(m.type) + ") received from the network");
  }
  // Answers from peers we do not know are of no use (and could be forged by a removed node).
  if (IsResponseMessage(m.type) && !raft_->tracker().IsMember(m.from) &&
      raft_->state() == StateType::kLeader) {
    return absl::OkStatus();
  }
  return raft_->Step(std::move(m));
}

void RawNode::ReadIndex(std::string context) {
  Message m;
  m.type = MessageType::kReadIndex;
  m.from = raft_->id();
  m.context = std::move(context);
  (void)raft_->Step(std::move(m));
}

void RawNode::TransferLeadership(uint64_t transferee) {
  Message m;
  m.type = MessageType::kTransferLeader;
  m.from = transferee;
  (void)raft_->Step(std::move(m));
}

void RawNode::ReportUnreachable(uint64_t id) {
  Message m;
  m.type = MessageType::kUnreachable;
  m.from = id;
  (void)raft_->Step(std::move(m));
}

void RawNode::ReportSnapshot(uint64_t id, bool failed) {
  Message m;
  m.type = MessageType::kSnapStatus;
  m.from = id;
  m.reject = failed;
  (void)raft_->Step(std::move(m));
}

bool RawNode::HasReady() const {
  if (!(raft_->GetSoftState() == prev_soft_state_)) return true;
  const HardState hs = raft_->GetHardState();
  if (!hs.empty() && !(hs == prev_hard_state_)) return true;
  const RaftLog& log = raft_->log();
  if (log.HasPendingSnapshot()) return true;
  if (!raft_->msgs().empty() || !raft_->msgs_after_persist().empty()) return true;
  if (!log.unstable().entries.empty() || log.HasNextCommittedEntries()) return true;
  return !raft_->read_states().empty();
}

Ready RawNode::GetReady() {
  if (pending_) Fatal("GetReady called again before Advance");
  Ready rd;
  RaftLog& log = raft_->log();
  rd.entries = log.UnstableEntries();
  rd.committed_entries = log.NextCommittedEntries();
  rd.messages = std::move(raft_->msgs());
  raft_->msgs().clear();
  rd.messages_after_persist = std::move(raft_->msgs_after_persist());
  raft_->msgs_after_persist().clear();
  const SoftState ss = raft_->GetSoftState();
  if (!(ss == prev_soft_state_)) rd.soft_state = ss;
  const HardState hs = raft_->GetHardState();
  if (!(hs == prev_hard_state_)) rd.hard_state = hs;
  if (log.unstable().snapshot) rd.snapshot = *log.unstable().snapshot;
  rd.read_states = std::move(raft_->read_states());
  raft_->read_states().clear();
  rd.must_sync = hs.term != prev_hard_state_.term || hs.vote != prev_hard_state_.vote ||
                 !rd.entries.empty() || !rd.snapshot.empty();

  // Advance() needs only the positions, not the payloads.
  Ready& p = pending_.emplace();
  p.soft_state = rd.soft_state;
  p.hard_state = rd.hard_state;
  if (!rd.entries.empty()) p.entries.push_back(rd.entries.back());
  if (!rd.committed_entries.empty()) p.committed_entries.push_back(rd.committed_entries.back());
  p.snapshot.metadata = rd.snapshot.metadata;
  raft_->ReduceUncommittedSize(rd.committed_entries);
  return rd;
}

void RawNode::Advance() {
  if (!pending_) Fatal("Advance called without a Ready");
  Ready rd = std::move(*pending_);
  pending_.reset();
  RaftLog& log = raft_->log();
  if (rd.soft_state) prev_soft_state_ = *rd.soft_state;
  if (!rd.hard_state.empty()) prev_hard_state_ = rd.hard_state;
  uint64_t applied = 0;
  if (!rd.committed_entries.empty()) applied = rd.committed_entries.back().index;
  if (!rd.snapshot.empty()) {
    log.StableSnapTo(rd.snapshot.metadata.index);
    applied = std::max(applied, rd.snapshot.metadata.index);
  }
  if (!rd.entries.empty()) log.StableTo(rd.entries.back().index, rd.entries.back().term);
  if (applied > log.applied()) log.AppliedTo(applied);
  raft_->OnPersisted();
}

raft::Status RawNode::GetStatus() const {
  raft::Status s;
  s.id = raft_->id();
  s.hard_state = raft_->GetHardState();
  s.soft_state = raft_->GetSoftState();
  s.applied = raft_->log().applied();
  s.lead_transferee = raft_->lead_transferee();
  s.conf_state = raft_->conf_state();
  if (raft_->state() == StateType::kLeader) {
    for (const auto& [id, pr] : raft_->tracker().progress()) {
      s.progress[id] = ProgressStatus{pr.match, pr.next, ProgressStateName(pr.state), pr.is_learner,
                                      pr.recent_active};
    }
  }
  return s;
}

uint64_t RawNode::id() const { return raft_->id(); }

void RawNode::CheckInvariants() const { raft_->CheckInvariants(); }

}  // namespace swarm::raft

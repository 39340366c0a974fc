#include "raft/sim/sim.h"

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <string_view>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace swarm::raft::sim {
namespace {

// A node that keeps producing Readys without settling is a bug; so is a message storm.
constexpr int kMaxReadysPerInput = 10000;
constexpr size_t kMaxDeliveriesPerTick = 200000;
constexpr int kClients = 3;

template <typename T>
T Pick(std::mt19937_64& rng, std::initializer_list<T> options) {
  return *(options.begin() + rng() % options.size());
}

bool Contains(const std::vector<uint64_t>& ids, uint64_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

const char* ConfChangeTypeName(ConfChangeType type) {
  switch (type) {
    case ConfChangeType::kAddNode:
      return "add-voter";
    case ConfChangeType::kRemoveNode:
      return "remove";
    case ConfChangeType::kAddLearnerNode:
      return "add-learner";
  }
  return "?";
}

// The same single-server semantics as the core: each change sets one node's role outright.
void ApplyConfChange(const ConfChange& cc, ConfState* cs) {
  auto erase = [&](std::vector<uint64_t>& ids) {
    ids.erase(std::remove(ids.begin(), ids.end(), cc.node_id), ids.end());
  };
  erase(cs->voters);
  erase(cs->learners);
  if (cc.type == ConfChangeType::kAddNode) cs->voters.push_back(cc.node_id);
  if (cc.type == ConfChangeType::kAddLearnerNode) cs->learners.push_back(cc.node_id);
  std::sort(cs->voters.begin(), cs->voters.end());
  std::sort(cs->learners.begin(), cs->learners.end());
}

ConfState SortedConf(ConfState cs) {
  std::sort(cs.voters.begin(), cs.voters.end());
  std::sort(cs.learners.begin(), cs.learners.end());
  return cs;
}

std::string JoinIds(const std::vector<uint64_t>& ids) {
  std::string out = "{";
  for (size_t i = 0; i < ids.size(); ++i) absl::StrAppend(&out, i ? "," : "", ids[i]);
  return out + "}";
}

std::string DescribeConf(const ConfState& cs) {
  std::string out = absl::StrCat("voters ", JoinIds(cs.voters));
  if (!cs.learners.empty()) absl::StrAppend(&out, " learners ", JoinIds(cs.learners));
  return out;
}

std::string DescribeConfChange(const ConfChange& cc) {
  return absl::StrCat(ConfChangeTypeName(cc.type), " ", cc.node_id);
}

ConfChange MakeConfChange(ConfChangeType type, uint64_t node_id) {
  ConfChange cc;
  cc.type = type;
  cc.node_id = node_id;
  return cc;
}

std::string PayloadString(const Payload& p) { return std::string(p.view()); }

std::string DescribeEntry(const Entry& e) {
  std::string out = absl::StrCat("(index ", e.index, ", term ", e.term, ", ");
  ConfChange cc;
  if (e.type == EntryType::kConfChange) {
    if (ConfChange::Decode(e.data.view(), &cc)) return out + DescribeConfChange(cc) + ")";
    return out + "malformed conf change)";
  }
  return out + (e.data.empty() ? "no-op" : "\"" + PayloadString(e.data) + "\"") + ")";
}

// One line of the state machine for an applied entry; leaders' no-ops leave no line.
std::string StateLine(const Entry& e) {
  if (e.type == EntryType::kNormal) {
    if (e.data.empty()) return "";
    return absl::StrCat(e.index, " ", PayloadString(e.data), "\n");
  }
  ConfChange cc;
  if (!ConfChange::Decode(e.data.view(), &cc)) return absl::StrCat(e.index, " conf ?\n");
  return absl::StrCat(e.index, " conf ", DescribeConfChange(cc), "\n");
}

// Whether every majority of voter set a shares a member with every majority of b. With
// s = |a∩b|, x = |a\b|, y = |b\a|, disjoint majorities exist iff the members each majority
// must take from the intersection fit into it together.
bool MajoritiesIntersect(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b) {
  size_t shared = 0;
  for (uint64_t id : a) shared += Contains(b, id);
  const size_t only_a = a.size() - shared, only_b = b.size() - shared;
  const size_t quorum_a = a.size() / 2 + 1, quorum_b = b.size() / 2 + 1;
  const size_t need =
      (quorum_a > only_a ? quorum_a - only_a : 0) + (quorum_b > only_b ? quorum_b - only_b : 0);
  return need > shared;
}

uint64_t CutBit(uint64_t from, uint64_t to) {
  return uint64_t{1} << ((from - 1) * kMaxNodes + (to - 1));
}

bool IsHeartbeat(MessageType t) {
  return t == MessageType::kHeartbeat || t == MessageType::kHeartbeatResp;
}

}  // namespace

// ---- Scenario, stats, result ----

Scenario Scenario::FromRandom(std::mt19937_64& rng) {
  auto chance = [&rng](double p) { return (rng() >> 11) * 0x1.0p-53 < p; };
  Scenario s;
  s.voters = chance(0.5) ? 3 : 5;
  s.heartbeat_tick = Pick(rng, {1, 2});
  s.fault_ticks = Pick(rng, {80, 150});
  s.check_quorum = chance(0.75);
  s.pre_vote = chance(0.75);
  // 1 byte: one entry a message; 64 bytes: two or three. With one entry a message, a long
  // pipeline costs a message per entry and lost one a resend of it all: keep it short.
  s.max_size_per_msg = chance(0.4) ? Pick<uint64_t>(rng, {1, 64}) : 1 << 20;
  s.max_inflight_msgs = s.max_size_per_msg == 1 ? Pick(rng, {2, 16}) : Pick(rng, {4, 256, 256});
  // Leaders refuse proposals beyond a bounded uncommitted tail (tens of entries), as a real
  // service would push back on clients: liveness is "a new proposal commits within a bound",
  // which no bound can promise behind an unbounded backlog on a slow pipeline.
  s.max_uncommitted_bytes = s.max_size_per_msg == 1 ? 128 : s.max_size_per_msg == 64 ? 256 : 1024;
  s.max_delay = static_cast<int>(rng() % 4);
  s.drop_rate = chance(0.5) ? Pick(rng, {0.01, 0.05, 0.15}) : 0.0;
  s.duplicate_rate = chance(0.3) ? Pick(rng, {0.02, 0.1}) : 0.0;
  s.partition_rate = chance(0.5) ? Pick(rng, {0.005, 0.02, 0.05}) : 0.0;
  s.crash_rate = chance(0.5) ? Pick(rng, {0.003, 0.01, 0.03}) : 0.0;
  s.ready_crash_rate = chance(0.4) ? Pick(rng, {0.002, 0.01}) : 0.0;
  const int minority = (s.voters - 1) / 2;
  s.max_down = Pick(rng, {1, minority, minority, s.voters});
  s.propose_rate = Pick(rng, {0.2, 0.5, 1.0});
  s.read_rate = chance(0.6) ? Pick(rng, {0.1, 0.3}) : 0.0;
  s.transfer_rate = chance(0.3) ? Pick(rng, {0.005, 0.02}) : 0.0;
  s.conf_change_rate = chance(0.4) ? Pick(rng, {0.02, 0.1, 0.3}) : 0.0;
  s.snapshot_interval = chance(0.6) ? Pick(rng, {5, 15, 40}) : 0;
  s.compaction_margin = Pick(rng, {0, 0, 3, 20});
  return s;
}

std::string Scenario::Describe() const {
  return absl::StrCat(
      voters, " voters, election ", election_tick, "/heartbeat ", heartbeat_tick,
      check_quorum ? ", check-quorum" : "", pre_vote ? ", pre-vote" : "", ", max msg ",
      max_size_per_msg, "B, inflight ", max_inflight_msgs, ", uncommitted ", max_uncommitted_bytes,
      "B, delay 0-", max_delay, ", drop ", drop_rate, ", dup ", duplicate_rate, ", partition ",
      partition_rate, ", crash ", crash_rate, ", ready-crash ", ready_crash_rate, ", max down ",
      max_down, ", propose ", propose_rate, ", read ", read_rate, ", transfer ", transfer_rate,
      ", conf change ", conf_change_rate, ", snapshot every ", snapshot_interval, " (margin ",
      compaction_margin, "), ", fault_ticks, " fault ticks");
}

void SimStats::Add(const SimStats& o) {
  ticks += o.ticks;
  messages_delivered += o.messages_delivered;
  messages_dropped += o.messages_dropped;
  leaders_elected += o.leaders_elected;
  crashes += o.crashes;
  proposals_acked += o.proposals_acked;
  reads_served += o.reads_served;
  snapshots_taken += o.snapshots_taken;
  snapshots_installed += o.snapshots_installed;
  conf_changes_committed += o.conf_changes_committed;
  history_length += o.history_length;
  liveness_ticks += o.liveness_ticks;
}

std::string SimStats::Describe() const {
  return absl::StrCat("ticks ", ticks, ", delivered ", messages_delivered, ", dropped ",
                      messages_dropped, ", leaders ", leaders_elected, ", crashes ", crashes,
                      ", acked ", proposals_acked, ", reads ", reads_served, ", snapshots taken ",
                      snapshots_taken, ", installed ", snapshots_installed, ", conf changes ",
                      conf_changes_committed, ", history ", history_length, ", liveness ticks ",
                      liveness_ticks);
}

std::string SimResult::Report() const {
  std::string out = absl::StrCat("seed ", seed, ": ", scenario, "\n");
  for (const std::string& v : violations) absl::StrAppend(&out, "VIOLATION ", v, "\n");
  absl::StrAppend(&out, "stats: ", stats.Describe(), "\n");
  absl::StrAppend(&out, "last ", trace.size(), " events (heartbeats left out):\n");
  for (const std::string& line : trace) absl::StrAppend(&out, "  ", line, "\n");
  return out;
}

// ---- The durable configuration ----

ConfState Simulator::DurableConfLog::Current() const {
  ConfState cs = base;
  for (const auto& [index, cc] : changes) ApplyConfChange(cc, &cs);
  return SortedConf(std::move(cs));
}

std::string Simulator::DurableConfLog::Describe() const {
  std::string out = absl::StrCat(DescribeConf(base), " at ", base_index);
  for (const auto& [index, cc] : changes)
    absl::StrAppend(&out, ", ", DescribeConfChange(cc), " at ", index);
  return out;
}

uint64_t Simulator::DurableConfLog::CurrentIndex() const {
  return changes.empty() ? base_index : changes.back().first;
}

Simulator::DurableConfLog Simulator::ReadConfLog(const MemoryStorage& storage) {
  DurableConfLog log;
  const Snapshot snap = *storage.GetSnapshot();
  log.base_index = snap.metadata.index;
  log.base = SortedConf(storage.GetInitialState()->conf_state);
  const uint64_t first = std::max(storage.FirstIndex(), log.base_index + 1);
  if (first > storage.LastIndex()) return log;
  const absl::StatusOr<std::vector<Entry>> entries =
      storage.Entries(first, storage.LastIndex() + 1, UINT64_MAX);
  for (const Entry& e : *entries) {
    ConfChange cc;
    if (e.type == EntryType::kConfChange && ConfChange::Decode(e.data.view(), &cc)) {
      log.changes.emplace_back(e.index, cc);
    }
  }
  return log;
}

// ---- Construction and phases ----

Simulator::Simulator(const SimOptions& options)
    : options_(options), rng_(options.seed), scenario_(Scenario::FromRandom(rng_)) {
  result_.seed = options.seed;
  result_.scenario = scenario_.Describe();
  result_.trace_hash = 14695981039346656037ull;  // FNV-1a offset basis
  ring_.reserve(options_.trace_capacity);
}

Simulator::~Simulator() = default;

SimResult Simulator::Run() {
  Bootstrap();
  for (now_ = 0; now_ < static_cast<uint64_t>(scenario_.fault_ticks) && !failed(); ++now_) {
    RunTick(/*faults=*/true);
  }
  if (!failed()) EndFaults();
  if (!failed()) RunLivenessPhase();
  if (!failed()) FinalChecks();

  result_.stats.history_length = history_.size();
  const size_t n = ring_.size();
  const size_t start = n < options_.trace_capacity ? 0 : ring_next_;
  for (size_t i = 0; i < n; ++i) result_.trace.push_back(Format(ring_[(start + i) % n]));
  return std::move(result_);
}

void Simulator::Bootstrap() {
  for (int i = 1; i <= scenario_.voters; ++i) genesis_.voters.push_back(i);
  next_node_id_ = scenario_.voters + 1;
  client_counters_.assign(kClients, 0);
  drop_rate_ = scenario_.drop_rate;
  network_.resize(scenario_.max_delay + 1);
  history_text_end_.push_back(0);
  for (uint64_t id : genesis_.voters) StartNode(AddNode(id, /*initial=*/true));
}

void Simulator::RunTick(bool faults) {
  if (faults) {
    InjectFaults();
    RunClients();
  }
  TickNodes();
  DeliverDue();
  FlushDecommissions();
  // Without membership changes every configuration is the genesis one; FinalChecks still looks.
  if (!failed() && scenario_.conf_change_rate > 0) CheckMembership();
  ++result_.stats.ticks;
}

void Simulator::EndFaults() {
  faults_ = false;
  cut_mask_ = 0;
  drop_rate_ = 0;
  Record({.tick = now_, .kind = EventKind::kFaultsEnd});
  for (auto& [id, node] : nodes_) {
    if (!node.live() && !node.decommissioned) StartNode(node);
  }
}

void Simulator::RunLivenessPhase() {
  const uint64_t start = now_;
  const uint64_t deadline = start + 20 * scenario_.election_tick + 4 * (scenario_.max_delay + 1);
  bool committed = false;
  while (now_ < deadline && !failed()) {
    MaybeProposeProbe();
    RunTick(/*faults=*/false);
    ++now_;
    if (ProbeCommitted()) {
      committed = true;
      result_.stats.liveness_ticks = now_ - start;
      break;
    }
  }
  if (failed()) return;
  if (!committed) {
    Node* leader = Leader();
    Violation(absl::StrCat("liveness: no proposal was applied by a majority within ",
                           deadline - start, " ticks after the faults ended (",
                           leader ? absl::StrCat("node ", leader->id, " leads") : "no leader", ", ",
                           probes_.size(), " probes proposed)"));
    return;
  }
}

void Simulator::FinalChecks() {
  CheckMembership();
  if (!failed()) CheckLogMatchingPairwise();
  if (!failed()) CheckAcknowledgedWrites();
}

// ---- One tick ----

void Simulator::InjectFaults() {
  for (auto& [id, node] : nodes_) {
    if (!node.live() && !node.decommissioned && node.restart_at <= now_) StartNode(node);
  }
  if (Chance(scenario_.crash_rate) && DownCount() < scenario_.max_down) {
    // Leaders crash more often than their share: leader changes are where Raft is subtle.
    Node* node = Chance(0.5) ? Leader() : nullptr;
    if (node == nullptr) node = RandomLiveNode();
    if (node != nullptr) Crash(*node, CrashPoint::kIdle);
  }
  if (Chance(scenario_.partition_rate)) ChangePartition();
}

void Simulator::RunClients() {
  if (Chance(scenario_.propose_rate)) ProposeCommand();
  if (Chance(scenario_.read_rate)) StartRead();
  if (Chance(scenario_.conf_change_rate)) ProposeMembershipChange();
  if (Chance(scenario_.transfer_rate)) TransferLeader();
  FlushDecommissions();
}

void Simulator::TickNodes() {
  for (auto& [id, node] : nodes_) {
    if (failed()) return;
    if (!node.live()) continue;
    node.raw->Tick();
    node.raw->CheckInvariants();
    Drive(node);
  }
  FlushDecommissions();
}

void Simulator::DeliverDue() {
  // Messages sent while delivering with no delay land in this same slot and go out this tick.
  std::deque<InFlight>& due = network_[now_ % network_.size()];
  for (size_t deliveries = 0; !due.empty() && !failed(); ++deliveries) {
    if (deliveries == kMaxDeliveriesPerTick) {
      Violation(absl::StrCat("message storm: more than ", kMaxDeliveriesPerTick,
                             " messages delivered in one tick"));
      return;
    }
    InFlight flight = std::move(due.front());
    due.pop_front();
    Deliver(std::move(flight));
    FlushDecommissions();
  }
}

// ---- Nodes ----

Simulator::Node& Simulator::AddNode(uint64_t id, bool initial) {
  Node& node = nodes_[id];
  node.id = id;
  node.storage = std::make_unique<MemoryStorage>();
  // Initial members start from the bootstrap log (the genesis membership as committed conf
  // changes); a node added later starts empty and learns everything from the leader, the
  // bootstrap entries or a snapshot included.
  if (initial) node.storage->Bootstrap(genesis_);
  node.conf_log = ReadConfLog(*node.storage);
  return node;
}

Config Simulator::MakeConfig(uint64_t id, uint64_t applied) {
  Config c;
  c.id = id;
  c.election_tick = scenario_.election_tick;
  c.heartbeat_tick = scenario_.heartbeat_tick;
  c.storage = nodes_.at(id).storage.get();
  c.applied = applied;
  c.max_size_per_msg = scenario_.max_size_per_msg;
  c.max_inflight_msgs = scenario_.max_inflight_msgs;
  c.max_uncommitted_entries_size = scenario_.max_uncommitted_bytes;
  c.check_quorum = scenario_.check_quorum;
  c.pre_vote = scenario_.pre_vote;
  c.seed = rng_();
  return c;
}

void Simulator::Crash(Node& node, CrashPoint point) {
  Record({.tick = now_,
          .kind = EventKind::kCrash,
          .detail = static_cast<uint8_t>(point),
          .node = node.id});
  ++result_.stats.crashes;
  node.raw.reset();
  node.soft = SoftState{};
  node.leader_term = 0;
  node.state.clear();
  node.applied = 0;
  node.applied_conf = ConfState{};
  node.applied_since_snapshot = 0;
  node.proposals.clear();
  node.reads_to_serve.clear();
  node.deferred.clear();
  node.restart_at = now_ + 1 + Uniform(3 * scenario_.election_tick);
}

void Simulator::StartNode(Node& node) {
  const absl::StatusOr<Snapshot> snap = node.storage->GetSnapshot();
  const absl::StatusOr<InitialState> init = node.storage->GetInitialState();
  if (!snap.ok() || !init.ok()) {
    Violation(absl::StrCat("node ", node.id, ": reading its storage failed"));
    return;
  }
  absl::StatusOr<std::unique_ptr<RawNode>> raw =
      RawNode::Create(MakeConfig(node.id, snap->metadata.index));
  if (!raw.ok()) {
    Violation(absl::StrCat("node ", node.id, ": restart failed: ", raw.status().ToString()));
    return;
  }
  // The simulator's mirror of the durable membership must match the storage it mirrors.
  const DurableConfLog stored = ReadConfLog(*node.storage);
  if (stored.base_index != node.conf_log.base_index || !(stored.base == node.conf_log.base) ||
      stored.changes != node.conf_log.changes) {
    Violation(absl::StrCat("simulator bug: node ", node.id, "'s mirrored membership log (",
                           node.conf_log.Describe(), ") differs from its storage (",
                           stored.Describe(), ")"));
    return;
  }
  node.raw = std::move(*raw);
  ++node.incarnation;
  node.soft = SoftState{};
  node.leader_term = 0;
  node.state = std::string(snap->data.view());
  node.applied = snap->metadata.index;
  node.applied_conf = SortedConf(init->conf_state);
  node.applied_since_snapshot = 0;
  Record({.tick = now_,
          .kind = EventKind::kStart,
          .node = node.id,
          .term = init->hard_state.term,
          .index = node.applied,
          .commit = init->hard_state.commit,
          .extra = node.incarnation});
  if (!snap->empty()) CheckRestoredState(node, *snap);
  if (failed()) return;
  node.raw->CheckInvariants();
  Drive(node);
}

void Simulator::Decommission(Node& node) {
  Record({.tick = now_, .kind = EventKind::kDecommission, .node = node.id});
  node.raw.reset();
  node.decommissioned = true;
  node.soft = SoftState{};
  node.proposals.clear();
  node.reads_to_serve.clear();
  node.deferred.clear();
}

void Simulator::FlushDecommissions() {
  std::vector<uint64_t> ids;
  ids.swap(to_decommission_);
  for (uint64_t id : ids) {
    Node* node = FindNode(id);
    if (node != nullptr && !node->decommissioned) Decommission(*node);
  }
}

Simulator::Node* Simulator::FindNode(uint64_t id) {
  auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : &it->second;
}

Simulator::Node* Simulator::Leader() {
  Node* leader = nullptr;
  for (auto& [id, node] : nodes_) {
    if (!node.live() || node.soft.state != StateType::kLeader) continue;
    if (leader == nullptr || node.leader_term > leader->leader_term) leader = &node;
  }
  return leader;
}

Simulator::Node* Simulator::RandomLiveNode() {
  std::vector<Node*> live;
  for (auto& [id, node] : nodes_) {
    if (node.live()) live.push_back(&node);
  }
  return live.empty() ? nullptr : live[Uniform(live.size())];
}

int Simulator::DownCount() const {
  int down = 0;
  for (const auto& [id, node] : nodes_) down += !node.live() && !node.decommissioned;
  return down;
}

// ---- Driving a node ----

void Simulator::Drive(Node& node) {
  for (int readys = 0; !failed() && node.live();) {
    if (node.raw->HasReady()) {
      if (++readys > kMaxReadysPerInput) {
        Violation(absl::StrCat("node ", node.id, " keeps producing Readys"));
        return;
      }
      HandleReady(node);
      continue;
    }
    if (node.deferred.empty()) return;
    Deferred d = std::move(node.deferred.front());
    node.deferred.pop_front();
    switch (d.kind) {
      case Deferred::Kind::kStep:
        (void)node.raw->Step(std::move(d.message));
        break;
      case Deferred::Kind::kUnreachable:
        node.raw->ReportUnreachable(d.peer);
        break;
      case Deferred::Kind::kSnapshotStatus:
        node.raw->ReportSnapshot(d.peer, d.failed);
        break;
    }
    node.raw->CheckInvariants();
  }
}

// The loop of raw_node.h: send, persist, send what waited for persistence, apply, Advance.
void Simulator::HandleReady(Node& node) {
  Ready rd = node.raw->GetReady();
  // A commit index is a fact about the cluster, even if this node crashes before persisting it.
  if (!rd.hard_state.empty()) max_commit_seen_ = std::max(max_commit_seen_, rd.hard_state.commit);
  const bool became_leader = rd.soft_state && rd.soft_state->state == StateType::kLeader &&
                             node.soft.state != StateType::kLeader;
  if (rd.soft_state) OnSoftState(node, *rd.soft_state);

  for (Message& m : rd.messages) {
    CheckOutgoing(node, m);
    Send(node, std::move(m));
  }
  if (failed() || MaybeCrashInReady(node, rd, CrashPoint::kAfterSend)) return;

  const uint64_t prev_commit = node.storage->GetInitialState()->hard_state.commit;
  Persist(node, rd);
  if (became_leader) CheckLeaderCompleteness(node);
  if (node.soft.state == StateType::kLeader) CheckLeaderCommit(node, prev_commit, rd.hard_state);
  for (Message& m : rd.messages_after_persist) {
    CheckOutgoing(node, m);
    Send(node, std::move(m));
  }
  if (failed() || MaybeCrashInReady(node, rd, CrashPoint::kAfterPersist)) return;

  if (!rd.snapshot.empty()) InstallSnapshot(node, rd.snapshot);
  for (const Entry& e : rd.committed_entries) {
    if (failed()) return;
    Apply(node, e);
  }
  for (const ReadState& rs : rd.read_states) OnReadState(node, rs);
  ServeReads(node);
  if (failed()) return;
  node.raw->Advance();
  node.raw->CheckInvariants();
  MaybeTakeSnapshot(node);
}

bool Simulator::MaybeCrashInReady(Node& node, const Ready& rd, CrashPoint point) {
  if (!faults_ || scenario_.ready_crash_rate <= 0) return false;
  const bool persists = !rd.entries.empty() || !rd.hard_state.empty() || !rd.snapshot.empty();
  const bool applies = !rd.committed_entries.empty() || !rd.snapshot.empty();
  if (point == CrashPoint::kAfterSend && !persists) return false;
  if (point == CrashPoint::kAfterPersist && !persists && !applies) return false;
  if (DownCount() >= scenario_.max_down || !Chance(scenario_.ready_crash_rate)) return false;
  Crash(node, point);
  return true;
}

void Simulator::Persist(Node& node, const Ready& rd) {
  MemoryStorage& storage = *node.storage;
  if (!rd.snapshot.empty()) {
    const SnapshotMetadata& meta = rd.snapshot.metadata;
    if (meta.index > history_.size() || history_[meta.index - 1].term != meta.term) {
      Violation(absl::StrCat("node ", node.id, " was handed a snapshot at (index ", meta.index,
                             ", term ", meta.term, ") that is not in the committed history"));
      return;
    }
    if (absl::Status s = storage.ApplySnapshot(rd.snapshot); !s.ok()) {
      Violation(absl::StrCat("node ", node.id, ": persisting the Ready's snapshot at ", meta.index,
                             ": ", s.ToString()));
      return;
    }
    node.conf_log = DurableConfLog{meta.index, SortedConf(meta.conf_state), {}};
  }
  if (!rd.entries.empty()) {
    for (size_t i = 1; i < rd.entries.size(); ++i) {
      if (rd.entries[i].index != rd.entries[i - 1].index + 1) {
        Violation(absl::StrCat("node ", node.id, ": Ready entries are not contiguous at ",
                               rd.entries[i].index));
        return;
      }
    }
    // MemoryStorage ignores the part of the entries that is already compacted.
    const uint64_t first = std::max(rd.entries.front().index, storage.FirstIndex());
    const bool appends = rd.entries.back().index >= storage.FirstIndex();
    if (absl::Status s = storage.Append(rd.entries); !s.ok()) {
      Violation(absl::StrCat("node ", node.id, ": persisting Ready entries from ",
                             rd.entries.front().index, ": ", s.ToString()));
      return;
    }
    if (appends) {
      auto& changes = node.conf_log.changes;
      while (!changes.empty() && changes.back().first >= first) changes.pop_back();
      for (const Entry& e : rd.entries) {
        if (e.index < first || e.index <= node.conf_log.base_index) continue;
        if (e.type != EntryType::kConfChange) continue;
        ConfChange cc;
        if (!ConfChange::Decode(e.data.view(), &cc)) {
          Violation(absl::StrCat("node ", node.id, " persisted a malformed conf change ",
                                 DescribeEntry(e)));
          return;
        }
        changes.emplace_back(e.index, cc);
      }
      CheckDurableEntries(node, rd.entries);
    }
  }
  if (!rd.hard_state.empty() && !failed()) {
    CheckHardState(node, rd.hard_state);
    storage.SetHardState(rd.hard_state);
  }
}

void Simulator::Apply(Node& node, const Entry& e) {
  if (e.index != node.applied + 1) {
    Violation(absl::StrCat("node ", node.id, " applied index ", e.index, " after ", node.applied));
    return;
  }
  if (e.index > node.storage->LastIndex()) {
    Violation(absl::StrCat("node ", node.id, " applied ", DescribeEntry(e),
                           " which is not in its durable log (last index ",
                           node.storage->LastIndex(), ")"));
    return;
  }
  RecordHistory(node, e);
  if (failed()) return;
  node.applied = e.index;
  node.state += StateLine(e);
  ++node.applied_since_snapshot;
  if (e.type == EntryType::kConfChange) {
    ConfChange cc;
    if (ConfChange::Decode(e.data.view(), &cc)) ApplyConfChange(cc, &node.applied_conf);
  } else if (!e.data.empty()) {
    std::string payload = PayloadString(e.data);
    if (node.proposals.erase(payload) > 0) Acknowledge(payload, e.index);
  }
}

void Simulator::Acknowledge(const std::string& payload, uint64_t index) {
  acked_.emplace(payload, index);
  acked_watermark_ = std::max(acked_watermark_, index);
  ++result_.stats.proposals_acked;
}

void Simulator::InstallSnapshot(Node& node, const Snapshot& snap) {
  const SnapshotMetadata& meta = snap.metadata;
  Record({.tick = now_,
          .kind = EventKind::kSnapshotInstalled,
          .node = node.id,
          .term = meta.term,
          .index = meta.index});
  if (meta.index <= node.applied) {
    Violation(absl::StrCat("node ", node.id, " was handed a snapshot at ", meta.index,
                           " but has applied ", node.applied, " already"));
    return;
  }
  CheckRestoredState(node, snap);
  node.state = std::string(snap.data.view());
  node.applied = meta.index;
  node.applied_conf = SortedConf(meta.conf_state);
  node.applied_since_snapshot = 0;
  ++result_.stats.snapshots_installed;
}

void Simulator::MaybeTakeSnapshot(Node& node) {
  if (scenario_.snapshot_interval == 0 ||
      node.applied_since_snapshot < static_cast<uint64_t>(scenario_.snapshot_interval)) {
    return;
  }
  node.applied_since_snapshot = 0;
  MemoryStorage& storage = *node.storage;
  const uint64_t index = node.applied;
  if (index <= storage.GetSnapshot()->metadata.index) return;
  absl::StatusOr<Snapshot> snap =
      storage.CreateSnapshot(index, node.applied_conf, Payload(node.state));
  if (!snap.ok()) {
    Violation(absl::StrCat("node ", node.id, ": taking a snapshot at ", index, ": ",
                           snap.status().ToString()));
    return;
  }
  DurableConfLog& log = node.conf_log;
  log.base_index = index;
  log.base = node.applied_conf;
  log.changes.erase(std::remove_if(log.changes.begin(), log.changes.end(),
                                   [index](const auto& c) { return c.first <= index; }),
                    log.changes.end());
  ++result_.stats.snapshots_taken;
  // Keep some entries below the snapshot so that slightly slow followers need no snapshot.
  const uint64_t compact = index - std::min<uint64_t>(index, scenario_.compaction_margin);
  Record({.tick = now_,
          .kind = EventKind::kSnapshotTaken,
          .node = node.id,
          .term = snap->metadata.term,
          .index = index,
          .extra = compact});
  if (compact >= storage.FirstIndex()) {
    if (absl::Status s = storage.Compact(compact); !s.ok()) {
      Violation(absl::StrCat("node ", node.id, ": compacting to ", compact, ": ", s.ToString()));
    }
  }
}

void Simulator::OnSoftState(Node& node, const SoftState& ss) {
  const bool was_leader = node.soft.state == StateType::kLeader;
  node.soft = ss;
  if (ss.state != StateType::kLeader || was_leader) return;
  const uint64_t term = node.raw->GetStatus().hard_state.term;
  node.leader_term = term;
  ++result_.stats.leaders_elected;
  Record({.tick = now_, .kind = EventKind::kLeader, .node = node.id, .term = term});
  auto [it, inserted] = leaders_.emplace(term, node.id);
  if (!inserted && it->second != node.id) {
    Violation(absl::StrCat("election safety: nodes ", it->second, " and ", node.id,
                           " both became leader of term ", term));
  }
}

void Simulator::OnReadState(Node& node, const ReadState& rs) {
  auto it = reads_.find(rs.context);
  Record({.tick = now_,
          .kind = EventKind::kReadState,
          .node = node.id,
          .index = rs.index,
          .text = rs.context});
  if (it == reads_.end()) {
    Violation(absl::StrCat("node ", node.id, " got a ReadState for \"", rs.context,
                           "\", which nobody asked for"));
    return;
  }
  if (rs.index < it->second.watermark) {
    Violation(absl::StrCat("linearizability: read ", rs.context,
                           " started at t=", it->second.started, " on node ", it->second.node,
                           " was answered with index ", rs.index, ", but a write at index ",
                           it->second.watermark, " had been acknowledged before it started"));
    return;
  }
  node.reads_to_serve.push_back(rs);
}

void Simulator::ServeReads(Node& node) {
  auto& reads = node.reads_to_serve;
  for (auto it = reads.begin(); it != reads.end();) {
    if (it->index > node.applied) {
      ++it;
      continue;
    }
    // The read observes the state machine: it must be the history through `applied`.
    const size_t end = history_text_end_[node.applied];
    if (node.state.size() != end || history_text_.compare(0, end, node.state) != 0) {
      Violation(absl::StrCat("read ", it->context, " on node ", node.id,
                             " observed a state that is not the committed history through ",
                             node.applied));
      return;
    }
    ++result_.stats.reads_served;
    it = reads.erase(it);
  }
}

// ---- Network ----

void Simulator::Send(Node& from, Message m) {
  if (m.to == from.id) {
    from.deferred.push_back({.kind = Deferred::Kind::kStep, .message = std::move(m)});
    return;
  }
  if (Chance(drop_rate_)) {
    Record({.tick = now_,
            .kind = EventKind::kDrop,
            .type = m.type,
            .detail = 0,
            .node = m.from,
            .peer = m.to,
            .term = m.term,
            .index = m.index});
    ++result_.stats.messages_dropped;
    if (m.type == MessageType::kSnap) {
      from.deferred.push_back(
          {.kind = Deferred::Kind::kSnapshotStatus, .peer = m.to, .failed = true});
    }
    return;
  }
  // A duplicated proposal would commit twice; clients deduplicate, which is not the core's job.
  if (m.type != MessageType::kProp && Chance(scenario_.duplicate_rate)) {
    network_[(now_ + Uniform(network_.size())) % network_.size()].push_back(
        InFlight{m, from.incarnation});
  }
  network_[(now_ + Uniform(network_.size())) % network_.size()].push_back(
      InFlight{std::move(m), from.incarnation});
}

void Simulator::Deliver(InFlight flight) {
  Message& m = flight.message;
  Node* to = FindNode(m.to);
  Node* from = FindNode(m.from);
  const bool sender_live =
      from != nullptr && from->live() && from->incarnation == flight.sender_incarnation;
  const bool down = to == nullptr || !to->live();
  if (down || IsCut(m.from, m.to)) {
    Record({.tick = now_,
            .kind = EventKind::kDrop,
            .type = m.type,
            .detail = static_cast<uint8_t>(down ? 2 : 1),
            .node = m.from,
            .peer = m.to,
            .term = m.term,
            .index = m.index});
    ++result_.stats.messages_dropped;
    if (sender_live) {
      from->deferred.push_back({.kind = Deferred::Kind::kUnreachable, .peer = m.to});
      if (m.type == MessageType::kSnap) {
        from->deferred.push_back(
            {.kind = Deferred::Kind::kSnapshotStatus, .peer = m.to, .failed = true});
      }
      Drive(*from);
    }
    return;
  }
  Record({.tick = now_,
          .kind = EventKind::kDeliver,
          .type = m.type,
          .reject = m.reject,
          .node = m.from,
          .peer = m.to,
          .term = m.term,
          .index = m.index,
          .log_term = m.log_term,
          .commit = m.commit,
          .count = m.entries.size(),
          .extra = m.reject_hint});
  ++result_.stats.messages_delivered;
  const MessageType type = m.type;
  const uint64_t to_id = m.to;
  (void)to->raw->Step(std::move(m));
  to->raw->CheckInvariants();
  Drive(*to);
  if (type == MessageType::kSnap && sender_live && from->live() && !failed()) {
    from->deferred.push_back({.kind = Deferred::Kind::kSnapshotStatus, .peer = to_id});
    Drive(*from);
  }
}

bool Simulator::IsCut(uint64_t from, uint64_t to) const {
  if (from == kNone || to == kNone || from > kMaxNodes || to > kMaxNodes) return false;
  return (cut_mask_ & CutBit(from, to)) != 0;
}

void Simulator::ChangePartition() {
  std::vector<uint64_t> ids;
  for (const auto& [id, node] : nodes_) {
    if (!node.decommissioned) ids.push_back(id);
  }
  const Node* leader = Leader();
  const uint64_t x = leader != nullptr && Chance(0.5) ? leader->id : ids[Uniform(ids.size())];
  auto cut_both = [&](const std::vector<uint64_t>& side) {
    for (uint64_t a : ids) {
      for (uint64_t b : ids) {
        if (Contains(side, a) != Contains(side, b)) cut_mask_ |= CutBit(a, b);
      }
    }
  };
  switch (Uniform(6)) {
    case 0:
    case 1:  // heal
      cut_mask_ = 0;
      break;
    case 2: {  // split into two random sides
      cut_mask_ = 0;
      std::vector<uint64_t> side;
      for (uint64_t id : ids) {
        if (Chance(0.5)) side.push_back(id);
      }
      cut_both(side);
      break;
    }
    case 3:  // isolate one node
      cut_mask_ = 0;
      cut_both({x});
      break;
    case 4:  // one node can only send, or only receive
      cut_mask_ = 0;
      {
        const bool outbound = Chance(0.5);
        for (uint64_t id : ids) {
          if (id != x) cut_mask_ |= outbound ? CutBit(x, id) : CutBit(id, x);
        }
      }
      break;
    case 5: {  // one more one-way link
      const uint64_t y = ids[Uniform(ids.size())];
      if (x != y) cut_mask_ |= CutBit(x, y);
      break;
    }
  }
  Record({.tick = now_, .kind = EventKind::kPartition, .extra = cut_mask_});
}

// ---- Client workload ----

void Simulator::ProposeCommand() {
  Node* target = Chance(0.7) ? Leader() : nullptr;
  if (target == nullptr) target = RandomLiveNode();
  if (target == nullptr) return;
  // Sometimes a batch: one append message carries all of it.
  const size_t count = Chance(0.2) ? 2 + Uniform(3) : 1;
  std::vector<std::string> payloads;
  for (size_t i = 0; i < count; ++i) {
    const int client = static_cast<int>(Uniform(kClients));
    payloads.push_back(absl::StrCat("c", client, "-", ++client_counters_[client]));
  }
  const absl::Status s =
      count == 1 ? target->raw->Propose(payloads[0]) : target->raw->ProposeBatch(payloads);
  target->raw->CheckInvariants();
  for (std::string& payload : payloads) {
    Record({.tick = now_,
            .kind = EventKind::kPropose,
            .detail = s.ok(),
            .node = target->id,
            .count = count,
            .text = payload});
    if (s.ok()) target->proposals.insert(std::move(payload));
  }
  Drive(*target);
}

void Simulator::StartRead() {
  Node* target = Chance(0.5) ? Leader() : nullptr;
  if (target == nullptr) target = RandomLiveNode();
  if (target == nullptr) return;
  std::string context = absl::StrCat("r", ++next_read_);
  reads_[context] = PendingRead{target->id, now_, acked_watermark_};
  Record({.tick = now_,
          .kind = EventKind::kRead,
          .node = target->id,
          .index = acked_watermark_,
          .text = context});
  target->raw->ReadIndex(std::move(context));
  target->raw->CheckInvariants();
  Drive(*target);
}

void Simulator::ProposeMembershipChange() {
  Node* leader = Leader();
  if (leader == nullptr) return;
  const ConfState cs = leader->raw->GetStatus().conf_state;
  std::vector<ConfChange> options;
  if (next_node_id_ <= kMaxNodes) {
    options.push_back(MakeConfChange(ConfChangeType::kAddLearnerNode, next_node_id_));
  }
  for (uint64_t id : cs.learners) {
    options.push_back(MakeConfChange(ConfChangeType::kAddNode, id));
    options.push_back(MakeConfChange(ConfChangeType::kRemoveNode, id));
  }
  if (cs.voters.size() > 3) {
    for (uint64_t id : cs.voters) {
      options.push_back(MakeConfChange(ConfChangeType::kRemoveNode, id));
    }
  }
  if (options.empty()) return;
  const ConfChange cc = options[Uniform(options.size())];
  const absl::Status s = leader->raw->ProposeConfChange(cc);
  leader->raw->CheckInvariants();
  Record({.tick = now_,
          .kind = EventKind::kConfChange,
          .detail = s.ok(),
          .node = leader->id,
          .text = DescribeConfChange(cc)});
  Drive(*leader);
  if (s.ok() && cc.type == ConfChangeType::kAddLearnerNode && cc.node_id == next_node_id_) {
    ++next_node_id_;
    Node& added = AddNode(cc.node_id, /*initial=*/false);
    Record({.tick = now_, .kind = EventKind::kNodeAdded, .node = added.id});
    StartNode(added);
  }
}

void Simulator::TransferLeader() {
  Node* target = Chance(0.7) ? Leader() : nullptr;
  if (target == nullptr) target = RandomLiveNode();
  if (target == nullptr) return;
  std::vector<uint64_t> others;
  for (const auto& [id, node] : nodes_) {
    if (id != target->id && !node.decommissioned) others.push_back(id);
  }
  if (others.empty()) return;
  const uint64_t transferee = others[Uniform(others.size())];
  Record({.tick = now_, .kind = EventKind::kTransfer, .node = target->id, .peer = transferee});
  target->raw->TransferLeadership(transferee);
  target->raw->CheckInvariants();
  Drive(*target);
}

void Simulator::MaybeProposeProbe() {
  if (!probes_.empty() &&
      now_ - probe_proposed_at_ < 2 * static_cast<uint64_t>(scenario_.election_tick)) {
    return;
  }
  Node* leader = Leader();
  if (leader == nullptr) return;
  std::string payload = absl::StrCat("probe-", ++next_probe_);
  const absl::Status s = leader->raw->Propose(payload);
  leader->raw->CheckInvariants();
  Record({.tick = now_,
          .kind = EventKind::kProbe,
          .detail = s.ok(),
          .node = leader->id,
          .text = payload});
  if (s.ok()) {
    probes_.push_back(std::move(payload));
    probe_proposed_at_ = now_;
  }
  Drive(*leader);
}

bool Simulator::ProbeCommitted() {
  for (const std::string& probe : probes_) {
    auto it = committed_payloads_.find(probe);
    if (it == committed_payloads_.end()) continue;
    const uint64_t index = it->second;
    const ConfState conf = CommittedConfAt(index);
    size_t applied = 0;
    for (uint64_t id : conf.voters) {
      const Node* node = FindNode(id);
      applied += node != nullptr && node->live() && node->applied >= index;
    }
    if (applied >= conf.voters.size() / 2 + 1) return true;
  }
  return false;
}

// ---- Checkers ----

// Acknowledgements promise durable state; Ready.messages may leave before the Ready is
// persisted, so they must not carry any.
void Simulator::CheckOutgoing(const Node& node, const Message& m) {
  if (m.type == MessageType::kVoteResp && !m.reject) {
    const HardState hs = node.storage->GetInitialState()->hard_state;
    if (hs.term != m.term || hs.vote != m.to) {
      Violation(absl::StrCat("node ", node.id, " granted its vote to ", m.to, " in term ", m.term,
                             " before the vote was durable (durable term ", hs.term, ", vote ",
                             hs.vote, ")"));
      return;
    }
    auto [it, inserted] = votes_.emplace(std::make_pair(node.id, m.term), m.to);
    if (!inserted && it->second != m.to) {
      Violation(absl::StrCat("node ", node.id, " voted for both ", it->second, " and ", m.to,
                             " in term ", m.term));
    }
  }
  if (m.type == MessageType::kAppResp && !m.reject && m.index > node.storage->LastIndex()) {
    Violation(absl::StrCat("node ", node.id, " acknowledged index ", m.index, " to ", m.to,
                           " before it was durable (durable last index ", node.storage->LastIndex(),
                           ")"));
  }
}

// Log matching, incrementally: an entry's (index, term) determines its payload and the term of
// the entry before it, across all nodes and all time.
void Simulator::CheckDurableEntries(const Node& node, const std::vector<Entry>& entries) {
  const MemoryStorage& storage = *node.storage;
  std::optional<uint64_t> prev_term;
  bool first = true;
  for (const Entry& e : entries) {
    if (e.index < storage.FirstIndex()) continue;
    if (first) {
      absl::StatusOr<uint64_t> t = storage.Term(e.index - 1);
      if (t.ok()) prev_term = *t;
      first = false;
    }
    if (prev_term && e.term < *prev_term) {
      Violation(absl::StrCat("node ", node.id, " persisted ", DescribeEntry(e),
                             " after an entry of term ", *prev_term));
      return;
    }
    auto [it, inserted] =
        log_records_.emplace(std::make_pair(e.index, e.term), LogRecord{e.type, e.data, prev_term});
    if (!inserted) {
      const LogRecord& r = it->second;
      if (r.type != e.type || !(r.data == e.data)) {
        Violation(absl::StrCat("log matching: node ", node.id, " persisted ", DescribeEntry(e),
                               " but another node holds a different entry with that index "
                               "and term"));
        return;
      }
      if (r.prev_term && prev_term && *r.prev_term != *prev_term) {
        Violation(absl::StrCat("log matching: node ", node.id, " persisted ", DescribeEntry(e),
                               " after term ", *prev_term, " but another node holds it after term ",
                               *r.prev_term));
        return;
      }
      if (!r.prev_term && prev_term) it->second.prev_term = prev_term;
    }
    prev_term = e.term;
  }
}

void Simulator::CheckHardState(const Node& node, const HardState& hs) {
  const HardState old = node.storage->GetInitialState()->hard_state;
  if (hs.term < old.term) {
    Violation(
        absl::StrCat("node ", node.id, " persisted term ", hs.term, " after term ", old.term));
  } else if (hs.term == old.term && old.vote != kNone && hs.vote != old.vote) {
    Violation(absl::StrCat("node ", node.id, " changed its durable vote in term ", hs.term,
                           " from ", old.vote, " to ", hs.vote));
  } else if (hs.commit < old.commit) {
    Violation(
        absl::StrCat("node ", node.id, " persisted commit ", hs.commit, " after ", old.commit));
  } else if (hs.commit > node.storage->LastIndex()) {
    Violation(absl::StrCat("node ", node.id, " persisted commit ", hs.commit,
                           " beyond its durable log (last index ", node.storage->LastIndex(), ")"));
  }
}

void Simulator::CheckLeaderCompleteness(const Node& node) {
  if (failed()) return;
  const MemoryStorage& storage = *node.storage;
  const uint64_t committed = history_.size();
  const uint64_t last = storage.LastIndex();
  if (last < committed) {
    Violation(absl::StrCat("leader completeness: node ", node.id, " became leader of term ",
                           node.leader_term, " with its log ending at ", last, ", but index ",
                           committed, " has been applied"));
    return;
  }
  for (uint64_t i = std::max<uint64_t>(storage.FirstIndex(), 1); i <= committed; ++i) {
    const absl::StatusOr<uint64_t> term = storage.Term(i);
    if (!term.ok() || *term != history_[i - 1].term) {
      Violation(absl::StrCat("leader completeness: node ", node.id, " became leader of term ",
                             node.leader_term, " without the committed ",
                             DescribeEntry(history_[i - 1]), " (it holds term ",
                             term.ok() ? absl::StrCat(*term) : "none", ")"));
      return;
    }
  }
}

// Raft §5.4.2: a leader commits by counting replicas only entries of its own term (earlier ones
// commit with them). Committing an older entry by counting loses it in the paper's Figure 8.
void Simulator::CheckLeaderCommit(const Node& node, uint64_t prev_commit, const HardState& hs) {
  if (failed() || hs.empty() || hs.commit <= prev_commit) return;
  const absl::StatusOr<uint64_t> term = node.storage->Term(hs.commit);
  if (term.ok() && *term != hs.term) {
    Violation(absl::StrCat("leader commit rule: node ", node.id, ", leader of term ", hs.term,
                           ", advanced its commit index to ", hs.commit, " whose entry has term ",
                           *term));
  }
}

// State machine safety and durability: the first application of an index defines it for ever.
void Simulator::RecordHistory(const Node& node, const Entry& e) {
  if (e.index <= history_.size()) {
    const Entry& h = history_[e.index - 1];
    if (!(h == e)) {
      Violation(absl::StrCat("state machine safety: node ", node.id, " applied ", DescribeEntry(e),
                             " where ", DescribeEntry(h), " was applied before"));
    }
    return;
  }
  if (e.index != history_.size() + 1) {
    Violation(absl::StrCat("node ", node.id, " applied index ", e.index,
                           " but the history ends at ", history_.size()));
    return;
  }
  history_.push_back(e);
  history_text_ += StateLine(e);
  history_text_end_.push_back(history_text_.size());
  if (e.type == EntryType::kNormal) {
    if (e.data.empty()) return;
    auto [it, inserted] = committed_payloads_.emplace(PayloadString(e.data), e.index);
    if (!inserted) {
      Violation(absl::StrCat("durability: proposal \"", it->first, "\" committed twice, at ",
                             it->second, " and ", e.index));
    }
    return;
  }
  ConfChange cc;
  if (!ConfChange::Decode(e.data.view(), &cc)) {
    Violation(absl::StrCat("committed a malformed conf change ", DescribeEntry(e)));
    return;
  }
  committed_conf_changes_.emplace_back(e.index, cc);
  ++result_.stats.conf_changes_committed;
  if (cc.type == ConfChangeType::kRemoveNode) to_decommission_.push_back(cc.node_id);
}

// A state restored from a snapshot (received, or on restart) is the history's prefix.
void Simulator::CheckRestoredState(const Node& node, const Snapshot& snap) {
  const SnapshotMetadata& meta = snap.metadata;
  if (meta.index > history_.size() || history_[meta.index - 1].term != meta.term) {
    Violation(absl::StrCat("node ", node.id, " restored a snapshot at (index ", meta.index,
                           ", term ", meta.term, ") that is not in the committed history"));
    return;
  }
  const size_t end = history_text_end_[meta.index];
  const std::string_view data = snap.data.view();
  if (data.size() != end || history_text_.compare(0, end, data.data(), data.size()) != 0) {
    Violation(absl::StrCat("node ", node.id, " restored a snapshot at ", meta.index,
                           " whose data is not the committed history through ", meta.index));
    return;
  }
  const ConfState expected = CommittedConfAt(meta.index);
  if (!(SortedConf(meta.conf_state) == expected)) {
    Violation(absl::StrCat("node ", node.id, " restored a snapshot at ", meta.index,
                           " with membership ", DescribeConf(meta.conf_state), " instead of ",
                           DescribeConf(expected)));
  }
}

ConfState Simulator::CommittedConfAt(uint64_t index) const {
  ConfState cs;  // the bootstrap entries at the head of the history make the genesis one
  for (const auto& [i, cc] : committed_conf_changes_) {
    if (i > index) break;
    ApplyConfChange(cc, &cs);
  }
  return cs;
}

// Membership safety. Each live node's configuration must be what its log spells out, and the
// voter sets of the nodes that may still lead must have intersecting majorities. A node whose
// configuration a committed one superseded, or whose log conflicts with the committed log,
// cannot win an election, so its (legitimately old) configuration is left out.
void Simulator::CheckMembership() {
  struct Member {
    const Node* node;
    std::vector<uint64_t> voters;
  };
  std::vector<Member> members;
  uint64_t commit = 0;
  const Node* committer = nullptr;
  for (const auto& [id, node] : nodes_) {
    if (!node.live()) continue;
    raft::Status st = node.raw->GetStatus();
    const ConfState conf = SortedConf(std::move(st.conf_state));
    const ConfState expected = node.conf_log.Current();
    if (!(conf == expected)) {
      Violation(absl::StrCat("membership: node ", id, " uses ", DescribeConf(conf),
                             " but its log spells out ", DescribeConf(expected)));
      return;
    }
    if (st.hard_state.commit > commit) {
      commit = st.hard_state.commit;
      committer = &node;
    }
    if (Contains(conf.voters, id)) members.push_back({&node, conf.voters});
  }
  // The single-server rule: a leader proposes a change only once the previous one committed, so
  // no log holds two changes beyond the highest commit index any node has known.
  max_commit_seen_ = std::max(max_commit_seen_, commit);
  for (const auto& [id, node] : nodes_) {
    if (!node.live()) continue;
    const auto& changes = node.conf_log.changes;
    const size_t uncommitted = std::count_if(
        changes.begin(), changes.end(), [&](const auto& c) { return c.first > max_commit_seen_; });
    if (uncommitted > 1) {
      Violation(absl::StrCat("membership: node ", id, "'s log holds ", uncommitted,
                             " membership changes beyond the commit index ", max_commit_seen_));
      return;
    }
  }
  auto all_intersect = [&members]() -> std::optional<std::pair<size_t, size_t>> {
    for (size_t i = 0; i < members.size(); ++i) {
      for (size_t j = i + 1; j < members.size(); ++j) {
        if (!MajoritiesIntersect(members[i].voters, members[j].voters)) return {{i, j}};
      }
    }
    return std::nullopt;
  };
  if (!all_intersect()) return;

  // The slow path: leave out the nodes that can no longer lead, then look again.
  uint64_t committed_conf_index =
      committed_conf_changes_.empty() ? 0 : committed_conf_changes_.back().first;
  if (committer != nullptr && commit > history_.size()) {
    absl::StatusOr<std::vector<Entry>> ents =
        committer->storage->Entries(history_.size() + 1, commit + 1, UINT64_MAX);
    if (ents.ok()) {
      for (const Entry& e : *ents) {
        if (e.type == EntryType::kConfChange) committed_conf_index = e.index;
      }
    }
  }
  members.erase(std::remove_if(members.begin(), members.end(),
                               [&](const Member& m) {
                                 return !MayStillLead(*m.node, committed_conf_index, committer,
                                                      commit);
                               }),
                members.end());
  if (auto pair = all_intersect()) {
    const Member& a = members[pair->first];
    const Member& b = members[pair->second];
    Violation(absl::StrCat("membership: node ", a.node->id, " (voters ", JoinIds(a.voters),
                           ") and node ", b.node->id, " (voters ", JoinIds(b.voters),
                           ") could form disjoint majorities"));
  }
}

bool Simulator::MayStillLead(const Node& node, uint64_t committed_conf_index, const Node* committer,
                             uint64_t commit) const {
  if (node.conf_log.CurrentIndex() < committed_conf_index) return false;
  const MemoryStorage& storage = *node.storage;
  const uint64_t hi = std::min(storage.LastIndex(), commit);
  for (uint64_t i = std::max<uint64_t>(storage.FirstIndex(), 1); i <= hi; ++i) {
    absl::StatusOr<uint64_t> committed_term;
    if (i <= history_.size()) {
      committed_term = history_[i - 1].term;
    } else {
      committed_term = committer->storage->Term(i);
    }
    const absl::StatusOr<uint64_t> term = storage.Term(i);
    if (committed_term.ok() && term.ok() && *committed_term != *term) return false;
  }
  return true;
}

// Log matching over all durable logs: where two logs hold an entry with the same index and
// term, they hold the same entries before it.
void Simulator::CheckLogMatchingPairwise() {
  struct Log {
    uint64_t id;
    uint64_t first;
    std::vector<Entry> entries;
  };
  std::vector<Log> logs;
  for (const auto& [id, node] : nodes_) {
    const MemoryStorage& s = *node.storage;
    Log log{id, s.FirstIndex(), {}};
    if (s.FirstIndex() <= s.LastIndex()) {
      log.entries = *s.Entries(s.FirstIndex(), s.LastIndex() + 1, UINT64_MAX);
    }
    logs.push_back(std::move(log));
  }
  for (size_t i = 0; i < logs.size(); ++i) {
    for (size_t j = i + 1; j < logs.size(); ++j) {
      const Log& a = logs[i];
      const Log& b = logs[j];
      const uint64_t lo = std::max(a.first, b.first);
      const uint64_t hi = std::min(a.first + a.entries.size(), b.first + b.entries.size());
      uint64_t match = 0;  // the highest index both hold with the same term
      for (uint64_t k = lo; k < hi; ++k) {
        if (a.entries[k - a.first].term == b.entries[k - b.first].term) match = k;
      }
      for (uint64_t k = lo; k <= match; ++k) {
        const Entry& ea = a.entries[k - a.first];
        const Entry& eb = b.entries[k - b.first];
        if (!(ea == eb)) {
          Violation(absl::StrCat("log matching: nodes ", a.id, " and ", b.id, " agree at index ",
                                 match, " but hold ", DescribeEntry(ea), " and ",
                                 DescribeEntry(eb)));
          return;
        }
      }
    }
  }
}

void Simulator::CheckAcknowledgedWrites() {
  std::map<std::string, int> count;
  for (const Entry& e : history_) {
    if (e.type == EntryType::kNormal && !e.data.empty()) ++count[PayloadString(e.data)];
  }
  for (const auto& [payload, index] : acked_) {
    auto it = count.find(payload);
    if (it == count.end() || it->second != 1) {
      Violation(absl::StrCat("durability: acknowledged write \"", payload, "\" (index ", index,
                             ") appears ", it == count.end() ? 0 : it->second,
                             " times in the final history"));
      return;
    }
    if (PayloadString(history_[index - 1].data) != payload) {
      Violation(absl::StrCat("durability: acknowledged write \"", payload, "\" at index ", index,
                             " was replaced by ", DescribeEntry(history_[index - 1])));
      return;
    }
  }
}

// ---- Randomness and the trace ----

bool Simulator::Chance(double p) { return p > 0 && (rng_() >> 11) * 0x1.0p-53 < p; }

void Simulator::Record(const Event& e) {
  ++result_.events;
  uint64_t& h = result_.trace_hash;
  auto mix = [&h](uint64_t v) {
    h = (h ^ v) * 0x100000001b3ull;
    h ^= h >> 29;
  };
  for (uint64_t v :
       {e.tick, uint64_t(e.kind) << 16 | uint64_t(e.type) << 8 | e.detail, uint64_t(e.reject),
        e.node, e.peer, e.term, e.index, e.log_term, e.commit, e.count, e.extra}) {
    mix(v);
  }
  for (char c : e.text) mix(static_cast<unsigned char>(c));
  if (options_.verbose) std::fprintf(stderr, "%s\n", Format(e).c_str());
  if (e.kind == EventKind::kDeliver && IsHeartbeat(e.type)) return;
  if (options_.trace_capacity == 0) return;
  if (ring_.size() < options_.trace_capacity) {
    ring_.push_back(e);
  } else {
    ring_[ring_next_] = e;
  }
  ring_next_ = (ring_next_ + 1) % options_.trace_capacity;
}

std::string Simulator::Format(const Event& e) const {
  const std::string t = absl::StrCat("t=", e.tick, " ");
  const char* ok = e.detail ? "" : " (rejected)";
  switch (e.kind) {
    case EventKind::kDeliver: {
      std::string out =
          absl::StrCat(t, MessageTypeName(e.type), " ", e.node, "->", e.peer, " term=", e.term,
                       " log_term=", e.log_term, " index=", e.index, " commit=", e.commit);
      if (e.count > 0) absl::StrAppend(&out, " entries=", e.count);
      if (e.reject) absl::StrAppend(&out, " reject hint=", e.extra);
      return out;
    }
    case EventKind::kDrop: {
      const char* why[] = {"random", "partition", "receiver down"};
      return absl::StrCat(t, "drop ", MessageTypeName(e.type), " ", e.node, "->", e.peer,
                          " term=", e.term, " index=", e.index, " (", why[e.detail], ")");
    }
    case EventKind::kCrash: {
      const char* where[] = {"idle", "after sending a Ready's messages, before persisting",
                             "after persisting a Ready, before applying"};
      return absl::StrCat(t, "crash node ", e.node, " (", where[e.detail], ")");
    }
    case EventKind::kStart:
      return absl::StrCat(t, "start node ", e.node, " (incarnation ", e.extra, ", term ", e.term,
                          ", commit ", e.commit, ", snapshot ", e.index, ")");
    case EventKind::kPartition: {
      if (e.extra == 0) return t + "partition healed";
      std::string out = t + "cut links:";
      for (uint64_t a = 1; a <= kMaxNodes; ++a) {
        for (uint64_t b = 1; b <= kMaxNodes; ++b) {
          if (a != b && (e.extra & CutBit(a, b))) absl::StrAppend(&out, " ", a, "->", b);
        }
      }
      return out;
    }
    case EventKind::kPropose:
      return absl::StrCat(t, "propose ", e.text, " at node ", e.node,
                          e.count > 1 ? absl::StrCat(" (batch of ", e.count, ")") : "", ok);
    case EventKind::kConfChange:
      return absl::StrCat(t, "propose conf change ", e.text, " at node ", e.node, ok);
    case EventKind::kTransfer:
      return absl::StrCat(t, "transfer leadership to ", e.peer, " (asked node ", e.node, ")");
    case EventKind::kRead:
      return absl::StrCat(t, "read ", e.text, " at node ", e.node, " (acked watermark ", e.index,
                          ")");
    case EventKind::kReadState:
      return absl::StrCat(t, "node ", e.node, " answers read ", e.text, " at index ", e.index);
    case EventKind::kLeader:
      return absl::StrCat(t, "node ", e.node, " becomes leader of term ", e.term);
    case EventKind::kSnapshotTaken:
      return absl::StrCat(t, "node ", e.node, " snapshots at ", e.index, " (term ", e.term,
                          "), compacts to ", e.extra);
    case EventKind::kSnapshotInstalled:
      return absl::StrCat(t, "node ", e.node, " installs snapshot at ", e.index, " (term ", e.term,
                          ")");
    case EventKind::kNodeAdded:
      return absl::StrCat(t, "node ", e.node, " created (joins as a learner)");
    case EventKind::kDecommission:
      return absl::StrCat(t, "node ", e.node, " removed from the cluster and stopped");
    case EventKind::kFaultsEnd:
      return t + "faults end: partitions healed, crashed nodes restart, no more drops";
    case EventKind::kProbe:
      return absl::StrCat(t, "liveness probe ", e.text, " at node ", e.node, ok);
  }
  return t + "?";
}

void Simulator::Violation(std::string what) {
  if (failed()) return;  // the first violation is the one that matters
  result_.violations.push_back(absl::StrCat("t=", now_, ": ", what));
}

SimResult RunSeed(uint64_t seed) {
  SimOptions options;
  options.seed = seed;
  return Simulator(options).Run();
}

// ---- Sweeps in child processes ----

namespace {

// Lines of a verbose replay kept for the report of a seed that killed its process.
constexpr size_t kReplayTailLines = 200;
// Verbose replays of such seeds (each costs a full run that prints every event).
constexpr size_t kMaxReplays = 5;

// What a child sends per seed: 'S' seed when it starts it, then 'F' seed trace_hash stats
// violation report when it finishes. A seed with an 'S' and no 'F' killed the child.
void PutU64(std::string* out, uint64_t v) { out->append(reinterpret_cast<const char*>(&v), 8); }
void PutString(std::string* out, const std::string& s) {
  PutU64(out, s.size());
  out->append(s);
}

void WriteAll(int fd, const std::string& data) {
  for (size_t done = 0; done < data.size();) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(3);  // the parent is gone
    done += n;
  }
}

static_assert(std::is_trivially_copyable_v<SimStats>);

[[noreturn]] void RunChild(int fd, const std::vector<uint64_t>& seeds, size_t from) {
  for (size_t i = from; i < seeds.size(); ++i) {
    std::string record = "S";
    PutU64(&record, seeds[i]);
    WriteAll(fd, record);
    const SimResult r = RunSeed(seeds[i]);
    record = "F";
    PutU64(&record, seeds[i]);
    PutU64(&record, r.trace_hash);
    record.append(reinterpret_cast<const char*>(&r.stats), sizeof r.stats);
    PutString(&record, r.ok() ? "" : r.violations.front());
    PutString(&record, r.ok() ? "" : r.Report());
    WriteAll(fd, record);
  }
  _exit(0);
}

// One child process and the share of the seeds it runs.
struct Worker {
  std::vector<uint64_t> seeds;
  size_t next = 0;                  // index of the first seed not finished
  std::optional<uint64_t> running;  // started, not finished
  pid_t pid = -1;
  int fd = -1;      // the child's records
  int err_fd = -1;  // the child's stderr: the core's last words when it aborts
  std::string buffer;
  std::string err_tail;
};

bool Spawn(Worker& w) {
  int fds[2], err[2];
  if (pipe(fds) != 0) return false;
  if (pipe(err) != 0) {
    close(fds[0]);
    close(fds[1]);
    return false;
  }
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    close(err[0]);
    dup2(err[1], STDERR_FILENO);
    RunChild(fds[1], w.seeds, w.next);
  }
  close(fds[1]);
  close(err[1]);
  if (pid < 0) {
    close(fds[0]);
    close(err[0]);
    return false;
  }
  w.pid = pid;
  w.fd = fds[0];
  w.err_fd = err[0];
  w.buffer.clear();
  w.err_tail.clear();
  return true;
}

// Reads what is available on fd into *out; false at the end of the stream.
bool ReadSome(int fd, std::string* out) {
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    out->append(buf, n);
    return true;
  }
}

// Keeps the end of the child's stderr.
void ReadStderr(Worker& w) {
  if (!ReadSome(w.err_fd, &w.err_tail)) {
    close(w.err_fd);
    w.err_fd = -1;
  }
  if (w.err_tail.size() > 4096) w.err_tail.erase(0, w.err_tail.size() - 4096);
}

std::string LastLine(std::string text) {
  while (!text.empty() && text.back() == '\n') text.pop_back();
  const size_t nl = text.rfind('\n');
  return nl == std::string::npos ? text : text.substr(nl + 1);
}

// Consumes the complete records at the front of the worker's buffer.
void Parse(Worker& w, SweepResult& out) {
  for (;;) {
    const std::string& b = w.buffer;
    size_t pos = 0;
    auto u64 = [&](uint64_t* v) {
      if (b.size() < pos + 8) return false;
      std::memcpy(v, b.data() + pos, 8);
      pos += 8;
      return true;
    };
    auto str = [&](std::string* s) {
      uint64_t n;
      if (!u64(&n) || b.size() < pos + n) return false;
      s->assign(b, pos, n);
      pos += n;
      return true;
    };
    if (b.empty()) return;
    pos = 1;
    uint64_t seed;
    if (!u64(&seed)) return;
    if (b[0] == 'S') {
      w.running = seed;
    } else {
      uint64_t hash;
      SimStats stats;
      std::string violation, report;
      if (!u64(&hash) || b.size() < pos + sizeof stats) return;
      std::memcpy(&stats, b.data() + pos, sizeof stats);
      pos += sizeof stats;
      if (!str(&violation) || !str(&report)) return;
      out.total.Add(stats);
      out.trace_hashes[seed] = hash;
      if (!violation.empty()) out.failures.push_back({seed, violation, report});
      w.running.reset();
      ++w.next;
    }
    w.buffer.erase(0, pos);
  }
}

std::string DescribeExit(int status) {
  if (WIFSIGNALED(status)) {
    return absl::StrCat("the process died of signal ", WTERMSIG(status), " (",
                        strsignal(WTERMSIG(status)), ")");
  }
  return absl::StrCat("the process exited with status ", WEXITSTATUS(status));
}

// Replays a seed verbosely in a child and returns the last lines it printed: the events before
// the process died, and the core's own last words.
std::string ReplayTail(uint64_t seed) {
  int fds[2];
  if (pipe(fds) != 0) return "(replay failed: no pipe)\n";
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], STDERR_FILENO);
    SimOptions options;
    options.seed = seed;
    options.verbose = true;
    Simulator(options).Run();
    _exit(0);
  }
  close(fds[1]);
  std::deque<std::string> lines;
  std::string partial;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    partial.append(buf, n);
    size_t start = 0;
    for (size_t nl; (nl = partial.find('\n', start)) != std::string::npos; start = nl + 1) {
      lines.push_back(partial.substr(start, nl - start));
      if (lines.size() > kReplayTailLines) lines.pop_front();
    }
    partial.erase(0, start);
  }
  close(fds[0]);
  if (pid > 0) waitpid(pid, nullptr, 0);
  if (!partial.empty()) lines.push_back(partial);
  std::string out;
  for (const std::string& line : lines) absl::StrAppend(&out, "  ", line, "\n");
  return out;
}

}  // namespace

SweepResult RunSweep(uint64_t first, uint64_t last, int jobs) {
  SweepResult out;
  if (last < first) return out;
  out.seeds = last - first + 1;
  jobs = static_cast<int>(std::clamp<uint64_t>(jobs, 1, out.seeds));
  std::vector<Worker> workers(jobs);
  for (uint64_t seed = first; seed <= last; ++seed) {
    workers[(seed - first) % jobs].seeds.push_back(seed);
  }
  auto fail_running = [&](Worker& w, const std::string& why) {
    // A child that died between seeds takes the blame for the next one, so that the sweep
    // always moves on.
    out.failures.push_back({w.running.value_or(w.seeds[w.next]), why, ""});
    w.running.reset();
    ++w.next;
  };
  auto spawn = [&](Worker& w) {
    if (Spawn(w)) return;
    while (w.next < w.seeds.size()) fail_running(w, "fork failed");
  };
  for (Worker& w : workers) spawn(w);

  for (;;) {
    std::vector<pollfd> fds;
    std::vector<Worker*> polled;
    for (Worker& w : workers) {
      if (w.fd < 0) continue;
      fds.push_back({w.fd, POLLIN, 0});
      polled.push_back(&w);
      if (w.err_fd < 0) continue;
      fds.push_back({w.err_fd, POLLIN, 0});
      polled.push_back(&w);
    }
    if (fds.empty()) break;
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      Worker& w = *polled[i];
      if (fds[i].fd == w.err_fd) {
        ReadStderr(w);
        continue;
      }
      if (fds[i].fd != w.fd) continue;  // closed earlier in this round
      if (ReadSome(w.fd, &w.buffer)) {
        Parse(w, out);
        continue;
      }
      // The child is gone: collect its last words and its exit status.
      close(w.fd);
      w.fd = -1;
      while (w.err_fd >= 0) ReadStderr(w);
      int status = 0;
      waitpid(w.pid, &status, 0);
      const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!clean && w.next < w.seeds.size()) {
        const std::string last_words = LastLine(w.err_tail);
        fail_running(w, last_words.empty() ? DescribeExit(status)
                                           : absl::StrCat(DescribeExit(status), ": ", last_words));
      }
      if (w.next < w.seeds.size()) spawn(w);
      break;  // fds may have been reused by the new child: poll again
    }
  }

  std::sort(out.failures.begin(), out.failures.end(),
            [](const SweepFailure& a, const SweepFailure& b) { return a.seed < b.seed; });
  size_t replays = 0;
  for (SweepFailure& f : out.failures) {
    if (!f.report.empty() || replays++ >= kMaxReplays) continue;
    std::mt19937_64 rng(f.seed);
    f.report =
        absl::StrCat("seed ", f.seed, ": ", Scenario::FromRandom(rng).Describe(), "\nVIOLATION ",
                     f.violation, "\nlast lines of a verbose replay:\n", ReplayTail(f.seed));
  }
  return out;
}

}  // namespace swarm::raft::sim

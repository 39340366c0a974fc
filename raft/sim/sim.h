// A deterministic simulation of a Raft cluster built on RawNode, for property testing the core.
//
// One Simulator runs one seed: 3 or 5 voters bootstrapped from BootstrapEntries (sometimes with
// learners added, promoted and removed at run time; an added node starts with an empty log and
// a removed one is stopped once its removal commits) on virtual time; a network that delays,
// drops, duplicates and reorders messages and cuts any set of links, also one way; crashes that
// lose everything not persisted (also between sending a Ready's messages and persisting it)
// and restarts from what was persisted; snapshots and log compaction; and a client workload of
// proposals (single and batched), membership changes, leadership transfers and ReadIndex reads.
// Every random choice comes from one std::mt19937_64 seeded with the seed, and nothing reads
// the wall clock, so a seed replays the same run exactly.
//
// The run has two phases. In the fault phase everything above happens at rates drawn from the
// seed (swarm testing: each kind of fault is on or off per seed). Then faults end (partitions
// heal, crashed nodes restart, nothing is dropped) and the cluster must commit a new proposal
// within a bounded number of ticks.
//
// Checkers (the first violation ends the run and is reported with the last events):
//   - election safety: at most one leader per term;
//   - log matching: entries with the same index and term have the same payload and the same
//     predecessor, in every node's durable log (checked as entries are persisted, and pairwise
//     over all durable logs at the end);
//   - leader completeness: a new leader's log holds every entry applied anywhere so far, and a
//     leader commits by counting only entries of its own term (Raft §5.4.2, Figure 8);
//   - state machine safety: every node applies a prefix of one global history, contiguously;
//     state restored from a snapshot is exactly that prefix;
//   - durability: the history never changes; each proposal commits at most once; every
//     acknowledged proposal is in the final history exactly once; applied entries are durable;
//     acknowledgements (append and vote responses) only leave once what they promise is durable;
//     a node never grants its vote to two candidates in one term, even across crashes;
//   - linearizable reads: a ReadIndex answer covers every write acknowledged before the read;
//   - membership: each node's configuration is the one its log spells out; no log holds two
//     changes beyond the highest known commit index; the voter sets of all live nodes that may
//     still lead have intersecting majorities;
//   - liveness: after the fault phase a proposal commits within 20 election timeouts.
// RawNode::CheckInvariants() runs after every input to a node.
//
// Invariant the checkers rely on: between two inputs, no live node has a Ready pending (each
// input is followed by Drive()), so a live node's durable storage is its whole log.
//
// Thread-safety: none; a Simulator is driven by one thread. Separate Simulators share nothing.
// RunSweep runs many seeds in child processes, so that a core that stops the process on a
// broken invariant costs one seed.
#ifndef SWARM_RAFT_SIM_SIM_H_
#define SWARM_RAFT_SIM_SIM_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "raft/raw_node.h"
#include "raft/storage.h"
#include "raft/types.h"

namespace swarm::raft::sim {

// Node IDs run from 1 to kMaxNodes (the initial voters first, then nodes added at run time).
inline constexpr uint64_t kMaxNodes = 8;

// What one run exercises. Drawn from the seed, so that each seed tests a different mix.
struct Scenario {
  int voters = 3;
  // The nodes' Config.
  int election_tick = 10;
  int heartbeat_tick = 1;
  bool check_quorum = true;
  bool pre_vote = true;
  uint64_t max_size_per_msg = 1 << 20;
  int max_inflight_msgs = 256;
  // Config.max_uncommitted_entries_size: the client back-pressure that keeps the backlog ahead
  // of the liveness probe bounded.
  uint64_t max_uncommitted_bytes = 0;
  // Network: each message is delayed by 0..max_delay ticks.
  int max_delay = 3;
  double drop_rate = 0;
  double duplicate_rate = 0;
  // Per tick: a partition change, a crash of an idle node.
  double partition_rate = 0;
  double crash_rate = 0;
  // Per Ready that persists something: a crash after its messages left but before it is
  // durable, or after it is durable but before it is applied.
  double ready_crash_rate = 0;
  // At most this many nodes are down at once.
  int max_down = 1;
  // Client workload, per tick.
  double propose_rate = 0.5;
  double read_rate = 0;
  double transfer_rate = 0;
  double conf_change_rate = 0;
  // Entries applied between two snapshots of a node (0 = never), and how many entries below
  // the snapshot the log keeps for slow followers.
  int snapshot_interval = 0;
  int compaction_margin = 0;
  // Length of the fault phase.
  int fault_ticks = 150;

  static Scenario FromRandom(std::mt19937_64& rng);
  std::string Describe() const;
};

struct SimOptions {
  uint64_t seed = 1;
  // Events kept for the report of a violation.
  size_t trace_capacity = 200;
  // Prints every event to stderr as it happens (for replaying one seed).
  bool verbose = false;
};

// What happened in a run, to see that the simulation exercises the core.
struct SimStats {
  uint64_t ticks = 0;
  uint64_t messages_delivered = 0;
  uint64_t messages_dropped = 0;
  uint64_t leaders_elected = 0;
  uint64_t crashes = 0;
  uint64_t proposals_acked = 0;
  uint64_t reads_served = 0;
  uint64_t snapshots_taken = 0;
  uint64_t snapshots_installed = 0;
  uint64_t conf_changes_committed = 0;
  uint64_t history_length = 0;
  uint64_t liveness_ticks = 0;  // ticks from the end of faults to the first committed probe

  void Add(const SimStats& other);
  std::string Describe() const;
};

struct SimResult {
  uint64_t seed = 0;
  std::string scenario;
  // Empty when every check passed; otherwise the first violation (the run stops there).
  std::vector<std::string> violations;
  // The last events, oldest first (heartbeats left out; the verbose mode shows them).
  std::vector<std::string> trace;
  // A digest of every event of the run, to compare two runs of one seed.
  uint64_t trace_hash = 0;
  uint64_t events = 0;
  SimStats stats;

  bool ok() const { return violations.empty(); }
  // The seed, scenario, violations and trace, for a human.
  std::string Report() const;
};

class Simulator {
 public:
  explicit Simulator(const SimOptions& options);
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  // Runs the seed to its end, or to the first violation. Call once.
  SimResult Run();

 private:
  // An input handed to a node after its current Ready, never in the middle of one.
  struct Deferred {
    enum class Kind { kStep, kUnreachable, kSnapshotStatus } kind = Kind::kStep;
    Message message = {};  // kStep
    uint64_t peer = kNone;
    bool failed = false;
  };

  // The configuration a node's durable log spells out: the snapshot's membership and the
  // conf change entries after it. Mirrors the MemoryStorage as the simulator writes it.
  struct DurableConfLog {
    uint64_t base_index = 0;
    ConfState base;
    std::vector<std::pair<uint64_t, ConfChange>> changes;  // index ascending, all > base_index

    ConfState Current() const;
    // Index of the entry that set the current configuration (base_index when none after it).
    uint64_t CurrentIndex() const;
    std::string Describe() const;
  };

  static DurableConfLog ReadConfLog(const MemoryStorage& storage);

  // One node of the cluster. Its storage is what is durable; everything else but the
  // bookkeeping of durable state is lost when it crashes.
  struct Node {
    uint64_t id = kNone;
    std::unique_ptr<MemoryStorage> storage;
    DurableConfLog conf_log;
    // Null while crashed, and for good once decommissioned (removed from the cluster).
    std::unique_ptr<RawNode> raw;
    uint64_t incarnation = 0;
    bool decommissioned = false;
    uint64_t restart_at = 0;

    // Volatile state, reset by a crash.
    SoftState soft;
    uint64_t leader_term = 0;  // term in which it last became leader
    // The state machine: one line per applied command or membership change.
    std::string state;
    uint64_t applied = 0;
    ConfState applied_conf;  // membership as of `applied`
    uint64_t applied_since_snapshot = 0;
    std::set<std::string> proposals;        // own proposals awaiting their acknowledgement
    std::vector<ReadState> reads_to_serve;  // answered reads waiting for `applied`
    std::deque<Deferred> deferred;

    bool live() const { return raw != nullptr; }
  };

  struct InFlight {
    Message message;
    uint64_t sender_incarnation = 0;
  };

  struct PendingRead {
    uint64_t node = kNone;
    uint64_t started = 0;    // tick
    uint64_t watermark = 0;  // highest index of a write acknowledged before the read started
  };

  enum class EventKind : uint8_t {
    kDeliver,
    kDrop,
    kCrash,
    kStart,
    kPartition,
    kPropose,
    kConfChange,
    kTransfer,
    kRead,
    kReadState,
    kLeader,
    kSnapshotTaken,
    kSnapshotInstalled,
    kNodeAdded,
    kDecommission,
    kFaultsEnd,
    kProbe,
  };
  // One line of the trace. Fields are numbers so that recording stays cheap; `text` is only
  // set by rare events (a proposal's payload, a read's context).
  struct Event {
    uint64_t tick = 0;
    EventKind kind = EventKind::kDeliver;
    MessageType type = MessageType::kHup;
    uint8_t detail = 0;  // a reason or an outcome, per kind
    bool reject = false;
    uint64_t node = 0, peer = 0, term = 0, index = 0, log_term = 0, commit = 0, count = 0;
    uint64_t extra = 0;
    std::string text = {};
  };
  enum class CrashPoint : uint8_t { kIdle, kAfterSend, kAfterPersist };

  // Phases of a run.
  void Bootstrap();
  void RunTick(bool faults);
  void EndFaults();
  void RunLivenessPhase();
  void FinalChecks();

  // One tick's steps.
  void InjectFaults();
  void RunClients();
  void TickNodes();
  void DeliverDue();

  // Nodes.
  Node& AddNode(uint64_t id, bool initial);
  void Crash(Node& node, CrashPoint point);
  // Creates the node's RawNode from its storage: at bootstrap, when added, after a crash.
  void StartNode(Node& node);
  void Decommission(Node& node);
  void FlushDecommissions();
  Node* FindNode(uint64_t id);
  Node* Leader();
  Node* RandomLiveNode();
  int DownCount() const;
  Config MakeConfig(uint64_t id, uint64_t applied);

  // Driving a node: after every input, hand it its deferred inputs and process its Readys.
  void Drive(Node& node);
  void HandleReady(Node& node);
  bool MaybeCrashInReady(Node& node, const Ready& rd, CrashPoint point);
  void Persist(Node& node, const Ready& rd);
  void Apply(Node& node, const Entry& entry);
  void InstallSnapshot(Node& node, const Snapshot& snap);
  void MaybeTakeSnapshot(Node& node);
  void OnSoftState(Node& node, const SoftState& ss);
  void OnReadState(Node& node, const ReadState& rs);
  void ServeReads(Node& node);
  // The proposer applied its proposal: the client has its answer.
  void Acknowledge(const std::string& payload, uint64_t index);

  // Network.
  void Send(Node& from, Message m);
  void Deliver(InFlight flight);
  bool IsCut(uint64_t from, uint64_t to) const;
  void ChangePartition();

  // Client workload.
  void ProposeCommand();
  void StartRead();
  void ProposeMembershipChange();
  void TransferLeader();
  void MaybeProposeProbe();
  bool ProbeCommitted();

  // Checkers.
  void CheckOutgoing(const Node& node, const Message& m);
  void CheckDurableEntries(const Node& node, const std::vector<Entry>& entries);
  void CheckHardState(const Node& node, const HardState& hs);
  void CheckLeaderCompleteness(const Node& node);
  void CheckLeaderCommit(const Node& node, uint64_t prev_commit, const HardState& hs);
  void RecordHistory(const Node& node, const Entry& entry);
  void CheckRestoredState(const Node& node, const Snapshot& snap);
  void CheckMembership();
  bool MayStillLead(const Node& node, uint64_t committed_conf_index, const Node* committer,
                    uint64_t commit) const;
  void CheckLogMatchingPairwise();
  void CheckAcknowledgedWrites();
  ConfState CommittedConfAt(uint64_t index) const;

  // Randomness and the trace.
  uint64_t Uniform(uint64_t n) { return rng_() % n; }
  bool Chance(double p);
  void Record(const Event& e);
  std::string Format(const Event& e) const;
  void Violation(std::string what);
  bool failed() const { return !result_.violations.empty(); }

  const SimOptions options_;
  std::mt19937_64 rng_;
  Scenario scenario_;
  SimResult result_;
  uint64_t now_ = 0;
  bool faults_ = true;  // false once the fault phase is over

  std::map<uint64_t, Node> nodes_;
  ConfState genesis_;
  uint64_t next_node_id_ = 0;
  std::vector<uint64_t> to_decommission_;

  // The network: messages in flight by delivery tick modulo max_delay + 1, each slot in send
  // order; and the cut links.
  std::vector<std::deque<InFlight>> network_;
  uint64_t cut_mask_ = 0;  // bit (from-1)*kMaxNodes + (to-1) set = link cut
  double drop_rate_ = 0;

  // Checker state.
  std::map<uint64_t, uint64_t> leaders_;                     // term -> leader
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> votes_;  // (voter, term) -> candidate
  struct LogRecord {
    EntryType type;
    Payload data;
    std::optional<uint64_t> prev_term;
  };
  std::map<std::pair<uint64_t, uint64_t>, LogRecord> log_records_;  // (index, term) -> entry
  std::vector<Entry> history_;            // the committed log: history_[i - 1] has index i
  std::vector<size_t> history_text_end_;  // bytes of history_text_ through index i (at i)
  std::string history_text_;              // the state machine of the whole history
  std::vector<std::pair<uint64_t, ConfChange>> committed_conf_changes_;
  uint64_t max_commit_seen_ = 0;  // the highest commit index any node has reported
  std::map<std::string, uint64_t> committed_payloads_;  // payload -> index
  std::map<std::string, uint64_t> acked_;               // payload -> index
  uint64_t acked_watermark_ = 0;
  std::map<std::string, PendingRead> reads_;
  uint64_t next_read_ = 0;
  std::vector<uint64_t> client_counters_;

  // The liveness probes: proposals made after the faults end.
  std::vector<std::string> probes_;
  uint64_t probe_proposed_at_ = 0;
  uint64_t next_probe_ = 0;

  // The trace: a ring of the last events and a digest of all of them.
  std::vector<Event> ring_;
  size_t ring_next_ = 0;
};

// Runs one seed with the default options.
SimResult RunSeed(uint64_t seed);

// A seed that failed in a sweep.
struct SweepFailure {
  uint64_t seed = 0;
  // The first violation, or how the process died.
  std::string violation;
  // SimResult::Report(), or for a seed that killed its process the tail of a verbose replay.
  std::string report;
};

struct SweepResult {
  uint64_t seeds = 0;
  // Over the seeds that ran to their end.
  SimStats total;
  // In seed order.
  std::vector<SweepFailure> failures;
  // Seed -> SimResult::trace_hash, to compare two sweeps.
  std::map<uint64_t, uint64_t> trace_hashes;
};

// Runs seeds first..last, in `jobs` child processes at once. The core stops the process when
// one of its invariants breaks (CheckInvariants, fatal errors); in a child that costs the one
// seed, which is reported as a failure with the tail of a verbose replay, and the other seeds
// still run. The result does not depend on `jobs`.
SweepResult RunSweep(uint64_t first, uint64_t last, int jobs);

}  // namespace swarm::raft::sim

#endif  // SWARM_RAFT_SIM_SIM_H_

// Node: a replicated log that survives crashes, driven by the Raft core. It owns the core
// (RawNode), the durable log (DiskStorage, with the core reading its MemoryStorage twin), the
// Transport to the other members, and threads: a ticker, the Ready loop that persists, sends,
// applies and advances, a notifier for completions, and one that writes snapshots. Callers on any
// thread propose data, wait for linearizable reads, and change the membership; the loop does the
// rest.
//
// Proposals carry an 8-byte request ID in front of the caller's data, so the proposer can tell
// when its own entry is applied; the state machine sees the data only.
//
// Members are known by Raft ID and address; addresses travel in the conf change entries
// (RaftMember in the ConfChange context) and in snapshots (RaftSnapshotData), so every member
// learns them from the log.
//
// Snapshots are written on a thread of their own while the loop goes on persisting, sending
// and committing (heartbeats never wait for a snapshot, however large); only applying waits.
//
// Thread-safety: every public method is thread-safe. The StateMachine is called from the loop
// thread and the snapshot thread, never both at once; completion callbacks run on the
// notifier thread. Lock order: mu_ (the inbox), status_mu_ and notify_mu_ are leaves; none is
// held across I/O, a call into the state machine or a callback.
#ifndef SWARM_RAFT_NODE_H_
#define SWARM_RAFT_NODE_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/aead.h"
#include "common/clock.h"
#include "raft/disk_storage.h"
#include "raft/raw_node.h"
#include "raft/snapshot_io.h"
#include "raft/storage.h"
#include "raft/transport.h"

namespace swarm::raft {

// What the replicated state machine provides. Apply and Restore are called from the node's
// loop thread; WriteSnapshot from its snapshot thread, while neither of them runs (committed
// entries wait until the snapshot is written), so the state holds still for it.
class StateMachine {
 public:
  virtual ~StateMachine() = default;
  // Applies a committed proposal.
  virtual void Apply(uint64_t index, std::string_view data) = 0;
  // Writes the state as of the last applied entry, for a snapshot: a piece at a time, so the
  // snapshot is never held whole (it goes to disk in chunks as it is written).
  virtual absl::Status WriteSnapshot(SnapshotWriter& out) = 0;
  // Replaces the state with a snapshot's, read a piece at a time until the reader's end.
  virtual absl::Status Restore(SnapshotReader& in) = 0;
};

struct NodeConfig {
  uint64_t id = kNone;
  // This node's address as the other members dial it.
  std::string advertise_addr;
  // The log lives in state_dir/raft.
  std::string state_dir;
  // Seals the log; comes from the caller (the key manager wraps it). old_keys open records
  // sealed before a DEK rotation that a crash interrupted (see RotateDataKey).
  DataKey key;
  std::vector<DataKey> old_keys;
  // Only for a brand-new log: the initial members (ID -> address), this node included. Empty
  // for a node that joins an existing cluster and waits for the leader to add it.
  std::map<uint64_t, std::string> bootstrap_members;
  // Members known from elsewhere (ID -> address): for a node that just joined, the members the
  // join answered with, so it can answer the leader before its log names them.
  std::map<uint64_t, std::string> known_members;
  // Timing: the defaults elect a new leader within about 2 s of a leader's death.
  absl::Duration tick_interval = absl::Milliseconds(100);
  int election_ticks = 10;
  int heartbeat_ticks = 1;
  // Snapshot every this many applied entries, keeping this many behind for slow followers.
  uint64_t snapshot_interval = 10000;
  uint64_t log_entries_for_slow_followers = 500;
  // Learners become voters once caught up.
  bool auto_promote_learners = true;
  std::shared_ptr<grpc::ChannelCredentials> channel_credentials;
  // Channel arguments for dialing members (with mutual TLS: the name to check in their
  // certificates, see common/tls.h).
  grpc::ChannelArguments channel_arguments;
  // With mutual TLS: refuse Raft traffic from callers without a manager certificate.
  bool require_manager_peers = false;
  Clock* clock = &Clock::Real();
  StateMachine* state_machine = nullptr;
  // Called from the loop thread when this node gains or loses leadership.
  std::function<void(bool leader, uint64_t term)> on_leadership_change;
};

struct Member {
  uint64_t raft_id = kNone;
  std::string addr;
  friend bool operator==(const Member&, const Member&) = default;
};

struct NodeStatus {
  uint64_t id = kNone;
  uint64_t term = 0;
  uint64_t leader = kNone;
  StateType state = StateType::kFollower;
  uint64_t commit = 0;
  uint64_t applied = 0;
  ConfState conf_state;
  std::map<uint64_t, Member> members;
  // The last snapshot taken or installed.
  uint64_t snapshot_index = 0;
  // Set once this node has applied its own removal.
  bool removed = false;
  // On the leader: the members it heard from within the last election timeout (itself
  // included); empty on followers.
  std::set<uint64_t> active;
  // The ID of the key that seals new log records, and whether records sealed with older keys
  // remain (a DEK rotation not finished).
  uint32_t data_key_id = 0;
  bool old_data_keys = false;
};

class Node {
 public:
  // The largest proposal accepted. Raft messages carry at least one entry, and the transport
  // takes messages of up to kMaxMessageBytes; snapshots are streamed in chunks and have no
  // limit.
  static constexpr size_t kMaxProposalBytes = 16 << 20;
  static_assert(kMaxProposalBytes + (1 << 20) <= kMaxMessageBytes,
                "an entry of the largest proposal must fit in one transport message");

  // Opens the log in config.state_dir and restores the state machine; DATA_LOSS when the log
  // cannot be trusted.
  static absl::StatusOr<std::unique_ptr<Node>> Create(NodeConfig config);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  void Start();
  // Stops the threads; pending proposals fail with UNAVAILABLE.
  void Stop();

  // Register these on the gRPC server that listens on advertise_addr.
  grpc::Service* raft_service();
  grpc::Service* membership_service();

  // Completion of an asynchronous request. Runs on the node's notifier thread (or the caller's,
  // when the node is stopped); it should not block for long.
  using Done = std::function<void(absl::StatusOr<uint64_t>)>;

  // Proposes data; on a follower, the core forwards it to the leader. done gets the entry's
  // index once applied locally, or UNAVAILABLE (no leader known, or the leader changed or a
  // transfer was in progress: the outcome is unknown), FAILED_PRECONDITION (the core dropped
  // it, saying why) or DEADLINE_EXCEEDED (outcome unknown). The asynchronous form lets an RPC
  // server wait for many proposals without a thread each.
  void ProposeAsync(std::string data, absl::Duration timeout, Done done);
  std::future<absl::StatusOr<uint64_t>> Propose(std::string data, absl::Duration timeout);
  absl::StatusOr<uint64_t> ProposeAndWait(std::string data, absl::Duration timeout);
  // Returns once the state machine has applied everything committed before the call, as
  // confirmed by a quorum (ReadIndex).
  absl::Status LinearizableRead(absl::Duration timeout);
  void LinearizableReadAsync(absl::Duration timeout, Done done);
  // Adds a learner (promoted automatically once caught up when configured).
  absl::Status AddMember(uint64_t raft_id, const std::string& addr, absl::Duration timeout);
  absl::Status RemoveMember(uint64_t raft_id, absl::Duration timeout);
  absl::Status TransferLeadership(uint64_t to, absl::Duration timeout);

  // DEK rotation, local to this member: seals everything written from now on with next,
  // takes a snapshot (compacting the log below it), then re-seals what is left under older
  // keys. Once it returns OK the log needs next only, and the caller may drop the old keys from
  // its key store, which must hold next (and the old keys) before the call. Without next it
  // finishes a rotation that a crash interrupted (the node was created with old_keys); next
  // equal to the current key does the same, so a caller may retry. INVALID_ARGUMENT for a key
  // older than the current one. Returns the current key's ID.
  absl::StatusOr<uint32_t> RotateDataKey(std::optional<DataKey> next, absl::Duration timeout);

  NodeStatus Status() const;
  uint64_t id() const { return config_.id; }
  // Hands messages received from a peer to the loop, in order (the gRPC service calls this).
  void Deliver(std::vector<Message> messages);
  // OK when the caller may use the Raft services (see require_manager_peers).
  grpc::Status Authorize(const grpc::ServerContext& ctx) const;

 private:
  struct Waiter;
  struct Inbox;
  class RaftServiceImpl;
  class MembershipServiceImpl;

  explicit Node(NodeConfig config);
  absl::Status Load();
  void Run();
  void Tick();
  // Completions run on the notifier thread, never on the loop: a caller's callback (say, an
  // RPC answer) must not take the loop's time.
  Done OnNotifier(Done done);
  void RunNotifier();
  void HandleReady();
  void ApplyEntry(const Entry& e);
  // Restores the state machine and the members from the stored snapshot.
  absl::Status RestoreSnapshot(const SnapshotMetadata& metadata);
  // Applies a committed entry, or queues it while a snapshot is being written.
  void Commit(const Entry& e);
  // Completes linearizable reads whose index is applied.
  void FinishReads();
  // Starts writing a snapshot of the state as of applied_ on snapshotter_.
  void StartSnapshot();
  // Waits for the snapshot being written, stores it, compacts the log and applies what
  // committed meanwhile. A snapshot that could not be written is logged and retried later
  // (the error is returned too).
  absl::Status FinishSnapshot();
  // A snapshot of everything applied, stored before it returns (key rotation).
  absl::Status SnapshotNow();
  absl::StatusOr<uint64_t> RotateDataKeyInLoop(const std::optional<DataKey>& next);
  void NoteMembers(const std::vector<Entry>& entries);
  void FailAll(const absl::Status& status);
  void UpdateStatus();
  absl::Status ProposeConfChange(ConfChange cc, absl::Duration timeout);

  NodeConfig config_;
  std::unique_ptr<DiskStorage> disk_;
  MemoryStorage mem_;
  std::unique_ptr<RawNode> raw_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<RaftServiceImpl> raft_service_;
  std::unique_ptr<MembershipServiceImpl> membership_service_;

  // The inbox: everything other threads hand to the loop.
  mutable absl::Mutex mu_;
  // Signalled whenever the inbox gains something or stopping_ is set.
  absl::CondVar wake_;
  std::unique_ptr<Inbox> inbox_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_request_ ABSL_GUARDED_BY(mu_) = 0;

  mutable absl::Mutex status_mu_;
  NodeStatus status_ ABSL_GUARDED_BY(status_mu_);

  // Loop thread only.
  std::map<uint64_t, std::shared_ptr<Waiter>> proposals_;
  std::map<std::string, std::shared_ptr<Waiter>> reads_;
  std::map<uint64_t, std::shared_ptr<Waiter>> conf_changes_;  // by node ID
  std::map<uint64_t, Member> members_;
  ConfState applied_conf_;
  uint64_t applied_ = 0;
  uint64_t snapshot_index_ = 0;
  // The snapshot being written (while snapshotter_ is joinable): where it stands, and its
  // outcome, set by snapshotter_ before it tells the loop (Inbox::snapshot_written). Loop
  // thread only, but snapshot_written_ (snapshotter_'s until joined).
  uint64_t snapshot_at_ = 0;
  ConfState snapshot_conf_;
  absl::Time snapshot_started_;
  uint64_t next_snapshot_ = 0;  // after a failed one, no retry before this index
  absl::StatusOr<DiskStorage::StoredChunks> snapshot_written_;
  std::deque<Entry> unapplied_;  // committed while it is written
  bool leader_ = false;
  uint64_t lead_ = kNone;                   // the leader the core last reported
  StateType state_ = StateType::kFollower;  // the role the core last reported
  bool removed_ = false;

  std::thread loop_;
  std::thread ticker_;
  std::thread snapshotter_;

  absl::Mutex notify_mu_;
  // Callbacks to run; the notifier thread waits for them (or for stopping).
  std::vector<std::function<void()>> notify_queue_ ABSL_GUARDED_BY(notify_mu_);
  bool notifier_stopping_ ABSL_GUARDED_BY(notify_mu_) = false;
  // Once set, callbacks run on the thread that completes them.
  bool notifier_stopped_ ABSL_GUARDED_BY(notify_mu_) = false;
  std::thread notifier_;
};

}  // namespace swarm::raft

#endif  // SWARM_RAFT_NODE_H_

// Dispatcher: the leader's side of every agent's session (proto/dispatcher.proto). Agents of
// all nodes, workers and managers alike, open a session, heartbeat, report task states and
// receive their assignments here; the gRPC service (service.h) only authenticates the caller
// and passes the call on, so this class is tested without sockets.
//
// Where it runs. Only on the leader, built anew for each leadership by LeaderDispatcher under
// the LeaderRuntime; managers that do not lead relay their agents' calls to it (service.h says
// why). So heartbeat deadlines live in one place, in memory: a heartbeat is no store write,
// only the READY and DOWN transitions are.
//
// Sessions. OpenSession records the node's description and address and sets it READY (one
// write, batched with other writes), then sends the first SessionMessage: a new session ID,
// the node, the managers (WeightedPeer, weight kManagerWeight), the root CA and the overlay
// keys. Later SessionMessages follow when the node object, the manager list, the root CA or
// the keys change. A node has at most one session: a newer one ends the older one's streams
// (ABORTED). Only a node that has a node object may open one (PERMISSION_DENIED otherwise).
//
// Heartbeats. The deadline of a node is its last heartbeat (or the session's start) plus the
// grace, kGraceMultiplier heartbeat periods (ClusterSpec.dispatcher.heartbeat_period, default
// kDefaultHeartbeatPeriod). The period returned to the agent includes jitter, up to +10%
// (kJitterFraction), so that agents that started together spread out; the agent must call
// again within the returned period (it may call earlier: ours does, at 70-90% of it). A node past
// its deadline is marked DOWN ("heartbeat failure") and its streams end (UNAVAILABLE). When a
// leadership starts, every node not already DOWN gets a full grace period, as does a node that
// joins: agents reconnect after a leader change, and a healthy node is never marked DOWN for it. A
// session ID this leader does not know (expired, replaced, or from an earlier leader) gets
// NOT_FOUND with kUnknownSessionMessage: the agent starts a new session.
//
// Task status. Reports are checked by CheckTaskStatus (task_status.h) and written in batches,
// together with the queued node states: a write after a quiet spell goes at once, then what
// is queued until batch_window after the previous flush (or max_batch reports, whichever comes
// first) goes into as few transactions as possible (max_writes_per_transaction objects and
// store::kMaxTransactionBytes each, one write per object: of several reports of a task, the
// furthest state); a transaction that lost a race ("update out of sequence") is
// rebuilt from fresh reads and tried again. Per node, reports are rate limited
// (updates_per_second, burst update_burst); beyond that the call fails with RESOURCE_EXHAUSTED
// and the agent sends them again later. The call returns once its reports are written (or
// ignored, with a log line).
//
// Assignments. One store watch feeds every session: an event marks the nodes it concerns (by
// the task's node; the nodes holding a secret or config; the nodes taking part in a network
// that a task's attachments, a service's VIPs, the network itself or a node's attachments
// name; the nodes holding records on a node whose address changed; a node whose own
// attachments changed), and each marked node whose stream is not still writing gets the diff
// of its AssignmentSet (assignments.h): at once after a quiet spell, then in rounds at least
// assignment_window apart. The first message of a stream is
// COMPLETE. Session messages go out from the same thread, so each stream's messages leave in
// order.
//
// Threads. Start() starts two, which Stop() joins: "dispatch-write" writes the queued node
// states and task reports; "dispatch-watch" follows the store, expires heartbeats and sends
// assignments and session messages. With Options::threads false, a test drives the same steps
// (ProcessEvents, ExpireHeartbeats, FlushAssignments, FlushWrites) itself.
//
// Thread-safety: the RPC methods are thread-safe and never wait for a store write. mu_ guards
// the session table and the write queues; it is never held while calling into the store or a
// stream (but for Stream::Busy, which only reads), so streams may call back from any thread. An
// AssignmentSet is owned by the thread running ProcessEvents/FlushAssignments.
#ifndef SWARM_MANAGER_DISPATCHER_DISPATCHER_H_
#define SWARM_MANAGER_DISPATCHER_DISPATCHER_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/random.h"
#include "manager/dispatcher/assignments.h"
#include "manager/dispatcher/task_status.h"
#include "manager/leader/runtime.h"
#include "manager/store/store.h"
#include "proto/dispatcher.pb.h"

namespace swarm::manager::dispatcher {

inline constexpr char kUnknownSessionMessage[] = "session expired or unknown; start a new session";

// Where the dispatcher sends one stream's messages: the gRPC service's reactors, or a test.
// The methods must not call back into the dispatcher before they return (they may later, from
// another thread); Busy is called under the dispatcher's lock.
template <typename Message>
class Stream {
 public:
  virtual ~Stream() = default;
  // Queues the message; never blocks.
  virtual void Send(Message message) = 0;
  // True while an earlier message is still being written (assignments wait, and coalesce).
  virtual bool Busy() const = 0;
  // Ends the stream with the status; later calls do nothing.
  virtual void End(absl::Status status) = 0;
};
using SessionStream = Stream<api::SessionMessage>;
using AssignmentsStream = Stream<api::AssignmentsMessage>;

class Dispatcher {
 public:
  static constexpr absl::Duration kDefaultHeartbeatPeriod = absl::Seconds(5);
  static constexpr int kGraceMultiplier = 3;
  static constexpr double kJitterFraction = 0.1;
  static constexpr int64_t kManagerWeight = 10;

  struct Options {
    // This manager's node ID, recorded as the writer of task states (TaskStatus.applied_by).
    std::string node_id;
    Clock* clock = &Clock::Real();
    Random* random = &SecureRandom::Get();
    // The least time between two rounds of writes (short: the orchestrator's rolling update
    // waits on every report; the Raft node batches what arrives while a write is in flight).
    absl::Duration batch_window = absl::Milliseconds(10);
    // The least time between two rounds of assignment changes (longer: each round diffs
    // every marked node's assignment set).
    absl::Duration assignment_window = absl::Milliseconds(50);
    // Task reports that make the writer go before the window ends.
    size_t max_batch = 1000;
    // Objects written per store transaction (each one Raft entry).
    size_t max_writes_per_transaction = 500;
    // Task reports one node may send per second, and in a burst (RateLimiter).
    double updates_per_second = 500;
    double update_burst = 2000;
    // False: no threads; the caller drives the steps (tests).
    bool threads = true;
  };

  Dispatcher(store::MemoryStore* store, Options options);
  ~Dispatcher();  // Stop()
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Begins a leadership: follows the store from now on, gives every node that is not DOWN a
  // full grace period, and starts the threads.
  void Start();
  // Stops the threads, ends every stream (UNAVAILABLE: the agent opens a new session, through
  // any manager) and fails the reports not yet written. Writes still queued are dropped: the
  // next leader decides afresh.
  void Stop();

  // RPCs; node_id is the caller's, from its certificate. addr: the IP it connects from.
  absl::Status OpenSession(const std::string& node_id, const std::string& addr,
                           const api::NodeDescription& description,
                           std::shared_ptr<SessionStream> stream);
  // The period to the next heartbeat, or NOT_FOUND (kUnknownSessionMessage).
  absl::StatusOr<absl::Duration> Heartbeat(const std::string& node_id,
                                           const std::string& session_id);
  // done gets OK once the reports are written or ignored, or why none was written (may be
  // called before this returns).
  void UpdateTaskStatus(const std::string& node_id, const api::UpdateTaskStatusRequest& request,
                        std::function<void(absl::Status)> done);
  absl::Status OpenAssignments(const std::string& node_id, const std::string& session_id,
                               std::shared_ptr<AssignmentsStream> stream);
  // A stream ended from the agent's side (the service's reactors call this).
  void StreamClosed(const std::string& node_id, const SessionStream* stream);
  void StreamClosed(const std::string& node_id, const AssignmentsStream* stream);

  // The steps of the threads, for tests that run without them (Options::threads false).
  // ProcessEvents and FlushAssignments must not run concurrently with each other.
  //
  // Takes the store events queued so far.
  void ProcessEvents();
  // Marks the nodes past their deadline DOWN (queued) and ends their sessions.
  void ExpireHeartbeats();
  // Sends the assignment changes and session messages that are due.
  void FlushAssignments();
  // Writes what is queued: node states and task reports (blocks on the store).
  void FlushWrites();

  // Sessions open now (tests, the benchmark).
  size_t sessions() const;

 private:
  // The assignments stream of a session, and what it has sent.
  struct Assignments {
    std::shared_ptr<AssignmentsStream> stream;
    AssignmentSet set;  // the fan-out thread's
  };
  // A node the dispatcher tracks: one with a session, or one in its grace period.
  struct Node {
    absl::Time deadline;
    // 0 while the node has no session (grace after a leadership start or a join).
    uint64_t generation = 0;
    std::string session_id;
    std::shared_ptr<SessionStream> stream;
    // The first SessionMessage went out (the READY write committed).
    bool registered = false;
    // Version of the node object in the last SessionMessage.
    uint64_t node_version = 0;
    std::shared_ptr<Assignments> assignments;
    std::optional<RateLimiter> limiter;
    // The rate limiter refused the last call (logged once per episode).
    bool limited = false;
  };
  // A node state to write.
  struct NodeWrite {
    bool ready = false;  // READY with the description and address; else DOWN
    uint64_t generation = 0;
    api::NodeDescription description;
    std::string addr;
  };
  // One UpdateTaskStatus call waiting for the writer.
  struct Reports {
    std::string node_id;
    std::vector<api::TaskStatusUpdate> updates;
    std::function<void(absl::Status)> done;
  };
  // Cluster-wide parts of every SessionMessage.
  struct SessionCommon {
    std::vector<api::WeightedPeer> managers;
    std::string root_ca;
    std::vector<api::EncryptionKey> keys;
  };

  absl::Duration GraceLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The tracked node whose session this is, or null.
  Node* SessionLocked(const std::string& node_id, const std::string& session_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What the dispatcher follows of the cluster object and the manager nodes.
  struct ClusterView {
    absl::Duration period = kDefaultHeartbeatPeriod;
    SessionCommon common;
  };
  static ClusterView ReadCluster(const store::ReadTx& tx);
  static bool SameCommon(const SessionCommon& a, const SessionCommon& b);
  static api::SessionMessage SessionMessageOf(const std::string& session_id, const api::Node& node,
                                              const SessionCommon& common);
  // Drops a tracked node; returns its streams, to be ended outside the lock.
  std::vector<std::function<void()>> ForgetLocked(const std::string& node_id, absl::Status why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunWriter();
  void RunWatcher();

  store::MemoryStore* const store_;
  const Options options_;
  Clock* const clock_;
  // Heartbeat jitter needs no secrets: a PRNG seeded from options_.random, cheaper than it
  // (SecureRandom locks and calls into OpenSSL for every heartbeat).
  SeededRandom jitter_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<store::Watch> watch_;

  mutable absl::Mutex mu_;
  // Signalled (Await) on Stop and when the queued task reports reach max_batch.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, Node> nodes_ ABSL_GUARDED_BY(mu_);
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 1;
  absl::Duration period_ ABSL_GUARDED_BY(mu_) = kDefaultHeartbeatPeriod;
  SessionCommon common_ ABSL_GUARDED_BY(mu_);
  // Nodes whose assignments may have changed.
  absl::flat_hash_set<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  // Sessions owed a SessionMessage: every one (the common part changed), or these nodes.
  bool all_sessions_due_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<std::string> sessions_due_ ABSL_GUARDED_BY(mu_);
  // A manager node changed: the manager list is read again.
  bool managers_changed_ ABSL_GUARDED_BY(mu_) = false;
  // Write queues, in arrival order; the last node state queued for a node wins.
  std::map<std::string, NodeWrite> node_writes_ ABSL_GUARDED_BY(mu_);
  std::vector<Reports> reports_ ABSL_GUARDED_BY(mu_);
  size_t queued_updates_ ABSL_GUARDED_BY(mu_) = 0;

  std::thread writer_;
  std::thread watcher_;
};

// Where the gRPC service finds the dispatcher: set while this manager leads and its dispatcher
// runs, empty otherwise. Thread-safe.
class DispatcherSlot {
 public:
  std::shared_ptr<Dispatcher> Get() const;
  void Set(std::shared_ptr<Dispatcher> dispatcher);
  // Empties the slot if it still holds this dispatcher.
  void Clear(const Dispatcher* dispatcher);

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<Dispatcher> dispatcher_ ABSL_GUARDED_BY(mu_);
};

// The dispatcher as a leader-only component: each leadership starts a new Dispatcher and
// publishes it in the slot; Stop withdraws and stops it. Calls still in flight keep the
// stopped object alive until they end.
class LeaderDispatcher final : public leader::Component {
 public:
  LeaderDispatcher(store::MemoryStore* store, Dispatcher::Options options, DispatcherSlot* slot)
      : store_(store), options_(std::move(options)), slot_(slot) {}
  ~LeaderDispatcher() override { Stop(); }

  const char* name() const override { return "dispatcher"; }
  void Start() override;
  void Stop() override;

 private:
  store::MemoryStore* store_;
  Dispatcher::Options options_;
  DispatcherSlot* slot_;
  std::shared_ptr<Dispatcher> dispatcher_;
};

}  // namespace swarm::manager::dispatcher

#endif  // SWARM_MANAGER_DISPATCHER_DISPATCHER_H_

// MemoryStore: the manager's replicated object store. Every manager holds the same committed
// objects (nodes, services, tasks, networks, the cluster, secrets, configs) in memory, with the
// indexes that lists and orchestrators need.
//
// Writes are transactions. Update() runs the caller's function against the committed state;
// the writes it records become one Raft proposal (an InternalRaftRequest); once committed,
// every manager applies the proposal in log order through Apply(), which validates it again
// (versions, unique names) and applies all of its writes or none. Validation at apply time is
// what keeps managers identical: two transactions that raced are ordered by the log, and the
// second one fails the same way on every manager ("update out of sequence"). Readers see
// committed state only; each object carries the Raft index of its last write as its version.
//
// Watchers receive every applied write in order (kind, old and new object, index), from a given
// index when they resume; the last events are kept for that (kEventHistory).
//
// Thread-safety: all public methods are thread-safe. Apply and Restore are called by the Raft
// node's loop thread, WriteSnapshot by its snapshot thread while neither runs
// (raft::StateMachine). mu_ guards the tables and the event
// history; reads take it shared. Watch queues have their own locks.
#ifndef SWARM_MANAGER_STORE_STORE_H_
#define SWARM_MANAGER_STORE_STORE_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "proto/objects.pb.h"
#include "proto/raft_service.pb.h"
#include "raft/node.h"

namespace swarm::manager::store {

// Where a transaction's proposal goes: the Raft node in a manager, LocalProposer in tests.
class Proposer {
 public:
  virtual ~Proposer() = default;
  // Replicates data; done gets the index once this manager has applied it, or an error.
  virtual void Propose(std::string data, std::function<void(absl::StatusOr<uint64_t>)> done) = 0;
};

// One applied write, as watchers see it.
struct Event {
  api::StoreActionKind kind = api::STORE_ACTION_KIND_CREATE;
  uint64_t index = 0;
  // The object before (UPDATE, REMOVE) and after (CREATE, UPDATE) the write, each a
  // StoreAction whose target holds it; null when there is none. Shared with the store and every
  // other watcher: objects are immutable once stored.
  std::shared_ptr<const api::StoreAction> old_object;
  std::shared_ptr<const api::StoreAction> new_object;
};

// A stream of events for one watcher. Close it (or drop it) when done.
class Watch {
 public:
  // The next event, or nullopt after timeout or once closed.
  std::optional<Event> Next(absl::Duration timeout);
  // Waits until an event is queued (true) or the timeout passes or the watch closes (false);
  // takes nothing.
  bool Wait(absl::Duration timeout);
  void Close();
  bool closed() const;

 private:
  friend class MemoryStore;
  void Push(const Event& e);
  mutable absl::Mutex mu_;
  std::deque<Event> queue_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

class MemoryStore;

// Read access to committed state. Objects come back as shared pointers to the stored,
// immutable objects (null when absent): listing 100,000 tasks copies pointers, not tasks.
// To change one, copy it, modify the copy and write it in a transaction.
template <typename T>
using Ptr = std::shared_ptr<const T>;
class ReadTx {
 public:
  Ptr<api::Node> GetNode(const std::string& id) const;
  Ptr<api::Service> GetService(const std::string& id) const;
  Ptr<api::Task> GetTask(const std::string& id) const;
  Ptr<api::Network> GetNetwork(const std::string& id) const;
  Ptr<api::Cluster> GetCluster(const std::string& id) const;
  Ptr<api::Secret> GetSecret(const std::string& id) const;
  Ptr<api::Config> GetConfig(const std::string& id) const;

  std::vector<Ptr<api::Node>> ListNodes() const;
  std::vector<Ptr<api::Service>> ListServices() const;
  std::vector<Ptr<api::Task>> ListTasks() const;
  std::vector<Ptr<api::Network>> ListNetworks() const;
  std::vector<Ptr<api::Cluster>> ListClusters() const;
  std::vector<Ptr<api::Secret>> ListSecrets() const;
  std::vector<Ptr<api::Config>> ListConfigs() const;

  // Indexes.
  std::vector<Ptr<api::Task>> TasksByService(const std::string& service_id) const;
  std::vector<Ptr<api::Task>> TasksByNode(const std::string& node_id) const;
  // Tasks with an allocated attachment to the network.
  std::vector<Ptr<api::Task>> TasksByNetwork(const std::string& network_id) const;
  // The ID of the object of that kind with that name, if any (names are unique per kind,
  // without regard to case).
  std::optional<std::string> IdByName(api::StoreAction::TargetCase kind,
                                      const std::string& name) const;
  // IDs of that kind starting with prefix.
  std::vector<std::string> IdsByPrefix(api::StoreAction::TargetCase kind,
                                       const std::string& prefix) const;

 protected:
  friend class MemoryStore;
  explicit ReadTx(const MemoryStore* store) : store_(store) {}

 private:
  const MemoryStore* store_;
};

// A transaction being built: reads see committed state; writes are recorded as actions.
class WriteTx : public ReadTx {
 public:
  // Each object carries its ID; Update needs the version it was read at.
  void Create(api::StoreAction object);
  void Update(api::StoreAction object);
  void Remove(api::StoreAction object);

  template <typename T>
  void CreateObject(const T& obj);
  template <typename T>
  void UpdateObject(const T& obj);
  template <typename T>
  void RemoveObject(const T& obj);

  // The size of the objects written so far, for writers that split a large piece of work
  // into transactions of at most kMaxTransactionBytes. (Sized when asked: writers of one
  // object never pay for it.)
  size_t bytes() const;

 private:
  friend class MemoryStore;
  WriteTx(const MemoryStore* store, absl::Time now) : ReadTx(store), now_(now) {}
  void Add(api::StoreActionKind kind, api::StoreAction object);
  absl::Time now_;
  std::vector<api::StoreAction> actions_;
  mutable size_t sized_ = 0;  // actions_[0, sized_) are counted in bytes_
  mutable size_t bytes_ = 0;
};

// Writers of many objects (the orchestrator, scheduler, allocator and dispatcher) start a new
// transaction once one holds this much: a transaction is one Raft proposal, and with objects
// as large as a spec can make them (a task carries its service's spec, up to 4 MiB), a count
// of objects alone could make a proposal over Raft's limit, which would never commit.
inline constexpr size_t kMaxTransactionBytes = 4 << 20;

namespace internal {
api::StoreAction WrapMessage(const google::protobuf::Message& object);
}  // namespace internal

// Wraps one store object (Node, Service, Task, Network, Cluster, Secret, Config) in a
// StoreAction, the store's generic object holder.
template <typename T>
api::StoreAction Wrap(const T& object) {
  return internal::WrapMessage(object);
}

template <typename T>
void WriteTx::CreateObject(const T& obj) {
  Create(Wrap(obj));
}
template <typename T>
void WriteTx::UpdateObject(const T& obj) {
  Update(Wrap(obj));
}
template <typename T>
void WriteTx::RemoveObject(const T& obj) {
  Remove(Wrap(obj));
}

class MemoryStore final : public raft::StateMachine {
 public:
  // Events kept for watchers that resume from an index.
  static constexpr size_t kEventHistory = 10000;

  MemoryStore(Proposer* proposer, Clock* clock = &Clock::Real());
  ~MemoryStore() override;
  // The proposer can be set after construction: the Raft node needs the store (its state
  // machine) before the proposer that wraps the node exists.
  void set_proposer(Proposer* proposer) { proposer_ = proposer; }

  // Reads committed state.
  void View(const std::function<void(const ReadTx&)>& fn) const;
  // Runs fn (once); when it returns OK, replicates the writes it recorded as one transaction and
  // returns once this manager applied it: OK, or why it failed (the function's own error,
  // FAILED_PRECONDITION "update out of sequence", ALREADY_EXISTS for a taken name, NOT_FOUND,
  // or the proposer's error).
  absl::Status Update(const std::function<absl::Status(WriteTx&)>& fn);

  // Events from index after_index + 1 on (0: only new events). OUT_OF_RANGE when events that
  // old are no longer kept: list the objects again, then watch from the listed index.
  absl::StatusOr<std::shared_ptr<Watch>> WatchFrom(uint64_t after_index);
  // The index of the last applied write.
  uint64_t last_index() const;

  // raft::StateMachine. The snapshot is api::StoreSnapshot's wire format, one object at a time.
  void Apply(uint64_t index, std::string_view data) override;
  absl::Status WriteSnapshot(raft::SnapshotWriter& out) override;
  absl::Status Restore(raft::SnapshotReader& in) override;
  // The same, whole in memory, at any time (backups, tests).
  std::string Snapshot();
  absl::Status Restore(std::string_view data);

  // Applies a transaction directly (what Apply does after parsing), for LocalProposer and
  // tests: OK or why it was rejected.
  // Takes the request's objects (moves them into the tables).
  absl::Status ApplyTransaction(api::InternalRaftRequest& req, uint64_t index);

 private:
  friend class ReadTx;
  struct Tables;

  absl::Status ValidateLocked(const api::InternalRaftRequest& req) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void PublishLocked(const Event& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The tables as StoreSnapshot's wire format. The caller holds mu_, or is the Raft node's
  // snapshot thread (no Apply or Restore runs meanwhile).
  absl::Status WriteTables(raft::SnapshotWriter& out) const ABSL_NO_THREAD_SAFETY_ANALYSIS;

  Proposer* proposer_;
  Clock* clock_;

  mutable absl::Mutex mu_;
  std::unique_ptr<Tables> tables_ ABSL_GUARDED_BY(mu_);
  uint64_t last_index_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Event> history_ ABSL_GUARDED_BY(mu_);
  std::vector<std::weak_ptr<Watch>> watches_ ABSL_GUARDED_BY(mu_);

  // Results of this manager's own transactions, by proposal ID, from Apply to Update.
  absl::Mutex results_mu_;
  std::map<uint64_t, absl::Status> results_ ABSL_GUARDED_BY(results_mu_);
  uint64_t next_request_ ABSL_GUARDED_BY(results_mu_) = 0;
};

// Replicates transactions through the manager's Raft node.
class RaftProposer final : public Proposer {
 public:
  explicit RaftProposer(raft::Node* node, absl::Duration timeout = absl::Seconds(10))
      : node_(node), timeout_(timeout) {}
  void Propose(std::string data, std::function<void(absl::StatusOr<uint64_t>)> done) override {
    node_->ProposeAsync(std::move(data), timeout_, std::move(done));
  }

 private:
  raft::Node* node_;
  absl::Duration timeout_;
};

// Applies proposals at once, in order, with increasing indexes: a store without Raft.
class LocalProposer final : public Proposer {
 public:
  void set_store(MemoryStore* store) { store_ = store; }
  void Propose(std::string data, std::function<void(absl::StatusOr<uint64_t>)> done) override;

 private:
  absl::Mutex mu_;
  MemoryStore* store_ = nullptr;
  uint64_t index_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace swarm::manager::store

#endif  // SWARM_MANAGER_STORE_STORE_H_

// NodeSet: what the scheduler knows about every node, kept current one change at a time so
// that placing a task never rebuilds it. Per node: the node object, the CPU and memory that
// the tasks holding it have reserved, how many of those tasks each service has, how many there
// are in all, and the host-mode published ports they use.
//
// A task holds its node (resources, ports, counts) while it is assigned to it and has not
// finished: observed state ASSIGNED to RUNNING (HoldsNode). The set records what each such
// task was counted for, so replaying a task (an update, a watch event seen twice, the
// scheduler's own decision followed by the write that carries it) never counts it twice.
// Tasks may name a node the set does not have (yet, or any more); they are counted on a
// placeholder that is not offered to the scheduler (node() is null) until the node appears.
//
// Owned by one scheduler (the leader loop's thread, or a test); not thread-safe.
//
// Invariants (CheckInvariants): every node's reservations, counts and ports are the sums of
// what its recorded tasks were counted for, in its NodeInfo, its Slot and its services'
// ServiceSlots alike; placeholders without tasks do not exist; nodes() lists exactly the nodes
// whose object is known; every NodeInfo has its own slot.
#ifndef SWARM_SCHEDULER_NODE_SET_H_
#define SWARM_SCHEDULER_NODE_SET_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "proto/objects.pb.h"

namespace swarm::scheduler {

// Whether the task holds resources and host ports on its node: assigned to it and not
// finished (observed state ASSIGNED to RUNNING).
bool HoldsNode(const api::Task& task);

// A published port on the node's own address, as one number: protocol << 32 | port.
using HostPort = uint64_t;
inline HostPort MakeHostPort(api::PortProtocol protocol, uint32_t port) {
  return static_cast<uint64_t>(protocol) << 32 | port;
}
// The host-mode published ports (published_port != 0) the task needs on its node, sorted and
// without duplicates: its endpoint's ports and those of the endpoint spec it was made from.
std::vector<HostPort> HostPortsOf(const api::Task& task);

// A service as the node set counts it: a small number interned while the service has tasks
// in the set. A key stays valid as long as any task of the service is counted.
using ServiceKey = int32_t;
inline constexpr ServiceKey kNoService = -1;

class NodeInfo {
 public:
  const std::string& id() const { return id_; }
  // The node object; null for a placeholder (tasks name the node, the store does not have it).
  const api::Node* node() const { return node_.get(); }
  // The node's resources minus the reservations of the tasks holding it (may be negative if
  // the node reports less than its tasks reserved).
  int64_t available_cpu() const;
  int64_t available_memory() const;
  // Tasks holding the node: of one service, and in all.
  int32_t ServiceTasks(ServiceKey service) const;
  int32_t total_tasks() const { return total_tasks_; }
  bool PortInUse(HostPort port) const { return host_ports_.contains(port); }
  // The node's slot in the set: stable while the set holds the node (see NodeSet::Slot).
  uint32_t slot() const { return slot_; }

 private:
  friend class NodeSet;
  NodeInfo(std::string id, uint32_t slot) : id_(std::move(id)), slot_(slot) {}

  std::string id_;
  uint32_t slot_;
  std::shared_ptr<const api::Node> node_;
  // Position in NodeSet::nodes_ while node_ is set.
  size_t index_ = 0;
  int64_t reserved_cpu_ = 0;
  int64_t reserved_memory_ = 0;
  int32_t total_tasks_ = 0;
  absl::flat_hash_map<ServiceKey, int32_t> tasks_by_service_;
  // Port -> number of tasks publishing it (more than one only if the node was over-committed
  // before we saw it, e.g. two schedulers across a leader change).
  absl::flat_hash_map<HostPort, int32_t> host_ports_;
};

class NodeSet {
 public:
  // What ranking reads of every candidate node, in one dense array so that ranking thousands
  // of nodes does not chase a pointer per node. A slot is given to a node (placeholders
  // included) when the set first hears of it and freed when the set forgets it; then reused.
  struct Slot {
    NodeInfo* info = nullptr;  // null: free
    // The first 8 bytes of the node ID, big-endian: orders like the ID unless equal.
    uint64_t id_prefix = 0;
    int32_t total_tasks = 0;
  };
  // Node changes remembered for ChangedSince.
  static constexpr size_t kChangeLog = 8192;

  NodeSet() = default;
  NodeSet(const NodeSet&) = delete;
  NodeSet& operator=(const NodeSet&) = delete;

  // Adds a node or replaces its object (its tasks stay counted).
  void UpsertNode(std::shared_ptr<const api::Node> node);
  // Forgets the node object; tasks that still name the node stay counted on its placeholder.
  void RemoveNode(const std::string& node_id);

  // Counts the task on its node while HoldsNode(task), replacing what it was counted for
  // before; forgets it otherwise.
  void UpsertTask(const api::Task& task);
  void RemoveTask(const std::string& task_id);
  // The scheduler's decision to place the task on node: counts it there as if it were
  // ASSIGNED, until UpsertTask or RemoveTask says otherwise. Returns the task's service key.
  ServiceKey Assign(const api::Task& task, NodeInfo* node);

  // The node with that ID (a placeholder included), or null.
  NodeInfo* Find(const std::string& node_id);
  const NodeInfo* Find(const std::string& node_id) const;
  // The nodes whose object is known, in no particular order.
  const std::vector<NodeInfo*>& nodes() const { return nodes_; }

  const Slot& slot(uint32_t s) const { return slots_[s]; }
  size_t slot_count() const { return slots_.size(); }

  // The service's key, kNoService while none of its tasks is counted.
  ServiceKey FindService(const std::string& service_id) const;
  // Where the service's tasks are: slot -> tasks of the service on that node (none empty).
  const absl::flat_hash_map<uint32_t, int32_t>& ServiceSlots(ServiceKey service) const;
  // Whether the task is counted, and the version (meta.version.index) it was counted at.
  std::optional<uint64_t> TaskVersion(const std::string& task_id) const;
  size_t counted_tasks() const { return tasks_.size(); }

  // Changes whenever a node is added, removed or replaced: what the load-independent filters
  // concluded about the nodes is stale once it changes. Task changes leave it alone.
  uint64_t generation() const { return generation_; }
  // Appends the slots of the nodes added, removed or replaced after generation (a slot may
  // repeat); false when the log no longer goes back that far.
  bool ChangedSince(uint64_t generation, std::vector<uint32_t>* slots) const;

  // Stops the process if an invariant (see the file comment) does not hold. O(tasks).
  void CheckInvariants() const;

 private:
  // What a counted task was counted for on its node.
  struct Counted {
    NodeInfo* node = nullptr;
    ServiceKey service = kNoService;
    int64_t cpu = 0;
    int64_t memory = 0;
    std::vector<HostPort> ports;
    uint64_t version = 0;
  };
  struct Service {
    std::string id;
    int32_t tasks = 0;  // 0: the key is free
    absl::flat_hash_map<uint32_t, int32_t> slots;
  };

  NodeInfo* GetOrCreate(const std::string& node_id);
  void Count(const std::string& task_id, const api::Task& task, NodeInfo* node);
  void Uncount(const Counted& c);
  // Erases a placeholder that no task names any more.
  void MaybeErase(NodeInfo* node);
  void NodeChanged(const NodeInfo* node);
  ServiceKey AcquireService(const std::string& service_id);
  void ReleaseService(ServiceKey key);

  absl::flat_hash_map<std::string, std::unique_ptr<NodeInfo>> by_id_;
  std::vector<NodeInfo*> nodes_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  absl::flat_hash_map<std::string, Counted> tasks_;
  absl::flat_hash_map<std::string, ServiceKey> service_keys_;
  std::vector<Service> services_;
  std::vector<ServiceKey> free_services_;
  uint64_t generation_ = 0;
  // (generation after the change, slot of the node), consecutive generations, oldest first.
  std::deque<std::pair<uint64_t, uint32_t>> changes_;
};

}  // namespace swarm::scheduler

#endif  // SWARM_SCHEDULER_NODE_SET_H_

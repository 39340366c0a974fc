// Scheduler: decides where pending tasks run. Pure code over a NodeSet (no store, no
// threads, no clock); the leader loop (component.h) feeds it and writes its decisions.
//
// Tasks are placed group by group; a group is the tasks that are interchangeable for
// placement (GroupKey: same service and spec version). For each group:
//  1. The load-independent filters (ready, availability, constraints, platform) sort the
//     nodes out; those that pass are arranged in a tree by the group's spread preferences
//     (zone, then rack within the zone, ...; nodes without the label form a branch of their
//     own, value ""). This plan is kept per set of constraints, platforms and preferences
//     and brought up to date from the node set's change log (only the nodes that changed
//     since are filtered again), so a task placed in a large cluster does not re-evaluate
//     every node's constraints.
//  2. Each task then descends the tree, at every level into the branch with the fewest tasks
//     of the service (ties: the smaller label value), and in the leaf takes the node with the
//     fewest tasks of the service, then the fewest tasks overall, then the smallest node ID.
//     Every level is a binary heap, so a task costs O(levels * log nodes) once the group's
//     heaps are built, which reads one dense array (NodeSet::Slot) per candidate node.
//  3. The load-dependent filters (memory, CPU, host ports, max replicas) check the node the
//     ranking offers; a node they reject leaves the group's tree for good (placing only ever
//     adds load) and is counted in the explanation.
// A task that fits nowhere gets "no suitable node (...)" counting, per filter, the nodes it
// ruled out. A task whose node is preset (global services) is checked against that node alone.
// A malformed constraint or preference makes its group unschedulable with the parse error.
//
// Decisions are deterministic: they depend on the tasks' order and the node set's content,
// not on hash or insertion order (every ranking key ends with a unique ID or label value).
//
// Thread-safety: none; owned with its NodeSet by one thread.
#ifndef SWARM_SCHEDULER_SCHEDULER_H_
#define SWARM_SCHEDULER_SCHEDULER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "proto/objects.pb.h"
#include "scheduler/filter.h"
#include "scheduler/node_set.h"

namespace swarm::scheduler {

// What the scheduler decided for one task.
struct Decision {
  // The node the task goes to; null when it fits nowhere. Valid until the node set changes.
  const NodeInfo* node = nullptr;
  // Why it fits nowhere (node == null): "no suitable node (...)", or the parse error of a
  // malformed constraint or preference.
  std::string message;
};

class Scheduler {
 public:
  // Plans kept at most; beyond that the least recently used one is dropped.
  static constexpr size_t kMaxPlans = 32;

  explicit Scheduler(NodeSet* nodes);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Places the tasks (state PENDING; node_id empty, or preset for global tasks) group by group,
  // groups in the order of their first task. decisions[i] is about tasks[i]. Each placed task
  // is counted on its node in the node set (NodeSet::Assign).
  std::vector<Decision> Schedule(const std::vector<const api::Task*>& tasks);

  // Tasks with equal keys are interchangeable for placement: same service, same spec version
  // (or, without one, the same spec), same host-mode ports.
  static std::string GroupKey(const api::Task& task);

 private:
  struct Plan;
  class Placement;

  // The plan for the task's load-independent requirements, brought up to date.
  const Plan& GetPlan(const api::Task& task, const TaskRequirements& req);
  void PlaceGroup(const std::vector<const api::Task*>& tasks, const std::vector<size_t>& group,
                  TaskRequirements& req, std::vector<Decision>& decisions);
  void PlacePreset(const api::Task& task, TaskRequirements& req, Decision& decision);

  NodeSet* nodes_;
  // By signature of the load-independent requirements (constraints, platforms, preferences).
  absl::flat_hash_map<std::string, std::unique_ptr<Plan>> plans_;
  uint64_t plan_uses_ = 0;
};

}  // namespace swarm::scheduler

#endif  // SWARM_SCHEDULER_SCHEDULER_H_

// The orchestrators' decisions, as one pure function per service: given a service, its tasks,
// the nodes and the time, Reconcile() returns the writes that bring the tasks in line with the
// service (a Plan). It is level-triggered: it looks only at what is in the store, never at what
// happened before, so a new leader (or a retried, failed write) simply reconciles again and
// reaches the same decisions. The Orchestrator component (orchestrator.h) runs it for every
// service that changed and writes the plans.
//
// The model, shared by every mode:
// - A service's tasks form slots: replica numbers 1..N (replicated service and job) or node IDs
//   (global service and job). Each slot holds at most one live task (two during a start-first
//   update) and the history of the tasks it ran before.
// - A task is live while its desired state is READY, RUNNING, or COMPLETE (jobs) and it has not
//   ended. It has ended when its observed state is past RUNNING, or its node is down or gone
//   (the task is then marked ORPHANED). An ended task gets desired state SHUTDOWN; the slot is
//   restarted with a new task when the restart policy allows (condition any, on-failure unless
//   it completed, never with none; jobs never after success; at most max_attempts failures
//   within the window), after the restart delay counted from when the task ended. The new task
//   records the one it replaced (replaced_task_id, replaced_task_status).
// - Replicated services keep `replicas` slots occupied; scale-down marks whole slots REMOVE,
//   preferring slots not running, then those on the nodes with most of the service's tasks,
//   then the highest slot numbers. Global services keep one slot per eligible node (not
//   drained, not down, constraints and platforms met; paused nodes keep theirs but get no new
//   one) and shut down tasks on nodes that are not. Jobs run slots of the current iteration
//   (replicated: total_completions slots, max_concurrent at once) until each completes.
// - Rolling updates: a live task whose spec (or endpoint) differs from the service's is
//   outdated; a replicated task on a drained node or one that no longer meets the constraints
//   is evicted. Both are replaced slot by slot, at most `parallelism` slots in progress (0:
//   all), with `delay` between batches: stop-first stops the old task and gives the new one
//   desired state READY until the old one has stopped; start-first starts the new one and stops
//   the old once the new one runs (evictions are always stop-first). The update status moves
//   through updating, paused, completed, rolling back and rollback completed. A task of the new
//   spec that fails during the update (or within `monitor` after its last task started)
//   counts as a failure; more than max_failure_ratio of the slots failing triggers the failure
//   action: pause, continue, or rollback (the previous spec becomes the spec, as with
//   `service rollback`, and the rollback config applies). An update that changes no task
//   spec replaces nothing.
// - Task history: each slot keeps its newest `task_history_limit` dead tasks (and at least
//   max_attempts + 1, so restart accounting survives, and at least one); older ones and slots
//   marked REMOVE are deleted once their tasks have stopped. Tasks of a removed service get
//   desired state REMOVE and are deleted once stopped.
//
// Thread-safety: pure function over its arguments.
#ifndef SWARM_MANAGER_ORCHESTRATOR_RECONCILE_H_
#define SWARM_MANAGER_ORCHESTRATOR_RECONCILE_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "common/random.h"
#include "proto/objects.pb.h"

namespace swarm::manager::orchestrator {

// The cluster's nodes, by ID.
class NodeIndex {
 public:
  explicit NodeIndex(std::vector<std::shared_ptr<const api::Node>> nodes);
  // Null when no such node exists.
  const api::Node* Get(std::string_view id) const;
  const std::vector<std::shared_ptr<const api::Node>>& all() const { return nodes_; }

 private:
  std::vector<std::shared_ptr<const api::Node>> nodes_;
  absl::flat_hash_map<std::string, const api::Node*> by_id_;
};

struct ServiceState {
  // Null once the service has been removed: its tasks are then removed.
  const api::Service* service = nullptr;
  // Every task of the service, in any state.
  std::vector<const api::Task*> tasks;
  const NodeIndex* nodes = nullptr;
  // The cluster's task_history_retention_limit (negative: keep all).
  int64_t task_history_limit = 5;
  absl::Time now;
};

// The writes that reconcile one service, to be made in store transactions.
struct Plan {
  // New tasks (IDs and names set).
  std::vector<api::Task> create;
  // Changed copies of existing tasks (desired state, ORPHANED status).
  std::vector<api::Task> update;
  // IDs of tasks to delete (history beyond the limit, removed slots that stopped).
  std::vector<std::string> remove;
  // The service with a new update status, or rolled back.
  std::optional<api::Service> service;
  // When the service must be looked at again even if nothing changes (a restart delay or an
  // update delay ends, a monitor period passes); InfiniteFuture when there is no such time.
  absl::Time next_check = absl::InfiniteFuture();

  bool empty() const {
    return create.empty() && update.empty() && remove.empty() && !service.has_value();
  }
};

Plan Reconcile(const ServiceState& state, Random& random);

}  // namespace swarm::manager::orchestrator

#endif  // SWARM_MANAGER_ORCHESTRATOR_RECONCILE_H_

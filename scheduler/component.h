// SchedulerComponent: the leader loop around the scheduler (scheduler.h). It keeps a NodeSet
// current from the store's watch, collects pending tasks in batches, places them and writes
// the decisions back. The scheduler owns one step of a task's life: PENDING to ASSIGNED.
//
// What it reads: nodes, and tasks. A task is the scheduler's when its observed state is
// PENDING and its desired state is at most COMPLETE (RUNNING for services, COMPLETE for
// jobs); its node_id is empty, or preset by the global orchestrator (then only that node is
// checked). Every task holding a node (ASSIGNED to RUNNING) counts against that node.
//
// What it writes, nothing else: for a placed task, node_id, status.state ASSIGNED,
// status.message "scheduler assigned task to node", status.timestamp (the injected clock)
// and an empty status.err; for a task that fits nowhere, status.message and status.err with
// the explanation ("no suitable node (...)") and status.timestamp, only when the explanation
// changed, so retries cause no write storm. Writes go in transactions of at most
// max_writes_per_transaction tasks and store::kMaxTransactionBytes. A transaction that fails (a
// task changed under us: "update out of sequence", or lost leadership) is not retried as is:
// its tasks are read again and rescheduled in the next batch.
//
// When: a batch goes batch_window (on the injected clock) after the previous one, or at once
// after a quiet spell (with every event the watch had queued), or as soon as max_batch tasks
// wait. Tasks that fit
// nowhere wait until a node is added or changes, or a task frees its node (finishes, is
// removed or moves); then they join the next batch.
//
// Watch: Start's thread watches from now on, then lists nodes and tasks, so events that the
// list already reflects may be seen again: an event older than what is known of an object
// (its version) is skipped. A watch the store closes (snapshot restore) is replaced by a new
// list and watch.
//
// Thread-safety: Start and Stop from one thread (the leader runtime); the work runs on the
// component's thread "scheduler". mu_ guards stopping_ and the current watch (Stop closes it
// to wake the thread).
#ifndef SWARM_SCHEDULER_COMPONENT_H_
#define SWARM_SCHEDULER_COMPONENT_H_

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "manager/leader/runtime.h"
#include "manager/store/store.h"
#include "scheduler/node_set.h"
#include "scheduler/scheduler.h"

namespace swarm::scheduler {

struct SchedulerOptions {
  // How long pending tasks are collected, from the first one, before the batch is scheduled.
  absl::Duration batch_window = absl::Milliseconds(50);
  // A batch this large is scheduled without waiting for the window to close.
  size_t max_batch = 10000;
  // Task writes per transaction at most.
  size_t max_writes_per_transaction = 1000;
};

class SchedulerComponent final : public manager::leader::Component {
 public:
  static constexpr char kAssignedMessage[] = "scheduler assigned task to node";

  SchedulerComponent(manager::store::MemoryStore* store, Clock* clock,
                     SchedulerOptions options = {});
  ~SchedulerComponent() override { Stop(); }
  SchedulerComponent(const SchedulerComponent&) = delete;
  SchedulerComponent& operator=(const SchedulerComponent&) = delete;

  const char* name() const override { return "scheduler"; }
  void Start() override;
  void Stop() override;

 private:
  using TaskPtr = manager::store::Ptr<api::Task>;
  // A decision to write.
  struct Write {
    TaskPtr task;
    std::string node_id;  // empty: not placed
    std::string message;  // why not placed
  };

  void Run();
  bool Stopping();
  // A fresh watch, node set and pending tasks from one list; false if stopping or the store
  // refused the watch.
  bool Relist();
  void Handle(const manager::store::Event& e);
  void OnNode(const std::string& id, std::shared_ptr<const api::Node> node, uint64_t index);
  // task is null when it was removed. With force, the task is taken as the truth even if
  // what is known of it is as new (after a failed write); otherwise an event older than
  // what is known is skipped.
  void OnTask(const std::string& id, TaskPtr task, uint64_t index, bool force);
  // The version known of a task (counted on a node, pending or unschedulable), 0 if none.
  uint64_t KnownVersion(const std::string& id) const;
  bool HasWork() const;
  void ScheduleBatch();
  void WriteDecisions(const std::vector<Write>& writes);
  // Reads the tasks again and takes them as the truth; the pending ones go to the next batch.
  void Refresh(const std::vector<std::string>& ids);

  manager::store::MemoryStore* const store_;
  Clock* const clock_;
  const SchedulerOptions options_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<manager::store::Watch> watch_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;

  // Component thread only.
  std::unique_ptr<NodeSet> nodes_;
  std::unique_ptr<Scheduler> scheduler_;
  // Tasks for the next batch, by ID (batches go in ID order, for determinism).
  absl::btree_map<std::string, TaskPtr> pending_;
  // Tasks that fit nowhere in their last batch, waiting for a node or resources.
  absl::flat_hash_map<std::string, TaskPtr> unschedulable_;
  // A node changed or a task freed its node since the last batch: retry unschedulable_.
  bool retry_unschedulable_ = false;
  // When the batch waiting now is due, and when the last one went.
  std::optional<absl::Time> batch_due_;
  std::optional<absl::Time> last_batch_;
};

}  // namespace swarm::scheduler

#endif  // SWARM_SCHEDULER_COMPONENT_H_

// The rules for task status reports from agents, as pure functions: which report may be
// written to the store, and how fast one node may send them.
//
// Every task state has one owner (DESIGN.md): managers move a task up to ASSIGNED, the agent of
// the task's node from ACCEPTED on. So a report is written only when the task exists, is
// assigned to the reporting node, the reported state is one an agent may set (ACCEPTED to
// REJECTED), and it does not move the task backwards: a lower state than the stored one is
// stale (reports race with each other and with the orchestrator), and a task past RUNNING is
// terminal (COMPLETE, SHUTDOWN, FAILED, REJECTED, or ORPHANED by the orchestrator after its
// node went down) and stays as it is. A report of the same state refreshes its details
// (message, container status) only when its timestamp is newer than the stored one.
//
// Thread-safety: CheckTaskStatus is pure; a RateLimiter is not thread-safe (the dispatcher
// guards each node's with its lock).
#ifndef SWARM_MANAGER_DISPATCHER_TASK_STATUS_H_
#define SWARM_MANAGER_DISPATCHER_TASK_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proto/objects.pb.h"

namespace swarm::manager::dispatcher {

// OK when node_id's report of status for task (null: no such task) is to be written;
// otherwise why it is ignored: NOT_FOUND (no such task), PERMISSION_DENIED (the task is not
// assigned to the node), INVALID_ARGUMENT (a state agents may not set), FAILED_PRECONDITION
// (stale or backwards).
absl::Status CheckTaskStatus(const api::Task* task, const std::string& node_id,
                             const api::TaskStatus& status);

// A token bucket, refilled at `per_second` up to `burst`. A take is admitted while the bucket
// is not empty and may leave it in debt, so that one large batch (an agent sending every
// report it kept during a disconnect) is never refused for good; the debt delays what follows.
class RateLimiter {
 public:
  RateLimiter(double per_second, double burst, absl::Time now)
      : per_second_(per_second), burst_(burst), tokens_(burst), last_(now) {}
  // Takes n units, unless the bucket is empty.
  bool Take(double n, absl::Time now);

 private:
  double per_second_;
  double burst_;
  double tokens_;
  absl::Time last_;
};

}  // namespace swarm::manager::dispatcher

#endif  // SWARM_MANAGER_DISPATCHER_TASK_STATUS_H_

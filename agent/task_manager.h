// TaskManager: runs the tasks the managers assign to this node. Each task gets a runner (its
// own thread) that takes it through the executor's steps as its desired state allows and
// reports every state it reaches, never going backwards:
//
//   ACCEPTED -> PREPARING -> READY -> (desired RUNNING) STARTING -> RUNNING -> COMPLETE | FAILED
//   any time: desired SHUTDOWN/REMOVE -> SHUTDOWN; cannot run here -> REJECTED
//
// A task with a health check stays STARTING until the check passes, and fails when the
// container turns unhealthy. Each state is recorded in the TaskDb before it is reported, so
// after a restart the manager resumes every task where it was: a started container is waited
// for, not started again; an exit that happened while the agent was down is reported. Tasks
// that leave the assignment are stopped, their containers removed, and forgotten; so are tasks
// the database knows but the first complete assignment does not.
//
// Owner: the agent. Thread-safety: thread-safe; mu_ guards the runner table and the secrets
// and configs; each runner has its own lock for the task it is given.
#ifndef SWARM_AGENT_TASK_MANAGER_H_
#define SWARM_AGENT_TASK_MANAGER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agent/executor.h"
#include "agent/task_db.h"
#include "common/clock.h"

namespace swarm::agent {

class TaskRunner;

class TaskManager {
 public:
  // Receives every status a task reaches (already recorded), to send to the managers.
  using StatusSink = std::function<void(const std::string& task_id, const api::TaskStatus&)>;

  struct Options {
    Executor* executor = nullptr;
    TaskDb* db = nullptr;
    StatusSink sink;
    Clock* clock = &Clock::Real();
    // How often a runner looks at a running container (exit, health, desired state).
    absl::Duration poll = absl::Milliseconds(200);
  };

  explicit TaskManager(Options options);
  // Stops the runners; containers keep running (the next agent adopts them).
  ~TaskManager();

  // Resumes the tasks recorded in the database (before the managers have answered).
  absl::Status Restore();
  // The complete set of this node's tasks, secrets and configs; tasks not in it are removed.
  void SetAssignments(const std::vector<api::Task>& tasks, const std::vector<api::Secret>& secrets,
                      const std::vector<api::Config>& configs);
  void UpdateTask(const api::Task& task);
  void RemoveTask(const std::string& task_id);
  void UpdateSecret(const api::Secret& secret);
  void RemoveSecret(const std::string& id);
  void UpdateConfig(const api::Config& config);
  void RemoveConfig(const std::string& id);

  // The tasks the manager runs now, with their latest status (tests, node inspection).
  std::vector<api::Task> Tasks() const;

 private:
  friend class TaskRunner;
  void UpdateTaskLocked(const api::Task& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Dependencies Deps();

  const Options options_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<TaskRunner>> runners_ ABSL_GUARDED_BY(mu_);
  // Looked up by the controllers when they prepare (Deps()).
  std::map<std::string, api::Secret> secrets_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, api::Config> configs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace swarm::agent

#endif  // SWARM_AGENT_TASK_MANAGER_H_

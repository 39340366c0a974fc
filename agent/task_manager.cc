#include "agent/task_manager.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/proto_time.h"

namespace swarm::agent {
namespace {

constexpr char kLog[] = "agent";

bool IsTerminal(api::TaskState s) { return s > api::TASK_STATE_RUNNING; }

}  // namespace

// Runs one task (see task_manager.h). The thread is the only user of the controller.
class TaskRunner {
 public:
  TaskRunner(TaskManager* manager, const api::Task& task)
      : manager_(manager), task_(task), wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    thread_ = std::thread([this] { Run(); });
  }
  // Ends the thread; the container is left as it is.
  ~TaskRunner() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    Wake();
    thread_.join();
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  // A newer version of the task from the managers: its desired state and spec; the observed
  // status stays the runner's.
  void Update(const api::Task& task) {
    bool changed;
    {
      absl::MutexLock lock(&mu_);
      changed = task.desired_state() != task_.desired_state();
      api::TaskStatus status = task_.status();
      task_ = task;
      *task_.mutable_status() = std::move(status);
    }
    if (changed) Wake();
  }
  // The task left the assignment: stop it, remove its container, forget it.
  void Remove() {
    {
      absl::MutexLock lock(&mu_);
      removed_ = true;
    }
    Wake();
  }
  bool finished() const {
    absl::MutexLock lock(&mu_);
    return finished_;
  }
  api::Task task() const {
    absl::MutexLock lock(&mu_);
    return task_;
  }

 private:
  void Run();
  void Drive(Controller& c);
  // Records and reports a state the task reached; states never go backwards.
  void Report(api::TaskState state, const std::string& message, const std::string& err = "",
              const std::optional<ExitStatus>& exit = std::nullopt);
  void ReportExit(const ExitStatus& e);
  // Waits until the managers want the task to start or stop, or the runner must end; false
  // when it must end.
  bool AwaitStartOrStop();

  api::TaskState state() const {
    absl::MutexLock lock(&mu_);
    return task_.status().state();
  }
  bool shutdown_wanted() const {
    absl::MutexLock lock(&mu_);
    return removed_ || task_.desired_state() > api::TASK_STATE_COMPLETE;
  }
  bool stopping() const {
    absl::MutexLock lock(&mu_);
    return stopping_;
  }

  // Cuts a wait for the container short: the desired state changed or the runner must end.
  void Wake() {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
  }
  void DrainWakes() {
    uint64_t n;
    (void)!read(wake_fd_, &n, sizeof n);
  }

  TaskManager* const manager_;
  mutable absl::Mutex mu_;
  api::Task task_ ABSL_GUARDED_BY(mu_);
  bool removed_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  const int wake_fd_;  // an eventfd: Wake() makes it readable, DrainWakes() empties it
  std::thread thread_;
};

void TaskRunner::Run() {
  const std::string id = task().id();
  pthread_setname_np(pthread_self(), absl::StrCat("task-", id.substr(0, 10)).c_str());
  std::unique_ptr<Controller> c =
      manager_->options_.executor->NewController(task(), manager_->Deps());
  if (!IsTerminal(state())) {
    if (state() < api::TASK_STATE_ACCEPTED) Report(api::TASK_STATE_ACCEPTED, "accepted");
    Drive(*c);
  }
  // The task is over (or the agent stops): keep the container for inspection until the task
  // leaves the assignment.
  {
    absl::MutexLock lock(&mu_);
    auto wake = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return removed_ || stopping_; };
    mu_.Await(absl::Condition(&wake));
    if (stopping_) return;
  }
  if (absl::Status s = c->Remove(); !s.ok()) {
    log::Warn(kLog, "removing a task's container failed", {{"task", id}, {"error", s}});
  }
  if (absl::Status s = manager_->options_.db->Delete(id); !s.ok()) {
    log::Warn(kLog, "forgetting a task failed", {{"task", id}, {"error", s}});
  }
  absl::MutexLock lock(&mu_);
  finished_ = true;
}

bool TaskRunner::AwaitStartOrStop() {
  absl::MutexLock lock(&mu_);
  auto wake = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return stopping_ || removed_ || task_.desired_state() >= api::TASK_STATE_RUNNING;
  };
  mu_.Await(absl::Condition(&wake));
  return !stopping_;
}

void TaskRunner::Drive(Controller& c) {
  const absl::Duration poll = manager_->options_.poll;
  if (state() >= api::TASK_STATE_READY) {
    if (absl::Status s = c.Resume(); !s.ok()) {
      (void)c.Terminate();
      return Report(api::TASK_STATE_FAILED, "resuming failed",
                    absl::StrCat("task: taking the container over failed: ", s.message()));
    }
  }
  if (state() < api::TASK_STATE_READY) {
    if (shutdown_wanted()) return Report(api::TASK_STATE_SHUTDOWN, "shut down before it started");
    Report(api::TASK_STATE_PREPARING, "preparing");
    if (absl::Status s = c.Prepare(); !s.ok()) {
      const bool reject =
          s.code() == absl::StatusCode::kInvalidArgument || s.code() == absl::StatusCode::kNotFound;
      return Report(reject ? api::TASK_STATE_REJECTED : api::TASK_STATE_FAILED, "preparing failed",
                    std::string(s.message()));
    }
    Report(api::TASK_STATE_READY, "prepared");
  }
  if (state() < api::TASK_STATE_RUNNING) {
    if (!AwaitStartOrStop()) return;
    if (shutdown_wanted()) return Report(api::TASK_STATE_SHUTDOWN, "shut down before it started");
    // A container an earlier agent started is waited for, not started again.
    if (!c.Started().value_or(false)) {
      Report(api::TASK_STATE_STARTING, "starting");
      if (absl::Status s = c.Start(); !s.ok()) {
        return Report(api::TASK_STATE_FAILED, "starting failed", std::string(s.message()));
      }
    }
    // With a health check, the task runs once the check first passes.
    while (c.CheckHealth() == Health::kStarting) {
      DrainWakes();
      if (stopping()) return;
      if (shutdown_wanted()) break;
      absl::StatusOr<std::optional<ExitStatus>> exit = c.Wait(poll, wake_fd_);
      if (exit.ok() && exit->has_value()) return ReportExit(**exit);
    }
    if (!shutdown_wanted()) {
      if (c.CheckHealth() == Health::kUnhealthy) {
        (void)c.Shutdown();
        return Report(api::TASK_STATE_FAILED, "unhealthy", "task: container unhealthy");
      }
      Report(api::TASK_STATE_RUNNING, "started");
    }
  }
  while (!stopping()) {
    DrainWakes();
    if (shutdown_wanted()) {
      if (absl::Status s = c.Shutdown(); !s.ok()) {
        log::Warn(kLog, "stopping a task's container failed; killing it",
                  {{"task", task().id()}, {"error", s}});
        (void)c.Terminate();
      }
      absl::StatusOr<std::optional<ExitStatus>> exit = c.Wait(absl::ZeroDuration(), -1);
      return Report(api::TASK_STATE_SHUTDOWN, "shutdown", "",
                    exit.ok() ? *exit : std::optional<ExitStatus>());
    }
    absl::StatusOr<std::optional<ExitStatus>> exit = c.Wait(poll, wake_fd_);
    if (!exit.ok()) {
      return Report(api::TASK_STATE_FAILED, "lost the container",
                    absl::StrCat("task: ", exit.status().message()));
    }
    if (exit->has_value()) return ReportExit(**exit);
    if (c.CheckHealth() == Health::kUnhealthy) {
      (void)c.Shutdown();
      return Report(api::TASK_STATE_FAILED, "unhealthy", "task: container unhealthy");
    }
  }
}

void TaskRunner::ReportExit(const ExitStatus& e) {
  if (!e.error.empty()) {
    return Report(api::TASK_STATE_FAILED, "failed", absl::StrCat("task: ", e.error), e);
  }
  if (e.oom_killed) return Report(api::TASK_STATE_FAILED, "failed", "task: OOM killed", e);
  if (e.exit_code != 0) {
    return Report(api::TASK_STATE_FAILED, "failed",
                  absl::StrCat("task: non-zero exit (", e.exit_code, ")"), e);
  }
  Report(api::TASK_STATE_COMPLETE, "finished", "", e);
}

void TaskRunner::Report(api::TaskState state, const std::string& message, const std::string& err,
                        const std::optional<ExitStatus>& exit) {
  api::Task copy;
  {
    absl::MutexLock lock(&mu_);
    if (state <= task_.status().state()) return;
    api::TaskStatus* st = task_.mutable_status();
    st->set_state(state);
    st->set_message(message);
    st->set_err(err);
    *st->mutable_timestamp() = ToTimestamp(manager_->options_.clock->Now());
    if (exit) st->mutable_container()->set_exit_code(exit->exit_code);
    if (exit) st->mutable_container()->set_signal(exit->signal);
    if (exit) st->mutable_container()->set_oom_killed(exit->oom_killed);
    copy = task_;
  }
  // Recorded before it is reported where a restart needs it (task_db.h).
  if (state == api::TASK_STATE_ACCEPTED || state >= api::TASK_STATE_RUNNING) {
    if (absl::Status s = manager_->options_.db->Put(copy, /*sync=*/state > api::TASK_STATE_RUNNING);
        !s.ok()) {
      log::Error(kLog, "recording a task's state failed", {{"task", copy.id()}, {"error", s}});
    }
  }
  log::Info(kLog, "task state",
            {{"task", copy.id()}, {"state", api::TaskState_Name(state)}, {"err", err}});
  manager_->options_.sink(copy.id(), copy.status());
}

TaskManager::TaskManager(Options options) : options_(std::move(options)) {}

TaskManager::~TaskManager() {
  std::map<std::string, std::unique_ptr<TaskRunner>> runners;
  {
    absl::MutexLock lock(&mu_);
    runners.swap(runners_);
  }
  runners.clear();  // joins each runner's thread
}

Dependencies TaskManager::Deps() {
  Dependencies d;
  d.secret = [this](const std::string& id) -> std::optional<api::Secret> {
    absl::MutexLock lock(&mu_);
    auto it = secrets_.find(id);
    if (it == secrets_.end()) return std::nullopt;
    return it->second;
  };
  d.config = [this](const std::string& id) -> std::optional<api::Config> {
    absl::MutexLock lock(&mu_);
    auto it = configs_.find(id);
    if (it == configs_.end()) return std::nullopt;
    return it->second;
  };
  return d;
}

absl::Status TaskManager::Restore() {
  absl::StatusOr<std::vector<api::Task>> tasks = options_.db->List();
  if (!tasks.ok()) return tasks.status();
  absl::MutexLock lock(&mu_);
  for (const api::Task& t : *tasks) {
    if (!runners_.count(t.id())) runners_[t.id()] = std::make_unique<TaskRunner>(this, t);
  }
  return absl::OkStatus();
}

void TaskManager::UpdateTaskLocked(const api::Task& task) {
  // Runners of removed tasks that are done go now.
  for (auto it = runners_.begin(); it != runners_.end();) {
    it = it->second->finished() ? runners_.erase(it) : std::next(it);
  }
  auto it = runners_.find(task.id());
  if (it != runners_.end()) {
    it->second->Update(task);
    return;
  }
  runners_[task.id()] = std::make_unique<TaskRunner>(this, task);
}

void TaskManager::SetAssignments(const std::vector<api::Task>& tasks,
                                 const std::vector<api::Secret>& secrets,
                                 const std::vector<api::Config>& configs) {
  absl::MutexLock lock(&mu_);
  secrets_.clear();
  for (const api::Secret& s : secrets) secrets_[s.id()] = s;
  configs_.clear();
  for (const api::Config& c : configs) configs_[c.id()] = c;
  std::set<std::string> assigned;
  for (const api::Task& t : tasks) {
    assigned.insert(t.id());
    UpdateTaskLocked(t);
  }
  for (auto& [id, runner] : runners_) {
    if (!assigned.count(id)) runner->Remove();
  }
}

void TaskManager::UpdateTask(const api::Task& task) {
  absl::MutexLock lock(&mu_);
  UpdateTaskLocked(task);
}

void TaskManager::RemoveTask(const std::string& task_id) {
  absl::MutexLock lock(&mu_);
  auto it = runners_.find(task_id);
  if (it != runners_.end()) it->second->Remove();
}

void TaskManager::UpdateSecret(const api::Secret& secret) {
  absl::MutexLock lock(&mu_);
  secrets_[secret.id()] = secret;
}
void TaskManager::RemoveSecret(const std::string& id) {
  absl::MutexLock lock(&mu_);
  secrets_.erase(id);
}
void TaskManager::UpdateConfig(const api::Config& config) {
  absl::MutexLock lock(&mu_);
  configs_[config.id()] = config;
}
void TaskManager::RemoveConfig(const std::string& id) {
  absl::MutexLock lock(&mu_);
  configs_.erase(id);
}

std::vector<api::Task> TaskManager::Tasks() const {
  absl::MutexLock lock(&mu_);
  std::vector<api::Task> out;
  for (const auto& [id, runner] : runners_) {
    if (!runner->finished()) out.push_back(runner->task());
  }
  return out;
}

}  // namespace swarm::agent

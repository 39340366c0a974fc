// A fake executor for the agent's tests: containers live in the executor (as real ones live
// on the machine), so a second TaskManager or Agent finds the first one's. The image names the
// behaviour: "run" runs until stopped or told to Exit(), "missing" cannot be prepared,
// "healthcheck" starts with a health check that is starting until told otherwise.
// Test-only; thread-safe.
#ifndef SWARM_AGENT_TESTING_FAKE_EXECUTOR_H_
#define SWARM_AGENT_TESTING_FAKE_EXECUTOR_H_

#include <csignal>
#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "agent/executor.h"

namespace swarm::agent::testing {

class FakeExecutor final : public Executor {
 public:
  struct Container {
    std::string image;
    bool started = false;
    std::optional<ExitStatus> exit;
    Health health = Health::kNone;
    int starts = 0;
    bool removed = false;
  };

  api::NodeDescription Describe() override {
    api::NodeDescription d;
    d.set_hostname("fake-host");
    return d;
  }
  std::unique_ptr<Controller> NewController(const api::Task& task, const Dependencies&) override;

  void Exit(const std::string& task_id, int code) {
    absl::MutexLock lock(&mu);
    containers[task_id].exit = ExitStatus{code};
  }
  void SetHealth(const std::string& task_id, Health h) {
    absl::MutexLock lock(&mu);
    containers[task_id].health = h;
  }
  Container Get(const std::string& task_id) {
    absl::MutexLock lock(&mu);
    return containers[task_id];
  }

  absl::Mutex mu;
  std::map<std::string, Container> containers ABSL_GUARDED_BY(mu);
};

class FakeController final : public Controller {
 public:
  FakeController(FakeExecutor* e, api::Task task) : e_(e), task_(std::move(task)) {}
  absl::Status Prepare() override {
    const std::string& image = task_.spec().container().image();
    if (image == "missing") return absl::NotFoundError("image missing not found");
    absl::MutexLock lock(&e_->mu);
    auto& c = e_->containers[task_.id()];
    c.image = image;
    c.removed = false;
    if (image == "healthcheck" && c.health == Health::kNone) c.health = Health::kStarting;
    return absl::OkStatus();
  }
  absl::Status Start() override {
    absl::MutexLock lock(&e_->mu);
    auto& c = e_->containers[task_.id()];
    c.started = true;
    ++c.starts;
    return absl::OkStatus();
  }
  absl::StatusOr<bool> Started() override {
    absl::MutexLock lock(&e_->mu);
    return e_->containers[task_.id()].started;
  }
  absl::StatusOr<std::optional<ExitStatus>> Wait(absl::Duration timeout, int) override {
    absl::MutexLock lock(&e_->mu);
    auto done = [this]() ABSL_SHARED_LOCKS_REQUIRED(e_->mu) {
      return e_->containers[task_.id()].exit.has_value();
    };
    e_->mu.AwaitWithTimeout(absl::Condition(&done), timeout);
    return e_->containers[task_.id()].exit;
  }
  Health CheckHealth() override {
    absl::MutexLock lock(&e_->mu);
    return e_->containers[task_.id()].health;
  }
  absl::Status Shutdown() override {
    absl::MutexLock lock(&e_->mu);
    auto& c = e_->containers[task_.id()];
    if (!c.exit) c.exit = ExitStatus{143, SIGTERM};
    return absl::OkStatus();
  }
  absl::Status Terminate() override { return Shutdown(); }
  absl::Status Remove() override {
    absl::MutexLock lock(&e_->mu);
    e_->containers[task_.id()].removed = true;
    return absl::OkStatus();
  }

 private:
  FakeExecutor* e_;
  api::Task task_;
};

inline std::unique_ptr<Controller> FakeExecutor::NewController(const api::Task& task,
                                                               const Dependencies&) {
  return std::make_unique<FakeController>(this, task);
}

}  // namespace swarm::agent::testing

#endif  // SWARM_AGENT_TESTING_FAKE_EXECUTOR_H_

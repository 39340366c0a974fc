// The executor interface: what the agent's task manager needs from whatever runs tasks. One
// Controller per task drives that task's container through its life (prepare, start, wait,
// shutdown, terminate, remove); the Executor makes controllers and describes the node. The
// production executor runs containers with our runtime (container_executor.h); tests use
// fakes.
//
// Controllers are idempotent where an agent restart needs it: Prepare adopts the container an
// earlier call (or an earlier agent process) made for the same task, so a restarted agent
// picks up its still-running containers instead of starting duplicates.
//
// Thread-safety: an Executor is thread-safe; a Controller is used by one thread at a time
// (its task's runner).
#ifndef SWARM_AGENT_EXECUTOR_H_
#define SWARM_AGENT_EXECUTOR_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/objects.pb.h"

namespace swarm::agent {

// How a task's process ended.
struct ExitStatus {
  int exit_code = 0;  // 128 + signal when killed, as Docker reports it
  int signal = 0;
  bool oom_killed = false;
  std::string error;  // set when the process never ran
};

enum class Health { kNone, kStarting, kHealthy, kUnhealthy };

class Controller {
 public:
  virtual ~Controller() = default;
  // Makes everything the task needs and creates its container, not started (pulls the image
  // when missing). INVALID_ARGUMENT or NOT_FOUND when the task cannot run here at all (the
  // task is then REJECTED); other errors fail it.
  virtual absl::Status Prepare() = 0;
  virtual absl::Status Start() = 0;
  // Whether the task's container has been started (and not removed): after an agent restart,
  // a started container is waited for, not started again.
  virtual absl::StatusOr<bool> Started() = 0;
  // Waits up to timeout for the process to end; nullopt while it still runs. May return
  // early (nullopt) once wake_fd (-1: none) is readable: the task runner's sign that the
  // task changed, e.g. that it is to shut down.
  virtual absl::StatusOr<std::optional<ExitStatus>> Wait(absl::Duration timeout, int wake_fd) = 0;
  virtual Health CheckHealth() = 0;
  // The stop signal, then SIGKILL after the task's stop grace period; returns once it ended.
  virtual absl::Status Shutdown() = 0;
  // SIGKILL at once.
  virtual absl::Status Terminate() = 0;
  // Removes the container and what Prepare made; the task is forgotten.
  virtual absl::Status Remove() = 0;
  // The agent restarted and took this task over from the one that prepared it: reconnect
  // what that agent process held for it (the container's networks). Called once, before
  // anything else, for a task that was prepared before.
  virtual absl::Status Resume() { return absl::OkStatus(); }
};

// The secrets and configs a task refers to, by ID (what the dispatcher sent with it).
struct Dependencies {
  std::function<std::optional<api::Secret>(const std::string& id)> secret;
  std::function<std::optional<api::Config>(const std::string& id)> config;
};

class Executor {
 public:
  virtual ~Executor() = default;
  // The node as the managers should know it: hostname, platform, resources, engine labels.
  virtual api::NodeDescription Describe() = 0;
  virtual std::unique_ptr<Controller> NewController(const api::Task& task,
                                                    const Dependencies& deps) = 0;
  // The task's log file in the json-file format of agent/runtime/logs.h, for `service logs`;
  // UNIMPLEMENTED for executors that keep no logs, NOT_FOUND when the task has no container.
  virtual absl::StatusOr<std::string> LogPath(const api::Task& /*task*/) {
    return absl::UnimplementedError("this node's executor keeps no task logs");
  }
};

}  // namespace swarm::agent

#endif  // SWARM_AGENT_EXECUTOR_H_

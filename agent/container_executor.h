// ContainerExecutor: the production executor. Each task runs as one container of our runtime
// (agent/runtime), named after the task ("web.1.<task id>"), which is how a restarted agent
// finds the container of a task again. Prepare pulls the image through the registry client
// when the image store does not have it, then creates the container from the task's spec:
// command and arguments over the image's entry point and cmd, environment, user, working
// directory, hostname, mounts, secrets and configs as files on the container's tmpfs,
// capabilities, read-only root, ulimits, CPU/memory/pids limits, stop signal and grace period,
// health check. A task on overlay networks runs in the network namespace the node's
// NetworkManager attaches to them (with the embedded DNS server in its resolv.conf), from
// Prepare until its process ends or its container is removed; other tasks get network mode
// none (loopback only).
//
// Owner: the agent. Thread-safety: thread-safe (the runtime and image store are).
#ifndef SWARM_AGENT_CONTAINER_EXECUTOR_H_
#define SWARM_AGENT_CONTAINER_EXECUTOR_H_

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agent/executor.h"
#include "agent/network_manager.h"
#include "agent/runtime/image_store.h"
#include "agent/runtime/registry.h"
#include "agent/runtime/runtime.h"

namespace swarm::agent {

class ContainerExecutor final : public Executor {
 public:
  struct Options {
    runtime::Runtime* runtime = nullptr;
    runtime::ImageStore* images = nullptr;
    // How images are pulled (insecure registries, credentials).
    runtime::RegistryOptions registry;
    // Reported hostname; empty: the machine's.
    std::string hostname;
    // Engine labels (`swarmd --label k=v`), matched by `engine.labels.k` constraints.
    std::map<std::string, std::string> labels;
    // Attaches tasks to overlay networks; null: every task gets network mode none.
    NetworkManager* networks = nullptr;
  };

  explicit ContainerExecutor(Options options) : options_(std::move(options)) {}

  api::NodeDescription Describe() override;
  std::unique_ptr<Controller> NewController(const api::Task& task,
                                            const Dependencies& deps) override;
  absl::StatusOr<std::string> LogPath(const api::Task& task) override;

  const Options& options() const { return options_; }
  // Makes sure the image is in the image store, pulling it when it is not, with the service's
  // registry_auth (--with-registry-auth; empty: the node's own credentials). Tasks that need
  // the same image at once wait for one pull.
  absl::Status EnsureImage(const std::string& ref, const std::string& registry_auth = "");

 private:
  const Options options_;
  absl::Mutex pulls_mu_;
  // One lock per image being pulled; entries stay (one per image ever pulled).
  std::map<std::string, std::unique_ptr<absl::Mutex>> pulls_ ABSL_GUARDED_BY(pulls_mu_);
};

// "SIGTERM", "TERM" or "15" as a signal number; INVALID_ARGUMENT otherwise.
absl::StatusOr<int> ParseSignal(const std::string& name);

}  // namespace swarm::agent

#endif  // SWARM_AGENT_CONTAINER_EXECUTOR_H_

// SimulatedExecutor: an executor whose "containers" are records in a directory, for
// multi-process tests and scale benchmarks of the orchestration without real containers
// (`swarmd --executor simulated`). A task reports the same states a real one would.
//
// What a task does comes from its container args:
//   (none) or ["run"]               runs until stopped
//   ["exit", CODE, DURATION]        exits with CODE after DURATION ("2s", "500ms")
// An image whose name starts with "missing" cannot be prepared (the task is REJECTED).
//
// Each container is a file <dir>/<task name> holding its start time and, once it ended, its
// exit: a simulated container survives an agent restart the way a real one does, and a
// restarted agent adopts it. Task templates are expanded as for a real container (a bad one
// rejects the task), and <dir>/<task name>.spec keeps what they gave ("hostname=...",
// "env=...", "mount=SOURCE:TARGET" lines) for tests to check.
//
// Thread-safety: thread-safe; each controller touches only its own file.
#ifndef SWARM_AGENT_SIM_EXECUTOR_H_
#define SWARM_AGENT_SIM_EXECUTOR_H_

#include <map>
#include <string>

#include "agent/executor.h"
#include "common/clock.h"

namespace swarm::agent {

class SimulatedExecutor final : public Executor {
 public:
  struct Options {
    std::string dir;       // where the containers' records live
    std::string hostname;  // reported
    std::map<std::string, std::string> labels;
    int64_t nano_cpus = 4'000'000'000;
    int64_t memory_bytes = 8LL << 30;
    Clock* clock = &Clock::Real();
  };

  explicit SimulatedExecutor(Options options);

  api::NodeDescription Describe() override;
  std::unique_ptr<Controller> NewController(const api::Task& task,
                                            const Dependencies& deps) override;

 private:
  const Options options_;
};

}  // namespace swarm::agent

#endif  // SWARM_AGENT_SIM_EXECUTOR_H_

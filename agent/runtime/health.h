// Health checks with Docker's HEALTHCHECK semantics: the test command runs inside the
// container's namespaces (and cgroup, with its user, capabilities and seccomp filter) every
// interval; a run that exits non-zero or outlives the timeout is a failure; `retries`
// consecutive failures make the container unhealthy, one success makes it healthy;
// failures during the start period do not count. The status starts as "starting".
//
// The shim owns a HealthMonitor and drives it from its poll loop (so checks go on while the
// daemon restarts); every result is written to health.json in the container's directory,
// which is how the agent (ReadHealth) sees it. NextHealth is the pure decision.
// Thread-safety: a HealthMonitor belongs to one thread (the shim's).
#ifndef SWARM_AGENT_RUNTIME_HEALTH_H_
#define SWARM_AGENT_RUNTIME_HEALTH_H_

#include <sys/types.h>

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/runtime/spec.h"

namespace swarm::agent::runtime {

enum class HealthStatus { kNone, kStarting, kHealthy, kUnhealthy };
std::string HealthStatusName(HealthStatus status);

struct HealthState {
  HealthStatus status = HealthStatus::kStarting;
  int failing_streak = 0;
  int last_exit_code = 0;
  std::string last_output;  // the last 4 KiB of the last check's output
  absl::Time last_check;
};

// The state after one check.
HealthState NextHealth(HealthState state, bool success, bool in_start_period, int retries);

absl::Status WriteHealth(const std::string& container_dir, const HealthState& state);
// kNone when the container has no health check.
absl::StatusOr<HealthState> ReadHealth(const std::string& container_dir);

// A running check: its pid (for the timeout), a pidfd (readable when it ends) and the read
// end of its output pipe.
struct ProbeProcess {
  pid_t pid = -1;
  int pidfd = -1;
  int output = -1;
};

class HealthMonitor {
 public:
  using Launcher = std::function<absl::StatusOr<ProbeProcess>()>;
  HealthMonitor(HealthCheckSpec spec, std::string container_dir, Launcher launch);

  // Call once the container's process runs.
  void Begin(absl::Time now);
  // fds the owner polls for readability (-1 when none).
  int output_fd() const { return probe_.output; }
  int pidfd() const { return probe_.pidfd; }
  pid_t probe_pid() const { return probe_.pid; }
  // How long the owner may sleep before calling Service.
  absl::Duration Timeout(absl::Time now) const;
  // Starts due checks, collects output, finishes ended or timed-out checks.
  void Service(absl::Time now);
  // Stops a running check (the container is gone).
  void Stop();
  const HealthState& state() const { return state_; }

 private:
  void Finish(bool success, int exit_code, absl::Time now);

  const HealthCheckSpec spec_;
  const std::string dir_;
  Launcher launch_;
  bool begun_ = false;
  absl::Time started_at_, next_check_, deadline_;
  ProbeProcess probe_;
  std::string output_;
  HealthState state_;
};

}  // namespace swarm::agent::runtime

#endif  // SWARM_AGENT_RUNTIME_HEALTH_H_

// The progress `service create|update|scale|rollback` show until a service has converged, as
// Docker's do:
//
//   overall progress: 2 out of 3 tasks
//   1/3: running   [==================================================>]
//   2/3: preparing [=================================>                 ]
//   3/3: no suitable node (1 node not available for new tasks; ...)
//   verify: Waiting 5 seconds to verify that tasks are stable...
//   verify: Service converged
//
// On a terminal the block is redrawn in place with bars; otherwise a line is printed each time
// a slot's state changes. Converged means every slot (a node for global services) runs a task
// of the current spec, the update (if any) completed, and that stayed so for the verify period;
// jobs converge when their tasks have completed. Waiting ends in an error with the reason when
// the update or rollback paused, the update was rolled back, a slot failed
// kMaxFailuresPerSlot times during the wait, or nothing changed for the stall period while a
// task reports an error (a task the scheduler cannot place stays pending with "no suitable
// node (...)").
//
// Evaluate is pure (one poll's service and tasks in, the lines and verdict out);
// WaitForConvergence is the loop around it, reading through a ProgressSource and sleeping on
// the injected Clock, so tests drive it with a fake source and a clock that advances itself.
//
// Thread-safety: none needed; one command runs on one thread.
#ifndef SWARM_CLI_PROGRESS_H_
#define SWARM_CLI_PROGRESS_H_

#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "proto/objects.pb.h"

namespace swarm::cli {

inline constexpr int kMaxFailuresPerSlot = 3;

// What progress reads: the service and all its tasks (the control API in swarmctl).
class ProgressSource {
 public:
  virtual ~ProgressSource() = default;
  virtual absl::StatusOr<api::Service> GetService() = 0;
  virtual absl::StatusOr<std::vector<api::Task>> ListTasks() = 0;
};

struct ProgressOptions {
  bool terminal = false;  // redraw in place with bars; else plain lines on changes
  bool quiet = false;     // wait, print nothing
  bool rollback = false;  // waiting for a rollback: a completed rollback is the goal
  absl::Duration poll = absl::Milliseconds(200);
  absl::Duration verify = absl::Seconds(5);
  absl::Duration stall = absl::Seconds(60);
};

// One poll's view.
struct ProgressView {
  std::string overall;  // "overall progress: 2 out of 3 tasks"
  // Per slot or node: the ID ("1/3", a node ID) and the task's state ("running") or error.
  struct Line {
    std::string id;
    std::string state;
    int step = 0;  // how far the state is towards running, 0..kSteps
    bool error = false;
  };
  std::vector<Line> lines;
  bool converged = false;
  bool is_job = false;
  // Set when waiting must stop: why the service cannot converge.
  std::string failure;
};

// Steps of the bar: new, pending, assigned, accepted, preparing, ready, starting, running.
inline constexpr int kSteps = 9;

ProgressView Evaluate(const api::Service& service, const std::vector<api::Task>& tasks,
                      bool rollback);

// The block as a terminal shows it: overall line then one line per slot with a 50-character
// bar ("[=====>     ]"), errors in place of the bar.
std::vector<std::string> RenderProgress(const ProgressView& view, bool bars);

// Polls until converged (OK, after "verify: Service converged") or failed
// (FAILED_PRECONDITION "service <name> did not converge: <reason>"); errors of the source end
// it too.
absl::Status WaitForConvergence(ProgressSource& source, Clock& clock, std::ostream& out,
                                const ProgressOptions& options);

}  // namespace swarm::cli

#endif  // SWARM_CLI_PROGRESS_H_

// LogPublisher: the agent's side of `service logs`. For one session with a manager it listens
// for the log subscriptions of its node (LogBroker.ListenSubscriptions) and serves each one
// that selects tasks this node runs: it reads the tasks' log files (agent/runtime/logs.h) and
// sends the lines on one PublishLogs stream per subscription, in file order per task (which
// is time order). Without follow, the tasks are read one after another up to their current
// end, then the stream is closed (PublishLogsMessage.close) even when no task matched, so the
// manager need not wait for this node. With follow, each task is read on its own thread and
// new lines go out as they are written, until the manager closes the subscription or the
// session ends.
//
// Options, per task: streams (stdout/stderr), since (lines at or after), then tail (see
// LogSubscriptionOptions.tail: n > 0 skips n lines, n < 0 keeps the last -n-1).
//
// Owner: the Agent, one Run per session (on the session's "agent-logs" thread). Threads: one
// "agent-logsub" per subscription, plus one per task with follow; all joined before Run
// returns. Thread-safety: Run may run once at a time per publisher.
#ifndef SWARM_AGENT_LOG_PUBLISHER_H_
#define SWARM_AGENT_LOG_PUBLISHER_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/runtime/logs.h"
#include "proto/logbroker.grpc.pb.h"
#include "proto/objects.pb.h"

namespace swarm::agent {

class LogPublisher {
 public:
  struct Options {
    // The tasks this node runs now.
    std::function<std::vector<api::Task>()> tasks;
    // A task's log file.
    std::function<absl::StatusOr<std::string>(const api::Task&)> log_path;
    // How often a followed file is checked for new lines.
    absl::Duration poll_interval = absl::Milliseconds(100);
  };
  explicit LogPublisher(Options options) : options_(std::move(options)) {}

  // Serves subscriptions until the listen call ends (cancel `listen` to end it); returns why.
  absl::Status Run(api::LogBroker::StubInterface* stub, grpc::ClientContext* listen);

  // Reads one task's log for a subscription's options, calling sink for each selected entry;
  // `running` stops the read when it returns false; `idle` (optional) is called while a
  // followed file has no new lines.
  static absl::Status ReadTask(const std::string& path, const api::LogSubscriptionOptions& options,
                               const std::function<bool()>& running,
                               const std::function<void(const runtime::LogEntry&)>& sink,
                               absl::Duration poll_interval = absl::Milliseconds(100),
                               const std::function<void()>& idle = nullptr);

 private:
  Options options_;
};

}  // namespace swarm::agent

#endif  // SWARM_AGENT_LOG_PUBLISHER_H_

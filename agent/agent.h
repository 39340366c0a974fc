// Agent: the worker side of a node, on every node of the swarm (managers run one too). It
// keeps a session with a dispatcher (any manager), reports the node's description, heartbeats,
// takes the node's assignments (tasks, and the secrets and configs they use) into the task
// manager, and sends the task manager's state changes back in batches.
//
// Session lifecycle: Session() answers with a session ID and the list of managers; the agent
// then heartbeats at the period the dispatcher returns, streams Assignments (a complete set,
// then changes) and sends UpdateTaskStatus batches. When any of these fails (a manager dies,
// the session expires, the leader changes), every call of the session is cancelled and the
// agent opens a new session with the next manager of the list, after a jittered exponential
// backoff. Tasks keep running meanwhile; the new session's complete assignment set is applied
// to them as they are, so nothing healthy restarts. Statuses not yet acknowledged are sent
// again on the next session (only each task's latest).
//
// Owner: the node daemon. Thread-safety: Start/Stop from one thread; status reports come from
// the task runners' threads. Threads: "agent-session" (the session loop and its Session
// stream), "agent-assign" (the Assignments stream) and "agent-send" (heartbeats and status
// batches), the last two per session, and "agent-logs" (log subscriptions, log_publisher.h)
// with its readers.
#ifndef SWARM_AGENT_AGENT_H_
#define SWARM_AGENT_AGENT_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agent/endpoints.h"
#include "agent/executor.h"
#include "agent/log_publisher.h"
#include "agent/task_db.h"
#include "agent/task_manager.h"
#include "common/clock.h"
#include "common/random.h"
#include "proto/dispatcher.grpc.pb.h"

namespace swarm::agent {

class Agent {
 public:
  struct Options {
    // Managers' addresses (host:port) to open sessions with, tried in turn; replaced by the
    // list each session brings.
    std::vector<std::string> managers;
    std::shared_ptr<grpc::ChannelCredentials> credentials;
    grpc::ChannelArguments channel_arguments;
    Executor* executor = nullptr;
    TaskDb* db = nullptr;
    Clock* clock = &Clock::Real();
    Random* random = nullptr;
    absl::Duration min_backoff = absl::Milliseconds(100);
    absl::Duration max_backoff = absl::Seconds(5);
    // Task statuses go to the dispatcher as they are reported, at most one batch per
    // send_interval (the least time between two batches).
    absl::Duration send_interval = absl::Milliseconds(10);
    // How often the node's description is checked for changes (re-sent by a new session).
    absl::Duration describe_interval = absl::Seconds(30);
    // Called with the managers' addresses each session brings, so the node can remember them
    // (a restarted agent must find a manager even when the one it joined through is gone).
    std::function<void(const std::vector<std::string>&)> on_managers;
    // Hears each overlay network's endpoint records as they change (see agent/endpoints.h).
    EndpointTable::Listener on_endpoints;
  };

  // Resumes the tasks of the local database, then starts the session loop.
  static absl::StatusOr<std::unique_ptr<Agent>> Start(Options options);
  // Stop()
  ~Agent();
  // Ends the session and the task runners; containers keep running.
  void Stop();

  // The session's ID, empty while there is none (tests, `swarmctl info`).
  std::string session_id() const;
  TaskManager& tasks() { return *tasks_; }

 private:
  struct Session;
  explicit Agent(Options options);
  void Loop();
  // One session with one manager; returns why it ended.
  absl::Status RunSession(const std::string& addr);
  void AssignmentsLoop(Session& s);
  void SendLoop(Session& s);
  // Serves the node's log subscriptions for the session ("agent-logs").
  void LogsLoop(Session& s);
  void Report(const std::string& task_id, const api::TaskStatus& status);

  Options options_;
  std::unique_ptr<TaskManager> tasks_;
  std::unique_ptr<EndpointTable> endpoints_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The session in progress, so Stop can cancel its calls.
  Session* session_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<std::string> managers_ ABSL_GUARDED_BY(mu_);
  // The dispatcher's heartbeat period, as its last answer said; caps the reconnect backoff.
  absl::Duration heartbeat_period_ ABSL_GUARDED_BY(mu_) = absl::InfiniteDuration();
  // Latest status of each task not yet acknowledged by a dispatcher.
  std::map<std::string, api::TaskStatus> unsent_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace swarm::agent

#endif  // SWARM_AGENT_AGENT_H_

#include "agent/agent.h"

#include <pthread.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/proto_time.h"
#include "common/status_macros.h"
#include "google/protobuf/util/message_differencer.h"

namespace swarm::agent {
namespace {

constexpr char kLog[] = "agent";
// A session that lasted this long was healthy: the next one starts without backoff.
constexpr absl::Duration kHealthySession = absl::Seconds(10);
// The heartbeat period until the dispatcher says otherwise.
constexpr absl::Duration kDefaultHeartbeat = absl::Seconds(5);

}  // namespace

// The calls of one session; cancelling it ends them all.
struct Agent::Session {
  std::string id;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<api::Dispatcher::Stub> stub;
  grpc::ClientContext session_ctx;
  grpc::ClientContext assignments_ctx;
  grpc::ClientContext logs_ctx;
  absl::Mutex mu;
  bool over ABSL_GUARDED_BY(mu) = false;
  absl::Status why ABSL_GUARDED_BY(mu);
  bool reported ABSL_GUARDED_BY(mu) = false;  // a task status waits to be sent

  // Ends the session (the first reason wins) and cancels its streams.
  void End(absl::Status reason) {
    {
      absl::MutexLock lock(&mu);
      if (over) return;
      over = true;
      why = std::move(reason);
    }
    session_ctx.TryCancel();
    assignments_ctx.TryCancel();
    logs_ctx.TryCancel();
  }
  bool ended() {
    absl::MutexLock lock(&mu);
    return over;
  }
  // Sleeps up to d; false when the session ended meanwhile.
  bool Sleep(absl::Duration d) {
    absl::MutexLock lock(&mu);
    return !mu.AwaitWithTimeout(absl::Condition(&over), d);
  }
  // Wakes AwaitReport.
  void Reported() {
    absl::MutexLock lock(&mu);
    reported = true;
  }
  // Sleeps up to d or until a status is reported; false when the session ended meanwhile.
  bool AwaitReport(absl::Duration d) {
    absl::MutexLock lock(&mu);
    auto wake = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return over || reported; };
    mu.AwaitWithTimeout(absl::Condition(&wake), d);
    reported = false;
    return !over;
  }
};

Agent::Agent(Options options) : options_(std::move(options)), managers_(options_.managers) {}

absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(Options options) {
  if (options.managers.empty()) {
    return absl::InvalidArgumentError("the agent needs the address of at least one manager");
  }
  std::unique_ptr<Agent> a(new Agent(std::move(options)));
  TaskManager::Options t;
  t.executor = a->options_.executor;
  t.db = a->options_.db;
  t.clock = a->options_.clock;
  t.sink = [agent = a.get()](const std::string& id, const api::TaskStatus& s) {
    agent->Report(id, s);
  };
  a->tasks_ = std::make_unique<TaskManager>(std::move(t));
  a->endpoints_ = std::make_unique<EndpointTable>(a->options_.on_endpoints);
  // Statuses recorded but perhaps never sent before the last agent stopped go out first.
  if (absl::StatusOr<std::vector<api::Task>> known = a->options_.db->List(); known.ok()) {
    absl::MutexLock lock(&a->mu_);
    for (const api::Task& task : *known) a->unsent_[task.id()] = task.status();
  }
  RETURN_IF_ERROR(a->tasks_->Restore());
  a->thread_ = std::thread([agent = a.get()] { agent->Loop(); });
  return a;
}

Agent::~Agent() { Stop(); }

void Agent::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (session_ != nullptr) session_->End(absl::CancelledError("the agent is stopping"));
  }
  if (thread_.joinable()) thread_.join();
  tasks_.reset();
}

std::string Agent::session_id() const {
  absl::MutexLock lock(&mu_);
  return session_ == nullptr ? "" : session_->id;
}

void Agent::Report(const std::string& task_id, const api::TaskStatus& status) {
  absl::MutexLock lock(&mu_);
  unsent_[task_id] = status;
  if (session_ != nullptr) session_->Reported();
}

void Agent::Loop() {
  pthread_setname_np(pthread_self(), "agent-session");
  absl::Duration backoff = options_.min_backoff;
  for (size_t attempt = 0;; ++attempt) {
    std::string addr;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      addr = managers_[attempt % managers_.size()];
    }
    const absl::Time began = options_.clock->Now();
    const absl::Status why = RunSession(addr);
    log::Info(kLog, "session ended", {{"manager", addr}, {"reason", why}});
    if (options_.clock->Now() - began >= kHealthySession) backoff = options_.min_backoff;
    // Jittered exponential backoff: half to all of the current step.
    const absl::Duration wait =
        backoff / 2 + absl::Nanoseconds(options_.random->Uniform(
                          static_cast<uint64_t>(absl::ToInt64Nanoseconds(backoff / 2)) + 1));
    absl::MutexLock lock(&mu_);
    // Never wait longer than a heartbeat period: the managers mark a node DOWN after a few
    // missed beats, also while they elect a new leader, so a node that backed off to the
    // ceiling would come back after its tasks had been replaced.
    backoff = std::min({backoff * 2, options_.max_backoff, heartbeat_period_});
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), wait)) return;
  }
}

absl::Status Agent::RunSession(const std::string& addr) {
  Session s;
  s.channel = grpc::CreateCustomChannel(addr, options_.credentials, options_.channel_arguments);
  s.stub = api::Dispatcher::NewStub(s.channel);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::CancelledError("the agent is stopping");
    session_ = &s;
  }
  api::SessionRequest req;
  *req.mutable_description() = options_.executor->Describe();
  std::unique_ptr<grpc::ClientReader<api::SessionMessage>> reader =
      s.stub->Session(&s.session_ctx, req);
  api::SessionMessage msg;
  std::thread assign, send, logs;
  if (reader->Read(&msg)) {
    s.id = msg.session_id();
    log::Info(kLog, "session started", {{"manager", addr}, {"session", s.id}});
    assign = std::thread([this, &s] { AssignmentsLoop(s); });
    send = std::thread([this, &s] { SendLoop(s); });
    logs = std::thread([this, &s] { LogsLoop(s); });
    do {
      std::vector<std::string> managers;
      for (const api::WeightedPeer& p : msg.managers()) {
        if (!p.peer().addr().empty()) managers.push_back(p.peer().addr());
      }
      if (managers.empty()) continue;
      if (options_.on_managers) options_.on_managers(managers);
      absl::MutexLock lock(&mu_);
      managers_ = std::move(managers);
    } while (reader->Read(&msg));
  }
  const grpc::Status st = reader->Finish();
  s.End(st.ok() ? absl::UnavailableError("the dispatcher ended the session") : FromGrpcStatus(st));
  if (assign.joinable()) assign.join();
  if (send.joinable()) send.join();
  if (logs.joinable()) logs.join();
  absl::MutexLock lock(&mu_);
  session_ = nullptr;
  absl::MutexLock slock(&s.mu);
  return s.why;
}

void Agent::AssignmentsLoop(Session& s) {
  pthread_setname_np(pthread_self(), "agent-assign");
  api::AssignmentsRequest req;
  req.set_session_id(s.id);
  std::unique_ptr<grpc::ClientReader<api::AssignmentsMessage>> reader =
      s.stub->Assignments(&s.assignments_ctx, req);
  api::AssignmentsMessage msg;
  while (reader->Read(&msg)) {
    // Peers first: a task in the same message may start on these networks.
    endpoints_->Apply(msg);
    if (msg.type() == api::ASSIGNMENTS_TYPE_COMPLETE) {
      std::vector<api::Task> tasks;
      std::vector<api::Secret> secrets;
      std::vector<api::Config> configs;
      for (const api::AssignmentChange& c : msg.changes()) {
        const api::Assignment& a = c.assignment();
        if (a.has_task()) tasks.push_back(a.task());
        if (a.has_secret()) secrets.push_back(a.secret());
        if (a.has_config()) configs.push_back(a.config());
      }
      tasks_->SetAssignments(tasks, secrets, configs);
      continue;
    }
    // Secrets and configs first: a task in the same message may need them.
    for (int pass = 0; pass < 2; ++pass) {
      for (const api::AssignmentChange& c : msg.changes()) {
        const api::Assignment& a = c.assignment();
        const bool update = c.action() == api::ASSIGNMENT_ACTION_UPDATE;
        if (pass == 0 && a.has_secret()) {
          update ? tasks_->UpdateSecret(a.secret()) : tasks_->RemoveSecret(a.secret().id());
        } else if (pass == 0 && a.has_config()) {
          update ? tasks_->UpdateConfig(a.config()) : tasks_->RemoveConfig(a.config().id());
        } else if (pass == 1 && a.has_task()) {
          update ? tasks_->UpdateTask(a.task()) : tasks_->RemoveTask(a.task().id());
        }
      }
    }
  }
  const grpc::Status st = reader->Finish();
  s.End(st.ok() ? absl::UnavailableError("the dispatcher ended the assignments stream")
                : FromGrpcStatus(st));
}

void Agent::SendLoop(Session& s) {
  pthread_setname_np(pthread_self(), "agent-send");
  absl::Duration period = kDefaultHeartbeat;
  absl::Time next_beat = options_.clock->Now();
  absl::Time next_describe = options_.clock->Now() + options_.describe_interval;
  api::NodeDescription described = options_.executor->Describe();
  absl::Time last_send = absl::InfinitePast();
  // A status goes out as soon as it is reported, but batches are at least send_interval
  // apart: an idle node answers at once, a busy one sends one batch per interval.
  while (s.AwaitReport(options_.send_interval)) {
    if (const absl::Duration since = options_.clock->Now() - last_send;
        since < options_.send_interval && !s.Sleep(options_.send_interval - since)) {
      return;
    }
    const absl::Time now = options_.clock->Now();
    if (now >= next_beat) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      api::HeartbeatRequest req;
      req.set_session_id(s.id);
      api::HeartbeatResponse resp;
      if (grpc::Status st = s.stub->Heartbeat(&ctx, req, &resp); !st.ok()) {
        return s.End(FromGrpcStatus(st));
      }
      if (resp.has_period()) {
        period = FromProtoDuration(resp.period());
        absl::MutexLock lock(&mu_);
        heartbeat_period_ = period;
      }
      // A little early, with jitter, so that beats of many nodes spread out.
      next_beat = now + period * (0.7 + 0.2 * options_.random->Uniform(1000) / 1000.0);
    }
    std::map<std::string, api::TaskStatus> batch;
    {
      absl::MutexLock lock(&mu_);
      batch.swap(unsent_);
    }
    if (!batch.empty()) {
      last_send = now;
      api::UpdateTaskStatusRequest req;
      req.set_session_id(s.id);
      for (const auto& [id, status] : batch) {
        api::TaskStatusUpdate* u = req.add_updates();
        u->set_task_id(id);
        *u->mutable_status() = status;
      }
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      api::UpdateTaskStatusResponse resp;
      if (grpc::Status st = s.stub->UpdateTaskStatus(&ctx, req, &resp); !st.ok()) {
        {
          absl::MutexLock lock(&mu_);
          // Newer statuses reported meanwhile win over the ones that were not sent.
          for (auto& [id, status] : batch) unsent_.emplace(id, std::move(status));
        }
        // Rate limited: the session is fine, the statuses go with a later batch.
        if (st.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED)
          return s.End(FromGrpcStatus(st));
      }
    }
    if (now >= next_describe) {
      next_describe = now + options_.describe_interval;
      api::NodeDescription d = options_.executor->Describe();
      if (!google::protobuf::util::MessageDifferencer::Equals(d, described)) {
        // The new description goes with a new session.
        return s.End(absl::AbortedError("the node's description changed"));
      }
    }
  }
}

void Agent::LogsLoop(Session& s) {
  pthread_setname_np(pthread_self(), "agent-logs");
  LogPublisher::Options o;
  o.tasks = [this] { return tasks_->Tasks(); };
  o.log_path = [executor = options_.executor](const api::Task& t) { return executor->LogPath(t); };
  LogPublisher publisher(std::move(o));
  std::unique_ptr<api::LogBroker::Stub> stub = api::LogBroker::NewStub(s.channel);
  // Logs are not worth ending the session over: the next session listens again.
  const absl::Status why = publisher.Run(stub.get(), &s.logs_ctx);
  if (!s.ended()) log::Warn(kLog, "log subscriptions ended", {{"reason", why}});
}

}  // namespace swarm::agent

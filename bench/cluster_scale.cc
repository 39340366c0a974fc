// The whole cluster at scale: 3 real swarmd managers on loopback (node/testing/swarmd_cluster,
// --executor=simulated) and, in this process, --agents simulated agents, each a real node of
// the swarm: it joins through the CA like `swarm join` (its own key, CSR, join token and
// certificate), then opens its own mutual-TLS connection to the leader's dispatcher with a
// Session stream, heartbeats at 70-90% of the returned period and an Assignments stream, and
// reports its tasks: desired RUNNING is reported RUNNING (a forward move the dispatcher
// accepts), desired SHUTDOWN is reported SHUTDOWN, batched per agent every --report_ms.
//
// Phases: joins (setup, timed apart); sessions; one service of --replicas replicas
// (constraint node.role==worker so the managers' own agents take none, restart delay 0 so a
// reschedule is not held back by the default 5 s delay) and the time until all are RUNNING;
// a steady window of heartbeats only (each manager's CPU from /proc/<pid>/stat, RSS and peak
// RSS VmHWM from /proc/<pid>/status); then 10% of the agents stop (streams cancelled, no more
// heartbeats) and the time until the service has all its replicas RUNNING again, split into
// the dispatcher's grace (3 heartbeat periods until the nodes are DOWN and their tasks stop
// counting) and the reschedule after it.
//
//   bazel run -c opt //bench:cluster_scale [-- --agents=2000 --replicas=20000
//       --heartbeat_ms=2000 --steady_seconds=20 --join_threads=16 --report_ms=150]
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <queue>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/proto_time.h"
#include "common/random.h"
#include "common/tls.h"
#include "manager/ca/ca.h"
#include "node/testing/swarmd_cluster.h"
#include "proto/ca.grpc.pb.h"
#include "proto/control.grpc.pb.h"
#include "proto/dispatcher.grpc.pb.h"

namespace swarm::bench {
namespace {

using node::SetTimeout;
using node::SwarmdCluster;

struct Config {
  int agents = 2000;
  int replicas = 20000;
  absl::Duration heartbeat = absl::Seconds(2);
  int steady_seconds = 20;
  int join_threads = 16;
  absl::Duration report_every = absl::Milliseconds(150);
  absl::Duration run_timeout = absl::Seconds(300);
  absl::Duration reschedule_timeout = absl::Seconds(120);
};

double Secs(absl::Duration d) { return absl::ToDoubleSeconds(d); }

double SelfCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

// ---- the managers' processes, found through /proc by their state directory ----

pid_t FindPid(const std::string& state_dir) {
  const std::string want = "--state-dir=" + state_dir;
  DIR* d = opendir("/proc");
  if (d == nullptr) return -1;
  pid_t found = -1;
  while (dirent* e = readdir(d)) {
    const pid_t pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream f(absl::StrCat("/proc/", pid, "/cmdline"));
    std::string arg;
    while (std::getline(f, arg, '\0')) {
      if (arg == want) found = pid;
    }
    if (found > 0) break;
  }
  closedir(d);
  return found;
}

double ProcCpuSeconds(pid_t pid) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/stat"));
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(s.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // Fields 3..13 come first; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 13; ++i) in >> field;
  in >> utime >> stime;
  return static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
}

// VmRSS and VmHWM in MiB.
std::pair<long, long> ProcMemMiB(pid_t pid) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  long rss = 0, hwm = 0;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::atol(line.c_str() + 6) / 1024;
    if (line.rfind("VmHWM:", 0) == 0) hwm = std::atol(line.c_str() + 6) / 1024;
  }
  return {rss, hwm};
}

// ---- joining through the CA ----

struct Identity {
  std::string node_id;
  tls::Credentials creds;
};

// Joins `count` nodes as workers through the CA at addr, from `threads` threads, each join
// as `swarm join` does it: a new key and CSR, IssueNodeCertificate with the token, then
// NodeCertificateStatus until ISSUED. Successful joins are not rate limited (only failed
// attempts are, kMaxFailuresPerMinute per address), so they may run in parallel.
absl::StatusOr<std::vector<Identity>> JoinAll(const std::string& addr, const std::string& root_pem,
                                              const std::string& token, int count, int threads) {
  auto ch = grpc::CreateCustomChannel(addr, tls::ChannelCredentials({root_pem, "", ""}),
                                      tls::ChannelArguments(tls::kManagerRole));
  auto ca = api::NodeCA::NewStub(ch);
  std::vector<Identity> out(count);
  std::atomic<int> next{0};
  absl::Mutex mu;
  absl::Status first_error;
  auto worker = [&] {
    for (int i = next++; i < count; i = next++) {
      auto fail = [&](const absl::Status& s) {
        absl::MutexLock lock(&mu);
        if (first_error.ok()) first_error = s;
      };
      absl::StatusOr<std::string> key = manager::ca::GenerateKey();
      if (!key.ok()) return fail(key.status());
      absl::StatusOr<std::string> csr = manager::ca::CreateCsr(*key);
      if (!csr.ok()) return fail(csr.status());
      api::IssueNodeCertificateResponse issued;
      {
        grpc::ClientContext ctx;
        SetTimeout(ctx, absl::Seconds(60));
        api::IssueNodeCertificateRequest r;
        r.set_token(token);
        r.set_csr(*csr);
        r.mutable_description()->set_hostname(absl::StrCat("sim-", i));
        grpc::Status s = ca->IssueNodeCertificate(&ctx, r, &issued);
        if (!s.ok()) return fail(absl::UnavailableError("join: " + s.error_message()));
      }
      for (int attempt = 0;; ++attempt) {
        grpc::ClientContext ctx;
        SetTimeout(ctx);
        api::NodeCertificateStatusRequest r;
        r.set_node_id(issued.node_id());
        api::NodeCertificateStatusResponse cert;
        grpc::Status s = ca->NodeCertificateStatus(&ctx, r, &cert);
        if (s.ok() && cert.status().state() == api::ISSUANCE_STATE_ISSUED) {
          out[i] = Identity{issued.node_id(),
                            tls::Credentials{root_pem, cert.certificate().certificate(), *key}};
          break;
        }
        if (attempt > 300) return fail(absl::DeadlineExceededError("certificate not issued"));
        absl::SleepFor(absl::Milliseconds(50));
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  if (!first_error.ok()) return first_error;
  return out;
}

// ---- the agents ----

class Fleet;

// One simulated agent. mu guards its connection (which manager, which session) and the task
// bookkeeping, shared by its reactors (which queue reports) and the fleet's heartbeat and
// reporter threads (which send them). Like the real agent, a lost session is opened again,
// after a short jittered pause, on the next manager of the list; each session is a new
// generation, and heartbeats of an older one stop.
struct Agent {
  class SessionReader;
  class AssignmentsReader;

  int index = 0;
  std::atomic<bool> complete{false};
  std::atomic<bool> dead{false};

  absl::Mutex mu;
  size_t manager ABSL_GUARDED_BY(mu) = 0;
  std::shared_ptr<api::Dispatcher::Stub> stub ABSL_GUARDED_BY(mu);
  std::string session_id ABSL_GUARDED_BY(mu);
  uint64_t generation ABSL_GUARDED_BY(mu) = 0;
  std::unique_ptr<SessionReader> session ABSL_GUARDED_BY(mu);
  std::unique_ptr<AssignmentsReader> assignments ABSL_GUARDED_BY(mu);
  // Reactors and stubs of earlier sessions: gRPC may still call into them; they live as long
  // as the fleet.
  std::vector<std::unique_ptr<SessionReader>> old_sessions ABSL_GUARDED_BY(mu);
  std::vector<std::unique_ptr<AssignmentsReader>> old_assignments ABSL_GUARDED_BY(mu);
  std::vector<std::shared_ptr<api::Dispatcher::Stub>> old_stubs ABSL_GUARDED_BY(mu);

  // The highest state queued or sent per task, so each move is reported once.
  std::map<std::string, api::TaskState> state ABSL_GUARDED_BY(mu);
  std::map<std::string, api::TaskState> pending ABSL_GUARDED_BY(mu);
  // Tasks whose RUNNING report the dispatcher acknowledged and that are still desired RUNNING.
  std::set<std::string> running ABSL_GUARDED_BY(mu);
};

class Agent::SessionReader final : public grpc::ClientReadReactor<api::SessionMessage> {
 public:
  SessionReader(Fleet* fleet, Agent* agent, uint64_t generation)
      : fleet_(fleet), agent_(agent), generation_(generation) {}
  void Start(api::Dispatcher::Stub* stub);
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& s) override;
  grpc::ClientContext ctx;

 private:
  Fleet* fleet_;
  Agent* agent_;
  const uint64_t generation_;
  bool first_ = true;
  api::SessionRequest req_;
  api::SessionMessage msg_;
};

class Agent::AssignmentsReader final : public grpc::ClientReadReactor<api::AssignmentsMessage> {
 public:
  AssignmentsReader(Fleet* fleet, Agent* agent) : fleet_(fleet), agent_(agent) {}
  void Start(api::Dispatcher::Stub* stub, const std::string& session_id);
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status&) override {}
  grpc::ClientContext ctx;

 private:
  Fleet* fleet_;
  Agent* agent_;
  api::AssignmentsRequest req_;
  api::AssignmentsMessage msg_;
};

class Fleet {
 public:
  // Each agent starts on managers[0] (the leader) and moves down the list when it loses its
  // session.
  Fleet(const Config& config, std::vector<std::string> managers, const std::vector<Identity>& ids)
      : agents_(ids.size()), config_(config), managers_(std::move(managers)), ids_(ids) {
    for (size_t i = 0; i < ids.size(); ++i) agents_[i].index = static_cast<int>(i);
  }

  void Connect(int begin, int end) {
    if (!heartbeats_.joinable()) {
      heartbeats_ = std::thread([this] { RunHeartbeats(); });
      reporter_ = std::thread([this] { RunReports(); });
    }
    for (int i = begin; i < end; ++i) OpenSession(agents_[i], /*next_manager=*/false);
  }

  // Agents [begin, end) stop: their streams are cancelled, they send nothing more.
  void Kill(int begin, int end) {
    for (int i = begin; i < end; ++i) {
      Agent& a = agents_[i];
      a.dead = true;
      absl::MutexLock lock(&a.mu);
      a.session->ctx.TryCancel();
      if (a.assignments) a.assignments->ctx.TryCancel();
    }
  }

  // A session of this generation ended: open a new one on the next manager shortly.
  void SessionLost(Agent& a, uint64_t generation) {
    if (a.dead) return;
    ++sessions_lost_;
    SeededRandom random(generation * 7919 + a.index);
    absl::MutexLock lock(&mu_);
    reconnects_.push(
        Due{absl::Now() + absl::Milliseconds(250 + random.Uniform(750)), a.index, generation});
  }

  // The session's first message: its ID; heartbeats and the assignments stream start.
  void SessionOpened(Agent& a, uint64_t generation, const std::string& session_id) {
    {
      absl::MutexLock lock(&a.mu);
      if (a.generation != generation) return;
      a.session_id = session_id;
      a.assignments = std::make_unique<Agent::AssignmentsReader>(this, &a);
      a.assignments->Start(a.stub.get(), session_id);
    }
    Schedule(a.index, absl::Now(), generation);
  }

  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    heartbeats_.join();
    reporter_.join();
  }

  int complete() const {
    return std::count_if(agents_.begin(), agents_.end(),
                         [](const Agent& a) { return a.complete.load(); });
  }
  int sessions_lost() const { return sessions_lost_.load(); }
  int heartbeat_errors() const { return heartbeat_errors_.load(); }
  int report_errors() const { return report_errors_.load(); }
  long reports_sent() const { return reports_sent_.load(); }
  long updates_sent() const { return updates_sent_.load(); }

  // Queues the report a task assignment calls for, if any.
  void OnTask(Agent& a, const api::Task& t, bool removed) {
    absl::MutexLock lock(&a.mu);
    if (removed || t.desired_state() > api::TASK_STATE_RUNNING) a.running.erase(t.id());
    if (removed) {
      a.state.erase(t.id());
      a.pending.erase(t.id());
      return;
    }
    // Like the real agent, move each task up to its desired state: READY (a replacement
    // waiting for its restart to be allowed), RUNNING, or SHUTDOWN.
    api::TaskState want = api::TASK_STATE_NEW;
    const api::TaskState desired = t.desired_state();
    if ((desired == api::TASK_STATE_READY || desired == api::TASK_STATE_RUNNING) &&
        t.status().state() < desired) {
      want = desired;
    } else if (desired >= api::TASK_STATE_SHUTDOWN &&
               t.status().state() < api::TASK_STATE_COMPLETE) {
      want = api::TASK_STATE_SHUTDOWN;
    }
    if (want == api::TASK_STATE_NEW) return;
    api::TaskState& have = a.state[t.id()];
    if (have >= want) return;
    have = want;
    a.pending[t.id()] = want;
    if (want == api::TASK_STATE_RUNNING) {
      absl::MutexLock lock(&mu_);
      if (last_assigned_ == absl::InfinitePast()) last_assigned_ = absl::Now();
    }
  }

  // Tasks the live agents were told to run (desired RUNNING, reported or not).
  long Assigned() {
    long n = 0;
    for (Agent& a : agents_) {
      if (a.dead) continue;
      absl::MutexLock lock(&a.mu);
      for (const auto& [id, state] : a.state) n += state == api::TASK_STATE_RUNNING;
    }
    return n;
  }

  // Tasks RUNNING on the live agents, as the dispatcher acknowledged them.
  long Running() {
    long n = 0;
    for (Agent& a : agents_) {
      if (a.dead) continue;
      absl::MutexLock lock(&a.mu);
      n += static_cast<long>(a.running.size());
    }
    return n;
  }
  // The first time a live agent is given a task to run after ResetFirstAssigned.
  void ResetFirstAssigned() {
    absl::MutexLock lock(&mu_);
    last_assigned_ = absl::InfinitePast();
  }
  absl::Time first_assigned() {
    absl::MutexLock lock(&mu_);
    return last_assigned_;
  }

  std::vector<Agent> agents_;

 private:
  friend struct Agent;
  struct Due {
    absl::Time at;
    int agent;
    uint64_t generation;
    bool operator<(const Due& o) const { return at > o.at; }  // earliest first
  };

  void Schedule(int agent, absl::Time at, uint64_t generation) {
    absl::MutexLock lock(&mu_);
    due_.push(Due{at, agent, generation});
  }

  // A new session generation: the old reactors are cancelled and kept, a new stub for the
  // next manager (or the first one) opens the Session stream.
  void OpenSession(Agent& a, bool next_manager) {
    absl::MutexLock lock(&a.mu);
    ++a.generation;
    if (a.session) {
      a.session->ctx.TryCancel();
      a.old_sessions.push_back(std::move(a.session));
    }
    if (a.assignments) {
      a.assignments->ctx.TryCancel();
      a.old_assignments.push_back(std::move(a.assignments));
    }
    if (a.stub) a.old_stubs.push_back(std::move(a.stub));
    if (next_manager) a.manager = (a.manager + 1) % managers_.size();
    grpc::ChannelArguments args = tls::ChannelArguments();
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    a.stub = api::Dispatcher::NewStub(grpc::CreateCustomChannel(
        managers_[a.manager], tls::ChannelCredentials(ids_[a.index].creds), args));
    a.session_id.clear();
    a.session = std::make_unique<Agent::SessionReader>(this, &a, a.generation);
    a.session->Start(a.stub.get());
  }

  void RunHeartbeats() {
    SeededRandom random(1);
    while (true) {
      std::vector<Due> beats, reconnects;
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        const absl::Time now = absl::Now();
        while (!due_.empty() && due_.top().at <= now) {
          beats.push_back(due_.top());
          due_.pop();
        }
        while (!reconnects_.empty() && reconnects_.top().at <= now) {
          reconnects.push_back(reconnects_.top());
          reconnects_.pop();
        }
      }
      for (const Due& d : beats) {
        if (!agents_[d.agent].dead) Beat(d.agent, d.generation, random);
      }
      for (const Due& d : reconnects) {
        Agent& a = agents_[d.agent];
        bool current;
        {
          absl::MutexLock lock(&a.mu);
          current = a.generation == d.generation;
        }
        if (current && !a.dead) OpenSession(a, /*next_manager=*/true);
      }
      absl::SleepFor(absl::Milliseconds(2));
    }
  }

  // One heartbeat of the given session generation; the next is scheduled from its answer.
  // A heartbeat of an older generation is not sent: the new session has its own chain.
  void Beat(int i, uint64_t generation, Random& random) {
    struct Call {
      grpc::ClientContext ctx;
      api::HeartbeatRequest req;
      api::HeartbeatResponse resp;
    };
    Agent& a = agents_[i];
    std::shared_ptr<api::Dispatcher::Stub> stub;
    auto* call = new Call;
    {
      absl::MutexLock lock(&a.mu);
      if (a.generation != generation) {
        delete call;
        return;
      }
      stub = a.stub;
      call->req.set_session_id(a.session_id);
    }
    SetTimeout(call->ctx);
    const double early = 0.7 + 0.2 * random.Uniform(1000) / 1000.0;
    stub->async()->Heartbeat(
        &call->ctx, &call->req, &call->resp, [this, call, i, early, generation](grpc::Status s) {
          if (s.ok()) {
            Schedule(i, absl::Now() + FromProtoDuration(call->resp.period()) * early, generation);
          } else if (!agents_[i].dead) {
            ++heartbeat_errors_;
            Schedule(i, absl::Now() + absl::Milliseconds(500), generation);
          }
          delete call;
        });
  }

  // Every report_every, each agent with queued reports sends them in one UpdateTaskStatus,
  // as the real agent batches its task status updates.
  void RunReports() {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
      }
      for (Agent& a : agents_) {
        if (a.dead) continue;
        std::map<std::string, api::TaskState> batch;
        {
          absl::MutexLock lock(&a.mu);
          batch.swap(a.pending);
        }
        if (batch.empty()) continue;
        Send(a, std::move(batch));
      }
      absl::SleepFor(config_.report_every);
    }
  }

  void Send(Agent& a, std::map<std::string, api::TaskState> batch) {
    struct Call {
      grpc::ClientContext ctx;
      api::UpdateTaskStatusRequest req;
      api::UpdateTaskStatusResponse resp;
      std::map<std::string, api::TaskState> batch;
    };
    auto* call = new Call;
    SetTimeout(call->ctx, absl::Seconds(30));
    std::shared_ptr<api::Dispatcher::Stub> stub;
    {
      absl::MutexLock lock(&a.mu);
      stub = a.stub;
      call->req.set_session_id(a.session_id);
    }
    const auto now = ToTimestamp(absl::Now());
    for (const auto& [id, st] : batch) {
      api::TaskStatusUpdate* u = call->req.add_updates();
      u->set_task_id(id);
      u->mutable_status()->set_state(st);
      *u->mutable_status()->mutable_timestamp() = now;
    }
    ++reports_sent_;
    updates_sent_ += static_cast<long>(batch.size());
    call->batch = std::move(batch);
    stub->async()->UpdateTaskStatus(
        &call->ctx, &call->req, &call->resp, [this, call, &a](grpc::Status s) {
          if (s.ok()) {
            absl::MutexLock lock(&a.mu);
            for (const auto& [id, st] : call->batch) {
              auto it = a.state.find(id);
              if (st == api::TASK_STATE_RUNNING && it != a.state.end() &&
                  it->second == api::TASK_STATE_RUNNING) {
                a.running.insert(id);
              }
            }
          } else if (!a.dead) {
            ++report_errors_;
            // Send again with the next batch, unless a newer state
            // was queued meanwhile.
            absl::MutexLock lock(&a.mu);
            for (const auto& [id, st] : call->batch) a.pending.try_emplace(id, st);
          }
          delete call;
        });
  }

  const Config config_;
  const std::vector<std::string> managers_;
  const std::vector<Identity>& ids_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::priority_queue<Due> due_ ABSL_GUARDED_BY(mu_);
  std::priority_queue<Due> reconnects_ ABSL_GUARDED_BY(mu_);
  absl::Time last_assigned_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::atomic<int> sessions_lost_{0};
  std::atomic<int> heartbeat_errors_{0};
  std::atomic<int> report_errors_{0};
  std::atomic<long> reports_sent_{0};
  std::atomic<long> updates_sent_{0};
  std::thread heartbeats_;
  std::thread reporter_;
};

void Agent::SessionReader::Start(api::Dispatcher::Stub* stub) {
  req_.mutable_description()->set_hostname(absl::StrCat("sim-", agent_->index));
  stub->async()->Session(&ctx, &req_, this);
  StartRead(&msg_);
  StartCall();
}

void Agent::SessionReader::OnReadDone(bool ok) {
  if (!ok) return;
  if (first_) {
    first_ = false;
    fleet_->SessionOpened(*agent_, generation_, msg_.session_id());
  }
  StartRead(&msg_);
}

void Agent::SessionReader::OnDone(const grpc::Status&) {
  fleet_->SessionLost(*agent_, generation_);
}

void Agent::AssignmentsReader::Start(api::Dispatcher::Stub* stub, const std::string& session_id) {
  req_.set_session_id(session_id);
  stub->async()->Assignments(&ctx, &req_, this);
  StartRead(&msg_);
  StartCall();
}

void Agent::AssignmentsReader::OnReadDone(bool ok) {
  if (!ok) return;
  if (msg_.type() == api::ASSIGNMENTS_TYPE_COMPLETE) {
    // Everything the node holds: tasks that went while the agent had no session are gone.
    std::set<std::string> held;
    for (const api::AssignmentChange& c : msg_.changes()) {
      if (c.assignment().has_task()) held.insert(c.assignment().task().id());
    }
    std::vector<std::string> gone;
    {
      absl::MutexLock lock(&agent_->mu);
      for (const auto& [id, state] : agent_->state) {
        if (!held.contains(id)) gone.push_back(id);
      }
    }
    for (const std::string& id : gone) {
      api::Task t;
      t.set_id(id);
      fleet_->OnTask(*agent_, t, /*removed=*/true);
    }
  }
  for (const api::AssignmentChange& c : msg_.changes()) {
    if (!c.assignment().has_task()) continue;
    fleet_->OnTask(*agent_, c.assignment().task(), c.action() == api::ASSIGNMENT_ACTION_REMOVE);
  }
  if (msg_.type() == api::ASSIGNMENTS_TYPE_COMPLETE) agent_->complete = true;
  StartRead(&msg_);
}

// ---- the run ----

struct ManagerSample {
  double cpu = 0;
  long rss_mib = 0;
  long hwm_mib = 0;
};

int Main(int argc, char** argv) {
#ifdef NDEBUG
  // As a manager does (raft::Node::Create): Debian's Abseil, built without NDEBUG, would
  // otherwise track every Mutex operation (gRPC's too) for deadlock detection.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  Config config;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&](std::string_view flag) -> const char* {
      return arg.substr(0, flag.size()) == flag ? argv[i] + flag.size() : nullptr;
    };
    if (const char* v = value("--agents=")) config.agents = std::atoi(v);
    if (const char* v = value("--replicas=")) config.replicas = std::atoi(v);
    if (const char* v = value("--heartbeat_ms=")) {
      config.heartbeat = absl::Milliseconds(std::atoi(v));
    }
    if (const char* v = value("--steady_seconds=")) config.steady_seconds = std::atoi(v);
    if (const char* v = value("--join_threads=")) config.join_threads = std::max(1, std::atoi(v));
    if (const char* v = value("--report_ms=")) {
      config.report_every = absl::Milliseconds(std::atoi(v));
    }
  }
  // Each agent holds a connection; the managers inherit the limit.
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = nofile.rlim_max;
  setrlimit(RLIMIT_NOFILE, &nofile);

  std::cout << "cluster_scale: 3 managers, " << config.agents << " agents, " << config.replicas
            << " replicas, heartbeat " << absl::FormatDuration(config.heartbeat) << ", "
            << std::thread::hardware_concurrency() << " cores\n";
  std::cout.flush();

  // 1. The managers.
  SwarmdCluster::Options options;
  options.heartbeat = config.heartbeat;
  auto cluster = std::make_unique<SwarmdCluster>(options);
  const absl::Time setup_start = absl::Now();
  for (int i = 1; i <= 3; ++i) {
    if (absl::Status s = cluster->Start(i, {"--executor=simulated"}); !s.ok()) {
      std::cerr << s << "\n";
      return 1;
    }
  }
  if (auto s = cluster->Init(1); !s.ok()) {
    std::cerr << "init: " << s.status() << "\n";
    return 1;
  }
  for (int i = 2; i <= 3; ++i) {
    if (auto s = cluster->Join(i, 1, /*manager=*/true); !s.ok()) {
      std::cerr << "join " << i << ": " << s.status() << "\n";
      return 1;
    }
  }
  absl::StatusOr<int> leader_or = cluster->WaitForLeader(absl::Seconds(20));
  if (!leader_or.ok()) {
    std::cerr << leader_or.status() << "\n";
    return 1;
  }
  const int leader = *leader_or;
  pid_t pids[4] = {0, 0, 0, 0};
  for (int i = 1; i <= 3; ++i) pids[i] = FindPid(cluster->state_dir(i));
  std::cout << "managers: up in " << Secs(absl::Now() - setup_start) << " s, leader node-" << leader
            << " (pids " << pids[1] << " " << pids[2] << " " << pids[3] << ")\n";

  std::string root_pem, token;
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::ListClustersResponse resp;
    grpc::Status s = cluster->control(leader).ListClusters(&ctx, api::ListClustersRequest(), &resp);
    if (!s.ok() || resp.clusters_size() != 1) {
      std::cerr << "list clusters: " << s.error_message() << "\n";
      return 1;
    }
    root_pem = resp.clusters(0).root_ca().ca_cert();
    token = resp.clusters(0).root_ca().join_tokens().worker();
  }

  // 2. The agents join through the leader's CA (setup, not part of the goal).
  const absl::Time join_start = absl::Now();
  absl::StatusOr<std::vector<Identity>> ids =
      JoinAll(cluster->addr(leader), root_pem, token, config.agents, config.join_threads);
  if (!ids.ok()) {
    std::cerr << "joins: " << ids.status() << "\n";
    return 1;
  }
  const absl::Duration join_time = absl::Now() - join_start;
  std::cout << "joins: " << config.agents << " nodes joined through the CA in " << Secs(join_time)
            << " s (" << config.join_threads << " in parallel; " << config.agents / Secs(join_time)
            << " joins/s)\n";
  std::cout.flush();

  // 3. Sessions, in waves so the TLS handshakes do not all time out together.
  std::vector<std::string> managers = {cluster->addr(leader)};
  for (int i = 1; i <= 3; ++i) {
    if (i != leader) managers.push_back(cluster->addr(i));
  }
  Fleet fleet(config, managers, *ids);
  const absl::Time connect_start = absl::Now();
  constexpr int kWave = 250;
  bool connected = true;
  for (int begin = 0; begin < config.agents && connected; begin += kWave) {
    const int end = std::min(config.agents, begin + kWave);
    fleet.Connect(begin, end);
    const absl::Time deadline = absl::Now() + absl::Seconds(120);
    while (fleet.complete() < end && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
    connected = fleet.complete() >= end;
  }
  std::cout << "sessions: " << fleet.complete() << "/" << config.agents
            << " agents with a session and their assignments in "
            << Secs(absl::Now() - connect_start) << " s" << (connected ? "" : " (timed out)")
            << "\n";
  std::cout.flush();
  if (!connected) return 1;

  auto running = [&](const std::string& service_id) -> long {
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(5));
    api::ListServiceStatusesRequest req;
    req.add_service_ids(service_id);
    api::ListServiceStatusesResponse resp;
    grpc::Status s = cluster->control(leader).ListServiceStatuses(&ctx, req, &resp);
    if (!s.ok() || resp.statuses_size() != 1) return -1;
    return static_cast<long>(resp.statuses(0).running_tasks());
  };
  auto sample = [&](int i) {
    ManagerSample m;
    m.cpu = ProcCpuSeconds(pids[i]);
    std::tie(m.rss_mib, m.hwm_mib) = ProcMemMiB(pids[i]);
    return m;
  };

  // 4. The service.
  ManagerSample before_run[4];
  for (int i = 1; i <= 3; ++i) before_run[i] = sample(i);
  const absl::Time create_start = absl::Now();
  std::string service_id;
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(60));
    api::CreateServiceRequest req;
    api::ServiceSpec* spec = req.mutable_spec();
    spec->mutable_annotations()->set_name("sim");
    spec->mutable_replicated()->set_replicas(config.replicas);
    spec->mutable_task_template()->mutable_container()->set_image("sim");
    spec->mutable_task_template()->mutable_placement()->add_constraints("node.role==worker");
    // A set policy gets no default condition (it would be NONE: no reschedule at all).
    api::RestartPolicy* restart = spec->mutable_task_template()->mutable_restart_policy();
    restart->set_condition(api::RESTART_CONDITION_ANY);
    restart->mutable_delay()->set_seconds(0);
    api::CreateServiceResponse resp;
    grpc::Status s = cluster->control(leader).CreateService(&ctx, req, &resp);
    if (!s.ok()) {
      std::cerr << "create service: " << s.error_message() << "\n";
      return 1;
    }
    service_id = resp.service().id();
  }
  long last = 0;
  absl::Time last_change = absl::Now();
  absl::Time next_progress = create_start + absl::Seconds(5);
  while (true) {
    const long n = running(service_id);
    if (n >= config.replicas) break;
    if (n != last) last_change = absl::Now();
    last = std::max(last, n);
    if (absl::Now() >= next_progress) {
      next_progress += absl::Seconds(5);
      std::cout << "  ... " << Secs(absl::Now() - create_start) << " s: service status " << n
                << " RUNNING; agents told to run " << fleet.Assigned() << "\n";
      std::cout.flush();
    }
    if (absl::Now() - create_start > config.run_timeout ||
        absl::Now() - last_change > absl::Seconds(60)) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  const absl::Duration run_time = absl::Now() - create_start;
  const long ran = running(service_id);
  const bool all_ran = ran >= config.replicas;
  std::cout << "run: " << ran << "/" << config.replicas << " replicas RUNNING " << Secs(run_time)
            << " s after CreateService" << (all_ran ? "" : " (gave up)")
            << "   [goal: 20000 on 2000 agents in < 30 s]\n";
  for (int i = 1; i <= 3; ++i) {
    const ManagerSample m = sample(i);
    std::cout << "  node-" << i << (i == leader ? " (leader)" : "") << ": CPU "
              << m.cpu - before_run[i].cpu << " s during the run\n";
  }
  std::cout << "  agents: " << fleet.reports_sent() << " UpdateTaskStatus calls, "
            << fleet.updates_sent() << " updates, " << fleet.report_errors() << " failed\n";
  std::cout.flush();

  // 5. Steady heartbeats.
  absl::SleepFor(absl::Seconds(2));
  ManagerSample steady_start[4];
  for (int i = 1; i <= 3; ++i) steady_start[i] = sample(i);
  const double self_start = SelfCpuSeconds();
  absl::SleepFor(absl::Seconds(config.steady_seconds));
  const double self_cpu = SelfCpuSeconds() - self_start;
  std::cout << "steady (" << config.steady_seconds << " s of heartbeats, "
            << config.agents / Secs(config.heartbeat) / 0.8 << "/s expected):\n";
  for (int i = 1; i <= 3; ++i) {
    const ManagerSample m = sample(i);
    std::cout << "  node-" << i << (i == leader ? " (leader)" : "") << ": CPU "
              << 100 * (m.cpu - steady_start[i].cpu) / config.steady_seconds << "% of a core; RSS "
              << m.rss_mib << " MiB, peak (VmHWM) " << m.hwm_mib << " MiB   [goal: < 1024 MiB]\n";
  }
  std::cout << "  agents' process: " << 100 * self_cpu / config.steady_seconds
            << "% of a core; heartbeat errors " << fleet.heartbeat_errors() << ", sessions lost "
            << fleet.sessions_lost() << "\n";
  std::cout.flush();

  // 6. 10% of the agents die.
  const int dead = config.agents / 10;
  fleet.ResetFirstAssigned();
  const absl::Time kill_at = absl::Now();
  fleet.Kill(config.agents - dead, config.agents);
  const long after_kill = fleet.Running();
  bool recovered = false;
  next_progress = kill_at + absl::Seconds(5);
  while (absl::Now() - kill_at < config.reschedule_timeout) {
    if (fleet.Running() >= config.replicas) {
      recovered = true;
      break;
    }
    if (absl::Now() >= next_progress) {
      next_progress += absl::Seconds(5);
      std::cout << "  ... " << Secs(absl::Now() - kill_at) << " s: " << fleet.Running()
                << " RUNNING on live agents, service status " << running(service_id) << "\n";
      std::cout.flush();
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  const absl::Time back_at = absl::Now();
  const absl::Time first = fleet.first_assigned();
  std::cout << "reschedule: " << dead << " agents stopped (" << after_kill << "/" << config.replicas
            << " tasks left RUNNING on live agents); first replacement "
            << "assigned after " << (first == absl::InfinitePast() ? -1.0 : Secs(first - kill_at))
            << " s (the dispatcher's grace, 3 heartbeat periods = " << Secs(3 * config.heartbeat)
            << " s, then the orchestrator and scheduler); " << fleet.Running() << "/"
            << config.replicas << " RUNNING on live agents " << Secs(back_at - kill_at)
            << " s after the kill"
            << (first == absl::InfinitePast()
                    ? ""
                    : absl::StrCat(" (", Secs(back_at - first), " s after the first replacement)"))
            << (recovered ? "" : " (gave up)") << "; service status says " << running(service_id)
            << " RUNNING\n";
  for (int i = 1; i <= 3; ++i) {
    const ManagerSample m = sample(i);
    std::cout << "  node-" << i << (i == leader ? " (leader)" : "") << ": peak (VmHWM) "
              << m.hwm_mib << " MiB over the whole run   [goal: < 1024 MiB]\n";
  }
  if (!recovered) {
    const std::string log = cluster->Output(leader);
    std::cerr << "leader's log, last 3000 bytes:\n"
              << log.substr(log.size() - std::min<size_t>(log.size(), 3000)) << "\n";
  }
  std::cout << "  sessions lost " << fleet.sessions_lost() << ", report errors "
            << fleet.report_errors() << "\n";
  std::cout.flush();

  // The managers' logs, for a look at what happened (the cluster's directory goes with it).
  const std::string logs = "/tmp/cluster_scale-logs";
  mkdir(logs.c_str(), 0700);
  for (int i = 1; i <= 3; ++i) {
    std::ofstream(absl::StrCat(logs, "/node-", i, ".log")) << cluster->Output(i);
  }
  std::cout << "  the managers' logs are in " << logs << "\n";

  fleet.Stop();
  // The agents' streams are still open; the process ends without tearing the channels down
  // (the cluster's destructor still stops the managers).
  const bool ok = all_ran && recovered;
  cluster.reset();
  std::_Exit(ok ? 0 : 1);
}

}  // namespace
}  // namespace swarm::bench

int main(int argc, char** argv) { return swarm::bench::Main(argc, argv); }

// The dispatcher under 5,000 agents: one manager-like server process (the store without Raft,
// the leader's Dispatcher and the gRPC service, mutual TLS with certificates from the
// cluster's CA, as in production) and one process of simulated agents, each with its own TLS
// connection and certificate, a Session stream, heartbeats at the period the dispatcher
// returns (the cluster's heartbeat period, --period_ms, 5 s by default as in a cluster; sent
// at 70-90% of it like the real agent), and an Assignments stream. The processes are separate
// so that the server's CPU time and memory are its own; both share the machine's cores, so on
// a small machine a short period measures the agents' side as much as the server (each
// heartbeat costs both about as much): the steady line gives the server's CPU per heartbeat,
// from which its load at other periods follows.
//
// Phases: the agents connect in waves of --wave (the time until every one has its session and
// complete assignment set); a steady phase of heartbeats only (server CPU, heartbeat latency
// p50/p99); one task assigned to every node in 500-task transactions, as the scheduler writes
// them (time until every agent has received its task); every agent reports its task ACCEPTED
// at once (time until all are acknowledged, i.e. written, and how many store transactions that
// took). --bdp_probe=0 turns gRPC's HTTP/2 BDP probing off on both sides, for comparison.
//
//   bazel run -c opt //bench:dispatcher_bench [-- --agents=5000 --period_ms=5000
//       --steady_seconds=20 --wave=500 --bdp_probe=1]
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <queue>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/proto_time.h"
#include "common/random.h"
#include "common/tls.h"
#include "manager/ca/ca.h"
#include "manager/dispatcher/dispatcher.h"
#include "manager/dispatcher/service.h"
#include "manager/store/store.h"

namespace swarm::manager::dispatcher {
namespace {

constexpr int kTasksPerTransaction = 500;

struct Config {
  int agents = 5000;
  absl::Duration period = absl::Seconds(5);
  int steady_seconds = 20;
  int wave = 500;
  bool bdp_probe = true;
};

std::string NodeId(int i) { return absl::StrCat("node-", 100000 + i); }

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

long RssKiB() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// ---- the server process ----

// Serves until told to quit; commands arrive one per line on `in`, answers go to `out`:
// "assign" (one task per node), "stats" (CPU seconds, RSS KiB, sessions, store index), "quit".
int Serve(const Config& config, const tls::Credentials& creds, FILE* in, FILE* out) {
  const int agents = config.agents;
  store::LocalProposer proposer;
  store::MemoryStore store(&proposer);
  proposer.set_store(&store);
  absl::Status s = store.Update([&](store::WriteTx& tx) {
    api::Cluster c;
    c.set_id("cluster");
    c.mutable_spec()->mutable_annotations()->set_name("default");
    *c.mutable_spec()->mutable_dispatcher()->mutable_heartbeat_period() =
        ToProtoDuration(config.period);
    c.mutable_root_ca()->set_ca_cert(creds.root_pem);
    tx.CreateObject(c);
    api::Node m;
    m.set_id("manager");
    m.set_role(api::NODE_ROLE_MANAGER);
    m.mutable_manager_status()->set_addr("127.0.0.1:4242");
    m.mutable_status()->set_state(api::NODE_STATE_DOWN);  // it runs no agent here
    tx.CreateObject(m);
    for (int i = 0; i < agents; ++i) {
      api::Node n;
      n.set_id(NodeId(i));
      n.set_role(api::NODE_ROLE_WORKER);
      n.mutable_status()->set_state(api::NODE_STATE_DOWN);
      tx.CreateObject(n);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) {
    std::cerr << "server: " << s << "\n";
    return 1;
  }
  DispatcherSlot slot;
  Dispatcher::Options options;
  options.node_id = "manager";
  LeaderDispatcher leader(&store, options, &slot);
  leader.Start();
  Service service(&slot, [] { return nullptr; });
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort("127.0.0.1:0", tls::ServerCredentials(creds), &port);
  if (!config.bdp_probe) b.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  b.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  std::fprintf(out, "%d\n", port);
  std::fflush(out);

  char line[64];
  while (std::fgets(line, sizeof line, in) != nullptr) {
    const std::string cmd(absl::StripAsciiWhitespace(line));
    if (cmd == "assign") {
      for (int begin = 0; begin < agents; begin += kTasksPerTransaction) {
        s = store.Update([&](store::WriteTx& tx) {
          for (int i = begin; i < std::min(agents, begin + kTasksPerTransaction); ++i) {
            api::Task t;
            t.set_id(absl::StrCat("task-", i));
            t.set_node_id(NodeId(i));
            t.set_desired_state(api::TASK_STATE_RUNNING);
            t.mutable_status()->set_state(api::TASK_STATE_ASSIGNED);
            t.mutable_spec()->mutable_container()->set_image("nginx:1.25");
            tx.CreateObject(t);
          }
          return absl::OkStatus();
        });
        if (!s.ok()) std::cerr << "server: " << s << "\n";
      }
      std::fprintf(out, "ok\n");
    } else if (cmd == "stats") {
      std::shared_ptr<Dispatcher> d = slot.Get();
      std::fprintf(out, "%.3f %ld %zu %lu\n", CpuSeconds(), RssKiB(), d ? d->sessions() : 0,
                   static_cast<unsigned long>(store.last_index()));
    } else if (cmd == "quit") {
      break;
    }
    std::fflush(out);
  }
  leader.Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}

// ---- the agents ----

class Agents;

// One simulated agent: its channel, Session and Assignments streams.
struct Agent {
  int index = 0;
  std::unique_ptr<api::Dispatcher::Stub> stub;
  std::string session_id;  // set once, by the session reactor, before any heartbeat
  std::atomic<bool> complete{false};
  std::atomic<bool> has_task{false};

  class SessionReader final : public grpc::ClientReadReactor<api::SessionMessage> {
   public:
    SessionReader(Agents* agents, Agent* agent) : agents_(agents), agent_(agent) {}
    void Start();
    void OnReadDone(bool ok) override;
    void OnDone(const grpc::Status& s) override;
    grpc::ClientContext ctx;

   private:
    Agents* agents_;
    Agent* agent_;
    api::SessionRequest req_;
    api::SessionMessage msg_;
  };
  class AssignmentsReader final : public grpc::ClientReadReactor<api::AssignmentsMessage> {
   public:
    AssignmentsReader(Agents* agents, Agent* agent) : agents_(agents), agent_(agent) {}
    void Start();
    void OnReadDone(bool ok) override;
    void OnDone(const grpc::Status&) override {}
    grpc::ClientContext ctx;

   private:
    Agents* agents_;
    Agent* agent_;
    api::AssignmentsRequest req_;
    api::AssignmentsMessage msg_;
  };
  std::unique_ptr<SessionReader> session;
  std::unique_ptr<AssignmentsReader> assignments;
};

class Agents {
 public:
  Agents(const Config& config, const std::string& addr, const std::vector<tls::Credentials>& creds)
      : agents_(config.agents) {
    for (int i = 0; i < config.agents; ++i) {
      grpc::ChannelArguments args = tls::ChannelArguments();
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      if (!config.bdp_probe) args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
      agents_[i].index = i;
      agents_[i].stub = api::Dispatcher::NewStub(
          grpc::CreateCustomChannel(addr, tls::ChannelCredentials(creds[i]), args));
    }
  }

  // Opens the sessions of agents [begin, end).
  void Connect(int begin, int end) {
    if (!heartbeats_.joinable()) heartbeats_ = std::thread([this] { RunHeartbeats(); });
    for (int i = begin; i < end; ++i) {
      agents_[i].session = std::make_unique<Agent::SessionReader>(this, &agents_[i]);
      agents_[i].session->Start();
    }
  }
  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    heartbeats_.join();
  }

  // Waits until f() holds, up to timeout; false on timeout.
  bool WaitFor(const std::function<bool()>& f, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!f()) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(2));
    }
    return true;
  }
  int count(std::atomic<bool> Agent::*field) const {
    return std::count_if(agents_.begin(), agents_.end(),
                         [&](const Agent& a) { return (a.*field).load(); });
  }

  // Heartbeat latencies since the last call, sorted.
  std::vector<absl::Duration> TakeLatencies() {
    absl::MutexLock lock(&mu_);
    std::vector<absl::Duration> out;
    out.swap(latencies_);
    std::sort(out.begin(), out.end());
    return out;
  }
  int sessions_lost() const { return sessions_lost_.load(); }
  int heartbeat_errors() const { return heartbeat_errors_.load(); }

  // Every agent reports its task ACCEPTED; returns once all are acknowledged.
  absl::Duration ReportAll() {
    struct Call {
      grpc::ClientContext ctx;
      api::UpdateTaskStatusRequest req;
      api::UpdateTaskStatusResponse resp;
    };
    // Shared with the callbacks, which may outlive a timed-out wait.
    auto done = std::make_shared<std::atomic<int>>(0);
    auto failed = std::make_shared<std::atomic<int>>(0);
    const absl::Time start = absl::Now();
    for (size_t i = 0; i < agents_.size(); ++i) {
      auto* call = new Call;
      call->req.set_session_id(agents_[i].session_id);
      api::TaskStatusUpdate* u = call->req.add_updates();
      u->set_task_id(absl::StrCat("task-", i));
      u->mutable_status()->set_state(api::TASK_STATE_ACCEPTED);
      *u->mutable_status()->mutable_timestamp() = ToTimestamp(absl::Now());
      call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
      agents_[i].stub->async()->UpdateTaskStatus(&call->ctx, &call->req, &call->resp,
                                                 [call, done, failed](grpc::Status s) {
                                                   if (!s.ok()) ++*failed;
                                                   ++*done;
                                                   delete call;
                                                 });
    }
    WaitFor([&] { return done->load() == static_cast<int>(agents_.size()); }, absl::Seconds(60));
    if (failed->load() > 0) std::cout << "  (" << failed->load() << " reports failed)\n";
    return absl::Now() - start;
  }

  std::vector<Agent> agents_;

 private:
  friend struct Agent;
  struct Due {
    absl::Time at;
    int agent;
    bool operator<(const Due& o) const { return at > o.at; }  // earliest first
  };

  void Schedule(int agent, absl::Time at) {
    absl::MutexLock lock(&mu_);
    due_.push(Due{at, agent});
  }
  void RunHeartbeats() {
    SeededRandom random(1);
    while (true) {
      std::vector<int> now_due;
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        const absl::Time now = absl::Now();
        while (!due_.empty() && due_.top().at <= now) {
          now_due.push_back(due_.top().agent);
          due_.pop();
        }
      }
      for (int i : now_due) Beat(i, random);
      absl::SleepFor(absl::Milliseconds(2));
    }
  }
  void Beat(int i, Random& random) {
    struct Call {
      grpc::ClientContext ctx;
      api::HeartbeatRequest req;
      api::HeartbeatResponse resp;
      absl::Time sent;
    };
    auto* call = new Call;
    call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    call->req.set_session_id(agents_[i].session_id);
    const double early = 0.7 + 0.2 * random.Uniform(1000) / 1000.0;
    call->sent = absl::Now();
    agents_[i].stub->async()->Heartbeat(
        &call->ctx, &call->req, &call->resp, [this, call, i, early](grpc::Status s) {
          const absl::Time now = absl::Now();
          if (s.ok()) {
            {
              absl::MutexLock lock(&mu_);
              latencies_.push_back(now - call->sent);
            }
            Schedule(i, now + FromProtoDuration(call->resp.period()) * early);
          } else {
            ++heartbeat_errors_;
          }
          delete call;
        });
  }

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::priority_queue<Due> due_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Duration> latencies_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> sessions_lost_{0};
  std::atomic<int> heartbeat_errors_{0};
  std::thread heartbeats_;
};

void Agent::SessionReader::Start() {
  agent_->stub->async()->Session(&ctx, &req_, this);
  StartRead(&msg_);
  StartCall();
}

void Agent::SessionReader::OnReadDone(bool ok) {
  if (!ok) return;
  if (agent_->session_id.empty()) {
    agent_->session_id = msg_.session_id();
    agents_->Schedule(agent_->index, absl::Now());
    agent_->assignments = std::make_unique<AssignmentsReader>(agents_, agent_);
    agent_->assignments->Start();
  }
  StartRead(&msg_);
}

void Agent::SessionReader::OnDone(const grpc::Status&) { ++agents_->sessions_lost_; }

void Agent::AssignmentsReader::Start() {
  req_.set_session_id(agent_->session_id);
  agent_->stub->async()->Assignments(&ctx, &req_, this);
  StartRead(&msg_);
  StartCall();
}

void Agent::AssignmentsReader::OnReadDone(bool ok) {
  if (!ok) return;
  if (msg_.type() == api::ASSIGNMENTS_TYPE_COMPLETE) agent_->complete = true;
  for (const api::AssignmentChange& c : msg_.changes()) {
    if (c.assignment().has_task()) agent_->has_task = true;
  }
  StartRead(&msg_);
}

std::string Percentile(const std::vector<absl::Duration>& sorted, double p) {
  if (sorted.empty()) return "n/a";
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return absl::StrCat(absl::ToDoubleMilliseconds(sorted[i]), " ms");
}

struct Stats {
  double cpu = 0;
  long rss_kib = 0;
  size_t sessions = 0;
  uint64_t index = 0;
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
    if (const char* v = value("--period_ms=")) config.period = absl::Milliseconds(std::atoi(v));
    if (const char* v = value("--steady_seconds=")) config.steady_seconds = std::atoi(v);
    if (const char* v = value("--wave=")) config.wave = std::max(1, std::atoi(v));
    if (const char* v = value("--bdp_probe=")) config.bdp_probe = std::atoi(v) != 0;
  }
  const int agents = config.agents;
  const int steady_seconds = config.steady_seconds;
  // Certificates first, before either process starts gRPC. The agents share one key (each has
  // its own certificate, naming its node): generating 5,000 keys would only slow the start.
  SecureRandom& random = SecureRandom::Get();
  const absl::Time cert_start = absl::Now();
  absl::StatusOr<ca::RootCA> root =
      ca::RootCA::Create("cluster", ca::kDefaultRootValidity, absl::Now(), random);
  const absl::StatusOr<std::string> key = ca::GenerateKey();
  if (!root.ok() || !key.ok()) return 1;
  const absl::StatusOr<std::string> csr = ca::CreateCsr(*key);
  if (!csr.ok()) return 1;
  auto issue = [&](const std::string& node, ca::Role role) {
    absl::StatusOr<std::string> cert =
        root->Issue(*csr, node, role, "cluster", ca::kDefaultNodeCertValidity, absl::Now(), random);
    return tls::Credentials{root->cert_pem(), cert.value_or(""), *key};
  };
  const tls::Credentials server_creds = issue("manager", ca::Role::kManager);
  std::vector<tls::Credentials> creds;
  creds.reserve(agents);
  for (int i = 0; i < agents; ++i) creds.push_back(issue(NodeId(i), ca::Role::kWorker));
  std::cout << "dispatcher_bench: " << agents << " agents, heartbeat period "
            << absl::FormatDuration(config.period) << ", mutual TLS, BDP probe "
            << (config.bdp_probe ? "on" : "off") << " (" << agents << " certificates in "
            << absl::FormatDuration(absl::Trunc(absl::Now() - cert_start, absl::Milliseconds(1)))
            << ")\n";

  int to_server[2], from_server[2];
  if (pipe(to_server) != 0 || pipe(from_server) != 0) return 1;
  const pid_t pid = fork();
  if (pid == 0) {
    close(to_server[1]);
    close(from_server[0]);
    FILE* in = fdopen(to_server[0], "r");
    FILE* out = fdopen(from_server[1], "w");
    std::_Exit(Serve(config, server_creds, in, out));
  }
  close(to_server[0]);
  close(from_server[1]);
  FILE* to = fdopen(to_server[1], "w");
  FILE* from = fdopen(from_server[0], "r");
  auto ask = [&](const char* cmd) {
    std::fprintf(to, "%s\n", cmd);
    std::fflush(to);
    char line[256] = {0};
    if (std::fgets(line, sizeof line, from) == nullptr) return std::string();
    return std::string(line);
  };
  auto stats = [&] {
    Stats s;
    const std::vector<std::string> f = absl::StrSplit(ask("stats"), ' ');
    if (f.size() == 4) {
      s.cpu = std::atof(f[0].c_str());
      s.rss_kib = std::atol(f[1].c_str());
      s.sessions = std::atol(f[2].c_str());
      s.index = std::atoll(f[3].c_str());
    }
    return s;
  };
  char line[64] = {0};
  if (std::fgets(line, sizeof line, from) == nullptr) return 1;
  const std::string addr = absl::StrCat("127.0.0.1:", std::atoi(line));

  Agents fleet(config, addr, creds);
  const Stats before_connect = stats();
  const absl::Time connect_start = absl::Now();
  const double client_cpu_start = CpuSeconds();
  bool connected = true;
  for (int begin = 0; begin < agents && connected; begin += config.wave) {
    const int end = std::min(agents, begin + config.wave);
    fleet.Connect(begin, end);
    connected =
        fleet.WaitFor([&] { return fleet.count(&Agent::complete) >= end; }, absl::Seconds(60));
  }
  const absl::Duration connect_time = absl::Now() - connect_start;
  const Stats after_connect = stats();
  std::cout << "connect: " << fleet.count(&Agent::complete) << "/" << agents
            << " agents with a session and their complete assignments in "
            << absl::FormatDuration(absl::Trunc(connect_time, absl::Milliseconds(1)))
            << (connected ? "" : " (timed out)") << ", in waves of " << config.wave
            << "; server CPU " << after_connect.cpu - before_connect.cpu << " s ("
            << 1000 * (after_connect.cpu - before_connect.cpu) / agents
            << " ms an agent: TLS handshake, session, first messages)\n";

  // Steady state: heartbeats only.
  absl::SleepFor(absl::Seconds(2));
  fleet.TakeLatencies();
  const Stats steady_start = stats();
  const double client_steady_start = CpuSeconds();
  absl::SleepFor(absl::Seconds(steady_seconds));
  const Stats steady_end = stats();
  const double client_steady = CpuSeconds() - client_steady_start;
  const std::vector<absl::Duration> lat = fleet.TakeLatencies();
  const double server_cpu = steady_end.cpu - steady_start.cpu;
  std::cout << "steady (" << steady_seconds << " s): " << lat.size() / steady_seconds
            << " heartbeats/s; server CPU " << server_cpu << " s ("
            << 100 * server_cpu / steady_seconds << "% of a core, "
            << (lat.empty() ? 0.0 : 1000 * server_cpu / lat.size()) << " ms a heartbeat), RSS "
            << steady_end.rss_kib / 1024 << " MiB, " << steady_end.sessions
            << " sessions; heartbeat latency p50 " << Percentile(lat, 0.5) << ", p99 "
            << Percentile(lat, 0.99) << ", max " << Percentile(lat, 1.0)
            << "; store writes during the phase " << steady_end.index - steady_start.index
            << "; agents' process CPU " << 100 * client_steady / steady_seconds << "% of a core\n";

  // One task for every node.
  const absl::Time assign_start = absl::Now();
  ask("assign");
  const absl::Duration written = absl::Now() - assign_start;
  const bool delivered =
      fleet.WaitFor([&] { return fleet.count(&Agent::has_task) == agents; }, absl::Seconds(60));
  const absl::Duration deliver_time = absl::Now() - assign_start;
  std::cout << "assign: " << agents << " tasks written in "
            << absl::FormatDuration(absl::Trunc(written, absl::Milliseconds(1))) << " ("
            << (agents + kTasksPerTransaction - 1) / kTasksPerTransaction << " transactions); "
            << fleet.count(&Agent::has_task) << " agents had theirs after "
            << absl::FormatDuration(absl::Trunc(deliver_time, absl::Milliseconds(1)))
            << (delivered ? "" : " (timed out)") << "\n";

  const Stats report_start = stats();
  const absl::Duration report_time = fleet.ReportAll();
  const Stats report_end = stats();
  std::cout << "report: " << agents << " agents' UpdateTaskStatus (ACCEPTED) acknowledged in "
            << absl::FormatDuration(absl::Trunc(report_time, absl::Milliseconds(1))) << ", "
            << report_end.index - report_start.index << " store transactions\n";
  std::cout << "server: " << report_end.cpu << " s CPU in all, RSS " << report_end.rss_kib / 1024
            << " MiB; sessions lost " << fleet.sessions_lost() << ", heartbeat errors "
            << fleet.heartbeat_errors() << "; agents' process CPU "
            << CpuSeconds() - client_cpu_start << " s\n";

  fleet.Stop();
  ask("quit");
  int status = 0;
  waitpid(pid, &status, 0);
  // The agents' streams are still open; the process ends without tearing 5,000 channels down.
  std::cout.flush();
  std::_Exit(connected && delivered ? 0 : 1);
}

}  // namespace
}  // namespace swarm::manager::dispatcher

int main(int argc, char** argv) { return swarm::manager::dispatcher::Main(argc, argv); }

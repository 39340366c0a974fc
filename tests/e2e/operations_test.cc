// What an operator lives through with a running swarm, driven by the swarmctl binary only:
// real swarmd processes (3 managers, drained as in production, and 3 workers), each in a
// network namespace of the test's own that plays its host (10.79.0.i on a bridge in a
// "switch" namespace), running busybox tasks as real containers. The environment does the
// rest: kill -9 and restarts of processes, a host's eth0 taken down. What is checked is what
// the operator sees (swarmctl's exit codes, messages, `node ls`, `service ps`) and, on the
// hosts, which containers really run.
//
// One swarm serves every scenario of the suite (forming it is the slow part); each scenario
// starts by waiting for the swarm to be whole, uses services of its own and removes them, so
// the scenarios do not depend on each other's order. The swarm's dispatcher heartbeat is 1 s
// (`swarm init --dispatcher-heartbeat 1s`): a silent node is DOWN after 3 s.
//
// Covered elsewhere, not repeated here: autolock and unlock (swarmctl_test's
// AutolockAndUnlockFromStandardInput), expired certificates (node/swarmd_test.cc).
//
// Needs root (namespaces, mounts, cgroups). Nothing is created in the namespace the test runs
// in; linking agent/network:test_hosts keeps every mount the test makes in a private mount
// namespace, so even a killed test leaves none behind.
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/network/netlink.h"
#include "agent/network/netns.h"
#include "agent/network/testing/test_hosts.h"
#include "agent/runtime/image_store.h"
#include "agent/runtime/runtime.h"
#include "agent/runtime/testing/test_image.h"
#include "common/status_macros.h"
#include "gtest/gtest.h"
#include "node/testing/swarmd_cluster.h"
#include "tests/e2e/swarmctl_runner.h"

namespace swarm::e2e {
namespace {

namespace fs = std::filesystem;
namespace net = agent::network;
using node::SwarmdCluster;

constexpr int kManagers = 3;  // nodes 1-3
constexpr int kWorkers = 3;   // nodes 4-6
constexpr int kMembers = kManagers + kWorkers;
constexpr int kNewcomer = 7;  // started, outside the swarm until a scenario joins it
constexpr int kHosts = 7;

// busybox's sleep as PID 1 ignores SIGTERM; this stops at once, so tasks stop without
// waiting for their grace period.
const std::string kSleeper = "busybox sh -c 'trap \"exit 0\" TERM; sleep 3600 & wait'";
const std::string kTaskFlags = "--stop-grace-period 2s ";

int IndexOf(const std::string& hostname) {
  return absl::StartsWith(hostname, "node-") ? std::atoi(hostname.c_str() + 5) : 0;
}

// A row of `service ps`.
struct TaskRow {
  std::string id;
  std::string slot;  // "svc.1", or "svc.<node ID>" for a global service
  int node = 0;      // index of the node's host, 0 when unassigned
  std::string desired;
  std::string state;  // first word of CURRENT STATE
  std::string error;
};

// A row of `node ls`.
struct NodeRow {
  std::string id;
  int index = 0;
  std::string status, availability, manager_status;
};

// The swarm every scenario shares, and the environment around it.
struct Swarm {
  std::string dir;
  std::unique_ptr<net::testing::BridgedHosts> hosts;
  std::unique_ptr<SwarmdCluster> cluster;
  std::map<int, std::string> node_ids;  // index -> node ID

  ~Swarm() {
    // The processes, their containers and their namespaces go before the hosts.
    cluster.reset();
    hosts.reset();  // its namespaces are mount points in dir
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

bool Eventually(const std::function<bool()>& cond, absl::Duration timeout = absl::Seconds(60)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(200));
  }
  return cond();
}

class OperationsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    swarm_ = new Swarm;
    setup_ = Form(*swarm_);
  }
  static void TearDownTestSuite() {
    delete swarm_;
    swarm_ = nullptr;
  }

  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "needs root: namespaces, mounts and cgroups";
    ASSERT_TRUE(setup_.ok()) << setup_;
    Heal();
    // Whatever the scenario before did, it starts with the whole swarm.
    ASSERT_TRUE(Eventually([&] { return Whole(); })) << Ctl(1, "node ls").out << Logs();
  }

  // Undoes what a scenario that failed half-way may have left: links down, daemons killed, the
  // newcomer in the swarm, a worker drained.
  static void Heal() {
    for (int i = 1; i <= kHosts; ++i) {
      ASSERT_TRUE(swarm_->hosts->SetLink(i, true).ok());
      if (!cluster().Running(i)) {
        ASSERT_TRUE(cluster().Start(i).ok()) << cluster().Output(i);
      }
    }
    if (!absl::StrContains(Ctl(kNewcomer, "info").out, "Swarm: inactive")) {
      Ctl(kNewcomer, "swarm leave --force");
    }
    for (const NodeRow& n : Nodes()) {
      if (n.index < 1 || n.index > kMembers) Ctl(AManager(), "node rm --force " + n.id);
      if (n.index > kManagers && n.index <= kMembers && n.availability != "Active") {
        Ctl(AManager(), "node update --availability active " + n.id);
      }
    }
  }

  // Builds the hosts, loads busybox into every node's image store, starts the daemons and
  // forms the swarm as an operator does.
  static absl::Status Form(Swarm& s) {
    if (geteuid() != 0) return absl::FailedPreconditionError("needs root");
    std::string tmpl = "/tmp/e2e-ops-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) return absl::ErrnoToStatus(errno, "mkdtemp");
    s.dir = tmpl;
    std::vector<int> numbers;
    for (int i = 1; i <= kHosts; ++i) numbers.push_back(i);
    ASSIGN_OR_RETURN(s.hosts, net::testing::BridgedHosts::Create(s.dir, "10.79.0.", numbers));
    RETURN_IF_ERROR(agent::runtime::testing::BuildBusyboxRootfs(s.dir + "/rootfs"));
    RETURN_IF_ERROR(
        agent::runtime::testing::BuildOciLayout({s.dir + "/rootfs"}, s.dir + "/layout").status());
    s.cluster = std::make_unique<SwarmdCluster>();
    for (int i = 1; i <= kHosts; ++i) {
      ASSIGN_OR_RETURN(auto images,
                       agent::runtime::ImageStore::Open(s.cluster->state_dir(i) + "/images"));
      RETURN_IF_ERROR(images->LoadOciLayout(s.dir + "/layout", "busybox:latest").status());
      s.cluster->SetHost(i, s.hosts->path(i), s.hosts->ip(i));
      RETURN_IF_ERROR(s.cluster->Start(i));
    }
    auto must = [&](int i, const std::string& args,
                    const std::string& in = "") -> absl::StatusOr<std::string> {
      CtlResult r = RunSwarmctl("--socket " + s.cluster->socket(i), args, in);
      if (r.code != 0) {
        return absl::InternalError(
            absl::StrCat("node ", i, ": swarmctl ", args, ": ", r.out, "\n", s.cluster->Output(i)));
      }
      return std::string(absl::StripAsciiWhitespace(r.out));
    };
    RETURN_IF_ERROR(must(1, "swarm init --availability drain --dispatcher-heartbeat 1s").status());
    ASSIGN_OR_RETURN(const std::string manager_token, must(1, "swarm join-token -q manager"));
    ASSIGN_OR_RETURN(const std::string worker_token, must(1, "swarm join-token -q worker"));
    for (int i = 2; i <= kMembers; ++i) {
      const bool manager = i <= kManagers;
      RETURN_IF_ERROR(must(i,
                           absl::StrCat("swarm join --token - ",
                                        manager ? "--availability drain " : "", s.cluster->addr(1)),
                           manager ? manager_token : worker_token)
                          .status());
    }
    for (int i = 1; i <= kMembers; ++i) {
      ASSIGN_OR_RETURN(const std::string info, must(i, "info"));
      const size_t at = info.find("NodeID: ");
      if (at == std::string::npos) return absl::InternalError("no NodeID in: " + info);
      s.node_ids[i] = info.substr(at + 8, info.find('\n', at) - at - 8);
    }
    std::error_code ec;
    fs::remove_all(s.dir + "/rootfs", ec);
    return absl::OkStatus();
  }

  static SwarmdCluster& cluster() { return *swarm_->cluster; }
  static const std::string& NodeId(int i) { return swarm_->node_ids[i]; }

  // swarmctl against node i's socket.
  static CtlResult Ctl(int i, const std::string& args, const std::string& stdin_text = "") {
    return RunSwarmctl("--socket " + cluster().socket(i), args, stdin_text);
  }
  // The output of a command that must succeed, trimmed.
  static std::string Ok(int i, const std::string& args, const std::string& stdin_text = "") {
    CtlResult r = Ctl(i, args, stdin_text);
    EXPECT_EQ(r.code, 0) << "swarmctl " << args << ":\n" << r.out;
    return std::string(absl::StripAsciiWhitespace(r.out));
  }

  // A manager that runs (the scenarios kill some).
  static int AManager() {
    for (int i = 1; i <= kManagers; ++i) {
      if (cluster().Running(i)) return i;
    }
    return 1;
  }

  static std::vector<NodeRow> Nodes(int via = 0) {
    CtlResult r = Ctl(via ? via : AManager(),
                      "node ls --format '{{.ID}}|{{.Hostname}}|{{.Status}}|{{.Availability}}|"
                      "{{.ManagerStatus}}'");
    std::vector<NodeRow> out;
    if (r.code != 0) return out;
    for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
      std::vector<std::string> f = absl::StrSplit(line, '|');
      if (f.size() != 5) continue;
      out.push_back({f[0], IndexOf(f[1]), f[2], f[3], f[4]});
    }
    return out;
  }

  // The 6 members Ready, 3 of them managers reachable, one leader, nobody else listed.
  static bool Whole(int via = 0) {
    std::vector<NodeRow> nodes = Nodes(via);
    int ready = 0, leaders = 0, managers = 0;
    for (const NodeRow& n : nodes) {
      ready += n.status == "Ready" && n.index >= 1 && n.index <= kMembers;
      leaders += n.manager_status == "Leader";
      managers += n.manager_status == "Leader" || n.manager_status == "Reachable";
    }
    return nodes.size() == kMembers && ready == kMembers && leaders == 1 && managers == kManagers;
  }

  static std::vector<TaskRow> Tasks(const std::string& service, int via = 0) {
    CtlResult r =
        Ctl(via ? via : AManager(),
            "service ps --no-trunc --format "
            "'{{.ID}}|{{.Name}}|{{.Node}}|{{.DesiredState}}|{{.CurrentState}}|{{.Error}}' " +
                service);
    std::vector<TaskRow> out;
    if (r.code != 0) return out;
    for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
      std::vector<std::string> f = absl::StrSplit(line, absl::MaxSplits('|', 5));
      if (f.size() != 6) continue;
      TaskRow t;
      t.id = f[0];
      t.slot = std::string(absl::StripPrefix(absl::StripLeadingAsciiWhitespace(f[1]), "\\_ "));
      t.node = IndexOf(f[2]);
      t.desired = f[3];
      t.state = f[4].substr(0, f[4].find(' '));
      t.error = f[5];
      out.push_back(std::move(t));
    }
    return out;
  }
  // Tasks meant to run that do.
  static std::vector<TaskRow> Running(const std::string& service) {
    std::vector<TaskRow> out;
    for (TaskRow& t : Tasks(service)) {
      if (t.desired == "Running" && t.state == "Running") out.push_back(std::move(t));
    }
    return out;
  }
  static std::map<int, int> PerNode(const std::vector<TaskRow>& tasks) {
    std::map<int, int> out;
    for (const TaskRow& t : tasks) ++out[t.node];
    return out;
  }
  static std::set<std::string> Ids(const std::vector<TaskRow>& tasks) {
    std::set<std::string> out;
    for (const TaskRow& t : tasks) out.insert(t.id);
    return out;
  }

  // The containers that run on host i, by its runtime's account: task ID -> the container.
  // Their names are <service>.<slot or node>.<task ID>.
  static std::map<std::string, agent::runtime::ContainerInfo> Containers(
      int i, const std::string& service) {
    std::map<std::string, agent::runtime::ContainerInfo> out;
    if (!fs::exists(cluster().state_dir(i) + "/runtime")) return out;
    auto rt = cluster().OpenRuntime(i);
    if (!rt.ok()) return out;
    auto all = (*rt)->List();
    if (!all.ok()) return out;
    for (auto& c : *all) {
      if (c.status != agent::runtime::ContainerStatus::kRunning ||
          !absl::StartsWith(c.name, service + ".")) {
        continue;
      }
      out[c.name.substr(c.name.rfind('.') + 1)] = std::move(c);
    }
    return out;
  }
  // The running tasks of a service are exactly the containers that run for it on the hosts,
  // each on the node the task list says.
  static bool ContainersMatch(const std::string& service, const std::vector<TaskRow>& running) {
    std::map<std::string, int> want, have;
    for (const TaskRow& t : running) want[t.id] = t.node;
    for (int i = 1; i <= kHosts; ++i) {
      for (const auto& [id, c] : Containers(i, service)) have[id] = i;
    }
    return want == have;
  }

  static std::string Describe(const std::string& service) {
    return Ctl(AManager(), "service ps --no-trunc " + service).out;
  }
  static std::string Logs() {
    std::string out;
    for (int i = 1; i <= kHosts; ++i) {
      absl::StrAppend(&out, "---- node ", i, " ----\n", cluster().Output(i));
    }
    return out;
  }

  // Removes services and waits until their containers are gone from every host.
  static void Remove(const std::vector<std::string>& services) {
    Ok(AManager(), "service rm " + absl::StrJoin(services, " "));
    for (const std::string& s : services) {
      EXPECT_TRUE(Eventually([&] {
        for (int i = 1; i <= kHosts; ++i) {
          if (!Containers(i, s).empty()) return false;
        }
        return true;
      })) << s;
    }
  }

  static Swarm* swarm_;
  static absl::Status setup_;
};

Swarm* OperationsTest::swarm_ = nullptr;
absl::Status OperationsTest::setup_;

TEST_F(OperationsTest, ReplicasSpreadAndAGlobalServiceFollowsNodesThatJoinAndLeave) {
  // Without -d the operator watches the real containers come up.
  CtlResult r = Ctl(2, "service create --name spread --replicas 6 " + kTaskFlags + kSleeper);
  ASSERT_EQ(r.code, 0) << r.out << Logs();
  EXPECT_TRUE(absl::StrContains(r.out, "overall progress: 6 out of 6 tasks")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "verify: Service converged")) << r.out;
  std::vector<TaskRow> running = Running("spread");
  ASSERT_EQ(running.size(), 6u) << Describe("spread");
  // Evenly over the workers; the drained managers run nothing.
  EXPECT_EQ(PerNode(running), (std::map<int, int>{{4, 2}, {5, 2}, {6, 2}})) << Describe("spread");
  EXPECT_TRUE(ContainersMatch("spread", running));
  EXPECT_TRUE(absl::StrContains(Ok(1, "service ls"), "6/6"));

  Ok(3, "service create -d --name everywhere --mode global " + kTaskFlags + kSleeper);
  auto global_on = [&](const std::set<int>& nodes) {
    std::vector<TaskRow> g = Running("everywhere");
    std::set<int> on;
    for (const TaskRow& t : g) on.insert(t.node);
    return g.size() == nodes.size() && on == nodes && ContainersMatch("everywhere", g);
  };
  EXPECT_TRUE(Eventually([&] { return global_on({4, 5, 6}); })) << Describe("everywhere");

  // A worker joins: the global service runs there too, the replicated one stays put.
  const std::string token = Ok(1, "swarm join-token -q worker");
  r = Ctl(kNewcomer, "swarm join --token - " + cluster().addr(2), token);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "joined a swarm as a worker")) << r.out;
  EXPECT_TRUE(Eventually([&] {
    return global_on({4, 5, 6, kNewcomer});
  })) << Describe("everywhere")
      << cluster().Output(kNewcomer);
  EXPECT_EQ(Ids(Running("spread")), Ids(running));

  // It leaves: its task stops there and is not replaced; once removed, it is gone from the
  // node list.
  r = Ctl(kNewcomer, "swarm leave");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(Eventually([&] { return global_on({4, 5, 6}); })) << Describe("everywhere");
  std::string newcomer_id;
  ASSERT_TRUE(Eventually([&] {
    for (const NodeRow& n : Nodes()) {
      if (n.index == kNewcomer && n.status == "Down") newcomer_id = n.id;
    }
    return !newcomer_id.empty();
  })) << Ctl(1, "node ls").out;
  Ok(1, "node rm " + newcomer_id);
  EXPECT_TRUE(Eventually([&] { return Whole(); })) << Ctl(1, "node ls").out;
  EXPECT_TRUE(global_on({4, 5, 6})) << Describe("everywhere");
  EXPECT_EQ(Ids(Running("spread")), Ids(running));

  Remove({"spread", "everywhere"});
}

TEST_F(OperationsTest, ADrainedNodesTasksMoveAndAnActiveOneTakesTasksAgain) {
  Ok(1, "service create -d --name moving --replicas 3 " + kTaskFlags + kSleeper);
  ASSERT_TRUE(Eventually([&] { return Running("moving").size() == 3; })) << Describe("moving");
  const std::set<std::string> before = Ids(Running("moving"));

  Ok(2, "node update --availability drain " + NodeId(5));
  EXPECT_TRUE(absl::StrContains(
      Ok(3, "node inspect --format '{{.Spec.Availability}}' " + NodeId(5)), "DRAIN"))
      << Ok(3, "node inspect " + NodeId(5));
  ASSERT_TRUE(Eventually([&] {
    std::vector<TaskRow> running = Running("moving");
    return running.size() == 3 && !PerNode(running).count(5) && Containers(5, "moving").empty() &&
           ContainersMatch("moving", running);
  })) << Describe("moving");
  // Only the drained node's tasks moved.
  std::vector<std::string> kept;
  for (const std::string& id : Ids(Running("moving"))) {
    if (before.contains(id)) kept.push_back(id);
  }
  EXPECT_EQ(kept.size(), 2u) << Describe("moving");

  Ok(2, "node update --availability active " + NodeId(5));
  EXPECT_TRUE(Eventually([&] {
    for (const NodeRow& n : Nodes()) {
      if (n.index == 5) return n.availability == "Active";
    }
    return false;
  }));
  // New tasks go to it again: scaled to 6, each worker runs 2.
  Ok(3, "service scale -d moving=6");
  EXPECT_TRUE(Eventually([&] {
    std::vector<TaskRow> running = Running("moving");
    return running.size() == 6 && PerNode(running) == std::map<int, int>{{4, 2}, {5, 2}, {6, 2}} &&
           ContainersMatch("moving", running);
  })) << Describe("moving");

  Remove({"moving"});
}

TEST_F(OperationsTest, AFailingRollingUpdateRollsBackToThePreviousSpec) {
  Ok(1,
     "service create -d --name rolling --replicas 3 --update-parallelism 1 "
     "--update-failure-action rollback --update-monitor 5s --restart-delay 1s " +
         kTaskFlags + kSleeper);
  ASSERT_TRUE(Eventually([&] { return Running("rolling").size() == 3; })) << Describe("rolling");
  const std::string spec_before = Ok(1, "service inspect --format '{{json .Spec}}' rolling");

  // The new command exits 1 at once: the first updated task fails, the update rolls back.
  CtlResult r = Ctl(2, "service update --args \"sh -c 'exit 1'\" rolling");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "update rolled back")) << r.out;
  EXPECT_TRUE(Eventually([&] {
    return absl::StrContains(Ok(1, "service inspect --format '{{.UpdateStatus.State}}' rolling"),
                             "ROLLBACK_COMPLETED");
  })) << Ok(1, "service inspect rolling");
  // The spec is the one before the update, the failed one is the previous spec.
  EXPECT_EQ(Ok(3, "service inspect --format '{{json .Spec}}' rolling"), spec_before);
  EXPECT_TRUE(absl::StrContains(
      Ok(3,
         "service inspect --format '{{json .PreviousSpec.TaskTemplate.Container.Args}}' "
         "rolling"),
      "exit 1"));
  // Three tasks run the old command, one per slot; no container runs the failing one.
  ASSERT_TRUE(Eventually([&] {
    std::vector<TaskRow> running = Running("rolling");
    std::set<std::string> slots;
    for (const TaskRow& t : running) slots.insert(t.slot);
    if (running.size() != 3 || slots.size() != 3 || !ContainersMatch("rolling", running)) {
      return false;
    }
    for (int i = 4; i <= 6; ++i) {
      for (const auto& [id, c] : Containers(i, "rolling")) {
        if (absl::StrContains(absl::StrJoin(c.args, " "), "exit 1")) return false;
      }
    }
    return true;
  })) << Describe("rolling");

  Remove({"rolling"});
}

TEST_F(OperationsTest, KillingTheLeaderLeavesTheControlApiAnsweringAndTasksAlone) {
  Ok(1, "service create -d --name steady --replicas 3 " + kTaskFlags + kSleeper);
  ASSERT_TRUE(Eventually([&] { return Running("steady").size() == 3; })) << Describe("steady");
  const std::set<std::string> tasks = Ids(Running("steady"));

  int leader = 0;
  for (const NodeRow& n : Nodes()) {
    if (n.manager_status == "Leader") leader = n.index;
  }
  ASSERT_GE(leader, 1);
  ASSERT_LE(leader, kManagers);
  const int other = leader == 1 ? 2 : 1;
  cluster().Kill(leader);
  const absl::Time killed = absl::Now();

  // The control API answers again through another manager (`node ls` needs a leader).
  CtlResult r;
  while (absl::Now() - killed < absl::Seconds(10)) {
    r = Ctl(other, "node ls");
    if (r.code == 0) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  const absl::Duration took = absl::Now() - killed;
  ASSERT_EQ(r.code, 0) << r.out;
  std::cout << "control API answering again " << absl::ToInt64Milliseconds(took)
            << " ms after kill -9 of the leader\n";
  EXPECT_LT(took, absl::Seconds(3)) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "Leader")) << r.out;
  EXPECT_TRUE(absl::StrContains(Ok(other, "service ls"), "steady"));

  // No task restarts: the same tasks keep running, through the new leader's heartbeat grace
  // (3 s) and beyond, in the task list and on the hosts.
  // (An agent's reconnect backoff is capped by the heartbeat period: it used to grow to 5 s
  // while the relays to the dead leader failed, past the new leader's 3-beat grace.)
  const absl::Time watch_until = absl::Now() + absl::Seconds(6);
  while (absl::Now() < watch_until) {
    std::vector<TaskRow> running = Running("steady");
    ASSERT_EQ(Ids(running), tasks) << Describe("steady");
    ASSERT_EQ(Tasks("steady").size(), 3u) << "no task was replaced\n" << Describe("steady");
    ASSERT_TRUE(ContainersMatch("steady", running));
    absl::SleepFor(absl::Milliseconds(500));
  }

  // The old leader comes back as a manager of the swarm.
  ASSERT_TRUE(cluster().Start(leader).ok()) << cluster().Output(leader);
  EXPECT_TRUE(Eventually([&] { return Whole(leader); })) << Ctl(other, "node ls").out;
  EXPECT_EQ(Ids(Running("steady")), tasks);

  Remove({"steady"});
}

TEST_F(OperationsTest, ACutOffWorkersTasksMoveAndNeverRunTwiceWhenItReturns) {
  constexpr int kCut = 5;
  Ok(1, "service create -d --name cut --replicas 6 " + kTaskFlags + kSleeper);
  ASSERT_TRUE(Eventually([&] { return Running("cut").size() == 6; })) << Describe("cut");
  const std::vector<TaskRow> before = Running("cut");
  std::set<std::string> on_cut;
  for (const TaskRow& t : before) {
    if (t.node == kCut) on_cut.insert(t.id);
  }
  ASSERT_FALSE(on_cut.empty()) << Describe("cut");

  // Never two tasks meant to run in one slot, whenever we look.
  auto one_per_slot = [&] {
    std::map<std::string, int> desired;
    for (const TaskRow& t : Tasks("cut")) desired[t.slot] += t.desired == "Running";
    for (const auto& [slot, n] : desired) {
      if (n > 1) return false;
    }
    return true;
  };

  ASSERT_TRUE(swarm_->hosts->SetLink(kCut, false).ok());
  const absl::Time cut = absl::Now();
  bool twice = false;
  ASSERT_TRUE(Eventually([&] {
    twice |= !one_per_slot();
    std::vector<TaskRow> running = Running("cut");
    return running.size() == 6 && !PerNode(running).count(kCut);
  })) << Describe("cut");
  std::cout << "tasks of a cut-off worker running elsewhere after "
            << absl::ToInt64Milliseconds(absl::Now() - cut) << " ms\n";
  EXPECT_GE(absl::Now() - cut, absl::Seconds(2)) << "moved before the heartbeat grace";
  bool down = false;
  for (const NodeRow& n : Nodes()) down |= n.index == kCut && n.status == "Down";
  EXPECT_TRUE(down) << Ctl(1, "node ls").out;
  // The cut-off node cannot know: its containers still run (as Docker's would).
  EXPECT_EQ(Containers(kCut, "cut").size(), on_cut.size());

  // It comes back: the old tasks are shut down there, the replacements keep running.
  ASSERT_TRUE(swarm_->hosts->SetLink(kCut, true).ok());
  const std::set<std::string> replacements = Ids(Running("cut"));
  EXPECT_TRUE(Eventually([&] {
    twice |= !one_per_slot();
    std::vector<TaskRow> running = Running("cut");
    return Whole() && Containers(kCut, "cut").empty() && ContainersMatch("cut", running);
  })) << Describe("cut")
      << cluster().Output(kCut);
  EXPECT_FALSE(twice) << Describe("cut");
  EXPECT_EQ(Ids(Running("cut")), replacements) << Describe("cut");
  for (const TaskRow& t : Tasks("cut")) {
    if (on_cut.contains(t.id)) {
      EXPECT_NE(t.desired, "Running") << Describe("cut");
      EXPECT_NE(t.state, "Running") << Describe("cut");
    }
  }

  Remove({"cut"});
}

TEST_F(OperationsTest, BadInputIsRefusedWithWhatWasWrongAndLosesNothing) {
  Ok(1, "service create -d --name keep --replicas 2 " + kTaskFlags + kSleeper);
  ASSERT_TRUE(Eventually([&] { return Running("keep").size() == 2; })) << Describe("keep");
  const std::set<std::string> tasks = Ids(Running("keep"));
  const std::string version = Ok(1, "service inspect --format '{{.Meta.Version.Index}}' keep");
  const std::string services = Ok(1, "service ls -q");

  struct Case {
    std::string args;
    std::vector<std::string> says;  // what the message names
  };
  const std::vector<Case> cases = {
      {"service create --name x --replicas many busybox", {"replicas", "many"}},
      {"service create --name x --mode sometimes busybox", {"mode", "sometimes"}},
      {"service create --name x --no-such-flag busybox", {"no-such-flag"}},
      {"service create --name x --limit-memory lots busybox", {"limit-memory", "lots"}},
      {"service create --name x --constraint 'node.labels.zone~mars' busybox", {"constraint"}},
      {"service update --update-failure-action explode keep", {"failure-action", "explode"}},
      {"service update --replicas -2 keep", {"replicas"}},
      {"service scale keep=lots", {"lots"}},
      {"service update --image busybox no-such-service", {"no-such-service"}},
      {"node update --availability sideways " + NodeId(4), {"availability", "sideways"}},
      {"swarm init", {"already part of a swarm"}},
  };
  for (const Case& c : cases) {
    CtlResult r = Ctl(2, c.args);
    EXPECT_NE(r.code, 0) << c.args << ":\n" << r.out;
    for (const std::string& s : c.says) {
      EXPECT_TRUE(absl::StrContains(r.out, s)) << c.args << ": says no " << s << ":\n" << r.out;
    }
  }

  // An image no registry has: the wait ends with why the tasks failed, naming the image.
  const std::string ghost = swarm_->hosts->ip(1) + ":5000/ghost:1";
  CtlResult r = Ctl(2, "service create --name ghost --restart-delay 100ms " + ghost);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "Error: service ghost did not converge")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, ghost)) << r.out;
  Ok(1, "service rm ghost");

  // A constraint no node meets: the task waits, saying why.
  Ok(3, "service create -d --name nowhere --constraint node.labels.zone==mars " + kSleeper);
  std::vector<TaskRow> pending;
  EXPECT_TRUE(Eventually([&] {
    pending = Tasks("nowhere");
    return pending.size() == 1 && pending[0].state == "Pending" &&
           absl::StrContains(pending[0].error, "no suitable node");
  })) << Describe("nowhere");
  if (!pending.empty()) {
    EXPECT_TRUE(absl::StrContains(pending[0].error, "constraint")) << pending[0].error;
  }
  Ok(1, "service rm nowhere");

  // A wrong join token: the newcomer is told so, and is not let in.
  const std::string token = Ok(1, "swarm join-token -q worker");
  const std::string forged = token.substr(0, token.rfind('-') + 1) + std::string(25, 'x');
  r = Ctl(kNewcomer, "swarm join --token - " + cluster().addr(1), forged);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "invalid join token")) << r.out;
  // One cut short by a bad copy and paste (the secret is missing).
  const std::string truncated = token.substr(0, token.rfind('-'));
  r = Ctl(kNewcomer, "swarm join --token - " + cluster().addr(1), truncated);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "invalid join token")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "3 parts separated by '-' instead of 4")) << r.out;
  EXPECT_TRUE(absl::StrContains(Ok(kNewcomer, "info"), "Swarm: inactive")) << Ok(kNewcomer, "info");

  // Nothing lost: the same nodes, services, spec version and tasks.
  EXPECT_TRUE(Whole());
  EXPECT_EQ(Ok(1, "service ls -q"), services);
  EXPECT_EQ(Ok(1, "service inspect --format '{{.Meta.Version.Index}}' keep"), version);
  EXPECT_EQ(Ids(Running("keep")), tasks) << Describe("keep");

  Remove({"keep"});
}

// Last: it restarts everything (the scenarios do not depend on their order, but a failure
// here should not hide the others').
TEST_F(OperationsTest, EveryNodeRestartedAtOnceBringsTheSwarmAndItsServicesBack) {
  Ok(1, "service create -d --name survivor --replicas 3 " + kTaskFlags + kSleeper);
  Ok(1, "service create -d --name everywhere --mode global " + kTaskFlags + kSleeper);
  ASSERT_TRUE(Eventually([&] {
    return Running("survivor").size() == 3 && Running("everywhere").size() == kWorkers;
  })) << Describe("survivor");
  const std::set<std::string> before = Ids(Running("survivor"));

  for (int i = 1; i <= kMembers; ++i) cluster().Kill(i);
  const absl::Time killed = absl::Now();
  for (int i = 1; i <= kMembers; ++i) {
    absl::Status s = cluster().Start(i);
    ASSERT_TRUE(s.ok()) << s;
  }
  ASSERT_TRUE(Eventually([&] { return Whole(); })) << Ctl(1, "node ls").out << Logs();
  std::cout << "the swarm whole again " << absl::ToInt64Milliseconds(absl::Now() - killed)
            << " ms after kill -9 of every node\n";
  ASSERT_TRUE(Eventually([&] {
    std::vector<TaskRow> survivor = Running("survivor");
    std::vector<TaskRow> global = Running("everywhere");
    std::set<std::string> slots;
    for (const TaskRow& t : survivor) slots.insert(t.slot);
    return survivor.size() == 3 && slots.size() == 3 && global.size() == kWorkers &&
           PerNode(global).size() == kWorkers && ContainersMatch("survivor", survivor) &&
           ContainersMatch("everywhere", global);
  })) << Describe("survivor")
      << Describe("everywhere");
  const std::set<std::string> after = Ids(Running("survivor"));
  std::cout << (after == before ? "the same tasks run (containers adopted)"
                                : "some tasks were replaced")
            << "\n";
  EXPECT_TRUE(absl::StrContains(Ok(2, "service ls"), "3/3"));

  Remove({"survivor", "everywhere"});
}

}  // namespace
}  // namespace swarm::e2e

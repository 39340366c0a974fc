// Agents and managers as separate processes: 3 managers and 3 workers, real swarmd on
// loopback, with the simulated executor (tasks that only pretend to run, so the test is about
// sessions, heartbeats, assignments and reports, not containers). A replicated service runs on
// the agents; a killed agent's tasks move after the grace; an agent whose manager dies moves to
// another manager and its tasks keep running; a restarted agent adopts its tasks.
#include <set>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "node/testing/swarmd_cluster.h"

namespace swarm::node {
namespace {

class AgentsTest : public ::testing::Test {
 protected:
  static SwarmdCluster::Options ClusterOptions() {
    SwarmdCluster::Options o;
    // A node is DOWN after 6 s of silence: an agent restart stays well within that.
    o.heartbeat = absl::Seconds(2);
    return o;
  }

  void SetUp() override {
    for (int i = 1; i <= 6; ++i) ASSERT_TRUE(StartNode(i).ok()) << cluster_.Output(i);
    auto init = cluster_.Init(1);
    ASSERT_TRUE(init.ok()) << init.status() << cluster_.Output(1);
    for (int i = 2; i <= 6; ++i) {
      auto joined = cluster_.Join(i, 1, /*manager=*/i <= 3);
      ASSERT_TRUE(joined.ok()) << joined.status() << cluster_.Output(i);
    }
    ASSERT_TRUE(Eventually([&] { return ReadyNodes() == 6; }));
    for (int i = 1; i <= 6; ++i) {
      auto info = cluster_.Info(i);
      ASSERT_TRUE(info.ok());
      node_ids_[i] = info->node_id();
    }
  }

  absl::Status StartNode(int i) { return cluster_.Start(i, {"--executor", "simulated"}); }

  // The control API of a running manager.
  api::Control::Stub& Control() {
    for (int i = 1; i <= 3; ++i) {
      if (cluster_.Running(i)) return cluster_.control(i);
    }
    return cluster_.control(1);
  }

  std::string CreateService(uint64_t replicas) {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::CreateServiceRequest req;
    req.mutable_spec()->mutable_annotations()->set_name("web");
    req.mutable_spec()->mutable_task_template()->mutable_container()->set_image("sim");
    auto* restart = req.mutable_spec()->mutable_task_template()->mutable_restart_policy();
    restart->set_condition(api::RESTART_CONDITION_ANY);
    restart->mutable_delay()->set_nanos(200'000'000);
    req.mutable_spec()->mutable_task_template()->mutable_placement()->add_constraints(
        "node.role==worker");
    req.mutable_spec()->mutable_replicated()->set_replicas(replicas);
    api::CreateServiceResponse resp;
    grpc::Status s = Control().CreateService(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.service().id();
  }

  std::vector<api::Task> Running(const std::string& service_id) {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::ListTasksRequest req;
    req.mutable_filters()->add_service_ids(service_id);
    api::ListTasksResponse resp;
    std::vector<api::Task> out;
    if (!Control().ListTasks(&ctx, req, &resp).ok()) return out;
    for (const api::Task& t : resp.tasks()) {
      if (t.status().state() == api::TASK_STATE_RUNNING) out.push_back(t);
    }
    return out;
  }
  // Running task IDs on node i.
  std::set<std::string> RunningOn(const std::string& service_id, int i) {
    std::set<std::string> out;
    for (const api::Task& t : Running(service_id)) {
      if (t.node_id() == node_ids_[i]) out.insert(t.id());
    }
    return out;
  }
  int ReadyNodes() {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::ListNodesResponse resp;
    if (!Control().ListNodes(&ctx, api::ListNodesRequest(), &resp).ok()) return 0;
    int n = 0;
    for (const api::Node& node : resp.nodes()) n += node.status().state() == api::NODE_STATE_READY;
    return n;
  }
  static bool Eventually(const std::function<bool()>& cond,
                         absl::Duration timeout = absl::Seconds(60)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (cond()) return true;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return cond();
  }

  SwarmdCluster cluster_{ClusterOptions()};
  std::map<int, std::string> node_ids_;
};

TEST_F(AgentsTest, TasksRunOnAgentsThatFailMoveAndRestart) {
  const std::string id = CreateService(6);
  ASSERT_TRUE(Eventually([&] { return Running(id).size() == 6; }));
  for (int i = 4; i <= 6; ++i) EXPECT_EQ(RunningOn(id, i).size(), 2u) << "spread: node " << i;

  // kill -9 an agent: its tasks run on the other workers after the grace.
  cluster_.Kill(6);
  const absl::Time killed = absl::Now();
  ASSERT_TRUE(Eventually([&] {
    return Running(id).size() == 6 && RunningOn(id, 4).size() + RunningOn(id, 5).size() == 6;
  }));
  std::cout << "a dead agent's tasks running elsewhere after "
            << absl::ToInt64Milliseconds(absl::Now() - killed) << " ms\n";

  // Kill the manager the agents joined through (and first talk to): they move to another
  // manager, and their tasks keep running, the same tasks.
  const std::set<std::string> on4 = RunningOn(id, 4), on5 = RunningOn(id, 5);
  cluster_.Kill(1);
  ASSERT_TRUE(Eventually([&] { return cluster_.WaitForLeader(absl::Seconds(1)).ok(); }));
  absl::SleepFor(absl::Seconds(8));  // past the new leader's heartbeat grace
  EXPECT_EQ(RunningOn(id, 4), on4);
  EXPECT_EQ(RunningOn(id, 5), on5);

  // Restart an agent: it adopts its tasks.
  const absl::Time stopped = absl::Now();
  EXPECT_EQ(cluster_.Terminate(5), 0);
  ASSERT_TRUE(StartNode(5).ok());
  std::cout << "agent restarted in " << absl::ToInt64Milliseconds(absl::Now() - stopped) << " ms\n";
  // Past the heartbeat grace: the restarted agent found a live manager (the one it joined
  // through is dead) and kept its tasks.
  absl::SleepFor(absl::Seconds(8));
  EXPECT_EQ(ReadyNodes(), 4) << cluster_.Output(5);
  EXPECT_EQ(RunningOn(id, 5), on5) << cluster_.Output(5);
  EXPECT_EQ(Running(id).size(), 6u);
}

}  // namespace
}  // namespace swarm::node

// Services that really run: real swarmd processes on loopback, a manager and a worker, whose
// agents pull busybox from a registry on loopback and run the tasks as containers of our
// runtime. What a user of Docker swarm would check: replicas spread and run, a dead worker's
// tasks move after the heartbeat grace and never run twice when it returns, a restarted
// daemon adopts its containers without restarting them, a removed service leaves nothing.
#include <grpcpp/grpcpp.h>

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/runtime/runtime.h"
#include "agent/runtime/testing/local_registry.h"
#include "gtest/gtest.h"
#include "node/testing/swarmd_cluster.h"
#include "proto/logbroker.grpc.pb.h"

namespace swarm::node {
namespace {

using agent::runtime::testing::LocalRegistry;

class TasksTest : public ::testing::Test {
 protected:
  static SwarmdCluster::Options ClusterOptions() {
    SwarmdCluster::Options o;
    o.heartbeat = absl::Seconds(1);  // a dead node is DOWN after 3 s
    return o;
  }

  void SetUp() override {
    auto r = LocalRegistry::Start({"sleep", "3600"});
    ASSERT_TRUE(r.ok()) << r.status();
    registry_ = *std::move(r);
    for (int i = 1; i <= 2; ++i) {
      absl::Status s = StartNode(i);
      ASSERT_TRUE(s.ok()) << s << cluster_.Output(i);
    }
    auto init = cluster_.Init(1);
    ASSERT_TRUE(init.ok()) << init.status() << cluster_.Output(1);
    auto joined = cluster_.Join(2, 1, /*manager=*/false);
    ASSERT_TRUE(joined.ok()) << joined.status() << cluster_.Output(2);
    ASSERT_TRUE(Eventually([&] { return ReadyNodes() == 2; })) << cluster_.Output(1);
  }

  absl::Status StartNode(int i) {
    return cluster_.Start(i, {"--insecure-registry", registry_->addr()});
  }

  std::string CreateService(const std::string& name, uint64_t replicas,
                            const std::vector<std::string>& args = {}) {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::CreateServiceRequest req;
    auto* spec = req.mutable_spec();
    spec->mutable_annotations()->set_name(name);
    spec->mutable_task_template()->mutable_container()->set_image(registry_->busybox());
    spec->mutable_task_template()->mutable_container()->mutable_stop_grace_period()->set_seconds(1);
    spec->mutable_replicated()->set_replicas(replicas);
    for (const std::string& a : args)
      spec->mutable_task_template()->mutable_container()->add_args(a);
    api::CreateServiceResponse resp;
    grpc::Status s = cluster_.control(1).CreateService(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.service().id();
  }

  std::vector<api::Task> Tasks(const std::string& service_id) {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::ListTasksRequest req;
    req.mutable_filters()->add_service_ids(service_id);
    api::ListTasksResponse resp;
    grpc::Status s = cluster_.control(1).ListTasks(&ctx, req, &resp);
    if (!s.ok()) return {};
    return {resp.tasks().begin(), resp.tasks().end()};
  }
  std::vector<api::Task> Running(const std::string& service_id) {
    std::vector<api::Task> out;
    for (api::Task& t : Tasks(service_id)) {
      if (t.status().state() == api::TASK_STATE_RUNNING) out.push_back(std::move(t));
    }
    return out;
  }
  std::map<std::string, api::Node> Nodes() {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::ListNodesResponse resp;
    std::map<std::string, api::Node> out;
    if (!cluster_.control(1).ListNodes(&ctx, api::ListNodesRequest(), &resp).ok()) return out;
    for (const api::Node& n : resp.nodes()) out[n.id()] = n;
    return out;
  }
  int ReadyNodes() {
    int n = 0;
    for (const auto& [id, node] : Nodes()) n += node.status().state() == api::NODE_STATE_READY;
    return n;
  }
  // Containers that run on node i, by its runtime's account.
  int ContainersRunning(int i) {
    auto rt = cluster_.OpenRuntime(i);
    if (!rt.ok()) return -1;
    auto all = (*rt)->List();
    if (!all.ok()) return -1;
    int n = 0;
    for (const auto& c : *all) n += c.status == agent::runtime::ContainerStatus::kRunning;
    return n;
  }
  std::string Describe(const std::string& service_id) {
    std::string out;
    for (const api::Task& t : Tasks(service_id)) {
      absl::StrAppend(&out, t.annotations().name(), " node=", t.node_id(),
                      " desired=", api::TaskState_Name(t.desired_state()),
                      " state=", api::TaskState_Name(t.status().state()), " ", t.status().message(),
                      " ", t.status().err(), "\n");
    }
    return out;
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

  std::unique_ptr<LocalRegistry> registry_;
  SwarmdCluster cluster_{ClusterOptions()};
};

TEST_F(TasksTest, ReplicasRunSpreadAndMoveOffADeadWorker) {
  const std::string id = CreateService("web", 4);
  ASSERT_TRUE(Eventually([&] { return Running(id).size() == 4; }))
      << Describe(id) << cluster_.Output(1) << cluster_.Output(2);
  std::map<std::string, int> per_node;
  for (const api::Task& t : Running(id)) ++per_node[t.node_id()];
  EXPECT_EQ(per_node.size(), 2u) << "spread over both nodes";
  EXPECT_EQ(ContainersRunning(1) + ContainersRunning(2), 4);

  // kill -9 the worker: after the grace its tasks run on the manager.
  cluster_.Kill(2);
  const absl::Time killed = absl::Now();
  ASSERT_TRUE(Eventually([&] {
    auto running = Running(id);
    std::set<std::string> nodes;
    for (const api::Task& t : running) nodes.insert(t.node_id());
    return running.size() == 4 && nodes.size() == 1;
  })) << Describe(id);
  std::cout << "tasks of a dead worker running elsewhere after "
            << absl::ToInt64Milliseconds(absl::Now() - killed) << " ms\n";

  // It comes back: its old containers are stopped, never two tasks in a slot.
  ASSERT_TRUE(StartNode(2).ok());
  ASSERT_TRUE(Eventually([&] { return ReadyNodes() == 2 && ContainersRunning(2) == 0; }))
      << Describe(id) << cluster_.Output(2);
  std::set<uint64_t> slots;
  for (const api::Task& t : Running(id)) EXPECT_TRUE(slots.insert(t.slot()).second) << Describe(id);
  EXPECT_EQ(slots.size(), 4u);
}

TEST_F(TasksTest, ARestartedDaemonAdoptsItsContainersAndARemovedServiceLeavesNothing) {
  const std::string id = CreateService("web", 2);
  ASSERT_TRUE(Eventually([&] { return Running(id).size() == 2; })) << Describe(id);
  std::set<std::string> before;
  for (const api::Task& t : Running(id)) before.insert(t.id());

  // SIGTERM and start again the worker, then the manager: the same tasks keep running.
  for (int i : {2, 1}) {
    cluster_.Terminate(i);
    ASSERT_TRUE(StartNode(i).ok());
  }
  ASSERT_TRUE(Eventually([&] { return ReadyNodes() == 2; }));
  absl::SleepFor(absl::Seconds(3));
  std::set<std::string> after;
  for (const api::Task& t : Running(id)) after.insert(t.id());
  EXPECT_EQ(after, before) << Describe(id);
  EXPECT_EQ(Tasks(id).size(), 2u) << "no task was replaced";

  grpc::ClientContext ctx;
  SetTimeout(ctx);
  api::RemoveServiceRequest req;
  req.set_service_id(id);
  api::RemoveServiceResponse resp;
  ASSERT_TRUE(cluster_.control(1).RemoveService(&ctx, req, &resp).ok());
  ASSERT_TRUE(Eventually([&] {
    return Tasks(id).empty() && ContainersRunning(1) == 0 && ContainersRunning(2) == 0;
  })) << Describe(id);
}

// `service logs` through node 1's unix socket: every task's lines, and a node that cannot
// answer is named without hanging the rest.
struct Logs {
  std::map<std::string, std::string> by_task;  // task ID -> its lines
  std::set<std::string> unavailable;           // node IDs
  absl::Duration took;
};

TEST_F(TasksTest, ServiceLogsComeFromEveryTaskAndAMissingNodeIsNamed) {
  const std::string id =
      CreateService("talk", 2, {"sh", "-c", "echo hello from $(hostname); sleep 3600"});
  ASSERT_TRUE(Eventually([&] { return Running(id).size() == 2; })) << Describe(id);
  auto stub = api::Logs::NewStub(
      grpc::CreateChannel("unix:" + cluster_.socket(1), grpc::InsecureChannelCredentials()));
  auto read = [&] {
    Logs out;
    const absl::Time start = absl::Now();
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(30));
    api::SubscribeLogsRequest req;
    req.mutable_selector()->add_service_ids(id);
    auto reader = stub->SubscribeLogs(&ctx, req);
    api::SubscribeLogsMessage msg;
    while (reader->Read(&msg)) {
      for (const auto& m : msg.messages()) out.by_task[m.context().task_id()] += m.data();
      for (const auto& u : msg.unavailable()) out.unavailable.insert(u.node_id());
    }
    EXPECT_TRUE(reader->Finish().ok());
    out.took = absl::Now() - start;
    return out;
  };
  Logs logs;
  ASSERT_TRUE(Eventually(
      [&] {
        logs = read();
        return logs.by_task.size() == 2;
      },
      absl::Seconds(30)));
  for (const auto& [task, lines] : logs.by_task) {
    EXPECT_TRUE(absl::StrContains(lines, "hello from ")) << lines;
  }

  // The worker dies: its part is reported missing, node 1's lines still come, nothing hangs.
  std::string worker;
  for (const api::Task& t : Running(id)) {
    if (t.node_id() != cluster_.Info(1)->node_id()) worker = t.node_id();
  }
  ASSERT_FALSE(worker.empty()) << Describe(id);
  cluster_.Kill(2);
  logs = read();
  EXPECT_TRUE(logs.unavailable.count(worker)) << "the dead worker is named";
  EXPECT_EQ(logs.by_task.size(), 1u);
  EXPECT_LT(logs.took, absl::Seconds(15));
}

}  // namespace
}  // namespace swarm::node

#include "scheduler/node_set.h"

#include <map>
#include <random>

#include "gtest/gtest.h"
#include "scheduler/test_util.h"

namespace swarm::scheduler {
namespace {

using testing::kCpu;
using testing::kGiB;
using testing::MakeNode;
using testing::MakeTask;
using testing::Running;

std::shared_ptr<const api::Node> NodePtr(api::Node n) {
  return std::make_shared<const api::Node>(std::move(n));
}

api::Task WithState(api::Task t, api::TaskState state) {
  t.mutable_status()->set_state(state);
  return t;
}

TEST(NodeSetTest, UpsertTask_CountsOnlyFromAssignedToRunning) {
  NodeSet set;
  set.UpsertNode(NodePtr(MakeNode("n1", 4 * kCpu, 8 * kGiB)));
  api::Task t = MakeTask("t1", "svc", kCpu, kGiB);
  t.set_node_id("n1");
  const NodeInfo* n1 = set.Find("n1");
  for (api::TaskState s : {api::TASK_STATE_NEW, api::TASK_STATE_PENDING}) {
    set.UpsertTask(WithState(t, s));
    EXPECT_EQ(n1->total_tasks(), 0) << s;
  }
  for (api::TaskState s : {api::TASK_STATE_ASSIGNED, api::TASK_STATE_ACCEPTED,
                           api::TASK_STATE_STARTING, api::TASK_STATE_RUNNING}) {
    set.UpsertTask(WithState(t, s));
    EXPECT_EQ(n1->total_tasks(), 1) << s;
    EXPECT_EQ(n1->available_cpu(), 3 * kCpu) << s;
    EXPECT_EQ(n1->available_memory(), 7 * kGiB) << s;
    EXPECT_EQ(n1->ServiceTasks(set.FindService("svc")), 1) << s;
    set.CheckInvariants();
  }
  for (api::TaskState s :
       {api::TASK_STATE_COMPLETE, api::TASK_STATE_SHUTDOWN, api::TASK_STATE_FAILED,
        api::TASK_STATE_REJECTED, api::TASK_STATE_ORPHANED}) {
    set.UpsertTask(WithState(t, api::TASK_STATE_RUNNING));
    set.UpsertTask(WithState(t, s));
    EXPECT_EQ(n1->total_tasks(), 0) << s;
    EXPECT_EQ(n1->available_cpu(), 4 * kCpu) << s;
    EXPECT_EQ(set.FindService("svc"), kNoService) << s;
    set.CheckInvariants();
  }
}

TEST(NodeSetTest, UpsertTask_ReplacesWhatTheTaskWasCountedFor) {
  NodeSet set;
  set.UpsertNode(NodePtr(MakeNode("n1")));
  set.UpsertNode(NodePtr(MakeNode("n2")));
  api::Task t = Running(MakeTask("t1", "svc", kCpu, kGiB), "n1");
  testing::AddHostPort(&t, 80);
  set.UpsertTask(t);
  set.UpsertTask(t);  // a watch event seen twice
  EXPECT_EQ(set.Find("n1")->total_tasks(), 1);
  EXPECT_EQ(set.Find("n1")->available_cpu(), 3 * kCpu);
  EXPECT_TRUE(set.Find("n1")->PortInUse(MakeHostPort(api::PORT_PROTOCOL_TCP, 80)));
  EXPECT_FALSE(set.Find("n1")->PortInUse(MakeHostPort(api::PORT_PROTOCOL_UDP, 80)));

  set.UpsertTask(Running(t, "n2"));
  EXPECT_EQ(set.Find("n1")->total_tasks(), 0);
  EXPECT_FALSE(set.Find("n1")->PortInUse(MakeHostPort(api::PORT_PROTOCOL_TCP, 80)));
  EXPECT_EQ(set.Find("n2")->total_tasks(), 1);
  EXPECT_TRUE(set.Find("n2")->PortInUse(MakeHostPort(api::PORT_PROTOCOL_TCP, 80)));
  set.CheckInvariants();

  set.RemoveTask("t1");
  set.RemoveTask("t1");
  EXPECT_EQ(set.Find("n2")->total_tasks(), 0);
  EXPECT_EQ(set.counted_tasks(), 0u);
  set.CheckInvariants();
}

TEST(NodeSetTest, Assign_IsReplacedByTheWriteThatCarriesIt) {
  NodeSet set;
  set.UpsertNode(NodePtr(MakeNode("n1")));
  api::Task t = MakeTask("t1", "svc", kCpu, 0);
  t.mutable_meta()->mutable_version()->set_index(7);
  const ServiceKey key = set.Assign(t, set.Find("n1"));
  EXPECT_EQ(key, set.FindService("svc"));
  EXPECT_NE(key, kNoService);
  EXPECT_EQ(set.TaskVersion("t1"), 7u);
  EXPECT_EQ(set.Find("n1")->available_cpu(), 3 * kCpu);
  api::Task assigned = t;
  assigned.set_node_id("n1");
  assigned.mutable_status()->set_state(api::TASK_STATE_ASSIGNED);
  assigned.mutable_meta()->mutable_version()->set_index(9);
  set.UpsertTask(assigned);
  EXPECT_EQ(set.Find("n1")->available_cpu(), 3 * kCpu);
  EXPECT_EQ(set.TaskVersion("t1"), 9u);
  set.CheckInvariants();
}

TEST(NodeSetTest, TasksOnUnknownNodes_AreCountedOnAPlaceholderUntilTheNodeAppears) {
  NodeSet set;
  set.UpsertTask(Running(MakeTask("t1", "svc", kCpu, kGiB), "n1"));
  ASSERT_NE(set.Find("n1"), nullptr);
  EXPECT_EQ(set.Find("n1")->node(), nullptr);
  EXPECT_TRUE(set.nodes().empty());
  set.CheckInvariants();

  set.UpsertNode(NodePtr(MakeNode("n1", 2 * kCpu, 2 * kGiB)));
  ASSERT_EQ(set.nodes().size(), 1u);
  EXPECT_EQ(set.Find("n1")->available_cpu(), kCpu);
  set.CheckInvariants();

  const uint64_t gen = set.generation();
  set.RemoveNode("n1");
  EXPECT_GT(set.generation(), gen);
  EXPECT_TRUE(set.nodes().empty());
  ASSERT_NE(set.Find("n1"), nullptr) << "its task still names it";
  set.RemoveTask("t1");
  EXPECT_EQ(set.Find("n1"), nullptr);
  set.CheckInvariants();
}

TEST(NodeSetTest, Generation_ChangesWithNodesOnly) {
  NodeSet set;
  const uint64_t g0 = set.generation();
  set.UpsertNode(NodePtr(MakeNode("n1")));
  const uint64_t g1 = set.generation();
  EXPECT_NE(g0, g1);
  set.UpsertTask(Running(MakeTask("t1", "svc"), "n1"));
  EXPECT_EQ(set.generation(), g1);
  set.UpsertNode(NodePtr(MakeNode("n1", 1)));
  EXPECT_NE(set.generation(), g1);
}

// Random node and task changes against a plain model of what each node holds.
TEST(NodeSetTest, Property_CountsEqualTheSumsOfRunningTasks) {
  std::mt19937 rng(42);
  NodeSet set;
  const std::vector<std::string> nodes = {"n0", "n1", "n2", "n3", "n4"};
  const std::vector<std::string> services = {"a", "b", "c"};
  std::map<std::string, api::Task> tasks;  // the model: the latest version of every task
  std::map<std::string, bool> present;
  for (int step = 0; step < 5000; ++step) {
    const int op = rng() % 10;
    if (op == 0) {
      const std::string& n = nodes[rng() % nodes.size()];
      if (rng() % 3 == 0) {
        set.RemoveNode(n);
        present[n] = false;
      } else {
        set.UpsertNode(NodePtr(MakeNode(n, 16 * kCpu, 16 * kGiB)));
        present[n] = true;
      }
    } else if (op == 1 && !tasks.empty()) {
      auto it = tasks.begin();
      std::advance(it, rng() % tasks.size());
      set.RemoveTask(it->first);
      tasks.erase(it);
    } else {
      const std::string id = "t" + std::to_string(rng() % 40);
      api::Task t = MakeTask(id, services[rng() % services.size()], (rng() % 4) * kCpu / 4,
                             (rng() % 4) * kGiB);
      static const api::TaskState kStates[] = {api::TASK_STATE_PENDING, api::TASK_STATE_ASSIGNED,
                                               api::TASK_STATE_RUNNING, api::TASK_STATE_FAILED};
      t.mutable_status()->set_state(kStates[rng() % 4]);
      if (t.status().state() != api::TASK_STATE_PENDING) t.set_node_id(nodes[rng() % nodes.size()]);
      if (rng() % 2) testing::AddHostPort(&t, 8000 + rng() % 3);
      set.UpsertTask(t);
      tasks[id] = t;
    }
    set.CheckInvariants();
    for (const std::string& n : nodes) {
      int64_t cpu = 0, memory = 0;
      int32_t total = 0;
      std::map<std::string, int32_t> by_service;
      for (const auto& [id, t] : tasks) {
        if (!HoldsNode(t) || t.node_id() != n) continue;
        cpu += t.spec().resources().reservations().nano_cpus();
        memory += t.spec().resources().reservations().memory_bytes();
        ++total;
        ++by_service[t.service_id()];
      }
      const NodeInfo* info = set.Find(n);
      if (info == nullptr) {
        ASSERT_EQ(total, 0) << n;
        ASSERT_FALSE(present[n]) << n;
        continue;
      }
      ASSERT_EQ(info->node() != nullptr, present[n]) << n;
      ASSERT_EQ(info->total_tasks(), total) << n;
      if (present[n]) {
        ASSERT_EQ(info->available_cpu(), 16 * kCpu - cpu) << n;
        ASSERT_EQ(info->available_memory(), 16 * kGiB - memory) << n;
      }
      for (const std::string& s : services) {
        ASSERT_EQ(info->ServiceTasks(set.FindService(s)), by_service[s]) << n << " " << s;
      }
    }
  }
}

}  // namespace
}  // namespace swarm::scheduler

#include "scheduler/filter.h"

#include "gtest/gtest.h"
#include "scheduler/test_util.h"

namespace swarm::scheduler {
namespace {

using testing::kCpu;
using testing::kGiB;
using testing::MakeNode;
using testing::MakeTask;

class FilterTest : public ::testing::Test {
 protected:
  FilterTest() { SetNode(MakeNode("n1", 2 * kCpu, 4 * kGiB, {{"zone", "east"}})); }

  void SetNode(api::Node n) { nodes_.UpsertNode(std::make_shared<const api::Node>(std::move(n))); }
  const NodeInfo& node() { return *nodes_.Find("n1"); }

  // The first filter that rejects n1 for the task, or nullopt.
  std::optional<FilterId> Rejection(const api::Task& task) {
    absl::StatusOr<TaskRequirements> req = TaskRequirements::FromTask(task);
    EXPECT_TRUE(req.ok()) << req.status();
    req->service = nodes_.FindService(task.service_id());
    return FirstRejection(*req, node());
  }

  std::string Explain(FilterId id, int nodes = 1) {
    Rejections r{};
    r[static_cast<int>(id)] = nodes;
    return NoSuitableNodeMessage(r);
  }

  NodeSet nodes_;
};

TEST_F(FilterTest, Pipeline_IsInOrderWithLoadIndependentFiltersFirst) {
  bool load_dependent = false;
  for (int i = 0; i < kFilterCount; ++i) {
    EXPECT_EQ(static_cast<int>(Filters()[i].id), i);
    EXPECT_TRUE(!load_dependent || Filters()[i].load_dependent) << Filters()[i].name;
    load_dependent = Filters()[i].load_dependent;
  }
}

TEST_F(FilterTest, Ready_RejectsNodesThatAreNotReady) {
  EXPECT_EQ(Rejection(MakeTask("t", "s")), std::nullopt);
  for (api::NodeState s :
       {api::NODE_STATE_UNKNOWN, api::NODE_STATE_DOWN, api::NODE_STATE_DISCONNECTED}) {
    api::Node n = MakeNode("n1");
    n.mutable_status()->set_state(s);
    SetNode(n);
    EXPECT_EQ(Rejection(MakeTask("t", "s")), FilterId::kReady) << s;
  }
  EXPECT_EQ(Explain(FilterId::kReady, 2), "no suitable node (node not ready on 2 nodes)");
}

TEST_F(FilterTest, Availability_RejectsPausedAndDrainedNodes) {
  for (api::NodeAvailability a : {api::NODE_AVAILABILITY_PAUSE, api::NODE_AVAILABILITY_DRAIN}) {
    api::Node n = MakeNode("n1");
    n.mutable_spec()->set_availability(a);
    SetNode(n);
    EXPECT_EQ(Rejection(MakeTask("t", "s")), FilterId::kAvailability) << a;
  }
  EXPECT_EQ(Explain(FilterId::kAvailability),
            "no suitable node (node paused or drained on 1 node)");
}

TEST_F(FilterTest, Constraints_AllMustMatch) {
  api::Task t = MakeTask("t", "s");
  testing::AddConstraint(&t, "node.labels.zone==east");
  testing::AddConstraint(&t, "node.role!=manager");
  EXPECT_EQ(Rejection(t), std::nullopt);
  testing::AddConstraint(&t, "node.platform.os==windows");
  EXPECT_EQ(Rejection(t), FilterId::kConstraints);
  EXPECT_EQ(Explain(FilterId::kConstraints, 3),
            "no suitable node (scheduling constraints not satisfied on 3 nodes)");
}

TEST_F(FilterTest, FromTask_MalformedConstraintOrPreferenceIsAnError) {
  api::Task t = MakeTask("t", "s");
  testing::AddConstraint(&t, "node.labels.zone=east");
  absl::StatusOr<TaskRequirements> r = TaskRequirements::FromTask(t);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("\"node.labels.zone=east\" has no operator"),
            absl::string_view::npos)
      << r.status();

  api::Task p = MakeTask("t", "s");
  testing::AddSpread(&p, "node.colour");
  r = TaskRequirements::FromTask(p);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("placement preference \"spread=node.colour\""),
            absl::string_view::npos)
      << r.status();
}

TEST_F(FilterTest, Platform_EmptyIsAnyAndArchitecturesAreNormalized) {
  api::Task t = MakeTask("t", "s");
  EXPECT_EQ(Rejection(t), std::nullopt);
  api::Platform* p = t.mutable_spec()->mutable_placement()->add_platforms();
  p->set_os("windows");
  p->set_architecture("amd64");
  EXPECT_EQ(Rejection(t), FilterId::kPlatform);
  api::Platform* q = t.mutable_spec()->mutable_placement()->add_platforms();
  q->set_os("Linux");
  q->set_architecture("amd64");  // the node says x86_64
  EXPECT_EQ(Rejection(t), std::nullopt);
  q->set_architecture("arm64");
  EXPECT_EQ(Rejection(t), FilterId::kPlatform);
  q->clear_architecture();  // any architecture of linux
  EXPECT_EQ(Rejection(t), std::nullopt);

  api::Node arm = MakeNode("n1");
  arm.mutable_description()->mutable_platform()->set_architecture("aarch64");
  SetNode(arm);
  q->set_architecture("arm64");
  EXPECT_EQ(Rejection(t), std::nullopt);
  EXPECT_EQ(Explain(FilterId::kPlatform), "no suitable node (unsupported platform on 1 node)");
}

TEST_F(FilterTest, Resources_MemoryAndCpuAreExplainedSeparately) {
  EXPECT_EQ(Rejection(MakeTask("t", "s", 2 * kCpu, 4 * kGiB)), std::nullopt);
  EXPECT_EQ(Rejection(MakeTask("t", "s", 2 * kCpu, 4 * kGiB + 1)), FilterId::kMemory);
  EXPECT_EQ(Rejection(MakeTask("t", "s", 2 * kCpu + 1, 4 * kGiB)), FilterId::kCpu);
  // What running tasks reserved is gone.
  nodes_.UpsertTask(testing::Running(MakeTask("r", "other", kCpu, 3 * kGiB), "n1"));
  EXPECT_EQ(Rejection(MakeTask("t", "s", kCpu, kGiB)), std::nullopt);
  EXPECT_EQ(Rejection(MakeTask("t", "s", kCpu, kGiB + 1)), FilterId::kMemory);
  EXPECT_EQ(Rejection(MakeTask("t", "s", kCpu + 1, kGiB)), FilterId::kCpu);
  // No reservation fits even a full node.
  nodes_.UpsertTask(testing::Running(MakeTask("r2", "other", 5 * kCpu, 5 * kGiB), "n1"));
  EXPECT_EQ(Rejection(MakeTask("t", "s")), std::nullopt);
  EXPECT_EQ(Explain(FilterId::kMemory, 3), "no suitable node (insufficient memory on 3 nodes)");
  EXPECT_EQ(Explain(FilterId::kCpu), "no suitable node (insufficient CPU on 1 node)");
}

TEST_F(FilterTest, HostPorts_ATakenPublishedPortRejectsTheNode) {
  api::Task running = testing::Running(MakeTask("r", "other"), "n1");
  testing::AddHostPort(&running, 8080);
  nodes_.UpsertTask(running);
  api::Task t = MakeTask("t", "s");
  testing::AddHostPort(&t, 8080, api::PORT_PROTOCOL_UDP);
  EXPECT_EQ(Rejection(t), std::nullopt) << "another protocol";
  testing::AddHostPort(&t, 8080);
  EXPECT_EQ(Rejection(t), FilterId::kHostPorts);

  // Ingress-mode ports and dynamically published host ports (published_port 0) need nothing.
  api::Task ingress = MakeTask("i", "s");
  testing::AddHostPort(&ingress, 8080);
  ingress.mutable_endpoint()->mutable_ports(0)->set_publish_mode(api::PUBLISH_MODE_INGRESS);
  testing::AddHostPort(&ingress, 0);
  EXPECT_EQ(Rejection(ingress), std::nullopt);
  EXPECT_EQ(Explain(FilterId::kHostPorts, 2),
            "no suitable node (host-mode port already in use on 2 nodes)");
}

TEST_F(FilterTest, MaxReplicas_CountsTheServicesTasksOnTheNode) {
  api::Task t = MakeTask("t", "s");
  t.mutable_spec()->mutable_placement()->set_max_replicas(2);
  EXPECT_EQ(Rejection(t), std::nullopt);
  nodes_.UpsertTask(testing::Running(MakeTask("r1", "s"), "n1"));
  nodes_.UpsertTask(testing::Running(MakeTask("o1", "other"), "n1"));
  nodes_.UpsertTask(testing::Running(MakeTask("o2", "other"), "n1"));
  EXPECT_EQ(Rejection(t), std::nullopt);
  nodes_.UpsertTask(testing::Running(MakeTask("r2", "s"), "n1"));
  EXPECT_EQ(Rejection(t), FilterId::kMaxReplicas);
  t.mutable_spec()->mutable_placement()->set_max_replicas(0);
  EXPECT_EQ(Rejection(t), std::nullopt) << "0 is unlimited";
  EXPECT_EQ(Explain(FilterId::kMaxReplicas, 4),
            "no suitable node (max replicas per node reached on 4 nodes)");
}

TEST_F(FilterTest, NoSuitableNodeMessage_ListsFiltersInPipelineOrder) {
  Rejections r{};
  r[static_cast<int>(FilterId::kMemory)] = 3;
  r[static_cast<int>(FilterId::kConstraints)] = 2;
  EXPECT_EQ(NoSuitableNodeMessage(r),
            "no suitable node (scheduling constraints not satisfied on 2 nodes; insufficient "
            "memory on 3 nodes)");
  EXPECT_EQ(NoSuitableNodeMessage(Rejections{}), "no suitable node (no nodes in the cluster)");
}

}  // namespace
}  // namespace swarm::scheduler

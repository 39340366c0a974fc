#include "scheduler/scheduler.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "gtest/gtest.h"
#include "scheduler/test_util.h"

namespace swarm::scheduler {
namespace {

using testing::AddConstraint;
using testing::AddHostPort;
using testing::AddSpread;
using testing::kCpu;
using testing::kGiB;
using testing::MakeNode;
using testing::MakeTask;
using testing::Pointers;
using testing::Running;

class SchedulerTest : public ::testing::Test {
 protected:
  void AddNode(api::Node n) { nodes_.UpsertNode(std::make_shared<const api::Node>(std::move(n))); }

  // Tasks "<prefix>0".."<prefix>(n-1)" of the service, copies of the template.
  static std::vector<api::Task> Tasks(const api::Task& tmpl, int n, const std::string& prefix) {
    std::vector<api::Task> out;
    for (int i = 0; i < n; ++i) {
      out.push_back(tmpl);
      out.back().set_id(prefix + std::to_string(i));
    }
    return out;
  }

  std::vector<Decision> Schedule(const std::vector<api::Task>& tasks) {
    std::vector<Decision> d = scheduler_.Schedule(Pointers(tasks));
    nodes_.CheckInvariants();
    return d;
  }

  // Node ID per task ("" when not placed).
  static std::vector<std::string> NodeIds(const std::vector<Decision>& decisions) {
    std::vector<std::string> out;
    for (const Decision& d : decisions) out.push_back(d.node ? d.node->id() : "");
    return out;
  }

  static std::map<std::string, int> CountByNode(const std::vector<Decision>& decisions) {
    std::map<std::string, int> out;
    for (const Decision& d : decisions) {
      if (d.node) ++out[d.node->id()];
    }
    return out;
  }

  NodeSet nodes_;
  Scheduler scheduler_{&nodes_};
};

TEST_F(SchedulerTest, Schedule_NoNodes) {
  std::vector<Decision> d = Schedule({MakeTask("t1", "svc")});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].node, nullptr);
  EXPECT_EQ(d[0].message, "no suitable node (no nodes in the cluster)");
}

TEST_F(SchedulerTest, Rank_FewestTasksOfTheServiceThenFewestTasksThenNodeId) {
  AddNode(MakeNode("a"));
  AddNode(MakeNode("b"));
  AddNode(MakeNode("c"));
  nodes_.UpsertTask(Running(MakeTask("x1", "svc"), "a"));
  nodes_.UpsertTask(Running(MakeTask("o1", "other"), "b"));
  nodes_.UpsertTask(Running(MakeTask("o2", "other"), "b"));
  nodes_.UpsertTask(Running(MakeTask("o3", "other"), "c"));
  // b and c have no task of svc; c has fewer tasks.
  EXPECT_EQ(NodeIds(Schedule({MakeTask("t1", "svc")})), std::vector<std::string>{"c"});
  // Now b (0 of svc) beats a and c (1 each).
  EXPECT_EQ(NodeIds(Schedule({MakeTask("t2", "svc")})), std::vector<std::string>{"b"});
  // a, b and c have one each and 1, 3, 2 tasks in all.
  EXPECT_EQ(NodeIds(Schedule({MakeTask("t3", "svc")})), std::vector<std::string>{"a"});
  // Equal on both counts: the smaller ID.
  NodeSet fresh;
  Scheduler s(&fresh);
  for (const char* id : {"n3", "n1", "n2"}) {
    fresh.UpsertNode(std::make_shared<const api::Node>(MakeNode(id)));
  }
  api::Task t = MakeTask("t", "svc");
  EXPECT_EQ(s.Schedule({&t})[0].node->id(), "n1");
}

TEST_F(SchedulerTest, Schedule_SpreadsAGroupEvenlyOverNodes) {
  for (int i = 0; i < 10; ++i) AddNode(MakeNode("n" + std::to_string(i)));
  std::vector<Decision> d = Schedule(Tasks(MakeTask("", "svc"), 35, "t"));
  std::map<std::string, int> by_node = CountByNode(d);
  ASSERT_EQ(by_node.size(), 10u);
  for (const auto& [node, n] : by_node) EXPECT_TRUE(n == 3 || n == 4) << node << " " << n;
}

TEST_F(SchedulerTest, Unplaceable_MessageCountsNodesPerFilter) {
  for (int i = 0; i < 3; ++i) AddNode(MakeNode("small" + std::to_string(i), 4 * kCpu, kGiB));
  for (int i = 0; i < 2; ++i) {
    AddNode(MakeNode("big" + std::to_string(i), 4 * kCpu, 64 * kGiB, {{"zone", "west"}}));
  }
  api::Node down = MakeNode("down");
  down.mutable_status()->set_state(api::NODE_STATE_DOWN);
  AddNode(down);
  api::Task t = MakeTask("t1", "svc", 0, 2 * kGiB);
  AddConstraint(&t, "node.labels.zone!=west");
  std::vector<Decision> d = Schedule({t});
  EXPECT_EQ(d[0].node, nullptr);
  EXPECT_EQ(d[0].message,
            "no suitable node (node not ready on 1 node; scheduling constraints not satisfied on "
            "2 nodes; insufficient memory on 3 nodes)");
}

TEST_F(SchedulerTest, Unplaceable_MalformedConstraintIsTheMessage) {
  AddNode(MakeNode("n1"));
  api::Task t = MakeTask("", "svc");
  AddConstraint(&t, "node.labels.zone");
  std::vector<Decision> d = Schedule(Tasks(t, 2, "t"));
  for (const Decision& x : d) {
    EXPECT_EQ(x.node, nullptr);
    EXPECT_NE(x.message.find("constraint \"node.labels.zone\" has no operator"), std::string::npos)
        << x.message;
  }
  // Other groups are not affected.
  EXPECT_NE(Schedule({MakeTask("ok", "other")})[0].node, nullptr);
}

TEST_F(SchedulerTest, Resources_NeverOvercommitAndFreedByFinishedTasks) {
  for (int i = 0; i < 4; ++i) AddNode(MakeNode("n" + std::to_string(i), 4 * kCpu, 4 * kGiB));
  // 3 of these fit per node by CPU; 4 nodes: 12 placed, 8 not.
  std::vector<api::Task> tasks = Tasks(MakeTask("", "svc", kCpu + kCpu / 4, kGiB / 2), 20, "t");
  std::vector<Decision> d = Schedule(tasks);
  std::map<std::string, int> by_node = CountByNode(d);
  for (const auto& [node, n] : by_node) EXPECT_EQ(n, 3) << node;
  int placed = 0;
  for (const Decision& x : d) placed += x.node != nullptr;
  EXPECT_EQ(placed, 12);
  EXPECT_EQ(d.back().message, "no suitable node (insufficient CPU on 4 nodes)");
  for (const NodeInfo* n : nodes_.nodes()) EXPECT_GE(n->available_cpu(), 0) << n->id();

  // A second service cannot squeeze in either.
  std::vector<Decision> more = Schedule({MakeTask("m", "other", kCpu, 0)});
  EXPECT_EQ(more[0].node, nullptr);
  // Two tasks of n2 finish: room for one more there.
  int finished = 0;
  for (size_t i = 0; i < tasks.size() && finished < 2; ++i) {
    if (d[i].node && d[i].node->id() == "n2") {
      api::Task done = Running(tasks[i], "n2");
      done.mutable_status()->set_state(api::TASK_STATE_COMPLETE);
      nodes_.UpsertTask(done);
      ++finished;
    }
  }
  std::vector<Decision> again = Schedule(Tasks(MakeTask("", "svc", kCpu + kCpu / 4, 0), 3, "u"));
  EXPECT_EQ(NodeIds(again), (std::vector<std::string>{"n2", "n2", ""}));
}

TEST_F(SchedulerTest, MaxReplicas_LimitsTasksOfTheServicePerNode) {
  for (int i = 0; i < 3; ++i) AddNode(MakeNode("n" + std::to_string(i)));
  nodes_.UpsertTask(Running(MakeTask("old", "svc"), "n0"));
  api::Task t = MakeTask("", "svc");
  t.mutable_spec()->mutable_placement()->set_max_replicas(2);
  std::vector<Decision> d = Schedule(Tasks(t, 7, "t"));
  std::map<std::string, int> by_node = CountByNode(d);
  EXPECT_EQ(by_node, (std::map<std::string, int>{{"n0", 1}, {"n1", 2}, {"n2", 2}}));
  EXPECT_EQ(d[5].message, "no suitable node (max replicas per node reached on 3 nodes)");
  EXPECT_EQ(d[6].message, d[5].message);
}

TEST_F(SchedulerTest, HostPorts_OneTaskPerPortPerNode) {
  AddNode(MakeNode("n0"));
  AddNode(MakeNode("n1"));
  api::Task t = MakeTask("", "svc");
  AddHostPort(&t, 80);
  std::vector<Decision> d = Schedule(Tasks(t, 3, "t"));
  EXPECT_EQ(NodeIds(d), (std::vector<std::string>{"n0", "n1", ""}));
  EXPECT_EQ(d[2].message, "no suitable node (host-mode port already in use on 2 nodes)");
  // Another port (or protocol) still fits.
  api::Task u = MakeTask("u", "svc");
  AddHostPort(&u, 80, api::PORT_PROTOCOL_UDP);
  EXPECT_NE(Schedule({u})[0].node, nullptr);
}

// 3 zones x 2 racks, 2 nodes per rack, plus 2 nodes without labels: tasks spread evenly over
// the 4 zone branches, then over the racks of each zone.
TEST_F(SchedulerTest, Spread_NestedPreferencesBalanceEachLevel) {
  for (const char* zone : {"z1", "z2", "z3"}) {
    for (const char* rack : {"r1", "r2"}) {
      for (int i = 0; i < 2; ++i) {
        AddNode(MakeNode(std::string(zone) + rack + "n" + std::to_string(i), 64 * kCpu, 64 * kGiB,
                         {{"zone", zone}, {"rack", rack}}));
      }
    }
  }
  AddNode(MakeNode("bare0"));
  AddNode(MakeNode("bare1"));
  api::Task t = MakeTask("", "svc");
  AddSpread(&t, "node.labels.zone");
  AddSpread(&t, "node.labels.rack");
  for (int n : {1, 5, 17, 40}) {
    NodeSet set;
    for (NodeInfo* info : nodes_.nodes()) {
      set.UpsertNode(std::make_shared<const api::Node>(*info->node()));
    }
    Scheduler s(&set);
    std::vector<api::Task> tasks = Tasks(t, n, "t");
    std::vector<Decision> d = s.Schedule(Pointers(tasks));
    std::map<std::string, int> zones, racks;
    std::map<std::string, int> by_node;
    for (const Decision& x : d) {
      ASSERT_NE(x.node, nullptr);
      const auto& labels = x.node->node()->spec().annotations().labels();
      const std::string zone = labels.count("zone") ? labels.at("zone") : "";
      ++zones[zone];
      if (!zone.empty()) ++racks[zone + "/" + labels.at("rack")];
      ++by_node[x.node->id()];
    }
    auto spread_within_one = [](const std::vector<int>& counts) {
      return *std::max_element(counts.begin(), counts.end()) -
                 *std::min_element(counts.begin(), counts.end()) <=
             1;
    };
    std::vector<int> zc;
    for (const char* z : {"z1", "z2", "z3", ""}) zc.push_back(zones[z]);
    EXPECT_TRUE(spread_within_one(zc)) << n;
    for (const char* z : {"z1", "z2", "z3"}) {
      EXPECT_TRUE(spread_within_one({racks[std::string(z) + "/r1"], racks[std::string(z) + "/r2"]}))
          << n << " " << z;
    }
    if (n == 40) {
      EXPECT_EQ(zones[""], 10) << "nodes without the label are a branch of their own";
      for (const auto& [node, c] : by_node) EXPECT_TRUE(c >= 2 && c <= 5) << node << " " << c;
    }
  }
}

TEST_F(SchedulerTest, Spread_EvensOutExistingImbalance) {
  AddNode(MakeNode("e1", 64 * kCpu, 64 * kGiB, {{"zone", "east"}}));
  AddNode(MakeNode("w1", 64 * kCpu, 64 * kGiB, {{"zone", "west"}}));
  AddNode(MakeNode("w2", 64 * kCpu, 64 * kGiB, {{"zone", "west"}}));
  for (int i = 0; i < 4; ++i) {
    nodes_.UpsertTask(Running(MakeTask("old" + std::to_string(i), "svc"), "e1"));
  }
  api::Task t = MakeTask("", "svc");
  AddSpread(&t, "node.labels.zone");
  std::map<std::string, int> by_node = CountByNode(Schedule(Tasks(t, 6, "t")));
  // west catches up to 4 (2 per node), then one more each side.
  EXPECT_EQ(by_node, (std::map<std::string, int>{{"e1", 1}, {"w1", 3}, {"w2", 2}}));
}

TEST_F(SchedulerTest, Spread_ExhaustedBranchLeavesTheOthers) {
  AddNode(MakeNode("e1", kCpu, 64 * kGiB, {{"zone", "east"}}));
  AddNode(MakeNode("w1", 8 * kCpu, 64 * kGiB, {{"zone", "west"}}));
  api::Task t = MakeTask("", "svc", kCpu, 0);
  AddSpread(&t, "engine.labels.none");  // every node lacks it: one branch
  AddSpread(&t, "node.labels.zone");
  std::map<std::string, int> by_node = CountByNode(Schedule(Tasks(t, 6, "t")));
  EXPECT_EQ(by_node, (std::map<std::string, int>{{"e1", 1}, {"w1", 5}}));
}

TEST_F(SchedulerTest, Preset_GlobalTasksCheckTheirNodeAlone) {
  AddNode(MakeNode("n1", kCpu, kGiB));
  api::Node drained = MakeNode("n2");
  drained.mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  AddNode(drained);
  std::vector<api::Task> tasks;
  for (const char* node : {"n1", "n2", "gone"}) {
    tasks.push_back(MakeTask(std::string("g-") + node, "global", kCpu, 0));
    tasks.back().set_node_id(node);
  }
  tasks.push_back(tasks[0]);
  tasks.back().set_id("g-n1-again");
  std::vector<Decision> d = Schedule(tasks);
  EXPECT_EQ(NodeIds(d), (std::vector<std::string>{"n1", "", "", ""}));
  EXPECT_EQ(d[1].message, "no suitable node (node paused or drained on 1 node)");
  EXPECT_EQ(d[2].message, "no suitable node (node gone is not in the cluster)");
  EXPECT_EQ(d[3].message, "no suitable node (insufficient CPU on 1 node)");
}

TEST_F(SchedulerTest, Plan_FollowsNodeChanges) {
  AddNode(MakeNode("n1", kCpu, kGiB, {{"zone", "east"}}));
  api::Task t = MakeTask("t1", "svc");
  AddConstraint(&t, "node.labels.zone==west");
  EXPECT_EQ(Schedule({t})[0].node, nullptr);
  AddNode(MakeNode("n1", kCpu, kGiB, {{"zone", "west"}}));
  t.set_id("t2");
  EXPECT_EQ(NodeIds(Schedule({t})), std::vector<std::string>{"n1"});
  nodes_.RemoveNode("n1");
  t.set_id("t3");
  EXPECT_EQ(Schedule({t})[0].message, "no suitable node (no nodes in the cluster)");
}

TEST_F(SchedulerTest, GroupKey_SameServiceAndSpecVersion) {
  api::Task a = MakeTask("a", "svc");
  api::Task b = MakeTask("b", "svc");
  EXPECT_EQ(Scheduler::GroupKey(a), Scheduler::GroupKey(b));
  b.mutable_spec_version()->set_index(2);
  EXPECT_NE(Scheduler::GroupKey(a), Scheduler::GroupKey(b));
  api::Task c = MakeTask("c", "other");
  EXPECT_NE(Scheduler::GroupKey(a), Scheduler::GroupKey(c));
  // Without a spec version, the spec decides.
  a.clear_spec_version();
  b.clear_spec_version();
  EXPECT_EQ(Scheduler::GroupKey(a), Scheduler::GroupKey(b));
  AddConstraint(&b, "node.role==worker");
  EXPECT_NE(Scheduler::GroupKey(a), Scheduler::GroupKey(b));
}

// ---- Property tests against a brute-force reference ----

// The scheduler's rules written the slow way: every task looks at every node.
class Reference {
 public:
  explicit Reference(NodeSet* nodes) : nodes_(nodes) {}

  std::vector<std::string> Schedule(const std::vector<api::Task>& tasks,
                                    std::vector<std::string>* messages) {
    std::vector<std::string> out;
    for (const api::Task& t : tasks) {
      absl::StatusOr<TaskRequirements> req = TaskRequirements::FromTask(t);
      req->service = nodes_->FindService(t.service_id());
      std::vector<NodeInfo*> fit;
      Rejections rejected{};
      for (NodeInfo* n : nodes_->nodes()) {
        if (std::optional<FilterId> f = FirstRejection(*req, *n)) {
          ++rejected[static_cast<int>(*f)];
        } else {
          fit.push_back(n);
        }
      }
      if (fit.empty()) {
        out.push_back("");
        messages->push_back(NoSuitableNodeMessage(rejected));
        continue;
      }
      // Branch counts are over the nodes that pass the load-independent filters.
      std::map<std::vector<std::string>, int64_t> branch_tasks;
      for (NodeInfo* n : nodes_->nodes()) {
        if (FirstRejection(*req, *n, false)) continue;
        std::vector<std::string> path;
        const int32_t c = n->ServiceTasks(req->service);
        branch_tasks[path] += c;
        for (const AttributeKey& k : req->spread) {
          path.push_back(NodeAttribute(k, *n->node()));
          branch_tasks[path] += c;
        }
      }
      auto key = [&](NodeInfo* n) {
        std::vector<std::string> path;
        std::vector<std::pair<int64_t, std::string>> k;
        for (const AttributeKey& a : req->spread) {
          path.push_back(NodeAttribute(a, *n->node()));
          k.emplace_back(branch_tasks[path], path.back());
        }
        k.emplace_back(n->ServiceTasks(req->service), "");
        k.emplace_back(n->total_tasks(), n->id());
        return k;
      };
      NodeInfo* best = *std::min_element(fit.begin(), fit.end(),
                                         [&](NodeInfo* a, NodeInfo* b) { return key(a) < key(b); });
      nodes_->Assign(t, best);
      out.push_back(best->id());
      messages->push_back("");
    }
    return out;
  }

 private:
  NodeSet* nodes_;
};

api::Node RandomNode(std::mt19937& rng, int i) {
  static const char* kZones[] = {"a", "b", "c"};
  std::map<std::string, std::string> labels;
  if (rng() % 4) labels["zone"] = kZones[rng() % 3];
  if (rng() % 4) labels["rack"] = std::to_string(rng() % 3);
  if (rng() % 2) labels["disk"] = "ssd";
  api::Node n = MakeNode("node" + std::to_string(i), (1 + rng() % 8) * kCpu / 2,
                         (1 + rng() % 8) * kGiB / 2, labels);
  if (rng() % 10 == 0) n.mutable_status()->set_state(api::NODE_STATE_DOWN);
  if (rng() % 10 == 0) n.mutable_spec()->set_availability(api::NODE_AVAILABILITY_PAUSE);
  if (rng() % 10 == 0) n.mutable_description()->mutable_platform()->set_architecture("aarch64");
  return n;
}

// A random group template: reservations, constraints, preferences, ports, max replicas.
api::Task RandomTemplate(std::mt19937& rng, int service) {
  api::Task t =
      MakeTask("", "svc" + std::to_string(service), (rng() % 3) * kCpu / 2, (rng() % 3) * kGiB / 2);
  // Tasks of one service and spec version have one spec (the orchestrators' contract).
  t.mutable_spec_version()->set_index(1 + rng() % 1000000);
  if (rng() % 3 == 0) AddConstraint(&t, "node.labels.disk==ssd");
  if (rng() % 4 == 0) AddConstraint(&t, "node.labels.zone!=c");
  if (rng() % 2) AddSpread(&t, "node.labels.zone");
  if (rng() % 3 == 0) AddSpread(&t, "node.labels.rack");
  if (rng() % 4 == 0) AddHostPort(&t, 80 + rng() % 2);
  if (rng() % 4 == 0) t.mutable_spec()->mutable_placement()->set_max_replicas(1 + rng() % 3);
  if (rng() % 5 == 0) {
    api::Platform* p = t.mutable_spec()->mutable_placement()->add_platforms();
    p->set_os("linux");
    p->set_architecture("amd64");
  }
  return t;
}

TEST(SchedulerPropertyTest, DecisionsEqualTheBruteForceReference) {
  for (uint32_t seed = 1; seed <= 60; ++seed) {
    std::mt19937 rng(seed);
    NodeSet fast_set, slow_set;
    const int node_count = 1 + rng() % 20;
    std::vector<api::Node> nodes;
    for (int i = 0; i < node_count; ++i) nodes.push_back(RandomNode(rng, i));
    // The two sets get the nodes in different orders: decisions must not depend on it.
    for (const api::Node& n : nodes) fast_set.UpsertNode(std::make_shared<const api::Node>(n));
    for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
      slow_set.UpsertNode(std::make_shared<const api::Node>(*it));
    }
    for (int i = 0; i < 20; ++i) {
      api::Task r = Running(RandomTemplate(rng, rng() % 3), nodes[rng() % node_count].id());
      r.set_id("running" + std::to_string(i));
      fast_set.UpsertTask(r);
      slow_set.UpsertTask(r);
    }
    Scheduler fast(&fast_set);
    Reference slow(&slow_set);
    for (int round = 0; round < 4; ++round) {
      // A batch of a few groups, their tasks interleaved as they would arrive.
      std::vector<api::Task> templates;
      for (int g = 0; g < 1 + static_cast<int>(rng() % 3); ++g) {
        templates.push_back(RandomTemplate(rng, rng() % 3));
      }
      std::vector<api::Task> batch;
      for (int i = 0; i < 1 + static_cast<int>(rng() % 40); ++i) {
        batch.push_back(templates[rng() % templates.size()]);
        batch.back().set_id("r" + std::to_string(round) + "t" + std::to_string(i));
      }
      // The reference places task by task in batch order; the scheduler group by group.
      // Order the batch by group so that both see the same sequence.
      std::map<std::string, size_t> first;
      for (size_t i = 0; i < batch.size(); ++i) first.emplace(Scheduler::GroupKey(batch[i]), i);
      std::stable_sort(batch.begin(), batch.end(), [&](const api::Task& a, const api::Task& b) {
        return first[Scheduler::GroupKey(a)] < first[Scheduler::GroupKey(b)];
      });
      std::vector<Decision> d = fast.Schedule(Pointers(batch));
      fast_set.CheckInvariants();
      std::vector<std::string> messages;
      std::vector<std::string> want = slow.Schedule(batch, &messages);
      for (size_t i = 0; i < batch.size(); ++i) {
        ASSERT_EQ(d[i].node ? d[i].node->id() : "", want[i])
            << "seed " << seed << " round " << round << " task " << i;
        ASSERT_EQ(d[i].message, messages[i]) << "seed " << seed << " round " << round;
      }
      // Some tasks finish between rounds.
      for (size_t i = 0; i < batch.size(); ++i) {
        if (d[i].node == nullptr || rng() % 3) continue;
        api::Task done = Running(batch[i], d[i].node->id());
        done.mutable_status()->set_state(api::TASK_STATE_COMPLETE);
        fast_set.UpsertTask(done);
        slow_set.UpsertTask(done);
      }
      // Nodes change, leave and come back between rounds (the plans follow incrementally,
      // or start over when the change log no longer reaches back).
      const int churn = rng() % 4;
      for (int c = 0; c < churn; ++c) {
        const int i = rng() % node_count;
        if (rng() % 3 == 0) {
          fast_set.RemoveNode(nodes[i].id());
          slow_set.RemoveNode(nodes[i].id());
        } else {
          nodes[i] = RandomNode(rng, i);
          fast_set.UpsertNode(std::make_shared<const api::Node>(nodes[i]));
          slow_set.UpsertNode(std::make_shared<const api::Node>(nodes[i]));
        }
      }
      if (rng() % 8 == 0) {
        for (size_t k = 0; k <= NodeSet::kChangeLog; ++k) {
          const int i = rng() % node_count;
          fast_set.UpsertNode(std::make_shared<const api::Node>(nodes[i]));
          slow_set.UpsertNode(std::make_shared<const api::Node>(nodes[i]));
        }
      }
      fast_set.CheckInvariants();
    }
  }
}

// More signatures than the scheduler keeps plans for, with node changes in between.
TEST(SchedulerPropertyTest, ManySignaturesEvictPlansWithoutChangingDecisions) {
  std::mt19937 rng(3);
  NodeSet fast_set, slow_set;
  std::vector<api::Node> nodes;
  for (int i = 0; i < 30; ++i) {
    api::Node n = RandomNode(rng, i);
    (*n.mutable_spec()->mutable_annotations()->mutable_labels())["n"] = std::to_string(i % 7);
    nodes.push_back(n);
    fast_set.UpsertNode(std::make_shared<const api::Node>(n));
    slow_set.UpsertNode(std::make_shared<const api::Node>(n));
  }
  Scheduler fast(&fast_set);
  Reference slow(&slow_set);
  for (int round = 0; round < 200; ++round) {
    api::Task t = MakeTask("t" + std::to_string(round), "svc" + std::to_string(round % 5));
    t.mutable_spec_version()->set_index(round + 1);
    AddConstraint(&t, "node.labels.n!=" + std::to_string(round % (2 * Scheduler::kMaxPlans)));
    if (round % 3 == 0) AddSpread(&t, "node.labels.zone");
    std::vector<Decision> d = fast.Schedule({&t});
    std::vector<std::string> messages;
    std::vector<std::string> want = slow.Schedule({t}, &messages);
    ASSERT_EQ(d[0].node ? d[0].node->id() : "", want[0]) << round;
    ASSERT_EQ(d[0].message, messages[0]) << round;
    if (round % 5 == 0) {
      const int i = rng() % nodes.size();
      nodes[i] = RandomNode(rng, i);
      (*nodes[i].mutable_spec()->mutable_annotations()->mutable_labels())["n"] =
          std::to_string(rng() % 7);
      fast_set.UpsertNode(std::make_shared<const api::Node>(nodes[i]));
      slow_set.UpsertNode(std::make_shared<const api::Node>(nodes[i]));
    }
  }
}

TEST(SchedulerPropertyTest, PlacementsPassEveryFilterAndNeverOvercommit) {
  std::mt19937 rng(7);
  NodeSet set;
  for (int i = 0; i < 50; ++i)
    set.UpsertNode(std::make_shared<const api::Node>(RandomNode(rng, i)));
  Scheduler s(&set);
  for (int round = 0; round < 20; ++round) {
    std::vector<api::Task> batch;
    for (int g = 0; g < 3; ++g) {
      api::Task t = RandomTemplate(rng, g);
      for (int i = 0; i < 30; ++i) {
        batch.push_back(t);
        batch.back().set_id("r" + std::to_string(round) + "g" + std::to_string(g) + "t" +
                            std::to_string(i));
      }
    }
    // Check each placement against a node set that replays the decisions one by one.
    std::vector<Decision> d = s.Schedule(Pointers(batch));
    set.CheckInvariants();
    for (const NodeInfo* n : set.nodes()) {
      ASSERT_GE(n->available_cpu(), 0) << n->id();
      ASSERT_GE(n->available_memory(), 0) << n->id();
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      if (d[i].node == nullptr) continue;
      auto req = TaskRequirements::FromTask(batch[i]);
      ASSERT_EQ(FirstRejection(*req, *d[i].node, /*load_dependent=*/false), std::nullopt);
    }
  }
}

}  // namespace
}  // namespace swarm::scheduler

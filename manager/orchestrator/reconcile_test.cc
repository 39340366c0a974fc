#include "manager/orchestrator/reconcile.h"

#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/proto_time.h"
#include "gtest/gtest.h"

namespace swarm::manager::orchestrator {
namespace {

// A service, its tasks and the nodes, as a store would hold them, with the orchestrator's plans
// applied to them and a scripted scheduler and agents moving tasks along.
class World {
 public:
  World() {
    svc.set_id("svc1");
    svc.mutable_spec()->mutable_annotations()->set_name("web");
    auto* tmpl = svc.mutable_spec()->mutable_task_template();
    tmpl->mutable_container()->set_image("busybox:1");
    tmpl->mutable_restart_policy()->set_condition(api::RESTART_CONDITION_ANY);
    tmpl->mutable_restart_policy()->mutable_delay()->set_seconds(5);
    svc.mutable_spec()->mutable_update_config()->set_parallelism(1);
    svc.mutable_spec()->mutable_update_config()->mutable_monitor()->set_seconds(5);
    svc.mutable_spec()->mutable_rollback_config()->set_parallelism(1);
    svc.mutable_spec()->mutable_replicated()->set_replicas(3);
    svc.mutable_spec_version()->set_index(1);
  }

  api::Node& AddNode(const std::string& id) {
    api::Node& n = nodes[id];
    n.set_id(id);
    n.mutable_status()->set_state(api::NODE_STATE_READY);
    n.mutable_description()->set_hostname(id);
    return n;
  }

  Plan Reconcile() {
    std::vector<std::shared_ptr<const api::Node>> list;
    for (const auto& [id, n] : nodes) list.push_back(std::make_shared<api::Node>(n));
    NodeIndex index(std::move(list));
    ServiceState state;
    state.service = removed ? nullptr : &svc;
    for (const auto& [id, t] : tasks) state.tasks.push_back(&t);
    state.nodes = &index;
    state.task_history_limit = history_limit;
    state.now = now;
    return orchestrator::Reconcile(state, random);
  }

  // Reconciles and applies the plan, as the store would.
  Plan Step() {
    Plan p = Reconcile();
    for (api::Task t : p.create) {
      *t.mutable_meta()->mutable_created_at() = ToTimestamp(now + absl::Nanoseconds(++seq));
      EXPECT_FALSE(tasks.count(t.id()));
      tasks[t.id()] = t;
    }
    for (const api::Task& t : p.update) {
      EXPECT_TRUE(tasks.count(t.id())) << t.id();
      api::Task copy = t;
      *copy.mutable_meta() = tasks[t.id()].meta();
      tasks[t.id()] = copy;
    }
    for (const std::string& id : p.remove) {
      EXPECT_TRUE(tasks.count(id)) << id;
      tasks.erase(id);
    }
    if (p.service) svc = *p.service;
    return p;
  }

  // The scheduler and the agents: pending tasks go to nodes (round robin over the nodes that
  // take tasks), tasks that should run run, tasks that should stop stop.
  void Agents() {
    std::vector<std::string> usable;
    for (const auto& [id, n] : nodes) {
      if (n.status().state() == api::NODE_STATE_READY &&
          n.spec().availability() == api::NODE_AVAILABILITY_ACTIVE && Matches(n))
        usable.push_back(id);
    }
    for (auto& [id, t] : tasks) {
      const api::TaskState s = t.status().state();
      if (t.desired_state() <= api::TASK_STATE_COMPLETE && s < api::TASK_STATE_ASSIGNED) {
        if (t.node_id().empty()) {
          if (usable.empty()) continue;
          // Like the scheduler: the node with fewest tasks of the service.
          std::map<std::string, int> load;
          for (const std::string& n : usable) load[n] = 0;
          for (const auto& [oid, o] : tasks) {
            if (load.count(o.node_id()) && o.status().state() >= api::TASK_STATE_ASSIGNED &&
                o.status().state() <= api::TASK_STATE_RUNNING)
              ++load[o.node_id()];
          }
          t.set_node_id(std::min_element(load.begin(), load.end(), [](auto& a, auto& b) {
                          return a.second < b.second;
                        })->first);
        }
        SetState(t, api::TASK_STATE_ASSIGNED);
      }
      const api::Node* n = nodes.count(t.node_id()) ? &nodes[t.node_id()] : nullptr;
      if (n == nullptr || n->status().state() != api::NODE_STATE_READY) continue;
      if (t.status().state() < api::TASK_STATE_ASSIGNED ||
          t.status().state() > api::TASK_STATE_RUNNING)
        continue;
      if (t.desired_state() == api::TASK_STATE_READY) {
        SetState(t, api::TASK_STATE_READY);
      } else if (t.desired_state() <= api::TASK_STATE_COMPLETE) {
        if (t.status().state() != api::TASK_STATE_RUNNING) SetState(t, api::TASK_STATE_RUNNING);
      } else {
        SetState(t, api::TASK_STATE_SHUTDOWN);
      }
    }
  }

  bool Matches(const api::Node& n) const {
    for (const std::string& c : svc.spec().task_template().placement().constraints()) {
      // Only the one form these tests use: node.labels.K==V.
      const auto eq = c.find("==");
      const std::string key = c.substr(12, eq - 12), value = c.substr(eq + 2);
      auto it = n.spec().annotations().labels().find(key);
      if (it == n.spec().annotations().labels().end() || it->second != value) return false;
    }
    return true;
  }

  void SetState(api::Task& t, api::TaskState s, int exit_code = 0) {
    t.mutable_status()->set_state(s);
    *t.mutable_status()->mutable_timestamp() = ToTimestamp(now);
    if (s >= api::TASK_STATE_COMPLETE)
      t.mutable_status()->mutable_container()->set_exit_code(exit_code);
  }

  // Alternates orchestrator and agents until nothing changes.
  void Settle(int rounds = 50) {
    for (int i = 0; i < rounds; ++i) {
      const std::string before = Dump();
      Step();
      Agents();
      if (Dump() == before) return;
    }
    FAIL() << "did not settle:\n" << Dump();
  }

  std::string Dump() const {
    std::string out = svc.DebugString();
    for (const auto& [id, t] : tasks) out += t.ShortDebugString() + "\n";
    return out;
  }

  void Advance(absl::Duration d) { now += d; }

  std::vector<const api::Task*> Live() const {
    std::vector<const api::Task*> out;
    for (const auto& [id, t] : tasks) {
      if (t.desired_state() <= api::TASK_STATE_COMPLETE &&
          t.status().state() <= api::TASK_STATE_RUNNING)
        out.push_back(&t);
    }
    return out;
  }
  std::vector<const api::Task*> Running() const {
    std::vector<const api::Task*> out;
    for (const auto& [id, t] : tasks) {
      if (t.status().state() == api::TASK_STATE_RUNNING) out.push_back(&t);
    }
    return out;
  }
  api::Task& TaskInSlot(uint64_t slot) {
    for (auto& [id, t] : tasks) {
      if (t.slot() == slot && t.desired_state() <= api::TASK_STATE_COMPLETE) return t;
    }
    ADD_FAILURE() << "no live task in slot " << slot;
    static api::Task none;
    return none;
  }
  void ChangeSpec(const std::function<void(api::ServiceSpec&)>& fn) {
    // What the control API does on `service update`.
    api::ServiceSpec next = svc.spec();
    fn(next);
    *svc.mutable_previous_spec() = svc.spec();
    *svc.mutable_previous_spec_version() = svc.spec_version();
    *svc.mutable_spec() = next;
    svc.mutable_spec_version()->set_index(svc.spec_version().index() + 1);
    svc.clear_update_status();
    if (svc.spec().has_replicated_job() || svc.spec().has_global_job()) {
      svc.mutable_job_status()->mutable_job_iteration()->set_index(
          svc.job_status().job_iteration().index() + 1);
    }
  }

  api::Service svc;
  std::map<std::string, api::Node> nodes;
  std::map<std::string, api::Task> tasks;
  absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  int64_t history_limit = 5;
  bool removed = false;
  SeededRandom random{7};
  uint64_t seq = 0;
};

std::set<uint64_t> Slots(const std::vector<const api::Task*>& tasks) {
  std::set<uint64_t> out;
  for (const api::Task* t : tasks) out.insert(t->slot());
  return out;
}

TEST(ReconcileTest, Replicated_CreatesOneTaskPerSlot) {
  World w;
  w.AddNode("n1");
  Plan p = w.Step();
  ASSERT_EQ(p.create.size(), 3u);
  std::set<uint64_t> slots;
  for (const api::Task& t : p.create) {
    slots.insert(t.slot());
    EXPECT_EQ(t.desired_state(), api::TASK_STATE_RUNNING);
    EXPECT_EQ(t.status().state(), api::TASK_STATE_NEW);
    EXPECT_EQ(t.service_id(), "svc1");
    EXPECT_EQ(t.spec_version().index(), 1u);
    EXPECT_EQ(t.annotations().name(), absl::StrCat("web.", t.slot(), ".", t.id()));
    EXPECT_EQ(t.spec().container().image(), "busybox:1");
  }
  EXPECT_EQ(slots, (std::set<uint64_t>{1, 2, 3}));
  // Nothing more to do while they are on their way.
  EXPECT_TRUE(w.Reconcile().empty());
  w.Agents();
  EXPECT_TRUE(w.Reconcile().empty());
  EXPECT_EQ(w.Running().size(), 3u);
}

TEST(ReconcileTest, Replicated_ScaleUpReusesFreeSlotsAndScaleDownPrefersIdleThenBusiestNodes) {
  World w;
  w.AddNode("n1");
  w.AddNode("n2");
  w.svc.mutable_spec()->mutable_replicated()->set_replicas(4);
  w.Settle();
  ASSERT_EQ(w.Running().size(), 4u);
  // Put three of them on n1.
  for (uint64_t s : {1, 2, 3}) w.TaskInSlot(s).set_node_id("n1");
  w.TaskInSlot(4).set_node_id("n2");
  w.svc.mutable_spec()->mutable_replicated()->set_replicas(2);
  Plan p = w.Step();
  EXPECT_TRUE(p.create.empty());
  int removed_on_n1 = 0;
  for (const api::Task& t : p.update) {
    EXPECT_EQ(t.desired_state(), api::TASK_STATE_REMOVE);
    removed_on_n1 += t.node_id() == "n1";
  }
  EXPECT_EQ(removed_on_n1, 2) << "scale-down takes from the busiest node first";
  w.Agents();
  w.Step();  // removed tasks that stopped are deleted
  EXPECT_EQ(w.tasks.size(), 2u);
  EXPECT_EQ(Slots(w.Live()), (std::set<uint64_t>{1, 4}));  // highest slots go first on n1

  w.svc.mutable_spec()->mutable_replicated()->set_replicas(3);
  p = w.Step();
  ASSERT_EQ(p.create.size(), 1u);
  EXPECT_EQ(p.create[0].slot(), 2u) << "the lowest free slot is reused";

  // A pending task is the first to go; it never ran, so it is deleted at once.
  const std::string pending = p.create[0].id();
  w.svc.mutable_spec()->mutable_replicated()->set_replicas(2);
  p = w.Step();
  EXPECT_TRUE(p.update.empty());
  EXPECT_EQ(p.remove, std::vector<std::string>{pending});
}

TEST(ReconcileTest, Restart_AnyWaitsForTheDelayAndRecordsThePreviousTask) {
  World w;
  w.AddNode("n1");
  w.svc.mutable_spec()->mutable_replicated()->set_replicas(1);
  w.Settle();
  api::Task& t = w.TaskInSlot(1);
  const std::string old_id = t.id();
  w.SetState(t, api::TASK_STATE_FAILED, 3);
  const absl::Time failed_at = w.now;
  w.Advance(absl::Seconds(1));
  Plan p = w.Step();
  EXPECT_TRUE(p.create.empty()) << "the restart delay has not passed";
  ASSERT_EQ(p.update.size(), 1u);
  EXPECT_EQ(p.update[0].desired_state(), api::TASK_STATE_SHUTDOWN);
  EXPECT_EQ(p.next_check, failed_at + absl::Seconds(5));
  w.now = p.next_check;
  p = w.Step();
  ASSERT_EQ(p.create.size(), 1u);
  EXPECT_EQ(p.create[0].slot(), 1u);
  EXPECT_EQ(p.create[0].replaced_task_id(), old_id);
  EXPECT_EQ(p.create[0].replaced_task_status().state(), api::TASK_STATE_FAILED);
  EXPECT_EQ(p.create[0].replaced_task_status().container().exit_code(), 3);
}

TEST(ReconcileTest, Restart_ConditionsDecideWhetherAnExitIsRestarted) {
  struct Case {
    api::RestartCondition condition;
    api::TaskState exit;
    bool restarted;
  };
  for (const Case& c : {Case{api::RESTART_CONDITION_ANY, api::TASK_STATE_COMPLETE, true},
                        Case{api::RESTART_CONDITION_ANY, api::TASK_STATE_FAILED, true},
                        Case{api::RESTART_CONDITION_ON_FAILURE, api::TASK_STATE_COMPLETE, false},
                        Case{api::RESTART_CONDITION_ON_FAILURE, api::TASK_STATE_FAILED, true},
                        Case{api::RESTART_CONDITION_NONE, api::TASK_STATE_FAILED, false},
                        Case{api::RESTART_CONDITION_NONE, api::TASK_STATE_COMPLETE, false}}) {
    World w;
    w.AddNode("n1");
    w.svc.mutable_spec()->mutable_replicated()->set_replicas(1);
    w.svc.mutable_spec()->mutable_task_template()->mutable_restart_policy()->set_condition(
        c.condition);
    w.Settle();
    w.SetState(w.TaskInSlot(1), c.exit);
    w.Advance(absl::Minutes(1));
    w.Settle();
    EXPECT_EQ(w.Running().size(), c.restarted ? 1u : 0u)
        << api::RestartCondition_Name(c.condition) << " " << api::TaskState_Name(c.exit);
    EXPECT_EQ(w.tasks.size(), c.restarted ? 2u : 1u);
  }
}

TEST(ReconcileTest, Defaults_UnsetPoliciesMeanAnyExitAfter5sAndOneTaskAtATime) {
  World w;
  w.AddNode("n1");
  w.svc.mutable_spec()->mutable_task_template()->clear_restart_policy();
  w.svc.mutable_spec()->clear_update_config();
  w.Settle();
  w.SetState(w.TaskInSlot(1), api::TASK_STATE_COMPLETE);
  const absl::Time exited = w.now;
  Plan p = w.Step();
  EXPECT_TRUE(p.create.empty());
  EXPECT_EQ(p.next_check, exited + absl::Seconds(5));
  w.now = p.next_check;
  EXPECT_EQ(w.Step().create.size(), 1u);
  w.Settle();
  w.ChangeSpec([](api::ServiceSpec& s) {
    s.mutable_task_template()->mutable_container()->set_image("busybox:2");
  });
  EXPECT_EQ(w.Step().create.size(), 1u) << "parallelism 1";
}

TEST(ReconcileTest, Restart_MaxAttemptsWithinTheWindow) {
  World w;
  w.AddNode("n1");
  w.svc.mutable_spec()->mutable_replicated()->set_replicas(1);
  auto* policy = w.svc.mutable_spec()->mutable_task_template()->mutable_restart_policy();
  policy->set_max_attempts(2);
  policy->mutable_window()->set_seconds(120);
  policy->mutable_delay()->set_seconds(1);
  w.Settle();
  // The first run and two restarts fail; then the slot gives up.
  for (int i = 0; i < 3; ++i) {
    w.SetState(w.TaskInSlot(1), api::TASK_STATE_FAILED, 1);
    w.Advance(absl::Seconds(2));
    w.Settle();
  }
  EXPECT_TRUE(w.Running().empty());
  EXPECT_EQ(w.tasks.size(), 3u);
  EXPECT_TRUE(w.Reconcile().empty());
  // Once the failures are older than the window, the slot gets another chance.
  w.Advance(absl::Seconds(120));
  w.Settle();
  EXPECT_EQ(w.Running().size(), 1u);
}

TEST(ReconcileTest, NodeDown_OrphansItsTasksAndReplacesThemElsewhere) {
  World w;
  w.AddNode("n1");
  w.AddNode("n2");
  w.svc.mutable_spec()->mutable_replicated()->set_replicas(2);
  w.Settle();
  w.TaskInSlot(1).set_node_id("n1");
  w.TaskInSlot(2).set_node_id("n2");
  w.nodes["n1"].mutable_status()->set_state(api::NODE_STATE_DOWN);
  Plan p = w.Step();
  ASSERT_EQ(p.update.size(), 1u);
  EXPECT_EQ(p.update[0].status().state(), api::TASK_STATE_ORPHANED);
  EXPECT_EQ(p.update[0].status().message(), "node n1 is down");
  EXPECT_EQ(p.update[0].desired_state(), api::TASK_STATE_SHUTDOWN);
  w.Advance(absl::Seconds(5));
  w.Settle();
  ASSERT_EQ(w.Running().size(), 2u);
  for (const api::Task* t : w.Running()) EXPECT_EQ(t->node_id(), "n2");
  // The node comes back: its old task stays shut down, nothing runs twice.
  w.nodes["n1"].mutable_status()->set_state(api::NODE_STATE_READY);
  w.Settle();
  EXPECT_EQ(w.Running().size(), 2u);
  EXPECT_EQ(Slots(w.Live()), (std::set<uint64_t>{1, 2}));
}

TEST(ReconcileTest, Drain_MovesTasksOffOneAtATime) {
  World w;
  w.AddNode("n1");
  w.AddNode("n2");
  w.svc.mutable_spec()->mutable_replicated()->set_replicas(3);
  w.Settle();
  for (uint64_t s : {1, 2, 3}) w.TaskInSlot(s).set_node_id("n1");
  w.nodes["n1"].mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  Plan p = w.Step();
  ASSERT_EQ(p.create.size(), 1u) << "update parallelism 1";
  EXPECT_EQ(p.create[0].desired_state(), api::TASK_STATE_READY)
      << "the new task waits for the old one to stop";
  ASSERT_EQ(p.update.size(), 1u);
  EXPECT_EQ(p.update[0].desired_state(), api::TASK_STATE_SHUTDOWN);
  EXPECT_FALSE(w.svc.has_update_status()) << "a drain is not an update";
  w.Settle();
  for (const api::Task* t : w.Running()) EXPECT_EQ(t->node_id(), "n2");
  EXPECT_EQ(w.Running().size(), 3u);
}

TEST(ReconcileTest, ConstraintEnforcer_MovesTasksOffANodeThatNoLongerMatches) {
  World w;
  w.AddNode("n1").mutable_spec()->mutable_annotations()->mutable_labels()->insert({"zone", "a"});
  w.AddNode("n2").mutable_spec()->mutable_annotations()->mutable_labels()->insert({"zone", "a"});
  w.svc.mutable_spec()->mutable_task_template()->mutable_placement()->add_constraints(
      "node.labels.zone==a");
  w.svc.mutable_spec()->mutable_replicated()->set_replicas(2);
  w.Settle();
  ASSERT_EQ(w.Running().size(), 2u);
  (*w.nodes["n1"].mutable_spec()->mutable_annotations()->mutable_labels())["zone"] = "b";
  w.Settle();
  ASSERT_EQ(w.Running().size(), 2u);
  for (const api::Task* t : w.Running()) EXPECT_EQ(t->node_id(), "n2");
}

// A rolling update of 4 replicas, 2 at a time with 10 s between batches, stop-first.
TEST(ReconcileTest, Update_StopFirstInBatchesWithDelayThenCompletesAfterMonitor) {
  World w;
  w.AddNode("n1");
  w.svc.mutable_spec()->mutable_replicated()->set_replicas(4);
  w.Settle();
  w.ChangeSpec([](api::ServiceSpec& s) {
    s.mutable_task_template()->mutable_container()->set_image("busybox:2");
    s.mutable_update_config()->set_parallelism(2);
    s.mutable_update_config()->mutable_delay()->set_seconds(10);
  });
  Plan p = w.Step();
  EXPECT_EQ(p.create.size(), 2u);
  EXPECT_EQ(w.svc.update_status().state(), api::UPDATE_STATE_UPDATING);
  w.Agents();
  w.Step();  // the old tasks stopped: the new ones may start
  w.Agents();
  int v2 = 0;
  for (const api::Task* t : w.Running()) v2 += t->spec().container().image() == "busybox:2";
  EXPECT_EQ(v2, 2);
  p = w.Step();
  EXPECT_TRUE(p.create.empty()) << "the next batch waits for the delay";
  EXPECT_EQ(p.next_check, w.now + absl::Seconds(10));
  w.now = p.next_check;
  w.Settle();
  EXPECT_EQ(w.svc.update_status().state(), api::UPDATE_STATE_UPDATING) << "monitoring";
  w.Advance(absl::Seconds(5));
  w.Settle();
  EXPECT_EQ(w.svc.update_status().state(), api::UPDATE_STATE_COMPLETED);
  EXPECT_EQ(w.svc.update_status().message(), "update completed");
  ASSERT_EQ(w.Running().size(), 4u);
  for (const api::Task* t : w.Running()) EXPECT_EQ(t->spec().container().image(), "busybox:2");
  EXPECT_EQ(Slots(w.Running()), (std::set<uint64_t>{1, 2, 3, 4}));
}

TEST(ReconcileTest, Update_StartFirstStopsTheOldTaskOnceTheNewOneRuns) {
  World w;
  w.AddNode("n1");
  w.svc.mutable_spec()->mutable_replicated()->set_replicas(1);
  w.Settle();
  const std::string old_id = w.TaskInSlot(1).id();
  w.ChangeSpec([](api::ServiceSpec& s) {
    s.mutable_task_template()->mutable_container()->set_image("busybox:2");
    s.mutable_update_config()->set_order(api::UPDATE_ORDER_START_FIRST);
  });
  Plan p = w.Step();
  ASSERT_EQ(p.create.size(), 1u);
  EXPECT_EQ(p.create[0].desired_state(), api::TASK_STATE_RUNNING);
  EXPECT_TRUE(p.update.empty()) << "the old task keeps running meanwhile";
  w.Agents();
  EXPECT_EQ(w.Running().size(), 2u);
  p = w.Step();
  ASSERT_EQ(p.update.size(), 1u);
  EXPECT_EQ(p.update[0].id(), old_id);
  EXPECT_EQ(p.update[0].desired_state(), api::TASK_STATE_SHUTDOWN);
  w.Advance(absl::Seconds(6));
  w.Settle();
  EXPECT_EQ(w.Running().size(), 1u);
  EXPECT_EQ(w.svc.update_status().state(), api::UPDATE_STATE_COMPLETED);
}

TEST(ReconcileTest, Update_ThatChangesNoTaskSpecRestartsNothing) {
  World w;
  w.AddNode("n1");
  w.Settle();
  w.ChangeSpec([](api::ServiceSpec& s) {
    s.mutable_update_config()->set_parallelism(3);
    s.mutable_replicated()->set_replicas(4);
  });
  Plan p = w.Step();
  EXPECT_EQ(p.create.size(), 1u);
  EXPECT_TRUE(p.update.empty());
  EXPECT_FALSE(w.svc.has_update_status());
}

TEST(ReconcileTest, Update_ForceRedeploysEveryTask) {
  World w;
  w.AddNode("n1");
  w.Settle();
  w.ChangeSpec([](api::ServiceSpec& s) { s.mutable_task_template()->set_force_update(1); });
  w.Advance(absl::Seconds(1));
  w.Settle();
  w.Advance(absl::Seconds(10));
  w.Settle();
  EXPECT_EQ(w.svc.update_status().state(), api::UPDATE_STATE_COMPLETED);
  EXPECT_EQ(w.tasks.size(), 6u);
  for (const api::Task* t : w.Running()) EXPECT_EQ(t->spec().force_update(), 1u);
}

// The new image fails at once; what happens depends on the failure action.
World FailingUpdate(api::UpdateFailureAction action) {
  World w;
  w.AddNode("n1");
  w.Settle();
  w.ChangeSpec([&](api::ServiceSpec& s) {
    s.mutable_task_template()->mutable_container()->set_image("broken:1");
    s.mutable_update_config()->set_failure_action(action);
  });
  w.Advance(absl::Seconds(1));
  for (int i = 0; i < 10; ++i) {
    w.Step();
    w.Agents();
    for (auto& [id, t] : w.tasks) {
      if (t.spec().container().image() == "broken:1" &&
          t.status().state() == api::TASK_STATE_RUNNING) {
        w.SetState(t, api::TASK_STATE_FAILED, 1);
      }
    }
    w.Advance(absl::Seconds(6));
  }
  return w;
}

TEST(ReconcileTest, Update_FailureActionPauseStopsTheUpdate) {
  World w = FailingUpdate(api::UPDATE_FAILURE_ACTION_PAUSE);
  EXPECT_EQ(w.svc.update_status().state(), api::UPDATE_STATE_PAUSED);
  EXPECT_TRUE(absl::StartsWith(w.svc.update_status().message(),
                               "update paused due to failure or early termination of task "))
      << w.svc.update_status().message();
  int old_running = 0;
  for (const api::Task* t : w.Running())
    old_running += t->spec().container().image() == "busybox:1";
  EXPECT_EQ(old_running, 2) << "the slots not yet updated keep running";
}

TEST(ReconcileTest, Update_FailureActionRollbackRestoresThePreviousSpec) {
  World w = FailingUpdate(api::UPDATE_FAILURE_ACTION_ROLLBACK);
  w.Advance(absl::Seconds(10));
  w.Settle();
  EXPECT_EQ(w.svc.spec().task_template().container().image(), "busybox:1");
  EXPECT_EQ(w.svc.previous_spec().task_template().container().image(), "broken:1");
  EXPECT_EQ(w.svc.update_status().state(), api::UPDATE_STATE_ROLLBACK_COMPLETED);
  // Why it was rolled back outlives the rollback.
  EXPECT_TRUE(absl::StartsWith(w.svc.update_status().message(),
                               "rollback completed (update rolled back due to failure or early "
                               "termination of task "))
      << w.svc.update_status().message();
  ASSERT_EQ(w.Running().size(), 3u);
  for (const api::Task* t : w.Running()) EXPECT_EQ(t->spec().container().image(), "busybox:1");
}

TEST(ReconcileTest, Update_FailureActionContinueUpdatesEverySlot) {
  World w = FailingUpdate(api::UPDATE_FAILURE_ACTION_CONTINUE);
  // As in Docker: the update completes; restart supervision goes on with the new spec.
  EXPECT_EQ(w.svc.update_status().state(), api::UPDATE_STATE_COMPLETED);
  for (const api::Task* t : w.Live()) EXPECT_EQ(t->spec().container().image(), "broken:1");
}

TEST(ReconcileTest, Update_MaxFailureRatioToleratesSomeFailures) {
  World w;
  w.AddNode("n1");
  w.svc.mutable_spec()->mutable_replicated()->set_replicas(4);
  w.Settle();
  w.ChangeSpec([](api::ServiceSpec& s) {
    s.mutable_task_template()->mutable_container()->set_image("busybox:2");
    s.mutable_update_config()->set_max_failure_ratio(0.3f);
  });
  w.Advance(absl::Seconds(1));
  w.Step();
  w.Agents();
  // One failure in four slots (0.25) is tolerated.
  for (auto& [id, t] : w.tasks) {
    if (t.spec().container().image() == "busybox:2") w.SetState(t, api::TASK_STATE_FAILED, 1);
  }
  w.Step();
  EXPECT_EQ(w.svc.update_status().state(), api::UPDATE_STATE_UPDATING);
}

TEST(ReconcileTest, Rollback_ManualUsesTheRollbackConfigAndCompletes) {
  World w;
  w.AddNode("n1");
  // The rollback config of the spec rolled back to applies, as in SwarmKit.
  w.svc.mutable_spec()->mutable_rollback_config()->set_parallelism(0);  // all at once
  w.Settle();
  w.ChangeSpec([](api::ServiceSpec& s) {
    s.mutable_task_template()->mutable_container()->set_image("busybox:2");
  });
  w.Advance(absl::Seconds(1));
  w.Settle();
  w.Advance(absl::Seconds(10));
  w.Settle();
  // What `service rollback` does in the control API.
  std::swap(*w.svc.mutable_spec_version(), *w.svc.mutable_previous_spec_version());
  w.svc.mutable_spec()->Swap(w.svc.mutable_previous_spec());
  w.svc.mutable_update_status()->set_state(api::UPDATE_STATE_ROLLBACK_STARTED);
  *w.svc.mutable_update_status()->mutable_started_at() = ToTimestamp(w.now);
  Plan p = w.Step();
  EXPECT_EQ(p.create.size(), 3u) << "rollback parallelism 0 replaces every slot at once";
  w.Settle();
  w.Advance(absl::Seconds(10));
  w.Settle();
  EXPECT_EQ(w.svc.update_status().state(), api::UPDATE_STATE_ROLLBACK_COMPLETED);
  for (const api::Task* t : w.Running()) EXPECT_EQ(t->spec().container().image(), "busybox:1");
}

TEST(ReconcileTest, Rebalance_SpreadsOntoNewNodesThenClearsTheRequest) {
  World w;
  w.AddNode("n1");
  w.svc.mutable_spec()->mutable_replicated()->set_replicas(5);
  w.Settle();
  w.AddNode("n2");
  w.AddNode("n3");
  w.Settle();
  EXPECT_EQ(w.Running().size(), 5u);
  for (const api::Task* t : w.Running()) EXPECT_EQ(t->node_id(), "n1") << "not without asking";

  w.svc.set_rebalance(true);
  Plan p = w.Step();
  EXPECT_EQ(p.create.size(), 1u) << "update parallelism 1";
  w.Settle();
  EXPECT_FALSE(w.svc.rebalance());
  std::map<std::string, int> per_node;
  for (const api::Task* t : w.Running()) ++per_node[t->node_id()];
  EXPECT_EQ(per_node, (std::map<std::string, int>{{"n1", 2}, {"n2", 2}, {"n3", 1}}));
  EXPECT_EQ(Slots(w.Running()).size(), 5u);
}

TEST(ReconcileTest, Global_OneTaskPerEligibleNodeFollowingNodes) {
  World w;
  w.svc.mutable_spec()->mutable_global();
  w.AddNode("n1").mutable_spec()->mutable_annotations()->mutable_labels()->insert({"zone", "a"});
  w.AddNode("n2").mutable_spec()->mutable_annotations()->mutable_labels()->insert({"zone", "a"});
  w.AddNode("n3");  // no label
  w.AddNode("n4").mutable_spec()->mutable_annotations()->mutable_labels()->insert({"zone", "a"});
  w.nodes["n4"].mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  w.svc.mutable_spec()->mutable_task_template()->mutable_placement()->add_constraints(
      "node.labels.zone==a");
  Plan p = w.Step();
  std::set<std::string> on;
  for (const api::Task& t : p.create) {
    on.insert(t.node_id());
    EXPECT_EQ(t.slot(), 0u);
    EXPECT_EQ(t.annotations().name(), absl::StrCat("web.", t.node_id(), ".", t.id()));
  }
  EXPECT_EQ(on, (std::set<std::string>{"n1", "n2"}));
  w.Settle();
  // A node joins, another is drained, a paused one keeps its task.
  w.AddNode("n5").mutable_spec()->mutable_annotations()->mutable_labels()->insert({"zone", "a"});
  w.nodes["n1"].mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  w.nodes["n2"].mutable_spec()->set_availability(api::NODE_AVAILABILITY_PAUSE);
  w.Settle();
  on.clear();
  for (const api::Task* t : w.Running()) on.insert(t->node_id());
  EXPECT_EQ(on, (std::set<std::string>{"n2", "n5"}));
  // The drained node comes back: it gets a task again, whatever the restart policy.
  w.svc.mutable_spec()->mutable_task_template()->mutable_restart_policy()->set_condition(
      api::RESTART_CONDITION_NONE);
  w.nodes["n1"].mutable_spec()->set_availability(api::NODE_AVAILABILITY_ACTIVE);
  w.Settle();
  EXPECT_EQ(w.Running().size(), 3u);
}

TEST(ReconcileTest, Global_NodeDownAndBack) {
  World w;
  w.svc.mutable_spec()->mutable_global();
  w.AddNode("n1");
  w.AddNode("n2");
  w.Settle();
  w.nodes["n2"].mutable_status()->set_state(api::NODE_STATE_DOWN);
  w.Settle();
  ASSERT_EQ(w.Running().size(), 1u);
  w.nodes["n2"].mutable_status()->set_state(api::NODE_STATE_READY);
  w.Settle();
  EXPECT_EQ(w.Running().size(), 2u);
  // One live task per node, never two.
  std::map<std::string, int> live;
  for (const api::Task* t : w.Live()) ++live[t->node_id()];
  EXPECT_EQ(live, (std::map<std::string, int>{{"n1", 1}, {"n2", 1}}));
}

TEST(ReconcileTest, ReplicatedJob_RunsMaxConcurrentUntilEnoughComplete) {
  World w;
  w.AddNode("n1");
  w.svc.mutable_spec()->mutable_replicated_job()->set_total_completions(5);
  w.svc.mutable_spec()->mutable_replicated_job()->set_max_concurrent(2);
  w.svc.mutable_spec()->mutable_task_template()->mutable_restart_policy()->set_condition(
      api::RESTART_CONDITION_ON_FAILURE);
  w.svc.mutable_job_status()->mutable_job_iteration()->set_index(1);
  Plan p = w.Step();
  ASSERT_EQ(p.create.size(), 2u);
  EXPECT_EQ(p.create[0].desired_state(), api::TASK_STATE_COMPLETE);
  EXPECT_EQ(p.create[0].job_iteration().index(), 1u);
  int completed = 0;
  for (int round = 0; round < 20 && completed < 5; ++round) {
    w.Agents();
    ASSERT_LE(w.Running().size(), 2u);
    // One fails once, the rest complete.
    for (auto& [id, t] : w.tasks) {
      if (t.status().state() != api::TASK_STATE_RUNNING) continue;
      if (t.slot() == 3 && t.replaced_task_id().empty()) {
        w.SetState(t, api::TASK_STATE_FAILED, 1);
      } else {
        w.SetState(t, api::TASK_STATE_COMPLETE);
        ++completed;
      }
    }
    w.Advance(absl::Seconds(6));
    w.Step();
  }
  EXPECT_EQ(completed, 5);
  w.Settle();
  EXPECT_TRUE(w.Live().empty());
  EXPECT_TRUE(w.Reconcile().create.empty()) << "a finished job is not run again";
  int failed = 0;
  for (const auto& [id, t] : w.tasks) failed += t.status().state() == api::TASK_STATE_FAILED;
  EXPECT_EQ(failed, 1);
}

TEST(ReconcileTest, Jobs_ANewIterationStopsTheOldTasksAndRunsAgain) {
  World w;
  w.AddNode("n1");
  w.AddNode("n2");
  w.svc.mutable_spec()->mutable_global_job();
  w.Settle();
  ASSERT_EQ(w.Running().size(), 2u);
  w.SetState(w.tasks.begin()->second, api::TASK_STATE_COMPLETE);
  w.Settle();
  EXPECT_EQ(w.Running().size(), 1u) << "a completed global job task is not restarted";
  w.ChangeSpec([](api::ServiceSpec& s) { s.mutable_task_template()->set_force_update(1); });
  w.Settle();
  ASSERT_EQ(w.Running().size(), 2u);
  for (const api::Task* t : w.Running()) EXPECT_EQ(t->job_iteration().index(), 1u);
}

TEST(ReconcileTest, History_KeepsTheNewestDeadTasksPerSlot) {
  World w;
  w.AddNode("n1");
  w.svc.mutable_spec()->mutable_replicated()->set_replicas(1);
  w.history_limit = 2;
  w.Settle();
  for (int i = 0; i < 5; ++i) {
    w.SetState(w.TaskInSlot(1), api::TASK_STATE_FAILED, 1);
    w.Advance(absl::Seconds(6));
    w.Settle();
  }
  // One live task and its two newest predecessors.
  EXPECT_EQ(w.tasks.size(), 3u);
  EXPECT_EQ(w.Running().size(), 1u);
}

TEST(ReconcileTest, RemovedService_TasksStopThenGo) {
  World w;
  w.AddNode("n1");
  w.Settle();
  w.removed = true;
  Plan p = w.Step();
  EXPECT_EQ(p.update.size(), 3u);
  for (const api::Task& t : p.update) EXPECT_EQ(t.desired_state(), api::TASK_STATE_REMOVE);
  w.Agents();
  w.Step();
  EXPECT_TRUE(w.tasks.empty());
}

// Random events against the invariants: never more live slots than replicas, never two
// running tasks in a slot outside a start-first update, and once the dust settles exactly the
// replicas run.
TEST(ReconcileTest, Property_RandomEventsKeepTheReplicaInvariants) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    World w;
    SeededRandom rnd(seed);
    for (int i = 1; i <= 4; ++i) w.AddNode(absl::StrCat("n", i));
    w.history_limit = 3;
    for (int step = 0; step < 60; ++step) {
      switch (rnd.Uniform(7)) {
        case 0: {  // a task fails
          auto live = w.Running();
          if (!live.empty()) {
            w.SetState(w.tasks[live[rnd.Uniform(live.size())]->id()], api::TASK_STATE_FAILED, 1);
          }
          break;
        }
        case 1: {  // a node goes down or comes back
          api::Node& n = w.nodes[absl::StrCat("n", 1 + rnd.Uniform(4))];
          n.mutable_status()->set_state(n.status().state() == api::NODE_STATE_READY
                                            ? api::NODE_STATE_DOWN
                                            : api::NODE_STATE_READY);
          break;
        }
        case 2:
          w.svc.mutable_spec()->mutable_replicated()->set_replicas(rnd.Uniform(6));
          break;
        case 3:
          w.ChangeSpec([&](api::ServiceSpec& s) {
            s.mutable_task_template()->mutable_container()->set_image(
                absl::StrCat("busybox:", rnd.Uniform(3)));
            s.mutable_update_config()->set_parallelism(rnd.Uniform(3));
          });
          break;
        case 4: {
          api::Node& n = w.nodes[absl::StrCat("n", 1 + rnd.Uniform(4))];
          n.mutable_spec()->set_availability(n.spec().availability() ==
                                                     api::NODE_AVAILABILITY_ACTIVE
                                                 ? api::NODE_AVAILABILITY_DRAIN
                                                 : api::NODE_AVAILABILITY_ACTIVE);
          break;
        }
        default:
          break;
      }
      w.Advance(absl::Seconds(rnd.Uniform(8)));
      w.Step();
      w.Agents();
      std::map<uint64_t, int> running;
      std::set<uint64_t> live_slots;
      for (const api::Task* t : w.Live()) live_slots.insert(t->slot());
      for (const api::Task* t : w.Running()) ++running[t->slot()];
      for (const auto& [slot, n] : running) {
        ASSERT_LE(n, 1) << "seed " << seed << " step " << step << " slot " << slot << "\n"
                        << w.Dump();
      }
      ASSERT_LE(live_slots.size(), w.svc.spec().replicated().replicas() + 0u)
          << "seed " << seed << " step " << step << "\n"
          << w.Dump();
    }
    // Every node up and active: the service converges to its replicas, all on the current spec.
    for (auto& [id, n] : w.nodes) {
      n.mutable_status()->set_state(api::NODE_STATE_READY);
      n.mutable_spec()->set_availability(api::NODE_AVAILABILITY_ACTIVE);
    }
    for (int i = 0; i < 10; ++i) {
      w.Advance(absl::Seconds(20));
      w.Settle();
    }
    const uint64_t replicas = w.svc.spec().replicated().replicas();
    ASSERT_EQ(w.Running().size(), replicas) << "seed " << seed << "\n" << w.Dump();
    // Slot numbers survive scale-down as they are (as in Docker), one task each.
    EXPECT_EQ(Slots(w.Running()).size(), replicas) << "seed " << seed;
    for (const api::Task* t : w.Running()) {
      EXPECT_EQ(t->spec().container().image(), w.svc.spec().task_template().container().image());
    }
  }
}

}  // namespace
}  // namespace swarm::manager::orchestrator

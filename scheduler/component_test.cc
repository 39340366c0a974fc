#include "scheduler/component.h"

#include <google/protobuf/util/time_util.h>

#include <atomic>
#include <map>
#include <set>

#include "gtest/gtest.h"
#include "scheduler/test_util.h"

namespace swarm::scheduler {
namespace {

namespace store = manager::store;
using testing::kCpu;
using testing::kGiB;
using testing::MakeNode;
using testing::MakeTask;

// Forwards to a LocalProposer; while races_ > 0, a proposal that assigns a task is preceded
// by another writer's update of that task (a label), so that the scheduler's transaction
// fails with "update out of sequence".
class RacingProposer final : public store::Proposer {
 public:
  void set_store(store::MemoryStore* s) {
    store_ = s;
    inner_.set_store(s);
  }
  void Race(int times) { races_ = times; }
  int raced() const { return raced_; }

  void Propose(std::string data, std::function<void(absl::StatusOr<uint64_t>)> done) override {
    api::InternalRaftRequest req;
    req.ParseFromString(data);
    for (const api::StoreAction& a : req.action()) {
      if (!a.has_task() || a.task().status().state() != api::TASK_STATE_ASSIGNED) continue;
      if (races_ <= 0) break;
      --races_;
      ++raced_;
      api::InternalRaftRequest other;
      other.set_id(0xdead0000 + raced_);
      store::Ptr<api::Task> current;
      store_->View([&](const store::ReadTx& tx) { current = tx.GetTask(a.task().id()); });
      api::Task t = *current;
      (*t.mutable_annotations()->mutable_labels())["raced"] = "yes";
      api::StoreAction* u = other.add_action();
      *u = store::Wrap(t);
      u->set_kind(api::STORE_ACTION_KIND_UPDATE);
      inner_.Propose(other.SerializeAsString(), [](absl::StatusOr<uint64_t>) {});
      break;
    }
    inner_.Propose(std::move(data), std::move(done));
  }

 private:
  store::LocalProposer inner_;
  store::MemoryStore* store_ = nullptr;
  std::atomic<int> races_{0};
  std::atomic<int> raced_{0};
};

class SchedulerComponentTest : public ::testing::Test {
 protected:
  SchedulerComponentTest() : store_(&proposer_, &clock_) { proposer_.set_store(&store_); }
  ~SchedulerComponentTest() override {
    if (component_) component_->Stop();
  }

  void Start(SchedulerOptions options = Immediate()) {
    component_ = std::make_unique<SchedulerComponent>(&store_, &clock_, options);
    component_->Start();
  }
  static SchedulerOptions Immediate() {
    SchedulerOptions o;
    o.batch_window = absl::ZeroDuration();
    return o;
  }

  void Put(const api::Node& n) {
    ASSERT_TRUE(store_
                    .Update([&](store::WriteTx& tx) {
                      store::Ptr<api::Node> cur = tx.GetNode(n.id());
                      api::Node copy = n;
                      if (cur) {
                        *copy.mutable_meta() = cur->meta();
                        tx.UpdateObject(copy);
                      } else {
                        tx.CreateObject(copy);
                      }
                      return absl::OkStatus();
                    })
                    .ok());
  }
  void Put(const std::vector<api::Task>& tasks) {
    for (size_t i = 0; i < tasks.size(); i += 500) {
      ASSERT_TRUE(store_
                      .Update([&](store::WriteTx& tx) {
                        for (size_t j = i; j < std::min(tasks.size(), i + 500); ++j) {
                          store::Ptr<api::Task> cur = tx.GetTask(tasks[j].id());
                          api::Task copy = tasks[j];
                          if (cur) {
                            *copy.mutable_meta() = cur->meta();
                            tx.UpdateObject(copy);
                          } else {
                            tx.CreateObject(copy);
                          }
                        }
                        return absl::OkStatus();
                      })
                      .ok());
    }
  }
  void Put(const api::Task& t) { Put(std::vector<api::Task>{t}); }

  api::Task Get(const std::string& id) {
    store::Ptr<api::Task> t;
    store_.View([&](const store::ReadTx& tx) { t = tx.GetTask(id); });
    return t ? *t : api::Task();
  }

  // Waits (real time, up to 10 s) until pred holds for the task.
  bool WaitFor(const std::string& id, const std::function<bool(const api::Task&)>& pred) {
    for (int i = 0; i < 1000; ++i) {
      if (pred(Get(id))) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }
  bool WaitAssigned(const std::string& id) {
    return WaitFor(id, [](const api::Task& t) {
      return t.status().state() == api::TASK_STATE_ASSIGNED && !t.node_id().empty();
    });
  }
  bool WaitMessage(const std::string& id, const std::string& message) {
    return WaitFor(id, [&](const api::Task& t) { return t.status().message() == message; });
  }

  FakeClock clock_;
  RacingProposer proposer_;
  store::MemoryStore store_;
  std::unique_ptr<SchedulerComponent> component_;
};

TEST_F(SchedulerComponentTest, Start_AssignsPendingTasksAndSpreadsThem) {
  for (const char* n : {"n1", "n2", "n3"}) Put(MakeNode(n));
  std::vector<api::Task> tasks;
  for (int i = 0; i < 6; ++i) tasks.push_back(MakeTask("t" + std::to_string(i), "svc"));
  Put(tasks);
  Start();
  std::map<std::string, int> by_node;
  for (const api::Task& t : tasks) {
    ASSERT_TRUE(WaitAssigned(t.id())) << t.id();
    api::Task got = Get(t.id());
    EXPECT_EQ(got.status().message(), SchedulerComponent::kAssignedMessage);
    EXPECT_EQ(got.status().err(), "");
    EXPECT_EQ(google::protobuf::util::TimeUtil::TimestampToNanoseconds(got.status().timestamp()),
              absl::ToUnixNanos(clock_.Now()));
    EXPECT_EQ(got.desired_state(), api::TASK_STATE_RUNNING);
    ++by_node[got.node_id()];
  }
  EXPECT_EQ(by_node, (std::map<std::string, int>{{"n1", 2}, {"n2", 2}, {"n3", 2}}));

  // Tasks that arrive later are scheduled too, counting what is already assigned.
  Put(MakeTask("late", "svc"));
  ASSERT_TRUE(WaitAssigned("late"));
}

TEST_F(SchedulerComponentTest, TakesOnlyPendingTasksNotYetFinishedOrRemoved) {
  Put(MakeNode("n1"));
  api::Task shutdown = MakeTask("shutdown", "svc");
  shutdown.set_desired_state(api::TASK_STATE_SHUTDOWN);
  api::Task fresh = MakeTask("new", "svc");
  fresh.mutable_status()->set_state(api::TASK_STATE_NEW);
  api::Task job = MakeTask("job", "svc");
  job.set_desired_state(api::TASK_STATE_COMPLETE);
  Put({shutdown, fresh, job});
  Start();
  ASSERT_TRUE(WaitAssigned("job"));
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(Get("shutdown").status().state(), api::TASK_STATE_PENDING);
  EXPECT_EQ(Get("shutdown").node_id(), "");
  EXPECT_EQ(Get("new").status().state(), api::TASK_STATE_NEW);
}

TEST_F(SchedulerComponentTest, Unplaceable_GetsTheExplanationThenAssignedWhenANodeFits) {
  Put(MakeNode("small1", 4 * kCpu, kGiB));
  Put(MakeNode("small2", 4 * kCpu, kGiB));
  Put(MakeTask("big", "svc", 0, 16 * kGiB));
  Start();
  const std::string want = "no suitable node (insufficient memory on 2 nodes)";
  ASSERT_TRUE(WaitMessage("big", want));
  EXPECT_EQ(Get("big").status().err(), want);
  EXPECT_EQ(Get("big").status().state(), api::TASK_STATE_PENDING);

  Put(MakeNode("large", 4 * kCpu, 32 * kGiB));
  ASSERT_TRUE(WaitAssigned("big"));
  EXPECT_EQ(Get("big").node_id(), "large");
  EXPECT_EQ(Get("big").status().err(), "");
}

TEST_F(SchedulerComponentTest, Unplaceable_NoNodesThenANodeJoinsOrBecomesReady) {
  Put(MakeTask("t1", "svc"));
  Start();
  ASSERT_TRUE(WaitMessage("t1", "no suitable node (no nodes in the cluster)"));
  api::Node n = MakeNode("n1");
  n.mutable_status()->set_state(api::NODE_STATE_DOWN);
  Put(n);
  ASSERT_TRUE(WaitMessage("t1", "no suitable node (node not ready on 1 node)"));
  n.mutable_status()->set_state(api::NODE_STATE_READY);
  Put(n);
  ASSERT_TRUE(WaitAssigned("t1"));
}

TEST_F(SchedulerComponentTest, Unplaceable_ExplanationIsWrittenOnceNotOnEveryRetry) {
  Put(MakeNode("n1", kCpu, kGiB));
  Put(MakeTask("t1", "svc", 2 * kCpu, 0));
  Start();
  ASSERT_TRUE(WaitMessage("t1", "no suitable node (insufficient CPU on 1 node)"));
  const uint64_t version = Get("t1").meta().version().index();
  // Node changes retry the task; the explanation stays the same, so nothing is written.
  for (int i = 0; i < 5; ++i) {
    Put(MakeNode("n1", kCpu, kGiB, {{"round", std::to_string(i)}}));
    absl::SleepFor(absl::Milliseconds(30));
  }
  Put(MakeTask("probe", "other"));  // a batch after the last node change
  ASSERT_TRUE(WaitAssigned("probe"));
  EXPECT_EQ(Get("t1").meta().version().index(), version);
}

TEST_F(SchedulerComponentTest, FinishedTaskFreesResourcesForAPendingOne) {
  Put(MakeNode("n1", kCpu, 4 * kGiB));
  api::Task running = testing::Running(MakeTask("running", "svc", kCpu, kGiB), "n1");
  Put(running);
  Put(MakeTask("waiting", "svc", kCpu, kGiB));
  Start();
  ASSERT_TRUE(WaitMessage("waiting", "no suitable node (insufficient CPU on 1 node)"));
  running.mutable_status()->set_state(api::TASK_STATE_COMPLETE);
  Put(running);
  ASSERT_TRUE(WaitAssigned("waiting"));
  EXPECT_EQ(Get("waiting").node_id(), "n1");

  // And a removed task frees its node as well.
  Put(MakeTask("third", "svc", kCpu, 0));
  ASSERT_TRUE(WaitMessage("third", "no suitable node (insufficient CPU on 1 node)"));
  ASSERT_TRUE(store_
                  .Update([](store::WriteTx& tx) {
                    tx.RemoveObject(*tx.GetTask("waiting"));
                    return absl::OkStatus();
                  })
                  .ok());
  ASSERT_TRUE(WaitAssigned("third"));
}

TEST_F(SchedulerComponentTest, GlobalTask_GoesToItsPresetNodeOnly) {
  Put(MakeNode("n1"));
  Put(MakeNode("n2", kCpu, kGiB));
  api::Task g1 = MakeTask("g1", "global", 2 * kCpu, 0);
  g1.set_node_id("n1");
  api::Task g2 = g1;
  g2.set_id("g2");
  g2.set_node_id("n2");
  Put({g1, g2});
  Start();
  ASSERT_TRUE(WaitAssigned("g1"));
  EXPECT_EQ(Get("g1").node_id(), "n1");
  ASSERT_TRUE(WaitMessage("g2", "no suitable node (insufficient CPU on 1 node)"));
  EXPECT_EQ(Get("g2").node_id(), "n2");
}

TEST_F(SchedulerComponentTest, OutOfSequence_IsRetriedWithTheFreshTask) {
  Put(MakeNode("n1", kCpu, kGiB));
  proposer_.Race(1);
  Put(MakeTask("t1", "svc", kCpu, 0));
  Start();
  ASSERT_TRUE(WaitAssigned("t1"));
  EXPECT_EQ(proposer_.raced(), 1);
  api::Task t = Get("t1");
  EXPECT_EQ(t.annotations().labels().at("raced"), "yes") << "the other writer's change is kept";
  EXPECT_EQ(t.node_id(), "n1");
  // The failed attempt's reservation was given back: exactly one CPU is used.
  Put(MakeTask("t2", "svc", kCpu, 0));
  ASSERT_TRUE(WaitMessage("t2", "no suitable node (insufficient CPU on 1 node)"));
}

TEST_F(SchedulerComponentTest, LargeBatch_IsWrittenInBoundedTransactions) {
  for (int i = 0; i < 10; ++i) Put(MakeNode("n" + std::to_string(i)));
  std::vector<api::Task> tasks;
  for (int i = 0; i < 2500; ++i) tasks.push_back(MakeTask("t" + std::to_string(i), "svc"));
  Put(tasks);
  auto watch = store_.WatchFrom(0);
  ASSERT_TRUE(watch.ok());
  Start();
  std::map<uint64_t, int> writes_per_index;
  int assigned = 0;
  while (assigned < 2500) {
    std::optional<store::Event> e = (*watch)->Next(absl::Seconds(10));
    ASSERT_TRUE(e.has_value()) << assigned << " assigned";
    if (e->new_object && e->new_object->has_task() &&
        e->new_object->task().status().state() == api::TASK_STATE_ASSIGNED) {
      ++assigned;
      ++writes_per_index[e->index];
    }
  }
  EXPECT_EQ(writes_per_index.size(), 3u);
  for (const auto& [index, n] : writes_per_index) EXPECT_LE(n, 1000) << index;
}

TEST_F(SchedulerComponentTest, BatchWindow_AfterAQuietSpellAtOnceThenOnTheInjectedClock) {
  Put(MakeNode("n1"));
  SchedulerOptions o;
  o.batch_window = absl::Milliseconds(100);
  Start(o);
  Put(MakeTask("t1", "svc"));
  ASSERT_TRUE(WaitAssigned("t1")) << "the first batch after a quiet spell does not wait";
  Put(MakeTask("t2", "svc"));
  absl::SleepFor(absl::Milliseconds(200));  // real time: the fake clock has not moved
  EXPECT_EQ(Get("t2").status().state(), api::TASK_STATE_PENDING)
      << "the next batch waits batch_window after the last";
  clock_.Advance(absl::Milliseconds(100));
  ASSERT_TRUE(WaitAssigned("t2"));
}

TEST_F(SchedulerComponentTest, ClosedWatch_ListsAgainAndGoesOn) {
  Put(MakeNode("n1", kCpu, kGiB));
  Start();
  Put(MakeTask("t1", "svc", kCpu, 0));
  ASSERT_TRUE(WaitAssigned("t1"));
  // A snapshot restore closes every watch.
  ASSERT_TRUE(store_.Restore(store_.Snapshot()).ok());
  Put(MakeTask("t2", "svc", kCpu, 0));
  ASSERT_TRUE(WaitMessage("t2", "no suitable node (insufficient CPU on 1 node)"))
      << "t1 is still counted after the new list";
  Put(MakeNode("n2", kCpu, kGiB));
  ASSERT_TRUE(WaitAssigned("t2"));
  EXPECT_EQ(Get("t2").node_id(), "n2");
}

TEST_F(SchedulerComponentTest, Stop_JoinsPromptly) {
  Start();
  absl::SleepFor(absl::Milliseconds(50));
  const absl::Time start = absl::Now();
  component_->Stop();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
  component_->Stop();  // twice is fine
}

}  // namespace
}  // namespace swarm::scheduler

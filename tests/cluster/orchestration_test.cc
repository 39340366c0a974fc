// The manager's leader components together, in one process, over a real store: the control
// API takes services as an operator would send them, the allocator, scheduler and orchestrator
// run as on a leader, and simulated agents play the workers: they run what is assigned to
// their node and report each state, like the dispatcher would write it. The images name the
// behaviour of their tasks: "run" runs until stopped, "exit0" completes after a moment,
// "fail" fails after a moment.
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/proto_time.h"
#include "common/random.h"
#include "gtest/gtest.h"
#include "manager/allocator/allocator.h"
#include "manager/ca/server.h"
#include "manager/controlapi/server.h"
#include "manager/orchestrator/orchestrator.h"
#include "manager/store/store.h"
#include "scheduler/component.h"

namespace swarm {
namespace {

using manager::store::MemoryStore;
using manager::store::ReadTx;
using manager::store::WriteTx;

// Plays the agents of every node: moves assigned tasks through their states as the store
// asks, and records the most tasks of a service that ever ran at once.
class SimulatedAgents {
 public:
  explicit SimulatedAgents(MemoryStore* store) : store_(store) {
    thread_ = std::thread([this] { Run(); });
  }
  ~SimulatedAgents() {
    stop_ = true;
    thread_.join();
  }
  int max_running(const std::string& service_id) {
    absl::MutexLock lock(&mu_);
    return max_running_[service_id];
  }

 private:
  void Run() {
    while (!stop_) {
      absl::SleepFor(absl::Milliseconds(20));
      const absl::Time now = absl::Now();
      std::vector<api::Task> changes;
      std::map<std::string, int> running;
      store_->View([&](const ReadTx& tx) {
        for (const auto& t : tx.ListTasks()) {
          const api::TaskState s = t->status().state();
          if (s == api::TASK_STATE_RUNNING) ++running[t->service_id()];
          if (s < api::TASK_STATE_ASSIGNED || s > api::TASK_STATE_RUNNING) continue;
          auto node = tx.GetNode(t->node_id());
          if (node == nullptr || node->status().state() != api::NODE_STATE_READY) continue;
          std::optional<api::TaskState> next;
          std::string err;
          if (t->desired_state() > api::TASK_STATE_COMPLETE) {
            next = api::TASK_STATE_SHUTDOWN;
          } else if (s < api::TASK_STATE_READY && t->spec().container().image() == "reject") {
            next = api::TASK_STATE_REJECTED;
            err = "image reject could not be pulled";
          } else if (s < api::TASK_STATE_READY) {
            next = api::TASK_STATE_READY;
          } else if (s == api::TASK_STATE_READY && t->desired_state() >= api::TASK_STATE_RUNNING) {
            next = api::TASK_STATE_RUNNING;
          } else if (s == api::TASK_STATE_RUNNING &&
                     now - FromTimestamp(t->status().timestamp()) > absl::Milliseconds(100)) {
            const std::string& image = t->spec().container().image();
            if (image == "exit0") next = api::TASK_STATE_COMPLETE;
            if (image == "fail") {
              next = api::TASK_STATE_FAILED;
              err = "task: non-zero exit (1)";
            }
          }
          if (!next) continue;
          api::Task c = *t;
          c.mutable_status()->set_state(*next);
          c.mutable_status()->set_err(err);
          *c.mutable_status()->mutable_timestamp() = ToTimestamp(now);
          changes.push_back(std::move(c));
        }
      });
      {
        absl::MutexLock lock(&mu_);
        for (const auto& [svc, n] : running) max_running_[svc] = std::max(max_running_[svc], n);
      }
      if (changes.empty()) continue;
      // One transaction for the batch, as the dispatcher writes; a race loses the whole batch,
      // which the next round redoes with fresh tasks.
      (void)store_->Update([&](WriteTx& tx) {
        for (const api::Task& c : changes) tx.UpdateObject(c);
        return absl::OkStatus();
      });
    }
  }

  MemoryStore* store_;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  std::map<std::string, int> max_running_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

class OrchestrationTest : public ::testing::Test {
 protected:
  OrchestrationTest() : store_(&proposer_) {
    proposer_.set_store(&store_);
    auto cluster = manager::ca::NewCluster("cluster-1", absl::Now(), random_);
    EXPECT_TRUE(cluster.ok()) << cluster.status();
    cluster->mutable_spec()->mutable_orchestration()->set_task_history_retention_limit(5);
    Write([&](WriteTx& tx) { tx.CreateObject(*cluster); });
    manager::controlapi::Server::Options options;
    options.random = &random_;
    control_ = std::make_unique<manager::controlapi::Server>(&store_, std::move(options));
    allocator_ = std::make_unique<manager::allocator::Allocator>(&store_, &Clock::Real());
    scheduler_ = std::make_unique<scheduler::SchedulerComponent>(&store_, &Clock::Real());
    orchestrator_ =
        std::make_unique<manager::orchestrator::Orchestrator>(&store_, &Clock::Real(), &random_);
    allocator_->Start();
    scheduler_->Start();
    orchestrator_->Start();
  }
  ~OrchestrationTest() override {
    agents_.reset();
    orchestrator_->Stop();
    scheduler_->Stop();
    allocator_->Stop();
  }

  void Write(const std::function<void(WriteTx&)>& fn) {
    const absl::Status s = store_.Update([&](WriteTx& tx) {
      fn(tx);
      return absl::OkStatus();
    });
    ASSERT_TRUE(s.ok()) << s;
  }

  void AddNode(const std::string& id, std::map<std::string, std::string> labels = {}) {
    api::Node n;
    n.set_id(id);
    n.mutable_spec()->set_membership(api::NODE_MEMBERSHIP_ACCEPTED);
    n.mutable_spec()->mutable_annotations()->mutable_labels()->insert(labels.begin(), labels.end());
    n.mutable_description()->set_hostname(id);
    n.mutable_description()->mutable_platform()->set_os("linux");
    n.mutable_description()->mutable_platform()->set_architecture("x86_64");
    n.mutable_description()->mutable_resources()->set_nano_cpus(4'000'000'000);
    n.mutable_description()->mutable_resources()->set_memory_bytes(8LL << 30);
    n.mutable_status()->set_state(api::NODE_STATE_READY);
    Write([&](WriteTx& tx) { tx.CreateObject(n); });
  }

  void ChangeNode(const std::string& id, const std::function<void(api::Node&)>& fn) {
    for (int attempt = 0; attempt < 20; ++attempt) {
      api::Node n;
      store_.View([&](const ReadTx& tx) { n = *tx.GetNode(id); });
      fn(n);
      if (store_
              .Update([&](WriteTx& tx) {
                tx.UpdateObject(n);
                return absl::OkStatus();
              })
              .ok())
        return;
    }
    FAIL() << "node " << id << " could not be updated";
  }

  api::ServiceSpec Spec(const std::string& name, const std::string& image) {
    api::ServiceSpec s;
    s.mutable_annotations()->set_name(name);
    s.mutable_task_template()->mutable_container()->set_image(image);
    auto* restart = s.mutable_task_template()->mutable_restart_policy();
    restart->set_condition(api::RESTART_CONDITION_ANY);
    restart->mutable_delay()->set_nanos(100'000'000);
    s.mutable_update_config()->set_parallelism(1);
    s.mutable_update_config()->mutable_monitor()->set_nanos(300'000'000);
    s.mutable_rollback_config()->set_parallelism(0);
    s.mutable_rollback_config()->mutable_monitor()->set_nanos(300'000'000);
    return s;
  }

  api::Service Create(const api::ServiceSpec& spec) {
    api::CreateServiceRequest req;
    *req.mutable_spec() = spec;
    api::CreateServiceResponse resp;
    grpc::ServerContext ctx;
    const grpc::Status s = control_->CreateService(&ctx, &req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.service();
  }

  void Update(const std::string& id, const std::function<void(api::ServiceSpec&)>& fn) {
    api::Service svc = Service(id);
    api::UpdateServiceRequest req;
    req.set_service_id(id);
    *req.mutable_service_version() = svc.meta().version();
    *req.mutable_spec() = svc.spec();
    fn(*req.mutable_spec());
    api::UpdateServiceResponse resp;
    grpc::ServerContext ctx;
    const grpc::Status s = control_->UpdateService(&ctx, &req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  api::Service Service(const std::string& id) {
    api::Service svc;
    store_.View([&](const ReadTx& tx) { svc = *tx.GetService(id); });
    return svc;
  }

  std::vector<api::Task> Tasks(const std::string& service_id) {
    std::vector<api::Task> out;
    store_.View([&](const ReadTx& tx) {
      for (const auto& t : tx.TasksByService(service_id)) out.push_back(*t);
    });
    return out;
  }
  std::vector<api::Task> InState(const std::string& service_id, api::TaskState state) {
    std::vector<api::Task> out;
    for (api::Task& t : Tasks(service_id)) {
      if (t.status().state() == state) out.push_back(std::move(t));
    }
    return out;
  }

  // Waits up to 20 s for cond; the failure message shows the tasks.
  ::testing::AssertionResult Eventually(const std::function<bool()>& cond,
                                        const std::string& service_id) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline) {
      if (cond()) return ::testing::AssertionSuccess();
      absl::SleepFor(absl::Milliseconds(20));
    }
    auto r = ::testing::AssertionFailure() << "condition not met; tasks:\n";
    for (const api::Task& t : Tasks(service_id)) {
      r << t.annotations().name() << " node=" << t.node_id()
        << " desired=" << api::TaskState_Name(t.desired_state())
        << " state=" << api::TaskState_Name(t.status().state()) << " msg=" << t.status().message()
        << "\n";
    }
    r << Service(service_id).update_status().ShortDebugString();
    return r;
  }

  SecureRandom random_;
  manager::store::LocalProposer proposer_;
  MemoryStore store_;
  std::unique_ptr<manager::controlapi::Server> control_;
  std::unique_ptr<manager::allocator::Allocator> allocator_;
  std::unique_ptr<scheduler::SchedulerComponent> scheduler_;
  std::unique_ptr<manager::orchestrator::Orchestrator> orchestrator_;
  std::unique_ptr<SimulatedAgents> agents_ = std::make_unique<SimulatedAgents>(&store_);
};

TEST_F(OrchestrationTest, Replicated_ReachesReplicasSpreadOverNodesAndScales) {
  for (int i = 1; i <= 3; ++i) AddNode(absl::StrCat("node", i));
  api::ServiceSpec spec = Spec("web", "run");
  spec.mutable_replicated()->set_replicas(6);
  const std::string id = Create(spec).id();
  ASSERT_TRUE(Eventually([&] { return InState(id, api::TASK_STATE_RUNNING).size() == 6; }, id));
  std::map<std::string, int> per_node;
  for (const api::Task& t : InState(id, api::TASK_STATE_RUNNING)) ++per_node[t.node_id()];
  EXPECT_EQ(per_node, (std::map<std::string, int>{{"node1", 2}, {"node2", 2}, {"node3", 2}}));

  Update(id, [](api::ServiceSpec& s) { s.mutable_replicated()->set_replicas(2); });
  ASSERT_TRUE(Eventually(
      [&] { return InState(id, api::TASK_STATE_RUNNING).size() == 2 && Tasks(id).size() == 2; },
      id));
  EXPECT_LE(agents_->max_running(id), 6);
}

TEST_F(OrchestrationTest, Networks_TasksGetAddressesOnTheirNetworksAndGiveThemBack) {
  for (int i = 1; i <= 2; ++i) AddNode(absl::StrCat("node", i));
  auto create_network = [&](const std::string& name, bool ingress) {
    api::CreateNetworkRequest req;
    req.mutable_spec()->mutable_annotations()->set_name(name);
    req.mutable_spec()->set_ingress(ingress);
    api::CreateNetworkResponse resp;
    grpc::ServerContext ctx;
    const grpc::Status s = control_->CreateNetwork(&ctx, &req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.network().id();
  };
  const std::string ingress = create_network("ingress", true);
  const std::string web = create_network("web-net", false);
  api::ServiceSpec spec = Spec("web", "run");
  spec.mutable_replicated()->set_replicas(4);
  spec.mutable_task_template()->add_networks()->set_target("web-net");  // by name
  api::PortConfig* port = spec.mutable_endpoint_spec()->add_ports();
  port->set_target_port(80);
  const std::string id = Create(spec).id();
  ASSERT_TRUE(Eventually([&] { return InState(id, api::TASK_STATE_RUNNING).size() == 4; }, id));

  const api::Service svc = Service(id);
  EXPECT_EQ(svc.spec().task_template().networks(0).target(), web);
  ASSERT_EQ(svc.endpoint().ports_size(), 1);
  EXPECT_EQ(svc.endpoint().ports(0).published_port(), 30000u);
  ASSERT_EQ(svc.endpoint().virtual_ips_size(), 2);
  EXPECT_EQ(svc.endpoint().virtual_ips(0).network_id(), ingress);
  // node1 and node2 hold 10.0.0.2 and .3: their ingress sandboxes (the routing mesh).
  EXPECT_EQ(svc.endpoint().virtual_ips(0).addr(), "10.0.0.4/24");
  EXPECT_EQ(svc.endpoint().virtual_ips(1).network_id(), web);
  EXPECT_EQ(svc.endpoint().virtual_ips(1).addr(), "10.0.1.2/24");
  auto addresses = [&] {
    std::set<std::string> out;
    for (const api::Task& t : InState(id, api::TASK_STATE_RUNNING)) {
      EXPECT_EQ(t.networks_size(), 2);
      for (const auto& a : t.networks()) {
        EXPECT_TRUE(out.insert(a.addresses(0)).second) << a.addresses(0) << " twice";
      }
    }
    return out;
  };
  EXPECT_EQ(addresses(),
            (std::set<std::string>{"10.0.0.5/24", "10.0.0.6/24", "10.0.0.7/24", "10.0.0.8/24",
                                   "10.0.1.3/24", "10.0.1.4/24", "10.0.1.5/24", "10.0.1.6/24"}));

  // A network in use cannot go.
  {
    api::RemoveNetworkRequest req;
    req.set_network_id("web-net");
    api::RemoveNetworkResponse resp;
    grpc::ServerContext ctx;
    EXPECT_EQ(control_->RemoveNetwork(&ctx, &req, &resp).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }

  // Scaling down gives addresses back; scaling up again reuses them, never twice.
  Update(id, [](api::ServiceSpec& s) { s.mutable_replicated()->set_replicas(1); });
  ASSERT_TRUE(Eventually([&] { return InState(id, api::TASK_STATE_RUNNING).size() == 1; }, id));
  Update(id, [](api::ServiceSpec& s) { s.mutable_replicated()->set_replicas(4); });
  ASSERT_TRUE(Eventually([&] { return InState(id, api::TASK_STATE_RUNNING).size() == 4; }, id));
  EXPECT_EQ(addresses().size(), 8u);
}

TEST_F(OrchestrationTest, Global_RunsOncePerNodeAndFollowsNodes) {
  for (int i = 1; i <= 3; ++i) AddNode(absl::StrCat("node", i));
  api::ServiceSpec spec = Spec("agent", "run");
  spec.mutable_global();
  const std::string id = Create(spec).id();
  auto nodes_running = [&] {
    std::set<std::string> out;
    for (const api::Task& t : InState(id, api::TASK_STATE_RUNNING)) out.insert(t.node_id());
    return out;
  };
  ASSERT_TRUE(Eventually([&] { return nodes_running().size() == 3; }, id));
  AddNode("node4");
  ChangeNode("node1", [](api::Node& n) {
    n.mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  });
  ASSERT_TRUE(Eventually(
      [&] {
        return nodes_running() == std::set<std::string>{"node2", "node3", "node4"} &&
               InState(id, api::TASK_STATE_RUNNING).size() == 3;
      },
      id));
}

TEST_F(OrchestrationTest, ReplicatedJob_CompletesWithinMaxConcurrent) {
  for (int i = 1; i <= 2; ++i) AddNode(absl::StrCat("node", i));
  api::ServiceSpec spec = Spec("batch", "exit0");
  spec.clear_update_config();  // jobs have no rolling updates
  spec.clear_rollback_config();
  spec.mutable_replicated_job()->set_total_completions(5);
  spec.mutable_replicated_job()->set_max_concurrent(2);
  const std::string id = Create(spec).id();
  ASSERT_TRUE(Eventually([&] { return InState(id, api::TASK_STATE_COMPLETE).size() == 5; }, id));
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(Tasks(id).size(), 5u) << "a completed job is not run again";
  EXPECT_LE(agents_->max_running(id), 2);
}

TEST_F(OrchestrationTest, Restart_GivesUpAfterMaxAttempts) {
  AddNode("node1");
  api::ServiceSpec spec = Spec("crashy", "fail");
  spec.mutable_replicated()->set_replicas(1);
  spec.mutable_task_template()->mutable_restart_policy()->set_max_attempts(2);
  const std::string id = Create(spec).id();
  ASSERT_TRUE(Eventually([&] { return InState(id, api::TASK_STATE_FAILED).size() == 3; }, id));
  absl::SleepFor(absl::Seconds(1));
  EXPECT_EQ(Tasks(id).size(), 3u) << "the first run and two restarts, then no more";
  for (const api::Task& t : Tasks(id)) {
    EXPECT_EQ(t.slot(), 1u);
    if (!t.replaced_task_id().empty()) {
      EXPECT_EQ(t.replaced_task_status().state(), api::TASK_STATE_FAILED);
    }
  }
}

TEST_F(OrchestrationTest, Restart_RejectedTasksAreRetriedAfterTheDelay) {
  AddNode("node1");
  api::ServiceSpec spec = Spec("rejected", "reject");
  spec.mutable_replicated()->set_replicas(2);
  const std::string id = Create(spec).id();
  ASSERT_TRUE(Eventually([&] { return InState(id, api::TASK_STATE_REJECTED).size() >= 4; }, id));
}

TEST_F(OrchestrationTest, Update_WithAFailingImageRollsBack) {
  for (int i = 1; i <= 2; ++i) AddNode(absl::StrCat("node", i));
  api::ServiceSpec spec = Spec("web", "run");
  spec.mutable_replicated()->set_replicas(3);
  spec.mutable_update_config()->set_failure_action(api::UPDATE_FAILURE_ACTION_ROLLBACK);
  const std::string id = Create(spec).id();
  ASSERT_TRUE(Eventually([&] { return InState(id, api::TASK_STATE_RUNNING).size() == 3; }, id));
  Update(id, [](api::ServiceSpec& s) {
    s.mutable_task_template()->mutable_container()->set_image("fail");
  });
  ASSERT_TRUE(Eventually(
      [&] { return Service(id).update_status().state() == api::UPDATE_STATE_ROLLBACK_COMPLETED; },
      id));
  EXPECT_TRUE(absl::StrContains(Service(id).update_status().message(), "rollback completed"));
  ASSERT_TRUE(Eventually(
      [&] {
        auto running = InState(id, api::TASK_STATE_RUNNING);
        return running.size() == 3 &&
               std::all_of(running.begin(), running.end(), [](const api::Task& t) {
                 return t.spec().container().image() == "run";
               });
      },
      id));
}

TEST_F(OrchestrationTest, NodeDown_TasksAreReplacedElsewhere) {
  for (int i = 1; i <= 2; ++i) AddNode(absl::StrCat("node", i));
  api::ServiceSpec spec = Spec("web", "run");
  spec.mutable_replicated()->set_replicas(4);
  const std::string id = Create(spec).id();
  ASSERT_TRUE(Eventually([&] { return InState(id, api::TASK_STATE_RUNNING).size() == 4; }, id));
  ChangeNode("node1", [](api::Node& n) { n.mutable_status()->set_state(api::NODE_STATE_DOWN); });
  ASSERT_TRUE(Eventually(
      [&] {
        auto running = InState(id, api::TASK_STATE_RUNNING);
        return running.size() == 4 &&
               std::all_of(running.begin(), running.end(),
                           [](const api::Task& t) { return t.node_id() == "node2"; });
      },
      id));
  EXPECT_EQ(InState(id, api::TASK_STATE_ORPHANED).size(), 2u);
}

}  // namespace
}  // namespace swarm

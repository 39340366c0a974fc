#include "manager/allocator/allocator.h"

#include <google/protobuf/util/message_differencer.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/store/store.h"

namespace swarm::manager::allocator {
namespace {

using store::ReadTx;
using store::WriteTx;
using ::testing::HasSubstr;

class AllocatorTest : public ::testing::Test {
 protected:
  AllocatorTest() : store_(&proposer_) {
    proposer_.set_store(&store_);
    api::Cluster c;
    c.set_id("cluster");
    c.mutable_spec()->mutable_annotations()->set_name("default");
    Write([&](WriteTx& tx) { tx.CreateObject(c); });
  }
  ~AllocatorTest() override {
    if (allocator_) allocator_->Stop();
  }

  void StartAllocator() {
    allocator_ = std::make_unique<Allocator>(&store_, &Clock::Real());
    allocator_->Start();
  }
  void StopAllocator() {
    allocator_->Stop();
    allocator_.reset();
  }

  void Write(const std::function<void(WriteTx&)>& fn) {
    const absl::Status s = store_.Update([&](WriteTx& tx) {
      fn(tx);
      return absl::OkStatus();
    });
    ASSERT_TRUE(s.ok()) << s;
  }

  // Reads, changes and writes an object until the write wins a race with the allocator.
  template <typename T>
  void Change(store::Ptr<T> (ReadTx::*get)(const std::string&) const, const std::string& id,
              const std::function<void(T&)>& fn) {
    for (int attempt = 0; attempt < 50; ++attempt) {
      T o;
      store_.View([&](const ReadTx& tx) { o = *(tx.*get)(id); });
      fn(o);
      if (store_
              .Update([&](WriteTx& tx) {
                tx.UpdateObject(o);
                return absl::OkStatus();
              })
              .ok()) {
        return;
      }
    }
    FAIL() << "could not change " << id;
  }

  std::string AddNetwork(const std::string& name, const std::string& subnet = "",
                         bool ingress = false) {
    api::Network n;
    n.set_id("net-" + name);
    n.mutable_spec()->mutable_annotations()->set_name(name);
    n.mutable_spec()->mutable_driver_config()->set_name("overlay");
    n.mutable_spec()->set_ingress(ingress);
    if (!subnet.empty()) n.mutable_spec()->mutable_ipam()->add_configs()->set_subnet(subnet);
    Write([&](WriteTx& tx) { tx.CreateObject(n); });
    return n.id();
  }

  api::ServiceSpec Spec(const std::string& name, const std::vector<std::string>& networks) {
    api::ServiceSpec s;
    s.mutable_annotations()->set_name(name);
    s.mutable_task_template()->mutable_container()->set_image("nginx");
    for (const std::string& n : networks) {
      s.mutable_task_template()->add_networks()->set_target(n);
    }
    s.mutable_replicated()->set_replicas(1);
    return s;
  }

  static void Publish(api::ServiceSpec& s, uint32_t target, uint32_t published,
                      api::PublishMode mode = api::PUBLISH_MODE_INGRESS) {
    api::PortConfig* p = s.mutable_endpoint_spec()->add_ports();
    p->set_target_port(target);
    p->set_published_port(published);
    p->set_publish_mode(mode);
  }

  std::string AddService(const api::ServiceSpec& spec) {
    api::Service s;
    s.set_id("svc-" + spec.annotations().name());
    *s.mutable_spec() = spec;
    Write([&](WriteTx& tx) { tx.CreateObject(s); });
    return s.id();
  }

  std::string AddTask(const std::string& service_id, int slot) {
    api::Service svc = Service(service_id);
    api::Task t;
    t.set_id(absl::StrCat(service_id, "-task-", slot));
    t.set_service_id(service_id);
    t.set_slot(slot);
    *t.mutable_spec() = svc.spec().task_template();
    t.set_desired_state(api::TASK_STATE_RUNNING);
    t.mutable_status()->set_state(api::TASK_STATE_NEW);
    Write([&](WriteTx& tx) { tx.CreateObject(t); });
    return t.id();
  }

  void EndTask(const std::string& id) {
    Change<api::Task>(&ReadTx::GetTask, id, [](api::Task& t) {
      t.set_desired_state(api::TASK_STATE_SHUTDOWN);
      t.mutable_status()->set_state(api::TASK_STATE_SHUTDOWN);
    });
  }

  // A node as the CA writes it when it joins; state as the dispatcher last wrote it.
  void AddNode(const std::string& id, api::NodeRole role = api::NODE_ROLE_WORKER,
               api::NodeState state = api::NODE_STATE_READY) {
    api::Node n;
    n.set_id(id);
    n.set_role(role);
    n.mutable_spec()->set_desired_role(role);
    n.mutable_spec()->set_membership(api::NODE_MEMBERSHIP_ACCEPTED);
    n.mutable_status()->set_state(state);
    Write([&](WriteTx& tx) { tx.CreateObject(n); });
  }
  void RemoveNode(const std::string& id) {
    Write([&](WriteTx& tx) { tx.RemoveObject(*tx.GetNode(id)); });
  }
  api::Node Node(const std::string& id) {
    api::Node n;
    store_.View([&](const ReadTx& tx) { n = *tx.GetNode(id); });
    return n;
  }
  // A node's attachments as "network-name=address", "" for none.
  std::string NodeAddress(const std::string& id) {
    std::vector<std::string> out;
    const api::Node node = Node(id);
    for (const auto& a : node.attachments()) {
      out.push_back(absl::StrCat(a.network().spec().annotations().name(), "=",
                                 absl::StrJoin(a.addresses(), ",")));
    }
    return absl::StrJoin(out, " ");
  }
  ::testing::AssertionResult NodeAddressIs(const std::string& id, const std::string& want) {
    std::string got;
    if (Eventually([&] { return (got = NodeAddress(id)) == want; }, id + " at " + want)) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << id << " has \"" << got << "\", want \"" << want << "\"";
  }

  api::Network Network(const std::string& id) {
    api::Network n;
    store_.View([&](const ReadTx& tx) { n = *tx.GetNetwork(id); });
    return n;
  }
  api::Service Service(const std::string& id) {
    api::Service s;
    store_.View([&](const ReadTx& tx) { s = *tx.GetService(id); });
    return s;
  }
  api::Task Task(const std::string& id) {
    api::Task t;
    store_.View([&](const ReadTx& tx) { t = *tx.GetTask(id); });
    return t;
  }

  ::testing::AssertionResult Eventually(const std::function<bool()>& cond,
                                        const std::string& what) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline) {
      if (cond()) return ::testing::AssertionSuccess();
      absl::SleepFor(absl::Milliseconds(10));
    }
    return ::testing::AssertionFailure() << "timed out waiting for " << what;
  }
  ::testing::AssertionResult Allocated(const std::string& network_id) {
    return Eventually([&] { return NetworkAllocated(Network(network_id)); },
                      network_id + " allocated");
  }
  ::testing::AssertionResult ServiceReady(const std::string& id) {
    return Eventually(
        [&] {
          api::Service s = Service(id);
          return s.has_endpoint() && google::protobuf::util::MessageDifferencer::Equals(
                                         s.endpoint().spec(), s.spec().endpoint_spec());
        },
        id + " allocated");
  }
  ::testing::AssertionResult Pending(const std::string& id) {
    return Eventually([&] { return Task(id).status().state() == api::TASK_STATE_PENDING; },
                      id + " pending");
  }

  std::vector<std::string> Addresses(const std::string& task_id) {
    std::vector<std::string> out;
    const api::Task t = Task(task_id);
    for (const auto& a : t.networks()) {
      out.push_back(absl::StrCat(a.network().spec().annotations().name(), "=",
                                 a.addresses_size() ? a.addresses(0) : "-"));
    }
    return out;
  }

  store::LocalProposer proposer_;
  store::MemoryStore store_;
  std::unique_ptr<Allocator> allocator_;
};

TEST_F(AllocatorTest, Networks_GetSubnetGatewayAndVniIngressFirst) {
  const std::string web = AddNetwork("web-net");
  const std::string ingress = AddNetwork("ingress", "", /*ingress=*/true);
  const std::string big = AddNetwork("big", "10.20.0.0/16");
  StartAllocator();
  ASSERT_TRUE(Allocated(ingress));
  ASSERT_TRUE(Allocated(web));
  ASSERT_TRUE(Allocated(big));
  api::Network i = Network(ingress);
  EXPECT_EQ(i.ipam().configs(0).subnet(), "10.0.0.0/24");
  EXPECT_EQ(i.ipam().configs(0).gateway(), "10.0.0.1");
  EXPECT_EQ(VniOf(i), kFirstVni);
  EXPECT_EQ(i.driver_state().name(), "overlay");
  api::Network w = Network(web);
  EXPECT_EQ(w.ipam().configs(0).subnet(), "10.0.1.0/24");
  EXPECT_EQ(VniOf(w), kFirstVni + 1);
  EXPECT_EQ(Network(big).ipam().configs(0).subnet(), "10.20.0.0/16");
  EXPECT_EQ(Network(big).ipam().configs(0).gateway(), "10.20.0.1");
}

TEST_F(AllocatorTest, Networks_ConfiguredPoolsAreUsed) {
  Write([&](WriteTx& tx) {
    api::Cluster c = *tx.GetCluster("cluster");
    c.add_default_address_pool("172.28.0.0/16");
    c.set_subnet_size(26);
    tx.UpdateObject(c);
  });
  const std::string ingress = AddNetwork("ingress", "", true);
  const std::string a = AddNetwork("a");
  StartAllocator();
  ASSERT_TRUE(Allocated(a));
  EXPECT_EQ(Network(ingress).ipam().configs(0).subnet(), "172.28.0.0/26");
  EXPECT_EQ(Network(a).ipam().configs(0).subnet(), "172.28.0.64/26");
}

TEST_F(AllocatorTest, Networks_PoolsWrittenAfterStartAreUsed) {
  // swarm init starts the leader's components before it writes the cluster object and the
  // ingress network (one transaction).
  Write([&](WriteTx& tx) { tx.RemoveObject(*tx.GetCluster("cluster")); });
  StartAllocator();
  api::Cluster c;
  c.set_id("cluster2");
  c.mutable_spec()->mutable_annotations()->set_name("default");
  c.add_default_address_pool("172.29.0.0/16");
  c.set_subnet_size(25);
  api::Network n;
  n.set_id("ingress");
  n.mutable_spec()->mutable_annotations()->set_name("ingress");
  n.mutable_spec()->set_ingress(true);
  Write([&](WriteTx& tx) {
    tx.CreateObject(c);
    tx.CreateObject(n);
  });
  ASSERT_TRUE(Allocated("ingress"));
  EXPECT_EQ(Network("ingress").ipam().configs(0).subnet(), "172.29.0.0/25");
}

TEST_F(AllocatorTest, Services_VipsPerNetworkAndPublishedPorts) {
  const std::string ingress = AddNetwork("ingress", "", true);
  const std::string web = AddNetwork("web-net");
  StartAllocator();
  api::ServiceSpec spec = Spec("web", {web});
  Publish(spec, 80, 0);
  Publish(spec, 443, 8443);
  Publish(spec, 22, 2222, api::PUBLISH_MODE_HOST);
  const std::string svc = AddService(spec);
  ASSERT_TRUE(ServiceReady(svc));
  api::Endpoint e = Service(svc).endpoint();
  ASSERT_EQ(e.ports_size(), 3);
  EXPECT_EQ(e.ports(0).published_port(), kFirstDynamicPort);
  EXPECT_EQ(e.ports(1).published_port(), 8443u);
  EXPECT_EQ(e.ports(2).published_port(), 2222u);
  ASSERT_EQ(e.virtual_ips_size(), 2);
  EXPECT_EQ(e.virtual_ips(0).network_id(), ingress);
  EXPECT_EQ(e.virtual_ips(0).addr(), "10.0.0.2/24");
  EXPECT_EQ(e.virtual_ips(1).network_id(), web);
  EXPECT_EQ(e.virtual_ips(1).addr(), "10.0.1.2/24");

  // Tasks get an address on each network, the ingress network first, and the endpoint.
  const std::string t1 = AddTask(svc, 1);
  const std::string t2 = AddTask(svc, 2);
  ASSERT_TRUE(Pending(t1));
  ASSERT_TRUE(Pending(t2));
  std::set<std::vector<std::string>> got = {Addresses(t1), Addresses(t2)};
  EXPECT_EQ(got,
            (std::set<std::vector<std::string>>{{"ingress=10.0.0.3/24", "web-net=10.0.1.3/24"},
                                                {"ingress=10.0.0.4/24", "web-net=10.0.1.4/24"}}));
  api::Task task = Task(t1);
  EXPECT_EQ(task.endpoint().virtual_ips_size(), 2);
  EXPECT_EQ(task.networks(1).network().id(), web);
  EXPECT_EQ(VniOf(task.networks(1).network()), kFirstVni + 1);
  EXPECT_EQ(task.status().message(), "pending task scheduling");
}

TEST_F(AllocatorTest, Services_DnsrrHasNoVip) {
  const std::string web = AddNetwork("web-net");
  StartAllocator();
  api::ServiceSpec spec = Spec("db", {web});
  spec.mutable_endpoint_spec()->set_mode(api::RESOLUTION_MODE_DNSRR);
  const std::string svc = AddService(spec);
  ASSERT_TRUE(ServiceReady(svc));
  EXPECT_EQ(Service(svc).endpoint().virtual_ips_size(), 0);
  const std::string t = AddTask(svc, 1);
  ASSERT_TRUE(Pending(t));
  EXPECT_EQ(Addresses(t), std::vector<std::string>{"web-net=10.0.0.2/24"});
}

TEST_F(AllocatorTest, Services_PortConflictNamesTheHolderAndClearsWhenItGoes) {
  AddNetwork("ingress", "", true);
  StartAllocator();
  api::ServiceSpec a = Spec("api", {});
  Publish(a, 80, 8080);
  const std::string first = AddService(a);
  ASSERT_TRUE(ServiceReady(first));
  // The control API refuses this; a race between two creates can still get here.
  api::ServiceSpec b = Spec("web", {});
  Publish(b, 80, 8080);
  const std::string second = AddService(b);
  const std::string t = AddTask(second, 1);
  ASSERT_TRUE(Eventually(
      [&] {
        return absl::StrContains(Task(t).status().err(),
                                 "port 8080/tcp is already in use by service api");
      },
      "the waiting task to say why"));
  EXPECT_EQ(Task(t).status().state(), api::TASK_STATE_NEW);
  EXPECT_EQ(Task(t).status().message(), "waiting for network allocation");
  Write([&](WriteTx& tx) { tx.RemoveObject(*tx.GetService(first)); });
  ASSERT_TRUE(Pending(t));
  EXPECT_EQ(Service(second).endpoint().ports(0).published_port(), 8080u);
  EXPECT_EQ(Task(t).status().err(), "");
}

TEST_F(AllocatorTest, Services_MissingIngressNetworkIsExplained) {
  StartAllocator();
  api::ServiceSpec a = Spec("api", {});
  Publish(a, 80, 0);
  const std::string svc = AddService(a);
  const std::string t = AddTask(svc, 1);
  ASSERT_TRUE(Eventually(
      [&] { return absl::StrContains(Task(t).status().err(), "has no ingress network"); },
      "the waiting task to say why"));
  const std::string ingress = AddNetwork("ingress", "", true);
  ASSERT_TRUE(Pending(t));
  EXPECT_EQ(Task(t).networks(0).network().id(), ingress);
}

TEST_F(AllocatorTest, Services_UpdateKeepsPortsAndVipsAndReleasesWhatIsDropped) {
  AddNetwork("ingress", "", true);
  const std::string a = AddNetwork("a");
  const std::string b = AddNetwork("b");
  StartAllocator();
  api::ServiceSpec spec = Spec("web", {a});
  Publish(spec, 80, 0);
  Publish(spec, 81, 0);
  const std::string svc = AddService(spec);
  ASSERT_TRUE(ServiceReady(svc));
  const api::Endpoint before = Service(svc).endpoint();
  // Drop port 80 and network a, add network b.
  Change<api::Service>(&ReadTx::GetService, svc, [&](api::Service& s) {
    s.mutable_spec()->mutable_endpoint_spec()->mutable_ports()->DeleteSubrange(0, 1);
    s.mutable_spec()->mutable_task_template()->mutable_networks(0)->set_target(b);
  });
  ASSERT_TRUE(ServiceReady(svc));
  const api::Endpoint after = Service(svc).endpoint();
  ASSERT_EQ(after.ports_size(), 1);
  EXPECT_EQ(after.ports(0).published_port(), before.ports(1).published_port());
  EXPECT_EQ(after.virtual_ips(0).addr(), before.virtual_ips(0).addr());  // ingress VIP kept
  EXPECT_EQ(after.virtual_ips(1).network_id(), b);
  // The dropped port and VIP are free again: another service gets them.
  api::ServiceSpec other = Spec("other", {a});
  Publish(other, 80, 0);
  const std::string o = AddService(other);
  ASSERT_TRUE(ServiceReady(o));
  EXPECT_EQ(Service(o).endpoint().ports(0).published_port(), before.ports(0).published_port());
  EXPECT_EQ(Service(o).endpoint().virtual_ips(1).addr(), before.virtual_ips(1).addr());
}

TEST_F(AllocatorTest, Tasks_ExhaustedNetworkWaitsWithReasonAndResumesWhenATaskEnds) {
  const std::string small = AddNetwork("small", "10.30.0.0/29");  // .2-.6 usable
  StartAllocator();
  const std::string svc = AddService(Spec("web", {small}));  // the VIP takes .2
  ASSERT_TRUE(ServiceReady(svc));
  std::vector<std::string> tasks;
  for (int i = 1; i <= 5; ++i) tasks.push_back(AddTask(svc, i));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Pending(tasks[i]));
  ASSERT_TRUE(Eventually(
      [&] {
        return Task(tasks[4]).status().err() ==
               "network small: no free address in 10.30.0.0/29; remove tasks or services that "
               "use it, or attach to a network with a larger subnet";
      },
      "the fifth task to say why it waits"));
  EXPECT_EQ(Task(tasks[4]).status().state(), api::TASK_STATE_NEW);
  const std::vector<std::string> freed = Addresses(tasks[1]);
  EndTask(tasks[1]);
  ASSERT_TRUE(Pending(tasks[4]));
  EXPECT_EQ(Addresses(tasks[4]), freed);
}

TEST_F(AllocatorTest, Tasks_NoLongerWantedBeforePlacementGiveTheirAddressesBack) {
  const std::string small = AddNetwork("small", "10.30.0.0/29");  // .2-.6 usable
  StartAllocator();
  const std::string svc = AddService(Spec("web", {small}));  // the VIP takes .2
  ASSERT_TRUE(ServiceReady(svc));
  std::vector<std::string> tasks;
  for (int i = 1; i <= 4; ++i) tasks.push_back(AddTask(svc, i));
  for (const std::string& t : tasks) ASSERT_TRUE(Pending(t));
  const std::string waiting = AddTask(svc, 5);
  ASSERT_TRUE(Eventually([&] { return !Task(waiting).status().err().empty(); }, "no address"));
  // Scaled down while pending: never placed, so its address is free at once.
  Change<api::Task>(&ReadTx::GetTask, tasks[0],
                    [](api::Task& t) { t.set_desired_state(api::TASK_STATE_SHUTDOWN); });
  ASSERT_TRUE(Pending(waiting));
}

TEST_F(AllocatorTest, Networks_RemovedNetworkReturnsItsSubnet) {
  const std::string a = AddNetwork("a");
  StartAllocator();
  ASSERT_TRUE(Allocated(a));
  const std::string subnet = Network(a).ipam().configs(0).subnet();
  Write([&](WriteTx& tx) { tx.RemoveObject(*tx.GetNetwork(a)); });
  const std::string b = AddNetwork("b");
  ASSERT_TRUE(Allocated(b));
  EXPECT_EQ(Network(b).ipam().configs(0).subnet(), subnet);
  EXPECT_EQ(VniOf(Network(b)), kFirstVni);
}

TEST_F(AllocatorTest, Networks_OverlappingExplicitSubnetStaysUnallocatedAndTasksSayWhy) {
  const std::string a = AddNetwork("a", "10.40.0.0/16");
  StartAllocator();
  ASSERT_TRUE(Allocated(a));
  const std::string b = AddNetwork("b", "10.40.1.0/24");
  const std::string svc = AddService(Spec("web", {}));
  ASSERT_TRUE(ServiceReady(svc));
  Change<api::Service>(&ReadTx::GetService, svc, [&](api::Service& s) {
    s.mutable_spec()->mutable_task_template()->add_networks()->set_target(b);
    s.mutable_spec()->mutable_endpoint_spec()->set_mode(api::RESOLUTION_MODE_DNSRR);
  });
  const std::string t = AddTask(svc, 1);
  ASSERT_TRUE(Eventually(
      [&] {
        return absl::StrContains(Task(t).status().err(), "overlaps network a (10.40.0.0/16)");
      },
      "the task to say why it waits"));
  EXPECT_FALSE(NetworkAllocated(Network(b)));
  // Once a goes, b fits.
  Write([&](WriteTx& tx) { tx.RemoveObject(*tx.GetNetwork(a)); });
  ASSERT_TRUE(Pending(t));
  EXPECT_EQ(Addresses(t), std::vector<std::string>{"b=10.40.1.2/24"});
}

TEST_F(AllocatorTest, Restart_RebuildsFromTheStoreAndNeverHandsOutAnAddressTwice) {
  AddNetwork("ingress", "", true);
  const std::string web = AddNetwork("web-net");
  StartAllocator();
  api::ServiceSpec spec = Spec("web", {web});
  Publish(spec, 80, 0);
  const std::string svc = AddService(spec);
  ASSERT_TRUE(ServiceReady(svc));
  std::vector<std::string> tasks;
  for (int i = 1; i <= 6; ++i) tasks.push_back(AddTask(svc, i));
  for (const std::string& t : tasks) ASSERT_TRUE(Pending(t));
  EndTask(tasks[2]);  // its addresses are free for the next leader
  ASSERT_TRUE(Eventually(
      [&] { return Task(tasks[2]).status().state() == api::TASK_STATE_SHUTDOWN; }, "task ended"));
  const std::vector<std::string> freed = Addresses(tasks[2]);
  StopAllocator();

  // A new leader: a network, a service and tasks that arrive meanwhile.
  const std::string late = AddNetwork("late");
  api::ServiceSpec spec2 = Spec("api", {web});
  Publish(spec2, 80, 0);
  const std::string svc2 = AddService(spec2);
  StartAllocator();
  ASSERT_TRUE(Allocated(late));
  EXPECT_EQ(Network(late).ipam().configs(0).subnet(), "10.0.2.0/24");
  ASSERT_TRUE(ServiceReady(svc2));
  EXPECT_EQ(Service(svc2).endpoint().ports(0).published_port(), kFirstDynamicPort + 1);
  EXPECT_EQ(Service(svc).endpoint().ports(0).published_port(), kFirstDynamicPort);
  std::set<std::string> seen;
  for (const std::string& t : tasks) {
    if (t == tasks[2]) continue;
    for (const std::string& a : Addresses(t)) EXPECT_TRUE(seen.insert(a).second) << a;
  }
  const api::Service s1 = Service(svc), s2 = Service(svc2);
  for (const api::VirtualIP& v : s1.endpoint().virtual_ips()) seen.insert(v.addr());
  for (const api::VirtualIP& v : s2.endpoint().virtual_ips()) {
    EXPECT_TRUE(seen.insert(v.addr()).second) << v.addr();
  }
  const std::string more = AddTask(svc, 7);
  ASSERT_TRUE(Pending(more));
  for (const std::string& a : Addresses(more)) EXPECT_TRUE(seen.insert(a).second) << a;
}

TEST_F(AllocatorTest, Batches_ManyTasksInTransactionsOfAtMostABatch) {
  const std::string big = AddNetwork("big", "10.50.0.0/20");
  StartAllocator();
  const std::string svc = AddService(Spec("web", {big}));
  ASSERT_TRUE(ServiceReady(svc));
  StopAllocator();
  const int kTasks = 2500;
  Write([&](WriteTx& tx) {
    api::Service s = *tx.GetService(svc);
    for (int i = 1; i <= kTasks; ++i) {
      api::Task t;
      t.set_id(absl::StrCat("t", i));
      t.set_service_id(svc);
      *t.mutable_spec() = s.spec().task_template();
      t.set_desired_state(api::TASK_STATE_RUNNING);
      t.mutable_status()->set_state(api::TASK_STATE_NEW);
      tx.CreateObject(t);
    }
  });
  auto watch = store_.WatchFrom(store_.last_index());
  ASSERT_TRUE(watch.ok());
  StartAllocator();
  ASSERT_TRUE(Eventually(
      [&] {
        int pending = 0;
        store_.View([&](const ReadTx& tx) {
          for (const auto& t : tx.ListTasks())
            pending += t->status().state() == api::TASK_STATE_PENDING;
        });
        return pending == kTasks;
      },
      "every task pending"));
  std::set<std::string> seen;
  store_.View([&](const ReadTx& tx) {
    for (const auto& t : tx.ListTasks()) {
      ASSERT_EQ(t->networks_size(), 1);
      EXPECT_TRUE(seen.insert(t->networks(0).addresses(0)).second);
    }
  });
  // Writes of one transaction share an index: no index carries more than a batch.
  std::map<uint64_t, int> per_index;
  for (auto e = (*watch)->Next(absl::ZeroDuration()); e.has_value();
       e = (*watch)->Next(absl::ZeroDuration())) {
    ++per_index[e->index];
  }
  for (const auto& [index, n] : per_index) EXPECT_LE(n, static_cast<int>(Allocator::kBatch));
  EXPECT_GE(per_index.size(), 3u);
}

TEST_F(AllocatorTest, Nodes_EveryNodeGetsAnIngressAddressOnceTheIngressNetworkIsAllocated) {
  // Any role, availability or state: the routing mesh answers on every node.
  AddNode("n1", api::NODE_ROLE_MANAGER);
  AddNode("n2", api::NODE_ROLE_WORKER, api::NODE_STATE_DOWN);
  Change<api::Node>(&ReadTx::GetNode, "n2", [](api::Node& n) {
    n.mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  });
  const std::string web = AddNetwork("web-net");
  StartAllocator();
  ASSERT_TRUE(Allocated(web));
  // No ingress network: nothing to attach to.
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(NodeAddress("n1"), "");

  const std::string ingress = AddNetwork("ingress", "", /*ingress=*/true);
  ASSERT_TRUE(NodeAddressIs("n1", "ingress=10.0.1.2/24"));
  ASSERT_TRUE(NodeAddressIs("n2", "ingress=10.0.1.3/24"));
  const api::Node n1 = Node("n1");
  ASSERT_EQ(n1.attachments_size(), 1);
  EXPECT_EQ(n1.attachments(0).network().id(), ingress);
  EXPECT_TRUE(NetworkAllocated(n1.attachments(0).network()));
  EXPECT_EQ(VniOf(n1.attachments(0).network()), kFirstVni + 1);

  // A node that joins later, and a service's VIP and task: all distinct on the one subnet.
  AddNode("n3");
  ASSERT_TRUE(NodeAddressIs("n3", "ingress=10.0.1.4/24"));
  api::ServiceSpec spec = Spec("web", {});
  Publish(spec, 80, 0);
  const std::string svc = AddService(spec);
  ASSERT_TRUE(ServiceReady(svc));
  EXPECT_EQ(Service(svc).endpoint().virtual_ips(0).addr(), "10.0.1.5/24");
  const std::string t = AddTask(svc, 1);
  ASSERT_TRUE(Pending(t));
  EXPECT_EQ(Addresses(t), std::vector<std::string>{"ingress=10.0.1.6/24"});
  // Node updates keep the address.
  Change<api::Node>(&ReadTx::GetNode, "n3",
                    [](api::Node& n) { n.mutable_status()->set_addr("192.168.0.3"); });
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(NodeAddress("n3"), "ingress=10.0.1.4/24");
}

TEST_F(AllocatorTest, Nodes_AddressesSurviveARebuildAndReturnWhenTheNodeIsRemoved) {
  AddNetwork("ingress", "", true);
  AddNode("n1");
  AddNode("n2");
  StartAllocator();
  ASSERT_TRUE(NodeAddressIs("n1", "ingress=10.0.0.2/24"));
  ASSERT_TRUE(NodeAddressIs("n2", "ingress=10.0.0.3/24"));
  api::ServiceSpec spec = Spec("web", {});
  Publish(spec, 80, 0);
  const std::string svc = AddService(spec);  // VIP .4
  const std::string t = AddTask(svc, 1);     // .5
  ASSERT_TRUE(Pending(t));
  const uint64_t n1_version = Node("n1").meta().version().index();
  StopAllocator();

  // A new leader: the same addresses, nothing rewritten, and new ones do not collide.
  AddNode("n3");
  StartAllocator();
  ASSERT_TRUE(NodeAddressIs("n3", "ingress=10.0.0.6/24"));
  EXPECT_EQ(NodeAddress("n1"), "ingress=10.0.0.2/24");
  EXPECT_EQ(NodeAddress("n2"), "ingress=10.0.0.3/24");
  EXPECT_EQ(Node("n1").meta().version().index(), n1_version);

  // node rm: the address is free again, and the next node gets it.
  RemoveNode("n2");
  AddNode("n4");
  ASSERT_TRUE(NodeAddressIs("n4", "ingress=10.0.0.3/24"));
}

TEST_F(AllocatorTest, Nodes_IngressNetworkRemovedDropsTheAttachmentsAndANewOneGivesNewOnes) {
  const std::string old_ingress = AddNetwork("ingress", "", true);
  AddNode("n1");
  StartAllocator();
  ASSERT_TRUE(NodeAddressIs("n1", "ingress=10.0.0.2/24"));
  Write([&](WriteTx& tx) { tx.RemoveObject(*tx.GetNetwork(old_ingress)); });
  ASSERT_TRUE(NodeAddressIs("n1", ""));

  api::Network n;
  n.set_id("net-ingress2");
  n.mutable_spec()->mutable_annotations()->set_name("mesh");
  n.mutable_spec()->set_ingress(true);
  n.mutable_spec()->mutable_ipam()->add_configs()->set_subnet("10.9.0.0/24");
  Write([&](WriteTx& tx) { tx.CreateObject(n); });
  ASSERT_TRUE(NodeAddressIs("n1", "mesh=10.9.0.2/24"));
  EXPECT_EQ(Node("n1").attachments(0).network().id(), "net-ingress2");
}

TEST_F(AllocatorTest, Nodes_ExhaustedIngressPoolWaitsAndResumesWhenANodeGoes) {
  AddNetwork("ingress", "10.30.0.0/29", true);  // .2-.6 usable
  for (int i = 1; i <= 6; ++i) AddNode(absl::StrCat("n", i));
  StartAllocator();
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(
        NodeAddressIs(absl::StrCat("n", i), absl::StrCat("ingress=10.30.0.", i + 1, "/29")));
  }
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(NodeAddress("n6"), "");
  RemoveNode("n3");
  ASSERT_TRUE(NodeAddressIs("n6", "ingress=10.30.0.4/29"));
}

}  // namespace
}  // namespace swarm::manager::allocator

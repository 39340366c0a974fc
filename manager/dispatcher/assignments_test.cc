#include "manager/dispatcher/assignments.h"

#include <set>

#include "gtest/gtest.h"

namespace swarm::manager::dispatcher {
namespace {

using store::ReadTx;
using store::WriteTx;

api::Task NewTask(const std::string& id, const std::string& node, api::TaskState state,
                  std::vector<std::string> secrets = {}, std::vector<std::string> configs = {}) {
  api::Task t;
  t.set_id(id);
  t.set_node_id(node);
  t.mutable_status()->set_state(state);
  t.set_desired_state(api::TASK_STATE_RUNNING);
  api::ContainerSpec* c = t.mutable_spec()->mutable_container();
  c->set_image("nginx");
  for (const std::string& s : secrets) c->add_secrets()->set_secret_id(s);
  for (const std::string& s : configs) c->add_configs()->set_config_id(s);
  return t;
}

// What a message says, as "u:task:t1", "r:secret:s1", in message order.
std::vector<std::string> Changes(const api::AssignmentsMessage& m) {
  std::vector<std::string> out;
  for (const api::AssignmentChange& c : m.changes()) {
    std::string s = c.action() == api::ASSIGNMENT_ACTION_UPDATE ? "u:" : "r:";
    const api::Assignment& a = c.assignment();
    if (a.has_task()) s += "task:" + a.task().id();
    if (a.has_secret()) s += "secret:" + a.secret().id();
    if (a.has_config()) s += "config:" + a.config().id();
    if (a.has_network()) s += "network:" + a.network().id();
    if (a.has_endpoint_record()) {
      s += "endpoint:" + a.endpoint_record().network_id() + "/" + a.endpoint_record().task_id();
    }
    out.push_back(s);
  }
  return out;
}

class AssignmentSetTest : public ::testing::Test {
 protected:
  AssignmentSetTest() : store_(&proposer_, &clock_) {
    proposer_.set_store(&store_);
    Write([](WriteTx& tx) {
      for (const char* id : {"s1", "s2"}) {
        api::Secret s;
        s.set_id(id);
        s.mutable_spec()->mutable_annotations()->set_name(id);
        s.mutable_spec()->set_data(std::string("data of ") + id);
        tx.CreateObject(s);
      }
      api::Config c;
      c.set_id("c1");
      c.mutable_spec()->mutable_annotations()->set_name("c1");
      tx.CreateObject(c);
    });
  }

  void Write(const std::function<void(WriteTx&)>& fn) {
    ASSERT_TRUE(store_
                    .Update([&](WriteTx& tx) {
                      fn(tx);
                      return absl::OkStatus();
                    })
                    .ok());
  }
  void UpdateTask(const std::string& id, const std::function<void(api::Task&)>& fn) {
    Write([&](WriteTx& tx) {
      api::Task t = *tx.GetTask(id);
      fn(t);
      tx.UpdateObject(t);
    });
  }
  std::optional<api::AssignmentsMessage> Next(const std::string& node = "n1") {
    std::optional<api::AssignmentsMessage> m;
    store_.View([&](const ReadTx& tx) { m = set_.Next(tx, node); });
    return m;
  }

  FakeClock clock_;
  store::LocalProposer proposer_;
  store::MemoryStore store_;
  AssignmentSet set_;
};

TEST_F(AssignmentSetTest, First_IsCompleteWithTasksAndWhatTheyUse) {
  Write([](WriteTx& tx) {
    tx.CreateObject(NewTask("t1", "n1", api::TASK_STATE_ASSIGNED, {"s1"}, {"c1"}));
    tx.CreateObject(NewTask("t2", "n1", api::TASK_STATE_RUNNING, {"s1"}));
    // Not this node's, or not assigned yet.
    tx.CreateObject(NewTask("t3", "n2", api::TASK_STATE_ASSIGNED, {"s2"}));
    tx.CreateObject(NewTask("t4", "n1", api::TASK_STATE_PENDING, {"s2"}));
  });
  auto m = Next();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->type(), api::ASSIGNMENTS_TYPE_COMPLETE);
  EXPECT_EQ(m->applies_to(), "");
  EXPECT_EQ(m->results_in(), "1");
  EXPECT_EQ(Changes(*m),
            (std::vector<std::string>{"u:secret:s1", "u:config:c1", "u:task:t1", "u:task:t2"}));
  // Secrets carry their data: the agent needs it to run the task.
  EXPECT_EQ(m->changes(0).assignment().secret().spec().data(), "data of s1");
  EXPECT_TRUE(set_.HasSecret("s1"));
  EXPECT_FALSE(set_.HasSecret("s2"));
  EXPECT_TRUE(set_.HasConfig("c1"));
}

TEST_F(AssignmentSetTest, EmptyNode_GetsAnEmptyCompleteSet) {
  auto m = Next();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->type(), api::ASSIGNMENTS_TYPE_COMPLETE);
  EXPECT_TRUE(m->changes().empty());
  EXPECT_FALSE(Next().has_value());
}

TEST_F(AssignmentSetTest, Changes_AreIncrementalAndChained) {
  ASSERT_TRUE(Next().has_value());
  // Assigned.
  Write(
      [](WriteTx& tx) { tx.CreateObject(NewTask("t1", "n1", api::TASK_STATE_ASSIGNED, {"s1"})); });
  auto m = Next();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->type(), api::ASSIGNMENTS_TYPE_INCREMENTAL);
  EXPECT_EQ(m->applies_to(), "1");
  EXPECT_EQ(m->results_in(), "2");
  EXPECT_EQ(Changes(*m), (std::vector<std::string>{"u:secret:s1", "u:task:t1"}));
  EXPECT_FALSE(Next().has_value());

  // Updated: the task only (the secret did not change).
  UpdateTask("t1", [](api::Task& t) { t.set_desired_state(api::TASK_STATE_SHUTDOWN); });
  m = Next();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->applies_to(), "2");
  EXPECT_EQ(Changes(*m), (std::vector<std::string>{"u:task:t1"}));
  EXPECT_EQ(m->changes(0).assignment().task().desired_state(), api::TASK_STATE_SHUTDOWN);

  // Removed from the store: the task, then the secret nobody uses any more; keys only.
  Write([](WriteTx& tx) {
    api::Task t;
    t.set_id("t1");
    tx.RemoveObject(t);
  });
  m = Next();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Changes(*m), (std::vector<std::string>{"r:task:t1", "r:secret:s1"}));
  EXPECT_EQ(m->changes(0).assignment().task().ByteSizeLong(), std::string("t1").size() + 2);
  EXPECT_FALSE(set_.HasSecret("s1"));
}

TEST_F(AssignmentSetTest, TaskMovedAway_IsRemoved) {
  Write([](WriteTx& tx) { tx.CreateObject(NewTask("t1", "n1", api::TASK_STATE_ASSIGNED)); });
  ASSERT_TRUE(Next().has_value());
  UpdateTask("t1", [](api::Task& t) { t.set_node_id("n2"); });
  auto m = Next();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Changes(*m), (std::vector<std::string>{"r:task:t1"}));
}

TEST_F(AssignmentSetTest, SecretShared_StaysWhileReferencedAndWithdrawnOnceDone) {
  Write([](WriteTx& tx) {
    tx.CreateObject(NewTask("t1", "n1", api::TASK_STATE_RUNNING, {"s1"}));
    tx.CreateObject(NewTask("t2", "n1", api::TASK_STATE_RUNNING, {"s1", "s2"}));
  });
  ASSERT_TRUE(Next().has_value());
  // t2 ends: s2 is no longer needed, s1 still is (t1). The finished task itself stays.
  UpdateTask("t2", [](api::Task& t) { t.mutable_status()->set_state(api::TASK_STATE_COMPLETE); });
  auto m = Next();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Changes(*m), (std::vector<std::string>{"u:task:t2", "r:secret:s2"}));
  EXPECT_TRUE(set_.HasSecret("s1"));
  EXPECT_FALSE(set_.HasSecret("s2"));
}

TEST_F(AssignmentSetTest, SecretUpdated_IsSentAgain) {
  Write([](WriteTx& tx) { tx.CreateObject(NewTask("t1", "n1", api::TASK_STATE_RUNNING, {"s1"})); });
  ASSERT_TRUE(Next().has_value());
  Write([](WriteTx& tx) {
    api::Secret s = *tx.GetSecret("s1");
    (*s.mutable_spec()->mutable_annotations()->mutable_labels())["k"] = "v";
    tx.UpdateObject(s);
  });
  auto m = Next();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Changes(*m), (std::vector<std::string>{"u:secret:s1"}));
}

TEST_F(AssignmentSetTest, ChangesBetweenCalls_Coalesce) {
  ASSERT_TRUE(Next().has_value());
  // Assigned and removed again before the next message: nothing to say.
  Write([](WriteTx& tx) { tx.CreateObject(NewTask("t1", "n1", api::TASK_STATE_ASSIGNED)); });
  Write([](WriteTx& tx) {
    api::Task t;
    t.set_id("t1");
    tx.RemoveObject(t);
  });
  EXPECT_FALSE(Next().has_value());
}

}  // namespace
}  // namespace swarm::manager::dispatcher

namespace swarm::manager::dispatcher {
namespace {

// A task on network "net" (10.0.1.0/24) with the given address.
api::Task Attached(const std::string& id, const std::string& node, api::TaskState state,
                   const std::string& ip) {
  api::Task t = NewTask(id, node, state);
  t.set_service_id("svc");
  t.mutable_annotations()->set_name("web.1." + id);
  api::NetworkAttachment* a = t.add_networks();
  a->mutable_network()->set_id("net");
  a->add_addresses(ip);
  a->add_aliases("db");
  return t;
}

class EndpointRecordsTest : public AssignmentSetTest {
 protected:
  EndpointRecordsTest() {
    Write([](WriteTx& tx) {
      api::Network n;
      n.set_id("net");
      n.mutable_spec()->mutable_annotations()->set_name("backend");
      tx.CreateObject(n);
      api::Service s;
      s.set_id("svc");
      s.mutable_spec()->mutable_annotations()->set_name("web");
      api::VirtualIP* vip = s.mutable_endpoint()->add_virtual_ips();
      vip->set_network_id("net");
      vip->set_addr("10.0.1.2/24");
      tx.CreateObject(s);
      for (const char* id : {"n1", "n2", "n3"}) {
        api::Node node;
        node.set_id(id);
        node.mutable_status()->set_addr(std::string("192.168.0.") + (id + 1));
        tx.CreateObject(node);
      }
    });
  }
  const api::EndpointRecord* Record(const api::AssignmentsMessage& m, const std::string& task) {
    for (const api::AssignmentChange& c : m.changes()) {
      if (c.assignment().has_endpoint_record() &&
          c.assignment().endpoint_record().task_id() == task) {
        return &c.assignment().endpoint_record();
      }
    }
    return nullptr;
  }
};

TEST_F(EndpointRecordsTest, Next_CarriesThePeersOfTheNodesNetworks) {
  Write([](WriteTx& tx) {
    tx.CreateObject(Attached("t1", "n1", api::TASK_STATE_RUNNING, "10.0.1.3/24"));
    tx.CreateObject(Attached("t2", "n2", api::TASK_STATE_STARTING, "10.0.1.4/24"));
    // Not a live endpoint: ended, or not placed yet.
    tx.CreateObject(Attached("t3", "n2", api::TASK_STATE_FAILED, "10.0.1.5/24"));
    tx.CreateObject(Attached("t4", "", api::TASK_STATE_PENDING, "10.0.1.6/24"));
  });
  auto m = Next("n1");
  ASSERT_TRUE(m.has_value());
  // The network first (the agent needs its VNI and subnet), then its endpoints, then the task.
  EXPECT_EQ(Changes(*m), (std::vector<std::string>{"u:network:net", "u:endpoint:net/t1",
                                                   "u:endpoint:net/t2", "u:task:t1"}));
  EXPECT_EQ(m->changes(0).assignment().network().spec().annotations().name(), "backend");
  const api::EndpointRecord* r = Record(*m, "t2");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->ip(), "10.0.1.4/24");
  EXPECT_EQ(r->mac(), "02:42:0a:00:01:04");
  EXPECT_EQ(r->node_id(), "n2");
  EXPECT_EQ(r->node_addr(), "192.168.0.2");
  EXPECT_EQ(r->service_name(), "web");
  EXPECT_EQ(r->task_name(), "web.1.t2");
  EXPECT_EQ(r->virtual_ip(), "10.0.1.2/24");
  EXPECT_EQ(std::vector<std::string>(r->aliases().begin(), r->aliases().end()),
            std::vector<std::string>{"db"});
  // Starting: known to the forwarding tables, kept out of DNS and load balancing.
  EXPECT_TRUE(r->service_disabled());
  EXPECT_FALSE(Record(*m, "t1")->service_disabled());
  EXPECT_TRUE(set_.HasNetwork("net"));

  // A node with no task on the network takes no part in it.
  AssignmentSet other;
  std::optional<api::AssignmentsMessage> m3;
  store_.View([&](const ReadTx& tx) { m3 = other.Next(tx, "n3"); });
  ASSERT_TRUE(m3.has_value());
  EXPECT_TRUE(Changes(*m3).empty());
  EXPECT_FALSE(other.HasNetwork("net"));
}

TEST_F(EndpointRecordsTest, Next_FollowsPeersAsTheyChangeAndGo) {
  Write([](WriteTx& tx) {
    tx.CreateObject(Attached("t1", "n1", api::TASK_STATE_RUNNING, "10.0.1.3/24"));
    tx.CreateObject(Attached("t2", "n2", api::TASK_STATE_STARTING, "10.0.1.4/24"));
  });
  ASSERT_TRUE(Next("n1").has_value());
  EXPECT_FALSE(Next("n1").has_value());

  UpdateTask("t2", [](api::Task& t) { t.mutable_status()->set_state(api::TASK_STATE_RUNNING); });
  auto m = Next("n1");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Changes(*m), std::vector<std::string>{"u:endpoint:net/t2"});
  EXPECT_FALSE(Record(*m, "t2")->service_disabled());

  // The peer's node moves to another address.
  Write([](WriteTx& tx) {
    api::Node n = *tx.GetNode("n2");
    n.mutable_status()->set_addr("192.168.0.22");
    tx.UpdateObject(n);
  });
  m = Next("n1");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Record(*m, "t2")->node_addr(), "192.168.0.22");
  EXPECT_TRUE(set_.HasNodeEndpoints("n2"));

  // The peer ends: its record goes (only the key is sent).
  UpdateTask("t2", [](api::Task& t) { t.mutable_status()->set_state(api::TASK_STATE_FAILED); });
  m = Next("n1");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Changes(*m), std::vector<std::string>{"r:endpoint:net/t2"});
  EXPECT_FALSE(set_.HasNodeEndpoints("n2"));

  // The network object changes: sent again, alone.
  Write([](WriteTx& tx) {
    api::Network n = *tx.GetNetwork("net");
    (*n.mutable_spec()->mutable_annotations()->mutable_labels())["k"] = "v";
    tx.UpdateObject(n);
  });
  m = Next("n1");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Changes(*m), std::vector<std::string>{"u:network:net"});

  // The node's own task ends: it leaves the network, and its own record goes with it, then the
  // network (key only).
  UpdateTask("t1", [](api::Task& t) { t.mutable_status()->set_state(api::TASK_STATE_COMPLETE); });
  m = Next("n1");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Changes(*m),
            (std::vector<std::string>{"u:task:t1", "r:endpoint:net/t1", "r:network:net"}));
  EXPECT_EQ(m->changes(2).assignment().network().ByteSizeLong(), std::string("net").size() + 2);
  EXPECT_FALSE(set_.HasNetwork("net"));
}

// The routing mesh: "ingress" (10.0.0.0/24) with the sandboxes of n1 (.2) and n2 (.3); n3 has
// no ingress address yet. Service front publishes 80 as 30000, VIP .4; its task t1 runs on n2
// (.5).
class IngressRecordsTest : public EndpointRecordsTest {
 protected:
  IngressRecordsTest() {
    Write([](WriteTx& tx) {
      api::Network in;
      in.set_id("ingress");
      in.mutable_spec()->mutable_annotations()->set_name("ingress");
      in.mutable_spec()->set_ingress(true);
      (*in.mutable_driver_state()->mutable_options())["vni"] = "4096";
      in.mutable_ipam()->add_configs()->set_subnet("10.0.0.0/24");
      tx.CreateObject(in);
      for (const auto& [id, ip] :
           {std::pair("n1", "10.0.0.2/24"), std::pair("n2", "10.0.0.3/24")}) {
        api::Node n = *tx.GetNode(id);
        api::NetworkAttachment* a = n.add_attachments();
        *a->mutable_network() = in;
        a->add_addresses(ip);
        tx.UpdateObject(n);
      }
      api::Service web;
      web.set_id("web");
      web.mutable_spec()->mutable_annotations()->set_name("front");
      api::PortConfig* p = web.mutable_endpoint()->add_ports();
      p->set_target_port(80);
      p->set_published_port(30000);
      p->set_publish_mode(api::PUBLISH_MODE_INGRESS);
      api::VirtualIP* vip = web.mutable_endpoint()->add_virtual_ips();
      vip->set_network_id("ingress");
      vip->set_addr("10.0.0.4/24");
      tx.CreateObject(web);
      api::Task t = NewTask("t1", "n2", api::TASK_STATE_RUNNING);
      t.set_service_id("web");
      api::NetworkAttachment* a = t.add_networks();
      a->mutable_network()->set_id("ingress");
      a->add_addresses("10.0.0.5/24");
      tx.CreateObject(t);
    });
  }
  void SetIngressAddress(const std::string& node, const std::string& ip) {
    Write([&](WriteTx& tx) {
      api::Node n = *tx.GetNode(node);
      n.clear_attachments();
      if (!ip.empty()) {
        api::NetworkAttachment* a = n.add_attachments();
        a->mutable_network()->set_id("ingress");
        a->add_addresses(ip);
      }
      tx.UpdateObject(n);
    });
  }
};

TEST_F(IngressRecordsTest, NodeWithoutTasks_GetsTheIngressNetworkEverySandboxAndTheIngressTasks) {
  auto m = Next("n1");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Changes(*m),
            (std::vector<std::string>{"u:network:ingress", "u:endpoint:ingress/lb-n1",
                                      "u:endpoint:ingress/lb-n2", "u:endpoint:ingress/t1"}));
  const api::Network& net = m->changes(0).assignment().network();
  EXPECT_TRUE(net.spec().ingress());
  EXPECT_EQ(net.ipam().configs(0).subnet(), "10.0.0.0/24");
  const api::EndpointRecord* lb = Record(*m, "lb-n2");
  ASSERT_NE(lb, nullptr);
  EXPECT_TRUE(lb->load_balancer());
  EXPECT_EQ(lb->network_id(), "ingress");
  EXPECT_EQ(lb->ip(), "10.0.0.3/24");
  EXPECT_EQ(lb->mac(), "02:42:0a:00:00:03");
  EXPECT_EQ(lb->node_id(), "n2");
  EXPECT_EQ(lb->node_addr(), "192.168.0.2");
  EXPECT_EQ(lb->task_name(), "");
  EXPECT_EQ(lb->service_id(), "");
  EXPECT_FALSE(lb->service_disabled());
  EXPECT_TRUE(Record(*m, "lb-n1")->load_balancer());
  const api::EndpointRecord* task = Record(*m, "t1");
  ASSERT_NE(task, nullptr);
  EXPECT_FALSE(task->load_balancer());
  EXPECT_EQ(task->ip(), "10.0.0.5/24");
  EXPECT_EQ(task->virtual_ip(), "10.0.0.4/24");
  ASSERT_EQ(task->ingress_ports_size(), 1);
  EXPECT_EQ(task->ingress_ports(0).published_port(), 30000u);
  EXPECT_TRUE(set_.HasNetwork("ingress"));
  EXPECT_TRUE(set_.HasNodeEndpoints("n2"));

  // A node without an ingress address (and no task) takes no part in it.
  AssignmentSet n3;
  std::optional<api::AssignmentsMessage> m3;
  store_.View([&](const ReadTx& tx) { m3 = n3.Next(tx, "n3"); });
  ASSERT_TRUE(m3.has_value());
  EXPECT_TRUE(Changes(*m3).empty());
  EXPECT_FALSE(n3.HasNetwork("ingress"));
}

TEST_F(IngressRecordsTest, NodeWithTasksOnAnotherNetwork_GetsBothNetworksNetworksFirst) {
  Write([](WriteTx& tx) {
    tx.CreateObject(Attached("t2", "n1", api::TASK_STATE_RUNNING, "10.0.1.3/24"));
  });
  auto m = Next("n1");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Changes(*m),
            (std::vector<std::string>{"u:network:ingress", "u:network:net",
                                      "u:endpoint:ingress/lb-n1", "u:endpoint:ingress/lb-n2",
                                      "u:endpoint:ingress/t1", "u:endpoint:net/t2", "u:task:t2"}));
}

TEST_F(IngressRecordsTest, Sandboxes_FollowNodeAddressesAttachmentsAndRemovals) {
  ASSERT_TRUE(Next("n1").has_value());
  EXPECT_FALSE(Next("n1").has_value());

  // A node changes address: its sandbox's record and its tasks' records carry it.
  Write([](WriteTx& tx) {
    api::Node n = *tx.GetNode("n2");
    n.mutable_status()->set_addr("192.168.0.22");
    tx.UpdateObject(n);
  });
  auto m = Next("n1");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Changes(*m),
            (std::vector<std::string>{"u:endpoint:ingress/lb-n2", "u:endpoint:ingress/t1"}));
  EXPECT_EQ(Record(*m, "lb-n2")->node_addr(), "192.168.0.22");
  EXPECT_EQ(Record(*m, "t1")->node_addr(), "192.168.0.22");

  // Another node gets its ingress address: one more sandbox. The node itself joins the mesh.
  SetIngressAddress("n3", "10.0.0.6/24");
  m = Next("n1");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Changes(*m), std::vector<std::string>{"u:endpoint:ingress/lb-n3"});
  EXPECT_EQ(Record(*m, "lb-n3")->ip(), "10.0.0.6/24");
  AssignmentSet n3;
  std::optional<api::AssignmentsMessage> m3;
  store_.View([&](const ReadTx& tx) { m3 = n3.Next(tx, "n3"); });
  ASSERT_TRUE(m3.has_value());
  EXPECT_EQ(Changes(*m3).size(), 5u);  // the network, three sandboxes, t1

  // The task ends and its node is removed (node rm): their records go, keys only, in order.
  UpdateTask("t1", [](api::Task& t) { t.mutable_status()->set_state(api::TASK_STATE_FAILED); });
  Write([](WriteTx& tx) { tx.RemoveObject(*tx.GetNode("n2")); });
  m = Next("n1");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Changes(*m),
            (std::vector<std::string>{"r:endpoint:ingress/lb-n2", "r:endpoint:ingress/t1"}));
  EXPECT_FALSE(set_.HasNodeEndpoints("n2"));

  // The ingress network changes: sent again.
  Write([](WriteTx& tx) {
    api::Network n = *tx.GetNetwork("ingress");
    (*n.mutable_spec()->mutable_annotations()->mutable_labels())["k"] = "v";
    tx.UpdateObject(n);
  });
  m = Next("n1");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Changes(*m), std::vector<std::string>{"u:network:ingress"});

  // The node's own ingress address is dropped: it leaves the mesh, records before network.
  SetIngressAddress("n1", "");
  m = Next("n1");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Changes(*m),
            (std::vector<std::string>{"r:endpoint:ingress/lb-n1", "r:endpoint:ingress/lb-n3",
                                      "r:network:ingress"}));
  EXPECT_FALSE(set_.HasNetwork("ingress"));
}

TEST_F(IngressRecordsTest, IngressNetworkRemoved_WithdrawsItsRecordsThenTheNetwork) {
  ASSERT_TRUE(Next("n1").has_value());
  Write([](WriteTx& tx) { tx.RemoveObject(*tx.GetNetwork("ingress")); });
  auto m = Next("n1");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Changes(*m),
            (std::vector<std::string>{"r:endpoint:ingress/lb-n1", "r:endpoint:ingress/lb-n2",
                                      "r:endpoint:ingress/t1", "r:network:ingress"}));
}

TEST(EndpointMacTest, EndpointMac_IsDerivedFromTheAddress) {
  EXPECT_EQ(EndpointMac("10.0.1.5/24"), "02:42:0a:00:01:05");
  EXPECT_EQ(EndpointMac("172.31.255.254"), "02:42:ac:1f:ff:fe");
  EXPECT_EQ(EndpointMac("fe80::1/64"), "");
  EXPECT_EQ(EndpointMac("nonsense"), "");
}

}  // namespace
}  // namespace swarm::manager::dispatcher

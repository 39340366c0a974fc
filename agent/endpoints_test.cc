#include "agent/endpoints.h"

#include "gtest/gtest.h"

namespace swarm::agent {
namespace {

void Add(api::AssignmentsMessage& m, const std::string& network, const std::string& task,
         const std::string& ip, bool remove = false) {
  api::AssignmentChange* c = m.add_changes();
  c->set_action(remove ? api::ASSIGNMENT_ACTION_REMOVE : api::ASSIGNMENT_ACTION_UPDATE);
  api::EndpointRecord* r = c->mutable_assignment()->mutable_endpoint_record();
  r->set_network_id(network);
  r->set_task_id(task);
  if (!remove) r->set_ip(ip);
}

void AddNetwork(api::AssignmentsMessage& m, const std::string& network, uint32_t vni,
                bool remove = false) {
  api::AssignmentChange* c = m.add_changes();
  c->set_action(remove ? api::ASSIGNMENT_ACTION_REMOVE : api::ASSIGNMENT_ACTION_UPDATE);
  api::Network* n = c->mutable_assignment()->mutable_network();
  n->set_id(network);
  if (!remove) (*n->mutable_driver_state()->mutable_options())["vni"] = std::to_string(vni);
}

// What the listener heard, as "net[vni]: ip ip" per call ("net:" without a network object).
class EndpointTableTest : public ::testing::Test {
 protected:
  EndpointTable table_{[this](const EndpointTable::NetworkState& state) {
    std::string s = state.network_id;
    if (state.network) s += "[" + state.network->driver_state().options().at("vni") + "]";
    s += ":";
    for (const api::EndpointRecord& r : state.records) s += " " + r.ip();
    heard_.push_back(s);
  }};
  std::vector<std::string> heard_;
};

TEST_F(EndpointTableTest, Apply_TellsEachChangedNetworkOnceWithItsRecords) {
  api::AssignmentsMessage complete;
  complete.set_type(api::ASSIGNMENTS_TYPE_COMPLETE);
  Add(complete, "net-a", "t1", "10.0.1.3/24");
  Add(complete, "net-a", "t2", "10.0.1.4/24");
  Add(complete, "net-b", "t1", "10.0.2.3/24");
  complete.add_changes()->mutable_assignment()->mutable_task()->set_id("t1");  // not ours
  table_.Apply(complete);
  EXPECT_EQ(heard_,
            (std::vector<std::string>{"net-a: 10.0.1.3/24 10.0.1.4/24", "net-b: 10.0.2.3/24"}));
  EXPECT_EQ(table_.Networks(), (std::vector<std::string>{"net-a", "net-b"}));

  heard_.clear();
  api::AssignmentsMessage inc;
  inc.set_type(api::ASSIGNMENTS_TYPE_INCREMENTAL);
  Add(inc, "net-a", "t3", "10.0.1.5/24");
  Add(inc, "net-a", "t1", "", /*remove=*/true);
  Add(inc, "net-b", "t1", "", /*remove=*/true);
  table_.Apply(inc);
  // net-b is left with nothing: the node no longer takes part in it.
  EXPECT_EQ(heard_, (std::vector<std::string>{"net-a: 10.0.1.4/24 10.0.1.5/24", "net-b:"}));
  EXPECT_EQ(table_.Networks(), std::vector<std::string>{"net-a"});
  ASSERT_EQ(table_.State("net-a").records.size(), 2u);
  EXPECT_EQ(table_.State("net-a").records[1].task_id(), "t3");
}

TEST_F(EndpointTableTest, Apply_CompleteReplacesEverything) {
  api::AssignmentsMessage first;
  first.set_type(api::ASSIGNMENTS_TYPE_COMPLETE);
  Add(first, "net-a", "t1", "10.0.1.3/24");
  table_.Apply(first);
  heard_.clear();
  // A new session: its COMPLETE message no longer names net-a.
  api::AssignmentsMessage again;
  again.set_type(api::ASSIGNMENTS_TYPE_COMPLETE);
  Add(again, "net-c", "t9", "10.0.3.3/24");
  table_.Apply(again);
  EXPECT_EQ(heard_, (std::vector<std::string>{"net-a:", "net-c: 10.0.3.3/24"}));
  EXPECT_TRUE(table_.State("net-a").records.empty());
}

TEST_F(EndpointTableTest, Apply_CarriesTheNetworkObjectUntilItIsRemoved) {
  api::AssignmentsMessage complete;
  complete.set_type(api::ASSIGNMENTS_TYPE_COMPLETE);
  AddNetwork(complete, "ingress", 4096);  // a node without tasks still gets the network
  table_.Apply(complete);
  EXPECT_EQ(heard_, std::vector<std::string>{"ingress[4096]:"});
  EXPECT_EQ(table_.Networks(), std::vector<std::string>{"ingress"});

  heard_.clear();
  api::AssignmentsMessage inc;
  inc.set_type(api::ASSIGNMENTS_TYPE_INCREMENTAL);
  Add(inc, "ingress", "lb-n1", "10.0.0.2/24");
  table_.Apply(inc);
  EXPECT_EQ(heard_, std::vector<std::string>{"ingress[4096]: 10.0.0.2/24"});

  heard_.clear();
  api::AssignmentsMessage gone;
  gone.set_type(api::ASSIGNMENTS_TYPE_INCREMENTAL);
  Add(gone, "ingress", "lb-n1", "", /*remove=*/true);
  AddNetwork(gone, "ingress", 0, /*remove=*/true);
  table_.Apply(gone);
  EXPECT_EQ(heard_, std::vector<std::string>{"ingress:"});
  EXPECT_TRUE(table_.Networks().empty());
}

TEST_F(EndpointTableTest, Apply_RemovingWhatIsNotThereIsHarmless) {
  api::AssignmentsMessage inc;
  inc.set_type(api::ASSIGNMENTS_TYPE_INCREMENTAL);
  Add(inc, "net-x", "t1", "", /*remove=*/true);
  table_.Apply(inc);
  EXPECT_EQ(heard_, std::vector<std::string>{"net-x:"});
  EXPECT_TRUE(table_.Networks().empty());
}

}  // namespace
}  // namespace swarm::agent

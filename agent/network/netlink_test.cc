#include "agent/network/netlink.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "agent/network/netns.h"
#include "agent/network/testing/test_hosts.h"

namespace swarm::agent::network {
namespace {

using ::testing::HasSubstr;
using testing::Ip;

class NetlinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto hosts = testing::TestHosts::Create();
    ASSERT_TRUE(hosts.ok()) << hosts.status();
    hosts_ = std::move(*hosts);
    auto ns = hosts_->NewNamespace("scratch");
    ASSERT_TRUE(ns.ok()) << ns.status();
    ns_ = *ns;
    auto nl = Netlink::OpenAt(ns_);
    ASSERT_TRUE(nl.ok()) << nl.status();
    nl_ = std::move(*nl);
  }

  std::unique_ptr<testing::TestHosts> hosts_;
  std::string ns_;
  std::unique_ptr<Netlink> nl_;
};

TEST_F(NetlinkTest, CreateBridgeVxlanVeth_LinksHaveTheirTypesAndSettings) {
  MacAddress mac = {0x02, 0x42, 10, 0, 0, 1};
  ASSERT_TRUE(nl_->CreateBridge("br0", 1400, mac).ok());
  VxlanOptions vx;
  vx.name = "vx0";
  vx.vni = 4097;
  vx.mtu = 1400;
  ASSERT_TRUE(nl_->CreateVxlan(vx).ok());
  ASSERT_TRUE(nl_->SetMaster("vx0", "br0").ok());
  VethOptions veth;
  veth.name = "va";
  veth.peer_name = "vb";
  veth.mtu = 1400;
  veth.master = "br0";
  veth.peer_mac = MacAddress{0x02, 0x42, 10, 0, 0, 2};
  ASSERT_TRUE(nl_->CreateVeth(veth).ok());

  auto br = nl_->GetLink("br0");
  ASSERT_TRUE(br.ok()) << br.status();
  EXPECT_EQ(br->type, "bridge");
  EXPECT_EQ(br->mtu, 1400);
  EXPECT_EQ(br->mac, mac);
  EXPECT_TRUE(br->up);
  auto vx0 = nl_->GetLink("vx0");
  ASSERT_TRUE(vx0.ok());
  EXPECT_EQ(vx0->type, "vxlan");
  EXPECT_EQ(vx0->master, br->index);
  auto va = nl_->GetLink("va");
  ASSERT_TRUE(va.ok());
  EXPECT_EQ(va->type, "veth");
  EXPECT_EQ(va->master, br->index);
  auto vb = nl_->GetLink("vb");
  ASSERT_TRUE(vb.ok());
  EXPECT_EQ(FormatMac(vb->mac), "02:42:0a:00:00:02");
  EXPECT_EQ(vb->mtu, 1400);
}

TEST_F(NetlinkTest, CreateVxlan_SameVniTwiceSaysWhatAndWhy) {
  VxlanOptions vx;
  vx.name = "vx0";
  vx.vni = 4097;
  ASSERT_TRUE(nl_->CreateVxlan(vx).ok());
  vx.name = "vx1";
  absl::Status s = nl_->CreateVxlan(vx);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("creating vxlan device vx1 (VNI 4097): "));
}

TEST_F(NetlinkTest, DeleteLink_MissingIsNotFound) {
  absl::Status s = nl_->DeleteLink("nope0");
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("deleting link nope0"));
}

TEST_F(NetlinkTest, CreateVeth_PeerInAnotherNamespaceIsConfiguredThere) {
  auto other = hosts_->NewNamespace("other");
  ASSERT_TRUE(other.ok());
  auto fd = OpenNetns(*other);
  ASSERT_TRUE(fd.ok());
  VethOptions veth;
  veth.name = "host0";
  veth.peer_name = "eth0";
  veth.peer_netns_fd = fd->get();
  veth.mtu = 1450;
  ASSERT_TRUE(nl_->CreateVeth(veth).ok());
  EXPECT_TRUE(absl::IsNotFound(nl_->GetLink("eth0").status()));

  auto there = Netlink::OpenAt(*other);
  ASSERT_TRUE(there.ok());
  auto eth0 = (*there)->GetLink("eth0");
  ASSERT_TRUE(eth0.ok()) << eth0.status();
  EXPECT_TRUE(eth0->up);
  EXPECT_EQ(eth0->mtu, 1450);
  ASSERT_TRUE((*there)->AddAddress("eth0", Ip("10.1.0.2"), 24).ok());
  auto addrs = (*there)->ListAddresses("eth0");
  ASSERT_TRUE(addrs.ok());
  std::vector<std::string> v4;  // the kernel adds an IPv6 link-local address of its own
  for (const AddressEntry& a : *addrs) {
    if (a.ip.family == AF_INET) v4.push_back(absl::StrCat(FormatIp(a.ip), "/", a.prefix));
  }
  EXPECT_THAT(v4, ::testing::ElementsAre("10.1.0.2/24"));

  // Moving the host end over too, then setting it up and its MTU there.
  ASSERT_TRUE(nl_->MoveLinkToNetns("host0", fd->get()).ok());
  EXPECT_TRUE(absl::IsNotFound(nl_->GetLink("host0").status()));
  ASSERT_TRUE((*there)->SetMtu("host0", 1300).ok());
  ASSERT_TRUE((*there)->SetMac("host0", MacAddress{0x02, 0, 0, 0, 0, 9}).ok());
  auto host0 = (*there)->GetLink("host0");
  ASSERT_TRUE(host0.ok());
  EXPECT_EQ(host0->mtu, 1300);
  EXPECT_EQ(FormatMac(host0->mac), "02:00:00:00:00:09");
  ASSERT_TRUE((*there)->SetLinkUp("host0", false).ok());
  EXPECT_FALSE((*there)->GetLink("host0")->up);
}

TEST_F(NetlinkTest, FdbAndNeighbors_AddListDelete) {
  VxlanOptions vx;
  vx.name = "vx0";
  vx.vni = 5000;
  vx.local = Ip("192.168.77.9");
  ASSERT_TRUE(nl_->CreateVxlan(vx).ok());
  MacAddress mac = MacFromIpv4(Ip("10.2.0.5"));
  EXPECT_EQ(FormatMac(mac), "02:42:0a:02:00:05");
  ASSERT_TRUE(nl_->AddFdb("vx0", mac, Ip("192.168.77.2")).ok());
  // Appending the same entry again is not an error (the agent may repeat itself).
  ASSERT_TRUE(nl_->AddFdb("vx0", mac, Ip("192.168.77.2")).ok());
  ASSERT_TRUE(nl_->AddNeighbor("vx0", Ip("10.2.0.5"), mac).ok());

  auto fdb = nl_->ListFdb("vx0");
  ASSERT_TRUE(fdb.ok()) << fdb.status();
  ASSERT_EQ(fdb->size(), 1u);
  EXPECT_EQ((*fdb)[0].mac, mac);
  ASSERT_TRUE((*fdb)[0].dst.has_value());
  EXPECT_EQ(FormatIp(*(*fdb)[0].dst), "192.168.77.2");
  EXPECT_TRUE((*fdb)[0].permanent);
  auto neigh = nl_->ListNeighbors("vx0");
  ASSERT_TRUE(neigh.ok()) << neigh.status();
  ASSERT_EQ(neigh->size(), 1u);
  EXPECT_EQ(FormatIp((*neigh)[0].ip), "10.2.0.5");
  EXPECT_EQ((*neigh)[0].mac, mac);
  EXPECT_TRUE((*neigh)[0].permanent);

  ASSERT_TRUE(nl_->DeleteFdb("vx0", mac, Ip("192.168.77.2")).ok());
  ASSERT_TRUE(nl_->DeleteNeighbor("vx0", Ip("10.2.0.5")).ok());
  EXPECT_TRUE(nl_->ListFdb("vx0")->empty());
  EXPECT_TRUE(nl_->ListNeighbors("vx0")->empty());
  absl::Status again = nl_->DeleteNeighbor("vx0", Ip("10.2.0.5"));
  EXPECT_FALSE(again.ok());
  EXPECT_THAT(again.message(), HasSubstr("deleting neighbour 10.2.0.5 from vx0: "));
}

TEST_F(NetlinkTest, AddDefaultRoute_GoesThroughTheGateway) {
  VethOptions veth;
  veth.name = "va";
  veth.peer_name = "vb";
  ASSERT_TRUE(nl_->CreateVeth(veth).ok());
  ASSERT_TRUE(nl_->AddAddress("va", Ip("172.30.0.2"), 16).ok());
  ASSERT_TRUE(nl_->AddDefaultRoute("va", Ip("172.30.0.1")).ok());
  absl::Status twice = nl_->AddDefaultRoute("va", Ip("172.30.0.1"));
  EXPECT_TRUE(absl::IsAlreadyExists(twice)) << twice;
}

}  // namespace
}  // namespace swarm::agent::network

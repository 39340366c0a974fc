#include "agent/network/gateway_bridge.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/network/netlink.h"
#include "agent/network/netns.h"
#include "agent/network/nftables.h"
#include "agent/network/overlay.h"
#include "agent/network/testing/test_hosts.h"

namespace swarm::agent::network {
namespace {

using testing::Cidr;
using ::testing::HasSubstr;
using testing::Ip;
using ::testing::Not;

// Host A runs the gateway bridge and a container; host B, across the underlay, plays the
// outside world and has no route to the bridge's subnet.
class GatewayBridgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto hosts = testing::TestHosts::Create();
    ASSERT_TRUE(hosts.ok()) << hosts.status();
    hosts_ = std::move(*hosts);
    config_.host_netns_path = hosts_->host(0);
    auto gw = GatewayBridge::Setup(config_);
    ASSERT_TRUE(gw.ok()) << gw.status();
    gw_ = std::move(*gw);
    auto ctr = hosts_->NewNamespace("ctr");
    ASSERT_TRUE(ctr.ok()) << ctr.status();
    container_ = *ctr;
  }

  std::string HostTables(int host) {
    auto fd = OpenNetns(hosts_->host(host));
    EXPECT_TRUE(fd.ok());
    auto out = RunNft(fd->get(), "list tables", "listing tables");
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : "";
  }

  std::unique_ptr<testing::TestHosts> hosts_;
  GatewayBridgeConfig config_;
  std::unique_ptr<GatewayBridge> gw_;
  std::string container_;
};

TEST_F(GatewayBridgeTest, Setup_BridgeWithGatewayAndOurMasqueradeTable) {
  auto nl = Netlink::OpenAt(hosts_->host(0));
  ASSERT_TRUE(nl.ok());
  auto br = (*nl)->GetLink("swarmd_gwbridge");
  ASSERT_TRUE(br.ok()) << br.status();
  EXPECT_EQ(br->type, "bridge");
  EXPECT_TRUE(br->up);
  auto fd = OpenNetns(hosts_->host(0));
  ASSERT_TRUE(fd.ok());
  auto table = RunNft(fd->get(), "list table ip swarmd", "listing");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_THAT(*table,
              HasSubstr("ip saddr 172.18.0.0/16 oifname != \"swarmd_gwbridge\" masquerade"));
  // Only host A got it.
  EXPECT_THAT(HostTables(1), Not(HasSubstr("swarmd")));
}

TEST_F(GatewayBridgeTest, Attach_ContainerReachesTheOutsideThroughMasquerade) {
  auto ip = gw_->Attach(container_);
  ASSERT_TRUE(ip.ok()) << ip.status();
  EXPECT_EQ(FormatIp(*ip), "172.18.0.2");
  auto echo = testing::TcpEcho(container_, hosts_->host(1), Ip("0.0.0.0"), Ip("192.168.77.2"), 8080,
                               "egress");
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(echo->echoed, "egress");
  // The server saw host A's address, not the container's: the connection was masqueraded.
  EXPECT_EQ(FormatIp(echo->seen_source), "192.168.77.1");
}

TEST_F(GatewayBridgeTest, Attach_AddressesInOrderAndFreedOnDetach) {
  auto other = hosts_->NewNamespace("ctr2");
  ASSERT_TRUE(other.ok());
  auto a = gw_->Attach(container_);
  auto b = gw_->Attach(*other);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(FormatIp(*a), "172.18.0.2");
  EXPECT_EQ(FormatIp(*b), "172.18.0.3");
  auto nl = Netlink::OpenAt(container_);
  ASSERT_TRUE(nl.ok());
  auto eth1 = (*nl)->GetLink("eth1");
  ASSERT_TRUE(eth1.ok());
  EXPECT_EQ(FormatMac(eth1->mac), "02:42:ac:12:00:02");

  ASSERT_TRUE(gw_->Detach(*a).ok());
  EXPECT_TRUE(absl::IsNotFound((*nl)->GetLink("eth1").status()));
  EXPECT_TRUE(gw_->Detach(*a).ok());  // already gone is fine
  auto again = gw_->Attach(container_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(FormatIp(*again), "172.18.0.2");
}

TEST_F(GatewayBridgeTest, Setup_AgainAdoptsTheAttachedTasks) {
  auto a = gw_->Attach(container_);
  ASSERT_TRUE(a.ok());
  gw_.reset();  // the agent restarts
  auto gw = GatewayBridge::Setup(config_);
  ASSERT_TRUE(gw.ok()) << gw.status();
  auto other = hosts_->NewNamespace("ctr2");
  ASSERT_TRUE(other.ok());
  auto b = (*gw)->Attach(*other);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(FormatIp(*b), "172.18.0.3");
  // The first container still has egress.
  auto echo = testing::TcpEcho(container_, hosts_->host(1), Ip("0.0.0.0"), Ip("192.168.77.2"), 8081,
                               "still");
  ASSERT_TRUE(echo.ok()) << echo.status();
}

TEST_F(GatewayBridgeTest, Teardown_LeavesNoLinkOrTable) {
  ASSERT_TRUE(gw_->Attach(container_).ok());
  ASSERT_TRUE(gw_->Teardown().ok());
  auto nl = Netlink::OpenAt(hosts_->host(0));
  ASSERT_TRUE(nl.ok());
  auto links = (*nl)->ListLinks();
  ASSERT_TRUE(links.ok());
  std::vector<std::string> names;
  for (const LinkInfo& l : *links) names.push_back(l.name);
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("lo", "ul0"));
  EXPECT_THAT(HostTables(0), Not(HasSubstr("swarmd")));
  auto ctr = Netlink::OpenAt(container_);
  ASSERT_TRUE(ctr.ok());
  EXPECT_TRUE(absl::IsNotFound((*ctr)->GetLink("eth1").status()));
  EXPECT_TRUE(gw_->Teardown().ok());
}

// What a task on an overlay network gets: eth0 on the overlay, eth1 on the gateway bridge
// with the default route; both work at once.
TEST_F(GatewayBridgeTest, WithOverlay_TaskTalksToPeersAndToTheOutside) {
  OverlayNetwork net{
      .id = "net1", .vni = 4200, .subnet = Cidr("10.20.0.0/24"), .gateway = Ip("10.20.0.1")};
  std::unique_ptr<Overlay> ov[2];
  std::string peer;
  for (int i = 0; i < 2; ++i) {
    auto o = Overlay::Create(hosts_->underlay(i), net);
    ASSERT_TRUE(o.ok()) << o.status();
    ov[i] = std::move(*o);
  }
  auto p = hosts_->NewNamespace("peer");
  ASSERT_TRUE(p.ok());
  peer = *p;
  ASSERT_TRUE(ov[0]->Attach({.netns_path = container_, .ip = Ip("10.20.0.2")}).ok());
  ASSERT_TRUE(ov[1]->Attach({.netns_path = peer, .ip = Ip("10.20.0.3")}).ok());
  std::vector<Endpoint> eps = {
      {Ip("10.20.0.2"), MacFromIpv4(Ip("10.20.0.2")), hosts_->underlay_address(0)},
      {Ip("10.20.0.3"), MacFromIpv4(Ip("10.20.0.3")), hosts_->underlay_address(1)}};
  ASSERT_TRUE(ov[0]->SetPeers(eps).ok());
  ASSERT_TRUE(ov[1]->SetPeers(eps).ok());
  ASSERT_TRUE(gw_->Attach(container_).ok());

  auto ping = testing::Ping(container_, Ip("10.20.0.3"));
  ASSERT_TRUE(ping.ok());
  EXPECT_TRUE(*ping);
  auto echo = testing::TcpEcho(container_, hosts_->host(1), Ip("0.0.0.0"), Ip("192.168.77.2"), 8082,
                               "both");
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(FormatIp(echo->seen_source), "192.168.77.1");
  for (auto& o : ov) ASSERT_TRUE(o->Remove().ok());
}

}  // namespace
}  // namespace swarm::agent::network

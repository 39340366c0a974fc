#include "agent/network/overlay.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <fstream>

#include "agent/network/netlink.h"
#include "agent/network/netns.h"
#include "agent/network/testing/test_hosts.h"

namespace swarm::agent::network {
namespace {

using testing::Cidr;
using ::testing::HasSubstr;
using testing::Ip;

constexpr char kNetworkId[] = "k3j2h1g0f9e8d7c6b5a4";

OverlayNetwork Network() {
  return OverlayNetwork{
      .id = kNetworkId, .vni = 4097, .subnet = Cidr("10.10.0.0/24"), .gateway = Ip("10.10.0.1")};
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// Two hosts, each with the overlay and one container attached: 10.10.0.2 on host A and
// 10.10.0.3 on host B, each knowing the other through SetPeers.
class OverlayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    own_links_ = OwnLinks();
    auto hosts = testing::TestHosts::Create();
    ASSERT_TRUE(hosts.ok()) << hosts.status();
    hosts_ = std::move(*hosts);
    for (int i = 0; i < 2; ++i) {
      auto ov = Overlay::Create(hosts_->underlay(i), Network());
      ASSERT_TRUE(ov.ok()) << ov.status();
      overlay_[i] = std::move(*ov);
      auto ctr = hosts_->NewNamespace(i == 0 ? "ctr-a" : "ctr-b");
      ASSERT_TRUE(ctr.ok()) << ctr.status();
      container_[i] = *ctr;
      absl::Status s = overlay_[i]->Attach({.netns_path = container_[i], .ip = ip_[i]});
      ASSERT_TRUE(s.ok()) << s;
    }
    for (int i = 0; i < 2; ++i) {
      absl::Status s = overlay_[i]->SetPeers(AllPeers());
      ASSERT_TRUE(s.ok()) << s;
    }
  }

  // Nothing of the test's reaches the namespace the test runs in.
  void TearDown() override { EXPECT_EQ(OwnLinks(), own_links_); }

  static std::vector<std::string> OwnLinks() {
    std::vector<std::string> names;
    auto nl = Netlink::Open();
    EXPECT_TRUE(nl.ok());
    auto links = (*nl)->ListLinks();
    EXPECT_TRUE(links.ok());
    for (const LinkInfo& l : *links) names.push_back(l.name);
    return names;
  }

  std::vector<Endpoint> AllPeers() const {
    std::vector<Endpoint> peers;
    for (int i = 0; i < 2; ++i) {
      peers.push_back({ip_[i], MacFromIpv4(ip_[i]), hosts_->underlay_address(i)});
    }
    return peers;
  }

  std::unique_ptr<Netlink> OverlayNetlink(int i) {
    auto nl = Netlink::OpenAt(overlay_[i]->netns_path());
    EXPECT_TRUE(nl.ok()) << nl.status();
    return nl.ok() ? std::move(*nl) : nullptr;
  }

  std::vector<std::string> own_links_;
  std::unique_ptr<testing::TestHosts> hosts_;
  std::unique_ptr<Overlay> overlay_[2];
  std::string container_[2];
  IpAddress ip_[2] = {Ip("10.10.0.2"), Ip("10.10.0.3")};
};

TEST_F(OverlayTest, Create_NamespaceBridgeAndVxlanWithUnderlayMtuMinus50) {
  EXPECT_EQ(overlay_[0]->netns_path(),
            hosts_->underlay(0).run_dir + "/ov-" + std::string(kNetworkId).substr(0, 12));
  EXPECT_TRUE(IsNetnsMount(overlay_[0]->netns_path()));
  EXPECT_EQ(overlay_[0]->mtu(), 1450);
  auto nl = OverlayNetlink(0);
  auto br = nl->GetLink(Overlay::kBridge);
  ASSERT_TRUE(br.ok()) << br.status();
  EXPECT_EQ(br->type, "bridge");
  EXPECT_EQ(br->mtu, 1450);
  auto vx = nl->GetLink(Overlay::kVxlan);
  ASSERT_TRUE(vx.ok()) << vx.status();
  EXPECT_EQ(vx->type, "vxlan");
  EXPECT_EQ(vx->master, br->index);
  EXPECT_TRUE(vx->up);
  auto addrs = nl->ListAddresses(Overlay::kBridge);
  ASSERT_TRUE(addrs.ok());
  bool gateway = false;
  for (const AddressEntry& a : *addrs) {
    gateway |= FormatIp(a.ip) == "10.10.0.1" && a.prefix == 24;
  }
  EXPECT_TRUE(gateway);
  // Bridged overlay traffic skips the IP netfilter hooks (when br_netfilter is there at all).
  auto fd = OpenNetns(overlay_[0]->netns_path());
  ASSERT_TRUE(fd.ok());
  std::string value = "absent";
  ASSERT_TRUE(RunInNetns(fd->get(), [&] {
                std::ifstream in("/proc/sys/net/bridge/bridge-nf-call-iptables");
                if (in) std::getline(in, value);
                return absl::OkStatus();
              }).ok());
  EXPECT_THAT(value, ::testing::AnyOf("0", "absent"));
}

TEST_F(OverlayTest, Create_VxlanSocketListensOnUdp4789InTheHostNamespace) {
  // The VXLAN device lives in the overlay namespace, but its UDP socket is the host's: the
  // port is taken there (and only there).
  auto taken = [](const std::string& ns) {
    auto s = testing::SocketIn(ns, AF_INET, SOCK_DGRAM);
    EXPECT_TRUE(s.ok()) << s.status();
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(4789);
    return bind(s->get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 && errno == EADDRINUSE;
  };
  EXPECT_TRUE(taken(hosts_->host(0)));
  EXPECT_TRUE(taken(hosts_->host(1)));
  EXPECT_FALSE(taken(overlay_[0]->netns_path()));
  EXPECT_FALSE(taken(container_[0]));
}

TEST_F(OverlayTest, Overlays_AnotherNetworkWithTheSameSubnetIsIsolated) {
  OverlayNetwork other = Network();
  other.id = "othernetwork1";
  other.vni = 4098;
  auto ov = Overlay::Create(hosts_->underlay(1), other);
  ASSERT_TRUE(ov.ok()) << ov.status();
  auto stranger = hosts_->NewNamespace("stranger");
  ASSERT_TRUE(stranger.ok());
  // The same address as B's container, on host B, but on VNI 4098.
  ASSERT_TRUE((*ov)->Attach({.netns_path = *stranger, .ip = Ip("10.10.0.5")}).ok());
  ASSERT_TRUE((*ov)->SetPeers(AllPeers()).ok());  // even if it were told about A
  auto ping = testing::Ping(*stranger, ip_[0], 600);
  ASSERT_TRUE(ping.ok());
  EXPECT_FALSE(*ping) << "VNI 4098 reached a container on VNI 4097";
  // Network 4097 still works.
  auto ok = testing::Ping(container_[0], ip_[1]);
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(*ok);
  ASSERT_TRUE((*ov)->Remove().ok());
}

TEST_F(OverlayTest, Attach_ContainerGetsEth0WithAddressMacAndMtu) {
  auto nl = Netlink::OpenAt(container_[1]);
  ASSERT_TRUE(nl.ok());
  auto eth0 = (*nl)->GetLink("eth0");
  ASSERT_TRUE(eth0.ok()) << eth0.status();
  EXPECT_EQ(FormatMac(eth0->mac), "02:42:0a:0a:00:03");
  EXPECT_EQ(eth0->mtu, 1450);
  EXPECT_TRUE(eth0->up);
  auto addrs = (*nl)->ListAddresses("eth0");
  ASSERT_TRUE(addrs.ok());
  bool found = false;
  for (const AddressEntry& a : *addrs) found |= FormatIp(a.ip) == "10.10.0.3" && a.prefix == 24;
  EXPECT_TRUE(found);
  EXPECT_THAT(overlay_[1]->AttachedAddresses(), ::testing::ElementsAre("10.10.0.3"));
}

TEST_F(OverlayTest, Containers_PingAndTalkTcpAcrossHostsOverVxlan) {
  auto ab = testing::Ping(container_[0], ip_[1]);
  ASSERT_TRUE(ab.ok()) << ab.status();
  EXPECT_TRUE(*ab) << "no ICMP echo reply from 10.10.0.3";
  auto ba = testing::Ping(container_[1], ip_[0]);
  ASSERT_TRUE(ba.ok()) << ba.status();
  EXPECT_TRUE(*ba) << "no ICMP echo reply from 10.10.0.2";

  auto echo = testing::TcpEcho(container_[0], container_[1], ip_[1], ip_[1], 7000, "hello");
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(echo->echoed, "hello");
  EXPECT_EQ(FormatIp(echo->seen_source), "10.10.0.2");  // no NAT on the overlay
  // A payload larger than the overlay MTU: segments fit the 1450 bytes the path allows.
  std::string big(200000, 'x');
  auto big_echo = testing::TcpEcho(container_[1], container_[0], ip_[0], ip_[0], 7001, big);
  ASSERT_TRUE(big_echo.ok()) << big_echo.status();
  EXPECT_EQ(big_echo->echoed, big);
}

// The static entries on an overlay's VXLAN device, dumped through netlink, as text.
std::vector<std::string> StaticFdb(Netlink& nl) {
  std::vector<std::string> out;
  auto fdb = nl.ListFdb(Overlay::kVxlan);
  EXPECT_TRUE(fdb.ok()) << fdb.status();
  if (!fdb.ok()) return out;
  for (const FdbEntry& e : *fdb) {
    if (e.permanent) out.push_back(FormatMac(e.mac) + " dst " + (e.dst ? FormatIp(*e.dst) : "-"));
  }
  return out;
}

std::vector<std::string> StaticNeighbors(Netlink& nl) {
  std::vector<std::string> out;
  auto neigh = nl.ListNeighbors(Overlay::kVxlan);
  EXPECT_TRUE(neigh.ok()) << neigh.status();
  if (!neigh.ok()) return out;
  for (const NeighborEntry& e : *neigh) {
    if (e.permanent) out.push_back(FormatIp(e.ip) + " lladdr " + FormatMac(e.mac));
  }
  return out;
}

TEST_F(OverlayTest, SetPeers_ProgramsRemotePeersOnlyAndRemovingOneRemovesItsEntries) {
  auto nl = OverlayNetlink(0);
  // Host A's own container is reached through the bridge: only B's container is listed.
  EXPECT_THAT(StaticFdb(*nl), ::testing::ElementsAre("02:42:0a:0a:00:03 dst 192.168.77.2"));
  EXPECT_THAT(StaticNeighbors(*nl), ::testing::ElementsAre("10.10.0.3 lladdr 02:42:0a:0a:00:03"));

  // Setting the same peers again changes nothing.
  ASSERT_TRUE(overlay_[0]->SetPeers(AllPeers()).ok());
  EXPECT_EQ(StaticFdb(*nl).size(), 1u);
  EXPECT_EQ(StaticNeighbors(*nl).size(), 1u);

  // B's container goes: its entries go, and A no longer reaches it.
  ASSERT_TRUE(overlay_[0]->SetPeers({AllPeers()[0]}).ok());
  EXPECT_THAT(StaticFdb(*nl), ::testing::IsEmpty());
  EXPECT_THAT(StaticNeighbors(*nl), ::testing::IsEmpty());
  auto ping = testing::Ping(container_[0], ip_[1], 600);
  ASSERT_TRUE(ping.ok());
  EXPECT_FALSE(*ping);
}

TEST_F(OverlayTest, SetPeers_PeerOnAnotherNodeMovesItsFdbEntry) {
  std::vector<Endpoint> peers = AllPeers();
  peers[1].node = Ip("192.168.77.3");
  ASSERT_TRUE(overlay_[0]->SetPeers(peers).ok());
  auto nl = OverlayNetlink(0);
  EXPECT_THAT(StaticFdb(*nl), ::testing::ElementsAre("02:42:0a:0a:00:03 dst 192.168.77.3"));
  // Back, and traffic flows again.
  ASSERT_TRUE(overlay_[0]->SetPeers(AllPeers()).ok());
  auto ping = testing::Ping(container_[0], ip_[1]);
  ASSERT_TRUE(ping.ok());
  EXPECT_TRUE(*ping);
}

TEST_F(OverlayTest, Detach_RemovesTheContainersInterface) {
  ASSERT_TRUE(overlay_[1]->Detach(ip_[1]).ok());
  auto nl = Netlink::OpenAt(container_[1]);
  ASSERT_TRUE(nl.ok());
  EXPECT_TRUE(absl::IsNotFound((*nl)->GetLink("eth0").status()));
  EXPECT_TRUE(overlay_[1]->AttachedAddresses().empty());
  // Detaching again is fine; attaching again works.
  EXPECT_TRUE(overlay_[1]->Detach(ip_[1]).ok());
  ASSERT_TRUE(overlay_[1]->Attach({.netns_path = container_[1], .ip = ip_[1]}).ok());
  auto ping = testing::Ping(container_[0], ip_[1]);
  ASSERT_TRUE(ping.ok());
  EXPECT_TRUE(*ping);
}

TEST_F(OverlayTest, Attach_RejectsAnAddressOutsideTheSubnet) {
  absl::Status s = overlay_[0]->Attach({.netns_path = container_[0], .ip = Ip("10.11.0.2")});
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
}

TEST_F(OverlayTest, Remove_LeavesNoNamespaceMountOrLinkAndTheVniIsFreeAgain) {
  const std::string path = overlay_[0]->netns_path();
  ASSERT_TRUE(overlay_[0]->Remove().ok());
  EXPECT_FALSE(Exists(path));
  EXPECT_FALSE(IsNetnsMount(path));
  // The container's end went with the pair at once.
  auto ctr = Netlink::OpenAt(container_[0]);
  ASSERT_TRUE(ctr.ok());
  EXPECT_TRUE(absl::IsNotFound((*ctr)->GetLink("eth0").status()));
  // The host namespace has only what the test put there.
  auto host = Netlink::OpenAt(hosts_->host(0));
  ASSERT_TRUE(host.ok());
  auto links = (*host)->ListLinks();
  ASSERT_TRUE(links.ok());
  std::vector<std::string> names;
  for (const LinkInfo& l : *links) names.push_back(l.name);
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("lo", "ul0"));
  EXPECT_TRUE(overlay_[0]->Remove().ok());  // idempotent
  EXPECT_TRUE(absl::IsFailedPrecondition(overlay_[0]->SetPeers({})));

  // The same VNI on the same host at once: the old VXLAN socket is gone.
  auto again = Overlay::Create(hosts_->underlay(0), Network());
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_TRUE((*again)->Attach({.netns_path = container_[0], .ip = ip_[0]}).ok());
  ASSERT_TRUE((*again)->SetPeers(AllPeers()).ok());
  auto ping = testing::Ping(container_[0], ip_[1]);
  ASSERT_TRUE(ping.ok());
  EXPECT_TRUE(*ping);
}

TEST_F(OverlayTest, CleanupStale_RemovesWhatACrashedAgentLeft) {
  const std::string path = overlay_[1]->netns_path();
  overlay_[1].reset();  // the agent dies; the kernel state stays
  EXPECT_TRUE(IsNetnsMount(path));
  auto removed = Overlay::CleanupStale(hosts_->underlay(1));
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 1);
  EXPECT_FALSE(Exists(path));
  auto ctr = Netlink::OpenAt(container_[1]);
  ASSERT_TRUE(ctr.ok());
  EXPECT_TRUE(absl::IsNotFound((*ctr)->GetLink("eth0").status()));
  EXPECT_EQ(*Overlay::CleanupStale(hosts_->underlay(1)), 0);
  // A file without a mount (a crash between creating and mounting) goes too.
  FILE* f = std::fopen((hosts_->underlay(1).run_dir + "/ov-half").c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  EXPECT_EQ(*Overlay::CleanupStale(hosts_->underlay(1)), 1);
}

TEST_F(OverlayTest, Create_FailingHalfwayLeavesNothing) {
  OverlayNetwork dup = Network();
  dup.id = "dup";  // another network with a VNI host A already uses
  auto ov = Overlay::Create(hosts_->underlay(0), dup);
  ASSERT_FALSE(ov.ok());
  EXPECT_THAT(ov.status().message(), HasSubstr("creating vxlan device vxlan0 (VNI 4097)"));
  const std::string path = hosts_->underlay(0).run_dir + "/ov-dup";
  EXPECT_FALSE(Exists(path));
  EXPECT_FALSE(IsNetnsMount(path));
}

TEST_F(OverlayTest, Create_OverALeftoverOfTheSameNetworkReplacesIt) {
  overlay_[1].reset();
  auto again = Overlay::Create(hosts_->underlay(1), Network());
  ASSERT_TRUE(again.ok()) << again.status();
}

TEST(OverlayCreateTest, Create_RefusesBadInputWithoutTouchingAnything) {
  UnderlayConfig underlay;
  underlay.run_dir = "/nonexistent-swarm-test";
  underlay.address = Ip("192.168.77.1");
  OverlayNetwork bad_id = Network();
  bad_id.id = "../x";
  EXPECT_TRUE(absl::IsInvalidArgument(Overlay::Create(underlay, bad_id).status()));
  OverlayNetwork v6 = Network();
  v6.subnet = Cidr("fd00::/64");
  EXPECT_THAT(Overlay::Create(underlay, v6).status().message(), HasSubstr("IPv4 only"));
  OverlayNetwork vni = Network();
  vni.vni = 1 << 24;
  EXPECT_TRUE(absl::IsInvalidArgument(Overlay::Create(underlay, vni).status()));
  OverlayNetwork gw = Network();
  gw.gateway = Ip("10.99.0.1");
  EXPECT_TRUE(absl::IsInvalidArgument(Overlay::Create(underlay, gw).status()));
  EXPECT_FALSE(Exists("/nonexistent-swarm-test"));
}

}  // namespace
}  // namespace swarm::agent::network

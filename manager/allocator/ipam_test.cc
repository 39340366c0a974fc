#include "manager/allocator/ipam.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/random.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarm::manager::allocator {
namespace {

using ::testing::HasSubstr;

Ipam NewIpam(const PoolConfig& config = {}) {
  absl::StatusOr<Ipam> ipam = Ipam::Create(config);
  EXPECT_TRUE(ipam.ok()) << ipam.status();
  return *std::move(ipam);
}

NetworkRequest Named(const std::string& name, const std::string& subnet = "",
                     const std::string& gateway = "", const std::string& range = "") {
  NetworkRequest r;
  r.name = name;
  r.subnet = subnet;
  r.gateway = gateway;
  r.range = range;
  return r;
}

NetworkAllocation MustAllocate(Ipam& ipam, const std::string& id, const NetworkRequest& r) {
  absl::StatusOr<NetworkAllocation> a = ipam.AllocateNetwork(id, r);
  EXPECT_TRUE(a.ok()) << a.status();
  ipam.CheckInvariants();
  return a.ok() ? *a : NetworkAllocation{};
}

std::string MustAddress(Ipam& ipam, const std::string& network_id) {
  absl::StatusOr<std::string> a = ipam.AllocateAddress(network_id);
  EXPECT_TRUE(a.ok()) << a.status();
  ipam.CheckInvariants();
  return a.ok() ? *a : "";
}

// ---- parsing ----

TEST(ParseIpv4Net, AcceptsNetworksAndRefusesHostBits) {
  absl::StatusOr<Ipv4Net> n = ParseIpv4Net("10.0.1.0/24", "subnet");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->ToString(), "10.0.1.0/24");
  EXPECT_EQ(n->size(), 256u);
  EXPECT_EQ(FormatIpv4(n->last()), "10.0.1.255");
  EXPECT_THAT(ParseIpv4Net("10.0.1.5/24", "subnet").status().message(),
              HasSubstr("did you mean 10.0.1.0/24"));
  EXPECT_FALSE(ParseIpv4Net("10.0.1.0", "subnet").ok());
  EXPECT_FALSE(ParseIpv4Net("fd00::/64", "subnet").ok());
  EXPECT_FALSE(ParseIpv4Net("10.0.1.0/33", "subnet").ok());
}

// ---- pools ----

TEST(Create_Pools, RefusesBadPools) {
  EXPECT_FALSE(Ipam::Create({{"10.0.0.0/8", "10.1.0.0/16"}, 24}).ok());  // overlap
  EXPECT_FALSE(Ipam::Create({{"10.0.0.0/26"}, 24}).ok());                // smaller than a subnet
  EXPECT_FALSE(Ipam::Create({{"10.0.0.0/8"}, 31}).ok());                 // no room for tasks
  EXPECT_FALSE(Ipam::Create({{"nonsense"}, 24}).ok());
  EXPECT_TRUE(Ipam::Create({{"10.10.0.0/16", "192.168.0.0/20"}, 26}).ok());
}

// ---- networks ----

TEST(AllocateNetwork_DefaultPool, CarvesSlash24sInOrderWithGatewayAndVni) {
  Ipam ipam = NewIpam();
  NetworkAllocation ingress = MustAllocate(ipam, "n0", Named("ingress"));
  EXPECT_EQ(ingress.subnet, "10.0.0.0/24");
  EXPECT_EQ(ingress.gateway, "10.0.0.1");
  EXPECT_EQ(ingress.vni, kFirstVni);
  NetworkAllocation web = MustAllocate(ipam, "n1", Named("web-net"));
  EXPECT_EQ(web.subnet, "10.0.1.0/24");
  EXPECT_EQ(web.gateway, "10.0.1.1");
  EXPECT_EQ(web.vni, kFirstVni + 1);
  EXPECT_TRUE(web.range.empty());
}

TEST(AllocateNetwork_DefaultPool, ReusesReleasedSubnetsAndVnis) {
  Ipam ipam = NewIpam();
  MustAllocate(ipam, "a", Named("a"));
  MustAllocate(ipam, "b", Named("b"));
  MustAllocate(ipam, "c", Named("c"));
  ipam.ReleaseNetwork("b");
  ipam.CheckInvariants();
  NetworkAllocation d = MustAllocate(ipam, "d", Named("d"));
  EXPECT_EQ(d.subnet, "10.0.1.0/24");
  EXPECT_EQ(d.vni, kFirstVni + 1);
}

TEST(AllocateNetwork_DefaultPool, ConfiguredPoolsAndMaskLength) {
  Ipam ipam = NewIpam({{"192.168.0.0/23", "172.30.0.0/16"}, 25});
  EXPECT_EQ(MustAllocate(ipam, "a", Named("a")).subnet, "192.168.0.0/25");
  EXPECT_EQ(MustAllocate(ipam, "b", Named("b")).subnet, "192.168.0.128/25");
  EXPECT_EQ(MustAllocate(ipam, "c", Named("c")).subnet, "192.168.1.0/25");
  EXPECT_EQ(MustAllocate(ipam, "d", Named("d")).subnet, "192.168.1.128/25");
  EXPECT_EQ(MustAllocate(ipam, "e", Named("e")).subnet, "172.30.0.0/25");
}

TEST(AllocateNetwork_DefaultPool, ExhaustedPoolSaysSo) {
  Ipam ipam = NewIpam({{"10.9.0.0/23"}, 24});
  MustAllocate(ipam, "a", Named("a"));
  MustAllocate(ipam, "b", Named("b"));
  absl::StatusOr<NetworkAllocation> c = ipam.AllocateNetwork("c", Named("c"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(c.status().message(),
              HasSubstr("no free subnet in the default address pools 10.9.0.0/23 (mask /24)"));
  EXPECT_FALSE(ipam.HasNetwork("c"));
  ipam.CheckInvariants();
}

TEST(AllocateNetwork_DefaultPool, SkipsExplicitSubnetsInsideThePool) {
  Ipam ipam = NewIpam();
  MustAllocate(ipam, "big", Named("big", "10.0.0.0/23"));
  MustAllocate(ipam, "small", Named("small", "10.0.3.128/25"));
  EXPECT_EQ(MustAllocate(ipam, "a", Named("a")).subnet, "10.0.2.0/24");
  EXPECT_EQ(MustAllocate(ipam, "b", Named("b")).subnet, "10.0.4.0/24");
}

TEST(AllocateNetwork_Explicit, SubnetGatewayAndRange) {
  Ipam ipam = NewIpam();
  NetworkAllocation a =
      MustAllocate(ipam, "n", Named("n", "192.168.50.0/24", "192.168.50.254", "192.168.50.128/25"));
  EXPECT_EQ(a.subnet, "192.168.50.0/24");
  EXPECT_EQ(a.gateway, "192.168.50.254");
  EXPECT_EQ(a.range, "192.168.50.128/25");
  // Addresses come from the range; the gateway and broadcast address are never handed out.
  EXPECT_EQ(MustAddress(ipam, "n"), "192.168.50.128/24");
  EXPECT_EQ(ipam.FreeAddresses("n"), 128u - 1 - 2);
}

TEST(AllocateNetwork_Explicit, RefusesOverlapsAndBadRequests) {
  Ipam ipam = NewIpam();
  MustAllocate(ipam, "a", Named("web-net", "10.20.0.0/16"));
  absl::StatusOr<NetworkAllocation> inside = ipam.AllocateNetwork("b", Named("b", "10.20.5.0/24"));
  EXPECT_EQ(inside.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(inside.status().message(), HasSubstr("overlaps network web-net (10.20.0.0/16)"));
  EXPECT_FALSE(ipam.AllocateNetwork("c", Named("c", "10.0.0.0/8")).ok());  // contains it
  EXPECT_FALSE(ipam.AllocateNetwork("d", Named("d", "10.30.0.0/24", "10.31.0.1")).ok());
  EXPECT_FALSE(ipam.AllocateNetwork("e", Named("e", "10.30.0.0/24", "10.30.0.0")).ok());
  EXPECT_FALSE(ipam.AllocateNetwork("f", Named("f", "10.30.0.0/24", "", "10.31.0.0/25")).ok());
  EXPECT_FALSE(ipam.AllocateNetwork("g", Named("g", "10.30.0.0/31")).ok());
  EXPECT_FALSE(ipam.AllocateNetwork("h", Named("h", "", "10.30.0.1")).ok());
  EXPECT_FALSE(ipam.AllocateNetwork("a", Named("again")).ok());
  ipam.CheckInvariants();
  EXPECT_FALSE(ipam.HasNetwork("b"));
  // A refused request leaves nothing behind: the next network gets the first pool subnet and VNI.
  NetworkAllocation next = MustAllocate(ipam, "z", Named("z"));
  EXPECT_EQ(next.subnet, "10.0.0.0/24");
  EXPECT_EQ(next.vni, kFirstVni + 1);
}

TEST(AllocateNetwork_Explicit, AuxiliaryAddressesAreNeverHandedOut) {
  Ipam ipam = NewIpam();
  NetworkRequest r = Named("n", "10.40.0.0/29");
  r.reserved = {"10.40.0.2", "10.40.0.4"};
  MustAllocate(ipam, "n", r);
  // .0 network, .1 gateway, .2 and .4 auxiliary, .7 broadcast.
  EXPECT_EQ(MustAddress(ipam, "n"), "10.40.0.3/29");
  EXPECT_EQ(MustAddress(ipam, "n"), "10.40.0.5/29");
  EXPECT_EQ(MustAddress(ipam, "n"), "10.40.0.6/29");
  EXPECT_FALSE(ipam.AllocateAddress("n").ok());
  ipam.ReleaseAddress("n", "10.40.0.2/29");  // reserved: stays reserved
  ipam.CheckInvariants();
  EXPECT_FALSE(ipam.AllocateAddress("n").ok());
}

// ---- addresses ----

TEST(AllocateAddress, SkipsNetworkGatewayAndBroadcastAndExhaustsClearly) {
  Ipam ipam = NewIpam();
  MustAllocate(ipam, "i", Named("ingress"));
  MustAllocate(ipam, "w", Named("web-net"));
  std::set<std::string> seen;
  for (int i = 0; i < 253; ++i) {
    const std::string a = MustAddress(ipam, "w");
    EXPECT_TRUE(seen.insert(a).second) << a;
    EXPECT_NE(a, "10.0.1.0/24");
    EXPECT_NE(a, "10.0.1.1/24");
    EXPECT_NE(a, "10.0.1.255/24");
  }
  EXPECT_EQ(*seen.begin(), "10.0.1.10/24");  // string order; the first handed out was .2
  absl::StatusOr<std::string> full = ipam.AllocateAddress("w");
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.status().message(),
              HasSubstr("network web-net: no free address in 10.0.1.0/24"));
  ipam.ReleaseAddress("w", "10.0.1.77/24");
  EXPECT_EQ(MustAddress(ipam, "w"), "10.0.1.77/24");
}

TEST(AllocateAddress, FirstAddressesInOrder) {
  Ipam ipam = NewIpam();
  MustAllocate(ipam, "w", Named("w"));
  EXPECT_EQ(MustAddress(ipam, "w"), "10.0.0.2/24");
  EXPECT_EQ(MustAddress(ipam, "w"), "10.0.0.3/24");
  ipam.ReleaseAddress("w", "10.0.0.2/24");
  EXPECT_EQ(MustAddress(ipam, "w"), "10.0.0.2/24");
  EXPECT_EQ(MustAddress(ipam, "w"), "10.0.0.4/24");
}

TEST(AllocateAddress, LargerSubnetsWork) {
  Ipam ipam = NewIpam();
  MustAllocate(ipam, "big", Named("big", "10.100.0.0/16"));
  EXPECT_EQ(ipam.FreeAddresses("big"), 65536u - 3);
  std::string last;
  for (int i = 0; i < 300; ++i) last = MustAddress(ipam, "big");
  // Past the first /24: .0.255 and .1.0 are ordinary host addresses of a /16.
  EXPECT_EQ(last, "10.100.1.45/16");
  EXPECT_TRUE(ipam.ClaimAddress("big", "10.100.200.7/16").ok());
  EXPECT_EQ(ipam.FreeAddresses("big"), 65536u - 3 - 301);
  ipam.CheckInvariants();
}

TEST(ClaimAddress, RefusesTakenReservedAndOutside) {
  Ipam ipam = NewIpam();
  MustAllocate(ipam, "w", Named("w"));
  EXPECT_TRUE(ipam.ClaimAddress("w", "10.0.0.9/24").ok());
  EXPECT_EQ(ipam.ClaimAddress("w", "10.0.0.9/24").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ipam.ClaimAddress("w", "10.0.0.1/24").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ipam.ClaimAddress("w", "10.0.9.1/24").code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(ipam.ClaimAddress("nope", "10.0.0.3/24").code(), absl::StatusCode::kNotFound);
  ipam.CheckInvariants();
}

TEST(ReleaseNetwork, ReturnsEverything) {
  Ipam ipam = NewIpam();
  MustAllocate(ipam, "w", Named("w"));
  MustAddress(ipam, "w");
  ipam.ReleaseNetwork("w");
  ipam.CheckInvariants();
  EXPECT_FALSE(ipam.HasNetwork("w"));
  EXPECT_EQ(ipam.AllocateAddress("w").status().code(), absl::StatusCode::kNotFound);
  ipam.ReleaseAddress("w", "10.0.0.2/24");  // a no-op
  EXPECT_EQ(ipam.DebugString(), NewIpam().DebugString());
}

// ---- ports ----

TEST(AllocatePort, DynamicFromTheRangeAndExplicitConflictsNameTheHolder) {
  Ipam ipam = NewIpam();
  EXPECT_EQ(*ipam.AllocatePort(api::PORT_PROTOCOL_TCP, 0, "s1", "web"), kFirstDynamicPort);
  EXPECT_EQ(*ipam.AllocatePort(api::PORT_PROTOCOL_TCP, 0, "s1", "web"), kFirstDynamicPort + 1);
  // Protocols are separate spaces.
  EXPECT_EQ(*ipam.AllocatePort(api::PORT_PROTOCOL_UDP, 0, "s2", "dns"), kFirstDynamicPort);
  EXPECT_EQ(*ipam.AllocatePort(api::PORT_PROTOCOL_TCP, 8080, "s1", "web"), 8080u);
  EXPECT_TRUE(ipam.AllocatePort(api::PORT_PROTOCOL_TCP, 8080, "s1", "web").ok());  // own port
  absl::StatusOr<uint32_t> taken = ipam.AllocatePort(api::PORT_PROTOCOL_TCP, 8080, "s2", "api");
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(taken.status().message(),
              HasSubstr("port 8080/tcp is already in use by service web"));
  // An explicit port inside the dynamic range is skipped by later dynamic picks.
  EXPECT_TRUE(ipam.AllocatePort(api::PORT_PROTOCOL_TCP, kFirstDynamicPort + 2, "s2", "api").ok());
  EXPECT_EQ(*ipam.AllocatePort(api::PORT_PROTOCOL_TCP, 0, "s2", "api"), kFirstDynamicPort + 3);
  // Only the holder releases.
  ipam.ReleasePort(api::PORT_PROTOCOL_TCP, 8080, "s2");
  EXPECT_FALSE(ipam.AllocatePort(api::PORT_PROTOCOL_TCP, 8080, "s2", "api").ok());
  ipam.ReleasePort(api::PORT_PROTOCOL_TCP, 8080, "s1");
  EXPECT_TRUE(ipam.AllocatePort(api::PORT_PROTOCOL_TCP, 8080, "s2", "api").ok());
}

TEST(AllocatePort, DynamicRangeExhausts) {
  Ipam ipam = NewIpam();
  for (uint32_t p = kFirstDynamicPort; p <= kLastDynamicPort; ++p) {
    ASSERT_TRUE(ipam.AllocatePort(api::PORT_PROTOCOL_TCP, 0, "s", "s").ok());
  }
  absl::StatusOr<uint32_t> none = ipam.AllocatePort(api::PORT_PROTOCOL_TCP, 0, "t", "t");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(none.status().message(), HasSubstr("30000-32767"));
}

// ---- restart: rebuilding from what was written gives the same state ----

TEST(Restore, RebuildFromAllocationsGivesTheSameStateAndTheSameNextChoices) {
  Ipam before = NewIpam();
  std::map<std::string, std::pair<NetworkRequest, NetworkAllocation>> networks;
  auto add = [&](const std::string& id, const NetworkRequest& r) {
    networks[id] = {r, MustAllocate(before, id, r)};
  };
  add("ingress", Named("ingress"));
  add("a", Named("a"));
  add("b", Named("b", "10.50.0.0/16", "10.50.255.254", "10.50.128.0/17"));
  add("c", Named("c"));
  std::vector<std::pair<std::string, std::string>> addresses;
  for (int i = 0; i < 20; ++i) {
    for (const std::string id : {"ingress", "a", "b", "c"}) {
      addresses.emplace_back(id, MustAddress(before, id));
    }
  }
  before.ReleaseNetwork("a");
  networks.erase("a");
  for (size_t i = 0; i < addresses.size(); i += 3) {
    before.ReleaseAddress(addresses[i].first, addresses[i].second);
  }
  ASSERT_TRUE(before.AllocatePort(api::PORT_PROTOCOL_TCP, 0, "s", "s").ok());
  ASSERT_TRUE(before.AllocatePort(api::PORT_PROTOCOL_TCP, 8080, "s", "s").ok());

  Ipam after = NewIpam();
  for (const auto& [id, na] : networks) {
    ASSERT_TRUE(after.RestoreNetwork(id, na.first, na.second).ok());
  }
  for (size_t i = 0; i < addresses.size(); ++i) {
    if (i % 3 == 0 || addresses[i].first == "a") continue;
    ASSERT_TRUE(after.ClaimAddress(addresses[i].first, addresses[i].second).ok());
  }
  ASSERT_TRUE(after.AllocatePort(api::PORT_PROTOCOL_TCP, kFirstDynamicPort, "s", "s").ok());
  ASSERT_TRUE(after.AllocatePort(api::PORT_PROTOCOL_TCP, 8080, "s", "s").ok());
  after.CheckInvariants();
  EXPECT_EQ(after.DebugString(), before.DebugString());

  // Same next choices.
  for (const std::string id : {"ingress", "b", "c"}) {
    EXPECT_EQ(MustAddress(after, id), MustAddress(before, id));
  }
  NetworkAllocation x = MustAllocate(before, "x", Named("x"));
  NetworkAllocation y = MustAllocate(after, "x", Named("x"));
  EXPECT_EQ(x.subnet, y.subnet);
  EXPECT_EQ(x.vni, y.vni);
  EXPECT_EQ(*after.AllocatePort(api::PORT_PROTOCOL_TCP, 0, "t", "t"),
            *before.AllocatePort(api::PORT_PROTOCOL_TCP, 0, "t", "t"));
  EXPECT_EQ(after.DebugString(), before.DebugString());
}

TEST(Restore, RefusesConflictingAllocations) {
  Ipam ipam = NewIpam();
  NetworkAllocation a = MustAllocate(ipam, "a", Named("a"));
  // Same subnet, other network.
  EXPECT_EQ(ipam.RestoreNetwork("b", Named("b"), a).code(), absl::StatusCode::kAlreadyExists);
  // Other subnet, same VNI.
  NetworkAllocation b = a;
  b.subnet = "10.1.0.0/24";
  b.gateway = "";
  EXPECT_EQ(ipam.RestoreNetwork("b", Named("b"), b).code(), absl::StatusCode::kAlreadyExists);
  b.vni = 1;
  EXPECT_EQ(ipam.RestoreNetwork("b", Named("b"), b).code(), absl::StatusCode::kInvalidArgument);
  ipam.CheckInvariants();
}

// ---- property: random allocate/release sequences never hand out an address twice ----

TEST(Property, RandomSequencesNeverHandOutAnAddressTwice) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SeededRandom random(seed);
    Ipam ipam = NewIpam({{"10.0.0.0/20"}, 26});
    // What is handed out, per network: the model the Ipam must agree with.
    std::map<std::string, std::set<std::string>> held;
    std::map<std::string, std::string> subnet_of;
    int next_network = 0;
    for (int step = 0; step < 3000; ++step) {
      const uint64_t op = random.Uniform(100);
      if (op < 5 || held.empty()) {
        const std::string id = "n" + std::to_string(next_network++);
        absl::StatusOr<NetworkAllocation> a = ipam.AllocateNetwork(id, Named(id));
        if (a.ok()) {
          for (const auto& [other, subnet] : subnet_of) {
            ASSERT_NE(subnet, a->subnet) << "seed " << seed << " step " << step;
          }
          held[id];
          subnet_of[id] = a->subnet;
        } else {
          ASSERT_EQ(a.status().code(), absl::StatusCode::kResourceExhausted);
          ASSERT_EQ(subnet_of.size(), 64u);  // a /20 holds 64 /26s
        }
      } else {
        auto it = held.begin();
        std::advance(it, random.Uniform(held.size()));
        const std::string id = it->first;
        if (op < 7) {
          ipam.ReleaseNetwork(id);
          held.erase(id);
          subnet_of.erase(id);
        } else if (op < 60) {
          absl::StatusOr<std::string> a = ipam.AllocateAddress(id);
          if (a.ok()) {
            ASSERT_TRUE(it->second.insert(*a).second)
                << "seed " << seed << " step " << step << ": " << *a << " handed out twice";
          } else {
            ASSERT_EQ(it->second.size(), 64u - 3) << a.status();
          }
        } else if (!it->second.empty()) {
          auto addr = it->second.begin();
          std::advance(addr, random.Uniform(it->second.size()));
          ipam.ReleaseAddress(id, *addr);
          it->second.erase(addr);
        }
      }
      ipam.CheckInvariants();
      for (const auto& [id, addrs] : held) {
        ASSERT_EQ(ipam.FreeAddresses(id), 64u - 3 - addrs.size());
      }
    }
  }
}

}  // namespace
}  // namespace swarm::manager::allocator

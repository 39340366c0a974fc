// Ipam: the allocator's pure core. It decides which subnet, gateway and VXLAN ID (VNI) an
// overlay network gets, which address a task attachment or a service VIP gets on a network,
// and which port a service publishes through the routing mesh; and takes them back.
//
// Plain data in, decisions out: no store, no threads, no clock. The Allocator component
// (allocator.h) owns one Ipam per leadership: it rebuilds it from the store with the Restore
// and Claim calls (what is written in the store is the truth), then asks it for new
// allocations and writes them.
//
// Every choice is the lowest free one (subnets in pool order, addresses in the network's range,
// VNIs from kFirstVni, dynamic ports from kFirstDynamicPort), so the same allocations give the
// same state: a new leader that rebuilds from the store continues exactly where the old one was.
//
// IPv4 only. Addresses come in CIDR form ("10.0.1.5/24") as the store keeps them.
//
// Invariants (CheckInvariants): no two networks' subnets overlap; no two networks share a VNI;
// an address is handed out at most once per network and never is the network's network
// address, broadcast address, gateway or an auxiliary (reserved) address; a port is held by
// at most one owner.
//
// Thread-safety: none; a value owned by one thread.
#ifndef SWARM_MANAGER_ALLOCATOR_IPAM_H_
#define SWARM_MANAGER_ALLOCATOR_IPAM_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/types.pb.h"

namespace swarm::manager::allocator {

// VXLAN IDs: 4096 and up, as Docker (below are VLAN-sized IDs other tools use).
inline constexpr uint32_t kFirstVni = 4096;
inline constexpr uint32_t kLastVni = (1u << 24) - 1;
// Published ports chosen by the swarm when a service asks for none.
inline constexpr uint32_t kFirstDynamicPort = 30000;
inline constexpr uint32_t kLastDynamicPort = 32767;
// Default address pool and the size of the subnets carved from it.
inline constexpr char kDefaultPool[] = "10.0.0.0/8";
inline constexpr int kDefaultSubnetSize = 24;
// The largest subnet a network may have (its address bitmap is 2 MiB).
inline constexpr int kLargestSubnetPrefix = 8;
// The smallest: a network needs room for a gateway and at least one task.
inline constexpr int kSmallestSubnetPrefix = 30;

// An IPv4 network, host byte order, host bits zero.
struct Ipv4Net {
  uint32_t base = 0;
  int prefix = 32;
  uint64_t size() const { return uint64_t{1} << (32 - prefix); }
  uint32_t last() const { return static_cast<uint32_t>(base + size() - 1); }
  bool Contains(uint32_t ip) const { return ip >= base && ip <= last(); }
  bool Overlaps(const Ipv4Net& o) const { return base <= o.last() && o.base <= last(); }
  std::string ToString() const;
};

// "10.0.1.0/24"; `what` names the value in errors ("subnet", "IP range"). Host bits must be 0.
absl::StatusOr<Ipv4Net> ParseIpv4Net(const std::string& cidr, const std::string& what);
// "10.0.1.1", or the address part of "10.0.1.1/24".
absl::StatusOr<uint32_t> ParseIpv4(const std::string& text, const std::string& what);
std::string FormatIpv4(uint32_t ip);

// The cluster's address pools (Cluster.default_address_pool, Cluster.subnet_size).
struct PoolConfig {
  // CIDRs; empty = {kDefaultPool}.
  std::vector<std::string> pools;
  // Prefix length of each subnet carved from the pools; 0 = kDefaultSubnetSize.
  int subnet_size = 0;
};

// What a network asks for: its spec's IPAM config. Empty fields are chosen by the Ipam.
struct NetworkRequest {
  // Network name, for errors.
  std::string name;
  // `--subnet`: empty = the next free subnet of the default pools.
  std::string subnet;
  // `--ip-range`: where task addresses and VIPs come from; empty = the whole subnet.
  std::string range;
  // `--gateway`: empty = the subnet's first address.
  std::string gateway;
  // `--aux-address` values: never handed out.
  std::vector<std::string> reserved;
};

// What a network got (kept in the Network object: ipam.configs[0] and driver_state).
struct NetworkAllocation {
  std::string subnet;   // "10.0.1.0/24"
  std::string range;    // "" when the whole subnet
  std::string gateway;  // "10.0.1.1"
  uint32_t vni = 0;
};

class Ipam {
 public:
  // INVALID_ARGUMENT when a pool is not an IPv4 CIDR, pools overlap, or the subnet size does not
  // fit them (it must be at least each pool's prefix and at most kSmallestSubnetPrefix).
  static absl::StatusOr<Ipam> Create(const PoolConfig& config);

  // ---- networks ----
  // Gives the network a subnet (the requested one, or the next free one of the pools), a
  // gateway and a VNI. INVALID_ARGUMENT for a malformed request, ALREADY_EXISTS when the subnet
  // overlaps another network's, RESOURCE_EXHAUSTED when no subnet or VNI is left.
  absl::StatusOr<NetworkAllocation> AllocateNetwork(const std::string& id,
                                                    const NetworkRequest& request);
  // Takes an allocation made before (read back from the store) as it is.
  absl::Status RestoreNetwork(const std::string& id, const NetworkRequest& request,
                              const NetworkAllocation& allocation);
  // Returns the subnet, the VNI and every address of the network.
  void ReleaseNetwork(const std::string& id);
  bool HasNetwork(const std::string& id) const { return networks_.count(id) != 0; }

  // ---- addresses ----
  // The lowest free address of the network's range, in CIDR form. NOT_FOUND for an unknown
  // network, RESOURCE_EXHAUSTED when the range is full.
  absl::StatusOr<std::string> AllocateAddress(const std::string& network_id);
  // Marks an address handed out before (read back from the store) as taken. ALREADY_EXISTS when
  // it is taken or reserved, OUT_OF_RANGE when it is outside the network's range.
  absl::Status ClaimAddress(const std::string& network_id, const std::string& address);
  // Returns an address; a no-op for unknown networks, reserved or free addresses.
  void ReleaseAddress(const std::string& network_id, const std::string& address);
  // Addresses still free on the network (0 for an unknown one).
  uint64_t FreeAddresses(const std::string& network_id) const;

  // ---- published ports (ingress mode) ----
  // Takes `port` (1-65535) for owner, or the lowest free dynamic port when port is 0.
  // ALREADY_EXISTS naming the holder ("port 8080/tcp is already in use by service web") when
  // another owner has it; RESOURCE_EXHAUSTED when the dynamic range is full. Taking a port the
  // owner already holds is OK.
  absl::StatusOr<uint32_t> AllocatePort(api::PortProtocol protocol, uint32_t port,
                                        const std::string& owner_id, const std::string& owner_name);
  // Returns a port if owner_id holds it.
  void ReleasePort(api::PortProtocol protocol, uint32_t port, const std::string& owner_id);

  // Stops the process when an invariant is broken (tests run it after every step).
  void CheckInvariants() const;
  // The whole state in a canonical text form: equal states print equally.
  std::string DebugString() const;

 private:
  struct Network {
    std::string name;
    Ipv4Net subnet;
    Ipv4Net range;
    uint32_t gateway = 0;
    uint32_t vni = 0;
    // Bit i: range.base + i is taken (handed out or reserved); bits past the range are set.
    std::vector<uint64_t> used;
    // Addresses in the range never handed out (network, broadcast, gateway, auxiliary).
    std::vector<uint32_t> reserved;
    // Addresses handed out.
    uint64_t allocated = 0;
    // No free address below this index.
    uint64_t hint = 0;
  };
  struct SubnetUse {
    uint32_t last;
    std::string network_id;
  };

  Ipam() = default;
  // Builds the network's state from a complete allocation; does not register it.
  absl::StatusOr<Network> MakeNetwork(const NetworkRequest& request, const Ipv4Net& subnet,
                                      const NetworkAllocation& allocation) const;
  // The network whose subnet overlaps net, if any.
  const SubnetUse* Overlapping(const Ipv4Net& net, uint32_t* first) const;
  absl::Status CheckFree(const Ipv4Net& net, const std::string& what) const;
  absl::StatusOr<Ipv4Net> NextPoolSubnet() const;
  uint32_t NextVni() const;
  void Register(const std::string& id, Network n);
  static bool Taken(const Network& n, uint64_t index) {
    return (n.used[index / 64] >> (index % 64)) & 1;
  }
  static void Set(Network& n, uint64_t index, bool taken);

  std::vector<Ipv4Net> pools_;
  int subnet_size_ = kDefaultSubnetSize;
  std::map<std::string, Network> networks_;
  // Subnets in use, by first address.
  std::map<uint32_t, SubnetUse> subnets_;
  // VNIs in use -> network ID.
  std::map<uint32_t, std::string> vnis_;
  struct PortOwner {
    std::string id;
    std::string name;
  };
  std::map<std::pair<int, uint32_t>, PortOwner> ports_;
};

// "8080/tcp".
std::string PortString(api::PortProtocol protocol, uint32_t port);

}  // namespace swarm::manager::allocator

#endif  // SWARM_MANAGER_ALLOCATOR_IPAM_H_

// The data plane of one overlay network on one node (issue 11, like Docker's overlay driver).
//
// For an overlay network with at least one local task, the node keeps a network namespace of
// its own, <run_dir>/ov-<network id prefix> (a bind-mounted nsfs file, not `ip netns`),
// holding a bridge `br0` with the network's gateway address and a VXLAN device `vxlan0`
// (the network's VNI, UDP 4789, learning off, ARP answered from the neighbour table) that is
// a port of the bridge. The VXLAN device lives in that namespace but its UDP socket and
// underlay routing stay in the host namespace where it was created. Every local task gets a
// veth pair from its own namespace (`eth0`, the task's address, a MAC derived from it) into
// the bridge. Remote tasks are reached through static FDB entries (MAC -> node address) and
// neighbour entries (IP -> MAC) on the VXLAN device, programmed from the endpoint records the
// managers send: no multicast, no learning. MTU = underlay MTU - 50 (VXLAN over IPv4).
//
// How the agent uses it: at start, Overlay::CleanupStale(underlay) once; when the first local
// task of a network is prepared, Overlay::Create(underlay, network); for each task,
// Attach(task's netns, address) before it starts and Detach(address) when it is gone;
// SetPeers(all endpoints of the network) whenever the managers' records change (the list may
// include local endpoints, which are skipped); Remove() after the last Detach.
//
// Ownership and thread-safety: the agent owns one Overlay per network; methods may be called
// from any thread and are serialized by an internal mutex. Unlike elsewhere (STYLE 5), that
// mutex is held across the netlink calls: it exists to keep one network's kernel changes
// from interleaving (SetPeers diffs against the kernel's tables), and netlink calls are
// local system calls, never network I/O. Destroying an Overlay leaves the kernel state in
// place (CleanupStale at the next start removes it); Remove() is what tears it down.
//
// IPv4 only: the subnet, the gateway and the underlay address must be IPv4.
#ifndef SWARM_AGENT_NETWORK_OVERLAY_H_
#define SWARM_AGENT_NETWORK_OVERLAY_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/network/netlink.h"
#include "agent/network/netns.h"
#include "common/ip.h"

namespace swarm::agent::network {

// The node-wide side of every overlay: where overlay namespaces live and how VXLAN reaches
// the other nodes.
struct UnderlayConfig {
  // Directory of the overlay namespaces; created if missing. Ours alone: CleanupStale
  // removes every ov-* entry in it.
  std::string run_dir = "/run/swarmd/netns";
  // Namespace that holds the underlay device and the VXLAN sockets; "" = the agent's own.
  // Tests give namespaces of their own that play the hosts.
  std::string host_netns_path;
  // The underlay interface (its MTU sets the overlay MTU); "" = 1500 and routing decides.
  std::string device;
  // This node's VTEP address, the address other nodes' FDB entries point to.
  IpAddress address;
  uint16_t vxlan_port = 4789;
};

struct OverlayNetwork {
  std::string id;  // network ID ([A-Za-z0-9]); the namespace is named after its first 12
  uint32_t vni = 0;
  IpNetwork subnet;
  IpAddress gateway;
};

// One task endpoint of the network, as the managers send it.
struct Endpoint {
  IpAddress ip;    // the task's address on the overlay
  MacAddress mac;  // MacFromIpv4(ip) for endpoints made by this project
  IpAddress node;  // underlay address of the node that runs the task
};

struct Attachment {
  std::string netns_path;  // the task's network namespace
  IpAddress ip;            // the task's address, in the subnet
  std::string if_name = "eth0";
  std::optional<MacAddress> mac;  // default MacFromIpv4(ip)
};

class Overlay {
 public:
  static constexpr char kBridge[] = "br0";
  static constexpr char kVxlan[] = "vxlan0";
  static constexpr int kVxlanOverhead = 50;  // outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8

  // Creates the namespace, bridge and VXLAN device. A leftover namespace of the same name
  // (a crash before CleanupStale ran) is removed first. On failure nothing is left behind.
  static absl::StatusOr<std::unique_ptr<Overlay>> Create(const UnderlayConfig& underlay,
                                                         const OverlayNetwork& network);

  // Removes every overlay namespace under underlay.run_dir and the links in them; returns
  // how many it removed. Call once at agent start, before any Create.
  static absl::StatusOr<int> CleanupStale(const UnderlayConfig& underlay);

  // The namespace name for a network id ("ov-" + first 12 characters).
  static std::string NamespaceName(const std::string& network_id);

  ~Overlay() = default;

  // Connects a task's namespace to the network: a veth pair whose host end (veth<ip in hex>)
  // joins br0 and whose other end (if_name) gets the address, MAC and MTU, up. A stale host
  // end for the same address is replaced.
  absl::Status Attach(const Attachment& attachment);
  // Disconnects the task with this address. OK if its namespace, and so the veth, is gone.
  absl::Status Detach(const IpAddress& ip);
  // Makes the FDB and neighbour entries on vxlan0 exactly those of `peers` that run on other
  // nodes: adds the missing ones, removes the ones not listed (a diff against the kernel's
  // tables, so it also repairs state left by a previous run).
  absl::Status SetPeers(const std::vector<Endpoint>& peers);
  // Deletes the VXLAN device, the veths (so the tasks' ends go at once, not when the kernel
  // gets round to freeing the namespace), the bridge and the namespace. The Overlay is
  // unusable afterwards.
  absl::Status Remove();

  int mtu() const { return mtu_; }
  const std::string& netns_path() const { return netns_path_; }
  // Addresses attached through this object.
  std::set<std::string> AttachedAddresses() const;

 private:
  Overlay(const UnderlayConfig& underlay, const OverlayNetwork& network, std::string netns_path,
          int mtu, ScopedFd netns, std::unique_ptr<Netlink> nl)
      : underlay_(underlay),
        network_(network),
        netns_path_(std::move(netns_path)),
        mtu_(mtu),
        netns_(std::move(netns)),
        nl_(std::move(nl)) {}

  const UnderlayConfig underlay_;
  const OverlayNetwork network_;
  const std::string netns_path_;
  const int mtu_;

  mutable absl::Mutex mu_;
  ScopedFd netns_ ABSL_GUARDED_BY(mu_);
  // A socket in the overlay namespace.
  std::unique_ptr<Netlink> nl_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> attached_ ABSL_GUARDED_BY(mu_);
  bool removed_ ABSL_GUARDED_BY(mu_) = false;
};

// The host-side veth name of an attached address: "veth" + the IPv4 address in hex.
std::string HostVethName(const std::string& prefix, const IpAddress& ip);

}  // namespace swarm::agent::network

#endif  // SWARM_AGENT_NETWORK_OVERLAY_H_

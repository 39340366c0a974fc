// The node's gateway bridge (like Docker's docker_gwbridge): egress for tasks on overlay
// networks. A bridge in the host namespace with the first address of a node-local subnet
// (172.18.0.0/16 by default), a veth from each task's namespace into it (`eth1`, an address
// from that subnet, the default route via the bridge), IPv4 forwarding on, and one nftables
// table of our own (`table ip swarmd`) that masquerades what leaves the subnet through any
// other interface. The table is replaced as a whole in one transaction, so it never holds
// half a ruleset and never touches anyone else's rules.
//
// How the agent uses it: GatewayBridge::Setup(config) once at start (idempotent: it adopts
// an existing bridge and the addresses of the veths still attached to it, and rewrites the
// table); Attach(task netns) after the overlay attachments, which returns the address it
// gave; Detach(address) when the task is gone. Teardown() when the node leaves the swarm.
//
// Ownership and thread-safety: one per node, owned by the agent; methods are serialized by an
// internal mutex, held across the netlink calls for the same reason as in overlay.h (address
// allocation and the links must change together). Destroying the object leaves the kernel
// state in place.
//
// Limits: IPv4 only; rules of other tables that drop forwarded traffic (an iptables FORWARD
// policy of DROP) still apply, since an nftables accept cannot overrule another table's drop.
#ifndef SWARM_AGENT_NETWORK_GATEWAY_BRIDGE_H_
#define SWARM_AGENT_NETWORK_GATEWAY_BRIDGE_H_

#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/network/netlink.h"
#include "common/ip.h"

namespace swarm::agent::network {

struct GatewayBridgeConfig {
  // Namespace of the bridge and the NAT rules; "" = the agent's own (the host's).
  std::string host_netns_path;
  std::string bridge = "swarmd_gwbridge";  // at most 15 characters
  IpNetwork subnet = {.base = {.family = AF_INET, .bytes = {172, 18, 0, 0}}, .prefix = 16};
  IpAddress gateway = {.family = AF_INET, .bytes = {172, 18, 0, 1}};
  std::string nft_table = "swarmd";  // `table ip <nft_table>`, ours alone
  int mtu = 1500;
};

class GatewayBridge {
 public:
  static absl::StatusOr<std::unique_ptr<GatewayBridge>> Setup(const GatewayBridgeConfig& config);

  // Connects a task's namespace: a veth (host end vgw<address in hex>, in the bridge; task end
  // if_name) with the lowest free address of the subnet, and the task's default route via the
  // gateway. Returns the address.
  absl::StatusOr<IpAddress> Attach(const std::string& netns_path,
                                   const std::string& if_name = "eth1");
  // Disconnects the task with this address and frees the address. OK if already gone.
  absl::Status Detach(const IpAddress& ip);
  // Deletes the bridge and the nftables table. The object is unusable afterwards.
  absl::Status Teardown();

  // The nftables script Setup applies (for tests and for people).
  static std::string Ruleset(const GatewayBridgeConfig& config);
  const GatewayBridgeConfig& config() const { return config_; }

 private:
  GatewayBridge(const GatewayBridgeConfig& config, std::unique_ptr<Netlink> nl)
      : config_(config), nl_(std::move(nl)) {}
  absl::StatusOr<IpAddress> AllocateLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const GatewayBridgeConfig config_;
  absl::Mutex mu_;
  std::unique_ptr<Netlink> nl_ ABSL_GUARDED_BY(mu_);  // a socket in the host namespace
  std::set<uint32_t> used_ ABSL_GUARDED_BY(mu_);      // attached addresses, host order
  bool torn_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace swarm::agent::network

#endif  // SWARM_AGENT_NETWORK_GATEWAY_BRIDGE_H_

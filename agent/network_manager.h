// NetworkManager: the node's side of overlay networking (issue 11), wiring the data plane of
// agent/network to the node's tasks and to the networks and endpoint records the managers send.
//
// For a task attached to overlay networks (task.networks, filled by the managers' allocator)
// or publishing ports in host mode:
//   Attach(task)    before its container is created (and again by Controller::Resume when an
//                   agent that restarted takes a running container over): a network namespace
//                   of its own (<run_dir>/t-<task id>, bind-mounted), one veth per network in the
//                   order of task.networks (eth0, eth1, ...; the ingress network first when the
//                   service publishes ports), the overlay of each network created on first use,
//                   then a veth into the gateway bridge (the next ethN, default route,
//                   masquerading) unless every network is internal; the embedded DNS server
//                   answers on 127.0.0.11 in the namespace with the records of the task's
//                   networks (not the ingress network's); the load-balancing table (below).
//                   Returns the namespace for the runtime and the container's /etc/resolv.conf.
//   Detach(task_id) once its process has ended or its container is removed: everything Attach
//                   made; an overlay goes with its last local task, the gateway bridge with the
//                   node's last attached task (and no sandbox).
// Networks (SetNetwork, agent/endpoints.h's listener): the FDB and neighbour entries of the
// network's overlay (records of other nodes), the DNS records (tasks not disabled, the
// services' VIPs, or their tasks in dnsrr mode), the load balancing of every local task on it.
//
// Load balancing: each attached task's namespace holds one nftables table, `ip swarmd_lb`,
// replaced as a whole whenever what it should hold changes: for each VIP of the networks the
// task is on, new connections are DNATed to the service's enabled endpoints in turn (numgen
// inc; conntrack keeps a connection on the endpoint it started with); a VIP without endpoints
// is rejected at once instead of timing out.
//
// Routing mesh: while a service publishes a port in ingress mode, the node keeps an ingress
// sandbox (<run_dir>/ingress-sbox: eth0 on the ingress overlay with the node's own ingress
// address, eth1 on the gateway bridge). The host's `ip swarmd_ports` table DNATs connections
// to its own addresses on a published port to the sandbox, whose `ip swarmd_ingress` table
// spreads them over the service's tasks (ip . target port). Nothing is masqueraded: the task
// sees the client's address. Its replies find the way back through the sandbox the connection
// came in by: the task's swarmd_lb table marks a new connection from the ingress interface
// with the sandbox's address (from its MAC), the mark goes on the reply packets, and one
// `fwmark A lookup A` rule per sandbox A routes them via A. Host-mode ports are DNATed by the
// same host table to the local task's gateway-bridge address.
//
// At Start, overlay namespaces, the sandbox and the published ports of an earlier run are
// removed (made again from the tasks and records); task namespaces stay, since adopted
// containers still live in them.
//
// Thread-safety: thread-safe. One mutex serializes every change (Attach, Detach, SetNetwork),
// held across netlink, nftables and DNS registration calls: they are local system calls, and a
// network's namespace, links and tables must change in one order.
#ifndef SWARM_AGENT_NETWORK_MANAGER_H_
#define SWARM_AGENT_NETWORK_MANAGER_H_

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/endpoints.h"
#include "agent/network/dns.h"
#include "agent/network/gateway_bridge.h"
#include "agent/network/overlay.h"
#include "common/ip.h"
#include "proto/dispatcher.pb.h"
#include "proto/objects.pb.h"

namespace swarm::agent {

// Network.driver_state option that holds the VXLAN ID (manager/allocator/allocator.h).
inline constexpr char kVxlanIdOption[] = "com.docker.network.driver.overlay.vxlanid_list";

class NetworkManager {
 public:
  struct Options {
    // Where the overlay and task namespaces live; ours alone.
    std::string run_dir = "/run/swarmd/netns";
    // The node's namespace (underlay, gateway bridge); "" = the daemon's own. For tests.
    std::string host_netns_path;
    // This node's underlay (VXLAN) address, IPv4, and optionally its device (sets the MTU).
    IpAddress address;
    std::string underlay_device;
    // The node's ID: its own endpoint records need no FDB entries.
    std::string node_id;
    network::GatewayBridgeConfig gateway;
    // The host's resolver configuration: upstreams of the DNS server and the base of the
    // containers' resolv.conf.
    std::string resolv_conf = "/etc/resolv.conf";
  };

  static absl::StatusOr<std::unique_ptr<NetworkManager>> Start(Options options);
  ~NetworkManager();  // stops the DNS server; the kernel state stays (see Teardown)

  struct TaskNetwork {
    std::string netns_path;   // the namespace the container joins
    std::string resolv_conf;  // its /etc/resolv.conf
  };
  // nullopt when the task is on no overlay network (its container keeps network mode none).
  absl::StatusOr<std::optional<TaskNetwork>> Attach(const api::Task& task);
  // OK if the task was not attached.
  absl::Status Detach(const std::string& task_id);
  // One network as the managers now describe it (agent/endpoints.h's listener).
  void SetNetwork(const EndpointTable::NetworkState& state);
  // The node leaves the swarm: every task namespace, overlay and the gateway bridge go.
  absl::Status Teardown();

 private:
  struct LocalNetwork {
    network::OverlayNetwork config;
    std::unique_ptr<network::Overlay> overlay;  // null until a local task needs it
    std::set<std::string> tasks;                // local tasks attached
    std::vector<api::EndpointRecord> records;   // the managers' latest
    std::set<std::string> dns_services;         // service names put in the DNS table
    bool ingress = false;
  };
  struct LocalTask {
    std::string netns_path;
    std::vector<std::string> networks;           // IDs, in attachment order
    std::map<std::string, IpAddress> addresses;  // network ID -> its address
    std::optional<IpAddress> gateway_address;
    std::string ingress_if;                   // its interface on ingress; "" if not on it
    std::vector<api::PortConfig> host_ports;  // published in host mode
    std::string lb_ruleset;                   // what the namespace's swarmd_lb table holds
    std::set<uint32_t> ingress_routes;        // sandboxes its replies can go back through
  };
  // The node's ingress sandbox (routing mesh): a namespace on the ingress network (eth0) and
  // on the gateway bridge (eth1), where published ports are balanced over the tasks.
  struct Sandbox {
    std::string netns_path;
    IpAddress ip;               // on ingress
    IpAddress gateway_address;  // on the gateway bridge: where the host sends published ports
    std::string ruleset;        // its swarmd_ingress table
  };

  explicit NetworkManager(Options options);
  absl::Status AttachLocked(const std::string& task_id, const api::Task& task, LocalTask& local)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status DetachLocked(const std::string& task_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status EnsureOverlayLocked(LocalNetwork& net) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ApplyPeersLocked(LocalNetwork& net) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyDnsLocked(const std::string& network_id, LocalNetwork& net)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string RulesetLocked(const LocalTask& task) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::Status ApplyLoadBalancerLocked(const std::string& task_id, LocalTask& task)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<network::GatewayBridge*> GatewayLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Creates, updates or removes the ingress sandbox after the ingress network changed.
  absl::Status SyncIngressLocked(LocalNetwork& ingress) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RemoveSandboxLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The policy routing that sends a task's replies to routing-mesh clients back through the
  // sandbox the connection came from.
  absl::Status ApplyIngressRoutesLocked(LocalTask& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The host's swarmd_ports table: published ports to the sandbox (ingress mode) or to the
  // local task (host mode).
  absl::Status ApplyHostPortsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The other nodes' sandboxes: ingress address -> MAC.
  std::map<uint32_t, network::MacAddress> SandboxesLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  network::UnderlayConfig Underlay() const;
  std::string TaskNetnsPath(const std::string& task_id) const;
  std::string SandboxPath() const;

  const Options options_;
  network::dns::ResolvConf host_resolv_conf_;
  network::dns::DnsTable dns_table_;
  std::unique_ptr<network::dns::DnsServer> dns_;

  mutable absl::Mutex mu_;
  std::map<std::string, LocalNetwork> networks_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, LocalTask> tasks_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<network::GatewayBridge> gateway_ ABSL_GUARDED_BY(mu_);
  std::string ingress_id_ ABSL_GUARDED_BY(mu_);  // the ingress network, once known
  std::optional<Sandbox> sandbox_ ABSL_GUARDED_BY(mu_);
  std::string host_ruleset_ ABSL_GUARDED_BY(mu_);  // what the host's swarmd_ports table holds
};

// The overlay configuration of an allocated network (VNI, subnet, gateway); INVALID_ARGUMENT
// naming what is missing when the managers have not allocated it.
absl::StatusOr<network::OverlayNetwork> OverlayNetworkOf(const api::Network& network);

}  // namespace swarm::agent

#endif  // SWARM_AGENT_NETWORK_MANAGER_H_

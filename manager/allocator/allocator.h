// Allocator: the leader-only component that gives overlay networks, services, tasks and nodes
// what they need from the cluster's address space (DESIGN.md, Networking), and owns a task's move
// from NEW to PENDING: the point where the task's network attachments are allocated and the
// scheduler may place it. The decisions are the Ipam's (ipam.h); this shell rebuilds the Ipam
// from the store when it starts, follows the store's events, and writes the allocations.
//
// Where the allocations are kept (what the dispatcher and agents read):
//   - Network: ipam.configs[0] holds subnet, gateway and range (CIDR, IPv4); driver_state is
//     {name "overlay", options[kVxlanIdOption] = the VNI in decimal}. A network is allocated
//     when both are set (NetworkAllocated).
//   - Service: endpoint.spec is the endpoint spec the allocation was made for; endpoint.ports
//     the published ports with published_port filled in for ingress-mode ports (host-mode
//     ports are copied as they are: the node chooses); endpoint.virtual_ips one VIP (CIDR) per
//     attached network in VIP mode, the ingress network first when the service publishes ports
//     in ingress mode; none in DNSRR mode.
//   - Task: networks[] one attachment per network of its spec (the ingress network first when
//     its service publishes ingress ports), each with the allocated Network object as it was,
//     addresses[0] the task's address in CIDR form, and the spec's aliases and driver options;
//     endpoint is a copy of its service's endpoint.
//   - Node: attachments[] one attachment on the ingress network once that network is allocated,
//     for every node in the store (any role, availability or state, DOWN too): the address of
//     the node's ingress sandbox (the routing mesh, which answers published ports on every
//     node), network = the allocated ingress Network object as it was, addresses[0] the CIDR.
//     No attachments while the swarm has no ingress network. The ingress network's pool is
//     shared by VIPs, task addresses and node addresses.
//
// What is written in the store is the truth: on Start the Ipam is rebuilt from the allocated
// networks, the services' endpoints, the attachments of tasks that have not ended and the
// nodes' attachments (so a new leader keeps every node's ingress address). Addresses return to
// the pool when a task reaches a terminal state, is deleted, or is no longer wanted before it
// was placed, and when a node is deleted (node rm); VIPs and ports when a service is deleted or
// no longer needs them; the subnet and VNI when a network is deleted, after which the nodes'
// attachments on it are dropped from the store (and a new ingress network gives them new ones).
// The store keeps an ended task's attachments as history: consumers (the dispatcher's endpoint
// records) must skip tasks that ended.
//
// Work goes in four phases per round, each reading fresh committed state: networks, then
// nodes (a node needs only the ingress network; coming before services and tasks, the nodes
// that exist when the ingress network is allocated get its first addresses, whatever else
// arrived in the same round), then services, then tasks (a task needs its networks and its
// service allocated).
// Each phase's writes go in transactions of at most kBatch objects and
// store::kMaxTransactionBytes. A write that fails (a race: "update out of sequence") gives
// back what was taken for it and is retried shortly.
// Something that cannot be allocated (an exhausted pool, an overlapping subnet, a taken port)
// is logged and retried when something is released; a task stays NEW with the reason in
// status.err, which `service ps` shows; a node stays without its ingress address (logged once
// per reason, with how many nodes wait).
//
// Thread-safety: Start and Stop from one thread (the leader runtime); the work runs on the
// component's thread "allocator", which alone owns the Ipam and the bookkeeping below.
#ifndef SWARM_MANAGER_ALLOCATOR_ALLOCATOR_H_
#define SWARM_MANAGER_ALLOCATOR_ALLOCATOR_H_

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "manager/allocator/ipam.h"
#include "manager/leader/runtime.h"
#include "manager/store/store.h"

namespace swarm::manager::allocator {

// Network.driver_state option that holds the VXLAN ID (Docker's name for it).
inline constexpr char kVxlanIdOption[] = "com.docker.network.driver.overlay.vxlanid_list";

// Whether the network has its subnet and VNI.
bool NetworkAllocated(const api::Network& n);
// The network's VNI; 0 when it has none.
uint32_t VniOf(const api::Network& n);

class Allocator final : public leader::Component {
 public:
  static constexpr size_t kBatch = 1000;
  static constexpr absl::Duration kRetryAfter = absl::Milliseconds(100);

  Allocator(store::MemoryStore* store, Clock* clock) : store_(store), clock_(clock) {}
  ~Allocator() override { Stop(); }

  const char* name() const override { return "allocator"; }
  void Start() override;
  void Stop() override;

 private:
  // One object to write, with what to do once the write committed or failed.
  struct Change {
    api::StoreAction object;
    // After a failed write: give back what planning took.
    std::function<void()> undo;
    // After the write: give back what the object no longer holds, record what it holds.
    std::function<void()> commit;
  };
  // What a service holds: its VIPs by network ID, its ingress ports.
  struct ServiceHolding {
    std::map<std::string, std::string> vips;
    std::set<std::pair<api::PortProtocol, uint32_t>> ports;
  };
  // What a task or a node holds: (network ID, address) pairs.
  using Addresses = std::vector<std::pair<std::string, std::string>>;
  // The IDs of objects to look at again, by kind.
  struct Todo {
    std::set<std::string> networks, services, tasks, nodes;
  };

  void Run();
  // Builds the Ipam from the store and queues everything that waits for an allocation.
  void Rebuild();
  void OnEvent(const store::Event& e);
  void Round();
  void AllocateNetworks();
  void AllocateServices();
  void AllocateTasks();
  // Plans and writes the allocations of up to kBatch tasks.
  void AllocateTaskBatch(const std::vector<std::string>& batch, Todo* retry);
  void AllocateNodes();
  // Plans and writes the ingress attachments of up to kBatch nodes; why one could not get an
  // address goes to reason.
  void AllocateNodeBatch(const std::vector<std::string>& batch, Todo* retry, std::string* reason);
  // Writes changes in batches; the IDs of failed batches' objects go to retry.
  void Write(std::vector<Change>& changes, Todo* retry);

  void ReleaseTask(const std::string& id);
  void ReleaseService(const std::string& id);
  void ReleaseNode(const std::string& id);

  store::MemoryStore* store_;
  Clock* clock_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;

  // Component thread only (and Start, before the thread exists).
  std::shared_ptr<store::Watch> watch_;
  std::optional<Ipam> ipam_;
  // The cluster's pools the Ipam was built with. The cluster object can appear (swarm init
  // writes it after the first leader started its components) or change after Start: the Ipam
  // is then rebuilt from the store with the new pools (rebuild_).
  std::vector<std::string> pools_;
  uint32_t subnet_size_ = 0;
  bool rebuild_ = false;
  std::map<std::string, ServiceHolding> services_;
  std::map<std::string, Addresses> tasks_;
  std::map<std::string, Addresses> nodes_;
  // Objects to look at in the next round.
  std::set<std::string> networks_todo_, services_todo_, tasks_todo_, nodes_todo_;
  // Every node is to be looked at: the ingress network appeared, changed or went.
  bool all_nodes_todo_ = false;
  // Objects that could not be allocated: looked at again once something was released or
  // allocated (changed_).
  std::set<std::string> networks_blocked_, services_blocked_, tasks_blocked_, nodes_blocked_;
  bool changed_ = false;
  // Why a network or service could not be allocated, for the messages of tasks that wait.
  std::map<std::string, std::string> network_errors_, service_errors_;
  // Why nodes wait for their ingress address, as last logged.
  std::string node_error_;
  // Not before this time after a failed write.
  absl::Time retry_at_ = absl::InfinitePast();
};

}  // namespace swarm::manager::allocator

#endif  // SWARM_MANAGER_ALLOCATOR_ALLOCATOR_H_

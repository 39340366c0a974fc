// AssignmentSet: what one node's Assignments stream has told its agent so far, and the next
// message that brings the agent up to date with the store.
//
// A node's assignments are its tasks (node_id == node, observed state ASSIGNED or later, any
// desired state), the secrets and configs that its tasks still need (those referenced by
// spec.container.secrets[].secret_id / configs[].config_id of a task that is not past
// RUNNING: a finished task needs none, and DESIGN.md wants secrets only on nodes that run a
// task that uses them), and the overlay networks it takes part in with their endpoint records.
// Nothing else is sent.
//
// The networks a node takes part in are those its live tasks (HasEndpoint) are attached to,
// and the ingress network when the node has an address on it (Node.attachments, written by the
// allocator for every node: the node's ingress sandbox of the routing mesh, which exists
// whether or not the node runs a task). For each such network that is in the store the node
// gets the Network object (VNI, subnet, gateway) and the network's endpoint records: one per
// live task on it, wherever it runs (its address, MAC, node address, service name and VIP; on
// the ingress network also the service's ingress ports), for the node's VXLAN forwarding
// entries, DNS and load balancing; and on the ingress network one load_balancer record per
// node that has an ingress address, the node itself included (key "lb-" + node ID; its
// address, MAC, node ID and node address), so that every sandbox can reach every other.
//
// The set diffs the store's current state against the versions it last sent, instead of
// replaying store events: so it needs no event history (a fan-out that falls behind simply
// sends a larger diff), and changes that happen while a message is being written coalesce
// into the next one. The first message is COMPLETE; the others are INCREMENTAL, ordered so
// that an agent applying them in order never holds a task without its secrets, configs and
// peers, nor an endpoint record without its network: secret, config, network and endpoint
// updates, task updates, task removals, endpoint removals, network removals, then secret and
// config removals. A record is sent again when one of the objects it is built from changes
// version (its task, service or node; a load_balancer record's node), a network when its
// version changes.
// Messages are numbered: results_in is the set's sequence number after the message,
// applies_to the one before (empty for COMPLETE); an agent that sees a gap reopens the stream.
//
// Thread-safety: none; the dispatcher's fan-out thread owns each set.
#ifndef SWARM_MANAGER_DISPATCHER_ASSIGNMENTS_H_
#define SWARM_MANAGER_DISPATCHER_ASSIGNMENTS_H_

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "manager/store/store.h"
#include "proto/dispatcher.pb.h"

namespace swarm::manager::dispatcher {

// Whether a task belongs in its node's assignments.
bool IsAssigned(const api::Task& task);

// A task's endpoints count (in records, DNS and load balancing) from ASSIGNED through RUNNING.
bool HasEndpoint(const api::Task& task);
// The MAC of an endpoint, derived from its IPv4 address as Docker does: "10.0.1.5/24" ->
// "02:42:0a:00:01:05".
std::string EndpointMac(std::string_view cidr);
// The key (EndpointRecord.task_id) of a node's ingress sandbox record: "lb-" + node ID.
std::string LoadBalancerId(const std::string& node_id);
// The node's address on the network (CIDR, from Node.attachments); empty when it has none.
std::string NodeAddressOn(const api::Node& node, const std::string& network_id);

// What a node should hold now, by ID (ordered, so messages are deterministic). Reading it takes
// shared pointers only, so a caller can read many nodes' under the store's lock and build the
// messages after releasing it.
struct NodeAssignments {
  // An endpoint record's sources: the task, its service and its node; for a node's ingress
  // sandbox (a load_balancer record), the node only.
  struct EndpointSource {
    store::Ptr<api::Task> task;
    store::Ptr<api::Service> service;
    store::Ptr<api::Node> node;
    bool network_is_ingress = false;
  };
  std::map<std::string, store::Ptr<api::Task>> tasks;
  std::map<std::string, store::Ptr<api::Secret>> secrets;
  std::map<std::string, store::Ptr<api::Config>> configs;
  // The networks the node takes part in.
  std::map<std::string, store::Ptr<api::Network>> networks;
  // Every live endpoint (HasEndpoint) on those networks, by (network ID, task ID): the node's
  // own and its peers'; on the ingress network also every node's sandbox, by (network ID,
  // LoadBalancerId(node ID)).
  std::map<std::pair<std::string, std::string>, EndpointSource> endpoints;
};
NodeAssignments ReadAssignments(const store::ReadTx& tx, const std::string& node_id);

class AssignmentSet {
 public:
  // The message that takes the agent from what was sent to what tx holds for node_id: the
  // first call returns a COMPLETE message (possibly empty), later calls an INCREMENTAL one, or
  // nullopt when nothing changed.
  std::optional<api::AssignmentsMessage> Next(const NodeAssignments& now);
  std::optional<api::AssignmentsMessage> Next(const store::ReadTx& tx, const std::string& node_id);

  // Whether the agent holds this secret or config (store events about it concern this node).
  bool HasSecret(const std::string& id) const { return secrets_.contains(id); }
  bool HasConfig(const std::string& id) const { return configs_.contains(id); }
  // Whether the node takes part in this network (holds it and its endpoint records).
  bool HasNetwork(const std::string& id) const { return networks_.contains(id); }
  // Whether it holds endpoint records of tasks or the sandbox on that node (which carry its
  // address).
  bool HasNodeEndpoints(const std::string& node_id) const {
    return endpoint_nodes_.contains(node_id);
  }
  // Messages sent so far.
  uint64_t sequence() const { return sequence_; }

 private:
  // ID -> store version, of what the agent holds.
  using Versions = absl::flat_hash_map<std::string, uint64_t>;

  uint64_t sequence_ = 0;
  Versions tasks_;
  Versions secrets_;
  Versions configs_;
  Versions networks_;
  // "network/task" -> versions of the task, service and node the record was built from (0 for
  // a source it has not).
  using EndpointVersions = absl::flat_hash_map<std::string, std::array<uint64_t, 3>>;
  EndpointVersions endpoints_;
  absl::flat_hash_set<std::string> endpoint_nodes_;
};

}  // namespace swarm::manager::dispatcher

#endif  // SWARM_MANAGER_DISPATCHER_ASSIGNMENTS_H_

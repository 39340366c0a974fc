// EndpointTable: the overlay networks this node takes part in and their endpoint records, as
// the dispatcher's assignments bring them (manager/dispatcher/assignments.h): the network
// object, one record per live task on it wherever it runs, and on the ingress network one
// per node's ingress sandbox. The node's network layer reads them for its VXLAN
// forwarding and neighbour entries, DNS and load balancing.
//
// The agent hands every assignments message to Apply. A COMPLETE message replaces the table;
// an INCREMENTAL one updates and removes networks and records. After each message the
// listener hears, once per network that changed, the network object and its records as they
// now are (neither: the node left the network), so it can diff against what it programmed;
// level, not edge, so a listener that failed once catches up with the next call.
//
// Thread-safety: thread-safe; the listener runs on the caller of Apply, outside the lock, in
// the order of the messages.
#ifndef SWARM_AGENT_ENDPOINTS_H_
#define SWARM_AGENT_ENDPOINTS_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "proto/dispatcher.pb.h"

namespace swarm::agent {

class EndpointTable {
 public:
  // One network as the managers now describe it to this node.
  struct NetworkState {
    std::string network_id;
    std::optional<api::Network> network;       // nullopt: not sent (or no longer)
    std::vector<api::EndpointRecord> records;  // ordered by task ID
  };
  using Listener = std::function<void(const NetworkState& state)>;

  explicit EndpointTable(Listener listener = nullptr) : listener_(std::move(listener)) {}

  // Applies the networks and endpoint records of an assignments message (other assignments
  // are ignored).
  void Apply(const api::AssignmentsMessage& msg);

  NetworkState State(const std::string& network_id) const;
  // The networks with a network object or at least one record.
  std::vector<std::string> Networks() const;

 private:
  NetworkState StateLocked(const std::string& network_id) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  // network ID -> task ID -> record.
  std::map<std::string, std::map<std::string, api::EndpointRecord>> records_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, api::Network> networks_ ABSL_GUARDED_BY(mu_);
  // Serializes Apply, so listeners hear the networks' states in message order.
  absl::Mutex apply_mu_;
  const Listener listener_;
};

}  // namespace swarm::agent

#endif  // SWARM_AGENT_ENDPOINTS_H_

// EndpointTable: the endpoint records of the overlay networks this node takes part in, as the
// dispatcher's assignments bring them (manager/dispatcher/assignments.h): one record per live
// task on such a network, wherever it runs. The node's network layer reads them for its VXLAN
// forwarding and neighbour entries, DNS and load balancing.
//
// The agent hands every assignments message to Apply. A COMPLETE message replaces the table;
// an INCREMENTAL one updates and removes records. After each message the listener hears, once
// per network that changed, the network's records as they now are (none: the node left the
// network), so it can diff against what it programmed; level, not edge, so a listener that
// failed once catches up with the next call.
//
// Thread-safety: thread-safe; the listener runs on the caller of Apply, outside the lock, in
// the order of the messages.
#ifndef SWARM_AGENT_ENDPOINTS_H_
#define SWARM_AGENT_ENDPOINTS_H_

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "proto/dispatcher.pb.h"

namespace swarm::agent {

class EndpointTable {
 public:
  // The records of one network, ordered by task ID.
  using Listener = std::function<void(const std::string& network_id,
                                      const std::vector<api::EndpointRecord>& records)>;

  explicit EndpointTable(Listener listener = nullptr) : listener_(std::move(listener)) {}

  // Applies the endpoint records of an assignments message (other assignments are ignored).
  void Apply(const api::AssignmentsMessage& msg);

  std::vector<api::EndpointRecord> Records(const std::string& network_id) const;
  // The networks with at least one record.
  std::vector<std::string> Networks() const;

 private:
  mutable absl::Mutex mu_;
  // network ID -> task ID -> record.
  std::map<std::string, std::map<std::string, api::EndpointRecord>> networks_ ABSL_GUARDED_BY(mu_);
  // Serializes Apply, so listeners hear the networks' states in message order.
  absl::Mutex apply_mu_;
  const Listener listener_;
};

}  // namespace swarm::agent

#endif  // SWARM_AGENT_ENDPOINTS_H_

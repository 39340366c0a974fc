#include "agent/endpoints.h"

#include <set>

namespace swarm::agent {

void EndpointTable::Apply(const api::AssignmentsMessage& msg) {
  absl::MutexLock serial(&apply_mu_);
  std::set<std::string> touched;
  std::vector<NetworkState> changed;
  {
    absl::MutexLock lock(&mu_);
    if (msg.type() == api::ASSIGNMENTS_TYPE_COMPLETE) {
      for (const auto& [network_id, records] : records_) touched.insert(network_id);
      for (const auto& [network_id, network] : networks_) touched.insert(network_id);
      records_.clear();
      networks_.clear();
    }
    for (const api::AssignmentChange& c : msg.changes()) {
      const bool remove = c.action() == api::ASSIGNMENT_ACTION_REMOVE;
      if (c.assignment().has_network()) {
        const api::Network& n = c.assignment().network();
        touched.insert(n.id());
        if (remove) {
          networks_.erase(n.id());
        } else {
          networks_[n.id()] = n;
        }
        continue;
      }
      if (!c.assignment().has_endpoint_record()) continue;
      const api::EndpointRecord& r = c.assignment().endpoint_record();
      touched.insert(r.network_id());
      if (remove) {
        auto it = records_.find(r.network_id());
        if (it == records_.end()) continue;
        it->second.erase(r.task_id());
        if (it->second.empty()) records_.erase(it);
      } else {
        records_[r.network_id()][r.task_id()] = r;
      }
    }
    for (const std::string& network_id : touched) changed.push_back(StateLocked(network_id));
  }
  if (!listener_) return;
  for (const NetworkState& state : changed) listener_(state);
}

EndpointTable::NetworkState EndpointTable::StateLocked(const std::string& network_id) const {
  NetworkState state;
  state.network_id = network_id;
  if (auto it = networks_.find(network_id); it != networks_.end()) state.network = it->second;
  if (auto it = records_.find(network_id); it != records_.end()) {
    for (const auto& [task_id, r] : it->second) state.records.push_back(r);
  }
  return state;
}

EndpointTable::NetworkState EndpointTable::State(const std::string& network_id) const {
  absl::MutexLock lock(&mu_);
  return StateLocked(network_id);
}

std::vector<std::string> EndpointTable::Networks() const {
  absl::MutexLock lock(&mu_);
  std::set<std::string> ids;
  for (const auto& [network_id, records] : records_) ids.insert(network_id);
  for (const auto& [network_id, network] : networks_) ids.insert(network_id);
  return {ids.begin(), ids.end()};
}

}  // namespace swarm::agent

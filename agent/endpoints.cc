#include "agent/endpoints.h"

#include <set>

namespace swarm::agent {

void EndpointTable::Apply(const api::AssignmentsMessage& msg) {
  absl::MutexLock serial(&apply_mu_);
  std::set<std::string> touched;
  std::vector<std::pair<std::string, std::vector<api::EndpointRecord>>> changed;
  {
    absl::MutexLock lock(&mu_);
    if (msg.type() == api::ASSIGNMENTS_TYPE_COMPLETE) {
      for (const auto& [network_id, records] : networks_) touched.insert(network_id);
      networks_.clear();
    }
    for (const api::AssignmentChange& c : msg.changes()) {
      if (!c.assignment().has_endpoint_record()) continue;
      const api::EndpointRecord& r = c.assignment().endpoint_record();
      touched.insert(r.network_id());
      if (c.action() == api::ASSIGNMENT_ACTION_REMOVE) {
        auto it = networks_.find(r.network_id());
        if (it == networks_.end()) continue;
        it->second.erase(r.task_id());
        if (it->second.empty()) networks_.erase(it);
      } else {
        networks_[r.network_id()][r.task_id()] = r;
      }
    }
    for (const std::string& network_id : touched) {
      std::vector<api::EndpointRecord> records;
      if (auto it = networks_.find(network_id); it != networks_.end()) {
        for (const auto& [task_id, r] : it->second) records.push_back(r);
      }
      changed.emplace_back(network_id, std::move(records));
    }
  }
  if (!listener_) return;
  for (const auto& [network_id, records] : changed) listener_(network_id, records);
}

std::vector<api::EndpointRecord> EndpointTable::Records(const std::string& network_id) const {
  absl::MutexLock lock(&mu_);
  std::vector<api::EndpointRecord> out;
  if (auto it = networks_.find(network_id); it != networks_.end()) {
    for (const auto& [task_id, r] : it->second) out.push_back(r);
  }
  return out;
}

std::vector<std::string> EndpointTable::Networks() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [network_id, records] : networks_) out.push_back(network_id);
  return out;
}

}  // namespace swarm::agent

#include "manager/dispatcher/assignments.h"

#include <algorithm>
#include <map>
#include <vector>

namespace swarm::manager::dispatcher {
namespace {

uint64_t VersionOf(const api::Meta& meta) { return meta.version().index(); }

// The IDs in held that current lacks, sorted.
template <typename Current>
std::vector<std::string> Gone(const absl::flat_hash_map<std::string, uint64_t>& held,
                              const Current& current) {
  std::vector<std::string> gone;
  for (const auto& [id, version] : held) {
    if (!current.contains(id)) gone.push_back(id);
  }
  std::sort(gone.begin(), gone.end());
  return gone;
}

}  // namespace

bool IsAssigned(const api::Task& task) {
  return !task.node_id().empty() && task.status().state() >= api::TASK_STATE_ASSIGNED;
}

NodeAssignments ReadAssignments(const store::ReadTx& tx, const std::string& node_id) {
  NodeAssignments now;
  auto& [tasks, secrets, configs] = now;
  for (const store::Ptr<api::Task>& t : tx.TasksByNode(node_id)) {
    if (!IsAssigned(*t)) continue;
    tasks.emplace(t->id(), t);
    if (t->status().state() > api::TASK_STATE_RUNNING || !t->spec().has_container()) continue;
    for (const api::SecretReference& ref : t->spec().container().secrets()) {
      if (secrets.contains(ref.secret_id())) continue;
      // A reference to a missing secret is the control API's to refuse; the agent fails the
      // task when it cannot find one.
      if (store::Ptr<api::Secret> s = tx.GetSecret(ref.secret_id())) secrets.emplace(s->id(), s);
    }
    for (const api::ConfigReference& ref : t->spec().container().configs()) {
      if (configs.contains(ref.config_id())) continue;
      if (store::Ptr<api::Config> c = tx.GetConfig(ref.config_id())) configs.emplace(c->id(), c);
    }
  }
  return now;
}

std::optional<api::AssignmentsMessage> AssignmentSet::Next(const store::ReadTx& tx,
                                                           const std::string& node_id) {
  return Next(ReadAssignments(tx, node_id));
}

std::optional<api::AssignmentsMessage> AssignmentSet::Next(const NodeAssignments& now) {
  const auto& [tasks, secrets, configs] = now;

  const bool complete = sequence_ == 0;
  api::AssignmentsMessage msg;
  auto change = [&msg](api::AssignmentAction action) {
    api::AssignmentChange* c = msg.add_changes();
    c->set_action(action);
    return c->mutable_assignment();
  };
  // Updates, dependencies first. A COMPLETE message carries everything.
  auto changed = [complete](const Versions& held, const std::string& id, const api::Meta& meta) {
    if (complete) return true;
    auto it = held.find(id);
    return it == held.end() || it->second != VersionOf(meta);
  };
  for (const auto& [id, s] : secrets) {
    if (changed(secrets_, id, s->meta()))
      *change(api::ASSIGNMENT_ACTION_UPDATE)->mutable_secret() = *s;
  }
  for (const auto& [id, c] : configs) {
    if (changed(configs_, id, c->meta()))
      *change(api::ASSIGNMENT_ACTION_UPDATE)->mutable_config() = *c;
  }
  for (const auto& [id, t] : tasks) {
    if (changed(tasks_, id, t->meta())) *change(api::ASSIGNMENT_ACTION_UPDATE)->mutable_task() = *t;
  }
  // Removals, dependents first; only the key is sent.
  if (!complete) {
    for (const std::string& id : Gone(tasks_, tasks)) {
      change(api::ASSIGNMENT_ACTION_REMOVE)->mutable_task()->set_id(id);
    }
    for (const std::string& id : Gone(secrets_, secrets)) {
      change(api::ASSIGNMENT_ACTION_REMOVE)->mutable_secret()->set_id(id);
    }
    for (const std::string& id : Gone(configs_, configs)) {
      change(api::ASSIGNMENT_ACTION_REMOVE)->mutable_config()->set_id(id);
    }
    if (msg.changes().empty()) return std::nullopt;
  }

  tasks_.clear();
  for (const auto& [id, t] : tasks) tasks_[id] = VersionOf(t->meta());
  secrets_.clear();
  for (const auto& [id, s] : secrets) secrets_[id] = VersionOf(s->meta());
  configs_.clear();
  for (const auto& [id, c] : configs) configs_[id] = VersionOf(c->meta());

  msg.set_type(complete ? api::ASSIGNMENTS_TYPE_COMPLETE : api::ASSIGNMENTS_TYPE_INCREMENTAL);
  if (!complete) msg.set_applies_to(std::to_string(sequence_));
  ++sequence_;
  msg.set_results_in(std::to_string(sequence_));
  return msg;
}

}  // namespace swarm::manager::dispatcher

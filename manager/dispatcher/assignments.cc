#include "manager/dispatcher/assignments.h"

#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/ip.h"

namespace swarm::manager::dispatcher {
namespace {

uint64_t VersionOf(const api::Meta& meta) { return meta.version().index(); }

// The IDs in held that current lacks, sorted.
template <typename Held, typename Current>
std::vector<std::string> Gone(const Held& held, const Current& current) {
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

bool HasEndpoint(const api::Task& task) {
  return IsAssigned(task) && task.status().state() <= api::TASK_STATE_RUNNING;
}

std::string EndpointMac(std::string_view cidr) {
  const std::optional<IpAddress> ip = ParseIp(cidr.substr(0, cidr.find('/')));
  if (!ip || ip->family != AF_INET) return "";
  return absl::StrFormat("02:42:%02x:%02x:%02x:%02x", ip->bytes[0], ip->bytes[1], ip->bytes[2],
                         ip->bytes[3]);
}

std::string LoadBalancerId(const std::string& node_id) { return absl::StrCat("lb-", node_id); }

std::string NodeAddressOn(const api::Node& node, const std::string& network_id) {
  for (const api::NetworkAttachment& a : node.attachments()) {
    if (a.network().id() == network_id && a.addresses_size() > 0) return a.addresses(0);
  }
  return "";
}

namespace {

const api::NetworkAttachment* AttachmentTo(const api::Task& task, const std::string& network_id) {
  for (const api::NetworkAttachment& a : task.networks()) {
    if (a.network().id() == network_id && a.addresses_size() > 0) return &a;
  }
  return nullptr;
}

api::EndpointRecord RecordOf(const NodeAssignments::EndpointSource& src,
                             const std::string& network_id) {
  if (src.task == nullptr) {
    const api::Node& n = *src.node;
    api::EndpointRecord r;
    r.set_network_id(network_id);
    r.set_task_id(LoadBalancerId(n.id()));
    r.set_load_balancer(true);
    r.set_ip(NodeAddressOn(n, network_id));
    r.set_mac(EndpointMac(r.ip()));
    r.set_node_id(n.id());
    r.set_node_addr(n.status().addr());
    return r;
  }
  const api::Task& t = *src.task;
  const api::NetworkAttachment* a = AttachmentTo(t, network_id);
  api::EndpointRecord r;
  r.set_network_id(network_id);
  r.set_task_id(t.id());
  r.set_task_name(t.annotations().name().empty() ? t.id() : t.annotations().name());
  r.set_service_id(t.service_id());
  r.set_node_id(t.node_id());
  if (a != nullptr) {
    r.set_ip(a->addresses(0));
    r.set_mac(EndpointMac(a->addresses(0)));
    for (const std::string& alias : a->aliases()) r.add_aliases(alias);
  }
  if (src.node) r.set_node_addr(src.node->status().addr());
  if (src.service) {
    r.set_service_name(src.service->spec().annotations().name());
    for (const api::VirtualIP& vip : src.service->endpoint().virtual_ips()) {
      if (vip.network_id() == network_id) r.set_virtual_ip(vip.addr());
    }
    if (src.network_is_ingress) {
      for (const api::PortConfig& p : src.service->endpoint().ports()) {
        if (p.publish_mode() == api::PUBLISH_MODE_INGRESS) *r.add_ingress_ports() = p;
      }
    }
  }
  r.set_service_disabled(t.status().state() != api::TASK_STATE_RUNNING ||
                         t.desired_state() > api::TASK_STATE_RUNNING);
  return r;
}

// What a record is built from, as store versions: a record changes when one of them does.
std::array<uint64_t, 3> SourceVersion(const NodeAssignments::EndpointSource& src) {
  return {src.task ? VersionOf(src.task->meta()) : 0,
          src.service ? VersionOf(src.service->meta()) : 0,
          src.node ? VersionOf(src.node->meta()) : 0};
}

// The node an endpoint is on.
const std::string& NodeOf(const NodeAssignments::EndpointSource& src) {
  return src.task ? src.task->node_id() : src.node->id();
}

// The swarm's ingress network, if there is one.
store::Ptr<api::Network> IngressNetwork(const store::ReadTx& tx) {
  for (const store::Ptr<api::Network>& n : tx.ListNetworks()) {
    if (n->spec().ingress()) return n;
  }
  return nullptr;
}

std::string EndpointKey(const std::string& network_id, const std::string& task_id) {
  return absl::StrCat(network_id, "/", task_id);
}

}  // namespace

NodeAssignments ReadAssignments(const store::ReadTx& tx, const std::string& node_id) {
  NodeAssignments now;
  auto& [tasks, secrets, configs, networks, endpoints] = now;
  // The networks the node takes part in, before they are looked up.
  std::set<std::string> network_ids;
  for (const store::Ptr<api::Task>& t : tx.TasksByNode(node_id)) {
    if (!IsAssigned(*t)) continue;
    tasks.emplace(t->id(), t);
    if (HasEndpoint(*t)) {
      for (const api::NetworkAttachment& a : t->networks()) network_ids.insert(a.network().id());
    }
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
  // The node's ingress sandbox: it takes part in the ingress network even without a task on it.
  if (const store::Ptr<api::Network> ingress = IngressNetwork(tx)) {
    const store::Ptr<api::Node> self = tx.GetNode(node_id);
    if (self != nullptr && !NodeAddressOn(*self, ingress->id()).empty()) {
      network_ids.insert(ingress->id());
    }
  }
  // Every live endpoint on those networks.
  std::map<std::string, store::Ptr<api::Service>> services;
  std::map<std::string, store::Ptr<api::Node>> nodes;
  for (const std::string& network_id : network_ids) {
    const store::Ptr<api::Network> network = tx.GetNetwork(network_id);
    if (network == nullptr) continue;
    networks.emplace(network_id, network);
    if (network->spec().ingress()) {
      for (const store::Ptr<api::Node>& n : tx.ListNodes()) {
        if (NodeAddressOn(*n, network_id).empty()) continue;
        endpoints.emplace(std::make_pair(network_id, LoadBalancerId(n->id())),
                          NodeAssignments::EndpointSource{nullptr, nullptr, n, true});
      }
    }
    for (const store::Ptr<api::Task>& t : tx.TasksByNetwork(network_id)) {
      if (!HasEndpoint(*t) || AttachmentTo(*t, network_id) == nullptr) continue;
      auto s = services.find(t->service_id());
      if (s == services.end())
        s = services.emplace(t->service_id(), tx.GetService(t->service_id())).first;
      auto n = nodes.find(t->node_id());
      if (n == nodes.end()) n = nodes.emplace(t->node_id(), tx.GetNode(t->node_id())).first;
      endpoints.emplace(
          std::make_pair(network_id, t->id()),
          NodeAssignments::EndpointSource{t, s->second, n->second, network->spec().ingress()});
    }
  }
  return now;
}

std::optional<api::AssignmentsMessage> AssignmentSet::Next(const store::ReadTx& tx,
                                                           const std::string& node_id) {
  return Next(ReadAssignments(tx, node_id));
}

std::optional<api::AssignmentsMessage> AssignmentSet::Next(const NodeAssignments& now) {
  const auto& [tasks, secrets, configs, networks, endpoints] = now;

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
  // Networks before their endpoints, endpoints before tasks: a task's peers are known when it
  // starts.
  for (const auto& [id, n] : networks) {
    if (changed(networks_, id, n->meta()))
      *change(api::ASSIGNMENT_ACTION_UPDATE)->mutable_network() = *n;
  }
  EndpointVersions held_endpoints;
  for (const auto& [key, src] : endpoints) {
    std::string k = EndpointKey(key.first, key.second);
    const std::array<uint64_t, 3> version = SourceVersion(src);
    auto it = endpoints_.find(k);
    if (complete || it == endpoints_.end() || it->second != version) {
      *change(api::ASSIGNMENT_ACTION_UPDATE)->mutable_endpoint_record() = RecordOf(src, key.first);
    }
    held_endpoints.emplace(std::move(k), version);
  }
  for (const auto& [id, t] : tasks) {
    if (changed(tasks_, id, t->meta())) *change(api::ASSIGNMENT_ACTION_UPDATE)->mutable_task() = *t;
  }
  // Removals, dependents first; only the key is sent.
  if (!complete) {
    for (const std::string& id : Gone(tasks_, tasks)) {
      change(api::ASSIGNMENT_ACTION_REMOVE)->mutable_task()->set_id(id);
    }
    for (const std::string& key : Gone(endpoints_, held_endpoints)) {
      const size_t slash = key.find('/');
      api::EndpointRecord* r = change(api::ASSIGNMENT_ACTION_REMOVE)->mutable_endpoint_record();
      r->set_network_id(key.substr(0, slash));
      r->set_task_id(key.substr(slash + 1));
    }
    for (const std::string& id : Gone(networks_, networks)) {
      change(api::ASSIGNMENT_ACTION_REMOVE)->mutable_network()->set_id(id);
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
  networks_.clear();
  for (const auto& [id, n] : networks) networks_[id] = VersionOf(n->meta());
  endpoints_ = std::move(held_endpoints);
  endpoint_nodes_.clear();
  for (const auto& [key, src] : endpoints) endpoint_nodes_.insert(NodeOf(src));

  msg.set_type(complete ? api::ASSIGNMENTS_TYPE_COMPLETE : api::ASSIGNMENTS_TYPE_INCREMENTAL);
  if (!complete) msg.set_applies_to(std::to_string(sequence_));
  ++sequence_;
  msg.set_results_in(std::to_string(sequence_));
  return msg;
}

}  // namespace swarm::manager::dispatcher

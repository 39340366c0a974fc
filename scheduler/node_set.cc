#include "scheduler/node_set.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace swarm::scheduler {
namespace {

[[noreturn]] void Fatal(const std::string& message) {
  std::fprintf(stderr, "scheduler: node set invariant broken: %s\n", message.c_str());
  std::abort();
}

void AddPorts(const google::protobuf::RepeatedPtrField<api::PortConfig>& ports,
              std::vector<HostPort>* out) {
  for (const api::PortConfig& p : ports) {
    if (p.publish_mode() == api::PUBLISH_MODE_HOST && p.published_port() != 0) {
      out->push_back(MakeHostPort(p.protocol(), p.published_port()));
    }
  }
}

uint64_t IdPrefix(const std::string& id) {
  uint64_t p = 0;
  for (size_t i = 0; i < 8; ++i) {
    p = p << 8 | (i < id.size() ? static_cast<unsigned char>(id[i]) : 0);
  }
  return p;
}

}  // namespace

bool HoldsNode(const api::Task& task) {
  return !task.node_id().empty() && task.status().state() >= api::TASK_STATE_ASSIGNED &&
         task.status().state() <= api::TASK_STATE_RUNNING;
}

std::vector<HostPort> HostPortsOf(const api::Task& task) {
  std::vector<HostPort> out;
  if (!task.has_endpoint()) return out;
  AddPorts(task.endpoint().ports(), &out);
  AddPorts(task.endpoint().spec().ports(), &out);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// ---- NodeInfo ----

int64_t NodeInfo::available_cpu() const {
  const int64_t total = node_ ? node_->description().resources().nano_cpus() : 0;
  return total - reserved_cpu_;
}

int64_t NodeInfo::available_memory() const {
  const int64_t total = node_ ? node_->description().resources().memory_bytes() : 0;
  return total - reserved_memory_;
}

int32_t NodeInfo::ServiceTasks(ServiceKey service) const {
  if (service == kNoService) return 0;
  auto it = tasks_by_service_.find(service);
  return it == tasks_by_service_.end() ? 0 : it->second;
}

// ---- NodeSet ----

NodeInfo* NodeSet::GetOrCreate(const std::string& node_id) {
  auto [it, fresh] = by_id_.try_emplace(node_id);
  if (fresh) {
    uint32_t slot;
    if (free_slots_.empty()) {
      slot = static_cast<uint32_t>(slots_.size());
      slots_.emplace_back();
    } else {
      slot = free_slots_.back();
      free_slots_.pop_back();
    }
    it->second.reset(new NodeInfo(node_id, slot));
    slots_[slot] = Slot{it->second.get(), IdPrefix(node_id), 0};
  }
  return it->second.get();
}

NodeInfo* NodeSet::Find(const std::string& node_id) {
  auto it = by_id_.find(node_id);
  return it == by_id_.end() ? nullptr : it->second.get();
}

const NodeInfo* NodeSet::Find(const std::string& node_id) const {
  auto it = by_id_.find(node_id);
  return it == by_id_.end() ? nullptr : it->second.get();
}

void NodeSet::UpsertNode(std::shared_ptr<const api::Node> node) {
  NodeInfo* info = GetOrCreate(node->id());
  if (info->node_ == nullptr) {
    info->index_ = nodes_.size();
    nodes_.push_back(info);
  }
  info->node_ = std::move(node);
  NodeChanged(info);
}

void NodeSet::NodeChanged(const NodeInfo* node) {
  ++generation_;
  changes_.emplace_back(generation_, node->slot_);
  if (changes_.size() > kChangeLog) changes_.pop_front();
}

bool NodeSet::ChangedSince(uint64_t generation, std::vector<uint32_t>* slots) const {
  if (generation >= generation_) return true;
  if (changes_.empty() || changes_.front().first > generation + 1) return false;
  for (auto it = changes_.begin() + (generation + 1 - changes_.front().first); it != changes_.end();
       ++it) {
    slots->push_back(it->second);
  }
  return true;
}

void NodeSet::RemoveNode(const std::string& node_id) {
  NodeInfo* info = Find(node_id);
  if (info == nullptr || info->node_ == nullptr) return;
  NodeInfo* last = nodes_.back();
  nodes_[info->index_] = last;
  last->index_ = info->index_;
  nodes_.pop_back();
  info->node_ = nullptr;
  NodeChanged(info);
  MaybeErase(info);
}

void NodeSet::MaybeErase(NodeInfo* node) {
  if (node->node_ != nullptr || node->total_tasks_ != 0) return;
  slots_[node->slot_] = Slot{};
  free_slots_.push_back(node->slot_);
  by_id_.erase(node->id_);
}

ServiceKey NodeSet::FindService(const std::string& service_id) const {
  auto it = service_keys_.find(service_id);
  return it == service_keys_.end() ? kNoService : it->second;
}

const absl::flat_hash_map<uint32_t, int32_t>& NodeSet::ServiceSlots(ServiceKey service) const {
  static const absl::flat_hash_map<uint32_t, int32_t> kNone;
  return service == kNoService ? kNone : services_[service].slots;
}

ServiceKey NodeSet::AcquireService(const std::string& service_id) {
  auto [it, fresh] = service_keys_.try_emplace(service_id, kNoService);
  if (fresh) {
    if (free_services_.empty()) {
      it->second = static_cast<ServiceKey>(services_.size());
      services_.push_back(Service{service_id, 0, {}});
    } else {
      it->second = free_services_.back();
      free_services_.pop_back();
      services_[it->second].id = service_id;
    }
  }
  ++services_[it->second].tasks;
  return it->second;
}

void NodeSet::ReleaseService(ServiceKey key) {
  Service& s = services_[key];
  if (--s.tasks > 0) return;
  service_keys_.erase(s.id);
  s.id.clear();
  s.slots.clear();
  free_services_.push_back(key);
}

void NodeSet::Count(const std::string& task_id, const api::Task& task, NodeInfo* node) {
  Counted c;
  c.node = node;
  c.service = AcquireService(task.service_id());
  c.cpu = task.spec().resources().reservations().nano_cpus();
  c.memory = task.spec().resources().reservations().memory_bytes();
  c.ports = HostPortsOf(task);
  c.version = task.meta().version().index();
  node->reserved_cpu_ += c.cpu;
  node->reserved_memory_ += c.memory;
  ++node->total_tasks_;
  ++slots_[node->slot_].total_tasks;
  ++node->tasks_by_service_[c.service];
  ++services_[c.service].slots[node->slot_];
  for (HostPort p : c.ports) ++node->host_ports_[p];
  // Uncount the previous record only now: the service key and the node must not be freed in
  // between when the task stays where it was.
  auto [it, fresh] = tasks_.try_emplace(task_id);
  if (!fresh) Uncount(it->second);
  it->second = std::move(c);
}

void NodeSet::Uncount(const Counted& c) {
  NodeInfo* node = c.node;
  node->reserved_cpu_ -= c.cpu;
  node->reserved_memory_ -= c.memory;
  --node->total_tasks_;
  --slots_[node->slot_].total_tasks;
  auto s = node->tasks_by_service_.find(c.service);
  if (--s->second == 0) node->tasks_by_service_.erase(s);
  auto& service_slots = services_[c.service].slots;
  auto slot = service_slots.find(node->slot_);
  if (--slot->second == 0) service_slots.erase(slot);
  for (HostPort p : c.ports) {
    auto it = node->host_ports_.find(p);
    if (--it->second == 0) node->host_ports_.erase(it);
  }
  ReleaseService(c.service);
  MaybeErase(node);
}

void NodeSet::UpsertTask(const api::Task& task) {
  if (!HoldsNode(task)) {
    RemoveTask(task.id());
    return;
  }
  Count(task.id(), task, GetOrCreate(task.node_id()));
}

void NodeSet::RemoveTask(const std::string& task_id) {
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return;
  Counted c = std::move(it->second);
  tasks_.erase(it);
  Uncount(c);
}

ServiceKey NodeSet::Assign(const api::Task& task, NodeInfo* node) {
  Count(task.id(), task, node);
  return tasks_.find(task.id())->second.service;
}

std::optional<uint64_t> NodeSet::TaskVersion(const std::string& task_id) const {
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return std::nullopt;
  return it->second.version;
}

void NodeSet::CheckInvariants() const {
  struct Sums {
    int64_t cpu = 0, memory = 0;
    int32_t total = 0;
    absl::flat_hash_map<ServiceKey, int32_t> services;
    absl::flat_hash_map<HostPort, int32_t> ports;
  };
  absl::flat_hash_map<const NodeInfo*, Sums> sums;
  absl::flat_hash_map<ServiceKey, int32_t> service_tasks;
  absl::flat_hash_map<ServiceKey, absl::flat_hash_map<uint32_t, int32_t>> service_slots;
  for (const auto& [id, c] : tasks_) {
    if (c.node == nullptr) Fatal("task " + id + " is counted on no node");
    auto node = by_id_.find(c.node->id_);
    if (node == by_id_.end() || node->second.get() != c.node) {
      Fatal("task " + id + " is counted on a node the set does not hold");
    }
    Sums& s = sums[c.node];
    s.cpu += c.cpu;
    s.memory += c.memory;
    ++s.total;
    ++s.services[c.service];
    for (HostPort p : c.ports) ++s.ports[p];
    ++service_tasks[c.service];
    ++service_slots[c.service][c.node->slot_];
  }
  size_t known = 0;
  for (const auto& [id, info] : by_id_) {
    if (info->id_ != id) Fatal("node " + id + " is filed under another ID");
    if (info->slot_ >= slots_.size() || slots_[info->slot_].info != info.get() ||
        slots_[info->slot_].id_prefix != IdPrefix(id) ||
        slots_[info->slot_].total_tasks != info->total_tasks_) {
      Fatal("node " + id + " does not match its slot");
    }
    const Sums& s = sums[info.get()];
    if (info->reserved_cpu_ != s.cpu || info->reserved_memory_ != s.memory) {
      Fatal("node " + id + " reservations differ from its tasks'");
    }
    if (info->total_tasks_ != s.total || info->tasks_by_service_ != s.services) {
      Fatal("node " + id + " task counts differ from its tasks");
    }
    if (info->host_ports_ != s.ports) Fatal("node " + id + " ports differ from its tasks'");
    if (info->node_ == nullptr) {
      if (info->total_tasks_ == 0) Fatal("placeholder " + id + " has no tasks");
      continue;
    }
    ++known;
    if (info->index_ >= nodes_.size() || nodes_[info->index_] != info.get()) {
      Fatal("node " + id + " is not at its place in the node list");
    }
  }
  if (known != nodes_.size()) Fatal("the node list holds nodes the set does not know");
  for (const auto& [id, key] : service_keys_) {
    if (key < 0 || key >= static_cast<ServiceKey>(services_.size()) || services_[key].id != id) {
      Fatal("service " + id + " has a stale key");
    }
    if (services_[key].tasks != service_tasks[key]) {
      Fatal("service " + id + " task count differs from its tasks");
    }
    if (services_[key].slots != service_slots[key]) {
      Fatal("service " + id + " nodes differ from its tasks'");
    }
  }
  if (service_keys_.size() + free_services_.size() != services_.size()) {
    Fatal("service keys leak");
  }
  size_t used_slots = 0;
  for (const Slot& slot : slots_) used_slots += slot.info != nullptr;
  if (used_slots != by_id_.size() || used_slots + free_slots_.size() != slots_.size()) {
    Fatal("slots leak");
  }
  if (!changes_.empty() && changes_.back().first != generation_) {
    Fatal("the change log does not end at the generation");
  }
}

}  // namespace swarm::scheduler

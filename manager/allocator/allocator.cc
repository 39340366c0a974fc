#include "manager/allocator/allocator.h"

#include <google/protobuf/util/message_differencer.h>
#include <pthread.h>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/network_modes.h"
#include "common/proto_time.h"

namespace swarm::manager::allocator {
namespace {

constexpr char kLog[] = "allocator";
constexpr absl::Duration kPoll = absl::Milliseconds(100);
constexpr char kWaitingMessage[] = "waiting for network allocation";

bool Waiting(const api::Task& t) {
  return t.status().state() == api::TASK_STATE_NEW && t.desired_state() <= api::TASK_STATE_COMPLETE;
}

// A task that ended holds nothing: its container is gone. Nor does one that was never assigned
// and is no longer wanted (scaled down while pending): it will never run, because the scheduler
// places only tasks wanted running or complete, and a placement computed before the change
// loses the version race against it.
bool Ended(const api::Task& t) {
  return t.status().state() > api::TASK_STATE_RUNNING ||
         (t.status().state() < api::TASK_STATE_ASSIGNED &&
          t.desired_state() > api::TASK_STATE_COMPLETE);
}

bool PublishesIngress(const api::EndpointSpec& e) {
  for (const api::PortConfig& p : e.ports()) {
    if (p.publish_mode() == api::PUBLISH_MODE_INGRESS) return true;
  }
  return false;
}

// The spec's IPv4 address request. IPv6 subnets are not allocated (yet): say so.
absl::StatusOr<NetworkRequest> RequestOf(const api::Network& n) {
  NetworkRequest r;
  r.name = n.spec().annotations().name();
  bool have = false;
  for (const api::IPAMConfig& c : n.spec().ipam().configs()) {
    if (c.family() == api::ADDRESS_FAMILY_IPV6 || c.subnet().find(':') != std::string::npos) {
      return absl::UnimplementedError(absl::StrCat(
          "network ", r.name, ": IPv6 overlay subnets are not supported yet; use an IPv4 subnet"));
    }
    if (have) {
      return absl::UnimplementedError(absl::StrCat(
          "network ", r.name, ": only one IPv4 subnet per overlay network is supported"));
    }
    have = true;
    r.subnet = c.subnet();
    r.range = c.range();
    r.gateway = c.gateway();
    for (const auto& [name, ip] : c.reserved()) r.reserved.push_back(ip);
  }
  return r;
}

NetworkAllocation AllocationOf(const api::Network& n) {
  NetworkAllocation a;
  if (n.ipam().configs_size() > 0) {
    a.subnet = n.ipam().configs(0).subnet();
    a.range = n.ipam().configs(0).range();
    a.gateway = n.ipam().configs(0).gateway();
  }
  a.vni = VniOf(n);
  return a;
}

void SetAllocation(const NetworkAllocation& a, api::Network* n) {
  api::Driver* d = n->mutable_driver_state();
  d->set_name(n->spec().driver_config().name().empty() ? "overlay"
                                                       : n->spec().driver_config().name());
  (*d->mutable_options())[kVxlanIdOption] = absl::StrCat(a.vni);
  api::IPAMOptions* ipam = n->mutable_ipam();
  ipam->Clear();
  ipam->mutable_driver()->set_name("default");
  api::IPAMConfig* c = ipam->add_configs();
  c->set_family(api::ADDRESS_FAMILY_IPV4);
  c->set_subnet(a.subnet);
  c->set_range(a.range);
  c->set_gateway(a.gateway);
  for (const api::IPAMConfig& want : n->spec().ipam().configs()) {
    *c->mutable_reserved() = want.reserved();
  }
}

// The ingress network, if there is one.
store::Ptr<api::Network> Ingress(const store::ReadTx& tx) {
  for (const auto& n : tx.ListNetworks()) {
    if (n->spec().ingress()) return n;
  }
  return nullptr;
}

// The networks a service's VIPs belong to, in order: the ingress network when it publishes
// ports in ingress mode, then its own. None in DNSRR mode.
std::vector<std::string> VipNetworks(const store::ReadTx& tx, const api::Service& s,
                                     const api::Network* ingress) {
  std::vector<std::string> out;
  if (s.spec().endpoint_spec().mode() == api::RESOLUTION_MODE_DNSRR) return out;
  if (ingress != nullptr && PublishesIngress(s.spec().endpoint_spec())) {
    out.push_back(ingress->id());
  }
  for (const api::NetworkAttachmentConfig& c : s.spec().task_template().networks()) {
    if (tx.GetNetwork(c.target()) != nullptr) out.push_back(c.target());
  }
  return out;
}

bool ServiceAllocated(const store::ReadTx& tx, const api::Service& s, const api::Network* ingress) {
  if (!s.has_endpoint()) return false;
  if (!google::protobuf::util::MessageDifferencer::Equals(s.endpoint().spec(),
                                                          s.spec().endpoint_spec())) {
    return false;
  }
  if (PublishesIngress(s.spec().endpoint_spec()) && ingress == nullptr) return false;
  const std::vector<std::string> want = VipNetworks(tx, s, ingress);
  if (want.size() != static_cast<size_t>(s.endpoint().virtual_ips_size())) return false;
  for (size_t i = 0; i < want.size(); ++i) {
    if (s.endpoint().virtual_ips(i).network_id() != want[i]) return false;
  }
  return true;
}

}  // namespace

bool NetworkAllocated(const api::Network& n) {
  return VniOf(n) != 0 && n.ipam().configs_size() > 0 && !n.ipam().configs(0).subnet().empty();
}

uint32_t VniOf(const api::Network& n) {
  auto it = n.driver_state().options().find(kVxlanIdOption);
  uint32_t vni = 0;
  if (it == n.driver_state().options().end() || !absl::SimpleAtoi(it->second, &vni)) return 0;
  return vni;
}

void Allocator::Start() {
  auto watch = store_->WatchFrom(0);
  if (watch.ok()) watch_ = *watch;
  thread_ = std::thread([this] { Run(); });
}

void Allocator::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  if (watch_) watch_->Close();
}

void Allocator::Run() {
  pthread_setname_np(pthread_self(), "allocator");
  Rebuild();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    if (changed_) {
      // Something was released or allocated: what was blocked may fit now.
      networks_todo_.merge(networks_blocked_);
      services_todo_.merge(services_blocked_);
      tasks_todo_.merge(tasks_blocked_);
      nodes_todo_.merge(nodes_blocked_);
      changed_ = false;
    }
    const bool idle = networks_todo_.empty() && services_todo_.empty() && tasks_todo_.empty() &&
                      nodes_todo_.empty() && !all_nodes_todo_;
    if (watch_ != nullptr) {
      for (auto e = watch_->Next(idle ? kPoll : absl::ZeroDuration()); e.has_value();
           e = watch_->Next(absl::ZeroDuration())) {
        OnEvent(*e);
      }
    } else {
      clock_->SleepFor(kPoll);
    }
    if (rebuild_) {
      // Between rounds every allocation is in the store: starting over loses nothing.
      ipam_.reset();
      services_.clear();
      tasks_.clear();
      nodes_.clear();
      for (auto* set : {&networks_todo_, &services_todo_, &tasks_todo_, &nodes_todo_,
                        &networks_blocked_, &services_blocked_, &tasks_blocked_, &nodes_blocked_}) {
        set->clear();
      }
      all_nodes_todo_ = false;
      network_errors_.clear();
      service_errors_.clear();
      node_error_.clear();
      rebuild_ = false;
      Rebuild();
    }
    if (clock_->Now() < retry_at_) {
      clock_->SleepFor(std::min(kRetryAfter, retry_at_ - clock_->Now()));
      continue;
    }
    Round();
  }
}

void Allocator::Rebuild() {
  PoolConfig pools;
  store_->View([&](const store::ReadTx& tx) {
    for (const auto& c : tx.ListClusters()) {
      pools.pools.assign(c->default_address_pool().begin(), c->default_address_pool().end());
      pools.subnet_size = static_cast<int>(c->subnet_size());
      pools_ = pools.pools;
      subnet_size_ = c->subnet_size();
    }
    absl::StatusOr<Ipam> ipam = Ipam::Create(pools);
    if (!ipam.ok()) {
      log::Error(kLog, "the cluster's default address pools are unusable; using 10.0.0.0/8",
                 {{"reason", ipam.status()}});
      ipam = Ipam::Create({});
    }
    ipam_.emplace(*std::move(ipam));

    for (const auto& n : tx.ListNetworks()) {
      if (!NetworkAllocated(*n)) {
        networks_todo_.insert(n->id());
        continue;
      }
      absl::StatusOr<NetworkRequest> request = RequestOf(*n);
      absl::Status s = request.status();
      if (s.ok()) s = ipam_->RestoreNetwork(n->id(), *request, AllocationOf(*n));
      if (!s.ok()) {
        log::Error(kLog, "a stored network allocation conflicts with another; its tasks wait",
                   {{"network", n->id()}, {"reason", s}});
        network_errors_[n->id()] = std::string(s.message());
      }
    }
    for (const auto& svc : tx.ListServices()) {
      ServiceHolding& h = services_[svc->id()];
      for (const api::VirtualIP& vip : svc->endpoint().virtual_ips()) {
        const absl::Status s = ipam_->ClaimAddress(vip.network_id(), vip.addr());
        if (s.ok()) {
          h.vips[vip.network_id()] = vip.addr();
        } else if (s.code() != absl::StatusCode::kNotFound) {
          log::Error(kLog, "a stored VIP conflicts", {{"service", svc->id()}, {"reason", s}});
        }
      }
      for (const api::PortConfig& p : svc->endpoint().ports()) {
        if (p.publish_mode() != api::PUBLISH_MODE_INGRESS || p.published_port() == 0) continue;
        auto port = ipam_->AllocatePort(p.protocol(), p.published_port(), svc->id(),
                                        svc->spec().annotations().name());
        if (port.ok()) {
          h.ports.insert({p.protocol(), p.published_port()});
        } else {
          log::Error(kLog, "a stored published port conflicts",
                     {{"service", svc->id()}, {"reason", port.status()}});
        }
      }
      services_todo_.insert(svc->id());
    }
    for (const auto& t : tx.ListTasks()) {
      if (Waiting(*t)) tasks_todo_.insert(t->id());
      if (Ended(*t)) continue;
      Addresses held;
      for (const api::NetworkAttachment& a : t->networks()) {
        for (const std::string& addr : a.addresses()) {
          const absl::Status s = ipam_->ClaimAddress(a.network().id(), addr);
          if (s.ok()) {
            held.emplace_back(a.network().id(), addr);
          } else if (s.code() != absl::StatusCode::kNotFound) {
            log::Error(kLog, "a stored task address conflicts", {{"task", t->id()}, {"reason", s}});
          }
        }
      }
      if (!held.empty()) tasks_[t->id()] = std::move(held);
    }
    for (const auto& n : tx.ListNodes()) {
      // An address that cannot be claimed (its network is gone, or it conflicts) is replaced or
      // dropped by the nodes phase.
      nodes_todo_.insert(n->id());
      Addresses held;
      for (const api::NetworkAttachment& a : n->attachments()) {
        for (const std::string& addr : a.addresses()) {
          const absl::Status s = ipam_->ClaimAddress(a.network().id(), addr);
          if (s.ok()) {
            held.emplace_back(a.network().id(), addr);
          } else if (s.code() != absl::StatusCode::kNotFound) {
            log::Error(kLog, "a stored node address conflicts; the node gets another",
                       {{"node", n->id()}, {"reason", s}});
          }
        }
      }
      if (!held.empty()) nodes_[n->id()] = std::move(held);
    }
  });
  log::Info(kLog, "rebuilt the address allocations from the store",
            {{"services", services_.size()}, {"tasks", tasks_.size()}, {"nodes", nodes_.size()}});
}

void Allocator::OnEvent(const store::Event& e) {
  const api::StoreAction& obj = e.new_object ? *e.new_object : *e.old_object;
  const bool removed = e.kind == api::STORE_ACTION_KIND_REMOVE;
  switch (obj.target_case()) {
    case api::StoreAction::kNetwork:
      if (removed) {
        ipam_->ReleaseNetwork(obj.network().id());
        network_errors_.erase(obj.network().id());
        // Its addresses went with it; the nodes' attachments on it are dropped below.
        for (auto& [id, held] : nodes_) {
          std::erase_if(held, [&](const auto& a) { return a.first == obj.network().id(); });
        }
        changed_ = true;
      } else if (!NetworkAllocated(obj.network())) {
        networks_todo_.insert(obj.network().id());
      }
      // Every node has an address on the ingress network: it appeared, was allocated or went.
      if (obj.network().spec().ingress()) all_nodes_todo_ = true;
      break;
    case api::StoreAction::kNode:
      if (removed) {
        ReleaseNode(obj.node().id());
      } else {
        nodes_todo_.insert(obj.node().id());
      }
      break;
    case api::StoreAction::kService:
      if (removed) {
        ReleaseService(obj.service().id());
        service_errors_.erase(obj.service().id());
      } else {
        services_todo_.insert(obj.service().id());
      }
      break;
    case api::StoreAction::kCluster:
      if (!removed &&
          (obj.cluster().subnet_size() != subnet_size_ ||
           !std::equal(pools_.begin(), pools_.end(), obj.cluster().default_address_pool().begin(),
                       obj.cluster().default_address_pool().end()))) {
        rebuild_ = true;
      }
      break;
    case api::StoreAction::kTask:
      if (removed || Ended(obj.task())) {
        ReleaseTask(obj.task().id());
      } else if (Waiting(obj.task())) {
        tasks_todo_.insert(obj.task().id());
      }
      break;
    default:
      break;
  }
}

void Allocator::ReleaseTask(const std::string& id) {
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return;
  for (const auto& [network, addr] : it->second) ipam_->ReleaseAddress(network, addr);
  tasks_.erase(it);
  changed_ = true;
}

void Allocator::ReleaseNode(const std::string& id) {
  nodes_todo_.erase(id);
  nodes_blocked_.erase(id);
  auto it = nodes_.find(id);
  if (it == nodes_.end()) return;
  for (const auto& [network, addr] : it->second) ipam_->ReleaseAddress(network, addr);
  nodes_.erase(it);
  changed_ = true;
}

void Allocator::ReleaseService(const std::string& id) {
  auto it = services_.find(id);
  if (it == services_.end()) return;
  for (const auto& [network, addr] : it->second.vips) ipam_->ReleaseAddress(network, addr);
  for (const auto& [protocol, port] : it->second.ports) ipam_->ReleasePort(protocol, port, id);
  services_.erase(it);
  changed_ = true;
}

void Allocator::Round() {
  if (!networks_todo_.empty()) AllocateNetworks();
  if (!nodes_todo_.empty() || all_nodes_todo_) AllocateNodes();
  if (!services_todo_.empty()) AllocateServices();
  if (!tasks_todo_.empty()) AllocateTasks();
}

void Allocator::Write(std::vector<Change>& changes, Todo* retry) {
  for (size_t begin = 0, end = 0; begin < changes.size(); begin = end) {
    const absl::Status s = store_->Update([&](store::WriteTx& tx) {
      for (end = begin;
           end < changes.size() && end - begin < kBatch && tx.bytes() < store::kMaxTransactionBytes;
           ++end) {
        tx.Update(changes[end].object);
      }
      return absl::OkStatus();
    });
    for (size_t i = begin; i < end; ++i) {
      if (s.ok()) {
        if (changes[i].commit) changes[i].commit();
        continue;
      }
      if (changes[i].undo) changes[i].undo();
      switch (changes[i].object.target_case()) {
        case api::StoreAction::kNetwork:
          retry->networks.insert(changes[i].object.network().id());
          break;
        case api::StoreAction::kService:
          retry->services.insert(changes[i].object.service().id());
          break;
        case api::StoreAction::kNode:
          retry->nodes.insert(changes[i].object.node().id());
          break;
        default:
          retry->tasks.insert(changes[i].object.task().id());
          break;
      }
    }
    if (!s.ok()) {
      log::Debug(kLog, "allocations not written; retrying", {{"reason", s}});
      retry_at_ = clock_->Now() + kRetryAfter;
    }
  }
}

// ---- networks ----

void Allocator::AllocateNetworks() {
  std::vector<Change> changes;
  store_->View([&](const store::ReadTx& tx) {
    std::vector<store::Ptr<api::Network>> todo;
    for (const std::string& id : networks_todo_) {
      auto n = tx.GetNetwork(id);
      if (n != nullptr && !NetworkAllocated(*n) && !ipam_->HasNetwork(id)) todo.push_back(n);
    }
    // The ingress network first, then in order of creation: the first network of a new swarm
    // (ingress) gets the first subnet of the pools, as in Docker.
    std::sort(todo.begin(), todo.end(), [](const auto& a, const auto& b) {
      auto key = [](const api::Network& n) {
        return std::make_tuple(!n.spec().ingress(), n.meta().created_at().seconds(),
                               n.meta().created_at().nanos(), n.id());
      };
      return key(*a) < key(*b);
    });
    for (const auto& n : todo) {
      absl::StatusOr<NetworkRequest> request = RequestOf(*n);
      absl::StatusOr<NetworkAllocation> a =
          request.ok() ? ipam_->AllocateNetwork(n->id(), *request)
                       : absl::StatusOr<NetworkAllocation>(request.status());
      if (!a.ok()) {
        // Said once per reason: blocked networks are tried again whenever something is freed.
        std::string& said = network_errors_[n->id()];
        if (said != a.status().message()) {
          log::Warn(kLog, "network not allocated", {{"network", n->id()}, {"reason", a.status()}});
        }
        said = std::string(a.status().message());
        networks_blocked_.insert(n->id());
        continue;
      }
      network_errors_.erase(n->id());
      api::Network next = *n;
      SetAllocation(*a, &next);
      const std::string id = n->id();
      changes.push_back(Change{store::Wrap(next), [this, id] { ipam_->ReleaseNetwork(id); },
                               [this] { changed_ = true; }});
      log::Info(kLog, "allocated a network",
                {{"network", id}, {"name", request->name}, {"subnet", a->subnet}, {"vni", a->vni}});
    }
  });
  networks_todo_.clear();
  Todo retry;
  Write(changes, &retry);
  networks_todo_.merge(retry.networks);
}

// ---- services ----

void Allocator::AllocateServices() {
  std::vector<Change> changes;
  store_->View([&](const store::ReadTx& tx) {
    store::Ptr<api::Network> ingress = Ingress(tx);
    for (const std::string& id : services_todo_) {
      auto svc = tx.GetService(id);
      if (svc == nullptr || ServiceAllocated(tx, *svc, ingress.get())) continue;
      const std::string& name = svc->spec().annotations().name();
      const api::EndpointSpec& spec = svc->spec().endpoint_spec();
      const ServiceHolding old = services_.count(id) ? services_[id] : ServiceHolding{};
      ServiceHolding now;
      // What this plan took that the service did not hold: given back if the plan fails.
      std::vector<std::pair<std::string, std::string>> new_vips;
      std::vector<std::pair<api::PortProtocol, uint32_t>> new_ports;
      auto undo = [this, id, new_vips = &new_vips, new_ports = &new_ports] {
        for (const auto& [net, addr] : *new_vips) ipam_->ReleaseAddress(net, addr);
        for (const auto& [proto, port] : *new_ports) ipam_->ReleasePort(proto, port, id);
      };
      absl::Status error;
      api::Endpoint endpoint;
      *endpoint.mutable_spec() = spec;
      if (PublishesIngress(spec) && ingress == nullptr) {
        error = absl::FailedPreconditionError(absl::StrCat(
            "service ", name,
            " publishes ports in ingress mode but the swarm has no ingress network; create one "
            "(swarmctl network create --driver overlay --ingress ingress) or publish with "
            "mode=host"));
      }
      for (const api::PortConfig& p : spec.ports()) {
        if (!error.ok()) break;
        api::PortConfig* out = endpoint.add_ports();
        *out = p;
        if (p.publish_mode() != api::PUBLISH_MODE_INGRESS) continue;
        uint32_t want = p.published_port();
        if (want == 0) {
          // Keep the port chosen before for the same target, so updates do not move it.
          for (const api::PortConfig& q : svc->endpoint().ports()) {
            if (q.protocol() == p.protocol() && q.target_port() == p.target_port() &&
                q.publish_mode() == api::PUBLISH_MODE_INGRESS &&
                old.ports.count({q.protocol(), q.published_port()}) &&
                !now.ports.count({q.protocol(), q.published_port()})) {
              bool explicit_elsewhere = false;
              for (const api::PortConfig& r : spec.ports()) {
                explicit_elsewhere |=
                    r.protocol() == q.protocol() && r.published_port() == q.published_port();
              }
              if (!explicit_elsewhere) {
                want = q.published_port();
                break;
              }
            }
          }
        }
        absl::StatusOr<uint32_t> port = ipam_->AllocatePort(p.protocol(), want, id, name);
        if (!port.ok()) {
          error = port.status();
          break;
        }
        out->set_published_port(*port);
        if (!old.ports.count({p.protocol(), *port}) && !now.ports.count({p.protocol(), *port})) {
          new_ports.emplace_back(p.protocol(), *port);
        }
        now.ports.insert({p.protocol(), *port});
      }
      if (error.ok()) {
        for (const std::string& net : VipNetworks(tx, *svc, ingress.get())) {
          std::string addr;
          if (auto it = old.vips.find(net); it != old.vips.end()) {
            addr = it->second;
          } else if (!ipam_->HasNetwork(net)) {
            auto it_err = network_errors_.find(net);
            error = absl::UnavailableError(absl::StrCat(
                "network ", tx.GetNetwork(net)->spec().annotations().name(),
                " is not allocated yet",
                it_err == network_errors_.end() ? "" : absl::StrCat(": ", it_err->second)));
            break;
          } else {
            absl::StatusOr<std::string> a = ipam_->AllocateAddress(net);
            if (!a.ok()) {
              error = a.status();
              break;
            }
            addr = *a;
            new_vips.emplace_back(net, addr);
          }
          now.vips[net] = addr;
          api::VirtualIP* vip = endpoint.add_virtual_ips();
          vip->set_network_id(net);
          vip->set_addr(addr);
        }
      }
      if (!error.ok()) {
        undo();
        std::string& said = service_errors_[id];
        if (said != error.message()) {
          log::Warn(kLog, "service not allocated", {{"service", id}, {"reason", error}});
        }
        said = std::string(error.message());
        services_blocked_.insert(id);
        continue;
      }
      service_errors_.erase(id);
      api::Service next = *svc;
      *next.mutable_endpoint() = endpoint;
      changes.push_back(Change{store::Wrap(next),
                               [this, id, new_vips, new_ports] {
                                 for (const auto& [net, addr] : new_vips)
                                   ipam_->ReleaseAddress(net, addr);
                                 for (const auto& [proto, port] : new_ports)
                                   ipam_->ReleasePort(proto, port, id);
                               },
                               [this, id, old, now] {
                                 for (const auto& [net, addr] : old.vips) {
                                   auto it = now.vips.find(net);
                                   if (it == now.vips.end() || it->second != addr)
                                     ipam_->ReleaseAddress(net, addr);
                                 }
                                 for (const auto& port : old.ports) {
                                   if (!now.ports.count(port))
                                     ipam_->ReleasePort(port.first, port.second, id);
                                 }
                                 services_[id] = now;
                                 changed_ = true;
                               }});
    }
  });
  services_todo_.clear();
  Todo retry;
  Write(changes, &retry);
  services_todo_.merge(retry.services);
}

// ---- tasks ----

void Allocator::AllocateTasks() {
  // A batch at a time: a View holds the store's read lock, which must not keep the Raft
  // loop's writes waiting while 100,000 new tasks are planned.
  Todo retry;
  while (!tasks_todo_.empty()) {
    std::vector<std::string> batch;
    while (!tasks_todo_.empty() && batch.size() < kBatch) {
      batch.push_back(*tasks_todo_.begin());
      tasks_todo_.erase(tasks_todo_.begin());
    }
    AllocateTaskBatch(batch, &retry);
  }
  tasks_todo_.merge(retry.tasks);
}

void Allocator::AllocateTaskBatch(const std::vector<std::string>& batch, Todo* retry) {
  std::vector<Change> changes;
  const auto now = ToTimestamp(clock_->Now());
  store_->View([&](const store::ReadTx& tx) {
    store::Ptr<api::Network> ingress = Ingress(tx);
    for (const std::string& id : batch) {
      auto t = tx.GetTask(id);
      if (t == nullptr || !Waiting(*t)) continue;
      // Why the task cannot move on yet; empty once everything is allocated.
      std::string reason;
      store::Ptr<api::Service> svc;
      if (!t->service_id().empty()) {
        svc = tx.GetService(t->service_id());
        if (svc == nullptr) continue;  // the orchestrator shuts it down
        if (!ServiceAllocated(tx, *svc, ingress.get())) {
          auto it = service_errors_.find(svc->id());
          reason = it != service_errors_.end()
                       ? it->second
                       : absl::StrCat("service ", svc->spec().annotations().name(),
                                      " is not allocated yet");
        }
      }
      // The networks, in attachment order.
      std::vector<std::pair<store::Ptr<api::Network>, const api::NetworkAttachmentConfig*>> nets;
      if (reason.empty() && svc != nullptr && ingress != nullptr &&
          PublishesIngress(svc->spec().endpoint_spec())) {
        nets.emplace_back(ingress, nullptr);
      }
      for (const api::NetworkAttachmentConfig& c : t->spec().networks()) {
        if (!reason.empty()) break;
        if (IsNodeLocalNetwork(c.target())) continue;  // host or none: nothing to allocate
        auto n = tx.GetNetwork(c.target());
        if (n == nullptr) {
          reason = absl::StrCat("network ", c.target(), " not found");
        } else if (!NetworkAllocated(*n) || !ipam_->HasNetwork(n->id())) {
          auto it = network_errors_.find(n->id());
          reason = it != network_errors_.end()
                       ? it->second
                       : absl::StrCat("network ", n->spec().annotations().name(),
                                      " is not allocated yet");
        } else {
          nets.emplace_back(n, &c);
        }
      }
      api::Task next = *t;
      Addresses held;
      if (reason.empty()) {
        next.mutable_networks()->Clear();
        for (const auto& [n, c] : nets) {
          absl::StatusOr<std::string> addr = ipam_->AllocateAddress(n->id());
          if (!addr.ok()) {
            reason = std::string(addr.status().message());
            break;
          }
          held.emplace_back(n->id(), *addr);
          api::NetworkAttachment* a = next.add_networks();
          *a->mutable_network() = *n;
          a->add_addresses(*addr);
          if (c != nullptr) {
            *a->mutable_aliases() = c->aliases();
            *a->mutable_driver_attachment_opts() = c->driver_attachment_opts();
          }
        }
      }
      if (!reason.empty()) {
        for (const auto& [net, addr] : held) ipam_->ReleaseAddress(net, addr);
        tasks_blocked_.insert(id);
        if (t->status().err() == reason) continue;
        // Tell whoever looks at `service ps` why the task waits.
        next = *t;
        next.mutable_status()->set_message(kWaitingMessage);
        next.mutable_status()->set_err(reason);
        *next.mutable_status()->mutable_timestamp() = now;
        changes.push_back(Change{store::Wrap(next), nullptr, nullptr});
        continue;
      }
      if (svc != nullptr) *next.mutable_endpoint() = svc->endpoint();
      next.mutable_status()->set_state(api::TASK_STATE_PENDING);
      next.mutable_status()->set_message("pending task scheduling");
      next.mutable_status()->clear_err();
      *next.mutable_status()->mutable_timestamp() = now;
      changes.push_back(Change{store::Wrap(next),
                               [this, held] {
                                 for (const auto& [net, addr] : held) {
                                   ipam_->ReleaseAddress(net, addr);
                                 }
                               },
                               [this, id, held] {
                                 if (!held.empty()) tasks_[id] = held;
                               }});
    }
  });
  Write(changes, retry);
}

// ---- nodes ----

void Allocator::AllocateNodes() {
  if (all_nodes_todo_) {
    store_->View([&](const store::ReadTx& tx) {
      for (const auto& n : tx.ListNodes()) nodes_todo_.insert(n->id());
    });
    all_nodes_todo_ = false;
  }
  Todo retry;
  std::string reason;
  while (!nodes_todo_.empty()) {
    std::vector<std::string> batch;
    while (!nodes_todo_.empty() && batch.size() < kBatch) {
      batch.push_back(*nodes_todo_.begin());
      nodes_todo_.erase(nodes_todo_.begin());
    }
    AllocateNodeBatch(batch, &retry, &reason);
  }
  nodes_todo_.merge(retry.nodes);
  if (nodes_blocked_.empty()) {
    node_error_.clear();
  } else if (!reason.empty() && reason != node_error_) {
    // Said once per reason, with how many nodes wait: a pool too small for the swarm leaves
    // thousands of nodes without an address, and one line says so.
    log::Warn(kLog,
              "nodes have no address on the ingress network, so published ports do not answer "
              "on them; give the ingress network a larger subnet, or remove services that use it",
              {{"nodes", nodes_blocked_.size()}, {"reason", reason}});
    node_error_ = reason;
  }
}

void Allocator::AllocateNodeBatch(const std::vector<std::string>& batch, Todo* retry,
                                  std::string* reason) {
  std::vector<Change> changes;
  store_->View([&](const store::ReadTx& tx) {
    store::Ptr<api::Network> ingress = Ingress(tx);
    if (ingress != nullptr && (!NetworkAllocated(*ingress) || !ipam_->HasNetwork(ingress->id()))) {
      // Not allocated yet (or its stored allocation conflicts): the nodes keep what they have
      // until it is; its allocation brings every node back here.
      return;
    }
    for (const std::string& id : batch) {
      auto node = tx.GetNode(id);
      if (node == nullptr) continue;  // removed: its event gave back what it held
      auto it = nodes_.find(id);
      const Addresses held = it == nodes_.end() ? Addresses{} : it->second;
      // What the node should hold: one address on the ingress network, the one it has if any.
      Addresses want;
      std::string fresh;
      if (ingress != nullptr) {
        for (const auto& [net, addr] : held) {
          if (net == ingress->id()) want.emplace_back(net, addr);
        }
        if (want.empty()) {
          absl::StatusOr<std::string> addr = ipam_->AllocateAddress(ingress->id());
          if (!addr.ok()) {
            *reason = std::string(addr.status().message());
            nodes_blocked_.insert(id);
            continue;
          }
          fresh = *addr;
          want.emplace_back(ingress->id(), fresh);
        }
        want.resize(1);
      }
      nodes_blocked_.erase(id);
      bool written = node->attachments_size() == static_cast<int>(want.size());
      for (size_t i = 0; written && i < want.size(); ++i) {
        const api::NetworkAttachment& a = node->attachments(static_cast<int>(i));
        written = a.network().id() == want[i].first && a.addresses_size() == 1 &&
                  a.addresses(0) == want[i].second;
      }
      if (written && held == want) continue;
      api::Node next = *node;
      next.clear_attachments();
      for (const auto& [net, addr] : want) {
        api::NetworkAttachment* a = next.add_attachments();
        *a->mutable_network() = *ingress;
        a->add_addresses(addr);
      }
      if (!fresh.empty()) {
        log::Debug(kLog, "allocated a node's ingress address", {{"node", id}, {"address", fresh}});
      }
      changes.push_back(Change{store::Wrap(next),
                               [this, net = want.empty() ? "" : want[0].first, fresh] {
                                 if (!fresh.empty()) ipam_->ReleaseAddress(net, fresh);
                               },
                               [this, id, held, want] {
                                 for (const auto& a : held) {
                                   if (std::find(want.begin(), want.end(), a) == want.end()) {
                                     ipam_->ReleaseAddress(a.first, a.second);
                                     changed_ = true;
                                   }
                                 }
                                 if (want.empty()) {
                                   nodes_.erase(id);
                                 } else {
                                   nodes_[id] = want;
                                 }
                               }});
    }
  });
  Write(changes, retry);
}

}  // namespace swarm::manager::allocator

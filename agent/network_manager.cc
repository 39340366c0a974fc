#include "agent/network_manager.h"

#include <arpa/inet.h>

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/network/dns_message.h"
#include "agent/network/netlink.h"
#include "agent/network/netns.h"
#include "agent/network/nftables.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace swarm::agent {
namespace {

namespace fs = std::filesystem;
namespace net = network;

constexpr char kLog[] = "network";
constexpr char kLbTable[] = "swarmd_lb";
constexpr char kIngressTable[] = "swarmd_ingress";  // in the sandbox
constexpr char kPortsTable[] = "swarmd_ports";      // in the host's namespace
constexpr char kSandboxName[] = "ingress-sbox";
// The sandbox's place among an ingress network's local attachments (not a task ID).
constexpr char kSandboxKey[] = "ingress-sandbox";
// Priority of the rules that route replies to routing-mesh clients (before main's 32766).
constexpr uint32_t kIngressRulePriority = 100;

// A service's --dns, --dns-search and --dns-option.
net::dns::ResolvConf ServiceResolvConf(const api::Task& task) {
  const api::ContainerSpec::DNSConfig& d = task.spec().container().dns_config();
  return {{d.nameservers().begin(), d.nameservers().end()},
          {d.search().begin(), d.search().end()},
          {d.options().begin(), d.options().end()}};
}

// "10.0.0.5/24" or "10.0.0.5" -> the address.
std::optional<IpAddress> HostPart(const std::string& text) {
  const std::string host = text.substr(0, text.find('/'));
  std::optional<IpAddress> ip = ParseIp(host);
  if (!ip || ip->family != AF_INET) return std::nullopt;
  return ip;
}

// A node address as the dispatcher records it: "192.168.1.7" or "192.168.1.7:4242".
std::optional<IpAddress> NodeAddress(const std::string& text) {
  if (std::optional<IpAddress> ip = HostPart(text)) return ip;
  const size_t colon = text.rfind(':');
  return colon == std::string::npos ? std::nullopt : HostPart(text.substr(0, colon));
}

bool IsOverlay(const api::Network& n) {
  const std::string& driver =
      n.driver_state().name().empty() ? n.spec().driver_config().name() : n.driver_state().name();
  return driver.empty() || driver == "overlay";
}

uint32_t ToU32(const IpAddress& ip) {
  return uint32_t{ip.bytes[0]} << 24 | uint32_t{ip.bytes[1]} << 16 | uint32_t{ip.bytes[2]} << 8 |
         ip.bytes[3];
}

IpAddress FromU32(uint32_t v) {
  IpAddress ip;
  ip.bytes = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
              static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
  return ip;
}

std::string Protocol(const api::PortConfig& p) {
  return p.protocol() == api::PORT_PROTOCOL_UDP ? "udp" : "tcp";
}

// Replaces table `table` of the namespace fd (< 0: the daemon's) with `ruleset` in one
// transaction; an empty ruleset just deletes it. Declaring the table first makes the delete
// valid when it does not exist yet.
absl::Status ReplaceTable(int fd, const std::string& table, const std::string& ruleset,
                          const std::string& what) {
  return net::RunNft(
             fd, absl::StrCat("table ip ", table, "\ndelete table ip ", table, "\n", ruleset), what)
      .status();
}

absl::Status ReplaceTableAt(const std::string& netns_path, const std::string& table,
                            const std::string& ruleset, const std::string& what) {
  if (netns_path.empty()) return ReplaceTable(-1, table, ruleset, what);
  ASSIGN_OR_RETURN(net::ScopedFd fd, net::OpenNetns(netns_path));
  return ReplaceTable(fd.get(), table, ruleset, what);
}

absl::Status FirstError(absl::Status a, const absl::Status& b) {
  if (a.ok()) return b;
  return a;
}

}  // namespace

absl::StatusOr<net::OverlayNetwork> OverlayNetworkOf(const api::Network& n) {
  const std::string name = n.spec().annotations().name();
  net::OverlayNetwork o;
  o.id = n.id();
  auto vni = n.driver_state().options().find(kVxlanIdOption);
  const std::vector<std::string> vnis = vni == n.driver_state().options().end()
                                            ? std::vector<std::string>{}
                                            : absl::StrSplit(vni->second, ',', absl::SkipEmpty());
  if (vnis.empty() || !absl::SimpleAtoi(vnis[0], &o.vni) || o.vni == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("network ", name, " (", n.id(), ") has no VXLAN ID allocated yet"));
  }
  if (n.ipam().configs().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("network ", name, " (", n.id(), ") has no subnet allocated yet"));
  }
  const api::IPAMConfig& c = n.ipam().configs(0);
  std::optional<IpNetwork> subnet = ParseCidr(c.subnet());
  std::optional<IpAddress> gateway = HostPart(c.gateway());
  if (!subnet || subnet->base.family != AF_INET || !gateway) {
    return absl::InvalidArgumentError(absl::StrCat("network ", name, " (", n.id(),
                                                   ") has an unusable subnet \"", c.subnet(),
                                                   "\" or gateway \"", c.gateway(), "\""));
  }
  o.subnet = *subnet;
  o.gateway = *gateway;
  return o;
}

NetworkManager::NetworkManager(Options options) : options_(std::move(options)) {}

NetworkManager::~NetworkManager() {
  if (dns_ != nullptr) dns_->Stop();
}

absl::StatusOr<std::unique_ptr<NetworkManager>> NetworkManager::Start(Options options) {
  std::unique_ptr<NetworkManager> m(new NetworkManager(std::move(options)));
  std::error_code ec;
  fs::create_directories(m->options_.run_dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("creating the namespace directory ", m->options_.run_dir, ": ", ec.message()));
  }
  ASSIGN_OR_RETURN(int stale, net::Overlay::CleanupStale(m->Underlay()));
  if (stale > 0) {
    log::Info(kLog, "removed overlay namespaces of an earlier run", {{"count", stale}});
  }
  // The sandbox and the published ports of an earlier run: made again from the records.
  if (absl::Status s = net::DeleteNamedNetns(m->SandboxPath());
      !s.ok() && s.code() != absl::StatusCode::kNotFound) {
    return s;
  }
  RETURN_IF_ERROR(ReplaceTableAt(m->options_.host_netns_path, kPortsTable, "",
                                 "removing the published ports of an earlier run"));

  net::dns::ResolvConf host;
  if (absl::StatusOr<net::dns::ResolvConf> read = net::dns::ReadResolvConf(m->options_.resolv_conf);
      read.ok()) {
    host = *std::move(read);
  } else {
    log::Warn(kLog, "names outside the swarm will not resolve in containers",
              {{"reason", read.status()}});
  }
  net::dns::DnsServerOptions dns_options;
  dns_options.upstreams = net::dns::UpstreamsFromResolvConf(host);
  m->host_resolv_conf_ = std::move(host);
  m->dns_ = std::make_unique<net::dns::DnsServer>(&m->dns_table_, std::move(dns_options));
  RETURN_IF_ERROR(m->dns_->Start());
  return m;
}

net::UnderlayConfig NetworkManager::Underlay() const {
  net::UnderlayConfig u;
  u.run_dir = options_.run_dir;
  u.host_netns_path = options_.host_netns_path;
  u.device = options_.underlay_device;
  u.address = options_.address;
  return u;
}

std::string NetworkManager::TaskNetnsPath(const std::string& task_id) const {
  return absl::StrCat(options_.run_dir, "/t-", task_id);
}

std::string NetworkManager::SandboxPath() const {
  return absl::StrCat(options_.run_dir, "/", kSandboxName);
}

absl::StatusOr<std::optional<NetworkManager::TaskNetwork>> NetworkManager::Attach(
    const api::Task& task) {
  bool any = false;
  for (const api::NetworkAttachment& a : task.networks()) any = any || IsOverlay(a.network());
  for (const api::PortConfig& p : task.endpoint().ports()) {
    any = any || p.publish_mode() == api::PUBLISH_MODE_HOST;
  }
  if (!any) return std::nullopt;
  absl::MutexLock lock(&mu_);
  LocalTask& local = tasks_[task.id()];
  if (absl::Status s = AttachLocked(task.id(), task, local); !s.ok()) {
    if (absl::Status d = DetachLocked(task.id()); !d.ok()) {
      log::Warn(kLog, "undoing a failed attachment failed", {{"task", task.id()}, {"error", d}});
    }
    return s;
  }
  return TaskNetwork{local.netns_path,
                     net::dns::ContainerResolvConf(host_resolv_conf_, ServiceResolvConf(task))};
}

absl::Status NetworkManager::AttachLocked(const std::string& task_id, const api::Task& task,
                                          LocalTask& local) {
  local.netns_path = TaskNetnsPath(task_id);
  if (!net::IsNetnsMount(local.netns_path)) {
    std::error_code ec;
    fs::remove(local.netns_path, ec);  // a file left by a reboot: the namespace is gone
    RETURN_IF_ERROR(net::CreateNamedNetns(local.netns_path));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<net::Netlink> nl, net::Netlink::OpenAt(local.netns_path));
  bool egress = false;
  int index = 0;
  for (const api::NetworkAttachment& a : task.networks()) {
    if (!IsOverlay(a.network())) continue;
    const std::string if_name = absl::StrCat("eth", index++);
    const std::string& network_id = a.network().id();
    ASSIGN_OR_RETURN(net::OverlayNetwork config, OverlayNetworkOf(a.network()));
    std::optional<IpAddress> ip = a.addresses().empty() ? std::nullopt : HostPart(a.addresses(0));
    if (!ip) {
      return absl::InvalidArgumentError(absl::StrCat("the task has no IPv4 address on network ",
                                                     a.network().spec().annotations().name()));
    }
    LocalNetwork& n = networks_[network_id];
    n.config = config;
    n.ingress = a.network().spec().ingress();
    RETURN_IF_ERROR(EnsureOverlayLocked(n));
    if (std::find(local.networks.begin(), local.networks.end(), network_id) ==
        local.networks.end()) {
      local.networks.push_back(network_id);
    }
    local.addresses[network_id] = *ip;
    if (n.ingress) local.ingress_if = if_name;
    n.tasks.insert(task_id);
    // Attached already (by this process) when the overlay holds the address and the task's
    // end exists; otherwise (new, or adopted after a restart that removed the overlays) attach.
    if (!n.overlay->AttachedAddresses().contains(net::FormatIp(*ip)) ||
        !nl->GetLink(if_name).ok()) {
      RETURN_IF_ERROR(
          n.overlay->Attach({.netns_path = local.netns_path, .ip = *ip, .if_name = if_name}));
    }
    egress = egress || !a.network().spec().internal();
  }
  local.host_ports.clear();
  for (const api::PortConfig& p : task.endpoint().ports()) {
    if (p.publish_mode() != api::PUBLISH_MODE_HOST) continue;
    if (p.published_port() == 0) {
      log::Warn(kLog, "a host-mode port without a published port is not published",
                {{"task", task_id}, {"target_port", static_cast<int64_t>(p.target_port())}});
      continue;
    }
    local.host_ports.push_back(p);
    egress = true;  // host-mode ports reach the task through the gateway bridge
  }
  if (egress && !local.gateway_address) {
    const std::string if_name = absl::StrCat("eth", index);
    if (nl->GetLink(if_name).ok()) {
      // Adopted: the gateway bridge's veth outlives the daemon.
      ASSIGN_OR_RETURN(std::vector<net::AddressEntry> addrs, nl->ListAddresses(if_name));
      if (!addrs.empty()) local.gateway_address = addrs[0].ip;
    } else {
      ASSIGN_OR_RETURN(net::GatewayBridge * gateway, GatewayLocked());
      ASSIGN_OR_RETURN(IpAddress ip, gateway->Attach(local.netns_path, if_name));
      local.gateway_address = ip;
    }
  }

  std::vector<std::string> dns_networks;
  for (const std::string& id : local.networks) {
    if (!networks_[id].ingress) dns_networks.push_back(id);
  }
  ASSIGN_OR_RETURN(net::ScopedFd fd, net::OpenNetns(local.netns_path));
  // A service's --dns servers are asked from the container's namespace, as Docker does (the
  // node's own resolvers on its loopback are the ones asked from the host's).
  std::vector<net::dns::Upstream> upstreams =
      net::dns::UpstreamsFromResolvConf(ServiceResolvConf(task));
  for (net::dns::Upstream& u : upstreams) u.from_host_namespace = false;
  absl::Status added = dns_->AddContainer(task_id, fd.get(), dns_networks, std::move(upstreams));
  if (added.code() == absl::StatusCode::kAlreadyExists) {
    added = dns_->SetNetworks(task_id, dns_networks);
  }
  RETURN_IF_ERROR(added);
  local.lb_ruleset.clear();  // an adopted namespace may hold an older table
  RETURN_IF_ERROR(ApplyLoadBalancerLocked(task_id, local));
  if (!local.ingress_if.empty()) {
    // Routing-mesh clients keep their own address, so their packets come in on the ingress
    // interface from addresses the main table routes elsewhere: no reverse-path filter.
    for (const std::string& dev : {std::string("all"), local.ingress_if}) {
      RETURN_IF_ERROR(
          net::WriteSysctl(fd.get(), absl::StrCat("net/ipv4/conf/", dev, "/rp_filter"), "0"));
    }
    local.ingress_routes.clear();
    RETURN_IF_ERROR(ApplyIngressRoutesLocked(local));
  }
  if (!local.host_ports.empty()) RETURN_IF_ERROR(ApplyHostPortsLocked());
  return absl::OkStatus();
}

absl::Status NetworkManager::Detach(const std::string& task_id) {
  absl::MutexLock lock(&mu_);
  return DetachLocked(task_id);
}

absl::Status NetworkManager::DetachLocked(const std::string& task_id) {
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) {
    // Not attached by this process: its namespace may be left by an earlier one whose
    // container ended while the daemon was down.
    absl::Status s = net::DeleteNamedNetns(TaskNetnsPath(task_id));
    return s.code() == absl::StatusCode::kNotFound ? absl::OkStatus() : s;
  }
  LocalTask local = std::move(it->second);
  tasks_.erase(it);
  absl::Status status;
  if (absl::Status s = dns_->RemoveContainer(task_id);
      !s.ok() && s.code() != absl::StatusCode::kNotFound) {
    status = FirstError(status, s);
  }
  for (const auto& [network_id, ip] : local.addresses) {
    auto n = networks_.find(network_id);
    if (n == networks_.end()) continue;
    n->second.tasks.erase(task_id);
    if (n->second.overlay == nullptr) continue;
    if (n->second.tasks.empty()) {
      status = FirstError(status, n->second.overlay->Remove());
      n->second.overlay.reset();
      log::Info(kLog, "left overlay network", {{"network", network_id}});
      continue;
    }
    // The address may be another local task's by now (the managers reuse a freed address):
    // then the veth is that task's.
    bool reused = false;
    for (const std::string& other : n->second.tasks) {
      auto t = tasks_.find(other);
      if (t == tasks_.end()) continue;
      auto a = t->second.addresses.find(network_id);
      reused = reused ||
               (a != t->second.addresses.end() && net::FormatIp(a->second) == net::FormatIp(ip));
    }
    if (!reused) status = FirstError(status, n->second.overlay->Detach(ip));
  }
  if (local.gateway_address && gateway_ != nullptr) {
    status = FirstError(status, gateway_->Detach(*local.gateway_address));
  }
  if (!local.host_ports.empty()) status = FirstError(status, ApplyHostPortsLocked());
  if (tasks_.empty() && !sandbox_ && gateway_ != nullptr) {
    // The last task went: the bridge and its NAT table go too, until the next one comes.
    status = FirstError(status, gateway_->Teardown());
    gateway_.reset();
  }
  if (absl::Status s = net::DeleteNamedNetns(local.netns_path);
      !s.ok() && s.code() != absl::StatusCode::kNotFound) {
    status = FirstError(status, s);
  }
  return status;
}

absl::Status NetworkManager::EnsureOverlayLocked(LocalNetwork& n) {
  if (n.overlay != nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(n.overlay, net::Overlay::Create(Underlay(), n.config));
  log::Info(kLog, "joined overlay network",
            {{"network", n.config.id}, {"vni", static_cast<int64_t>(n.config.vni)}});
  return ApplyPeersLocked(n);
}

absl::Status NetworkManager::ApplyPeersLocked(LocalNetwork& n) {
  std::vector<net::Endpoint> peers;
  for (const api::EndpointRecord& r : n.records) {
    if (r.node_id() == options_.node_id) continue;  // local: reached through the bridge
    std::optional<IpAddress> ip = HostPart(r.ip());
    std::optional<IpAddress> node = NodeAddress(r.node_addr());
    if (!ip || !node) {
      log::Warn(kLog, "an endpoint record without a usable address is skipped",
                {{"task", r.task_id()}, {"ip", r.ip()}, {"node_addr", r.node_addr()}});
      continue;
    }
    peers.push_back({.ip = *ip, .mac = net::MacFromIpv4(*ip), .node = *node});
  }
  return n.overlay->SetPeers(peers);
}

void NetworkManager::SetNetwork(const EndpointTable::NetworkState& state) {
  const std::string& network_id = state.network_id;
  absl::MutexLock lock(&mu_);
  auto it = networks_.find(network_id);
  if (it == networks_.end()) {
    if (state.records.empty() && !state.network) return;
    it = networks_.emplace(network_id, LocalNetwork{}).first;
  }
  LocalNetwork& n = it->second;
  n.records = state.records;
  if (state.network) {
    n.ingress = state.network->spec().ingress();
    if (absl::StatusOr<net::OverlayNetwork> config = OverlayNetworkOf(*state.network);
        config.ok()) {
      n.config = *config;
    } else {
      log::Warn(kLog, "an overlay network cannot be used yet",
                {{"network", network_id}, {"reason", config.status()}});
    }
  }
  if (n.ingress) ingress_id_ = network_id;
  if (n.overlay != nullptr) {
    if (absl::Status s = ApplyPeersLocked(n); !s.ok()) {
      log::Warn(kLog, "programming the overlay's peers failed",
                {{"network", network_id}, {"error", s}});
    }
  }
  ApplyDnsLocked(network_id, n);
  if (n.ingress) {
    if (!state.network) n.records.clear();  // the ingress network is gone
    if (absl::Status s = SyncIngressLocked(n); !s.ok()) {
      log::Warn(kLog, "the routing mesh's sandbox could not be set up",
                {{"network", network_id}, {"error", s}});
    }
  }
  for (const std::string& task_id : n.tasks) {
    auto t = tasks_.find(task_id);
    if (t == tasks_.end()) continue;
    absl::Status s = ApplyLoadBalancerLocked(task_id, t->second);
    if (s.ok() && !t->second.ingress_if.empty()) s = ApplyIngressRoutesLocked(t->second);
    if (!s.ok()) {
      log::Warn(kLog, "updating a task's load balancing failed", {{"task", task_id}, {"error", s}});
    }
  }
  if (!state.network && state.records.empty() && n.tasks.empty() && n.overlay == nullptr) {
    dns_table_.RemoveNetwork(network_id);
    networks_.erase(it);
  }
}

void NetworkManager::ApplyDnsLocked(const std::string& network_id, LocalNetwork& n) {
  if (n.ingress) return;  // the routing mesh's network is not for discovery
  std::vector<net::dns::TaskRecord> tasks;
  std::map<std::string, net::dns::ServiceRecord> services;
  for (const api::EndpointRecord& r : n.records) {
    if (!r.service_name().empty()) {
      net::dns::ServiceRecord& s = services[r.service_name()];
      s.name = r.service_name();
      if (r.virtual_ip().empty()) {
        s.mode = net::dns::EndpointMode::kDnsrr;
      } else if (std::optional<IpAddress> vip = HostPart(r.virtual_ip()); vip && s.vips.empty()) {
        s.vips.push_back(*vip);
      }
      if (s.aliases.empty()) s.aliases.assign(r.aliases().begin(), r.aliases().end());
    }
    if (r.service_disabled()) continue;
    std::optional<IpAddress> ip = HostPart(r.ip());
    if (!ip) continue;
    net::dns::TaskRecord t;
    t.task_id = r.task_id();
    t.service_name = r.service_name();
    if (!r.task_name().empty()) t.names.push_back(r.task_name());
    t.names.insert(t.names.end(), r.aliases().begin(), r.aliases().end());
    t.address = *ip;
    tasks.push_back(std::move(t));
  }
  dns_table_.ReplaceTasks(network_id, std::move(tasks));
  std::set<std::string> now;
  for (auto& [name, s] : services) {
    now.insert(name);
    dns_table_.SetService(network_id, std::move(s));
  }
  for (const std::string& name : n.dns_services) {
    if (!now.contains(name)) dns_table_.RemoveService(network_id, name);
  }
  n.dns_services = std::move(now);
}

std::string NetworkManager::RulesetLocked(const LocalTask& task) const {
  // VIP -> the enabled endpoints behind it, over the task's networks (not ingress: the
  // routing mesh balances there).
  std::map<std::string, std::set<std::string>> vips;
  for (const std::string& network_id : task.networks) {
    auto n = networks_.find(network_id);
    if (n == networks_.end() || n->second.ingress) continue;
    for (const api::EndpointRecord& r : n->second.records) {
      std::optional<IpAddress> vip = HostPart(r.virtual_ip());
      if (!vip) continue;
      std::set<std::string>& backends = vips[net::FormatIp(*vip)];
      std::optional<IpAddress> ip = HostPart(r.ip());
      if (ip && !r.service_disabled()) backends.insert(net::FormatIp(*ip));
    }
  }
  std::string nat, reject;
  for (const auto& [vip, backends] : vips) {
    if (backends.empty()) {
      absl::StrAppend(&reject, "    ip daddr ", vip, " reject\n");
    } else if (backends.size() == 1) {
      absl::StrAppend(&nat, "    ip daddr ", vip, " dnat to ", *backends.begin(), "\n");
    } else {
      std::vector<std::string> entries;
      for (const std::string& b : backends)
        entries.push_back(absl::StrCat(entries.size(), " : ", b));
      absl::StrAppend(&nat, "    ip daddr ", vip, " dnat to numgen inc mod ", backends.size(),
                      " map { ", absl::StrJoin(entries, ", "), " }\n");
    }
  }
  std::string ingress;
  if (!task.ingress_if.empty()) {
    // A connection that comes in from a sandbox is marked with the sandbox's address (from
    // its MAC), and its packets out carry the mark, which routes them back through it
    // (ApplyIngressRoutesLocked).
    std::vector<std::string> entries;
    for (const auto& [ip, mac] : SandboxesLocked()) {
      entries.push_back(absl::StrCat(net::FormatMac(mac), " : ", ip));
    }
    if (!entries.empty()) {
      absl::StrAppend(&ingress, "  chain mesh_mark {\n",
                      "    type filter hook prerouting priority -150; policy accept;\n",
                      "    iifname \"", task.ingress_if,
                      "\" ct state new ct mark set ether saddr map { ",
                      absl::StrJoin(entries, ", "), " }\n  }\n", "  chain mesh_route {\n",
                      "    type route hook output priority -150; policy accept;\n",
                      "    ct mark != 0 meta mark set ct mark\n  }\n");
    }
  }
  return absl::StrCat("table ip ", kLbTable, " {\n", "  chain vip_nat {\n",
                      "    type nat hook output priority -100; policy accept;\n", nat, "  }\n",
                      "  chain vip_filter {\n",
                      "    type filter hook output priority 0; policy accept;\n", reject, "  }\n",
                      ingress, "}\n");
}

absl::Status NetworkManager::ApplyLoadBalancerLocked(const std::string& task_id, LocalTask& task) {
  std::string ruleset = RulesetLocked(task);
  if (ruleset == task.lb_ruleset) return absl::OkStatus();
  RETURN_IF_ERROR(ReplaceTableAt(task.netns_path, kLbTable, ruleset,
                                 absl::StrCat("the load balancing of task ", task_id)));
  task.lb_ruleset = std::move(ruleset);
  return absl::OkStatus();
}

std::map<uint32_t, net::MacAddress> NetworkManager::SandboxesLocked() const {
  std::map<uint32_t, net::MacAddress> out;
  auto n = networks_.find(ingress_id_);
  if (n == networks_.end()) return out;
  for (const api::EndpointRecord& r : n->second.records) {
    if (!r.load_balancer()) continue;
    if (std::optional<IpAddress> ip = HostPart(r.ip())) out[ToU32(*ip)] = net::MacFromIpv4(*ip);
  }
  return out;
}

absl::Status NetworkManager::SyncIngressLocked(LocalNetwork& n) {
  // Published port -> the enabled tasks behind it, "ip . target port".
  std::map<std::pair<std::string, uint32_t>, std::set<std::string>> ports;
  for (const api::EndpointRecord& r : n.records) {
    std::optional<IpAddress> ip = HostPart(r.ip());
    if (r.load_balancer() || !ip) continue;
    for (const api::PortConfig& p : r.ingress_ports()) {
      std::set<std::string>& backends = ports[{Protocol(p), p.published_port()}];
      if (!r.service_disabled()) {
        backends.insert(absl::StrCat(net::FormatIp(*ip), " . ", p.target_port()));
      }
    }
  }
  std::optional<IpAddress> own;
  for (const api::EndpointRecord& r : n.records) {
    if (r.load_balancer() && r.node_id() == options_.node_id) own = HostPart(r.ip());
  }
  // Only while a service publishes a port in ingress mode: the sandbox costs nothing before.
  if (!own || n.config.vni == 0 || ports.empty()) return RemoveSandboxLocked();
  if (sandbox_ && net::FormatIp(sandbox_->ip) != net::FormatIp(*own))
    RETURN_IF_ERROR(RemoveSandboxLocked());
  if (!sandbox_) {
    const std::string path = SandboxPath();
    auto undo = [&](absl::Status s) {
      n.tasks.erase(kSandboxKey);
      if (n.overlay != nullptr && n.tasks.empty()) {
        (void)n.overlay->Remove();
        n.overlay.reset();
      }
      (void)net::DeleteNamedNetns(path);
      return s;
    };
    if (absl::Status s = EnsureOverlayLocked(n); !s.ok()) return undo(s);
    n.tasks.insert(kSandboxKey);
    if (absl::Status s = net::CreateNamedNetns(path); !s.ok()) return undo(s);
    if (absl::Status s = n.overlay->Attach({.netns_path = path, .ip = *own, .if_name = "eth0"});
        !s.ok()) {
      return undo(s);
    }
    absl::StatusOr<net::GatewayBridge*> gateway = GatewayLocked();
    if (!gateway.ok()) return undo(gateway.status());
    absl::StatusOr<IpAddress> gateway_address = (*gateway)->Attach(path, "eth1");
    if (!gateway_address.ok()) return undo(gateway_address.status());
    absl::StatusOr<net::ScopedFd> fd = net::OpenNetns(path);
    absl::Status forwarding =
        fd.ok() ? net::WriteSysctl(fd->get(), "net/ipv4/ip_forward", "1") : fd.status();
    if (!forwarding.ok()) {
      (void)(*gateway)->Detach(*gateway_address);
      return undo(forwarding);
    }
    sandbox_ = Sandbox{.netns_path = path, .ip = *own, .gateway_address = *gateway_address};
    log::Info(kLog, "routing mesh sandbox ready",
              {{"ingress_address", net::FormatIp(*own)},
               {"gateway_address", net::FormatIp(*gateway_address)}});
  }

  // A port without backends gets no rule: the sandbox itself refuses the connection.
  std::string rules;
  for (const auto& [port, backends] : ports) {
    if (backends.empty()) continue;
    std::vector<std::string> entries;
    for (const std::string& b : backends) entries.push_back(absl::StrCat(entries.size(), " : ", b));
    absl::StrAppend(&rules, "    iifname \"eth1\" ", port.first, " dport ", port.second,
                    " dnat to numgen inc mod ", backends.size(), " map { ",
                    absl::StrJoin(entries, ", "), " }\n");
  }
  // No masquerading: the tasks see the client's address and route their replies back here.
  std::string ruleset = absl::StrCat("table ip ", kIngressTable, " {\n  chain mesh_nat {\n",
                                     "    type nat hook prerouting priority -100; policy accept;\n",
                                     rules, "  }\n}\n");
  if (ruleset != sandbox_->ruleset) {
    RETURN_IF_ERROR(ReplaceTableAt(sandbox_->netns_path, kIngressTable, ruleset,
                                   "the routing mesh's balancing"));
    sandbox_->ruleset = std::move(ruleset);
  }
  return ApplyHostPortsLocked();
}

absl::Status NetworkManager::RemoveSandboxLocked() {
  if (!sandbox_) return absl::OkStatus();
  absl::Status status;
  auto n = networks_.find(ingress_id_);
  if (n != networks_.end()) {
    n->second.tasks.erase(kSandboxKey);
    if (n->second.overlay != nullptr) {
      status = n->second.tasks.empty() ? n->second.overlay->Remove()
                                       : n->second.overlay->Detach(sandbox_->ip);
      if (n->second.tasks.empty()) n->second.overlay.reset();
    }
  }
  if (gateway_ != nullptr) status = FirstError(status, gateway_->Detach(sandbox_->gateway_address));
  if (absl::Status s = net::DeleteNamedNetns(sandbox_->netns_path);
      !s.ok() && s.code() != absl::StatusCode::kNotFound) {
    status = FirstError(status, s);
  }
  sandbox_.reset();
  log::Info(kLog, "routing mesh sandbox removed");
  status = FirstError(status, ApplyHostPortsLocked());
  if (tasks_.empty() && gateway_ != nullptr) {
    status = FirstError(status, gateway_->Teardown());
    gateway_.reset();
  }
  return status;
}

absl::Status NetworkManager::ApplyIngressRoutesLocked(LocalTask& task) {
  std::set<uint32_t> want;
  for (const auto& [ip, mac] : SandboxesLocked()) want.insert(ip);
  if (want == task.ingress_routes) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::unique_ptr<net::Netlink> nl, net::Netlink::OpenAt(task.netns_path));
  // One routing table per sandbox, numbered (like its mark) by the sandbox's address.
  for (uint32_t ip : want) {
    if (task.ingress_routes.contains(ip)) continue;
    RETURN_IF_ERROR(nl->AddDefaultRoute(task.ingress_if, FromU32(ip), ip));
    RETURN_IF_ERROR(nl->AddFwmarkRule(ip, ip, kIngressRulePriority));
    task.ingress_routes.insert(ip);
  }
  for (auto it = task.ingress_routes.begin(); it != task.ingress_routes.end();) {
    if (want.contains(*it)) {
      ++it;
      continue;
    }
    RETURN_IF_ERROR(nl->DeleteFwmarkRule(*it, *it, kIngressRulePriority));
    it = task.ingress_routes.erase(it);
  }
  return absl::OkStatus();
}

absl::Status NetworkManager::ApplyHostPortsLocked() {
  // Only connections to the node's own addresses: traffic the node forwards keeps its way.
  std::string rules;
  if (sandbox_) {
    auto n = networks_.find(ingress_id_);
    std::set<std::pair<std::string, uint32_t>> published;
    if (n != networks_.end()) {
      for (const api::EndpointRecord& r : n->second.records) {
        for (const api::PortConfig& p : r.ingress_ports()) {
          published.insert({Protocol(p), p.published_port()});
        }
      }
    }
    for (const auto& [protocol, port] : published) {
      absl::StrAppend(&rules, "    fib daddr type local ", protocol, " dport ", port, " dnat to ",
                      net::FormatIp(sandbox_->gateway_address), "\n");
    }
  }
  for (const auto& [task_id, task] : tasks_) {
    if (!task.gateway_address) continue;
    for (const api::PortConfig& p : task.host_ports) {
      absl::StrAppend(&rules, "    fib daddr type local ", Protocol(p), " dport ",
                      p.published_port(), " dnat to ", net::FormatIp(*task.gateway_address), ":",
                      p.target_port(), "\n");
    }
  }
  std::string ruleset;
  if (!rules.empty()) {
    ruleset =
        absl::StrCat("table ip ", kPortsTable, " {\n", "  chain published {\n",
                     "    type nat hook prerouting priority -100; policy accept;\n", rules,
                     "  }\n  chain published_local {\n",
                     "    type nat hook output priority -100; policy accept;\n", rules, "  }\n}\n");
  }
  if (ruleset == host_ruleset_) return absl::OkStatus();
  RETURN_IF_ERROR(
      ReplaceTableAt(options_.host_netns_path, kPortsTable, ruleset, "the published ports"));
  host_ruleset_ = std::move(ruleset);
  return absl::OkStatus();
}

absl::StatusOr<net::GatewayBridge*> NetworkManager::GatewayLocked() {
  if (gateway_ == nullptr) {
    net::GatewayBridgeConfig config = options_.gateway;
    config.host_netns_path = options_.host_netns_path;
    ASSIGN_OR_RETURN(gateway_, net::GatewayBridge::Setup(config));
  }
  return gateway_.get();
}

absl::Status NetworkManager::Teardown() {
  absl::MutexLock lock(&mu_);
  absl::Status status;
  std::vector<std::string> ids;
  for (const auto& [id, t] : tasks_) ids.push_back(id);
  for (const std::string& id : ids) status = FirstError(status, DetachLocked(id));
  status = FirstError(status, RemoveSandboxLocked());
  status = FirstError(status, ReplaceTableAt(options_.host_netns_path, kPortsTable, "",
                                             "removing the published ports"));
  host_ruleset_.clear();
  for (auto& [id, n] : networks_) {
    if (n.overlay != nullptr) status = FirstError(status, n.overlay->Remove());
    dns_table_.RemoveNetwork(id);
  }
  networks_.clear();
  // Namespaces of tasks this process never attached (their containers are gone).
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(options_.run_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("t-", 0) != 0) continue;
    if (absl::Status s = net::DeleteNamedNetns(e.path().string());
        !s.ok() && s.code() != absl::StatusCode::kNotFound) {
      status = FirstError(status, s);
    }
  }
  if (gateway_ == nullptr) {
    // A bridge of an earlier run: adopt it to remove it.
    absl::StatusOr<std::unique_ptr<net::Netlink>> host =
        net::Netlink::OpenAt(options_.host_netns_path);
    if (host.ok() && (*host)->GetLink(options_.gateway.bridge).ok()) {
      absl::StatusOr<net::GatewayBridge*> adopted = GatewayLocked();
      if (!adopted.ok()) status = FirstError(status, adopted.status());
    }
  }
  if (gateway_ != nullptr) {
    status = FirstError(status, gateway_->Teardown());
    gateway_.reset();
  }
  return status;
}

}  // namespace swarm::agent

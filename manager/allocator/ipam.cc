#include "manager/allocator/ipam.h"

#include <arpa/inet.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace swarm::manager::allocator {
namespace {

[[noreturn]] void Broken(const std::string& what) {
  std::fprintf(stderr, "ipam: invariant broken: %s\n", what.c_str());
  std::abort();
}

uint64_t AlignUp(uint64_t v, uint64_t size) { return (v + size - 1) / size * size; }

}  // namespace

std::string FormatIpv4(uint32_t ip) {
  return absl::StrCat(ip >> 24, ".", (ip >> 16) & 0xff, ".", (ip >> 8) & 0xff, ".", ip & 0xff);
}

std::string Ipv4Net::ToString() const { return absl::StrCat(FormatIpv4(base), "/", prefix); }

absl::StatusOr<uint32_t> ParseIpv4(const std::string& text, const std::string& what) {
  const std::string addr = text.substr(0, text.find('/'));
  in_addr a;
  if (inet_pton(AF_INET, addr.c_str(), &a) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " \"", text, "\" is not an IPv4 address, e.g. 10.0.9.1"));
  }
  return ntohl(a.s_addr);
}

absl::StatusOr<Ipv4Net> ParseIpv4Net(const std::string& cidr, const std::string& what) {
  const size_t slash = cidr.find('/');
  int prefix = -1;
  if (slash == std::string::npos || !absl::SimpleAtoi(cidr.substr(slash + 1), &prefix) ||
      prefix < 0 || prefix > 32) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " \"", cidr, "\" is not an IPv4 network in CIDR form, e.g. 10.0.9.0/24"));
  }
  ASSIGN_OR_RETURN(const uint32_t ip, ParseIpv4(cidr.substr(0, slash), what));
  Ipv4Net net;
  net.prefix = prefix;
  net.base = prefix == 0 ? 0 : ip & ~((uint64_t{1} << (32 - prefix)) - 1);
  if (net.base != ip) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", cidr, " has host bits set: did you mean ", net.ToString(), "?"));
  }
  return net;
}

std::string PortString(api::PortProtocol protocol, uint32_t port) {
  const char* name = protocol == api::PORT_PROTOCOL_UDP    ? "udp"
                     : protocol == api::PORT_PROTOCOL_SCTP ? "sctp"
                                                           : "tcp";
  return absl::StrCat(port, "/", name);
}

absl::StatusOr<Ipam> Ipam::Create(const PoolConfig& config) {
  Ipam ipam;
  ipam.subnet_size_ = config.subnet_size == 0 ? kDefaultSubnetSize : config.subnet_size;
  const std::vector<std::string> pools =
      config.pools.empty() ? std::vector<std::string>{kDefaultPool} : config.pools;
  if (ipam.subnet_size_ < kLargestSubnetPrefix || ipam.subnet_size_ > kSmallestSubnetPrefix) {
    return absl::InvalidArgumentError(absl::StrCat(
        "default address pool mask length ", ipam.subnet_size_, " is out of range: use ",
        kLargestSubnetPrefix, "-", kSmallestSubnetPrefix, " (--default-addr-pool-mask-len)"));
  }
  for (const std::string& p : pools) {
    ASSIGN_OR_RETURN(Ipv4Net net, ParseIpv4Net(p, "default address pool"));
    if (net.prefix > ipam.subnet_size_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "default address pool ", p, " is smaller than the subnets carved from it (/",
          ipam.subnet_size_, "): use a shorter prefix or a longer --default-addr-pool-mask-len"));
    }
    for (const Ipv4Net& other : ipam.pools_) {
      if (other.Overlaps(net)) {
        return absl::InvalidArgumentError(
            absl::StrCat("default address pools ", other.ToString(), " and ", p, " overlap"));
      }
    }
    ipam.pools_.push_back(net);
  }
  return ipam;
}

// ---- networks ----

const Ipam::SubnetUse* Ipam::Overlapping(const Ipv4Net& net, uint32_t* first) const {
  // Subnets in use do not overlap one another, so only the one starting last at or before
  // net's end can reach into it.
  auto it = subnets_.upper_bound(net.last());
  if (it == subnets_.begin()) return nullptr;
  --it;
  if (it->second.last < net.base) return nullptr;
  if (first != nullptr) *first = it->first;
  return &it->second;
}

absl::Status Ipam::CheckFree(const Ipv4Net& net, const std::string& what) const {
  uint32_t first = 0;
  const SubnetUse* use = Overlapping(net, &first);
  if (use == nullptr) return absl::OkStatus();
  const Network& other = networks_.at(use->network_id);
  return absl::AlreadyExistsError(absl::StrCat(what, " ", net.ToString(), " overlaps network ",
                                               other.name, " (", other.subnet.ToString(),
                                               "): choose another subnet"));
}

absl::StatusOr<Ipv4Net> Ipam::NextPoolSubnet() const {
  const uint64_t size = uint64_t{1} << (32 - subnet_size_);
  for (const Ipv4Net& pool : pools_) {
    uint64_t candidate = pool.base;
    while (candidate + size - 1 <= pool.last()) {
      Ipv4Net net{static_cast<uint32_t>(candidate), subnet_size_};
      const SubnetUse* use = Overlapping(net, nullptr);
      if (use == nullptr) return net;
      candidate = AlignUp(uint64_t{use->last} + 1, size);
    }
  }
  std::vector<std::string> names;
  for (const Ipv4Net& p : pools_) names.push_back(p.ToString());
  return absl::ResourceExhaustedError(
      absl::StrCat("no free subnet in the default address pools ", absl::StrJoin(names, ", "),
                   " (mask /", subnet_size_,
                   "): every subnet is in use; remove networks that are no longer needed, or give "
                   "this network its own --subnet"));
}

uint32_t Ipam::NextVni() const {
  uint32_t vni = kFirstVni;
  for (auto it = vnis_.lower_bound(kFirstVni); it != vnis_.end() && it->first == vni; ++it) ++vni;
  return vni;
}

void Ipam::Set(Network& n, uint64_t index, bool taken) {
  if (taken) {
    n.used[index / 64] |= uint64_t{1} << (index % 64);
  } else {
    n.used[index / 64] &= ~(uint64_t{1} << (index % 64));
  }
}

absl::StatusOr<Ipam::Network> Ipam::MakeNetwork(const NetworkRequest& request,
                                                const Ipv4Net& subnet,
                                                const NetworkAllocation& allocation) const {
  const std::string who = absl::StrCat("network ", request.name, ": ");
  if (subnet.prefix < kLargestSubnetPrefix || subnet.prefix > kSmallestSubnetPrefix) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, "subnet ", subnet.ToString(), " is out of range: overlay subnets are /",
                     kLargestSubnetPrefix, " to /", kSmallestSubnetPrefix));
  }
  Network n;
  n.name = request.name;
  n.subnet = subnet;
  n.range = subnet;
  if (!allocation.range.empty()) {
    ASSIGN_OR_RETURN(n.range, ParseIpv4Net(allocation.range, who + "IP range"));
    if (n.range.prefix < subnet.prefix || !subnet.Contains(n.range.base)) {
      return absl::InvalidArgumentError(absl::StrCat(who, "IP range ", allocation.range,
                                                     " is not inside subnet ", subnet.ToString()));
    }
  }
  const uint32_t broadcast = subnet.last();
  n.gateway = subnet.base + 1;
  if (!allocation.gateway.empty()) {
    ASSIGN_OR_RETURN(n.gateway, ParseIpv4(allocation.gateway, who + "gateway"));
  }
  if (!subnet.Contains(n.gateway) || n.gateway == subnet.base || n.gateway == broadcast) {
    return absl::InvalidArgumentError(absl::StrCat(who, "gateway ", FormatIpv4(n.gateway),
                                                   " is not a host address of subnet ",
                                                   subnet.ToString()));
  }
  std::set<uint32_t> reserved = {subnet.base, broadcast, n.gateway};
  for (const std::string& aux : request.reserved) {
    ASSIGN_OR_RETURN(const uint32_t ip, ParseIpv4(aux, who + "auxiliary address"));
    if (!subnet.Contains(ip)) {
      return absl::InvalidArgumentError(absl::StrCat(who, "auxiliary address ", aux,
                                                     " is not inside subnet ", subnet.ToString()));
    }
    reserved.insert(ip);
  }
  n.used.assign((n.range.size() + 63) / 64, 0);
  for (uint64_t i = n.range.size(); i < n.used.size() * 64; ++i) Set(n, i, true);
  for (uint32_t ip : reserved) {
    if (!n.range.Contains(ip)) continue;
    n.reserved.push_back(ip);
    Set(n, ip - n.range.base, true);
  }
  if (n.reserved.size() >= n.range.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        who, "IP range ", n.range.ToString(), " has no address left for tasks once the network, ",
        "broadcast, gateway and auxiliary addresses are taken out"));
  }
  n.vni = allocation.vni;
  return n;
}

void Ipam::Register(const std::string& id, Network n) {
  subnets_[n.subnet.base] = SubnetUse{n.subnet.last(), id};
  vnis_[n.vni] = id;
  networks_[id] = std::move(n);
}

absl::StatusOr<NetworkAllocation> Ipam::AllocateNetwork(const std::string& id,
                                                        const NetworkRequest& request) {
  if (HasNetwork(id)) {
    return absl::AlreadyExistsError(
        absl::StrCat("network ", request.name, " is allocated already"));
  }
  if (request.subnet.empty() && (!request.range.empty() || !request.gateway.empty())) {
    return absl::InvalidArgumentError(
        absl::StrCat("network ", request.name, ": an IP range or gateway needs a --subnet"));
  }
  Ipv4Net subnet;
  if (request.subnet.empty()) {
    ASSIGN_OR_RETURN(subnet, NextPoolSubnet());
  } else {
    ASSIGN_OR_RETURN(subnet, ParseIpv4Net(request.subnet, "network " + request.name + ": subnet"));
    RETURN_IF_ERROR(CheckFree(subnet, absl::StrCat("network ", request.name, ": subnet")));
  }
  const uint32_t vni = NextVni();
  if (vni > kLastVni) {
    return absl::ResourceExhaustedError("no free VXLAN ID: every ID up to 16777215 is in use");
  }
  NetworkAllocation a;
  a.subnet = subnet.ToString();
  a.range = request.range;
  a.gateway = request.gateway;
  a.vni = vni;
  ASSIGN_OR_RETURN(Network n, MakeNetwork(request, subnet, a));
  a.gateway = FormatIpv4(n.gateway);
  if (!a.range.empty()) a.range = n.range.ToString();
  Register(id, std::move(n));
  return a;
}

absl::Status Ipam::RestoreNetwork(const std::string& id, const NetworkRequest& request,
                                  const NetworkAllocation& allocation) {
  if (HasNetwork(id)) {
    return absl::AlreadyExistsError(
        absl::StrCat("network ", request.name, " is allocated already"));
  }
  ASSIGN_OR_RETURN(const Ipv4Net subnet,
                   ParseIpv4Net(allocation.subnet, "network " + request.name + ": subnet"));
  RETURN_IF_ERROR(CheckFree(subnet, absl::StrCat("network ", request.name, ": subnet")));
  if (allocation.vni < kFirstVni || allocation.vni > kLastVni) {
    return absl::InvalidArgumentError(
        absl::StrCat("network ", request.name, ": VXLAN ID ", allocation.vni, " is out of range"));
  }
  if (auto it = vnis_.find(allocation.vni); it != vnis_.end()) {
    return absl::AlreadyExistsError(absl::StrCat("network ", request.name, ": VXLAN ID ",
                                                 allocation.vni, " is used by network ",
                                                 networks_.at(it->second).name));
  }
  ASSIGN_OR_RETURN(Network n, MakeNetwork(request, subnet, allocation));
  Register(id, std::move(n));
  return absl::OkStatus();
}

void Ipam::ReleaseNetwork(const std::string& id) {
  auto it = networks_.find(id);
  if (it == networks_.end()) return;
  subnets_.erase(it->second.subnet.base);
  vnis_.erase(it->second.vni);
  networks_.erase(it);
}

// ---- addresses ----

absl::StatusOr<std::string> Ipam::AllocateAddress(const std::string& network_id) {
  auto it = networks_.find(network_id);
  if (it == networks_.end()) {
    return absl::NotFoundError(absl::StrCat("network ", network_id, " is not allocated"));
  }
  Network& n = it->second;
  for (uint64_t word = n.hint / 64; word < n.used.size(); ++word) {
    if (n.used[word] == ~uint64_t{0}) continue;
    const uint64_t index = word * 64 + std::countr_one(n.used[word]);
    Set(n, index, true);
    ++n.allocated;
    n.hint = index + 1;
    return absl::StrCat(FormatIpv4(n.range.base + static_cast<uint32_t>(index)), "/",
                        n.subnet.prefix);
  }
  n.hint = n.used.size() * 64;
  const std::string range =
      n.range.prefix == n.subnet.prefix ? "" : absl::StrCat(" (IP range ", n.range.ToString(), ")");
  return absl::ResourceExhaustedError(absl::StrCat(
      "network ", n.name, ": no free address in ", n.subnet.ToString(), range,
      "; remove tasks or services that use it, or attach to a network with a larger subnet"));
}

absl::Status Ipam::ClaimAddress(const std::string& network_id, const std::string& address) {
  auto it = networks_.find(network_id);
  if (it == networks_.end()) {
    return absl::NotFoundError(absl::StrCat("network ", network_id, " is not allocated"));
  }
  Network& n = it->second;
  ASSIGN_OR_RETURN(const uint32_t ip, ParseIpv4(address, "address"));
  if (!n.range.Contains(ip)) {
    return absl::OutOfRangeError(absl::StrCat("address ", address, " is outside the range ",
                                              n.range.ToString(), " of network ", n.name));
  }
  const uint64_t index = ip - n.range.base;
  if (Taken(n, index)) {
    return absl::AlreadyExistsError(
        absl::StrCat("address ", address, " of network ", n.name, " is taken already"));
  }
  Set(n, index, true);
  ++n.allocated;
  return absl::OkStatus();
}

void Ipam::ReleaseAddress(const std::string& network_id, const std::string& address) {
  auto it = networks_.find(network_id);
  if (it == networks_.end()) return;
  Network& n = it->second;
  absl::StatusOr<uint32_t> ip = ParseIpv4(address, "address");
  if (!ip.ok() || !n.range.Contains(*ip)) return;
  if (std::find(n.reserved.begin(), n.reserved.end(), *ip) != n.reserved.end()) return;
  const uint64_t index = *ip - n.range.base;
  if (!Taken(n, index)) return;
  Set(n, index, false);
  --n.allocated;
  n.hint = std::min(n.hint, index);
}

uint64_t Ipam::FreeAddresses(const std::string& network_id) const {
  auto it = networks_.find(network_id);
  if (it == networks_.end()) return 0;
  const Network& n = it->second;
  return n.range.size() - n.reserved.size() - n.allocated;
}

// ---- ports ----

absl::StatusOr<uint32_t> Ipam::AllocatePort(api::PortProtocol protocol, uint32_t port,
                                            const std::string& owner_id,
                                            const std::string& owner_name) {
  if (port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("port ", port, " is out of range (1-65535)"));
  }
  if (port == 0) {
    for (uint32_t p = kFirstDynamicPort; p <= kLastDynamicPort; ++p) {
      if (ports_.count({protocol, p}) == 0) {
        ports_[{protocol, p}] = PortOwner{owner_id, owner_name};
        return p;
      }
    }
    return absl::ResourceExhaustedError(
        absl::StrCat("no free port in the dynamic range ", kFirstDynamicPort, "-", kLastDynamicPort,
                     " for ", PortString(protocol, 0).substr(2),
                     ": publish an explicit port, or remove services that publish ports"));
  }
  auto [it, fresh] = ports_.try_emplace({protocol, port}, PortOwner{owner_id, owner_name});
  if (!fresh && it->second.id != owner_id) {
    return absl::AlreadyExistsError(absl::StrCat(
        "port ", PortString(protocol, port), " is already in use by service ", it->second.name));
  }
  return port;
}

void Ipam::ReleasePort(api::PortProtocol protocol, uint32_t port, const std::string& owner_id) {
  auto it = ports_.find({protocol, port});
  if (it != ports_.end() && it->second.id == owner_id) ports_.erase(it);
}

// ---- checks ----

void Ipam::CheckInvariants() const {
  if (subnets_.size() != networks_.size() || vnis_.size() != networks_.size()) {
    Broken("subnet or VNI index out of step with the networks");
  }
  uint64_t previous_end = 0;
  bool first = true;
  for (const auto& [base, use] : subnets_) {
    if (!first && base <= previous_end) Broken("two subnets overlap");
    first = false;
    previous_end = use.last;
    auto it = networks_.find(use.network_id);
    if (it == networks_.end() || it->second.subnet.base != base) Broken("subnet index is stale");
  }
  for (const auto& [id, n] : networks_) {
    auto v = vnis_.find(n.vni);
    if (v == vnis_.end() || v->second != id) Broken("VNI index is stale");
    if (n.vni < kFirstVni || n.vni > kLastVni) Broken("VNI out of range");
    uint64_t set = 0;
    for (uint64_t w : n.used) set += std::popcount(w);
    const uint64_t padding = n.used.size() * 64 - n.range.size();
    if (set != n.allocated + n.reserved.size() + padding) {
      Broken(absl::StrCat("network ", n.name, ": address count out of step"));
    }
    for (uint32_t ip : n.reserved) {
      if (!Taken(n, ip - n.range.base)) Broken("a reserved address is free");
    }
    for (uint64_t i = 0; i < n.hint && i < n.range.size(); ++i) {
      if (!Taken(n, i)) Broken(absl::StrCat("network ", n.name, ": free address below the hint"));
    }
  }
}

std::string Ipam::DebugString() const {
  std::string out;
  for (const auto& [id, n] : networks_) {
    absl::StrAppend(&out, "network ", id, " ", n.name, " subnet=", n.subnet.ToString(),
                    " range=", n.range.ToString(), " gateway=", FormatIpv4(n.gateway),
                    " vni=", n.vni, " addresses=");
    // Taken addresses as runs "a-b".
    uint64_t i = 0;
    while (i < n.range.size()) {
      if (!Taken(n, i)) {
        ++i;
        continue;
      }
      uint64_t j = i;
      while (j + 1 < n.range.size() && Taken(n, j + 1)) ++j;
      absl::StrAppend(&out, FormatIpv4(n.range.base + i), "-", FormatIpv4(n.range.base + j), ",");
      i = j + 1;
    }
    absl::StrAppend(&out, "\n");
  }
  for (const auto& [key, owner] : ports_) {
    absl::StrAppend(&out, "port ",
                    PortString(static_cast<api::PortProtocol>(key.first), key.second), " ",
                    owner.id, "\n");
  }
  return out;
}

}  // namespace swarm::manager::allocator

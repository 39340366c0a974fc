#include "agent/network/gateway_bridge.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/network/netns.h"
#include "agent/network/nftables.h"
#include "agent/network/overlay.h"
#include "common/errno_status.h"
#include "common/status_macros.h"

namespace swarm::agent::network {

namespace {

constexpr char kVethPrefix[] = "vgw";

uint32_t ToHost(const IpAddress& ip) {
  uint32_t v;
  std::memcpy(&v, ip.bytes.data(), 4);
  return ntohl(v);
}

IpAddress FromHost(uint32_t v) {
  IpAddress ip;
  ip.family = AF_INET;
  uint32_t n = htonl(v);
  std::memcpy(ip.bytes.data(), &n, 4);
  return ip;
}

absl::Status EnableForwarding() { return WriteSysctl(-1, "net/ipv4/ip_forward", "1"); }

// Runs fn in the namespace at path, or right here when path is "".
absl::Status InNamespace(const std::string& path, const std::function<absl::Status()>& fn) {
  if (path.empty()) return fn();
  ASSIGN_OR_RETURN(ScopedFd fd, OpenNetns(path));
  return RunInNetns(fd.get(), fn);
}

absl::Status ApplyNft(const std::string& netns_path, const std::string& script,
                      const std::string& what) {
  return InNamespace(netns_path, [&] { return RunNft(-1, script, what).status(); });
}

}  // namespace

std::string GatewayBridge::Ruleset(const GatewayBridgeConfig& c) {
  // The first two lines make the delete succeed whether or not the table exists, so the
  // whole script replaces the table in one transaction.
  return absl::StrCat("table ip ", c.nft_table, " {}\n",      //
                      "delete table ip ", c.nft_table, "\n",  //
                      "table ip ", c.nft_table, " {\n",       //
                      "  chain postrouting {\n",              //
                      "    type nat hook postrouting priority srcnat; policy accept;\n",
                      "    ip saddr ", FormatIp(c.subnet.base), "/", c.subnet.prefix,
                      " oifname != \"", c.bridge, "\" masquerade\n",  //
                      "  }\n",                                        //
                      "}\n");
}

absl::StatusOr<std::unique_ptr<GatewayBridge>> GatewayBridge::Setup(const GatewayBridgeConfig& c) {
  if (c.subnet.base.family != AF_INET || c.gateway.family != AF_INET) {
    return absl::InvalidArgumentError("the gateway bridge subnet must be IPv4");
  }
  if (!c.subnet.Contains(c.gateway) || c.subnet.prefix > 30) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the gateway bridge needs a subnet of at least 4 addresses that holds the gateway ",
        FormatIp(c.gateway)));
  }
  if (c.bridge.empty() || c.bridge.size() > 15) {
    return absl::InvalidArgumentError(
        absl::StrCat("bridge name \"", c.bridge, "\" must have 1 to 15 characters"));
  }
  const std::string what = absl::StrCat("setting up gateway bridge ", c.bridge);
  auto fail = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
  };
  ASSIGN_OR_RETURN(std::unique_ptr<Netlink> nl, Netlink::OpenAt(c.host_netns_path));
  absl::StatusOr<LinkInfo> bridge = nl->GetLink(c.bridge);
  if (absl::IsNotFound(bridge.status())) {
    absl::Status s = nl->CreateBridge(c.bridge, c.mtu, MacFromIpv4(c.gateway));
    if (!s.ok()) return fail(s);
    bridge = nl->GetLink(c.bridge);
  }
  if (!bridge.ok()) return fail(bridge.status());
  if (bridge->type != "bridge") {
    return absl::FailedPreconditionError(absl::StrCat(
        what, ": a link of type \"", bridge->type, "\" has that name; remove it or pick another"));
  }
  if (!bridge->up) {
    absl::Status s = nl->SetLinkUp(c.bridge, true);
    if (!s.ok()) return fail(s);
  }
  absl::StatusOr<std::vector<AddressEntry>> addrs = nl->ListAddresses(c.bridge);
  if (!addrs.ok()) return fail(addrs.status());
  bool has_gateway = false;
  for (const AddressEntry& a : *addrs) {
    has_gateway |= a.ip.family == AF_INET && a.ip.bytes == c.gateway.bytes;
  }
  if (!has_gateway) {
    absl::Status s = nl->AddAddress(c.bridge, c.gateway, c.subnet.prefix);
    if (!s.ok()) return fail(s);
  }
  absl::Status s = InNamespace(c.host_netns_path, EnableForwarding);
  if (!s.ok()) return fail(s);
  s = ApplyNft(c.host_netns_path, Ruleset(c),
               absl::StrCat("installing the masquerade table ", c.nft_table));
  if (!s.ok()) return fail(s);

  std::unique_ptr<GatewayBridge> gw(new GatewayBridge(c, std::move(nl)));
  // Tasks attached before a restart keep their addresses.
  absl::MutexLock lock(&gw->mu_);
  absl::StatusOr<std::vector<LinkInfo>> links = gw->nl_->ListLinks();
  if (!links.ok()) return fail(links.status());
  for (const LinkInfo& l : *links) {
    uint32_t v;
    if (l.master == bridge->index && absl::StartsWith(l.name, kVethPrefix) && l.name.size() == 11 &&
        absl::SimpleHexAtoi(l.name.substr(3), &v)) {
      gw->used_.insert(v);
    }
  }
  return gw;
}

absl::StatusOr<IpAddress> GatewayBridge::AllocateLocked() {
  const uint32_t base = ToHost(config_.subnet.base);
  const uint32_t size = config_.subnet.prefix == 0 ? 0 : (1u << (32 - config_.subnet.prefix));
  const uint32_t first = (base & ~(size - 1)) + 1;
  const uint32_t last = (base & ~(size - 1)) + size - 2;  // before the broadcast address
  const uint32_t gateway = ToHost(config_.gateway);
  for (uint32_t v = first; v <= last; ++v) {
    if (v != gateway && !used_.contains(v)) return FromHost(v);
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("the gateway bridge subnet ", FormatIp(config_.subnet.base), "/",
                   config_.subnet.prefix, " has no free address; give it a larger subnet"));
}

absl::StatusOr<IpAddress> GatewayBridge::Attach(const std::string& netns_path,
                                                const std::string& if_name) {
  absl::MutexLock lock(&mu_);
  if (torn_down_) return absl::FailedPreconditionError("the gateway bridge was torn down");
  ASSIGN_OR_RETURN(IpAddress ip, AllocateLocked());
  const std::string host_end = HostVethName(kVethPrefix, ip);
  const std::string what =
      absl::StrCat("attaching ", netns_path, " to gateway bridge ", config_.bridge);
  auto fail = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
  };
  absl::StatusOr<ScopedFd> task_ns = OpenNetns(netns_path);
  if (!task_ns.ok()) return fail(task_ns.status());
  absl::Status stale = nl_->DeleteLink(host_end);
  if (!stale.ok() && !absl::IsNotFound(stale)) return fail(stale);
  VethOptions veth;
  veth.name = host_end;
  veth.peer_name = if_name;
  veth.peer_netns_fd = task_ns->get();
  veth.mtu = config_.mtu;
  veth.peer_mac = MacFromIpv4(ip);
  veth.master = config_.bridge;
  absl::Status s = nl_->CreateVeth(veth);
  if (!s.ok()) return fail(s);
  s = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::unique_ptr<Netlink> task, Netlink::OpenIn(task_ns->get()));
    RETURN_IF_ERROR(task->AddAddress(if_name, ip, config_.subnet.prefix));
    return task->AddDefaultRoute(if_name, config_.gateway);
  }();
  if (!s.ok()) {
    (void)nl_->DeleteLink(host_end);
    return fail(s);
  }
  used_.insert(ToHost(ip));
  return ip;
}

absl::Status GatewayBridge::Detach(const IpAddress& ip) {
  absl::MutexLock lock(&mu_);
  if (torn_down_) return absl::FailedPreconditionError("the gateway bridge was torn down");
  absl::Status s = nl_->DeleteLink(HostVethName(kVethPrefix, ip));
  if (!s.ok() && !absl::IsNotFound(s)) {
    return absl::Status(s.code(), absl::StrCat("detaching ", FormatIp(ip), " from gateway bridge ",
                                               config_.bridge, ": ", s.message()));
  }
  used_.erase(ToHost(ip));
  return absl::OkStatus();
}

absl::Status GatewayBridge::Teardown() {
  absl::MutexLock lock(&mu_);
  if (torn_down_) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<LinkInfo> links, nl_->ListLinks());
  int bridge_index = 0;
  for (const LinkInfo& l : links) {
    if (l.name == config_.bridge) bridge_index = l.index;
  }
  for (const LinkInfo& l : links) {
    if (bridge_index != 0 && l.master == bridge_index && absl::StartsWith(l.name, kVethPrefix)) {
      absl::Status s = nl_->DeleteLink(l.name);
      if (!s.ok() && !absl::IsNotFound(s)) return s;
    }
  }
  absl::Status s = nl_->DeleteLink(config_.bridge);
  if (!s.ok() && !absl::IsNotFound(s)) return s;
  RETURN_IF_ERROR(ApplyNft(config_.host_netns_path,
                           absl::StrCat("table ip ", config_.nft_table, " {}\ndelete table ip ",
                                        config_.nft_table, "\n"),
                           absl::StrCat("removing the masquerade table ", config_.nft_table)));
  torn_down_ = true;
  used_.clear();
  return absl::OkStatus();
}

}  // namespace swarm::agent::network

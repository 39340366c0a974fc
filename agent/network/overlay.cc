#include "agent/network/overlay.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/errno_status.h"
#include "common/status_macros.h"

namespace swarm::agent::network {

namespace {

absl::Status MakeDirs(const std::string& path) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string prefix = path.substr(0, pos);
    if (mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoToStatus(errno, absl::StrCat("creating directory ", prefix));
    }
  }
  return absl::OkStatus();
}

bool SameIp(const IpAddress& a, const IpAddress& b) {
  return a.family == b.family && a.bytes == b.bytes;
}

// Deletes the links first, VXLAN device first: a namespace is freed asynchronously, and until
// then its VXLAN device would still hold the VNI on the host's UDP port (refusing a new
// overlay for it) and the tasks' ends of the veths would linger in their namespaces.
absl::Status RemoveLinksAndNamespace(const std::string& path) {
  absl::StatusOr<std::unique_ptr<Netlink>> nl = Netlink::OpenAt(path);
  if (nl.ok()) {
    absl::StatusOr<std::vector<LinkInfo>> links = (*nl)->ListLinks();
    if (!links.ok()) return links.status();
    std::stable_partition(links->begin(), links->end(),
                          [](const LinkInfo& l) { return l.type == "vxlan"; });
    for (const LinkInfo& l : *links) {
      if (l.name == "lo") continue;
      absl::Status s = (*nl)->DeleteLink(l.name);
      if (!s.ok() && !absl::IsNotFound(s)) return s;
    }
  }
  return DeleteNamedNetns(path);
}

// With br_netfilter in the kernel, every namespace starts with bridged traffic sent through
// the IP netfilter hooks. Nothing filters inside an overlay namespace, so that is pure
// per-packet cost on the overlay's data path. Runs inside the overlay namespace (the files
// under /proc/sys/net belong to the namespace of the thread that opens them).
absl::Status SkipNetfilterOnBridge() {
  for (const char* name :
       {"bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"}) {
    absl::Status s = WriteSysctl(-1, absl::StrCat("net/bridge/", name), "0");
    // NOT_FOUND: no br_netfilter, nothing to turn off.
    if (!s.ok() && s.code() != absl::StatusCode::kNotFound) return s;
  }
  return absl::OkStatus();
}

absl::Status CheckIpv4(const IpAddress& ip, const std::string& what) {
  if (ip.family != AF_INET) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", FormatIp(ip), " is not IPv4; overlays are IPv4 only"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string HostVethName(const std::string& prefix, const IpAddress& ip) {
  return absl::StrFormat("%s%02x%02x%02x%02x", prefix, ip.bytes[0], ip.bytes[1], ip.bytes[2],
                         ip.bytes[3]);
}

std::string Overlay::NamespaceName(const std::string& network_id) {
  return absl::StrCat("ov-", network_id.substr(0, 12));
}

absl::StatusOr<std::unique_ptr<Overlay>> Overlay::Create(const UnderlayConfig& underlay,
                                                         const OverlayNetwork& network) {
  if (network.id.empty() || !std::all_of(network.id.begin(), network.id.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c));
      })) {
    return absl::InvalidArgumentError(
        absl::StrCat("overlay network id \"", network.id, "\" must be letters and digits"));
  }
  if (network.vni == 0 || network.vni >= (1u << 24)) {
    return absl::InvalidArgumentError(
        absl::StrCat("VXLAN ID ", network.vni, " is outside 1..16777215"));
  }
  RETURN_IF_ERROR(CheckIpv4(network.subnet.base, "the subnet"));
  RETURN_IF_ERROR(CheckIpv4(network.gateway, "the gateway"));
  RETURN_IF_ERROR(CheckIpv4(underlay.address, "the underlay address"));
  if (!network.subnet.Contains(network.gateway)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the gateway ", FormatIp(network.gateway), " is outside the subnet"));
  }

  RETURN_IF_ERROR(MakeDirs(underlay.run_dir));
  std::string path = absl::StrCat(underlay.run_dir, "/", NamespaceName(network.id));
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) RETURN_IF_ERROR(RemoveLinksAndNamespace(path));

  ASSIGN_OR_RETURN(std::unique_ptr<Netlink> host, Netlink::OpenAt(underlay.host_netns_path));
  int underlay_mtu = 1500;
  if (!underlay.device.empty()) {
    absl::StatusOr<LinkInfo> dev = host->GetLink(underlay.device);
    if (!dev.ok()) {
      return absl::Status(dev.status().code(),
                          absl::StrCat("reading the underlay device: ", dev.status().message()));
    }
    underlay_mtu = dev->mtu;
  }
  const int mtu = underlay_mtu - kVxlanOverhead;

  RETURN_IF_ERROR(CreateNamedNetns(path));
  ScopedFd fd;
  std::unique_ptr<Netlink> nl;  // a socket in the overlay namespace
  absl::Status status = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(fd, OpenNetns(path));
    ASSIGN_OR_RETURN(nl, Netlink::OpenIn(fd.get()));
    RETURN_IF_ERROR(nl->CreateBridge(kBridge, mtu, MacFromIpv4(network.gateway)));
    RETURN_IF_ERROR(nl->AddAddress(kBridge, network.gateway, network.subnet.prefix));
    VxlanOptions vx;
    vx.name = kVxlan;
    vx.vni = network.vni;
    vx.port = underlay.vxlan_port;
    vx.local = underlay.address;
    vx.underlay_device = underlay.device;
    vx.mtu = mtu;
    vx.target_netns_fd = fd.get();
    RETURN_IF_ERROR(host->CreateVxlan(vx));
    RETURN_IF_ERROR(nl->SetMaster(kVxlan, kBridge));
    return RunInNetns(fd.get(), SkipNetfilterOnBridge);
  }();
  if (!status.ok()) {
    nl.reset();
    fd = ScopedFd();
    (void)RemoveLinksAndNamespace(path);
    return absl::Status(status.code(),
                        absl::StrCat("creating overlay namespace ", path, " for network ",
                                     network.id, ": ", status.message()));
  }
  return std::unique_ptr<Overlay>(
      new Overlay(underlay, network, path, mtu, std::move(fd), std::move(nl)));
}

absl::StatusOr<int> Overlay::CleanupStale(const UnderlayConfig& underlay) {
  DIR* dir = opendir(underlay.run_dir.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) return 0;
    return ErrnoToStatus(errno, absl::StrCat("listing ", underlay.run_dir));
  }
  std::vector<std::string> paths;
  while (dirent* e = readdir(dir)) {
    if (absl::StartsWith(e->d_name, "ov-")) {
      paths.push_back(absl::StrCat(underlay.run_dir, "/", e->d_name));
    }
  }
  closedir(dir);
  absl::Status first;
  int removed = 0;
  for (const std::string& path : paths) {
    absl::Status s = RemoveLinksAndNamespace(path);
    if (s.ok()) {
      ++removed;
    } else if (first.ok()) {
      first = absl::Status(
          s.code(), absl::StrCat("removing stale overlay namespace ", path, ": ", s.message()));
    }
  }
  if (!first.ok()) return first;
  return removed;
}

absl::Status Overlay::Attach(const Attachment& a) {
  RETURN_IF_ERROR(CheckIpv4(a.ip, "the task address"));
  if (!network_.subnet.Contains(a.ip)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "task address ", FormatIp(a.ip), " is outside the subnet of network ", network_.id));
  }
  absl::MutexLock lock(&mu_);
  if (removed_) return absl::FailedPreconditionError("the overlay was removed");
  const std::string host_end = HostVethName("veth", a.ip);
  const std::string what =
      absl::StrCat("attaching ", a.netns_path, " to network ", network_.id, " as ", FormatIp(a.ip));
  auto fail = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
  };
  absl::StatusOr<ScopedFd> task_ns = OpenNetns(a.netns_path);
  if (!task_ns.ok()) return fail(task_ns.status());
  // A host end left for this address belongs to a task that is gone.
  absl::Status stale = nl_->DeleteLink(host_end);
  if (!stale.ok() && !absl::IsNotFound(stale)) return fail(stale);

  VethOptions veth;
  veth.name = host_end;
  veth.peer_name = a.if_name;
  veth.peer_netns_fd = task_ns->get();
  veth.mtu = mtu_;
  veth.peer_mac = a.mac ? *a.mac : MacFromIpv4(a.ip);
  veth.master = kBridge;
  absl::Status s = nl_->CreateVeth(veth);
  if (!s.ok()) return fail(s);
  s = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::unique_ptr<Netlink> task, Netlink::OpenIn(task_ns->get()));
    return task->AddAddress(a.if_name, a.ip, network_.subnet.prefix);
  }();
  if (!s.ok()) {
    (void)nl_->DeleteLink(host_end);
    return fail(s);
  }
  attached_.insert(FormatIp(a.ip));
  return absl::OkStatus();
}

absl::Status Overlay::Detach(const IpAddress& ip) {
  absl::MutexLock lock(&mu_);
  if (removed_) return absl::FailedPreconditionError("the overlay was removed");
  attached_.erase(FormatIp(ip));
  absl::Status s = nl_->DeleteLink(HostVethName("veth", ip));
  if (!s.ok() && !absl::IsNotFound(s)) {
    return absl::Status(s.code(), absl::StrCat("detaching ", FormatIp(ip), " from network ",
                                               network_.id, ": ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status Overlay::SetPeers(const std::vector<Endpoint>& peers) {
  absl::MutexLock lock(&mu_);
  if (removed_) return absl::FailedPreconditionError("the overlay was removed");
  // Desired state, keyed by text so that the maps order and compare simply.
  std::map<std::string, std::pair<MacAddress, IpAddress>> want_fdb;    // mac -> (mac, node)
  std::map<std::string, std::pair<IpAddress, MacAddress>> want_neigh;  // ip -> (ip, mac)
  for (const Endpoint& p : peers) {
    if (p.ip.family != AF_INET || p.node.family != AF_INET) continue;
    if (SameIp(p.node, underlay_.address)) continue;  // local: reached through the bridge
    want_fdb[FormatMac(p.mac)] = {p.mac, p.node};
    want_neigh[FormatIp(p.ip)] = {p.ip, p.mac};
  }

  ASSIGN_OR_RETURN(std::vector<FdbEntry> fdb, nl_->ListFdb(kVxlan));
  ASSIGN_OR_RETURN(std::vector<NeighborEntry> neigh, nl_->ListNeighbors(kVxlan));

  absl::Status first;
  auto note = [&](const absl::Status& s) {
    if (!s.ok() && first.ok()) first = s;
  };
  // An entry already gone (its link's other end went away meanwhile) is what we wanted.
  auto note_delete = [&](const absl::Status& s) {
    if (!absl::IsNotFound(s)) note(s);
  };
  std::set<std::string> have_fdb;  // "mac dst" of entries that stay
  for (const FdbEntry& e : fdb) {
    if (!e.permanent || !e.dst) continue;
    auto it = want_fdb.find(FormatMac(e.mac));
    if (it != want_fdb.end() && SameIp(it->second.second, *e.dst)) {
      have_fdb.insert(it->first);
    } else {
      note_delete(nl_->DeleteFdb(kVxlan, e.mac, *e.dst));
    }
  }
  std::set<std::string> have_neigh;
  for (const NeighborEntry& e : neigh) {
    if (!e.permanent) continue;
    auto it = want_neigh.find(FormatIp(e.ip));
    if (it != want_neigh.end() && it->second.second == e.mac) {
      have_neigh.insert(it->first);
    } else {
      note_delete(nl_->DeleteNeighbor(kVxlan, e.ip));
    }
  }
  for (const auto& [key, v] : want_fdb) {
    if (!have_fdb.contains(key)) note(nl_->AddFdb(kVxlan, v.first, v.second));
  }
  for (const auto& [key, v] : want_neigh) {
    if (!have_neigh.contains(key)) note(nl_->AddNeighbor(kVxlan, v.first, v.second));
  }
  if (!first.ok()) {
    return absl::Status(first.code(), absl::StrCat("programming the peers of network ", network_.id,
                                                   ": ", first.message()));
  }
  return absl::OkStatus();
}

absl::Status Overlay::Remove() {
  absl::MutexLock lock(&mu_);
  if (removed_) return absl::OkStatus();
  removed_ = true;
  attached_.clear();
  nl_.reset();
  netns_ = ScopedFd();
  return RemoveLinksAndNamespace(netns_path_);
}

std::set<std::string> Overlay::AttachedAddresses() const {
  absl::MutexLock lock(&mu_);
  return attached_;
}

}  // namespace swarm::agent::network

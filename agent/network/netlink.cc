#include "agent/network/netlink.h"

#include <arpa/inet.h>
#include <linux/fib_rules.h>
#include <linux/if_bridge.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/link/vxlan.h>
#include <netlink/socket.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/network/netns.h"
#include "common/errno_status.h"
#include "common/status_macros.h"

namespace swarm::agent::network {

std::string FormatMac(const MacAddress& m) {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

std::string FormatIp(const IpAddress& ip) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(ip.family, ip.bytes.data(), buf, sizeof(buf));
  return buf;
}

MacAddress MacFromIpv4(const IpAddress& ip) {
  return {0x02, 0x42, ip.bytes[0], ip.bytes[1], ip.bytes[2], ip.bytes[3]};
}

namespace {

int AddressLength(const IpAddress& ip) { return ip.family == AF_INET ? 4 : 16; }

// libnl objects released by scope.
struct LinkDeleter {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
using LinkPtr = std::unique_ptr<rtnl_link, LinkDeleter>;
struct AddrDeleter {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
using AddrPtr = std::unique_ptr<nl_addr, AddrDeleter>;
struct CacheDeleter {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
using CachePtr = std::unique_ptr<nl_cache, CacheDeleter>;

AddrPtr MacAddr(const MacAddress& mac) {
  return AddrPtr(nl_addr_build(AF_LLC, mac.data(), mac.size()));
}

AddrPtr IpAddr(const IpAddress& ip) {
  return AddrPtr(nl_addr_build(ip.family, ip.bytes.data(), AddressLength(ip)));
}

int CaptureError(sockaddr_nl*, nlmsgerr* err, void* arg) {
  *static_cast<int*>(arg) = -err->error;
  return NL_STOP;
}

LinkInfo ToLinkInfo(rtnl_link* link) {
  LinkInfo info;
  info.index = rtnl_link_get_ifindex(link);
  if (const char* name = rtnl_link_get_name(link)) info.name = name;
  if (const char* type = rtnl_link_get_type(link)) info.type = type;
  info.mtu = rtnl_link_get_mtu(link);
  nl_addr* addr = rtnl_link_get_addr(link);
  if (addr != nullptr && nl_addr_get_len(addr) == 6) {
    std::memcpy(info.mac.data(), nl_addr_get_binary_addr(addr), 6);
  }
  info.master = rtnl_link_get_master(link);
  info.up = (rtnl_link_get_flags(link) & IFF_UP) != 0;
  return info;
}

// The attributes of a struct nlmsghdr answer, indexed by type.
template <int kMax>
struct Attrs {
  nlattr* tb[kMax + 1] = {};
  bool Parse(const nlmsghdr* h, int header_len) {
    return nlmsg_parse(const_cast<nlmsghdr*>(h), header_len, tb, kMax, nullptr) == 0;
  }
};

}  // namespace

Netlink::Netlink(nl_sock* sock) : sock_(sock) {
  nl_cb_err(nl_socket_get_cb(sock_), NL_CB_CUSTOM, CaptureError, &last_errno_);
}

Netlink::~Netlink() { nl_socket_free(sock_); }

absl::StatusOr<std::unique_ptr<Netlink>> Netlink::Open() {
  nl_sock* sock = nl_socket_alloc();
  if (sock == nullptr) return absl::ResourceExhaustedError("allocating a netlink socket");
  int err = nl_connect(sock, NETLINK_ROUTE);
  if (err < 0) {
    nl_socket_free(sock);
    return absl::InternalError(
        absl::StrCat("connecting a route netlink socket: ", nl_geterror(err)));
  }
  // The kernel's dumps of a busy namespace can exceed libnl's default 32 KiB buffer.
  nl_socket_set_buffer_size(sock, 1 << 20, 1 << 20);
  return std::unique_ptr<Netlink>(new Netlink(sock));
}

absl::StatusOr<std::unique_ptr<Netlink>> Netlink::OpenIn(int netns_fd) {
  absl::StatusOr<std::unique_ptr<Netlink>> result = absl::InternalError("not run");
  absl::Status status = RunInNetns(netns_fd, [&] {
    result = Open();
    return result.status();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::unique_ptr<Netlink>> Netlink::OpenAt(const std::string& netns_path) {
  if (netns_path.empty()) return Open();
  ASSIGN_OR_RETURN(ScopedFd fd, OpenNetns(netns_path));
  return OpenIn(fd.get());
}

absl::Status Netlink::Failed(int nl_error, const std::string& what) {
  int e = last_errno_;
  last_errno_ = 0;
  if (e != 0) return ErrnoToStatus(e, what);
  nl_error = nl_error < 0 ? -nl_error : nl_error;
  std::string message = absl::StrCat(what, ": ", nl_geterror(nl_error));
  switch (nl_error) {
    case NLE_OBJ_NOTFOUND:
    case NLE_NODEV:
      return absl::NotFoundError(message);
    case NLE_EXIST:
      return absl::AlreadyExistsError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status Netlink::Request(void* raw, const std::string& what) {
  nl_msg* msg = static_cast<nl_msg*>(raw);
  last_errno_ = 0;
  int err = nl_send_auto(sock_, msg);
  nlmsg_free(msg);
  if (err < 0) return Failed(err, what);
  err = nl_wait_for_ack(sock_);
  if (err < 0) return Failed(err, what);
  return absl::OkStatus();
}

namespace {
struct DumpState {
  const std::function<void(const void*)>* on_message;
};
int OnDumpMessage(nl_msg* msg, void* arg) {
  (*static_cast<DumpState*>(arg)->on_message)(nlmsg_hdr(msg));
  return NL_OK;
}
}  // namespace

absl::Status Netlink::Dump(int type, const void* header, size_t header_len,
                           const std::function<void(const void*)>& on_message,
                           const std::string& what) {
  last_errno_ = 0;
  int err = nl_send_simple(sock_, type, NLM_F_DUMP, const_cast<void*>(header), header_len);
  if (err < 0) return Failed(err, what);
  DumpState state{&on_message};
  nl_cb* cb = nl_cb_clone(nl_socket_get_cb(sock_));
  nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, OnDumpMessage, &state);
  err = nl_recvmsgs(sock_, cb);
  nl_cb_put(cb);
  if (err < 0) return Failed(err, what);
  return absl::OkStatus();
}

// ---- links

absl::StatusOr<LinkInfo> Netlink::GetLink(const std::string& name) {
  rtnl_link* link = nullptr;
  last_errno_ = 0;
  std::string n(name);
  int err = rtnl_link_get_kernel(sock_, 0, n.c_str(), &link);
  if (err < 0) return Failed(err, absl::StrCat("looking up link ", name));
  LinkPtr owned(link);
  return ToLinkInfo(link);
}

absl::StatusOr<int> Netlink::IndexOf(const std::string& name, const std::string& what) {
  absl::StatusOr<LinkInfo> info = GetLink(name);
  if (!info.ok()) {
    return absl::Status(info.status().code(), absl::StrCat(what, ": ", info.status().message()));
  }
  return info->index;
}

absl::StatusOr<std::vector<LinkInfo>> Netlink::ListLinks() {
  nl_cache* cache = nullptr;
  last_errno_ = 0;
  int err = rtnl_link_alloc_cache(sock_, AF_UNSPEC, &cache);
  if (err < 0) return Failed(err, "listing links");
  CachePtr owned(cache);
  std::vector<LinkInfo> links;
  for (nl_object* o = nl_cache_get_first(cache); o != nullptr; o = nl_cache_get_next(o)) {
    links.push_back(ToLinkInfo(reinterpret_cast<rtnl_link*>(o)));
  }
  return links;
}

absl::Status Netlink::CreateBridge(const std::string& name, int mtu,
                                   std::optional<MacAddress> mac) {
  LinkPtr link(rtnl_link_bridge_alloc());
  std::string n(name);
  rtnl_link_set_name(link.get(), n.c_str());
  if (mtu > 0) rtnl_link_set_mtu(link.get(), mtu);
  if (mac) rtnl_link_set_addr(link.get(), MacAddr(*mac).get());
  rtnl_link_set_flags(link.get(), IFF_UP);
  last_errno_ = 0;
  int err = rtnl_link_add(sock_, link.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (err < 0) return Failed(err, absl::StrCat("creating bridge ", name));
  return absl::OkStatus();
}

absl::Status Netlink::CreateVxlan(const VxlanOptions& o) {
  std::string what = absl::StrCat("creating vxlan device ", o.name, " (VNI ", o.vni, ")");
  LinkPtr link(rtnl_link_vxlan_alloc());
  rtnl_link* l = link.get();
  rtnl_link_set_name(l, o.name.c_str());
  rtnl_link_vxlan_set_id(l, o.vni);
  rtnl_link_vxlan_set_port(l, o.port);
  rtnl_link_vxlan_set_learning(l, 0);
  rtnl_link_vxlan_set_proxy(l, o.arp_proxy ? 1 : 0);
  if (o.local) rtnl_link_vxlan_set_local(l, IpAddr(*o.local).get());
  if (!o.underlay_device.empty()) {
    ASSIGN_OR_RETURN(int index, IndexOf(o.underlay_device, what));
    rtnl_link_vxlan_set_link(l, index);
  }
  if (o.mtu > 0) rtnl_link_set_mtu(l, o.mtu);
  if (o.target_netns_fd >= 0) rtnl_link_set_ns_fd(l, o.target_netns_fd);
  rtnl_link_set_flags(l, IFF_UP);
  last_errno_ = 0;
  int err = rtnl_link_add(sock_, l, NLM_F_CREATE | NLM_F_EXCL);
  if (err < 0) return Failed(err, what);
  return absl::OkStatus();
}

absl::Status Netlink::CreateVeth(const VethOptions& o) {
  std::string what = absl::StrCat("creating veth pair ", o.name, "/", o.peer_name);
  LinkPtr link(rtnl_link_veth_alloc());
  rtnl_link* l = link.get();
  rtnl_link* peer = rtnl_link_veth_get_peer(l);  // a reference we must put
  rtnl_link_set_name(l, o.name.c_str());
  rtnl_link_set_name(peer, o.peer_name.c_str());
  if (o.mtu > 0) {
    rtnl_link_set_mtu(l, o.mtu);
    rtnl_link_set_mtu(peer, o.mtu);
  }
  if (o.mac) rtnl_link_set_addr(l, MacAddr(*o.mac).get());
  if (o.peer_mac) rtnl_link_set_addr(peer, MacAddr(*o.peer_mac).get());
  if (o.peer_netns_fd >= 0) rtnl_link_set_ns_fd(peer, o.peer_netns_fd);
  // Only this end comes up with the request: the kernel configures the peer before it
  // pairs the two, and a veth without its peer refuses to open (ENOTCONN).
  if (o.up) rtnl_link_set_flags(l, IFF_UP);
  rtnl_link_put(peer);
  if (!o.master.empty()) {
    ASSIGN_OR_RETURN(int master, IndexOf(o.master, what));
    rtnl_link_set_master(l, master);
  }
  last_errno_ = 0;
  int err = rtnl_link_add(sock_, l, NLM_F_CREATE | NLM_F_EXCL);
  if (err < 0) return Failed(err, what);
  if (!o.up) return absl::OkStatus();
  absl::Status up = [&]() -> absl::Status {
    if (o.peer_netns_fd < 0) return SetLinkUp(o.peer_name, true);
    ASSIGN_OR_RETURN(std::unique_ptr<Netlink> there, OpenIn(o.peer_netns_fd));
    return there->SetLinkUp(o.peer_name, true);
  }();
  if (!up.ok()) {
    (void)DeleteLink(o.name);
    return absl::Status(up.code(), absl::StrCat(what, ": ", up.message()));
  }
  return absl::OkStatus();
}

absl::Status Netlink::DeleteLink(const std::string& name) {
  std::string what = absl::StrCat("deleting link ", name);
  ASSIGN_OR_RETURN(int index, IndexOf(name, what));
  LinkPtr link(rtnl_link_alloc());
  rtnl_link_set_ifindex(link.get(), index);
  last_errno_ = 0;
  int err = rtnl_link_delete(sock_, link.get());
  if (err < 0) return Failed(err, what);
  return absl::OkStatus();
}

absl::Status Netlink::ChangeLink(const std::string& name, const std::string& what,
                                 const std::function<void(void*)>& setup) {
  ASSIGN_OR_RETURN(int index, IndexOf(name, what));
  LinkPtr orig(rtnl_link_alloc());
  rtnl_link_set_ifindex(orig.get(), index);
  LinkPtr changes(rtnl_link_alloc());
  setup(changes.get());
  last_errno_ = 0;
  int err = rtnl_link_change(sock_, orig.get(), changes.get(), 0);
  if (err < 0) return Failed(err, what);
  return absl::OkStatus();
}

absl::Status Netlink::MoveLinkToNetns(const std::string& name, int netns_fd) {
  return ChangeLink(name, absl::StrCat("moving link ", name, " to another network namespace"),
                    [&](void* c) { rtnl_link_set_ns_fd(static_cast<rtnl_link*>(c), netns_fd); });
}

absl::Status Netlink::SetLinkUp(const std::string& name, bool up) {
  return ChangeLink(name, absl::StrCat("setting link ", name, up ? " up" : " down"), [&](void* c) {
    if (up) {
      rtnl_link_set_flags(static_cast<rtnl_link*>(c), IFF_UP);
    } else {
      rtnl_link_unset_flags(static_cast<rtnl_link*>(c), IFF_UP);
    }
  });
}

absl::Status Netlink::SetMtu(const std::string& name, int mtu) {
  return ChangeLink(name, absl::StrCat("setting the MTU of ", name, " to ", mtu),
                    [&](void* c) { rtnl_link_set_mtu(static_cast<rtnl_link*>(c), mtu); });
}

absl::Status Netlink::SetMac(const std::string& name, const MacAddress& mac) {
  AddrPtr addr = MacAddr(mac);
  return ChangeLink(name, absl::StrCat("setting the MAC of ", name, " to ", FormatMac(mac)),
                    [&](void* c) { rtnl_link_set_addr(static_cast<rtnl_link*>(c), addr.get()); });
}

absl::Status Netlink::SetMaster(const std::string& name, const std::string& master) {
  std::string what = absl::StrCat("adding ", name, " to bridge ", master);
  ASSIGN_OR_RETURN(int master_index, IndexOf(master, what));
  return ChangeLink(
      name, what, [&](void* c) { rtnl_link_set_master(static_cast<rtnl_link*>(c), master_index); });
}

// ---- addresses and routes

absl::Status Netlink::AddAddress(const std::string& link, const IpAddress& ip, int prefix) {
  std::string what = absl::StrCat("adding address ", FormatIp(ip), "/", prefix, " to ", link);
  ASSIGN_OR_RETURN(int index, IndexOf(link, what));
  nl_msg* msg = nlmsg_alloc_simple(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  ifaddrmsg ifa{};
  ifa.ifa_family = ip.family;
  ifa.ifa_prefixlen = prefix;
  ifa.ifa_index = index;
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  nlmsg_append(msg, &ifa, sizeof(ifa), NLMSG_ALIGNTO);
  nla_put(msg, IFA_LOCAL, AddressLength(ip), ip.bytes.data());
  nla_put(msg, IFA_ADDRESS, AddressLength(ip), ip.bytes.data());
  return Request(msg, what);
}

absl::StatusOr<std::vector<AddressEntry>> Netlink::ListAddresses(const std::string& link) {
  std::string what = absl::StrCat("listing the addresses of ", link);
  ASSIGN_OR_RETURN(int index, IndexOf(link, what));
  std::vector<AddressEntry> out;
  ifaddrmsg req{};
  req.ifa_family = AF_UNSPEC;
  RETURN_IF_ERROR(Dump(
      RTM_GETADDR, &req, sizeof(req),
      [&](const void* raw) {
        auto* h = static_cast<const nlmsghdr*>(raw);
        if (h->nlmsg_type != RTM_NEWADDR) return;
        auto* ifa = static_cast<const ifaddrmsg*>(nlmsg_data(h));
        if (static_cast<int>(ifa->ifa_index) != index) return;
        Attrs<IFA_MAX> a;
        if (!a.Parse(h, sizeof(ifaddrmsg))) return;
        nlattr* addr = a.tb[IFA_LOCAL] ? a.tb[IFA_LOCAL] : a.tb[IFA_ADDRESS];
        if (addr == nullptr) return;
        AddressEntry e;
        e.ip.family = ifa->ifa_family;
        e.prefix = ifa->ifa_prefixlen;
        std::memcpy(e.ip.bytes.data(), nla_data(addr),
                    std::min<size_t>(nla_len(addr), e.ip.bytes.size()));
        out.push_back(e);
      },
      what));
  return out;
}

absl::Status Netlink::AddDefaultRoute(const std::string& link, const IpAddress& gateway,
                                      uint32_t table) {
  std::string what = absl::StrCat("adding a default route via ", FormatIp(gateway), " dev ", link,
                                  " table ", table);
  ASSIGN_OR_RETURN(int index, IndexOf(link, what));
  // The main table's route is added once (EXCL: two would be a bug); another table's is
  // replaced, so that programming it again is harmless.
  nl_msg* msg = nlmsg_alloc_simple(
      RTM_NEWROUTE, NLM_F_CREATE | (table == RT_TABLE_MAIN ? NLM_F_EXCL : NLM_F_REPLACE));
  rtmsg rt{};
  rt.rtm_family = gateway.family;
  rt.rtm_dst_len = 0;
  rt.rtm_table = table < 256 ? table : RT_TABLE_UNSPEC;
  rt.rtm_protocol = RTPROT_BOOT;
  rt.rtm_scope = RT_SCOPE_UNIVERSE;
  rt.rtm_type = RTN_UNICAST;
  nlmsg_append(msg, &rt, sizeof(rt), NLMSG_ALIGNTO);
  nla_put_u32(msg, RTA_TABLE, table);
  nla_put(msg, RTA_GATEWAY, AddressLength(gateway), gateway.bytes.data());
  nla_put_u32(msg, RTA_OIF, index);
  return Request(msg, what);
}

absl::Status Netlink::FwmarkRule(bool add, uint32_t mark, uint32_t table, uint32_t priority) {
  std::string what = absl::StrCat(add ? "adding" : "deleting", " the rule fwmark ", mark,
                                  " lookup ", table, " priority ", priority);
  nl_msg* msg =
      nlmsg_alloc_simple(add ? RTM_NEWRULE : RTM_DELRULE, add ? NLM_F_CREATE | NLM_F_EXCL : 0);
  fib_rule_hdr rule{};
  rule.family = AF_INET;
  rule.table = table < 256 ? table : RT_TABLE_UNSPEC;
  rule.action = FR_ACT_TO_TBL;
  nlmsg_append(msg, &rule, sizeof(rule), NLMSG_ALIGNTO);
  nla_put_u32(msg, FRA_FWMARK, mark);
  nla_put_u32(msg, FRA_TABLE, table);
  nla_put_u32(msg, FRA_PRIORITY, priority);
  absl::Status s = Request(msg, what);
  if (add && s.code() == absl::StatusCode::kAlreadyExists) return absl::OkStatus();
  if (!add && s.code() == absl::StatusCode::kNotFound) return absl::OkStatus();
  return s;
}

absl::Status Netlink::AddFwmarkRule(uint32_t mark, uint32_t table, uint32_t priority) {
  return FwmarkRule(true, mark, table, priority);
}

absl::Status Netlink::DeleteFwmarkRule(uint32_t mark, uint32_t table, uint32_t priority) {
  return FwmarkRule(false, mark, table, priority);
}

// ---- FDB and neighbour entries

namespace {
nl_msg* NeighMessage(int type, int flags, int family, int ifindex, uint16_t state,
                     uint8_t ntf_flags) {
  nl_msg* msg = nlmsg_alloc_simple(type, flags);
  ndmsg nd{};
  nd.ndm_family = family;
  nd.ndm_ifindex = ifindex;
  nd.ndm_state = state;
  nd.ndm_flags = ntf_flags;
  nlmsg_append(msg, &nd, sizeof(nd), NLMSG_ALIGNTO);
  return msg;
}
}  // namespace

absl::Status Netlink::AddFdb(const std::string& link, const MacAddress& mac, const IpAddress& dst) {
  std::string what =
      absl::StrCat("adding fdb entry ", FormatMac(mac), " dst ", FormatIp(dst), " to ", link);
  ASSIGN_OR_RETURN(int index, IndexOf(link, what));
  nl_msg* msg = NeighMessage(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_APPEND, AF_BRIDGE, index,
                             NUD_PERMANENT, NTF_SELF);
  nla_put(msg, NDA_LLADDR, mac.size(), mac.data());
  nla_put(msg, NDA_DST, AddressLength(dst), dst.bytes.data());
  return Request(msg, what);
}

absl::Status Netlink::DeleteFdb(const std::string& link, const MacAddress& mac,
                                const IpAddress& dst) {
  std::string what =
      absl::StrCat("deleting fdb entry ", FormatMac(mac), " dst ", FormatIp(dst), " from ", link);
  ASSIGN_OR_RETURN(int index, IndexOf(link, what));
  nl_msg* msg = NeighMessage(RTM_DELNEIGH, 0, AF_BRIDGE, index, 0, NTF_SELF);
  nla_put(msg, NDA_LLADDR, mac.size(), mac.data());
  nla_put(msg, NDA_DST, AddressLength(dst), dst.bytes.data());
  return Request(msg, what);
}

absl::StatusOr<std::vector<FdbEntry>> Netlink::ListFdb(const std::string& link) {
  std::string what = absl::StrCat("listing the fdb entries of ", link);
  ASSIGN_OR_RETURN(int index, IndexOf(link, what));
  std::vector<FdbEntry> out;
  ndmsg req{};
  req.ndm_family = AF_BRIDGE;
  RETURN_IF_ERROR(Dump(
      RTM_GETNEIGH, &req, sizeof(req),
      [&](const void* raw) {
        auto* h = static_cast<const nlmsghdr*>(raw);
        if (h->nlmsg_type != RTM_NEWNEIGH) return;
        auto* nd = static_cast<const ndmsg*>(nlmsg_data(h));
        if (nd->ndm_family != AF_BRIDGE || nd->ndm_ifindex != index) return;
        if ((nd->ndm_flags & NTF_SELF) == 0) return;
        Attrs<NDA_MAX> a;
        if (!a.Parse(h, sizeof(ndmsg)) || a.tb[NDA_LLADDR] == nullptr ||
            nla_len(a.tb[NDA_LLADDR]) != 6) {
          return;
        }
        FdbEntry e;
        std::memcpy(e.mac.data(), nla_data(a.tb[NDA_LLADDR]), 6);
        e.permanent = (nd->ndm_state & NUD_PERMANENT) != 0;
        if (nlattr* dst = a.tb[NDA_DST]) {
          IpAddress ip;
          ip.family = nla_len(dst) == 4 ? AF_INET : AF_INET6;
          std::memcpy(ip.bytes.data(), nla_data(dst),
                      std::min<size_t>(nla_len(dst), ip.bytes.size()));
          e.dst = ip;
        }
        out.push_back(e);
      },
      what));
  return out;
}

absl::Status Netlink::AddNeighbor(const std::string& link, const IpAddress& ip,
                                  const MacAddress& mac) {
  std::string what =
      absl::StrCat("adding neighbour ", FormatIp(ip), " lladdr ", FormatMac(mac), " to ", link);
  ASSIGN_OR_RETURN(int index, IndexOf(link, what));
  nl_msg* msg =
      NeighMessage(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, ip.family, index, NUD_PERMANENT, 0);
  nla_put(msg, NDA_DST, AddressLength(ip), ip.bytes.data());
  nla_put(msg, NDA_LLADDR, mac.size(), mac.data());
  return Request(msg, what);
}

absl::Status Netlink::DeleteNeighbor(const std::string& link, const IpAddress& ip) {
  std::string what = absl::StrCat("deleting neighbour ", FormatIp(ip), " from ", link);
  ASSIGN_OR_RETURN(int index, IndexOf(link, what));
  nl_msg* msg = NeighMessage(RTM_DELNEIGH, 0, ip.family, index, 0, 0);
  nla_put(msg, NDA_DST, AddressLength(ip), ip.bytes.data());
  return Request(msg, what);
}

absl::StatusOr<std::vector<NeighborEntry>> Netlink::ListNeighbors(const std::string& link) {
  std::string what = absl::StrCat("listing the neighbours of ", link);
  ASSIGN_OR_RETURN(int index, IndexOf(link, what));
  std::vector<NeighborEntry> out;
  for (int family : {AF_INET, AF_INET6}) {
    ndmsg req{};
    req.ndm_family = family;
    RETURN_IF_ERROR(Dump(
        RTM_GETNEIGH, &req, sizeof(req),
        [&](const void* raw) {
          auto* h = static_cast<const nlmsghdr*>(raw);
          if (h->nlmsg_type != RTM_NEWNEIGH) return;
          auto* nd = static_cast<const ndmsg*>(nlmsg_data(h));
          if (nd->ndm_family != family || nd->ndm_ifindex != index) return;
          Attrs<NDA_MAX> a;
          if (!a.Parse(h, sizeof(ndmsg)) || a.tb[NDA_DST] == nullptr) return;
          NeighborEntry e;
          e.ip.family = family;
          std::memcpy(e.ip.bytes.data(), nla_data(a.tb[NDA_DST]),
                      std::min<size_t>(nla_len(a.tb[NDA_DST]), e.ip.bytes.size()));
          if (a.tb[NDA_LLADDR] != nullptr && nla_len(a.tb[NDA_LLADDR]) == 6) {
            std::memcpy(e.mac.data(), nla_data(a.tb[NDA_LLADDR]), 6);
          }
          e.permanent = (nd->ndm_state & NUD_PERMANENT) != 0;
          out.push_back(e);
        },
        what));
  }
  return out;
}

}  // namespace swarm::agent::network

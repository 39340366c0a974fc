// Netlink helpers for the node data plane, on libnl-route-3: bridges, VXLAN devices, veth
// pairs, moving links between network namespaces, addresses, MTU, MAC, routes, and the
// static FDB and neighbour entries that steer overlay traffic. Nothing here runs `ip`.
//
// A Netlink object owns one rtnetlink socket, and the kernel binds a socket to the network
// namespace of the thread that opened it: every call on the object acts in that namespace,
// whatever namespace the caller is in. OpenIn() opens the socket on a helper thread that has
// joined the target namespace (netns.h), so the agent's threads never switch namespaces.
//
// Errors say what was being done and the kernel's reason, e.g. "creating vxlan device
// vxlan0 (VNI 4097): file exists". A missing link or entry is NotFound.
//
// Thread-safety: a Netlink object is not thread-safe; give each thread its own (they are
// cheap). libnl types stay in netlink.cc.
#ifndef SWARM_AGENT_NETWORK_NETLINK_H_
#define SWARM_AGENT_NETWORK_NETLINK_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/ip.h"

struct nl_sock;

namespace swarm::agent::network {

using MacAddress = std::array<uint8_t, 6>;

std::string FormatMac(const MacAddress& mac);
std::string FormatIp(const IpAddress& ip);
// "10.0.0.2" -> 02:42:0a:00:00:02, Docker's rule, so a MAC never has to be distributed
// separately from the address and never collides within a subnet.
MacAddress MacFromIpv4(const IpAddress& ip);

struct LinkInfo {
  int index = 0;
  std::string name;
  std::string type;  // "bridge", "vxlan", "veth", "" (loopback and other untyped links)
  int mtu = 0;
  MacAddress mac{};
  int master = 0;  // ifindex of the bridge it is a port of, 0 if none
  bool up = false;
};

struct VxlanOptions {
  std::string name;
  uint32_t vni = 0;
  uint16_t port = 4789;
  std::optional<IpAddress> local;  // underlay source address
  std::string underlay_device;     // in the socket's namespace; "" = routing decides
  int mtu = 0;                     // 0 = kernel default
  // Created directly in this namespace (IFLA_NET_NS_FD) when >= 0. The VXLAN UDP socket
  // and the underlay routing stay in the socket's namespace, the device lives in the target.
  int target_netns_fd = -1;
  // Answer ARP for addresses in the neighbour table instead of flooding: overlays have no
  // broadcast domain across nodes, so this is how containers resolve remote peers.
  bool arp_proxy = true;
};

struct VethOptions {
  std::string name;       // in the socket's namespace
  std::string peer_name;  // in peer_netns_fd's namespace (or the socket's when < 0)
  int peer_netns_fd = -1;
  int mtu = 0;
  std::optional<MacAddress> mac;
  std::optional<MacAddress> peer_mac;
  std::string master;  // bridge (socket's namespace) that `name` joins; "" = none
  bool up = true;      // both ends; the peer's address is still the caller's job
};

struct FdbEntry {
  MacAddress mac{};
  std::optional<IpAddress> dst;  // remote VTEP
  bool permanent = false;
};

struct NeighborEntry {
  IpAddress ip;
  MacAddress mac{};
  bool permanent = false;
};

struct AddressEntry {
  IpAddress ip;
  int prefix = 0;
};

class Netlink {
 public:
  // A socket in the calling thread's network namespace.
  static absl::StatusOr<std::unique_ptr<Netlink>> Open();
  // A socket in the network namespace netns_fd refers to.
  static absl::StatusOr<std::unique_ptr<Netlink>> OpenIn(int netns_fd);
  // A socket in the namespace at path ("" = the calling thread's).
  static absl::StatusOr<std::unique_ptr<Netlink>> OpenAt(const std::string& netns_path);

  ~Netlink();
  Netlink(const Netlink&) = delete;
  Netlink& operator=(const Netlink&) = delete;

  // Links.
  absl::StatusOr<LinkInfo> GetLink(const std::string& name);
  absl::StatusOr<std::vector<LinkInfo>> ListLinks();
  absl::Status CreateBridge(const std::string& name, int mtu = 0,
                            std::optional<MacAddress> mac = std::nullopt);
  absl::Status CreateVxlan(const VxlanOptions& options);
  absl::Status CreateVeth(const VethOptions& options);
  absl::Status DeleteLink(const std::string& name);
  absl::Status MoveLinkToNetns(const std::string& name, int netns_fd);
  absl::Status SetLinkUp(const std::string& name, bool up);
  absl::Status SetMtu(const std::string& name, int mtu);
  absl::Status SetMac(const std::string& name, const MacAddress& mac);
  absl::Status SetMaster(const std::string& name, const std::string& master);

  // Addresses and routes.
  absl::Status AddAddress(const std::string& link, const IpAddress& ip, int prefix);
  absl::StatusOr<std::vector<AddressEntry>> ListAddresses(const std::string& link);
  // Default route via gateway (IPv4) through link, in the main table (once) or in another
  // routing table (replaced when it exists).
  absl::Status AddDefaultRoute(const std::string& link, const IpAddress& gateway,
                               uint32_t table = 254 /* RT_TABLE_MAIN */);
  // `ip rule add fwmark <mark> lookup <table> priority <priority>` (IPv4); adding one that
  // exists or deleting one that does not is OK.
  absl::Status AddFwmarkRule(uint32_t mark, uint32_t table, uint32_t priority);
  absl::Status DeleteFwmarkRule(uint32_t mark, uint32_t table, uint32_t priority);

  // `bridge fdb append <mac> dev <link> dst <dst> self permanent`.
  absl::Status AddFdb(const std::string& link, const MacAddress& mac, const IpAddress& dst);
  absl::Status DeleteFdb(const std::string& link, const MacAddress& mac, const IpAddress& dst);
  // The link's own (NTF_SELF) FDB entries.
  absl::StatusOr<std::vector<FdbEntry>> ListFdb(const std::string& link);

  // `ip neigh replace <ip> lladdr <mac> dev <link> nud permanent`.
  absl::Status AddNeighbor(const std::string& link, const IpAddress& ip, const MacAddress& mac);
  absl::Status DeleteNeighbor(const std::string& link, const IpAddress& ip);
  absl::StatusOr<std::vector<NeighborEntry>> ListNeighbors(const std::string& link);

 private:
  explicit Netlink(nl_sock* sock);
  // The ifindex of a link; a failure's message starts with `what`.
  absl::StatusOr<int> IndexOf(const std::string& name, const std::string& what);
  // Changes an existing link; setup fills the change (a struct rtnl_link*).
  absl::Status ChangeLink(const std::string& name, const std::string& what,
                          const std::function<void(void*)>& setup);
  // The status of a failed libnl call: the kernel's errno when it sent one, else libnl's.
  absl::Status Failed(int nl_error, const std::string& what);
  absl::Status FwmarkRule(bool add, uint32_t mark, uint32_t table, uint32_t priority);
  // Sends a request built by the caller, waits for the kernel's acknowledgement, frees msg.
  absl::Status Request(void* nl_msg, const std::string& what);
  // Sends a dump request and hands every answer to on_message (a struct nlmsghdr*).
  absl::Status Dump(int type, const void* header, size_t header_len,
                    const std::function<void(const void*)>& on_message, const std::string& what);

  nl_sock* sock_;
  // The errno of the last NLMSG_ERROR the kernel sent on sock_, 0 before the next request.
  int last_errno_ = 0;
};

}  // namespace swarm::agent::network

#endif  // SWARM_AGENT_NETWORK_NETLINK_H_

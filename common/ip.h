// IP addresses and CIDR networks (IPv4 and IPv6), parsed with inet_pton: what network specs,
// placement constraints (node.ip) and address management need.
//
// Thread-safety: values; the functions are pure.
#ifndef SWARM_COMMON_IP_H_
#define SWARM_COMMON_IP_H_

#include <netinet/in.h>

#include <array>
#include <optional>
#include <string_view>

namespace swarm {

// An IPv4 or IPv6 address; IPv4 uses the first 4 bytes.
struct IpAddress {
  int family = AF_INET;
  std::array<unsigned char, 16> bytes{};
  int bits() const { return family == AF_INET ? 32 : 128; }
};

// A network: the addresses that share the first prefix bits of base.
struct IpNetwork {
  IpAddress base;
  int prefix = 0;
  bool Contains(const IpAddress& ip) const;
  bool Contains(const IpNetwork& other) const {
    return other.prefix >= prefix && Contains(other.base);
  }
};

std::optional<IpAddress> ParseIp(std::string_view text);
// An IPv4 address and a port as a socket address (the address must be IPv4).
sockaddr_in ToSockaddr(const IpAddress& ip, uint16_t port);
// "10.0.0.0/24"; without a prefix length, require_prefix decides between refusing it and
// taking the address as a network of full length.
std::optional<IpNetwork> ParseCidr(std::string_view text, bool require_prefix = true);

}  // namespace swarm

#endif  // SWARM_COMMON_IP_H_

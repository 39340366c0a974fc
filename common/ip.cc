#include "common/ip.h"

#include <arpa/inet.h>

#include <cstring>
#include <string>

#include "absl/strings/numbers.h"

namespace swarm {

bool IpNetwork::Contains(const IpAddress& ip) const {
  if (ip.family != base.family) return false;
  for (int bit = 0; bit < prefix; ++bit) {
    const unsigned char mask = static_cast<unsigned char>(0x80 >> (bit % 8));
    if ((ip.bytes[bit / 8] & mask) != (base.bytes[bit / 8] & mask)) return false;
  }
  return true;
}

sockaddr_in ToSockaddr(const IpAddress& ip, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  std::memcpy(&sa.sin_addr, ip.bytes.data(), 4);
  return sa;
}

std::optional<IpAddress> ParseIp(std::string_view text) {
  IpAddress ip;
  const std::string s(text);
  if (inet_pton(AF_INET, s.c_str(), ip.bytes.data()) == 1) return ip;
  ip.family = AF_INET6;
  if (inet_pton(AF_INET6, s.c_str(), ip.bytes.data()) == 1) return ip;
  return std::nullopt;
}

std::optional<IpNetwork> ParseCidr(std::string_view text, bool require_prefix) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    if (require_prefix) return std::nullopt;
    std::optional<IpAddress> ip = ParseIp(text);
    if (!ip) return std::nullopt;
    return IpNetwork{*ip, ip->bits()};
  }
  int prefix = 0;
  const std::string digits(text.substr(slash + 1));
  if (!absl::SimpleAtoi(digits, &prefix)) return std::nullopt;
  std::optional<IpAddress> ip = ParseIp(text.substr(0, slash));
  if (!ip || prefix < 0 || prefix > ip->bits()) return std::nullopt;
  return IpNetwork{*ip, prefix};
}

}  // namespace swarm

#include "common/id.h"

#include "absl/numeric/int128.h"

namespace swarm {

std::string NewId(Random& random) {
  static constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  absl::uint128 n = absl::MakeUint128(random.Next64(), random.Next64());
  // 36^25 > 2^128, so 25 digits always suffice; leading zeros keep the length fixed.
  std::string id(kIdLength, '0');
  for (size_t i = kIdLength; i > 0 && n != 0; --i) {
    id[i - 1] = kDigits[static_cast<int>(n % 36)];
    n /= 36;
  }
  return id;
}

bool IsValidId(std::string_view id) {
  if (id.size() != kIdLength) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))) return false;
  }
  return true;
}

}  // namespace swarm

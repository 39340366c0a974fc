// The node-local network modes a task can name instead of a swarm network, as Docker's
// predefined networks: `host` (the node's own network namespace) and `none` (loopback only).
// They are not objects in the store: the control API keeps the name as the attachment's
// target, the allocator gives them nothing, and the agent picks the container's network mode.
//
// Thread-safety: constants and a pure function.
#ifndef SWARM_COMMON_NETWORK_MODES_H_
#define SWARM_COMMON_NETWORK_MODES_H_

#include <string_view>

namespace swarm {

inline constexpr char kHostNetwork[] = "host";
inline constexpr char kNoneNetwork[] = "none";

// True for "host" and "none".
inline bool IsNodeLocalNetwork(std::string_view target) {
  return target == kHostNetwork || target == kNoneNetwork;
}

}  // namespace swarm

#endif  // SWARM_COMMON_NETWORK_MODES_H_

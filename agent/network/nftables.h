// nftables from C++ through libnftables: a ruleset script (nft syntax) applied in one kernel
// transaction, so a table is replaced atomically or not at all. Nothing here runs `nft`.
//
// Thread-safety: free functions. With a namespace fd, the script runs on a helper thread that
// has joined that network namespace (netns.h); without one, in the caller's namespace.
#ifndef SWARM_AGENT_NETWORK_NFTABLES_H_
#define SWARM_AGENT_NETWORK_NFTABLES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace swarm::agent::network {

// Runs an nft script (one or more commands) and returns what it printed (for `list`).
// netns_fd < 0 runs in the calling thread's namespace. `what` says what the script is for, for
// errors, which also carry nft's own message.
absl::StatusOr<std::string> RunNft(int netns_fd, const std::string& script,
                                   const std::string& what);

}  // namespace swarm::agent::network

#endif  // SWARM_AGENT_NETWORK_NFTABLES_H_

// Which kernel parameters a container may set (`--sysctl`): only those that belong to one of
// its own namespaces, so that setting them changes nothing outside it. The IPC namespace's
// (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*), the UTS namespace's kernel.domainname,
// and the network namespace's net.*, which a container on the host's network does not have.
// The same rule as runc's; the managers check it when a service is written and the runtime
// again before a container starts.
//
// Thread-safety: a pure function.
#ifndef SWARM_COMMON_SYSCTL_H_
#define SWARM_COMMON_SYSCTL_H_

#include <string>

#include "absl/status/status.h"

namespace swarm {

// OK, or INVALID_ARGUMENT saying why the container may not set `key`.
absl::Status CheckContainerSysctl(const std::string& key, bool host_network);

// Nothing may be mounted over the container's /proc (runc refuses it too): the runtime writes
// sysctls and oom_score_adj there, and a mount could send those writes elsewhere.
absl::Status CheckContainerMountTarget(const std::string& target);

}  // namespace swarm

#endif  // SWARM_COMMON_SYSCTL_H_

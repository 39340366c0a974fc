// Small filesystem and process helpers shared by the runtime's components.
// Thread-safety: free functions without shared state.
#ifndef SWARM_AGENT_RUNTIME_FSUTIL_H_
#define SWARM_AGENT_RUNTIME_FSUTIL_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace swarm::agent::runtime {

// Recursively removes path (no error when it is already gone); does not cross mounts.
absl::Status RemoveAll(const std::string& path);
// mkdir -p.
absl::Status MkdirAll(const std::string& path, mode_t mode = 0755);
// The start time of pid in clock ticks since boot (/proc/<pid>/stat field 22); 0 if gone.
uint64_t ProcessStartTime(pid_t pid);

}  // namespace swarm::agent::runtime

#endif  // SWARM_AGENT_RUNTIME_FSUTIL_H_

// Control groups for containers: one cgroup per container under a configurable parent, with
// memory, CPU and pids limits, usage for stats, and the OOM-kill count that tells an OOM exit
// from a plain SIGKILL. Both hierarchies are supported behind one small table of operations
// (crun's style): cgroup v2 (unified, /sys/fs/cgroup is cgroup2) and cgroup v1 (one hierarchy
// per controller; a hybrid host with /sys/fs/cgroup/unified counts as v1). The version is
// detected once per process.
//
// Owner: the Container that runs in the cgroup (the shim creates it, Runtime::Remove destroys
// it). Thread-safety: a Cgroup is a value; distinct cgroups may be used from any thread.
// Invariant: a Cgroup's paths exist from Create() until Destroy().
#ifndef SWARM_AGENT_RUNTIME_CGROUPS_H_
#define SWARM_AGENT_RUNTIME_CGROUPS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace swarm::agent::runtime {

enum class CgroupVersion { kV1, kV2 };

// Limits in Docker's units. Zero means "no limit" / "default".
struct Resources {
  int64_t memory_bytes = 0;  // hard limit, swap included (no extra swap)
  int64_t nano_cpus = 0;     // 1e9 = one CPU (quota over a 100 ms period)
  int64_t cpu_shares = 0;    // relative weight (Docker's 1024 = default)
  int64_t pids_limit = 0;
};

struct CgroupStats {
  uint64_t memory_usage_bytes = 0;
  uint64_t cpu_usage_ns = 0;
  uint64_t pids_current = 0;
  uint64_t oom_kills = 0;
};

// cgroup v2 has no devices controller: device access is a BPF program attached to the
// cgroup. Attaches one with Docker's default rules (the same as v1's devices.allow) to the
// cgroup2 directory open at cgroup_dir_fd.
absl::Status AttachDeviceFilter(int cgroup_dir_fd);

// Reads /sys/fs/cgroup once and remembers the answer.
CgroupVersion DetectCgroupVersion();

class Cgroup {
 public:
  // Creates <root>/<parent>/<name> (in every used v1 hierarchy) and applies the limits.
  // `parent` may be nested ("swarm/node1"); missing levels are created.
  static absl::StatusOr<Cgroup> Create(const std::string& parent, const std::string& name,
                                       const Resources& resources);
  // Refers to an existing cgroup (after a daemon restart) without touching it.
  static Cgroup Open(const std::string& parent, const std::string& name);
  // Refers to the cgroup at `paths` (what paths() of it returned).
  static Cgroup AtPaths(std::vector<std::string> paths);

  CgroupVersion version() const { return version_; }
  // Moves pid into the cgroup (every hierarchy).
  absl::Status AddProcess(pid_t pid) const;
  // v2 only: an O_DIRECTORY fd of the cgroup for clone3(CLONE_INTO_CGROUP); -1 on v1.
  int OpenDirFd() const;
  absl::StatusOr<CgroupStats> ReadStats() const;
  // Just the OOM-kill count (one file), for the exit path.
  uint64_t OomKills() const;
  // Kills what is left inside and removes the directories; missing ones are fine.
  absl::Status Destroy() const;
  // The cgroup's directory in each hierarchy (one entry on v2).
  const std::vector<std::string>& paths() const { return paths_; }

  // Removes `parent` itself (tests: the per-test parent) if it is empty.
  static absl::Status RemoveParent(const std::string& parent);

 private:
  CgroupVersion version_ = CgroupVersion::kV2;
  std::vector<std::string> paths_;
};

}  // namespace swarm::agent::runtime

#endif  // SWARM_AGENT_RUNTIME_CGROUPS_H_

// What a container is made of: the plain-data description that the runtime turns into
// namespaces, mounts, cgroups and a process. Built by the caller (the agent's executor, the
// debugging CLI, tests) and copied into the shim; nothing here does I/O.
//
// Thread-safety: plain values. Invariant: `args` is not empty once the image defaults have
// been merged in (Runtime::Create checks).
#ifndef SWARM_AGENT_RUNTIME_SPEC_H_
#define SWARM_AGENT_RUNTIME_SPEC_H_

#include <signal.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/runtime/cgroups.h"

namespace swarm::agent::runtime {

struct MountSpec {
  enum class Type { kBind, kVolume, kTmpfs };
  Type type = Type::kBind;
  std::string source;  // host path (bind) or volume name (volume); unused for tmpfs
  std::string target;  // absolute path inside the container
  bool read_only = false;
  int64_t tmpfs_size_bytes = 0;  // 0 = the kernel's default (half of RAM)
};

// A secret or config, or a file the container gets from the node (/etc/hosts,
// /etc/resolv.conf): it exists only on a tmpfs inside the container.
struct FileSpec {
  std::string target;  // absolute path inside the container, e.g. /run/secrets/db_password
  std::string data;
  mode_t mode = 0444;
  uid_t uid = 0;
  gid_t gid = 0;
  bool read_only = true;  // secrets and configs; the container may edit its /etc/hosts
};

struct RlimitSpec {
  int resource = 0;  // RLIMIT_*
  uint64_t soft = 0;
  uint64_t hard = 0;
};

enum class NetworkMode {
  kNone,  // a new network namespace with loopback only (attachment is the network's job)
  kHost,  // the host's network namespace
  kPath,  // join the namespace at `netns_path` (e.g. /run/netns/x)
};

struct HealthCheckSpec {
  std::vector<std::string> test;  // argv run inside the container; empty = no health check
  int64_t interval_ms = 30000;
  int64_t timeout_ms = 30000;
  int64_t start_period_ms = 0;
  int retries = 3;
};

// The container's /etc/hosts, made by Runtime::Create: localhost (or, on the host's network,
// the host's own /etc/hosts), the container's hostname at `address` when there is one, then
// `entries` ("IP name [aliases...]", `--host`).
struct EtcHostsSpec {
  std::string address;  // without a prefix length
  std::vector<std::string> entries;
};

struct ContainerSpec {
  std::string name;   // optional, for people
  std::string image;  // reference resolved through the image store when lower_dirs is empty
  // Overlay lower directories, uppermost first.
  std::vector<std::string> lower_dirs;
  // Entry point and command are already joined: args[0] is looked up in PATH. With an image,
  // these are the command (the image's cmd when empty), appended to the entry point.
  std::vector<std::string> args;
  // Replaces the image's entry point (`--entrypoint`); the image's cmd is then not used.
  std::optional<std::vector<std::string>> entrypoint;
  std::vector<std::string> env;  // "KEY=value"
  // `--init`: a minimal init (init.h) runs as PID 1 in front of args, reaping zombies and
  // passing signals on.
  bool init = false;
  // `--tty`: stdin, stdout and stderr are a pseudo-terminal (its output is logged as stdout).
  bool tty = false;
  std::string working_dir = "/";
  std::string user;  // "uid[:gid]" or "name[:group]", resolved in the container's /etc
  // Supplementary groups (`--group`): names (resolved in the container's /etc/group) or GIDs.
  std::vector<std::string> groups;
  std::string hostname;
  bool read_only_rootfs = false;
  std::vector<std::string> cap_add;   // "CAP_NET_ADMIN" or "NET_ADMIN"; "ALL"
  std::vector<std::string> cap_drop;  // same; "ALL" drops every default
  bool no_new_privileges = true;
  bool seccomp_unconfined = false;
  std::vector<MountSpec> mounts;
  std::vector<FileSpec> files;            // secrets and configs
  std::optional<EtcHostsSpec> etc_hosts;  // unset: the image's /etc/hosts
  std::vector<RlimitSpec> rlimits;
  // Namespaced kernel parameters ("net.core.somaxconn", "1024"), written in /proc/sys inside
  // the container (net.* need a network namespace of the container's own).
  std::vector<std::pair<std::string, std::string>> sysctls;
  int oom_score_adj = 0;  // -1000..1000, whatever the daemon's own is
  Resources resources;
  NetworkMode network = NetworkMode::kNone;
  std::string netns_path;
  // User namespace: container root is host uid/gid `userns_host_id`, `userns_size` ids wide.
  bool user_namespace = false;
  uid_t userns_host_id = 100000;
  uint32_t userns_size = 65536;
  int stop_signal = SIGTERM;
  int64_t stop_grace_ms = 10000;
  int64_t log_max_size_bytes = 10 << 20;  // 0 = never rotate
  int log_max_files = 3;
  HealthCheckSpec healthcheck;
};

}  // namespace swarm::agent::runtime

#endif  // SWARM_AGENT_RUNTIME_SPEC_H_

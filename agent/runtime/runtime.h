// The container runtime of one node: creates, starts, waits for, stops, kills and removes
// containers, keeps their state in the node's state directory, manages named volumes, and
// re-attaches to running containers after the daemon restarts. Containers are supervised by
// shims (shim.h), never by the Runtime object, so dropping a Runtime leaves them running.
//
// Under Options::run_root (small files, best on tmpfs):
//   containers/<id>/config.json  what was asked (no secret data); written once at create
//   containers/<id>/state.json   shim and init pids with their start times
//   containers/<id>/exec.fifo    the start gate; removed once Start has released the init
//   containers/<id>/exit.json    the exit record, written by the shim; health.json
//   names/<name>                 a symbolic link to the id of the container of that name
//   seccomp-<hash>.bpf           compiled seccomp programs, shared by processes
// Under Options::root:
//   containers/<id>/{upper,work} overlay directories; container.log* (rotated)
//   mnt/{rootfs,secrets}         mount points used only inside containers' mount namespaces
//   volumes/<name>/_data         named volumes
//   trash/<id>                   removed containers' data, being deleted by deleter_
// A crash at any point leaves files that the next Runtime reads as the container's state
// (a shim gone without exit.json reads as "dead"); Remove cleans up any of these states.
//
// Owner: the agent (one per node), or the debugging CLI. Thread-safety: thread-safe; mu_
// guards only the seccomp program cache and trash_mu_ the deletion queue; other state lives
// in the files above, and two callers acting on the same container race as two `docker`
// commands would.
#ifndef SWARM_AGENT_RUNTIME_RUNTIME_H_
#define SWARM_AGENT_RUNTIME_RUNTIME_H_

#include <sys/types.h>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/runtime/cgroups.h"
#include "agent/runtime/fsutil.h"
#include "agent/runtime/health.h"
#include "agent/runtime/shim.h"
#include "agent/runtime/spec.h"

namespace swarm::agent::runtime {

class ImageStore;

enum class ContainerStatus { kCreated, kRunning, kExited, kDead };
std::string StatusName(ContainerStatus status);

struct ContainerInfo {
  std::string id;
  std::string name;
  std::string image;
  std::vector<std::string> args;
  ContainerStatus status = ContainerStatus::kDead;
  pid_t pid = -1;  // init's pid on the host
  pid_t shim_pid = -1;
  absl::Time created_at;
  std::optional<ExitRecord> exit;
};

class Runtime {
 public:
  struct Options {
    std::string root;  // state directory: images, volumes, overlay upper dirs, logs
    std::string cgroup_parent = "swarm";  // relative to the cgroup roots
    ImageStore* images = nullptr;         // resolves ContainerSpec::image; may be null
    // Small per-container state files (config, pids, exit record, start fifo), best on a
    // tmpfs such as /run: they are written and removed for every container. Empty: `root`.
    // Either way they survive a daemon restart, which is all they need to.
    std::string run_root;
    // Forks the shims (the daemon's, started early while it is small); null: forked here.
    ShimLauncher* shim_launcher = nullptr;
    // The static swarm-shim, mounted as /sbin/docker-init for ContainerSpec::init (init.h);
    // empty: containers that ask for an init are refused.
    std::string init_program;
  };

  // Creates the state directory if needed. Containers from an earlier daemon are found
  // through their files, so a new Runtime sees (and can wait for) them at once.
  static absl::StatusOr<std::unique_ptr<Runtime>> Open(Options options);
  // Finishes deleting removed containers' data; containers themselves keep running.
  ~Runtime();
  // The daemon's, at start (not for tools that open the runtime beside it): links the names
  // of containers made before names were links; and, with the small files on a tmpfs, where
  // a reboot leaves containers' upper directories and logs with nothing to say they were
  // ours, puts those in the trash. (Create makes the small-file directory first and Remove
  // deletes it last, so a live container is never taken.)
  void TidyUpAtDaemonStart();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Returns the new container's id. The container exists, isolated and blocked before
  // execve, when this returns.
  absl::StatusOr<std::string> Create(ContainerSpec spec);
  absl::Status Start(const std::string& id);
  // Waits until the container has exited (or the timeout passes, or wake_fd when not -1
  // becomes readable: DeadlineExceeded).
  absl::StatusOr<ExitRecord> Wait(const std::string& id,
                                  absl::Duration timeout = absl::InfiniteDuration(),
                                  int wake_fd = -1);
  // The container's stop signal, then SIGKILL after `grace` (spec's grace when negative).
  absl::StatusOr<ExitRecord> Stop(const std::string& id, absl::Duration grace = absl::Seconds(-1));
  absl::Status Kill(const std::string& id, int signal);
  // Removes a container that is not running (force: kills it first).
  absl::Status Remove(const std::string& id, bool force = false);

  absl::StatusOr<ContainerInfo> Inspect(const std::string& id) const;
  absl::StatusOr<std::vector<ContainerInfo>> List() const;
  absl::StatusOr<CgroupStats> Stats(const std::string& id) const;
  // The latest health check result (kNone without a health check), as the shim wrote it.
  absl::StatusOr<HealthState> Health(const std::string& id) const;
  // Finds a container by id, name or unique id prefix, reading no container's files.
  absl::StatusOr<std::string> Resolve(const std::string& id_or_name) const;

  // The overlay lower directories a container uses (image layers it keeps alive).
  absl::StatusOr<std::vector<std::string>> LowerDirs(const std::string& id) const;
  std::string LogPath(const std::string& id) const;
  // The container's state files (under run_root).
  std::string ContainerDir(const std::string& id) const;
  // The container's overlay upper directory and logs (under root).
  std::string DataDir(const std::string& id) const;
  std::string VolumePath(const std::string& name) const;
  absl::Status RemoveVolume(const std::string& name);
  const Options& options() const { return options_; }

 private:
  explicit Runtime(Options options) : options_(std::move(options)) {}
  absl::StatusOr<const std::string*> SeccompProgram(const std::vector<std::string>& caps);
  std::string NameLink(const std::string& name) const;
  // The id a name's link points to ("" without a link).
  std::string NameTarget(const std::string& name) const;
  // The container a name links to, if that container still exists.
  std::optional<std::string> NameOwner(const std::string& name) const;
  // Links name to id; ALREADY_EXISTS while another container has the name.
  absl::Status ClaimName(const std::string& name, const std::string& id);
  // Unlinks name if it still names id.
  void ReleaseName(const std::string& name, const std::string& id);
  // Deletes what Remove moved to <root>/trash, one directory at a time.
  void DeleterLoop();
  // Opens a pidfd for pid if it is still the process that started at `start_time`.
  static int OpenVerifiedPidfd(pid_t pid, uint64_t start_time);

  const Options options_;
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<std::string>> seccomp_cache_ ABSL_GUARDED_BY(mu_);

  // Removed containers' upper directories and logs: Remove renames them into <root>/trash
  // (one metadata operation) and this thread deletes them, as containerd's garbage
  // collector deletes removed snapshots, so that removal does not wait for the disk.
  absl::Mutex trash_mu_;
  std::deque<std::string> trash_ ABSL_GUARDED_BY(trash_mu_);
  bool stopping_ ABSL_GUARDED_BY(trash_mu_) = false;
  std::thread deleter_;  // "runtime-trash": started by Open, joined by the destructor
};

}  // namespace swarm::agent::runtime

#endif  // SWARM_AGENT_RUNTIME_RUNTIME_H_

// The shim: a small supervisor process per container, forked (not re-executed) from the
// runtime or from its ShimLauncher. It creates the container (CreateContainerProcess), is its
// parent, pumps its stdout and stderr into the JSON-lines log, reaps it and writes the exit record,
// then exits. It holds nothing of the daemon's (every inherited fd is closed, it is in its own
// session), so the daemon can stop and restart while containers run: a restarted daemon
// finds the shim's pid in state.json and waits on it with a pidfd.
//
// Files the shim writes: the log at log_path (+ rotations), and in the container's state
// directory exit.json (atomically, by rename, once), health.json, and shim.log (its own
// errors, only when there are some).
//
// Thread-safety: LaunchShim may run in many threads at once (fork copies only the calling
// thread; the shim itself is single-threaded). Invariant: exit.json, once present, never
// changes.
#ifndef SWARM_AGENT_RUNTIME_SHIM_H_
#define SWARM_AGENT_RUNTIME_SHIM_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/runtime/cgroups.h"
#include "agent/runtime/container.h"

namespace swarm::agent::runtime {

struct ExitRecord {
  enum class Reason { kExited, kSignaled, kOomKilled, kFailed };
  Reason reason = Reason::kExited;
  int exit_code = 0;  // Docker's convention: 128 + signal when killed
  int signal = 0;
  std::string error;  // kFailed: why the process never ran
  absl::Time finished_at;
};

std::string ReasonName(ExitRecord::Reason reason);

struct ShimProcess {
  pid_t shim_pid = -1;
  pid_t container_pid = -1;
};

// Forks shims from a small process of its own. fork() costs what the forking process has
// mapped: from a daemon of 100 MB, each shim costs its page tables and, until the container's
// execve, copy-on-write faults in the daemon (bench/runtime_bench --burst: 100 containers at
// once took 1.7 s from a process of 50 MB, 3.2 s from one of 200 MB, 0.9 s from a small one).
// The launcher is the `swarm-shim` program, a static binary installed beside swarmd: it maps
// a few dozen pages' worth of regions where a process linked against Debian's shared
// libraries maps over 600, and each fork (the shim's, then the container's clone) copies
// them all. Without the program the launcher is forked from the caller before it grows.
// The daemon sends each request, with a socket of its own, over a SOCK_SEQPACKET pair; the
// launcher forks and goes back to listening, its child reads the request (ContainerSpec and
// paths as CBOR) from that socket and is the shim from there. The launcher dies with the
// daemon (PDEATHSIG); shims do not, as before.
//
// Thread-safety: Start must run while the process has one thread; Launch is thread-safe.
class ShimLauncher {
 public:
  using Handle = std::unique_ptr<ShimLauncher>;
  // Starts `program` (swarm-shim) when it is not empty, else forks this process.
  static absl::StatusOr<Handle> Start(const std::string& program = "");
  // Closes the socket, which ends the launcher, and reaps it.
  ~ShimLauncher();
  ShimLauncher(const ShimLauncher&) = delete;
  ShimLauncher& operator=(const ShimLauncher&) = delete;

  pid_t pid() const { return pid_; }
  // As LaunchShim; UNAVAILABLE when the launcher is gone.
  absl::StatusOr<ShimProcess> Launch(const CreateRequest& request, const Cgroup& cgroup,
                                     const std::string& container_dir, const std::string& log_path,
                                     int64_t log_max_size_bytes, int log_max_files);

 private:
  ShimLauncher(int control, pid_t pid) : control_(control), pid_(pid) {}
  const int control_;
  const pid_t pid_;
};

// swarm-shim beside the running executable, or "" when there is none.
std::string ShimProgramBesideExecutable();

// The launcher's body, in swarm-shim's main or a fork: forks a shim for each socket that
// arrives on `control`, until the daemon (`daemon`) closes its end or dies.
[[noreturn]] void RunShimLauncher(int control, pid_t daemon);

// Starts the shim, which creates the container from `request` (its stdio fields are filled
// in by the shim): through `launcher` when there is one (and it lives), else forked from
// here. Returns once the container is created (handshake step 2) or failed.
absl::StatusOr<ShimProcess> LaunchShim(const CreateRequest& request, const Cgroup& cgroup,
                                       const std::string& container_dir,
                                       const std::string& log_path, int64_t log_max_size_bytes,
                                       int log_max_files, ShimLauncher* launcher = nullptr);

absl::Status WriteExitRecord(const std::string& path, const ExitRecord& record);
absl::StatusOr<ExitRecord> ReadExitRecord(const std::string& path);

}  // namespace swarm::agent::runtime

#endif  // SWARM_AGENT_RUNTIME_SHIM_H_

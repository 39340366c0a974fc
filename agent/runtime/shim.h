// The shim: a small supervisor process per container, forked (not re-executed) from the
// runtime. It creates the container (CreateContainerProcess), is its parent, pumps its
// stdout and stderr into the JSON-lines log, reaps it and writes the exit record, then
// exits. It holds nothing of the daemon's (every inherited fd is closed, it is in its own
// session), so the daemon can stop and restart while containers run: a restarted daemon
// finds the shim's pid in state.json and waits on it with a pidfd.
//
// Files the shim writes: the log at log_path (+ rotations), and in the container's state
// directory exit.json (atomically, by rename, once), health.json, and shim.log (its own
// errors, only when there are some).
//
// Thread-safety: LaunchShim forks; call it from one thread at a time (Runtime holds no lock
// across it, but fork copies only the calling thread, and the shim itself is
// single-threaded). Invariant: exit.json, once present, never changes.
#ifndef SWARM_AGENT_RUNTIME_SHIM_H_
#define SWARM_AGENT_RUNTIME_SHIM_H_

#include <sys/types.h>

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

// Forks the shim, which creates the container from `request` (its stdio fields are filled
// in by the shim). Returns once the container is created (handshake step 2) or failed.
absl::StatusOr<ShimProcess> LaunchShim(const CreateRequest& request, const Cgroup& cgroup,
                                       const std::string& container_dir,
                                       const std::string& log_path, int64_t log_max_size_bytes,
                                       int log_max_files);

absl::Status WriteExitRecord(const std::string& path, const ExitRecord& record);
absl::StatusOr<ExitRecord> ReadExitRecord(const std::string& path);

}  // namespace swarm::agent::runtime

#endif  // SWARM_AGENT_RUNTIME_SHIM_H_

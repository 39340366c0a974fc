// Container creation: turns a ContainerSpec into a process that waits, fully isolated, at
// the door of execve until someone starts it. CreateContainerProcess is one straight-line
// function of named steps (crun's libcrun_container_run shape); the parent and the child
// follow a numbered handshake over a SOCK_SEQPACKET socket pair:
//
//   step 1  parent -> child  "configured": the child is in its cgroup (v1: the parent
//                            wrote its pid; v2: clone3 put it there) and, with a user
//                            namespace, its id maps are written.
//   step 2  child -> parent  "created": the rootfs is mounted and pivoted, masked and
//                            read-only paths applied, the command resolved. The child now
//                            blocks opening the exec fifo for writing.
//   step 3  (start)          someone opens the exec fifo for reading (Runtime::Start); the
//                            child drops privileges, loads seccomp and calls execve. Success
//                            closes the socket (close-on-exec): EOF. A failure is a message.
//
// A failing step in the child sends "error: <what>: <why>" and exits 127.
//
// Owner: the shim calls this once per container; the returned fds belong to the caller.
// Thread-safety: must run in a single-threaded process (the shim), because the child keeps
// running C++ code between clone and execve.
#ifndef SWARM_AGENT_RUNTIME_CONTAINER_H_
#define SWARM_AGENT_RUNTIME_CONTAINER_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/runtime/cgroups.h"
#include "agent/runtime/spec.h"

namespace swarm::agent::runtime {

// Where a container's files live on the host (inside the runtime's state directory).
struct ContainerPaths {
  std::string dir;        // containers/<id>
  std::string upper;      // overlay upper directory
  std::string work;       // overlay work directory
  std::string rootfs;     // the overlay's mount point (only mounted in the child's namespace)
  std::string exec_fifo;  // opened for reading by Start
  std::string staging;    // tmpfs mount point for secrets and configs (child namespace only)
};

struct CreateRequest {
  const ContainerSpec* spec = nullptr;
  ContainerPaths paths;
  // Host directories backing each of spec->mounts (bind source or volume directory).
  std::vector<std::string> mount_sources;
  const std::string* seccomp_program = nullptr;  // null: unconfined
  const Cgroup* cgroup = nullptr;
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
};

struct CreatedProcess {
  pid_t pid = -1;
  int pidfd = -1;      // of the container's init
  int handshake = -1;  // parent's end; EOF after a successful execve
};

absl::StatusOr<CreatedProcess> CreateContainerProcess(const CreateRequest& request);

struct ExecProcess {
  pid_t pid = -1;   // our child; its exit status is the command's
  int pidfd = -1;   // readable when it ends
  int output = -1;  // read end of its stdout+stderr
};

// Runs `args` inside a running container (its namespaces, cgroup, user, capabilities and
// seccomp filter), as Docker's exec and health checks do. Forks; call from the shim.
absl::StatusOr<ExecProcess> ExecInContainer(const CreateRequest& request, int init_pidfd,
                                            const std::vector<std::string>& args);

// After Start: returns OK once the child has called execve, or the child's error.
absl::Status AwaitExec(int handshake_fd);

// Docker's default capability set with the spec's additions and drops, as "CAP_X" names.
std::vector<std::string> EffectiveCapabilities(const ContainerSpec& spec);

}  // namespace swarm::agent::runtime

#endif  // SWARM_AGENT_RUNTIME_CONTAINER_H_

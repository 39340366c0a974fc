// Network namespaces for the node data plane: named namespaces kept alive by a bind mount of
// their nsfs file (what `ip netns add` does, but under a run directory of ours such as
// /run/swarmd/netns, so that nothing else's namespaces are ours to clean up), and running a
// piece of code inside a namespace on a short-lived thread that setns()es into it, so the
// calling thread and the rest of the process never change namespace.
//
// Thread-safety: free functions, safe to call from any thread. RunInNetns blocks its caller
// until the function has run on the helper thread (named netns-run), which it joins.
#ifndef SWARM_AGENT_NETWORK_NETNS_H_
#define SWARM_AGENT_NETWORK_NETNS_H_

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace swarm::agent::network {

// An owned file descriptor, closed on destruction.
class ScopedFd {
 public:
  ScopedFd() = default;
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(ScopedFd&& other) noexcept : fd_(other.Release()) {}
  ScopedFd& operator=(ScopedFd&& other) noexcept;
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

// Opens a network namespace file (/proc/<pid>/ns/net, a bind-mounted one). An empty path
// opens the namespace of the calling thread.
absl::StatusOr<ScopedFd> OpenNetns(std::string_view path);

// Runs fn on a new thread that has joined the network namespace netns_fd, and returns fn's
// status (or why the thread could not join the namespace).
absl::Status RunInNetns(int netns_fd, const std::function<absl::Status()>& fn);

// Writes value to /proc/sys/<key> (e.g. "net/ipv4/ip_forward") of the network namespace
// netns_fd (< 0: the calling thread's): the files under /proc/sys/net belong to the namespace
// of the thread that opens them.
absl::Status WriteSysctl(int netns_fd, const std::string& key, const std::string& value);

// Creates a new, empty network namespace (loopback up) and keeps it alive by bind-mounting
// it onto `path`, a file created in an existing directory. AlreadyExists if path exists.
absl::Status CreateNamedNetns(const std::string& path);

// Unmounts and removes a namespace made by CreateNamedNetns. The kernel frees the namespace,
// and every link in it, when nothing else holds it. NotFound if path does not exist.
absl::Status DeleteNamedNetns(const std::string& path);

// True if path is a mount point of an nsfs file (a live named namespace), from mountinfo.
bool IsNetnsMount(const std::string& path);

}  // namespace swarm::agent::network

#endif  // SWARM_AGENT_NETWORK_NETNS_H_

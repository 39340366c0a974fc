// LocalRegistry: Debian's docker-registry on 127.0.0.1 (a free port) with a busybox image
// built on the spot (test_image.h) pushed by skopeo, for tests that pull: the runtime's, and
// multi-process clusters whose nodes pull the images of their tasks. The registry process and
// its files are removed by the destructor, also when a test fails.
// Test-only; thread-compatible.
#ifndef SWARM_AGENT_RUNTIME_TESTING_LOCAL_REGISTRY_H_
#define SWARM_AGENT_RUNTIME_TESTING_LOCAL_REGISTRY_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace swarm::agent::runtime::testing {

// A port on 127.0.0.1 that was free a moment ago.
int FreePort();
// The HTTP status of a HEAD request to url (0 when nothing answers).
long HttpStatus(const std::string& url);

class LocalRegistry {
 public:
  // Starts the registry and pushes busybox as `<addr>/test/busybox:latest` with the given
  // default command. Errors say which step failed.
  static absl::StatusOr<std::unique_ptr<LocalRegistry>> Start(
      const std::vector<std::string>& cmd = {"sh"});
  ~LocalRegistry();

  // host:port, to pass as an insecure registry.
  const std::string& addr() const { return addr_; }
  // The pushed image's reference.
  std::string busybox() const { return addr_ + "/test/busybox:latest"; }
  const std::string& manifest_digest() const { return manifest_digest_; }
  // A scratch directory removed with the registry.
  const std::string& dir() const { return dir_; }

 private:
  LocalRegistry() = default;
  std::string dir_, addr_, manifest_digest_;
  pid_t pid_ = -1;
};

}  // namespace swarm::agent::runtime::testing

#endif  // SWARM_AGENT_RUNTIME_TESTING_LOCAL_REGISTRY_H_

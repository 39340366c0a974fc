// Pulls images from a registry through the distribution API (v2) into the ImageStore:
// HTTPS, or HTTP for registries listed as insecure; bearer-token and basic authentication;
// manifest lists / OCI indexes resolved to this platform; Docker v2 and OCI manifests; every
// blob's digest verified before it enters the store (a manifest pulled by digest too);
// layers downloaded concurrently, each resumable with HTTP Range from its partial file in the
// store's tmp/ directory; progress reported per blob.
//
// Owner: the node (the agent's executor, or the CLI). Thread-safety: Pull may be called
// from several threads; each call uses its own curl handles. The progress callback is
// called from the download threads.
#ifndef SWARM_AGENT_RUNTIME_REGISTRY_H_
#define SWARM_AGENT_RUNTIME_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "agent/runtime/image_store.h"

namespace swarm::agent::runtime {

struct PullProgress {
  std::string digest;
  int64_t done_bytes = 0;     // of this blob, including what a resumed download already had
  int64_t total_bytes = 0;    // 0 when unknown
  int64_t fetched_bytes = 0;  // received over the network by this pull
  bool complete = false;
};

struct RegistryOptions {
  std::set<std::string> insecure_registries;  // "127.0.0.1:5000": plain HTTP
  // registry -> (user, password), for basic auth and for token requests.
  std::map<std::string, std::pair<std::string, std::string>> credentials;
  int max_concurrent_downloads = 3;
  // Called as blobs download; returning false cancels the pull (partial files stay and a
  // later pull resumes them).
  std::function<bool(const PullProgress&)> progress;
};

// `options` with the credentials of a service's registry_auth (`--with-registry-auth`, as
// common/registry_auth.h encodes them) for the registry of `ref`; unchanged when it is empty
// or is a login for another registry.
// INVALID_ARGUMENT when it does not decode.
absl::StatusOr<RegistryOptions> WithServiceCredentials(RegistryOptions options,
                                                       const std::string& ref,
                                                       const std::string& registry_auth);

class RegistryClient {
 public:
  RegistryClient(ImageStore& store, RegistryOptions options);

  // Returns the image id. `ref` is resolved like Docker ("busybox" = docker.io/library/...).
  absl::StatusOr<std::string> Pull(const std::string& ref);

 private:
  ImageStore& store_;
  const RegistryOptions options_;
};

}  // namespace swarm::agent::runtime

#endif  // SWARM_AGENT_RUNTIME_REGISTRY_H_

// Image references resolved the way Docker resolves them: "busybox" is
// docker.io/library/busybox:latest, "registry:5000/team/app" keeps its registry, a digest
// ("name@sha256:...") pins the content and wins over a tag. Pure code, no I/O.
#ifndef SWARM_AGENT_RUNTIME_REFERENCE_H_
#define SWARM_AGENT_RUNTIME_REFERENCE_H_

#include <string>

#include "absl/status/statusor.h"

namespace swarm::agent::runtime {

inline constexpr char kDefaultRegistry[] = "docker.io";

struct Reference {
  std::string registry;    // "docker.io", "127.0.0.1:5000"
  std::string repository;  // "library/busybox"
  std::string tag;         // "latest" unless a digest was given alone
  std::string digest;      // "sha256:<64 hex>" or empty

  // "docker.io/library/busybox"
  std::string Name() const { return registry + "/" + repository; }
  // The fully qualified form: name:tag, or name@digest when pinned.
  std::string String() const;
  // The host to talk to ("registry-1.docker.io" for docker.io).
  std::string RegistryHost() const;
};

absl::StatusOr<Reference> ParseReference(const std::string& text);

// True for "sha256:" followed by 64 lower-case hex digits.
bool IsValidDigest(const std::string& digest);

}  // namespace swarm::agent::runtime

#endif  // SWARM_AGENT_RUNTIME_REFERENCE_H_

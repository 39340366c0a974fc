// A service's registry credentials as Docker sends them (`--with-registry-auth`): the
// X-Registry-Auth form, base64url of a JSON AuthConfig, kept in the task's
// pull_options.registry_auth. swarmctl encodes what `docker login` stored; the agent decodes
// it to pull the service's image. The control API never returns it.
//
// Thread-safety: pure functions.
#ifndef SWARM_COMMON_REGISTRY_AUTH_H_
#define SWARM_COMMON_REGISTRY_AUTH_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace swarm {

struct RegistryAuth {
  std::string username;
  std::string password;
  std::string server_address;  // as docker login wrote it, e.g. "registry.example:5000"
};

std::string EncodeRegistryAuth(const RegistryAuth& auth);
// INVALID_ARGUMENT when `encoded` is not what EncodeRegistryAuth (or Docker) makes.
absl::StatusOr<RegistryAuth> DecodeRegistryAuth(const std::string& encoded);

// Whether a login stored for server_address (as docker login wrote it: "https://index.docker.io/
// v1/", "registry.example:5000") is one for `registry` (a reference's: "docker.io", host[:port]).
bool IsLoginFor(const std::string& server_address, const std::string& registry);

// The credentials Docker's config.json (as `docker login` writes it, with the password in the
// file rather than a credential helper) holds for `registry` ("docker.io" or a host[:port]);
// nullopt when it holds none. An error names the file and what is wrong with it.
absl::StatusOr<std::optional<RegistryAuth>> RegistryAuthFromDockerConfig(
    const std::string& config_json, const std::string& path, const std::string& registry);

}  // namespace swarm

#endif  // SWARM_COMMON_REGISTRY_AUTH_H_

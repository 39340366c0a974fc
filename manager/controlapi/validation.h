// Validation of what users send to the control API: names, labels and every spec, checked on
// their own (no store). The server adds the checks that need the store (references to
// networks, secrets and configs, ports taken by other services, names in use). Every error
// is INVALID_ARGUMENT and says which field is wrong, what the rule is and, where it helps,
// the flag that sets it. The rules follow Docker swarm mode (SwarmKit's controlapi and
// Docker's own checks), so specs Docker accepts are accepted here.
//
// Also here: small helpers on specs shared by the server and its tests.
//
// Thread-safety: pure functions, thread-safe.
#ifndef SWARM_MANAGER_CONTROLAPI_VALIDATION_H_
#define SWARM_MANAGER_CONTROLAPI_VALIDATION_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "proto/control.pb.h"
#include "proto/objects.pb.h"
#include "proto/specs.pb.h"

namespace swarm::manager::controlapi {

// Largest secret and config payloads (Docker's limits).
inline constexpr size_t kMaxSecretSize = 500 * 1024;
inline constexpr size_t kMaxConfigSize = 1000 * 1024;
// The largest service spec (serialized): gRPC's default message size.
inline constexpr size_t kMaxServiceSpecBytes = 4 << 20;
// Shortest validity of node certificates (`swarm update --cert-expiry`).
inline constexpr absl::Duration kMinNodeCertExpiry = absl::Hours(1);
// Smallest CPU and memory amounts a task may ask for (SwarmKit's).
inline constexpr int64_t kMinNanoCpus = 1000000;
inline constexpr int64_t kMinMemoryBytes = 4 * 1024 * 1024;

// Names. Services: 1-63 letters, digits, '-' and '_', beginning and ending with a letter or
// digit (a service name is a DNS label). Networks: up to 255 of [a-zA-Z0-9_.-], beginning with
// a letter or digit. Secrets and configs: 1-64 of [a-zA-Z0-9_.-], beginning and ending with a
// letter or digit.
absl::Status ValidateServiceName(const std::string& name);
absl::Status ValidateNetworkName(const std::string& name);
absl::Status ValidateSecretName(const std::string& name);
absl::Status ValidateConfigName(const std::string& name);
// Label keys must be non-empty. `what` names the owner in the error ("service label").
absl::Status ValidateLabels(const google::protobuf::Map<std::string, std::string>& labels,
                            const std::string& what);

// A Docker image reference: [registry[:port]/]repository[:tag][@digest].
absl::Status ValidateImageReference(const std::string& image);

absl::Status ValidateServiceSpec(const api::ServiceSpec& spec);
absl::Status ValidateNetworkSpec(const api::NetworkSpec& spec);
absl::Status ValidateSecretSpec(const api::SecretSpec& spec);
absl::Status ValidateConfigSpec(const api::ConfigSpec& spec);
absl::Status ValidateNodeSpec(const api::NodeSpec& spec);
absl::Status ValidateClusterSpec(const api::ClusterSpec& spec);

// The mode of a service spec, as the list filter names it.
api::ServiceMode ModeOf(const api::ServiceSpec& spec);
// Whether the service runs to completion (replicated-job, global-job).
bool IsJob(const api::ServiceSpec& spec);
// "8080/tcp": how errors name a published port.
std::string PortName(const api::PortConfig& port);
// Whether the spec publishes a port through the routing mesh (and so needs the ingress network).
bool PublishesIngressPorts(const api::ServiceSpec& spec);

// A protobuf duration as an absl::Duration.
absl::Duration ToDuration(const google::protobuf::Duration& d);

}  // namespace swarm::manager::controlapi

#endif  // SWARM_MANAGER_CONTROLAPI_VALIDATION_H_

// From command-line flags to control API requests, for everything but services (see
// service_spec.h): `network create` specs (with Docker's pairing of --subnet, --gateway,
// --ip-range and --aux-address), `secret create` / `config create` specs, `-f/--filter`
// values of the ls/ps commands, and the cluster changes of `swarm update`. Pure functions.
//
// Thread-safety: all functions are thread-safe (they hold no state).
#ifndef SWARM_CLI_REQUESTS_H_
#define SWARM_CLI_REQUESTS_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/control.pb.h"
#include "proto/specs.pb.h"

namespace swarm::cli {

// What `network create` was given.
struct NetworkFlags {
  std::string name;
  std::string driver = "overlay";
  std::vector<std::string> opts;  // --opt KEY=VALUE
  std::vector<std::string> labels;
  std::vector<std::string> subnets;
  std::vector<std::string> gateways;
  std::vector<std::string> ip_ranges;
  std::vector<std::string> aux_addresses;  // NAME=IP
  std::string ipam_driver;
  std::vector<std::string> ipam_opts;
  bool attachable = false;
  bool internal = false;
  bool ipv6 = false;
  bool ingress = false;
};

// The spec of `network create`: each --gateway, --ip-range and --aux-address goes to the
// --subnet that contains it; subnets must not overlap.
absl::StatusOr<api::NetworkSpec> BuildNetworkSpec(const NetworkFlags& flags);

// The spec of `secret create` / `config create`.
absl::StatusOr<api::SecretSpec> BuildSecretSpec(const std::string& name, std::string data,
                                                const std::vector<std::string>& labels,
                                                const std::string& driver,
                                                const std::string& template_driver);
absl::StatusOr<api::ConfigSpec> BuildConfigSpec(const std::string& name, std::string data,
                                                const std::vector<std::string>& labels,
                                                const std::string& template_driver);

// `-f KEY=VALUE` values, checked against the keys the command accepts.
using Filters = std::vector<std::pair<std::string, std::string>>;
absl::StatusOr<Filters> ParseFilters(const std::vector<std::string>& values,
                                     const std::vector<std::string>& allowed);

// `node ls` filters: id, name, label (engine labels), node.label, role, membership.
absl::StatusOr<api::ListNodesRequest> NodeListRequest(const Filters& filters);
// `service ls` filters: id, name, label, mode.
absl::StatusOr<api::ListServicesRequest> ServiceListRequest(const Filters& filters);
// `network ls` filters: id, name, label.
absl::StatusOr<api::ListNetworksRequest> NetworkListRequest(const Filters& filters);
// `secret ls` filters: id, name, label.
absl::StatusOr<api::ListSecretsRequest> SecretListRequest(const Filters& filters);
// `config ls` filters: id, name, label.
absl::StatusOr<api::ListConfigsRequest> ConfigListRequest(const Filters& filters);
// `service ps` / `node ps` filters: id, name, desired-state; node IDs are added by the caller
// (node names need the server). service_ids and node_ids restrict the tasks.
absl::StatusOr<api::ListTasksRequest> TaskListRequest(const Filters& filters,
                                                      const std::vector<std::string>& service_ids,
                                                      const std::vector<std::string>& node_ids);

// What `swarm update` (and the cluster part of `swarm init`) was given.
struct ClusterFlags {
  std::optional<bool> autolock;
  std::optional<std::string> cert_expiry;
  std::optional<std::string> task_history_limit;
  std::optional<std::string> dispatcher_heartbeat;
};
// Applies `swarm update` flags to the cluster spec; INVALID_ARGUMENT if none was given.
absl::Status ApplyClusterUpdate(const ClusterFlags& flags, api::ClusterSpec* spec);

}  // namespace swarm::cli

#endif  // SWARM_CLI_REQUESTS_H_

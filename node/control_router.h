// Routing of control API calls on a node. The control API itself (manager/controlapi) reads
// and writes the local store; these wrappers decide where a call is served.
//
// ControlGate, on the node's unix socket: the socket is open from the moment swarmd starts,
// but the control API exists only while the node is an unlocked manager; the gate passes each
// call to the current one, or answers why there is none ("this node is not a swarm manager",
// "this node is locked: run swarmctl swarm unlock").
//
// ControlRouter, on every manager: a call that reaches a follower is forwarded to the leader
// (once: a forwarded call is served where it lands), so every control API write of the swarm
// runs on one manager, where the control API serializes them. That is what makes its checks
// across objects sound (a secret still in use, a port another service publishes), which the
// store alone does not re-check at apply time.
//
// Thread-safety: thread-safe if the callbacks are; each call holds its target alive until it
// ends.
#ifndef SWARM_NODE_CONTROL_ROUTER_H_
#define SWARM_NODE_CONTROL_ROUTER_H_

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "common/grpc_status.h"
#include "common/tls.h"
#include "proto/control.grpc.pb.h"

namespace swarm::node {

// Every RPC of the Control service, as X(Method, Request, Response).
#define SWARM_CONTROL_RPCS(X)                                                     \
  X(GetNode, GetNodeRequest, GetNodeResponse)                                     \
  X(ListNodes, ListNodesRequest, ListNodesResponse)                               \
  X(UpdateNode, UpdateNodeRequest, UpdateNodeResponse)                            \
  X(RemoveNode, RemoveNodeRequest, RemoveNodeResponse)                            \
  X(GetTask, GetTaskRequest, GetTaskResponse)                                     \
  X(ListTasks, ListTasksRequest, ListTasksResponse)                               \
  X(RemoveTask, RemoveTaskRequest, RemoveTaskResponse)                            \
  X(GetService, GetServiceRequest, GetServiceResponse)                            \
  X(ListServices, ListServicesRequest, ListServicesResponse)                      \
  X(CreateService, CreateServiceRequest, CreateServiceResponse)                   \
  X(UpdateService, UpdateServiceRequest, UpdateServiceResponse)                   \
  X(RemoveService, RemoveServiceRequest, RemoveServiceResponse)                   \
  X(ListServiceStatuses, ListServiceStatusesRequest, ListServiceStatusesResponse) \
  X(GetNetwork, GetNetworkRequest, GetNetworkResponse)                            \
  X(ListNetworks, ListNetworksRequest, ListNetworksResponse)                      \
  X(CreateNetwork, CreateNetworkRequest, CreateNetworkResponse)                   \
  X(UpdateNetwork, UpdateNetworkRequest, UpdateNetworkResponse)                   \
  X(RemoveNetwork, RemoveNetworkRequest, RemoveNetworkResponse)                   \
  X(GetCluster, GetClusterRequest, GetClusterResponse)                            \
  X(ListClusters, ListClustersRequest, ListClustersResponse)                      \
  X(UpdateCluster, UpdateClusterRequest, UpdateClusterResponse)                   \
  X(GetSecret, GetSecretRequest, GetSecretResponse)                               \
  X(ListSecrets, ListSecretsRequest, ListSecretsResponse)                         \
  X(CreateSecret, CreateSecretRequest, CreateSecretResponse)                      \
  X(UpdateSecret, UpdateSecretRequest, UpdateSecretResponse)                      \
  X(RemoveSecret, RemoveSecretRequest, RemoveSecretResponse)                      \
  X(GetConfig, GetConfigRequest, GetConfigResponse)                               \
  X(ListConfigs, ListConfigsRequest, ListConfigsResponse)                         \
  X(CreateConfig, CreateConfigRequest, CreateConfigResponse)                      \
  X(UpdateConfig, UpdateConfigRequest, UpdateConfigResponse)                      \
  X(RemoveConfig, RemoveConfigRequest, RemoveConfigResponse)                      \
  X(GetUnlockKey, GetUnlockKeyRequest, GetUnlockKeyResponse)

class ControlGate final : public api::Control::Service {
 public:
  // Returns the control API to use now (kept alive by the returned pointer), or why none.
  using Current = std::function<absl::StatusOr<std::shared_ptr<api::Control::Service>>()>;
  explicit ControlGate(Current current) : current_(std::move(current)) {}

#define SWARM_GATE_RPC(Method, Request, Response)                                             \
  grpc::Status Method(grpc::ServerContext* ctx, const api::Request* req, api::Response* resp) \
      override {                                                                              \
    absl::StatusOr<std::shared_ptr<api::Control::Service>> target = current_();               \
    if (!target.ok()) return ToGrpcStatus(target.status());                                   \
    return (*target)->Method(ctx, req, resp);                                                 \
  }
  SWARM_CONTROL_RPCS(SWARM_GATE_RPC)
#undef SWARM_GATE_RPC

 private:
  Current current_;
};

// Metadata that marks a call a manager forwarded to the leader.
inline constexpr char kForwardedHeader[] = "swarm-forwarded";

class ControlRouter final : public api::Control::Service {
 public:
  // The stub of the leader to forward to; null when this manager is the leader or none is
  // known (then the call is served here, and a write fails if there is no leader).
  using Leader = std::function<std::shared_ptr<api::Control::Stub>()>;
  // require_manager: callers must present a manager certificate (the TCP listener).
  ControlRouter(std::shared_ptr<api::Control::Service> local, Leader leader, bool require_manager)
      : local_(std::move(local)), leader_(std::move(leader)), require_manager_(require_manager) {}

#define SWARM_ROUTE_RPC(Method, Request, Response)                                            \
  grpc::Status Method(grpc::ServerContext* ctx, const api::Request* req, api::Response* resp) \
      override {                                                                              \
    if (require_manager_) {                                                                   \
      if (absl::Status s = tls::RequireRole(*ctx, {tls::kManagerRole}); !s.ok())              \
        return ToGrpcStatus(s);                                                               \
    }                                                                                         \
    std::shared_ptr<api::Control::Stub> to;                                                   \
    if (!ctx->client_metadata().count(kForwardedHeader)) to = leader_();                      \
    if (to == nullptr) return local_->Method(ctx, req, resp);                                 \
    grpc::ClientContext fwd;                                                                  \
    fwd.set_deadline(ctx->deadline());                                                        \
    fwd.AddMetadata(kForwardedHeader, "1");                                                   \
    return to->Method(&fwd, *req, resp);                                                      \
  }
  SWARM_CONTROL_RPCS(SWARM_ROUTE_RPC)
#undef SWARM_ROUTE_RPC

 private:
  std::shared_ptr<api::Control::Service> local_;
  Leader leader_;
  bool require_manager_;
};

}  // namespace swarm::node

#endif  // SWARM_NODE_CONTROL_ROUTER_H_

// The control API: the gRPC service behind `swarmctl` (nodes, services, tasks, networks, the
// cluster, secrets, configs). Every manager serves it, on the node's unix socket (root only)
// and on its TCP listener (mutual TLS, manager certificates only). It reads and writes the
// replicated store and nothing else: orchestrators, the allocator, the scheduler and the CA
// act on what it writes through their watches.
//
// What it guarantees to callers:
// - Every spec is validated before it is written (validation.h for the spec on its own; here
//   what needs the store: references to networks, secrets and configs, resolved to IDs and
//   stored as IDs; published ports another service holds; names in use, compared without
//   case as SwarmKit does; objects still in use). Errors say what is wrong and what to do:
//   INVALID_ARGUMENT for bad input, NOT_FOUND, ALREADY_EXISTS for a taken name or port,
//   FAILED_PRECONDITION for "update out of sequence" (the request's version is not the
//   object's current one) and for objects still in use.
// - The ID of Get/Update/Remove accepts a full ID, a name, or a unique ID prefix, in that
//   order (Docker's lookup); an ambiguous prefix is INVALID_ARGUMENT.
// - Reads go through Options::sync first (linearizable reads on a Raft manager).
// - Secrets never leave with their data, the cluster never with its keys, and a service never
//   with its registry credentials.
//
// Services: spec_version starts at 1 and grows by one (past previous_spec_version too) each
// time an update changes the spec; an update that changes nothing keeps both specs, so it
// does not lose the rollback target. A rollback swaps spec and previous_spec with their
// versions. A job's iteration grows whenever its spec changes, which runs it again. Removing a
// service deletes it; its orchestrator then removes its tasks (as in SwarmKit).
//
// Unlock key rotation (`swarm unlock-key --rotate`): UpdateCluster writes a new key
// (ca::GenerateUnlockKey, "SWMKEY-1-...") as the only entry of Cluster.unlock_keys, in the
// same transaction as the spec; turning autolock on writes a first key, turning it off clears
// them. The key manager is expected to watch the cluster and re-wrap each manager's keys at
// rest with the new key; the daemon's Options::unlock_key can answer with UnlockKeyOf(cluster).
//
// Thread-safety: thread-safe. write_mu_ serializes the writes that check other objects
// (Access::kWrite), held across the store's Raft round trip on purpose: the store re-checks
// versions and names at apply time but not the cross-object rules (a secret still in use, a
// port another service publishes, the last manager), which are only sound if no other control
// API write commits between a check and its write. Followers forward control API calls to the
// leader, so this serializes them cluster-wide. Writes the store fully re-checks (creating
// secrets and configs, changing labels, removing services and tasks) run in parallel and share
// Raft round trips; two of them racing can only collide on a name that differs in case.
// random_mu_ guards Options::random.
#ifndef SWARM_MANAGER_CONTROLAPI_SERVER_H_
#define SWARM_MANAGER_CONTROLAPI_SERVER_H_

#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/random.h"
#include "manager/store/store.h"
#include "proto/control.grpc.pb.h"

namespace swarm::manager::controlapi {

// The current unlock key in a cluster object ("" when autolock is off).
std::string UnlockKeyOf(const api::Cluster& cluster);

class Server final : public api::Control::Service {
 public:
  struct Options {
    Clock* clock = &Clock::Real();
    Random* random = &SecureRandom::Get();
    // When set, every call must come over mutual TLS from a manager certificate (the TCP
    // listener); unset for the local unix socket (root on the node).
    bool require_manager = false;
    // Barrier before reads so they are linearizable (the daemon passes raft LinearizableRead);
    // may be null.
    std::function<absl::Status()> sync;
    // The current unlock key for GetUnlockKey (empty string: autolock off); null ->
    // UNIMPLEMENTED.
    std::function<absl::StatusOr<std::string>()> unlock_key;
    // Asked before a node's desired role changes or a manager node is removed: OK or why not
    // (e.g. the change would lose quorum). null -> allowed.
    std::function<absl::Status(const api::Node& node, api::NodeRole new_role)> check_role_change;
  };

  // Old entries of Cluster.blacklisted_certificates are dropped this long after they expire.
  static constexpr absl::Duration kBlacklistGrace = absl::Hours(24 * 7);

  Server(store::MemoryStore* store, Options options);

  grpc::Status GetNode(grpc::ServerContext* ctx, const api::GetNodeRequest* req,
                       api::GetNodeResponse* resp) override;
  grpc::Status ListNodes(grpc::ServerContext* ctx, const api::ListNodesRequest* req,
                         api::ListNodesResponse* resp) override;
  grpc::Status UpdateNode(grpc::ServerContext* ctx, const api::UpdateNodeRequest* req,
                          api::UpdateNodeResponse* resp) override;
  grpc::Status RemoveNode(grpc::ServerContext* ctx, const api::RemoveNodeRequest* req,
                          api::RemoveNodeResponse* resp) override;

  grpc::Status GetTask(grpc::ServerContext* ctx, const api::GetTaskRequest* req,
                       api::GetTaskResponse* resp) override;
  grpc::Status ListTasks(grpc::ServerContext* ctx, const api::ListTasksRequest* req,
                         api::ListTasksResponse* resp) override;
  grpc::Status RemoveTask(grpc::ServerContext* ctx, const api::RemoveTaskRequest* req,
                          api::RemoveTaskResponse* resp) override;

  grpc::Status GetService(grpc::ServerContext* ctx, const api::GetServiceRequest* req,
                          api::GetServiceResponse* resp) override;
  grpc::Status ListServices(grpc::ServerContext* ctx, const api::ListServicesRequest* req,
                            api::ListServicesResponse* resp) override;
  grpc::Status CreateService(grpc::ServerContext* ctx, const api::CreateServiceRequest* req,
                             api::CreateServiceResponse* resp) override;
  grpc::Status UpdateService(grpc::ServerContext* ctx, const api::UpdateServiceRequest* req,
                             api::UpdateServiceResponse* resp) override;
  grpc::Status RemoveService(grpc::ServerContext* ctx, const api::RemoveServiceRequest* req,
                             api::RemoveServiceResponse* resp) override;
  grpc::Status ListServiceStatuses(grpc::ServerContext* ctx,
                                   const api::ListServiceStatusesRequest* req,
                                   api::ListServiceStatusesResponse* resp) override;

  grpc::Status GetNetwork(grpc::ServerContext* ctx, const api::GetNetworkRequest* req,
                          api::GetNetworkResponse* resp) override;
  grpc::Status ListNetworks(grpc::ServerContext* ctx, const api::ListNetworksRequest* req,
                            api::ListNetworksResponse* resp) override;
  grpc::Status CreateNetwork(grpc::ServerContext* ctx, const api::CreateNetworkRequest* req,
                             api::CreateNetworkResponse* resp) override;
  grpc::Status UpdateNetwork(grpc::ServerContext* ctx, const api::UpdateNetworkRequest* req,
                             api::UpdateNetworkResponse* resp) override;
  grpc::Status RemoveNetwork(grpc::ServerContext* ctx, const api::RemoveNetworkRequest* req,
                             api::RemoveNetworkResponse* resp) override;

  grpc::Status GetCluster(grpc::ServerContext* ctx, const api::GetClusterRequest* req,
                          api::GetClusterResponse* resp) override;
  grpc::Status ListClusters(grpc::ServerContext* ctx, const api::ListClustersRequest* req,
                            api::ListClustersResponse* resp) override;
  grpc::Status UpdateCluster(grpc::ServerContext* ctx, const api::UpdateClusterRequest* req,
                             api::UpdateClusterResponse* resp) override;

  grpc::Status GetSecret(grpc::ServerContext* ctx, const api::GetSecretRequest* req,
                         api::GetSecretResponse* resp) override;
  grpc::Status ListSecrets(grpc::ServerContext* ctx, const api::ListSecretsRequest* req,
                           api::ListSecretsResponse* resp) override;
  grpc::Status CreateSecret(grpc::ServerContext* ctx, const api::CreateSecretRequest* req,
                            api::CreateSecretResponse* resp) override;
  grpc::Status UpdateSecret(grpc::ServerContext* ctx, const api::UpdateSecretRequest* req,
                            api::UpdateSecretResponse* resp) override;
  grpc::Status RemoveSecret(grpc::ServerContext* ctx, const api::RemoveSecretRequest* req,
                            api::RemoveSecretResponse* resp) override;

  grpc::Status GetConfig(grpc::ServerContext* ctx, const api::GetConfigRequest* req,
                         api::GetConfigResponse* resp) override;
  grpc::Status ListConfigs(grpc::ServerContext* ctx, const api::ListConfigsRequest* req,
                           api::ListConfigsResponse* resp) override;
  grpc::Status CreateConfig(grpc::ServerContext* ctx, const api::CreateConfigRequest* req,
                            api::CreateConfigResponse* resp) override;
  grpc::Status UpdateConfig(grpc::ServerContext* ctx, const api::UpdateConfigRequest* req,
                            api::UpdateConfigResponse* resp) override;
  grpc::Status RemoveConfig(grpc::ServerContext* ctx, const api::RemoveConfigRequest* req,
                            api::RemoveConfigResponse* resp) override;

  grpc::Status GetUnlockKey(grpc::ServerContext* ctx, const api::GetUnlockKeyRequest* req,
                            api::GetUnlockKeyResponse* resp) override;

 private:
  // kWrite: a write whose checks look at other objects (references, ports, objects in use,
  // the managers), serialized by write_mu_. kConcurrentWrite: a write whose only conflicts the
  // store itself re-checks at apply time (versions, names), which may run in parallel, so
  // many of them share one Raft round trip.
  enum class Access { kRead, kWrite, kConcurrentWrite };

  // Authorizes the call, syncs before reads, runs fn and maps its status; kWrite holds
  // write_mu_.
  grpc::Status Serve(grpc::ServerContext* ctx, Access access,
                     const std::function<absl::Status()>& fn);
  absl::Status Authorize(const grpc::ServerContext* ctx) const;
  std::string NewObjectId();
  // Runs fn with Options::random, under random_mu_.
  template <typename T>
  T WithRandom(const std::function<T(Random&)>& fn);

  absl::Status DoUpdateNode(const api::UpdateNodeRequest& req, api::UpdateNodeResponse* resp);
  absl::Status DoRemoveNode(const api::RemoveNodeRequest& req);
  absl::Status DoCreateService(const api::CreateServiceRequest& req,
                               api::CreateServiceResponse* resp);
  absl::Status DoUpdateService(const api::UpdateServiceRequest& req,
                               api::UpdateServiceResponse* resp);
  absl::Status DoUpdateCluster(const api::UpdateClusterRequest& req,
                               api::UpdateClusterResponse* resp);

  store::MemoryStore* store_;
  Options options_;
  absl::Mutex write_mu_;
  absl::Mutex random_mu_;
};

}  // namespace swarm::manager::controlapi

#endif  // SWARM_MANAGER_CONTROLAPI_SERVER_H_

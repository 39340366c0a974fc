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
// The gate serves the socket with gRPC's callback API and runs each call on its own pool of
// threads (BlockingCallPool), because the control API blocks while a write commits: under
// gRPC's synchronous server, every call that returned past its two idle pollers ended its
// thread and the next call started a new one (with its OpenSSL and malloc per-thread state),
// hundreds of threads a second under load.
//
// Thread-safety: thread-safe if the callbacks are; each call holds its target alive until it
// ends.
#ifndef SWARM_NODE_CONTROL_ROUTER_H_
#define SWARM_NODE_CONTROL_ROUTER_H_

#include <pthread.h>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
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

// Threads for calls that block (a control API write waits for its commit). A thread is
// added when a call finds none idle, up to max_threads (beyond that, calls wait their turn),
// and stays until the pool is destroyed, so a steady load starts no threads.
class BlockingCallPool {
 public:
  explicit BlockingCallPool(size_t max_threads) : max_threads_(max_threads) {}
  // Runs what is queued, then joins the threads.
  ~BlockingCallPool() {
    std::vector<std::thread> threads;
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
  }
  BlockingCallPool(const BlockingCallPool&) = delete;
  BlockingCallPool& operator=(const BlockingCallPool&) = delete;

  void Run(std::function<void()> fn) {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(fn));
    if (queue_.size() > idle_ && threads_.size() < max_threads_) {
      threads_.emplace_back([this] { Work(); });
    }
  }

 private:
  void Work() {
    pthread_setname_np(pthread_self(), "control-call");
    while (true) {
      std::function<void()> fn;
      {
        absl::MutexLock lock(&mu_);
        ++idle_;
        mu_.Await(absl::Condition(
            +[](BlockingCallPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
              return p->stopping_ || !p->queue_.empty();
            },
            this));
        --idle_;
        if (queue_.empty()) return;  // stopping, and everything queued has run
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }

  const size_t max_threads_;
  absl::Mutex mu_;
  // Signalled (through Await) by Run and the destructor.
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  // Threads waiting for work.
  size_t idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

class ControlRouter;

class ControlGate final : public api::Control::CallbackService {
 public:
  // Returns the control API to use now (kept alive by the returned pointer), or why none.
  using Current = std::function<absl::StatusOr<std::shared_ptr<api::Control::Service>>()>;
  // Calls beyond this many at once wait for a thread.
  static constexpr size_t kMaxThreads = 256;
  explicit ControlGate(Current current) : current_(std::move(current)) {}

#define SWARM_GATE_RPC(Method, Request, Response)                                              \
  grpc::ServerUnaryReactor* Method(grpc::CallbackServerContext* ctx, const api::Request* req,  \
                                   api::Response* resp) override {                             \
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();                                 \
    pool_.Run(                                                                                 \
        [this, ctx, req, resp, reactor] { reactor->Finish(Serve##Method(*ctx, req, resp)); }); \
    return reactor;                                                                            \
  }
  SWARM_CONTROL_RPCS(SWARM_GATE_RPC)
#undef SWARM_GATE_RPC

 private:
#define SWARM_GATE_SERVE(Method, Request, Response)                                           \
  grpc::Status Serve##Method(const grpc::CallbackServerContext& ctx, const api::Request* req, \
                             api::Response* resp);
  SWARM_CONTROL_RPCS(SWARM_GATE_SERVE)
#undef SWARM_GATE_SERVE

  Current current_;
  // Last: destroyed (and its threads joined) first, while everything they use still exists.
  BlockingCallPool pool_{kMaxThreads};
};

// Metadata that marks a call a manager forwarded to the leader.
inline constexpr char kForwardedHeader[] = "swarm-forwarded";

class ControlRouter final : public api::Control::Service {
 public:
  // The stub of the leader to forward to; null when this manager is the leader or none is
  // known (then the call is served here, and a write fails if there is no leader).
  using Leader = std::function<std::shared_ptr<api::Control::Stub>()>;
  // require_manager: callers must present a manager or operator certificate (the TCP
  // listener).
  ControlRouter(std::shared_ptr<api::Control::Service> local, Leader leader, bool require_manager)
      : local_(std::move(local)), leader_(std::move(leader)), require_manager_(require_manager) {}

  // What routing needs to know of a call.
  struct Call {
    std::chrono::system_clock::time_point deadline;
    // Already forwarded by another manager: serve it here.
    bool forwarded = false;
  };
  static Call CallOf(const grpc::ServerContextBase& ctx) {
    return Call{ctx.deadline(), ctx.client_metadata().count(kForwardedHeader) > 0};
  }

  // The synchronous service (the TCP listener), and Route<Method> for callers with no
  // grpc::ServerContext (the gate): a call served here then reaches the control API without
  // one, as an in-process call does, which a router that requires no certificate allows.
#define SWARM_ROUTE_RPC(Method, Request, Response)                                                \
  grpc::Status Method(grpc::ServerContext* ctx, const api::Request* req, api::Response* resp)     \
      override {                                                                                  \
    if (require_manager_) {                                                                       \
      if (absl::Status s = RequireManager(*ctx); !s.ok()) return ToGrpcStatus(s);                 \
    }                                                                                             \
    return Route##Method(ctx, CallOf(*ctx), req, resp);                                           \
  }                                                                                               \
  grpc::Status Route##Method(grpc::ServerContext* ctx, const Call& call, const api::Request* req, \
                             api::Response* resp) {                                               \
    std::shared_ptr<api::Control::Stub> to;                                                       \
    if (!call.forwarded) to = leader_();                                                          \
    if (to == nullptr) return local_->Method(ctx, req, resp);                                     \
    grpc::ClientContext fwd;                                                                      \
    fwd.set_deadline(call.deadline);                                                              \
    fwd.AddMetadata(kForwardedHeader, "1");                                                       \
    return to->Method(&fwd, *req, resp);                                                          \
  }
  SWARM_CONTROL_RPCS(SWARM_ROUTE_RPC)
#undef SWARM_ROUTE_RPC

  bool require_manager() const { return require_manager_; }

 private:
  // Certificates remembered as a manager's; more are not expected (one per manager).
  static constexpr size_t kMaxVerifiedCerts = 64;

  // tls::RequireRole, remembering the verdict per certificate: it parses the certificate on
  // every call, which with OpenSSL 3's decoders cost more CPU than the rest of a forwarded
  // call, while a manager presents the same verified certificate on every call. Only
  // verdicts of OK are kept, and only for a peer the TLS handshake authenticated.
  absl::Status RequireManager(const grpc::ServerContext& ctx) {
    std::string pem = tls::PeerCertificate(ctx).value_or("");
    if (!pem.empty()) {
      absl::MutexLock lock(&verified_mu_);
      if (verified_.contains(pem)) return absl::OkStatus();
    }
    // Managers (forwarding, or swarmctl on a manager) and operators (remote swarmctl).
    absl::Status s = tls::RequireRole(ctx, {tls::kManagerRole, tls::kOperatorRole});
    if (s.ok() && !pem.empty()) {
      absl::MutexLock lock(&verified_mu_);
      if (verified_.size() >= kMaxVerifiedCerts) verified_.clear();
      verified_.insert(std::move(pem));
    }
    return s;
  }

  std::shared_ptr<api::Control::Service> local_;
  Leader leader_;
  bool require_manager_;
  absl::Mutex verified_mu_;
  // PEM certificates that passed tls::RequireRole for the manager or operator role.
  absl::flat_hash_set<std::string> verified_ ABSL_GUARDED_BY(verified_mu_);
};

// The gate's calls go to the current target: through its Route<Method> when it is a router
// (the manager's local one, which requires no certificate), else straight to it without a
// ServerContext, as an in-process call.
#define SWARM_GATE_SERVE(Method, Request, Response)                                              \
  inline grpc::Status ControlGate::Serve##Method(const grpc::CallbackServerContext& ctx,         \
                                                 const api::Request* req, api::Response* resp) { \
    absl::StatusOr<std::shared_ptr<api::Control::Service>> target = current_();                  \
    if (!target.ok()) return ToGrpcStatus(target.status());                                      \
    auto* router = dynamic_cast<ControlRouter*>(target->get());                                  \
    if (router != nullptr) {                                                                     \
      if (router->require_manager()) {                                                           \
        return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,                                 \
                            "this listener has no manager certificate to check");                \
      }                                                                                          \
      return router->Route##Method(nullptr, ControlRouter::CallOf(ctx), req, resp);              \
    }                                                                                            \
    return (*target)->Method(nullptr, req, resp);                                                \
  }
SWARM_CONTROL_RPCS(SWARM_GATE_SERVE)
#undef SWARM_GATE_SERVE

}  // namespace swarm::node

#endif  // SWARM_NODE_CONTROL_ROUTER_H_

// The Dispatcher gRPC service, on every manager's TCP listener: authenticates the caller and
// hands the call to the leader's Dispatcher (dispatcher.h), here or on the leader.
//
// Relay, not serve. A manager that does not lead relays its agents' calls, streams included,
// to the leader, instead of serving sessions itself and forwarding only the writes. Heartbeat
// deadlines must be tracked in one place for a node to be marked DOWN exactly when it should
// be; with sessions served by every manager, each heartbeat (or a digest of them) would have to
// reach the leader anyway, the one-session-per-node rule would need coordination between
// managers, and every follower would need its own assignment fan-out. Relaying keeps one
// session table, one deadline table and one fan-out, on the leader, at the cost of an extra
// hop for agents connected to a follower (SwarmKit's raft proxy makes the same choice). The
// relayed calls of all agents of a follower share its one HTTP/2 connection to the leader.
//
// Identity. The caller's node ID and role come from its verified certificate (any node
// certificate, worker or manager; none: UNAUTHENTICATED), never from a request field. A relayed
// call carries the agent's node ID, role and address in metadata (kForwarded*), which is
// trusted only when the relaying caller presents a manager certificate; a relayed call is
// never relayed again. Certificates are parsed once and remembered (a node presents the same
// certificate on every heartbeat).
//
// Where no dispatcher is known (no leader, or this manager is taking over or stepping down),
// calls fail with UNAVAILABLE, and the agent tries again (possibly with another manager).
//
// Threads: none of its own. Calls run on gRPC's callback threads and never block: sessions,
// heartbeats and assignments are answered from memory, task reports when the dispatcher's
// writer has written them, relayed calls when the leader answers.
#ifndef SWARM_MANAGER_DISPATCHER_SERVICE_H_
#define SWARM_MANAGER_DISPATCHER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/tls.h"
#include "manager/dispatcher/dispatcher.h"
#include "proto/dispatcher.grpc.pb.h"

namespace swarm::manager::dispatcher {

// Metadata of a call relayed by a manager: the agent's node ID, role and address.
inline constexpr char kForwardedNode[] = "swarm-dispatcher-node";
inline constexpr char kForwardedRole[] = "swarm-dispatcher-role";
inline constexpr char kForwardedAddr[] = "swarm-dispatcher-addr";

class Service final : public api::Dispatcher::CallbackService {
 public:
  // The leader's dispatcher to relay to; null when this manager leads or no leader is known.
  using Leader = std::function<std::shared_ptr<api::Dispatcher::Stub>()>;

  Service(DispatcherSlot* slot, Leader leader) : slot_(slot), leader_(std::move(leader)) {}

  grpc::ServerWriteReactor<api::SessionMessage>* Session(grpc::CallbackServerContext* ctx,
                                                         const api::SessionRequest* req) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const api::HeartbeatRequest* req,
                                      api::HeartbeatResponse* resp) override;
  grpc::ServerUnaryReactor* UpdateTaskStatus(grpc::CallbackServerContext* ctx,
                                             const api::UpdateTaskStatusRequest* req,
                                             api::UpdateTaskStatusResponse* resp) override;
  grpc::ServerWriteReactor<api::AssignmentsMessage>* Assignments(
      grpc::CallbackServerContext* ctx, const api::AssignmentsRequest* req) override;

 private:
  // Whom a call is for: the agent's node, and whether a manager relayed it.
  struct Caller {
    std::string node_id;
    std::string role;
    std::string addr;
    bool forwarded = false;
  };
  // Where a call goes: the dispatcher here, or the leader's stub (exactly one is set).
  struct Route {
    std::shared_ptr<Dispatcher> local;
    std::shared_ptr<api::Dispatcher::Stub> leader;
  };

  absl::StatusOr<Caller> Identify(const grpc::CallbackServerContext& ctx);
  // tls::PeerOf, remembered per certificate.
  absl::StatusOr<tls::Peer> PeerOf(const grpc::CallbackServerContext& ctx);
  absl::StatusOr<Route> RouteOf(const Caller& caller);

  DispatcherSlot* slot_;
  Leader leader_;

  // Peers of certificates seen; cleared when full (kMaxPeers).
  static constexpr size_t kMaxPeers = 20000;
  absl::Mutex peers_mu_;
  absl::flat_hash_map<std::string, tls::Peer> peers_ ABSL_GUARDED_BY(peers_mu_);
};

}  // namespace swarm::manager::dispatcher

#endif  // SWARM_MANAGER_DISPATCHER_SERVICE_H_

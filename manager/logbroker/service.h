// The gRPC faces of the LogBroker (broker.h): Logs for clients (swarmctl, through the node's
// unix socket or a manager's TCP listener) and LogBroker for agents. Both use gRPC's callback
// API and never block: writes are queued onto the streams.
//
// Relay, not serve. The broker runs on the leader only (one place that knows every
// subscription and every agent). A manager that does not lead relays all three calls,
// streams in both directions, to the leader, as the Dispatcher service does and for the same
// reasons (manager/dispatcher/service.h); where no leader is known, or a relayed call reaches
// a manager that does not lead (a relayed call is never relayed again), calls fail with
// UNAVAILABLE and the caller tries again.
//
// Identity. LogBroker callers are nodes: the node ID comes from the verified certificate
// (tls::PeerOf), never from a request. A relayed LogBroker call carries the agent's node ID in
// metadata (kForwardedNode), trusted only from a manager certificate, so that the leader's
// broker sees the real node. Logs on the TCP listener needs a manager certificate (as the
// control API does; a relaying manager presents its own); the local instance, reached through
// the node's unix socket, needs none (root on the node).
//
// Thread-safety: thread-safe; the broker must outlive every call.
#ifndef SWARM_MANAGER_LOGBROKER_SERVICE_H_
#define SWARM_MANAGER_LOGBROKER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>

#include "manager/logbroker/broker.h"
#include "proto/logbroker.grpc.pb.h"

namespace swarm::manager::logbroker {

// Metadata of a relayed LogBroker call: the agent's node ID.
inline constexpr char kForwardedNode[] = "swarm-logbroker-node";
// Metadata of a relayed Logs call (any value): not to be relayed again.
inline constexpr char kRelayedLogs[] = "swarm-logs-relayed";

// A channel to the leader (with this manager's certificate) to relay to; null when this
// manager leads or no leader is known.
using Leader = std::function<std::shared_ptr<grpc::Channel>()>;

class LogsService final : public api::Logs::CallbackService {
 public:
  // require_manager: callers must present a manager certificate (the TCP listener).
  LogsService(BrokerSlot* slot, Leader leader, bool require_manager)
      : slot_(slot), leader_(std::move(leader)), require_manager_(require_manager) {}

  grpc::ServerWriteReactor<api::SubscribeLogsMessage>* SubscribeLogs(
      grpc::CallbackServerContext* ctx, const api::SubscribeLogsRequest* req) override;

 private:
  BrokerSlot* slot_;
  Leader leader_;
  const bool require_manager_;
};

class LogBrokerService final : public api::LogBroker::CallbackService {
 public:
  LogBrokerService(BrokerSlot* slot, Leader leader) : slot_(slot), leader_(std::move(leader)) {}

  grpc::ServerWriteReactor<api::SubscriptionMessage>* ListenSubscriptions(
      grpc::CallbackServerContext* ctx, const api::ListenSubscriptionsRequest* req) override;
  grpc::ServerReadReactor<api::PublishLogsMessage>* PublishLogs(
      grpc::CallbackServerContext* ctx, api::PublishLogsResponse* resp) override;

 private:
  BrokerSlot* slot_;
  Leader leader_;
};

}  // namespace swarm::manager::logbroker

#endif  // SWARM_MANAGER_LOGBROKER_SERVICE_H_

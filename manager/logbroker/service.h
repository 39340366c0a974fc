// The gRPC faces of the LogBroker (broker.h): Logs for clients (swarmctl, through the node's
// unix socket or a manager's TCP listener) and LogBroker for agents. Both use gRPC's callback
// API and never block: writes are queued onto the streams.
//
// Identity. LogBroker callers are nodes: the node ID comes from the verified certificate
// (tls::PeerOf), never from a request. Logs on the TCP listener needs a manager certificate
// (as the control API does); the local instance, reached through the node's unix socket,
// needs none (root on the node).
//
// Thread-safety: thread-safe; the broker must outlive every call.
#ifndef SWARM_MANAGER_LOGBROKER_SERVICE_H_
#define SWARM_MANAGER_LOGBROKER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <memory>

#include "manager/logbroker/broker.h"
#include "proto/logbroker.grpc.pb.h"

namespace swarm::manager::logbroker {

class LogsService final : public api::Logs::CallbackService {
 public:
  // require_manager: callers must present a manager certificate (the TCP listener).
  LogsService(std::shared_ptr<LogBroker> broker, bool require_manager)
      : broker_(std::move(broker)), require_manager_(require_manager) {}

  grpc::ServerWriteReactor<api::SubscribeLogsMessage>* SubscribeLogs(
      grpc::CallbackServerContext* ctx, const api::SubscribeLogsRequest* req) override;

 private:
  std::shared_ptr<LogBroker> broker_;
  const bool require_manager_;
};

class LogBrokerService final : public api::LogBroker::CallbackService {
 public:
  explicit LogBrokerService(std::shared_ptr<LogBroker> broker) : broker_(std::move(broker)) {}

  grpc::ServerWriteReactor<api::SubscriptionMessage>* ListenSubscriptions(
      grpc::CallbackServerContext* ctx, const api::ListenSubscriptionsRequest* req) override;
  grpc::ServerReadReactor<api::PublishLogsMessage>* PublishLogs(
      grpc::CallbackServerContext* ctx, api::PublishLogsResponse* resp) override;

 private:
  std::shared_ptr<LogBroker> broker_;
};

}  // namespace swarm::manager::logbroker

#endif  // SWARM_MANAGER_LOGBROKER_SERVICE_H_

// LogsGate: the Logs service on the node's unix socket. Like ControlGate (control_router.h),
// the socket is open from the moment swarmd starts while the Logs service exists only while
// the node is an unlocked manager: the gate hands each call to the current manager's local
// Logs service (no certificate needed: root on the node), or answers why there is none.
//
// Thread-safety: thread-safe if `current` is; a call keeps its service (and the manager's
// broker) alive until it ends.
#ifndef SWARM_NODE_LOGS_GATE_H_
#define SWARM_NODE_LOGS_GATE_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "common/grpc_status.h"
#include "proto/logbroker.grpc.pb.h"

namespace swarm::node {

class LogsGate final : public api::Logs::CallbackService {
 public:
  using Current = std::function<absl::StatusOr<std::shared_ptr<api::Logs::CallbackService>>()>;
  explicit LogsGate(Current current) : current_(std::move(current)) {}

  grpc::ServerWriteReactor<api::SubscribeLogsMessage>* SubscribeLogs(
      grpc::CallbackServerContext* ctx, const api::SubscribeLogsRequest* req) override {
    absl::StatusOr<std::shared_ptr<api::Logs::CallbackService>> target = current_();
    if (!target.ok()) return new Refused(target.status());
    // The service's reactor holds what the call needs (the broker), not the service itself.
    return (*target)->SubscribeLogs(ctx, req);
  }

 private:
  class Refused final : public grpc::ServerWriteReactor<api::SubscribeLogsMessage> {
   public:
    explicit Refused(const absl::Status& s) { Finish(ToGrpcStatus(s)); }
    void OnDone() override { delete this; }
  };

  Current current_;
};

}  // namespace swarm::node

#endif  // SWARM_NODE_LOGS_GATE_H_

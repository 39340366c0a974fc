#include "manager/logbroker/service.h"

#include <deque>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/tls.h"

namespace swarm::manager::logbroker {
namespace {

// A server stream written one queued message at a time. Owns itself until gRPC is done with
// it (OnDone); the sink it hands out stays safe to call after that (it does nothing).
template <typename Message>
class Writer final : public grpc::ServerWriteReactor<Message>,
                     public std::enable_shared_from_this<Writer<Message>> {
 public:
  static std::shared_ptr<Writer> Create() {
    std::shared_ptr<Writer> w(new Writer);
    w->self_ = w;
    return w;
  }
  // What to do when the call is over; set before the reactor is returned to gRPC.
  void set_on_done(std::function<void()> fn) { on_done_ = std::move(fn); }

  Sink<Message> sink() {
    std::weak_ptr<Writer> weak = this->shared_from_this();
    return Sink<Message>{[weak](Message m) {
                           if (auto w = weak.lock()) w->Send(std::move(m));
                         },
                         [weak](absl::Status s) {
                           if (auto w = weak.lock()) w->End(std::move(s));
                         }};
  }

  void Send(Message message) {
    {
      absl::MutexLock lock(&mu_);
      if (finishing_) return;
      queue_.push_back(std::move(message));
      if (writing_) return;
      NextLocked();
    }
    this->StartWrite(&current_);
  }
  void End(absl::Status status) {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (finishing_) return;
      finishing_ = true;
      status_ = ToGrpcStatus(status);
      // Queued messages go out first; a write in flight continues in OnWriteDone.
      if (writing_) return;
      if (!queue_.empty()) {
        NextLocked();
      } else {
        finished_ = true;
        finish = status_;
      }
    }
    if (finish) {
      this->Finish(*finish);
    } else {
      this->StartWrite(&current_);
    }
  }

  void OnWriteDone(bool ok) override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        queue_.clear();
        if (!finishing_) status_ = grpc::Status(grpc::StatusCode::CANCELLED, "the stream broke");
        finishing_ = true;
      }
      if (!queue_.empty()) {
        NextLocked();
      } else if (finishing_ && !finished_) {
        finished_ = true;
        finish = status_;
      } else {
        return;
      }
    }
    if (finish) {
      this->Finish(*finish);
    } else {
      this->StartWrite(&current_);
    }
  }
  void OnCancel() override { End(absl::CancelledError("the caller went away")); }
  void OnDone() override {
    std::function<void()> on_done = std::move(on_done_);
    if (on_done) on_done();
    // The last thing: may destroy this.
    std::shared_ptr<Writer> self = std::move(self_);
  }

 private:
  Writer() = default;
  void NextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    current_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
  }

  std::function<void()> on_done_;
  std::shared_ptr<Writer> self_;
  absl::Mutex mu_;
  std::deque<Message> queue_ ABSL_GUARDED_BY(mu_);
  // The message being written; stable until OnWriteDone.
  Message current_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  // No more messages are accepted; Finish follows the queue.
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  // Finish was (or is being) called.
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

// Reads an agent's publish stream into the broker.
class Publisher final : public grpc::ServerReadReactor<api::PublishLogsMessage> {
 public:
  Publisher(std::shared_ptr<LogBroker> broker, std::string node_id)
      : broker_(std::move(broker)), node_id_(std::move(node_id)) {
    StartRead(&msg_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) return Done(absl::OkStatus());
    open_.insert(msg_.subscription_id());
    if (msg_.close()) open_.erase(msg_.subscription_id());
    if (absl::Status s = broker_->Publish(node_id_, msg_); !s.ok()) return Done(s);
    StartRead(&msg_);
  }
  void OnDone() override { delete this; }

 private:
  void Done(absl::Status s) {
    for (const std::string& id : open_) broker_->PublishEnded(node_id_, id);
    Finish(ToGrpcStatus(s));
  }

  std::shared_ptr<LogBroker> broker_;
  const std::string node_id_;
  api::PublishLogsMessage msg_;
  // Subscriptions published to and not closed.
  std::set<std::string> open_;
};

template <typename Message>
grpc::ServerWriteReactor<Message>* Failed(const absl::Status& s) {
  std::shared_ptr<Writer<Message>> w = Writer<Message>::Create();
  w->End(s);
  return w.get();
}

absl::StatusOr<tls::Peer> NodePeer(const grpc::CallbackServerContext& ctx) {
  absl::StatusOr<tls::Peer> peer = tls::PeerOf(ctx);
  if (!peer.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("the log broker serves nodes of the swarm, which present their node "
                     "certificate: ",
                     peer.status().message()));
  }
  if (peer->role != tls::kManagerRole && peer->role != tls::kWorkerRole) {
    return absl::PermissionDeniedError(absl::StrCat("the log broker needs a node certificate; ",
                                                    peer->node_id, " presented role \"", peer->role,
                                                    "\""));
  }
  return peer;
}

}  // namespace

grpc::ServerWriteReactor<api::SubscribeLogsMessage>* LogsService::SubscribeLogs(
    grpc::CallbackServerContext* ctx, const api::SubscribeLogsRequest* req) {
  if (require_manager_) {
    if (absl::Status s = tls::RequireRole(*ctx, {tls::kManagerRole}); !s.ok()) {
      return Failed<api::SubscribeLogsMessage>(s);
    }
  }
  std::shared_ptr<Writer<api::SubscribeLogsMessage>> w =
      Writer<api::SubscribeLogsMessage>::Create();
  absl::StatusOr<std::string> sub = broker_->Subscribe(*req, w->sink());
  if (!sub.ok()) {
    w->End(sub.status());
    return w.get();
  }
  w->set_on_done([broker = broker_, id = *sub] { broker->Unsubscribe(id); });
  return w.get();
}

grpc::ServerWriteReactor<api::SubscriptionMessage>* LogBrokerService::ListenSubscriptions(
    grpc::CallbackServerContext* ctx, const api::ListenSubscriptionsRequest*) {
  absl::StatusOr<tls::Peer> peer = NodePeer(*ctx);
  if (!peer.ok()) return Failed<api::SubscriptionMessage>(peer.status());
  std::shared_ptr<Writer<api::SubscriptionMessage>> w = Writer<api::SubscriptionMessage>::Create();
  const uint64_t token = broker_->Listen(peer->node_id, w->sink());
  w->set_on_done(
      [broker = broker_, node = peer->node_id, token] { broker->StopListening(node, token); });
  return w.get();
}

grpc::ServerReadReactor<api::PublishLogsMessage>* LogBrokerService::PublishLogs(
    grpc::CallbackServerContext* ctx, api::PublishLogsResponse*) {
  absl::StatusOr<tls::Peer> peer = NodePeer(*ctx);
  if (!peer.ok()) {
    class Refused final : public grpc::ServerReadReactor<api::PublishLogsMessage> {
     public:
      explicit Refused(const absl::Status& s) { Finish(ToGrpcStatus(s)); }
      void OnDone() override { delete this; }
    };
    return new Refused(peer.status());
  }
  return new Publisher(broker_, peer->node_id);
}

}  // namespace swarm::manager::logbroker

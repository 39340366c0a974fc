#include "manager/logbroker/service.h"

#include <atomic>
#include <deque>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/grpc_relay.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
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

// The agent a LogBroker call is for: the certificate's node, or the node a manager relayed
// for (kForwardedNode, trusted from managers only). Sets *relayed accordingly.
absl::StatusOr<std::string> NodeOf(const grpc::CallbackServerContext& ctx, bool* relayed) {
  ASSIGN_OR_RETURN(tls::Peer peer, NodePeer(ctx));
  auto it = ctx.client_metadata().find(kForwardedNode);
  *relayed = it != ctx.client_metadata().end();
  if (!*relayed) return peer.node_id;
  if (peer.role != tls::kManagerRole) {
    return absl::PermissionDeniedError(absl::StrCat("only managers relay log broker calls; node ",
                                                    peer.node_id, " is a ", peer.role));
  }
  std::string node(it->second.data(), it->second.size());
  if (node.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("manager ", peer.node_id, " relayed a log broker call without a node"));
  }
  return node;
}

// Where a call goes: the broker here, or the leader's channel (exactly one is set).
struct Route {
  std::shared_ptr<LogBroker> local;
  std::shared_ptr<grpc::Channel> leader;
};

absl::StatusOr<Route> RouteOf(BrokerSlot* slot, const Leader& leader, bool relayed) {
  if (std::shared_ptr<LogBroker> b = slot->Get()) return Route{std::move(b), nullptr};
  if (!relayed) {
    if (std::shared_ptr<grpc::Channel> ch = leader()) return Route{nullptr, std::move(ch)};
  }
  return absl::UnavailableError(
      "this manager does not lead the swarm and cannot reach the one that does (an election "
      "or a leader change may be under way); try again in a moment");
}

bool HasMetadata(const grpc::CallbackServerContext& ctx, const char* key) {
  return ctx.client_metadata().find(key) != ctx.client_metadata().end();
}

// An agent's publish stream relayed to the leader: each message read from the agent is written
// to the leader before the next is read; the agent's end (or break) ends the leader's stream,
// and the leader's final status and response are the agent's. Deleted once both calls are
// done, off gRPC's threads (common/grpc_relay.h).
class PublishRelay final : public grpc::ServerReadReactor<api::PublishLogsMessage> {
 public:
  PublishRelay(const grpc::CallbackServerContext& ctx, const std::string& node_id,
               std::shared_ptr<grpc::Channel> channel, api::PublishLogsResponse* resp)
      : stub_(api::LogBroker::NewStub(std::move(channel))), resp_(resp), upstream_(this) {
    client_.set_deadline(ctx.raw_deadline());
    client_.AddMetadata(kForwardedNode, node_id);
    stub_->async()->PublishLogs(&client_, &upstream_response_, &upstream_);
    // Writes are started from this reactor's reads, outside the upstream's reactions: a hold
    // keeps the upstream call until the agent's stream is over (exactly one RemoveHold: reads
    // here and writes there alternate).
    upstream_.AddHold();
    upstream_.StartCall();
    StartRead(&message_);
  }

  void OnReadDone(bool ok) override {
    if (ok) {
      upstream_.StartWrite(&message_);
      return;
    }
    upstream_.StartWritesDone();
    upstream_.RemoveHold();
  }
  void OnCancel() override { client_.TryCancel(); }
  void OnDone() override { Release(); }

 private:
  class Upstream final : public grpc::ClientWriteReactor<api::PublishLogsMessage> {
   public:
    explicit Upstream(PublishRelay* relay) : relay_(relay) {}
    void OnWriteDone(bool ok) override {
      if (ok) {
        relay_->StartRead(&relay_->message_);
      } else {
        this->RemoveHold();  // the leader's stream broke: OnDone reports why
      }
    }
    void OnDone(const grpc::Status& s) override {
      *relay_->resp_ = relay_->upstream_response_;
      relay_->Finish(s);
      relay_->Release();
    }

   private:
    PublishRelay* relay_;
  };

  void Release() {
    if (pending_.fetch_sub(1) == 1) ReleaseOffGrpcThreads([this] { delete this; });
  }

  std::unique_ptr<api::LogBroker::Stub> stub_;
  api::PublishLogsResponse* resp_;
  grpc::ClientContext client_;
  api::PublishLogsResponse upstream_response_;
  Upstream upstream_;
  // Read from the agent, then written to the leader; one at a time.
  api::PublishLogsMessage message_;
  std::atomic<int> pending_{2};
};

}  // namespace

grpc::ServerWriteReactor<api::SubscribeLogsMessage>* LogsService::SubscribeLogs(
    grpc::CallbackServerContext* ctx, const api::SubscribeLogsRequest* req) {
  if (require_manager_) {
    if (absl::Status s = tls::RequireRole(*ctx, {tls::kManagerRole}); !s.ok()) {
      return Failed<api::SubscribeLogsMessage>(s);
    }
  }
  // Only managers reach the TCP listener, so only they can mark a call relayed; the unix
  // socket's callers are not relayed.
  const bool relayed = require_manager_ && HasMetadata(*ctx, kRelayedLogs);
  absl::StatusOr<Route> route = RouteOf(slot_, leader_, relayed);
  if (!route.ok()) return Failed<api::SubscribeLogsMessage>(route.status());
  if (route->leader) {
    return new StreamRelay<api::Logs::Stub, api::SubscribeLogsRequest, api::SubscribeLogsMessage>(
        *ctx, *req, std::make_shared<api::Logs::Stub>(route->leader),
        [](grpc::ClientContext* c) { c->AddMetadata(kRelayedLogs, "1"); },
        [](auto* stub, auto* c, auto* r, auto* reactor) {
          stub->async()->SubscribeLogs(c, r, reactor);
        });
  }
  std::shared_ptr<LogBroker> broker = route->local;
  std::shared_ptr<Writer<api::SubscribeLogsMessage>> w =
      Writer<api::SubscribeLogsMessage>::Create();
  absl::StatusOr<std::string> sub = broker->Subscribe(*req, w->sink());
  if (!sub.ok()) {
    w->End(sub.status());
    return w.get();
  }
  w->set_on_done([broker, id = *sub] { broker->Unsubscribe(id); });
  return w.get();
}

grpc::ServerWriteReactor<api::SubscriptionMessage>* LogBrokerService::ListenSubscriptions(
    grpc::CallbackServerContext* ctx, const api::ListenSubscriptionsRequest* req) {
  bool relayed = false;
  absl::StatusOr<std::string> node = NodeOf(*ctx, &relayed);
  absl::StatusOr<Route> route = node.ok() ? RouteOf(slot_, leader_, relayed) : node.status();
  if (!route.ok()) return Failed<api::SubscriptionMessage>(route.status());
  if (route->leader) {
    return new StreamRelay<api::LogBroker::Stub, api::ListenSubscriptionsRequest,
                           api::SubscriptionMessage>(
        *ctx, *req, std::make_shared<api::LogBroker::Stub>(route->leader),
        [node = *node](grpc::ClientContext* c) { c->AddMetadata(kForwardedNode, node); },
        [](auto* stub, auto* c, auto* r, auto* reactor) {
          stub->async()->ListenSubscriptions(c, r, reactor);
        });
  }
  std::shared_ptr<LogBroker> broker = route->local;
  std::shared_ptr<Writer<api::SubscriptionMessage>> w = Writer<api::SubscriptionMessage>::Create();
  const uint64_t token = broker->Listen(*node, w->sink());
  w->set_on_done([broker, node = *node, token] { broker->StopListening(node, token); });
  return w.get();
}

grpc::ServerReadReactor<api::PublishLogsMessage>* LogBrokerService::PublishLogs(
    grpc::CallbackServerContext* ctx, api::PublishLogsResponse* resp) {
  bool relayed = false;
  absl::StatusOr<std::string> node = NodeOf(*ctx, &relayed);
  absl::StatusOr<Route> route = node.ok() ? RouteOf(slot_, leader_, relayed) : node.status();
  if (!route.ok()) {
    class Refused final : public grpc::ServerReadReactor<api::PublishLogsMessage> {
     public:
      explicit Refused(const absl::Status& s) { Finish(ToGrpcStatus(s)); }
      void OnDone() override { delete this; }
    };
    return new Refused(route.status());
  }
  if (route->leader) return new PublishRelay(*ctx, *node, route->leader, resp);
  return new Publisher(route->local, *node);
}

}  // namespace swarm::manager::logbroker

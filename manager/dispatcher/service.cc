#include "manager/dispatcher/service.h"

#include <atomic>
#include <deque>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/grpc_relay.h"
#include "common/grpc_status.h"
#include "common/proto_time.h"
#include "common/status_macros.h"

namespace swarm::manager::dispatcher {
namespace {

// The IP address of a gRPC peer URI: "ipv4:10.0.0.5:43512" -> "10.0.0.5",
// "ipv6:[::1]:43512" (brackets possibly %-encoded) -> "::1".
std::string IpOf(const std::string& peer) {
  std::string p = absl::StrReplaceAll(peer, {{"%5B", "["}, {"%5D", "]"}});
  if (size_t colon = p.find(':'); colon != std::string::npos) p.erase(0, colon + 1);
  if (!p.empty() && p.front() == '[') {
    const size_t close = p.find(']');
    return close == std::string::npos ? p : p.substr(1, close - 1);
  }
  const size_t colon = p.rfind(':');
  return colon == std::string::npos ? p : p.substr(0, colon);
}

std::string MetadataValue(const grpc::CallbackServerContext& ctx, const char* key) {
  auto it = ctx.client_metadata().find(key);
  return it == ctx.client_metadata().end() ? "" : std::string(it->second.data(), it->second.size());
}

// One server stream served here: what the dispatcher sends, written one message at a time.
// Owned by itself from creation until gRPC is done with it (OnDone), and by the dispatcher
// while it holds the stream; Send and End after that do nothing.
template <typename Message>
class Writer final : public grpc::ServerWriteReactor<Message>, public Stream<Message> {
 public:
  // coalesce: a queued message is replaced by a newer one (each session message is complete).
  static std::shared_ptr<Writer> Create(bool coalesce) {
    std::shared_ptr<Writer> w(new Writer(coalesce));
    w->self_ = w;
    return w;
  }
  // What to do when the call is over; set before the reactor is returned to gRPC.
  void set_on_done(std::function<void()> fn) { on_done_ = std::move(fn); }

  void Send(Message message) override {
    {
      absl::MutexLock lock(&mu_);
      if (finishing_) return;
      if (coalesce_) queue_.clear();
      queue_.push_back(std::move(message));
      if (writing_) return;
      NextLocked();
    }
    this->StartWrite(&current_);
  }
  bool Busy() const override {
    absl::MutexLock lock(&mu_);
    return writing_ || !queue_.empty();
  }
  void End(absl::Status status) override {
    grpc::Status s;
    {
      absl::MutexLock lock(&mu_);
      if (finishing_) return;
      finishing_ = true;
      queue_.clear();
      status_ = ToGrpcStatus(status);
      // A write in flight finishes first (OnWriteDone).
      if (writing_) return;
      s = status_;
    }
    this->Finish(s);
  }

  void OnWriteDone(bool ok) override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok && !finishing_) {
        finishing_ = true;
        queue_.clear();
        status_ = grpc::Status(grpc::StatusCode::CANCELLED, "the stream broke");
      }
      if (finishing_) {
        finish = status_;
      } else if (queue_.empty()) {
        return;
      } else {
        NextLocked();
      }
    }
    if (finish) {
      this->Finish(*finish);
    } else {
      this->StartWrite(&current_);
    }
  }
  void OnCancel() override { End(absl::CancelledError("the agent went away")); }
  void OnDone() override {
    std::function<void()> on_done = std::move(on_done_);
    if (on_done) on_done();
    // The last thing: may destroy this.
    std::shared_ptr<Writer> self = std::move(self_);
  }

 private:
  explicit Writer(bool coalesce) : coalesce_(coalesce) {}
  void NextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    current_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
  }

  const bool coalesce_;
  std::function<void()> on_done_;
  std::shared_ptr<Writer> self_;
  mutable absl::Mutex mu_;
  std::deque<Message> queue_ ABSL_GUARDED_BY(mu_);
  // The message being written; stable until OnWriteDone.
  Message current_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

// Marks a client call as relayed for the agent, with the server call's deadline.
template <typename Caller>
void Forward(grpc::ClientContext& out, const grpc::CallbackServerContext& in,
             const Caller& caller) {
  out.set_deadline(in.raw_deadline());
  out.AddMetadata(kForwardedNode, caller.node_id);
  out.AddMetadata(kForwardedRole, caller.role);
  out.AddMetadata(kForwardedAddr, caller.addr);
}

// A unary call relayed to the leader.
template <typename Caller, typename Request, typename Response, typename Call>
void RelayUnary(grpc::CallbackServerContext* ctx, const Caller& caller, const Request* req,
                Response* resp, grpc::ServerUnaryReactor* reactor,
                const std::shared_ptr<api::Dispatcher::Stub>& stub, Call call) {
  auto* out = new grpc::ClientContext;
  Forward(*out, *ctx, caller);
  // The context holds the channel from here on.
  call(stub->async(), out, req, resp, [reactor, out](grpc::Status s) {
    ReleaseOffGrpcThreads([out] { delete out; });
    reactor->Finish(s);
  });
}

}  // namespace

absl::StatusOr<tls::Peer> Service::PeerOf(const grpc::CallbackServerContext& ctx) {
  std::string pem = tls::PeerCertificate(ctx).value_or("");
  if (!pem.empty()) {
    absl::MutexLock lock(&peers_mu_);
    if (auto it = peers_.find(pem); it != peers_.end()) return it->second;
  }
  absl::StatusOr<tls::Peer> peer = tls::PeerOf(ctx);
  if (!peer.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("the dispatcher serves nodes of the swarm, which present their node "
                     "certificate: ",
                     peer.status().message()));
  }
  if (!pem.empty()) {
    absl::MutexLock lock(&peers_mu_);
    if (peers_.size() >= kMaxPeers) peers_.clear();
    peers_.emplace(std::move(pem), *peer);
  }
  return peer;
}

absl::StatusOr<Service::Caller> Service::Identify(const grpc::CallbackServerContext& ctx) {
  ASSIGN_OR_RETURN(tls::Peer peer, PeerOf(ctx));
  auto node_role = [](const std::string& role) {
    return role == tls::kManagerRole || role == tls::kWorkerRole;
  };
  if (!node_role(peer.role)) {
    return absl::PermissionDeniedError(absl::StrCat("the dispatcher needs a node certificate; ",
                                                    peer.node_id, " presented role \"", peer.role,
                                                    "\""));
  }
  Caller c;
  c.node_id = MetadataValue(ctx, kForwardedNode);
  if (c.node_id.empty()) return Caller{peer.node_id, peer.role, IpOf(ctx.peer()), false};
  if (peer.role != tls::kManagerRole) {
    return absl::PermissionDeniedError(absl::StrCat("only managers relay dispatcher calls; node ",
                                                    peer.node_id, " is a ", peer.role));
  }
  c.role = MetadataValue(ctx, kForwardedRole);
  c.addr = MetadataValue(ctx, kForwardedAddr);
  c.forwarded = true;
  if (!node_role(c.role)) {
    return absl::InvalidArgumentError(
        absl::StrCat("manager ", peer.node_id, " relayed a call with role \"", c.role, "\""));
  }
  return c;
}

absl::StatusOr<Service::Route> Service::RouteOf(const Caller& caller) {
  if (std::shared_ptr<Dispatcher> d = slot_->Get()) return Route{std::move(d), nullptr};
  if (!caller.forwarded) {
    if (std::shared_ptr<api::Dispatcher::Stub> leader = leader_()) return Route{nullptr, leader};
  }
  return absl::UnavailableError(
      "this manager does not lead the swarm and cannot reach the one that does (an election "
      "or a leader change may be under way); try again in a moment");
}

grpc::ServerWriteReactor<api::SessionMessage>* Service::Session(grpc::CallbackServerContext* ctx,
                                                                const api::SessionRequest* req) {
  absl::StatusOr<Caller> caller = Identify(*ctx);
  absl::StatusOr<Route> route = caller.ok() ? RouteOf(*caller) : caller.status();
  if (route.ok() && route->leader) {
    return new StreamRelay<api::Dispatcher::Stub, api::SessionRequest, api::SessionMessage>(
        *ctx, *req, route->leader, [&](grpc::ClientContext* c) { Forward(*c, *ctx, *caller); },
        [](auto* stub, auto* c, auto* r, auto* reactor) { stub->async()->Session(c, r, reactor); });
  }
  std::shared_ptr<Writer<api::SessionMessage>> w =
      Writer<api::SessionMessage>::Create(/*coalesce=*/true);
  if (!route.ok()) {
    w->End(route.status());
    return w.get();
  }
  std::shared_ptr<Dispatcher> d = route->local;
  w->set_on_done([d, node = caller->node_id, s = w.get()] { d->StreamClosed(node, s); });
  if (absl::Status s = d->OpenSession(caller->node_id, caller->addr, req->description(), w);
      !s.ok()) {
    w->End(s);
  }
  return w.get();
}

grpc::ServerUnaryReactor* Service::Heartbeat(grpc::CallbackServerContext* ctx,
                                             const api::HeartbeatRequest* req,
                                             api::HeartbeatResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  absl::StatusOr<Caller> caller = Identify(*ctx);
  absl::StatusOr<Route> route = caller.ok() ? RouteOf(*caller) : caller.status();
  if (!route.ok()) {
    reactor->Finish(ToGrpcStatus(route.status()));
  } else if (route->leader) {
    RelayUnary(ctx, *caller, req, resp, reactor, route->leader,
               [](auto* async, auto* c, auto* rq, auto* rs, auto done) {
                 async->Heartbeat(c, rq, rs, std::move(done));
               });
  } else {
    absl::StatusOr<absl::Duration> period =
        route->local->Heartbeat(caller->node_id, req->session_id());
    if (period.ok()) *resp->mutable_period() = ToProtoDuration(*period);
    reactor->Finish(ToGrpcStatus(period.status()));
  }
  return reactor;
}

grpc::ServerUnaryReactor* Service::UpdateTaskStatus(grpc::CallbackServerContext* ctx,
                                                    const api::UpdateTaskStatusRequest* req,
                                                    api::UpdateTaskStatusResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  absl::StatusOr<Caller> caller = Identify(*ctx);
  absl::StatusOr<Route> route = caller.ok() ? RouteOf(*caller) : caller.status();
  if (!route.ok()) {
    reactor->Finish(ToGrpcStatus(route.status()));
  } else if (route->leader) {
    RelayUnary(ctx, *caller, req, resp, reactor, route->leader,
               [](auto* async, auto* c, auto* rq, auto* rs, auto done) {
                 async->UpdateTaskStatus(c, rq, rs, std::move(done));
               });
  } else {
    route->local->UpdateTaskStatus(caller->node_id, *req,
                                   [reactor](absl::Status s) { reactor->Finish(ToGrpcStatus(s)); });
  }
  return reactor;
}

grpc::ServerWriteReactor<api::AssignmentsMessage>* Service::Assignments(
    grpc::CallbackServerContext* ctx, const api::AssignmentsRequest* req) {
  absl::StatusOr<Caller> caller = Identify(*ctx);
  absl::StatusOr<Route> route = caller.ok() ? RouteOf(*caller) : caller.status();
  if (route.ok() && route->leader) {
    return new StreamRelay<api::Dispatcher::Stub, api::AssignmentsRequest, api::AssignmentsMessage>(
        *ctx, *req, route->leader, [&](grpc::ClientContext* c) { Forward(*c, *ctx, *caller); },
        [](auto* stub, auto* c, auto* r, auto* reactor) {
          stub->async()->Assignments(c, r, reactor);
        });
  }
  std::shared_ptr<Writer<api::AssignmentsMessage>> w =
      Writer<api::AssignmentsMessage>::Create(/*coalesce=*/false);
  if (!route.ok()) {
    w->End(route.status());
    return w.get();
  }
  std::shared_ptr<Dispatcher> d = route->local;
  w->set_on_done([d, node = caller->node_id, s = w.get()] { d->StreamClosed(node, s); });
  if (absl::Status s = d->OpenAssignments(caller->node_id, req->session_id(), w); !s.ok()) {
    w->End(s);
  }
  return w.get();
}

}  // namespace swarm::manager::dispatcher

// StreamRelay: serves a server-streaming call by making the same call to another server (a
// follower relaying to the leader) and passing its messages and final status through, with
// gRPC's callback API: each message read upstream is written to the caller before the next is
// read. It is deleted once both calls are done. Used by the dispatcher and the log broker.
//
// Thread-safety: gRPC runs the reactions; the object is owned by the two calls.
#ifndef SWARM_COMMON_GRPC_RELAY_H_
#define SWARM_COMMON_GRPC_RELAY_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/client_callback.h>
#include <grpcpp/support/server_callback.h>

#include <atomic>
#include <functional>
#include <memory>

namespace swarm {

// Runs `release` on a thread of our own (grpc-release), in order. A relay ends on one of
// gRPC's callback threads and must not drop its channel's last reference there: when that
// channel is the last user of those threads, gRPC joins the thread from itself and the process
// aborts (seen when a manager's listener stopped with relays in flight). Relays free their
// client contexts and stubs through it.
void ReleaseOffGrpcThreads(std::function<void()> release);

// `prepare` adds the upstream call's metadata; `start` starts it on the stub (the deadline is
// the caller's).
template <typename Stub, typename Request, typename Message>
class StreamRelay final : public grpc::ServerWriteReactor<Message> {
 public:
  using Start = std::function<void(Stub*, grpc::ClientContext*, const Request*,
                                   grpc::ClientReadReactor<Message>*)>;

  StreamRelay(const grpc::CallbackServerContext& ctx, const Request& req,
              std::shared_ptr<Stub> stub, const std::function<void(grpc::ClientContext*)>& prepare,
              const Start& start)
      : request_(req), stub_(std::move(stub)), upstream_(this) {
    client_.set_deadline(ctx.raw_deadline());
    prepare(&client_);
    start(stub_.get(), &client_, &request_, &upstream_);
    // Reads are started from OnWriteDone, outside the upstream's reactions: a hold keeps the
    // upstream call until the last read.
    upstream_.AddHold();
    upstream_.StartRead(&message_);
    upstream_.StartCall();
  }

  void OnWriteDone(bool ok) override {
    if (ok) {
      upstream_.StartRead(&message_);
      return;
    }
    client_.TryCancel();
    upstream_.RemoveHold();
  }
  void OnCancel() override { client_.TryCancel(); }
  void OnDone() override { Release(); }

 private:
  class Upstream final : public grpc::ClientReadReactor<Message> {
   public:
    explicit Upstream(StreamRelay* relay) : relay_(relay) {}
    void OnReadDone(bool ok) override {
      if (ok) {
        relay_->StartWrite(&relay_->message_);
      } else {
        this->RemoveHold();  // no more reads
      }
    }
    void OnDone(const grpc::Status& s) override {
      relay_->Finish(s);
      relay_->Release();
    }

   private:
    StreamRelay* relay_;
  };

  void Release() {
    if (pending_.fetch_sub(1) == 1) ReleaseOffGrpcThreads([this] { delete this; });
  }

  Request request_;
  std::shared_ptr<Stub> stub_;
  grpc::ClientContext client_;
  Upstream upstream_;
  // Read from the leader, then written to the caller; one at a time.
  Message message_;
  // The two calls not yet done.
  std::atomic<int> pending_{2};
};

}  // namespace swarm

#endif  // SWARM_COMMON_GRPC_RELAY_H_

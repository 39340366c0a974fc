#include "raft/transport.h"

#include <pthread.h>

#include <deque>
#include <random>
#include <thread>

#include "common/logging.h"
#include "common/thread_priority.h"
#include "proto/raft_service.grpc.pb.h"
#include "raft/codec.h"

namespace swarm::raft {

// One peer: a queue and the thread that drains it into a gRPC stream.
class Peer {
 public:
  Peer(uint64_t id, std::string addr, const Transport::Options& options,
       const Transport::Callbacks& callbacks)
      : id_(id),
        options_(options),
        callbacks_(callbacks),
        addr_(std::move(addr)),
        rng_(std::random_device{}() ^ id),
        thread_([this] { Run(); }) {}

  ~Peer() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      if (context_) context_->TryCancel();
      if (snapshot_context_) snapshot_context_->TryCancel();
    }
    thread_.join();
  }

  void SetAddr(const std::string& addr) {
    absl::MutexLock lock(&mu_);
    if (addr == addr_) return;
    addr_ = addr;
    addr_changed_ = true;
  }

  // Returns false when the queue is full (the message is dropped).
  bool Enqueue(Message m) {
    const uint64_t bytes = MessageBytes(m);
    absl::MutexLock lock(&mu_);
    if (urgent_.size() + bulk_.size() >= options_.max_queued_messages ||
        queued_bytes_ + bytes > options_.max_queued_bytes) {
      return false;
    }
    queued_bytes_ += bytes;
    (IsBulk(m.type) ? bulk_ : urgent_).push_back(std::move(m));
    return true;
  }

 private:
  // Messages that carry entries or a snapshot. The others (heartbeats, votes, answers) go
  // ahead of them: a heartbeat stuck behind megabytes of appends would let the followers'
  // election timers run out while the leader is healthy. Raft allows the reordering; a
  // heartbeat's commit index never exceeds what the follower acknowledged.
  static bool IsBulk(MessageType type) {
    return type == MessageType::kApp || type == MessageType::kSnap || type == MessageType::kProp;
  }

  static uint64_t MessageBytes(const Message& m) {
    uint64_t b = 64 + m.context.size();
    for (const Entry& e : m.entries) b += e.Size();
    return b;
  }

  void Run() {
    pthread_setname_np(pthread_self(), ("raft-send-" + std::to_string(id_ % 10000)).c_str());
    (void)SetThreadNice(kRaftThreadNice);  // see Node::Start
    log::Debug("raft-transport", "sender started", {{"peer", id_}});
    absl::Duration backoff = options_.min_backoff;
    while (true) {
      std::vector<Message> batch;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](Peer* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
              return p->stopping_ || !p->urgent_.empty() || !p->bulk_.empty();
            },
            this));
        if (stopping_) break;
        batch = TakeBatch();
      }
      const bool snap = batch.front().type == MessageType::kSnap;
      if (snap ? SendSnapshot(batch.front()) : SendMessages(batch)) {
        backoff = options_.min_backoff;
        continue;
      }
      // The stream broke: what is queued would fail too. Raft retransmits once told.
      bool dropped;
      {
        absl::MutexLock lock(&mu_);
        dropped = !urgent_.empty() || !bulk_.empty();
        urgent_.clear();
        bulk_.clear();
        queued_bytes_ = 0;
      }
      if (!snap || dropped) callbacks_.unreachable(id_);
      CloseStream();
      // Jittered exponential backoff, interrupted by Stop.
      const absl::Duration wait = backoff * (0.5 + std::uniform_real_distribution<>(0, 1)(rng_));
      backoff = std::min(backoff * 2, options_.max_backoff);
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), wait);
      if (stopping_) break;
    }
    CloseStream();
  }

  // What goes out next: a snapshot alone, or the queued messages (urgent ones first) up to
  // max_batch_bytes in one request, however many piled up while the last one was written.
  std::vector<Message> TakeBatch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<Message> batch;
    uint64_t bytes = 0;
    auto take = [&](std::deque<Message>& from) {
      while (!from.empty() && from.front().type != MessageType::kSnap) {
        const uint64_t size = MessageBytes(from.front());
        if (!batch.empty() && bytes + size > options_.max_batch_bytes) break;
        bytes += size;
        batch.push_back(std::move(from.front()));
        from.pop_front();
      }
    };
    take(urgent_);
    if (batch.empty() && bulk_.front().type == MessageType::kSnap) {
      bytes = MessageBytes(bulk_.front());
      batch.push_back(std::move(bulk_.front()));
      bulk_.pop_front();
    } else {
      take(bulk_);
    }
    queued_bytes_ -= bytes;
    return batch;
  }

  // Called without mu_ held.
  api::Raft::Stub* Stub() {
    absl::MutexLock lock(&mu_);
    if (!stub_ || addr_changed_) {
      addr_changed_ = false;
      // gRPC's own reconnect backoff grows to minutes by default; a member that restarts
      // must be reached again within our own backoff. (The "min reconnect backoff" is in
      // fact the connect timeout, TLS handshake included: it must not be short.)
      grpc::ChannelArguments args = options_.channel_arguments;
      args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
      args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 2000);
      args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
                  static_cast<int>(absl::ToInt64Milliseconds(options_.max_backoff)));
      args.SetMaxReceiveMessageSize(kMaxMessageBytes);
      args.SetMaxSendMessageSize(kMaxMessageBytes);
      channel_ = grpc::CreateCustomChannel(addr_, options_.credentials, args);
      stub_ = api::Raft::NewStub(channel_);
    }
    return stub_.get();
  }

  bool SendMessages(const std::vector<Message>& batch) {
    if (!writer_) {
      api::Raft::Stub* stub = Stub();
      auto ctx = std::make_unique<grpc::ClientContext>();
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return false;
        context_ = ctx.get();
      }
      writer_ = stub->ProcessRaftMessage(ctx.get(), &response_);
      stream_context_ = std::move(ctx);
    }
    api::ProcessRaftMessageRequest req;
    for (const Message& m : batch) ToProto(m, req.add_messages());
    if (writer_->Write(req)) return true;
    log::Debug("raft-transport", "stream to peer broke", {{"peer", id_}});
    return false;
  }

  void CloseStream() {
    if (!writer_) return;
    {
      absl::MutexLock lock(&mu_);
      context_ = nullptr;
    }
    stream_context_->TryCancel();
    (void)writer_->Finish();
    writer_.reset();
    stream_context_.reset();
  }

  // Streams a snapshot in chunks, as read from storage; reports the outcome to the node.
  bool SendSnapshot(const Message& m) {
    absl::StatusOr<StoredSnapshot> stored = callbacks_.open_snapshot(*m.snapshot);
    if (!stored.ok()) {
      // The stream is fine; the core asks for the newer snapshot once told.
      log::Info("raft-transport", "not sending a snapshot",
                {{"peer", id_},
                 {"index", m.snapshot->metadata.index},
                 {"error", std::string(stored.status().message())}});
      callbacks_.snapshot_status(id_, true);
      return true;
    }
    api::Raft::Stub* stub = Stub();
    grpc::ClientContext ctx;
    // Cancelled when the peer goes (RemovePeer, Stop); bounded for a peer that stops reading
    // (generously: a minute, plus a second per MiB).
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60) +
                     std::chrono::seconds(stored->size >> 20));
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return false;
      snapshot_context_ = &ctx;
    }
    api::StreamRaftSnapshotResponse resp;
    auto writer = stub->StreamRaftSnapshot(&ctx, &resp);
    api::SnapshotChunk chunk;
    ToProto(m, chunk.mutable_message(), /*with_snapshot_data=*/false);
    chunk.set_total_size(stored->size);
    chunk.set_format(stored->format);
    absl::Status read_status;
    bool ok = true;
    uint64_t off = 0;
    std::string data(options_.snapshot_chunk_size, '\0');
    do {
      const size_t n = std::min<uint64_t>(data.size(), stored->size - off);
      read_status = ReadExactly(*stored->reader, data.data(), n);
      if (!read_status.ok()) break;
      chunk.set_offset(off);
      chunk.set_data(data.data(), n);
      off += n;
      chunk.set_last(off == stored->size);
      ok = writer->Write(chunk);
      chunk.Clear();
    } while (ok && off < stored->size);
    if (!read_status.ok()) {
      ctx.TryCancel();
      ok = false;
    }
    writer->WritesDone();
    grpc::Status st = writer->Finish();
    {
      absl::MutexLock lock(&mu_);
      snapshot_context_ = nullptr;
    }
    ok = ok && st.ok();
    log::Info(
        "raft-transport", ok ? "sent snapshot" : "failed to send snapshot",
        {{"peer", id_},
         {"index", m.snapshot->metadata.index},
         {"bytes", stored->size},
         {"error", read_status.ok() ? st.error_message() : std::string(read_status.message())}});
    callbacks_.snapshot_status(id_, !ok);
    return ok;
  }

  const uint64_t id_;
  const Transport::Options& options_;
  const Transport::Callbacks& callbacks_;

  absl::Mutex mu_;
  std::string addr_ ABSL_GUARDED_BY(mu_);
  bool addr_changed_ ABSL_GUARDED_BY(mu_) = false;
  // Signalled (through Await) by Enqueue and the destructor.
  std::deque<Message> urgent_ ABSL_GUARDED_BY(mu_);
  std::deque<Message> bulk_ ABSL_GUARDED_BY(mu_);
  uint64_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The open stream's context, so the destructor can cancel a blocked Write; and the context
  // of a snapshot being sent.
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  grpc::ClientContext* snapshot_context_ ABSL_GUARDED_BY(mu_) = nullptr;

  // Used by the sender thread only.
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<api::Raft::Stub> stub_;
  std::unique_ptr<grpc::ClientContext> stream_context_;
  std::unique_ptr<grpc::ClientWriter<api::ProcessRaftMessageRequest>> writer_;
  api::ProcessRaftMessageResponse response_;
  std::mt19937_64 rng_;

  std::thread thread_;  // last: starts once everything above is built
};

Transport::Transport(Options options, Callbacks callbacks)
    : options_(std::move(options)), callbacks_(std::move(callbacks)) {
  if (!options_.credentials) options_.credentials = grpc::InsecureChannelCredentials();
}

Transport::~Transport() { Stop(); }

void Transport::SetPeer(uint64_t id, const std::string& addr) {
  if (id == options_.self) return;
  absl::MutexLock lock(&mu_);
  if (stopped_) return;
  auto it = peers_.find(id);
  if (it != peers_.end()) {
    it->second->SetAddr(addr);
    return;
  }
  peers_[id] = std::make_unique<Peer>(id, addr, options_, callbacks_);
}

void Transport::RemovePeer(uint64_t id) {
  std::unique_ptr<Peer> peer;
  {
    absl::MutexLock lock(&mu_);
    auto it = peers_.find(id);
    if (it == peers_.end()) return;
    peer = std::move(it->second);
    peers_.erase(it);
  }
  // Joins the sender thread outside the lock.
}

void Transport::Send(Message m) {
  const uint64_t to = m.to;
  const bool snap = m.type == MessageType::kSnap;
  bool queued = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = peers_.find(to);
    if (it != peers_.end()) queued = it->second->Enqueue(std::move(m));
  }
  if (!queued) {
    if (snap) {
      callbacks_.snapshot_status(to, true);
    } else {
      callbacks_.unreachable(to);
    }
  }
}

void Transport::Stop() {
  std::map<uint64_t, std::unique_ptr<Peer>> peers;
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    peers.swap(peers_);
  }
  peers.clear();
}

}  // namespace swarm::raft

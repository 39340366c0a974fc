#include "raft/node.h"

#include <pthread.h>

#include <filesystem>

#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/thread_priority.h"
#include "common/tls.h"
#include "proto/raft_service.grpc.pb.h"
#include "raft/codec.h"
#include "raft/raft.h"

namespace swarm::raft {
namespace {

constexpr size_t kRequestIdSize = 8;
constexpr char kLog[] = "raft";
// See Node::Run.
constexpr int kMaxTicksPerRound = 2;

std::string EncodeRequest(uint64_t id, const std::string& data) {
  std::string out(kRequestIdSize, '\0');
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(id & 0xff);
    id >>= 8;
  }
  return out + data;
}

// Splits a proposal into its request ID and the caller's data.
bool DecodeRequest(std::string_view entry, uint64_t* id, std::string_view* data) {
  if (entry.size() < kRequestIdSize) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < kRequestIdSize; ++i) v = (v << 8) | static_cast<uint8_t>(entry[i]);
  *id = v;
  *data = entry.substr(kRequestIdSize);
  return true;
}

std::string EncodeMember(const Member& m) {
  api::RaftMember pb;
  pb.set_raft_id(m.raft_id);
  pb.set_addr(m.addr);
  return pb.SerializeAsString();
}

[[noreturn]] void Die(const std::string& what, const absl::Status& s) {
  Fatal(what + ": " + std::string(s.message()));
}

}  // namespace

struct Node::Waiter {
  Done done;
  absl::Time deadline;
  // Reads: the index to wait for (0 until the ReadState arrives).
  uint64_t read_index = 0;
  void Finish(absl::StatusOr<uint64_t> v) { done(std::move(v)); }
};

namespace {

// Turns a Done callback into a future.
std::pair<Node::Done, std::future<absl::StatusOr<uint64_t>>> FutureDone() {
  auto promise = std::make_shared<std::promise<absl::StatusOr<uint64_t>>>();
  auto future = promise->get_future();
  return {[promise](absl::StatusOr<uint64_t> v) { promise->set_value(std::move(v)); },
          std::move(future)};
}

}  // namespace

struct Node::Inbox {
  int ticks = 0;
  std::vector<Message> messages;
  std::vector<std::pair<std::string, std::shared_ptr<Waiter>>> proposals;
  std::vector<std::pair<std::string, std::shared_ptr<Waiter>>> reads;
  std::vector<std::pair<ConfChange, std::shared_ptr<Waiter>>> conf_changes;
  std::vector<uint64_t> transfers;
  std::vector<uint64_t> unreachable;
  std::vector<std::pair<uint64_t, bool>> snapshot_status;
  std::vector<std::pair<std::optional<DataKey>, std::shared_ptr<Waiter>>> key_rotations;
  // The index of a snapshot its thread finished writing (0: none).
  uint64_t snapshot_written = 0;
  bool empty() const {
    return ticks == 0 && messages.empty() && proposals.empty() && reads.empty() &&
           conf_changes.empty() && transfers.empty() && unreachable.empty() &&
           snapshot_status.empty() && key_rotations.empty() && snapshot_written == 0;
  }
};

// ---- gRPC services ----

class Node::RaftServiceImpl final : public api::Raft::Service {
 public:
  explicit RaftServiceImpl(Node* node) : node_(node) {}

  grpc::Status ProcessRaftMessage(grpc::ServerContext* ctx,
                                  grpc::ServerReader<api::ProcessRaftMessageRequest>* reader,
                                  api::ProcessRaftMessageResponse*) override {
    if (grpc::Status s = node_->Authorize(*ctx); !s.ok()) return s;
    // This pooled thread serves the stream for as long as the peer keeps it open.
    ScopedThreadNice raised(kRaftThreadNice);
    api::ProcessRaftMessageRequest req;
    std::vector<Message> batch;
    while (reader->Read(&req)) {
      batch.clear();
      for (const raftpb::Message& pm : req.messages()) {
        Message m = FromProto(pm);
        if (m.to != node_->id() || IsLocalMessage(m.type)) {
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "raft message is not for this member");
        }
        if (m.type == MessageType::kSnap) {  // its data would be missing
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "snapshots come through StreamRaftSnapshot");
        }
        batch.push_back(std::move(m));
      }
      node_->Deliver(std::move(batch));
    }
    return grpc::Status::OK;
  }

  // Stores the snapshot as it arrives, then hands its message (data left on disk) to the loop,
  // whose Ready installs it.
  grpc::Status StreamRaftSnapshot(grpc::ServerContext* ctx,
                                  grpc::ServerReader<api::SnapshotChunk>* reader,
                                  api::StreamRaftSnapshotResponse*) override {
    if (grpc::Status s = node_->Authorize(*ctx); !s.ok()) return s;
    api::SnapshotChunk chunk;
    std::optional<Message> m;
    std::unique_ptr<DiskStorage::SnapshotChunks> out;
    uint64_t total = 0, received = 0;
    while (reader->Read(&chunk)) {
      if (!m) {
        m = FromProto(chunk.message());
        if (m->type != MessageType::kSnap || !m->snapshot || m->to != node_->id()) {
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "not a snapshot for us");
        }
        total = chunk.total_size();
        out = node_->disk_->NewSnapshotWriter(m->snapshot->metadata.index, /*received=*/true,
                                              chunk.format());
      }
      if (chunk.offset() != received) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "snapshot chunk out of order");
      }
      if (absl::Status s = out->Write(chunk.data()); !s.ok()) return ToGrpcStatus(s);
      received += chunk.data().size();
      if (chunk.last()) {
        if (received != total) {
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "the snapshot's size differs from what its first chunk said");
        }
        if (absl::Status s = out->Finish().status(); !s.ok()) return ToGrpcStatus(s);
        std::vector<Message> one;
        one.push_back(*std::move(m));
        node_->Deliver(std::move(one));
        return grpc::Status::OK;
      }
    }
    return grpc::Status(grpc::StatusCode::CANCELLED, "snapshot stream ended early");
  }

  grpc::Status ResolveAddress(grpc::ServerContext*, const api::ResolveAddressRequest* req,
                              api::ResolveAddressResponse* resp) override {
    NodeStatus st = node_->Status();
    auto it = st.members.find(req->raft_id());
    if (it == st.members.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such raft member");
    }
    resp->set_addr(it->second.addr);
    return grpc::Status::OK;
  }

 private:
  Node* node_;
};

class Node::MembershipServiceImpl final : public api::RaftMembership::Service {
 public:
  explicit MembershipServiceImpl(Node* node) : node_(node) {}

  grpc::Status Join(grpc::ServerContext* ctx, const api::JoinRequest* req,
                    api::JoinResponse* resp) override {
    if (grpc::Status s = node_->Authorize(*ctx); !s.ok()) return s;
    if (req->addr().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "join: the address is empty");
    }
    NodeStatus st = node_->Status();
    // A member that rejoins from the same address keeps its ID.
    uint64_t id = kNone;
    for (const auto& [mid, m] : st.members) {
      if (m.addr == req->addr()) id = mid;
    }
    if (id == kNone) {
      do {
        id = SecureRandom::Get().Next64() >> 1;
      } while (id == kNone || st.members.count(id));
      absl::Status s = node_->AddMember(id, req->addr(), absl::Seconds(10));
      if (!s.ok()) return ToGrpcStatus(s);
      st = node_->Status();
    }
    resp->set_raft_id(id);
    for (const auto& [mid, m] : st.members) {
      api::RaftMember* pb = resp->add_members();
      pb->set_raft_id(mid);
      pb->set_addr(m.addr);
    }
    return grpc::Status::OK;
  }

  grpc::Status Leave(grpc::ServerContext* ctx, const api::LeaveRequest* req,
                     api::LeaveResponse*) override {
    if (grpc::Status s = node_->Authorize(*ctx); !s.ok()) return s;
    return ToGrpcStatus(node_->RemoveMember(req->node().raft_id(), absl::Seconds(10)));
  }

 private:
  Node* node_;
};

// ---- Construction and loading ----

Node::Node(NodeConfig config)
    : config_(std::move(config)),
      raft_service_(std::make_unique<RaftServiceImpl>(this)),
      membership_service_(std::make_unique<MembershipServiceImpl>(this)),
      inbox_(std::make_unique<Inbox>()) {}

Node::~Node() { Stop(); }

grpc::Service* Node::raft_service() { return raft_service_.get(); }
grpc::Service* Node::membership_service() { return membership_service_.get(); }

absl::StatusOr<std::unique_ptr<Node>> Node::Create(NodeConfig config) {
#ifdef NDEBUG
  // Debian's Abseil is built without NDEBUG, so unless told otherwise every Mutex operation in
  // the process (gRPC's included) also updates a global lock graph for deadlock detection: a
  // few percent of a manager's CPU on the write path. Optimized builds turn it off, as an
  // NDEBUG Abseil does by default; tests (built without NDEBUG) keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  if (config.id == kNone) return absl::InvalidArgumentError("raft node: the ID must not be 0");
  if (config.state_machine == nullptr) {
    return absl::InvalidArgumentError("raft node: a state machine is required");
  }
  std::unique_ptr<Node> node(new Node(std::move(config)));
  absl::Status s = node->Load();
  if (!s.ok()) return s;
  return node;
}

absl::Status Node::Load() {
  const std::string path = config_.state_dir + "/raft";
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    return absl::UnavailableError("creating the raft state directory " + path + ": " +
                                  ec.message());
  }
  KeyRing keys(config_.key);
  for (const DataKey& k : config_.old_keys) keys.AddOld(k);
  auto disk = DiskStorage::Open(path, std::move(keys), SecureRandom::Get());
  if (!disk.ok()) return disk.status();
  disk_ = *std::move(disk);
  auto state = disk_->Load();
  if (!state.ok()) return state.status();

  if (state->hard_state.empty() && state->entries.empty() && state->snapshot.empty() &&
      !config_.bootstrap_members.empty()) {
    // A brand-new cluster: every initial member writes the same first entries.
    ConfState cs;
    std::map<uint64_t, std::string> contexts;
    for (const auto& [id, addr] : config_.bootstrap_members) {
      cs.voters.push_back(id);
      contexts[id] = EncodeMember(Member{id, addr});
    }
    std::vector<Entry> ents = BootstrapEntries(cs, contexts);
    HardState hs{1, kNone, ents.size()};
    absl::Status s = disk_->Save(hs, ents, nullptr, /*sync=*/true);
    if (!s.ok()) return s;
    state->hard_state = hs;
    state->entries = std::move(ents);
    log::Info(kLog, "bootstrapped a new cluster",
              {{"id", config_.id}, {"members", cs.voters.size()}});
  }

  if (!state->snapshot.empty()) {
    RETURN_IF_ERROR(mem_.ApplySnapshot(state->snapshot));
    RETURN_IF_ERROR(RestoreSnapshot(state->snapshot.metadata));
  }
  if (absl::Status s = mem_.Append(state->entries); !s.ok()) return s;
  mem_.SetHardState(state->hard_state);
  NoteMembers(state->entries);
  // A member that just joined knows the others from the join's answer only, until the log
  // reaches it; without their addresses it could not answer the leader.
  for (const auto& [id, addr] : config_.known_members) {
    if (id != config_.id && !members_.count(id)) members_[id] = Member{id, addr};
  }

  Config c;
  c.id = config_.id;
  c.election_tick = config_.election_ticks;
  c.heartbeat_tick = config_.heartbeat_ticks;
  c.storage = &mem_;
  c.applied = state->snapshot.metadata.index;
  c.max_inflight_msgs = 1024;
  // Bounds what waits in the transport's queue per follower (a heartbeat overtakes it, but
  // memory and the follower's backlog grow with it) and what one round of the loop applies.
  c.max_inflight_bytes = 16 << 20;
  c.max_committed_size_per_ready = 4 << 20;
  c.max_uncommitted_entries_size = 256 << 20;
  c.seed = SecureRandom::Get().Next64();
  auto raw = RawNode::Create(c);
  if (!raw.ok()) return raw.status();
  raw_ = *std::move(raw);

  Transport::Options topts;
  topts.self = config_.id;
  topts.credentials = config_.channel_credentials;
  topts.channel_arguments = config_.channel_arguments;
  transport_ = std::make_unique<Transport>(
      topts, Transport::Callbacks{[this](uint64_t id) {
                                    absl::MutexLock lock(&mu_);
                                    inbox_->unreachable.push_back(id);
                                    wake_.Signal();
                                  },
                                  [this](uint64_t id, bool failed) {
                                    absl::MutexLock lock(&mu_);
                                    inbox_->snapshot_status.emplace_back(id, failed);
                                    wake_.Signal();
                                  },
                                  [this](const Snapshot& snap) {
                                    return disk_->OpenSnapshot(snap.metadata.index);
                                  }});
  for (const auto& [id, m] : members_) transport_->SetPeer(id, m.addr);
  {
    absl::MutexLock lock(&mu_);
    next_request_ = SecureRandom::Get().Next64();
  }
  UpdateStatus();
  log::Info(kLog, "loaded the log",
            {{"id", config_.id},
             {"term", state->hard_state.term},
             {"commit", state->hard_state.commit},
             {"snapshot", state->snapshot.metadata.index},
             {"entries", state->entries.size()}});
  return absl::OkStatus();
}

Node::Done Node::OnNotifier(Done done) {
  return [this, done = std::move(done)](absl::StatusOr<uint64_t> v) {
    {
      absl::MutexLock lock(&notify_mu_);
      if (!notifier_stopped_) {
        notify_queue_.push_back([done, v = std::move(v)]() mutable { done(std::move(v)); });
        return;
      }
    }
    done(std::move(v));
  };
}

void Node::RunNotifier() {
  while (true) {
    std::vector<std::function<void()>> batch;
    {
      absl::MutexLock lock(&notify_mu_);
      notify_mu_.Await(absl::Condition(
          +[](Node* n) ABSL_EXCLUSIVE_LOCKS_REQUIRED(n->notify_mu_) {
            return n->notifier_stopping_ || !n->notify_queue_.empty();
          },
          this));
      if (notify_queue_.empty()) return;  // stopping, and everything was delivered
      batch.swap(notify_queue_);
    }
    for (auto& f : batch) f();
  }
}

void Node::Start() {
  notifier_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "raft-notify");
    RunNotifier();
  });
  // The loop, the ticker and the transport's threads run ahead of the rest of the process
  // (see common/thread_priority.h); without the privilege, they run as they are.
  loop_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "raft-loop");
    if (absl::Status s = SetThreadNice(kRaftThreadNice); !s.ok()) {
      log::Info(kLog, "raft threads keep the normal CPU priority", {{"reason", s}});
    }
    Run();
  });
  ticker_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "raft-ticker");
    (void)SetThreadNice(kRaftThreadNice);
    while (true) {
      config_.clock->SleepFor(config_.tick_interval);
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      ++inbox_->ticks;
      wake_.Signal();
    }
  });
}

void Node::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !loop_.joinable()) return;
    stopping_ = true;
    wake_.SignalAll();
  }
  if (loop_.joinable()) loop_.join();
  if (ticker_.joinable()) ticker_.join();
  // A snapshot cut short here is never recorded; the next start deletes its chunks.
  if (snapshotter_.joinable()) snapshotter_.join();
  if (transport_) transport_->Stop();
  FailAll(absl::UnavailableError("raft node is shutting down"));
  {
    absl::MutexLock lock(&notify_mu_);
    notifier_stopping_ = true;
  }
  if (notifier_.joinable()) notifier_.join();
  {
    absl::MutexLock lock(&notify_mu_);
    notifier_stopped_ = true;
  }
  // Anything still in the inbox never reached the loop.
  std::unique_ptr<Inbox> in;
  {
    absl::MutexLock lock(&mu_);
    in = std::exchange(inbox_, std::make_unique<Inbox>());
  }
  const absl::Status down = absl::UnavailableError("raft node is shutting down");
  for (auto& [d, w] : in->proposals) w->Finish(down);
  for (auto& [c, w] : in->reads) w->Finish(down);
  for (auto& [cc, w] : in->conf_changes) w->Finish(down);
  for (auto& [k, w] : in->key_rotations) w->Finish(down);
}

// ---- The public API ----

void Node::ProposeAsync(std::string data, absl::Duration timeout, Done done) {
  auto w = std::make_shared<Waiter>();
  w->done = OnNotifier(std::move(done));
  w->deadline = config_.clock->Now() + timeout;
  if (data.size() > kMaxProposalBytes) {
    // An entry too large for the transport would be appended and then never replicated,
    // wedging the log behind it: refuse it up front.
    w->Finish(absl::InvalidArgumentError(
        "raft: a proposal of " + std::to_string(data.size()) + " bytes is larger than the " +
        std::to_string(kMaxProposalBytes >> 20) + " MiB limit; split it into smaller writes"));
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      inbox_->proposals.emplace_back(EncodeRequest(next_request_++, data), std::move(w));
      wake_.Signal();
      return;
    }
  }
  w->Finish(absl::UnavailableError("raft node is shutting down"));
}

std::future<absl::StatusOr<uint64_t>> Node::Propose(std::string data, absl::Duration timeout) {
  auto [done, future] = FutureDone();
  ProposeAsync(std::move(data), timeout, std::move(done));
  return std::move(future);
}

absl::StatusOr<uint64_t> Node::ProposeAndWait(std::string data, absl::Duration timeout) {
  return Propose(std::move(data), timeout).get();
}

void Node::LinearizableReadAsync(absl::Duration timeout, Done done) {
  auto w = std::make_shared<Waiter>();
  w->done = OnNotifier(std::move(done));
  w->deadline = config_.clock->Now() + timeout;
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      inbox_->reads.emplace_back(std::to_string(next_request_++), std::move(w));
      wake_.Signal();
      return;
    }
  }
  w->Finish(absl::UnavailableError("raft node is shutting down"));
}

absl::Status Node::LinearizableRead(absl::Duration timeout) {
  auto [done, future] = FutureDone();
  LinearizableReadAsync(timeout, std::move(done));
  return future.get().status();
}

absl::Status Node::ProposeConfChange(ConfChange cc, absl::Duration timeout) {
  auto w = std::make_shared<Waiter>();
  w->deadline = config_.clock->Now() + timeout;
  auto [done, f] = FutureDone();
  w->done = OnNotifier(std::move(done));
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("raft node is shutting down");
    inbox_->conf_changes.emplace_back(std::move(cc), std::move(w));
    wake_.Signal();
  }
  return f.get().status();
}

absl::Status Node::AddMember(uint64_t raft_id, const std::string& addr, absl::Duration timeout) {
  return ProposeConfChange(
      ConfChange{ConfChangeType::kAddLearnerNode, raft_id, EncodeMember(Member{raft_id, addr})},
      timeout);
}

absl::Status Node::RemoveMember(uint64_t raft_id, absl::Duration timeout) {
  return ProposeConfChange(ConfChange{ConfChangeType::kRemoveNode, raft_id, ""}, timeout);
}

absl::Status Node::TransferLeadership(uint64_t to, absl::Duration timeout) {
  {
    absl::MutexLock lock(&mu_);
    inbox_->transfers.push_back(to);
    wake_.Signal();
  }
  const absl::Time deadline = config_.clock->Now() + timeout;
  while (config_.clock->Now() < deadline) {
    if (Status().leader == to) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError("leadership did not move to " + std::to_string(to) +
                                     " in time");
}

absl::StatusOr<uint32_t> Node::RotateDataKey(std::optional<DataKey> next, absl::Duration timeout) {
  auto [done, future] = FutureDone();
  auto w = std::make_shared<Waiter>();
  w->done = std::move(done);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("raft node is shutting down");
    inbox_->key_rotations.emplace_back(std::move(next), std::move(w));
    wake_.Signal();
  }
  if (future.wait_for(absl::ToChronoNanoseconds(timeout)) != std::future_status::ready) {
    return absl::DeadlineExceededError("the raft log did not finish rotating its key in time");
  }
  absl::StatusOr<uint64_t> id = future.get();
  if (!id.ok()) return id.status();
  return static_cast<uint32_t>(*id);
}

NodeStatus Node::Status() const {
  absl::MutexLock lock(&status_mu_);
  return status_;
}

void Node::Deliver(std::vector<Message> messages) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  std::move(messages.begin(), messages.end(), std::back_inserter(inbox_->messages));
  wake_.Signal();
}

grpc::Status Node::Authorize(const grpc::ServerContext& ctx) const {
  if (!config_.require_manager_peers) return grpc::Status::OK;
  return ToGrpcStatus(tls::RequireRole(ctx, {tls::kManagerRole}));
}

// ---- The loop ----

void Node::Run() {
  while (true) {
    std::unique_ptr<Inbox> in;
    {
      // With a Ready pending (the last one was capped), take what came meanwhile and go on.
      const bool ready = raw_->HasReady();
      absl::MutexLock lock(&mu_);
      while (!ready && inbox_->empty() && !stopping_) wake_.Wait(&mu_);
      if (stopping_) return;
      in = std::exchange(inbox_, std::make_unique<Inbox>());
    }
    // Messages first, then time: when this loop fell behind (a large Ready, a starved CPU),
    // the leader's heartbeats are already here and must count before the timers move on. At
    // most kMaxTicksPerRound ticks count however many piled up: a stall of this process is no
    // news about the other members, and catching up on it at once would start an election
    // (or make a leader step down) for nothing.
    for (Message& m : in->messages) (void)raw_->Step(std::move(m));
    for (int i = 0; i < std::min(in->ticks, kMaxTicksPerRound); ++i) Tick();
    for (uint64_t id : in->unreachable) raw_->ReportUnreachable(id);
    for (auto [id, failed] : in->snapshot_status) raw_->ReportSnapshot(id, failed);
    for (uint64_t to : in->transfers) raw_->TransferLeadership(to);
    // (The loop may have finished it already, and started another.)
    if (snapshotter_.joinable() && in->snapshot_written == snapshot_at_) (void)FinishSnapshot();
    for (auto& [next, w] : in->key_rotations) w->Finish(RotateDataKeyInLoop(next));

    // A follower hands proposals and membership changes to the leader through the core (it
    // forwards them as messages), so any manager can write; its waiters complete when the
    // entry is applied here. Without a known leader there is nobody to hand them to.
    const bool has_leader = raw_->GetStatus().soft_state.lead != kNone;
    if (!in->proposals.empty()) {
      if (!has_leader) {
        const absl::Status s = absl::UnavailableError("no raft leader now; retry shortly");
        for (auto& [d, w] : in->proposals) w->Finish(s);
      } else {
        // Everything that arrived while the last Ready was being written goes in one batch.
        std::vector<std::string> batch;
        batch.reserve(in->proposals.size());
        for (auto& [d, w] : in->proposals) {
          uint64_t id;
          std::string_view unused;
          DecodeRequest(d, &id, &unused);
          proposals_[id] = std::move(w);
          batch.push_back(std::move(d));
        }
        absl::Status s = raw_->ProposeBatch(std::move(batch));
        if (!s.ok()) {
          for (auto& [d, w] : in->proposals) {
            uint64_t id;
            std::string_view unused;
            DecodeRequest(d, &id, &unused);
            auto it = proposals_.find(id);
            if (it != proposals_.end()) {
              it->second->Finish(s);
              proposals_.erase(it);
            }
          }
        }
      }
    }
    for (auto& [ctx, w] : in->reads) {
      reads_[ctx] = w;
      raw_->ReadIndex(ctx);
    }
    for (auto& [cc, w] : in->conf_changes) {
      if (!has_leader) {
        w->Finish(
            absl::UnavailableError("no raft leader now; retry the membership change shortly"));
        continue;
      }
      absl::Status s = raw_->ProposeConfChange(cc);
      if (!s.ok()) {
        w->Finish(s);
        continue;
      }
      conf_changes_[cc.node_id] = w;
    }
    // One Ready per round (its committed entries are capped by size), so a long stretch of
    // work never keeps ticks and messages waiting.
    if (raw_->HasReady()) HandleReady();
  }
}

void Node::Tick() {
  raw_->Tick();
  const absl::Time now = config_.clock->Now();
  auto expire = [&](auto& waiters) {
    for (auto it = waiters.begin(); it != waiters.end();) {
      if (it->second->deadline <= now) {
        it->second->Finish(absl::DeadlineExceededError(
            "raft: timed out waiting for the cluster (is a quorum of managers reachable?)"));
        it = waiters.erase(it);
      } else {
        ++it;
      }
    }
  };
  expire(proposals_);
  expire(reads_);
  expire(conf_changes_);
  if (!leader_ || !config_.auto_promote_learners) return;
  // Promote one caught-up learner at a time.
  const raft::Status s = raw_->GetStatus();
  for (const auto& [id, pr] : s.progress) {
    if (pr.learner && pr.match >= s.hard_state.commit && pr.recent_active) {
      if (raw_->ProposeConfChange(ConfChange{ConfChangeType::kAddNode, id, ""}).ok()) {
        log::Info(kLog, "promoting a caught-up learner", {{"member", id}});
      }
      break;
    }
  }
}

void Node::HandleReady() {
  // Wall time, not the injected clock: this measures the work, for the log only.
  const absl::Time start = absl::Now();
  absl::Duration persist_time;
  Ready rd = raw_->GetReady();
  const size_t persisted = rd.entries.size();
  const size_t committed = rd.committed_entries.size();
  for (Message& m : rd.messages) transport_->Send(std::move(m));

  // Committed entries that an earlier Ready already made durable here (on the leader, every
  // committed entry: it counts itself only once persisted) are applied before this Ready's
  // write, so their proposers do not also wait for the next fsync.
  const Snapshot* snap = rd.snapshot.empty() ? nullptr : &rd.snapshot;
  // The leader's snapshot replaces the state: ours must be done reading it.
  if (snap != nullptr && snapshotter_.joinable()) (void)FinishSnapshot();
  size_t applied_early = 0;
  if (snap == nullptr) {
    const uint64_t durable = mem_.LastIndex();
    while (applied_early < rd.committed_entries.size() &&
           rd.committed_entries[applied_early].index <= durable) {
      Commit(rd.committed_entries[applied_early++]);
    }
  }

  // Nothing is acknowledged before it is durable; a node that cannot write stops here
  // rather than run on with a log that differs from what it told others.
  const absl::Time persist_start = absl::Now();
  if (absl::Status s = disk_->Save(rd.hard_state, rd.entries, snap, rd.must_sync); !s.ok()) {
    Die("cannot persist the raft log", s);
  }
  persist_time = absl::Now() - persist_start;
  if (snap != nullptr) {
    if (absl::Status s = mem_.ApplySnapshot(*snap); !s.ok()) Die("applying a snapshot", s);
    if (absl::Status s = RestoreSnapshot(snap->metadata); !s.ok()) {
      Die("restoring the snapshot from the leader", s);
    }
    log::Info(kLog, "installed a snapshot from the leader", {{"index", snap->metadata.index}});
  }
  NoteMembers(rd.entries);
  if (absl::Status s = mem_.Append(std::move(rd.entries)); !s.ok()) Die("appending", s);
  if (!rd.hard_state.empty()) mem_.SetHardState(rd.hard_state);
  for (Message& m : rd.messages_after_persist) transport_->Send(std::move(m));

  if (rd.soft_state) {
    const bool leader = rd.soft_state->state == StateType::kLeader;
    if (rd.soft_state->state != state_) {
      // Elections are rare and short; one that does not end is worth seeing in the log.
      state_ = rd.soft_state->state;
      if (state_ == StateType::kCandidate || state_ == StateType::kPreCandidate) {
        log::Info(kLog, "campaigning",
                  {{"id", config_.id},
                   {"term", raw_->GetStatus().hard_state.term},
                   {"as", StateTypeName(state_)}});
      }
    }
    if (rd.soft_state->lead != lead_) {
      // Requests this node proposed, or forwarded to the old leader, may be lost with it.
      lead_ = rd.soft_state->lead;
      FailAll(absl::UnavailableError(
          "the raft leader changed before the request committed; it may or may not take "
          "effect"));
    }
    if (leader != leader_) {
      leader_ = leader;
      const uint64_t term = raw_->GetStatus().hard_state.term;
      log::Info(kLog, leader ? "became leader" : "lost leadership",
                {{"id", config_.id}, {"term", term}});
      if (config_.on_leadership_change) config_.on_leadership_change(leader, term);
    }
  }
  for (size_t i = applied_early; i < rd.committed_entries.size(); ++i) {
    Commit(rd.committed_entries[i]);
  }
  for (const ReadState& rs : rd.read_states) {
    auto it = reads_.find(rs.context);
    if (it != reads_.end()) it->second->read_index = rs.index;
  }
  raw_->Advance();
  FinishReads();
  if (!snapshotter_.joinable() &&
      applied_ >= std::max(snapshot_index_ + config_.snapshot_interval, next_snapshot_)) {
    StartSnapshot();
  }
  UpdateStatus();
  // Heartbeats and ticks wait while this runs: a round near the election timeout is what
  // makes a healthy cluster change leaders.
  const absl::Duration took = absl::Now() - start;
  if (took > config_.tick_interval * config_.election_ticks / 4) {
    log::Warn(kLog, "a raft round took long; heartbeats waited",
              {{"took", absl::FormatDuration(took)},
               {"persist", absl::FormatDuration(persist_time)},
               {"entries_persisted", persisted},
               {"entries_applied", committed}});
  }
}

void Node::Commit(const Entry& e) {
  if (snapshotter_.joinable()) {
    unapplied_.push_back(e);
  } else {
    ApplyEntry(e);
  }
}

void Node::FinishReads() {
  for (auto it = reads_.begin(); it != reads_.end();) {
    if (it->second->read_index != 0 && it->second->read_index <= applied_) {
      it->second->Finish(it->second->read_index);
      it = reads_.erase(it);
    } else {
      ++it;
    }
  }
}

void Node::ApplyEntry(const Entry& e) {
  applied_ = e.index;
  if (e.type == EntryType::kConfChange) {
    ConfChange cc;
    if (!ConfChange::Decode(e.data.view(), &cc)) Fatal("malformed conf change in the log");
    applied_conf_ = ApplyConfChange(applied_conf_, cc);
    if (cc.type == ConfChangeType::kRemoveNode) {
      members_.erase(cc.node_id);
      transport_->RemovePeer(cc.node_id);
      if (cc.node_id == config_.id) {
        removed_ = true;
        log::Warn(kLog, "this member was removed from the cluster", {{"id", config_.id}});
      }
    }
    auto it = conf_changes_.find(cc.node_id);
    if (it != conf_changes_.end()) {
      it->second->Finish(e.index);
      conf_changes_.erase(it);
    }
    return;
  }
  if (e.data.empty()) return;  // a leader's no-op
  uint64_t id;
  std::string_view data;
  if (!DecodeRequest(e.data.view(), &id, &data)) Fatal("malformed proposal in the log");
  config_.state_machine->Apply(e.index, data);
  auto it = proposals_.find(id);
  if (it != proposals_.end()) {
    it->second->Finish(e.index);
    proposals_.erase(it);
  }
}

void Node::NoteMembers(const std::vector<Entry>& entries) {
  // Addresses are needed as soon as a member is in the configuration (at append), not only
  // once the change commits: the leader replicates to a new learner right away.
  for (const Entry& e : entries) {
    if (e.type != EntryType::kConfChange) continue;
    ConfChange cc;
    if (!ConfChange::Decode(e.data.view(), &cc) || cc.context.empty()) continue;
    api::RaftMember pb;
    if (!pb.ParseFromString(cc.context)) continue;
    members_[cc.node_id] = Member{cc.node_id, pb.addr()};
    if (transport_) transport_->SetPeer(cc.node_id, pb.addr());
  }
}

absl::Status Node::RestoreSnapshot(const SnapshotMetadata& metadata) {
  const std::string where = "the snapshot at index " + std::to_string(metadata.index);
  ASSIGN_OR_RETURN(StoredSnapshot stored, disk_->OpenSnapshot(metadata.index));
  api::RaftSnapshotData header;
  SnapshotReader* state = stored.reader.get();
  std::optional<StringSnapshotReader> whole;  // format 0: the state is inside the header
  if (stored.format == kSnapshotFormatStreamed) {
    uint64_t size = 0;
    ASSIGN_OR_RETURN(const bool present, ReadVarint(*stored.reader, &size));
    if (!present || size > (64u << 20)) return absl::DataLossError(where + " has no members");
    std::string bytes(size, '\0');
    RETURN_IF_ERROR(ReadExactly(*stored.reader, bytes.data(), size));
    if (!header.ParseFromString(bytes)) {
      return absl::DataLossError(where + ": its members do not parse");
    }
  } else {
    ASSIGN_OR_RETURN(const std::string bytes, ReadAll(*stored.reader));
    if (!header.ParseFromString(bytes)) return absl::DataLossError(where + " does not parse");
    state = &whole.emplace(header.state());
  }
  if (absl::Status s = config_.state_machine->Restore(*state); !s.ok()) {
    return absl::Status(
        s.code(), "restoring the state machine from " + where + ": " + std::string(s.message()));
  }
  members_.clear();
  for (const api::RaftMember& m : header.membership().members()) {
    members_[m.raft_id()] = Member{m.raft_id(), m.addr()};
    if (transport_) transport_->SetPeer(m.raft_id(), m.addr());
  }
  applied_conf_ = Sorted(metadata.conf_state);
  applied_ = metadata.index;
  snapshot_index_ = metadata.index;
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Node::RotateDataKeyInLoop(const std::optional<DataKey>& next) {
  // Asking again for the current key (a caller retrying after a timeout) only retires.
  if (next && next->id != disk_->keys().current().id) {
    RETURN_IF_ERROR(disk_->RotateKey(*next));
    log::Info(kLog, "rotating the raft data key", {{"key_id", next->id}});
  }
  // A snapshot sealed with the new key, and the log compacted below it, leave only the entries
  // kept for slow followers to re-seal.
  RETURN_IF_ERROR(SnapshotNow());
  RETURN_IF_ERROR(disk_->RetireOldKeys());
  log::Info(kLog, "the raft log no longer needs older data keys",
            {{"key_id", disk_->keys().current().id}});
  UpdateStatus();
  return disk_->keys().current().id;
}

void Node::StartSnapshot() {
  // The members first (a varint-prefixed RaftSnapshotData), then the state machine's bytes,
  // each megabyte sealed and stored as it comes.
  api::RaftSnapshotData header;
  for (const auto& [id, m] : members_) {
    api::RaftMember* pb = header.mutable_membership()->add_members();
    pb->set_raft_id(id);
    pb->set_addr(m.addr);
  }
  std::string framed;
  AppendVarint(framed, header.ByteSizeLong());
  header.AppendToString(&framed);
  snapshot_at_ = applied_;
  snapshot_conf_ = applied_conf_;
  snapshot_started_ = absl::Now();
  snapshotter_ = std::thread([this, index = applied_, framed = std::move(framed),
                              out = disk_->NewSnapshotWriter(applied_, /*received=*/false)]() {
    absl::Status written = out->Write(framed);
    if (written.ok()) written = config_.state_machine->WriteSnapshot(*out);
    snapshot_written_ = written.ok() ? out->Finish() : written;
    absl::MutexLock lock(&mu_);
    inbox_->snapshot_written = index;
    wake_.Signal();
  });
}

absl::Status Node::FinishSnapshot() {
  snapshotter_.join();
  absl::Status stored = snapshot_written_.status();
  if (stored.ok()) {
    auto snap = mem_.CreateSnapshot(snapshot_at_, snapshot_conf_, Payload());
    if (!snap.ok()) Die("creating a snapshot", snap.status());
    stored = disk_->SaveSnapshot(snap->metadata, *snapshot_written_);
  }
  if (stored.ok()) {
    snapshot_index_ = snapshot_at_;
    if (snapshot_at_ > config_.log_entries_for_slow_followers) {
      const uint64_t compact = snapshot_at_ - config_.log_entries_for_slow_followers;
      if (compact > mem_.FirstIndex()) {
        if (absl::Status s = mem_.Compact(compact); !s.ok()) Die("compacting the log", s);
        if (absl::Status s = disk_->Compact(compact); !s.ok()) Die("compacting the log", s);
      }
    }
    log::Info(kLog, "took a snapshot",
              {{"index", snapshot_at_},
               {"bytes", snapshot_written_->size},
               {"took", absl::FormatDuration(absl::Now() - snapshot_started_)},
               {"entries_waiting", unapplied_.size()}});
  } else {
    // The log is whole without it (a full disk, say): it only grows until a snapshot works.
    next_snapshot_ = applied_ + std::max<uint64_t>(1, config_.snapshot_interval / 10);
    log::Error(kLog, "could not take a snapshot; the log keeps growing until one succeeds",
               {{"index", snapshot_at_},
                {"error", std::string(stored.message())},
                {"retry_at", next_snapshot_}});
  }
  for (; !unapplied_.empty(); unapplied_.pop_front()) ApplyEntry(unapplied_.front());
  FinishReads();
  UpdateStatus();
  return stored;
}

absl::Status Node::SnapshotNow() {
  if (snapshotter_.joinable()) (void)FinishSnapshot();
  if (applied_ == snapshot_index_) return absl::OkStatus();
  StartSnapshot();
  return FinishSnapshot();
}

void Node::FailAll(const absl::Status& status) {
  for (auto& [id, w] : proposals_) w->Finish(status);
  proposals_.clear();
  for (auto& [ctx, w] : reads_) w->Finish(status);
  reads_.clear();
  for (auto& [id, w] : conf_changes_) w->Finish(status);
  conf_changes_.clear();
}

void Node::UpdateStatus() {
  const raft::Status s = raw_->GetStatus();
  absl::MutexLock lock(&status_mu_);
  status_.id = config_.id;
  status_.term = s.hard_state.term;
  status_.leader = s.soft_state.lead;
  status_.state = s.soft_state.state;
  status_.commit = s.hard_state.commit;
  status_.applied = applied_;
  status_.conf_state = s.conf_state;
  status_.members = members_;
  status_.snapshot_index = snapshot_index_;
  status_.removed = removed_;
  status_.data_key_id = disk_->keys().current().id;
  status_.old_data_keys = !disk_->keys().old().empty();
  status_.active.clear();
  for (const auto& [id, pr] : s.progress) {
    if (id == config_.id || pr.recent_active) status_.active.insert(id);
  }
}

}  // namespace swarm::raft

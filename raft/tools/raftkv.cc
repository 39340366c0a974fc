// raftkv: one member of a replicated key-value log, for testing and benchmarking the Raft node
// in real processes. Usage:
//   raftkv --id 1 --listen 127.0.0.1:7001 --state-dir /tmp/kv1
//          --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003
//   raftkv --listen 127.0.0.1:7004 --state-dir /tmp/kv4 --join 127.0.0.1:7001
// The data encryption key is kept in STATE_DIR/dek (this tool's stand-in for the key manager).
#include <CLI/CLI.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_split.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/random.h"
#include "common/status_macros.h"
#include "proto/raft_service.grpc.pb.h"
#include "raft/node.h"
#include "raft/tools/raftkv.grpc.pb.h"

namespace swarm::raft {
namespace {

namespace fs = std::filesystem;

// The replicated state: the latest value of each key and, with history (the default; the
// cluster tests compare it across members), every write in order. Without history a snapshot
// holds one write per key, so it stays as large as the key space rather than the log.
class KvStateMachine final : public StateMachine {
 public:
  explicit KvStateMachine(bool history) : history_(history) {}
  bool history() const { return history_; }

  void Apply(uint64_t index, std::string_view data) override {
    raftkv::Op op;
    if (!op.ParseFromArray(data.data(), static_cast<int>(data.size()))) {
      Fatal("raftkv: an applied entry does not parse");
    }
    op.set_index(index);
    std::lock_guard<std::mutex> lock(mu_);
    values_[op.key()] = op.value();
    if (history_) ops_.push_back(std::move(op));
  }
  // As KVSnapshot's wire format (field 1, ops), one op at a time.
  absl::Status WriteSnapshot(SnapshotWriter& out) override {
    std::lock_guard<std::mutex> lock(mu_);
    MessageFieldWriter fields(out);
    if (history_) {
      for (const raftkv::Op& op : ops_) RETURN_IF_ERROR(fields.Write(1, op));
      return fields.Flush();
    }
    raftkv::Op op;
    for (const auto& [key, value] : values_) {
      op.set_key(key);
      op.set_value(value);
      RETURN_IF_ERROR(fields.Write(1, op));
    }
    return fields.Flush();
  }
  absl::Status Restore(SnapshotReader& in) override {
    absl::flat_hash_map<std::string, std::string> values;
    std::vector<raftkv::Op> ops;
    MessageFieldReader fields(in);
    int field = 0;
    std::string bytes;
    raftkv::Op op;
    for (;;) {
      ASSIGN_OR_RETURN(const bool more, fields.Next(&field, &bytes));
      if (!more) break;
      if (field != 1 || !op.ParseFromString(bytes)) {
        return absl::DataLossError("raftkv snapshot does not parse");
      }
      values[op.key()] = op.value();
      if (history_) ops.push_back(op);
    }
    std::lock_guard<std::mutex> lock(mu_);
    values_ = std::move(values);
    ops_ = std::move(ops);
    return absl::OkStatus();
  }
  std::optional<std::string> Get(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = values_.find(key);
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }
  std::vector<raftkv::Op> Ops() {
    std::lock_guard<std::mutex> lock(mu_);
    return ops_;
  }

 private:
  const bool history_;
  std::mutex mu_;
  std::vector<raftkv::Op> ops_;
  // Hashed, not sorted: nothing lists keys in order, and with a benchmark's hundreds of
  // thousands of keys a tree's string compares were a tenth of the apply loop.
  absl::flat_hash_map<std::string, std::string> values_;
};

// One PutStream: proposes each write as it is read and sends results in batches, one write
// on the stream at a time (whatever completed meanwhile goes in the next). Ends once the client
// stopped sending and every write it sent has its answer.
class PutStreamReactor final
    : public grpc::ServerBidiReactor<raftkv::PutBatch, raftkv::PutResults> {
 public:
  explicit PutStreamReactor(Node* node) : node_(node) { StartRead(&in_); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Next next;
      {
        absl::MutexLock lock(&mu_);
        reads_done_ = true;
        next = DecideLocked();
      }
      return Do(next);
    }
    {
      absl::MutexLock lock(&mu_);
      outstanding_ += in_.puts_size();
    }
    for (const raftkv::StreamedPut& put : in_.puts()) {
      raftkv::Op op;
      op.set_key(put.key());
      op.set_value(put.value());
      node_->ProposeAsync(op.SerializeAsString(), absl::Seconds(5),
                          [this, id = put.id()](absl::StatusOr<uint64_t> index) {
                            Next next;
                            {
                              absl::MutexLock lock(&mu_);
                              --outstanding_;
                              raftkv::PutResult* r = pending_.add_results();
                              r->set_id(id);
                              if (index.ok()) {
                                r->set_index(*index);
                              } else {
                                r->set_error(index.status().ToString());
                              }
                              next = DecideLocked();
                            }
                            Do(next);
                          });
    }
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    Next next;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) broken_ = true;  // the client is gone; its answers have nowhere to go
      next = DecideLocked();
    }
    Do(next);
  }

  void OnDone() override { delete this; }

 private:
  enum class Next { kNothing, kWrite, kFinish };
  Next DecideLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (broken_) pending_.Clear();
    if (writing_ || finished_) return Next::kNothing;
    if (pending_.results_size() > 0) {
      out_.Swap(&pending_);
      pending_.Clear();
      writing_ = true;
      return Next::kWrite;
    }
    if (reads_done_ && outstanding_ == 0) {
      finished_ = true;
      return Next::kFinish;
    }
    return Next::kNothing;
  }
  // Without the lock: gRPC may run a reaction on this thread. Nothing touches `this` after
  // Finish (OnDone deletes it).
  void Do(Next next) {
    if (next == Next::kWrite) StartWrite(&out_);
    if (next == Next::kFinish) Finish(grpc::Status::OK);
  }

  Node* node_;
  raftkv::PutBatch in_;     // the read in flight
  raftkv::PutResults out_;  // the write in flight
  absl::Mutex mu_;
  raftkv::PutResults pending_ ABSL_GUARDED_BY(mu_);
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

// Put, PutStream, Get and Status use gRPC's callback API: a write waits for its proposal
// without holding a server thread, so many clients can have writes in flight (and be batched)
// at once.
using KvServiceBase = raftkv::RaftKV::WithCallbackMethod_Put<
    raftkv::RaftKV::WithCallbackMethod_PutStream<raftkv::RaftKV::WithCallbackMethod_Get<
        raftkv::RaftKV::WithCallbackMethod_Status<raftkv::RaftKV::Service>>>>;

class KvService final : public KvServiceBase {
 public:
  KvService(Node* node, KvStateMachine* sm) : node_(node), sm_(sm) {}

  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx, const raftkv::PutRequest* req,
                                raftkv::PutResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    raftkv::Op op;
    op.set_key(req->key());
    op.set_value(req->value());
    node_->ProposeAsync(op.SerializeAsString(), absl::Seconds(5),
                        [reactor, resp](absl::StatusOr<uint64_t> index) {
                          if (index.ok()) resp->set_index(*index);
                          reactor->Finish(ToGrpcStatus(index.status()));
                        });
    return reactor;
  }

  grpc::ServerBidiReactor<raftkv::PutBatch, raftkv::PutResults>* PutStream(
      grpc::CallbackServerContext*) override {
    return new PutStreamReactor(node_);
  }

  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx, const raftkv::GetRequest* req,
                                raftkv::GetResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    node_->LinearizableReadAsync(absl::Seconds(5),
                                 [this, reactor, req, resp](absl::StatusOr<uint64_t> read) {
                                   if (read.ok()) {
                                     if (auto v = sm_->Get(req->key())) {
                                       resp->set_found(true);
                                       resp->set_value(*v);
                                     }
                                   }
                                   reactor->Finish(ToGrpcStatus(read.status()));
                                 });
    return reactor;
  }

  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* ctx, const raftkv::StatusRequest*,
                                   raftkv::StatusResponse* resp) override {
    NodeStatus s = node_->Status();
    resp->set_id(s.id);
    resp->set_term(s.term);
    resp->set_leader(s.leader);
    resp->set_state(StateTypeName(s.state));
    resp->set_commit(s.commit);
    resp->set_applied(s.applied);
    resp->set_snapshot_index(s.snapshot_index);
    resp->mutable_voters()->Assign(s.conf_state.voters.begin(), s.conf_state.voters.end());
    resp->mutable_learners()->Assign(s.conf_state.learners.begin(), s.conf_state.learners.end());
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::Status Dump(grpc::ServerContext*, const raftkv::DumpRequest*,
                    grpc::ServerWriter<raftkv::DumpResponse>* writer) override {
    if (!sm_->history()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "this member keeps no history (started with --history=false)");
    }
    std::vector<raftkv::Op> ops = sm_->Ops();
    for (size_t i = 0; i < ops.size(); i += 10000) {
      raftkv::DumpResponse resp;
      for (size_t j = i; j < std::min(ops.size(), i + 10000); ++j) *resp.add_ops() = ops[j];
      if (!writer->Write(resp)) break;
    }
    return grpc::Status::OK;
  }

 private:
  Node* node_;
  KvStateMachine* sm_;
};

absl::StatusOr<std::string> ReadOrCreateFile(const fs::path& path, size_t random_bytes) {
  if (fs::exists(path)) {
    std::ifstream in(path, std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) return absl::UnavailableError("reading " + path.string());
    return data;
  }
  std::string data(random_bytes, '\0');
  SecureRandom::Get().Fill(data.data(), data.size());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  out.close();
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
  if (!out) return absl::UnavailableError("writing " + path.string());
  return data;
}

std::atomic<bool> g_stop{false};

int Main(int argc, char** argv) {
  CLI::App app{"raftkv: one member of a replicated key-value log"};
  uint64_t id = 0;
  std::string listen, advertise, state_dir, peers, join;
  uint64_t snapshot_interval = 10000;
  int tick_ms = 100;
  app.add_option("--id", id, "Raft ID (required with --peers)");
  app.add_option("--listen", listen, "address to serve on (host:port)")->required();
  app.add_option("--advertise", advertise, "address the others dial (default: --listen)");
  app.add_option("--state-dir", state_dir, "where the log lives")->required();
  app.add_option("--peers", peers, "initial members: ID=ADDR,ID=ADDR,... (a new cluster)");
  app.add_option("--join", join, "address of a member of an existing cluster");
  app.add_option("--snapshot-interval", snapshot_interval, "entries between snapshots");
  bool history = true;
  app.add_option("--history", history,
                 "keep every write in order for Dump (false: only the latest value of each key)");
  app.add_option("--tick-ms", tick_ms, "Raft tick interval in milliseconds");
  CLI11_PARSE(app, argc, argv);
  if (advertise.empty()) advertise = listen;

  std::error_code ec;
  fs::create_directories(state_dir, ec);
  if (ec) {
    std::cerr << "raftkv: creating " << state_dir << ": " << ec.message() << "\n";
    return 1;
  }
  auto dek = ReadOrCreateFile(fs::path(state_dir) / "dek", kAeadKeySize);
  if (!dek.ok() || dek->size() != kAeadKeySize) {
    std::cerr << "raftkv: the key file " << state_dir << "/dek is unreadable or damaged\n";
    return 1;
  }

  NodeConfig config;
  config.advertise_addr = advertise;
  config.state_dir = state_dir;
  config.key = DataKey{1, *dek};
  config.snapshot_interval = snapshot_interval;
  config.tick_interval = absl::Milliseconds(tick_ms);
  config.channel_credentials = grpc::InsecureChannelCredentials();

  const fs::path id_file = fs::path(state_dir) / "id";
  if (fs::exists(id_file)) {
    std::ifstream in(id_file);
    in >> id;
  } else if (!peers.empty()) {
    for (absl::string_view p : absl::StrSplit(peers, ',')) {
      std::vector<std::string> kv = absl::StrSplit(p, absl::MaxSplits('=', 1));
      if (kv.size() != 2) {
        std::cerr << "raftkv: --peers wants ID=ADDR pairs, got \"" << std::string(p) << "\"\n";
        return 2;
      }
      config.bootstrap_members[std::stoull(kv[0])] = kv[1];
    }
    if (!config.bootstrap_members.count(id)) {
      std::cerr << "raftkv: --peers must include this member's --id\n";
      return 2;
    }
  } else if (!join.empty()) {
    auto stub =
        api::RaftMembership::NewStub(grpc::CreateChannel(join, grpc::InsecureChannelCredentials()));
    api::JoinRequest req;
    req.set_addr(advertise);
    api::JoinResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
    grpc::Status st = stub->Join(&ctx, req, &resp);
    if (!st.ok()) {
      std::cerr << "raftkv: joining through " << join << ": " << st.error_message() << "\n";
      return 1;
    }
    id = resp.raft_id();
    for (const auto& m : resp.members()) config.known_members[m.raft_id()] = m.addr();
  } else {
    std::cerr << "raftkv: a new member needs --peers (new cluster) or --join ADDR\n";
    return 2;
  }
  if (id == 0) {
    std::cerr << "raftkv: --id is required\n";
    return 2;
  }
  config.id = id;
  {
    std::ofstream out(id_file);
    out << id << "\n";
  }

  KvStateMachine sm(history);
  config.state_machine = &sm;
  auto node = Node::Create(std::move(config));
  if (!node.ok()) {
    std::cerr << "raftkv: refusing to start: " << node.status().message() << "\n";
    return 1;
  }
  KvService kv(node->get(), &sm);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials());
  builder.RegisterService((*node)->raft_service());
  builder.RegisterService((*node)->membership_service());
  builder.RegisterService(&kv);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    std::cerr << "raftkv: cannot listen on " << listen << "\n";
    return 1;
  }
  (*node)->Start();
  log::Info("raftkv", "serving", {{"id", id}, {"listen", listen}});

  std::signal(SIGTERM, [](int) { g_stop = true; });
  std::signal(SIGINT, [](int) { g_stop = true; });
  while (!g_stop) absl::SleepFor(absl::Milliseconds(50));
  log::Info("raftkv", "shutting down", {{"id", id}});
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  (*node)->Stop();
  return 0;
}

}  // namespace
}  // namespace swarm::raft

int main(int argc, char** argv) { return swarm::raft::Main(argc, argv); }

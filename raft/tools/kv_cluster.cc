#include "raft/tools/kv_cluster.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/ports.h"
#include "common/subprocess.h"

namespace swarm::raft {
namespace {

namespace fs = std::filesystem;

void SetDeadline(grpc::ClientContext* ctx, absl::Duration timeout) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::microseconds(absl::ToInt64Microseconds(timeout)));
}

}  // namespace

KvCluster::KvCluster(Options options) : options_(std::move(options)) {
  if (options_.binary.empty()) options_.binary = "raft/tools/raftkv";
  if (options_.dir.empty()) {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string tmpl = std::string(tmp ? tmp : "/tmp") + "/kvcluster-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    options_.dir = tmpl;
  }
  fs::create_directories(options_.dir);
  for (int i = 1; i <= options_.size; ++i)
    addrs_[i] = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
}

KvCluster::~KvCluster() {
  for (auto& [i, pid] : pids_) {
    KillProcess(pid);
  }
}

std::string KvCluster::state_dir(int i) const { return absl::StrCat(options_.dir, "/node-", i); }

void KvCluster::StartAll() {
  for (int i = 1; i <= options_.size; ++i) Start(i);
}

void KvCluster::Start(int i) {
  std::string peers;
  for (const auto& [id, addr] : addrs_) {
    absl::StrAppend(&peers, peers.empty() ? "" : ",", id, "=", addr);
  }
  std::vector<std::string> args = {
      options_.binary,
      "--id=" + std::to_string(i),
      "--listen=" + addrs_.at(i),
      "--state-dir=" + state_dir(i),
      "--peers=" + peers,
      "--snapshot-interval=" + std::to_string(options_.snapshot_interval),
      "--tick-ms=" + std::to_string(options_.tick_ms),
      std::string("--history=") + (options_.history ? "true" : "false")};
  pids_[i] = Spawn(std::move(args), absl::StrCat(options_.dir, "/node-", i, ".log"));
}

void KvCluster::Kill(int i) {
  auto it = pids_.find(i);
  if (it == pids_.end()) return;
  KillProcess(it->second);
  pids_.erase(it);
}

void KvCluster::Terminate(int i) {
  auto it = pids_.find(i);
  if (it == pids_.end()) return;
  TerminateProcess(it->second, absl::InfiniteDuration());
  pids_.erase(it);
}

int KvCluster::WaitExit(int i, absl::Duration timeout) {
  auto it = pids_.find(i);
  if (it == pids_.end()) return -1;
  const int code = WaitForExit(it->second, timeout);
  if (code != -1) pids_.erase(it);
  return code;
}

std::string KvCluster::Output(int i) const {
  std::ifstream in(absl::StrCat(options_.dir, "/node-", i, ".log"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

raftkv::RaftKV::Stub* KvCluster::Stub(int i) {
  auto& stub = stubs_[i];
  if (!stub) {
    stub = raftkv::RaftKV::NewStub(
        grpc::CreateChannel(addrs_.at(i), grpc::InsecureChannelCredentials()));
  }
  return stub.get();
}

absl::StatusOr<raftkv::StatusResponse> KvCluster::Status(int i, absl::Duration timeout) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, timeout);
  raftkv::StatusResponse resp;
  grpc::Status s = Stub(i)->Status(&ctx, raftkv::StatusRequest(), &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp;
}

absl::StatusOr<int> KvCluster::WaitForLeader(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::map<uint64_t, int> votes;
    for (const auto& [i, pid] : pids_) {
      auto st = Status(i, absl::Milliseconds(500));
      if (st.ok() && st->leader() != 0) ++votes[st->leader()];
    }
    for (auto [leader, n] : votes) {
      const int li = static_cast<int>(leader);
      if (n > options_.size / 2 && pids_.count(li)) {
        auto st = Status(li, absl::Milliseconds(500));
        if (st.ok() && st->state() == "leader") return li;
      }
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError("no leader elected in time");
}

std::unique_ptr<raftkv::RaftKV::Stub> KvCluster::NewClient(int i) const {
  static std::atomic<int> next{0};
  grpc::ChannelArguments args;
  // A distinct argument keeps gRPC from sharing one connection between clients.
  args.SetInt("swarm.client_id", next++);
  return raftkv::RaftKV::NewStub(
      grpc::CreateCustomChannel(addrs_.at(i), grpc::InsecureChannelCredentials(), args));
}

absl::StatusOr<uint64_t> KvCluster::Put(int i, const std::string& key, const std::string& value,
                                        absl::Duration timeout) {
  return Put(*Stub(i), key, value, timeout);
}

absl::StatusOr<uint64_t> KvCluster::Put(raftkv::RaftKV::Stub& client, const std::string& key,
                                        const std::string& value, absl::Duration timeout) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, timeout);
  raftkv::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  raftkv::PutResponse resp;
  grpc::Status s = client.Put(&ctx, req, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp.index();
}

absl::StatusOr<std::vector<raftkv::Op>> KvCluster::Dump(int i) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(30));
  auto reader = Stub(i)->Dump(&ctx, raftkv::DumpRequest());
  std::vector<raftkv::Op> ops;
  raftkv::DumpResponse resp;
  while (reader->Read(&resp)) ops.insert(ops.end(), resp.ops().begin(), resp.ops().end());
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FromGrpcStatus(s);
  return ops;
}

absl::Status KvCluster::WaitForApplied(uint64_t index, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    bool all = true;
    for (const auto& [i, pid] : pids_) {
      auto st = Status(i, absl::Milliseconds(500));
      if (!st.ok() || st->applied() < index) all = false;
    }
    if (all) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError("members did not apply index " + std::to_string(index) +
                                     " in time");
}

KvStreamClient::KvStreamClient(raftkv::RaftKV::Stub* stub) {
  stub->async()->PutStream(&ctx_, this);
  StartRead(&in_);
  StartCall();
}

void KvStreamClient::Put(const std::string& key, const std::string& value, Done done) {
  {
    absl::MutexLock lock(&mu_);
    const uint64_t id = next_id_++;
    waiting_[id] = std::move(done);
    raftkv::StreamedPut* p = queued_.add_puts();
    p->set_id(id);
    p->set_key(key);
    p->set_value(value);
    if (!TakeBatchLocked()) return;
  }
  StartWrite(&out_);
}

void KvStreamClient::Close() {
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](KvStreamClient* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) {
          return (c->waiting_.empty() && !c->writing_) || c->done_;
        },
        this));
    if (done_) return;  // the stream already ended
  }
  StartWritesDone();
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&done_));
}

void KvStreamClient::OnWriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok || !TakeBatchLocked()) return;
  }
  StartWrite(&out_);
}

void KvStreamClient::OnReadDone(bool ok) {
  if (!ok) return;
  std::vector<std::pair<Done, absl::StatusOr<uint64_t>>> answered;
  {
    absl::MutexLock lock(&mu_);
    for (const raftkv::PutResult& r : in_.results()) {
      auto it = waiting_.find(r.id());
      if (it == waiting_.end()) continue;
      answered.emplace_back(std::move(it->second), r.error().empty()
                                                       ? absl::StatusOr<uint64_t>(r.index())
                                                       : absl::UnavailableError(r.error()));
      waiting_.erase(it);
    }
  }
  StartRead(&in_);
  for (auto& [done, result] : answered) done(std::move(result));
}

void KvStreamClient::OnDone(const grpc::Status&) {
  std::map<uint64_t, Done> left;
  {
    absl::MutexLock lock(&mu_);
    left.swap(waiting_);
  }
  for (auto& [id, done] : left) done(absl::UnavailableError("the write stream ended"));
  absl::MutexLock lock(&mu_);
  done_ = true;
}

bool KvStreamClient::TakeBatchLocked() {
  if (writing_ || queued_.puts_size() == 0) return false;
  out_.Swap(&queued_);
  queued_.Clear();
  writing_ = true;
  return true;
}

}  // namespace swarm::raft

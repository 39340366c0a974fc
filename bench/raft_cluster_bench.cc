// The Raft node in real processes: 3 raftkv members on loopback with synced storage, 128-byte
// proposals from 1 and from 64 concurrent proposers (each a client calling Put on the leader
// over gRPC): committed proposals per second and p50/p99 commit latency; then the time from
// kill -9 of the leader to the next committed write.
//
//   bazel run -c opt //bench:raft_cluster_bench [-- --seconds=10]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

#include "raft/tools/kv_cluster.h"

namespace swarm::raft {
namespace {

struct Result {
  double per_second = 0;
  absl::Duration p50, p99;
  uint64_t errors = 0;
};

// One proposer: a chain of asynchronous Puts, each issued when the previous one answers, so
// that 64 proposers do not need 64 blocked client threads (which on 2 cores measured the
// client's scheduling more than the cluster).
class Proposer {
 public:
  Proposer(raftkv::RaftKV::Stub* stub, int id, absl::Time end, std::atomic<int>* running)
      : stub_(stub), id_(id), end_(end), running_(running) {}
  void Start() { Next(); }
  std::vector<absl::Duration> latencies;
  uint64_t errors = 0;

 private:
  void Next() {
    if (absl::Now() >= end_) {
      --*running_;
      return;
    }
    ctx_ = std::make_unique<grpc::ClientContext>();
    ctx_->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    req_.set_key("p" + std::to_string(id_) + "-" + std::to_string(n_++));
    req_.set_value(std::string(128, 'v'));
    start_ = absl::Now();
    stub_->async()->Put(ctx_.get(), &req_, &resp_, [this](grpc::Status s) {
      if (s.ok()) {
        latencies.push_back(absl::Now() - start_);
      } else {
        ++errors;
      }
      Next();
    });
  }

  raftkv::RaftKV::Stub* stub_;
  int id_;
  absl::Time end_;
  std::atomic<int>* running_;
  uint64_t n_ = 0;
  std::unique_ptr<grpc::ClientContext> ctx_;
  raftkv::PutRequest req_;
  raftkv::PutResponse resp_;
  absl::Time start_;
};

Result Load(KvCluster& c, int leader, int proposers, absl::Duration duration) {
  // A few connections shared by the proposers, as a real client pool would.
  std::vector<std::unique_ptr<raftkv::RaftKV::Stub>> clients;
  for (int i = 0; i < 4; ++i) clients.push_back(c.NewClient(leader));
  std::atomic<int> running{proposers};
  const absl::Time end = absl::Now() + duration;
  std::vector<std::unique_ptr<Proposer>> ps;
  for (int t = 0; t < proposers; ++t) {
    ps.push_back(std::make_unique<Proposer>(clients[t % clients.size()].get(), t, end, &running));
  }
  for (auto& p : ps) p->Start();
  while (running > 0) absl::SleepFor(absl::Milliseconds(10));
  std::vector<absl::Duration> all;
  Result r;
  for (auto& p : ps) {
    all.insert(all.end(), p->latencies.begin(), p->latencies.end());
    r.errors += p->errors;
  }
  std::sort(all.begin(), all.end());
  if (all.empty()) return r;
  r.per_second = all.size() / absl::ToDoubleSeconds(duration);
  r.p50 = all[all.size() / 2];
  r.p99 = all[all.size() * 99 / 100];
  return r;
}

absl::Duration Failover(KvCluster& c, int leader) {
  c.Kill(leader);
  const absl::Time killed = absl::Now();
  while (absl::Now() - killed < absl::Seconds(30)) {
    for (int i = 1; i <= c.size(); ++i) {
      if (!c.Running(i)) continue;
      if (c.Put(i, "failover", "x", absl::Milliseconds(500)).ok()) return absl::Now() - killed;
    }
  }
  return absl::InfiniteDuration();
}

int Main(int argc, char** argv) {
  int seconds = 10;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--seconds=", 10) == 0) seconds = std::atoi(argv[i] + 10);
  }
  KvCluster c({.size = 3});
  c.StartAll();
  auto leader = c.WaitForLeader(absl::Seconds(15));
  if (!leader.ok()) {
    std::cerr << "no leader: " << leader.status() << "\n";
    return 1;
  }
  std::cout << "raft_cluster_bench: 3 raftkv processes on loopback, synced RocksDB, 128-byte "
               "proposals, "
            << seconds << " s per run (logs in " << c.dir() << ")\n";
  for (int proposers : {1, 64}) {
    Result r = Load(c, *leader, proposers, absl::Seconds(seconds));
    std::cout << "proposers=" << proposers
              << "  committed/s=" << static_cast<uint64_t>(r.per_second)
              << "  p50=" << absl::FormatDuration(r.p50) << "  p99=" << absl::FormatDuration(r.p99)
              << "  errors=" << r.errors << "\n";
  }
  std::cout << "failover (kill -9 leader -> next committed write): "
            << absl::FormatDuration(Failover(c, *leader)) << "\n";
  std::cout << "goals: >20000 proposals/s with 64 proposers, p99 < 20ms, failover < 2s\n";
  return 0;
}

}  // namespace
}  // namespace swarm::raft

int main(int argc, char** argv) { return swarm::raft::Main(argc, argv); }

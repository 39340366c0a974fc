// The Raft node in real processes: 3 raftkv members on loopback with synced storage, 128-byte
// proposals from 1 and from 64 concurrent proposers (each a chain of writes to the leader over
// gRPC, sharing 4 connections): committed proposals per second and p50/p99 commit latency,
// once with a Put call per write and once over PutStream (a connection's writes queued while
// its last request was sent go in the next); then the time from kill -9 of the leader to the
// next committed write.
//
//   bazel run -c opt //bench:raft_cluster_bench [-- --seconds=10]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
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

using PutDone = std::function<void(bool ok)>;
// Sends one write; `done` runs once it is answered.
using PutFn = std::function<void(const std::string& key, const std::string& value, PutDone)>;

// One proposer: a chain of writes, each issued when the previous one is answered, so that 64
// proposers do not need 64 blocked client threads (which on 2 cores measured the client's
// scheduling more than the cluster).
class Proposer {
 public:
  Proposer(PutFn put, int id, absl::Time end, std::atomic<int>* running)
      : put_(std::move(put)), id_(id), end_(end), running_(running) {}
  void Start() { Next(); }
  std::vector<absl::Duration> latencies;
  uint64_t errors = 0;

 private:
  void Next() {
    if (absl::Now() >= end_) {
      --*running_;
      return;
    }
    const absl::Time start = absl::Now();
    put_("p" + std::to_string(id_) + "-" + std::to_string(n_++ % 1000), std::string(128, 'v'),
         [this, start](bool ok) {
           if (ok) {
             latencies.push_back(absl::Now() - start);
           } else {
             ++errors;
           }
           Next();
         });
  }

  PutFn put_;
  int id_;
  absl::Time end_;
  std::atomic<int>* running_;
  uint64_t n_ = 0;
};

// One Put call per write.
void UnaryPut(raftkv::RaftKV::Stub* stub, const std::string& key, const std::string& value,
              PutDone done) {
  struct Call {
    grpc::ClientContext ctx;
    raftkv::PutRequest req;
    raftkv::PutResponse resp;
  };
  auto call = std::make_shared<Call>();
  call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  call->req.set_key(key);
  call->req.set_value(value);
  stub->async()->Put(&call->ctx, &call->req, &call->resp,
                     [call, done = std::move(done)](grpc::Status s) { done(s.ok()); });
}

Result Load(KvCluster& c, int leader, int proposers, bool streamed, absl::Duration duration) {
  // A few connections shared by the proposers, as a real client pool would.
  constexpr int kConnections = 4;
  std::vector<std::unique_ptr<raftkv::RaftKV::Stub>> stubs;
  std::vector<std::unique_ptr<KvStreamClient>> streams;
  std::vector<PutFn> puts;
  for (int i = 0; i < kConnections; ++i) {
    stubs.push_back(c.NewClient(leader));
    raftkv::RaftKV::Stub* stub = stubs.back().get();
    if (streamed) {
      streams.push_back(std::make_unique<KvStreamClient>(stub));
      KvStreamClient* s = streams.back().get();
      puts.push_back([s](const std::string& k, const std::string& v, PutDone d) {
        s->Put(k, v, [d = std::move(d)](absl::StatusOr<uint64_t> r) { d(r.ok()); });
      });
    } else {
      puts.push_back([stub](const std::string& k, const std::string& v, PutDone d) {
        UnaryPut(stub, k, v, std::move(d));
      });
    }
  }
  std::atomic<int> running{proposers};
  const absl::Time end = absl::Now() + duration;
  std::vector<std::unique_ptr<Proposer>> ps;
  for (int t = 0; t < proposers; ++t) {
    ps.push_back(std::make_unique<Proposer>(puts[t % puts.size()], t, end, &running));
  }
  for (auto& p : ps) p->Start();
  while (running > 0) absl::SleepFor(absl::Milliseconds(10));
  for (auto& s : streams) s->Close();
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
  // Members keep the latest value of each key only, and each proposer writes 1,000 keys over
  // and over: the state (and so each snapshot) stays ~10 MB however long the run, as a real
  // state machine's would, instead of a history that grows with every write.
  KvCluster c({.size = 3, .history = false});
  c.StartAll();
  auto leader = c.WaitForLeader(absl::Seconds(15));
  if (!leader.ok()) {
    std::cerr << "no leader: " << leader.status() << "\n";
    return 1;
  }
  std::cout << "raft_cluster_bench: 3 raftkv processes on loopback, synced RocksDB, 128-byte "
               "proposals, "
            << seconds << " s per run (logs in " << c.dir() << ")\n";
  for (bool streamed : {false, true}) {
    std::cout << (streamed ? "PutStream (writes queued meanwhile share a request):\n"
                           : "Put (one call per write):\n");
    for (int proposers : {1, 64}) {
      Result r = Load(c, *leader, proposers, streamed, absl::Seconds(seconds));
      std::cout << "  proposers=" << proposers
                << "  committed/s=" << static_cast<uint64_t>(r.per_second)
                << "  p50=" << absl::FormatDuration(r.p50)
                << "  p99=" << absl::FormatDuration(r.p99) << "  errors=" << r.errors << "\n";
    }
  }
  std::cout << "failover (kill -9 leader -> next committed write): "
            << absl::FormatDuration(Failover(c, *leader)) << "\n";
  std::cout << "goals: >20000 proposals/s with 64 proposers, p99 < 20ms, failover < 2s\n";
  return 0;
}

}  // namespace
}  // namespace swarm::raft

int main(int argc, char** argv) { return swarm::raft::Main(argc, argv); }

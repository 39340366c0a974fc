// The Raft node in real processes: 3 raftkv members on loopback with synced storage, 128-byte
// proposals from 1 and from 64 concurrent proposers (each a client calling Put on the leader
// over gRPC): committed proposals per second and p50/p99 commit latency; then the time from
// kill -9 of the leader to the next committed write.
//
//   bazel run -c opt //bench:raft_cluster_bench [-- --seconds=10]
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

Result Load(KvCluster& c, int leader, int proposers, absl::Duration duration) {
  std::vector<std::vector<absl::Duration>> latencies(proposers);
  std::atomic<uint64_t> errors{0};
  const std::string value(128, 'v');
  const absl::Time end = absl::Now() + duration;
  std::vector<std::thread> threads;
  for (int t = 0; t < proposers; ++t) {
    threads.emplace_back([&, t] {
      auto client = c.NewClient(leader);
      for (uint64_t n = 0; absl::Now() < end; ++n) {
        const absl::Time start = absl::Now();
        auto r = KvCluster::Put(*client, "p" + std::to_string(t) + "-" + std::to_string(n), value,
                                absl::Seconds(5));
        if (r.ok()) {
          latencies[t].push_back(absl::Now() - start);
        } else {
          ++errors;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::vector<absl::Duration> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  Result r;
  r.errors = errors;
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

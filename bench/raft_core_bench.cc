// Throughput of the Raft core alone: a 3-voter cluster in one thread, storage in memory, the
// network a vector. Every entry is proposed on the leader, replicated to both followers,
// persisted (appended to MemoryStorage), committed and applied, exactly as a real node would do
// it, minus the disk and the sockets. Reports entries committed per second and heap
// allocations per entry (counted by replacing global operator new in this binary).
#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "raft/raw_node.h"

namespace {

std::atomic<uint64_t> g_allocations{0};

}  // namespace

void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace swarm::raft {
namespace {

constexpr size_t kPayloadSize = 128;
// Compact the logs every this many entries so memory stays flat over long runs.
constexpr uint64_t kCompactEvery = 100000;

class Cluster {
 public:
  Cluster() {
    for (uint64_t id = 1; id <= 3; ++id) {
      auto storage = std::make_unique<MemoryStorage>();
      storage->Bootstrap(ConfState{{1, 2, 3}, {}});
      Config c;
      c.id = id;
      c.storage = storage.get();
      c.seed = id;
      c.max_inflight_msgs = 4096;
      auto node = RawNode::Create(c);
      if (!node.ok()) std::abort();
      storages_.push_back(std::move(storage));
      nodes_.push_back(*std::move(node));
    }
    if (!nodes_[0]->Campaign().ok()) std::abort();
    while (Cycle()) {
    }
    if (nodes_[0]->GetStatus().soft_state.state != StateType::kLeader) std::abort();
    applied_ = 0;
  }

  RawNode& leader() { return *nodes_[0]; }
  uint64_t applied() const { return applied_; }

  // One round: every node handles its Ready, then every message is delivered. Returns whether
  // anything happened.
  bool Cycle() {
    bool busy = false;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      RawNode& n = *nodes_[i];
      if (!n.HasReady()) continue;
      busy = true;
      Ready rd = n.GetReady();
      MoveAll(rd.messages);
      MemoryStorage& s = *storages_[i];
      if (!rd.entries.empty() && !s.Append(std::move(rd.entries)).ok()) std::abort();
      if (!rd.hard_state.empty()) s.SetHardState(rd.hard_state);
      MoveAll(rd.messages_after_persist);
      if (!rd.committed_entries.empty()) {
        if (i == 0) {
          for (const Entry& e : rd.committed_entries) applied_ += e.data.empty() ? 0 : 1;
        }
        const uint64_t last = rd.committed_entries.back().index;
        if (last - s.FirstIndex() > kCompactEvery && !s.Compact(last).ok()) std::abort();
      }
      n.Advance();
    }
    std::vector<Message> msgs = std::move(network_);
    network_.clear();
    for (Message& m : msgs) {
      busy = true;
      (void)nodes_[m.to - 1]->Step(std::move(m));
    }
    return busy;
  }

 private:
  void MoveAll(std::vector<Message>& msgs) {
    for (Message& m : msgs) network_.push_back(std::move(m));
  }

  std::vector<std::unique_ptr<MemoryStorage>> storages_;
  std::vector<std::unique_ptr<RawNode>> nodes_;
  std::vector<Message> network_;
  uint64_t applied_ = 0;
};

void Report(benchmark::State& state, const Cluster& c, uint64_t allocations) {
  state.counters["entries/s"] =
      benchmark::Counter(static_cast<double>(c.applied()), benchmark::Counter::kIsRate);
  state.counters["allocs/entry"] =
      static_cast<double>(allocations) / static_cast<double>(std::max<uint64_t>(1, c.applied()));
}

// Without batching: one proposal, then rounds until it is committed and applied.
void BM_CommitOneAtATime(benchmark::State& state) {
  Cluster c;
  const std::string payload(kPayloadSize, 'x');
  const uint64_t before = g_allocations.load();
  for (auto _ : state) {
    if (!c.leader().Propose(payload).ok()) std::abort();
    while (c.Cycle()) {
    }
  }
  Report(state, c, g_allocations.load() - before);
}
BENCHMARK(BM_CommitOneAtATime)->Unit(benchmark::kMicrosecond);

// With batching: state.range(0) proposals per round trip (the node batches proposals that
// arrive while a write is in flight); rounds overlap like a pipelined node's.
void BM_CommitBatched(benchmark::State& state) {
  Cluster c;
  const size_t batch = static_cast<size_t>(state.range(0));
  const std::string payload(kPayloadSize, 'x');
  const uint64_t before = g_allocations.load();
  for (auto _ : state) {
    std::vector<std::string> proposals(batch, payload);
    if (!c.leader().ProposeBatch(std::move(proposals)).ok()) std::abort();
    c.Cycle();
  }
  while (c.Cycle()) {
  }
  Report(state, c, g_allocations.load() - before);
}
BENCHMARK(BM_CommitBatched)->Arg(16)->Arg(64)->Arg(256)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace swarm::raft

BENCHMARK_MAIN();

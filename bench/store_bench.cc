// The object store's read and write paths without Raft (LocalProposer): transactions per
// second for single-object writes, and the time to list 100,000 tasks (and those of one
// service, through the index), and to snapshot and restore a store of 100,000 tasks (what a
// manager does every snapshot interval, and at start-up or when a leader sends a snapshot).
//
//   bazel run -c opt //bench:store_bench
#include "benchmark/benchmark.h"
#include "manager/store/store.h"

namespace swarm::manager::store {
namespace {

api::Task NewTask(int i, int services) {
  api::Task t;
  t.set_id("task" + std::to_string(i));
  t.set_service_id("svc" + std::to_string(i % services));
  t.set_node_id("node" + std::to_string(i % 1000));
  t.set_slot(i);
  t.mutable_spec()->mutable_container()->set_image("busybox:latest");
  t.mutable_status()->set_message("running");
  return t;
}

struct Filled {
  LocalProposer proposer;
  MemoryStore store{&proposer};
  explicit Filled(int tasks) {
    proposer.set_store(&store);
    for (int i = 0; i < tasks; i += 1000) {
      (void)store.Update([&](WriteTx& tx) {
        for (int j = i; j < std::min(tasks, i + 1000); ++j) tx.CreateObject(NewTask(j, 100));
        return absl::OkStatus();
      });
    }
  }
};

void BM_SingleObjectWrites(benchmark::State& state) {
  LocalProposer proposer;
  MemoryStore store(&proposer);
  proposer.set_store(&store);
  int i = 0;
  for (auto _ : state) {
    absl::Status s = store.Update([&](WriteTx& tx) {
      tx.CreateObject(NewTask(i++, 100));
      return absl::OkStatus();
    });
    if (!s.ok()) state.SkipWithError("write failed");
  }
  state.counters["writes/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SingleObjectWrites);

void BM_List100000Tasks(benchmark::State& state) {
  static Filled* filled = new Filled(100000);
  for (auto _ : state) {
    size_t n = 0;
    filled->store.View([&](const ReadTx& tx) { n = tx.ListTasks().size(); });
    benchmark::DoNotOptimize(n);
    if (n != 100000) state.SkipWithError("wrong count");
  }
}
BENCHMARK(BM_List100000Tasks)->Unit(benchmark::kMillisecond);

void BM_TasksOfOneServiceAmong100000(benchmark::State& state) {
  static Filled* filled = new Filled(100000);
  for (auto _ : state) {
    size_t n = 0;
    filled->store.View([&](const ReadTx& tx) { n = tx.TasksByService("svc7").size(); });
    benchmark::DoNotOptimize(n);
  }
}
BENCHMARK(BM_TasksOfOneServiceAmong100000)->Unit(benchmark::kMicrosecond);

void BM_Snapshot100000Tasks(benchmark::State& state) {
  static Filled* filled = new Filled(100000);
  for (auto _ : state) benchmark::DoNotOptimize(filled->store.Snapshot());
}
BENCHMARK(BM_Snapshot100000Tasks)->Unit(benchmark::kMillisecond);

void BM_Restore100000Tasks(benchmark::State& state) {
  static Filled* filled = new Filled(100000);
  const std::string snapshot = filled->store.Snapshot();
  for (auto _ : state) {
    LocalProposer proposer;
    MemoryStore store(&proposer);
    if (!store.Restore(snapshot).ok()) state.SkipWithError("restore failed");
  }
  state.counters["snapshot_MB"] = static_cast<double>(snapshot.size()) / 1e6;
}
BENCHMARK(BM_Restore100000Tasks)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace swarm::manager::store

BENCHMARK_MAIN();

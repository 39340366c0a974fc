// The scheduler's placement speed and memory, the pure library (no store, no Raft):
//  1. 100,000 tasks of one service (constraint node.role==worker, spread over
//     node.labels.zone with 10 zones, small CPU and memory reservations) on 10,000 nodes
//     (1% managers), in one batch; and the same on 100,000 nodes.
//  2. One task in a cluster of 10,000 nodes running 100,000 tasks of 1,000 services: median and
//     p99 over many runs, with the load-independent plan up to date, with a node changed just
//     before (the plan re-filters that node), and with constraints never seen before (the
//     plan is built from scratch).
//  3. The leader loop end to end: 100,000 pending tasks in a MemoryStore (LocalProposer, no
//     Raft) with 10,000 nodes, from the component's start until every task is ASSIGNED in the
//     store (listing, scheduling, 100 transactions of 1,000 writes, their watch events).
// Memory: the peak of live heap bytes during a step above what was live when it began
// (global operator new is replaced in this binary to count them), and the process's maximum
// resident set (getrusage ru_maxrss). Goals and SwarmKit's public figure are printed beside
// the results.
//
//   bazel run -c opt //bench:scheduler_bench [-- --runs=1000]
#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <new>

#include "absl/time/clock.h"
#include "manager/store/store.h"
#include "scheduler/component.h"
#include "scheduler/scheduler.h"
#include "scheduler/test_util.h"

namespace {
std::atomic<int64_t> live_bytes{0};
std::atomic<int64_t> peak_bytes{0};
}  // namespace

void* operator new(size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  const int64_t live = live_bytes += malloc_usable_size(p);
  int64_t peak = peak_bytes.load(std::memory_order_relaxed);
  while (live > peak && !peak_bytes.compare_exchange_weak(peak, live)) {
  }
  return p;
}
void operator delete(void* p) noexcept {
  if (p == nullptr) return;
  live_bytes -= malloc_usable_size(p);
  std::free(p);
}
void operator delete(void* p, size_t) noexcept { operator delete(p); }

namespace swarm::scheduler {
namespace {

// Live heap bytes now; the peak is counted from here on.
int64_t StartPeak() {
  peak_bytes = live_bytes.load();
  return live_bytes.load();
}
double PeakMiB(int64_t since) { return static_cast<double>(peak_bytes - since) / (1 << 20); }

using testing::kCpu;
using testing::kGiB;

long MaxRssKiB() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

std::shared_ptr<const api::Node> BenchNode(int i) {
  api::Node n = testing::MakeNode("node" + std::to_string(i), 64 * kCpu, 256 * kGiB,
                                  {{"zone", "zone" + std::to_string(i % 10)}});
  if (i % 100 == 0) n.set_role(api::NODE_ROLE_MANAGER);
  return std::make_shared<const api::Node>(std::move(n));
}

api::Task BenchTask(const std::string& id, const std::string& service) {
  api::Task t = testing::MakeTask(id, service, kCpu / 10, kGiB / 4);
  testing::AddConstraint(&t, "node.role==worker");
  testing::AddSpread(&t, "node.labels.zone");
  return t;
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

void PlaceBatch(int nodes, int tasks) {
  const int64_t heap0 = StartPeak();
  NodeSet set;
  for (int i = 0; i < nodes; ++i) set.UpsertNode(BenchNode(i));
  std::vector<api::Task> pending;
  pending.reserve(tasks);
  for (int i = 0; i < tasks; ++i) pending.push_back(BenchTask("task" + std::to_string(i), "web"));
  const std::vector<const api::Task*> ptrs = testing::Pointers(pending);
  const double input_mib = PeakMiB(heap0);

  const int64_t heap1 = StartPeak();
  Scheduler scheduler(&set);
  const absl::Time start = absl::Now();
  std::vector<Decision> d = scheduler.Schedule(ptrs);
  const absl::Duration took = absl::Now() - start;
  const double scheduling_mib = PeakMiB(heap1);

  size_t placed = 0;
  for (const Decision& x : d) placed += x.node != nullptr;
  std::cout << "  " << tasks << " tasks on " << nodes << " nodes: " << std::fixed
            << std::setprecision(1) << Ms(took) << " ms (" << placed << " placed, "
            << std::setprecision(2) << Ms(took) * 1e3 / tasks << " us/task)\n"
            << "    heap: node set and pending task objects " << std::setprecision(1) << input_mib
            << " MiB; scheduling peak +" << scheduling_mib << " MiB (decisions, counted tasks, "
            << "plan, heaps); max RSS so far " << MaxRssKiB() / 1024 << " MiB\n";
}

void PlaceOne(int runs) {
  constexpr int kNodes = 10000, kRunning = 100000, kServices = 1000;
  const int64_t heap0 = StartPeak();
  NodeSet set;
  for (int i = 0; i < kNodes; ++i) set.UpsertNode(BenchNode(i));
  for (int i = 0; i < kRunning; ++i) {
    api::Task t = BenchTask("running" + std::to_string(i), "svc" + std::to_string(i % kServices));
    set.UpsertTask(testing::Running(std::move(t), "node" + std::to_string((i * 7919) % kNodes)));
  }
  std::cout << "  node set of 10000 nodes and 100000 running tasks: " << std::fixed
            << std::setprecision(1) << static_cast<double>(live_bytes - heap0) / (1 << 20)
            << " MiB of heap, node objects included\n";
  Scheduler scheduler(&set);
  enum Case { kCached, kNodeChanged, kNewSignature };
  for (Case c : {kCached, kNodeChanged, kNewSignature}) {
    std::vector<double> us;
    // Building a plan from scratch filters every node: fewer runs.
    const int n = c == kNewSignature ? std::min(runs, 50) : runs;
    for (int r = 0; r < n; ++r) {
      if (c == kNodeChanged) set.UpsertNode(BenchNode(r % kNodes));
      // A new task of one of the running services each time (scale up by one).
      api::Task t = BenchTask("one" + std::to_string(c) + "-" + std::to_string(r),
                              "svc" + std::to_string(r % kServices));
      if (c == kNewSignature) testing::AddConstraint(&t, "node.labels.rack!=" + std::to_string(r));
      const absl::Time start = absl::Now();
      std::vector<Decision> d = scheduler.Schedule({&t});
      us.push_back(absl::ToDoubleMicroseconds(absl::Now() - start));
      if (d[0].node == nullptr) std::cerr << "not placed: " << d[0].message << "\n";
    }
    std::sort(us.begin(), us.end());
    static const char* const kCaseNames[] = {
        "plan up to date", "a node changed just before (plan updated for it)",
        "constraints never seen before (plan built from scratch)"};
    std::cout << "  1 task, 10000 nodes, 100000 running tasks, " << kCaseNames[c] << ": median "
              << std::fixed << std::setprecision(1) << us[us.size() / 2] << " us, p99 "
              << us[us.size() * 99 / 100] << " us (" << n << " runs)\n";
  }
}

void ThroughTheLeaderLoop() {
  namespace store = manager::store;
  constexpr int kNodes = 10000, kTasks = 100000;
  FakeClock clock;
  store::LocalProposer proposer;
  store::MemoryStore st(&proposer, &clock);
  proposer.set_store(&st);
  (void)st.Update([&](store::WriteTx& tx) {
    for (int i = 0; i < kNodes; ++i) tx.CreateObject(*BenchNode(i));
    return absl::OkStatus();
  });
  for (int i = 0; i < kTasks; i += 1000) {
    (void)st.Update([&](store::WriteTx& tx) {
      for (int j = i; j < i + 1000; ++j)
        tx.CreateObject(BenchTask("task" + std::to_string(j), "web"));
      return absl::OkStatus();
    });
  }
  auto watch = st.WatchFrom(0);
  const int64_t heap0 = StartPeak();
  SchedulerOptions options;
  options.batch_window = absl::ZeroDuration();
  options.max_batch = kTasks;
  SchedulerComponent component(&st, &clock, options);
  const absl::Time start = absl::Now();
  component.Start();
  int assigned = 0;
  while (assigned < kTasks) {
    std::optional<store::Event> e = (*watch)->Next(absl::Seconds(30));
    if (!e) break;
    if (e->new_object && e->new_object->has_task() &&
        e->new_object->task().status().state() == api::TASK_STATE_ASSIGNED) {
      ++assigned;
    }
  }
  const absl::Duration took = absl::Now() - start;
  component.Stop();
  std::cout << "  through the leader loop (store without Raft): " << assigned << " of " << kTasks
            << " tasks ASSIGNED in the store on " << kNodes << " nodes in " << std::fixed
            << std::setprecision(1) << Ms(took) << " ms; heap peak +" << PeakMiB(heap0)
            << " MiB (new task versions, events, the component's state)\n";
}

int Main(int argc, char** argv) {
  int runs = 1000;
  bool large = true;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--runs=", 7) == 0) runs = std::max(1, std::atoi(argv[i] + 7));
    if (std::strcmp(argv[i], "--no-100k-nodes") == 0) large = false;
  }
  std::cout << "scheduler placement (pure library; constraint node.role==worker, spread over "
               "node.labels.zone, 10 zones)\n";
  std::cout << "goal: 100,000 tasks on 10,000 nodes < 1 s; 1 task among 10,000 nodes and "
               "100,000 tasks < 1 ms\n";
  std::cout << "reference: SwarmKit's published figure, 100,000 tasks on 100,000 nodes in "
               "29 s\n";
  PlaceBatch(10000, 100000);
  if (large) PlaceBatch(100000, 100000);
  PlaceOne(runs);
  ThroughTheLeaderLoop();
  return 0;
}

}  // namespace
}  // namespace swarm::scheduler

int main(int argc, char** argv) { return swarm::scheduler::Main(argc, argv); }

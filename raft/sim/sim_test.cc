// Property tests of the Raft core on the simulated cluster (sim.h).
//
// Environment:
//   RAFT_SIM_SEEDS=N  runs seeds 1..N (default 2000);
//   RAFT_SIM_JOBS=J   in J processes at once (default 2, the machine's cores);
//   RAFT_SIM_SEED=S   replays seed S alone in this process, printing every event to stderr.
// The sweep ends stdout with one line "seeds: N violations: V".
#include "raft/sim/sim.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace swarm::raft::sim {
namespace {

constexpr uint64_t kDefaultSeeds = 2000;
constexpr uint64_t kDefaultJobs = 2;
constexpr size_t kMaxReports = 5;

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 10);
}

// Prints the sweep's verdict after everything gtest prints, so that it is stdout's last line.
class VerdictPrinter : public testing::EmptyTestEventListener {
 public:
  explicit VerdictPrinter(std::string line) : line_(std::move(line)) {}
  void OnTestProgramEnd(const testing::UnitTest&) override {
    std::printf("%s\n", line_.c_str());
    std::fflush(stdout);
  }

 private:
  std::string line_;
};

void PrintVerdictLast(uint64_t seeds, size_t violations) {
  testing::UnitTest::GetInstance()->listeners().Append(
      new VerdictPrinter(absl::StrCat("seeds: ", seeds, " violations: ", violations)));
}

TEST(SimulatorTest, RunSweep_SameSeedsReplayExactly) {
  // One process, then two: every seed's run, event by event, must not change.
  const SweepResult a = RunSweep(1, 16, 1);
  const SweepResult b = RunSweep(1, 16, 2);
  ASSERT_EQ(a.trace_hashes.size() + a.failures.size(), 16u);
  EXPECT_EQ(a.trace_hashes, b.trace_hashes);
  EXPECT_EQ(a.total.Describe(), b.total.Describe());
  ASSERT_EQ(a.failures.size(), b.failures.size());
  for (size_t i = 0; i < a.failures.size(); ++i) {
    EXPECT_EQ(a.failures[i].seed, b.failures[i].seed);
    EXPECT_EQ(a.failures[i].violation, b.failures[i].violation);
  }
}

TEST(SimulatorTest, RunSweep_EverySeedKeepsEveryInvariant) {
  if (const uint64_t seed = EnvOr("RAFT_SIM_SEED", 0); seed != 0) {
    // Say what runs first: a core that aborts takes the report with it.
    std::mt19937_64 rng(seed);
    std::fprintf(stderr, "seed %lu: %s\n", static_cast<unsigned long>(seed),
                 Scenario::FromRandom(rng).Describe().c_str());
    SimOptions options;
    options.seed = seed;
    options.verbose = true;
    const SimResult r = Simulator(options).Run();
    std::printf("%s", r.Report().c_str());
    PrintVerdictLast(1, r.violations.size());
    EXPECT_TRUE(r.ok());
    return;
  }
  const uint64_t seeds = EnvOr("RAFT_SIM_SEEDS", kDefaultSeeds);
  const SweepResult sweep =
      RunSweep(1, seeds, static_cast<int>(EnvOr("RAFT_SIM_JOBS", kDefaultJobs)));

  for (size_t i = 0; i < sweep.failures.size() && i < kMaxReports; ++i) {
    const SweepFailure& f = sweep.failures[i];
    std::printf("%s(replay: RAFT_SIM_SEED=%lu)\n\n", f.report.c_str(),
                static_cast<unsigned long>(f.seed));
  }
  if (sweep.failures.size() > kMaxReports) {
    std::printf("%zu more violating seeds:\n", sweep.failures.size() - kMaxReports);
    for (size_t i = kMaxReports; i < sweep.failures.size(); ++i) {
      std::printf("  seed %lu: %s\n", static_cast<unsigned long>(sweep.failures[i].seed),
                  sweep.failures[i].violation.c_str());
    }
  }
  std::printf("totals over %lu seeds: %s\n", static_cast<unsigned long>(seeds),
              sweep.total.Describe().c_str());
  PrintVerdictLast(seeds, sweep.failures.size());
  EXPECT_EQ(sweep.failures.size(), 0u);

  // A simulation that never installs a snapshot or commits a membership change would pass
  // vacuously: the sweep must exercise what it claims to.
  if (seeds >= 200) {
    EXPECT_GT(sweep.total.proposals_acked, 0u);
    EXPECT_GT(sweep.total.reads_served, 0u);
    EXPECT_GT(sweep.total.crashes, 0u);
    EXPECT_GT(sweep.total.snapshots_installed, 0u);
    EXPECT_GT(sweep.total.conf_changes_committed, 0u);
  }
}

}  // namespace
}  // namespace swarm::raft::sim

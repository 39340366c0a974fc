#include "manager/leader/runtime.h"

#include <atomic>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace swarm::manager::leader {
namespace {

// Counts its lives and runs a thread while started, like a real component.
struct Counters {
  std::atomic<int> started{0}, stopped{0}, alive{0}, threads{0};
};

class Probe final : public Component {
 public:
  explicit Probe(Counters* c) : c_(c) { ++c_->alive; }
  ~Probe() override {
    EXPECT_FALSE(thread_.joinable()) << "destroyed while running";
    --c_->alive;
  }
  const char* name() const override { return "probe"; }
  void Start() override {
    ++c_->started;
    ++c_->threads;
    thread_ = std::thread([this] {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&stop_));
    });
  }
  void Stop() override {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
    --c_->threads;
    ++c_->stopped;
  }

 private:
  Counters* c_;
  absl::Mutex mu_;
  bool stop_ = false;
  std::thread thread_;
};

bool WaitFor(const std::function<bool()>& cond) {
  for (int i = 0; i < 500; ++i) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return cond();
}

TEST(LeaderRuntime, ComponentsRunExactlyWhileLeading) {
  Counters a, b;
  LeaderRuntime rt(
      {[&] { return std::make_unique<Probe>(&a); }, [&] { return std::make_unique<Probe>(&b); }});
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(a.started, 0);

  rt.OnLeadershipChange(true, 2);
  ASSERT_TRUE(WaitFor([&] { return a.threads == 1 && b.threads == 1; }));
  rt.OnLeadershipChange(false, 3);
  ASSERT_TRUE(WaitFor([&] { return a.alive == 0 && b.alive == 0; }));
  EXPECT_EQ(a.threads, 0);
  EXPECT_EQ(a.stopped, 1);

  // A new term gets new objects: nothing of the earlier one survives.
  rt.OnLeadershipChange(true, 5);
  ASSERT_TRUE(WaitFor([&] { return a.started == 2 && a.alive == 1; }));
  rt.OnLeadershipChange(true, 7);  // leader again in a later term (we lost it in between)
  ASSERT_TRUE(WaitFor([&] { return a.started == 3 && a.alive == 1; }));
  EXPECT_EQ(rt.terms_started(), 3u);
}

TEST(LeaderRuntime, FlappingNeverRunsTwoSetsAndStopLeavesNothing) {
  Counters a;
  {
    LeaderRuntime rt({[&] { return std::make_unique<Probe>(&a); }});
    for (int i = 0; i < 200; ++i) rt.OnLeadershipChange(i % 2 == 0, i + 1);
    rt.OnLeadershipChange(true, 1000);
    ASSERT_TRUE(WaitFor([&] { return a.alive == 1 && a.threads == 1; }));
    EXPECT_LE(a.alive, 1);
  }
  // Destroying the runtime (a manager shutting down) stops and frees the components.
  EXPECT_EQ(a.alive, 0);
  EXPECT_EQ(a.threads, 0);
  EXPECT_EQ(a.started, a.stopped);
}

}  // namespace
}  // namespace swarm::manager::leader

// The project's one source of time (STYLE.md 2). Components take a Clock& instead of reading
// the wall clock, so tests drive time with FakeClock and replay exactly.
//
// Thread-safety: both clocks are thread-safe. FakeClock::SleepFor blocks the caller until
// another thread advances the clock past the wake-up time.
#ifndef SWARM_COMMON_CLOCK_H_
#define SWARM_COMMON_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace swarm {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // Returns once Now() has passed the current time plus d.
  virtual void SleepFor(absl::Duration d) = 0;

  // The process-wide real clock.
  static Clock& Real();
};

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  void SleepFor(absl::Duration d) override { absl::SleepFor(d); }
};

// A clock that only moves when told to.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::UnixEpoch() + absl::Hours(24 * 365 * 50))
      : now_(start) {}

  absl::Time Now() const override;
  void SleepFor(absl::Duration d) override;

  // Moves time forward by d and wakes every sleeper whose time has come.
  void Advance(absl::Duration d);
  // Number of threads currently blocked in SleepFor (lets tests wait for a sleeper).
  int Sleepers() const;

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  int sleepers_ ABSL_GUARDED_BY(mu_) = 0;
  // Signalled by Advance(), the only event that can end a sleep.
  absl::CondVar advanced_;
};

}  // namespace swarm

#endif  // SWARM_COMMON_CLOCK_H_

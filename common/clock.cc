#include "common/clock.h"

namespace swarm {

Clock& Clock::Real() {
  static RealClock* clock = new RealClock();
  return *clock;
}

absl::Time FakeClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

void FakeClock::SleepFor(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  const absl::Time wake = now_ + d;
  ++sleepers_;
  while (now_ < wake) advanced_.Wait(&mu_);
  --sleepers_;
}

void FakeClock::Advance(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  now_ += d;
  advanced_.SignalAll();
}

int FakeClock::Sleepers() const {
  absl::MutexLock lock(&mu_);
  return sleepers_;
}

}  // namespace swarm

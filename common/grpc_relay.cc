#include "common/grpc_relay.h"

#include <pthread.h>

#include <deque>
#include <thread>

#include "absl/synchronization/mutex.h"

namespace swarm {
namespace {

class Releaser {
 public:
  // Never destroyed: the thread runs until the process exits.
  static Releaser& Get() {
    static Releaser* const r = new Releaser;
    return *r;
  }

  void Add(std::function<void()> release) {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(release));
  }

 private:
  Releaser() {
    std::thread([this] { Run(); }).detach();
  }

  void Run() {
    pthread_setname_np(pthread_self(), "grpc-release");
    for (;;) {
      std::function<void()> release;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &Releaser::HasWork));
        release = std::move(queue_.front());
        queue_.pop_front();
      }
      release();
    }
  }
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty(); }

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

void ReleaseOffGrpcThreads(std::function<void()> release) {
  Releaser::Get().Add(std::move(release));
}

}  // namespace swarm

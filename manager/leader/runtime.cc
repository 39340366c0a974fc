#include "manager/leader/runtime.h"

#include <pthread.h>

#include "common/logging.h"

namespace swarm::manager::leader {
namespace {
constexpr char kLog[] = "leader-runtime";
}  // namespace

LeaderRuntime::LeaderRuntime(std::vector<Factory> factories)
    : factories_(std::move(factories)), thread_([this] { Run(); }) {}

LeaderRuntime::~LeaderRuntime() { Stop(); }

void LeaderRuntime::OnLeadershipChange(bool leader, uint64_t term) {
  absl::MutexLock lock(&mu_);
  want_leader_ = leader;
  want_term_ = term;
}

void LeaderRuntime::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

uint64_t LeaderRuntime::terms_started() const {
  absl::MutexLock lock(&mu_);
  return terms_started_;
}

void LeaderRuntime::Run() {
  pthread_setname_np(pthread_self(), "leader-runtime");
  std::vector<std::unique_ptr<Component>> running;
  auto stop_all = [&] {
    // In reverse order of start: later components may rely on earlier ones.
    for (auto it = running.rbegin(); it != running.rend(); ++it) (*it)->Stop();
    running.clear();
  };
  while (true) {
    bool leader;
    uint64_t term;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](LeaderRuntime* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) {
            return r->stopping_ || r->want_leader_ != r->applied_leader_ ||
                   (r->want_leader_ && r->want_term_ != r->applied_term_);
          },
          this));
      if (stopping_) break;
      leader = want_leader_;
      term = want_term_;
    }
    if (!running.empty()) {
      log::Info(kLog, "stopping leader-only components");
      stop_all();
    }
    if (leader) {
      for (const Factory& f : factories_) running.push_back(f());
      for (auto& c : running) c->Start();
      log::Info(kLog, "started leader-only components",
                {{"term", term}, {"components", running.size()}});
    }
    absl::MutexLock lock(&mu_);
    applied_leader_ = leader;
    applied_term_ = term;
    if (leader) ++terms_started_;
  }
  stop_all();
}

}  // namespace swarm::manager::leader

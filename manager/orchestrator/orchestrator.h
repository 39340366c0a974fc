// Orchestrator: the leader-only component that keeps every service's tasks in line with the
// service (replicated, global and job modes, restarts, rolling updates, rollback, task
// history). The decisions are Reconcile()'s (reconcile.h); this shell finds the services that
// need a look, reads them, and writes the plans.
//
// A service needs a look when it or one of its tasks changed, when a node or the cluster
// changed (every service: node availability, state and labels decide placement and evictions),
// when a time its last plan asked for has come (a restart or update delay, a monitor period),
// after a failed write, and every kResync as a safety net. Each round reads all it needs in one
// View, then writes each service's plan as one transaction (split into transactions of at most
// kMaxWritesPerTransaction writes and store::kMaxTransactionBytes for very large services;
// reconciling again finishes what a failed part left). A write that lost a race ("update out of
// sequence") is retried with fresh state in the next round.
//
// Thread-safety: Start and Stop from one thread (the leader runtime); the work runs on the
// component's thread "orchestrator".
#ifndef SWARM_MANAGER_ORCHESTRATOR_ORCHESTRATOR_H_
#define SWARM_MANAGER_ORCHESTRATOR_ORCHESTRATOR_H_

#include <map>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/random.h"
#include "manager/leader/runtime.h"
#include "manager/orchestrator/reconcile.h"
#include "manager/store/store.h"

namespace swarm::manager::orchestrator {

class Orchestrator final : public leader::Component {
 public:
  static constexpr absl::Duration kResync = absl::Seconds(30);
  static constexpr absl::Duration kRetryAfter = absl::Milliseconds(200);
  static constexpr size_t kMaxWritesPerTransaction = 1000;

  Orchestrator(store::MemoryStore* store, Clock* clock, Random* random)
      : store_(store), clock_(clock), random_(random) {}
  ~Orchestrator() override { Stop(); }

  const char* name() const override { return "orchestrator"; }
  void Start() override;
  void Stop() override;

 private:
  void Run();
  // Reconciles the services marked dirty (every service when all_dirty_) and writes the plans.
  void Round();
  absl::Status Write(const Plan& plan);

  store::MemoryStore* store_;
  Clock* clock_;
  Random* random_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;

  // Component thread only.
  std::shared_ptr<store::Watch> watch_;
  bool all_dirty_ = true;
  std::set<std::string> dirty_;
  // When a service must be looked at again, by service ID.
  std::map<std::string, absl::Time> due_;
  // No round starts before this (see Run).
  absl::Time quiet_until_ = absl::InfinitePast();
};

}  // namespace swarm::manager::orchestrator

#endif  // SWARM_MANAGER_ORCHESTRATOR_ORCHESTRATOR_H_

// Allocator: the leader-only component that owns a task's move from NEW to PENDING: the point
// where everything the task needs from the cluster (network attachments, addresses, published
// ports) has been allocated and the scheduler may place it.
//
// Today it allocates nothing: overlay IP address management, VIPs and ingress ports arrive
// with the networking work (DESIGN.md, Networking), and will be done here before the move. A
// task's network attachments are copied from its spec's networks without addresses.
//
// It reads every NEW task once when it starts, then follows the store's task events, and
// writes the moves in batches (one transaction per kBatch tasks). A move that lost a race
// (the task changed meanwhile) is retried with the fresh task.
//
// Thread-safety: Start and Stop from one thread (the leader runtime); the work runs on the
// component's thread "allocator".
#ifndef SWARM_MANAGER_ALLOCATOR_ALLOCATOR_H_
#define SWARM_MANAGER_ALLOCATOR_ALLOCATOR_H_

#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "manager/leader/runtime.h"
#include "manager/store/store.h"

namespace swarm::manager::allocator {

class Allocator final : public leader::Component {
 public:
  static constexpr size_t kBatch = 1000;

  Allocator(store::MemoryStore* store, Clock* clock) : store_(store), clock_(clock) {}
  ~Allocator() override { Stop(); }

  const char* name() const override { return "allocator"; }
  void Start() override;
  void Stop() override;

 private:
  void Run();
  // Moves the given NEW tasks to PENDING; the IDs of those that could not be moved yet.
  std::set<std::string> Allocate(const std::set<std::string>& ids);

  store::MemoryStore* store_;
  Clock* clock_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
  // Component thread only (and Start, before the thread exists).
  std::shared_ptr<store::Watch> watch_;
};

}  // namespace swarm::manager::allocator

#endif  // SWARM_MANAGER_ALLOCATOR_ALLOCATOR_H_

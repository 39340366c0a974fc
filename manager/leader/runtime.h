// LeaderRuntime: the one place that starts the manager's leader-only components
// (orchestrators, scheduler, allocator, the dispatcher's leader duties, the Raft member
// reconciler) when this manager becomes the Raft leader, and stops them when it stops being
// one. Each leadership gets new component objects, built by their factories, so no state of
// an earlier term survives into the next; a component's Stop() joins its threads before the
// object is destroyed.
//
// The Raft node reports leadership changes from its loop thread, which must not wait for
// components to start or stop: OnLeadershipChange only records the latest state, and the
// runtime's own thread ("leader-runtime") brings the components in line with it. Flapping
// leadership therefore starts and stops each set at most once per change it actually sees.
//
// Thread-safety: thread-safe. mu_ guards the wanted state; the running components are owned
// by the runtime thread alone.
#ifndef SWARM_MANAGER_LEADER_RUNTIME_H_
#define SWARM_MANAGER_LEADER_RUNTIME_H_

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace swarm::manager::leader {

// A component that runs on the leader only. Same shape as every manager component: built
// with what it needs, Start() and Stop() own its threads; it talks to the others only
// through the store.
class Component {
 public:
  virtual ~Component() = default;
  virtual const char* name() const = 0;
  virtual void Start() = 0;
  // Returns once every thread of the component has ended.
  virtual void Stop() = 0;
};

class LeaderRuntime {
 public:
  using Factory = std::function<std::unique_ptr<Component>()>;

  explicit LeaderRuntime(std::vector<Factory> factories);
  ~LeaderRuntime();  // Stop()
  LeaderRuntime(const LeaderRuntime&) = delete;
  LeaderRuntime& operator=(const LeaderRuntime&) = delete;

  // From the Raft node's loop thread: does not block.
  void OnLeadershipChange(bool leader, uint64_t term);
  // Stops the components (if running) and the runtime's thread.
  void Stop();

  // How many leaderships have started their components so far (tests).
  uint64_t terms_started() const;

 private:
  void Run();

  const std::vector<Factory> factories_;
  mutable absl::Mutex mu_;
  // The latest leadership the Raft node reported; the runtime thread waits (Await) for it to
  // differ from the applied one, or for Stop.
  bool want_leader_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t want_term_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // What the runtime thread last brought the components in line with.
  bool applied_leader_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t applied_term_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t terms_started_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace swarm::manager::leader

#endif  // SWARM_MANAGER_LEADER_RUNTIME_H_

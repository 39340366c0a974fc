// MemberReconciler: a leader-only component that keeps the managers' node objects in line
// with the Raft group as the leader sees it: the leader flag, reachability (a member not
// heard from for kUnreachableAfter is unreachable), and removes Raft members that no node
// object refers to any more (a manager removed with `node rm --force`), after a grace period
// that covers managers still joining (they record themselves once they are voters).
//
// Thread-safety: Start and Stop from one thread; the work runs on the component's thread.
#ifndef SWARM_MANAGER_LEADER_MEMBERS_H_
#define SWARM_MANAGER_LEADER_MEMBERS_H_

#include <map>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "manager/leader/runtime.h"
#include "manager/store/store.h"
#include "raft/node.h"

namespace swarm::manager::leader {

class MemberReconciler final : public Component {
 public:
  static constexpr absl::Duration kPeriod = absl::Milliseconds(500);
  static constexpr absl::Duration kUnreachableAfter = absl::Seconds(3);
  static constexpr absl::Duration kOrphanGrace = absl::Seconds(60);

  MemberReconciler(store::MemoryStore* store, raft::Node* raft, Clock* clock)
      : store_(store), raft_(raft), clock_(clock) {}
  ~MemberReconciler() override { Stop(); }

  const char* name() const override { return "member-reconciler"; }
  void Start() override;
  void Stop() override;

 private:
  void Run();
  void SyncManagerStatus(const raft::NodeStatus& rs);
  void RemoveOrphanMembers(const raft::NodeStatus& rs);

  store::MemoryStore* store_;
  raft::Node* raft_;
  Clock* clock_;
  absl::Mutex mu_;
  // Set by Stop(); the thread waits on it between rounds.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
  // Component thread only.
  std::map<uint64_t, absl::Time> last_seen_;
  std::map<uint64_t, absl::Time> unreferenced_since_;
};

}  // namespace swarm::manager::leader

#endif  // SWARM_MANAGER_LEADER_MEMBERS_H_

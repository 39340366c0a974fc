// Root CA rotation (`swarm ca --rotate`), as Docker swarm does it. The rotation lives in the
// replicated cluster object (RootCA.root_rotation: the new root's certificate and key, and the
// new root cross-signed by the old one), so it survives manager restarts and leader changes:
// - the control API starts one (StartRootRotation) when CAConfig.force_rotate grows or a new
//   signing root is given; a new --rotate during a rotation starts over towards a newer root;
// - while it runs, managers issue every certificate from the new root with the cross-signed
//   intermediate in the chain (SignerOf), nodes trust both roots (TrustBundle), and the CA
//   tells every node whose certificate is not from the new root to renew (NeedsNewRoot);
// - RootRotator, a leader-only component, retires the old root once every node uses a
//   certificate from the new one (UsesCertFrom, FinishRootRotation): the new root alone, new
//   join tokens (their digest is the new root's); nodes then drop the old root from their
//   trust.
// A node that is down holds a rotation up (it has an old certificate; once the old root is
// gone it could not come back): it must come back or be removed (`node rm --force`).
//
// Thread-safety: the functions are pure; RootRotator runs on its own thread.
#ifndef SWARM_MANAGER_CA_ROTATION_H_
#define SWARM_MANAGER_CA_ROTATION_H_

#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/random.h"
#include "manager/ca/ca.h"
#include "manager/leader/runtime.h"
#include "manager/store/store.h"

namespace swarm::manager::ca {

// The roots nodes must trust now: the cluster's, and during a rotation the new one after it.
std::string TrustBundle(const api::Cluster& cluster);

// What signs node certificates now, and what follows each certificate in its chain (the
// cross-signed new root during a rotation, nothing otherwise).
struct Signer {
  RootCA root;
  std::string chain_suffix;
};
absl::StatusOr<Signer> SignerOf(const api::Cluster& cluster);

// Starts a rotation on cluster (or starts over) when its spec asks for one: force_rotate
// differs from root_ca.last_forced_rotation, or ca_config.signing_ca_cert names a root that is
// neither the current one nor the one being rotated to. The new root is signing_ca_cert with
// signing_ca_key when given, a new one otherwise. Asking for the current root cancels a
// running rotation. INVALID_ARGUMENT / FAILED_PRECONDITION say what is wrong.
absl::Status MaybeStartRootRotation(api::Cluster* cluster, absl::Time now, Random& random);

// Whether node must renew because a rotation runs and it was issued no certificate from the
// new root, or still presents one from another root (it never received the new one).
bool NeedsNewRoot(const api::Cluster& cluster, const api::Node& node);

// The nodes that hold a running rotation up (they do not use a certificate from the new root,
// UsesCertFrom), in ID order; empty when none does or no rotation runs.
std::vector<std::string> NodesBlockingRotation(const api::Cluster& cluster,
                                               const std::vector<store::Ptr<api::Node>>& nodes);

// The new root becomes the cluster's alone, with new join tokens.
absl::Status FinishRootRotation(api::Cluster* cluster, Random& random);

// Leader-only: finishes a running rotation once no node holds it up (checked every kPeriod
// against the store).
class RootRotator final : public leader::Component {
 public:
  static constexpr absl::Duration kPeriod = absl::Milliseconds(500);

  RootRotator(store::MemoryStore* store, Clock* clock, Random* random)
      : store_(store), clock_(clock), random_(random) {}
  ~RootRotator() override { Stop(); }

  const char* name() const override { return "root-rotator"; }
  void Start() override;
  void Stop() override;

 private:
  void Run();
  // One round: finishes the rotation when it can; logs who holds it up when that changes.
  void Reconcile();

  store::MemoryStore* store_;
  Clock* clock_;
  Random* random_;
  absl::Mutex mu_;
  // Set by Stop(); the thread waits on it between rounds.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
  // Component thread only: the blocking nodes last logged.
  std::vector<std::string> last_blocking_;
};

}  // namespace swarm::manager::ca

#endif  // SWARM_MANAGER_CA_ROTATION_H_

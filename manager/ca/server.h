// CAServer: the CA and NodeCA services every manager serves. A node joins by presenting a join
// token and a CSR (over TLS that authenticates only the manager: the joining node has no
// certificate yet, and checks the manager's root against the digest in its token); a node
// renews by presenting its current certificate instead. Certificates are signed at once with
// the root CA kept in the Cluster object (replicated, encrypted in the Raft log), and each
// node's certificate and status are written to its Node object.
//
// Failed join attempts are logged with the caller's address and limited per address
// (kMaxFailuresPerMinute), so tokens cannot be guessed at speed.
//
// GetUnlockKey is not served yet (it answers UNIMPLEMENTED): it belongs to the key manager.
//
// Thread-safety: thread-safe; the store serializes writes, failures_mu_ guards the limiter.
#ifndef SWARM_MANAGER_CA_SERVER_H_
#define SWARM_MANAGER_CA_SERVER_H_

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/random.h"
#include "manager/ca/ca.h"
#include "manager/store/store.h"
#include "proto/ca.grpc.pb.h"

namespace swarm::manager::ca {

// The cluster object of a new swarm (`swarm init`): a fresh root CA and both join tokens.
absl::StatusOr<api::Cluster> NewCluster(const std::string& cluster_id, absl::Time now,
                                        Random& random);

// A new join token for role, replacing the old one (`swarm join-token --rotate`).
absl::Status RotateJoinToken(store::MemoryStore& store, api::NodeRole role, Random& random);

class CAServer final : public api::NodeCA::Service, public api::CA::Service {
 public:
  static constexpr int kMaxFailuresPerMinute = 5;

  CAServer(store::MemoryStore* store, Clock* clock, Random* random)
      : store_(store), clock_(clock), random_(random) {}

  grpc::Status GetRootCACertificate(grpc::ServerContext* ctx,
                                    const api::GetRootCACertificateRequest* req,
                                    api::GetRootCACertificateResponse* resp) override;
  grpc::Status IssueNodeCertificate(grpc::ServerContext* ctx,
                                    const api::IssueNodeCertificateRequest* req,
                                    api::IssueNodeCertificateResponse* resp) override;
  grpc::Status NodeCertificateStatus(grpc::ServerContext* ctx,
                                     const api::NodeCertificateStatusRequest* req,
                                     api::NodeCertificateStatusResponse* resp) override;

 private:
  absl::StatusOr<api::Cluster> Cluster() const;
  // RESOURCE_EXHAUSTED while addr has too many recent failures.
  absl::Status CheckRateLimit(const std::string& addr);
  void RecordFailure(const std::string& addr);

  store::MemoryStore* store_;
  Clock* clock_;
  Random* random_;
  absl::Mutex failures_mu_;
  // Times of the recent failed attempts, by caller address.
  std::map<std::string, std::vector<absl::Time>> failures_ ABSL_GUARDED_BY(failures_mu_);
};

}  // namespace swarm::manager::ca

#endif  // SWARM_MANAGER_CA_SERVER_H_

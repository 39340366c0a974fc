// The cluster's certificate authority and the secrets that let nodes in: the root CA
// (ECDSA P-256, self-signed, created at `swarm init`), node certificates signed from the nodes'
// own CSRs (the key never leaves the node), join tokens, certificate renewal timing, and the
// autolock key wrap. Pure functions over PEM strings and injected time and randomness; the
// manager's CA server, the key manager and the agent's certificate renewer build on it.
//
// Certificates name a node the way Docker swarm does: CN = node ID, OU = role
// ("swarm-manager" or "swarm-worker"), O = cluster ID.
//
// Thread-safety: RootCA is immutable after construction and safe to share.
#ifndef SWARM_MANAGER_CA_CA_H_
#define SWARM_MANAGER_CA_CA_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/random.h"

namespace swarm::manager::ca {

// kOperator is not a node's: operators' certificates for remote swarmctl (control API only).
enum class Role { kWorker, kManager, kOperator };
// "swarm-worker", "swarm-manager" or "swarm-operator", the OU of a certificate.
const char* RoleName(Role role);

inline constexpr absl::Duration kDefaultRootValidity = absl::Hours(24 * 365 * 20);
inline constexpr absl::Duration kDefaultNodeCertValidity = absl::Hours(24 * 90);

// A new ECDSA P-256 private key (PKCS#8 PEM).
absl::StatusOr<std::string> GenerateKey();
// A certificate signing request for key_pem. The CA fills in the subject itself.
absl::StatusOr<std::string> CreateCsr(const std::string& key_pem);

// Who a certificate says its holder is.
struct Identity {
  std::string node_id;
  Role role = Role::kWorker;
  std::string cluster_id;
  absl::Time not_before;
  absl::Time not_after;
};

class RootCA {
 public:
  // A new self-signed root for cluster_id, valid from now for validity.
  static absl::StatusOr<RootCA> Create(const std::string& cluster_id, absl::Duration validity,
                                       absl::Time now, Random& random);
  // A root from its PEM certificate and, on managers, its PEM key (empty: can only verify).
  static absl::StatusOr<RootCA> Load(const std::string& cert_pem, const std::string& key_pem);

  const std::string& cert_pem() const { return cert_pem_; }
  const std::string& key_pem() const { return key_pem_; }
  bool can_sign() const { return !key_pem_.empty(); }
  // SHA-256 of the certificate (DER), the digest join tokens carry.
  std::string Digest() const;

  // Signs csr_pem's public key into a certificate for node_id with the given role.
  absl::StatusOr<std::string> Issue(const std::string& csr_pem, const std::string& node_id,
                                    Role role, const std::string& cluster_id,
                                    absl::Duration validity, absl::Time now, Random& random) const;
  // Checks that cert_pem was signed by this root and is valid at now, and says whom it names.
  // Errors: PERMISSION_DENIED for a foreign, expired or not yet valid certificate;
  // INVALID_ARGUMENT for one that does not parse or lacks the node fields.
  absl::StatusOr<Identity> Verify(const std::string& cert_pem, absl::Time now) const;

 private:
  RootCA(std::string cert_pem, std::string key_pem)
      : cert_pem_(std::move(cert_pem)), key_pem_(std::move(key_pem)) {}
  std::string cert_pem_;
  std::string key_pem_;
};

// Join tokens: SWMTKN-1-<digest>-<secret>, the digest being the root certificate's SHA-256 in
// base 36 (50 characters) so that a joining node can check the CA it is shown, the secret 25
// random base 36 characters.
struct JoinToken {
  std::string digest;
  std::string secret;
};
std::string GenerateJoinToken(const RootCA& root, Random& random);
// INVALID_ARGUMENT naming what is wrong (prefix, version, digest length, secret length).
absl::StatusOr<JoinToken> ParseJoinToken(std::string_view token);
// Whether the token was made for this root.
bool TokenMatchesRoot(const JoinToken& token, const RootCA& root);

// When to renew a certificate: a random point between half and four fifths of its lifetime,
// so that the nodes of a cluster do not all renew at once.
absl::Time RenewalTime(absl::Time not_before, absl::Time not_after, Random& random);

// Autolock. The unlock key is SWMKEY-1-<43 characters of base64url> (32 random bytes); it is
// shown once and never stored. Keys at rest (the Raft DEK, the node's TLS key) are wrapped
// with a key encryption key derived from it (HKDF-SHA256).
std::string GenerateUnlockKey(Random& random);
// The 32 secret bytes of an unlock key; INVALID_ARGUMENT when it is malformed.
absl::StatusOr<std::string> ParseUnlockKey(std::string_view unlock_key);
std::string WrapKey(const std::string& unlock_secret, const std::string& key, Random& random);
// PERMISSION_DENIED "wrong unlock key" when the unlock key is not the one it was wrapped with.
absl::StatusOr<std::string> UnwrapKey(const std::string& unlock_secret, const std::string& wrapped);

}  // namespace swarm::manager::ca

#endif  // SWARM_MANAGER_CA_CA_H_

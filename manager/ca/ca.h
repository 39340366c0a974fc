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
#include <vector>

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
  // Without a key, cert_pem may be a bundle of roots (during a root rotation nodes trust the
  // old and the new one); with a key, the key must match the first certificate.
  static absl::StatusOr<RootCA> Load(const std::string& cert_pem, const std::string& key_pem);

  const std::string& cert_pem() const { return cert_pem_; }
  const std::string& key_pem() const { return key_pem_; }
  bool can_sign() const { return !key_pem_.empty(); }
  // SHA-256 of the (first) certificate (DER), the digest join tokens carry.
  std::string Digest() const;

  // Signs csr_pem's public key into a certificate for node_id with the given role.
  absl::StatusOr<std::string> Issue(const std::string& csr_pem, const std::string& node_id,
                                    Role role, const std::string& cluster_id,
                                    absl::Duration validity, absl::Time now, Random& random) const;
  // Checks that cert_pem chains to this root (one of them, for a bundle) and is valid at now,
  // and says whom it names. cert_pem is the node's certificate, maybe followed by
  // intermediates (the cross-signed new root during a rotation).
  // Errors: PERMISSION_DENIED for a foreign, expired or not yet valid certificate;
  // INVALID_ARGUMENT for one that does not parse or lacks the node fields.
  absl::StatusOr<Identity> Verify(const std::string& cert_pem, absl::Time now) const;

 private:
  RootCA(std::string cert_pem, std::string key_pem)
      : cert_pem_(std::move(cert_pem)), key_pem_(std::move(key_pem)) {}
  std::string cert_pem_;
  std::string key_pem_;
};

// Root CA rotation (`swarm ca --rotate`). While the swarm moves from an old root to a new one,
// nodes get certificates from the new root followed by the new root cross-signed by the old
// one: an intermediate with the new root's subject and key, issued by the old root. A node
// that still trusts only the old root accepts them through that intermediate; one that
// trusts the new root accepts them directly.
//
// The cross-signed certificate of new_root_pem by old_root (which must hold its key), valid
// as long as the new root.
absl::StatusOr<std::string> CrossSign(const RootCA& old_root, const std::string& new_root_pem,
                                      absl::Time now, Random& random);
// Whether the first certificate of cert_pem (a node's, maybe followed by intermediates) was
// signed directly by the key of root_pem's first certificate.
bool IssuedBy(const std::string& cert_pem, const std::string& root_pem);
// The certificates of a PEM bundle, each as PEM, in order.
std::vector<std::string> SplitPem(const std::string& bundle);
// The DER public key of a PEM certificate (the first of a bundle); empty if it does not parse.
std::string PublicKeyDer(const std::string& cert_pem);
// Who issued cert_pem among the roots of a PEM bundle (what a node's NodeTLSInfo records): the
// DER subject and public key of that root; both empty when none of them did.
struct Issuer {
  std::string subject_der;
  std::string public_key_der;
};
Issuer IssuerAmong(const std::string& cert_pem, const std::string& roots);
// Whether a node uses a certificate from root_pem: the CA issued it one (issued_cert), and the
// node has presented a certificate from that root since (presented_issuer_key, the public key
// of its NodeTLSInfo, recorded by GetRootCACertificate). An issued certificate alone is not
// enough: the answer carrying it may have been lost, and a node left on the old root of a
// rotation is cut off once that root is retired.
bool UsesCertFrom(const std::string& issued_cert, const std::string& presented_issuer_key,
                  const std::string& root_pem);

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

// Mutual TLS for every connection between nodes (gRPC's TLS credentials over the cluster's
// root CA), and the peer identity that authorizes each RPC. A node certificate names its
// holder as CN = node ID, OU = role ("swarm-manager" or "swarm-worker"; an operator's
// certificate has "swarm-operator" and a random CN), O = cluster ID
// (manager/ca issues them); servers require and verify client certificates, clients verify
// the server against the root and the role name in its SAN.
//
// Thread-safety: all functions are thread-safe.
#ifndef SWARM_COMMON_TLS_H_
#define SWARM_COMMON_TLS_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace swarm::tls {

inline constexpr char kManagerRole[] = "swarm-manager";
inline constexpr char kWorkerRole[] = "swarm-worker";
// Operators' certificates (`swarmctl swarm ca client-cert`): the control API over TCP and
// nothing else. They name no node: revocation of removed nodes does not touch them.
inline constexpr char kOperatorRole[] = "swarm-operator";

// PEM material of one node: the cluster's root certificate, the node's certificate and key.
struct Credentials {
  std::string root_pem;
  std::string cert_pem;
  std::string key_pem;
};

// Whether a server lets callers in without a certificate. Managers do, for nodes that are
// joining (they have a token, not a certificate yet); every RPC but the join then checks the
// caller's role, so a call without a certificate gets UNAUTHENTICATED.
enum class ClientCerts { kRequire, kOptional };
// Says whether a node's certificates are revoked (the node was removed from the swarm).
using RevokedFn = std::function<bool(const std::string& node_id)>;
// Server side: presents the node's certificate and verifies client certificates against the
// root (required or optional). With revoked, every call whose certificate names a revoked
// node is refused with PERMISSION_DENIED before any service sees it.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(
    const Credentials& c, ClientCerts clients = ClientCerts::kRequire, RevokedFn revoked = nullptr);
// Client side: presents the node's certificate (none when cert_pem is empty: a joining node)
// and verifies the server against the root.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const Credentials& c);
// Client side for the first step of a join only: TLS that accepts any server certificate.
// The caller must check what it learns (the root CA) against the join token's digest and
// then reconnect with ChannelCredentials.
std::shared_ptr<grpc::ChannelCredentials> UnverifiedChannelCredentials();
// Channel arguments for dialing a node whose certificate has the given role: the server's
// name is checked against that role (its SAN), not against the address dialed.
grpc::ChannelArguments ChannelArguments(std::string_view server_role = kManagerRole);

// A new ECDSA P-256 key (PEM) and a signing request for it (PEM, empty subject: the CA
// decides the subject), for a client that asks a CA for a certificate and keeps its key
// (swarmctl's operator certificate). Nodes use manager/ca's equivalents.
struct KeyAndCsr {
  std::string key_pem;
  std::string csr_pem;
};
absl::StatusOr<KeyAndCsr> GenerateKeyAndCsr();

// Who is on the other end of a call, from its verified certificate.
struct Peer {
  std::string node_id;
  std::string role;
  std::string cluster_id;
};

// UNAUTHENTICATED when the call carries no verified certificate.
absl::StatusOr<Peer> PeerOf(const grpc::ServerContextBase& context);
// The PEM certificate the caller presented (verified), if any.
std::optional<std::string> PeerCertificate(const grpc::ServerContextBase& context);
// OK when the peer has one of the roles; PERMISSION_DENIED naming the role needed otherwise.
absl::Status RequireRole(const grpc::ServerContextBase& context,
                         std::initializer_list<std::string_view> roles);

}  // namespace swarm::tls

#endif  // SWARM_COMMON_TLS_H_

// Mutual TLS for every connection between nodes (gRPC's TLS credentials over the cluster's
// root CA), and the peer identity that authorizes each RPC. A node certificate names its
// holder as CN = node ID, OU = role ("swarm-manager" or "swarm-worker"), O = cluster ID
// (manager/ca issues them); servers require and verify client certificates, clients verify
// the server against the root and the role name in its SAN.
//
// Thread-safety: all functions are thread-safe.
#ifndef SWARM_COMMON_TLS_H_
#define SWARM_COMMON_TLS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace swarm::tls {

inline constexpr char kManagerRole[] = "swarm-manager";
inline constexpr char kWorkerRole[] = "swarm-worker";

// PEM material of one node: the cluster's root certificate, the node's certificate and key.
struct Credentials {
  std::string root_pem;
  std::string cert_pem;
  std::string key_pem;
};

// Server side: presents the node's certificate and requires a client certificate that
// chains to the root.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const Credentials& c);
// Client side: presents the node's certificate and verifies the server against the root.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const Credentials& c);
// Channel arguments for dialing a node whose certificate has the given role: the server's
// name is checked against that role (its SAN), not against the address dialed.
grpc::ChannelArguments ChannelArguments(std::string_view server_role = kManagerRole);

// Who is on the other end of a call, from its verified certificate.
struct Peer {
  std::string node_id;
  std::string role;
  std::string cluster_id;
};

// UNAUTHENTICATED when the call carries no verified certificate.
absl::StatusOr<Peer> PeerOf(const grpc::ServerContext& context);
// OK when the peer has one of the roles; PERMISSION_DENIED naming the role needed otherwise.
absl::Status RequireRole(const grpc::ServerContext& context,
                         std::initializer_list<std::string_view> roles);

}  // namespace swarm::tls

#endif  // SWARM_COMMON_TLS_H_

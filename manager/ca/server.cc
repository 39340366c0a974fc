#include "manager/ca/server.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/id.h"
#include "common/logging.h"
#include "common/tls.h"
#include "manager/ca/rotation.h"

namespace swarm::manager::ca {
namespace {

Role FromApi(api::NodeRole r) {
  return r == api::NODE_ROLE_MANAGER ? Role::kManager : Role::kWorker;
}

// The node calls serve nodes: a caller with a certificate must hold a node's (an operator's
// certificate reaches the control API only). Joining nodes present none.
absl::Status RefuseNonNodes(const grpc::ServerContext& ctx) {
  absl::StatusOr<tls::Peer> peer = tls::PeerOf(ctx);
  if (!peer.ok() || peer->role == tls::kManagerRole || peer->role == tls::kWorkerRole) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "this call needs a ", tls::kManagerRole, " or ", tls::kWorkerRole, " certificate; ",
      peer->node_id, " presented ", peer->role.empty() ? "no role" : peer->role));
}

}  // namespace

absl::StatusOr<api::Cluster> NewCluster(const std::string& cluster_id, absl::Time now,
                                        Random& random) {
  auto root = RootCA::Create(cluster_id, kDefaultRootValidity, now, random);
  if (!root.ok()) return root.status();
  api::Cluster c;
  c.set_id(cluster_id);
  c.mutable_spec()->mutable_annotations()->set_name("default");
  api::RootCA* pb = c.mutable_root_ca();
  pb->set_ca_cert(root->cert_pem());
  pb->set_ca_key(root->key_pem());
  pb->mutable_join_tokens()->set_worker(GenerateJoinToken(*root, random));
  pb->mutable_join_tokens()->set_manager(GenerateJoinToken(*root, random));
  return c;
}

absl::Status RotateJoinToken(store::MemoryStore& store, api::NodeRole role, Random& random) {
  return store.Update([&](store::WriteTx& tx) -> absl::Status {
    auto clusters = tx.ListClusters();
    if (clusters.empty()) return absl::FailedPreconditionError("this node is not in a swarm");
    api::Cluster c = *clusters[0];
    auto root = RootCA::Load(c.root_ca().ca_cert(), "");
    if (!root.ok()) return root.status();
    const std::string token = GenerateJoinToken(*root, random);
    if (role == api::NODE_ROLE_MANAGER) {
      c.mutable_root_ca()->mutable_join_tokens()->set_manager(token);
    } else {
      c.mutable_root_ca()->mutable_join_tokens()->set_worker(token);
    }
    tx.UpdateObject(c);
    return absl::OkStatus();
  });
}

absl::StatusOr<api::Cluster> CAServer::Cluster() const {
  std::vector<store::Ptr<api::Cluster>> clusters;
  store_->View([&](const store::ReadTx& tx) { clusters = tx.ListClusters(); });
  if (clusters.empty()) {
    return absl::FailedPreconditionError(
        "this manager is not part of a swarm yet; run swarmctl swarm init or join first");
  }
  return *clusters[0];
}

grpc::Status CAServer::GetRootCACertificate(grpc::ServerContext* ctx,
                                            const api::GetRootCACertificateRequest* req,
                                            api::GetRootCACertificateResponse* resp) {
  auto c = Cluster();
  if (!c.ok()) return ToGrpcStatus(c.status());
  resp->set_certificate(TrustBundle(*c));
  // A node says what it trusts, and shows the certificate it uses: both recorded (when they
  // changed) for `swarm ca --rotate` to follow (UsesCertFrom).
  absl::StatusOr<tls::Peer> peer =
      ctx != nullptr ? tls::PeerOf(*ctx) : absl::UnauthenticatedError("");
  if (req->trust_root().empty() || !peer.ok()) return grpc::Status::OK;
  api::NodeTLSInfo info;
  info.set_trust_root(req->trust_root());
  if (std::optional<std::string> cert = tls::PeerCertificate(*ctx)) {
    Issuer issuer = IssuerAmong(*cert, TrustBundle(*c));
    info.set_cert_issuer_subject(std::move(issuer.subject_der));
    info.set_cert_issuer_public_key(std::move(issuer.public_key_der));
  }
  absl::Status s = store_->Update([&](store::WriteTx& tx) -> absl::Status {
    store::Ptr<api::Node> n = tx.GetNode(peer->node_id);
    if (!n || n->description().tls_info().SerializeAsString() == info.SerializeAsString()) {
      return absl::OkStatus();
    }
    api::Node next = *n;
    *next.mutable_description()->mutable_tls_info() = info;
    tx.UpdateObject(next);
    return absl::OkStatus();
  });
  if (!s.ok()) log::Warn("ca", "recording a node's trust root failed", {{"reason", s}});
  return grpc::Status::OK;
}

absl::Status CAServer::CheckRateLimit(const std::string& addr) {
  absl::MutexLock lock(&failures_mu_);
  auto& times = failures_[addr];
  const absl::Time cutoff = clock_->Now() - absl::Minutes(1);
  std::erase_if(times, [&](absl::Time t) { return t < cutoff; });
  if (static_cast<int>(times.size()) >= kMaxFailuresPerMinute) {
    return absl::ResourceExhaustedError(
        "too many failed join attempts from " + addr + "; wait a minute and check the token " +
        "(swarmctl swarm join-token worker|manager on a manager prints the current one)");
  }
  return absl::OkStatus();
}

void CAServer::RecordFailure(const std::string& addr) {
  absl::MutexLock lock(&failures_mu_);
  failures_[addr].push_back(clock_->Now());
}

grpc::Status CAServer::IssueNodeCertificate(grpc::ServerContext* ctx,
                                            const api::IssueNodeCertificateRequest* req,
                                            api::IssueNodeCertificateResponse* resp) {
  const std::string addr = ctx->peer();
  if (absl::Status s = RefuseNonNodes(*ctx); !s.ok()) return ToGrpcStatus(s);
  auto cluster = Cluster();
  if (!cluster.ok()) return ToGrpcStatus(cluster.status());
  auto root = RootCA::Load(cluster->root_ca().ca_cert(), "");
  if (!root.ok()) return ToGrpcStatus(root.status());
  auto signer = SignerOf(*cluster);
  if (!signer.ok()) return ToGrpcStatus(signer.status());

  std::string node_id;
  Role role;
  if (absl::StatusOr<tls::Peer> peer = tls::PeerOf(*ctx); peer.ok()) {
    // Renewal: the caller proves who it is with its current certificate; its role is the
    // one the cluster wants for it now (a promotion or demotion takes effect here).
    node_id = peer->node_id;
    store::Ptr<api::Node> node;
    store_->View([&](const store::ReadTx& tx) { node = tx.GetNode(node_id); });
    if (!node) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          "node " + node_id + " is no longer part of this swarm");
    }
    role = FromApi(node->spec().desired_role());
  } else {
    // Joining: the token decides the role.
    if (absl::Status s = CheckRateLimit(addr); !s.ok()) return ToGrpcStatus(s);
    auto token = ParseJoinToken(req->token());
    if (!token.ok()) {
      RecordFailure(addr);
      log::Warn("ca", "refused a join", {{"peer", addr}, {"reason", token.status()}});
      return ToGrpcStatus(token.status());
    }
    const auto& tokens = cluster->root_ca().join_tokens();
    if (req->token() == tokens.manager()) {
      role = Role::kManager;
    } else if (req->token() == tokens.worker()) {
      role = Role::kWorker;
    } else {
      RecordFailure(addr);
      log::Warn("ca", "refused a join with an invalid token", {{"peer", addr}});
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          TokenMatchesRoot(*token, *root)
                              ? "invalid join token: it was rotated or never valid; get the "
                                "current one with swarmctl swarm join-token worker|manager"
                              : "this join token does not belong to this swarm");
    }
    node_id = NewId(*random_);
  }

  const absl::Time now = clock_->Now();
  absl::Duration validity = kDefaultNodeCertValidity;
  if (cluster->spec().ca_config().has_node_cert_expiry()) {
    validity = absl::Seconds(cluster->spec().ca_config().node_cert_expiry().seconds());
  }
  auto leaf = signer->root.Issue(req->csr(), node_id, role, cluster->id(), validity, now, *random_);
  if (!leaf.ok()) return ToGrpcStatus(leaf.status());
  // During a rotation the chain carries the cross-signed new root for nodes on the old one.
  const std::string cert = *leaf + signer->chain_suffix;

  absl::Status s = store_->Update([&](store::WriteTx& tx) -> absl::Status {
    store::Ptr<api::Node> existing = tx.GetNode(node_id);
    api::Node node = existing ? *existing : api::Node();
    node.set_id(node_id);
    node.mutable_spec()->set_membership(api::NODE_MEMBERSHIP_ACCEPTED);
    if (!existing) {
      node.mutable_spec()->set_desired_role(role == Role::kManager ? api::NODE_ROLE_MANAGER
                                                                   : api::NODE_ROLE_WORKER);
      node.mutable_spec()->set_availability(req->availability());
      *node.mutable_description() = req->description();
    }
    node.set_role(role == Role::kManager ? api::NODE_ROLE_MANAGER : api::NODE_ROLE_WORKER);
    // A demoted manager is no Raft member any more (it left before renewing).
    if (role == Role::kWorker) node.clear_manager_status();
    api::Certificate* c = node.mutable_certificate();
    c->set_role(node.role());
    c->set_csr(req->csr());
    c->mutable_status()->set_state(api::ISSUANCE_STATE_ISSUED);
    c->set_certificate(cert);
    c->set_cn(node_id);
    c->set_force_rotate(cluster->spec().ca_config().force_rotate());
    if (existing) {
      tx.UpdateObject(node);
    } else {
      tx.CreateObject(node);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return ToGrpcStatus(s);
  log::Info("ca", "issued a node certificate",
            {{"node", node_id}, {"role", RoleName(role)}, {"peer", addr}});
  resp->set_node_id(node_id);
  resp->set_node_membership(api::NODE_MEMBERSHIP_ACCEPTED);
  return grpc::Status::OK;
}

grpc::Status CAServer::NodeCertificateStatus(grpc::ServerContext* ctx,
                                             const api::NodeCertificateStatusRequest* req,
                                             api::NodeCertificateStatusResponse* resp) {
  if (ctx != nullptr) {
    if (absl::Status s = RefuseNonNodes(*ctx); !s.ok()) return ToGrpcStatus(s);
  }
  store::Ptr<api::Node> node;
  store_->View([&](const store::ReadTx& tx) { node = tx.GetNode(req->node_id()); });
  if (!node) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "no node " + req->node_id() + " in this swarm");
  }
  *resp->mutable_status() = node->certificate().status();
  *resp->mutable_certificate() = node->certificate();
  // A promotion or demotion is waiting for the node, a forced rotation, or a root rotation
  // its certificate is not from yet: it renews its certificate (the renewal
  // issues the role the cluster wants, from the root it should).
  auto cluster = Cluster();
  const bool rotate = cluster.ok() && (node->certificate().force_rotate() <
                                           cluster->spec().ca_config().force_rotate() ||
                                       NeedsNewRoot(*cluster, *node));
  if (node->spec().desired_role() != node->role() || rotate) {
    resp->mutable_status()->set_state(api::ISSUANCE_STATE_RENEW);
  }
  return grpc::Status::OK;
}

}  // namespace swarm::manager::ca

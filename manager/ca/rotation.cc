#include "manager/ca/rotation.h"

#include <pthread.h>

#include <algorithm>

#include "absl/strings/str_join.h"
#include "common/logging.h"

namespace swarm::manager::ca {
namespace {
constexpr char kLog[] = "ca-rotation";
}  // namespace

std::string TrustBundle(const api::Cluster& cluster) {
  const api::RootCA& r = cluster.root_ca();
  if (!r.has_root_rotation()) return r.ca_cert();
  std::string bundle = r.ca_cert();
  if (!bundle.empty() && bundle.back() != '\n') bundle += '\n';
  return bundle + r.root_rotation().ca_cert();
}

absl::StatusOr<Signer> SignerOf(const api::Cluster& cluster) {
  const api::RootCA& r = cluster.root_ca();
  if (r.has_root_rotation()) {
    auto root = RootCA::Load(r.root_rotation().ca_cert(), r.root_rotation().ca_key());
    if (!root.ok()) return root.status();
    return Signer{*std::move(root), r.root_rotation().cross_signed_ca_cert()};
  }
  auto root = RootCA::Load(r.ca_cert(), r.ca_key());
  if (!root.ok()) return root.status();
  return Signer{*std::move(root), ""};
}

absl::Status MaybeStartRootRotation(api::Cluster* cluster, absl::Time now, Random& random) {
  const api::CAConfig& want = cluster->spec().ca_config();
  api::RootCA* r = cluster->mutable_root_ca();
  const bool forced = want.force_rotate() != r->last_forced_rotation();
  const std::string& given = want.signing_ca_cert();
  const bool to_current = !given.empty() && given == r->ca_cert();
  const bool new_root = !given.empty() && !to_current &&
                        (!r->has_root_rotation() || given != r->root_rotation().ca_cert());
  if (!forced && !new_root) {
    // Asking for the current root again (without --rotate) calls a rotation off.
    if (to_current && r->has_root_rotation()) {
      log::Info(kLog, "root rotation cancelled: the current root was asked for");
      r->clear_root_rotation();
    }
    return absl::OkStatus();
  }
  r->set_last_forced_rotation(want.force_rotate());
  if (to_current) {
    r->clear_root_rotation();
    return absl::OkStatus();
  }
  auto old_root = RootCA::Load(r->ca_cert(), r->ca_key());
  if (!old_root.ok() || !old_root->can_sign()) {
    return absl::FailedPreconditionError(
        "cannot rotate the root CA: this swarm does not hold its current root's key");
  }
  std::string cert = given;
  std::string key = want.signing_ca_key();
  if (cert.empty()) {
    auto fresh = RootCA::Create(cluster->id(), kDefaultRootValidity, now, random);
    if (!fresh.ok()) return fresh.status();
    cert = fresh->cert_pem();
    key = fresh->key_pem();
  } else if (key.empty()) {
    return absl::InvalidArgumentError(
        "--ca-cert needs --ca-key: this swarm signs node certificates itself, with the root's "
        "key");
  }
  auto next = RootCA::Load(cert, key);
  if (!next.ok()) {
    return absl::InvalidArgumentError("the new root CA cannot be used: " +
                                      std::string(next.status().message()));
  }
  auto cross = CrossSign(*old_root, cert, now, random);
  if (!cross.ok()) return cross.status();
  api::RootRotation* rot = r->mutable_root_rotation();
  rot->set_ca_cert(cert);
  rot->set_ca_key(key);
  rot->set_cross_signed_ca_cert(*cross);
  log::Info(kLog, "root rotation started", {{"forced", forced ? "yes" : "no"}});
  return absl::OkStatus();
}

bool NeedsNewRoot(const api::Cluster& cluster, const api::Node& node) {
  if (!cluster.root_ca().has_root_rotation()) return false;
  const std::string& new_root = cluster.root_ca().root_rotation().ca_cert();
  const std::string& presented = node.description().tls_info().cert_issuer_public_key();
  return !IssuedBy(node.certificate().certificate(), new_root) ||
         (!presented.empty() && presented != PublicKeyDer(new_root));
}

std::vector<std::string> NodesBlockingRotation(const api::Cluster& cluster,
                                               const std::vector<store::Ptr<api::Node>>& nodes) {
  std::vector<std::string> out;
  if (!cluster.root_ca().has_root_rotation()) return out;
  for (const auto& n : nodes) {
    if (!UsesCertFrom(n->certificate().certificate(),
                      n->description().tls_info().cert_issuer_public_key(),
                      cluster.root_ca().root_rotation().ca_cert())) {
      out.push_back(n->id());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status FinishRootRotation(api::Cluster* cluster, Random& random) {
  api::RootCA* r = cluster->mutable_root_ca();
  if (!r->has_root_rotation()) return absl::OkStatus();
  auto root = RootCA::Load(r->root_rotation().ca_cert(), r->root_rotation().ca_key());
  if (!root.ok()) return root.status();
  r->set_ca_cert(root->cert_pem());
  r->set_ca_key(root->key_pem());
  r->clear_root_rotation();
  r->mutable_join_tokens()->set_worker(GenerateJoinToken(*root, random));
  r->mutable_join_tokens()->set_manager(GenerateJoinToken(*root, random));
  return absl::OkStatus();
}

void RootRotator::Start() {
  thread_ = std::thread([this] { Run(); });
}

void RootRotator::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void RootRotator::Run() {
  pthread_setname_np(pthread_self(), "leader-rootca");
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), kPeriod);
      if (stopping_) return;
    }
    Reconcile();
  }
}

void RootRotator::Reconcile() {
  std::vector<std::string> blocking;
  bool running = false;
  store_->View([&](const store::ReadTx& tx) {
    auto clusters = tx.ListClusters();
    if (clusters.empty() || !clusters[0]->root_ca().has_root_rotation()) return;
    running = true;
    blocking = NodesBlockingRotation(*clusters[0], tx.ListNodes());
  });
  if (!running) return;
  if (!blocking.empty()) {
    if (blocking != last_blocking_) {
      log::Info(kLog, "root rotation waits for nodes to renew",
                {{"nodes", absl::StrJoin(blocking, ",")}});
    }
    last_blocking_ = blocking;
    return;
  }
  // The check is repeated in the transaction: a rotation started over meanwhile, or a node
  // that joined with an old certificate, keeps the old root.
  bool finished = false;
  absl::Status s = store_->Update([&](store::WriteTx& tx) -> absl::Status {
    auto clusters = tx.ListClusters();
    if (clusters.empty() || !clusters[0]->root_ca().has_root_rotation()) return absl::OkStatus();
    if (!NodesBlockingRotation(*clusters[0], tx.ListNodes()).empty()) return absl::OkStatus();
    api::Cluster c = *clusters[0];
    if (absl::Status f = FinishRootRotation(&c, *random_); !f.ok()) return f;
    tx.UpdateObject(c);
    finished = true;
    return absl::OkStatus();
  });
  if (!s.ok()) {
    log::Warn(kLog, "retiring the old root failed; will retry", {{"reason", s}});
    return;
  }
  last_blocking_.clear();
  if (finished) log::Info(kLog, "root rotation done: the old root is retired");
}

}  // namespace swarm::manager::ca

#include "cli/rotation_progress.h"

#include <openssl/sha.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "manager/ca/ca.h"

namespace swarm::cli {
namespace {

constexpr int kBarWidth = 50;

std::string Sha256(const std::string& data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return "sha256:" +
         absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(md), sizeof(md)));
}

std::string Bar(const char* label, int current, int total) {
  const int filled = total > 0 ? kBarWidth * current / total : 0;
  return absl::StrCat("  ", label, "[", std::string(filled, '='), ">",
                      std::string(kBarWidth - filled, ' '), "] ", current, "/", total, " nodes\n");
}

std::string NodeState(const api::Node& n) {
  const std::string name = api::NodeState_Name(n.status().state());
  return absl::AsciiStrToLower(absl::StripPrefix(name, "NODE_STATE_"));
}

}  // namespace

RotationView EvaluateRootRotation(const api::Cluster& cluster,
                                  const std::vector<api::Node>& nodes) {
  RotationView v;
  const api::RootCA& r = cluster.root_ca();
  v.running = r.has_root_rotation();
  const std::string& desired = v.running ? r.root_rotation().ca_cert() : r.ca_cert();
  v.desired_digest = Sha256(desired);
  v.total = static_cast<int>(nodes.size());
  for (const api::Node& n : nodes) {
    const bool cert =
        manager::ca::UsesCertFrom(n.certificate().certificate(),
                                  n.description().tls_info().cert_issuer_public_key(), desired);
    if (cert) ++v.certs_rotated;
    const std::string& trusted = n.description().tls_info().trust_root();
    // During the rotation a node should trust both roots; after it, the new one alone.
    const bool trust = v.running ? trusted.find(desired) != std::string::npos
                                 : manager::ca::SplitPem(trusted) == manager::ca::SplitPem(desired);
    if (trust) ++v.trust_rotated;
    if (!cert || !trust) {
      v.waiting_for.push_back(absl::StrCat(n.description().hostname(), " (", n.id(), ", ",
                                           NodeState(n), cert ? ", trusts the old root" : "", ")"));
    }
  }
  v.done = !v.running && v.certs_rotated == v.total && v.trust_rotated == v.total;
  return v;
}

std::string RenderRootRotation(const RotationView& v) {
  return absl::StrCat("desired root digest: ", v.desired_digest, "\n",
                      Bar("rotated TLS certificates:  ", v.certs_rotated, v.total),
                      Bar("rotated CA certificates:   ", v.trust_rotated, v.total));
}

}  // namespace swarm::cli

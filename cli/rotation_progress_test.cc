#include "cli/rotation_progress.h"

#include "gtest/gtest.h"
#include "manager/ca/ca.h"
#include "manager/ca/rotation.h"

namespace swarm::cli {
namespace {

using manager::ca::RootCA;

class RotationProgressTest : public ::testing::Test {
 protected:
  RotationProgressTest()
      : old_(*RootCA::Create("c1", manager::ca::kDefaultRootValidity, absl::Now(), random_)),
        new_(*RootCA::Create("c1", manager::ca::kDefaultRootValidity, absl::Now(), random_)) {
    cluster_.mutable_root_ca()->set_ca_cert(old_.cert_pem());
    api::RootRotation* r = cluster_.mutable_root_ca()->mutable_root_rotation();
    r->set_ca_cert(new_.cert_pem());
    r->set_cross_signed_ca_cert(
        *manager::ca::CrossSign(old_, new_.cert_pem(), absl::Now(), random_));
  }

  api::Node NodeOn(const RootCA& root, const std::string& id, const std::string& trust,
                   api::NodeState state = api::NODE_STATE_READY) {
    api::Node n;
    n.set_id(id);
    n.mutable_description()->set_hostname("host-" + id);
    n.mutable_status()->set_state(state);
    auto cert = root.Issue(*manager::ca::CreateCsr(*manager::ca::GenerateKey()), id,
                           manager::ca::Role::kWorker, "c1", absl::Hours(1), absl::Now(), random_);
    n.mutable_certificate()->set_certificate(*cert);
    n.mutable_description()->mutable_tls_info()->set_trust_root(trust);
    // The node presented it (GetRootCACertificate records the issuer).
    n.mutable_description()->mutable_tls_info()->set_cert_issuer_public_key(
        manager::ca::PublicKeyDer(root.cert_pem()));
    return n;
  }

  SeededRandom random_{4};
  RootCA old_;
  RootCA new_;
  api::Cluster cluster_;
};

TEST_F(RotationProgressTest, Evaluate_CountsNodesOnTheNewRootAndNamesTheOthers) {
  const std::string both = manager::ca::TrustBundle(cluster_);
  std::vector<api::Node> nodes = {NodeOn(new_, "a", both), NodeOn(old_, "b", old_.cert_pem()),
                                  NodeOn(old_, "c", both, api::NODE_STATE_DOWN)};
  RotationView v = EvaluateRootRotation(cluster_, nodes);
  EXPECT_TRUE(v.running);
  EXPECT_FALSE(v.done);
  EXPECT_EQ(v.total, 3);
  EXPECT_EQ(v.certs_rotated, 1);
  EXPECT_EQ(v.trust_rotated, 2);
  ASSERT_EQ(v.waiting_for.size(), 2u);
  EXPECT_EQ(v.waiting_for[1], "host-c (c, down)");
  const std::string text = RenderRootRotation(v);
  EXPECT_NE(text.find("desired root digest: sha256:"), std::string::npos) << text;
  EXPECT_NE(text.find("  rotated TLS certificates:  [================>"), std::string::npos)
      << text;
  EXPECT_NE(text.find("] 1/3 nodes\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  rotated CA certificates:   ["), std::string::npos) << text;
  EXPECT_NE(text.find("] 2/3 nodes\n"), std::string::npos) << text;
}

TEST_F(RotationProgressTest, Evaluate_DoneOnceTheOldRootIsRetiredAndNodesTrustTheNewOne) {
  api::Cluster after = cluster_;
  after.mutable_root_ca()->set_ca_cert(new_.cert_pem());
  after.mutable_root_ca()->clear_root_rotation();
  const std::string both = manager::ca::TrustBundle(cluster_);
  std::vector<api::Node> nodes = {NodeOn(new_, "a", new_.cert_pem()), NodeOn(new_, "b", both)};
  RotationView v = EvaluateRootRotation(after, nodes);
  EXPECT_FALSE(v.done);
  EXPECT_EQ(v.certs_rotated, 2);
  EXPECT_EQ(v.trust_rotated, 1);
  EXPECT_EQ(v.waiting_for, std::vector<std::string>{"host-b (b, ready, trusts the old root)"});
  nodes[1] = NodeOn(new_, "b", new_.cert_pem());
  v = EvaluateRootRotation(after, nodes);
  EXPECT_TRUE(v.done);
  EXPECT_NE(RenderRootRotation(v).find(std::string(50, '=') + ">] 2/2 nodes"), std::string::npos);
}

}  // namespace
}  // namespace swarm::cli

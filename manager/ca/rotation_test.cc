#include "manager/ca/rotation.h"

#include "gtest/gtest.h"
#include "manager/ca/server.h"

namespace swarm::manager::ca {
namespace {

class RotationStateTest : public ::testing::Test {
 protected:
  RotationStateTest() : store_(&proposer_, &clock_), server_(&store_, &clock_, &random_) {
    proposer_.set_store(&store_);
    cluster_ = *NewCluster("cluster-1", clock_.Now(), random_);
    EXPECT_TRUE(Write([&](store::WriteTx& tx) { tx.CreateObject(cluster_); }).ok());
  }

  absl::Status Write(const std::function<void(store::WriteTx&)>& f) {
    return store_.Update([&](store::WriteTx& tx) {
      f(tx);
      return absl::OkStatus();
    });
  }
  api::Cluster Stored() {
    api::Cluster c;
    store_.View([&](const store::ReadTx& tx) { c = *tx.ListClusters()[0]; });
    return c;
  }
  api::Node StoredNode(const std::string& id) {
    api::Node n;
    store_.View([&](const store::ReadTx& tx) { n = *tx.GetNode(id); });
    return n;
  }
  // `swarm ca --rotate`: force_rotate grows, as the control API applies it.
  void Rotate(const std::string& cert = "", const std::string& key = "") {
    api::Cluster c = Stored();
    api::CAConfig* ca = c.mutable_spec()->mutable_ca_config();
    ca->set_force_rotate(ca->force_rotate() + 1);
    ca->set_signing_ca_cert(cert);
    ca->set_signing_ca_key(key);
    ASSERT_TRUE(MaybeStartRootRotation(&c, clock_.Now(), random_).ok());
    ASSERT_TRUE(Write([&](store::WriteTx& tx) { tx.UpdateObject(c); }).ok());
  }
  // A node joins (or renews, when it has an ID) through the CA server; returns its ID.
  std::string Join() {
    api::IssueNodeCertificateRequest req;
    req.set_token(Stored().root_ca().join_tokens().worker());
    req.set_csr(*CreateCsr(*GenerateKey()));
    grpc::ServerContext ctx;
    api::IssueNodeCertificateResponse resp;
    grpc::Status s = server_.IssueNodeCertificate(&ctx, &req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.node_id();
  }
  bool RenewWanted(const std::string& id) {
    api::NodeCertificateStatusRequest req;
    req.set_node_id(id);
    api::NodeCertificateStatusResponse resp;
    EXPECT_TRUE(server_.NodeCertificateStatus(nullptr, &req, &resp).ok());
    return resp.status().state() == api::ISSUANCE_STATE_RENEW;
  }
  // What GetRootCACertificate records when the node calls it with the certificate it holds.
  void Present(const std::string& id, const std::string& cert) {
    api::Node n = StoredNode(id);
    Issuer issuer = IssuerAmong(cert, TrustBundle(Stored()));
    n.mutable_description()->mutable_tls_info()->set_cert_issuer_public_key(issuer.public_key_der);
    ASSERT_TRUE(Write([&](store::WriteTx& tx) { tx.UpdateObject(n); }).ok());
  }
  // What a renewal does to the node object: a certificate from the signer of the moment; the
  // node presents it next unless the answer carrying it was lost.
  void Renew(const std::string& id, bool received = true) {
    api::Cluster c = Stored();
    auto signer = SignerOf(c);
    ASSERT_TRUE(signer.ok()) << signer.status();
    auto leaf = signer->root.Issue(*CreateCsr(*GenerateKey()), id, Role::kWorker, c.id(),
                                   kDefaultNodeCertValidity, clock_.Now(), random_);
    ASSERT_TRUE(leaf.ok());
    api::Node n = StoredNode(id);
    n.mutable_certificate()->set_certificate(*leaf + signer->chain_suffix);
    n.mutable_certificate()->set_force_rotate(c.spec().ca_config().force_rotate());
    ASSERT_TRUE(Write([&](store::WriteTx& tx) { tx.UpdateObject(n); }).ok());
    if (received) Present(id, n.certificate().certificate());
  }

  FakeClock clock_;
  SeededRandom random_{8};
  store::LocalProposer proposer_;
  store::MemoryStore store_;
  CAServer server_;
  api::Cluster cluster_;
};

TEST_F(RotationStateTest, Start_NewRootCrossSignedAndBothTrusted) {
  const std::string old_root = Stored().root_ca().ca_cert();
  Rotate();
  const api::Cluster c = Stored();
  ASSERT_TRUE(c.root_ca().has_root_rotation());
  EXPECT_EQ(c.root_ca().ca_cert(), old_root);  // retired only at the end
  const api::RootRotation& r = c.root_ca().root_rotation();
  EXPECT_NE(r.ca_cert(), old_root);
  EXPECT_FALSE(r.ca_key().empty());
  EXPECT_EQ(SplitPem(TrustBundle(c)).size(), 2u);
  EXPECT_EQ(c.root_ca().last_forced_rotation(), c.spec().ca_config().force_rotate());
  // An update that changes nothing else starts nothing.
  api::Cluster again = c;
  ASSERT_TRUE(MaybeStartRootRotation(&again, clock_.Now(), random_).ok());
  EXPECT_EQ(again.root_ca().root_rotation().ca_cert(), r.ca_cert());
}

TEST_F(RotationStateTest, Issue_DuringRotationChainsToEitherRoot) {
  Rotate();
  const std::string id = Join();
  const api::Cluster c = Stored();
  const std::string cert = StoredNode(id).certificate().certificate();
  EXPECT_TRUE(IssuedBy(cert, c.root_ca().root_rotation().ca_cert()));
  EXPECT_TRUE(RootCA::Load(c.root_ca().ca_cert(), "")->Verify(cert, clock_.Now()).ok());
  EXPECT_TRUE(
      RootCA::Load(c.root_ca().root_rotation().ca_cert(), "")->Verify(cert, clock_.Now()).ok());
  EXPECT_FALSE(RenewWanted(id));
}

TEST_F(RotationStateTest, Rotator_FinishesOnceEveryNodeIsOnTheNewRoot) {
  const std::string a = Join();
  const std::string b = Join();
  const std::string b_old_cert = StoredNode(b).certificate().certificate();
  Present(b, b_old_cert);
  const std::string old_token = Stored().root_ca().join_tokens().worker();
  Rotate();
  EXPECT_TRUE(RenewWanted(a));
  EXPECT_EQ(
      NodesBlockingRotation(Stored(),
                            [&] {
                              std::vector<store::Ptr<api::Node>> n;
                              store_.View([&](const store::ReadTx& tx) { n = tx.ListNodes(); });
                              return n;
                            }()),
      (std::vector<std::string>{std::min(a, b), std::max(a, b)}));

  RootRotator rotator(&store_, &clock_, &random_);
  rotator.Start();
  Renew(a);
  EXPECT_FALSE(RenewWanted(a));
  absl::SleepFor(RootRotator::kPeriod * 2);
  EXPECT_TRUE(Stored().root_ca().has_root_rotation()) << "b still holds an old certificate";

  // b is issued a new certificate but never receives it: it still presents the old one, is
  // told to renew, and the rotation waits (retiring the old root would cut b off).
  const std::string new_root = Stored().root_ca().root_rotation().ca_cert();
  Renew(b, /*received=*/false);
  EXPECT_TRUE(RenewWanted(b));
  absl::SleepFor(RootRotator::kPeriod * 2);
  EXPECT_TRUE(Stored().root_ca().has_root_rotation()) << "b does not use its new certificate";
  Present(b, StoredNode(b).certificate().certificate());
  EXPECT_FALSE(RenewWanted(b));
  for (int i = 0; i < 50 && Stored().root_ca().has_root_rotation(); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  rotator.Stop();
  const api::Cluster c = Stored();
  ASSERT_FALSE(c.root_ca().has_root_rotation());
  EXPECT_EQ(c.root_ca().ca_cert(), new_root);
  EXPECT_EQ(TrustBundle(c), new_root);
  auto token = ParseJoinToken(c.root_ca().join_tokens().worker());
  ASSERT_TRUE(token.ok());
  EXPECT_TRUE(TokenMatchesRoot(*token, *RootCA::Load(new_root, "")));
  EXPECT_NE(c.root_ca().join_tokens().worker(), old_token);
  // After the rotation, certificates come from the new root alone.
  const std::string d = Join();
  EXPECT_TRUE(IssuedBy(StoredNode(d).certificate().certificate(), new_root));
  EXPECT_EQ(SplitPem(StoredNode(d).certificate().certificate()).size(), 1u);
}

TEST_F(RotationStateTest, Start_AgainDuringARotationStartsOverAndTheCurrentRootCancels) {
  const std::string current = Stored().root_ca().ca_cert();
  Rotate();
  const std::string first = Stored().root_ca().root_rotation().ca_cert();
  Rotate();
  const api::Cluster c = Stored();
  EXPECT_NE(c.root_ca().root_rotation().ca_cert(), first);
  // The cross-signed certificate is always from the current root.
  EXPECT_TRUE(IssuedBy(c.root_ca().root_rotation().cross_signed_ca_cert(), current));

  api::Cluster back = c;
  back.mutable_spec()->mutable_ca_config()->set_signing_ca_cert(current);
  ASSERT_TRUE(MaybeStartRootRotation(&back, clock_.Now(), random_).ok());
  EXPECT_FALSE(back.root_ca().has_root_rotation());
}

TEST_F(RotationStateTest, Start_ExternalRootNeedsItsKey) {
  SeededRandom r(3);
  RootCA mine = *RootCA::Create("cluster-1", kDefaultRootValidity, clock_.Now(), r);
  api::Cluster c = Stored();
  api::CAConfig* ca = c.mutable_spec()->mutable_ca_config();
  ca->set_force_rotate(ca->force_rotate() + 1);
  ca->set_signing_ca_cert(mine.cert_pem());
  absl::Status s = MaybeStartRootRotation(&c, clock_.Now(), random_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(s.message()).find("--ca-key"), std::string::npos) << s;

  ca->set_signing_ca_key(mine.key_pem());
  ASSERT_TRUE(MaybeStartRootRotation(&c, clock_.Now(), random_).ok());
  EXPECT_EQ(c.root_ca().root_rotation().ca_cert(), mine.cert_pem());
}

}  // namespace
}  // namespace swarm::manager::ca

#include "manager/ca/ca.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "gtest/gtest.h"

namespace swarm::manager::ca {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

class CaTest : public ::testing::Test {
 protected:
  CaTest() : root_(*RootCA::Create("cluster-1", kDefaultRootValidity, kNow, random_)) {}

  std::string IssueFor(const std::string& node, Role role,
                       absl::Duration validity = kDefaultNodeCertValidity) {
    auto key = GenerateKey();
    EXPECT_TRUE(key.ok());
    auto csr = CreateCsr(*key);
    EXPECT_TRUE(csr.ok());
    auto cert = root_.Issue(*csr, node, role, "cluster-1", validity, kNow, random_);
    EXPECT_TRUE(cert.ok()) << cert.status();
    return *cert;
  }

  SeededRandom random_{11};
  RootCA root_;
};

TEST_F(CaTest, Issue_NamesNodeRoleAndCluster) {
  auto id = root_.Verify(IssueFor("node-a", Role::kManager), kNow);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->node_id, "node-a");
  EXPECT_EQ(id->role, Role::kManager);
  EXPECT_EQ(id->cluster_id, "cluster-1");
  EXPECT_EQ(id->not_after - kNow, kDefaultNodeCertValidity);
  auto worker = root_.Verify(IssueFor("node-b", Role::kWorker), kNow);
  ASSERT_TRUE(worker.ok());
  EXPECT_EQ(worker->role, Role::kWorker);
}

// Operators' certificates (remote swarmctl) say so in their OU and cannot serve TLS.
TEST_F(CaTest, Issue_OperatorCertificatesAreClientOnly) {
  const std::string pem = IssueFor("op-1", Role::kOperator);
  auto id = root_.Verify(pem, kNow);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->role, Role::kOperator);
  EXPECT_EQ(std::string(RoleName(Role::kOperator)), "swarm-operator");
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(X509_get_extended_key_usage(cert), static_cast<uint32_t>(XKU_SSL_CLIENT));
  X509_free(cert);
}

TEST_F(CaTest, Verify_RefusesForeignExpiredAndFutureCertificates) {
  SeededRandom r(3);
  RootCA other = *RootCA::Create("cluster-2", kDefaultRootValidity, kNow, r);
  const std::string cert = IssueFor("node-a", Role::kWorker, absl::Hours(1));
  EXPECT_EQ(other.Verify(cert, kNow).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(root_.Verify(cert, kNow + absl::Hours(2)).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_NE(
      std::string(root_.Verify(cert, kNow + absl::Hours(2)).status().message()).find("expired"),
      std::string::npos);
  EXPECT_EQ(root_.Verify(cert, kNow - absl::Hours(1)).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(root_.Verify("not a certificate", kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CaTest, Issue_RefusesBadCsrs) {
  EXPECT_EQ(root_.Issue("garbage", "n", Role::kWorker, "c", absl::Hours(1), kNow, random_)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  std::string csr = *CreateCsr(*GenerateKey());
  // Tamper with the base64 body: the signature no longer verifies (or it no longer parses).
  csr[csr.size() / 2] = csr[csr.size() / 2] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(root_.Issue(csr, "n", Role::kWorker, "c", absl::Hours(1), kNow, random_).ok());
  // A root loaded without its key can verify but not sign.
  RootCA verify_only = *RootCA::Load(root_.cert_pem(), "");
  EXPECT_EQ(
      verify_only
          .Issue(*CreateCsr(*GenerateKey()), "n", Role::kWorker, "c", absl::Hours(1), kNow, random_)
          .status()
          .code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(verify_only.Verify(IssueFor("n", Role::kWorker), kNow).ok());
}

TEST_F(CaTest, Load_RefusesAMismatchedKey) {
  EXPECT_EQ(RootCA::Load(root_.cert_pem(), *GenerateKey()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(RootCA::Load(root_.cert_pem(), root_.key_pem()).ok());
}

TEST_F(CaTest, RenewalTime_FallsBetweenHalfAndFourFifths) {
  const absl::Time start = kNow;
  const absl::Time end = kNow + absl::Hours(24 * 90);
  absl::Time lo = absl::InfiniteFuture(), hi = absl::InfinitePast();
  for (int i = 0; i < 1000; ++i) {
    absl::Time t = RenewalTime(start, end, random_);
    ASSERT_GE(t, start + absl::Hours(24 * 45));
    ASSERT_LE(t, start + absl::Hours(24 * 72));
    lo = std::min(lo, t);
    hi = std::max(hi, t);
  }
  // Spread over the window, not bunched.
  EXPECT_GT(hi - lo, absl::Hours(24 * 20));
}

TEST_F(CaTest, JoinToken_RoundTripAndRootCheck) {
  const std::string token = GenerateJoinToken(root_, random_);
  EXPECT_EQ(token.substr(0, 9), "SWMTKN-1-");
  EXPECT_EQ(token.size(), 9 + 50 + 1 + 25);
  auto parsed = ParseJoinToken(token);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(TokenMatchesRoot(*parsed, root_));
  SeededRandom r(5);
  EXPECT_FALSE(TokenMatchesRoot(*parsed, *RootCA::Create("x", absl::Hours(1), kNow, r)));
  EXPECT_NE(GenerateJoinToken(root_, random_), token);  // fresh secret each time
}

TEST_F(CaTest, JoinToken_MalformedTokensSayWhatIsWrong) {
  const std::string good = GenerateJoinToken(root_, random_);
  const std::string digest = good.substr(9, 50);
  const std::string secret = good.substr(60);
  struct Case {
    std::string token;
    std::string says;
  } cases[] = {
      {"", "does not start with SWMTKN"},
      {"XXXTKN-1-" + digest + "-" + secret, "does not start with SWMTKN"},
      {"SWMTKN-2-" + digest + "-" + secret, "unsupported version"},
      {"SWMTKN-1-" + digest.substr(1) + "-" + secret, "49 characters instead of 50"},
      {"SWMTKN-1-" + digest + "-" + secret + "a", "26 characters instead of 25"},
      {"SWMTKN-1-" + digest.substr(0, 49) + "Z-" + secret, "instead of 50"},
      {"SWMTKN-1-" + digest, "it has 3 parts separated by '-' instead of 4"},
  };
  for (const Case& c : cases) {
    auto parsed = ParseJoinToken(c.token);
    ASSERT_FALSE(parsed.ok()) << c.token;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(parsed.status().message()).find(c.says), std::string::npos)
        << c.token << " -> " << parsed.status();
  }
}

TEST_F(CaTest, UnlockKey_WrapAndUnwrap) {
  const std::string key = GenerateUnlockKey(random_);
  EXPECT_EQ(key.substr(0, 9), "SWMKEY-1-");
  auto secret = ParseUnlockKey(key);
  ASSERT_TRUE(secret.ok()) << secret.status();
  const std::string dek(32, 'k');
  const std::string wrapped = WrapKey(*secret, dek, random_);
  EXPECT_EQ(wrapped.find(dek), std::string::npos);
  EXPECT_EQ(*UnwrapKey(*secret, wrapped), dek);

  auto other = ParseUnlockKey(GenerateUnlockKey(random_));
  absl::StatusOr<std::string> wrong = UnwrapKey(*other, wrapped);
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(std::string(wrong.status().message()).find("wrong unlock key"), std::string::npos);
}

TEST_F(CaTest, UnlockKey_MalformedKeysAreRefused) {
  const std::string good = GenerateUnlockKey(random_);
  for (const std::string& bad :
       {std::string(""), std::string("SWMKEY-2-abc"), good.substr(0, good.size() - 2), good + "xx",
        good.substr(0, 20) + "!" + good.substr(21)}) {
    EXPECT_EQ(ParseUnlockKey(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

// ---- root rotation ----

class RotationTest : public CaTest {
 protected:
  RotationTest()
      : new_root_(*RootCA::Create("cluster-1", kDefaultRootValidity, kNow, random_)),
        cross_(*CrossSign(root_, new_root_.cert_pem(), kNow, random_)) {}

  // A node certificate from the new root, followed by the cross-signed intermediate.
  std::string IssueFromNewRoot(const std::string& node) {
    auto csr = CreateCsr(*GenerateKey());
    auto cert = new_root_.Issue(*csr, node, Role::kWorker, "cluster-1", kDefaultNodeCertValidity,
                                kNow, random_);
    EXPECT_TRUE(cert.ok()) << cert.status();
    return *cert + cross_;
  }

  RootCA new_root_;
  std::string cross_;
};

TEST_F(RotationTest, CrossSign_OldRootOnlyNodeAcceptsNewLeafThroughTheIntermediate) {
  const std::string chain = IssueFromNewRoot("node-a");
  auto id = root_.Verify(chain, kNow);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->node_id, "node-a");
  // Without the intermediate, the old root cannot tell who signed it.
  const std::string leaf = SplitPem(chain)[0];
  EXPECT_EQ(root_.Verify(leaf, kNow).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(RotationTest, CrossSign_NewRootOnlyNodeAcceptsNewLeafDirectly) {
  const std::string chain = IssueFromNewRoot("node-b");
  auto id = new_root_.Verify(chain, kNow);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->node_id, "node-b");
  EXPECT_TRUE(new_root_.Verify(SplitPem(chain)[0], kNow).ok());
  // An old-root leaf is not accepted by the new root alone.
  EXPECT_EQ(new_root_.Verify(IssueFor("node-c", Role::kWorker), kNow).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(RotationTest, Bundle_TrustsLeavesOfBothRoots) {
  auto both = RootCA::Load(root_.cert_pem() + new_root_.cert_pem(), "");
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_TRUE(both->Verify(IssueFor("old-leaf", Role::kManager), kNow).ok());
  EXPECT_TRUE(both->Verify(IssueFromNewRoot("new-leaf"), kNow).ok());
  EXPECT_TRUE(both->Verify(SplitPem(IssueFromNewRoot("bare"))[0], kNow).ok());
  // The digest (join tokens) is the first root's.
  EXPECT_EQ(both->Digest(), root_.Digest());
  EXPECT_EQ(SplitPem(both->cert_pem()).size(), 2u);
}

TEST_F(RotationTest, CrossSign_IntermediateFromAnotherRootIsNotAccepted) {
  SeededRandom r(5);
  RootCA foreign = *RootCA::Create("cluster-1", kDefaultRootValidity, kNow, r);
  // An intermediate for the new root signed by a root the node does not trust.
  const std::string forged = *CrossSign(foreign, new_root_.cert_pem(), kNow, r);
  const std::string chain = SplitPem(IssueFromNewRoot("node-x"))[0] + forged;
  EXPECT_EQ(root_.Verify(chain, kNow).status().code(), absl::StatusCode::kPermissionDenied);
  // Cross-signing needs the old root's key.
  auto public_only = RootCA::Load(root_.cert_pem(), "");
  EXPECT_EQ(CrossSign(*public_only, new_root_.cert_pem(), kNow, r).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(RotationTest, IssuedBy_NamesTheRootThatSignedTheLeaf) {
  const std::string chain = IssueFromNewRoot("node-d");
  EXPECT_TRUE(IssuedBy(chain, new_root_.cert_pem()));
  EXPECT_FALSE(IssuedBy(chain, root_.cert_pem()));
  const std::string old_leaf = IssueFor("node-e", Role::kWorker);
  EXPECT_TRUE(IssuedBy(old_leaf, root_.cert_pem()));
  EXPECT_FALSE(IssuedBy(old_leaf, new_root_.cert_pem()));
  EXPECT_FALSE(IssuedBy("not pem", root_.cert_pem()));
}

}  // namespace
}  // namespace swarm::manager::ca

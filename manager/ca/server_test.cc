#include "manager/ca/server.h"

#include "common/id.h"
#include "gtest/gtest.h"

namespace swarm::manager::ca {
namespace {

class CAServerTest : public ::testing::Test {
 protected:
  CAServerTest() : store_(&proposer_, &clock_), server_(&store_, &clock_, &random_) {
    proposer_.set_store(&store_);
    auto cluster = NewCluster("cluster-1", clock_.Now(), random_);
    EXPECT_TRUE(cluster.ok());
    cluster_ = *cluster;
    EXPECT_TRUE(store_
                    .Update([&](store::WriteTx& tx) {
                      tx.CreateObject(cluster_);
                      return absl::OkStatus();
                    })
                    .ok());
    root_ = *RootCA::Load(cluster_.root_ca().ca_cert(), "");
  }

  grpc::Status Join(const std::string& token, api::IssueNodeCertificateResponse* resp = nullptr) {
    api::IssueNodeCertificateRequest req;
    req.set_token(token);
    req.set_csr(*CreateCsr(*GenerateKey()));
    grpc::ServerContext ctx;
    api::IssueNodeCertificateResponse r;
    return server_.IssueNodeCertificate(&ctx, &req, resp ? resp : &r);
  }

  std::string CurrentToken(bool manager) {
    std::vector<store::Ptr<api::Cluster>> c;
    store_.View([&](const store::ReadTx& tx) { c = tx.ListClusters(); });
    return manager ? c[0]->root_ca().join_tokens().manager()
                   : c[0]->root_ca().join_tokens().worker();
  }

  FakeClock clock_;
  SeededRandom random_{5};
  store::LocalProposer proposer_;
  store::MemoryStore store_;
  CAServer server_;
  api::Cluster cluster_;
  std::optional<RootCA> root_;
};

TEST_F(CAServerTest, Join_TokenDecidesTheRoleAndTheNodeIsRecorded) {
  for (bool manager : {false, true}) {
    api::IssueNodeCertificateResponse resp;
    grpc::Status s = Join(CurrentToken(manager), &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_TRUE(IsValidId(resp.node_id()));

    grpc::ServerContext ctx;
    api::NodeCertificateStatusRequest req;
    req.set_node_id(resp.node_id());
    api::NodeCertificateStatusResponse status;
    ASSERT_TRUE(server_.NodeCertificateStatus(&ctx, &req, &status).ok());
    EXPECT_EQ(status.status().state(), api::ISSUANCE_STATE_ISSUED);
    auto id = root_->Verify(status.certificate().certificate(), clock_.Now());
    ASSERT_TRUE(id.ok()) << id.status();
    EXPECT_EQ(id->node_id, resp.node_id());
    EXPECT_EQ(id->role, manager ? Role::kManager : Role::kWorker);
    EXPECT_EQ(id->cluster_id, "cluster-1");
  }
  store_.View([](const store::ReadTx& tx) { EXPECT_EQ(tx.ListNodes().size(), 2u); });
}

TEST_F(CAServerTest, Join_BadTokensGetClearErrors) {
  grpc::Status s = Join("SWMTKN-1-garbage");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("invalid join token"), std::string::npos);

  // Right swarm, wrong secret.
  std::string wrong = CurrentToken(false);
  wrong.back() = wrong.back() == 'a' ? 'b' : 'a';
  s = Join(wrong);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("rotated or never valid"), std::string::npos);

  // Another swarm's token.
  SeededRandom r(99);
  api::Cluster other = *NewCluster("cluster-2", clock_.Now(), r);
  s = Join(other.root_ca().join_tokens().worker());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("does not belong to this swarm"), std::string::npos);
  store_.View([](const store::ReadTx& tx) { EXPECT_TRUE(tx.ListNodes().empty()); });
}

TEST_F(CAServerTest, RotatedTokenStopsWorking) {
  const std::string old_worker = CurrentToken(false);
  const std::string manager = CurrentToken(true);
  ASSERT_TRUE(RotateJoinToken(store_, api::NODE_ROLE_WORKER, random_).ok());
  EXPECT_EQ(Join(old_worker).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Join(CurrentToken(false)).ok());
  EXPECT_TRUE(Join(manager).ok());  // the other token is untouched
}

TEST_F(CAServerTest, RepeatedFailuresFromOneAddressAreLimited) {
  std::string wrong = CurrentToken(false);
  wrong.back() = wrong.back() == 'a' ? 'b' : 'a';
  for (int i = 0; i < CAServer::kMaxFailuresPerMinute; ++i) {
    EXPECT_EQ(Join(wrong).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  // Even the right token waits now.
  grpc::Status s = Join(CurrentToken(false));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("too many failed join attempts"), std::string::npos);
  clock_.Advance(absl::Seconds(61));
  EXPECT_TRUE(Join(CurrentToken(false)).ok());
}

TEST_F(CAServerTest, RootCertificateIsServedWithoutTheKey) {
  grpc::ServerContext ctx;
  api::GetRootCACertificateRequest req;
  api::GetRootCACertificateResponse resp;
  ASSERT_TRUE(server_.GetRootCACertificate(&ctx, &req, &resp).ok());
  EXPECT_EQ(resp.certificate(), cluster_.root_ca().ca_cert());
  EXPECT_EQ(resp.certificate().find("PRIVATE KEY"), std::string::npos);
}

}  // namespace
}  // namespace swarm::manager::ca

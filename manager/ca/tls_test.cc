// Mutual TLS between nodes with certificates from the cluster's CA: role checks on calls, and
// refusal of foreign, expired and missing certificates.
#include "common/tls.h"

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "manager/ca/ca.h"
#include "proto/health.grpc.pb.h"

namespace swarm::manager::ca {
namespace {

// A service that only managers may call.
class ManagersOnly final : public api::Health::Service {
  grpc::Status Check(grpc::ServerContext* ctx, const api::HealthCheckRequest*,
                     api::HealthCheckResponse* resp) override {
    absl::Status s = tls::RequireRole(*ctx, {tls::kManagerRole});
    if (!s.ok()) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, std::string(s.message()));
    }
    resp->set_status(api::SERVING_STATUS_SERVING);
    return grpc::Status::OK;
  }
};

class TlsTest : public ::testing::Test {
 protected:
  TlsTest() : root_(*RootCA::Create("cluster-1", kDefaultRootValidity, absl::Now(), random_)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0",
                             tls::ServerCredentials(Creds(root_, "mgr-1", Role::kManager)), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~TlsTest() override { server_->Shutdown(); }

  tls::Credentials Creds(const RootCA& root, const std::string& node, Role role,
                         absl::Time now = absl::Now(),
                         absl::Duration validity = kDefaultNodeCertValidity) {
    std::string key = *GenerateKey();
    auto cert = root.Issue(*CreateCsr(key), node, role, "cluster-1", validity, now, random_);
    EXPECT_TRUE(cert.ok()) << cert.status();
    return tls::Credentials{root_.cert_pem(), *cert, key};
  }

  grpc::Status Call(const tls::Credentials& c, api::HealthCheckResponse* resp = nullptr) {
    auto channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port_),
                                             tls::ChannelCredentials(c), tls::ChannelArguments());
    auto stub = api::Health::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    api::HealthCheckResponse r;
    return stub->Check(&ctx, api::HealthCheckRequest(), resp ? resp : &r);
  }

  SeededRandom random_{21};
  RootCA root_;
  ManagersOnly service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(TlsTest, ManagerCertificateIsServed) {
  api::HealthCheckResponse resp;
  grpc::Status s = Call(Creds(root_, "mgr-2", Role::kManager), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.status(), api::SERVING_STATUS_SERVING);
}

TEST_F(TlsTest, WorkerCertificateIsRefusedWithTheRoleNeeded) {
  grpc::Status s = Call(Creds(root_, "wrk-1", Role::kWorker));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("needs a swarm-manager certificate"), std::string::npos)
      << s.error_message();
  EXPECT_NE(s.error_message().find("wrk-1"), std::string::npos);
}

TEST_F(TlsTest, ForeignCertificateIsRefused) {
  SeededRandom r(9);
  RootCA other = *RootCA::Create("cluster-2", kDefaultRootValidity, absl::Now(), r);
  tls::Credentials c = Creds(other, "intruder", Role::kManager);
  c.root_pem = root_.cert_pem();  // it even trusts our root
  EXPECT_EQ(Call(c).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, ExpiredCertificateIsRefused) {
  tls::Credentials c =
      Creds(root_, "old", Role::kManager, absl::Now() - absl::Hours(3), absl::Hours(1));
  EXPECT_EQ(Call(c).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, ServerFromAnotherClusterIsNotTrusted) {
  // The client trusts a different root: it must not talk to our server.
  SeededRandom r(10);
  RootCA other = *RootCA::Create("cluster-2", kDefaultRootValidity, absl::Now(), r);
  tls::Credentials c = Creds(other, "mgr-x", Role::kManager);
  c.root_pem = other.cert_pem();
  EXPECT_EQ(Call(c).error_code(), grpc::StatusCode::UNAVAILABLE);
}

// During a root rotation: a client with a certificate from the new root (and the cross-signed
// intermediate in its chain) is accepted by a server that trusts only the old root, and a
// client that trusts only the new root accepts a server whose chain comes from the new root.
TEST_F(TlsTest, RootRotation_CrossSignedChainsAreAcceptedByEitherRoot) {
  SeededRandom r(12);
  RootCA next = *RootCA::Create("cluster-1", kDefaultRootValidity, absl::Now(), r);
  const std::string cross = *CrossSign(root_, next.cert_pem(), absl::Now(), r);
  tls::Credentials c = Creds(next, "mgr-new", Role::kManager);
  c.cert_pem += cross;
  c.root_pem = root_.cert_pem();  // still the old root alone
  grpc::Status s = Call(c);
  EXPECT_TRUE(s.ok()) << s.error_message();

  // A server on the new root with the intermediate, a client that trusts the new root alone.
  tls::Credentials server = Creds(next, "mgr-srv", Role::kManager);
  server.cert_pem += cross;
  server.root_pem = root_.cert_pem() + next.cert_pem();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", tls::ServerCredentials(server), &port);
  ManagersOnly service;
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> srv = builder.BuildAndStart();
  tls::Credentials client = Creds(next, "mgr-cli", Role::kManager);
  client.root_pem = next.cert_pem();
  auto stub = api::Health::NewStub(grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                                             tls::ChannelCredentials(client),
                                                             tls::ChannelArguments()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  api::HealthCheckResponse resp;
  s = stub->Check(&ctx, api::HealthCheckRequest(), &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  srv->Shutdown();

  // A certificate from the new root without the intermediate is refused by the old root.
  tls::Credentials bare = Creds(next, "mgr-bare", Role::kManager);
  bare.root_pem = root_.cert_pem();
  EXPECT_EQ(Call(bare).error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace swarm::manager::ca

// Raft between managers over mutual TLS with certificates from the cluster CA: the managers
// replicate, and a worker's certificate is refused by the Raft service.
#include <grpcpp/grpcpp.h>

#include <filesystem>

#include "common/ports.h"
#include "common/tls.h"
#include "gtest/gtest.h"
#include "manager/ca/ca.h"
#include "manager/ca/testing.h"
#include "proto/raft_service.grpc.pb.h"
#include "raft/node.h"

namespace swarm::manager::ca {
namespace {

class CountingStateMachine final : public raft::StateMachine {
 public:
  void Apply(uint64_t, std::string_view) override { ++applied; }
  absl::Status WriteSnapshot(raft::SnapshotWriter&) override { return absl::OkStatus(); }
  absl::Status Restore(raft::SnapshotReader&) override { return absl::OkStatus(); }
  std::atomic<int> applied{0};
};

class RaftTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = *RootCA::Create("cluster-1", kDefaultRootValidity, absl::Now(), random_);
    dir_ = std::filesystem::path(::testing::TempDir()) / "raft_tls";
    std::filesystem::remove_all(dir_);
    std::map<uint64_t, std::string> addrs;
    for (uint64_t id = 1; id <= 3; ++id) {
      addrs[id] = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
    }
    addr_ = addrs[1];
    for (uint64_t id = 1; id <= 3; ++id) {
      tls::Credentials creds = Creds("manager-" + std::to_string(id), Role::kManager);
      raft::NodeConfig c;
      c.id = id;
      c.advertise_addr = addrs[id];
      c.state_dir = (dir_ / std::to_string(id)).string();
      c.key = DataKey{1, std::string(32, 'k')};
      c.bootstrap_members = addrs;
      c.tick_interval = absl::Milliseconds(20);
      c.channel_credentials = tls::ChannelCredentials(creds);
      c.channel_arguments = tls::ChannelArguments(tls::kManagerRole);
      c.require_manager_peers = true;
      c.state_machine = &sms_[id - 1];
      auto node = raft::Node::Create(std::move(c));
      ASSERT_TRUE(node.ok()) << node.status();
      grpc::ServerBuilder b;
      b.AddListeningPort(addrs[id], tls::ServerCredentials(creds));
      b.RegisterService((*node)->raft_service());
      servers_.push_back(b.BuildAndStart());
      (*node)->Start();
      nodes_.push_back(*std::move(node));
    }
  }
  void TearDown() override {
    for (auto& s : servers_) s->Shutdown(std::chrono::system_clock::now());
    for (auto& n : nodes_) n->Stop();
    std::filesystem::remove_all(dir_);
  }

  tls::Credentials Creds(const std::string& node, Role role) {
    return IssueTestCredentials(*root_, node, role, random_);
  }

  raft::Node* WaitForLeader() {
    for (int i = 0; i < 500; ++i) {
      for (auto& n : nodes_) {
        if (n->Status().state == raft::StateType::kLeader) return n.get();
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return nullptr;
  }

  // Opens a Raft message stream to member 1 with the given certificate and sends a message.
  grpc::Status SendAs(const tls::Credentials& creds) {
    auto stub = api::Raft::NewStub(grpc::CreateCustomChannel(
        addr_, tls::ChannelCredentials(creds), tls::ChannelArguments(tls::kManagerRole)));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    api::ProcessRaftMessageResponse resp;
    auto writer = stub->ProcessRaftMessage(&ctx, &resp);
    api::ProcessRaftMessageRequest req;
    raftpb::Message* m = req.add_messages();
    m->set_type(raftpb::MSG_HEARTBEAT);
    m->set_to(1);
    m->set_from(2);
    m->set_term(1000);
    writer->Write(req);
    writer->WritesDone();
    return writer->Finish();
  }

  SeededRandom random_{77};
  std::optional<RootCA> root_;
  std::filesystem::path dir_;
  std::string addr_;
  CountingStateMachine sms_[3];
  std::vector<std::unique_ptr<raft::Node>> nodes_;
  std::vector<std::unique_ptr<grpc::Server>> servers_;
};

TEST_F(RaftTlsTest, ManagersReplicateOverMutualTls) {
  raft::Node* leader = WaitForLeader();
  ASSERT_NE(leader, nullptr);
  for (int i = 0; i < 10; ++i) {
    auto index = leader->ProposeAndWait("entry", absl::Seconds(5));
    ASSERT_TRUE(index.ok()) << index.status();
  }
  for (int i = 0; i < 500 && (sms_[0].applied < 10 || sms_[1].applied < 10 || sms_[2].applied < 10);
       ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  for (auto& sm : sms_) EXPECT_EQ(sm.applied, 10);
}

TEST_F(RaftTlsTest, WorkerCertificateIsRefusedByRaft) {
  ASSERT_NE(WaitForLeader(), nullptr);
  const uint64_t term = nodes_[0]->Status().term;
  grpc::Status s = SendAs(Creds("worker-1", Role::kWorker));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("needs a swarm-manager certificate"), std::string::npos)
      << s.error_message();
  // The forged message from term 1000 never reached the node.
  EXPECT_EQ(nodes_[0]->Status().term, term);
}

TEST_F(RaftTlsTest, ForeignCertificateCannotConnect) {
  ASSERT_NE(WaitForLeader(), nullptr);
  SeededRandom r(8);
  RootCA other = *RootCA::Create("cluster-2", kDefaultRootValidity, absl::Now(), r);
  std::string key = *GenerateKey();
  auto cert = other.Issue(*CreateCsr(key), "intruder", Role::kManager, "cluster-2",
                          kDefaultNodeCertValidity, absl::Now(), r);
  ASSERT_TRUE(cert.ok());
  EXPECT_EQ(SendAs(tls::Credentials{root_->cert_pem(), *cert, key}).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace swarm::manager::ca

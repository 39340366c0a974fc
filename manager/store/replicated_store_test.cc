// The store over a real Raft cluster: three managers in one process, each with its own Raft
// node (RocksDB log, gRPC transport on loopback) and its own store.

#include <filesystem>

#include "common/ports.h"
#include "gtest/gtest.h"
#include "manager/store/store.h"

namespace swarm::manager::store {
namespace {

struct Manager {
  std::unique_ptr<raft::Node> node;
  std::unique_ptr<RaftProposer> proposer;
  std::unique_ptr<MemoryStore> store;
  std::unique_ptr<grpc::Server> server;
};

class ReplicatedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) / "replicated_store";
    std::filesystem::remove_all(dir_);
    for (uint64_t id = 1; id <= 3; ++id)
      addrs_[id] = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
    for (uint64_t id = 1; id <= 3; ++id) Start(id);
  }
  void TearDown() override {
    for (auto& [id, m] : managers_) Stop(m);
    std::filesystem::remove_all(dir_);
  }

  void Start(uint64_t id) {
    Manager& m = managers_[id];
    m.proposer.reset();
    // The store must exist before the node replays the log into it.
    m.store = std::make_unique<MemoryStore>(nullptr);
    raft::NodeConfig c;
    c.id = id;
    c.advertise_addr = addrs_[id];
    c.state_dir = (dir_ / std::to_string(id)).string();
    c.key = DataKey{1, std::string(32, 'k')};
    c.bootstrap_members = addrs_;
    c.tick_interval = absl::Milliseconds(20);
    c.channel_credentials = grpc::InsecureChannelCredentials();
    c.state_machine = m.store.get();
    auto node = raft::Node::Create(std::move(c));
    ASSERT_TRUE(node.ok()) << node.status();
    m.node = *std::move(node);
    m.proposer = std::make_unique<RaftProposer>(m.node.get());
    m.store->set_proposer(m.proposer.get());
    grpc::ServerBuilder b;
    b.AddListeningPort(addrs_[id], grpc::InsecureServerCredentials());
    b.RegisterService(m.node->raft_service());
    m.server = b.BuildAndStart();
    ASSERT_NE(m.server, nullptr);
    m.node->Start();
  }
  void Stop(Manager& m) {
    // Peers keep their message streams open: cancel them after a grace period.
    if (m.server)
      m.server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    if (m.node) m.node->Stop();
    m.server.reset();
    m.node.reset();
  }

  uint64_t WaitForLeader() {
    for (int i = 0; i < 500; ++i) {
      for (auto& [id, m] : managers_) {
        if (m.node && m.node->Status().state == raft::StateType::kLeader) return id;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    ADD_FAILURE() << "no leader";
    return 0;
  }

  void WaitForIndex(uint64_t index) {
    for (int i = 0; i < 500; ++i) {
      bool all = true;
      for (auto& [id, m] : managers_) all = all && m.store->last_index() >= index;
      if (all) return;
      absl::SleepFor(absl::Milliseconds(10));
    }
    ADD_FAILURE() << "index " << index << " not applied everywhere";
  }

  std::filesystem::path dir_;
  std::map<uint64_t, std::string> addrs_;
  std::map<uint64_t, Manager> managers_;
};

api::Service NewService(const std::string& id, const std::string& name) {
  api::Service s;
  s.set_id(id);
  s.mutable_spec()->mutable_annotations()->set_name(name);
  return s;
}

TEST_F(ReplicatedStoreTest, WritesAreSeenByEveryManagerAndSurviveRestarts) {
  const uint64_t leader = WaitForLeader();
  MemoryStore& store = *managers_[leader].store;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(store
                    .Update([&](WriteTx& tx) {
                      tx.CreateObject(
                          NewService("s" + std::to_string(i), "svc" + std::to_string(i)));
                      return absl::OkStatus();
                    })
                    .ok());
  }
  // A write that conflicts on a name is refused the same way everywhere.
  EXPECT_EQ(store
                .Update([&](WriteTx& tx) {
                  tx.CreateObject(NewService("dup", "svc3"));
                  return absl::OkStatus();
                })
                .code(),
            absl::StatusCode::kAlreadyExists);
  const uint64_t last = store.last_index();
  WaitForIndex(last);
  const std::string snapshot = store.Snapshot();
  for (auto& [id, m] : managers_) EXPECT_EQ(m.store->Snapshot(), snapshot) << "manager " << id;

  // Every manager restarts: the stores come back from the logs.
  for (auto& [id, m] : managers_) Stop(m);
  for (uint64_t id = 1; id <= 3; ++id) Start(id);
  WaitForLeader();
  WaitForIndex(last);
  for (auto& [id, m] : managers_) EXPECT_EQ(m.store->Snapshot(), snapshot) << "manager " << id;
}

TEST_F(ReplicatedStoreTest, FollowerWritesGoThroughTheLeader) {
  const uint64_t leader = WaitForLeader();
  const uint64_t follower = leader % 3 + 1;
  MemoryStore& store = *managers_[follower].store;
  ASSERT_TRUE(store
                  .Update([&](WriteTx& tx) {
                    tx.CreateObject(NewService("x", "x"));
                    return absl::OkStatus();
                  })
                  .ok());
  // The follower's write is applied everywhere, and validated at apply like any other.
  WaitForIndex(store.last_index());
  for (auto& [id, m] : managers_) {
    m.store->View([&](const ReadTx& tx) { EXPECT_NE(tx.GetService("x"), nullptr) << id; });
  }
  EXPECT_EQ(store
                .Update([&](WriteTx& tx) {
                  tx.CreateObject(NewService("y", "x"));
                  return absl::OkStatus();
                })
                .code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(ReplicatedStoreTest, OversizedTransactionsAreRefusedAndTheLogKeepsGoing) {
  const uint64_t leader = WaitForLeader();
  MemoryStore& store = *managers_[leader].store;
  absl::Status s = store.Update([&](WriteTx& tx) {
    api::Secret big;
    big.set_id("big");
    big.mutable_spec()->mutable_annotations()->set_name("big");
    big.mutable_spec()->set_data(std::string(raft::Node::kMaxProposalBytes + 1, 'x'));
    tx.CreateObject(big);
    return absl::OkStatus();
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(std::string(s.message()).find("split it"), std::string::npos) << s;
  ASSERT_TRUE(store
                  .Update([&](WriteTx& tx) {
                    tx.CreateObject(NewService("after", "after"));
                    return absl::OkStatus();
                  })
                  .ok());
  WaitForIndex(store.last_index());
}

}  // namespace
}  // namespace swarm::manager::store

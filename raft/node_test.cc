// The Raft node's DEK rotation, in process: one member with its own log, no peers.

#include "raft/node.h"

#include <filesystem>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/ports.h"
#include "gtest/gtest.h"

namespace swarm::raft {
namespace {

namespace fs = std::filesystem;

// Remembers what was applied, in order.
class ListMachine final : public StateMachine {
 public:
  void Apply(uint64_t, std::string_view data) override { items.emplace_back(data); }
  std::string Snapshot() override { return absl::StrJoin(items, "\n"); }
  absl::Status Restore(std::string_view data) override {
    items.clear();
    if (!data.empty()) items = absl::StrSplit(absl::string_view(data.data(), data.size()), '\n');
    return absl::OkStatus();
  }
  std::vector<std::string> items;
};

class NodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    addr_ = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
  }
  void TearDown() override {
    Stop();
    fs::remove_all(dir_);
  }

  // Starts the member with key current (and old keys), waiting until it leads.
  void Start(const DataKey& current, std::vector<DataKey> old = {}) {
    machine_ = std::make_unique<ListMachine>();
    NodeConfig c;
    c.id = 1;
    c.advertise_addr = addr_;
    c.state_dir = dir_.string();
    c.key = current;
    c.old_keys = std::move(old);
    c.bootstrap_members = {{1, addr_}};
    c.tick_interval = absl::Milliseconds(10);
    c.channel_credentials = grpc::InsecureChannelCredentials();
    c.state_machine = machine_.get();
    auto node = Node::Create(std::move(c));
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
    node_->Start();
    for (int i = 0; i < 500 && node_->Status().state != StateType::kLeader; ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    ASSERT_EQ(node_->Status().state, StateType::kLeader);
    // Everything the log holds is applied before the test looks at the machine.
    ASSERT_TRUE(node_->LinearizableRead(absl::Seconds(5)).ok());
  }
  void Stop() {
    if (node_) node_->Stop();
    node_.reset();
  }
  void Propose(const std::string& prefix, int n) {
    for (int i = 0; i < n; ++i) {
      auto idx = node_->ProposeAndWait(prefix + std::to_string(i), absl::Seconds(5));
      ASSERT_TRUE(idx.ok()) << idx.status();
    }
  }
  std::vector<std::string> Expected(int before, int after) {
    std::vector<std::string> out;
    for (int i = 0; i < before; ++i) out.push_back("before-" + std::to_string(i));
    for (int i = 0; i < after; ++i) out.push_back("after-" + std::to_string(i));
    return out;
  }

  fs::path dir_;
  std::string addr_;
  SeededRandom random_{11};
  DataKey first_ = NewDataKey(1, random_);
  DataKey second_ = NewDataKey(2, random_);
  std::unique_ptr<ListMachine> machine_;
  std::unique_ptr<Node> node_;
};

TEST_F(NodeTest, RotateDataKey_TheLogNeedsOnlyTheNewKeyAfterwards) {
  Start(first_);
  Propose("before-", 20);
  EXPECT_EQ(node_->Status().data_key_id, 1u);
  auto id = node_->RotateDataKey(second_, absl::Seconds(10));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, 2u);
  EXPECT_EQ(node_->Status().data_key_id, 2u);
  EXPECT_FALSE(node_->Status().old_data_keys);
  Propose("after-", 5);
  Stop();
  // Restarted without the first key: everything is still there.
  Start(second_);
  EXPECT_EQ(machine_->items, Expected(20, 5));
}

TEST_F(NodeTest, RotateDataKey_ARestartFinishesARotationACrashInterrupted) {
  Start(first_);
  Propose("before-", 10);
  Stop();
  // The key store learned the second key (and kept the first) before the crash.
  Start(second_, {first_});
  EXPECT_TRUE(node_->Status().old_data_keys);
  Propose("after-", 3);
  auto id = node_->RotateDataKey(std::nullopt, absl::Seconds(10));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, 2u);
  EXPECT_FALSE(node_->Status().old_data_keys);
  Stop();
  Start(second_);
  EXPECT_EQ(machine_->items, Expected(10, 3));
}

TEST_F(NodeTest, RotateDataKey_RefusesAnOlderKeyAndRetriesTheCurrentOne) {
  Start(second_, {first_});
  EXPECT_EQ(node_->RotateDataKey(first_, absl::Seconds(10)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(node_->Status().data_key_id, 2u);
  EXPECT_TRUE(node_->Status().old_data_keys);
  auto id = node_->RotateDataKey(second_, absl::Seconds(10));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, 2u);
  EXPECT_FALSE(node_->Status().old_data_keys);
}

}  // namespace
}  // namespace swarm::raft

// The Raft node's DEK rotation, in process: one member with its own log, no peers.

#include "raft/node.h"

#include <atomic>
#include <filesystem>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/ports.h"
#include "gtest/gtest.h"
#include "proto/raft_service.pb.h"
#include "raft/disk_storage.h"

namespace swarm::raft {
namespace {

namespace fs = std::filesystem;

// Remembers what was applied, in order.
class ListMachine final : public StateMachine {
 public:
  void Apply(uint64_t, std::string_view data) override { items.emplace_back(data); }
  absl::Status WriteSnapshot(SnapshotWriter& out) override {
    if (failures_left > 0) {
      --failures_left;
      return absl::ResourceExhaustedError("no space left on device (test)");
    }
    return out.Write(absl::StrJoin(items, "\n"));
  }
  absl::Status Restore(SnapshotReader& in) override {
    absl::StatusOr<std::string> data = ReadAll(in);
    if (!data.ok()) return data.status();
    items.clear();
    if (!data->empty()) items = absl::StrSplit(*data, '\n');
    return absl::OkStatus();
  }
  std::vector<std::string> items;
  std::atomic<int> failures_left{0};  // snapshots to fail
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
    c.snapshot_interval = snapshot_interval_;
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
  uint64_t snapshot_interval_ = 10000;
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

// A snapshot that cannot be written (a full disk, say) costs only a longer log: the node goes
// on, tries again a little later, and a restart finds everything.
TEST_F(NodeTest, Snapshot_AFailedOneIsRetriedAndLosesNothing) {
  snapshot_interval_ = 5;
  Start(first_);
  machine_->failures_left = 1;
  Propose("before-", 12);
  for (int i = 0; i < 500 && node_->Status().snapshot_index == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(machine_->failures_left, 0);
  EXPECT_GT(node_->Status().snapshot_index, 0u);
  EXPECT_EQ(machine_->items, Expected(12, 0));
  Stop();
  Start(first_);
  EXPECT_EQ(machine_->items, Expected(12, 0));
}

// A log written before snapshots were streamed holds its snapshot whole (format 0: one
// RaftSnapshotData with the state inside); the node still starts from it.
TEST_F(NodeTest, Restart_FromASnapshotStoredWhole) {
  {
    fs::create_directories(dir_ / "raft");
    auto disk = DiskStorage::Open((dir_ / "raft").string(), KeyRing(first_), random_);
    ASSERT_TRUE(disk.ok()) << disk.status();
    ASSERT_TRUE((*disk)->Load().ok());
    api::RaftSnapshotData data;
    api::RaftMember* m = data.mutable_membership()->add_members();
    m->set_raft_id(1);
    m->set_addr(addr_);
    data.set_state("a\nb");
    auto out = (*disk)->NewSnapshotWriter(5, /*received=*/false, /*format=*/0);
    ASSERT_TRUE(out->Write(data.SerializeAsString()).ok());
    auto chunks = out->Finish();
    ASSERT_TRUE(chunks.ok()) << chunks.status();
    ASSERT_TRUE((*disk)->SaveSnapshot({{{1}, {}}, 5, 1}, *chunks).ok());
    ASSERT_TRUE((*disk)->Save(HardState{1, 1, 5}, {}, nullptr, true).ok());
  }
  Start(first_);
  EXPECT_EQ(machine_->items, (std::vector<std::string>{"a", "b"}));
  Propose("after-", 2);
  EXPECT_EQ(machine_->items, (std::vector<std::string>{"a", "b", "after-0", "after-1"}));
}

}  // namespace
}  // namespace swarm::raft

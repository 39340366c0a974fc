// A snapshot larger than the memory the node may spend on it: taken by the leader, sent to a
// new member and restored there, with the process's peak memory growing by much less than the
// snapshot's size (every copy of it goes through disk a chunk at a time); and taken again by
// the leader, for seconds, without costing it its leadership.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "common/ports.h"
#include "gtest/gtest.h"
#include "raft/node.h"

namespace swarm::raft {
namespace {

constexpr uint64_t kSnapshotBytes = 384ull << 20;
constexpr size_t kPiece = 64 << 10;

// The bytes a snapshot at count n holds: a pseudo-random stream seeded by n (splitmix64).
void Generate(uint64_t n, uint64_t offset, char* out, size_t size) {
  for (size_t i = 0; i < size; i += 8) {
    uint64_t z = n * 0x9e3779b97f4a7c15ull + (offset + i) / 8 + 1;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    std::memcpy(out + i, &z, 8);
  }
}

// Counts applied entries; its snapshot is that count and kSnapshotBytes generated from it,
// produced and checked kPiece at a time, never whole.
class GeneratedMachine final : public StateMachine {
 public:
  void Apply(uint64_t, std::string_view) override { ++count; }
  absl::Status WriteSnapshot(SnapshotWriter& out) override {
    const uint64_t n = count;
    absl::Status s = out.Write(std::string_view(reinterpret_cast<const char*>(&n), 8));
    std::string piece(kPiece, '\0');
    for (uint64_t off = 0; s.ok() && off < kSnapshotBytes; off += kPiece) {
      Generate(n, off, piece.data(), kPiece);
      s = out.Write(piece);
    }
    return s;
  }
  absl::Status Restore(SnapshotReader& in) override {
    uint64_t n = 0;
    if (absl::Status s = ReadExactly(in, reinterpret_cast<char*>(&n), 8); !s.ok()) return s;
    std::string got(kPiece, '\0'), want(kPiece, '\0');
    uint64_t off = 0;
    for (;; off += kPiece) {
      absl::StatusOr<size_t> r = in.Read(got.data(), kPiece);
      if (!r.ok()) return r.status();
      if (*r == 0) break;
      if (*r < kPiece) {  // pieces may come cut differently: fill this one
        if (absl::Status s = ReadExactly(in, got.data() + *r, kPiece - *r); !s.ok()) return s;
      }
      Generate(n, off, want.data(), kPiece);
      if (got != want)
        return absl::DataLossError("snapshot bytes differ at " + std::to_string(off));
    }
    if (off != kSnapshotBytes) return absl::DataLossError("snapshot has the wrong size");
    count = n;
    restored_bytes += off;
    ++restores;
    return absl::OkStatus();
  }
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> restored_bytes{0};
  std::atomic<int> restores{0};
};

// "VmHWM" or "VmRSS" of this process, in bytes.
uint64_t ProcStatusBytes(const std::string& field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1)) << 10;
  }
  return 0;
}

TEST(LargeSnapshotTest, IsTakenSentAndRestoredInBoundedMemory) {
  const auto dir = std::filesystem::path(::testing::TempDir()) / "large_snapshot";
  std::filesystem::remove_all(dir);
  constexpr int kMembers = 3;
  std::string addr[kMembers];
  for (auto& a : addr) a = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
  GeneratedMachine machines[kMembers];
  std::unique_ptr<Node> nodes[kMembers];
  std::unique_ptr<grpc::Server> servers[kMembers];
  auto start = [&](int i) {
    NodeConfig c;
    c.id = i + 1;
    c.advertise_addr = addr[i];
    c.state_dir = (dir / std::to_string(i + 1)).string();
    c.key = DataKey{1, std::string(32, 'k')};
    if (i == 0) c.bootstrap_members = {{1, addr[0]}};
    if (i > 0) c.known_members = {{1, addr[0]}};
    c.tick_interval = absl::Milliseconds(20);  // an election timeout of 200 ms
    // Only the leader snapshots by itself.
    c.snapshot_interval = i == 0 ? 20 : 1000;
    c.log_entries_for_slow_followers = 5;
    c.channel_credentials = grpc::InsecureChannelCredentials();
    c.state_machine = &machines[i];
    auto node = Node::Create(std::move(c));
    ASSERT_TRUE(node.ok()) << node.status();
    grpc::ServerBuilder b;
    b.AddListeningPort(addr[i], grpc::InsecureServerCredentials());
    b.RegisterService((*node)->raft_service());
    b.RegisterService((*node)->membership_service());
    servers[i] = b.BuildAndStart();
    ASSERT_NE(servers[i], nullptr);
    nodes[i] = *std::move(node);
    nodes[i]->Start();
  };
  auto propose = [&](int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(nodes[0]->ProposeAndWait("entry", absl::Seconds(30)).ok());
    }
  };

  // The peak from here on, against what the process holds now.
  std::ofstream("/proc/self/clear_refs") << "5";
  const uint64_t baseline = ProcStatusBytes("VmRSS");
  start(0);
  for (int i = 0; i < 500 && nodes[0]->Status().state != StateType::kLeader; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(nodes[0]->Status().state, StateType::kLeader);
  propose(30);
  // The leader snapshotted and compacted: a new member can only start from the snapshot.
  ASSERT_GE(nodes[0]->Status().snapshot_index, 20u);
  for (int i = 1; i < kMembers; ++i) {
    start(i);
    ASSERT_TRUE(nodes[0]->AddMember(i + 1, addr[i], absl::Seconds(30)).ok());
    for (int t = 0; t < 1200 && machines[i].count < 30; ++t) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    EXPECT_EQ(machines[i].restores, 1);
    EXPECT_EQ(machines[i].restored_bytes, kSnapshotBytes);
    EXPECT_EQ(machines[i].count, machines[0].count.load());
  }
  const uint64_t peak = ProcStatusBytes("VmHWM");

  // The leader snapshots again, for seconds, while writes go on: heartbeats do not wait for
  // it (only applying does), so the followers never miss the leader and keep it.
  const uint64_t term = nodes[0]->Status().term;
  const uint64_t first = nodes[0]->Status().snapshot_index;
  propose(25);
  for (int i = 0; i < 1200 && nodes[0]->Status().snapshot_index == first; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_GT(nodes[0]->Status().snapshot_index, first);
  propose(1);
  for (auto& n : nodes) {
    EXPECT_EQ(n->Status().term, term) << "member " << n->id();
    EXPECT_EQ(n->Status().leader, 1u) << "member " << n->id();
  }

  for (auto& s : servers) s->Shutdown(std::chrono::system_clock::now());
  for (auto& n : nodes) {
    n->Stop();
    n.reset();  // closes the database before its directory goes
  }
  // Written three times and sent twice, never held: the peak grows by far less than one copy.
  EXPECT_LT(peak - baseline, kSnapshotBytes / 4)
      << "peak " << (peak >> 20) << " MiB, baseline " << (baseline >> 20) << " MiB";
  printf("snapshot %lu MiB; peak memory %lu MiB above the %lu MiB at start\n",
         static_cast<unsigned long>(kSnapshotBytes >> 20),
         static_cast<unsigned long>((peak - baseline) >> 20),
         static_cast<unsigned long>(baseline >> 20));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace swarm::raft

// The Raft node in real processes (raftkv) on loopback: leader crashes under load, whole-
// cluster restarts, catching up by snapshot, corrupted storage, and encryption at rest.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "gtest/gtest.h"
#include "raft/tools/kv_cluster.h"

namespace swarm::raft {
namespace {

namespace fs = std::filesystem;

// Writes unique keys through whichever member leads, from `threads` threads, and records every
// acknowledged write. A failed write is never retried under the same key: its outcome is
// unknown, so only acknowledged keys are required to be in the log (exactly once).
class Writer {
 public:
  Writer(KvCluster& cluster, int threads) : cluster_(cluster) {
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, t] { Run(t); });
    }
  }
  ~Writer() { Stop(); }

  void Stop() {
    stop_ = true;
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  size_t acked() const { return acked_count_.load(); }
  void WaitForAcked(size_t n, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (acked() < n && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
    ASSERT_GE(acked(), n) << "writes stalled";
  }
  std::map<std::string, uint64_t> acked_writes() {
    std::lock_guard<std::mutex> lock(mu_);
    return acked_;
  }
  uint64_t max_index() {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t m = 0;
    for (auto& [k, i] : acked_) m = std::max(m, i);
    return m;
  }
  void Pause(int member) { down_ = member; }

 private:
  void Run(int t) {
    int leader = 1;
    for (uint64_t n = 0; !stop_; ++n) {
      const std::string key = "t" + std::to_string(t) + "-" + std::to_string(n);
      if (leader == down_ || !cluster_.Running(leader)) leader = NextLeader(leader);
      auto index = cluster_.Put(leader, key, "value-" + key, absl::Seconds(3));
      if (index.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        acked_[key] = *index;
        ++acked_count_;
      } else {
        leader = NextLeader(leader);
      }
    }
  }
  int NextLeader(int current) {
    for (int i = 1; i <= cluster_.size(); ++i) {
      if (!cluster_.Running(i) || i == down_) continue;
      auto st = cluster_.Status(i, absl::Milliseconds(300));
      if (st.ok() && st->leader() != 0) return static_cast<int>(st->leader());
    }
    absl::SleepFor(absl::Milliseconds(20));
    return current % cluster_.size() + 1;
  }

  KvCluster& cluster_;
  std::atomic<bool> stop_{false};
  std::atomic<int> down_{0};
  std::mutex mu_;
  std::map<std::string, uint64_t> acked_;
  std::atomic<size_t> acked_count_{0};
  std::vector<std::thread> threads_;
};

// Every member holds the same writes in the same order, every acknowledged write exactly once
// and at the index it was acknowledged with, and no write twice.
void ExpectSameLogs(KvCluster& c, const std::map<std::string, uint64_t>& acked) {
  std::vector<raftkv::Op> first;
  for (int i = 1; i <= c.size(); ++i) {
    auto ops = c.Dump(i);
    ASSERT_TRUE(ops.ok()) << "member " << i << ": " << ops.status();
    std::set<std::string> seen;
    for (const raftkv::Op& op : *ops) {
      EXPECT_TRUE(seen.insert(op.key()).second)
          << "member " << i << " applied " << op.key() << " twice";
    }
    for (const auto& [key, index] : acked) {
      EXPECT_TRUE(seen.count(key)) << "member " << i << " lost acknowledged write " << key;
    }
    if (i == 1) {
      first = *ops;
      std::map<std::string, uint64_t> at;
      for (const raftkv::Op& op : first) at[op.key()] = op.index();
      for (const auto& [key, index] : acked) EXPECT_EQ(at[key], index) << key;
      continue;
    }
    ASSERT_EQ(ops->size(), first.size()) << "member " << i;
    for (size_t j = 0; j < first.size(); ++j) {
      ASSERT_EQ((*ops)[j].key(), first[j].key()) << "member " << i << " differs at " << j;
      ASSERT_EQ((*ops)[j].index(), first[j].index());
    }
  }
}

class KillLeaderTest : public ::testing::TestWithParam<int> {};

TEST_P(KillLeaderTest, WritesContinueAndNothingAcknowledgedIsLost) {
  KvCluster c({.size = GetParam()});
  c.StartAll();
  auto leader = c.WaitForLeader(absl::Seconds(15));
  ASSERT_TRUE(leader.ok()) << leader.status();
  Writer w(c, 4);
  w.WaitForAcked(300, absl::Seconds(30));
  c.Kill(*leader);
  const absl::Time killed = absl::Now();
  // A write in flight at the kill may still be acknowledged by the old leader's process
  // buffers: wait for a few, then for plenty more.
  w.WaitForAcked(w.acked() + 8, absl::Seconds(30));
  std::cout << "writes resumed " << absl::Now() - killed << " after kill -9 of the leader"
            << std::endl;
  w.WaitForAcked(w.acked() + 300, absl::Seconds(30));
  auto next = c.WaitForLeader(absl::Seconds(15));
  ASSERT_TRUE(next.ok());
  EXPECT_NE(*next, *leader);
  c.Start(*leader);
  w.WaitForAcked(w.acked() + 300, absl::Seconds(30));
  w.Stop();
  ASSERT_TRUE(c.WaitForApplied(w.max_index(), absl::Seconds(30)).ok());
  ExpectSameLogs(c, w.acked_writes());
}

INSTANTIATE_TEST_SUITE_P(Sizes, KillLeaderTest, ::testing::Values(3, 5));

TEST(ClusterTest, RestartEveryMemberAtOnce) {
  KvCluster c({.size = 3});
  c.StartAll();
  ASSERT_TRUE(c.WaitForLeader(absl::Seconds(15)).ok());
  Writer w(c, 2);
  w.WaitForAcked(200, absl::Seconds(30));
  w.Stop();
  for (int i = 1; i <= 3; ++i) c.Kill(i);
  c.StartAll();
  auto leader = c.WaitForLeader(absl::Seconds(15));
  ASSERT_TRUE(leader.ok()) << leader.status();
  auto index = c.Put(*leader, "after-restart", "x");
  ASSERT_TRUE(index.ok()) << index.status();
  ASSERT_TRUE(c.WaitForApplied(*index, absl::Seconds(15)).ok());
  auto acked = w.acked_writes();
  acked["after-restart"] = *index;
  ExpectSameLogs(c, acked);
}

// PutStream: many writes in flight on one stream, answered in batches and any order; each is
// acknowledged with its own index and applied once, in the same place, on every member.
TEST(ClusterTest, StreamedWritesAreEachAppliedOnce) {
  KvCluster c({.size = 3});
  c.StartAll();
  auto leader = c.WaitForLeader(absl::Seconds(15));
  ASSERT_TRUE(leader.ok()) << leader.status();
  auto stub = c.NewClient(*leader);
  KvStreamClient stream(stub.get());
  constexpr int kWrites = 2000;
  std::mutex mu;
  std::map<std::string, uint64_t> acked;
  std::vector<std::string> failed;
  for (int n = 0; n < kWrites; ++n) {
    const std::string key = "s-" + std::to_string(n);
    stream.Put(key, "v", [&, key](absl::StatusOr<uint64_t> index) {
      std::lock_guard<std::mutex> lock(mu);
      if (index.ok()) {
        acked[key] = *index;
      } else {
        failed.push_back(key + ": " + std::string(index.status().message()));
      }
    });
  }
  stream.Close();
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_TRUE(failed.empty()) << failed.front();
  ASSERT_EQ(acked.size(), kWrites);
  std::set<uint64_t> indexes;
  for (const auto& [key, index] : acked) indexes.insert(index);
  EXPECT_EQ(indexes.size(), kWrites) << "two writes were answered with the same index";
  ASSERT_TRUE(c.WaitForApplied(*indexes.rbegin(), absl::Seconds(15)).ok());
  ExpectSameLogs(c, acked);
}

TEST(ClusterTest, FollowerDownFor50000WritesCatchesUpBySnapshot) {
  KvCluster c({.size = 3});
  c.StartAll();
  auto leader = c.WaitForLeader(absl::Seconds(15));
  ASSERT_TRUE(leader.ok());
  const int follower = *leader % 3 + 1;
  c.Kill(follower);
  Writer w(c, 32);
  w.Pause(follower);
  w.WaitForAcked(50000, absl::Seconds(300));
  w.Stop();
  auto st = c.Status(*leader);
  ASSERT_TRUE(st.ok());
  EXPECT_GE(st->snapshot_index(), 10000u);  // the leader compacted past the follower
  c.Start(follower);
  ASSERT_TRUE(c.WaitForApplied(w.max_index(), absl::Seconds(60)).ok());
  EXPECT_NE(c.Output(follower).find("installed a snapshot from the leader"), std::string::npos);
  ExpectSameLogs(c, w.acked_writes());
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ClusterTest, CorruptedByteMakesTheNodeRefuseToStart) {
  KvCluster c({.size = 1});
  c.Start(1);
  ASSERT_TRUE(c.WaitForLeader(absl::Seconds(15)).ok());
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(c.Put(1, "k" + std::to_string(i), "v").ok());
  c.Terminate(1);
  // Flip one byte in the middle of the largest data file of the log.
  fs::path victim;
  for (const auto& f : fs::directory_iterator(c.state_dir(1) + "/raft")) {
    const std::string ext = f.path().extension();
    if ((ext == ".sst" || ext == ".log") &&
        (victim.empty() || f.file_size() > fs::file_size(victim))) {
      victim = f.path();
    }
  }
  ASSERT_FALSE(victim.empty());
  std::string bytes = ReadFile(victim);
  bytes[bytes.size() / 2] ^= 0x5a;
  std::ofstream(victim, std::ios::binary | std::ios::trunc) << bytes;

  c.Start(1);
  EXPECT_EQ(c.WaitExit(1, absl::Seconds(20)), 1);
  const std::string out = c.Output(1);
  EXPECT_NE(out.find("refusing to start"), std::string::npos) << out;
  EXPECT_NE(out.find(c.state_dir(1) + "/raft"), std::string::npos) << out;
}

TEST(ClusterTest, PayloadsAreEncryptedAtRest) {
  KvCluster c({.size = 3});
  c.StartAll();
  auto leader = c.WaitForLeader(absl::Seconds(15));
  ASSERT_TRUE(leader.ok());
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(c.Put(*leader, "key-" + std::to_string(i), "plaintext-needle-7f3a").ok());
  }
  ASSERT_TRUE(c.WaitForApplied(c.Status(*leader)->commit(), absl::Seconds(10)).ok());
  for (int i = 1; i <= 3; ++i) c.Terminate(i);
  for (int i = 1; i <= 3; ++i) {
    for (const auto& f : fs::recursive_directory_iterator(c.state_dir(i))) {
      if (!f.is_regular_file()) continue;
      EXPECT_EQ(ReadFile(f.path()).find("plaintext-needle"), std::string::npos) << f.path();
    }
  }
}

}  // namespace
}  // namespace swarm::raft

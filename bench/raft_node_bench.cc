// The Raft node without an RPC client in front of it: 3 members in one process (each with its
// own RocksDB log, synced, and the gRPC transport between them on loopback), proposers calling
// Node::Propose directly. Separates the node's own throughput from the client path that
// raft_cluster_bench also measures.
//
//   bazel run -c opt //bench:raft_node_bench [-- --seconds=10]
#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <thread>

#include "common/ports.h"
#include "raft/node.h"

namespace swarm::raft {
namespace {

class NullStateMachine final : public StateMachine {
 public:
  void Apply(uint64_t, std::string_view) override {}
  absl::Status WriteSnapshot(SnapshotWriter&) override { return absl::OkStatus(); }
  absl::Status Restore(SnapshotReader&) override { return absl::OkStatus(); }
};

int Main(int argc, char** argv) {
  int seconds = 10;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--seconds=", 10) == 0) seconds = std::atoi(argv[i] + 10);
  }
  char tmpl[] = "/tmp/raft_node_bench-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  std::map<uint64_t, std::string> addrs;
  for (uint64_t id = 1; id <= 3; ++id)
    addrs[id] = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
  NullStateMachine sms[3];
  std::vector<std::unique_ptr<Node>> nodes;
  std::vector<std::unique_ptr<grpc::Server>> servers;
  for (uint64_t id = 1; id <= 3; ++id) {
    NodeConfig c;
    c.id = id;
    c.advertise_addr = addrs[id];
    c.state_dir = dir + "/" + std::to_string(id);
    c.key = DataKey{1, std::string(32, 'k')};
    c.bootstrap_members = addrs;
    c.channel_credentials = grpc::InsecureChannelCredentials();
    c.state_machine = &sms[id - 1];
    auto node = Node::Create(std::move(c));
    if (!node.ok()) {
      std::cerr << node.status() << "\n";
      return 1;
    }
    grpc::ServerBuilder b;
    b.AddListeningPort(addrs[id], grpc::InsecureServerCredentials());
    b.RegisterService((*node)->raft_service());
    servers.push_back(b.BuildAndStart());
    (*node)->Start();
    nodes.push_back(*std::move(node));
  }
  Node* leader = nullptr;
  while (leader == nullptr) {
    for (auto& n : nodes) {
      if (n->Status().state == StateType::kLeader) leader = n.get();
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  std::cout << "raft_node_bench: 3 members in one process, synced RocksDB, 128-byte proposals, "
            << seconds << " s per run\n";
  for (int proposers : {1, 64, 256}) {
    std::vector<std::vector<absl::Duration>> lat(proposers);
    const absl::Time end = absl::Now() + absl::Seconds(seconds);
    std::vector<std::thread> threads;
    std::atomic<uint64_t> errors{0};
    for (int t = 0; t < proposers; ++t) {
      threads.emplace_back([&, t] {
        while (absl::Now() < end) {
          const absl::Time start = absl::Now();
          if (leader->ProposeAndWait(std::string(128, 'v'), absl::Seconds(5)).ok()) {
            lat[t].push_back(absl::Now() - start);
          } else {
            ++errors;
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    std::vector<absl::Duration> all;
    for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
    std::sort(all.begin(), all.end());
    if (all.empty()) continue;
    std::cout << "proposers=" << proposers << "  committed/s=" << all.size() / seconds
              << "  p50=" << absl::FormatDuration(all[all.size() / 2])
              << "  p99=" << absl::FormatDuration(all[all.size() * 99 / 100])
              << "  errors=" << errors << "\n";
  }
  for (auto& s : servers) s->Shutdown(std::chrono::system_clock::now());
  for (auto& n : nodes) n->Stop();
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace swarm::raft

int main(int argc, char** argv) { return swarm::raft::Main(argc, argv); }

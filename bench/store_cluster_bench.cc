// The replicated object store through a 3-manager Raft cluster: 3 managers in one process, each
// with its own store, Raft node and RocksDB log (synced), the gRPC transport between them on
// loopback; client threads write single-object transactions (CreateSecret-like: a secret with
// a 128-byte payload) through the leader's store, which validates them at apply time on every
// manager. Transactions per second and p50/p99 latency from 1, 16 and 64 clients. The control
// API's own cost on top (gRPC, validation, forwarding) is in control_cluster_bench.
//
//   bazel run -c opt //bench:store_cluster_bench [-- --seconds=10]
#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <thread>

#include "common/ports.h"
#include "manager/store/store.h"

namespace swarm::manager::store {
namespace {

struct Manager {
  std::unique_ptr<MemoryStore> store;
  std::unique_ptr<raft::Node> node;
  std::unique_ptr<RaftProposer> proposer;
  std::unique_ptr<grpc::Server> server;
};

int Main(int argc, char** argv) {
  int seconds = 10;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--seconds=", 10) == 0) seconds = std::atoi(argv[i] + 10);
  }
  char tmpl[] = "/tmp/store_cluster_bench-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  std::map<uint64_t, std::string> addrs;
  for (uint64_t id = 1; id <= 3; ++id)
    addrs[id] = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
  std::vector<Manager> managers(3);
  for (uint64_t id = 1; id <= 3; ++id) {
    Manager& m = managers[id - 1];
    m.store = std::make_unique<MemoryStore>(nullptr);
    raft::NodeConfig c;
    c.id = id;
    c.advertise_addr = addrs[id];
    c.state_dir = dir + "/" + std::to_string(id);
    c.key = DataKey{1, std::string(32, 'k')};
    c.bootstrap_members = addrs;
    c.channel_credentials = grpc::InsecureChannelCredentials();
    c.state_machine = m.store.get();
    auto node = raft::Node::Create(std::move(c));
    if (!node.ok()) {
      std::cerr << node.status() << "\n";
      return 1;
    }
    m.node = *std::move(node);
    m.proposer = std::make_unique<RaftProposer>(m.node.get());
    m.store->set_proposer(m.proposer.get());
    grpc::ServerBuilder b;
    b.AddListeningPort(addrs[id], grpc::InsecureServerCredentials());
    b.RegisterService(m.node->raft_service());
    m.server = b.BuildAndStart();
    m.node->Start();
  }
  MemoryStore* leader = nullptr;
  for (int i = 0; i < 500 && leader == nullptr; ++i) {
    for (Manager& m : managers) {
      if (m.node->Status().state == raft::StateType::kLeader) leader = m.store.get();
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  if (leader == nullptr) {
    std::cerr << "no leader\n";
    return 1;
  }
  std::cout << "store transactions through 3 managers in one process (synced RocksDB logs, "
               "gRPC transport on loopback), one secret of 128 bytes per transaction:\n";
  std::atomic<uint64_t> next{0};
  for (int clients : {1, 16, 64}) {
    const absl::Time end = absl::Now() + absl::Seconds(seconds);
    std::vector<std::vector<absl::Duration>> lat(clients);
    std::atomic<uint64_t> errors{0};
    std::vector<std::thread> threads;
    const absl::Time start = absl::Now();
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        while (absl::Now() < end) {
          const uint64_t n = next++;
          api::Secret s;
          s.set_id("secret" + std::to_string(n));
          s.mutable_spec()->mutable_annotations()->set_name("s" + std::to_string(n));
          s.mutable_spec()->set_data(std::string(128, 'v'));
          const absl::Time t = absl::Now();
          absl::Status st = leader->Update([&](WriteTx& tx) {
            tx.CreateObject(s);
            return absl::OkStatus();
          });
          if (st.ok()) {
            lat[c].push_back(absl::Now() - t);
          } else {
            ++errors;
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    const absl::Duration took = absl::Now() - start;
    std::vector<absl::Duration> all;
    for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
    std::sort(all.begin(), all.end());
    std::cout << "  " << clients
              << " clients: " << static_cast<int64_t>(all.size() / absl::ToDoubleSeconds(took))
              << " transactions/s, p50 " << absl::FormatDuration(all[all.size() / 2]) << ", p99 "
              << absl::FormatDuration(all[all.size() * 99 / 100]) << ", errors " << errors << "\n";
  }
  for (Manager& m : managers) {
    m.server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    m.node->Stop();
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}

}  // namespace
}  // namespace swarm::manager::store

int main(int argc, char** argv) { return swarm::manager::store::Main(argc, argv); }

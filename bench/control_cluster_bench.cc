// The control API through a 3-manager swarm of real swarmd processes (synced Raft storage,
// mutual TLS between managers): single-object writes (CreateSecret, 128-byte payloads) per
// second and their p50/p99 latency, from 1, 16 and 64 concurrent clients spread over the three
// managers' unix sockets (followers forward to the leader); then listing what was written.
//
//   bazel run -c opt //bench:control_cluster_bench [-- --seconds=10]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <iostream>
#include <thread>
#include <vector>

#include "node/testing/swarmd_cluster.h"

namespace swarm::node {
namespace {

struct Result {
  double per_second = 0;
  absl::Duration p50, p99;
  uint64_t errors = 0;
  std::string first_error;
};

// One client: a chain of asynchronous CreateSecret calls, each issued when the previous one
// answers (so 64 clients need no 64 blocked threads).
class Client {
 public:
  Client(api::Control::Stub* stub, int id, absl::Time end, std::atomic<int>* running)
      : stub_(stub), id_(id), end_(end), running_(running) {}
  void Start() { Next(); }
  std::vector<absl::Duration> latencies;
  uint64_t errors = 0;
  std::string first_error;

 private:
  void Next() {
    if (absl::Now() >= end_) {
      --*running_;
      return;
    }
    ctx_ = std::make_unique<grpc::ClientContext>();
    SetTimeout(*ctx_, absl::Seconds(10));
    req_.mutable_spec()->mutable_annotations()->set_name("s" + std::to_string(id_) + "-" +
                                                         std::to_string(n_++));
    req_.mutable_spec()->set_data(std::string(128, 'v'));
    start_ = absl::Now();
    stub_->async()->CreateSecret(ctx_.get(), &req_, &resp_, [this](grpc::Status s) {
      if (s.ok()) {
        latencies.push_back(absl::Now() - start_);
      } else {
        if (errors++ == 0) first_error = s.error_message();
      }
      Next();
    });
  }

  api::Control::Stub* stub_;
  int id_;
  absl::Time end_;
  std::atomic<int>* running_;
  uint64_t n_ = 0;
  std::unique_ptr<grpc::ClientContext> ctx_;
  api::CreateSecretRequest req_;
  api::CreateSecretResponse resp_;
  absl::Time start_;
};

// Clients go to target, or round-robin over the three managers when target is 0.
Result Run(SwarmdCluster& cluster, int clients, absl::Duration duration, int target) {
  const absl::Time end = absl::Now() + duration;
  std::atomic<int> running{clients};
  std::vector<std::unique_ptr<Client>> cs;
  for (int i = 0; i < clients; ++i) {
    cs.push_back(std::make_unique<Client>(&cluster.control(target ? target : 1 + i % 3),
                                          (target * 100 + clients) * 1000 + i, end, &running));
  }
  const absl::Time start = absl::Now();
  for (auto& c : cs) c->Start();
  while (running > 0) absl::SleepFor(absl::Milliseconds(10));
  const absl::Duration took = absl::Now() - start;
  Result r;
  std::vector<absl::Duration> all;
  for (auto& c : cs) {
    all.insert(all.end(), c->latencies.begin(), c->latencies.end());
    r.errors += c->errors;
    if (r.first_error.empty()) r.first_error = c->first_error;
  }
  std::sort(all.begin(), all.end());
  r.per_second = all.size() / absl::ToDoubleSeconds(took);
  if (!all.empty()) {
    r.p50 = all[all.size() / 2];
    r.p99 = all[all.size() * 99 / 100];
  }
  return r;
}

int Main(int argc, char** argv) {
  int seconds = 10;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--seconds=", 10) == 0) seconds = std::atoi(argv[i] + 10);
  }
  SwarmdCluster cluster;
  for (int i = 1; i <= 3; ++i) {
    if (absl::Status s = cluster.Start(i); !s.ok()) {
      std::cerr << s << "\n";
      return 1;
    }
  }
  if (auto s = cluster.Init(1); !s.ok()) {
    std::cerr << "init: " << s.status() << "\n";
    return 1;
  }
  for (int i = 2; i <= 3; ++i) {
    if (auto s = cluster.Join(i, 1, true); !s.ok()) {
      std::cerr << "join: " << s.status() << "\n";
      return 1;
    }
  }
  std::cout << "control API through 3 swarmd managers (synced Raft log, mTLS), CreateSecret of "
               "128 bytes, clients spread over the 3 managers:\n";
  const int leader = cluster.WaitForLeader(absl::Seconds(10)).value_or(1);
  for (auto [clients, target] :
       std::vector<std::pair<int, int>>{{1, 0}, {16, 0}, {64, 0}, {64, leader}}) {
    Result r = Run(cluster, clients, absl::Seconds(seconds), target);
    std::cout << "  " << clients << (target ? " clients on the leader: " : " clients: ")
              << static_cast<int64_t>(r.per_second) << " writes/s, p50 "
              << absl::FormatDuration(r.p50) << ", p99 " << absl::FormatDuration(r.p99)
              << ", errors " << r.errors << (r.errors ? " (first: " + r.first_error + ")" : "")
              << "\n";
  }
  const absl::Time start = absl::Now();
  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(30));
  api::ListSecretsResponse list;
  grpc::Status s = cluster.control(2).ListSecrets(&ctx, api::ListSecretsRequest(), &list);
  std::cout << "list every secret (" << list.secrets_size()
            << ") through a follower: " << absl::FormatDuration(absl::Now() - start)
            << (s.ok() ? "" : " " + s.error_message()) << "\n";
  return 0;
}

}  // namespace
}  // namespace swarm::node

int main(int argc, char** argv) { return swarm::node::Main(argc, argv); }

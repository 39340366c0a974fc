// The Raft node in real processes: 3 raftkv members on loopback with synced storage, 128-byte
// proposals from 1 and from 64 concurrent proposers (each a chain of writes to the leader over
// gRPC, sharing 4 connections): committed proposals per second and p50/p99 commit latency,
// once with a Put call per write and once over PutStream (a connection's writes queued while
// its last request was sent go in the next); then the time from kill -9 of the leader to the
// next committed write.
//
// The peer: etcd (Debian's etcd-server), a Raft-replicated key-value store, measured the same
// way in the same run (3 members on loopback, its default fsync'ed WAL, Put calls from the same
// client), with our figures' ratio to it. Without /usr/bin/etcd the bench measures ours alone
// and says how to get the peer (`apt-get install etcd-server`: not a build dependency).
//
//   bazel run -c opt //bench:raft_cluster_bench [-- --seconds=10]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/etcd_kv.grpc.pb.h"
#include "common/ports.h"
#include "common/subprocess.h"
#include "raft/tools/kv_cluster.h"

namespace swarm::raft {
namespace {

struct Result {
  double per_second = 0;
  absl::Duration p50, p99;
  uint64_t errors = 0;
};

using PutDone = std::function<void(bool ok)>;
// Sends one write; `done` runs once it is answered.
using PutFn = std::function<void(const std::string& key, const std::string& value, PutDone)>;

// One proposer: a chain of writes, each issued when the previous one is answered, so that 64
// proposers do not need 64 blocked client threads (which on 2 cores measured the client's
// scheduling more than the cluster).
class Proposer {
 public:
  Proposer(PutFn put, int id, absl::Time end, std::atomic<int>* running)
      : put_(std::move(put)), id_(id), end_(end), running_(running) {}
  void Start() { Next(); }
  std::vector<absl::Duration> latencies;
  uint64_t errors = 0;

 private:
  void Next() {
    if (absl::Now() >= end_) {
      --*running_;
      return;
    }
    const absl::Time start = absl::Now();
    put_("p" + std::to_string(id_) + "-" + std::to_string(n_++ % 1000), std::string(128, 'v'),
         [this, start](bool ok) {
           if (ok) {
             latencies.push_back(absl::Now() - start);
           } else {
             ++errors;
           }
           Next();
         });
  }

  PutFn put_;
  int id_;
  absl::Time end_;
  std::atomic<int>* running_;
  uint64_t n_ = 0;
};

// One Put call per write (raftkv's Put and etcd's have the same shape).
template <typename Request, typename Response, typename Stub>
void UnaryPut(Stub* stub, const std::string& key, const std::string& value, PutDone done) {
  struct Call {
    grpc::ClientContext ctx;
    Request req;
    Response resp;
  };
  auto call = std::make_shared<Call>();
  call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  call->req.set_key(key);
  call->req.set_value(value);
  stub->async()->Put(&call->ctx, &call->req, &call->resp,
                     [call, done = std::move(done)](grpc::Status s) { done(s.ok()); });
}

// Writes through a few connections shared by the proposers, as a real client pool would.
constexpr int kConnections = 4;

// raftkv's client connections to the leader, one Put or PutStream each.
struct KvClients {
  KvClients(KvCluster& c, int leader, bool streamed) {
    for (int i = 0; i < kConnections; ++i) {
      stubs.push_back(c.NewClient(leader));
      raftkv::RaftKV::Stub* stub = stubs.back().get();
      if (streamed) {
        streams.push_back(std::make_unique<KvStreamClient>(stub));
        KvStreamClient* s = streams.back().get();
        puts.push_back([s](const std::string& k, const std::string& v, PutDone d) {
          s->Put(k, v, [d = std::move(d)](absl::StatusOr<uint64_t> r) { d(r.ok()); });
        });
      } else {
        puts.push_back([stub](const std::string& k, const std::string& v, PutDone d) {
          UnaryPut<raftkv::PutRequest, raftkv::PutResponse>(stub, k, v, std::move(d));
        });
      }
    }
  }
  ~KvClients() {
    for (auto& s : streams) s->Close();
  }
  std::vector<std::unique_ptr<raftkv::RaftKV::Stub>> stubs;
  std::vector<std::unique_ptr<KvStreamClient>> streams;
  std::vector<PutFn> puts;
};

Result Load(const std::vector<PutFn>& puts, int proposers, absl::Duration duration) {
  std::atomic<int> running{proposers};
  const absl::Time end = absl::Now() + duration;
  std::vector<std::unique_ptr<Proposer>> ps;
  for (int t = 0; t < proposers; ++t) {
    ps.push_back(std::make_unique<Proposer>(puts[t % puts.size()], t, end, &running));
  }
  for (auto& p : ps) p->Start();
  while (running > 0) absl::SleepFor(absl::Milliseconds(10));
  std::vector<absl::Duration> all;
  Result r;
  for (auto& p : ps) {
    all.insert(all.end(), p->latencies.begin(), p->latencies.end());
    r.errors += p->errors;
  }
  std::sort(all.begin(), all.end());
  if (all.empty()) return r;
  r.per_second = all.size() / absl::ToDoubleSeconds(duration);
  r.p50 = all[all.size() / 2];
  r.p99 = all[all.size() * 99 / 100];
  return r;
}

// The time from kill -9 of the leader to the next write that commits through a survivor.
absl::Duration Failover(const std::function<void()>& kill_leader,
                        const std::function<bool()>& write_through_a_survivor) {
  kill_leader();
  const absl::Time killed = absl::Now();
  while (absl::Now() - killed < absl::Seconds(30)) {
    if (write_through_a_survivor()) return absl::Now() - killed;
  }
  return absl::InfiniteDuration();
}

// Three etcd members on loopback, killed when this goes.
class EtcdCluster {
 public:
  static constexpr char kBinary[] = "/usr/bin/etcd";
  static constexpr int kSize = 3;

  explicit EtcdCluster(const std::string& dir) : dir_(dir) {
    std::string initial;
    for (int i = 0; i < kSize; ++i) {
      clients_[i] = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
      peers_[i] = absl::StrCat("http://127.0.0.1:", FreeLoopbackPort());
      absl::StrAppend(&initial, i == 0 ? "" : ",", "m", i, "=", peers_[i]);
    }
    for (int i = 0; i < kSize; ++i) {
      std::filesystem::create_directories(absl::StrCat(dir_, "/etcd-", i));
      pids_[i] =
          Spawn({kBinary, absl::StrCat("--name=m", i),
                 absl::StrCat("--data-dir=", dir_, "/etcd-", i, "/data"),
                 "--listen-client-urls=http://" + clients_[i],
                 "--advertise-client-urls=http://" + clients_[i], "--listen-peer-urls=" + peers_[i],
                 "--initial-advertise-peer-urls=" + peers_[i], "--initial-cluster=" + initial,
                 "--initial-cluster-state=new", "--initial-cluster-token=raft-cluster-bench",
                 "--logger=zap", "--log-level=warn"},
                absl::StrCat(dir_, "/etcd-", i, ".log"));
      channels_[i] = grpc::CreateChannel(clients_[i], grpc::InsecureChannelCredentials());
    }
  }
  ~EtcdCluster() {
    for (pid_t pid : pids_) {
      if (pid > 0) KillProcess(pid);
    }
  }

  // The member that leads, from the members' own Status.
  absl::StatusOr<int> WaitForLeader(absl::Duration timeout) {
    for (const absl::Time end = absl::Now() + timeout; absl::Now() < end;
         absl::SleepFor(absl::Milliseconds(100))) {
      for (int i = 0; i < kSize; ++i) {
        if (pids_[i] <= 0) continue;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
        etcdserverpb::StatusResponse st;
        auto stub = etcdserverpb::Maintenance::NewStub(channels_[i]);
        if (stub->Status(&ctx, etcdserverpb::StatusRequest(), &st).ok() && st.leader() != 0 &&
            st.leader() == st.header().member_id()) {
          return i;
        }
      }
    }
    return absl::DeadlineExceededError("etcd elected no leader (logs in " + dir_ + ")");
  }
  // A client of member i on its own connection.
  std::unique_ptr<etcdserverpb::KV::Stub> NewClient(int i) const {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
    return etcdserverpb::KV::NewStub(
        grpc::CreateCustomChannel(clients_[i], grpc::InsecureChannelCredentials(), args));
  }
  bool Put(int i, const std::string& key, const std::string& value, absl::Duration timeout) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout)));
    etcdserverpb::PutRequest req;
    req.set_key(key);
    req.set_value(value);
    etcdserverpb::PutResponse resp;
    return etcdserverpb::KV::NewStub(channels_[i])->Put(&ctx, req, &resp).ok();
  }
  void Kill(int i) {
    KillProcess(pids_[i]);
    pids_[i] = 0;
  }
  bool Running(int i) const { return pids_[i] > 0; }

 private:
  std::string dir_;
  std::string clients_[kSize], peers_[kSize];
  pid_t pids_[kSize] = {};
  std::shared_ptr<grpc::Channel> channels_[kSize];
};

std::string Line(int proposers, const Result& r) {
  return absl::StrCat("  proposers=", proposers,
                      "  committed/s=", static_cast<uint64_t>(r.per_second),
                      "  p50=", absl::FormatDuration(r.p50), "  p99=", absl::FormatDuration(r.p99),
                      "  errors=", r.errors, "\n");
}

int Main(int argc, char** argv) {
  int seconds = 10;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--seconds=", 10) == 0) seconds = std::atoi(argv[i] + 10);
  }
  const absl::Duration duration = absl::Seconds(seconds);
  // Members keep the latest value of each key only, and each proposer writes 1,000 keys over
  // and over: the state (and so each snapshot) stays ~10 MB however long the run, as a real
  // state machine's would, instead of a history that grows with every write.
  auto c = std::make_unique<KvCluster>(KvCluster::Options{.size = 3, .history = false});
  const std::string dir = c->dir();
  c->StartAll();
  auto leader = c->WaitForLeader(absl::Seconds(15));
  if (!leader.ok()) {
    std::cerr << "no leader: " << leader.status() << "\n";
    return 1;
  }
  std::cout << "raft_cluster_bench: 3 raftkv processes on loopback, synced RocksDB, 128-byte "
               "proposals, "
            << seconds << " s per run (logs in " << dir << ")\n";
  std::map<std::pair<bool, int>, Result> ours;  // (streamed, proposers)
  for (bool streamed : {false, true}) {
    std::cout << (streamed ? "PutStream (writes queued meanwhile share a request):\n"
                           : "Put (one call per write):\n");
    for (int proposers : {1, 64}) {
      KvClients clients(*c, *leader, streamed);
      ours[{streamed, proposers}] = Load(clients.puts, proposers, duration);
      std::cout << Line(proposers, ours[{streamed, proposers}]);
    }
  }
  const absl::Duration failover =
      Failover([&] { c->Kill(*leader); },
               [&] {
                 for (int i = 1; i <= c->size(); ++i) {
                   if (c->Running(i) && c->Put(i, "failover", "x", absl::Milliseconds(500)).ok()) {
                     return true;
                   }
                 }
                 return false;
               });
  std::cout << "failover (kill -9 leader -> next committed write): "
            << absl::FormatDuration(failover) << "\n";
  c.reset();  // the peer runs alone

  if (!std::filesystem::exists(EtcdCluster::kBinary)) {
    std::cout << "etcd: not installed, no ratio (apt-get install etcd-server to measure it)\n";
  } else {
    EtcdCluster etcd(dir);
    auto etcd_leader = etcd.WaitForLeader(absl::Seconds(30));
    if (!etcd_leader.ok()) {
      std::cerr << etcd_leader.status() << "\n";
      return 1;
    }
    std::cout << "etcd (" << EtcdCluster::kBinary
              << ", 3 members on loopback, its fsync'ed WAL), Put (one call per write):\n";
    std::map<int, Result> theirs;
    for (int proposers : {1, 64}) {
      std::vector<std::unique_ptr<etcdserverpb::KV::Stub>> stubs;
      std::vector<PutFn> puts;
      for (int i = 0; i < kConnections; ++i) {
        stubs.push_back(etcd.NewClient(*etcd_leader));
        puts.push_back([stub = stubs.back().get()](const std::string& k, const std::string& v,
                                                   PutDone d) {
          UnaryPut<etcdserverpb::PutRequest, etcdserverpb::PutResponse>(stub, k, v, std::move(d));
        });
      }
      theirs[proposers] = Load(puts, proposers, duration);
      std::cout << Line(proposers, theirs[proposers]);
    }
    const absl::Duration etcd_failover =
        Failover([&] { etcd.Kill(*etcd_leader); },
                 [&] {
                   for (int i = 0; i < EtcdCluster::kSize; ++i) {
                     if (etcd.Running(i) && etcd.Put(i, "failover", "x", absl::Milliseconds(500))) {
                       return true;
                     }
                   }
                   return false;
                 });
    std::cout << "  failover (kill -9 leader -> next committed write): "
              << absl::FormatDuration(etcd_failover) << "\n";
    auto ratio = [](double a, double b) {
      return b > 0 ? absl::StrFormat("%.2fx", a / b) : std::string("-");
    };
    std::cout << "ours / etcd, committed/s with 64 proposers: Put "
              << ratio(ours[{false, 64}].per_second, theirs[64].per_second) << ", PutStream "
              << ratio(ours[{true, 64}].per_second, theirs[64].per_second)
              << "; with 1 proposer: Put "
              << ratio(ours[{false, 1}].per_second, theirs[1].per_second)
              << "; p99 at 64 proposers, etcd / ours: Put "
              << ratio(absl::ToDoubleMilliseconds(theirs[64].p99),
                       absl::ToDoubleMilliseconds(ours[{false, 64}].p99))
              << ", PutStream "
              << ratio(absl::ToDoubleMilliseconds(theirs[64].p99),
                       absl::ToDoubleMilliseconds(ours[{true, 64}].p99))
              << "\n";
  }
  std::cout << "goals: >20000 proposals/s with 64 proposers, p99 < 20ms, failover < 2s\n";
  return 0;
}

}  // namespace
}  // namespace swarm::raft

int main(int argc, char** argv) { return swarm::raft::Main(argc, argv); }

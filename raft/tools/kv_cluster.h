// KvCluster: starts, kills and queries raftkv processes on loopback, for the Raft node's
// multi-process tests and benchmarks. Member i (1-based) has Raft ID i, its own port and its
// own state directory under dir; its output goes to dir/node-i.log.
//
// Thread-safety: the query methods (Status, Put, Get, Dump, FindLeader) may be called from
// several threads; Start/Kill/Terminate from one.
#ifndef SWARM_RAFT_TOOLS_KV_CLUSTER_H_
#define SWARM_RAFT_TOOLS_KV_CLUSTER_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "raft/tools/raftkv.grpc.pb.h"

namespace swarm::raft {

class KvCluster {
 public:
  struct Options {
    int size = 3;
    // The raftkv binary; by default raft/tools/raftkv in the runfiles.
    std::string binary;
    // State directories and logs; by default a fresh directory under TEST_TMPDIR or /tmp.
    std::string dir;
    uint64_t snapshot_interval = 10000;
    int tick_ms = 100;
    // Members keep every write for Dump (raftkv --history).
    bool history = true;
  };

  explicit KvCluster(Options options);
  ~KvCluster();  // kills every member and removes nothing (logs stay for inspection)

  int size() const { return options_.size; }
  const std::string& dir() const { return options_.dir; }
  std::string state_dir(int i) const;
  std::string addr(int i) const { return addrs_.at(i); }

  void StartAll();
  void Start(int i);
  // kill -9.
  void Kill(int i);
  // SIGTERM, then waits for the exit.
  void Terminate(int i);
  bool Running(int i) const { return pids_.count(i) > 0; }
  // Waits for member i to exit by itself; returns its exit code (-1 on timeout).
  int WaitExit(int i, absl::Duration timeout);
  std::string Output(int i) const;

  absl::StatusOr<raftkv::StatusResponse> Status(int i, absl::Duration timeout = absl::Seconds(2));
  // The member that a running majority agrees leads, or an error after timeout.
  absl::StatusOr<int> WaitForLeader(absl::Duration timeout);
  absl::StatusOr<uint64_t> Put(int i, const std::string& key, const std::string& value,
                               absl::Duration timeout = absl::Seconds(5));
  // A client of member i on its own connection (for many concurrent clients).
  std::unique_ptr<raftkv::RaftKV::Stub> NewClient(int i) const;
  static absl::StatusOr<uint64_t> Put(raftkv::RaftKV::Stub& client, const std::string& key,
                                      const std::string& value, absl::Duration timeout);
  absl::StatusOr<std::vector<raftkv::Op>> Dump(int i);
  // Waits until every running member has applied at least index.
  absl::Status WaitForApplied(uint64_t index, absl::Duration timeout);

 private:
  raftkv::RaftKV::Stub* Stub(int i);

  Options options_;
  std::map<int, std::string> addrs_;
  std::map<int, pid_t> pids_;
  std::map<int, std::unique_ptr<raftkv::RaftKV::Stub>> stubs_;
};

// A client's writes over one PutStream: writes queued while a request is being sent go
// together in the next one. Thread-safe; `done` runs on a gRPC thread. Close it before
// destroying it (the stream must have ended).
class KvStreamClient final : public grpc::ClientBidiReactor<raftkv::PutBatch, raftkv::PutResults> {
 public:
  // The write's log index, or why it failed.
  using Done = std::function<void(absl::StatusOr<uint64_t>)>;
  explicit KvStreamClient(raftkv::RaftKV::Stub* stub);
  void Put(const std::string& key, const std::string& value, Done done);
  // Ends the stream once every write was answered (writes that were not fail).
  void Close();

  void OnWriteDone(bool ok) override;
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status&) override;

 private:
  bool TakeBatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  grpc::ClientContext ctx_;
  raftkv::PutResults in_;  // the read in flight
  raftkv::PutBatch out_;   // the write in flight
  absl::Mutex mu_;
  raftkv::PutBatch queued_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Done> waiting_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace swarm::raft

#endif  // SWARM_RAFT_TOOLS_KV_CLUSTER_H_

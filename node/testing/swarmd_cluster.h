// SwarmdCluster: real swarmd processes on loopback for multi-process tests and benchmarks.
// Node i (1-based) gets its own port, state directory and unix socket under one temporary
// directory in /tmp (unix socket paths must stay short), and its output in node-i.log there;
// or, with SetHost, a network namespace of the test's own as its host. The destructor kills
// every process, removes the containers the nodes started (their shims outlive swarmd by
// design), unmounts the network namespaces they kept in their state directories and removes
// the directory.
//
// Thread-safety: the stubs may be used from several threads; Start/Kill/Terminate from one.
#ifndef SWARM_NODE_TESTING_SWARMD_CLUSTER_H_
#define SWARM_NODE_TESTING_SWARMD_CLUSTER_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/runtime/runtime.h"
#include "proto/control.grpc.pb.h"
#include "proto/node.grpc.pb.h"

namespace swarm::node {

class SwarmdCluster {
 public:
  struct Options {
    // The swarmd binary; by default node/swarmd in the runfiles.
    std::string binary = "node/swarmd";
    int tick_ms = 100;
    // The swarm's dispatcher heartbeat period set by Init (0: swarmd's default, 5 s).
    absl::Duration heartbeat = absl::ZeroDuration();
    // Where node i's --exec-root goes: <exec_root_base>/node-<i> (a benchmark puts it on a
    // tmpfs, as /run is on a production host); empty: <state dir>/run.
    std::string exec_root_base;
  };

  explicit SwarmdCluster(Options options);
  SwarmdCluster() : SwarmdCluster(Options{}) {}
  ~SwarmdCluster();

  const std::string& dir() const { return dir_; }
  std::string state_dir(int i) const;
  std::string socket(int i) const;
  std::string exec_root(int i) const;
  // Opens node i's container runtime as its swarmd does, to look at its containers.
  absl::StatusOr<std::unique_ptr<agent::runtime::Runtime>> OpenRuntime(int i) const;
  // Runs node i in the network namespace at netns_path (through nsenter), listening on
  // ip:4242, instead of on a loopback port. Call before Start(i).
  void SetHost(int i, const std::string& netns_path, const std::string& ip);
  // host:port of node i's cluster listener.
  std::string addr(int i);
  std::string Output(int i) const;

  // Starts node i (with extra flags) and waits until its socket answers.
  absl::Status Start(int i, const std::vector<std::string>& extra_args = {});
  // kill -9.
  void Kill(int i);
  // SIGTERM; returns the exit status (or -1 when it did not exit within 10 s; then kill -9).
  int Terminate(int i);
  bool Running(int i) const { return pids_.count(i) > 0; }

  api::NodeAdmin::Stub& admin(int i);
  api::Control::Stub& control(int i);

  absl::StatusOr<api::InitSwarmResponse> Init(int i, bool autolock = false);
  // The current join token, read from node via's control API.
  absl::StatusOr<std::string> JoinToken(int via, bool manager);
  absl::StatusOr<api::JoinSwarmResponse> Join(int i, int via, bool manager);
  absl::StatusOr<api::NodeInfoResponse> Info(int i);
  // The node that says it leads, among the running ones.
  absl::StatusOr<int> WaitForLeader(absl::Duration timeout);

 private:
  Options options_;
  std::string dir_;
  std::map<int, int> ports_;
  std::map<int, std::pair<std::string, std::string>> hosts_;  // node -> {netns, ip}
  std::map<int, pid_t> pids_;
  std::map<int, std::unique_ptr<api::NodeAdmin::Stub>> admins_;
  std::map<int, std::unique_ptr<api::Control::Stub>> controls_;
};

// A deadline for a client call, timeout from now.
void SetTimeout(grpc::ClientContext& ctx, absl::Duration timeout = absl::Seconds(10));

}  // namespace swarm::node

#endif  // SWARM_NODE_TESTING_SWARMD_CLUSTER_H_

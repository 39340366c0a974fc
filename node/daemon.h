// Daemon: swarmd, the one daemon of every node. It owns the node's state directory and its
// unix socket (NodeAdmin for `swarm init|join|leave|unlock` and `info`, and the control API
// while the node is a manager), and the node's role: nothing (inactive), a worker, or a
// Manager (node/manager.h) with its TCP listener.
//
// States (LocalNodeState): INACTIVE until `swarm init` or `swarm join` succeeds; ACTIVE after;
// LOCKED for a manager restarted with autolock on, until `swarm unlock` gets the right key;
// ERROR when the stored state cannot be used (the reason is in `info` and the log). `swarm
// leave` returns to INACTIVE.
//
// Every active node also runs the agent (agent/agent.h): the session with a dispatcher and
// the node's tasks, as containers of the node's runtime. It starts once the node is active and
// unlocked, restarts with each new certificate (the containers keep running and are adopted),
// and on leave stops and removes the node's containers.
//
// On disk (STATE_DIR, mode 0700): node.state (node/state.proto: who the node is; written last,
// once an init or join has succeeded, so a crash halfway leaves an inactive node), keys (the
// Raft DEK and the TLS key, wrapped: manager/keymanager), raft/ (the encrypted log), and the
// agent's runtime/ (containers), images/ and tasks/ (its task database).
//
// Thread-safety: thread-safe. mu_ guards the state; an init, join, leave or unlock runs one at
// a time (busy_) without holding mu_ across its RPCs and disk writes.
#ifndef SWARM_NODE_DAEMON_H_
#define SWARM_NODE_DAEMON_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/agent.h"
#include "agent/container_executor.h"
#include "agent/network_manager.h"
#include "agent/sim_executor.h"
#include "common/clock.h"
#include "common/random.h"
#include "common/tls.h"
#include "manager/keymanager/keystore.h"
#include "node/logs_gate.h"
#include "node/manager.h"
#include "node/state.pb.h"
#include "proto/node.grpc.pb.h"

namespace swarm::node {

inline constexpr char kVersion[] = "0.1.0";

struct DaemonConfig {
  std::string state_dir = "/var/lib/swarmd";
  std::string socket = "/var/run/swarmd.sock";
  // Running containers' small files, written and removed for every container (best on a
  // tmpfs, as /run is): Docker's --exec-root. One daemon per exec root (a lock says so).
  std::string exec_root = "/var/run/swarmd";
  // Cluster traffic; `swarm init` and `join` may override both.
  std::string listen_addr = "0.0.0.0:4242";
  // Empty: the listen address, unless that is a wildcard (then init and join must say).
  std::string advertise_addr;
  // What the node reports about itself; empty hostname: the machine's.
  std::string hostname;
  std::map<std::string, std::string> labels;
  absl::Duration tick_interval = absl::Milliseconds(100);
  // `swarmd --restore FILE`: start a new swarm from a backup (the state directory must not
  // hold one); the unlock key when the backup is sealed.
  std::string restore_file;
  std::string restore_unlock_key;
  // Registries pulled from over plain HTTP (`--insecure-registry HOST:PORT`).
  std::set<std::string> insecure_registries;
  // What runs tasks: "container" (our runtime) or "simulated" (agent/sim_executor.h, for
  // tests and scale benchmarks).
  std::string executor = "container";
  // Forks the container executor's shims (started by main while the process is small);
  // null: the runtime forks them itself.
  agent::runtime::ShimLauncher* shim_launcher = nullptr;
  Clock* clock = &Clock::Real();
  Random* random = &SecureRandom::Get();
};

class Daemon {
 public:
  explicit Daemon(DaemonConfig config);
  ~Daemon();

  // Resumes the stored state (if any) and opens the unix socket. An error only when the
  // socket cannot be served; a stored state that cannot be used puts the node in ERROR.
  absl::Status Start();
  // Stops the manager (if any) and closes the socket.
  void Stop();

  absl::StatusOr<api::InitSwarmResponse> Init(const api::InitSwarmRequest& req);
  absl::StatusOr<api::JoinSwarmResponse> Join(const api::JoinSwarmRequest& req);
  absl::Status Leave(const api::LeaveSwarmRequest& req);
  absl::Status Unlock(const api::UnlockSwarmRequest& req);
  api::NodeInfoResponse Info() const;
  absl::StatusOr<api::BackupSwarmResponse> BackupSwarm();
  absl::StatusOr<api::RotateDataKeyResponse> RotateDataKey();
  // `swarm ca client-cert`: signs the CSR as an operator's (control API only); managers only.
  absl::StatusOr<api::IssueOperatorCertificateResponse> IssueOperatorCertificate(
      const api::IssueOperatorCertificateRequest& req);

 private:
  class AdminService;
  struct Addresses {
    std::string listen;
    std::string advertise;
  };

  // Reads node.state and starts the role it describes.
  void Resume();
  // Makes this node the first manager of a swarm whose cluster object is given (new, or from
  // a backup with its objects in restored): its certificate, keys, Raft group and state.
  absl::StatusOr<api::InitSwarmResponse> FoundSwarm(const Addresses& addrs, api::Cluster cluster,
                                                    const api::StoreSnapshot* restored,
                                                    api::NodeAvailability availability,
                                                    std::shared_ptr<Manager>* started);
  absl::Status Restore(const std::string& file, const std::string& unlock_key);
  // Joins the Raft group through remote with the node's manager certificate and returns the
  // started manager once it is a voter (st gets the Raft ID).
  absl::StatusOr<std::shared_ptr<Manager>> JoinRaft(NodeState* st, const std::string& remote,
                                                    const DataKey& dek, const std::string& tls_key);
  // Promotion and demotion are carried out by the node itself: a worker asks a manager
  // whether its role changed (the CA says RENEW), renews its certificate and joins the Raft
  // group; a manager sees its own desired role in its store, leaves the Raft group and renews
  // as a worker. One check every kRoleCheckPeriod, on the role-watch thread.
  void RunRoleWatch();
  absl::Status MaybePromote(NodeState st);
  bool DemotionWanted(const NodeState& st, Manager& m);
  absl::Status Demote(NodeState st, std::shared_ptr<Manager> m);
  // Certificates renew at a random point between half and four fifths of their lifetime, and
  // when the swarm forces a rotation (its CA config's force_rotate grew). Workers learn of a
  // forced rotation from the CA (RENEW), managers from their store.
  bool RenewalDue(const NodeState& st);
  absl::Status MaybeRenewManager(NodeState st, std::shared_ptr<Manager> m);
  // Stops a manager and waits until it is destroyed (its log closed).
  void StopAndRelease(std::shared_ptr<Manager> m);
  // A new certificate for this node with the role the swarm wants for it now, and the roots
  // to trust with it (trust_root; both roots during a root rotation).
  absl::StatusOr<std::string> Renew(const NodeState& st, const std::string& tls_key,
                                    api::NodeRole* role, std::string* trust_root);
  // Restarts the manager with st's certificate and roots (gRPC reloads them only from files).
  absl::Status RestartManager(const NodeState& st, std::shared_ptr<Manager> m,
                              const std::string& unlock_key);
  // Root CA rotation: the node asks a manager which roots to trust (saying which it trusts
  // now, for `swarm ca --rotate` to follow), and adopts them when they differ and accept its
  // own certificate: both roots while a rotation runs, the new one alone once it is over.
  // Runs on the role-watch thread after each role check.
  absl::Status SyncTrust(NodeState st, std::shared_ptr<Manager> m);
  absl::StatusOr<std::string> FetchTrustRoot(const std::string& addr, const tls::Credentials& creds,
                                             const std::string& trusted);
  bool TrustsCertificate(const std::string& bundle, const std::string& cert_pem) const;
  absl::StatusOr<api::InitSwarmResponse> ForceNewCluster();
  absl::StatusOr<Addresses> ChooseAddresses(const std::string& listen,
                                            const std::string& advertise) const;
  // Marks the start of an init, join, leave or unlock; FAILED_PRECONDITION if one is running
  // or the node is not in `want`.
  absl::Status BeginOperation(api::LocalNodeState want, const char* what);
  void EndOperation(api::LocalNodeState state, std::shared_ptr<Manager> manager = nullptr);
  // Ends an init, join or restore: ACTIVE with the started manager (if any), or, when result
  // is an error, INACTIVE again with nothing left behind.
  absl::Status EndFounding(absl::Status result, std::shared_ptr<Manager> started);
  absl::StatusOr<std::shared_ptr<Manager>> StartManager(
      const NodeState& st, const DataKey& dek, const std::string& tls_key,
      const std::string& unlock_key, bool bootstrap,
      std::map<uint64_t, std::string> known_members = {});
  // This node as the store records it: description, role, manager status.
  api::NodeDescription Describe() const;
  absl::Status WriteState(const NodeState& st);
  // Removes everything a previous membership left (state, keys, Raft log).
  absl::Status WipeState();
  absl::StatusOr<std::shared_ptr<api::Control::Service>> CurrentControl() const;
  // Starts the agent when the node is active and it is not running with the node's current
  // certificate (restarting it when the certificate changed); called by the role watch.
  void SyncAgent();
  // Stops the agent; with remove_containers (leaving the swarm), also every container of the
  // node and its task database.
  void StopAgent(bool remove_containers);
  absl::Status OpenRuntime(const NodeState& st) ABSL_EXCLUSIVE_LOCKS_REQUIRED(agent_mu_);
  // The overlay data plane of the container executor (not of the simulated one).
  absl::Status OpenNetworks(const NodeState& st) ABSL_EXCLUSIVE_LOCKS_REQUIRED(agent_mu_);

  const DaemonConfig config_;
  manager::keymanager::KeyStore keys_;
  std::unique_ptr<AdminService> admin_;
  std::unique_ptr<api::Control::Service> gate_;
  // `service logs` on the unix socket, passed to the current manager like the control API.
  std::unique_ptr<api::Logs::CallbackService> logs_gate_;
  std::unique_ptr<grpc::Server> socket_server_;

  mutable absl::Mutex mu_;
  api::LocalNodeState state_ ABSL_GUARDED_BY(mu_) = api::LOCAL_NODE_STATE_INACTIVE;
  std::string error_ ABSL_GUARDED_BY(mu_);
  NodeState node_state_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Manager> manager_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  // The role watch is checking or changing the node's role (promotion, demotion, renewal);
  // operators' operations wait for it to end.
  bool role_check_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Signalled by Stop().
  absl::CondVar role_cv_;
  std::thread role_watch_;
  // The certificate whose renewal time is known, and that time (role-watch thread only).
  std::string renewal_cert_;
  absl::Time renewal_at_;

  // The agent and what it runs on. Lock order: agent_mu_, then mu_.
  absl::Mutex agent_mu_;
  std::unique_ptr<agent::runtime::ImageStore> images_ ABSL_GUARDED_BY(agent_mu_);
  std::unique_ptr<agent::runtime::Runtime> runtime_ ABSL_GUARDED_BY(agent_mu_);
  int exec_root_lock_ = -1;  // flock on <exec_root>/swarmd.lock (container executor only)
  std::unique_ptr<agent::NetworkManager> networks_ ABSL_GUARDED_BY(agent_mu_);
  std::unique_ptr<agent::Executor> executor_ ABSL_GUARDED_BY(agent_mu_);
  std::unique_ptr<agent::TaskDb> task_db_ ABSL_GUARDED_BY(agent_mu_);
  std::unique_ptr<agent::Agent> agent_ ABSL_GUARDED_BY(agent_mu_);
  // The certificate and roots the agent's session was opened with.
  std::string agent_cert_ ABSL_GUARDED_BY(agent_mu_);
};

}  // namespace swarm::node

#endif  // SWARM_NODE_DAEMON_H_

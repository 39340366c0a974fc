// Manager: the manager role of one node — its Raft member, the replicated store, the CA, the
// control API, and the TCP listener other nodes reach them on (mutual TLS; callers without a
// certificate get in only to join). The Daemon starts one when the node becomes, or restarts
// as, an unlocked manager, and stops it when the node leaves or shuts down.
//
// Control API calls that reach a follower are forwarded to the leader (node/control_router.h),
// so the control API's checks across objects run in one place. The CA is served by every
// manager itself: its writes are Raft proposals, which a follower's Raft node forwards to the
// leader. Reads wait for a linearizable read index first. Leader-only components run under
// the LeaderRuntime (manager/leader), fed by the Raft node's leadership changes. The agents'
// Dispatcher calls are served by the leader's dispatcher, one of those components; the other
// managers relay them to it (manager/dispatcher/service.h). Log subscriptions likewise live in
// the leader's log broker, and the other managers relay Logs and LogBroker calls to it
// (manager/logbroker/service.h).
//
// Thread-safety: thread-safe. Stop() may be called from any thread but not from a gRPC handler
// of this manager's own server.
#ifndef SWARM_NODE_MANAGER_H_
#define SWARM_NODE_MANAGER_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/aead.h"
#include "common/clock.h"
#include "common/random.h"
#include "common/tls.h"
#include "manager/ca/server.h"
#include "manager/controlapi/server.h"
#include "manager/dispatcher/dispatcher.h"
#include "manager/dispatcher/service.h"
#include "manager/keymanager/keystore.h"
#include "manager/leader/runtime.h"
#include "manager/logbroker/broker.h"
#include "manager/logbroker/service.h"
#include "manager/store/store.h"
#include "raft/node.h"

namespace swarm::node {

struct ManagerConfig {
  std::string state_dir;
  std::string node_id;
  uint64_t raft_id = 0;
  std::string listen_addr;
  std::string advertise_addr;
  tls::Credentials credentials;
  // The Raft DEK. With a keystore, the stored keys win: they may hold a newer DEK, and the old
  // DEKs of a rotation that a crash interrupted (finished once the manager runs).
  DataKey dek;
  // Only for a new cluster (`swarm init`): this manager is its first and only member.
  bool bootstrap = false;
  // For a manager that just joined: the Raft members the join answered with (ID -> address).
  std::map<uint64_t, std::string> known_members;
  // Where this manager's keys are kept, and the unlock key they are wrapped with now (empty:
  // the node-local key). The manager re-wraps them when the cluster turns autolock on or off
  // or rotates the unlock key.
  manager::keymanager::KeyStore* keystore = nullptr;
  std::string unlock_key;
  absl::Duration tick_interval = absl::Milliseconds(100);
  Clock* clock = &Clock::Real();
  Random* random = &SecureRandom::Get();
};

class Manager {
 public:
  static absl::StatusOr<std::shared_ptr<Manager>> Start(ManagerConfig config);
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Stops serving, then stops the Raft node; pending writes fail with UNAVAILABLE.
  void Stop();

  const ManagerConfig& config() const { return config_; }
  // The Raft DEK that seals new log records now (it changes when the DEK rotates).
  DataKey dek() const;
  // Rotates the Raft DEK now (NodeAdmin.RotateDataKey) and returns the new key's ID. The
  // maintenance thread does it, so the key store keeps a single user.
  absl::StatusOr<uint32_t> RotateDataKeyNow(absl::Duration timeout);
  manager::store::MemoryStore& store() { return *store_; }
  raft::Node& raft() { return *raft_; }
  // The control API for the node's unix socket (no certificate needed: root on the node).
  std::shared_ptr<api::Control::Service> local_control() { return local_control_; }
  // The Logs service for the node's unix socket (no certificate needed).
  std::shared_ptr<api::Logs::CallbackService> local_logs() { return local_logs_; }
  // Waits until a leader is known and this manager has applied what it committed.
  absl::Status WaitForLeader(absl::Duration timeout);
  // Removes this manager from the Raft group (`swarm leave`): a leader hands over first,
  // then another member removes this one, so the removal is applied by a member that stays
  // (this one may never hear that it committed). Needs the quorum.
  absl::Status LeaveRaft(absl::Duration timeout);
  // When this manager leads, moves the leadership to another member it hears from (before a
  // planned stop: the others need not wait for an election timeout to notice); false when it
  // led, other members exist, and none took over.
  bool HandOffLeadership();

 private:
  explicit Manager(ManagerConfig config) : config_(std::move(config)) {}
  absl::Status Init();
  // The manager's background duties, every kMaintenancePeriod until Stop().
  void RunMaintenance();
  // Re-wraps the keys at rest when the cluster's autolock setting or unlock key changed, and
  // rotates the Raft DEK with them (as SwarmKit does).
  void SyncKeys();
  // DEK rotation, in three steps that each leave a key store able to open the log whatever
  // happens next: store a new DEK with the current one kept as old, have the Raft log move to
  // it (RotateDataKey: snapshot, compact, re-seal the rest), store the keys without the old
  // one. unlock_key wraps the stored keys (empty: the node-local key). Maintenance thread only.
  absl::Status RotateDataKey(const std::string& unlock_key);
  // The last two steps, for a rotation found unfinished (old_deks_ not empty) or one whose
  // second step failed: the log is told the stored DEK again, so the key store never drops a
  // key the log still seals with.
  absl::Status FinishDataKeyRotation();
  // The leader's address, unless this manager leads or none is known.
  std::optional<std::string> LeaderAddr();
  // A control API client of the leader, or null when this manager leads or none is known.
  std::shared_ptr<api::Control::Stub> LeaderControl();
  // A Dispatcher client of the leader, likewise.
  std::shared_ptr<api::Dispatcher::Stub> LeaderDispatcher();
  // A channel to the leader (the log services' relay), likewise.
  std::shared_ptr<grpc::Channel> LeaderChannel();

  ManagerConfig config_;
  std::unique_ptr<manager::store::MemoryStore> store_;
  // Holds the leader's dispatcher while this manager leads (set by its leader component, read
  // by the Dispatcher service); outlives both.
  manager::dispatcher::DispatcherSlot dispatcher_slot_;
  // Holds the leader's log broker while this manager leads, likewise.
  manager::logbroker::BrokerSlot broker_slot_;
  // Starts and stops the leader-only components; fed by the Raft node's leadership changes.
  std::unique_ptr<manager::leader::LeaderRuntime> leader_;
  std::unique_ptr<raft::Node> raft_;
  std::unique_ptr<manager::store::RaftProposer> proposer_;
  std::unique_ptr<manager::ca::CAServer> ca_;
  // The control API, and its routers for the unix socket and the TCP listener.
  std::shared_ptr<manager::controlapi::Server> control_;
  std::shared_ptr<api::Control::Service> local_control_;
  std::unique_ptr<api::Control::Service> remote_control_;
  // Serves the agents' Dispatcher calls, or relays them to the leader; outlives server_.
  std::unique_ptr<manager::dispatcher::Service> dispatcher_;
  // Log services (Logs for the unix socket and the TCP listener, LogBroker for agents): they
  // serve from broker_slot_ or relay to the leader (manager/logbroker/service.h).
  std::shared_ptr<api::Logs::CallbackService> local_logs_;
  std::unique_ptr<api::Logs::CallbackService> remote_logs_;
  std::unique_ptr<api::LogBroker::CallbackService> log_broker_service_;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<bool> stopped_{false};

  absl::Mutex mu_;
  // Signalled by Stop() and by RotateDataKeyNow().
  absl::CondVar stop_cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // On-demand DEK rotations: requests made and answered (the maintenance thread answers all
  // pending ones with one rotation), and the outcome of the last.
  uint64_t rotations_requested_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t rotations_done_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status last_rotation_ ABSL_GUARDED_BY(mu_);
  // Signalled when rotations_done_ grows and on Stop().
  absl::CondVar rotation_done_cv_;
  // The unlock key the stored keys are wrapped with now (maintenance thread only).
  std::string wrapped_with_;
  mutable absl::Mutex dek_mu_;
  DataKey dek_ ABSL_GUARDED_BY(dek_mu_);
  // DEKs the Raft log may still hold records sealed with (set by Init, then maintenance thread
  // only); the key store keeps them until the log no longer needs them.
  std::vector<DataKey> old_deks_;
  // Control API clients of other managers, by address.
  std::map<std::string, std::shared_ptr<api::Control::Stub>> peers_ ABSL_GUARDED_BY(mu_);
  // Dispatcher clients of other managers, by address.
  std::map<std::string, std::shared_ptr<api::Dispatcher::Stub>> dispatcher_peers_
      ABSL_GUARDED_BY(mu_);
  // Channels to other managers for the log services' relays, by address.
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
  std::thread maintenance_;
};

}  // namespace swarm::node

#endif  // SWARM_NODE_MANAGER_H_

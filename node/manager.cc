#include "node/manager.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "manager/allocator/allocator.h"
#include "manager/ca/rotation.h"
#include "manager/dispatcher/dispatcher.h"
#include "manager/leader/members.h"
#include "manager/orchestrator/orchestrator.h"
#include "node/control_router.h"
#include "proto/raft_service.grpc.pb.h"
#include "scheduler/component.h"

namespace swarm::node {
namespace {
constexpr char kLog[] = "manager";
constexpr absl::Duration kMaintenancePeriod = absl::Milliseconds(500);
// A snapshot and a re-seal of the log's tail; long only on a very slow disk.
constexpr absl::Duration kDataKeyRotationTimeout = absl::Seconds(60);
constexpr int kMaxIdleServerThreads = 256;
// How long a member has to take over the leadership handed to it (it is caught up in a round
// trip; an election timeout is the cost of giving up).
constexpr absl::Duration kHandOffTimeout = absl::Seconds(3);
}  // namespace

absl::StatusOr<std::shared_ptr<Manager>> Manager::Start(ManagerConfig config) {
  std::shared_ptr<Manager> m(new Manager(std::move(config)));
  if (absl::Status s = m->Init(); !s.ok()) {
    m->Stop();
    return s;
  }
  return m;
}

absl::Status Manager::Init() {
  // The store exists before the Raft node, which replays the log into it.
  store_ = std::make_unique<manager::store::MemoryStore>(nullptr, config_.clock);
  raft::NodeConfig rc;
  rc.id = config_.raft_id;
  rc.advertise_addr = config_.advertise_addr;
  rc.state_dir = config_.state_dir;
  DataKey dek = config_.dek;
  if (config_.keystore != nullptr) {
    absl::StatusOr<bool> locked = config_.keystore->Locked();
    absl::StatusOr<manager::keymanager::Keys> stored =
        !locked.ok() ? locked.status()
        : *locked    ? config_.keystore->Unlock(config_.unlock_key)
                     : config_.keystore->Load();
    if (stored.ok()) {
      dek = stored->dek;
      old_deks_ = stored->old_deks;
    } else {
      log::Warn(kLog, "cannot read the stored keys; starting with the DEK given",
                {{"reason", stored.status()}});
    }
  }
  {
    absl::MutexLock lock(&dek_mu_);
    dek_ = dek;
  }
  rc.key = dek;
  rc.old_keys = old_deks_;
  if (config_.bootstrap) rc.bootstrap_members = {{config_.raft_id, config_.advertise_addr}};
  rc.known_members = config_.known_members;
  rc.tick_interval = config_.tick_interval;
  rc.channel_credentials = tls::ChannelCredentials(config_.credentials);
  rc.channel_arguments = tls::ChannelArguments(tls::kManagerRole);
  rc.require_manager_peers = true;
  rc.clock = config_.clock;
  rc.state_machine = store_.get();
  // Leader-only components: built anew for each leadership, after the node exists.
  leader_ = std::make_unique<manager::leader::LeaderRuntime>(
      std::vector<manager::leader::LeaderRuntime::Factory>{
          [this] {
            return std::make_unique<manager::leader::MemberReconciler>(store_.get(), raft_.get(),
                                                                       config_.clock);
          },
          [this] {
            return std::make_unique<manager::ca::RootRotator>(store_.get(), config_.clock,
                                                              config_.random);
          },
          [this] {
            return std::make_unique<manager::orchestrator::Orchestrator>(
                store_.get(), config_.clock, config_.random);
          },
          [this] {
            return std::make_unique<manager::allocator::Allocator>(store_.get(), config_.clock);
          },
          [this] {
            return std::make_unique<scheduler::SchedulerComponent>(store_.get(), config_.clock);
          },
          [this] {
            manager::dispatcher::Dispatcher::Options o;
            o.node_id = config_.node_id;
            o.clock = config_.clock;
            o.random = config_.random;
            return std::make_unique<manager::dispatcher::LeaderDispatcher>(store_.get(), o,
                                                                           &dispatcher_slot_);
          },
          [this] {
            manager::logbroker::LogBroker::Options o;
            o.clock = config_.clock;
            o.random = config_.random;
            return std::make_unique<manager::logbroker::LeaderLogBroker>(store_.get(), o,
                                                                         &broker_slot_);
          },
      });
  rc.on_leadership_change = [leader = leader_.get()](bool is_leader, uint64_t term) {
    leader->OnLeadershipChange(is_leader, term);
  };
  auto node = raft::Node::Create(std::move(rc));
  if (!node.ok()) return node.status();
  raft_ = *std::move(node);
  proposer_ = std::make_unique<manager::store::RaftProposer>(raft_.get());
  store_->set_proposer(proposer_.get());
  ca_ = std::make_unique<manager::ca::CAServer>(store_.get(), config_.clock, config_.random);

  manager::controlapi::Server::Options opts;
  opts.clock = config_.clock;
  opts.random = config_.random;
  opts.sync = [raft = raft_.get(), clock = config_.clock] {
    // While a leader is being elected or learned, reads fail as UNAVAILABLE: wait that out.
    const absl::Time deadline = clock->Now() + absl::Seconds(5);
    while (true) {
      absl::Status s = raft->LinearizableRead(deadline - clock->Now());
      if (s.code() != absl::StatusCode::kUnavailable || clock->Now() >= deadline) return s;
      absl::SleepFor(absl::Milliseconds(50));
    }
  };
  opts.check_role_change = [raft = raft_.get()](const api::Node& node, api::NodeRole role) {
    const uint64_t id = node.manager_status().raft_id();
    if (role != api::NODE_ROLE_WORKER || id == 0) return absl::OkStatus();
    const raft::NodeStatus rs = raft->Status();
    std::vector<uint64_t> remaining;
    for (uint64_t v : rs.conf_state.voters) {
      if (v != id) remaining.push_back(v);
    }
    if (remaining.empty()) {
      return absl::FailedPreconditionError(
          "cannot demote the last manager of the swarm: promote another node first");
    }
    // The control API runs on the leader, which knows who answers: the managers left must
    // still form a quorum among themselves.
    size_t reachable = 0;
    for (uint64_t v : remaining) reachable += rs.active.count(v);
    const size_t quorum = remaining.size() / 2 + 1;
    if (!rs.active.empty() && reachable < quorum) {
      return absl::FailedPreconditionError(absl::StrCat(
          "demoting this manager would leave ", reachable, " reachable managers of ",
          remaining.size(), ", below the quorum of ", quorum,
          ": the swarm would stop; bring the unreachable managers back or remove them first"));
    }
    return absl::OkStatus();
  };
  opts.unlock_key = [store = store_.get()]() -> absl::StatusOr<std::string> {
    std::string key;
    store->View([&](const manager::store::ReadTx& tx) {
      for (const auto& c : tx.ListClusters()) key = manager::controlapi::UnlockKeyOf(*c);
    });
    return key;
  };
  control_ = std::make_shared<manager::controlapi::Server>(store_.get(), opts);
  auto leader = [this] { return LeaderControl(); };
  local_control_ = std::make_shared<ControlRouter>(control_, leader, /*require_manager=*/false);
  remote_control_ = std::make_unique<ControlRouter>(control_, leader, /*require_manager=*/true);

  grpc::ServerBuilder b;
  // Control API calls forwarded by the other managers block here until their write commits.
  // gRPC's synchronous server ends a thread that returns while more than MAX_POLLERS (2 by
  // default) are idle, and starts another for the next call: under load, hundreds of threads
  // a second, each building OpenSSL's and malloc's per-thread state again. Idle threads wait
  // for work instead, up to the number of calls that have been in flight at once.
  b.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, kMaxIdleServerThreads);
  b.SetMaxReceiveMessageSize(raft::kMaxMessageBytes);
  b.AddListeningPort(config_.listen_addr,
                     tls::ServerCredentials(
                         config_.credentials, tls::ClientCerts::kOptional,
                         // Removed nodes are refused from the moment their removal commits.
                         [store = store_.get()](const std::string& node_id) {
                           bool revoked = false;
                           store->View([&](const manager::store::ReadTx& tx) {
                             for (const auto& c : tx.ListClusters()) {
                               revoked = revoked || c->blacklisted_certificates().count(node_id);
                             }
                           });
                           return revoked;
                         }));
  b.RegisterService(raft_->raft_service());
  b.RegisterService(raft_->membership_service());
  b.RegisterService(static_cast<api::CA::Service*>(ca_.get()));
  b.RegisterService(static_cast<api::NodeCA::Service*>(ca_.get()));
  b.RegisterService(remote_control_.get());
  dispatcher_ = std::make_unique<manager::dispatcher::Service>(
      &dispatcher_slot_, [this] { return LeaderDispatcher(); });
  b.RegisterService(dispatcher_.get());
  auto leader_logs = [this] { return LeaderChannel(); };
  local_logs_ =
      std::make_shared<manager::logbroker::LogsService>(&broker_slot_, leader_logs, false);
  remote_logs_ =
      std::make_unique<manager::logbroker::LogsService>(&broker_slot_, leader_logs, true);
  log_broker_service_ =
      std::make_unique<manager::logbroker::LogBrokerService>(&broker_slot_, leader_logs);
  b.RegisterService(remote_logs_.get());
  b.RegisterService(log_broker_service_.get());
  server_ = b.BuildAndStart();
  if (server_ == nullptr) {
    return absl::UnavailableError("cannot listen on " + config_.listen_addr +
                                  " (is the address in use? choose another with --listen-addr)");
  }
  raft_->Start();
  wrapped_with_ = config_.unlock_key;
  maintenance_ = std::thread([this] { RunMaintenance(); });
  log::Info(
      kLog, "manager started",
      {{"node", config_.node_id}, {"raft_id", config_.raft_id}, {"addr", config_.advertise_addr}});
  return absl::OkStatus();
}

Manager::~Manager() { Stop(); }

void Manager::Stop() {
  if (stopped_.exchange(true)) return;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    stop_cv_.SignalAll();
    rotation_done_cv_.SignalAll();
  }
  if (maintenance_.joinable()) maintenance_.join();
  // Leader-only components use the Raft node and the store: they stop first.
  if (leader_) leader_->Stop();
  // Peers keep their Raft streams open: cancel them after a short grace period.
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  if (raft_) raft_->Stop();
}

std::optional<std::string> Manager::LeaderAddr() {
  const raft::NodeStatus rs = raft_->Status();
  if (rs.leader == raft::kNone || rs.leader == rs.id) return std::nullopt;
  auto it = rs.members.find(rs.leader);
  if (it == rs.members.end()) return std::nullopt;
  return it->second.addr;
}

std::shared_ptr<api::Control::Stub> Manager::LeaderControl() {
  const std::optional<std::string> addr = LeaderAddr();
  if (!addr) return nullptr;
  absl::MutexLock lock(&mu_);
  std::shared_ptr<api::Control::Stub>& stub = peers_[*addr];
  if (stub == nullptr) {
    stub = api::Control::NewStub(
        grpc::CreateCustomChannel(*addr, tls::ChannelCredentials(config_.credentials),
                                  tls::ChannelArguments(tls::kManagerRole)));
  }
  return stub;
}

std::shared_ptr<api::Dispatcher::Stub> Manager::LeaderDispatcher() {
  const std::optional<std::string> addr = LeaderAddr();
  if (!addr) return nullptr;
  absl::MutexLock lock(&mu_);
  std::shared_ptr<api::Dispatcher::Stub>& stub = dispatcher_peers_[*addr];
  if (stub == nullptr) {
    stub = api::Dispatcher::NewStub(
        grpc::CreateCustomChannel(*addr, tls::ChannelCredentials(config_.credentials),
                                  tls::ChannelArguments(tls::kManagerRole)));
  }
  return stub;
}

std::shared_ptr<grpc::Channel> Manager::LeaderChannel() {
  const std::optional<std::string> addr = LeaderAddr();
  if (!addr) return nullptr;
  absl::MutexLock lock(&mu_);
  std::shared_ptr<grpc::Channel>& channel = channels_[*addr];
  if (channel == nullptr) {
    channel = grpc::CreateCustomChannel(*addr, tls::ChannelCredentials(config_.credentials),
                                        tls::ChannelArguments(tls::kManagerRole));
  }
  return channel;
}

void Manager::RunMaintenance() {
  pthread_setname_np(pthread_self(), "manager-maint");
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    stop_cv_.WaitWithTimeout(&mu_, kMaintenancePeriod);
    if (stopping_) break;
    const uint64_t requested = rotations_requested_;
    const bool rotate = requested > rotations_done_;
    mu_.Unlock();
    SyncKeys();
    absl::Status rotated;
    if (rotate) {
      rotated = config_.keystore == nullptr
                    ? absl::FailedPreconditionError("this manager keeps no keys at rest")
                    : RotateDataKey(wrapped_with_);
      if (!rotated.ok()) log::Error(kLog, "cannot rotate the raft data key", {{"reason", rotated}});
    }
    mu_.Lock();
    if (rotate) {
      rotations_done_ = requested;
      last_rotation_ = rotated;
      rotation_done_cv_.SignalAll();
    }
  }
}

absl::StatusOr<uint32_t> Manager::RotateDataKeyNow(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  const uint64_t ticket = ++rotations_requested_;
  stop_cv_.Signal();
  while (rotations_done_ < ticket && !stopping_) {
    if (rotation_done_cv_.WaitWithDeadline(&mu_, deadline)) break;
  }
  if (rotations_done_ < ticket) {
    if (stopping_) return absl::UnavailableError("the manager is stopping");
    return absl::DeadlineExceededError("the raft data key did not rotate in time");
  }
  RETURN_IF_ERROR(last_rotation_);
  return dek().id;
}

DataKey Manager::dek() const {
  absl::MutexLock lock(&dek_mu_);
  return dek_;
}

void Manager::SyncKeys() {
  if (config_.keystore == nullptr) return;
  if (!old_deks_.empty()) {
    if (absl::Status s = FinishDataKeyRotation(); !s.ok()) {
      log::Error(kLog, "cannot finish rotating the raft data key; retrying", {{"reason", s}});
      return;
    }
  }
  std::optional<std::string> wanted;
  store_->View([&](const manager::store::ReadTx& tx) {
    for (const auto& c : tx.ListClusters()) wanted = manager::controlapi::UnlockKeyOf(*c);
  });
  if (!wanted || *wanted == wrapped_with_) return;
  if (absl::Status s = RotateDataKey(*wanted); !s.ok()) {
    log::Error(kLog, "cannot re-wrap the keys at rest", {{"reason", s}});
    return;
  }
  log::Info(kLog, wanted->empty() ? "autolock is off: keys wrapped with the node-local key"
                                  : "autolock is on: keys wrapped with the unlock key");
}

absl::Status Manager::RotateDataKey(const std::string& unlock_key) {
  const DataKey current = dek();
  manager::keymanager::Keys keys{NewDataKey(current.id + 1, *config_.random),
                                 config_.credentials.key_pem, old_deks_};
  keys.old_deks.push_back(current);
  // The key store learns the new DEK before the log seals anything with it.
  RETURN_IF_ERROR(config_.keystore->Store(keys, unlock_key));
  wrapped_with_ = unlock_key;
  old_deks_ = keys.old_deks;
  {
    absl::MutexLock lock(&dek_mu_);
    dek_ = keys.dek;
  }
  RETURN_IF_ERROR(FinishDataKeyRotation());
  log::Info(kLog, "rotated the raft data key", {{"key_id", keys.dek.id}});
  return absl::OkStatus();
}

absl::Status Manager::FinishDataKeyRotation() {
  // The log moves to the stored DEK if an earlier attempt did not get that far, and re-seals
  // what it still holds under old DEKs (nothing when it just rotated).
  const DataKey current = dek();
  ASSIGN_OR_RETURN(const uint32_t id, raft_->RotateDataKey(current, kDataKeyRotationTimeout));
  if (id != current.id) {
    return absl::InternalError("the raft log seals with key " + std::to_string(id) +
                               ", not the stored key " + std::to_string(current.id));
  }
  RETURN_IF_ERROR(config_.keystore->Store(
      manager::keymanager::Keys{current, config_.credentials.key_pem, {}}, wrapped_with_));
  old_deks_.clear();
  return absl::OkStatus();
}

bool Manager::HandOffLeadership() {
  const raft::NodeStatus rs = raft_->Status();
  if (rs.state != raft::StateType::kLeader) return true;
  // Members heard from lately first (the set is as of the last Ready: it may miss some).
  std::vector<uint64_t> others;
  for (uint64_t v : rs.conf_state.voters) {
    if (v != rs.id) others.push_back(v);
  }
  std::stable_partition(others.begin(), others.end(),
                        [&](uint64_t v) { return rs.active.count(v) > 0; });
  for (uint64_t v : others) {
    if (raft_->TransferLeadership(v, kHandOffTimeout).ok()) return true;
  }
  return others.empty();
}

absl::Status Manager::LeaveRaft(absl::Duration timeout) {
  const absl::Time deadline = config_.clock->Now() + timeout;
  HandOffLeadership();
  absl::Status last = absl::UnavailableError("no other manager to ask");
  while (config_.clock->Now() < deadline) {
    const raft::NodeStatus rs = raft_->Status();
    for (const auto& [id, member] : rs.members) {
      if (id == rs.id) continue;
      auto stub = api::RaftMembership::NewStub(
          grpc::CreateCustomChannel(member.addr, tls::ChannelCredentials(config_.credentials),
                                    tls::ChannelArguments(tls::kManagerRole)));
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      api::LeaveRequest req;
      req.mutable_node()->set_raft_id(rs.id);
      req.mutable_node()->set_node_id(config_.node_id);
      api::LeaveResponse resp;
      grpc::Status s = stub->Leave(&ctx, req, &resp);
      // NOT_FOUND: an earlier attempt removed it, though its answer was lost (the removal of
      // a leader ends its term before it answers).
      if (s.ok() || s.error_code() == grpc::StatusCode::NOT_FOUND) {
        log::Info(kLog, "left the raft group", {{"via", member.addr}});
        return absl::OkStatus();
      }
      last = FromGrpcStatus(s);
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  return last;
}

absl::Status Manager::WaitForLeader(absl::Duration timeout) {
  const absl::Time deadline = config_.clock->Now() + timeout;
  while (true) {
    if (raft_->Status().leader != raft::kNone) {
      absl::Status s = raft_->LinearizableRead(absl::Seconds(2));
      if (s.ok() || config_.clock->Now() >= deadline) return s;
    } else if (config_.clock->Now() >= deadline) {
      return absl::UnavailableError("no raft leader was elected in time");
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

}  // namespace swarm::node

#include "node/daemon.h"

#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/grpc_status.h"
#include "common/id.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "manager/ca/ca.h"
#include "node/control_router.h"
#include "proto/ca.grpc.pb.h"
#include "proto/raft_service.grpc.pb.h"

namespace swarm::node {
namespace {

namespace fs = std::filesystem;
using manager::ca::Role;
using manager::ca::RootCA;
using manager::keymanager::Keys;

constexpr char kLog[] = "swarmd";
constexpr char kStateFile[] = "node.state";
constexpr absl::Duration kDefaultCertExpiry = absl::Hours(24 * 90);
constexpr absl::Duration kRpcTimeout = absl::Seconds(10);

std::chrono::system_clock::time_point Deadline(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

api::NodeRole ApiRole(Role r) {
  return r == Role::kManager ? api::NODE_ROLE_MANAGER : api::NODE_ROLE_WORKER;
}

// "0.0.0.0:4242" -> true: an address to listen on, not one others can dial.
bool IsWildcard(const std::string& addr) {
  return absl::StartsWith(addr, "0.0.0.0:") || absl::StartsWith(addr, "[::]:") ||
         absl::StartsWith(addr, ":");
}

}  // namespace

// ---- NodeAdmin on the unix socket ----

class Daemon::AdminService final : public api::NodeAdmin::Service {
 public:
  explicit AdminService(Daemon* d) : d_(d) {}
  grpc::Status InitSwarm(grpc::ServerContext*, const api::InitSwarmRequest* req,
                         api::InitSwarmResponse* resp) override {
    auto r = d_->Init(*req);
    if (!r.ok()) return ToGrpcStatus(r.status());
    *resp = *std::move(r);
    return grpc::Status::OK;
  }
  grpc::Status JoinSwarm(grpc::ServerContext*, const api::JoinSwarmRequest* req,
                         api::JoinSwarmResponse* resp) override {
    auto r = d_->Join(*req);
    if (!r.ok()) return ToGrpcStatus(r.status());
    *resp = *std::move(r);
    return grpc::Status::OK;
  }
  grpc::Status LeaveSwarm(grpc::ServerContext*, const api::LeaveSwarmRequest* req,
                          api::LeaveSwarmResponse*) override {
    return ToGrpcStatus(d_->Leave(*req));
  }
  grpc::Status UnlockSwarm(grpc::ServerContext*, const api::UnlockSwarmRequest* req,
                           api::UnlockSwarmResponse*) override {
    return ToGrpcStatus(d_->Unlock(*req));
  }
  grpc::Status NodeInfo(grpc::ServerContext*, const api::NodeInfoRequest*,
                        api::NodeInfoResponse* resp) override {
    *resp = d_->Info();
    return grpc::Status::OK;
  }

 private:
  Daemon* d_;
};

// ---- Lifecycle ----

Daemon::Daemon(DaemonConfig config)
    : config_(std::move(config)),
      keys_(config_.state_dir, *config_.random),
      admin_(std::make_unique<AdminService>(this)),
      gate_(std::make_unique<ControlGate>([this] { return CurrentControl(); })) {}

Daemon::~Daemon() { Stop(); }

absl::Status Daemon::Start() {
  std::error_code ec;
  fs::create_directories(config_.state_dir, ec);
  if (ec) {
    return absl::UnavailableError("creating the state directory " + config_.state_dir + ": " +
                                  ec.message());
  }
  ::chmod(config_.state_dir.c_str(), 0700);
  Resume();

  const fs::path socket(config_.socket);
  if (socket.has_parent_path()) fs::create_directories(socket.parent_path(), ec);
  // A socket left by a previous run would make the listen fail.
  fs::remove(socket, ec);
  grpc::ServerBuilder b;
  b.AddListeningPort("unix:" + config_.socket, grpc::InsecureServerCredentials());
  b.RegisterService(admin_.get());
  b.RegisterService(gate_.get());
  socket_server_ = b.BuildAndStart();
  if (socket_server_ == nullptr) {
    return absl::UnavailableError("cannot serve the unix socket " + config_.socket +
                                  " (is another swarmd running? choose another with --socket)");
  }
  ::chmod(config_.socket.c_str(), 0660);
  log::Info(kLog, "swarmd started", {{"socket", config_.socket}, {"state_dir", config_.state_dir}});
  return absl::OkStatus();
}

void Daemon::Stop() {
  if (socket_server_) {
    socket_server_->Shutdown(Deadline(absl::Seconds(1)));
    socket_server_.reset();
  }
  std::shared_ptr<Manager> m;
  {
    absl::MutexLock lock(&mu_);
    m = std::move(manager_);
  }
  if (m) m->Stop();
}

void Daemon::Resume() {
  auto data = ReadFile((fs::path(config_.state_dir) / kStateFile).string());
  if (!data.ok()) return;  // never joined: inactive
  NodeState st;
  auto fail = [&](const std::string& why) {
    log::Error(kLog, "cannot resume the stored state", {{"reason", why}});
    absl::MutexLock lock(&mu_);
    state_ = api::LOCAL_NODE_STATE_ERROR;
    error_ = why;
  };
  if (!st.ParseFromString(*data)) {
    return fail(config_.state_dir + "/" + kStateFile +
                " is damaged; restore the node from a backup or remove the state directory and "
                "join again");
  }
  {
    absl::MutexLock lock(&mu_);
    node_state_ = st;
  }
  if (st.role() != api::NODE_ROLE_MANAGER) {
    absl::MutexLock lock(&mu_);
    state_ = api::LOCAL_NODE_STATE_ACTIVE;
    return;
  }
  auto locked = keys_.Locked();
  if (!locked.ok()) return fail(std::string(locked.status().message()));
  if (*locked) {
    log::Info(kLog, "this manager is locked: run swarmctl swarm unlock");
    absl::MutexLock lock(&mu_);
    state_ = api::LOCAL_NODE_STATE_LOCKED;
    error_ = "this node is locked: run swarmctl swarm unlock";
    return;
  }
  auto keys = keys_.Load();
  if (!keys.ok()) return fail(std::string(keys.status().message()));
  auto m = StartManager(st, keys->dek, keys->tls_key_pem, "", /*bootstrap=*/false);
  if (!m.ok()) return fail(std::string(m.status().message()));
  absl::MutexLock lock(&mu_);
  manager_ = *std::move(m);
  state_ = api::LOCAL_NODE_STATE_ACTIVE;
}

absl::StatusOr<std::shared_ptr<Manager>> Daemon::StartManager(
    const NodeState& st, const DataKey& dek, const std::string& tls_key,
    const std::string& unlock_key, bool bootstrap, std::map<uint64_t, std::string> known_members) {
  ManagerConfig mc;
  mc.state_dir = config_.state_dir;
  mc.node_id = st.node_id();
  mc.raft_id = st.raft_id();
  mc.listen_addr = st.listen_addr();
  mc.advertise_addr = st.advertise_addr();
  mc.credentials = tls::Credentials{st.root_ca_pem(), st.cert_pem(), tls_key};
  mc.dek = dek;
  mc.bootstrap = bootstrap;
  mc.known_members = std::move(known_members);
  mc.keystore = &keys_;
  mc.unlock_key = unlock_key;
  mc.tick_interval = config_.tick_interval;
  mc.clock = config_.clock;
  mc.random = config_.random;
  return Manager::Start(std::move(mc));
}

absl::StatusOr<std::shared_ptr<api::Control::Service>> Daemon::CurrentControl() const {
  absl::MutexLock lock(&mu_);
  switch (state_) {
    case api::LOCAL_NODE_STATE_LOCKED:
      return absl::FailedPreconditionError("this node is locked: run swarmctl swarm unlock");
    case api::LOCAL_NODE_STATE_ERROR:
      return absl::FailedPreconditionError("this node could not start: " + error_);
    default:
      break;
  }
  if (manager_ == nullptr) {
    return absl::FailedPreconditionError(
        state_ == api::LOCAL_NODE_STATE_INACTIVE
            ? "this node is not a swarm manager: run swarmctl swarm init to create a swarm, or "
              "swarmctl swarm join to join one"
            : "this node is not a swarm manager: worker nodes cannot be used to view or modify "
              "cluster state; connect to a manager node or promote this node to a manager");
  }
  // The returned pointer keeps the manager (and its store) alive while the call runs.
  std::shared_ptr<Manager> m = manager_;
  return std::shared_ptr<api::Control::Service>(m, m->local_control().get());
}

absl::Status Daemon::BeginOperation(api::LocalNodeState want, const char* what) {
  absl::MutexLock lock(&mu_);
  if (busy_) {
    return absl::FailedPreconditionError(
        "another swarm init, join, leave or unlock is in progress on this node; wait for it");
  }
  if (state_ != want) {
    switch (state_) {
      case api::LOCAL_NODE_STATE_INACTIVE:
        return absl::FailedPreconditionError(
            absl::StrCat("cannot ", what, ": this node is not part of a swarm"));
      case api::LOCAL_NODE_STATE_LOCKED:
        if (want == api::LOCAL_NODE_STATE_INACTIVE) {
          return absl::FailedPreconditionError(
              "this node is already part of a swarm (it is locked: run swarmctl swarm unlock, "
              "or swarmctl swarm leave --force to leave)");
        }
        return absl::FailedPreconditionError(
            absl::StrCat("cannot ", what, ": this node is locked: run swarmctl swarm unlock"));
      case api::LOCAL_NODE_STATE_ERROR:
        if (want == api::LOCAL_NODE_STATE_ACTIVE) break;  // leaving clears an error
        return absl::FailedPreconditionError(
            absl::StrCat("cannot ", what, ": this node could not start (", error_,
                         "); swarmctl swarm leave --force clears its state"));
      default:
        if (want == api::LOCAL_NODE_STATE_INACTIVE) {
          return absl::FailedPreconditionError(
              "this node is already part of a swarm; use swarmctl swarm leave to leave it and "
              "join another one");
        }
        return absl::FailedPreconditionError(absl::StrCat("cannot ", what, " now"));
    }
  }
  busy_ = true;
  return absl::OkStatus();
}

void Daemon::EndOperation(api::LocalNodeState state, std::shared_ptr<Manager> manager) {
  absl::MutexLock lock(&mu_);
  busy_ = false;
  state_ = state;
  if (state != api::LOCAL_NODE_STATE_ERROR) error_.clear();
  manager_ = std::move(manager);
}

absl::StatusOr<Daemon::Addresses> Daemon::ChooseAddresses(const std::string& listen,
                                                          const std::string& advertise) const {
  Addresses a{listen.empty() ? config_.listen_addr : listen,
              advertise.empty() ? config_.advertise_addr : advertise};
  if (a.advertise.empty()) {
    if (IsWildcard(a.listen)) {
      return absl::InvalidArgumentError(
          "cannot choose the address other nodes reach this one at (listening on " + a.listen +
          "); pass --advertise-addr HOST:PORT");
    }
    a.advertise = a.listen;
  }
  if (a.advertise.find(':') == std::string::npos) {
    return absl::InvalidArgumentError("the advertise address " + a.advertise +
                                      " has no port; use HOST:PORT");
  }
  return a;
}

api::NodeDescription Daemon::Describe() const {
  api::NodeDescription d;
  std::string hostname = config_.hostname;
  if (hostname.empty()) {
    char buf[256] = {};
    ::gethostname(buf, sizeof(buf) - 1);
    hostname = buf;
  }
  d.set_hostname(hostname);
  struct utsname u;
  if (::uname(&u) == 0) {
    d.mutable_platform()->set_os("linux");
    d.mutable_platform()->set_architecture(u.machine);
  }
  d.mutable_resources()->set_nano_cpus(int64_t{1000000000} *
                                       std::max<long>(1, ::sysconf(_SC_NPROCESSORS_ONLN)));
  d.mutable_resources()->set_memory_bytes(int64_t{::sysconf(_SC_PHYS_PAGES)} *
                                          ::sysconf(_SC_PAGESIZE));
  d.mutable_engine()->set_engine_version(kVersion);
  for (const auto& [k, v] : config_.labels) (*d.mutable_engine()->mutable_labels())[k] = v;
  return d;
}

absl::Status Daemon::WriteState(const NodeState& st) {
  return WriteFileAtomically((fs::path(config_.state_dir) / kStateFile).string(),
                             st.SerializeAsString(), 0600, /*sync=*/true);
}

absl::Status Daemon::WipeState() {
  std::error_code ec;
  for (const char* name : {kStateFile, "keys", "keys.local", "raft"}) {
    fs::remove_all(fs::path(config_.state_dir) / name, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("removing ", config_.state_dir, "/", name, ": ", ec.message()));
    }
  }
  return absl::OkStatus();
}

// ---- swarm init ----

absl::StatusOr<api::InitSwarmResponse> Daemon::Init(const api::InitSwarmRequest& req) {
  if (req.force_new_cluster()) {
    return absl::UnimplementedError("--force-new-cluster is not supported yet");
  }
  RETURN_IF_ERROR(BeginOperation(api::LOCAL_NODE_STATE_INACTIVE, "initialize a swarm"));
  std::shared_ptr<Manager> started;
  auto result = [&]() -> absl::StatusOr<api::InitSwarmResponse> {
    ASSIGN_OR_RETURN(Addresses addrs, ChooseAddresses(req.listen_addr(), req.advertise_addr()));
    absl::Duration expiry = kDefaultCertExpiry;
    if (req.has_cert_expiry()) {
      expiry =
          absl::Seconds(req.cert_expiry().seconds()) + absl::Nanoseconds(req.cert_expiry().nanos());
      if (expiry < absl::Hours(1)) {
        return absl::InvalidArgumentError("--cert-expiry must be at least 1h");
      }
    }
    if (req.task_history_limit() < 0) {
      return absl::InvalidArgumentError("--task-history-limit must not be negative");
    }
    RETURN_IF_ERROR(WipeState());
    Random& random = *config_.random;
    const absl::Time now = config_.clock->Now();
    const std::string node_id = NewId(random);
    const std::string cluster_id = NewId(random);
    ASSIGN_OR_RETURN(api::Cluster cluster, manager::ca::NewCluster(cluster_id, now, random));
    api::ClusterSpec* spec = cluster.mutable_spec();
    spec->mutable_annotations()->set_name("default");
    spec->mutable_ca_config()->mutable_node_cert_expiry()->set_seconds(
        absl::ToInt64Seconds(expiry));
    spec->mutable_orchestration()->set_task_history_retention_limit(
        req.task_history_limit() > 0 ? req.task_history_limit() : 5);
    if (req.has_dispatcher_heartbeat()) {
      *spec->mutable_dispatcher()->mutable_heartbeat_period() = req.dispatcher_heartbeat();
    } else {
      spec->mutable_dispatcher()->mutable_heartbeat_period()->set_seconds(5);
    }
    spec->mutable_raft()->set_snapshot_interval(10000);
    spec->mutable_raft()->set_log_entries_for_slow_followers(500);
    std::string unlock_key;
    if (req.autolock()) {
      unlock_key = manager::ca::GenerateUnlockKey(random);
      spec->mutable_encryption_config()->set_auto_lock_managers(true);
      api::EncryptionKey* k = cluster.add_unlock_keys();
      k->set_subsystem("manager:unlock");
      k->set_key(unlock_key);
      k->set_lamport_time(1);
    }

    ASSIGN_OR_RETURN(RootCA root,
                     RootCA::Load(cluster.root_ca().ca_cert(), cluster.root_ca().ca_key()));
    ASSIGN_OR_RETURN(std::string tls_key, manager::ca::GenerateKey());
    ASSIGN_OR_RETURN(std::string csr, manager::ca::CreateCsr(tls_key));
    ASSIGN_OR_RETURN(std::string cert,
                     root.Issue(csr, node_id, Role::kManager, cluster_id, expiry, now, random));
    const DataKey dek = NewDataKey(1, random);
    RETURN_IF_ERROR(keys_.Store(Keys{dek, tls_key}, unlock_key));

    NodeState st;
    st.set_node_id(node_id);
    st.set_cluster_id(cluster_id);
    st.set_role(api::NODE_ROLE_MANAGER);
    st.set_raft_id((random.Next64() >> 1) | 1);
    st.set_listen_addr(addrs.listen);
    st.set_advertise_addr(addrs.advertise);
    st.set_root_ca_pem(root.cert_pem());
    st.set_cert_pem(cert);
    st.add_manager_addrs(addrs.advertise);
    ASSIGN_OR_RETURN(started, StartManager(st, dek, tls_key, unlock_key, /*bootstrap=*/true));
    RETURN_IF_ERROR(started->WaitForLeader(absl::Seconds(15)));

    api::Node node;
    node.set_id(node_id);
    node.mutable_spec()->set_desired_role(api::NODE_ROLE_MANAGER);
    node.mutable_spec()->set_membership(api::NODE_MEMBERSHIP_ACCEPTED);
    node.mutable_spec()->set_availability(req.availability());
    *node.mutable_description() = Describe();
    node.mutable_status()->set_state(api::NODE_STATE_READY);
    node.set_role(api::NODE_ROLE_MANAGER);
    node.mutable_manager_status()->set_raft_id(st.raft_id());
    node.mutable_manager_status()->set_addr(addrs.advertise);
    node.mutable_manager_status()->set_leader(true);
    node.mutable_manager_status()->set_reachability(api::REACHABILITY_REACHABLE);
    api::Certificate* c = node.mutable_certificate();
    c->set_role(api::NODE_ROLE_MANAGER);
    c->set_csr(csr);
    c->mutable_status()->set_state(api::ISSUANCE_STATE_ISSUED);
    c->set_certificate(cert);
    c->set_cn(node_id);
    RETURN_IF_ERROR(started->store().Update([&](manager::store::WriteTx& tx) {
      tx.CreateObject(cluster);
      tx.CreateObject(node);
      return absl::OkStatus();
    }));
    // The commit point: from here on a restart resumes this manager.
    RETURN_IF_ERROR(WriteState(st));
    {
      absl::MutexLock lock(&mu_);
      node_state_ = st;
    }
    log::Info(kLog, "initialized a new swarm", {{"node", node_id}, {"cluster", cluster_id}});
    api::InitSwarmResponse resp;
    resp.set_node_id(node_id);
    resp.set_cluster_id(cluster_id);
    resp.set_unlock_key(unlock_key);
    return resp;
  }();
  if (!result.ok()) {
    if (started) started->Stop();
    (void)WipeState();
    EndOperation(api::LOCAL_NODE_STATE_INACTIVE);
    return result.status();
  }
  EndOperation(api::LOCAL_NODE_STATE_ACTIVE, std::move(started));
  return result;
}

// ---- swarm join ----

absl::StatusOr<api::JoinSwarmResponse> Daemon::Join(const api::JoinSwarmRequest& req) {
  RETURN_IF_ERROR(BeginOperation(api::LOCAL_NODE_STATE_INACTIVE, "join a swarm"));
  std::shared_ptr<Manager> started;
  api::NodeRole role = api::NODE_ROLE_WORKER;
  auto result = [&]() -> absl::StatusOr<api::JoinSwarmResponse> {
    if (req.remote_addr().empty()) {
      return absl::InvalidArgumentError("the address of a manager to join is missing (HOST:PORT)");
    }
    ASSIGN_OR_RETURN(manager::ca::JoinToken token, manager::ca::ParseJoinToken(req.join_token()));
    ASSIGN_OR_RETURN(Addresses addrs, ChooseAddresses(req.listen_addr(), req.advertise_addr()));
    const std::string& remote = req.remote_addr();
    auto unreachable = [&](const grpc::Status& s) {
      return absl::Status(FromGrpcStatus(s).code(),
                          "joining through " + remote + ": " + s.error_message());
    };

    // 1. Learn the root CA over TLS that trusts nothing yet, and check it against the token.
    api::GetRootCACertificateResponse root_resp;
    {
      auto ch = grpc::CreateCustomChannel(remote, tls::UnverifiedChannelCredentials(),
                                          tls::ChannelArguments(tls::kManagerRole));
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline(kRpcTimeout));
      api::GetRootCACertificateRequest r;
      grpc::Status s = api::CA::NewStub(ch)->GetRootCACertificate(&ctx, r, &root_resp);
      if (!s.ok()) return unreachable(s);
    }
    ASSIGN_OR_RETURN(RootCA root, RootCA::Load(root_resp.certificate(), ""));
    if (!manager::ca::TokenMatchesRoot(token, root)) {
      return absl::PermissionDeniedError("this token does not belong to the cluster at " + remote);
    }

    // 2. Ask for a certificate over TLS that now verifies the manager against that root.
    ASSIGN_OR_RETURN(std::string tls_key, manager::ca::GenerateKey());
    ASSIGN_OR_RETURN(std::string csr, manager::ca::CreateCsr(tls_key));
    auto ch = grpc::CreateCustomChannel(
        remote, tls::ChannelCredentials(tls::Credentials{root.cert_pem(), "", ""}),
        tls::ChannelArguments(tls::kManagerRole));
    auto ca = api::NodeCA::NewStub(ch);
    api::IssueNodeCertificateResponse issued;
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline(kRpcTimeout));
      api::IssueNodeCertificateRequest r;
      r.set_token(req.join_token());
      r.set_csr(csr);
      r.set_availability(req.availability());
      grpc::Status s = ca->IssueNodeCertificate(&ctx, r, &issued);
      if (!s.ok()) return unreachable(s);
    }
    api::NodeCertificateStatusResponse cert;
    const absl::Time give_up = config_.clock->Now() + absl::Seconds(30);
    while (true) {
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline(kRpcTimeout));
      api::NodeCertificateStatusRequest r;
      r.set_node_id(issued.node_id());
      grpc::Status s = ca->NodeCertificateStatus(&ctx, r, &cert);
      if (s.ok() && cert.status().state() == api::ISSUANCE_STATE_ISSUED) break;
      if (config_.clock->Now() > give_up) {
        return s.ok() ? absl::DeadlineExceededError("the certificate was not issued in time")
                      : unreachable(s);
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
    ASSIGN_OR_RETURN(manager::ca::Identity id,
                     root.Verify(cert.certificate().certificate(), config_.clock->Now()));
    role = ApiRole(id.role);

    NodeState st;
    st.set_node_id(id.node_id);
    st.set_cluster_id(id.cluster_id);
    st.set_role(role);
    st.set_listen_addr(addrs.listen);
    st.set_advertise_addr(addrs.advertise);
    st.set_root_ca_pem(root.cert_pem());
    st.set_cert_pem(cert.certificate().certificate());
    st.add_manager_addrs(remote);
    RETURN_IF_ERROR(WipeState());
    const DataKey dek = NewDataKey(1, *config_.random);
    RETURN_IF_ERROR(keys_.Store(Keys{dek, tls_key}, ""));

    if (role == api::NODE_ROLE_MANAGER) {
      // 3. Become a Raft member: the leader adds this node as a learner, and promotes it to a
      // voter once it has caught up.
      const tls::Credentials creds{root.cert_pem(), st.cert_pem(), tls_key};
      auto mch = grpc::CreateCustomChannel(remote, tls::ChannelCredentials(creds),
                                           tls::ChannelArguments(tls::kManagerRole));
      api::JoinResponse joined;
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline(absl::Seconds(20)));
      api::JoinRequest r;
      r.set_addr(addrs.advertise);
      grpc::Status s = api::RaftMembership::NewStub(mch)->Join(&ctx, r, &joined);
      if (!s.ok()) return unreachable(s);
      st.set_raft_id(joined.raft_id());
      std::map<uint64_t, std::string> members;
      for (const api::RaftMember& m : joined.members()) members[m.raft_id()] = m.addr();
      ASSIGN_OR_RETURN(started,
                       StartManager(st, dek, tls_key, "", /*bootstrap=*/false, std::move(members)));
      RETURN_IF_ERROR(started->WaitForLeader(absl::Seconds(30)));
      // The join is done once this manager counts in the quorum: the leader promotes a
      // learner when it has caught up.
      for (int i = 0;; ++i) {
        const std::vector<uint64_t> voters = started->raft().Status().conf_state.voters;
        if (std::find(voters.begin(), voters.end(), st.raft_id()) != voters.end()) break;
        if (i == 300) {
          return absl::DeadlineExceededError(
              "this manager caught up but was not made a voter within 30 s; check the "
              "leader's log");
        }
        absl::SleepFor(absl::Milliseconds(100));
      }
      // Record this manager's description and Raft membership on its node object.
      RETURN_IF_ERROR(started->store().Update([&](manager::store::WriteTx& tx) -> absl::Status {
        manager::store::Ptr<api::Node> existing = tx.GetNode(id.node_id);
        if (!existing) return absl::NotFoundError("this node is missing from the swarm's store");
        api::Node n = *existing;
        *n.mutable_description() = Describe();
        n.mutable_status()->set_state(api::NODE_STATE_READY);
        n.mutable_manager_status()->set_raft_id(st.raft_id());
        n.mutable_manager_status()->set_addr(addrs.advertise);
        n.mutable_manager_status()->set_reachability(api::REACHABILITY_REACHABLE);
        tx.UpdateObject(n);
        return absl::OkStatus();
      }));
    }
    RETURN_IF_ERROR(WriteState(st));
    {
      absl::MutexLock lock(&mu_);
      node_state_ = st;
    }
    log::Info(kLog, "joined a swarm",
              {{"node", id.node_id}, {"cluster", id.cluster_id}, {"role", RoleName(id.role)}});
    api::JoinSwarmResponse resp;
    resp.set_node_id(id.node_id);
    resp.set_role(role);
    resp.set_cluster_id(id.cluster_id);
    return resp;
  }();
  if (!result.ok()) {
    if (started) started->Stop();
    (void)WipeState();
    EndOperation(api::LOCAL_NODE_STATE_INACTIVE);
    return result.status();
  }
  EndOperation(api::LOCAL_NODE_STATE_ACTIVE, std::move(started));
  return result;
}

// ---- swarm leave ----

absl::Status Daemon::Leave(const api::LeaveSwarmRequest& req) {
  api::LocalNodeState from;
  {
    absl::MutexLock lock(&mu_);
    from = state_;
  }
  // A locked or broken node can only be left by force (its manager cannot run).
  if (from == api::LOCAL_NODE_STATE_LOCKED || from == api::LOCAL_NODE_STATE_ERROR) {
    if (!req.force()) {
      return absl::FailedPreconditionError(
          "this node cannot run its manager (locked or failed); swarmctl swarm leave --force "
          "removes its state, and it must then be removed from the swarm with swarmctl node rm "
          "on another manager");
    }
    absl::MutexLock lock(&mu_);
    if (busy_) return absl::FailedPreconditionError("another operation is in progress");
    busy_ = true;
  } else {
    RETURN_IF_ERROR(BeginOperation(api::LOCAL_NODE_STATE_ACTIVE, "leave"));
  }
  std::shared_ptr<Manager> m;
  {
    absl::MutexLock lock(&mu_);
    m = manager_;
  }
  if (m) {
    const raft::NodeStatus rs = m->raft().Status();
    const size_t voters = rs.conf_state.voters.size();
    absl::Status refused;
    if (voters <= 1 && !req.force()) {
      refused = absl::FailedPreconditionError(
          "this is the last manager of the swarm: leaving erases the swarm's whole state; use "
          "--force to leave anyway");
    } else if (voters > 1) {
      // Leaving is a membership change: it needs the quorum of the managers as they are now.
      absl::Status s = m->LeaveRaft(absl::Seconds(20));
      if (!s.ok() && !req.force()) {
        refused = absl::FailedPreconditionError(
            "leaving needs the other managers to agree, and they did not (" +
            std::string(s.message()) +
            "); the swarm may have lost its quorum; use --force to leave anyway");
      }
    }
    if (!refused.ok()) {
      EndOperation(api::LOCAL_NODE_STATE_ACTIVE, m);
      return refused;
    }
    m->Stop();
  }
  absl::Status s = WipeState();
  {
    absl::MutexLock lock(&mu_);
    node_state_.Clear();
  }
  EndOperation(api::LOCAL_NODE_STATE_INACTIVE);
  log::Info(kLog, "left the swarm");
  return s;
}

// ---- swarm unlock ----

absl::Status Daemon::Unlock(const api::UnlockSwarmRequest& req) {
  RETURN_IF_ERROR(BeginOperation(api::LOCAL_NODE_STATE_LOCKED, "unlock"));
  NodeState st;
  {
    absl::MutexLock lock(&mu_);
    st = node_state_;
  }
  auto keys = keys_.Unlock(req.unlock_key());
  if (!keys.ok()) {
    EndOperation(api::LOCAL_NODE_STATE_LOCKED);
    absl::MutexLock lock(&mu_);
    error_ = "this node is locked: run swarmctl swarm unlock";
    return keys.status();
  }
  auto m = StartManager(st, keys->dek, keys->tls_key_pem, req.unlock_key(), /*bootstrap=*/false);
  if (!m.ok()) {
    EndOperation(api::LOCAL_NODE_STATE_ERROR);
    absl::MutexLock lock(&mu_);
    error_ = std::string(m.status().message());
    return m.status();
  }
  EndOperation(api::LOCAL_NODE_STATE_ACTIVE, *std::move(m));
  log::Info(kLog, "unlocked");
  return absl::OkStatus();
}

// ---- info ----

api::NodeInfoResponse Daemon::Info() const {
  api::NodeInfoResponse r;
  std::shared_ptr<Manager> m;
  {
    absl::MutexLock lock(&mu_);
    r.set_state(state_);
    r.set_error(error_);
    r.set_node_id(node_state_.node_id());
    r.set_cluster_id(node_state_.cluster_id());
    r.set_role(node_state_.role());
    r.set_node_addr(node_state_.advertise_addr());
    m = manager_;
    if (!m) {
      for (const std::string& a : node_state_.manager_addrs()) r.add_managers()->set_addr(a);
    }
  }
  r.set_version(kVersion);
  if (m) {
    const raft::NodeStatus rs = m->raft().Status();
    r.set_raft_id(rs.id);
    r.set_raft_leader(rs.leader);
    r.set_raft_term(rs.term);
    r.set_raft_commit(rs.commit);
    r.set_raft_applied(rs.applied);
    r.set_is_leader(rs.state == raft::StateType::kLeader);
    m->store().View([&](const manager::store::ReadTx& tx) {
      for (const auto& n : tx.ListNodes()) {
        if (n->role() != api::NODE_ROLE_MANAGER) continue;
        api::RemoteManager* rm = r.add_managers();
        rm->set_node_id(n->id());
        rm->set_addr(n->manager_status().addr());
      }
    });
  }
  return r;
}

}  // namespace swarm::node

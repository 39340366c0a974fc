#include "node/daemon.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/files.h"
#include "common/grpc_status.h"
#include "common/id.h"
#include "common/ip.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "manager/allocator/ipam.h"
#include "manager/ca/ca.h"
#include "manager/ca/rotation.h"
#include "manager/controlapi/server.h"
#include "node/control_router.h"
#include "proto/ca.grpc.pb.h"
#include "proto/raft_service.grpc.pb.h"

namespace swarm::node {
namespace {

namespace fs = std::filesystem;

// Holds <exec_root>/swarmd.lock for the daemon's life; a second daemon is told who has it.
absl::StatusOr<int> LockExecRoot(const std::string& exec_root) {
  std::error_code ec;
  fs::create_directories(exec_root, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("creating the exec root ", exec_root, ": ", ec.message()));
  }
  const std::string path = (fs::path(exec_root) / "swarmd.lock").string();
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening ", path));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {};
    (void)!pread(fd, pid, sizeof pid - 1, 0);
    close(fd);
    return absl::FailedPreconditionError(absl::StrCat(
        "another swarmd (pid ", absl::StripAsciiWhitespace(pid), ") uses the exec root ", exec_root,
        ": give each daemon on this machine its own --exec-root and --state-dir"));
  }
  const std::string self = absl::StrCat(getpid(), "\n");
  if (ftruncate(fd, 0) != 0 || pwrite(fd, self.data(), self.size(), 0) < 0) {
    close(fd);
    return ErrnoToStatus(errno, absl::StrCat("writing ", path));
  }
  return fd;
}

using manager::ca::Role;
using manager::ca::RootCA;
using manager::keymanager::Keys;

constexpr char kLog[] = "swarmd";
constexpr char kStateFile[] = "node.state";
constexpr absl::Duration kDefaultCertExpiry = absl::Hours(24 * 90);
constexpr absl::Duration kRpcTimeout = absl::Seconds(10);
// How often a node checks whether the swarm changed its role.
constexpr absl::Duration kRoleCheckPeriod = absl::Seconds(2);

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

// The host part of "HOST:PORT" as an IPv4 address, when it is one (not the wildcard).
std::optional<IpAddress> Ipv4Host(const std::string& addr) {
  std::optional<IpAddress> ip = ParseIp(addr.substr(0, addr.rfind(':')));
  if (!ip || ip->family != AF_INET ||
      (ip->bytes[0] | ip->bytes[1] | ip->bytes[2] | ip->bytes[3]) == 0) {
    return std::nullopt;
  }
  return ip;
}

// The address other nodes' VXLAN traffic reaches this node at: the advertised one when it is
// an IPv4 address, else the source address the kernel picks towards a manager (a UDP
// connect sends nothing).
absl::StatusOr<IpAddress> DataPathAddress(const std::string& advertise,
                                          const std::vector<std::string>& managers) {
  if (std::optional<IpAddress> ip = Ipv4Host(advertise)) return *ip;
  for (const std::string& m : managers) {
    std::optional<IpAddress> peer = Ipv4Host(m);
    if (!peer) continue;
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    sockaddr_in to = ToSockaddr(*peer, 4789);
    sockaddr_in local{};
    socklen_t len = sizeof local;
    const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0 &&
                    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0;
    close(fd);
    if (!ok) continue;
    IpAddress ip;
    std::memcpy(ip.bytes.data(), &local.sin_addr, 4);
    return ip;
  }
  return absl::FailedPreconditionError(
      "cannot tell this node's address for overlay networks: pass --advertise-addr with an "
      "IPv4 address");
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
  grpc::Status RotateDataKey(grpc::ServerContext*, const api::RotateDataKeyRequest*,
                             api::RotateDataKeyResponse* resp) override {
    auto r = d_->RotateDataKey();
    if (!r.ok()) return ToGrpcStatus(r.status());
    *resp = *std::move(r);
    return grpc::Status::OK;
  }
  grpc::Status BackupSwarm(grpc::ServerContext*, const api::BackupSwarmRequest*,
                           api::BackupSwarmResponse* resp) override {
    auto r = d_->BackupSwarm();
    if (!r.ok()) return ToGrpcStatus(r.status());
    *resp = *std::move(r);
    return grpc::Status::OK;
  }
  grpc::Status IssueOperatorCertificate(grpc::ServerContext*,
                                        const api::IssueOperatorCertificateRequest* req,
                                        api::IssueOperatorCertificateResponse* resp) override {
    auto r = d_->IssueOperatorCertificate(*req);
    if (!r.ok()) return ToGrpcStatus(r.status());
    *resp = *std::move(r);
    return grpc::Status::OK;
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
      gate_(std::make_unique<ControlGate>([this] { return CurrentControl(); })),
      logs_gate_(std::make_unique<LogsGate>(
          [this]() -> absl::StatusOr<std::shared_ptr<api::Logs::CallbackService>> {
            // The same answers as the control API when this node has no manager.
            RETURN_IF_ERROR(CurrentControl().status());
            absl::MutexLock lock(&mu_);
            if (manager_ == nullptr) {
              return absl::UnavailableError("this node's manager is stopping");
            }
            return manager_->local_logs();
          })) {}

Daemon::~Daemon() {
  Stop();
  if (exec_root_lock_ >= 0) close(exec_root_lock_);
}

absl::Status Daemon::Start() {
  std::error_code ec;
  fs::create_directories(config_.state_dir, ec);
  if (ec) {
    return absl::UnavailableError("creating the state directory " + config_.state_dir + ": " +
                                  ec.message());
  }
  ::chmod(config_.state_dir.c_str(), 0700);
  if (config_.executor == "container") {
    // Another daemon's containers in the same exec root would look like ours.
    ASSIGN_OR_RETURN(exec_root_lock_, LockExecRoot(config_.exec_root));
  }
  if (!config_.restore_file.empty()) {
    if (fs::exists(fs::path(config_.state_dir) / kStateFile)) {
      return absl::FailedPreconditionError(
          "--restore needs a node that is not part of a swarm, and " + config_.state_dir +
          " holds one; choose another --state-dir or leave the swarm first");
    }
    RETURN_IF_ERROR(Restore(config_.restore_file, config_.restore_unlock_key));
  } else {
    Resume();
  }

  const fs::path socket(config_.socket);
  if (socket.has_parent_path()) fs::create_directories(socket.parent_path(), ec);
  // A socket left by a previous run would make the listen fail.
  fs::remove(socket, ec);
  grpc::ServerBuilder b;
  b.AddListeningPort("unix:" + config_.socket, grpc::InsecureServerCredentials());
  b.RegisterService(admin_.get());
  b.RegisterService(gate_.get());
  b.RegisterService(logs_gate_.get());
  socket_server_ = b.BuildAndStart();
  if (socket_server_ == nullptr) {
    return absl::UnavailableError("cannot serve the unix socket " + config_.socket +
                                  " (is another swarmd running? choose another with --socket)");
  }
  ::chmod(config_.socket.c_str(), 0660);
  role_watch_ = std::thread([this] { RunRoleWatch(); });
  log::Info(kLog, "swarmd started", {{"socket", config_.socket}, {"state_dir", config_.state_dir}});
  return absl::OkStatus();
}

void Daemon::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    role_cv_.SignalAll();
  }
  if (role_watch_.joinable()) role_watch_.join();
  StopAgent(/*remove_containers=*/false);
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
  // A role check of the node's own is short: wait it out rather than refuse the operator.
  auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !role_check_; };
  mu_.AwaitWithTimeout(absl::Condition(&idle), absl::Seconds(60));
  if (busy_ || role_check_) {
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

absl::Status Daemon::EndFounding(absl::Status result, std::shared_ptr<Manager> started) {
  if (result.ok()) {
    EndOperation(api::LOCAL_NODE_STATE_ACTIVE, std::move(started));
    return result;
  }
  if (started) started->Stop();
  (void)WipeState();
  EndOperation(api::LOCAL_NODE_STATE_INACTIVE);
  return result;
}

void Daemon::EndOperation(api::LocalNodeState state, std::shared_ptr<Manager> manager) {
  absl::MutexLock lock(&mu_);
  busy_ = false;
  state_ = state;
  if (state != api::LOCAL_NODE_STATE_ERROR) error_.clear();
  manager_ = std::move(manager);
  role_cv_.SignalAll();  // the role watch starts the agent of a node that became active
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

// ---- swarm init, --restore, --force-new-cluster ----

namespace {

// Every object of a snapshot but the cluster, wrapped, in an order that keeps references
// valid (what a service uses exists before it).
std::vector<api::StoreAction> ObjectsOf(const api::StoreSnapshot& snap) {
  std::vector<api::StoreAction> out;
  for (const auto& o : snap.nodes()) out.push_back(manager::store::Wrap(o));
  for (const auto& o : snap.networks()) out.push_back(manager::store::Wrap(o));
  for (const auto& o : snap.secrets()) out.push_back(manager::store::Wrap(o));
  for (const auto& o : snap.configs()) out.push_back(manager::store::Wrap(o));
  for (const auto& o : snap.services()) out.push_back(manager::store::Wrap(o));
  for (const auto& o : snap.tasks()) out.push_back(manager::store::Wrap(o));
  return out;
}

// Writes objects into a new swarm's store, at most kBatchBytes per transaction: no Raft
// entry grows with the size of the state. The node's state file is written only after this,
// so a crash halfway leaves an inactive node, not a partial swarm.
absl::Status Reseed(manager::store::MemoryStore& store,
                    const std::vector<api::StoreAction>& objects) {
  constexpr size_t kBatchBytes = 4 << 20;
  for (size_t i = 0; i < objects.size();) {
    size_t end = i, bytes = 0;
    while (end < objects.size() &&
           (end == i || bytes + objects[end].ByteSizeLong() <= kBatchBytes)) {
      bytes += objects[end++].ByteSizeLong();
    }
    RETURN_IF_ERROR(store.Update([&](manager::store::WriteTx& tx) {
      // Versions restart with the new log (the store sets them when it applies).
      for (size_t j = i; j < end; ++j) tx.Create(objects[j]);
      return absl::OkStatus();
    }));
    i = end;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<api::InitSwarmResponse> Daemon::FoundSwarm(const Addresses& addrs,
                                                          api::Cluster cluster,
                                                          const api::StoreSnapshot* restored,
                                                          api::NodeAvailability availability,
                                                          std::shared_ptr<Manager>* started) {
  Random& random = *config_.random;
  const absl::Time now = config_.clock->Now();
  const std::string node_id = NewId(random);
  absl::Duration expiry = kDefaultCertExpiry;
  if (cluster.spec().ca_config().has_node_cert_expiry()) {
    expiry = absl::Seconds(cluster.spec().ca_config().node_cert_expiry().seconds());
  }
  const std::string unlock_key = manager::controlapi::UnlockKeyOf(cluster);
  ASSIGN_OR_RETURN(RootCA root,
                   RootCA::Load(cluster.root_ca().ca_cert(), cluster.root_ca().ca_key()));
  ASSIGN_OR_RETURN(std::string tls_key, manager::ca::GenerateKey());
  ASSIGN_OR_RETURN(std::string csr, manager::ca::CreateCsr(tls_key));
  ASSIGN_OR_RETURN(std::string cert,
                   root.Issue(csr, node_id, Role::kManager, cluster.id(), expiry, now, random));
  const DataKey dek = NewDataKey(1, random);
  RETURN_IF_ERROR(keys_.Store(Keys{dek, tls_key}, unlock_key));

  NodeState st;
  st.set_node_id(node_id);
  st.set_cluster_id(cluster.id());
  st.set_role(api::NODE_ROLE_MANAGER);
  st.set_raft_id((random.Next64() >> 1) | 1);
  st.set_listen_addr(addrs.listen);
  st.set_advertise_addr(addrs.advertise);
  st.set_root_ca_pem(root.cert_pem());
  st.set_cert_pem(cert);
  st.add_manager_addrs(addrs.advertise);
  ASSIGN_OR_RETURN(*started, StartManager(st, dek, tls_key, unlock_key, /*bootstrap=*/true));
  Manager& m = **started;
  RETURN_IF_ERROR(m.WaitForLeader(absl::Seconds(15)));

  api::Node node;
  node.set_id(node_id);
  node.mutable_spec()->set_desired_role(api::NODE_ROLE_MANAGER);
  node.mutable_spec()->set_membership(api::NODE_MEMBERSHIP_ACCEPTED);
  node.mutable_spec()->set_availability(availability);
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
  cluster.clear_meta();
  RETURN_IF_ERROR(m.store().Update([&](manager::store::WriteTx& tx) {
    tx.CreateObject(cluster);
    tx.CreateObject(node);
    if (restored == nullptr) {
      // The routing mesh's network exists from swarm init, as in Docker; the allocator gives
      // it the first subnet of the default pools (10.0.0.0/24). It is created here, once with
      // the cluster, and not by the allocator whenever it finds none: an operator who removed
      // it (to create another with a different subnet) must not see it come back at the next
      // leader change. A restored swarm keeps the networks of its backup.
      api::Network ingress;
      ingress.set_id(NewId(random));
      ingress.mutable_spec()->mutable_annotations()->set_name("ingress");
      ingress.mutable_spec()->mutable_driver_config()->set_name("overlay");
      ingress.mutable_spec()->set_ingress(true);
      tx.CreateObject(ingress);
    }
    return absl::OkStatus();
  }));
  if (restored != nullptr) RETURN_IF_ERROR(Reseed(m.store(), ObjectsOf(*restored)));
  // The commit point: from here on a restart resumes this manager.
  RETURN_IF_ERROR(WriteState(st));
  {
    absl::MutexLock lock(&mu_);
    node_state_ = st;
  }
  api::InitSwarmResponse resp;
  resp.set_node_id(node_id);
  resp.set_cluster_id(cluster.id());
  resp.set_unlock_key(unlock_key);
  return resp;
}

absl::StatusOr<api::InitSwarmResponse> Daemon::Init(const api::InitSwarmRequest& req) {
  if (req.force_new_cluster()) return ForceNewCluster();
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
    manager::allocator::PoolConfig pools;
    pools.pools.assign(req.default_addr_pool().begin(), req.default_addr_pool().end());
    if (pools.pools.empty()) pools.pools.push_back(manager::allocator::kDefaultPool);
    pools.subnet_size =
        req.default_addr_pool_mask_len() == 0
            ? manager::allocator::kDefaultSubnetSize
            : static_cast<int>(std::min<uint32_t>(req.default_addr_pool_mask_len(), 1000));
    RETURN_IF_ERROR(manager::allocator::Ipam::Create(pools).status());
    RETURN_IF_ERROR(WipeState());
    Random& random = *config_.random;
    ASSIGN_OR_RETURN(api::Cluster cluster,
                     manager::ca::NewCluster(NewId(random), config_.clock->Now(), random));
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
    spec->mutable_raft()->set_heartbeat_tick(1);
    spec->mutable_raft()->set_election_tick(10);
    for (const std::string& p : pools.pools) cluster.add_default_address_pool(p);
    cluster.set_subnet_size(static_cast<uint32_t>(pools.subnet_size));
    if (req.autolock()) {
      spec->mutable_encryption_config()->set_auto_lock_managers(true);
      api::EncryptionKey* k = cluster.add_unlock_keys();
      k->set_subsystem("manager:unlock");
      k->set_key(manager::ca::GenerateUnlockKey(random));
      k->set_lamport_time(1);
    }
    ASSIGN_OR_RETURN(api::InitSwarmResponse resp,
                     FoundSwarm(addrs, std::move(cluster), nullptr, req.availability(), &started));
    log::Info(kLog, "initialized a new swarm",
              {{"node", resp.node_id()}, {"cluster", resp.cluster_id()}});
    return resp;
  }();
  RETURN_IF_ERROR(EndFounding(result.status(), std::move(started)));
  return result;
}

absl::Status Daemon::Restore(const std::string& file, const std::string& unlock_key) {
  RETURN_IF_ERROR(BeginOperation(api::LOCAL_NODE_STATE_INACTIVE, "restore a backup"));
  std::shared_ptr<Manager> started;
  absl::Status s = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::string bytes, ReadFile(file));
    Backup backup;
    if (!backup.ParseFromString(bytes) || backup.cluster_id().empty()) {
      return absl::InvalidArgumentError(file + " is not a swarm backup (swarmctl swarm backup)");
    }
    std::string data = backup.data();
    if (backup.sealed()) {
      if (unlock_key.empty()) {
        return absl::InvalidArgumentError(
            file +
            " is sealed with the swarm's unlock key (autolock was on): give the key on "
            "standard input");
      }
      ASSIGN_OR_RETURN(std::string secret, manager::ca::ParseUnlockKey(unlock_key));
      ASSIGN_OR_RETURN(data, manager::ca::UnwrapKey(secret, data));
    }
    api::StoreSnapshot snap;
    if (!snap.ParseFromString(data) || snap.clusters_size() != 1) {
      return absl::DataLossError(file + " is damaged: its state does not parse");
    }
    // The restored swarm keeps its identity (cluster ID, root CA, tokens), so its workers'
    // certificates stay valid; its managers are gone: they join the new swarm again.
    api::Cluster cluster = snap.clusters(0);
    snap.clear_clusters();
    for (api::Node& n : *snap.mutable_nodes()) n.clear_manager_status();
    RETURN_IF_ERROR(WipeState());
    ASSIGN_OR_RETURN(Addresses addrs, ChooseAddresses("", ""));
    ASSIGN_OR_RETURN(
        api::InitSwarmResponse resp,
        FoundSwarm(addrs, std::move(cluster), &snap, api::NODE_AVAILABILITY_ACTIVE, &started));
    log::Info(kLog, "restored a swarm from a backup",
              {{"file", file}, {"cluster", resp.cluster_id()}, {"node", resp.node_id()}});
    return absl::OkStatus();
  }();
  return EndFounding(s, std::move(started));
}

absl::StatusOr<api::InitSwarmResponse> Daemon::ForceNewCluster() {
  RETURN_IF_ERROR(BeginOperation(api::LOCAL_NODE_STATE_ACTIVE, "force a new cluster"));
  std::shared_ptr<Manager> old, started;
  NodeState st;
  {
    absl::MutexLock lock(&mu_);
    old = std::move(manager_);
    st = node_state_;
  }
  if (old == nullptr) {
    EndOperation(api::LOCAL_NODE_STATE_ACTIVE);
    return absl::FailedPreconditionError(
        "--force-new-cluster recovers a manager, and this node is a worker");
  }
  // What this manager has applied is what the new swarm starts from: a quorum is not needed
  // (that is the point), and what it had not applied is lost.
  api::StoreSnapshot snap;
  if (!snap.ParseFromString(old->store().Snapshot()) || snap.clusters_size() != 1) {
    EndOperation(api::LOCAL_NODE_STATE_ACTIVE, old);
    return absl::FailedPreconditionError("this manager holds no swarm state to recover");
  }
  const ManagerConfig& oc = old->config();
  const DataKey dek = oc.dek;
  const std::string tls_key = oc.credentials.key_pem;
  StopAndRelease(std::move(old));
  auto result = [&]() -> absl::StatusOr<api::InitSwarmResponse> {
    std::error_code ec;
    fs::remove_all(fs::path(config_.state_dir) / "raft", ec);
    if (ec) return absl::UnavailableError("removing the old raft log: " + ec.message());
    api::Cluster cluster = snap.clusters(0);
    snap.clear_clusters();
    cluster.clear_meta();
    const std::string unlock_key = manager::controlapi::UnlockKeyOf(cluster);
    // Same node, same keys and certificate; a new Raft group of one.
    ASSIGN_OR_RETURN(started, StartManager(st, dek, tls_key, unlock_key, /*bootstrap=*/true));
    RETURN_IF_ERROR(started->WaitForLeader(absl::Seconds(15)));
    for (api::Node& n : *snap.mutable_nodes()) {
      if (n.id() == st.node_id()) {
        n.mutable_manager_status()->set_leader(true);
      } else if (n.has_manager_status()) {
        // The other managers are no members of the new group; they show as unreachable.
        n.mutable_manager_status()->set_leader(false);
        n.mutable_manager_status()->set_reachability(api::REACHABILITY_UNREACHABLE);
      }
    }
    std::vector<api::StoreAction> objects = ObjectsOf(snap);
    objects.insert(objects.begin(), manager::store::Wrap(cluster));
    RETURN_IF_ERROR(Reseed(started->store(), objects));
    log::Info(kLog, "forced a new cluster from this manager's state",
              {{"node", st.node_id()}, {"cluster", st.cluster_id()}});
    api::InitSwarmResponse resp;
    resp.set_node_id(st.node_id());
    resp.set_cluster_id(st.cluster_id());
    return resp;
  }();
  if (!result.ok()) {
    // The old log is gone: the node cannot resume as it was.
    if (started) started->Stop();
    EndOperation(api::LOCAL_NODE_STATE_ERROR);
    absl::MutexLock lock(&mu_);
    error_ = "--force-new-cluster failed: " + std::string(result.status().message()) +
             "; restore a backup (swarmd --restore) or leave with --force";
    return result.status();
  }
  EndOperation(api::LOCAL_NODE_STATE_ACTIVE, std::move(started));
  return result;
}

// ---- swarm backup ----

absl::StatusOr<api::RotateDataKeyResponse> Daemon::RotateDataKey() {
  std::shared_ptr<Manager> m;
  {
    absl::MutexLock lock(&mu_);
    m = manager_;
  }
  if (m == nullptr) {
    return absl::FailedPreconditionError(
        "only an active manager has a raft data key (is this node locked, or a worker?)");
  }
  ASSIGN_OR_RETURN(const uint32_t id, m->RotateDataKeyNow(absl::Seconds(60)));
  api::RotateDataKeyResponse r;
  r.set_key_id(id);
  return r;
}

absl::StatusOr<api::BackupSwarmResponse> Daemon::BackupSwarm() {
  std::shared_ptr<Manager> m;
  {
    absl::MutexLock lock(&mu_);
    m = manager_;
  }
  if (m == nullptr) {
    return absl::FailedPreconditionError("only an active manager can back up the swarm");
  }
  // Everything committed before now, as a quorum confirms it: a consistent, current state.
  RETURN_IF_ERROR(m->raft().LinearizableRead(absl::Seconds(10)));
  const uint64_t index = m->store().last_index();
  const std::string state = m->store().Snapshot();
  api::StoreSnapshot snap;
  if (!snap.ParseFromString(state) || snap.clusters_size() != 1) {
    return absl::FailedPreconditionError("this manager holds no swarm state yet");
  }
  Backup b;
  b.set_version(kVersion);
  b.set_cluster_id(snap.clusters(0).id());
  b.mutable_created_at()->set_seconds(absl::ToUnixSeconds(config_.clock->Now()));
  b.set_index(index);
  const std::string unlock_key = manager::controlapi::UnlockKeyOf(snap.clusters(0));
  if (unlock_key.empty()) {
    b.set_data(state);
  } else {
    ASSIGN_OR_RETURN(std::string secret, manager::ca::ParseUnlockKey(unlock_key));
    b.set_sealed(true);
    b.set_data(manager::ca::WrapKey(secret, state, *config_.random));
  }
  api::BackupSwarmResponse resp;
  resp.set_backup(b.SerializeAsString());
  resp.set_objects(snap.nodes_size() + snap.services_size() + snap.tasks_size() +
                   snap.networks_size() + snap.secrets_size() + snap.configs_size() + 1);
  resp.set_sealed(b.sealed());
  return resp;
}

// ---- swarm ca client-cert ----

absl::StatusOr<api::IssueOperatorCertificateResponse> Daemon::IssueOperatorCertificate(
    const api::IssueOperatorCertificateRequest& req) {
  std::shared_ptr<Manager> m;
  {
    absl::MutexLock lock(&mu_);
    m = manager_;
  }
  if (m == nullptr) {
    return absl::FailedPreconditionError(
        "only a manager can issue operator certificates: run this on a manager node");
  }
  std::vector<manager::store::Ptr<api::Cluster>> clusters;
  m->store().View([&](const manager::store::ReadTx& tx) { clusters = tx.ListClusters(); });
  if (clusters.empty()) return absl::FailedPreconditionError("this manager holds no swarm yet");
  const api::Cluster& cluster = *clusters[0];
  ASSIGN_OR_RETURN(manager::ca::RootCA root, manager::ca::RootCA::Load(cluster.root_ca().ca_cert(),
                                                                       cluster.root_ca().ca_key()));
  absl::Duration validity = manager::ca::kDefaultNodeCertValidity;
  if (cluster.spec().ca_config().has_node_cert_expiry()) {
    validity = absl::Seconds(cluster.spec().ca_config().node_cert_expiry().seconds());
  }
  const absl::Time now = config_.clock->Now();
  api::IssueOperatorCertificateResponse resp;
  resp.set_operator_id(NewId(*config_.random));
  ASSIGN_OR_RETURN(*resp.mutable_certificate(),
                   root.Issue(req.csr(), resp.operator_id(), manager::ca::Role::kOperator,
                              cluster.id(), validity, now, *config_.random));
  resp.set_root_ca(root.cert_pem());
  resp.mutable_expires_at()->set_seconds(absl::ToUnixSeconds(now + validity));
  log::Info("ca", "issued an operator certificate", {{"operator", resp.operator_id()}});
  return resp;
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
      // Nothing vouches for this server yet: gRPC's own limit on what it may send back.
      grpc::ChannelArguments args = tls::ChannelArguments(tls::kManagerRole);
      args.SetMaxReceiveMessageSize(GRPC_DEFAULT_MAX_RECV_MESSAGE_LENGTH);
      auto ch = grpc::CreateCustomChannel(remote, tls::UnverifiedChannelCredentials(), args);
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline(kRpcTimeout));
      api::GetRootCACertificateRequest r;
      grpc::Status s = api::CA::NewStub(ch)->GetRootCACertificate(&ctx, r, &root_resp);
      if (!s.ok()) return unreachable(s);
    }
    // During a root rotation the manager shows both roots: the node trusts only the one its
    // token names, and learns the other later from a manager it has verified.
    std::optional<RootCA> pinned;
    for (const std::string& pem : manager::ca::SplitPem(root_resp.certificate())) {
      absl::StatusOr<RootCA> r = RootCA::Load(pem, "");
      if (r.ok() && manager::ca::TokenMatchesRoot(token, *r)) pinned = *std::move(r);
      if (pinned) break;
    }
    if (!pinned) {
      return absl::PermissionDeniedError("this token does not belong to the cluster at " + remote);
    }
    const RootCA& root = *pinned;

    // 2. Ask for a certificate over TLS that now verifies the manager against that root.
    ASSIGN_OR_RETURN(std::string tls_key, manager::ca::GenerateKey());
    ASSIGN_OR_RETURN(std::string csr, manager::ca::CreateCsr(tls_key));
    auto ch = grpc::CreateCustomChannel(
        remote, tls::ChannelCredentials(tls::Credentials{root.cert_pem(), "", ""}),
        tls::ChannelArguments(tls::kManagerRole));
    auto ca = api::NodeCA::NewStub(ch);
    // UNAVAILABLE (no leader, or a leader change during the write) is asked again: the
    // managers restart one by one after a root rotation, for example. Should the lost attempt
    // have committed, its node never comes up and shows as down until removed.
    const absl::Time give_up = config_.clock->Now() + absl::Seconds(30);
    api::IssueNodeCertificateRequest issue;
    issue.set_token(req.join_token());
    issue.set_csr(csr);
    issue.set_availability(req.availability());
    *issue.mutable_description() = Describe();
    api::IssueNodeCertificateResponse issued;
    while (true) {
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline(kRpcTimeout));
      grpc::Status s = ca->IssueNodeCertificate(&ctx, issue, &issued);
      if (s.ok()) break;
      if (s.error_code() != grpc::StatusCode::UNAVAILABLE || config_.clock->Now() > give_up) {
        return unreachable(s);
      }
      absl::SleepFor(absl::Milliseconds(500));
    }
    api::NodeCertificateStatusResponse cert;
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
      // 3. Become a Raft member.
      ASSIGN_OR_RETURN(started, JoinRaft(&st, remote, dek, tls_key));
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
  RETURN_IF_ERROR(EndFounding(result.status(), std::move(started)));
  return result;
}

absl::StatusOr<std::shared_ptr<Manager>> Daemon::JoinRaft(NodeState* st, const std::string& remote,
                                                          const DataKey& dek,
                                                          const std::string& tls_key) {
  // The leader adds this node as a learner and promotes it to a voter once it has caught up.
  const tls::Credentials creds{st->root_ca_pem(), st->cert_pem(), tls_key};
  auto ch = grpc::CreateCustomChannel(remote, tls::ChannelCredentials(creds),
                                      tls::ChannelArguments(tls::kManagerRole));
  api::JoinResponse joined;
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(absl::Seconds(20)));
  api::JoinRequest r;
  r.set_addr(st->advertise_addr());
  grpc::Status s = api::RaftMembership::NewStub(ch)->Join(&ctx, r, &joined);
  if (!s.ok()) {
    return absl::Status(FromGrpcStatus(s).code(),
                        "joining the managers through " + remote + ": " + s.error_message());
  }
  st->set_raft_id(joined.raft_id());
  std::map<uint64_t, std::string> members;
  for (const api::RaftMember& m : joined.members()) members[m.raft_id()] = m.addr();
  ASSIGN_OR_RETURN(std::shared_ptr<Manager> m,
                   StartManager(*st, dek, tls_key, "", /*bootstrap=*/false, std::move(members)));
  auto fail = [&](absl::Status s) {
    m->Stop();
    return s;
  };
  if (absl::Status s = m->WaitForLeader(absl::Seconds(30)); !s.ok()) return fail(s);
  // Done once this manager counts in the quorum.
  for (int i = 0;; ++i) {
    const std::vector<uint64_t> voters = m->raft().Status().conf_state.voters;
    if (std::find(voters.begin(), voters.end(), st->raft_id()) != voters.end()) break;
    if (i == 300) {
      return fail(absl::DeadlineExceededError(
          "this manager caught up but was not made a voter within 30 s; check the leader's log"));
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  // Record this manager's description and Raft membership on its node object.
  absl::Status u = m->store().Update([&](manager::store::WriteTx& tx) -> absl::Status {
    manager::store::Ptr<api::Node> existing = tx.GetNode(st->node_id());
    if (!existing) return absl::NotFoundError("this node is missing from the swarm's store");
    api::Node n = *existing;
    *n.mutable_description() = Describe();
    n.mutable_status()->set_state(api::NODE_STATE_READY);
    n.mutable_manager_status()->set_raft_id(st->raft_id());
    n.mutable_manager_status()->set_addr(st->advertise_addr());
    n.mutable_manager_status()->set_reachability(api::REACHABILITY_REACHABLE);
    tx.UpdateObject(n);
    return absl::OkStatus();
  });
  if (!u.ok()) return fail(u);
  return m;
}

void Daemon::StopAndRelease(std::shared_ptr<Manager> m) {
  m->Stop();
  // It must be gone (its Raft log closed) before another manager opens the directory; calls
  // that were in flight on it hold it until they end.
  std::weak_ptr<Manager> gone = m;
  m.reset();
  for (int i = 0; i < 100 && !gone.expired(); ++i) absl::SleepFor(absl::Milliseconds(50));
}

// ---- promotion and demotion ----

void Daemon::RunRoleWatch() {
  pthread_setname_np(pthread_self(), "node-role");
  absl::MutexLock lock(&mu_);
  bool first = true;
  while (!stopping_) {
    // The first round starts the agent of a resumed node at once.
    if (!first) role_cv_.WaitWithTimeout(&mu_, kRoleCheckPeriod);
    first = false;
    if (stopping_) continue;
    mu_.Unlock();
    SyncAgent();
    mu_.Lock();
    if (stopping_ || busy_ || state_ != api::LOCAL_NODE_STATE_ACTIVE) continue;
    const NodeState st = node_state_;
    std::shared_ptr<Manager> m = manager_;
    role_check_ = true;
    mu_.Unlock();
    // The manager is handed over (moved): a demotion or a renewal stops it, and it must be
    // destroyed before its Raft log can be opened again.
    absl::Status s;
    if (m == nullptr) {
      s = MaybePromote(st);
    } else if (DemotionWanted(st, *m)) {
      s = Demote(st, std::move(m));
    } else {
      s = MaybeRenewManager(st, std::move(m));
    }
    if (!s.ok()) log::Warn(kLog, "role change failed; will retry", {{"reason", s}});
    mu_.Lock();
    if (!stopping_ && state_ == api::LOCAL_NODE_STATE_ACTIVE) {
      const NodeState now = node_state_;
      std::shared_ptr<Manager> current = manager_;
      mu_.Unlock();
      if (absl::Status t = SyncTrust(now, std::move(current)); !t.ok()) {
        log::Warn(kLog, "updating the trusted roots failed; will retry", {{"reason", t}});
      }
      mu_.Lock();
    }
    role_check_ = false;
  }
}

absl::StatusOr<std::string> Daemon::Renew(const NodeState& st, const std::string& tls_key,
                                          api::NodeRole* role, std::string* trust_root) {
  const tls::Credentials creds{st.root_ca_pem(), st.cert_pem(), tls_key};
  ASSIGN_OR_RETURN(std::string csr, manager::ca::CreateCsr(tls_key));
  absl::Status last = absl::UnavailableError("no manager known");
  for (const std::string& addr : st.manager_addrs()) {
    auto ca = api::NodeCA::NewStub(grpc::CreateCustomChannel(
        addr, tls::ChannelCredentials(creds), tls::ChannelArguments(tls::kManagerRole)));
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(kRpcTimeout));
    api::IssueNodeCertificateRequest req;
    req.set_csr(csr);
    api::IssueNodeCertificateResponse issued;
    grpc::Status s = ca->IssueNodeCertificate(&ctx, req, &issued);
    if (!s.ok()) {
      last = FromGrpcStatus(s);
      continue;
    }
    grpc::ClientContext sctx;
    sctx.set_deadline(Deadline(kRpcTimeout));
    api::NodeCertificateStatusRequest sreq;
    sreq.set_node_id(st.node_id());
    api::NodeCertificateStatusResponse status;
    s = ca->NodeCertificateStatus(&sctx, sreq, &status);
    if (!s.ok()) {
      last = FromGrpcStatus(s);
      continue;
    }
    ASSIGN_OR_RETURN(RootCA root, RootCA::Load(st.root_ca_pem(), ""));
    ASSIGN_OR_RETURN(manager::ca::Identity id,
                     root.Verify(status.certificate().certificate(), config_.clock->Now()));
    if (id.node_id != st.node_id())
      return absl::InternalError("renewed a certificate for another node");
    *role = ApiRole(id.role);
    // The roots to trust with it (both during a root rotation), from the same manager.
    *trust_root = st.root_ca_pem();
    auto bundle = FetchTrustRoot(addr, creds, st.root_ca_pem());
    if (bundle.ok() && TrustsCertificate(*bundle, status.certificate().certificate())) {
      *trust_root = *bundle;
    }
    return status.certificate().certificate();
  }
  return last;
}

absl::Status Daemon::MaybePromote(NodeState st) {
  // Ask a manager whether the swarm wants this node in another role.
  ASSIGN_OR_RETURN(Keys keys, keys_.Load());
  const tls::Credentials creds{st.root_ca_pem(), st.cert_pem(), keys.tls_key_pem};
  bool renew = RenewalDue(st);
  for (const std::string& addr : st.manager_addrs()) {
    if (renew) break;
    auto ca = api::NodeCA::NewStub(grpc::CreateCustomChannel(
        addr, tls::ChannelCredentials(creds), tls::ChannelArguments(tls::kManagerRole)));
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(absl::Seconds(2)));
    api::NodeCertificateStatusRequest req;
    req.set_node_id(st.node_id());
    api::NodeCertificateStatusResponse resp;
    if (ca->NodeCertificateStatus(&ctx, req, &resp).ok()) {
      renew = resp.status().state() == api::ISSUANCE_STATE_RENEW;
      break;
    }
  }
  if (!renew) return absl::OkStatus();
  api::NodeRole role;
  std::string trust;
  ASSIGN_OR_RETURN(std::string cert, Renew(st, keys.tls_key_pem, &role, &trust));
  st.set_cert_pem(cert);
  st.set_root_ca_pem(trust);
  if (role != api::NODE_ROLE_MANAGER) {
    RETURN_IF_ERROR(WriteState(st));
    absl::MutexLock lock(&mu_);
    node_state_ = st;
    return absl::OkStatus();
  }
  log::Info(kLog, "promoted: joining the managers", {{"node", st.node_id()}});
  st.set_role(api::NODE_ROLE_MANAGER);
  std::shared_ptr<Manager> started;
  absl::Status joined = absl::UnavailableError("no manager known");
  for (const std::string& addr : st.manager_addrs()) {
    auto m = JoinRaft(&st, addr, keys.dek, keys.tls_key_pem);
    if (m.ok()) {
      started = *std::move(m);
      joined = absl::OkStatus();
      break;
    }
    joined = m.status();
  }
  if (!joined.ok()) {
    std::error_code ec;
    fs::remove_all(fs::path(config_.state_dir) / "raft", ec);
    return joined;
  }
  RETURN_IF_ERROR(WriteState(st));
  absl::MutexLock lock(&mu_);
  node_state_ = st;
  manager_ = std::move(started);
  return absl::OkStatus();
}

absl::StatusOr<std::string> Daemon::FetchTrustRoot(const std::string& addr,
                                                   const tls::Credentials& creds,
                                                   const std::string& trusted) {
  auto ca = api::CA::NewStub(grpc::CreateCustomChannel(addr, tls::ChannelCredentials(creds),
                                                       tls::ChannelArguments(tls::kManagerRole)));
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(absl::Seconds(2)));
  api::GetRootCACertificateRequest req;
  req.set_trust_root(trusted);
  api::GetRootCACertificateResponse resp;
  grpc::Status s = ca->GetRootCACertificate(&ctx, req, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp.certificate();
}

bool Daemon::TrustsCertificate(const std::string& bundle, const std::string& cert_pem) const {
  absl::StatusOr<RootCA> roots = RootCA::Load(bundle, "");
  return roots.ok() && roots->Verify(cert_pem, config_.clock->Now()).ok();
}

absl::Status Daemon::SyncTrust(NodeState st, std::shared_ptr<Manager> m) {
  std::string tls_key;
  if (m != nullptr) {
    tls_key = m->config().credentials.key_pem;
  } else {
    ASSIGN_OR_RETURN(Keys keys, keys_.Load());
    tls_key = keys.tls_key_pem;
  }
  const tls::Credentials creds{st.root_ca_pem(), st.cert_pem(), tls_key};
  // A manager asks itself; a worker the managers it knows.
  std::vector<std::string> addrs;
  if (m != nullptr) addrs.push_back(st.advertise_addr());
  for (const std::string& a : st.manager_addrs()) addrs.push_back(a);
  absl::StatusOr<std::string> bundle = absl::UnavailableError("no manager known");
  for (const std::string& addr : addrs) {
    bundle = FetchTrustRoot(addr, creds, st.root_ca_pem());
    if (bundle.ok()) break;
  }
  if (!bundle.ok()) return bundle.status();
  if (*bundle == st.root_ca_pem()) return absl::OkStatus();
  // Never a set of roots that would not accept this node's own certificate (it renews first).
  if (!TrustsCertificate(*bundle, st.cert_pem())) return absl::OkStatus();
  log::Info(kLog, "the swarm's root CA changed: trusting its new roots",
            {{"roots", manager::ca::SplitPem(*bundle).size()}});
  st.set_root_ca_pem(*bundle);
  RETURN_IF_ERROR(WriteState(st));
  if (m == nullptr) {
    // The agent restarts with it (SyncAgent).
    absl::MutexLock lock(&mu_);
    node_state_ = st;
    return absl::OkStatus();
  }
  std::string unlock_key;
  m->store().View([&](const manager::store::ReadTx& tx) {
    for (const auto& c : tx.ListClusters()) unlock_key = manager::controlapi::UnlockKeyOf(*c);
  });
  return RestartManager(st, std::move(m), unlock_key);
}

bool Daemon::RenewalDue(const NodeState& st) {
  if (renewal_cert_ != st.cert_pem()) {
    auto root = RootCA::Load(st.root_ca_pem(), "");
    if (!root.ok()) return false;
    auto id = root->Verify(st.cert_pem(), config_.clock->Now());
    // An expired certificate cannot renew itself: the node must join again.
    if (!id.ok()) return false;
    renewal_cert_ = st.cert_pem();
    renewal_at_ = manager::ca::RenewalTime(id->not_before, id->not_after, *config_.random);
  }
  return config_.clock->Now() >= renewal_at_;
}

absl::Status Daemon::MaybeRenewManager(NodeState st, std::shared_ptr<Manager> m) {
  bool due = RenewalDue(st);
  std::string unlock_key;
  m->store().View([&](const manager::store::ReadTx& tx) {
    auto node = tx.GetNode(st.node_id());
    for (const auto& c : tx.ListClusters()) {
      unlock_key = manager::controlapi::UnlockKeyOf(*c);
      // Whether this node's own certificate is from the new root: the node object may hold
      // one it never received (the answer to its renewal was lost).
      const bool old_root =
          c->root_ca().has_root_rotation() &&
          !manager::ca::IssuedBy(st.cert_pem(), c->root_ca().root_rotation().ca_cert());
      due = due || old_root ||
            (node && node->certificate().force_rotate() < c->spec().ca_config().force_rotate());
    }
  });
  if (!due) return absl::OkStatus();
  NodeState through = st;
  through.clear_manager_addrs();
  for (const auto& [id, member] : m->raft().Status().members)
    through.add_manager_addrs(member.addr);
  const std::string tls_key = m->config().credentials.key_pem;
  api::NodeRole role;
  std::string trust;
  ASSIGN_OR_RETURN(std::string cert, Renew(through, tls_key, &role, &trust));
  if (role != api::NODE_ROLE_MANAGER) return absl::OkStatus();  // a demotion: next round
  st.set_cert_pem(cert);
  st.set_root_ca_pem(trust);
  RETURN_IF_ERROR(WriteState(st));
  log::Info(kLog, "renewed this manager's certificate; restarting its listener with it");
  return RestartManager(st, std::move(m), unlock_key);
}

absl::Status Daemon::RestartManager(const NodeState& st, std::shared_ptr<Manager> m,
                                    const std::string& unlock_key) {
  const DataKey dek = m->dek();
  const std::string tls_key = m->config().credentials.key_pem;
  // gRPC 1.51 reloads certificates only from files, which would put the private key on disk
  // in the clear; the manager restarts in-process with the new one instead (the Raft group
  // sees a member restart for about a second). A leader hands over first: every manager
  // restarts during a root rotation, and each leader lost to a restart would cost an election.
  if (!m->HandOffLeadership()) {
    log::Warn(kLog,
              "restarting the leading manager: no other manager took over; one will be "
              "elected");
  }
  {
    absl::MutexLock lock(&mu_);
    manager_.reset();
    node_state_ = st;
  }
  StopAndRelease(std::move(m));
  ASSIGN_OR_RETURN(std::shared_ptr<Manager> restarted,
                   StartManager(st, dek, tls_key, unlock_key, /*bootstrap=*/false));
  absl::MutexLock lock(&mu_);
  manager_ = std::move(restarted);
  return absl::OkStatus();
}

bool Daemon::DemotionWanted(const NodeState& st, Manager& m) {
  api::NodeRole desired = api::NODE_ROLE_MANAGER;
  m.store().View([&](const manager::store::ReadTx& tx) {
    if (auto n = tx.GetNode(st.node_id())) desired = n->spec().desired_role();
  });
  return desired == api::NODE_ROLE_WORKER;
}

absl::Status Daemon::Demote(NodeState st, std::shared_ptr<Manager> m) {
  log::Info(kLog, "demoted: leaving the managers", {{"node", st.node_id()}});
  // Other managers to renew through once this one is gone.
  st.clear_manager_addrs();
  for (const auto& [id, member] : m->raft().Status().members) {
    if (id != st.raft_id()) st.add_manager_addrs(member.addr);
  }
  RETURN_IF_ERROR(m->LeaveRaft(absl::Seconds(20)));
  const std::string tls_key = m->config().credentials.key_pem;
  {
    absl::MutexLock lock(&mu_);
    manager_.reset();
  }
  StopAndRelease(std::move(m));
  std::error_code ec;
  fs::remove_all(fs::path(config_.state_dir) / "raft", ec);
  api::NodeRole role;
  std::string trust;
  absl::StatusOr<std::string> cert = Renew(st, tls_key, &role, &trust);
  for (int i = 0; !cert.ok() && i < 50; ++i) {
    absl::SleepFor(absl::Milliseconds(200));
    cert = Renew(st, tls_key, &role, &trust);
  }
  if (!cert.ok()) {
    absl::MutexLock lock(&mu_);
    state_ = api::LOCAL_NODE_STATE_ERROR;
    error_ =
        "demoted, but no manager renewed the certificate: " + std::string(cert.status().message());
    return cert.status();
  }
  st.set_cert_pem(*cert);
  st.set_root_ca_pem(trust);
  st.set_role(role);
  st.set_raft_id(0);
  RETURN_IF_ERROR(WriteState(st));
  absl::MutexLock lock(&mu_);
  node_state_ = st;
  return absl::OkStatus();
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
    auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !role_check_; };
    mu_.AwaitWithTimeout(absl::Condition(&idle), absl::Seconds(60));
    if (busy_ || role_check_) {
      return absl::FailedPreconditionError("another operation is in progress");
    }
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
    {
      absl::MutexLock lock(&mu_);
      manager_.reset();
    }
    StopAndRelease(std::move(m));  // its log is closed before the state is wiped
  }
  StopAgent(/*remove_containers=*/true);
  absl::Status s = WipeState();
  {
    absl::MutexLock lock(&mu_);
    node_state_.Clear();
  }
  EndOperation(api::LOCAL_NODE_STATE_INACTIVE);
  log::Info(kLog, "left the swarm");
  return s;
}

// ---- the agent ----

absl::Status Daemon::OpenRuntime(const NodeState& st) {
  if (executor_ != nullptr) return absl::OkStatus();
  const fs::path dir(config_.state_dir);
  if (config_.executor == "simulated") {
    ASSIGN_OR_RETURN(task_db_, agent::TaskDb::Open((dir / "tasks").string()));
    agent::SimulatedExecutor::Options so;
    so.dir = (dir / "simulated").string();
    so.hostname = config_.hostname;
    so.labels = config_.labels;
    so.clock = config_.clock;
    executor_ = std::make_unique<agent::SimulatedExecutor>(std::move(so));
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(images_, agent::runtime::ImageStore::Open((dir / "images").string()));
  agent::runtime::Runtime::Options ro;
  ro.root = (dir / "runtime").string();
  ro.images = images_.get();
  ro.shim_launcher = config_.shim_launcher;
  ro.init_program = agent::runtime::ShimProgramBesideExecutable();
  ro.run_root = (fs::path(config_.exec_root) / "runtime").string();
  ASSIGN_OR_RETURN(runtime_, agent::runtime::Runtime::Open(std::move(ro)));
  runtime_->TidyUpAtDaemonStart();
  ASSIGN_OR_RETURN(task_db_, agent::TaskDb::Open((dir / "tasks").string()));
  agent::ContainerExecutor::Options eo;
  eo.runtime = runtime_.get();
  eo.images = images_.get();
  eo.registry.insecure_registries = config_.insecure_registries;
  eo.hostname = config_.hostname;
  eo.labels = config_.labels;
  if (absl::Status s = OpenNetworks(st); !s.ok()) {
    log::Error(kLog, "overlay networking did not start: tasks on overlay networks will fail",
               {{"reason", s}});
  }
  eo.networks = networks_.get();
  executor_ = std::make_unique<agent::ContainerExecutor>(std::move(eo));
  return absl::OkStatus();
}

absl::Status Daemon::OpenNetworks(const NodeState& st) {
  agent::NetworkManager::Options no;
  no.run_dir = (fs::path(config_.state_dir) / "netns").string();
  no.node_id = st.node_id();
  ASSIGN_OR_RETURN(no.address, DataPathAddress(st.advertise_addr(), {st.manager_addrs().begin(),
                                                                     st.manager_addrs().end()}));
  ASSIGN_OR_RETURN(networks_, agent::NetworkManager::Start(std::move(no)));
  return absl::OkStatus();
}

void Daemon::SyncAgent() {
  absl::MutexLock agent_lock(&agent_mu_);
  NodeState st;
  std::string tls_key;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || busy_ || role_check_ || state_ != api::LOCAL_NODE_STATE_ACTIVE) return;
    st = node_state_;
    if (manager_ != nullptr) tls_key = manager_->config().credentials.key_pem;
  }
  if (agent_ != nullptr && agent_cert_ == st.cert_pem() + st.root_ca_pem()) return;
  if (tls_key.empty()) {
    absl::StatusOr<Keys> keys = keys_.Load();
    if (!keys.ok()) {
      log::Warn(kLog, "the agent cannot start without the node's key", {{"reason", keys.status()}});
      return;
    }
    tls_key = keys->tls_key_pem;
  }
  agent_.reset();  // a session with the old certificate; its containers keep running
  if (absl::Status s = OpenRuntime(st); !s.ok()) {
    log::Error(kLog, "the agent cannot start: this node will run no tasks", {{"reason", s}});
    return;
  }
  agent::Agent::Options ao;
  // A manager's own dispatcher first; the others it learns from the session.
  if (st.role() == api::NODE_ROLE_MANAGER) ao.managers.push_back(st.advertise_addr());
  for (const std::string& a : st.manager_addrs()) {
    if (a != st.advertise_addr()) ao.managers.push_back(a);
  }
  ao.credentials =
      tls::ChannelCredentials(tls::Credentials{st.root_ca_pem(), st.cert_pem(), tls_key});
  ao.channel_arguments = tls::ChannelArguments(tls::kManagerRole);
  if (st.role() != api::NODE_ROLE_MANAGER) {
    // A worker remembers the managers it learns of: the one it joined through may be gone
    // when it restarts, and its role checks go through them too.
    ao.on_managers = [this](const std::vector<std::string>& managers) {
      NodeState st;
      {
        absl::MutexLock lock(&mu_);
        if (std::equal(managers.begin(), managers.end(), node_state_.manager_addrs().begin(),
                       node_state_.manager_addrs().end()) ||
            node_state_.role() == api::NODE_ROLE_MANAGER) {
          return;
        }
        node_state_.clear_manager_addrs();
        for (const std::string& m : managers) node_state_.add_manager_addrs(m);
        st = node_state_;
      }
      if (absl::Status s = WriteState(st); !s.ok()) {
        log::Warn(kLog, "recording the managers' addresses failed", {{"error", s}});
      }
    };
  }
  if (networks_ != nullptr) {
    ao.on_endpoints = [networks =
                           networks_.get()](const agent::EndpointTable::NetworkState& state) {
      networks->SetNetwork(state);
    };
  }
  ao.executor = executor_.get();
  ao.db = task_db_.get();
  ao.clock = config_.clock;
  ao.random = config_.random;
  absl::StatusOr<std::unique_ptr<agent::Agent>> a = agent::Agent::Start(std::move(ao));
  if (!a.ok()) {
    log::Error(kLog, "the agent cannot start: this node will run no tasks",
               {{"reason", a.status()}});
    return;
  }
  agent_ = *std::move(a);
  agent_cert_ = st.cert_pem() + st.root_ca_pem();
}

void Daemon::StopAgent(bool remove_containers) {
  absl::MutexLock agent_lock(&agent_mu_);
  agent_.reset();
  agent_cert_.clear();
  if (!remove_containers || executor_ == nullptr) return;
  // Leaving the swarm: the node's tasks end with it.
  absl::StatusOr<std::vector<agent::runtime::ContainerInfo>> all =
      runtime_ ? runtime_->List() : std::vector<agent::runtime::ContainerInfo>{};
  if (all.ok()) {
    for (const auto& c : *all) {
      if (absl::Status s = runtime_->Remove(c.id, /*force=*/true); !s.ok()) {
        log::Warn(kLog, "removing a container on leave failed",
                  {{"container", c.id}, {"error", s}});
      }
    }
  }
  if (networks_ != nullptr) {
    if (absl::Status s = networks_->Teardown(); !s.ok()) {
      log::Warn(kLog, "removing the node's networks on leave failed", {{"error", s}});
    }
  }
  executor_.reset();
  networks_.reset();
  task_db_.reset();
  std::error_code ec;
  fs::remove_all(fs::path(config_.state_dir) / "tasks", ec);
  fs::remove_all(fs::path(config_.state_dir) / "simulated", ec);
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
    r.set_raft_data_key_id(rs.data_key_id);
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

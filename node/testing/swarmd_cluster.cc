#include "node/testing/swarmd_cluster.h"

#include <sys/mount.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/ports.h"
#include "common/subprocess.h"

namespace swarm::node {

namespace fs = std::filesystem;

void SetTimeout(grpc::ClientContext& ctx, absl::Duration timeout) {
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

SwarmdCluster::SwarmdCluster(Options options) : options_(std::move(options)) {
  std::string tmpl = "/tmp/swarmd-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) std::abort();
  dir_ = tmpl;
}

SwarmdCluster::~SwarmdCluster() {
  for (auto& [i, pid] : pids_) KillProcess(pid);
  for (const auto& e : fs::directory_iterator(dir_)) {
    int i = 0;
    if (!e.is_directory() || !fs::exists(e.path() / "runtime") ||
        !absl::SimpleAtoi(e.path().filename().string().substr(5), &i)) {
      continue;
    }
    auto rt = OpenRuntime(i);
    if (!rt.ok()) continue;
    if (auto all = (*rt)->List(); all.ok()) {
      for (const auto& c : *all) (void)(*rt)->Remove(c.id, /*force=*/true);
    }
    rt->reset();
    std::error_code ec;
    fs::remove_all(exec_root(i), ec);
  }
  // The nodes' network namespaces (overlays, tasks) are bind mounts in their state
  // directories; unmounting them lets the kernel free the namespaces and their links.
  for (const auto& e : fs::directory_iterator(dir_)) {
    std::error_code ec;
    for (const auto& ns : fs::directory_iterator(e.path() / "netns", ec)) {
      umount2(ns.path().c_str(), MNT_DETACH);
    }
  }
  // Keep the logs where Bazel collects test outputs, for a failure's post-mortem.
  if (const char* out = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR")) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_, ec)) {
      if (e.path().extension() == ".log") {
        fs::copy_file(e.path(), fs::path(out) / e.path().filename(),
                      fs::copy_options::overwrite_existing, ec);
      }
    }
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string SwarmdCluster::state_dir(int i) const { return absl::StrCat(dir_, "/node-", i); }
std::string SwarmdCluster::socket(int i) const { return absl::StrCat(dir_, "/node-", i, ".sock"); }
std::string SwarmdCluster::exec_root(int i) const {
  return options_.exec_root_base.empty() ? state_dir(i) + "/run"
                                         : absl::StrCat(options_.exec_root_base, "/node-", i);
}

absl::StatusOr<std::unique_ptr<agent::runtime::Runtime>> SwarmdCluster::OpenRuntime(int i) const {
  agent::runtime::Runtime::Options o;
  o.root = state_dir(i) + "/runtime";
  o.run_root = exec_root(i) + "/runtime";
  return agent::runtime::Runtime::Open(std::move(o));
}

void SwarmdCluster::SetHost(int i, const std::string& netns_path, const std::string& ip) {
  hosts_[i] = {netns_path, ip};
}

std::string SwarmdCluster::addr(int i) {
  if (auto h = hosts_.find(i); h != hosts_.end()) return h->second.second + ":4242";
  if (!ports_.count(i)) ports_[i] = FreeLoopbackPort();
  return absl::StrCat("127.0.0.1:", ports_[i]);
}

std::string SwarmdCluster::Output(int i) const {
  std::ifstream f(absl::StrCat(dir_, "/node-", i, ".log"));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

absl::Status SwarmdCluster::Start(int i, const std::vector<std::string>& extra_args) {
  std::vector<std::string> args = {options_.binary,
                                   "--state-dir=" + state_dir(i),
                                   "--socket=" + socket(i),
                                   "--exec-root=" + exec_root(i),
                                   "--listen-addr=" + addr(i),
                                   "--hostname=node-" + std::to_string(i),
                                   "--tick-ms=" + std::to_string(options_.tick_ms)};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  if (auto h = hosts_.find(i); h != hosts_.end()) {
    // nsenter enters the network namespace only and execs swarmd: the pid is swarmd's.
    args.insert(args.begin(), {"/usr/bin/nsenter", "--net=" + h->second.first});
  }
  const pid_t pid = Spawn(std::move(args), absl::StrCat(dir_, "/node-", i, ".log"));
  pids_[i] = pid;
  admins_.erase(i);
  controls_.erase(i);
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    // Only dial once the socket exists: a failed dial makes gRPC back off.
    if (fs::exists(socket(i)) && Info(i).ok()) return absl::OkStatus();
    if (WaitForExit(pid, absl::ZeroDuration()) != -1) {
      pids_.erase(i);
      return absl::InternalError(absl::StrCat("swarmd ", i, " exited at start:\n", Output(i)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat("swarmd ", i, " did not answer:\n", Output(i)));
}

void SwarmdCluster::Kill(int i) {
  auto it = pids_.find(i);
  if (it == pids_.end()) return;
  KillProcess(it->second);
  pids_.erase(it);
}

int SwarmdCluster::Terminate(int i) {
  auto it = pids_.find(i);
  if (it == pids_.end()) return -1;
  const pid_t pid = it->second;
  pids_.erase(it);
  return TerminateProcess(pid);
}

namespace {
// A channel to a node's socket that reconnects quickly after the node restarts (gRPC's own
// backoff grows to seconds). The "min reconnect backoff" is the connect timeout.
std::shared_ptr<grpc::Channel> SocketChannel(const std::string& socket) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 2000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
  args.SetMaxReceiveMessageSize(-1);  // as swarmctl: lists may be far over 4 MiB
  return grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(), args);
}
}  // namespace

api::NodeAdmin::Stub& SwarmdCluster::admin(int i) {
  auto& stub = admins_[i];
  if (!stub) stub = api::NodeAdmin::NewStub(SocketChannel(socket(i)));
  return *stub;
}

api::Control::Stub& SwarmdCluster::control(int i) {
  auto& stub = controls_[i];
  if (!stub) stub = api::Control::NewStub(SocketChannel(socket(i)));
  return *stub;
}

absl::StatusOr<api::NodeInfoResponse> SwarmdCluster::Info(int i) {
  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(1));
  ctx.set_wait_for_ready(true);
  api::NodeInfoResponse resp;
  grpc::Status s = admin(i).NodeInfo(&ctx, api::NodeInfoRequest(), &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp;
}

absl::StatusOr<api::InitSwarmResponse> SwarmdCluster::Init(int i, bool autolock) {
  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(30));
  api::InitSwarmRequest req;
  req.set_autolock(autolock);
  if (options_.heartbeat > absl::ZeroDuration()) {
    req.mutable_dispatcher_heartbeat()->set_seconds(absl::ToInt64Seconds(options_.heartbeat));
    req.mutable_dispatcher_heartbeat()->set_nanos(
        static_cast<int32_t>(absl::ToInt64Nanoseconds(options_.heartbeat % absl::Seconds(1))));
  }
  api::InitSwarmResponse resp;
  grpc::Status s = admin(i).InitSwarm(&ctx, req, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp;
}

absl::StatusOr<std::string> SwarmdCluster::JoinToken(int via, bool manager) {
  grpc::ClientContext ctx;
  SetTimeout(ctx);
  api::ListClustersResponse resp;
  grpc::Status s = control(via).ListClusters(&ctx, api::ListClustersRequest(), &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  if (resp.clusters_size() != 1) return absl::InternalError("expected one cluster");
  const auto& t = resp.clusters(0).root_ca().join_tokens();
  return manager ? t.manager() : t.worker();
}

absl::StatusOr<api::JoinSwarmResponse> SwarmdCluster::Join(int i, int via, bool manager) {
  auto token = JoinToken(via, manager);
  if (!token.ok()) return token.status();
  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(60));
  api::JoinSwarmRequest req;
  req.set_remote_addr(addr(via));
  req.set_join_token(*token);
  api::JoinSwarmResponse resp;
  grpc::Status s = admin(i).JoinSwarm(&ctx, req, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp;
}

absl::StatusOr<int> SwarmdCluster::WaitForLeader(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    for (const auto& [i, pid] : pids_) {
      auto info = Info(i);
      if (info.ok() && info->is_leader()) return i;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError("no leader among the running nodes");
}

}  // namespace swarm::node

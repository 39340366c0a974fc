// Convergence of real services, our swarm against Docker swarm mode (Debian's docker.io) on
// the same machine in the same run: the time from the operator's command until the tasks
// run (or stop), for
//   1. `service create --replicas 100` until 100 tasks are RUNNING,
//   2. `service scale` of it to 0 until no task runs,
//   3. a rolling update of 20 replicas (parallelism 5, no delay) until 20 new tasks run,
// on 1 node and on 3 nodes (1 manager and 2 workers, all taking tasks), printed side by side
// with the ratio Docker / ours.
//
// Both sides run `sleep 3600` from the same busybox rootfs, present on every node before
// the clock starts (loaded into our nodes' image stores; `docker import`ed into each
// dockerd, services created with --no-resolve-image and dockerd told to prefer the local
// image), and keep running containers' small files (their exec roots) on a tmpfs of the
// bench's, as /run is on a production host; with stop signal SIGKILL (busybox sleep as PID 1
// ignores SIGTERM, so either side would otherwise wait out the 10 s grace period). Each side is
// polled every 50 ms for its tasks' observed states: ours through ListTasks on the manager's
// socket, Docker's through GET /tasks on the engine API. Our commands go through the control API;
// Docker's through its CLI with -d, as an operator types them.
//
// Ours: swarmd processes on loopback (SwarmdCluster) with the container executor.
// Docker's: dockerd processes of the bench's own (data root, exec root, socket, cgroup
// parent under a temporary directory, no bridge, no iptables), each with its managed
// containerd, joined into one swarm on loopback ports. Everything both sides started is
// removed at the end, also after a failure or Ctrl-C.
//
// Needs root. docker.io is not a build dependency: `apt-get install docker.io` to measure
// Docker's side, or pass --skip-docker.
//
//   bazel run -c opt //bench:convergence_bench [-- --skip-docker --nodes=1,3]
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/runtime/image_store.h"
#include "agent/runtime/testing/test_image.h"
#include "common/ports.h"
#include "common/subprocess.h"
#include "node/testing/swarmd_cluster.h"
#include "proto/control.grpc.pb.h"

namespace swarm::bench {
namespace {

namespace fs = std::filesystem;

constexpr char kDockerd[] = "/usr/sbin/dockerd";
constexpr char kDocker[] = "/usr/bin/docker";
constexpr absl::Duration kPoll = absl::Milliseconds(50);
constexpr absl::Duration kScenarioTimeout = absl::Seconds(300);

// Set by SIGINT/SIGTERM: the waits return and the destructors tear everything down.
std::atomic<bool> g_interrupted{false};
void OnSignal(int) { g_interrupted = true; }

absl::Status Interrupted() { return absl::CancelledError("interrupted"); }

// Runs argv to completion with `env` added to the environment; returns its standard output
// and error, or an error carrying them when it exits non-zero.
absl::StatusOr<std::string> Run(const std::vector<std::string>& argv,
                                const std::vector<std::string>& env = {}) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return absl::InternalError("pipe");
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(out[1], 2);
    for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> a;
    for (const std::string& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execv(a[0], a.data());
    _exit(127);
  }
  close(out[1]);
  std::string output;
  char buf[4096];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof buf)) > 0) output.append(buf, n);
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat(absl::StrJoin(argv, " "), " failed (status ", status, "): ", output));
  }
  return output;
}

// What both sides report of a task.
struct TaskView {
  std::string id;
  bool running = false;
  std::string state;  // for --trace
};

// --trace: print the count of tasks in each state whenever it changes.
bool g_trace = false;

// One swarm under test, driven the way its operator would.
class Swarm {
 public:
  virtual ~Swarm() = default;
  virtual absl::Status Create(const std::string& name, int replicas) = 0;
  virtual absl::Status Scale(const std::string& name, int replicas) = 0;
  // A rolling update (parallelism 5, no delay) that replaces every task: an added variable.
  virtual absl::Status Update(const std::string& name) = 0;
  virtual absl::Status Remove(const std::string& name) = 0;
  virtual absl::StatusOr<std::vector<TaskView>> Tasks(const std::string& name) = 0;
  // The logs to read when a scenario fails.
  virtual std::string LogHint() const = 0;
};

// A tmpfs of the bench's, for both sides' exec roots (running containers' small files), as
// /run is on a production host.
absl::Status MountTmpfs(const std::string& dir) {
  fs::create_directories(dir);
  if (mount("tmpfs", dir.c_str(), "tmpfs", 0, "mode=0711") != 0) {
    return absl::InternalError(absl::StrCat("mounting a tmpfs on ", dir, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

struct TmpfsDir {
  TmpfsDir() {
    std::string tmpl = "/tmp/convbench-exec-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    path = tmpl;
    if (absl::Status s = MountTmpfs(path); !s.ok()) std::cerr << s << "\n";
  }
  ~TmpfsDir() {
    umount2(path.c_str(), MNT_DETACH);
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string path;
};

// ---------------------------------------------------------------------------------------
// Ours: swarmd processes with the container executor.

class OurSwarm : public Swarm {
 public:
  static absl::StatusOr<std::unique_ptr<OurSwarm>> Start(int nodes, const std::string& layout) {
    auto swarm = std::unique_ptr<OurSwarm>(new OurSwarm());
    node::SwarmdCluster& c = swarm->cluster_;
    for (int i = 1; i <= nodes; ++i) {
      {
        auto images = agent::runtime::ImageStore::Open(c.state_dir(i) + "/images");
        if (!images.ok()) return images.status();
        auto loaded = (*images)->LoadOciLayout(layout, "busybox:latest");
        if (!loaded.ok()) return loaded.status();
      }
      if (absl::Status s = c.Start(i); !s.ok()) return s;
    }
    if (auto init = c.Init(1); !init.ok()) return init.status();
    for (int i = 2; i <= nodes; ++i) {
      if (auto joined = c.Join(i, 1, /*manager=*/false); !joined.ok()) return joined.status();
    }
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (swarm->ReadyNodes() < nodes) {
      if (g_interrupted) return Interrupted();
      if (absl::Now() > deadline) return absl::DeadlineExceededError("nodes not ready");
      absl::SleepFor(kPoll);
    }
    return swarm;
  }

  absl::Status Create(const std::string& name, int replicas) override {
    api::CreateServiceRequest req;
    api::ServiceSpec* spec = req.mutable_spec();
    spec->mutable_annotations()->set_name(name);
    api::ContainerSpec* c = spec->mutable_task_template()->mutable_container();
    c->set_image("busybox:latest");
    c->add_args("sleep");
    c->add_args("3600");
    c->set_stop_signal("SIGKILL");
    spec->mutable_replicated()->set_replicas(replicas);
    grpc::ClientContext ctx;
    node::SetTimeout(ctx);
    api::CreateServiceResponse resp;
    if (grpc::Status s = cluster_.control(1).CreateService(&ctx, req, &resp); !s.ok()) {
      return absl::InternalError("create service: " + s.error_message());
    }
    ids_[name] = resp.service().id();
    return absl::OkStatus();
  }

  absl::Status Scale(const std::string& name, int replicas) override {
    return Change(
        name, [&](api::ServiceSpec& spec) { spec.mutable_replicated()->set_replicas(replicas); });
  }

  absl::Status Update(const std::string& name) override {
    return Change(name, [](api::ServiceSpec& spec) {
      api::UpdateConfig* u = spec.mutable_update_config();
      u->set_parallelism(5);
      u->mutable_delay()->Clear();
      spec.mutable_task_template()->mutable_container()->add_env("BENCH_UPDATE=1");
    });
  }

  absl::Status Remove(const std::string& name) override {
    grpc::ClientContext ctx;
    node::SetTimeout(ctx);
    api::RemoveServiceRequest req;
    req.set_service_id(ids_[name]);
    api::RemoveServiceResponse resp;
    grpc::Status s = cluster_.control(1).RemoveService(&ctx, req, &resp);
    if (!s.ok()) return absl::InternalError("remove service: " + s.error_message());
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<TaskView>> Tasks(const std::string& name) override {
    grpc::ClientContext ctx;
    node::SetTimeout(ctx);
    api::ListTasksRequest req;
    req.mutable_filters()->add_service_ids(ids_[name]);
    api::ListTasksResponse resp;
    grpc::Status s = cluster_.control(1).ListTasks(&ctx, req, &resp);
    if (!s.ok()) return absl::InternalError("list tasks: " + s.error_message());
    std::vector<TaskView> out;
    for (const api::Task& t : resp.tasks()) {
      out.push_back({t.id(), t.status().state() == api::TASK_STATE_RUNNING,
                     api::TaskState_Name(t.status().state()).substr(11)});
    }
    return out;
  }

  std::string LogHint() const override { return cluster_.Output(1); }

 private:
  OurSwarm() = default;

  int ReadyNodes() {
    grpc::ClientContext ctx;
    node::SetTimeout(ctx);
    api::ListNodesResponse resp;
    if (!cluster_.control(1).ListNodes(&ctx, api::ListNodesRequest(), &resp).ok()) return 0;
    int n = 0;
    for (const api::Node& node : resp.nodes()) {
      n += node.status().state() == api::NODE_STATE_READY;
    }
    return n;
  }

  absl::Status Change(const std::string& name, const std::function<void(api::ServiceSpec&)>& f) {
    api::Service service;
    {
      grpc::ClientContext ctx;
      node::SetTimeout(ctx);
      api::GetServiceRequest req;
      req.set_service_id(ids_[name]);
      api::GetServiceResponse resp;
      grpc::Status s = cluster_.control(1).GetService(&ctx, req, &resp);
      if (!s.ok()) return absl::InternalError("get service: " + s.error_message());
      service = resp.service();
    }
    grpc::ClientContext ctx;
    node::SetTimeout(ctx);
    api::UpdateServiceRequest req;
    req.set_service_id(service.id());
    *req.mutable_service_version() = service.meta().version();
    *req.mutable_spec() = service.spec();
    f(*req.mutable_spec());
    api::UpdateServiceResponse resp;
    grpc::Status s = cluster_.control(1).UpdateService(&ctx, req, &resp);
    if (!s.ok()) return absl::InternalError("update service: " + s.error_message());
    return absl::OkStatus();
  }

  TmpfsDir exec_;  // before cluster_: unmounted after the cluster is gone
  node::SwarmdCluster cluster_{{.exec_root_base = exec_.path}};
  std::map<std::string, std::string> ids_;  // service name -> ID
};

// ---------------------------------------------------------------------------------------
// Docker's: private dockerd processes joined into one swarm.

class DockerSwarm : public Swarm {
 public:
  // rootfs_tar: the busybox rootfs to import as busybox:latest on every node.
  static absl::StatusOr<std::unique_ptr<DockerSwarm>> Start(int nodes,
                                                            const std::string& rootfs_tar) {
    auto swarm = std::unique_ptr<DockerSwarm>(new DockerSwarm());
    if (absl::Status s = swarm->StartNodes(nodes, rootfs_tar); !s.ok()) return s;
    return swarm;
  }

  ~DockerSwarm() override { TearDown(); }

  absl::Status Create(const std::string& name, int replicas) override {
    return Docker(1, {"service", "create", "-d", "--quiet", "--name", name, "--replicas",
                      std::to_string(replicas), "--no-resolve-image", "--stop-signal", "SIGKILL",
                      "busybox:latest", "sleep", "3600"});
  }

  absl::Status Scale(const std::string& name, int replicas) override {
    return Docker(1, {"service", "scale", "-d", absl::StrCat(name, "=", replicas)});
  }

  absl::Status Update(const std::string& name) override {
    return Docker(1, {"service", "update", "-d", "--quiet", "--update-parallelism", "5",
                      "--update-delay", "0s", "--env-add", "BENCH_UPDATE=1", name});
  }

  absl::Status Remove(const std::string& name) override {
    return Docker(1, {"service", "rm", name});
  }

  absl::StatusOr<std::vector<TaskView>> Tasks(const std::string& name) override {
    const std::string filters = nlohmann::json({{"service", {name}}}).dump();
    auto body = Get(1, "/tasks?filters=" + Escape(filters));
    if (!body.ok()) return body.status();
    std::vector<TaskView> out;
    try {
      for (const auto& t : nlohmann::json::parse(*body)) {
        const std::string state = t.at("Status").value("State", std::string());
        out.push_back({t.at("ID").get<std::string>(), state == "running", state});
      }
    } catch (const nlohmann::json::exception& e) {
      return absl::InternalError(absl::StrCat("GET /tasks: ", e.what(), ": ", *body));
    }
    return out;
  }

  std::string LogHint() const override { return "see " + dir_ + "/node-1/dockerd.log"; }

 private:
  DockerSwarm() {
    std::string tmpl = "/tmp/dockerbench-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    dir_ = tmpl;
    run_containerd_existed_ = fs::exists("/run/containerd");
  }

  std::string NodeDir(int i) const { return absl::StrCat(dir_, "/node-", i); }
  std::string Socket(int i) const { return NodeDir(i) + "/docker.sock"; }
  std::string CgroupParent(int i) const {
    return absl::StrCat("convergence-bench-", getpid(), "-", i);
  }

  absl::Status StartNodes(int nodes, const std::string& rootfs_tar) {
    for (int i = 1; i <= nodes; ++i) {
      const std::string d = NodeDir(i);
      fs::create_directories(d + "/data");
      if (absl::Status s = MountTmpfs(d + "/exec"); !s.ok()) return s;
      fs::create_directories(d + "/cli");
      ports_[i] = FreeLoopbackPort();
      // Swarm's agent pulls a service's image even when it has it unless told to prefer the
      // local one; this host reaches no registry.
      setenv("DOCKER_SERVICE_PREFER_OFFLINE_IMAGE", "1", 1);
      pids_[i] = Spawn({kDockerd, "--data-root=" + d + "/data", "--exec-root=" + d + "/exec",
                        "--pidfile=" + d + "/docker.pid", "--host=unix://" + Socket(i),
                        "--bridge=none", "--iptables=false", "--ip-masq=false",
                        "--cgroup-parent=/" + CgroupParent(i), "--shutdown-timeout=2"},
                       d + "/dockerd.log");
      unsetenv("DOCKER_SERVICE_PREFER_OFFLINE_IMAGE");
      curls_[i] = curl_easy_init();
    }
    for (int i = 1; i <= nodes; ++i) {
      const absl::Time deadline = absl::Now() + absl::Seconds(60);
      while (!Get(i, "/_ping").ok()) {
        if (g_interrupted) return Interrupted();
        if (WaitForExit(pids_[i], absl::ZeroDuration()) != -1) {
          pids_.erase(i);
          return absl::InternalError(
              absl::StrCat("dockerd ", i, " exited; see ", NodeDir(i), "/dockerd.log (kept)"));
        }
        if (absl::Now() > deadline) return absl::DeadlineExceededError("dockerd did not answer");
        absl::SleepFor(kPoll);
      }
      if (absl::Status s = Docker(i, {"import", rootfs_tar, "busybox:latest"}); !s.ok()) return s;
    }
    const std::string addr1 = absl::StrCat("127.0.0.1:", ports_[1]);
    if (absl::Status s =
            Docker(1, {"swarm", "init", "--advertise-addr", addr1, "--listen-addr", addr1});
        !s.ok()) {
      return s;
    }
    auto token = DockerOutput(1, {"swarm", "join-token", "-q", "worker"});
    if (!token.ok()) return token.status();
    for (int i = 2; i <= nodes; ++i) {
      const std::string addr = absl::StrCat("127.0.0.1:", ports_[i]);
      if (absl::Status s = Docker(
              i, {"swarm", "join", "--token", std::string(absl::StripAsciiWhitespace(*token)),
                  "--advertise-addr", addr, "--listen-addr", addr, addr1});
          !s.ok()) {
        return s;
      }
    }
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (true) {
      if (g_interrupted) return Interrupted();
      int ready = 0;
      if (auto body = Get(1, "/nodes"); body.ok()) {
        for (const auto& n : nlohmann::json::parse(*body, nullptr, false)) {
          ready += n.is_object() && n["Status"].value("State", std::string()) == "ready";
        }
      }
      if (ready == nodes) return absl::OkStatus();
      if (absl::Now() > deadline) return absl::DeadlineExceededError("docker nodes not ready");
      absl::SleepFor(kPoll);
    }
  }

  absl::StatusOr<std::string> DockerOutput(int i, std::vector<std::string> args) {
    args.insert(args.begin(), {kDocker, "--host=unix://" + Socket(i)});
    return Run(args, {"DOCKER_CONFIG=" + NodeDir(i) + "/cli"});
  }
  absl::Status Docker(int i, std::vector<std::string> args) {
    return DockerOutput(i, std::move(args)).status();
  }

  static std::string Escape(const std::string& s) {
    char* e = curl_easy_escape(nullptr, s.c_str(), static_cast<int>(s.size()));
    std::string out = e;
    curl_free(e);
    return out;
  }

  static size_t Append(char* data, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
  }

  // One engine API request on node i's socket (a kept-alive connection per node).
  absl::StatusOr<std::string> Request(int i, const std::string& method, const std::string& path) {
    CURL* c = curls_[i];
    std::string body;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, Socket(i).c_str());
    curl_easy_setopt(c, CURLOPT_URL, ("http://docker/v1.41" + path).c_str());
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &DockerSwarm::Append);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    if (CURLcode rc = curl_easy_perform(c); rc != CURLE_OK) {
      return absl::UnavailableError(absl::StrCat(method, " ", path, ": ", curl_easy_strerror(rc)));
    }
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 300) return absl::InternalError(absl::StrCat(method, " ", path, ": ", code, body));
    return body;
  }
  absl::StatusOr<std::string> Get(int i, const std::string& path) {
    return Request(i, "GET", path);
  }

  // Services, then containers (so that swarm does not replace them), then the daemons with
  // their containerd, their mounts, cgroups and files.
  void TearDown() {
    if (pids_.count(1)) {
      if (auto body = Get(1, "/services"); body.ok()) {
        for (const auto& s : nlohmann::json::parse(*body, nullptr, false)) {
          if (s.is_object()) (void)Request(1, "DELETE", "/services/" + s.value("ID", ""));
        }
      }
    }
    for (const auto& [i, pid] : pids_) {
      if (auto body = Get(i, "/containers/json?all=1"); body.ok()) {
        for (const auto& ct : nlohmann::json::parse(*body, nullptr, false)) {
          if (ct.is_object()) {
            (void)Request(i, "DELETE", "/containers/" + ct.value("Id", "") + "?force=1");
          }
        }
      }
    }
    for (const auto& [i, pid] : pids_) {
      if (TerminateProcess(pid, absl::Seconds(30)) == -1) {
        std::cerr << "dockerd " << i << " did not stop in 30 s; killed\n";
      }
      // Its managed containerd normally stops with it.
      std::ifstream f(NodeDir(i) + "/exec/containerd/containerd.pid");
      int containerd = 0;
      if (f >> containerd && containerd > 0 && kill(containerd, 0) == 0) {
        kill(containerd, SIGKILL);
      }
    }
    for (auto& [i, c] : curls_) curl_easy_cleanup(c);
    // Mounts left under the directory (overlays, network namespaces), deepest first.
    std::vector<std::string> mounts;
    std::ifstream mountinfo("/proc/self/mountinfo");
    for (std::string line; std::getline(mountinfo, line);) {
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      if (f.size() > 4 && absl::StartsWith(f[4], dir_ + "/")) mounts.push_back(f[4]);
    }
    for (auto m = mounts.rbegin(); m != mounts.rend(); ++m) umount2(m->c_str(), MNT_DETACH);
    for (const auto& [i, pid] : pids_) {
      std::error_code ec;
      for (const auto& ctl : fs::directory_iterator("/sys/fs/cgroup", ec)) {
        rmdir((ctl.path() / CgroupParent(i)).c_str());
      }
    }
    if (!run_containerd_existed_) {
      rmdir("/run/containerd/s");
      rmdir("/run/containerd");
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string dir_;
  bool run_containerd_existed_ = false;
  std::map<int, int> ports_;
  std::map<int, pid_t> pids_;
  std::map<int, CURL*> curls_;
};

// ---------------------------------------------------------------------------------------
// Scenarios.

int CountRunning(const std::vector<TaskView>& tasks) {
  int n = 0;
  for (const TaskView& t : tasks) n += t.running;
  return n;
}

void Trace(absl::Duration at, const std::vector<TaskView>& tasks, std::string& last) {
  std::map<std::string, int> by_state;
  for (const TaskView& t : tasks) ++by_state[t.state];
  std::string line;
  for (const auto& [state, n] : by_state) absl::StrAppend(&line, " ", state, " ", n);
  if (line == last) return;
  last = line;
  std::cout << absl::StrFormat("  %6.2f s", absl::ToDoubleSeconds(at)) << line << "\n";
}

// Runs `action`, then polls the service's tasks until `done` holds; the time from just
// before the action.
absl::StatusOr<absl::Duration> Measure(
    Swarm& swarm, const std::string& name, const std::function<absl::Status()>& action,
    const std::function<bool(const std::vector<TaskView>&)>& done) {
  const absl::Time start = absl::Now();
  if (absl::Status s = action(); !s.ok()) return s;
  std::vector<TaskView> last;
  std::string last_trace;
  while (true) {
    if (g_interrupted) return Interrupted();
    auto tasks = swarm.Tasks(name);
    if (tasks.ok()) {
      if (g_trace) Trace(absl::Now() - start, *tasks, last_trace);
      if (done(*tasks)) return absl::Now() - start;
      last = *std::move(tasks);
    }
    if (absl::Now() - start > kScenarioTimeout) {
      return absl::DeadlineExceededError(
          absl::StrCat("not converged after ", absl::FormatDuration(kScenarioTimeout), ": ",
                       CountRunning(last), " of ", last.size(), " tasks running"));
    }
    absl::SleepFor(kPoll);
  }
}

struct Figures {
  absl::StatusOr<absl::Duration> create = absl::UnknownError("not run");
  absl::StatusOr<absl::Duration> scale = absl::UnknownError("not run");
  absl::StatusOr<absl::Duration> update = absl::UnknownError("not run");
};

// The three scenarios on one swarm, in order; a failure ends the remaining ones.
Figures RunScenarios(Swarm& swarm, int replicas, int update_replicas) {
  Figures f;
  f.create = Measure(
      swarm, "bench", [&] { return swarm.Create("bench", replicas); },
      [&](const std::vector<TaskView>& t) { return CountRunning(t) == replicas; });
  if (!f.create.ok()) return f;
  f.scale = Measure(
      swarm, "bench", [&] { return swarm.Scale("bench", 0); },
      [&](const std::vector<TaskView>& t) { return CountRunning(t) == 0; });
  if (!f.scale.ok()) return f;
  if (absl::Status s = swarm.Remove("bench"); !s.ok()) {
    f.update = s;
    return f;
  }

  // The rolling update starts from 20 running tasks (not timed).
  auto ready = Measure(
      swarm, "rolling", [&] { return swarm.Create("rolling", update_replicas); },
      [&](const std::vector<TaskView>& t) { return CountRunning(t) == update_replicas; });
  if (!ready.ok()) {
    f.update = ready.status();
    return f;
  }
  std::set<std::string> old;
  if (auto tasks = swarm.Tasks("rolling"); tasks.ok()) {
    for (const TaskView& t : *tasks) old.insert(t.id);
  }
  f.update = Measure(
      swarm, "rolling", [&] { return swarm.Update("rolling"); },
      [&](const std::vector<TaskView>& t) {
        int fresh = 0;
        for (const TaskView& v : t) {
          if (!v.running) continue;
          if (old.count(v.id)) return false;
          ++fresh;
        }
        return fresh == update_replicas;
      });
  (void)swarm.Remove("rolling");
  return f;
}

// How busy the machine's CPUs were over one second before a side starts (when the bench
// itself is idle): both sides share the machine with whatever else runs on it.
std::string MachineBusy() {
  auto sample = [] {
    std::ifstream f("/proc/stat");
    std::string cpu;
    f >> cpu;
    uint64_t v = 0, total = 0, idle = 0;
    for (int i = 0; i < 8 && f >> v; ++i) {
      total += v;
      if (i == 3 || i == 4) idle += v;  // idle, iowait
    }
    return std::make_pair(total, idle);
  };
  const auto [t0, i0] = sample();
  absl::SleepFor(absl::Seconds(1));
  const auto [t1, i1] = sample();
  if (t1 <= t0) return "machine busy unknown";
  return absl::StrFormat("CPUs %.0f%% busy before it started",
                         100.0 * (1.0 - double(i1 - i0) / double(t1 - t0)));
}

std::string Seconds(absl::Duration d) {
  return absl::StrFormat("%.2f s", absl::ToDoubleSeconds(d));
}

std::string Line(const std::string& what, const absl::StatusOr<absl::Duration>& ours,
                 const std::optional<absl::StatusOr<absl::Duration>>& docker,
                 const std::string& docker_label) {
  std::string line = what + ": ours " + (ours.ok() ? Seconds(*ours) : "failed");
  if (!docker.has_value()) return line + ", docker skipped";
  absl::StrAppend(&line, ", ", docker_label, " ", docker->ok() ? Seconds(**docker) : "failed");
  if (ours.ok() && docker->ok() && *ours > absl::ZeroDuration()) {
    absl::StrAppend(&line, absl::StrFormat(", %.1fx", absl::FDivDuration(**docker, *ours)));
  }
  return line;
}

void PrintErrors(const std::string& side, const Figures& f) {
  for (const auto* r : {&f.create, &f.scale, &f.update}) {
    if (!r->ok() && r->status().message() != "not run") {
      std::cout << "  " << side << ": " << r->status() << "\n";
    }
  }
}

int Main(int argc, char** argv) {
  bool skip_docker = false;
  std::vector<int> node_counts = {1, 3};
  int replicas = 100, update_replicas = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--skip-docker") {
      skip_docker = true;
    } else if (a == "--trace") {
      g_trace = true;
    } else if (absl::StartsWith(a, "--nodes=")) {
      node_counts.clear();
      const std::string list = a.substr(8);
      for (absl::string_view n : absl::StrSplit(list, ',')) {
        int v = 0;
        if (!absl::SimpleAtoi(n, &v) || v < 1) {
          std::cerr << "--nodes: a comma-separated list of node counts\n";
          return 2;
        }
        node_counts.push_back(v);
      }
    } else if (absl::StartsWith(a, "--replicas=")) {
      if (!absl::SimpleAtoi(a.substr(11), &replicas) || replicas < 1) return 2;
    } else {
      std::cerr
          << "usage: convergence_bench [--skip-docker] [--nodes=1,3] [--replicas=100] [--trace]\n";
      return 2;
    }
  }
  if (geteuid() != 0) {
    std::cerr << "convergence_bench needs root (containers, cgroups, mounts)\n";
    return 1;
  }
  if (!skip_docker && (!fs::exists(kDockerd) || !fs::exists(kDocker))) {
    std::cerr << "Docker's side needs Debian's docker.io (" << kDockerd << ", " << kDocker
              << "): apt-get install docker.io, or pass --skip-docker\n";
    return 1;
  }
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  curl_global_init(CURL_GLOBAL_DEFAULT);

  // One busybox rootfs for both sides: an OCI layout for ours, a tar for docker import.
  std::string tmpl = "/tmp/convbench-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) return 1;
  const std::string dir = tmpl;
  struct RemoveDir {
    std::string dir;
    ~RemoveDir() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } remove_dir{dir};
  if (absl::Status s = agent::runtime::testing::BuildBusyboxRootfs(dir + "/rootfs"); !s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }
  if (auto s = agent::runtime::testing::BuildOciLayout({dir + "/rootfs"}, dir + "/layout");
      !s.ok()) {
    std::cerr << s.status() << "\n";
    return 1;
  }
  if (auto s = Run({"/bin/tar", "-C", dir + "/rootfs", "-cf", dir + "/rootfs.tar", "."}); !s.ok()) {
    std::cerr << s.status() << "\n";
    return 1;
  }

  std::cout << "sleep 3600 from busybox, present on every node; stop signal SIGKILL; tasks "
               "polled every 50 ms\n";
  std::vector<std::string> lines;
  bool failed = false;
  for (int nodes : node_counts) {
    const std::string where = nodes == 1 ? "1 node" : absl::StrCat(nodes, " nodes");
    Figures ours;
    {
      std::cout << "ours, " << where << " (" << MachineBusy() << ")..." << std::endl;
      auto swarm = OurSwarm::Start(nodes, dir + "/layout");
      if (!swarm.ok()) {
        std::cerr << "our swarm of " << where << ": " << swarm.status() << "\n";
        return 1;
      }
      ours = RunScenarios(**swarm, replicas, update_replicas);
      PrintErrors("ours", ours);
      if (!ours.create.ok()) std::cerr << (*swarm)->LogHint();
    }
    if (g_interrupted) return 130;
    std::optional<Figures> docker;
    std::string docker_label = "docker swarm";
    if (!skip_docker) {
      std::cout << "docker swarm, " << where << " (" << MachineBusy() << ")..." << std::endl;
      auto swarm = DockerSwarm::Start(nodes, dir + "/rootfs.tar");
      if (!swarm.ok() && nodes > 1) {
        std::cout << "  docker swarm of " << where << " did not start (" << swarm.status()
                  << "); measuring docker on 1 node instead\n";
        swarm = DockerSwarm::Start(1, dir + "/rootfs.tar");
        docker_label = "docker swarm (1 node, not " + where + ")";
      }
      if (!swarm.ok()) {
        std::cerr << "docker swarm: " << swarm.status() << "\n";
        return 1;
      }
      docker = RunScenarios(**swarm, replicas, update_replicas);
      PrintErrors("docker", *docker);
    }
    if (g_interrupted) return 130;
    auto docker_of = [&](auto member) -> std::optional<absl::StatusOr<absl::Duration>> {
      if (!docker.has_value()) return std::nullopt;
      return (*docker).*member;
    };
    lines.push_back(Line(absl::StrCat("create ", replicas, " replicas, ", where), ours.create,
                         docker_of(&Figures::create), docker_label));
    lines.push_back(Line(absl::StrCat("scale ", replicas, " -> 0, ", where), ours.scale,
                         docker_of(&Figures::scale), docker_label));
    lines.push_back(Line(absl::StrCat("rolling update of ", update_replicas,
                                      " replicas (parallelism 5, no delay), ", where),
                         ours.update, docker_of(&Figures::update), docker_label));
    failed |= !ours.create.ok() || !ours.scale.ok() || !ours.update.ok();
    for (auto i = lines.end() - 3; i != lines.end(); ++i) std::cout << *i << std::endl;
  }
  std::cout << "\n";
  for (const std::string& l : lines) std::cout << l << "\n";
  curl_global_cleanup();
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace swarm::bench

int main(int argc, char** argv) { return swarm::bench::Main(argc, argv); }

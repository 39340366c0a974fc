#include "agent/runtime/runtime.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/runtime/container.h"
#include "agent/runtime/image_store.h"
#include "agent/runtime/seccomp.h"
#include "common/errno_status.h"
#include "common/files.h"
#include "common/id.h"
#include "common/random.h"
#include "common/status_macros.h"
#include "common/sysctl.h"

namespace swarm::agent::runtime {
namespace {

absl::Status WriteJson(const std::string& path, const nlohmann::json& j) {
  return WriteFileAtomically(path, j.dump());
}

absl::StatusOr<nlohmann::json> ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) return ErrnoToStatus(errno, absl::StrCat("reading ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return absl::DataLossError(absl::StrCat(path, " is not valid JSON"));
  return j;
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// Polls fd for readability until the timeout (or until wake_fd, when not -1, is readable);
// true when fd is readable.
bool PollReadable(int fd, absl::Duration timeout, int wake_fd = -1) {
  absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  for (;;) {
    int ms = -1;
    if (deadline != absl::InfiniteFuture()) {
      ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      if (ms < 0) ms = 0;
    }
    pollfd p[2] = {{fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int rc = poll(p, wake_fd >= 0 ? 2 : 1, ms);
    if (rc > 0) return p[0].revents != 0;
    if (rc == 0) return false;
    if (errno != EINTR) return false;
  }
}

// Where --init's program is in the container, as Docker's docker-init.
constexpr std::string_view kInitPath = "/sbin/docker-init";

// What EtcHostsSpec says /etc/hosts holds (Docker's layout).
absl::StatusOr<std::string> EtcHosts(const ContainerSpec& spec) {
  std::string out;
  if (spec.network == NetworkMode::kHost) {
    ASSIGN_OR_RETURN(out, ReadFile("/etc/hosts"));
    if (!out.empty() && out.back() != '\n') out += '\n';
  } else {
    out =
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
        "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";
  }
  if (!spec.etc_hosts->address.empty()) {
    absl::StrAppend(&out, spec.etc_hosts->address, "\t", spec.hostname, "\n");
  }
  for (const std::string& e : spec.etc_hosts->entries) absl::StrAppend(&out, e, "\n");
  return out;
}

}  // namespace

std::string StatusName(ContainerStatus status) {
  switch (status) {
    case ContainerStatus::kCreated:
      return "created";
    case ContainerStatus::kRunning:
      return "running";
    case ContainerStatus::kExited:
      return "exited";
    case ContainerStatus::kDead:
      return "dead";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<Runtime>> Runtime::Open(Options options) {
  if (options.root.empty()) return absl::InvalidArgumentError("runtime: no state directory");
  if (options.run_root.empty()) options.run_root = options.root;
  RETURN_IF_ERROR(MkdirAll(options.root + "/containers", 0711));
  RETURN_IF_ERROR(MkdirAll(options.run_root + "/containers", 0711));
  RETURN_IF_ERROR(MkdirAll(options.run_root + "/names", 0700));
  RETURN_IF_ERROR(MkdirAll(options.root + "/volumes", 0711));
  // Reachable by a user namespace's root too; nothing is ever stored in them.
  RETURN_IF_ERROR(MkdirAll(options.root + "/mnt/rootfs", 0755));
  RETURN_IF_ERROR(MkdirAll(options.root + "/mnt/secrets", 0755));
  RETURN_IF_ERROR(MkdirAll(options.root + "/trash", 0700));
  std::unique_ptr<Runtime> rt(new Runtime(std::move(options)));
  // Whatever an earlier daemon left in the trash is deleted first.
  if (DIR* d = opendir((rt->options_.root + "/trash").c_str())) {
    absl::MutexLock lock(&rt->trash_mu_);
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') rt->trash_.push_back(rt->options_.root + "/trash/" + e->d_name);
    }
    closedir(d);
  }
  rt->deleter_ = std::thread([r = rt.get()] { r->DeleterLoop(); });
  pthread_setname_np(rt->deleter_.native_handle(), "runtime-trash");
  return rt;
}

Runtime::~Runtime() {
  {
    absl::MutexLock lock(&trash_mu_);
    stopping_ = true;
  }
  if (deleter_.joinable()) deleter_.join();
}

void Runtime::DeleterLoop() {
  for (;;) {
    std::string path;
    {
      absl::MutexLock lock(&trash_mu_);
      trash_mu_.Await(absl::Condition(
          +[](Runtime* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->trash_mu_) {
            return r->stopping_ || !r->trash_.empty();
          },
          this));
      if (trash_.empty()) return;  // stopping, and nothing left
      path = std::move(trash_.front());
      trash_.pop_front();
    }
    // A failure leaves the directory in the trash for the next daemon to try again.
    (void)RemoveAll(path);
  }
}

void Runtime::TidyUpAtDaemonStart() {
  // Containers made before names were linked get their link.
  if (DIR* d = opendir((options_.run_root + "/containers").c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      auto config = ReadJson(ContainerDir(e->d_name) + "/config.json");
      const std::string name = config.ok() ? config->value("name", "") : "";
      if (!name.empty()) (void)!symlink(e->d_name, NameLink(name).c_str());
    }
    closedir(d);
  }
  if (options_.run_root == options_.root) return;
  DIR* d = opendir((options_.root + "/containers").c_str());
  if (d == nullptr) return;
  absl::MutexLock lock(&trash_mu_);
  while (dirent* e = readdir(d)) {
    // Only what Create makes under root (an upper directory, no small files): a wrong
    // run_root must not make a run root's own directories look orphaned.
    const std::string data = DataDir(e->d_name);
    if (e->d_name[0] == '.' || Exists(ContainerDir(e->d_name)) || !Exists(data + "/upper") ||
        Exists(data + "/config.json")) {
      continue;
    }
    const std::string trash = options_.root + "/trash/" + e->d_name;
    if (rename(data.c_str(), trash.c_str()) == 0) trash_.push_back(trash);
  }
  closedir(d);
}

std::string Runtime::ContainerDir(const std::string& id) const {
  return absl::StrCat(options_.run_root, "/containers/", id);
}
std::string Runtime::NameLink(const std::string& name) const {
  return options_.run_root + "/names/" + name;
}

std::string Runtime::NameTarget(const std::string& name) const {
  char target[256];
  const ssize_t n = readlink(NameLink(name).c_str(), target, sizeof(target) - 1);
  return n > 0 ? std::string(target, n) : "";
}

std::optional<std::string> Runtime::NameOwner(const std::string& name) const {
  std::string id = NameTarget(name);
  if (id.empty() || !Exists(ContainerDir(id) + "/config.json")) return std::nullopt;
  return id;  // (a link to a missing container is left by a crash)
}

absl::Status Runtime::ClaimName(const std::string& name, const std::string& id) {
  if (name.find('/') != std::string::npos || name[0] == '.') {
    return absl::InvalidArgumentError(absl::StrCat(
        "container name \"", name, "\" is not valid: it may not contain '/' or start with '.'"));
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (symlink(id.c_str(), NameLink(name).c_str()) == 0) return absl::OkStatus();
    if (errno != EEXIST) return ErrnoToStatus(errno, absl::StrCat("naming container ", name));
    if (std::optional<std::string> owner = NameOwner(name)) {
      return absl::AlreadyExistsError(
          absl::StrCat("container name \"", name, "\" is already in use by container ", *owner,
                       ": remove that container or choose another name"));
    }
    unlink(NameLink(name).c_str());  // a link to a container that is gone
  }
  return absl::AbortedError(absl::StrCat("naming container ", name, ": raced with another"));
}

void Runtime::ReleaseName(const std::string& name, const std::string& id) {
  if (NameTarget(name) == id) unlink(NameLink(name).c_str());
}

std::string Runtime::DataDir(const std::string& id) const {
  return absl::StrCat(options_.root, "/containers/", id);
}
std::string Runtime::LogPath(const std::string& id) const { return DataDir(id) + "/container.log"; }
std::string Runtime::VolumePath(const std::string& name) const {
  return absl::StrCat(options_.root, "/volumes/", name, "/_data");
}

absl::Status Runtime::RemoveVolume(const std::string& name) {
  return RemoveAll(absl::StrCat(options_.root, "/volumes/", name));
}

absl::StatusOr<const std::string*> Runtime::SeccompProgram(const std::vector<std::string>& caps) {
  std::string key = absl::StrJoin(caps, ",");
  absl::MutexLock lock(&mu_);
  auto it = seccomp_cache_.find(key);
  if (it != seccomp_cache_.end()) return it->second.get();
  // Compiling takes milliseconds; short-lived processes (the CLI) share compiled programs
  // through run_root. The name covers everything the program depends on.
  std::string file = absl::StrCat(
      options_.run_root, "/seccomp-",
      DigestBytes(absl::StrCat(kSeccompProfileVersion, "/", SeccompLibraryVersion(), "/", key))
          .substr(7, 24),
      ".bpf");
  std::string program;
  if (std::ifstream in(file, std::ios::binary); in) {
    std::stringstream ss;
    ss << in.rdbuf();
    program = ss.str();
  }
  if (program.empty() || program.size() % 8 != 0) {
    ASSIGN_OR_RETURN(program, CompileDefaultSeccompProfile(caps));
    std::string tmp = absl::StrCat(file, ".", getpid());
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << program;
    }
    if (rename(tmp.c_str(), file.c_str()) != 0) unlink(tmp.c_str());
  }
  auto& slot = seccomp_cache_[key];
  slot = std::make_unique<std::string>(std::move(program));
  return slot.get();
}

absl::StatusOr<std::string> Runtime::Create(ContainerSpec spec) {
  // Step 1: fill in what the image says and the caller left out.
  if (spec.lower_dirs.empty()) {
    if (spec.image.empty() || options_.images == nullptr) {
      return absl::InvalidArgumentError("creating a container: no image and no rootfs given");
    }
    ASSIGN_OR_RETURN(ResolvedImage image, options_.images->ResolveForContainer(spec.image));
    spec.lower_dirs = image.lower_dirs;
    std::vector<std::string> args = spec.entrypoint.value_or(image.entrypoint);
    if (spec.args.empty() && !spec.entrypoint) {
      args.insert(args.end(), image.cmd.begin(), image.cmd.end());
    } else {
      args.insert(args.end(), spec.args.begin(), spec.args.end());
    }
    spec.args = args;
    std::vector<std::string> env = image.env;
    for (const auto& e : spec.env) {
      std::string key = e.substr(0, e.find('='));
      env.erase(
          std::remove_if(env.begin(), env.end(),
                         [&](const std::string& x) { return x.substr(0, x.find('=')) == key; }),
          env.end());
      env.push_back(e);
    }
    spec.env = env;
    if ((spec.working_dir.empty() || spec.working_dir == "/") && !image.working_dir.empty()) {
      spec.working_dir = image.working_dir;
    }
    if (spec.user.empty()) spec.user = image.user;
    if (spec.healthcheck.test.empty()) spec.healthcheck = image.healthcheck;
  }
  if (spec.args.empty()) {
    return absl::InvalidArgumentError("creating a container: no command given or in the image");
  }
  for (const MountSpec& m : spec.mounts) {
    if (absl::Status s = CheckContainerMountTarget(m.target); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("creating a container: ", s.message()));
    }
  }
  for (const auto& [key, value] : spec.sysctls) {
    if (absl::Status s = CheckContainerSysctl(key, spec.network == NetworkMode::kHost); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("creating a container: ", s.message()));
    }
  }
  if (spec.oom_score_adj < -1000 || spec.oom_score_adj > 1000) {
    return absl::InvalidArgumentError(absl::StrCat("creating a container: OOM score adjustment ",
                                                   spec.oom_score_adj,
                                                   " is out of range [-1000, 1000]"));
  }
  if (spec.init) {
    if (options_.init_program.empty()) {
      return absl::FailedPreconditionError(
          "creating a container with --init: this node has no init program (swarm-shim is not "
          "installed beside swarmd)");
    }
    spec.mounts.push_back({.type = MountSpec::Type::kBind,
                           .source = options_.init_program,
                           .target = std::string(kInitPath),
                           .read_only = true});
    spec.args.insert(spec.args.begin(), {std::string(kInitPath), "--"});
  }
  bool has_path = false, has_term = false;
  for (const auto& e : spec.env) {
    has_path |= absl::StartsWith(e, "PATH=");
    has_term |= absl::StartsWith(e, "TERM=");
  }
  if (!has_path) {
    spec.env.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  }
  if (spec.tty && !has_term) spec.env.push_back("TERM=xterm");  // as Docker
  std::string id = NewId(SecureRandom::Get());
  if (spec.hostname.empty()) spec.hostname = id.substr(0, 12);
  if (spec.etc_hosts) {
    ASSIGN_OR_RETURN(std::string hosts, EtcHosts(spec));
    spec.files.push_back(
        {.target = "/etc/hosts", .data = std::move(hosts), .mode = 0644, .read_only = false});
  }

  // Step 2: the container's directory and what it records.
  std::string dir = ContainerDir(id);
  std::string data = DataDir(id);
  // The rootfs and the secrets' tmpfs are mounted only inside the container's own mount
  // namespace, on directories shared by all containers: a mount point in the container's
  // directory would make removing it wait for the kernel to tear that namespace down
  // (an RCU grace period, milliseconds on a busy machine).
  ContainerPaths paths{dir,
                       data + "/upper",
                       data + "/work",
                       options_.root + "/mnt/rootfs",
                       dir + "/exec.fifo",
                       options_.root + "/mnt/secrets"};
  if (!spec.name.empty()) RETURN_IF_ERROR(ClaimName(spec.name, id));
  auto cleanup_dir = [&](absl::Status s) {
    (void)RemoveAll(dir);
    (void)RemoveAll(data);
    if (!spec.name.empty()) ReleaseName(spec.name, id);
    return s;
  };
  std::vector<std::string> dirs = {paths.dir, data, paths.upper, paths.work};
  if (data == dir) dirs.erase(dirs.begin() + 1);  // one directory when run_root is root
  for (const auto& d : dirs) {
    // The upper directory's root is the container's "/": other users must traverse it.
    if (mkdir(d.c_str(), d == paths.upper ? 0755 : 0700) != 0) {
      return cleanup_dir(ErrnoToStatus(errno, absl::StrCat("creating ", d)));
    }
  }
  chmod(paths.upper.c_str(), 0755);  // mkdir honours the umask
  if (spec.user_namespace) {
    // The container's root is an unprivileged user on the host: it must own what the
    // overlay writes to and reach the start fifo.
    for (const auto& d : dirs) {
      if (chown(d.c_str(), spec.userns_host_id, spec.userns_host_id) != 0) {
        return cleanup_dir(
            ErrnoToStatus(errno, absl::StrCat("giving ", d, " to the container's root")));
      }
    }
  }
  if (mkfifo(paths.exec_fifo.c_str(), 0600) != 0 ||
      (spec.user_namespace &&
       chown(paths.exec_fifo.c_str(), spec.userns_host_id, spec.userns_host_id) != 0)) {
    return cleanup_dir(ErrnoToStatus(errno, "creating the exec fifo"));
  }
  nlohmann::json config;
  config["name"] = spec.name;
  config["image"] = spec.image;
  config["args"] = spec.args;
  config["env"] = spec.env;
  config["lower_dirs"] = spec.lower_dirs;
  config["stop_signal"] = spec.stop_signal;
  config["stop_grace_ms"] = spec.stop_grace_ms;
  config["cgroup_parent"] = options_.cgroup_parent;
  config["created_at_ns"] = absl::ToUnixNanos(absl::Now());
  nlohmann::json hc;
  hc["test"] = spec.healthcheck.test;
  hc["interval_ms"] = spec.healthcheck.interval_ms;
  hc["timeout_ms"] = spec.healthcheck.timeout_ms;
  hc["start_period_ms"] = spec.healthcheck.start_period_ms;
  hc["retries"] = spec.healthcheck.retries;
  config["healthcheck"] = hc;
  if (absl::Status s = WriteJson(dir + "/config.json", config); !s.ok()) return cleanup_dir(s);

  // Step 3: mount sources (volumes are created on first use).
  CreateRequest request;
  request.spec = &spec;
  request.paths = paths;
  for (const MountSpec& m : spec.mounts) {
    if (m.target.empty() || m.target[0] != '/') {
      return cleanup_dir(absl::InvalidArgumentError(
          absl::StrCat("mount target \"", m.target, "\" is not an absolute path")));
    }
    std::string source = m.source;
    if (m.type == MountSpec::Type::kVolume) {
      if (m.source.empty() || m.source.find('/') != std::string::npos || m.source[0] == '.') {
        return cleanup_dir(absl::InvalidArgumentError(
            absl::StrCat("volume name \"", m.source, "\" is not valid")));
      }
      source = VolumePath(m.source);
      if (absl::Status s = MkdirAll(source); !s.ok()) return cleanup_dir(s);
    }
    request.mount_sources.push_back(source);
  }

  // Step 4: the seccomp program, compiled once per capability set.
  if (!spec.seccomp_unconfined) {
    absl::StatusOr<const std::string*> program = SeccompProgram(EffectiveCapabilities(spec));
    if (!program.ok()) return cleanup_dir(program.status());
    request.seccomp_program = *program;
  }

  // Step 5: the cgroup, then the shim, which creates the container inside it.
  absl::StatusOr<Cgroup> cgroup = Cgroup::Create(options_.cgroup_parent, id, spec.resources);
  if (!cgroup.ok()) return cleanup_dir(cgroup.status());
  request.cgroup = &*cgroup;
  absl::StatusOr<ShimProcess> shim =
      LaunchShim(request, *cgroup, dir, LogPath(id), spec.log_max_size_bytes, spec.log_max_files,
                 options_.shim_launcher);
  if (!shim.ok()) {
    (void)cgroup->Destroy();
    return cleanup_dir(shim.status());
  }

  // Step 6: what a restarted daemon needs to find the processes again.
  nlohmann::json state;
  state["pid"] = shim->container_pid;
  state["pid_start"] = ProcessStartTime(shim->container_pid);
  state["shim_pid"] = shim->shim_pid;
  state["shim_start"] = ProcessStartTime(shim->shim_pid);
  if (absl::Status s = WriteJson(dir + "/state.json", state); !s.ok()) {
    kill(shim->container_pid, SIGKILL);
    waitpid(shim->shim_pid, nullptr, 0);
    (void)cgroup->Destroy();
    return cleanup_dir(s);
  }
  return id;
}

absl::Status Runtime::Start(const std::string& id) {
  std::string dir = ContainerDir(id);
  if (!Exists(dir + "/state.json")) {
    return absl::NotFoundError(absl::StrCat("starting container ", id, ": no such container"));
  }
  if (!Exists(dir + "/exec.fifo")) {
    return absl::FailedPreconditionError(
        absl::StrCat("starting container ", id, ": already started"));
  }
  // The init blocks opening the fifo for writing; our reader lets it through (step 3).
  int fd = open((dir + "/exec.fifo").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("starting container ", id));
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  char c;
  bool released = false;
  while (absl::Now() < deadline) {
    if (PollReadable(fd, absl::Milliseconds(100)) && read(fd, &c, 1) == 1) {
      released = true;
      break;
    }
    if (Exists(dir + "/exit.json")) break;
  }
  close(fd);
  if (!released) {
    return absl::FailedPreconditionError(
        absl::StrCat("starting container ", id, ": its init is gone (see its exit record)"));
  }
  // The fifo's absence is what marks the container as started.
  unlink((dir + "/exec.fifo").c_str());
  return absl::OkStatus();
}

int Runtime::OpenVerifiedPidfd(pid_t pid, uint64_t start_time) {
  if (pid <= 0) return -1;
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return -1;
  // Checked after opening: if the pid was reused before pidfd_open, the start time differs.
  if (ProcessStartTime(pid) != start_time) {
    close(fd);
    return -1;
  }
  return fd;
}

absl::StatusOr<ExitRecord> Runtime::Wait(const std::string& id, absl::Duration timeout,
                                         int wake_fd) {
  std::string dir = ContainerDir(id);
  ASSIGN_OR_RETURN(nlohmann::json state, ReadJson(dir + "/state.json"));
  pid_t shim = state.value("shim_pid", -1);
  int fd = OpenVerifiedPidfd(shim, state.value("shim_start", uint64_t{0}));
  if (fd >= 0) {
    bool done = PollReadable(fd, timeout, wake_fd);
    close(fd);
    if (!done) {
      return absl::DeadlineExceededError(
          absl::StrCat("waiting for container ", id, ": still running"));
    }
    // Our own child when this process launched it; a restarted daemon's shims belong to init.
    waitpid(shim, nullptr, WNOHANG);
  }
  if (!Exists(dir + "/exit.json")) {
    return absl::DataLossError(
        absl::StrCat("waiting for container ", id, ": its shim is gone without an exit record"));
  }
  return ReadExitRecord(dir + "/exit.json");
}

absl::Status Runtime::Kill(const std::string& id, int signal) {
  std::string dir = ContainerDir(id);
  ASSIGN_OR_RETURN(nlohmann::json state, ReadJson(dir + "/state.json"));
  if (Exists(dir + "/exit.json")) {
    return absl::FailedPreconditionError(absl::StrCat("killing container ", id, ": not running"));
  }
  int fd = OpenVerifiedPidfd(state.value("pid", -1), state.value("pid_start", uint64_t{0}));
  if (fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat("killing container ", id, ": not running"));
  }
  int rc = static_cast<int>(syscall(SYS_pidfd_send_signal, fd, signal, nullptr, 0));
  int err = errno;
  close(fd);
  if (rc != 0) return ErrnoToStatus(err, absl::StrCat("killing container ", id));
  return absl::OkStatus();
}

absl::StatusOr<ExitRecord> Runtime::Stop(const std::string& id, absl::Duration grace) {
  std::string dir = ContainerDir(id);
  ASSIGN_OR_RETURN(nlohmann::json config, ReadJson(dir + "/config.json"));
  if (grace < absl::ZeroDuration()) {
    grace = absl::Milliseconds(config.value("stop_grace_ms", int64_t{10000}));
  }
  if (Exists(dir + "/exit.json")) return Wait(id);
  // A created container that was never started just dies.
  bool started = !Exists(dir + "/exec.fifo");
  absl::Status s = Kill(id, started ? config.value("stop_signal", SIGTERM) : SIGKILL);
  if (!s.ok() && !Exists(dir + "/exit.json")) return s;
  absl::StatusOr<ExitRecord> r = Wait(id, grace);
  if (r.ok() || !absl::IsDeadlineExceeded(r.status())) return r;
  s = Kill(id, SIGKILL);
  if (!s.ok() && !Exists(dir + "/exit.json")) return s;
  return Wait(id);
}

absl::Status Runtime::Remove(const std::string& id, bool force) {
  std::string dir = ContainerDir(id);
  if (!Exists(dir)) {
    return absl::NotFoundError(absl::StrCat("removing container ", id, ": no such container"));
  }
  if (Exists(dir + "/state.json") && !Exists(dir + "/exit.json")) {
    ASSIGN_OR_RETURN(nlohmann::json state, ReadJson(dir + "/state.json"));
    bool alive =
        kill(state.value("shim_pid", -1), 0) == 0 &&
        ProcessStartTime(state.value("shim_pid", -1)) == state.value("shim_start", uint64_t{0});
    if (alive) {
      if (!force && !Exists(dir + "/exec.fifo")) {
        return absl::FailedPreconditionError(absl::StrCat(
            "removing container ", id, ": it is running; stop it first or force removal"));
      }
      (void)Kill(id, SIGKILL);
      RETURN_IF_ERROR(Wait(id, absl::Seconds(30)).status());
    }
  }
  std::string parent = options_.cgroup_parent;
  std::string name;
  if (auto config = ReadJson(dir + "/config.json"); config.ok()) {
    parent = config->value("cgroup_parent", parent);
    name = config->value("name", "");
  }
  RETURN_IF_ERROR(Cgroup::Open(parent, id).Destroy());
  if (!name.empty()) ReleaseName(name, id);
  std::string trash = absl::StrCat(options_.root, "/trash/", id);
  if (rename(DataDir(id).c_str(), trash.c_str()) == 0) {
    absl::MutexLock lock(&trash_mu_);
    trash_.push_back(trash);
  } else {
    RETURN_IF_ERROR(RemoveAll(DataDir(id)));
  }
  return DataDir(id) == dir ? absl::OkStatus() : RemoveAll(dir);
}

absl::StatusOr<ContainerInfo> Runtime::Inspect(const std::string& id) const {
  std::string dir = ContainerDir(id);
  ASSIGN_OR_RETURN(nlohmann::json config, ReadJson(dir + "/config.json"));
  ContainerInfo info;
  info.id = id;
  info.name = config.value("name", "");
  info.image = config.value("image", "");
  info.args = config.value("args", std::vector<std::string>{});
  info.created_at = absl::FromUnixNanos(config.value("created_at_ns", int64_t{0}));
  auto state = ReadJson(dir + "/state.json");
  if (state.ok()) {
    info.pid = state->value("pid", -1);
    info.shim_pid = state->value("shim_pid", -1);
  }
  if (Exists(dir + "/exit.json")) {
    ASSIGN_OR_RETURN(ExitRecord exit, ReadExitRecord(dir + "/exit.json"));
    info.exit = exit;
    info.status = ContainerStatus::kExited;
  } else if (state.ok() && kill(info.shim_pid, 0) == 0 &&
             ProcessStartTime(info.shim_pid) == state->value("shim_start", uint64_t{0})) {
    info.status =
        !Exists(dir + "/exec.fifo") ? ContainerStatus::kRunning : ContainerStatus::kCreated;
  } else {
    info.status = ContainerStatus::kDead;
  }
  return info;
}

absl::StatusOr<std::vector<ContainerInfo>> Runtime::List() const {
  std::vector<ContainerInfo> out;
  std::string dir = options_.run_root + "/containers";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return ErrnoToStatus(errno, absl::StrCat("listing ", dir));
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    auto info = Inspect(e->d_name);
    if (info.ok()) out.push_back(*std::move(info));
  }
  closedir(d);
  std::sort(out.begin(), out.end(), [](const ContainerInfo& a, const ContainerInfo& b) {
    return a.created_at > b.created_at;
  });
  return out;
}

absl::StatusOr<std::string> Runtime::Resolve(const std::string& id_or_name) const {
  if (id_or_name.empty() || id_or_name.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", id_or_name, "\" is not a container id or name"));
  }
  if (Exists(ContainerDir(id_or_name) + "/config.json")) return id_or_name;
  if (std::optional<std::string> id = NameOwner(id_or_name)) return *id;
  std::vector<std::string> matches;
  const std::string dir = options_.run_root + "/containers";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return ErrnoToStatus(errno, absl::StrCat("listing ", dir));
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.' && absl::StartsWith(e->d_name, id_or_name)) {
      matches.push_back(e->d_name);
    }
  }
  closedir(d);
  if (matches.size() == 1) return matches[0];
  if (matches.empty()) {
    return absl::NotFoundError(absl::StrCat("no such container: ", id_or_name));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("\"", id_or_name, "\" matches several containers; give more of the id"));
}

absl::StatusOr<std::vector<std::string>> Runtime::LowerDirs(const std::string& id) const {
  ASSIGN_OR_RETURN(nlohmann::json config, ReadJson(ContainerDir(id) + "/config.json"));
  return config.value("lower_dirs", std::vector<std::string>{});
}

absl::StatusOr<HealthState> Runtime::Health(const std::string& id) const {
  return ReadHealth(ContainerDir(id));
}

absl::StatusOr<CgroupStats> Runtime::Stats(const std::string& id) const {
  ASSIGN_OR_RETURN(nlohmann::json config, ReadJson(ContainerDir(id) + "/config.json"));
  return Cgroup::Open(config.value("cgroup_parent", options_.cgroup_parent), id).ReadStats();
}

}  // namespace swarm::agent::runtime

#include "agent/container_executor.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/network_modes.h"
#include "common/proto_time.h"
#include "common/status_macros.h"
#include "common/task_template.h"

namespace swarm::agent {
namespace {

namespace rt = runtime;

absl::StatusOr<int> ParseUlimit(const std::string& name) {
  static const std::map<std::string, int> kNames = {
      {"core", RLIMIT_CORE},         {"cpu", RLIMIT_CPU},
      {"data", RLIMIT_DATA},         {"fsize", RLIMIT_FSIZE},
      {"locks", RLIMIT_LOCKS},       {"memlock", RLIMIT_MEMLOCK},
      {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},
      {"nofile", RLIMIT_NOFILE},     {"nproc", RLIMIT_NPROC},
      {"rss", RLIMIT_RSS},           {"rtprio", RLIMIT_RTPRIO},
      {"rttime", RLIMIT_RTTIME},     {"sigpending", RLIMIT_SIGPENDING},
      {"stack", RLIMIT_STACK},       {"as", RLIMIT_AS}};
  auto it = kNames.find(absl::AsciiStrToLower(name));
  if (it == kNames.end()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown ulimit \"", name, "\""));
  }
  return it->second;
}

absl::StatusOr<rt::FileSpec> FileOf(const api::FileTarget& target, const std::string& default_name,
                                    const std::string& dir, const std::string& data) {
  rt::FileSpec f;
  const std::string name = target.name().empty() ? default_name : target.name();
  f.target = absl::StartsWith(name, "/") ? name : absl::StrCat(dir, "/", name);
  f.data = data;
  f.mode = target.mode() == 0 ? 0444 : target.mode();
  uint32_t id = 0;
  if (!target.uid().empty() && !absl::SimpleAtoi(target.uid(), &id)) {
    return absl::InvalidArgumentError(absl::StrCat("file ", name, ": bad uid ", target.uid()));
  }
  f.uid = id;
  id = 0;
  if (!target.gid().empty() && !absl::SimpleAtoi(target.gid(), &id)) {
    return absl::InvalidArgumentError(absl::StrCat("file ", name, ": bad gid ", target.gid()));
  }
  f.gid = id;
  return f;
}

// The runtime's container spec for a task.
absl::StatusOr<rt::ContainerSpec> ContainerSpecOf(const api::Task& task, const Dependencies& deps) {
  const api::ContainerSpec& c = task.spec().container();
  rt::ContainerSpec s;
  s.name = task.annotations().name().empty() ? task.id() : task.annotations().name();
  s.image = c.image();
  if (!c.command().empty()) s.entrypoint.emplace(c.command().begin(), c.command().end());
  s.args.assign(c.args().begin(), c.args().end());
  s.env.assign(c.env().begin(), c.env().end());
  s.init = c.init();
  s.tty = c.tty();
  if (!c.dir().empty()) s.working_dir = c.dir();
  s.user = c.user();
  s.groups.assign(c.groups().begin(), c.groups().end());
  s.hostname = c.hostname();
  s.read_only_rootfs = c.read_only();
  s.cap_add.assign(c.capability_add().begin(), c.capability_add().end());
  s.cap_drop.assign(c.capability_drop().begin(), c.capability_drop().end());
  s.no_new_privileges = true;
  s.seccomp_unconfined = c.privileges().seccomp().mode() == api::SECCOMP_MODE_UNCONFINED;
  for (const api::NetworkAttachmentConfig& n : task.spec().networks()) {
    if (n.target() == kHostNetwork) s.network = rt::NetworkMode::kHost;
  }
  // /etc/hosts: the hostname at the task's address on its first network other than ingress
  // (as Docker), and --host's entries.
  rt::EtcHostsSpec& hosts = s.etc_hosts.emplace();
  hosts.entries.assign(c.hosts().begin(), c.hosts().end());
  for (const api::NetworkAttachment& a : task.networks()) {
    if (a.network().spec().ingress() || a.addresses().empty()) continue;
    hosts.address = a.addresses(0).substr(0, a.addresses(0).find('/'));
    break;
  }
  for (const api::Mount& m : c.mounts()) {
    rt::MountSpec ms;
    switch (m.type()) {
      case api::MOUNT_TYPE_BIND:
        ms.type = rt::MountSpec::Type::kBind;
        break;
      case api::MOUNT_TYPE_VOLUME:
        ms.type = rt::MountSpec::Type::kVolume;
        break;
      case api::MOUNT_TYPE_TMPFS:
        ms.type = rt::MountSpec::Type::kTmpfs;
        ms.tmpfs_size_bytes = m.tmpfs_options().size_bytes();
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat("mount ", m.target(), ": unknown type"));
    }
    ms.source = m.source();
    ms.target = m.target();
    ms.read_only = m.readonly();
    s.mounts.push_back(std::move(ms));
  }
  for (const api::SecretReference& r : c.secrets()) {
    const std::optional<api::Secret> secret =
        deps.secret ? deps.secret(r.secret_id()) : std::nullopt;
    if (!secret) {
      return absl::NotFoundError(absl::StrCat("secret ", r.secret_name(), " (", r.secret_id(),
                                              ") was not sent with the task"));
    }
    ASSIGN_OR_RETURN(rt::FileSpec f,
                     FileOf(r.file(), r.secret_name(), "/run/secrets", secret->spec().data()));
    s.files.push_back(std::move(f));
  }
  for (const api::ConfigReference& r : c.configs()) {
    const std::optional<api::Config> config =
        deps.config ? deps.config(r.config_id()) : std::nullopt;
    if (!config) {
      return absl::NotFoundError(absl::StrCat("config ", r.config_name(), " (", r.config_id(),
                                              ") was not sent with the task"));
    }
    ASSIGN_OR_RETURN(rt::FileSpec f, FileOf(r.file(), r.config_name(), "", config->spec().data()));
    s.files.push_back(std::move(f));
  }
  for (const api::Ulimit& u : c.ulimits()) {
    ASSIGN_OR_RETURN(int resource, ParseUlimit(u.name()));
    s.rlimits.push_back(
        {resource, static_cast<uint64_t>(u.soft()), static_cast<uint64_t>(u.hard())});
  }
  // Sorted, so that a container made again from the same task gets them in the same order.
  s.sysctls.assign(c.sysctls().begin(), c.sysctls().end());
  std::sort(s.sysctls.begin(), s.sysctls.end());
  s.oom_score_adj = static_cast<int>(c.oom_score_adj());
  const api::Resources& limits = task.spec().resources().limits();
  s.resources.nano_cpus = limits.nano_cpus();
  s.resources.memory_bytes = limits.memory_bytes();
  s.resources.pids_limit = limits.pids();
  if (!c.stop_signal().empty()) {
    ASSIGN_OR_RETURN(s.stop_signal, ParseSignal(c.stop_signal()));
  }
  if (c.has_stop_grace_period()) {
    s.stop_grace_ms = absl::ToInt64Milliseconds(FromProtoDuration(c.stop_grace_period()));
  }
  const api::HealthConfig& h = c.healthcheck();
  if (!h.test().empty() && h.test(0) != "NONE") {
    // Docker's forms: ["CMD", argv...] or ["CMD-SHELL", "command"].
    if (h.test(0) == "CMD") {
      s.healthcheck.test.assign(h.test().begin() + 1, h.test().end());
    } else if (h.test(0) == "CMD-SHELL" && h.test_size() == 2) {
      s.healthcheck.test = {"/bin/sh", "-c", h.test(1)};
    } else {
      return absl::InvalidArgumentError(
          "health check test must be [\"CMD\", args...] or [\"CMD-SHELL\", command]");
    }
    auto ms = [](const google::protobuf::Duration& d, int64_t dflt) {
      const int64_t v = absl::ToInt64Milliseconds(FromProtoDuration(d));
      return v > 0 ? v : dflt;
    };
    s.healthcheck.interval_ms = ms(h.interval(), 30000);
    s.healthcheck.timeout_ms = ms(h.timeout(), 30000);
    s.healthcheck.start_period_ms = ms(h.start_period(), 0);
    s.healthcheck.retries = h.retries() > 0 ? h.retries() : 3;
  }
  return s;
}

class ContainerController final : public Controller {
 public:
  ContainerController(ContainerExecutor* executor, api::Task task, Dependencies deps)
      : executor_(executor),
        options_(executor->options()),
        task_(std::move(task)),
        deps_(std::move(deps)) {
    name_ = task_.annotations().name().empty() ? task_.id() : task_.annotations().name();
  }

  absl::Status Prepare() override {
    if (!task_.spec().has_container()) {
      return absl::InvalidArgumentError("the task has no container spec");
    }
    RETURN_IF_ERROR(AttachNetworks());
    if (Find().ok()) return absl::OkStatus();  // made by an earlier attempt or agent
    // Task templates (--env, --hostname, --mount) take what only this node knows; a bad one
    // is INVALID_ARGUMENT, which rejects the task with the template's error.
    api::Task task = task_;
    RETURN_IF_ERROR(ExpandContainerTemplates(task, executor_->Describe(),
                                             task.mutable_spec()->mutable_container()));
    ASSIGN_OR_RETURN(rt::ContainerSpec spec, ContainerSpecOf(task, deps_));
    if (network_) {
      spec.network = rt::NetworkMode::kPath;
      spec.netns_path = network_->netns_path;
      spec.files.push_back({.target = "/etc/resolv.conf",
                            .data = network_->resolv_conf,
                            .mode = 0644,
                            .read_only = false});
    }
    RETURN_IF_ERROR(
        executor_->EnsureImage(spec.image, task.spec().container().pull_options().registry_auth()));
    ASSIGN_OR_RETURN(id_, options_.runtime->Create(std::move(spec)));
    return absl::OkStatus();
  }

  absl::Status Start() override {
    RETURN_IF_ERROR(Find());
    return options_.runtime->Start(id_);
  }

  absl::StatusOr<bool> Started() override {
    if (!Find().ok()) return false;
    ASSIGN_OR_RETURN(rt::ContainerInfo info, options_.runtime->Inspect(id_));
    return info.status != rt::ContainerStatus::kCreated;
  }

  // A container adopted from an earlier agent: its namespace is attached again (the overlays
  // went with that agent's process).
  absl::Status Resume() override {
    if (!Find().ok()) return absl::OkStatus();
    absl::StatusOr<rt::ContainerInfo> info = options_.runtime->Inspect(id_);
    if (!info.ok() || (info->status != rt::ContainerStatus::kRunning &&
                       info->status != rt::ContainerStatus::kCreated)) {
      return absl::OkStatus();  // nothing runs in it any more
    }
    return AttachNetworks();
  }

  absl::StatusOr<std::optional<ExitStatus>> Wait(absl::Duration timeout, int wake_fd) override {
    RETURN_IF_ERROR(Find());
    absl::StatusOr<rt::ExitRecord> r = options_.runtime->Wait(id_, timeout, wake_fd);
    if (r.status().code() == absl::StatusCode::kDeadlineExceeded) return std::nullopt;
    if (!r.ok()) return r.status();
    DetachNetworks();  // its address goes back to the managers once the exit is reported
    ExitStatus e;
    e.exit_code = r->exit_code;
    e.signal = r->signal;
    e.oom_killed = r->reason == rt::ExitRecord::Reason::kOomKilled;
    e.error = r->error;
    return e;
  }

  Health CheckHealth() override {
    if (!Find().ok()) return Health::kNone;
    absl::StatusOr<rt::HealthState> h = options_.runtime->Health(id_);
    if (!h.ok()) return Health::kNone;
    switch (h->status) {
      case rt::HealthStatus::kStarting:
        return Health::kStarting;
      case rt::HealthStatus::kHealthy:
        return Health::kHealthy;
      case rt::HealthStatus::kUnhealthy:
        return Health::kUnhealthy;
      default:
        return Health::kNone;
    }
  }

  absl::Status Shutdown() override {
    if (!Find().ok()) return absl::OkStatus();
    absl::StatusOr<rt::ContainerInfo> info = options_.runtime->Inspect(id_);
    if (info.ok() && info->status != rt::ContainerStatus::kRunning) return absl::OkStatus();
    return options_.runtime->Stop(id_).status();
  }

  absl::Status Terminate() override {
    if (!Find().ok()) return absl::OkStatus();
    return options_.runtime->Kill(id_, SIGKILL);
  }

  absl::Status Remove() override {
    if (Find().ok()) {
      RETURN_IF_ERROR(options_.runtime->Remove(id_, /*force=*/true));
      id_.clear();
    }
    DetachNetworks();
    return absl::OkStatus();
  }

 private:
  absl::Status AttachNetworks() {
    if (attached_) return absl::OkStatus();
    if (options_.networks == nullptr) {
      if (task_.networks().empty()) return absl::OkStatus();
      return absl::FailedPreconditionError(
          "the task is on overlay networks but this node's networking did not start (see its "
          "log)");
    }
    ASSIGN_OR_RETURN(network_, options_.networks->Attach(task_));
    attached_ = true;
    return absl::OkStatus();
  }

  void DetachNetworks() {
    if (options_.networks == nullptr) return;
    if (absl::Status s = options_.networks->Detach(task_.id()); !s.ok()) {
      log::Warn("executor", "disconnecting a task from its networks failed",
                {{"task", task_.id()}, {"error", s}});
    }
    attached_ = false;
  }

  absl::Status Find() {
    if (!id_.empty()) return absl::OkStatus();
    ASSIGN_OR_RETURN(id_, options_.runtime->Resolve(name_));
    return absl::OkStatus();
  }

  ContainerExecutor* const executor_;
  const ContainerExecutor::Options& options_;
  const api::Task task_;
  const Dependencies deps_;
  std::string name_;
  std::string id_;
  // What the node's networks gave the task (nullopt: on no overlay network).
  std::optional<NetworkManager::TaskNetwork> network_;
  bool attached_ = false;
};

}  // namespace

absl::StatusOr<int> ParseSignal(const std::string& name) {
  int n = 0;
  if (absl::SimpleAtoi(name, &n)) {
    if (n > 0 && n < NSIG) return n;
  } else {
    std::string upper = absl::AsciiStrToUpper(name);
    if (!absl::StartsWith(upper, "SIG")) upper = "SIG" + upper;
    static const std::map<std::string, int> kNames = {
        {"SIGHUP", SIGHUP},   {"SIGINT", SIGINT},   {"SIGQUIT", SIGQUIT}, {"SIGKILL", SIGKILL},
        {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {"SIGTERM", SIGTERM}, {"SIGWINCH", SIGWINCH},
        {"SIGSTOP", SIGSTOP}, {"SIGPWR", SIGPWR}};
    auto it = kNames.find(upper);
    if (it != kNames.end()) return it->second;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("invalid stop signal \"", name, "\": use a name like SIGTERM or a number"));
}

api::NodeDescription ContainerExecutor::Describe() {
  api::NodeDescription d;
  std::string hostname = options_.hostname;
  if (hostname.empty()) {
    char buf[256] = {};
    if (gethostname(buf, sizeof(buf) - 1) == 0) hostname = buf;
  }
  d.set_hostname(hostname);
  utsname u{};
  if (uname(&u) == 0) d.mutable_platform()->set_architecture(u.machine);
  d.mutable_platform()->set_os("linux");
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  d.mutable_resources()->set_nano_cpus(static_cast<int64_t>(cpus > 0 ? cpus : 1) * 1'000'000'000);
  struct sysinfo si {};
  if (sysinfo(&si) == 0) {
    d.mutable_resources()->set_memory_bytes(static_cast<int64_t>(si.totalram) * si.mem_unit);
  }
  d.mutable_engine()->set_engine_version("swarmd");
  d.mutable_engine()->mutable_labels()->insert(options_.labels.begin(), options_.labels.end());
  return d;
}

std::unique_ptr<Controller> ContainerExecutor::NewController(const api::Task& task,
                                                             const Dependencies& deps) {
  return std::make_unique<ContainerController>(this, task, deps);
}

absl::Status ContainerExecutor::EnsureImage(const std::string& ref,
                                            const std::string& registry_auth) {
  absl::Mutex* image_mu;
  {
    absl::MutexLock lock(&pulls_mu_);
    auto& slot = pulls_[ref];
    if (slot == nullptr) slot = std::make_unique<absl::Mutex>();
    image_mu = slot.get();
  }
  absl::MutexLock lock(image_mu);
  if (options_.images->Get(ref).ok()) return absl::OkStatus();
  ASSIGN_OR_RETURN(rt::RegistryOptions registry_options,
                   rt::WithServiceCredentials(options_.registry, ref, registry_auth));
  rt::RegistryClient registry(*options_.images, std::move(registry_options));
  if (absl::StatusOr<std::string> pulled = registry.Pull(ref); !pulled.ok()) {
    return absl::NotFoundError(
        absl::StrCat("image ", ref,
                     " is not on this node and could not be pulled: ", pulled.status().message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ContainerExecutor::LogPath(const api::Task& task) {
  const std::string name =
      task.annotations().name().empty() ? task.id() : task.annotations().name();
  ASSIGN_OR_RETURN(std::string id, options_.runtime->Resolve(name));
  return options_.runtime->LogPath(id);
}

}  // namespace swarm::agent

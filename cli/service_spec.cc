#include "cli/service_spec.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/runtime/reference.h"
#include "common/registry_auth.h"
#include "common/status_macros.h"
#include "google/protobuf/duration.pb.h"

namespace swarm::cli {
namespace {

absl::Status SetDurationFlag(const char* what, const std::optional<std::string>& text,
                             google::protobuf::Duration* out) {
  if (!text) return absl::OkStatus();
  ASSIGN_OR_RETURN(absl::Duration d, ParseDuration(what, *text));
  SetProtoDuration(d, out);
  return absl::OkStatus();
}

template <typename T>
bool Contains(const T& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// Removes the elements of a repeated string field that match `remove`.
template <typename Pred>
void RemoveIf(google::protobuf::RepeatedPtrField<std::string>* field, Pred remove) {
  google::protobuf::RepeatedPtrField<std::string> kept;
  for (const std::string& v : *field) {
    if (!remove(v)) *kept.Add() = v;
  }
  field->Swap(&kept);
}

template <typename M, typename Pred>
void RemoveMessagesIf(google::protobuf::RepeatedPtrField<M>* field, Pred remove) {
  google::protobuf::RepeatedPtrField<M> kept;
  for (const M& v : *field) {
    if (!remove(v)) *kept.Add() = v;
  }
  field->Swap(&kept);
}

// A list of plain strings: removes the *_rm values, then appends new ones not yet present.
void UpdateStringList(const std::vector<std::string>& add, const std::vector<std::string>& rm,
                      google::protobuf::RepeatedPtrField<std::string>* field) {
  RemoveIf(field, [&](const std::string& v) { return Contains(rm, v); });
  for (const std::string& v : add) {
    if (!Contains(*field, v)) *field->Add() = v;
  }
}

absl::Status UpdateLabels(const char* what, const std::vector<std::string>& add,
                          const std::vector<std::string>& rm,
                          google::protobuf::Map<std::string, std::string>* labels) {
  for (const std::string& key : rm) labels->erase(key);
  for (const std::string& label : add) {
    ASSIGN_OR_RETURN(auto kv, ParseLabel(what, label));
    (*labels)[kv.first] = kv.second;
  }
  return absl::OkStatus();
}

// The mode and replica flags. On create, mode is the --mode flag (default replicated); on
// update the mode cannot change and --replicas adjusts the current one.
absl::Status ApplyMode(const ServiceFlags& f, bool create, api::ServiceSpec* spec) {
  std::optional<uint64_t> replicas, max_concurrent;
  if (f.replicas) {
    ASSIGN_OR_RETURN(replicas, ParseUint("replicas", *f.replicas));
  }
  if (f.max_concurrent) {
    ASSIGN_OR_RETURN(max_concurrent, ParseUint("max-concurrent", *f.max_concurrent));
  }
  if (create) {
    const std::string mode = f.mode.value_or("replicated");
    if (mode == "replicated") {
      spec->mutable_replicated()->set_replicas(replicas.value_or(1));
    } else if (mode == "global") {
      spec->mutable_global();
    } else if (mode == "replicated-job") {
      spec->mutable_replicated_job()->set_total_completions(replicas.value_or(1));
      spec->mutable_replicated_job()->set_max_concurrent(max_concurrent.value_or(0));
    } else if (mode == "global-job") {
      spec->mutable_global_job();
    } else {
      return InvalidFlag("mode", mode, "unknown mode",
                         "replicated, global, replicated-job or global-job");
    }
  }
  if (replicas) {
    if (spec->has_replicated()) {
      spec->mutable_replicated()->set_replicas(*replicas);
    } else if (spec->has_replicated_job()) {
      spec->mutable_replicated_job()->set_total_completions(*replicas);
    } else {
      return absl::InvalidArgumentError(
          "--replicas can only be used with replicated or replicated-job mode");
    }
  }
  if (max_concurrent) {
    if (!spec->has_replicated_job()) {
      return absl::InvalidArgumentError(
          "--max-concurrent can only be used with replicated-job mode");
    }
    spec->mutable_replicated_job()->set_max_concurrent(*max_concurrent);
  }
  return absl::OkStatus();
}

// The flags of one --update-* or --rollback-* group.
struct UpdateConfigFlags {
  const char* prefix;
  const std::optional<std::string>& parallelism;
  const std::optional<std::string>& delay;
  const std::optional<std::string>& failure_action;
  const std::optional<std::string>& monitor;
  const std::optional<std::string>& max_failure_ratio;
  const std::optional<std::string>& order;
  bool rollback;
};

absl::Status ApplyUpdateConfig(const UpdateConfigFlags& f, api::ServiceSpec* spec,
                               bool (api::ServiceSpec::*has)() const,
                               api::UpdateConfig* (api::ServiceSpec::*get)()) {
  if (!f.parallelism && !f.delay && !f.failure_action && !f.monitor && !f.max_failure_ratio &&
      !f.order) {
    return absl::OkStatus();
  }
  const bool present = (spec->*has)();
  api::UpdateConfig* config = (spec->*get)();
  // Unset means the cluster's defaults; a new config starts from Docker's parallelism of 1
  // because 0 in a set config means "all at once".
  if (!present) config->set_parallelism(1);
  const std::string p = f.prefix;
  if (f.parallelism) {
    ASSIGN_OR_RETURN(uint64_t v, ParseUint(p + "-parallelism", *f.parallelism));
    config->set_parallelism(v);
  }
  RETURN_IF_ERROR(SetDurationFlag((p + "-delay").c_str(), f.delay, config->mutable_delay()));
  if (f.failure_action) {
    ASSIGN_OR_RETURN(api::UpdateFailureAction a,
                     ParseFailureAction(p + "-failure-action", *f.failure_action, !f.rollback));
    config->set_failure_action(a);
  }
  RETURN_IF_ERROR(SetDurationFlag((p + "-monitor").c_str(), f.monitor, config->mutable_monitor()));
  if (f.max_failure_ratio) {
    ASSIGN_OR_RETURN(float r, ParseRatio(p + "-max-failure-ratio", *f.max_failure_ratio));
    config->set_max_failure_ratio(r);
  }
  if (f.order) {
    ASSIGN_OR_RETURN(api::UpdateOrder o, ParseUpdateOrder(p + "-order", *f.order));
    config->set_order(o);
  }
  return absl::OkStatus();
}

absl::Status ApplyRestartPolicy(const ServiceFlags& f, api::TaskSpec* task) {
  if (!f.restart_condition && !f.restart_delay && !f.restart_max_attempts && !f.restart_window) {
    return absl::OkStatus();
  }
  const bool present = task->has_restart_policy();
  api::RestartPolicy* policy = task->mutable_restart_policy();
  if (!present) {
    // An unset policy means "any, after 5s"; keep that meaning for the fields not given.
    policy->set_condition(api::RESTART_CONDITION_ANY);
    SetProtoDuration(absl::Seconds(5), policy->mutable_delay());
  }
  if (f.restart_condition) {
    ASSIGN_OR_RETURN(api::RestartCondition c, ParseRestartCondition(*f.restart_condition));
    policy->set_condition(c);
  }
  RETURN_IF_ERROR(SetDurationFlag("restart-delay", f.restart_delay, policy->mutable_delay()));
  if (f.restart_max_attempts) {
    ASSIGN_OR_RETURN(uint64_t n, ParseUint("restart-max-attempts", *f.restart_max_attempts));
    policy->set_max_attempts(n);
  }
  RETURN_IF_ERROR(SetDurationFlag("restart-window", f.restart_window, policy->mutable_window()));
  return absl::OkStatus();
}

absl::Status ApplyResources(const ServiceFlags& f, api::TaskSpec* task) {
  if (f.limit_cpu) {
    ASSIGN_OR_RETURN(int64_t v, ParseNanoCpus("limit-cpu", *f.limit_cpu));
    task->mutable_resources()->mutable_limits()->set_nano_cpus(v);
  }
  if (f.limit_memory) {
    ASSIGN_OR_RETURN(int64_t v, ParseBytes("limit-memory", *f.limit_memory));
    task->mutable_resources()->mutable_limits()->set_memory_bytes(v);
  }
  if (f.limit_pids) {
    ASSIGN_OR_RETURN(uint64_t v, ParseUint("limit-pids", *f.limit_pids));
    task->mutable_resources()->mutable_limits()->set_pids(static_cast<int64_t>(v));
  }
  if (f.reserve_cpu) {
    ASSIGN_OR_RETURN(int64_t v, ParseNanoCpus("reserve-cpu", *f.reserve_cpu));
    task->mutable_resources()->mutable_reservations()->set_nano_cpus(v);
  }
  if (f.reserve_memory) {
    ASSIGN_OR_RETURN(int64_t v, ParseBytes("reserve-memory", *f.reserve_memory));
    task->mutable_resources()->mutable_reservations()->set_memory_bytes(v);
  }
  return absl::OkStatus();
}

absl::Status ApplyHealthcheck(const ServiceFlags& f, api::ContainerSpec* c) {
  const bool options = f.health_cmd || f.health_interval || f.health_timeout || f.health_retries ||
                       f.health_start_period || f.health_start_interval;
  if (f.no_healthcheck && options) {
    return absl::InvalidArgumentError("--no-healthcheck conflicts with the --health-* options");
  }
  if (f.no_healthcheck) {
    c->mutable_healthcheck()->Clear();
    c->mutable_healthcheck()->add_test("NONE");
    return absl::OkStatus();
  }
  if (!options) return absl::OkStatus();
  api::HealthConfig* h = c->mutable_healthcheck();
  if (h->test_size() > 0 && h->test(0) == "NONE") h->clear_test();
  if (f.health_cmd) {
    h->clear_test();
    if (!f.health_cmd->empty()) {
      h->add_test("CMD-SHELL");
      h->add_test(*f.health_cmd);
    }
  }
  RETURN_IF_ERROR(SetDurationFlag("health-interval", f.health_interval, h->mutable_interval()));
  RETURN_IF_ERROR(SetDurationFlag("health-timeout", f.health_timeout, h->mutable_timeout()));
  RETURN_IF_ERROR(
      SetDurationFlag("health-start-period", f.health_start_period, h->mutable_start_period()));
  RETURN_IF_ERROR(SetDurationFlag("health-start-interval", f.health_start_interval,
                                  h->mutable_start_interval()));
  if (f.health_retries) {
    ASSIGN_OR_RETURN(uint64_t n, ParseUint("health-retries", *f.health_retries));
    if (n > 1'000'000)
      return InvalidFlag("health-retries", *f.health_retries, "it is too large",
                         "a number such as 3");
    h->set_retries(static_cast<int32_t>(n));
  }
  return absl::OkStatus();
}

absl::Status ApplyEnv(const ServiceFlags& f, const ServiceFlagEnv& env, api::ContainerSpec* c) {
  std::vector<std::string> add;
  for (const std::string& path : f.env_files) {
    if (!env.read_file) return absl::InternalError("reading --env-file is not available");
    absl::StatusOr<std::string> contents = env.read_file(path);
    if (!contents.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read --env-file ", path, ": ", contents.status().message()));
    }
    ASSIGN_OR_RETURN(std::vector<std::string> entries, ParseEnvFile(path, *contents, env.getenv));
    add.insert(add.end(), entries.begin(), entries.end());
  }
  for (const std::string& e : f.env) {
    ASSIGN_OR_RETURN(std::string entry, ParseEnv(e, env.getenv));
    add.push_back(std::move(entry));
  }
  RemoveIf(c->mutable_env(), [&](const std::string& v) {
    return Contains(f.env_rm, EnvKey(v)) || Contains(f.env_rm, v);
  });
  for (std::string& entry : add) {
    bool replaced = false;
    for (std::string& existing : *c->mutable_env()) {
      if (EnvKey(existing) == EnvKey(entry)) {
        existing = entry;
        replaced = true;
      }
    }
    if (!replaced) *c->add_env() = std::move(entry);
  }
  return absl::OkStatus();
}

absl::Status ApplyMounts(const ServiceFlags& f, api::ContainerSpec* c) {
  RemoveMessagesIf(c->mutable_mounts(),
                   [&](const api::Mount& m) { return Contains(f.mount_rm, m.target()); });
  std::vector<std::string> added_targets;
  for (const std::string& text : f.mounts) {
    ASSIGN_OR_RETURN(api::Mount mount, ParseMount(text));
    if (Contains(added_targets, mount.target())) {
      return absl::InvalidArgumentError(absl::StrCat("two mounts have the target ", mount.target(),
                                                     "; a target can be used once"));
    }
    added_targets.push_back(mount.target());
    bool replaced = false;
    for (api::Mount& existing : *c->mutable_mounts()) {
      if (existing.target() == mount.target()) {
        existing = mount;
        replaced = true;
      }
    }
    if (!replaced) *c->add_mounts() = std::move(mount);
  }
  return absl::OkStatus();
}

absl::Status ApplyPorts(const ServiceFlags& f, api::ServiceSpec* spec) {
  if (f.publish.empty() && f.publish_rm.empty()) return absl::OkStatus();
  auto* ports = spec->mutable_endpoint_spec()->mutable_ports();
  for (const std::string& text : f.publish_rm) {
    ASSIGN_OR_RETURN(std::vector<api::PortConfig> rm, ParsePublish(text));
    for (const api::PortConfig& r : rm) {
      // As Docker: a port is removed by its target port, protocol and mode.
      RemoveMessagesIf(ports, [&](const api::PortConfig& p) {
        return p.target_port() == r.target_port() && p.protocol() == r.protocol() &&
               p.publish_mode() == r.publish_mode() &&
               (r.published_port() == 0 || r.published_port() == p.published_port());
      });
    }
  }
  for (const std::string& text : f.publish) {
    ASSIGN_OR_RETURN(std::vector<api::PortConfig> add, ParsePublish(text));
    for (api::PortConfig& port : add) {
      bool duplicate = false;
      for (const api::PortConfig& p : *ports) {
        if (p.target_port() == port.target_port() && p.protocol() == port.protocol() &&
            p.publish_mode() == port.publish_mode() &&
            p.published_port() == port.published_port()) {
          duplicate = true;
        } else if (port.published_port() != 0 && p.published_port() == port.published_port() &&
                   p.protocol() == port.protocol()) {
          return absl::InvalidArgumentError(
              absl::StrCat("port ", port.published_port(), " is published twice (for target ports ",
                           p.target_port(), " and ", port.target_port(), ")"));
        }
      }
      if (!duplicate) *ports->Add() = std::move(port);
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyNetworks(const ServiceFlags& f, const ServiceFlagEnv& env, api::TaskSpec* task) {
  auto matches = [&](const api::NetworkAttachmentConfig& a, const std::string& name) {
    if (a.target() == name) return true;
    if (!env.network_id) return false;
    const std::string id = env.network_id(name);
    return !id.empty() && (a.target() == id || env.network_id(a.target()) == id);
  };
  RemoveMessagesIf(task->mutable_networks(), [&](const api::NetworkAttachmentConfig& a) {
    for (const std::string& name : f.network_rm) {
      if (matches(a, name)) return true;
    }
    return false;
  });
  for (const std::string& text : f.networks) {
    ASSIGN_OR_RETURN(api::NetworkAttachmentConfig net, ParseNetworkAttachment(text));
    for (const api::NetworkAttachmentConfig& a : task->networks()) {
      if (matches(a, net.target())) {
        return absl::InvalidArgumentError(
            absl::StrCat("the service is already attached to network ", net.target()));
      }
    }
    *task->add_networks() = std::move(net);
  }
  return absl::OkStatus();
}

absl::Status ApplyPlacement(const ServiceFlags& f, api::TaskSpec* task) {
  if (!f.constraints.empty() || !f.constraint_rm.empty()) {
    UpdateStringList(f.constraints, f.constraint_rm,
                     task->mutable_placement()->mutable_constraints());
  }
  if (!f.placement_prefs.empty() || !f.placement_pref_rm.empty()) {
    auto* prefs = task->mutable_placement()->mutable_preferences();
    for (const std::string& text : f.placement_pref_rm) {
      ASSIGN_OR_RETURN(api::PlacementPreference rm, ParsePlacementPreference(text));
      RemoveMessagesIf(prefs, [&](const api::PlacementPreference& p) {
        return p.spread().spread_descriptor() == rm.spread().spread_descriptor();
      });
    }
    for (const std::string& text : f.placement_prefs) {
      ASSIGN_OR_RETURN(api::PlacementPreference pref, ParsePlacementPreference(text));
      *prefs->Add() = std::move(pref);
    }
  }
  if (f.replicas_max_per_node) {
    ASSIGN_OR_RETURN(uint64_t n, ParseUint("replicas-max-per-node", *f.replicas_max_per_node));
    task->mutable_placement()->set_max_replicas(n);
  }
  return absl::OkStatus();
}

absl::Status ApplySecretsAndConfigs(const ServiceFlags& f, api::ContainerSpec* c) {
  RemoveMessagesIf(c->mutable_secrets(), [&](const api::SecretReference& s) {
    return Contains(f.secret_rm, s.secret_name()) || Contains(f.secret_rm, s.secret_id());
  });
  for (const std::string& text : f.secrets) {
    ASSIGN_OR_RETURN(api::SecretReference ref, ParseSecretReference(text));
    for (const api::SecretReference& s : c->secrets()) {
      if (s.file().name() == ref.file().name()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "secret target ", ref.file().name(), " is used twice (by ", s.secret_name(), " and ",
            ref.secret_name(), "); give one of them another target=..."));
      }
    }
    *c->add_secrets() = std::move(ref);
  }
  RemoveMessagesIf(c->mutable_configs(), [&](const api::ConfigReference& s) {
    return Contains(f.config_rm, s.config_name()) || Contains(f.config_rm, s.config_id());
  });
  for (const std::string& text : f.configs) {
    ASSIGN_OR_RETURN(api::ConfigReference ref, ParseConfigReference(text));
    for (const api::ConfigReference& s : c->configs()) {
      if (s.file().name() == ref.file().name()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "config target ", ref.file().name(), " is used twice (by ", s.config_name(), " and ",
            ref.config_name(), "); give one of them another target=..."));
      }
    }
    *c->add_configs() = std::move(ref);
  }
  return absl::OkStatus();
}

absl::Status ApplyContainerLists(const ServiceFlags& f, api::ContainerSpec* c) {
  if (!f.dns.empty() || !f.dns_rm.empty()) {
    UpdateStringList(f.dns, f.dns_rm, c->mutable_dns_config()->mutable_nameservers());
  }
  if (!f.dns_search.empty() || !f.dns_search_rm.empty()) {
    UpdateStringList(f.dns_search, f.dns_search_rm, c->mutable_dns_config()->mutable_search());
  }
  if (!f.dns_options.empty() || !f.dns_option_rm.empty()) {
    UpdateStringList(f.dns_options, f.dns_option_rm, c->mutable_dns_config()->mutable_options());
  }
  UpdateStringList(f.groups, f.group_rm, c->mutable_groups());

  // Hosts are stored as "IP HOSTNAME"; --host-rm names HOSTNAME or HOSTNAME:IP.
  for (const std::string& rm : f.host_rm) {
    const size_t colon = rm.find(':');
    const std::string host = rm.substr(0, colon);
    const std::string ip = colon == std::string::npos ? "" : rm.substr(colon + 1);
    RemoveIf(c->mutable_hosts(), [&](const std::string& entry) {
      std::vector<std::string> words = absl::StrSplit(entry, ' ', absl::SkipEmpty());
      if (words.size() < 2) return false;
      return Contains(std::vector<std::string>(words.begin() + 1, words.end()), host) &&
             (ip.empty() || words[0] == ip);
    });
  }
  for (const std::string& text : f.hosts) {
    ASSIGN_OR_RETURN(std::string entry, ParseExtraHost(text));
    if (!Contains(c->hosts(), entry)) *c->add_hosts() = entry;
  }

  for (const std::string& cap : f.cap_add) {
    const std::string name = NormalizeCapability(cap);
    RemoveIf(c->mutable_capability_drop(), [&](const std::string& v) { return v == name; });
    if (!Contains(c->capability_add(), name)) *c->add_capability_add() = name;
  }
  for (const std::string& cap : f.cap_drop) {
    const std::string name = NormalizeCapability(cap);
    RemoveIf(c->mutable_capability_add(), [&](const std::string& v) { return v == name; });
    if (!Contains(c->capability_drop(), name)) *c->add_capability_drop() = name;
  }

  RemoveMessagesIf(c->mutable_ulimits(),
                   [&](const api::Ulimit& u) { return Contains(f.ulimit_rm, u.name()); });
  for (const std::string& text : f.ulimits) {
    ASSIGN_OR_RETURN(api::Ulimit limit, ParseUlimit(text));
    RemoveMessagesIf(c->mutable_ulimits(),
                     [&](const api::Ulimit& u) { return u.name() == limit.name(); });
    *c->add_ulimits() = std::move(limit);
  }

  for (const std::string& key : f.sysctl_rm) c->mutable_sysctls()->erase(key);
  for (const std::string& text : f.sysctls) {
    ASSIGN_OR_RETURN(auto kv, ParseKeyValue("sysctl", text));
    (*c->mutable_sysctls())[kv.first] = kv.second;
  }
  return absl::OkStatus();
}

absl::Status ApplyContainerScalars(const ServiceFlags& f, api::ContainerSpec* c) {
  if (f.update_image) {
    if (f.update_image->empty()) return absl::InvalidArgumentError("--image must not be empty");
    c->set_image(*f.update_image);
  }
  if (f.update_args) {
    ASSIGN_OR_RETURN(std::vector<std::string> args, ShellSplit("args", *f.update_args));
    c->clear_args();
    for (std::string& a : args) *c->add_args() = std::move(a);
  }
  if (f.entrypoint) {
    ASSIGN_OR_RETURN(std::vector<std::string> cmd, ShellSplit("entrypoint", *f.entrypoint));
    c->clear_command();
    for (std::string& a : cmd) *c->add_command() = std::move(a);
  }
  if (f.workdir) c->set_dir(*f.workdir);
  if (f.user) c->set_user(*f.user);
  if (f.hostname) c->set_hostname(*f.hostname);
  if (f.stop_signal) c->set_stop_signal(*f.stop_signal);
  RETURN_IF_ERROR(
      SetDurationFlag("stop-grace-period", f.stop_grace_period, c->mutable_stop_grace_period()));
  if (f.tty) c->set_tty(*f.tty);
  if (f.init) c->set_init(*f.init);
  if (f.read_only) c->set_read_only(*f.read_only);
  if (f.oom_score_adj) {
    ASSIGN_OR_RETURN(int64_t v, ParseInt("oom-score-adj", *f.oom_score_adj));
    c->set_oom_score_adj(v);
  }
  return absl::OkStatus();
}

absl::Status ApplyLogDriver(const ServiceFlags& f, api::TaskSpec* task) {
  if (f.log_driver) {
    task->mutable_log_driver()->Clear();
    task->mutable_log_driver()->set_name(*f.log_driver);
  } else if (!f.log_opts.empty() && !task->has_log_driver()) {
    return absl::InvalidArgumentError("--log-opt needs a log driver: add --log-driver NAME");
  }
  for (const std::string& text : f.log_opts) {
    ASSIGN_OR_RETURN(auto kv, ParseKeyValue("log-opt", text));
    (*task->mutable_log_driver()->mutable_options())[kv.first] = kv.second;
  }
  return absl::OkStatus();
}

// Everything create and update share; create has already set the mode, image and args.
// --with-registry-auth: the login for the image's registry from Docker's config.json
// ($DOCKER_CONFIG, or ~/.docker), encoded as Docker sends it.
absl::Status ApplyRegistryAuth(const ServiceFlagEnv& env, api::ContainerSpec* c) {
  ASSIGN_OR_RETURN(agent::runtime::Reference ref, agent::runtime::ParseReference(c->image()));
  const std::string dir = env.getenv("DOCKER_CONFIG")
                              .value_or(absl::StrCat(env.getenv("HOME").value_or(""), "/.docker"));
  const std::string path = dir + "/config.json";
  absl::StatusOr<std::string> config = env.read_file(path);
  std::optional<RegistryAuth> auth;
  if (config.ok()) {
    ASSIGN_OR_RETURN(auth, RegistryAuthFromDockerConfig(*config, path, ref.registry));
  } else if (!absl::IsNotFound(config.status())) {
    return config.status();
  }
  // Without a login, an empty one (as Docker's "{}"): it replaces what an update would keep.
  c->mutable_pull_options()->set_registry_auth(EncodeRegistryAuth(auth.value_or(RegistryAuth{})));
  return absl::OkStatus();
}

absl::Status Apply(const ServiceFlags& f, const ServiceFlagEnv& env, bool create,
                   api::ServiceSpec* spec) {
  if (!create && f.name) {
    return absl::InvalidArgumentError("a service cannot be renamed (--name is for create only)");
  }
  if (f.name) spec->mutable_annotations()->set_name(*f.name);
  RETURN_IF_ERROR(ApplyMode(f, create, spec));
  api::TaskSpec* task = spec->mutable_task_template();
  if (task->has_attachment()) {
    return absl::FailedPreconditionError("the service does not run containers");
  }
  api::ContainerSpec* c = task->mutable_container();
  RETURN_IF_ERROR(
      UpdateLabels("label", f.labels, f.label_rm, spec->mutable_annotations()->mutable_labels()));
  RETURN_IF_ERROR(UpdateLabels("container-label", f.container_labels, f.container_label_rm,
                               c->mutable_labels()));
  RETURN_IF_ERROR(ApplyContainerScalars(f, c));
  RETURN_IF_ERROR(ApplyEnv(f, env, c));
  RETURN_IF_ERROR(ApplyMounts(f, c));
  RETURN_IF_ERROR(ApplySecretsAndConfigs(f, c));
  RETURN_IF_ERROR(ApplyContainerLists(f, c));
  RETURN_IF_ERROR(ApplyHealthcheck(f, c));
  RETURN_IF_ERROR(ApplyResources(f, task));
  RETURN_IF_ERROR(ApplyRestartPolicy(f, task));
  RETURN_IF_ERROR(ApplyPlacement(f, task));
  RETURN_IF_ERROR(ApplyNetworks(f, env, task));
  RETURN_IF_ERROR(ApplyLogDriver(f, task));
  RETURN_IF_ERROR(ApplyPorts(f, spec));
  if (f.endpoint_mode) {
    ASSIGN_OR_RETURN(api::ResolutionMode m, ParseEndpointMode(*f.endpoint_mode));
    spec->mutable_endpoint_spec()->set_mode(m);
  }
  RETURN_IF_ERROR(ApplyUpdateConfig(
      {"update", f.update_parallelism, f.update_delay, f.update_failure_action, f.update_monitor,
       f.update_max_failure_ratio, f.update_order, false},
      spec, &api::ServiceSpec::has_update_config, &api::ServiceSpec::mutable_update_config));
  RETURN_IF_ERROR(ApplyUpdateConfig(
      {"rollback", f.rollback_parallelism, f.rollback_delay, f.rollback_failure_action,
       f.rollback_monitor, f.rollback_max_failure_ratio, f.rollback_order, true},
      spec, &api::ServiceSpec::has_rollback_config, &api::ServiceSpec::mutable_rollback_config));
  if (f.with_registry_auth) RETURN_IF_ERROR(ApplyRegistryAuth(env, c));
  if (f.force) task->set_force_update(task->force_update() + 1);
  return absl::OkStatus();
}

// The object a secret or config reference names: by name, else by ID; null if none.
template <typename T>
const T* FindByNameOrId(const std::vector<T>& objects, const std::string& name) {
  const T* found = nullptr;
  for (const T& o : objects) {
    if (o.spec().annotations().name() == name) found = &o;
  }
  if (found != nullptr) return found;
  for (const T& o : objects) {
    if (o.id() == name) return &o;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<api::ServiceSpec> BuildServiceSpec(const ServiceFlags& flags,
                                                  const ServiceFlagEnv& env) {
  if (flags.image.empty()) {
    return absl::InvalidArgumentError("an image is required: swarmctl service create IMAGE");
  }
  api::ServiceSpec spec;
  api::ContainerSpec* c = spec.mutable_task_template()->mutable_container();
  c->set_image(flags.image);
  for (const std::string& a : flags.args) *c->add_args() = a;
  RETURN_IF_ERROR(Apply(flags, env, /*create=*/true, &spec));
  return spec;
}

absl::Status ApplyServiceUpdate(const ServiceFlags& flags, const ServiceFlagEnv& env,
                                api::ServiceSpec* spec) {
  if (flags.mode) {
    return absl::InvalidArgumentError("the mode of a service cannot change; create a new service");
  }
  if (!flags.env_files.empty()) {
    return absl::InvalidArgumentError("--env-file is for create only; use --env-add");
  }
  return Apply(flags, env, /*create=*/false, spec);
}

absl::Status ResolveReferences(const std::vector<api::Secret>& secrets,
                               const std::vector<api::Config>& configs, api::ServiceSpec* spec) {
  if (!spec->task_template().has_container()) return absl::OkStatus();
  api::ContainerSpec* c = spec->mutable_task_template()->mutable_container();
  for (api::SecretReference& ref : *c->mutable_secrets()) {
    if (!ref.secret_id().empty()) continue;
    const api::Secret* found = FindByNameOrId(secrets, ref.secret_name());
    if (!found) return absl::NotFoundError(absl::StrCat("secret not found: ", ref.secret_name()));
    ref.set_secret_id(found->id());
    ref.set_secret_name(found->spec().annotations().name());
  }
  for (api::ConfigReference& ref : *c->mutable_configs()) {
    if (!ref.config_id().empty()) continue;
    const api::Config* found = FindByNameOrId(configs, ref.config_name());
    if (!found) return absl::NotFoundError(absl::StrCat("config not found: ", ref.config_name()));
    ref.set_config_id(found->id());
    ref.set_config_name(found->spec().annotations().name());
  }
  return absl::OkStatus();
}

}  // namespace swarm::cli

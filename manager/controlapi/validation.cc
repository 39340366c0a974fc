#include "manager/controlapi/validation.h"

#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/ip.h"
#include "common/network_modes.h"
#include "common/registry_auth.h"
#include "common/status_macros.h"
#include "common/sysctl.h"
#include "common/task_template.h"
#include "manager/allocator/ipam.h"
#include "manager/ca/ca.h"
#include "scheduler/constraint.h"

namespace swarm::manager::controlapi {
namespace {

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

bool IsAlnum(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); }

bool IsNegative(const google::protobuf::Duration& d) { return d.seconds() < 0 || d.nanos() < 0; }

std::string Quote(const std::string& s) { return absl::StrCat("\"", s, "\""); }

// A duration field must not be negative when it is set.
absl::Status NonNegative(bool has, const google::protobuf::Duration& d, const std::string& what) {
  if (has && IsNegative(d)) {
    return Invalid(
        absl::StrCat(what, " cannot be negative (got ", absl::FormatDuration(ToDuration(d)), ")"));
  }
  return absl::OkStatus();
}

// ---- names ----

// [a-zA-Z0-9] then chars from `rest`, up to max; when end_alnum, the last is a letter or digit.
bool MatchesName(const std::string& name, size_t max, const char* rest, bool end_alnum) {
  if (name.empty() || name.size() > max || !IsAlnum(name.front())) return false;
  if (end_alnum && !IsAlnum(name.back())) return false;
  for (char c : name) {
    if (!IsAlnum(c) && std::string_view(rest).find(c) == std::string_view::npos) return false;
  }
  return true;
}

// ---- image references (Docker's distribution/reference grammar) ----

// One path component: lower-case letters and digits, separated by '.', '_', "__" or dashes.
bool IsPathComponent(const std::string& c) {
  size_t i = 0;
  auto alnum_run = [&] {
    const size_t start = i;
    while (i < c.size() && (absl::ascii_islower(c[i]) || absl::ascii_isdigit(c[i]))) ++i;
    return i > start;
  };
  if (!alnum_run()) return false;
  while (i < c.size()) {
    const size_t start = i;
    while (i < c.size() && !absl::ascii_isalnum(c[i])) ++i;
    const std::string sep = c.substr(start, i - start);
    const bool dashes = sep.find_first_not_of('-') == std::string::npos;
    if (sep != "." && sep != "_" && sep != "__" && !dashes) return false;
    if (!alnum_run()) return false;
  }
  return true;
}

bool IsDomain(const std::string& d) {
  std::string host = d;
  if (size_t colon = d.rfind(':'); colon != std::string::npos) {
    const std::string port = d.substr(colon + 1);
    if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos) return false;
    host = d.substr(0, colon);
  }
  if (host.empty()) return false;
  for (absl::string_view label : absl::StrSplit(host, '.')) {
    if (label.empty() || !IsAlnum(label.front()) || !IsAlnum(label.back())) return false;
    for (char c : label) {
      if (!IsAlnum(c) && c != '-') return false;
    }
  }
  return true;
}

bool IsTag(const std::string& t) {
  if (t.empty() || t.size() > 128) return false;
  if (!IsAlnum(t.front()) && t.front() != '_') return false;
  for (char c : t) {
    if (!IsAlnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

bool IsDigest(const std::string& d) {
  const size_t colon = d.find(':');
  if (colon == std::string::npos || colon == 0) return false;
  const std::string algorithm = d.substr(0, colon);
  const std::string hex = d.substr(colon + 1);
  for (char c : algorithm) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '+' && c != '.' && c != '_' &&
        c != '-') {
      return false;
    }
  }
  if (hex.size() < 32) return false;
  return hex.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// ---- services ----

absl::Status ValidateResources(const api::Resources& r, bool reservation) {
  const std::string what = reservation ? "reservation" : "limit";
  if (r.nano_cpus() < 0) return Invalid("CPU " + what + " cannot be negative");
  if (r.nano_cpus() != 0 && r.nano_cpus() < kMinNanoCpus) {
    return Invalid(absl::StrCat("CPU ", what, " of ", r.nano_cpus(),
                                " nano-CPUs is below the minimum of 0.001 CPU (", kMinNanoCpus,
                                ")"));
  }
  if (r.memory_bytes() < 0) return Invalid("memory " + what + " cannot be negative");
  if (r.memory_bytes() != 0 && r.memory_bytes() < kMinMemoryBytes) {
    return Invalid(absl::StrCat("memory ", what, " of ", r.memory_bytes(),
                                " bytes is below the minimum of 4 MiB"));
  }
  if (r.pids() < 0) return Invalid("pids limit cannot be negative");
  if (reservation && r.pids() != 0) {
    return Invalid("pids can be limited (--limit-pids), not reserved");
  }
  if (!reservation && r.generic_size() > 0) {
    return Invalid("generic resources can be reserved (--generic-resource), not limited");
  }
  for (const api::GenericResource& g : r.generic()) {
    if (!g.has_discrete_resource_spec()) {
      return Invalid(
          "a service can only reserve counted generic resources (e.g. gpu=2); named units are "
          "assigned by the scheduler");
    }
    const auto& d = g.discrete_resource_spec();
    if (d.kind().empty()) return Invalid("a generic resource reservation needs a kind");
    if (d.value() <= 0) {
      return Invalid(absl::StrCat("generic resource ", d.kind(), " must be reserved in positive ",
                                  "units (got ", d.value(), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateResourceRequirements(const api::ResourceRequirements& r) {
  RETURN_IF_ERROR(ValidateResources(r.limits(), false));
  RETURN_IF_ERROR(ValidateResources(r.reservations(), true));
  const api::Resources& l = r.limits();
  const api::Resources& v = r.reservations();
  if (l.nano_cpus() != 0 && v.nano_cpus() > l.nano_cpus()) {
    return Invalid(absl::StrCat("CPU reservation (", v.nano_cpus(),
                                " nano-CPUs) is above the CPU limit (", l.nano_cpus(),
                                "); lower --reserve-cpu or raise --limit-cpu"));
  }
  if (l.memory_bytes() != 0 && v.memory_bytes() > l.memory_bytes()) {
    return Invalid(absl::StrCat("memory reservation (", v.memory_bytes(),
                                " bytes) is above the memory limit (", l.memory_bytes(),
                                " bytes); lower --reserve-memory or raise --limit-memory"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRestartPolicy(const api::RestartPolicy& p) {
  if (!api::RestartCondition_IsValid(p.condition())) {
    return Invalid("unknown restart condition; use none, on-failure or any");
  }
  RETURN_IF_ERROR(NonNegative(p.has_delay(), p.delay(), "restart delay (--restart-delay)"));
  RETURN_IF_ERROR(NonNegative(p.has_window(), p.window(), "restart window (--restart-window)"));
  return absl::OkStatus();
}

absl::Status ValidatePlacement(const api::Placement& p, const api::ServiceSpec& spec) {
  for (const std::string& c : p.constraints()) {
    auto parsed = scheduler::Constraint::Parse(c);
    if (!parsed.ok()) return Invalid(std::string(parsed.status().message()));
  }
  for (const api::PlacementPreference& pref : p.preferences()) {
    if (!pref.has_spread()) return Invalid("a placement preference must be spread=<attribute>");
    const std::string& d = pref.spread().spread_descriptor();
    if (d.empty()) {
      return Invalid("a spread preference needs an attribute, e.g. spread=node.labels.zone");
    }
    auto key = scheduler::ParseAttributeKey(d);
    if (!key.ok()) {
      return Invalid(absl::StrCat("placement preference spread=", d, ": ", key.status().message()));
    }
  }
  if (p.max_replicas() > 0 && (spec.has_global() || spec.has_global_job())) {
    return Invalid(
        "--replicas-max-per-node applies to replicated services only; a global service runs "
        "one task per node already");
  }
  return absl::OkStatus();
}

absl::Status ValidateHealthCheck(const api::HealthConfig& h) {
  if (h.test_size() > 0) {
    const std::string& kind = h.test(0);
    if (kind == "NONE") {
      if (h.test_size() != 1) return Invalid("health check test [\"NONE\"] takes no arguments");
    } else if (kind == "CMD") {
      if (h.test_size() < 2) return Invalid("health check test [\"CMD\", ...] needs a command");
    } else if (kind == "CMD-SHELL") {
      if (h.test_size() != 2) {
        return Invalid("health check test [\"CMD-SHELL\", command] takes exactly one command");
      }
    } else {
      return Invalid(absl::StrCat("health check test must start with NONE, CMD or CMD-SHELL, not ",
                                  Quote(kind)));
    }
  }
  struct Field {
    bool has;
    const google::protobuf::Duration& d;
    const char* name;
  };
  for (const Field& f :
       {Field{h.has_interval(), h.interval(), "health check interval (--health-interval)"},
        Field{h.has_timeout(), h.timeout(), "health check timeout (--health-timeout)"},
        Field{h.has_start_period(), h.start_period(),
              "health check start period (--health-start-period)"},
        Field{h.has_start_interval(), h.start_interval(),
              "health check start interval (--health-start-interval)"}}) {
    RETURN_IF_ERROR(NonNegative(f.has, f.d, f.name));
    // Zero means "the default"; anything else below Docker's minimum is a typo.
    const absl::Duration d = ToDuration(f.d);
    if (f.has && d != absl::ZeroDuration() && d < absl::Milliseconds(1)) {
      return Invalid(
          absl::StrCat(f.name, " cannot be less than 1ms (got ", absl::FormatDuration(d), ")"));
    }
  }
  if (h.retries() < 0) return Invalid("health check retries cannot be negative");
  return absl::OkStatus();
}

absl::Status ValidateMounts(const google::protobuf::RepeatedPtrField<api::Mount>& mounts) {
  std::set<std::string> targets;
  for (const api::Mount& m : mounts) {
    if (!api::MountType_IsValid(m.type())) return Invalid("unknown mount type");
    if (m.target().empty()) return Invalid("a mount needs a target path inside the container");
    if (m.target().front() != '/') {
      return Invalid(absl::StrCat("mount target ", Quote(m.target()), " must be an absolute path"));
    }
    RETURN_IF_ERROR(CheckContainerMountTarget(m.target()));
    if (!targets.insert(m.target()).second) {
      return Invalid(absl::StrCat("duplicate mount point: ", m.target()));
    }
    switch (m.type()) {
      case api::MOUNT_TYPE_BIND:
        if (m.source().empty() || m.source().front() != '/') {
          return Invalid(absl::StrCat("bind mount at ", m.target(),
                                      ": the source must be an absolute path on the host"));
        }
        break;
      case api::MOUNT_TYPE_VOLUME:
        if (!m.source().empty() && m.source().front() == '/') {
          return Invalid(absl::StrCat("volume mount at ", m.target(), ": source ",
                                      Quote(m.source()),
                                      " is a path; a volume's source is a volume name (use "
                                      "type=bind to mount a host path)"));
        }
        break;
      case api::MOUNT_TYPE_TMPFS:
        if (!m.source().empty()) {
          return Invalid(absl::StrCat("tmpfs mount at ", m.target(), " takes no source"));
        }
        if (m.tmpfs_options().size_bytes() < 0) {
          return Invalid(absl::StrCat("tmpfs mount at ", m.target(), ": size cannot be negative"));
        }
        break;
      default:
        break;
    }
    if (m.has_bind_options() && m.type() != api::MOUNT_TYPE_BIND) {
      return Invalid(absl::StrCat("mount at ", m.target(), ": bind options need type=bind"));
    }
    if (m.has_volume_options() && m.type() != api::MOUNT_TYPE_VOLUME) {
      return Invalid(absl::StrCat("mount at ", m.target(), ": volume options need type=volume"));
    }
    if (m.has_tmpfs_options() && m.type() != api::MOUNT_TYPE_TMPFS) {
      return Invalid(absl::StrCat("mount at ", m.target(), ": tmpfs options need type=tmpfs"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateFileTarget(const api::FileTarget& f, const std::string& what) {
  if (f.name().empty()) return Invalid(what + " needs a target file name");
  for (absl::string_view part : absl::StrSplit(f.name(), '/')) {
    if (part == "..") {
      return Invalid(absl::StrCat(what, ": target ", Quote(f.name()), " may not contain \"..\""));
    }
  }
  for (const std::string* id : {&f.uid(), &f.gid()}) {
    if (!id->empty() && id->find_first_not_of("0123456789") != std::string::npos) {
      return Invalid(absl::StrCat(what, ": uid and gid are decimal numbers, not ", Quote(*id)));
    }
  }
  if (f.mode() > 07777) {
    return Invalid(absl::StrCat(what, ": file mode ", absl::StrFormat("%#o", f.mode()),
                                " is not a permission mode (at most 07777)"));
  }
  return absl::OkStatus();
}

// Secret and config references: each names its object and a distinct target file.
template <typename Ref>
absl::Status ValidateReferences(const google::protobuf::RepeatedPtrField<Ref>& refs,
                                const std::string& kind, const std::string& (Ref::*id)() const,
                                const std::string& (Ref::*name)() const) {
  std::map<std::string, std::string> by_target;
  for (const Ref& r : refs) {
    const std::string label = ((r.*name)().empty() ? (r.*id)() : (r.*name)());
    if (label.empty()) return Invalid(absl::StrCat("a ", kind, " reference needs a name or ID"));
    const std::string what = absl::StrCat(kind, " reference ", Quote(label));
    if (!r.has_file()) return Invalid(what + " needs a target file");
    RETURN_IF_ERROR(ValidateFileTarget(r.file(), what));
    auto [it, inserted] = by_target.emplace(r.file().name(), label);
    if (!inserted) {
      return Invalid(absl::StrCat(kind, " references ", Quote(it->second), " and ", Quote(label),
                                  " have a conflicting target: ", Quote(r.file().name())));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateStopSignal(const std::string& sig) {
  static const std::set<std::string> kSignals = {
      "HUP",  "INT",  "QUIT",   "ILL",  "TRAP",  "ABRT", "BUS",  "FPE",  "KILL",   "USR1", "SEGV",
      "USR2", "PIPE", "ALRM",   "TERM", "CHLD",  "CONT", "STOP", "TSTP", "TTIN",   "TTOU", "URG",
      "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO",   "PWR",  "SYS",  "STKFLT", "POLL", "IOT"};
  if (sig.empty()) return absl::OkStatus();
  int n = 0;
  if (absl::SimpleAtoi(sig, &n)) {
    if (n >= 1 && n <= 64) return absl::OkStatus();
  } else {
    std::string upper = absl::AsciiStrToUpper(sig);
    if (absl::StartsWith(upper, "SIG")) upper = upper.substr(3);
    if (kSignals.count(upper) > 0) return absl::OkStatus();
    if (absl::StartsWith(upper, "RTMIN") || absl::StartsWith(upper, "RTMAX")) {
      return absl::OkStatus();
    }
  }
  return Invalid(absl::StrCat("stop signal ", Quote(sig),
                              " is not a signal; use a name like SIGTERM or a number 1-64"));
}

absl::Status ValidateContainerSpec(const api::ContainerSpec& c) {
  if (c.image().empty()) {
    return Invalid("a service needs a container image (e.g. nginx:1.25)");
  }
  RETURN_IF_ERROR(ValidateImageReference(c.image()));
  // Task templates are expanded on the nodes; a misspelt field is refused here, before any
  // task could be rejected for it.
  RETURN_IF_ERROR(ValidateContainerTemplates(c));
  for (const std::string& e : c.env()) {
    if (e.empty() || e.front() == '=') {
      return Invalid(absl::StrCat("environment entry ", Quote(e), " has no variable name; write ",
                                  "KEY=value"));
    }
  }
  RETURN_IF_ERROR(ValidateMounts(c.mounts()));
  RETURN_IF_ERROR(NonNegative(c.has_stop_grace_period(), c.stop_grace_period(),
                              "stop grace period (--stop-grace-period)"));
  RETURN_IF_ERROR(ValidateStopSignal(c.stop_signal()));
  if (c.has_healthcheck()) RETURN_IF_ERROR(ValidateHealthCheck(c.healthcheck()));
  RETURN_IF_ERROR(ValidateReferences(c.secrets(), "secret", &api::SecretReference::secret_id,
                                     &api::SecretReference::secret_name));
  RETURN_IF_ERROR(ValidateReferences(c.configs(), "config", &api::ConfigReference::config_id,
                                     &api::ConfigReference::config_name));
  for (const api::Ulimit& u : c.ulimits()) {
    if (u.name().empty()) return Invalid("a ulimit needs a name, e.g. nofile=1024:2048");
    if (u.soft() < -1 || u.hard() < -1) {
      return Invalid(absl::StrCat("ulimit ", u.name(), ": values are -1 (unlimited) or more"));
    }
    if (u.hard() != -1 && (u.soft() == -1 || u.soft() > u.hard())) {
      return Invalid(absl::StrCat("ulimit ", u.name(), ": soft limit ", u.soft(),
                                  " is above hard limit ", u.hard()));
    }
  }
  for (const std::string& ns : c.dns_config().nameservers()) {
    if (!ParseIp(ns)) {
      return Invalid(absl::StrCat("DNS server ", Quote(ns), " is not an IP address"));
    }
  }
  for (const std::string& h : c.hosts()) {
    std::vector<std::string> f = absl::StrSplit(h, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (f.size() < 2 || !ParseIp(f[0])) {
      return Invalid(absl::StrCat("host entry ", Quote(h),
                                  " must be an IP address and a name (--host name:ip)"));
    }
  }
  for (const auto& [key, value] : c.sysctls()) {
    if (key.empty()) return Invalid("a sysctl needs a name, e.g. net.core.somaxconn=1024");
  }  // which ones a container may set depends on its network: ValidateTaskSpec
  if (c.oom_score_adj() < -1000 || c.oom_score_adj() > 1000) {
    return Invalid(
        absl::StrCat("OOM score adjustment ", c.oom_score_adj(), " is out of range [-1000, 1000]"));
  }
  if (c.privileges().has_seccomp() && !api::SeccompMode_IsValid(c.privileges().seccomp().mode())) {
    return Invalid("unknown seccomp mode");
  }
  if (!c.pull_options().registry_auth().empty()) {
    if (absl::StatusOr<RegistryAuth> auth = DecodeRegistryAuth(c.pull_options().registry_auth());
        !auth.ok()) {
      return Invalid(
          absl::StrCat("pull_options.registry_auth does not decode: ", auth.status().message()));
    }
  }
  if (c.privileges().seccomp().mode() == api::SECCOMP_MODE_CUSTOM) {
    // Refused rather than run with the default profile in its place.
    return Invalid(
        "custom seccomp profiles are not supported: use the default profile or unconfined");
  }
  return absl::OkStatus();
}

absl::Status ValidateUpdateConfig(const api::UpdateConfig& u, bool rollback) {
  const std::string flag = rollback ? "--rollback-" : "--update-";
  const std::string what = rollback ? "rollback" : "update";
  RETURN_IF_ERROR(NonNegative(u.has_delay(), u.delay(), what + " delay (" + flag + "delay)"));
  RETURN_IF_ERROR(
      NonNegative(u.has_monitor(), u.monitor(), what + " monitor period (" + flag + "monitor)"));
  if (!api::UpdateFailureAction_IsValid(u.failure_action())) {
    return Invalid("unknown " + what + " failure action; use pause, continue or rollback");
  }
  if (rollback && u.failure_action() == api::UPDATE_FAILURE_ACTION_ROLLBACK) {
    return Invalid(
        "a rollback cannot roll back on failure: --rollback-failure-action is pause or continue");
  }
  if (std::isnan(u.max_failure_ratio()) || u.max_failure_ratio() < 0 || u.max_failure_ratio() > 1) {
    return Invalid(absl::StrCat(what, " max failure ratio (", flag, "max-failure-ratio) must be ",
                                "between 0 and 1, not ", u.max_failure_ratio()));
  }
  if (!api::UpdateOrder_IsValid(u.order())) {
    return Invalid("unknown " + what + " order; use stop-first or start-first");
  }
  return absl::OkStatus();
}

absl::Status ValidateEndpointSpec(const api::EndpointSpec& e) {
  if (!api::ResolutionMode_IsValid(e.mode())) {
    return Invalid("unknown endpoint mode; use vip or dnsrr");
  }
  std::set<std::pair<api::PortProtocol, uint32_t>> published;
  for (const api::PortConfig& p : e.ports()) {
    if (!api::PortProtocol_IsValid(p.protocol())) {
      return Invalid("unknown port protocol; use tcp, udp or sctp");
    }
    if (!api::PublishMode_IsValid(p.publish_mode())) {
      return Invalid("unknown publish mode; use ingress or host");
    }
    if (p.target_port() == 0 || p.target_port() > 65535) {
      return Invalid(absl::StrCat("target port ", p.target_port(),
                                  " is out of range: container ports are 1-65535"));
    }
    if (p.published_port() > 65535) {
      return Invalid(absl::StrCat("published port ", p.published_port(),
                                  " is out of range: ports are 1-65535 (0 picks one)"));
    }
    if (e.mode() == api::RESOLUTION_MODE_DNSRR && p.publish_mode() == api::PUBLISH_MODE_INGRESS) {
      return Invalid(absl::StrCat(
          "port ", PortName(p),
          " is published in ingress mode, which needs a virtual IP: use --endpoint-mode vip, or "
          "publish it with mode=host"));
    }
    if (p.published_port() == 0) continue;
    if (!published.insert({p.protocol(), p.published_port()}).second) {
      return Invalid(
          absl::StrCat("port ", PortName(p), " is published more than once in this service"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateDriver(const api::Driver& d, const std::string& what) {
  if (d.name().empty() && !d.options().empty()) {
    return Invalid(absl::StrCat(what, " options were given without a ", what, " name"));
  }
  return absl::OkStatus();
}

absl::Status ValidateTaskSpec(const api::TaskSpec& t, const api::ServiceSpec& spec) {
  switch (t.runtime_case()) {
    case api::TaskSpec::kContainer:
      RETURN_IF_ERROR(ValidateContainerSpec(t.container()));
      break;
    case api::TaskSpec::kAttachment:
      return Invalid(
          "a service's tasks run containers; network attachment tasks are created by nodes for "
          "standalone containers");
    default:
      return Invalid("a service needs a container to run (task_template.container with an image)");
  }
  RETURN_IF_ERROR(ValidateResourceRequirements(t.resources()));
  RETURN_IF_ERROR(ValidateRestartPolicy(t.restart_policy()));
  RETURN_IF_ERROR(ValidatePlacement(t.placement(), spec));
  std::set<std::string> networks;
  for (const api::NetworkAttachmentConfig& n : t.networks()) {
    if (n.target().empty()) return Invalid("a network attachment needs a network name or ID");
    if (!networks.insert(n.target()).second) {
      return Invalid(absl::StrCat("network ", Quote(n.target()), " is attached more than once"));
    }
    if (!IsNodeLocalNetwork(n.target())) continue;
    if (t.networks_size() > 1) {
      return Invalid(
          absl::StrCat("the ", n.target(), " network cannot be combined with other networks"));
    }
    for (const api::PortConfig& p : spec.endpoint_spec().ports()) {
      if (p.publish_mode() == api::PUBLISH_MODE_INGRESS) {
        return Invalid(absl::StrCat(
            "a service on the ", n.target(),
            " network cannot publish ports through the routing mesh: use --publish "
            "mode=host,... (or, on the host network, no --publish: its ports are the node's)"));
      }
    }
  }
  for (const auto& [key, value] : t.container().sysctls()) {
    RETURN_IF_ERROR(CheckContainerSysctl(key, networks.count(kHostNetwork) > 0));
  }
  RETURN_IF_ERROR(ValidateDriver(t.log_driver(), "log driver"));
  return absl::OkStatus();
}

}  // namespace

absl::Duration ToDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::Status ValidateServiceName(const std::string& name) {
  if (name.empty()) return Invalid("a service needs a name (--name)");
  bool ok = name.size() <= 63 && IsAlnum(name.front()) && IsAlnum(name.back());
  for (char c : name) ok = ok && (IsAlnum(c) || c == '-' || c == '_');
  if (!ok) {
    return Invalid(absl::StrCat("invalid service name ", Quote(name),
                                ": a service name is 1-63 characters of letters, digits, '-' "
                                "and '_', and begins and ends with a letter or digit"));
  }
  return absl::OkStatus();
}

absl::Status ValidateNetworkName(const std::string& name) {
  if (name.empty()) return Invalid("a network needs a name");
  if (!MatchesName(name, 255, "_.-", false)) {
    return Invalid(absl::StrCat("invalid network name ", Quote(name),
                                ": a network name is up to 255 characters of [a-zA-Z0-9_.-] and "
                                "begins with a letter or digit"));
  }
  return absl::OkStatus();
}

namespace {
absl::Status ValidateSecretOrConfigName(const std::string& name, const std::string& kind) {
  if (name.empty()) return Invalid("a " + kind + " needs a name");
  if (!MatchesName(name, 64, "_.-", true)) {
    return Invalid(absl::StrCat("invalid ", kind, " name ", Quote(name), ": a ", kind,
                                " name is 1-64 characters of [a-zA-Z0-9_.-] and begins and ends "
                                "with a letter or digit"));
  }
  return absl::OkStatus();
}
}  // namespace

absl::Status ValidateSecretName(const std::string& name) {
  return ValidateSecretOrConfigName(name, "secret");
}

absl::Status ValidateConfigName(const std::string& name) {
  return ValidateSecretOrConfigName(name, "config");
}

absl::Status ValidateLabels(const google::protobuf::Map<std::string, std::string>& labels,
                            const std::string& what) {
  for (const auto& [key, value] : labels) {
    if (key.empty()) return Invalid(absl::StrCat("a ", what, " needs a key: write key=value"));
  }
  return absl::OkStatus();
}

absl::Status ValidateImageReference(const std::string& image) {
  auto bad = [&](const std::string& why) {
    return Invalid(absl::StrCat("invalid image reference ", Quote(image), ": ", why));
  };
  if (image.empty()) return bad("it is empty");
  for (char c : image) {
    if (absl::ascii_isspace(c) || absl::ascii_iscntrl(c)) return bad("it contains whitespace");
  }
  std::string rest = image;
  if (size_t at = rest.find('@'); at != std::string::npos) {
    if (!IsDigest(rest.substr(at + 1))) {
      return bad("the digest must be algorithm:hex, e.g. sha256:<64 hex digits>");
    }
    rest = rest.substr(0, at);
  }
  const size_t slash = rest.rfind('/');
  const size_t colon = rest.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    if (!IsTag(rest.substr(colon + 1))) {
      return bad("a tag is up to 128 of [A-Za-z0-9_.-] and does not begin with '.' or '-'");
    }
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return bad("the repository name is missing");
  if (rest.size() > 255) return bad("the repository name is longer than 255 characters");
  std::vector<std::string> parts = absl::StrSplit(rest, '/');
  size_t first = 0;
  if (parts.size() > 1) {
    const std::string& d = parts[0];
    const bool domain = d.find_first_of(".:") != std::string::npos || d == "localhost" ||
                        absl::AsciiStrToLower(d) != d;
    if (domain) {
      if (!IsDomain(d)) return bad(absl::StrCat("registry ", Quote(d), " is not a host[:port]"));
      first = 1;
    }
  }
  for (size_t i = first; i < parts.size(); ++i) {
    if (absl::AsciiStrToLower(parts[i]) != parts[i]) {
      return bad("the repository name must be lowercase");
    }
    if (!IsPathComponent(parts[i])) {
      return bad(absl::StrCat("repository path component ", Quote(parts[i]),
                              " must be lowercase letters and digits separated by '.', '_', "
                              "'__' or '-'"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateServiceSpec(const api::ServiceSpec& spec) {
  // Every task carries the spec, and a store transaction holds up to 4 MiB of objects plus
  // one more: with specs up to 4 MiB, no transaction comes near Raft's 16 MiB proposal limit.
  if (const size_t size = spec.ByteSizeLong(); size > kMaxServiceSpecBytes) {
    return Invalid(absl::StrCat("the service spec is ", size, " bytes; at most ",
                                kMaxServiceSpecBytes >> 20,
                                " MiB is allowed (keep large data in configs, secrets or the "
                                "image)"));
  }
  RETURN_IF_ERROR(ValidateServiceName(spec.annotations().name()));
  RETURN_IF_ERROR(ValidateLabels(spec.annotations().labels(), "service label"));
  if (spec.mode_case() == api::ServiceSpec::MODE_NOT_SET) {
    return Invalid(
        "a service needs a mode: replicated (with a replica count), global, replicated-job or "
        "global-job");
  }
  RETURN_IF_ERROR(ValidateTaskSpec(spec.task_template(), spec));
  if (IsJob(spec) && spec.has_update_config()) {
    return Invalid(
        "a job has no rolling updates: leave out the update config (--update-*) for "
        "replicated-job and global-job services");
  }
  RETURN_IF_ERROR(ValidateUpdateConfig(spec.update_config(), false));
  RETURN_IF_ERROR(ValidateUpdateConfig(spec.rollback_config(), true));
  RETURN_IF_ERROR(ValidateEndpointSpec(spec.endpoint_spec()));
  return absl::OkStatus();
}

absl::Status ValidateNetworkSpec(const api::NetworkSpec& spec) {
  const std::string& name = spec.annotations().name();
  RETURN_IF_ERROR(ValidateNetworkName(name));
  if (name == "bridge" || name == "host" || name == "none") {
    return Invalid(absl::StrCat(name, " is a pre-defined network and cannot be created"));
  }
  RETURN_IF_ERROR(ValidateLabels(spec.annotations().labels(), "network label"));
  const std::string& driver = spec.driver_config().name();
  if (!driver.empty() && driver != "overlay") {
    return Invalid(absl::StrCat("network driver ", Quote(driver),
                                " is not supported: swarm networks use the overlay driver"));
  }
  if (spec.ingress() && spec.attachable()) {
    return Invalid("the ingress network cannot be attachable");
  }
  if (spec.ingress() && spec.internal()) {
    return Invalid("the ingress network cannot be internal: it carries published ports");
  }
  if (spec.driver_config().options().count("encrypted") != 0) {
    // Refused rather than silently carrying the network's traffic in plaintext.
    return Invalid(
        "encrypted overlay networks need IPsec ESP (xfrm), which this kernel does not offer; "
        "create the network without --opt encrypted");
  }
  const std::string& ipam_driver = spec.ipam().driver().name();
  if (!ipam_driver.empty() && ipam_driver != "default") {
    return Invalid(absl::StrCat("IPAM driver ", Quote(ipam_driver),
                                " is not supported: use the default driver"));
  }
  std::vector<IpNetwork> subnets;
  for (const api::IPAMConfig& c : spec.ipam().configs()) {
    if (!api::AddressFamily_IsValid(c.family())) return Invalid("unknown IPAM address family");
    if (c.subnet().empty()) {
      if (!c.range().empty() || !c.gateway().empty() || !c.reserved().empty()) {
        return Invalid("an IP range, gateway or auxiliary address needs a --subnet");
      }
      continue;
    }
    std::optional<IpNetwork> subnet = ParseCidr(c.subnet());
    if (!subnet) {
      return Invalid(absl::StrCat("subnet ", Quote(c.subnet()),
                                  " is not a network in CIDR form, e.g. 10.0.9.0/24"));
    }
    if ((c.family() == api::ADDRESS_FAMILY_IPV4 && subnet->base.family != AF_INET) ||
        (c.family() == api::ADDRESS_FAMILY_IPV6 && subnet->base.family != AF_INET6)) {
      return Invalid(absl::StrCat("subnet ", c.subnet(), " is not of the configured family"));
    }
    if (subnet->base.family == AF_INET6 && !spec.ipv6_enabled()) {
      return Invalid(
          absl::StrCat("subnet ", c.subnet(), " is IPv6: create the network with --ipv6"));
    }
    if (subnet->base.family == AF_INET6) {
      return Invalid(absl::StrCat("subnet ", c.subnet(),
                                  ": IPv6 overlay subnets are not supported yet; use an IPv4 "
                                  "--subnet"));
    }
    // The allocator's own rules: a network address, and a size it can manage.
    absl::StatusOr<allocator::Ipv4Net> v4 = allocator::ParseIpv4Net(c.subnet(), "subnet");
    if (!v4.ok()) return Invalid(std::string(v4.status().message()));
    if (v4->prefix < allocator::kLargestSubnetPrefix ||
        v4->prefix > allocator::kSmallestSubnetPrefix) {
      return Invalid(absl::StrCat("subnet ", c.subnet(), " is out of range: overlay subnets are /",
                                  allocator::kLargestSubnetPrefix, " (16M addresses) to /",
                                  allocator::kSmallestSubnetPrefix, " (a gateway and one task)"));
    }
    if (!subnets.empty()) {
      return Invalid("an overlay network has one subnet: give --subnet once");
    }
    subnets.push_back(*subnet);
    if (!c.range().empty()) {
      std::optional<IpNetwork> range = ParseCidr(c.range());
      if (!range)
        return Invalid(absl::StrCat("IP range ", Quote(c.range()), " is not in CIDR form"));
      if (!subnet->Contains(*range)) {
        return Invalid(absl::StrCat("IP range ", c.range(), " is not inside subnet ", c.subnet()));
      }
    }
    if (!c.gateway().empty()) {
      std::optional<IpAddress> gw = ParseIp(c.gateway());
      if (!gw)
        return Invalid(absl::StrCat("gateway ", Quote(c.gateway()), " is not an IP address"));
      if (!subnet->Contains(*gw)) {
        return Invalid(absl::StrCat("gateway ", c.gateway(), " is not inside subnet ", c.subnet()));
      }
    }
    for (const auto& [aux, addr] : c.reserved()) {
      std::optional<IpAddress> ip = ParseIp(addr);
      if (!ip || !subnet->Contains(*ip)) {
        return Invalid(absl::StrCat("auxiliary address ", aux, "=", addr,
                                    " is not an IP address inside subnet ", c.subnet()));
      }
    }
  }
  return absl::OkStatus();
}

namespace {

// The data of a secret or config: 1 byte up to the kind's limit.
absl::Status ValidateBlobData(const std::string& data, const std::string& kind, size_t max_size) {
  if (!data.empty() && data.size() <= max_size) return absl::OkStatus();
  return Invalid(absl::StrCat(kind, " data must be 1 byte to ", max_size / 1024, " KiB (", max_size,
                              " bytes); got ", data.size(), " bytes"));
}

absl::Status ValidateTemplating(bool has_templating, const api::Driver& templating) {
  if (has_templating && templating.name() != "golang") {
    return Invalid(absl::StrCat("template driver ", Quote(templating.name()),
                                " is not supported: use golang"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateSecretSpec(const api::SecretSpec& spec) {
  RETURN_IF_ERROR(ValidateSecretName(spec.annotations().name()));
  RETURN_IF_ERROR(ValidateLabels(spec.annotations().labels(), "secret label"));
  if (spec.has_driver()) {
    if (spec.driver().name().empty()) return Invalid("a secret driver needs a name");
    if (!spec.data().empty()) {
      return Invalid("a secret with a driver gets its data from the driver: pass no data");
    }
  } else {
    RETURN_IF_ERROR(ValidateBlobData(spec.data(), "secret", kMaxSecretSize));
  }
  return ValidateTemplating(spec.has_templating(), spec.templating());
}

absl::Status ValidateConfigSpec(const api::ConfigSpec& spec) {
  RETURN_IF_ERROR(ValidateConfigName(spec.annotations().name()));
  RETURN_IF_ERROR(ValidateLabels(spec.annotations().labels(), "config label"));
  RETURN_IF_ERROR(ValidateBlobData(spec.data(), "config", kMaxConfigSize));
  return ValidateTemplating(spec.has_templating(), spec.templating());
}

absl::Status ValidateNodeSpec(const api::NodeSpec& spec) {
  RETURN_IF_ERROR(ValidateLabels(spec.annotations().labels(), "node label"));
  if (!api::NodeRole_IsValid(spec.desired_role())) {
    return Invalid("unknown node role; use manager or worker");
  }
  if (!api::NodeMembership_IsValid(spec.membership())) {
    return Invalid("unknown node membership; use pending or accepted");
  }
  if (!api::NodeAvailability_IsValid(spec.availability())) {
    return Invalid("unknown node availability; use active, pause or drain");
  }
  return absl::OkStatus();
}

absl::Status ValidateClusterSpec(const api::ClusterSpec& spec) {
  if (spec.annotations().name().empty()) return Invalid("the cluster spec needs its name");
  RETURN_IF_ERROR(ValidateLabels(spec.annotations().labels(), "cluster label"));
  const api::RaftConfig& raft = spec.raft();
  if (raft.election_tick() != 0 && raft.election_tick() <= std::max(raft.heartbeat_tick(), 1u)) {
    return Invalid(absl::StrCat("raft election tick (", raft.election_tick(),
                                ") must be greater than the heartbeat tick (",
                                std::max(raft.heartbeat_tick(), 1u), ")"));
  }
  const api::DispatcherConfig& d = spec.dispatcher();
  if (d.has_heartbeat_period() && ToDuration(d.heartbeat_period()) <= absl::ZeroDuration()) {
    return Invalid(absl::StrCat("dispatcher heartbeat period (--dispatcher-heartbeat) must be ",
                                "positive, not ",
                                absl::FormatDuration(ToDuration(d.heartbeat_period()))));
  }
  const api::CAConfig& ca = spec.ca_config();
  if (ca.has_node_cert_expiry() && ToDuration(ca.node_cert_expiry()) < kMinNodeCertExpiry) {
    return Invalid(absl::StrCat("node certificate expiry (--cert-expiry) must be at least 1h, not ",
                                absl::FormatDuration(ToDuration(ca.node_cert_expiry()))));
  }
  for (const api::ExternalCA& e : ca.external_cas()) {
    if (!api::ExternalCAProtocol_IsValid(e.protocol())) {
      return Invalid("unknown external CA protocol; use cfssl");
    }
    if (!absl::StartsWith(e.url(), "https://") || e.url().size() <= 8) {
      return Invalid(absl::StrCat("external CA URL ", Quote(e.url()), " must be an https:// URL"));
    }
  }
  if (!ca.signing_ca_key().empty() && ca.signing_ca_cert().empty()) {
    return Invalid("a signing CA key (--ca-key) needs its certificate (--ca-cert)");
  }
  if (!ca.signing_ca_cert().empty()) {
    auto root = ca::RootCA::Load(ca.signing_ca_cert(), ca.signing_ca_key());
    if (!root.ok()) {
      return Invalid(absl::StrCat("signing CA (--ca-cert/--ca-key): ", root.status().message()));
    }
  }
  RETURN_IF_ERROR(ValidateDriver(spec.task_defaults().log_driver(), "default log driver"));
  return absl::OkStatus();
}

api::ServiceMode ModeOf(const api::ServiceSpec& spec) {
  switch (spec.mode_case()) {
    case api::ServiceSpec::kGlobal:
      return api::SERVICE_MODE_GLOBAL;
    case api::ServiceSpec::kReplicatedJob:
      return api::SERVICE_MODE_REPLICATED_JOB;
    case api::ServiceSpec::kGlobalJob:
      return api::SERVICE_MODE_GLOBAL_JOB;
    default:
      return api::SERVICE_MODE_REPLICATED;
  }
}

bool IsJob(const api::ServiceSpec& spec) {
  return spec.has_replicated_job() || spec.has_global_job();
}

std::string PortName(const api::PortConfig& port) {
  const char* proto = port.protocol() == api::PORT_PROTOCOL_UDP    ? "udp"
                      : port.protocol() == api::PORT_PROTOCOL_SCTP ? "sctp"
                                                                   : "tcp";
  return absl::StrCat(port.published_port(), "/", proto);
}

bool PublishesIngressPorts(const api::ServiceSpec& spec) {
  for (const api::PortConfig& p : spec.endpoint_spec().ports()) {
    if (p.publish_mode() == api::PUBLISH_MODE_INGRESS) return true;
  }
  return false;
}

}  // namespace swarm::manager::controlapi

#include "cli/pretty.h"

#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "cli/flags.h"
#include "cli/format.h"

namespace swarm::cli {
namespace {

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

std::string Cpus(int64_t nano_cpus) {
  return absl::StrFormat("%g", static_cast<double>(nano_cpus) / 1e9);
}

std::string FailureAction(api::UpdateFailureAction a) {
  switch (a) {
    case api::UPDATE_FAILURE_ACTION_CONTINUE:
      return "continue";
    case api::UPDATE_FAILURE_ACTION_ROLLBACK:
      return "rollback";
    default:
      return "pause";
  }
}

void PrintUpdateConfig(std::ostream& out, const char* title, const api::UpdateConfig& c) {
  out << "\n" << title << ":\n Parallelism:\t" << c.parallelism();
  if (c.has_delay()) out << "\n Delay:\t\t" << FormatGoDuration(FromProto(c.delay()));
  out << "\n On failure:\t" << FailureAction(c.failure_action());
  if (c.has_monitor()) {
    out << "\n Monitoring Period: " << FormatGoDuration(FromProto(c.monitor()));
  }
  out << "\n Max failure ratio: " << absl::StrFormat("%g", c.max_failure_ratio());
  out << "\n Update order:      "
      << (c.order() == api::UPDATE_ORDER_START_FIRST ? "start-first" : "stop-first");
}

void PrintLabels(std::ostream& out, const google::protobuf::Map<std::string, std::string>& labels,
                 const char* prefix, const char* separator) {
  std::map<std::string, std::string> sorted(labels.begin(), labels.end());
  for (const auto& [k, v] : sorted) {
    out << "\n" << prefix << k;
    if (!v.empty()) out << separator << v;
  }
}

std::string MountType(api::MountType t) {
  switch (t) {
    case api::MOUNT_TYPE_BIND:
      return "bind";
    case api::MOUNT_TYPE_TMPFS:
      return "tmpfs";
    default:
      return "volume";
  }
}

}  // namespace

std::string BytesSize(double bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  size_t i = 0;
  while (bytes >= 1024 && i + 1 < sizeof(kUnits) / sizeof(kUnits[0])) {
    bytes /= 1024;
    ++i;
  }
  return absl::StrFormat("%.4g%s", bytes, kUnits[i]);
}

std::string PrettyService(const api::Service& service) {
  const api::ServiceSpec& spec = service.spec();
  const api::TaskSpec& task = spec.task_template();
  const api::ContainerSpec& c = task.container();
  std::ostringstream out;
  out << "\nID:\t\t" << service.id() << "\nName:\t\t" << spec.annotations().name();
  if (!spec.annotations().labels().empty()) {
    out << "\nLabels:";
    PrintLabels(out, spec.annotations().labels(), " ", "=");
  }
  out << "\nService Mode:";
  switch (spec.mode_case()) {
    case api::ServiceSpec::kGlobal:
      out << "\tGlobal";
      break;
    case api::ServiceSpec::kReplicatedJob:
      out << "\tReplicated Job\n Max Concurrent:\t" << spec.replicated_job().max_concurrent()
          << "\n Total Completions:\t" << spec.replicated_job().total_completions();
      break;
    case api::ServiceSpec::kGlobalJob:
      out << "\tGlobal Job";
      break;
    default:
      out << "\tReplicated\n Replicas:\t" << spec.replicated().replicas();
  }
  if (service.has_update_status() && service.update_status().state() != api::UPDATE_STATE_UNKNOWN) {
    std::string state =
        absl::AsciiStrToLower(api::UpdateState_Name(service.update_status().state()));
    state = state.substr(std::string("update_state_").size());
    out << "\nUpdateStatus:\n State:\t\t" << state;
    if (!service.update_status().message().empty()) {
      out << "\n Message:\t" << service.update_status().message();
    }
  }
  out << "\nPlacement:";
  if (task.placement().constraints_size() > 0) {
    out << "\n Constraints:\t[" << absl::StrJoin(task.placement().constraints(), " ") << "]";
  }
  if (task.placement().preferences_size() > 0) {
    std::vector<std::string> prefs;
    for (const auto& p : task.placement().preferences()) {
      prefs.push_back("Spread=" + p.spread().spread_descriptor());
    }
    out << "\n Preferences:   [" << absl::StrJoin(prefs, " ") << "]";
  }
  if (task.placement().max_replicas() > 0) {
    out << "\n Max Replicas Per Node:   " << task.placement().max_replicas();
  }
  if (spec.has_update_config()) PrintUpdateConfig(out, "UpdateConfig", spec.update_config());
  if (spec.has_rollback_config()) PrintUpdateConfig(out, "RollbackConfig", spec.rollback_config());
  out << "\nContainerSpec:\n Image:\t\t" << c.image();
  if (c.command_size() > 0) out << "\n Command:\t" << absl::StrJoin(c.command(), " ");
  if (c.args_size() > 0) out << "\n Args:\t\t" << absl::StrJoin(c.args(), " ") << " ";
  if (c.env_size() > 0) out << "\n Env:\t\t" << absl::StrJoin(c.env(), " ") << " ";
  if (!c.dir().empty()) out << "\n Dir:\t\t" << c.dir();
  if (c.init()) out << "\n Init:\t\ttrue";
  if (!c.user().empty()) out << "\n User: " << c.user();
  if (c.capability_add_size() > 0 || c.capability_drop_size() > 0) {
    out << "\nCapabilities:";
    if (c.capability_add_size() > 0) out << "\n Add: " << absl::StrJoin(c.capability_add(), " ");
    if (c.capability_drop_size() > 0) {
      out << "\n Drop: " << absl::StrJoin(c.capability_drop(), " ");
    }
  }
  if (c.mounts_size() > 0) out << "\nMounts:";
  for (const api::Mount& m : c.mounts()) {
    out << "\n Target:\t" << m.target() << "\n  Source:\t" << m.source() << "\n  ReadOnly:\t"
        << (m.readonly() ? "true" : "false") << "\n  Type:\t\t" << MountType(m.type());
  }
  if (c.configs_size() > 0) {
    out << "\nConfigs:";
    for (const auto& r : c.configs()) {
      out << "\n Target:\t" << r.file().name() << "\n  Source:\t" << r.config_name();
    }
  }
  if (c.secrets_size() > 0) {
    out << "\nSecrets:";
    for (const auto& r : c.secrets()) {
      out << "\n Target:\t" << r.file().name() << "\n  Source:\t" << r.secret_name();
    }
  }
  if (task.has_log_driver()) {
    out << "\nLog Driver:\n Name:\t\t" << task.log_driver().name();
    if (!task.log_driver().options().empty()) {
      out << "\n LogOpts:";
      std::map<std::string, std::string> opts(task.log_driver().options().begin(),
                                              task.log_driver().options().end());
      for (const auto& [k, v] : opts) out << "\n  " << k << ":\t" << v;
    }
  }
  const api::Resources& limits = task.resources().limits();
  const api::Resources& reservations = task.resources().reservations();
  const bool has_reservations = reservations.nano_cpus() > 0 || reservations.memory_bytes() > 0;
  const bool has_limits = limits.nano_cpus() > 0 || limits.memory_bytes() > 0;
  if (has_reservations || has_limits || limits.pids() > 0) out << "\nResources:";
  if (has_reservations) {
    out << "\n Reservations:";
    if (reservations.nano_cpus() > 0) out << "\n  CPU:\t\t" << Cpus(reservations.nano_cpus());
    if (reservations.memory_bytes() > 0) {
      out << "\n  Memory:\t" << BytesSize(static_cast<double>(reservations.memory_bytes()));
    }
  }
  if (has_limits || limits.pids() > 0) {
    out << "\n Limits:";
    if (limits.nano_cpus() > 0) out << "\n  CPU:\t\t" << Cpus(limits.nano_cpus());
    if (limits.memory_bytes() > 0) {
      out << "\n  Memory:\t" << BytesSize(static_cast<double>(limits.memory_bytes()));
    }
    if (limits.pids() > 0) out << "\n  PIDs:\t\t" << limits.pids();
  }
  if (task.networks_size() > 0) {
    out << "\nNetworks:";
    for (const auto& n : task.networks()) out << " " << n.target();
    out << " ";
  }
  out << "\nEndpoint Mode:\t"
      << (spec.endpoint_spec().mode() == api::RESOLUTION_MODE_DNSRR ? "dnsrr" : "vip");
  const auto& ports = service.endpoint().ports_size() > 0 ? service.endpoint().ports()
                                                          : spec.endpoint_spec().ports();
  if (ports.size() > 0) {
    out << "\nPorts:";
    for (const api::PortConfig& p : ports) {
      out << "\n PublishedPort = " << p.published_port()
          << "\n  Protocol = " << ProtocolName(p.protocol())
          << "\n  TargetPort = " << p.target_port() << "\n  PublishMode = "
          << (p.publish_mode() == api::PUBLISH_MODE_HOST ? "host" : "ingress");
    }
    out << " ";
  }
  if (c.has_healthcheck()) {
    const api::HealthConfig& h = c.healthcheck();
    out << "\n Healthcheck:";
    if (h.has_interval()) out << "\n  Interval = " << FormatGoDuration(FromProto(h.interval()));
    if (h.retries() > 0) out << "\n  Retries = " << h.retries();
    if (h.has_start_period()) {
      out << "\n  StartPeriod =\t" << FormatGoDuration(FromProto(h.start_period()));
    }
    if (h.has_timeout()) out << "\n  Timeout =\t" << FormatGoDuration(FromProto(h.timeout()));
    if (h.test_size() > 0) out << "\n  Tests:";
    for (const std::string& t : h.test()) out << "\n\tTest = " << t;
  }
  out << "\n";
  return out.str();
}

std::string PrettyNode(const api::Node& node) {
  std::ostringstream out;
  out << "ID:\t\t\t" << node.id();
  if (!node.spec().annotations().name().empty()) {
    out << "\nName:\t\t\t" << node.spec().annotations().name();
  }
  if (!node.spec().annotations().labels().empty()) {
    out << "\nLabels:";
    PrintLabels(out, node.spec().annotations().labels(), " - ", " = ");
  }
  out << "\nHostname:              \t" << node.description().hostname();
  if (node.meta().has_created_at()) {
    out << "\nJoined at:             \t"
        << absl::FormatTime("%Y-%m-%d %H:%M:%E*S +0000 utc",
                            FromTimestamp(node.meta().created_at()), absl::UTCTimeZone());
  }
  out << "\nStatus:\n State:\t\t\t" << NodeStateName(node.status().state());
  if (!node.status().message().empty()) {
    out << "\n Message:              \t" << node.status().message();
  }
  out << "\n Availability:         \t" << AvailabilityName(node.spec().availability());
  if (!node.status().addr().empty()) out << "\n Address:\t\t" << node.status().addr();
  if (node.has_manager_status()) {
    std::string reachability = ManagerStatusName(node);
    if (reachability == "Leader") reachability = "Reachable";
    out << "\nManager Status:\n Address:\t\t" << node.manager_status().addr()
        << "\n Raft Status:\t\t" << reachability << "\n Leader:\t\t"
        << (node.manager_status().leader() ? "Yes" : "No");
  }
  out << "\nPlatform:\n Operating System:\t" << node.description().platform().os()
      << "\n Architecture:\t\t" << node.description().platform().architecture();
  out << "\nResources:\n CPUs:\t\t\t" << node.description().resources().nano_cpus() / 1'000'000'000
      << "\n Memory:\t\t"
      << BytesSize(static_cast<double>(node.description().resources().memory_bytes()));
  out << "\nEngine Version:\t\t" << node.description().engine().engine_version();
  if (!node.description().engine().labels().empty()) {
    out << "\nEngine Labels:";
    PrintLabels(out, node.description().engine().labels(), " - ", " = ");
  }
  out << "\n";
  return out.str();
}

}  // namespace swarm::cli

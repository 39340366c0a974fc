#include "cli/requests.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "cli/flags.h"
#include "common/status_macros.h"

namespace swarm::cli {
namespace {

// An address as bytes (4 or 16) and a prefix length.
struct Prefix {
  int family = 0;
  unsigned char bytes[16] = {};
  int bits = 0;
};

std::optional<Prefix> ParseAddress(absl::string_view text, bool allow_prefix) {
  Prefix p;
  std::string addr(text);
  const size_t slash = addr.find('/');
  if (slash != std::string::npos) {
    if (!allow_prefix) return std::nullopt;
    if (!absl::SimpleAtoi(addr.substr(slash + 1), &p.bits)) return std::nullopt;
    addr.resize(slash);
  }
  if (inet_pton(AF_INET, addr.c_str(), p.bytes) == 1) {
    p.family = AF_INET;
    if (slash == std::string::npos) p.bits = 32;
    if (p.bits < 0 || p.bits > 32) return std::nullopt;
  } else if (inet_pton(AF_INET6, addr.c_str(), p.bytes) == 1) {
    p.family = AF_INET6;
    if (slash == std::string::npos) p.bits = 128;
    if (p.bits < 0 || p.bits > 128) return std::nullopt;
  } else {
    return std::nullopt;
  }
  if (allow_prefix && slash == std::string::npos) return std::nullopt;
  return p;
}

// Whether the first `bits` bits of a and b are equal.
bool SamePrefix(const Prefix& a, const Prefix& b, int bits) {
  if (a.family != b.family) return false;
  for (int i = 0; i < bits; ++i) {
    const int byte = i / 8, bit = 7 - i % 8;
    if (((a.bytes[byte] >> bit) & 1) != ((b.bytes[byte] >> bit) & 1)) return false;
  }
  return true;
}

// The index of the subnet containing the address or range, or an error.
absl::StatusOr<size_t> MatchingSubnet(const std::vector<Prefix>& subnets,
                                      const std::vector<std::string>& subnet_texts,
                                      absl::string_view what, absl::string_view value,
                                      bool is_range) {
  auto addr = ParseAddress(value, is_range);
  if (!addr) {
    return InvalidFlag(what, value, is_range ? "it is not a CIDR" : "it is not an IP address",
                       is_range ? "a CIDR such as 10.0.9.0/25" : "an IP address such as 10.0.9.1");
  }
  for (size_t i = 0; i < subnets.size(); ++i) {
    if (addr->bits >= subnets[i].bits && SamePrefix(subnets[i], *addr, subnets[i].bits)) return i;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "no matching subnet for ", what, " ", value,
      subnet_texts.empty() ? " (give the network's --subnet too)"
                           : absl::StrCat(" (subnets: ", absl::StrJoin(subnet_texts, ", "), ")")));
}

absl::Status AddLabels(const char* what, const std::vector<std::string>& labels,
                       api::Annotations* annotations) {
  for (const std::string& l : labels) {
    ASSIGN_OR_RETURN(auto kv, ParseLabel(what, l));
    (*annotations->mutable_labels())[kv.first] = kv.second;
  }
  return absl::OkStatus();
}

absl::Status CheckName(const char* kind, const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat("a ", kind, " needs a name"));
  return absl::OkStatus();
}

std::string Joined(const std::vector<std::string>& v) { return absl::StrJoin(v, ", "); }

absl::Status LabelFilter(const std::string& value,
                         google::protobuf::Map<std::string, std::string>* labels) {
  const size_t eq = value.find('=');
  (*labels)[value.substr(0, eq)] = eq == std::string::npos ? "" : value.substr(eq + 1);
  return absl::OkStatus();
}

// A list request whose only filters are the ones every named kind has: id, name, label.
template <typename Request>
absl::StatusOr<Request> NamedListRequest(const Filters& filters) {
  Request req;
  for (const auto& [key, value] : filters) {
    auto* f = req.mutable_filters();
    if (key == "id") f->add_id_prefixes(value);
    if (key == "name") f->add_name_prefixes(value);
    if (key == "label") RETURN_IF_ERROR(LabelFilter(value, f->mutable_labels()));
  }
  return req;
}

}  // namespace

absl::StatusOr<api::NetworkSpec> BuildNetworkSpec(const NetworkFlags& f) {
  RETURN_IF_ERROR(CheckName("network", f.name));
  api::NetworkSpec spec;
  spec.mutable_annotations()->set_name(f.name);
  RETURN_IF_ERROR(AddLabels("label", f.labels, spec.mutable_annotations()));
  spec.mutable_driver_config()->set_name(f.driver.empty() ? "overlay" : f.driver);
  for (const std::string& o : f.opts) {
    ASSIGN_OR_RETURN(auto kv, ParseKeyValue("opt", o));
    (*spec.mutable_driver_config()->mutable_options())[kv.first] = kv.second;
  }
  spec.set_attachable(f.attachable);
  spec.set_internal(f.internal);
  spec.set_ipv6_enabled(f.ipv6);
  spec.set_ingress(f.ingress);

  std::vector<Prefix> subnets;
  for (const std::string& s : f.subnets) {
    auto p = ParseAddress(s, true);
    if (!p) return InvalidFlag("subnet", s, "it is not a CIDR", "a CIDR such as 10.0.9.0/24");
    for (size_t i = 0; i < subnets.size(); ++i) {
      const int bits = std::min(subnets[i].bits, p->bits);
      if (SamePrefix(subnets[i], *p, bits)) {
        return absl::InvalidArgumentError(
            absl::StrCat("subnets ", f.subnets[i], " and ", s, " overlap"));
      }
    }
    subnets.push_back(*p);
    api::IPAMConfig* config = spec.mutable_ipam()->add_configs();
    config->set_subnet(s);
    config->set_family(p->family == AF_INET ? api::ADDRESS_FAMILY_IPV4 : api::ADDRESS_FAMILY_IPV6);
  }
  for (const std::string& r : f.ip_ranges) {
    ASSIGN_OR_RETURN(size_t i, MatchingSubnet(subnets, f.subnets, "ip-range", r, true));
    api::IPAMConfig* config = spec.mutable_ipam()->mutable_configs(static_cast<int>(i));
    if (!config->range().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "subnet ", config->subnet(), " has two ip-ranges: ", config->range(), " and ", r));
    }
    config->set_range(r);
  }
  for (const std::string& g : f.gateways) {
    ASSIGN_OR_RETURN(size_t i, MatchingSubnet(subnets, f.subnets, "gateway", g, false));
    api::IPAMConfig* config = spec.mutable_ipam()->mutable_configs(static_cast<int>(i));
    if (!config->gateway().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "subnet ", config->subnet(), " has two gateways: ", config->gateway(), " and ", g));
    }
    config->set_gateway(g);
  }
  for (const std::string& a : f.aux_addresses) {
    ASSIGN_OR_RETURN(auto kv, ParseKeyValue("aux-address", a));
    ASSIGN_OR_RETURN(size_t i, MatchingSubnet(subnets, f.subnets, "aux-address", kv.second, false));
    (*spec.mutable_ipam()->mutable_configs(static_cast<int>(i))->mutable_reserved())[kv.first] =
        kv.second;
  }
  if (!f.ipam_driver.empty()) spec.mutable_ipam()->mutable_driver()->set_name(f.ipam_driver);
  for (const std::string& o : f.ipam_opts) {
    ASSIGN_OR_RETURN(auto kv, ParseKeyValue("ipam-opt", o));
    (*spec.mutable_ipam()->mutable_driver()->mutable_options())[kv.first] = kv.second;
  }
  return spec;
}

absl::StatusOr<api::SecretSpec> BuildSecretSpec(const std::string& name, std::string data,
                                                const std::vector<std::string>& labels,
                                                const std::string& driver,
                                                const std::string& template_driver) {
  RETURN_IF_ERROR(CheckName("secret", name));
  api::SecretSpec spec;
  spec.mutable_annotations()->set_name(name);
  RETURN_IF_ERROR(AddLabels("label", labels, spec.mutable_annotations()));
  if (driver.empty() && data.empty()) {
    return absl::InvalidArgumentError("the secret is empty: give a file or - (standard input)");
  }
  spec.set_data(std::move(data));
  if (!driver.empty()) spec.mutable_driver()->set_name(driver);
  if (!template_driver.empty()) spec.mutable_templating()->set_name(template_driver);
  return spec;
}

absl::StatusOr<api::ConfigSpec> BuildConfigSpec(const std::string& name, std::string data,
                                                const std::vector<std::string>& labels,
                                                const std::string& template_driver) {
  RETURN_IF_ERROR(CheckName("config", name));
  api::ConfigSpec spec;
  spec.mutable_annotations()->set_name(name);
  RETURN_IF_ERROR(AddLabels("label", labels, spec.mutable_annotations()));
  if (data.empty()) {
    return absl::InvalidArgumentError("the config is empty: give a file or - (standard input)");
  }
  spec.set_data(std::move(data));
  if (!template_driver.empty()) spec.mutable_templating()->set_name(template_driver);
  return spec;
}

absl::StatusOr<Filters> ParseFilters(const std::vector<std::string>& values,
                                     const std::vector<std::string>& allowed) {
  Filters out;
  for (const std::string& v : values) {
    const size_t eq = v.find('=');
    if (eq == std::string::npos || eq == 0) {
      return InvalidFlag("filter", v, "it is not KEY=VALUE",
                         absl::StrCat("KEY=VALUE with KEY one of ", Joined(allowed)));
    }
    std::string key = absl::AsciiStrToLower(v.substr(0, eq));
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return InvalidFlag("filter", v, absl::StrCat("unknown filter ", key),
                         absl::StrCat("KEY=VALUE with KEY one of ", Joined(allowed)));
    }
    out.emplace_back(std::move(key), v.substr(eq + 1));
  }
  return out;
}

absl::StatusOr<api::ListNodesRequest> NodeListRequest(const Filters& filters) {
  api::ListNodesRequest req;
  for (const auto& [key, value] : filters) {
    auto* f = req.mutable_filters();
    if (key == "id") {
      f->add_id_prefixes(value);
    } else if (key == "name") {
      f->add_name_prefixes(value);
    } else if (key == "label") {
      RETURN_IF_ERROR(LabelFilter(value, f->mutable_engine_labels()));
    } else if (key == "node.label") {
      RETURN_IF_ERROR(LabelFilter(value, f->mutable_labels()));
    } else if (key == "role") {
      ASSIGN_OR_RETURN(api::NodeRole role, ParseRole(value));
      f->add_roles(role);
    } else if (key == "membership") {
      if (value == "accepted") {
        f->add_memberships(api::NODE_MEMBERSHIP_ACCEPTED);
      } else if (value == "pending") {
        f->add_memberships(api::NODE_MEMBERSHIP_PENDING);
      } else {
        return InvalidFlag("filter", value, "unknown membership", "membership=accepted|pending");
      }
    } else if (key == "availability") {
      ASSIGN_OR_RETURN(api::NodeAvailability a, ParseAvailability(value));
      f->add_availabilities(a);
    }
  }
  return req;
}

absl::StatusOr<api::ListServicesRequest> ServiceListRequest(const Filters& filters) {
  api::ListServicesRequest req;
  for (const auto& [key, value] : filters) {
    auto* f = req.mutable_filters();
    if (key == "id") {
      f->add_id_prefixes(value);
    } else if (key == "name") {
      f->add_name_prefixes(value);
    } else if (key == "label") {
      RETURN_IF_ERROR(LabelFilter(value, f->mutable_labels()));
    } else if (key == "mode") {
      if (value == "replicated") {
        f->add_modes(api::SERVICE_MODE_REPLICATED);
      } else if (value == "global") {
        f->add_modes(api::SERVICE_MODE_GLOBAL);
      } else if (value == "replicated-job") {
        f->add_modes(api::SERVICE_MODE_REPLICATED_JOB);
      } else if (value == "global-job") {
        f->add_modes(api::SERVICE_MODE_GLOBAL_JOB);
      } else {
        return InvalidFlag("filter", value, "unknown mode",
                           "mode=replicated|global|replicated-job|global-job");
      }
    }
  }
  return req;
}

absl::StatusOr<api::ListNetworksRequest> NetworkListRequest(const Filters& filters) {
  return NamedListRequest<api::ListNetworksRequest>(filters);
}

absl::StatusOr<api::ListSecretsRequest> SecretListRequest(const Filters& filters) {
  return NamedListRequest<api::ListSecretsRequest>(filters);
}

absl::StatusOr<api::ListConfigsRequest> ConfigListRequest(const Filters& filters) {
  return NamedListRequest<api::ListConfigsRequest>(filters);
}

absl::StatusOr<api::ListTasksRequest> TaskListRequest(const Filters& filters,
                                                      const std::vector<std::string>& service_ids,
                                                      const std::vector<std::string>& node_ids) {
  static const std::map<std::string, api::TaskState> kStates = {
      {"new", api::TASK_STATE_NEW},
      {"pending", api::TASK_STATE_PENDING},
      {"assigned", api::TASK_STATE_ASSIGNED},
      {"accepted", api::TASK_STATE_ACCEPTED},
      {"preparing", api::TASK_STATE_PREPARING},
      {"ready", api::TASK_STATE_READY},
      {"starting", api::TASK_STATE_STARTING},
      {"running", api::TASK_STATE_RUNNING},
      {"complete", api::TASK_STATE_COMPLETE},
      {"shutdown", api::TASK_STATE_SHUTDOWN},
      {"failed", api::TASK_STATE_FAILED},
      {"rejected", api::TASK_STATE_REJECTED},
      {"remove", api::TASK_STATE_REMOVE},
      {"orphaned", api::TASK_STATE_ORPHANED}};
  api::ListTasksRequest req;
  auto* f = req.mutable_filters();
  for (const std::string& id : service_ids) f->add_service_ids(id);
  for (const std::string& id : node_ids) f->add_node_ids(id);
  for (const auto& [key, value] : filters) {
    if (key == "id") {
      f->add_id_prefixes(value);
    } else if (key == "name") {
      f->add_name_prefixes(value);
    } else if (key == "desired-state") {
      auto it = kStates.find(absl::AsciiStrToLower(value));
      if (it == kStates.end()) {
        return InvalidFlag("filter", value, "unknown desired state",
                           "desired-state=running, shutdown, accepted, complete...");
      }
      f->add_desired_states(it->second);
    }
  }
  return req;
}

absl::Status ApplyClusterUpdate(const ClusterFlags& flags, api::ClusterSpec* spec) {
  if (!flags.autolock && !flags.cert_expiry && !flags.task_history_limit &&
      !flags.dispatcher_heartbeat) {
    return absl::InvalidArgumentError(
        "nothing to update: give --autolock, --cert-expiry, --task-history-limit or "
        "--dispatcher-heartbeat");
  }
  if (flags.autolock) spec->mutable_encryption_config()->set_auto_lock_managers(*flags.autolock);
  if (flags.cert_expiry) {
    ASSIGN_OR_RETURN(absl::Duration d, ParseDuration("cert-expiry", *flags.cert_expiry));
    if (d < absl::Hours(1)) {
      return InvalidFlag("cert-expiry", *flags.cert_expiry, "it is shorter than one hour",
                         "a duration such as 2160h (90 days)");
    }
    auto* e = spec->mutable_ca_config()->mutable_node_cert_expiry();
    e->set_seconds(absl::ToInt64Seconds(d));
    e->set_nanos(0);
  }
  if (flags.task_history_limit) {
    ASSIGN_OR_RETURN(int64_t n, ParseInt("task-history-limit", *flags.task_history_limit));
    spec->mutable_orchestration()->set_task_history_retention_limit(n);
  }
  if (flags.dispatcher_heartbeat) {
    ASSIGN_OR_RETURN(absl::Duration d,
                     ParseDuration("dispatcher-heartbeat", *flags.dispatcher_heartbeat));
    if (d <= absl::ZeroDuration()) {
      return InvalidFlag("dispatcher-heartbeat", *flags.dispatcher_heartbeat, "it must be positive",
                         "a duration such as 5s");
    }
    SetProtoDuration(d, spec->mutable_dispatcher()->mutable_heartbeat_period());
  }
  return absl::OkStatus();
}

}  // namespace swarm::cli

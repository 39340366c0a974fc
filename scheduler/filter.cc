#include "scheduler/filter.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace swarm::scheduler {
namespace {

bool Ready(const TaskRequirements&, const NodeInfo& n) {
  return n.node()->status().state() == api::NODE_STATE_READY;
}

// Paused and drained nodes take no new tasks.
bool Available(const TaskRequirements&, const NodeInfo& n) {
  return n.node()->spec().availability() == api::NODE_AVAILABILITY_ACTIVE;
}

bool SatisfiesConstraints(const TaskRequirements& t, const NodeInfo& n) {
  return MatchesAll(t.constraints, *n.node());
}

// Images and agents name the same architectures differently (uname says x86_64, image
// manifests amd64); compare the canonical names, without regard to case.
absl::string_view CanonicalArch(const std::string& arch) {
  if (absl::EqualsIgnoreCase(arch, "x86_64") || absl::EqualsIgnoreCase(arch, "x86-64")) {
    return "amd64";
  }
  if (absl::EqualsIgnoreCase(arch, "aarch64")) return "arm64";
  return arch;
}

bool PlatformMatches(const api::Platform& want, const api::Platform& have) {
  return (want.os().empty() || absl::EqualsIgnoreCase(want.os(), have.os())) &&
         (want.architecture().empty() ||
          absl::EqualsIgnoreCase(CanonicalArch(want.architecture()),
                                 CanonicalArch(have.architecture())));
}

bool SupportsPlatform(const TaskRequirements& t, const NodeInfo& n) {
  if (t.platforms.empty()) return true;
  const api::Platform& have = n.node()->description().platform();
  for (const api::Platform& want : t.platforms) {
    if (PlatformMatches(want, have)) return true;
  }
  return false;
}

bool HasMemory(const TaskRequirements& t, const NodeInfo& n) {
  return t.memory <= 0 || t.memory <= n.available_memory();
}

bool HasCpu(const TaskRequirements& t, const NodeInfo& n) {
  return t.cpu <= 0 || t.cpu <= n.available_cpu();
}

bool HasHostPorts(const TaskRequirements& t, const NodeInfo& n) {
  for (HostPort p : t.host_ports) {
    if (n.PortInUse(p)) return false;
  }
  return true;
}

bool BelowMaxReplicas(const TaskRequirements& t, const NodeInfo& n) {
  return t.max_replicas == 0 || static_cast<uint64_t>(n.ServiceTasks(t.service)) < t.max_replicas;
}

constexpr std::array<Filter, kFilterCount> kFilters = {{
    {FilterId::kReady, "ready", false, Ready, "node not ready"},
    {FilterId::kAvailability, "availability", false, Available, "node paused or drained"},
    {FilterId::kConstraints, "constraints", false, SatisfiesConstraints,
     "scheduling constraints not satisfied"},
    {FilterId::kPlatform, "platform", false, SupportsPlatform, "unsupported platform"},
    {FilterId::kMemory, "memory", true, HasMemory, "insufficient memory"},
    {FilterId::kCpu, "cpu", true, HasCpu, "insufficient CPU"},
    {FilterId::kHostPorts, "host-ports", true, HasHostPorts, "host-mode port already in use"},
    {FilterId::kMaxReplicas, "max-replicas", true, BelowMaxReplicas,
     "max replicas per node reached"},
}};

constexpr bool InPipelineOrder() {
  for (int i = 0; i < kFilterCount; ++i) {
    if (static_cast<int>(kFilters[i].id) != i) return false;
  }
  return true;
}
static_assert(InPipelineOrder(), "kFilters is indexed by FilterId");

}  // namespace

absl::StatusOr<TaskRequirements> TaskRequirements::FromTask(const api::Task& task) {
  TaskRequirements r;
  r.service_id = task.service_id();
  const api::Placement& p = task.spec().placement();
  auto constraints = Constraint::ParseAll(
      std::vector<std::string>(p.constraints().begin(), p.constraints().end()));
  if (!constraints.ok()) return constraints.status();
  r.constraints = *std::move(constraints);
  r.platforms.assign(p.platforms().begin(), p.platforms().end());
  r.cpu = task.spec().resources().reservations().nano_cpus();
  r.memory = task.spec().resources().reservations().memory_bytes();
  r.host_ports = HostPortsOf(task);
  r.max_replicas = p.max_replicas();
  for (const api::PlacementPreference& pref : p.preferences()) {
    if (!pref.has_spread()) continue;
    const std::string& descriptor = pref.spread().spread_descriptor();
    auto key = ParseAttributeKey(descriptor);
    if (!key.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("placement preference \"spread=", descriptor,
                                                     "\": ", key.status().message()));
    }
    r.spread.push_back(*std::move(key));
  }
  return r;
}

const std::array<Filter, kFilterCount>& Filters() { return kFilters; }

std::optional<FilterId> FirstRejection(const TaskRequirements& task, const NodeInfo& node,
                                       bool load_dependent) {
  for (const Filter& f : kFilters) {
    if (f.load_dependent == load_dependent && !f.accepts(task, node)) return f.id;
  }
  return std::nullopt;
}

std::optional<FilterId> FirstRejection(const TaskRequirements& task, const NodeInfo& node) {
  for (const Filter& f : kFilters) {
    if (!f.accepts(task, node)) return f.id;
  }
  return std::nullopt;
}

std::string NoSuitableNodeMessage(const Rejections& rejected) {
  std::vector<std::string> parts;
  for (const Filter& f : kFilters) {
    const int n = rejected[static_cast<int>(f.id)];
    if (n > 0) parts.push_back(absl::StrCat(f.rejection, " on ", n, n == 1 ? " node" : " nodes"));
  }
  if (parts.empty()) return "no suitable node (no nodes in the cluster)";
  return absl::StrCat("no suitable node (", absl::StrJoin(parts, "; "), ")");
}

}  // namespace swarm::scheduler

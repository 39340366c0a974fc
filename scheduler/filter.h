// The scheduler's filters: a fixed pipeline of checks a node must pass to take one more task,
// each able to say why it rejected a node. A task that fits nowhere is told, per filter, on
// how many nodes it failed: "no suitable node (insufficient memory on 3 nodes; scheduling
// constraints not satisfied on 2 nodes)".
//
// Filters come in two kinds. Load-independent ones (ready, availability, constraints,
// platform) look only at the node object; the scheduler runs them once per group of
// identical tasks. Load-dependent ones (memory, CPU, host ports, max replicas) look at what
// the node's tasks hold, and run as tasks are placed. Placing tasks only ever adds load, so a
// node that a load-dependent filter rejects for one task of a group rejects all the others.
//
// Pure functions over plain data; thread-safe.
#ifndef SWARM_SCHEDULER_FILTER_H_
#define SWARM_SCHEDULER_FILTER_H_

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/objects.pb.h"
#include "scheduler/constraint.h"
#include "scheduler/node_set.h"

namespace swarm::scheduler {

// What the filters and the ranking need from a task, parsed once per group of tasks.
struct TaskRequirements {
  std::string service_id;
  std::vector<Constraint> constraints;
  // Empty: any platform.
  std::vector<api::Platform> platforms;
  int64_t cpu = 0;
  int64_t memory = 0;
  std::vector<HostPort> host_ports;
  // 0: unlimited.
  uint64_t max_replicas = 0;
  // Spread preferences, outermost first.
  std::vector<AttributeKey> spread;
  // The service's key in the node set the scheduler works on (kNoService while none of its
  // tasks is counted there); kept current by the scheduler.
  ServiceKey service = kNoService;

  // INVALID_ARGUMENT naming the malformed constraint or preference.
  static absl::StatusOr<TaskRequirements> FromTask(const api::Task& task);
};

enum class FilterId {
  kReady,
  kAvailability,
  kConstraints,
  kPlatform,
  kMemory,
  kCpu,
  kHostPorts,
  kMaxReplicas,
};
inline constexpr int kFilterCount = 8;

struct Filter {
  FilterId id;
  const char* name;
  bool load_dependent;
  bool (*accepts)(const TaskRequirements& task, const NodeInfo& node);
  // Why a node was rejected, written as "<rejection> on N nodes".
  const char* rejection;
};

// The pipeline, in order.
const std::array<Filter, kFilterCount>& Filters();

// The first filter that rejects the node, among the load-independent or the load-dependent
// ones; nullopt when they all accept it. The node must have its object (node() != null).
std::optional<FilterId> FirstRejection(const TaskRequirements& task, const NodeInfo& node,
                                       bool load_dependent);
// The first filter of the whole pipeline that rejects the node.
std::optional<FilterId> FirstRejection(const TaskRequirements& task, const NodeInfo& node);

// How many nodes each filter rejected, indexed by FilterId.
using Rejections = std::array<int, kFilterCount>;

// "no suitable node (insufficient memory on 3 nodes; ...)", filters in pipeline order;
// "no suitable node (no nodes in the cluster)" when nothing was rejected because there was
// nothing to reject.
std::string NoSuitableNodeMessage(const Rejections& rejected);

}  // namespace swarm::scheduler

#endif  // SWARM_SCHEDULER_FILTER_H_

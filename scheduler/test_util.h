// Builders of nodes and tasks for the scheduler's tests and benchmark.
#ifndef SWARM_SCHEDULER_TEST_UTIL_H_
#define SWARM_SCHEDULER_TEST_UTIL_H_

#include <map>
#include <string>
#include <vector>

#include "proto/objects.pb.h"

namespace swarm::scheduler::testing {

inline constexpr int64_t kCpu = 1000000000;  // one CPU in nano CPUs
inline constexpr int64_t kGiB = int64_t{1} << 30;

// A ready, active worker (linux/x86_64) with the resources and node labels given.
inline api::Node MakeNode(const std::string& id, int64_t nano_cpus = 4 * kCpu,
                          int64_t memory = 8 * kGiB,
                          const std::map<std::string, std::string>& labels = {}) {
  api::Node n;
  n.set_id(id);
  n.set_role(api::NODE_ROLE_WORKER);
  n.mutable_spec()->set_availability(api::NODE_AVAILABILITY_ACTIVE);
  n.mutable_status()->set_state(api::NODE_STATE_READY);
  n.mutable_description()->set_hostname(id);
  n.mutable_description()->mutable_platform()->set_os("linux");
  n.mutable_description()->mutable_platform()->set_architecture("x86_64");
  n.mutable_description()->mutable_resources()->set_nano_cpus(nano_cpus);
  n.mutable_description()->mutable_resources()->set_memory_bytes(memory);
  for (const auto& [k, v] : labels)
    (*n.mutable_spec()->mutable_annotations()->mutable_labels())[k] = v;
  return n;
}

// A PENDING task of the service (spec version 1) reserving cpu and memory.
inline api::Task MakeTask(const std::string& id, const std::string& service, int64_t cpu = 0,
                          int64_t memory = 0) {
  api::Task t;
  t.set_id(id);
  t.set_service_id(service);
  t.mutable_spec_version()->set_index(1);
  t.mutable_spec()->mutable_container()->set_image("busybox");
  t.mutable_spec()->mutable_resources()->mutable_reservations()->set_nano_cpus(cpu);
  t.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(memory);
  t.mutable_status()->set_state(api::TASK_STATE_PENDING);
  t.set_desired_state(api::TASK_STATE_RUNNING);
  return t;
}

inline void AddConstraint(api::Task* t, const std::string& expr) {
  t->mutable_spec()->mutable_placement()->add_constraints(expr);
}

inline void AddSpread(api::Task* t, const std::string& descriptor) {
  t->mutable_spec()
      ->mutable_placement()
      ->add_preferences()
      ->mutable_spread()
      ->set_spread_descriptor(descriptor);
}

inline void AddHostPort(api::Task* t, uint32_t port,
                        api::PortProtocol protocol = api::PORT_PROTOCOL_TCP) {
  api::PortConfig* p = t->mutable_endpoint()->add_ports();
  p->set_protocol(protocol);
  p->set_target_port(port);
  p->set_published_port(port);
  p->set_publish_mode(api::PUBLISH_MODE_HOST);
}

// The task as it is once running on node.
inline api::Task Running(api::Task t, const std::string& node) {
  t.set_node_id(node);
  t.mutable_status()->set_state(api::TASK_STATE_RUNNING);
  return t;
}

inline std::vector<const api::Task*> Pointers(const std::vector<api::Task>& tasks) {
  std::vector<const api::Task*> out;
  out.reserve(tasks.size());
  for (const api::Task& t : tasks) out.push_back(&t);
  return out;
}

}  // namespace swarm::scheduler::testing

#endif  // SWARM_SCHEDULER_TEST_UTIL_H_

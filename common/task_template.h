// Task templates: the values of a service's --env, --hostname and --mount (source and
// target) may use Go templates over the task they end up in, as Docker's do:
//   {{.Service.ID}} {{.Service.Name}} {{.Service.Labels}}
//   {{.Node.ID}} {{.Node.Hostname}} {{.Node.Platform.OS}} {{.Node.Platform.Architecture}}
//   {{.Task.ID}} {{.Task.Name}} {{.Task.Slot}}
// The agent expands them when it prepares a task, with what only the node knows (its
// hostname); the control API checks them when a service is created or updated, against a
// placeholder task, so that a misspelt field is refused before any task exists.
//
// Thread-safety: pure functions.
#ifndef SWARM_COMMON_TASK_TEMPLATE_H_
#define SWARM_COMMON_TASK_TEMPLATE_H_

#include "absl/status/status.h"
#include "common/template.h"
#include "proto/objects.pb.h"
#include "proto/specs.pb.h"
#include "proto/types.pb.h"

namespace swarm {

// SwarmKit's template context for a task on a node. Task.Name is the task's name
// ("web.1.<task id>"), Task.Slot its slot, or the node ID for a global service's task.
tmpl::Value TaskTemplateContext(const api::Task& task, const api::NodeDescription& node);

// Expands the templates of spec (env entries, hostname, mount sources and targets) for task
// on node. INVALID_ARGUMENT naming the flag and the template when one does not parse or asks
// for what the context has not ("invalid template in --hostname \"{{.Node.Hostnme}}\":
// template: :1:2: executing ...").
absl::Status ExpandContainerTemplates(const api::Task& task, const api::NodeDescription& node,
                                      api::ContainerSpec* spec);

// The same check without a task: the templates of spec run against a placeholder context.
absl::Status ValidateContainerTemplates(const api::ContainerSpec& spec);

}  // namespace swarm

#endif  // SWARM_COMMON_TASK_TEMPLATE_H_

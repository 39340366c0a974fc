#include "common/task_template.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace swarm {
namespace {

using Field = tmpl::Value::Field;

tmpl::Value Context(const std::string& service_id, const std::string& service_name,
                    const google::protobuf::Map<std::string, std::string>& service_labels,
                    const std::string& node_id, const api::NodeDescription& node,
                    const std::string& task_id, const std::string& task_name,
                    const std::string& slot) {
  std::map<std::string, tmpl::Value> labels;
  for (const auto& [k, v] : service_labels) labels[k] = tmpl::Value::String(v);
  tmpl::Value service =
      tmpl::Value::Struct("Service", {Field{"ID", tmpl::Value::String(service_id)},
                                      Field{"Name", tmpl::Value::String(service_name)},
                                      Field{"Labels", tmpl::Value::Map(std::move(labels))}});
  tmpl::Value platform = tmpl::Value::Struct(
      "Platform", {Field{"Architecture", tmpl::Value::String(node.platform().architecture())},
                   Field{"OS", tmpl::Value::String(node.platform().os())}});
  tmpl::Value node_value =
      tmpl::Value::Struct("Node", {Field{"ID", tmpl::Value::String(node_id)},
                                   Field{"Hostname", tmpl::Value::String(node.hostname())},
                                   Field{"Platform", platform}});
  tmpl::Value task = tmpl::Value::Struct("Task", {Field{"ID", tmpl::Value::String(task_id)},
                                                  Field{"Name", tmpl::Value::String(task_name)},
                                                  Field{"Slot", tmpl::Value::String(slot)}});
  return tmpl::Value::Struct(
      "Context", {Field{"Service", service}, Field{"Node", node_value}, Field{"Task", task}});
}

// Runs the template of one value in place; flag names it in errors.
absl::Status ExpandOne(const tmpl::Value& context, const std::string& flag, std::string* value) {
  if (!absl::StrContains(*value, "{{")) return absl::OkStatus();
  absl::StatusOr<tmpl::Template> t = tmpl::Template::Parse(*value);
  absl::StatusOr<std::string> out =
      t.ok() ? t->Execute(context) : absl::StatusOr<std::string>(t.status());
  if (!out.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid template in ", flag, " \"", *value, "\": ", out.status().message()));
  }
  *value = *std::move(out);
  return absl::OkStatus();
}

absl::Status ExpandWith(const tmpl::Value& context, api::ContainerSpec* spec) {
  for (std::string& env : *spec->mutable_env()) {
    if (absl::Status s = ExpandOne(context, "--env", &env); !s.ok()) return s;
  }
  if (absl::Status s = ExpandOne(context, "--hostname", spec->mutable_hostname()); !s.ok()) {
    return s;
  }
  for (api::Mount& m : *spec->mutable_mounts()) {
    if (absl::Status s = ExpandOne(context, "--mount source", m.mutable_source()); !s.ok()) {
      return s;
    }
    if (absl::Status s = ExpandOne(context, "--mount target", m.mutable_target()); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace

tmpl::Value TaskTemplateContext(const api::Task& task, const api::NodeDescription& node) {
  const std::string& service_name = task.service_annotations().name();
  const std::string slot = task.slot() != 0 ? std::to_string(task.slot()) : task.node_id();
  std::string name = task.annotations().name();
  if (name.empty()) name = absl::StrCat(service_name, ".", slot, ".", task.id());
  return Context(task.service_id(), service_name, task.service_annotations().labels(),
                 task.node_id(), node, task.id(), name, slot);
}

absl::Status ExpandContainerTemplates(const api::Task& task, const api::NodeDescription& node,
                                      api::ContainerSpec* spec) {
  return ExpandWith(TaskTemplateContext(task, node), spec);
}

absl::Status ValidateContainerTemplates(const api::ContainerSpec& spec) {
  api::NodeDescription node;
  node.set_hostname("hostname");
  node.mutable_platform()->set_os("linux");
  node.mutable_platform()->set_architecture("x86_64");
  const tmpl::Value context =
      Context("serviceid", "service", {}, "nodeid", node, "taskid", "service.1.taskid", "1");
  api::ContainerSpec copy = spec;
  return ExpandWith(context, &copy);
}

}  // namespace swarm

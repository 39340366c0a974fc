#include "common/task_template.h"

#include "gtest/gtest.h"

namespace swarm {
namespace {

api::Task WebTask() {
  api::Task t;
  t.set_id("task1");
  t.set_service_id("svc1");
  t.set_slot(2);
  t.set_node_id("node1");
  t.mutable_service_annotations()->set_name("web");
  (*t.mutable_service_annotations()->mutable_labels())["tier"] = "front";
  return t;
}

api::NodeDescription Node() {
  api::NodeDescription n;
  n.set_hostname("host-a");
  n.mutable_platform()->set_os("linux");
  n.mutable_platform()->set_architecture("aarch64");
  return n;
}

TEST(TaskTemplate, Expand_EnvHostnameMounts) {
  api::ContainerSpec spec;
  spec.add_env("SLOT={{.Task.Slot}}");
  spec.add_env("WHO={{.Service.Name}}@{{.Node.Hostname}}/{{.Node.Platform.OS}}");
  spec.add_env("PLAIN=x");
  spec.add_env("LABELS={{.Service.Labels}} {{index .Service.Labels \"tier\"}}");
  spec.set_hostname("{{.Service.Name}}-{{.Task.Slot}}.{{.Node.ID}}");
  api::Mount* m = spec.add_mounts();
  m->set_source("/data/{{.Service.ID}}/{{.Task.Name}}");
  m->set_target("/{{.Node.Platform.Architecture}}");
  ASSERT_TRUE(ExpandContainerTemplates(WebTask(), Node(), &spec).ok());
  EXPECT_EQ(spec.env(0), "SLOT=2");
  EXPECT_EQ(spec.env(1), "WHO=web@host-a/linux");
  EXPECT_EQ(spec.env(2), "PLAIN=x");
  EXPECT_EQ(spec.env(3), "LABELS=map[tier:front] front");
  EXPECT_EQ(spec.hostname(), "web-2.node1");
  EXPECT_EQ(spec.mounts(0).source(), "/data/svc1/web.2.task1");
  EXPECT_EQ(spec.mounts(0).target(), "/aarch64");
}

TEST(TaskTemplate, Expand_GlobalTaskSlotIsTheNode) {
  api::Task t = WebTask();
  t.set_slot(0);
  t.mutable_annotations()->set_name("web.node1.task1");
  api::ContainerSpec spec;
  spec.set_hostname("{{.Task.Slot}} {{.Task.Name}} {{.Task.ID}}");
  ASSERT_TRUE(ExpandContainerTemplates(t, Node(), &spec).ok());
  EXPECT_EQ(spec.hostname(), "node1 web.node1.task1 task1");
}

TEST(TaskTemplate, Expand_BadTemplateNamesFlag) {
  api::ContainerSpec spec;
  spec.set_hostname("{{.Node.Hostnme}}");
  absl::Status s = ExpandContainerTemplates(WebTask(), Node(), &spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "invalid template in --hostname \"{{.Node.Hostnme}}\": template: :1:2: executing \"\" "
            "at <.Node.Hostnme>: can't evaluate field Hostnme in type Node");
  api::ContainerSpec env;
  env.add_env("A={{.Task.Slot");
  s = ExpandContainerTemplates(WebTask(), Node(), &env);
  EXPECT_EQ(s.message(),
            "invalid template in --env \"A={{.Task.Slot\": template: :1:2: unclosed action");
}

TEST(TaskTemplate, Validate_RefusesUnknownFieldsOnly) {
  api::ContainerSpec spec;
  spec.set_hostname("{{.Node.Hostname}}");
  spec.add_env("X={{.Service.Labels.missing}}");  // a label not set is not an error
  spec.add_mounts()->set_source("/{{.Task.Slot}}");
  EXPECT_TRUE(ValidateContainerTemplates(spec).ok());
  spec.mutable_mounts(0)->set_target("{{.Task.Slt}}");
  absl::Status s = ValidateContainerTemplates(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--mount target \"{{.Task.Slt}}\""), std::string::npos) << s;
  EXPECT_NE(s.message().find("can't evaluate field Slt in type Task"), std::string::npos) << s;
}

}  // namespace
}  // namespace swarm

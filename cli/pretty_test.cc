#include "cli/pretty.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace swarm::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(BytesSize, DockerUnits) {
  EXPECT_EQ(BytesSize(100), "100B");
  EXPECT_EQ(BytesSize(1024), "1KiB");
  EXPECT_EQ(BytesSize(512.0 * 1024 * 1024), "512MiB");
  EXPECT_EQ(BytesSize(1.5 * 1024 * 1024 * 1024), "1.5GiB");
  EXPECT_EQ(BytesSize(0), "0B");
}

TEST(PrettyService, DockerLayout) {
  api::Service s;
  s.set_id("websvcid");
  api::ServiceSpec* spec = s.mutable_spec();
  spec->mutable_annotations()->set_name("web");
  (*spec->mutable_annotations()->mutable_labels())["tier"] = "front";
  spec->mutable_replicated()->set_replicas(3);
  spec->mutable_task_template()->mutable_placement()->add_constraints("node.role==worker");
  spec->mutable_update_config()->set_parallelism(2);
  spec->mutable_update_config()->mutable_delay()->set_seconds(90);
  auto* c = spec->mutable_task_template()->mutable_container();
  c->set_image("nginx:1.25");
  c->add_args("nginx");
  c->add_args("-g");
  c->add_env("A=1");
  auto* m = c->add_mounts();
  m->set_type(api::MOUNT_TYPE_BIND);
  m->set_source("/srv");
  m->set_target("/www");
  m->set_readonly(true);
  auto* limits = spec->mutable_task_template()->mutable_resources()->mutable_limits();
  limits->set_nano_cpus(500'000'000);
  limits->set_memory_bytes(512LL << 20);
  auto* port = spec->mutable_endpoint_spec()->add_ports();
  port->set_published_port(8080);
  port->set_target_port(80);
  EXPECT_EQ(PrettyService(s),
            "\nID:\t\twebsvcid\n"
            "Name:\t\tweb\n"
            "Labels:\n tier=front\n"
            "Service Mode:\tReplicated\n Replicas:\t3\n"
            "Placement:\n Constraints:\t[node.role==worker]\n"
            "UpdateConfig:\n Parallelism:\t2\n Delay:\t\t1m30s\n On failure:\tpause\n"
            " Max failure ratio: 0\n Update order:      stop-first\n"
            "ContainerSpec:\n Image:\t\tnginx:1.25\n Args:\t\tnginx -g \n Env:\t\tA=1 \n"
            "Mounts:\n Target:\t/www\n  Source:\t/srv\n  ReadOnly:\ttrue\n  Type:\t\tbind\n"
            "Resources:\n Limits:\n  CPU:\t\t0.5\n  Memory:\t512MiB\n"
            "Endpoint Mode:\tvip\n"
            "Ports:\n PublishedPort = 8080\n  Protocol = tcp\n  TargetPort = 80\n"
            "  PublishMode = ingress \n");
}

TEST(PrettyNode, DockerLayout) {
  api::Node n;
  n.set_id("node1");
  n.mutable_description()->set_hostname("host1");
  n.mutable_description()->mutable_platform()->set_os("linux");
  n.mutable_description()->mutable_platform()->set_architecture("x86_64");
  n.mutable_description()->mutable_resources()->set_nano_cpus(4'000'000'000);
  n.mutable_description()->mutable_resources()->set_memory_bytes(8LL << 30);
  n.mutable_description()->mutable_engine()->set_engine_version("0.1.0");
  n.mutable_status()->set_state(api::NODE_STATE_READY);
  n.mutable_status()->set_addr("10.0.0.1");
  n.mutable_manager_status()->set_leader(true);
  n.mutable_manager_status()->set_addr("10.0.0.1:2377");
  n.mutable_manager_status()->set_reachability(api::REACHABILITY_REACHABLE);
  (*n.mutable_spec()->mutable_annotations()->mutable_labels())["zone"] = "a";
  n.mutable_meta()->mutable_created_at()->set_seconds(1'700'000'000);
  const std::string text = PrettyNode(n);
  EXPECT_EQ(text,
            "ID:\t\t\tnode1\n"
            "Labels:\n - zone = a\n"
            "Hostname:              \thost1\n"
            "Joined at:             \t2023-11-14 22:13:20 +0000 utc\n"
            "Status:\n State:\t\t\tReady\n Availability:         \tActive\n"
            " Address:\t\t10.0.0.1\n"
            "Manager Status:\n Address:\t\t10.0.0.1:2377\n Raft Status:\t\tReachable\n"
            " Leader:\t\tYes\n"
            "Platform:\n Operating System:\tlinux\n Architecture:\t\tx86_64\n"
            "Resources:\n CPUs:\t\t\t4\n Memory:\t\t8GiB\n"
            "Engine Version:\t\t0.1.0\n");
  n.clear_manager_status();
  EXPECT_THAT(PrettyNode(n), Not(HasSubstr("Manager Status")));
}

}  // namespace
}  // namespace swarm::cli

#include "cli/requests.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace swarm::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

TEST(BuildNetworkSpec, OverlayWithIpam) {
  NetworkFlags f;
  f.name = "backend";
  f.subnets = {"10.0.9.0/24", "fd00::/64"};
  f.gateways = {"fd00::1", "10.0.9.1"};
  f.ip_ranges = {"10.0.9.128/25"};
  f.aux_addresses = {"router=10.0.9.2"};
  f.labels = {"env=prod"};
  f.opts = {"encrypted="};
  f.attachable = true;
  f.internal = true;
  auto spec = BuildNetworkSpec(f);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->annotations().name(), "backend");
  EXPECT_THAT(spec->annotations().labels(), UnorderedElementsAre(Pair("env", "prod")));
  EXPECT_EQ(spec->driver_config().name(), "overlay");
  EXPECT_THAT(spec->driver_config().options(), UnorderedElementsAre(Pair("encrypted", "")));
  EXPECT_TRUE(spec->attachable());
  EXPECT_TRUE(spec->internal());
  ASSERT_EQ(spec->ipam().configs_size(), 2);
  const api::IPAMConfig& v4 = spec->ipam().configs(0);
  EXPECT_EQ(v4.subnet(), "10.0.9.0/24");
  EXPECT_EQ(v4.family(), api::ADDRESS_FAMILY_IPV4);
  EXPECT_EQ(v4.gateway(), "10.0.9.1");
  EXPECT_EQ(v4.range(), "10.0.9.128/25");
  EXPECT_THAT(v4.reserved(), UnorderedElementsAre(Pair("router", "10.0.9.2")));
  EXPECT_EQ(spec->ipam().configs(1).gateway(), "fd00::1");
  EXPECT_EQ(spec->ipam().configs(1).family(), api::ADDRESS_FAMILY_IPV6);
}

TEST(BuildNetworkSpec, Errors) {
  NetworkFlags f;
  EXPECT_THAT(BuildNetworkSpec(f).status().message(), HasSubstr("needs a name"));
  f.name = "n";
  f.gateways = {"10.0.0.1"};
  EXPECT_THAT(BuildNetworkSpec(f).status().message(),
              HasSubstr("no matching subnet for gateway 10.0.0.1 (give the network's --subnet"));
  f.subnets = {"10.1.0.0/16"};
  EXPECT_THAT(BuildNetworkSpec(f).status().message(),
              HasSubstr("no matching subnet for gateway 10.0.0.1 (subnets: 10.1.0.0/16)"));
  f.subnets = {"10.0.0.0/16", "10.0.1.0/24"};
  f.gateways.clear();
  EXPECT_THAT(BuildNetworkSpec(f).status().message(), HasSubstr("overlap"));
  f.subnets = {"10.0.0.0/33"};
  EXPECT_THAT(BuildNetworkSpec(f).status().message(), HasSubstr("invalid subnet"));
  f.subnets = {"10.0.0.0/24"};
  f.gateways = {"10.0.0.1", "10.0.0.2"};
  EXPECT_THAT(BuildNetworkSpec(f).status().message(), HasSubstr("has two gateways"));
  f.gateways = {"gw"};
  EXPECT_THAT(BuildNetworkSpec(f).status().message(), HasSubstr("not an IP address"));
  f.gateways.clear();
  f.opts = {"novalue"};
  EXPECT_THAT(BuildNetworkSpec(f).status().message(), HasSubstr("invalid opt"));
}

TEST(BuildSecretSpec, DataNameLabels) {
  auto spec = BuildSecretSpec("db", "pw", {"a=b"}, "", "golang");
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->annotations().name(), "db");
  EXPECT_EQ(spec->data(), "pw");
  EXPECT_EQ(spec->templating().name(), "golang");
  EXPECT_FALSE(spec->has_driver());
  EXPECT_THAT(BuildSecretSpec("db", "", {}, "", "").status().message(), HasSubstr("is empty"));
  EXPECT_TRUE(BuildSecretSpec("db", "", {}, "vault", "").ok());
  EXPECT_THAT(BuildSecretSpec("", "x", {}, "", "").status().message(), HasSubstr("needs a name"));
  auto config = BuildConfigSpec("site", "server {}", {"x"}, "");
  ASSERT_TRUE(config.ok());
  EXPECT_THAT(config->annotations().labels(), UnorderedElementsAre(Pair("x", "")));
  EXPECT_FALSE(BuildConfigSpec("site", "", {}, "").ok());
}

TEST(Filters, ParseAndConvert) {
  auto filters = ParseFilters({"name=web", "label=a=b", "ID=abc", "mode=global"},
                              {"id", "name", "label", "mode"});
  ASSERT_TRUE(filters.ok()) << filters.status();
  auto req = ServiceListRequest(*filters);
  ASSERT_TRUE(req.ok());
  EXPECT_THAT(req->filters().name_prefixes(), ElementsAre("web"));
  EXPECT_THAT(req->filters().id_prefixes(), ElementsAre("abc"));
  EXPECT_THAT(req->filters().labels(), UnorderedElementsAre(Pair("a", "b")));
  EXPECT_THAT(req->filters().modes(), ElementsAre(api::SERVICE_MODE_GLOBAL));

  EXPECT_EQ(ParseFilters({"colour=red"}, {"id", "name"}).status().message(),
            "invalid filter \"colour=red\": unknown filter colour (expected KEY=VALUE with KEY "
            "one of id, name)");
  EXPECT_THAT(ParseFilters({"name"}, {"name"}).status().message(), HasSubstr("not KEY=VALUE"));
  EXPECT_FALSE(ServiceListRequest({{"mode", "daemon"}}).ok());

  auto nodes = NodeListRequest({{"role", "manager"},
                                {"node.label", "ssd"},
                                {"label", "engine=x"},
                                {"membership", "accepted"},
                                {"availability", "drain"}});
  ASSERT_TRUE(nodes.ok());
  EXPECT_THAT(nodes->filters().roles(), ElementsAre(api::NODE_ROLE_MANAGER));
  EXPECT_THAT(nodes->filters().labels(), UnorderedElementsAre(Pair("ssd", "")));
  EXPECT_THAT(nodes->filters().engine_labels(), UnorderedElementsAre(Pair("engine", "x")));
  EXPECT_THAT(nodes->filters().memberships(), ElementsAre(api::NODE_MEMBERSHIP_ACCEPTED));
  EXPECT_THAT(nodes->filters().availabilities(), ElementsAre(api::NODE_AVAILABILITY_DRAIN));
  EXPECT_FALSE(NodeListRequest({{"membership", "maybe"}}).ok());

  auto tasks = TaskListRequest({{"desired-state", "Running"}, {"name", "web.1"}}, {"svc"}, {"n1"});
  ASSERT_TRUE(tasks.ok());
  EXPECT_THAT(tasks->filters().desired_states(), ElementsAre(api::TASK_STATE_RUNNING));
  EXPECT_THAT(tasks->filters().service_ids(), ElementsAre("svc"));
  EXPECT_THAT(tasks->filters().node_ids(), ElementsAre("n1"));
  EXPECT_THAT(tasks->filters().name_prefixes(), ElementsAre("web.1"));
  EXPECT_FALSE(TaskListRequest({{"desired-state", "sleeping"}}, {}, {}).ok());

  EXPECT_THAT(NetworkListRequest({{"name", "ingress"}})->filters().name_prefixes(),
              ElementsAre("ingress"));
  EXPECT_THAT(SecretListRequest({{"id", "x"}})->filters().id_prefixes(), ElementsAre("x"));
  EXPECT_THAT(ConfigListRequest({{"label", "k=v"}})->filters().labels(),
              UnorderedElementsAre(Pair("k", "v")));
}

TEST(ApplyClusterUpdate, ChangesOnlyWhatIsGiven) {
  api::ClusterSpec spec;
  spec.mutable_orchestration()->set_task_history_retention_limit(5);
  ClusterFlags f;
  EXPECT_THAT(ApplyClusterUpdate(f, &spec).message(), HasSubstr("nothing to update"));
  f.autolock = true;
  f.cert_expiry = "720h";
  f.dispatcher_heartbeat = "10s";
  ASSERT_TRUE(ApplyClusterUpdate(f, &spec).ok());
  EXPECT_TRUE(spec.encryption_config().auto_lock_managers());
  EXPECT_EQ(spec.ca_config().node_cert_expiry().seconds(), 720 * 3600);
  EXPECT_EQ(spec.dispatcher().heartbeat_period().seconds(), 10);
  EXPECT_EQ(spec.orchestration().task_history_retention_limit(), 5);
  f = ClusterFlags();
  f.task_history_limit = "-1";
  ASSERT_TRUE(ApplyClusterUpdate(f, &spec).ok());
  EXPECT_EQ(spec.orchestration().task_history_retention_limit(), -1);
  EXPECT_TRUE(spec.encryption_config().auto_lock_managers());
  f = ClusterFlags();
  f.cert_expiry = "30m";
  EXPECT_THAT(ApplyClusterUpdate(f, &spec).message(), HasSubstr("shorter than one hour"));
  f = ClusterFlags();
  f.dispatcher_heartbeat = "0s";
  EXPECT_THAT(ApplyClusterUpdate(f, &spec).message(), HasSubstr("must be positive"));
}

}  // namespace
}  // namespace swarm::cli

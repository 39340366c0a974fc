#include "cli/service_spec.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <map>

#include "common/registry_auth.h"

namespace swarm::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

ServiceFlagEnv TestEnv() {
  ServiceFlagEnv env;
  env.getenv = [](const std::string& name) -> std::optional<std::string> {
    if (name == "TOKEN") return "s3cret";
    return std::nullopt;
  };
  env.read_file = [](const std::string& path) -> absl::StatusOr<std::string> {
    if (path == "app.env") return "# app\nA=1\nTOKEN\nB=2\n";
    return absl::NotFoundError("no such file");
  };
  env.network_id = [](const std::string& name) -> std::string {
    static const std::map<std::string, std::string> ids = {{"backend", "net-backend-id"},
                                                           {"net-backend-id", "net-backend-id"},
                                                           {"front", "net-front-id"},
                                                           {"net-front-id", "net-front-id"}};
    auto it = ids.find(name);
    return it == ids.end() ? "" : it->second;
  };
  return env;
}

absl::StatusOr<api::ServiceSpec> Create(ServiceFlags f) {
  if (f.image.empty()) f.image = "nginx:1.25";
  return BuildServiceSpec(f, TestEnv());
}

std::string CreateError(ServiceFlags f) {
  auto spec = Create(std::move(f));
  return spec.ok() ? "" : std::string(spec.status().message());
}

int64_t Seconds(const google::protobuf::Duration& d) { return d.seconds(); }

TEST(BuildServiceSpec, Minimal) {
  ServiceFlags f;
  f.image = "nginx";
  auto spec = BuildServiceSpec(f, TestEnv());
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->task_template().container().image(), "nginx");
  ASSERT_TRUE(spec->has_replicated());
  EXPECT_EQ(spec->replicated().replicas(), 1u);
  // Unset policies stay unset so the cluster's defaults apply.
  EXPECT_FALSE(spec->has_update_config());
  EXPECT_FALSE(spec->has_rollback_config());
  EXPECT_FALSE(spec->task_template().has_restart_policy());
  EXPECT_FALSE(spec->has_endpoint_spec());
  EXPECT_FALSE(spec->task_template().has_placement());
  EXPECT_FALSE(spec->task_template().has_resources());
}

TEST(BuildServiceSpec, NeedsAnImage) {
  ServiceFlags f;
  EXPECT_FALSE(BuildServiceSpec(f, TestEnv()).ok());
}

TEST(BuildServiceSpec, EverythingCommon) {
  ServiceFlags f;
  f.image = "redis:7";
  f.args = {"redis-server", "--appendonly", "yes"};
  f.name = "cache";
  f.replicas = "3";
  f.env_files = {"app.env"};
  f.env = {"B=3", "C=4"};
  f.labels = {"tier=backend", "team"};
  f.container_labels = {"c=1"};
  f.publish = {"6379:6379", "published=9000,target=9000,mode=host"};
  f.mounts = {"type=volume,source=data,target=/data"};
  f.networks = {"backend"};
  f.constraints = {"node.role==worker"};
  f.placement_prefs = {"spread=node.labels.dc"};
  f.replicas_max_per_node = "2";
  f.limit_cpu = "0.5";
  f.limit_memory = "512M";
  f.limit_pids = "100";
  f.reserve_cpu = "0.25";
  f.reserve_memory = "256m";
  f.restart_condition = "on-failure";
  f.restart_max_attempts = "3";
  f.update_delay = "10s";
  f.update_order = "start-first";
  f.rollback_parallelism = "2";
  f.rollback_failure_action = "continue";
  f.endpoint_mode = "dnsrr";
  f.workdir = "/data";
  f.user = "redis";
  f.hostname = "{{.Task.Name}}";
  f.entrypoint = "docker-entrypoint.sh --verbose";
  f.stop_grace_period = "30s";
  f.stop_signal = "SIGINT";
  f.tty = true;
  f.init = true;
  f.read_only = false;
  f.oom_score_adj = "-500";
  f.health_cmd = "redis-cli ping";
  f.health_interval = "5s";
  f.health_retries = "3";
  f.dns = {"10.0.0.2"};
  f.dns_search = {"example.org"};
  f.dns_options = {"ndots:2"};
  f.hosts = {"db:10.0.0.5"};
  f.groups = {"audio"};
  f.cap_add = {"net_admin"};
  f.cap_drop = {"mknod"};
  f.ulimits = {"nofile=1024:2048"};
  f.sysctls = {"net.core.somaxconn=1024"};
  f.log_driver = "json-file";
  f.log_opts = {"max-size=10m"};
  f.secrets = {"db_password"};
  f.configs = {"source=redis_conf,target=/etc/redis.conf"};
  auto spec = BuildServiceSpec(f, TestEnv());
  ASSERT_TRUE(spec.ok()) << spec.status();

  EXPECT_EQ(spec->annotations().name(), "cache");
  EXPECT_THAT(spec->annotations().labels(),
              UnorderedElementsAre(Pair("tier", "backend"), Pair("team", "")));
  EXPECT_EQ(spec->replicated().replicas(), 3u);
  const api::ContainerSpec& c = spec->task_template().container();
  EXPECT_EQ(c.image(), "redis:7");
  EXPECT_THAT(c.args(), ElementsAre("redis-server", "--appendonly", "yes"));
  EXPECT_THAT(c.command(), ElementsAre("docker-entrypoint.sh", "--verbose"));
  // --env-file first, then --env; a later value of a key replaces the earlier one.
  EXPECT_THAT(c.env(), ElementsAre("A=1", "TOKEN=s3cret", "B=3", "C=4"));
  EXPECT_THAT(c.labels(), UnorderedElementsAre(Pair("c", "1")));
  EXPECT_EQ(c.dir(), "/data");
  EXPECT_EQ(c.user(), "redis");
  EXPECT_EQ(c.hostname(), "{{.Task.Name}}");
  EXPECT_EQ(Seconds(c.stop_grace_period()), 30);
  EXPECT_EQ(c.stop_signal(), "SIGINT");
  EXPECT_TRUE(c.tty());
  EXPECT_TRUE(c.init());
  EXPECT_FALSE(c.read_only());
  EXPECT_EQ(c.oom_score_adj(), -500);
  EXPECT_THAT(c.healthcheck().test(), ElementsAre("CMD-SHELL", "redis-cli ping"));
  EXPECT_EQ(Seconds(c.healthcheck().interval()), 5);
  EXPECT_EQ(c.healthcheck().retries(), 3);
  EXPECT_THAT(c.dns_config().nameservers(), ElementsAre("10.0.0.2"));
  EXPECT_THAT(c.dns_config().search(), ElementsAre("example.org"));
  EXPECT_THAT(c.dns_config().options(), ElementsAre("ndots:2"));
  EXPECT_THAT(c.hosts(), ElementsAre("10.0.0.5 db"));
  EXPECT_THAT(c.groups(), ElementsAre("audio"));
  EXPECT_THAT(c.capability_add(), ElementsAre("CAP_NET_ADMIN"));
  EXPECT_THAT(c.capability_drop(), ElementsAre("CAP_MKNOD"));
  ASSERT_EQ(c.ulimits_size(), 1);
  EXPECT_EQ(c.ulimits(0).hard(), 2048);
  EXPECT_THAT(c.sysctls(), UnorderedElementsAre(Pair("net.core.somaxconn", "1024")));
  ASSERT_EQ(c.mounts_size(), 1);
  EXPECT_EQ(c.mounts(0).target(), "/data");
  ASSERT_EQ(c.secrets_size(), 1);
  EXPECT_EQ(c.secrets(0).secret_name(), "db_password");
  ASSERT_EQ(c.configs_size(), 1);
  EXPECT_EQ(c.configs(0).file().name(), "/etc/redis.conf");

  const api::TaskSpec& t = spec->task_template();
  EXPECT_EQ(t.resources().limits().nano_cpus(), 500'000'000);
  EXPECT_EQ(t.resources().limits().memory_bytes(), 512 * 1024 * 1024);
  EXPECT_EQ(t.resources().limits().pids(), 100);
  EXPECT_EQ(t.resources().reservations().nano_cpus(), 250'000'000);
  EXPECT_EQ(t.resources().reservations().memory_bytes(), 256 * 1024 * 1024);
  EXPECT_EQ(t.restart_policy().condition(), api::RESTART_CONDITION_ON_FAILURE);
  EXPECT_EQ(t.restart_policy().max_attempts(), 3u);
  EXPECT_EQ(Seconds(t.restart_policy().delay()), 5);  // the default delay is kept
  EXPECT_THAT(t.placement().constraints(), ElementsAre("node.role==worker"));
  ASSERT_EQ(t.placement().preferences_size(), 1);
  EXPECT_EQ(t.placement().preferences(0).spread().spread_descriptor(), "node.labels.dc");
  EXPECT_EQ(t.placement().max_replicas(), 2u);
  ASSERT_EQ(t.networks_size(), 1);
  EXPECT_EQ(t.networks(0).target(), "backend");  // the control API resolves names
  EXPECT_EQ(t.log_driver().name(), "json-file");
  EXPECT_THAT(t.log_driver().options(), UnorderedElementsAre(Pair("max-size", "10m")));

  EXPECT_EQ(spec->endpoint_spec().mode(), api::RESOLUTION_MODE_DNSRR);
  ASSERT_EQ(spec->endpoint_spec().ports_size(), 2);
  EXPECT_EQ(spec->endpoint_spec().ports(0).published_port(), 6379u);
  EXPECT_EQ(spec->endpoint_spec().ports(1).publish_mode(), api::PUBLISH_MODE_HOST);

  ASSERT_TRUE(spec->has_update_config());
  EXPECT_EQ(spec->update_config().parallelism(), 1u);  // Docker's default
  EXPECT_EQ(Seconds(spec->update_config().delay()), 10);
  EXPECT_EQ(spec->update_config().order(), api::UPDATE_ORDER_START_FIRST);
  ASSERT_TRUE(spec->has_rollback_config());
  EXPECT_EQ(spec->rollback_config().parallelism(), 2u);
  EXPECT_EQ(spec->rollback_config().failure_action(), api::UPDATE_FAILURE_ACTION_CONTINUE);
}

TEST(BuildServiceSpec, WithRegistryAuthSendsTheImageRegistrysDockerLogin) {
  ServiceFlagEnv env = TestEnv();
  env.getenv = [](const std::string& name) -> std::optional<std::string> {
    if (name == "DOCKER_CONFIG") return "/cfg";
    return std::nullopt;
  };
  env.read_file = [](const std::string& path) -> absl::StatusOr<std::string> {
    if (path != "/cfg/config.json") return absl::NotFoundError(path);
    // "alice:secret" and "hub:pw"
    return R"({"auths": {"registry.example:5000": {"auth": "YWxpY2U6c2VjcmV0"},
                         "https://index.docker.io/v1/": {"auth": "aHViOnB3"}}})";
  };
  ServiceFlags f;
  f.image = "registry.example:5000/team/app:1.2";
  f.with_registry_auth = true;
  auto spec = BuildServiceSpec(f, env);
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto auth = DecodeRegistryAuth(spec->task_template().container().pull_options().registry_auth());
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_EQ(auth->username, "alice");
  EXPECT_EQ(auth->password, "secret");

  // An image of a registry without a login gets an empty one (replacing an older login on
  // update, as Docker's "{}"); without the flag nothing is read.
  f.image = "other.example/app";
  spec = BuildServiceSpec(f, env);
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto none = DecodeRegistryAuth(spec->task_template().container().pull_options().registry_auth());
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->username, "");
  EXPECT_EQ(none->server_address, "");
  f.image = "busybox";
  f.with_registry_auth = false;
  spec = BuildServiceSpec(f, env);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_FALSE(spec->task_template().container().has_pull_options());
  f.with_registry_auth = true;
  spec = BuildServiceSpec(f, env);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(DecodeRegistryAuth(spec->task_template().container().pull_options().registry_auth())
                ->username,
            "hub");
}

TEST(BuildServiceSpec, Modes) {
  ServiceFlags f;
  f.mode = "global";
  auto spec = Create(f);
  ASSERT_TRUE(spec.ok());
  EXPECT_TRUE(spec->has_global());

  f.mode = "replicated-job";
  f.replicas = "5";
  f.max_concurrent = "2";
  spec = Create(f);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->replicated_job().total_completions(), 5u);
  EXPECT_EQ(spec->replicated_job().max_concurrent(), 2u);

  f = ServiceFlags();
  f.mode = "replicated-job";
  spec = Create(f);
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->replicated_job().total_completions(), 1u);

  f.mode = "global-job";
  spec = Create(f);
  ASSERT_TRUE(spec.ok());
  EXPECT_TRUE(spec->has_global_job());

  f = ServiceFlags();
  f.mode = "global";
  f.replicas = "2";
  EXPECT_EQ(CreateError(f), "--replicas can only be used with replicated or replicated-job mode");
  f = ServiceFlags();
  f.max_concurrent = "2";
  EXPECT_EQ(CreateError(f), "--max-concurrent can only be used with replicated-job mode");
  f = ServiceFlags();
  f.mode = "daemon";
  EXPECT_THAT(CreateError(f), HasSubstr("invalid mode \"daemon\""));
}

TEST(BuildServiceSpec, ParseErrorsComeBack) {
  ServiceFlags f;
  f.publish = {"80:x"};
  EXPECT_THAT(CreateError(f), HasSubstr("invalid publish \"80:x\""));
  f = ServiceFlags();
  f.limit_memory = "lots";
  EXPECT_THAT(CreateError(f), HasSubstr("invalid limit-memory \"lots\""));
  f = ServiceFlags();
  f.update_delay = "10";
  EXPECT_THAT(CreateError(f), HasSubstr("invalid update-delay \"10\""));
  f = ServiceFlags();
  f.rollback_failure_action = "rollback";
  EXPECT_THAT(CreateError(f), HasSubstr("invalid rollback-failure-action"));
  f = ServiceFlags();
  f.env_files = {"missing.env"};
  EXPECT_THAT(CreateError(f), HasSubstr("cannot read --env-file missing.env"));
  f = ServiceFlags();
  f.health_cmd = "true";
  f.no_healthcheck = true;
  EXPECT_THAT(CreateError(f), HasSubstr("--no-healthcheck conflicts"));
  f = ServiceFlags();
  f.mounts = {"type=tmpfs,target=/x", "type=volume,target=/x"};
  EXPECT_THAT(CreateError(f), HasSubstr("two mounts have the target /x"));
  f = ServiceFlags();
  f.secrets = {"a", "source=b,target=a"};
  EXPECT_THAT(CreateError(f), HasSubstr("secret target a is used twice"));
  f = ServiceFlags();
  f.publish = {"80:80", "80:81"};
  EXPECT_THAT(CreateError(f), HasSubstr("port 80 is published twice"));
  f = ServiceFlags();
  f.log_opts = {"max-size=1m"};
  EXPECT_THAT(CreateError(f), HasSubstr("--log-opt needs a log driver"));
  f = ServiceFlags();
  f.entrypoint = "sh -c 'oops";
  EXPECT_THAT(CreateError(f), HasSubstr("quote is not closed"));
}

TEST(BuildServiceSpec, NoHealthcheck) {
  ServiceFlags f;
  f.no_healthcheck = true;
  auto spec = Create(f);
  ASSERT_TRUE(spec.ok());
  EXPECT_THAT(spec->task_template().container().healthcheck().test(), ElementsAre("NONE"));
}

// A service as the cluster would return it, to update.
api::ServiceSpec Existing() {
  ServiceFlags f;
  f.image = "nginx:1.24";
  f.name = "web";
  f.replicas = "2";
  f.env = {"A=1", "B=2"};
  f.labels = {"tier=front", "old=1"};
  f.container_labels = {"x=1"};
  f.publish = {"8080:80", "published=9443,target=443,mode=host"};
  f.mounts = {"type=bind,source=/srv,target=/usr/share/nginx/html", "type=tmpfs,target=/cache"};
  f.constraints = {"node.role==worker", "node.labels.ssd==true"};
  f.secrets = {"tls_key"};
  f.configs = {"nginx_conf"};
  f.hosts = {"db:10.0.0.5"};
  f.dns = {"10.0.0.2"};
  auto spec = BuildServiceSpec(f, TestEnv());
  EXPECT_TRUE(spec.ok()) << spec.status();
  api::ServiceSpec s = *spec;
  // The control API resolves names to IDs.
  s.mutable_task_template()->add_networks()->set_target("net-backend-id");
  s.mutable_task_template()->mutable_container()->mutable_secrets(0)->set_secret_id("sec-1");
  s.mutable_task_template()->mutable_container()->mutable_configs(0)->set_config_id("cfg-1");
  return s;
}

absl::StatusOr<api::ServiceSpec> Update(const ServiceFlags& f) {
  api::ServiceSpec spec = Existing();
  absl::Status s = ApplyServiceUpdate(f, TestEnv(), &spec);
  if (!s.ok()) return s;
  return spec;
}

TEST(ApplyServiceUpdate, NoFlagsChangesNothing) {
  auto spec = Update(ServiceFlags());
  ASSERT_TRUE(spec.ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*spec, Existing()));
}

TEST(ApplyServiceUpdate, ImageArgsReplicasForce) {
  ServiceFlags f;
  f.update_image = "nginx:1.25";
  f.update_args = "nginx -g 'daemon off;'";
  f.replicas = "5";
  f.force = true;
  auto spec = Update(f);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->task_template().container().image(), "nginx:1.25");
  EXPECT_THAT(spec->task_template().container().args(), ElementsAre("nginx", "-g", "daemon off;"));
  EXPECT_EQ(spec->replicated().replicas(), 5u);
  EXPECT_EQ(spec->task_template().force_update(), 1u);
  f = ServiceFlags();
  f.force = true;
  api::ServiceSpec twice = *spec;
  ASSERT_TRUE(ApplyServiceUpdate(f, TestEnv(), &twice).ok());
  EXPECT_EQ(twice.task_template().force_update(), 2u);
}

TEST(ApplyServiceUpdate, EnvAddReplacesAndRmRemovesByKey) {
  ServiceFlags f;
  f.env = {"B=20", "C=3", "TOKEN"};
  f.env_rm = {"A"};
  auto spec = Update(f);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_THAT(spec->task_template().container().env(), ElementsAre("B=20", "C=3", "TOKEN=s3cret"));
}

TEST(ApplyServiceUpdate, LabelsAndContainerLabels) {
  ServiceFlags f;
  f.labels = {"tier=back", "new=1"};
  f.label_rm = {"old", "absent"};
  f.container_labels = {"y=2"};
  f.container_label_rm = {"x"};
  auto spec = Update(f);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_THAT(spec->annotations().labels(),
              UnorderedElementsAre(Pair("tier", "back"), Pair("new", "1")));
  EXPECT_THAT(spec->task_template().container().labels(), UnorderedElementsAre(Pair("y", "2")));
}

TEST(ApplyServiceUpdate, PublishAddAndRm) {
  ServiceFlags f;
  f.publish_rm = {"80"};  // by target port (and protocol, mode)
  f.publish = {"8081:81", "8081:81"};
  auto spec = Update(f);
  ASSERT_TRUE(spec.ok()) << spec.status();
  const auto& ports = spec->endpoint_spec().ports();
  ASSERT_EQ(ports.size(), 2);
  EXPECT_EQ(ports[0].target_port(), 443u);  // host mode: not matched by the short form
  EXPECT_EQ(ports[1].target_port(), 81u);

  f = ServiceFlags();
  f.publish_rm = {"published=9443,target=443,mode=host"};
  spec = Update(f);
  ASSERT_TRUE(spec.ok());
  ASSERT_EQ(spec->endpoint_spec().ports_size(), 1);
  EXPECT_EQ(spec->endpoint_spec().ports(0).target_port(), 80u);

  f = ServiceFlags();
  f.publish = {"8080:81"};
  EXPECT_THAT(Update(f).status().message(), HasSubstr("port 8080 is published twice"));
}

TEST(ApplyServiceUpdate, MountsByTarget) {
  ServiceFlags f;
  f.mount_rm = {"/cache"};
  f.mounts = {"type=bind,source=/www,target=/usr/share/nginx/html,readonly",
              "type=volume,source=logs,target=/var/log/nginx"};
  auto spec = Update(f);
  ASSERT_TRUE(spec.ok()) << spec.status();
  const auto& mounts = spec->task_template().container().mounts();
  ASSERT_EQ(mounts.size(), 2);
  EXPECT_EQ(mounts[0].source(), "/www");  // replaced in place
  EXPECT_TRUE(mounts[0].readonly());
  EXPECT_EQ(mounts[1].target(), "/var/log/nginx");
}

TEST(ApplyServiceUpdate, ConstraintsAndPreferences) {
  ServiceFlags f;
  f.constraint_rm = {"node.role==worker"};
  f.constraints = {"node.labels.ssd==true", "node.platform.os==linux"};
  f.placement_prefs = {"spread=node.labels.rack"};
  auto spec = Update(f);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_THAT(spec->task_template().placement().constraints(),
              ElementsAre("node.labels.ssd==true", "node.platform.os==linux"));
  f = ServiceFlags();
  f.placement_pref_rm = {"spread=node.labels.rack"};
  api::ServiceSpec again = *spec;
  ASSERT_TRUE(ApplyServiceUpdate(f, TestEnv(), &again).ok());
  EXPECT_THAT(again.task_template().placement().preferences(), IsEmpty());
}

TEST(ApplyServiceUpdate, NetworksMatchNamesAndIds) {
  ServiceFlags f;
  f.networks = {"front"};
  f.network_rm = {"backend"};  // the attachment holds the ID
  auto spec = Update(f);
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->task_template().networks_size(), 1);
  EXPECT_EQ(spec->task_template().networks(0).target(), "front");

  f = ServiceFlags();
  f.networks = {"backend"};
  EXPECT_THAT(Update(f).status().message(),
              HasSubstr("the service is already attached to network backend"));
}

TEST(ApplyServiceUpdate, SecretsAndConfigs) {
  ServiceFlags f;
  f.secret_rm = {"tls_key"};
  f.secrets = {"source=tls_key_v2,target=tls_key"};
  f.config_rm = {"cfg-1"};  // by ID works too
  f.configs = {"site"};
  auto spec = Update(f);
  ASSERT_TRUE(spec.ok()) << spec.status();
  const api::ContainerSpec& c = spec->task_template().container();
  ASSERT_EQ(c.secrets_size(), 1);
  EXPECT_EQ(c.secrets(0).secret_name(), "tls_key_v2");
  EXPECT_EQ(c.secrets(0).file().name(), "tls_key");
  ASSERT_EQ(c.configs_size(), 1);
  EXPECT_EQ(c.configs(0).config_name(), "site");

  f = ServiceFlags();
  f.secrets = {"source=other,target=tls_key"};
  EXPECT_THAT(Update(f).status().message(), HasSubstr("secret target tls_key is used twice"));
}

TEST(ApplyServiceUpdate, HostsDnsGroupsCapsUlimitsSysctls) {
  ServiceFlags f;
  f.host_rm = {"db"};
  f.hosts = {"cache:10.0.0.6"};
  f.dns_rm = {"10.0.0.2"};
  f.dns = {"1.1.1.1"};
  f.groups = {"video"};
  f.cap_add = {"SYS_TIME"};
  f.ulimits = {"nofile=10"};
  f.sysctls = {"a=1"};
  auto spec = Update(f);
  ASSERT_TRUE(spec.ok()) << spec.status();
  api::ContainerSpec c = spec->task_template().container();
  EXPECT_THAT(c.hosts(), ElementsAre("10.0.0.6 cache"));
  EXPECT_THAT(c.dns_config().nameservers(), ElementsAre("1.1.1.1"));
  EXPECT_THAT(c.groups(), ElementsAre("video"));
  EXPECT_THAT(c.capability_add(), ElementsAre("CAP_SYS_TIME"));

  f = ServiceFlags();
  f.cap_drop = {"sys_time"};
  f.ulimit_rm = {"nofile"};
  f.sysctl_rm = {"a"};
  f.group_rm = {"video"};
  ASSERT_TRUE(ApplyServiceUpdate(f, TestEnv(), spec.operator->()).ok());
  c = spec->task_template().container();
  EXPECT_THAT(c.capability_add(), IsEmpty());
  EXPECT_THAT(c.capability_drop(), ElementsAre("CAP_SYS_TIME"));
  EXPECT_THAT(c.ulimits(), IsEmpty());
  EXPECT_THAT(c.sysctls(), IsEmpty());
  EXPECT_THAT(c.groups(), IsEmpty());
}

TEST(ApplyServiceUpdate, PoliciesKeepWhatIsNotGiven) {
  ServiceFlags f;
  f.update_parallelism = "0";
  f.restart_delay = "1m";
  auto spec = Update(f);
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_TRUE(spec->has_update_config());
  EXPECT_EQ(spec->update_config().parallelism(), 0u);  // set: all at once
  EXPECT_EQ(spec->task_template().restart_policy().condition(), api::RESTART_CONDITION_ANY);
  EXPECT_EQ(Seconds(spec->task_template().restart_policy().delay()), 60);

  f = ServiceFlags();
  f.update_monitor = "30s";
  api::ServiceSpec again = *spec;
  ASSERT_TRUE(ApplyServiceUpdate(f, TestEnv(), &again).ok());
  EXPECT_EQ(again.update_config().parallelism(), 0u);
  EXPECT_EQ(Seconds(again.update_config().monitor()), 30);
}

TEST(ApplyServiceUpdate, HealthcheckTransitions) {
  ServiceFlags f;
  f.no_healthcheck = true;
  auto spec = Update(f);
  ASSERT_TRUE(spec.ok());
  EXPECT_THAT(spec->task_template().container().healthcheck().test(), ElementsAre("NONE"));
  f = ServiceFlags();
  f.health_interval = "10s";  // re-enables the image's check with another interval
  ASSERT_TRUE(ApplyServiceUpdate(f, TestEnv(), spec.operator->()).ok());
  EXPECT_THAT(spec->task_template().container().healthcheck().test(), IsEmpty());
  EXPECT_EQ(Seconds(spec->task_template().container().healthcheck().interval()), 10);
}

TEST(ApplyServiceUpdate, Refusals) {
  ServiceFlags f;
  f.mode = "global";
  EXPECT_THAT(Update(f).status().message(), HasSubstr("mode of a service cannot change"));
  f = ServiceFlags();
  f.name = "other";
  EXPECT_THAT(Update(f).status().message(), HasSubstr("cannot be renamed"));
  f = ServiceFlags();
  f.update_image = "";
  EXPECT_THAT(Update(f).status().message(), HasSubstr("--image must not be empty"));
  f = ServiceFlags();
  f.max_concurrent = "3";
  EXPECT_THAT(Update(f).status().message(), HasSubstr("replicated-job"));

  api::ServiceSpec global;
  global.mutable_global();
  global.mutable_task_template()->mutable_container()->set_image("x");
  f = ServiceFlags();
  f.replicas = "3";
  EXPECT_FALSE(ApplyServiceUpdate(f, TestEnv(), &global).ok());
}

TEST(ResolveReferences, NamesThenIds) {
  api::ServiceSpec spec = Existing();
  spec.mutable_task_template()->mutable_container()->mutable_secrets(0)->clear_secret_id();
  auto* cfg = spec.mutable_task_template()->mutable_container()->mutable_configs(0);
  cfg->clear_config_id();
  cfg->set_config_name("cfg-9");  // an ID typed instead of a name

  api::Secret secret;
  secret.set_id("sec-7");
  secret.mutable_spec()->mutable_annotations()->set_name("tls_key");
  api::Config config;
  config.set_id("cfg-9");
  config.mutable_spec()->mutable_annotations()->set_name("nginx_conf");
  ASSERT_TRUE(ResolveReferences({secret}, {config}, &spec).ok());
  EXPECT_EQ(spec.task_template().container().secrets(0).secret_id(), "sec-7");
  EXPECT_EQ(spec.task_template().container().configs(0).config_id(), "cfg-9");
  EXPECT_EQ(spec.task_template().container().configs(0).config_name(), "nginx_conf");

  spec.mutable_task_template()->mutable_container()->add_secrets()->set_secret_name("nope");
  absl::Status s = ResolveReferences({secret}, {config}, &spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "secret not found: nope");
}

}  // namespace
}  // namespace swarm::cli

namespace swarm::cli {
namespace {

// Every flag, set to hostile values, gives a spec or an error, never a crash.
TEST(ServiceFlags, NeverCrashOnHostileInput) {
  using Opt = std::optional<std::string> ServiceFlags::*;
  using Vec = std::vector<std::string> ServiceFlags::*;
  const Opt opts[] = {&ServiceFlags::update_image,
                      &ServiceFlags::update_args,
                      &ServiceFlags::name,
                      &ServiceFlags::mode,
                      &ServiceFlags::replicas,
                      &ServiceFlags::max_concurrent,
                      &ServiceFlags::workdir,
                      &ServiceFlags::user,
                      &ServiceFlags::hostname,
                      &ServiceFlags::entrypoint,
                      &ServiceFlags::stop_signal,
                      &ServiceFlags::stop_grace_period,
                      &ServiceFlags::limit_cpu,
                      &ServiceFlags::limit_memory,
                      &ServiceFlags::limit_pids,
                      &ServiceFlags::reserve_cpu,
                      &ServiceFlags::reserve_memory,
                      &ServiceFlags::restart_condition,
                      &ServiceFlags::restart_delay,
                      &ServiceFlags::restart_max_attempts,
                      &ServiceFlags::restart_window,
                      &ServiceFlags::update_parallelism,
                      &ServiceFlags::update_delay,
                      &ServiceFlags::update_failure_action,
                      &ServiceFlags::update_monitor,
                      &ServiceFlags::update_max_failure_ratio,
                      &ServiceFlags::update_order,
                      &ServiceFlags::rollback_parallelism,
                      &ServiceFlags::rollback_delay,
                      &ServiceFlags::rollback_failure_action,
                      &ServiceFlags::rollback_monitor,
                      &ServiceFlags::rollback_max_failure_ratio,
                      &ServiceFlags::rollback_order,
                      &ServiceFlags::endpoint_mode,
                      &ServiceFlags::replicas_max_per_node,
                      &ServiceFlags::health_cmd,
                      &ServiceFlags::health_interval,
                      &ServiceFlags::health_timeout,
                      &ServiceFlags::health_retries,
                      &ServiceFlags::health_start_period,
                      &ServiceFlags::health_start_interval,
                      &ServiceFlags::log_driver};
  const Vec vecs[] = {&ServiceFlags::log_opts,
                      &ServiceFlags::env,
                      &ServiceFlags::env_files,
                      &ServiceFlags::labels,
                      &ServiceFlags::container_labels,
                      &ServiceFlags::mounts,
                      &ServiceFlags::publish,
                      &ServiceFlags::networks,
                      &ServiceFlags::constraints,
                      &ServiceFlags::placement_prefs,
                      &ServiceFlags::secrets,
                      &ServiceFlags::configs,
                      &ServiceFlags::dns,
                      &ServiceFlags::dns_search,
                      &ServiceFlags::dns_options,
                      &ServiceFlags::hosts,
                      &ServiceFlags::groups,
                      &ServiceFlags::cap_add,
                      &ServiceFlags::cap_drop,
                      &ServiceFlags::ulimits,
                      &ServiceFlags::sysctls,
                      &ServiceFlags::env_rm,
                      &ServiceFlags::label_rm,
                      &ServiceFlags::container_label_rm,
                      &ServiceFlags::mount_rm,
                      &ServiceFlags::publish_rm,
                      &ServiceFlags::network_rm,
                      &ServiceFlags::constraint_rm,
                      &ServiceFlags::placement_pref_rm,
                      &ServiceFlags::secret_rm,
                      &ServiceFlags::config_rm,
                      &ServiceFlags::dns_rm,
                      &ServiceFlags::dns_search_rm,
                      &ServiceFlags::dns_option_rm,
                      &ServiceFlags::host_rm,
                      &ServiceFlags::group_rm,
                      &ServiceFlags::ulimit_rm,
                      &ServiceFlags::sysctl_rm};
  const std::vector<std::string> inputs = {
      "", "=", ",", "\"", ":", "-1", "99999999999999999999", "\xff", "a=b,c", "type=bind"};
  for (const std::string& in : inputs) {
    for (Opt o : opts) {
      ServiceFlags f;
      f.image = "x";
      f.*o = in;
      (void)BuildServiceSpec(f, TestEnv());
      api::ServiceSpec spec = Existing();
      (void)ApplyServiceUpdate(f, TestEnv(), &spec);
    }
    for (Vec v : vecs) {
      ServiceFlags f;
      f.image = "x";
      (f.*v).push_back(in);
      (f.*v).push_back(in);
      (void)BuildServiceSpec(f, TestEnv());
      api::ServiceSpec spec = Existing();
      (void)ApplyServiceUpdate(f, TestEnv(), &spec);
    }
  }
}

}  // namespace
}  // namespace swarm::cli

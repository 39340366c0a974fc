#include "manager/controlapi/validation.h"

#include <functional>

#include "gtest/gtest.h"
#include "manager/ca/ca.h"

namespace swarm::manager::controlapi {
namespace {

api::ServiceSpec ValidService() {
  api::ServiceSpec s;
  s.mutable_annotations()->set_name("web");
  s.mutable_replicated()->set_replicas(2);
  s.mutable_task_template()->mutable_container()->set_image("nginx:1.25");
  return s;
}

api::ContainerSpec* Container(api::ServiceSpec* s) {
  return s->mutable_task_template()->mutable_container();
}

// The status must be INVALID_ARGUMENT and mention `text`.
::testing::AssertionResult Invalid(const absl::Status& s, const std::string& text) {
  if (s.code() != absl::StatusCode::kInvalidArgument) {
    return ::testing::AssertionFailure() << "expected INVALID_ARGUMENT, got " << s;
  }
  if (std::string(s.message()).find(text) == std::string::npos) {
    return ::testing::AssertionFailure() << "\"" << s.message() << "\" lacks \"" << text << "\"";
  }
  return ::testing::AssertionSuccess();
}

// Applies change to a valid service spec and validates it.
absl::Status ServiceWith(const std::function<void(api::ServiceSpec*)>& change) {
  api::ServiceSpec s = ValidService();
  change(&s);
  return ValidateServiceSpec(s);
}

google::protobuf::Duration Seconds(int64_t s, int32_t nanos = 0) {
  google::protobuf::Duration d;
  d.set_seconds(s);
  d.set_nanos(nanos);
  return d;
}

TEST(ValidationTest, ServiceName_FollowsTheDnsLabelRule) {
  EXPECT_TRUE(ValidateServiceName("web").ok());
  EXPECT_TRUE(ValidateServiceName("my_web-2").ok());
  EXPECT_TRUE(ValidateServiceName(std::string(63, 'a')).ok());
  EXPECT_TRUE(Invalid(ValidateServiceName(""), "needs a name"));
  EXPECT_TRUE(Invalid(ValidateServiceName(std::string(64, 'a')), "1-63 characters"));
  EXPECT_TRUE(Invalid(ValidateServiceName("-web"), "begins and ends with a letter or digit"));
  EXPECT_TRUE(Invalid(ValidateServiceName("web-"), "1-63 characters"));
  EXPECT_TRUE(Invalid(ValidateServiceName("web.app"), "invalid service name \"web.app\""));
  EXPECT_TRUE(Invalid(ValidateServiceName("web app"), "letters, digits, '-' and '_'"));
}

TEST(ValidationTest, NetworkSecretConfigNames_FollowDockersRules) {
  EXPECT_TRUE(ValidateNetworkName("my.net_1-a").ok());
  EXPECT_TRUE(ValidateNetworkName("net-").ok());
  EXPECT_TRUE(Invalid(ValidateNetworkName("_net"), "[a-zA-Z0-9_.-]"));
  EXPECT_TRUE(Invalid(ValidateNetworkName("net/1"), "invalid network name"));
  EXPECT_TRUE(Invalid(ValidateNetworkName(std::string(256, 'n')), "up to 255"));
  EXPECT_TRUE(ValidateSecretName("db.password").ok());
  EXPECT_TRUE(Invalid(ValidateSecretName("db."), "begins and ends with a letter or digit"));
  EXPECT_TRUE(Invalid(ValidateSecretName(std::string(65, 's')), "1-64 characters"));
  EXPECT_TRUE(Invalid(ValidateSecretName(""), "a secret needs a name"));
  EXPECT_TRUE(ValidateConfigName("nginx.conf").ok());
  EXPECT_TRUE(Invalid(ValidateConfigName("nginx conf"), "invalid config name"));
}

TEST(ValidationTest, ImageReference_FollowsDockersGrammar) {
  for (const char* ok :
       {"nginx", "nginx:1.25", "library/nginx:latest", "registry.example.com:5000/team/app:v1",
        "localhost/app", "ghcr.io/o/r@sha256:0123456789abcdef0123456789abcdef0123456789abcdef",
        "a_b__c-d---e.f:tag_1.2-3"}) {
    EXPECT_TRUE(ValidateImageReference(ok).ok()) << ok;
  }
  EXPECT_TRUE(Invalid(ValidateImageReference("Nginx"), "must be lowercase"));
  EXPECT_TRUE(Invalid(ValidateImageReference("nginx:"), "a tag is up to 128"));
  EXPECT_TRUE(Invalid(ValidateImageReference("nginx:-x"), "a tag"));
  EXPECT_TRUE(Invalid(ValidateImageReference("ngi nx"), "whitespace"));
  EXPECT_TRUE(Invalid(ValidateImageReference("nginx@sha256:xyz"), "digest"));
  EXPECT_TRUE(Invalid(ValidateImageReference("a..b"), "path component \"a..b\""));
  EXPECT_TRUE(Invalid(ValidateImageReference("reg.io:port/app"), "registry \"reg.io:port\""));
  EXPECT_TRUE(Invalid(ValidateImageReference(":tag"), "repository name is missing"));
}

TEST(ValidationTest, ServiceSpec_ValidSpecsPass) {
  EXPECT_TRUE(ValidateServiceSpec(ValidService()).ok());
  EXPECT_TRUE(ServiceWith([](api::ServiceSpec* s) { s->mutable_global(); }).ok());
  EXPECT_TRUE(ServiceWith([](api::ServiceSpec* s) {
                s->mutable_replicated_job()->set_total_completions(3);
              }).ok());
  EXPECT_TRUE(ServiceWith([](api::ServiceSpec* s) { s->mutable_global_job(); }).ok());
}

TEST(ValidationTest, ServiceSpec_NeedsNameModeAndContainerImage) {
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) { s->mutable_annotations()->clear_name(); }),
                      "needs a name"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) { s->clear_mode(); }), "needs a mode"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) { s->mutable_task_template()->clear_runtime(); }),
                      "needs a container"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) { Container(s)->clear_image(); }),
                      "needs a container image"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) { Container(s)->set_image("UPPER"); }),
                      "invalid image reference \"UPPER\""));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        s->mutable_task_template()->mutable_attachment()->set_container_id("c");
                      }),
                      "network attachment tasks"));
  EXPECT_TRUE(
      Invalid(ServiceWith([](auto* s) { (*s->mutable_annotations()->mutable_labels())[""] = "x"; }),
              "a service label needs a key"));
}

TEST(ValidationTest, ServiceSpec_NegativeDurationsAreRefused) {
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        *s->mutable_task_template()->mutable_restart_policy()->mutable_delay() =
                            Seconds(-1);
                      }),
                      "restart delay (--restart-delay) cannot be negative"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        *s->mutable_task_template()->mutable_restart_policy()->mutable_window() =
                            Seconds(0, -5);
                      }),
                      "restart window (--restart-window) cannot be negative"));
  EXPECT_TRUE(Invalid(
      ServiceWith([](auto* s) { *s->mutable_update_config()->mutable_delay() = Seconds(-2); }),
      "update delay (--update-delay) cannot be negative"));
  EXPECT_TRUE(Invalid(
      ServiceWith([](auto* s) { *s->mutable_update_config()->mutable_monitor() = Seconds(-2); }),
      "update monitor period (--update-monitor) cannot be negative"));
  EXPECT_TRUE(Invalid(
      ServiceWith([](auto* s) { *s->mutable_rollback_config()->mutable_delay() = Seconds(-2); }),
      "rollback delay (--rollback-delay)"));
  EXPECT_TRUE(Invalid(
      ServiceWith([](auto* s) { *Container(s)->mutable_stop_grace_period() = Seconds(-10); }),
      "stop grace period (--stop-grace-period) cannot be negative"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        *Container(s)->mutable_healthcheck()->mutable_interval() = Seconds(-1);
                      }),
                      "health check interval (--health-interval) cannot be negative"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        *Container(s)->mutable_healthcheck()->mutable_timeout() = Seconds(-1);
                      }),
                      "health check timeout (--health-timeout) cannot be negative"));
}

TEST(ValidationTest, ServiceSpec_UpdateConfigRatiosAndActions) {
  EXPECT_TRUE(
      ServiceWith([](auto* s) { s->mutable_update_config()->set_max_failure_ratio(1); }).ok());
  EXPECT_TRUE(
      Invalid(ServiceWith([](auto* s) { s->mutable_update_config()->set_max_failure_ratio(1.5); }),
              "update max failure ratio (--update-max-failure-ratio) must be between 0 and 1"));
  EXPECT_TRUE(Invalid(
      ServiceWith([](auto* s) { s->mutable_rollback_config()->set_max_failure_ratio(-0.1f); }),
      "rollback max failure ratio"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        s->mutable_rollback_config()->set_failure_action(
                            api::UPDATE_FAILURE_ACTION_ROLLBACK);
                      }),
                      "a rollback cannot roll back on failure"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        s->mutable_global_job();
                        s->mutable_update_config()->set_parallelism(2);
                      }),
                      "a job has no rolling updates"));
}

TEST(ValidationTest, ServiceSpec_ResourcesReservationsNotAboveLimits) {
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        auto* r = s->mutable_task_template()->mutable_resources();
                        r->mutable_limits()->set_memory_bytes(64 << 20);
                        r->mutable_reservations()->set_memory_bytes(128 << 20);
                      }),
                      "memory reservation (134217728 bytes) is above the memory limit"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        auto* r = s->mutable_task_template()->mutable_resources();
                        r->mutable_limits()->set_nano_cpus(500000000);
                        r->mutable_reservations()->set_nano_cpus(1000000000);
                      }),
                      "CPU reservation (1000000000 nano-CPUs) is above the CPU limit"));
  EXPECT_TRUE(Invalid(
      ServiceWith([](auto* s) {
        s->mutable_task_template()->mutable_resources()->mutable_limits()->set_memory_bytes(1024);
      }),
      "below the minimum of 4 MiB"));
  EXPECT_TRUE(Invalid(
      ServiceWith([](auto* s) {
        s->mutable_task_template()->mutable_resources()->mutable_limits()->set_nano_cpus(-1);
      }),
      "CPU limit cannot be negative"));
  EXPECT_TRUE(Invalid(
      ServiceWith([](auto* s) {
        s->mutable_task_template()->mutable_resources()->mutable_reservations()->set_pids(10);
      }),
      "pids can be limited"));
  EXPECT_TRUE(Invalid(
      ServiceWith([](auto* s) {
        auto* g =
            s->mutable_task_template()->mutable_resources()->mutable_reservations()->add_generic();
        g->mutable_named_resource_spec()->set_kind("gpu");
      }),
      "only reserve counted generic resources"));
  EXPECT_TRUE(Invalid(
      ServiceWith([](auto* s) {
        auto* g =
            s->mutable_task_template()->mutable_resources()->mutable_reservations()->add_generic();
        g->mutable_discrete_resource_spec()->set_kind("gpu");
      }),
      "generic resource gpu must be reserved in positive units"));
}

TEST(ValidationTest, ServiceSpec_PlacementConstraintsAndPreferences) {
  EXPECT_TRUE(ServiceWith([](auto* s) {
                s->mutable_task_template()->mutable_placement()->add_constraints(
                    "node.labels.zone==east");
              }).ok());
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        s->mutable_task_template()->mutable_placement()->add_constraints(
                            "node.labels.zone=east");
                      }),
                      "constraint \"node.labels.zone=east\" has no operator"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        s->mutable_task_template()
                            ->mutable_placement()
                            ->add_preferences()
                            ->mutable_spread()
                            ->set_spread_descriptor("rack");
                      }),
                      "placement preference spread=rack: unknown node attribute"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        s->mutable_global();
                        s->mutable_task_template()->mutable_placement()->set_max_replicas(2);
                      }),
                      "--replicas-max-per-node applies to replicated services only"));
}

TEST(ValidationTest, ServiceSpec_PortsConflictWithinTheSpec) {
  auto add_port = [](api::ServiceSpec* s, uint32_t published, api::PortProtocol proto,
                     api::PublishMode mode = api::PUBLISH_MODE_INGRESS) {
    auto* p = s->mutable_endpoint_spec()->add_ports();
    p->set_target_port(80);
    p->set_published_port(published);
    p->set_protocol(proto);
    p->set_publish_mode(mode);
  };
  EXPECT_TRUE(ServiceWith([&](auto* s) {
                add_port(s, 8080, api::PORT_PROTOCOL_TCP);
                add_port(s, 8080, api::PORT_PROTOCOL_UDP);
                add_port(s, 0, api::PORT_PROTOCOL_TCP);
                add_port(s, 0, api::PORT_PROTOCOL_TCP);
              }).ok());
  EXPECT_TRUE(Invalid(ServiceWith([&](auto* s) {
                        add_port(s, 8080, api::PORT_PROTOCOL_TCP);
                        add_port(s, 8080, api::PORT_PROTOCOL_TCP, api::PUBLISH_MODE_HOST);
                      }),
                      "port 8080/tcp is published more than once"));
  EXPECT_TRUE(Invalid(ServiceWith([&](auto* s) {
                        s->mutable_endpoint_spec()->set_mode(api::RESOLUTION_MODE_DNSRR);
                        add_port(s, 8080, api::PORT_PROTOCOL_TCP);
                      }),
                      "port 8080/tcp is published in ingress mode, which needs a virtual IP"));
  EXPECT_TRUE(ServiceWith([&](auto* s) {
                s->mutable_endpoint_spec()->set_mode(api::RESOLUTION_MODE_DNSRR);
                add_port(s, 8080, api::PORT_PROTOCOL_TCP, api::PUBLISH_MODE_HOST);
              }).ok());
  EXPECT_TRUE(Invalid(ServiceWith([&](auto* s) {
                        auto* p = s->mutable_endpoint_spec()->add_ports();
                        p->set_target_port(0);
                      }),
                      "target port 0 is out of range"));
  EXPECT_TRUE(Invalid(ServiceWith([&](auto* s) { add_port(s, 70000, api::PORT_PROTOCOL_TCP); }),
                      "published port 70000 is out of range"));
}

TEST(ValidationTest, ServiceSpec_MountsSecretsAndConfigs) {
  auto mount = [](api::ServiceSpec* s, api::MountType type, const std::string& source,
                  const std::string& target) {
    auto* m = Container(s)->add_mounts();
    m->set_type(type);
    m->set_source(source);
    m->set_target(target);
    return m;
  };
  EXPECT_TRUE(Invalid(ServiceWith([&](auto* s) {
                        mount(s, api::MOUNT_TYPE_VOLUME, "data", "/data");
                        mount(s, api::MOUNT_TYPE_TMPFS, "", "/data");
                      }),
                      "duplicate mount point: /data"));
  EXPECT_TRUE(Invalid(ServiceWith([&](auto* s) { mount(s, api::MOUNT_TYPE_BIND, "rel", "/x"); }),
                      "the source must be an absolute path on the host"));
  EXPECT_TRUE(Invalid(ServiceWith([&](auto* s) { mount(s, api::MOUNT_TYPE_VOLUME, "v", "x"); }),
                      "mount target \"x\" must be an absolute path"));
  EXPECT_TRUE(Invalid(ServiceWith([&](auto* s) { mount(s, api::MOUNT_TYPE_TMPFS, "/t", "/t"); }),
                      "tmpfs mount at /t takes no source"));
  EXPECT_TRUE(Invalid(ServiceWith([&](auto* s) {
                        mount(s, api::MOUNT_TYPE_VOLUME, "v", "/v")->mutable_bind_options();
                      }),
                      "bind options need type=bind"));

  auto secret = [](api::ServiceSpec* s, const std::string& name, const std::string& target) {
    auto* r = Container(s)->add_secrets();
    r->set_secret_name(name);
    if (!target.empty()) r->mutable_file()->set_name(target);
  };
  EXPECT_TRUE(ServiceWith([&](auto* s) {
                secret(s, "a", "a");
                secret(s, "a", "copy-of-a");
              }).ok());
  EXPECT_TRUE(Invalid(ServiceWith([&](auto* s) {
                        secret(s, "a", "same");
                        secret(s, "b", "same");
                      }),
                      "secret references \"a\" and \"b\" have a conflicting target: \"same\""));
  EXPECT_TRUE(Invalid(ServiceWith([&](auto* s) { secret(s, "a", ""); }), "needs a target file"));
  EXPECT_TRUE(Invalid(ServiceWith([&](auto* s) { secret(s, "a", "../etc/passwd"); }),
                      "may not contain \"..\""));
  EXPECT_TRUE(Invalid(ServiceWith([&](auto* s) { secret(s, "", "x"); }),
                      "a secret reference needs a name or ID"));
  EXPECT_TRUE(Invalid(ServiceWith([&](auto* s) {
                        for (const char* n : {"c1", "c2"}) {
                          auto* r = Container(s)->add_configs();
                          r->set_config_name(n);
                          r->mutable_file()->set_name("/etc/app.conf");
                        }
                      }),
                      "config references \"c1\" and \"c2\" have a conflicting target"));
}

TEST(ValidationTest, ServiceSpec_ContainerDetails) {
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) { Container(s)->add_env("=x"); }),
                      "environment entry \"=x\" has no variable name"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) { Container(s)->set_stop_signal("SIGNOPE"); }),
                      "stop signal \"SIGNOPE\" is not a signal"));
  EXPECT_TRUE(ServiceWith([](auto* s) { Container(s)->set_stop_signal("SIGQUIT"); }).ok());
  EXPECT_TRUE(ServiceWith([](auto* s) { Container(s)->set_stop_signal("9"); }).ok());
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        auto* u = Container(s)->add_ulimits();
                        u->set_name("nofile");
                        u->set_soft(10);
                        u->set_hard(5);
                      }),
                      "ulimit nofile: soft limit 10 is above hard limit 5"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        Container(s)->mutable_dns_config()->add_nameservers("dns.google");
                      }),
                      "DNS server \"dns.google\" is not an IP address"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) { Container(s)->set_oom_score_adj(2000); }),
                      "out of range [-1000, 1000]"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) { Container(s)->add_hosts("db 10.0.0.5"); }),
                      "host entry \"db 10.0.0.5\" must be an IP address and a name"));
  EXPECT_TRUE(ServiceWith([](auto* s) { Container(s)->add_hosts("10.0.0.5 db db.local"); }).ok());
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        auto* seccomp = Container(s)->mutable_privileges()->mutable_seccomp();
                        seccomp->set_mode(api::SECCOMP_MODE_CUSTOM);
                        seccomp->set_profile(R"({"defaultAction": "SCMP_ACT_ALLOW"})");
                      }),
                      "custom seccomp profiles are not supported"));
  EXPECT_TRUE(Invalid(
      ServiceWith([](auto* s) { Container(s)->mutable_pull_options()->set_registry_auth("%%%"); }),
      "pull_options.registry_auth does not decode"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        Container(s)->add_env("BIG=" + std::string(kMaxServiceSpecBytes, 'x'));
                      }),
                      "at most 4 MiB is allowed"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        api::Mount* m = Container(s)->add_mounts();
                        m->set_type(api::MOUNT_TYPE_BIND);
                        m->set_source("/srv/x");
                        m->set_target("/proc/../proc/sys/net");
                      }),
                      "cannot mount at /proc/../proc/sys/net"));
  // Only namespaced sysctls, and net.* only with a network namespace of the container's own.
  EXPECT_TRUE(Invalid(
      ServiceWith([](auto* s) { (*Container(s)->mutable_sysctls())["vm.swappiness"] = "10"; }),
      "sysctl vm.swappiness is not namespaced"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        (*Container(s)->mutable_sysctls())["net.core.somaxconn"] = "1024";
                        s->mutable_task_template()->add_networks()->set_target("host");
                      }),
                      "sysctl net.core.somaxconn would change the host"));
  EXPECT_TRUE(ServiceWith([](auto* s) {
                (*Container(s)->mutable_sysctls())["net.core.somaxconn"] = "1024";
                (*Container(s)->mutable_sysctls())["kernel.shmmax"] = "1000000";
                (*Container(s)->mutable_sysctls())["fs.mqueue.msg_max"] = "20";
              }).ok());
  EXPECT_TRUE(
      Invalid(ServiceWith([](auto* s) { Container(s)->mutable_healthcheck()->add_test("CURL"); }),
              "must start with NONE, CMD or CMD-SHELL"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        *Container(s)->mutable_healthcheck()->mutable_interval() = Seconds(0, 1000);
                      }),
                      "health check interval (--health-interval) cannot be less than 1ms"));
  EXPECT_TRUE(
      Invalid(ServiceWith([](auto* s) { Container(s)->mutable_healthcheck()->set_retries(-1); }),
              "retries cannot be negative"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) {
                        auto* n = s->mutable_task_template()->add_networks();
                        n->set_target("backend");
                        *s->mutable_task_template()->add_networks() = *n;
                      }),
                      "network \"backend\" is attached more than once"));
  EXPECT_TRUE(Invalid(
      ServiceWith([](auto* s) {
        (*s->mutable_task_template()->mutable_log_driver()->mutable_options())["max-size"] = "1m";
      }),
      "log driver options were given without a log driver name"));
}

TEST(ValidationTest, ServiceSpec_TaskTemplatesAreChecked) {
  EXPECT_TRUE(ServiceWith([](auto* s) {
                Container(s)->set_hostname("{{.Service.Name}}-{{.Task.Slot}}.{{.Node.Hostname}}");
                Container(s)->add_env("NODE={{.Node.ID}}");
              }).ok());
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) { Container(s)->set_hostname("{{.Node.Hostnme}}"); }),
                      "invalid template in --hostname \"{{.Node.Hostnme}}\": template: :1:2: "
                      "executing \"\" at <.Node.Hostnme>: can't evaluate field Hostnme in type "
                      "Node"));
  EXPECT_TRUE(Invalid(ServiceWith([](auto* s) { Container(s)->add_env("A={{.Task.Slot"); }),
                      "invalid template in --env \"A={{.Task.Slot\": template: :1:2: unclosed "
                      "action"));
}

TEST(ValidationTest, ServiceSpec_HostAndNoneNetworksStandAlone) {
  auto networks = [](std::vector<std::string> targets, bool publish) {
    return ServiceWith([&](api::ServiceSpec* s) {
      for (const std::string& t : targets)
        s->mutable_task_template()->add_networks()->set_target(t);
      if (publish) {
        api::PortConfig* p = s->mutable_endpoint_spec()->add_ports();
        p->set_target_port(80);
        p->set_published_port(8080);
      }
    });
  };
  EXPECT_TRUE(networks({"host"}, false).ok());
  EXPECT_TRUE(networks({"none"}, false).ok());
  EXPECT_TRUE(Invalid(networks({"host", "backend"}, false),
                      "the host network cannot be combined with other networks"));
  EXPECT_TRUE(Invalid(networks({"backend", "none"}, false),
                      "the none network cannot be combined with other networks"));
  EXPECT_TRUE(Invalid(networks({"host"}, true),
                      "a service on the host network cannot publish ports through the routing "
                      "mesh"));
}

TEST(ValidationTest, NetworkSpec_DriverIpamAndIngressRules) {
  api::NetworkSpec n;
  n.mutable_annotations()->set_name("backend");
  EXPECT_TRUE(ValidateNetworkSpec(n).ok());
  auto with = [&](const std::function<void(api::NetworkSpec*)>& change) {
    api::NetworkSpec copy = n;
    change(&copy);
    return ValidateNetworkSpec(copy);
  };
  EXPECT_TRUE(Invalid(with([](auto* s) { s->mutable_annotations()->set_name("host"); }),
                      "host is a pre-defined network"));
  EXPECT_TRUE(Invalid(with([](auto* s) { s->mutable_driver_config()->set_name("macvlan"); }),
                      "network driver \"macvlan\" is not supported"));
  EXPECT_TRUE(Invalid(with([](auto* s) {
                        s->set_ingress(true);
                        s->set_attachable(true);
                      }),
                      "the ingress network cannot be attachable"));
  auto ipam = [&](const std::string& subnet, const std::string& range, const std::string& gw) {
    return with([&](api::NetworkSpec* s) {
      auto* c = s->mutable_ipam()->add_configs();
      c->set_subnet(subnet);
      c->set_range(range);
      c->set_gateway(gw);
    });
  };
  EXPECT_TRUE(ipam("10.0.9.0/24", "10.0.9.128/25", "10.0.9.1").ok());
  EXPECT_TRUE(Invalid(ipam("10.0.9.0", "", ""), "subnet \"10.0.9.0\" is not a network in CIDR"));
  EXPECT_TRUE(Invalid(ipam("10.0.9.0/24", "10.0.8.0/25", ""),
                      "IP range 10.0.8.0/25 is not inside subnet 10.0.9.0/24"));
  EXPECT_TRUE(
      Invalid(ipam("10.0.9.0/24", "", "10.0.10.1"), "gateway 10.0.10.1 is not inside subnet"));
  EXPECT_TRUE(Invalid(ipam("", "", "10.0.10.1"), "needs a --subnet"));
  EXPECT_TRUE(Invalid(ipam("fd00::/64", "", ""), "create the network with --ipv6"));
  EXPECT_TRUE(Invalid(with([](auto* s) { s->mutable_ipam()->mutable_driver()->set_name("dhcp"); }),
                      "IPAM driver \"dhcp\" is not supported"));
}

TEST(ValidationTest, NetworkSpec_OverlayAddressRulesAndEncryption) {
  api::NetworkSpec n;
  n.mutable_annotations()->set_name("backend");
  auto with = [&](const std::function<void(api::NetworkSpec*)>& change) {
    api::NetworkSpec copy = n;
    change(&copy);
    return ValidateNetworkSpec(copy);
  };
  auto subnet = [&](const std::string& cidr) {
    return with([&](api::NetworkSpec* s) {
      s->set_ipv6_enabled(true);
      s->mutable_ipam()->add_configs()->set_subnet(cidr);
    });
  };
  EXPECT_TRUE(subnet("10.20.0.0/16").ok());  // larger than the default /24s
  EXPECT_TRUE(subnet("10.0.0.0/8").ok());
  EXPECT_TRUE(Invalid(subnet("10.20.0.5/16"), "has host bits set: did you mean 10.20.0.0/16?"));
  EXPECT_TRUE(Invalid(subnet("10.20.0.0/31"), "overlay subnets are /8"));
  EXPECT_TRUE(Invalid(subnet("8.0.0.0/7"), "is out of range"));
  EXPECT_TRUE(Invalid(subnet("fd00::/64"), "IPv6 overlay subnets are not supported yet"));
  EXPECT_TRUE(Invalid(with([](api::NetworkSpec* s) {
                        s->mutable_ipam()->add_configs()->set_subnet("10.1.0.0/24");
                        s->mutable_ipam()->add_configs()->set_subnet("10.2.0.0/24");
                      }),
                      "give --subnet once"));
  EXPECT_TRUE(with([](api::NetworkSpec* s) { s->set_attachable(true); }).ok());
  EXPECT_TRUE(Invalid(with([](api::NetworkSpec* s) {
                        (*s->mutable_driver_config()->mutable_options())["encrypted"] = "";
                      }),
                      "encrypted overlay networks need IPsec ESP (xfrm), which this kernel does "
                      "not offer"));
}

TEST(ValidationTest, SecretAndConfigSpec_DataSizeLimits) {
  api::SecretSpec s;
  s.mutable_annotations()->set_name("pw");
  s.set_data(std::string(kMaxSecretSize, 'x'));
  EXPECT_TRUE(ValidateSecretSpec(s).ok());
  s.set_data(std::string(kMaxSecretSize + 1, 'x'));
  EXPECT_TRUE(Invalid(ValidateSecretSpec(s), "secret data must be 1 byte to 500 KiB"));
  s.clear_data();
  EXPECT_TRUE(Invalid(ValidateSecretSpec(s), "got 0 bytes"));
  s.mutable_driver()->set_name("vault");
  EXPECT_TRUE(ValidateSecretSpec(s).ok());
  s.set_data("x");
  EXPECT_TRUE(Invalid(ValidateSecretSpec(s), "gets its data from the driver"));
  s.clear_driver();
  s.mutable_templating()->set_name("jinja");
  EXPECT_TRUE(Invalid(ValidateSecretSpec(s), "template driver \"jinja\" is not supported"));

  api::ConfigSpec c;
  c.mutable_annotations()->set_name("conf");
  c.set_data(std::string(kMaxConfigSize, 'x'));
  EXPECT_TRUE(ValidateConfigSpec(c).ok());
  c.set_data(std::string(kMaxConfigSize + 1, 'x'));
  EXPECT_TRUE(Invalid(ValidateConfigSpec(c), "config data must be 1 byte to 1000 KiB"));
  c.set_data("x");
  c.mutable_annotations()->set_name("bad name");
  EXPECT_TRUE(Invalid(ValidateConfigSpec(c), "invalid config name \"bad name\""));
}

TEST(ValidationTest, NodeSpec_EnumsMustBeKnown) {
  api::NodeSpec n;
  EXPECT_TRUE(ValidateNodeSpec(n).ok());
  n.set_availability(static_cast<api::NodeAvailability>(9));
  EXPECT_TRUE(Invalid(ValidateNodeSpec(n), "use active, pause or drain"));
  n.set_availability(api::NODE_AVAILABILITY_DRAIN);
  n.set_desired_role(static_cast<api::NodeRole>(7));
  EXPECT_TRUE(Invalid(ValidateNodeSpec(n), "use manager or worker"));
  n.set_desired_role(api::NODE_ROLE_MANAGER);
  (*n.mutable_annotations()->mutable_labels())[""] = "v";
  EXPECT_TRUE(Invalid(ValidateNodeSpec(n), "a node label needs a key"));
}

TEST(ValidationTest, ClusterSpec_DurationsAndCa) {
  api::ClusterSpec c;
  c.mutable_annotations()->set_name("default");
  EXPECT_TRUE(ValidateClusterSpec(c).ok());
  auto with = [&](const std::function<void(api::ClusterSpec*)>& change) {
    api::ClusterSpec copy = c;
    change(&copy);
    return ValidateClusterSpec(copy);
  };
  EXPECT_TRUE(Invalid(
      with([](auto* s) { *s->mutable_ca_config()->mutable_node_cert_expiry() = Seconds(1800); }),
      "node certificate expiry (--cert-expiry) must be at least 1h, not 30m"));
  EXPECT_TRUE(with([](auto* s) {
                *s->mutable_ca_config()->mutable_node_cert_expiry() = Seconds(3600);
              }).ok());
  EXPECT_TRUE(Invalid(
      with([](auto* s) { *s->mutable_dispatcher()->mutable_heartbeat_period() = Seconds(0); }),
      "heartbeat period (--dispatcher-heartbeat) must be positive"));
  EXPECT_TRUE(Invalid(
      with([](auto* s) { *s->mutable_dispatcher()->mutable_heartbeat_period() = Seconds(-5); }),
      "must be positive"));
  EXPECT_TRUE(Invalid(with([](auto* s) {
                        s->mutable_raft()->set_heartbeat_tick(3);
                        s->mutable_raft()->set_election_tick(3);
                      }),
                      "raft election tick (3) must be greater than the heartbeat tick (3)"));
  EXPECT_TRUE(Invalid(
      with([](auto* s) { s->mutable_ca_config()->add_external_cas()->set_url("http://ca"); }),
      "external CA URL \"http://ca\" must be an https:// URL"));
  EXPECT_TRUE(Invalid(with([](auto* s) { s->mutable_ca_config()->set_signing_ca_key("k"); }),
                      "needs its certificate (--ca-cert)"));
  EXPECT_TRUE(Invalid(with([](auto* s) { s->mutable_ca_config()->set_signing_ca_cert("junk"); }),
                      "signing CA (--ca-cert/--ca-key)"));
  SeededRandom random(3);
  auto root = ca::RootCA::Create("c", ca::kDefaultRootValidity, absl::Now(), random);
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(with([&](auto* s) {
                s->mutable_ca_config()->set_signing_ca_cert(root->cert_pem());
                s->mutable_ca_config()->set_signing_ca_key(root->key_pem());
              }).ok());
  EXPECT_TRUE(
      Invalid(with([](auto* s) {
                (*s->mutable_task_defaults()->mutable_log_driver()->mutable_options())["a"] = "b";
              }),
              "default log driver options were given without"));
}

TEST(ValidationTest, Helpers_ModePortsAndIngress) {
  api::ServiceSpec s = ValidService();
  EXPECT_EQ(ModeOf(s), api::SERVICE_MODE_REPLICATED);
  s.mutable_global_job();
  EXPECT_EQ(ModeOf(s), api::SERVICE_MODE_GLOBAL_JOB);
  EXPECT_TRUE(IsJob(s));
  EXPECT_FALSE(PublishesIngressPorts(s));
  auto* p = s.mutable_endpoint_spec()->add_ports();
  p->set_published_port(53);
  p->set_protocol(api::PORT_PROTOCOL_UDP);
  EXPECT_EQ(PortName(*p), "53/udp");
  EXPECT_TRUE(PublishesIngressPorts(s));
  p->set_publish_mode(api::PUBLISH_MODE_HOST);
  EXPECT_FALSE(PublishesIngressPorts(s));
}

}  // namespace
}  // namespace swarm::manager::controlapi

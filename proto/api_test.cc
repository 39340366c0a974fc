// Tests of the API definitions: a ServiceSpec with every field set survives binary and JSON
// encoding in every service mode, the task states keep their lifecycle order, and the gRPC
// stubs and service bases of every service compile, link and carry a full spec end to end.

#include <google/protobuf/descriptor.h>
#include <google/protobuf/duration.pb.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "gtest/gtest.h"
#include "proto/ca.grpc.pb.h"
#include "proto/control.grpc.pb.h"
#include "proto/dispatcher.grpc.pb.h"
#include "proto/health.grpc.pb.h"
#include "proto/logbroker.grpc.pb.h"
#include "proto/objects.pb.h"
#include "proto/raft_service.grpc.pb.h"
#include "proto/specs.pb.h"
#include "proto/types.pb.h"
#include "proto/watch.grpc.pb.h"

namespace swarm::api {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::OneofDescriptor;
using google::protobuf::Reflection;
using google::protobuf::util::MessageDifferencer;

// Appends to `unset` the path of every field of `message` (recursively) that holds its default
// value: empty repeated fields and maps, absent messages, zero scalars. A oneof counts as set
// when any member is; only the set member is descended into. Well-known types
// (google.protobuf.*) only need to be present.
void CollectUnsetFields(const Message& message, const std::string& path,
                        std::vector<std::string>* unset) {
  const Descriptor* descriptor = message.GetDescriptor();
  const Reflection* reflection = message.GetReflection();
  for (int i = 0; i < descriptor->oneof_decl_count(); ++i) {
    const OneofDescriptor* oneof = descriptor->oneof_decl(i);
    if (!oneof->is_synthetic() && !reflection->HasOneof(message, oneof)) {
      unset->push_back(path + oneof->name() + " (oneof)");
    }
  }
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    const std::string field_path = path + field->name();
    const bool is_message = field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
    const bool descend =
        is_message && field->message_type()->file()->package() != "google.protobuf";
    if (field->is_repeated()) {
      const int size = reflection->FieldSize(message, field);
      if (size == 0) {
        unset->push_back(field_path);
        continue;
      }
      if (!descend) continue;
      for (int j = 0; j < size; ++j) {
        CollectUnsetFields(reflection->GetRepeatedMessage(message, field, j),
                           field_path + "[" + std::to_string(j) + "].", unset);
      }
      continue;
    }
    if (!reflection->HasField(message, field)) {
      // Members of a oneof that is not chosen are expected to be empty; the oneof itself was
      // checked above.
      if (field->real_containing_oneof() == nullptr) unset->push_back(field_path);
      continue;
    }
    if (descend) {
      CollectUnsetFields(reflection->GetMessage(message, field), field_path + ".", unset);
    }
  }
}

std::vector<std::string> UnsetFields(const Message& message) {
  std::vector<std::string> unset;
  CollectUnsetFields(message, "", &unset);
  return unset;
}

std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& part : parts) out += (out.empty() ? "" : ", ") + part;
  return out;
}

void SetDuration(google::protobuf::Duration* duration, int64_t seconds) {
  duration->set_seconds(seconds);
  duration->set_nanos(250);
}

void FillResources(Resources* resources, int64_t scale) {
  resources->set_nano_cpus(1500000000 * scale);
  resources->set_memory_bytes(256 * 1024 * 1024 * scale);
  resources->set_pids(100 * scale);
  NamedGenericResource* named = resources->add_generic()->mutable_named_resource_spec();
  named->set_kind("GPU");
  named->set_value("UUID-1");
  DiscreteGenericResource* discrete = resources->add_generic()->mutable_discrete_resource_spec();
  discrete->set_kind("SSD");
  discrete->set_value(2 * scale);
}

void FillUpdateConfig(UpdateConfig* config, UpdateFailureAction action) {
  config->set_parallelism(2);
  SetDuration(config->mutable_delay(), 10);
  config->set_failure_action(action);
  SetDuration(config->mutable_monitor(), 30);
  config->set_max_failure_ratio(0.25f);
  config->set_order(UPDATE_ORDER_START_FIRST);
}

void FillFileTarget(FileTarget* file, const std::string& name) {
  file->set_name(name);
  file->set_uid("1000");
  file->set_gid("1001");
  file->set_mode(0400);
}

ContainerSpec FullContainerSpec() {
  ContainerSpec c;
  c.set_image("nginx:1.25@sha256:0123456789abcdef");
  (*c.mutable_labels())["com.example.tier"] = "frontend";
  c.add_command("/docker-entrypoint.sh");
  c.add_args("nginx");
  c.add_args("-g");
  c.add_args("daemon off;");
  c.set_hostname("{{.Service.Name}}-{{.Task.Slot}}");
  c.add_env("MODE=production");
  c.set_dir("/srv");
  c.set_user("nginx:nginx");
  c.add_groups("video");

  Privileges* privileges = c.mutable_privileges();
  Privileges::SELinuxContext* selinux = privileges->mutable_selinux_context();
  selinux->set_disable(true);
  selinux->set_user("system_u");
  selinux->set_role("system_r");
  selinux->set_type("container_t");
  selinux->set_level("s0:c1,c2");
  privileges->mutable_seccomp()->set_mode(SECCOMP_MODE_CUSTOM);
  privileges->mutable_seccomp()->set_profile(R"({"defaultAction":"SCMP_ACT_ERRNO"})");
  privileges->mutable_apparmor()->set_mode(APP_ARMOR_MODE_DISABLED);
  privileges->set_no_new_privileges(true);

  c.set_init(true);
  c.set_tty(true);
  c.set_open_stdin(true);
  c.set_read_only(true);
  c.set_stop_signal("SIGQUIT");

  // One mount with the options of every type set, so that the schema is covered in full.
  Mount* mount = c.add_mounts();
  mount->set_type(MOUNT_TYPE_VOLUME);
  mount->set_source("web-data");
  mount->set_target("/usr/share/nginx/html");
  mount->set_readonly(true);
  mount->mutable_bind_options()->set_propagation(MOUNT_PROPAGATION_RSLAVE);
  mount->mutable_bind_options()->set_non_recursive(true);
  Mount::VolumeOptions* volume = mount->mutable_volume_options();
  volume->set_no_copy(true);
  (*volume->mutable_labels())["backup"] = "daily";
  volume->mutable_driver_config()->set_name("local");
  (*volume->mutable_driver_config()->mutable_options())["type"] = "nfs";
  volume->set_subpath("html");
  mount->mutable_tmpfs_options()->set_size_bytes(64 * 1024 * 1024);
  mount->mutable_tmpfs_options()->set_mode(01777);

  SetDuration(c.mutable_stop_grace_period(), 20);
  c.mutable_pull_options()->set_registry_auth("eyJ1c2VybmFtZSI6InUifQ==");
  ContainerSpec::DNSConfig* dns = c.mutable_dns_config();
  dns->add_nameservers("10.0.0.53");
  dns->add_search("example.com");
  dns->add_options("ndots:2");

  HealthConfig* health = c.mutable_healthcheck();
  health->add_test("CMD-SHELL");
  health->add_test("curl -f http://localhost/ || exit 1");
  SetDuration(health->mutable_interval(), 30);
  SetDuration(health->mutable_timeout(), 3);
  health->set_retries(4);
  SetDuration(health->mutable_start_period(), 60);
  SetDuration(health->mutable_start_interval(), 2);

  c.add_hosts("10.0.0.10 db.internal db");
  SecretReference* secret = c.add_secrets();
  secret->set_secret_id("s3cr3tid0000000000000000a");
  secret->set_secret_name("tls-key");
  FillFileTarget(secret->mutable_file(), "tls.key");
  ConfigReference* config = c.add_configs();
  config->set_config_id("c0nf1gid0000000000000000b");
  config->set_config_name("nginx-conf");
  FillFileTarget(config->mutable_file(), "/etc/nginx/nginx.conf");
  c.add_capability_add("CAP_NET_ADMIN");
  c.add_capability_drop("CAP_MKNOD");
  Ulimit* ulimit = c.add_ulimits();
  ulimit->set_name("nofile");
  ulimit->set_soft(1024);
  ulimit->set_hard(4096);
  (*c.mutable_sysctls())["net.core.somaxconn"] = "1024";
  c.set_oom_score_adj(-500);
  return c;
}

// A ServiceSpec with every field set to a non-default value; `mode` picks the service mode.
ServiceSpec FullServiceSpec(ServiceSpec::ModeCase mode) {
  ServiceSpec spec;
  spec.mutable_annotations()->set_name("web");
  (*spec.mutable_annotations()->mutable_labels())["com.example.team"] = "platform";

  TaskSpec* task = spec.mutable_task_template();
  *task->mutable_container() = FullContainerSpec();
  FillResources(task->mutable_resources()->mutable_limits(), 2);
  FillResources(task->mutable_resources()->mutable_reservations(), 1);
  RestartPolicy* restart = task->mutable_restart_policy();
  restart->set_condition(RESTART_CONDITION_ON_FAILURE);
  SetDuration(restart->mutable_delay(), 5);
  restart->set_max_attempts(3);
  SetDuration(restart->mutable_window(), 120);
  Placement* placement = task->mutable_placement();
  placement->add_constraints("node.role==worker");
  placement->add_preferences()->mutable_spread()->set_spread_descriptor("node.labels.dc");
  placement->set_max_replicas(2);
  Platform* platform = placement->add_platforms();
  platform->set_architecture("amd64");
  platform->set_os("linux");
  NetworkAttachmentConfig* network = task->add_networks();
  network->set_target("n3tw0rkid000000000000000c");
  network->add_aliases("frontend");
  (*network->mutable_driver_attachment_opts())["com.example.opt"] = "1";
  task->mutable_log_driver()->set_name("json-file");
  (*task->mutable_log_driver()->mutable_options())["max-size"] = "10m";
  task->set_force_update(7);

  switch (mode) {
    case ServiceSpec::kReplicated:
      spec.mutable_replicated()->set_replicas(3);
      break;
    case ServiceSpec::kGlobal:
      spec.mutable_global();
      break;
    case ServiceSpec::kReplicatedJob:
      spec.mutable_replicated_job()->set_max_concurrent(2);
      spec.mutable_replicated_job()->set_total_completions(10);
      break;
    case ServiceSpec::kGlobalJob:
      spec.mutable_global_job();
      break;
    case ServiceSpec::MODE_NOT_SET:
      break;
  }

  FillUpdateConfig(spec.mutable_update_config(), UPDATE_FAILURE_ACTION_ROLLBACK);
  FillUpdateConfig(spec.mutable_rollback_config(), UPDATE_FAILURE_ACTION_CONTINUE);
  EndpointSpec* endpoint = spec.mutable_endpoint_spec();
  endpoint->set_mode(RESOLUTION_MODE_DNSRR);
  PortConfig* port = endpoint->add_ports();
  port->set_name("http");
  port->set_protocol(PORT_PROTOCOL_UDP);
  port->set_target_port(80);
  port->set_published_port(8080);
  port->set_publish_mode(PUBLISH_MODE_HOST);
  return spec;
}

class ServiceSpecModeTest : public ::testing::TestWithParam<ServiceSpec::ModeCase> {};

TEST_P(ServiceSpecModeTest, FullServiceSpec_SetsEveryField) {
  const ServiceSpec spec = FullServiceSpec(GetParam());
  ASSERT_EQ(spec.mode_case(), GetParam());
  const std::vector<std::string> unset = UnsetFields(spec);
  EXPECT_TRUE(unset.empty()) << "unset fields: " << Join(unset);
}

TEST_P(ServiceSpecModeTest, BinaryRoundTrip_PreservesEveryField) {
  const ServiceSpec spec = FullServiceSpec(GetParam());
  std::string wire;
  ASSERT_TRUE(spec.SerializeToString(&wire));
  ServiceSpec parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire));
  std::string report;
  MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&report);
  EXPECT_TRUE(differencer.Compare(spec, parsed)) << report;
  EXPECT_TRUE(MessageDifferencer::Equals(spec, parsed));
  EXPECT_EQ(parsed.mode_case(), GetParam());
}

TEST_P(ServiceSpecModeTest, JsonRoundTrip_PreservesEveryField) {
  const ServiceSpec spec = FullServiceSpec(GetParam());
  for (const bool proto_names : {false, true}) {
    SCOPED_TRACE(proto_names ? "proto field names" : "lowerCamelCase names");
    google::protobuf::util::JsonPrintOptions print_options;
    print_options.preserve_proto_field_names = proto_names;
    std::string json;
    ASSERT_TRUE(google::protobuf::util::MessageToJsonString(spec, &json, print_options).ok());
    // Enums travel by name, so the JSON form stays readable and stable across renumbering.
    EXPECT_NE(json.find("RESTART_CONDITION_ON_FAILURE"), std::string::npos) << json;

    google::protobuf::util::JsonParseOptions parse_options;
    parse_options.ignore_unknown_fields = false;
    ServiceSpec parsed;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &parsed, parse_options).ok())
        << json;
    std::string report;
    MessageDifferencer differencer;
    differencer.ReportDifferencesToString(&report);
    EXPECT_TRUE(differencer.Compare(spec, parsed)) << report << "\n" << json;
    EXPECT_TRUE(MessageDifferencer::Equals(spec, parsed));
  }
}

INSTANTIATE_TEST_SUITE_P(AllModes, ServiceSpecModeTest,
                         ::testing::Values(ServiceSpec::kReplicated, ServiceSpec::kGlobal,
                                           ServiceSpec::kReplicatedJob, ServiceSpec::kGlobalJob),
                         [](const ::testing::TestParamInfo<ServiceSpec::ModeCase>& info) {
                           switch (info.param) {
                             case ServiceSpec::kReplicated:
                               return std::string("Replicated");
                             case ServiceSpec::kGlobal:
                               return std::string("Global");
                             case ServiceSpec::kReplicatedJob:
                               return std::string("ReplicatedJob");
                             case ServiceSpec::kGlobalJob:
                               return std::string("GlobalJob");
                             case ServiceSpec::MODE_NOT_SET:
                               break;
                           }
                           return std::string("NotSet");
                         });

// The checker itself must notice what is missing, or the tests above prove nothing.
TEST(UnsetFieldsTest, UnsetFields_ListsMissingNestedFieldsAndOneofs) {
  ServiceSpec spec = FullServiceSpec(ServiceSpec::kReplicated);
  spec.clear_replicated();
  spec.mutable_task_template()->mutable_container()->mutable_healthcheck()->clear_retries();
  spec.mutable_task_template()->mutable_container()->mutable_secrets(0)->clear_file();
  spec.mutable_endpoint_spec()->clear_ports();
  spec.mutable_update_config()->clear_monitor();

  std::vector<std::string> unset = UnsetFields(spec);
  std::sort(unset.begin(), unset.end());
  EXPECT_EQ(unset, (std::vector<std::string>{
                       "endpoint_spec.ports",
                       "mode (oneof)",
                       "task_template.container.healthcheck.retries",
                       "task_template.container.secrets[0].target (oneof)",
                       "update_config.monitor",
                   }))
      << Join(unset);
}

TEST(TaskStateTest, Values_IncreaseInLifecycleOrder) {
  const std::vector<std::string> lifecycle = {
      "NEW",     "PENDING",  "ASSIGNED", "ACCEPTED", "PREPARING", "READY",  "STARTING",
      "RUNNING", "COMPLETE", "SHUTDOWN", "FAILED",   "REJECTED",  "REMOVE", "ORPHANED"};
  const google::protobuf::EnumDescriptor* states = TaskState_descriptor();
  ASSERT_EQ(states->value_count(), static_cast<int>(lifecycle.size()));
  for (int i = 0; i < states->value_count(); ++i) {
    EXPECT_EQ(states->value(i)->name(), "TASK_STATE_" + lifecycle[i]);
    if (i > 0) {
      EXPECT_GT(states->value(i)->number(), states->value(i - 1)->number());
    }
  }
  EXPECT_EQ(TASK_STATE_NEW, 0);
  EXPECT_LT(TASK_STATE_ASSIGNED, TASK_STATE_ACCEPTED);
  EXPECT_LT(TASK_STATE_RUNNING, TASK_STATE_COMPLETE);
}

TEST(StoreActionTest, BinaryRoundTrip_ProposalWithService) {
  InternalRaftRequest request;
  request.set_id(42);
  StoreAction* action = request.add_action();
  action->set_kind(STORE_ACTION_KIND_CREATE);
  Service* service = action->mutable_service();
  service->set_id("s3rv1ce0000000000000000d");
  service->mutable_meta()->mutable_version()->set_index(17);
  *service->mutable_spec() = FullServiceSpec(ServiceSpec::kReplicatedJob);

  std::string wire;
  ASSERT_TRUE(request.SerializeToString(&wire));
  InternalRaftRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire));
  EXPECT_TRUE(MessageDifferencer::Equals(request, parsed));
  ASSERT_EQ(parsed.action_size(), 1);
  EXPECT_EQ(parsed.action(0).target_case(), StoreAction::kService);
}

// Every service base is a polymorphic class whose methods a server overrides.
static_assert(std::is_polymorphic_v<Control::Service>);
static_assert(std::is_polymorphic_v<Dispatcher::Service>);
static_assert(std::is_polymorphic_v<CA::Service>);
static_assert(std::is_polymorphic_v<NodeCA::Service>);
static_assert(std::is_polymorphic_v<Raft::Service>);
static_assert(std::is_polymorphic_v<RaftMembership::Service>);
static_assert(std::is_polymorphic_v<Logs::Service>);
static_assert(std::is_polymorphic_v<LogBroker::Service>);
static_assert(std::is_polymorphic_v<Health::Service>);
static_assert(std::is_polymorphic_v<Watch::Service>);

TEST(GrpcStubsTest, NewStub_CreatesStubForEveryService) {
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel("unix:/nonexistent", grpc::InsecureChannelCredentials());
  EXPECT_NE(Control::NewStub(channel), nullptr);
  EXPECT_NE(Dispatcher::NewStub(channel), nullptr);
  EXPECT_NE(CA::NewStub(channel), nullptr);
  EXPECT_NE(NodeCA::NewStub(channel), nullptr);
  EXPECT_NE(Raft::NewStub(channel), nullptr);
  EXPECT_NE(RaftMembership::NewStub(channel), nullptr);
  EXPECT_NE(Logs::NewStub(channel), nullptr);
  EXPECT_NE(LogBroker::NewStub(channel), nullptr);
  EXPECT_NE(Health::NewStub(channel), nullptr);
  EXPECT_NE(Watch::NewStub(channel), nullptr);
}

TEST(GrpcStubsTest, Call_UnreachableServerFailsUnavailable) {
  std::unique_ptr<Health::Stub> stub =
      Health::NewStub(grpc::CreateChannel("unix:/nonexistent", grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, HealthCheckRequest(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

// A Control server that echoes the spec it is given, as a created service.
class EchoControl final : public Control::Service {
 public:
  grpc::Status CreateService(grpc::ServerContext* /*context*/, const CreateServiceRequest* request,
                             CreateServiceResponse* response) override {
    // Inside a gRPC service class, `Service` names the generated base: qualify the object.
    swarm::api::Service* service = response->mutable_service();
    service->set_id("3ch0serv1ce00000000000000");
    *service->mutable_spec() = request->spec();
    return grpc::Status::OK;
  }
};

// A Health server that reports every service as serving.
class ServingHealth final : public Health::Service {
 public:
  grpc::Status Check(grpc::ServerContext* /*context*/, const HealthCheckRequest* /*request*/,
                     HealthCheckResponse* response) override {
    response->set_status(SERVING_STATUS_SERVING);
    return grpc::Status::OK;
  }
};

TEST(GrpcStubsTest, InProcessServer_CarriesFullSpecAndServesUnimplemented) {
  EchoControl control;
  ServingHealth health;
  Dispatcher::Service dispatcher;  // Every method answers UNIMPLEMENTED.
  grpc::ServerBuilder builder;
  builder.RegisterService(&control);
  builder.RegisterService(&health);
  builder.RegisterService(&dispatcher);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  std::shared_ptr<grpc::Channel> channel = server->InProcessChannel(grpc::ChannelArguments());

  {
    CreateServiceRequest request;
    *request.mutable_spec() = FullServiceSpec(ServiceSpec::kGlobalJob);
    CreateServiceResponse response;
    grpc::ClientContext context;
    const grpc::Status status =
        Control::NewStub(channel)->CreateService(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(MessageDifferencer::Equals(response.service().spec(), request.spec()));
  }
  {
    HealthCheckRequest request;
    request.set_service("swarm.api.Control");
    HealthCheckResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(Health::NewStub(channel)->Check(&context, request, &response).ok());
    EXPECT_EQ(response.status(), SERVING_STATUS_SERVING);
  }
  {
    HeartbeatRequest request;
    request.set_session_id("session");
    HeartbeatResponse response;
    grpc::ClientContext context;
    const grpc::Status status =
        Dispatcher::NewStub(channel)->Heartbeat(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  server->Shutdown();
}

}  // namespace
}  // namespace swarm::api

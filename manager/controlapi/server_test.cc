#include "manager/controlapi/server.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "common/grpc_status.h"
#include "common/id.h"
#include "common/registry_auth.h"
#include "common/tls.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/ca/ca.h"
#include "manager/ca/server.h"
#include "manager/ca/testing.h"
#include "manager/controlapi/validation.h"

namespace swarm::manager::controlapi {
namespace {

// What swarmctl --with-registry-auth sends.
const std::string kRegistryAuth = EncodeRegistryAuth({"alice", "secret", "registry.example"});

using grpc::StatusCode;

// The status must have the code and mention `text`.
::testing::AssertionResult Fails(const grpc::Status& s, StatusCode code, const std::string& text) {
  if (s.error_code() != code) {
    return ::testing::AssertionFailure()
           << "expected code " << code << ", got " << s.error_code() << ": " << s.error_message();
  }
  if (s.error_message().find(text) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "\"" << s.error_message() << "\" lacks \"" << text << "\"";
  }
  return ::testing::AssertionSuccess();
}

#define EXPECT_OK(expr)                         \
  do {                                          \
    const grpc::Status s_ = (expr);             \
    EXPECT_TRUE(s_.ok()) << s_.error_message(); \
  } while (0)
#define ASSERT_OK(expr)                         \
  do {                                          \
    const grpc::Status s_ = (expr);             \
    ASSERT_TRUE(s_.ok()) << s_.error_message(); \
  } while (0)

api::ServiceSpec ServiceSpec(const std::string& name) {
  api::ServiceSpec s;
  s.mutable_annotations()->set_name(name);
  s.mutable_replicated()->set_replicas(1);
  s.mutable_task_template()->mutable_container()->set_image("nginx:1.25");
  return s;
}

api::PortConfig* Publish(api::ServiceSpec* s, uint32_t port,
                         api::PublishMode mode = api::PUBLISH_MODE_INGRESS,
                         api::PortProtocol proto = api::PORT_PROTOCOL_TCP) {
  api::PortConfig* p = s->mutable_endpoint_spec()->add_ports();
  p->set_target_port(80);
  p->set_published_port(port);
  p->set_publish_mode(mode);
  p->set_protocol(proto);
  return p;
}

api::Node MakeNode(const std::string& id, const std::string& hostname,
                   api::NodeRole role = api::NODE_ROLE_WORKER,
                   api::NodeState state = api::NODE_STATE_READY) {
  api::Node n;
  n.set_id(id);
  n.set_role(role);
  n.mutable_spec()->set_desired_role(role);
  n.mutable_spec()->set_membership(api::NODE_MEMBERSHIP_ACCEPTED);
  n.mutable_description()->set_hostname(hostname);
  n.mutable_status()->set_state(state);
  return n;
}

api::Task MakeTask(const std::string& id, const std::string& service_id, const std::string& node_id,
                   uint64_t slot, api::TaskState desired = api::TASK_STATE_RUNNING,
                   api::TaskState state = api::TASK_STATE_RUNNING) {
  api::Task t;
  t.set_id(id);
  t.set_service_id(service_id);
  t.set_node_id(node_id);
  t.set_slot(slot);
  t.set_desired_state(desired);
  t.mutable_status()->set_state(state);
  t.mutable_spec()->mutable_container()->set_image("nginx");
  return t;
}

class ServerTest : public ::testing::Test {
 protected:
  ServerTest() : store_(&proposer_, &clock_) {
    proposer_.set_store(&store_);
    auto cluster = ca::NewCluster("cluster-1", clock_.Now(), random_);
    EXPECT_TRUE(cluster.ok()) << cluster.status();
    cluster_id_ = cluster->id();
    Put(*cluster);
    MakeServer();
  }

  void MakeServer(bool require_manager = false) {
    Server::Options options;
    options.clock = &clock_;
    options.random = &random_;
    options.require_manager = require_manager;
    options.sync = [this] {
      ++syncs_;
      return sync_status_;
    };
    options.check_role_change = [this](const api::Node& node, api::NodeRole role) {
      role_checks_.push_back({node.id(), role});
      return role_check_status_;
    };
    server_ = std::make_unique<Server>(&store_, std::move(options));
  }

  template <typename Req, typename Resp>
  grpc::Status Call(grpc::Status (Server::*method)(grpc::ServerContext*, const Req*, Resp*),
                    const Req& req, Resp* resp = nullptr) {
    grpc::ServerContext ctx;
    Resp r;
    if (resp != nullptr) resp->Clear();  // gRPC hands every call a fresh response
    return (server_.get()->*method)(&ctx, &req, resp ? resp : &r);
  }

  // Writes objects straight to the store, as other components would.
  template <typename T>
  void Put(const T& object) {
    absl::Status s = store_.Update([&](store::WriteTx& tx) {
      tx.CreateObject(object);
      return absl::OkStatus();
    });
    ASSERT_TRUE(s.ok()) << s;
  }
  template <typename T>
  void Replace(const T& object) {
    absl::Status s = store_.Update([&](store::WriteTx& tx) {
      tx.UpdateObject(object);
      return absl::OkStatus();
    });
    ASSERT_TRUE(s.ok()) << s;
  }

  api::Cluster StoredCluster() {
    store::Ptr<api::Cluster> c;
    store_.View([&](const store::ReadTx& tx) { c = tx.GetCluster(cluster_id_); });
    return *c;
  }
  api::Service StoredService(const std::string& id) {
    store::Ptr<api::Service> s;
    store_.View([&](const store::ReadTx& tx) { s = tx.GetService(id); });
    EXPECT_NE(s, nullptr) << id;
    return s ? *s : api::Service();
  }

  absl::StatusOr<api::Service> CreateService(const api::ServiceSpec& spec) {
    api::CreateServiceRequest req;
    *req.mutable_spec() = spec;
    api::CreateServiceResponse resp;
    grpc::Status s = Call(&Server::CreateService, req, &resp);
    if (!s.ok()) return FromGrpcStatus(s);
    return resp.service();
  }
  grpc::Status UpdateService(const api::Service& current, const api::ServiceSpec& spec,
                             api::Service* out = nullptr, bool rollback = false) {
    api::UpdateServiceRequest req;
    req.set_service_id(current.id());
    *req.mutable_service_version() = current.meta().version();
    *req.mutable_spec() = spec;
    req.set_rollback(rollback);
    api::UpdateServiceResponse resp;
    grpc::Status s = Call(&Server::UpdateService, req, &resp);
    if (out != nullptr) *out = resp.service();
    return s;
  }
  std::string CreateNetwork(const std::string& name, bool ingress = false) {
    api::CreateNetworkRequest req;
    req.mutable_spec()->mutable_annotations()->set_name(name);
    req.mutable_spec()->set_ingress(ingress);
    api::CreateNetworkResponse resp;
    grpc::Status s = Call(&Server::CreateNetwork, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.network().id();
  }
  std::string CreateSecret(const std::string& name, const std::string& data = "s3cr3t") {
    api::CreateSecretRequest req;
    req.mutable_spec()->mutable_annotations()->set_name(name);
    req.mutable_spec()->set_data(data);
    api::CreateSecretResponse resp;
    grpc::Status s = Call(&Server::CreateSecret, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.secret().id();
  }
  std::string CreateConfig(const std::string& name) {
    api::CreateConfigRequest req;
    req.mutable_spec()->mutable_annotations()->set_name(name);
    req.mutable_spec()->set_data("listen 80;");
    api::CreateConfigResponse resp;
    grpc::Status s = Call(&Server::CreateConfig, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.config().id();
  }

  FakeClock clock_;
  SeededRandom random_{7};
  store::LocalProposer proposer_;
  store::MemoryStore store_;
  std::string cluster_id_;
  std::unique_ptr<Server> server_;
  int syncs_ = 0;
  absl::Status sync_status_;
  std::vector<std::pair<std::string, api::NodeRole>> role_checks_;
  absl::Status role_check_status_;
};

// ---- authorization and reads ----

TEST_F(ServerTest, Authorization_RequireManagerRefusesCallsWithoutAManagerCertificate) {
  MakeServer(/*require_manager=*/true);
  api::ListNodesResponse nodes;
  EXPECT_TRUE(Fails(Call(&Server::ListNodes, api::ListNodesRequest(), &nodes),
                    StatusCode::PERMISSION_DENIED,
                    "needs a swarm-manager or swarm-operator certificate"));
  EXPECT_TRUE(Fails(Call(&Server::CreateService, api::CreateServiceRequest()),
                    StatusCode::PERMISSION_DENIED, "swarm-manager"));
  EXPECT_EQ(syncs_, 0);  // refused before anything else
  MakeServer(/*require_manager=*/false);
  EXPECT_OK(Call(&Server::ListNodes, api::ListNodesRequest(), &nodes));
}

TEST_F(ServerTest, Authorization_OverTlsManagersAndOperatorsAreServedAndWorkersRefused) {
  MakeServer(/*require_manager=*/true);
  const api::Cluster cluster = StoredCluster();
  auto root = ca::RootCA::Load(cluster.root_ca().ca_cert(), cluster.root_ca().ca_key());
  ASSERT_TRUE(root.ok()) << root.status();
  auto creds = [&](const std::string& node, ca::Role role) {
    return ca::IssueTestCredentials(*root, node, role, random_);
  };
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0",
                           tls::ServerCredentials(creds("mgr-1", ca::Role::kManager)), &port);
  builder.RegisterService(server_.get());
  std::unique_ptr<grpc::Server> grpc_server = builder.BuildAndStart();
  ASSERT_NE(grpc_server, nullptr);
  auto call = [&](const tls::Credentials& c) {
    auto channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                             tls::ChannelCredentials(c), tls::ChannelArguments());
    auto stub = api::Control::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    api::ListClustersResponse resp;
    grpc::Status s = stub->ListClusters(&ctx, api::ListClustersRequest(), &resp);
    if (s.ok()) {
      EXPECT_EQ(resp.clusters_size(), 1);
    }
    return s;
  };
  EXPECT_OK(call(creds("mgr-2", ca::Role::kManager)));
  EXPECT_OK(call(creds("operator-1", ca::Role::kOperator)));
  EXPECT_TRUE(Fails(call(creds("wrk-1", ca::Role::kWorker)), StatusCode::PERMISSION_DENIED,
                    "needs a swarm-manager or swarm-operator certificate; node wrk-1 presented "
                    "swarm-worker"));
  grpc_server->Shutdown();
}

TEST_F(ServerTest, Reads_SyncFirstAndWritesDoNot) {
  api::GetClusterRequest get;
  get.set_cluster_id(cluster_id_);
  EXPECT_OK(Call(&Server::GetCluster, get));
  EXPECT_OK(Call(&Server::ListServices, api::ListServicesRequest()));
  EXPECT_EQ(syncs_, 2);
  ASSERT_TRUE(CreateService(ServiceSpec("web")).ok());
  EXPECT_EQ(syncs_, 2);
  sync_status_ = absl::UnavailableError("no leader");
  EXPECT_TRUE(Fails(Call(&Server::ListTasks, api::ListTasksRequest()), StatusCode::UNAVAILABLE,
                    "no leader"));
}

// ---- lookups ----

TEST_F(ServerTest, Lookup_FullIdNameOrUniquePrefix) {
  api::Service a;
  a.set_id("abc111");
  *a.mutable_spec() = ServiceSpec("alpha");
  api::Service b;
  b.set_id("abc222");
  *b.mutable_spec() = ServiceSpec("beta");
  // A service whose name is another's ID prefix: names come before prefixes.
  api::Service c;
  c.set_id("zzz999");
  *c.mutable_spec() = ServiceSpec("abc2");
  Put(a);
  Put(b);
  Put(c);
  auto get = [&](const std::string& input, api::Service* out = nullptr) {
    api::GetServiceRequest req;
    req.set_service_id(input);
    api::GetServiceResponse resp;
    grpc::Status s = Call(&Server::GetService, req, &resp);
    if (out) *out = resp.service();
    return s;
  };
  api::Service got;
  ASSERT_OK(get("abc111", &got));
  EXPECT_EQ(got.spec().annotations().name(), "alpha");
  ASSERT_OK(get("beta", &got));
  EXPECT_EQ(got.id(), "abc222");
  ASSERT_OK(get("abc1", &got));
  EXPECT_EQ(got.id(), "abc111");
  ASSERT_OK(get("abc2", &got));
  EXPECT_EQ(got.id(), "zzz999");
  EXPECT_TRUE(Fails(get("abc"), StatusCode::INVALID_ARGUMENT,
                    "service abc is ambiguous (2 matches found)"));
  EXPECT_TRUE(Fails(get("nope"), StatusCode::NOT_FOUND, "service nope not found"));
  EXPECT_TRUE(Fails(get(""), StatusCode::INVALID_ARGUMENT, "a service name or ID is required"));
}

TEST_F(ServerTest, Lookup_NodesByHostnameAndTasksByName) {
  Put(MakeNode("n1", "host-a"));
  Put(MakeNode("n2", "host-b"));
  api::Node renamed = MakeNode("n3", "host-c");
  renamed.mutable_spec()->mutable_annotations()->set_name("db-box");
  Put(renamed);
  Put(MakeNode("n4", "host-a"));  // hostnames are not unique
  api::GetNodeRequest req;
  api::GetNodeResponse resp;
  req.set_node_id("host-b");
  ASSERT_OK(Call(&Server::GetNode, req, &resp));
  EXPECT_EQ(resp.node().id(), "n2");
  req.set_node_id("db-box");
  ASSERT_OK(Call(&Server::GetNode, req, &resp));
  EXPECT_EQ(resp.node().id(), "n3");
  req.set_node_id("host-a");
  EXPECT_TRUE(Fails(Call(&Server::GetNode, req), StatusCode::INVALID_ARGUMENT,
                    "node host-a is ambiguous (2 matches found by name)"));

  api::Task t = MakeTask("task1", "svc", "n1", 1);
  t.mutable_annotations()->set_name("web.1.task1");
  Put(t);
  api::GetTaskRequest treq;
  api::GetTaskResponse tresp;
  treq.set_task_id("web.1.task1");
  ASSERT_OK(Call(&Server::GetTask, treq, &tresp));
  EXPECT_EQ(tresp.task().id(), "task1");
  treq.set_task_id("task");
  ASSERT_OK(Call(&Server::GetTask, treq, &tresp));
  EXPECT_EQ(tresp.task().id(), "task1");
  treq.set_task_id("other");
  EXPECT_TRUE(Fails(Call(&Server::GetTask, treq), StatusCode::NOT_FOUND, "task other not found"));
}

// ---- services ----

TEST_F(ServerTest, CreateService_ResolvesReferencesToIdsAndSetsSpecVersion) {
  const std::string net = CreateNetwork("backend");
  const std::string secret = CreateSecret("db-password");
  const std::string config = CreateConfig("nginx.conf");
  api::ServiceSpec spec = ServiceSpec("web");
  spec.mutable_task_template()->add_networks()->set_target("backend");
  auto* s = spec.mutable_task_template()->mutable_container()->add_secrets();
  s->set_secret_name("db-password");
  s->mutable_file()->set_name("db-password");
  auto* c = spec.mutable_task_template()->mutable_container()->add_configs();
  c->set_config_id(config);
  c->mutable_file()->set_name("/etc/nginx/nginx.conf");
  auto svc = CreateService(spec);
  ASSERT_TRUE(svc.ok()) << svc.status();
  EXPECT_TRUE(IsValidId(svc->id()));
  EXPECT_EQ(svc->spec_version().index(), 1u);
  EXPECT_GT(svc->meta().version().index(), 0u);
  EXPECT_FALSE(svc->has_job_status());
  const api::Service stored = StoredService(svc->id());
  EXPECT_EQ(stored.spec().task_template().networks(0).target(), net);
  EXPECT_EQ(stored.spec().task_template().container().secrets(0).secret_id(), secret);
  EXPECT_EQ(stored.spec().task_template().container().configs(0).config_id(), config);
  EXPECT_EQ(stored.spec().task_template().container().configs(0).config_name(), "nginx.conf");
}

TEST_F(ServerTest, CreateService_UnknownReferencesAreNamed) {
  api::ServiceSpec spec = ServiceSpec("web");
  spec.mutable_task_template()->add_networks()->set_target("nope-net");
  EXPECT_TRUE(Fails(ToGrpcStatus(CreateService(spec).status()), StatusCode::INVALID_ARGUMENT,
                    "network \"nope-net\" not found: create it with swarmctl network create"));

  spec = ServiceSpec("web");
  auto* s = spec.mutable_task_template()->mutable_container()->add_secrets();
  s->set_secret_name("missing");
  s->mutable_file()->set_name("missing");
  EXPECT_TRUE(Fails(ToGrpcStatus(CreateService(spec).status()), StatusCode::INVALID_ARGUMENT,
                    "secret \"missing\" not found: create it first with swarmctl secret create"));

  spec = ServiceSpec("web");
  auto* c = spec.mutable_task_template()->mutable_container()->add_configs();
  c->set_config_name("gone");
  c->mutable_file()->set_name("/gone");
  EXPECT_TRUE(Fails(ToGrpcStatus(CreateService(spec).status()), StatusCode::INVALID_ARGUMENT,
                    "config \"gone\" not found"));

  // Secrets are looked up by ID or exact name only, never by prefix.
  const std::string id = CreateSecret("token");
  spec = ServiceSpec("web");
  s = spec.mutable_task_template()->mutable_container()->add_secrets();
  s->set_secret_id(id.substr(0, 5));
  s->mutable_file()->set_name("t");
  EXPECT_TRUE(
      Fails(ToGrpcStatus(CreateService(spec).status()), StatusCode::INVALID_ARGUMENT, "not found"));
  store_.View([](const store::ReadTx& tx) { EXPECT_TRUE(tx.ListServices().empty()); });
}

TEST_F(ServerTest, CreateService_InvalidSpecsAreRefused) {
  EXPECT_TRUE(Fails(Call(&Server::CreateService, api::CreateServiceRequest()),
                    StatusCode::INVALID_ARGUMENT, "a service spec is required"));
  api::ServiceSpec spec = ServiceSpec("web");
  spec.mutable_task_template()->mutable_container()->clear_image();
  EXPECT_TRUE(Fails(ToGrpcStatus(CreateService(spec).status()), StatusCode::INVALID_ARGUMENT,
                    "needs a container image"));
  spec = ServiceSpec("bad name");
  EXPECT_TRUE(Fails(ToGrpcStatus(CreateService(spec).status()), StatusCode::INVALID_ARGUMENT,
                    "invalid service name \"bad name\""));
}

TEST_F(ServerTest, CreateService_WithoutANameGetsAFreeOneAsInDocker) {
  std::set<std::string> names;
  for (int i = 0; i < 20; ++i) {
    auto created = CreateService(ServiceSpec(""));
    ASSERT_TRUE(created.ok()) << created.status();
    const std::string& name = created->spec().annotations().name();
    EXPECT_THAT(name, ::testing::MatchesRegex("[a-z]+-[a-z]+"));
    names.insert(name);
  }
  EXPECT_EQ(names.size(), 20u) << "every generated name is free";
}

TEST_F(ServerTest, CreateService_TakenNameIsAlreadyExistsWhateverTheCase) {
  auto first = CreateService(ServiceSpec("web"));
  ASSERT_TRUE(first.ok());
  auto again = CreateService(ServiceSpec("web"));
  EXPECT_TRUE(Fails(ToGrpcStatus(again.status()), StatusCode::ALREADY_EXISTS,
                    "service name \"web\" is already in use by service " + first->id()));
  again = CreateService(ServiceSpec("WEB"));
  EXPECT_TRUE(Fails(ToGrpcStatus(again.status()), StatusCode::ALREADY_EXISTS, "(named \"web\")"));
}

TEST_F(ServerTest, CreateService_ConcurrentCreatesOfOneNameLeaveOne) {
  std::atomic<int> created{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      if (CreateService(ServiceSpec("race")).ok()) ++created;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(created.load(), 1);
  store_.View([](const store::ReadTx& tx) { EXPECT_EQ(tx.ListServices().size(), 1u); });
}

TEST_F(ServerTest, CreateService_IngressNetworkCannotBeAttached) {
  CreateNetwork("ingress", /*ingress=*/true);
  api::ServiceSpec spec = ServiceSpec("web");
  spec.mutable_task_template()->add_networks()->set_target("ingress");
  EXPECT_TRUE(Fails(ToGrpcStatus(CreateService(spec).status()), StatusCode::INVALID_ARGUMENT,
                    "cannot be attached to the ingress network \"ingress\" explicitly"));
}

TEST_F(ServerTest, CreateService_PublishedPortsConflictWithOtherServices) {
  api::ServiceSpec a = ServiceSpec("a");
  Publish(&a, 8080);
  Publish(&a, 9000, api::PUBLISH_MODE_HOST);
  auto svc_a = CreateService(a);
  ASSERT_TRUE(svc_a.ok());

  api::ServiceSpec b = ServiceSpec("b");
  Publish(&b, 8080);
  EXPECT_TRUE(Fails(
      ToGrpcStatus(CreateService(b).status()), StatusCode::ALREADY_EXISTS,
      "port 8080/tcp is already in use by service \"a\" (" + svc_a->id() + ") as an ingress port"));
  b = ServiceSpec("b");
  Publish(&b, 8080, api::PUBLISH_MODE_HOST);
  EXPECT_TRUE(Fails(ToGrpcStatus(CreateService(b).status()), StatusCode::ALREADY_EXISTS,
                    "as an ingress port"));
  b = ServiceSpec("b");
  Publish(&b, 9000);  // an ingress port would also take a's host port on every node
  EXPECT_TRUE(Fails(ToGrpcStatus(CreateService(b).status()), StatusCode::ALREADY_EXISTS,
                    "port 9000/tcp is already in use by service \"a\""));
  b = ServiceSpec("b");
  Publish(&b, 8080, api::PUBLISH_MODE_INGRESS, api::PORT_PROTOCOL_UDP);
  Publish(&b, 9000, api::PUBLISH_MODE_HOST);  // host and host may share
  EXPECT_TRUE(CreateService(b).ok());

  // Ports the allocator assigned (published_port 0 in the spec) are taken too.
  api::Service allocated = StoredService(svc_a->id());
  api::PortConfig* dynamic = allocated.mutable_endpoint()->add_ports();
  dynamic->set_target_port(81);
  dynamic->set_published_port(30001);
  Replace(allocated);
  api::ServiceSpec c = ServiceSpec("c");
  Publish(&c, 30001);
  EXPECT_TRUE(Fails(ToGrpcStatus(CreateService(c).status()), StatusCode::ALREADY_EXISTS,
                    "port 30001/tcp is already in use by service \"a\""));
}

TEST_F(ServerTest, CreateService_JobsStartAtIterationZero) {
  api::ServiceSpec spec = ServiceSpec("migrate");
  spec.mutable_replicated_job()->set_total_completions(3);
  auto job = CreateService(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(job->has_job_status());
  EXPECT_EQ(job->job_status().job_iteration().index(), 0u);
  EXPECT_EQ(job->job_status().last_execution().seconds(), absl::ToUnixSeconds(clock_.Now()));
}

TEST_F(ServerTest, GetService_InsertsDefaultsAndNeverReturnsRegistryAuth) {
  api::ServiceSpec spec = ServiceSpec("private");
  spec.mutable_task_template()->mutable_container()->mutable_pull_options()->set_registry_auth(
      kRegistryAuth);
  auto svc = CreateService(spec);
  ASSERT_TRUE(svc.ok());
  EXPECT_FALSE(svc->spec().task_template().container().has_pull_options());
  EXPECT_EQ(
      StoredService(svc->id()).spec().task_template().container().pull_options().registry_auth(),
      kRegistryAuth);
  api::GetServiceRequest req;
  req.set_service_id("private");
  api::GetServiceResponse resp;
  ASSERT_OK(Call(&Server::GetService, req, &resp));
  EXPECT_FALSE(resp.service().spec().task_template().has_restart_policy());
  EXPECT_FALSE(resp.service().spec().task_template().container().has_pull_options());
  req.set_insert_defaults(true);
  ASSERT_OK(Call(&Server::GetService, req, &resp));
  EXPECT_EQ(resp.service().spec().task_template().restart_policy().condition(),
            api::RESTART_CONDITION_ANY);
  EXPECT_EQ(resp.service().spec().update_config().parallelism(), 1u);
  api::ListServicesResponse list;
  ASSERT_OK(Call(&Server::ListServices, api::ListServicesRequest(), &list));
  ASSERT_EQ(list.services_size(), 1);
  EXPECT_FALSE(list.services(0).spec().task_template().container().has_pull_options());
  // Nor do its tasks, which carry it to the agents.
  api::Task t = MakeTask("task1", svc->id(), "n1", 1);
  *t.mutable_spec() = spec.task_template();
  Put(t);
  api::GetTaskRequest treq;
  treq.set_task_id("task1");
  api::GetTaskResponse tresp;
  ASSERT_OK(Call(&Server::GetTask, treq, &tresp));
  EXPECT_FALSE(tresp.task().spec().container().has_pull_options());
  api::ListTasksResponse tasks;
  ASSERT_OK(Call(&Server::ListTasks, api::ListTasksRequest(), &tasks));
  ASSERT_GE(tasks.tasks_size(), 1);
  for (const api::Task& listed : tasks.tasks()) {
    EXPECT_FALSE(listed.spec().container().has_pull_options()) << listed.id();
  }
}

TEST_F(ServerTest, UpdateService_StaleVersionIsOutOfSequence) {
  auto svc = CreateService(ServiceSpec("web"));
  ASSERT_TRUE(svc.ok());
  api::ServiceSpec spec = svc->spec();
  spec.mutable_replicated()->set_replicas(3);
  api::Service updated;
  ASSERT_OK(UpdateService(*svc, spec, &updated));
  spec.mutable_replicated()->set_replicas(5);
  EXPECT_TRUE(Fails(UpdateService(*svc, spec), StatusCode::FAILED_PRECONDITION,
                    "update out of sequence: service web is at version " +
                        std::to_string(updated.meta().version().index())));
  api::UpdateServiceRequest req;
  req.set_service_id(svc->id());
  *req.mutable_spec() = spec;
  EXPECT_TRUE(Fails(Call(&Server::UpdateService, req), StatusCode::INVALID_ARGUMENT,
                    "service_version is required"));
  EXPECT_EQ(StoredService(svc->id()).spec().replicated().replicas(), 3u);
}

TEST_F(ServerTest, UpdateService_KeepsPreviousSpecAndBumpsSpecVersionOnlyOnChange) {
  auto svc = CreateService(ServiceSpec("web"));
  ASSERT_TRUE(svc.ok());
  api::ServiceSpec spec = svc->spec();
  spec.mutable_replicated()->set_replicas(3);
  api::Service v2;
  ASSERT_OK(UpdateService(*svc, spec, &v2));
  EXPECT_EQ(v2.spec_version().index(), 2u);
  EXPECT_EQ(v2.previous_spec_version().index(), 1u);
  EXPECT_EQ(v2.previous_spec().replicated().replicas(), 1u);
  EXPECT_EQ(v2.spec().replicated().replicas(), 3u);
  EXPECT_GT(v2.meta().version().index(), svc->meta().version().index());

  // The same spec again: nothing to roll out, and the rollback target survives.
  api::Service same;
  ASSERT_OK(UpdateService(v2, spec, &same));
  EXPECT_EQ(same.spec_version().index(), 2u);
  EXPECT_EQ(same.previous_spec().replicated().replicas(), 1u);
}

TEST_F(ServerTest, UpdateService_ModeChangeAndRenameAreRefused) {
  auto svc = CreateService(ServiceSpec("web"));
  ASSERT_TRUE(svc.ok());
  api::ServiceSpec spec = svc->spec();
  spec.mutable_global();
  EXPECT_TRUE(Fails(UpdateService(*svc, spec), StatusCode::INVALID_ARGUMENT,
                    "service mode change is not allowed"));
  spec = svc->spec();
  spec.mutable_annotations()->set_name("web2");
  EXPECT_TRUE(Fails(UpdateService(*svc, spec), StatusCode::INVALID_ARGUMENT,
                    "renaming services is not supported"));
  spec = svc->spec();
  spec.mutable_update_config()->set_max_failure_ratio(2);
  EXPECT_TRUE(Fails(UpdateService(*svc, spec), StatusCode::INVALID_ARGUMENT, "max failure ratio"));
  spec = svc->spec();
  spec.mutable_task_template()->add_networks()->set_target("missing");
  EXPECT_TRUE(Fails(UpdateService(*svc, spec), StatusCode::INVALID_ARGUMENT,
                    "network \"missing\" not found"));
}

TEST_F(ServerTest, UpdateService_RollbackSwapsBackToThePreviousSpec) {
  auto svc = CreateService(ServiceSpec("web"));
  ASSERT_TRUE(svc.ok());
  EXPECT_TRUE(Fails(UpdateService(*svc, api::ServiceSpec(), nullptr, /*rollback=*/true),
                    StatusCode::FAILED_PRECONDITION, "has no previous spec to roll back to"));
  api::ServiceSpec spec = svc->spec();
  spec.mutable_task_template()->mutable_container()->set_image("nginx:1.26");
  api::Service v2;
  ASSERT_OK(UpdateService(*svc, spec, &v2));
  api::Service rolled;
  ASSERT_OK(UpdateService(v2, api::ServiceSpec(), &rolled, /*rollback=*/true));
  EXPECT_EQ(rolled.spec().task_template().container().image(), "nginx:1.25");
  EXPECT_EQ(rolled.spec_version().index(), 1u);
  EXPECT_EQ(rolled.previous_spec().task_template().container().image(), "nginx:1.26");
  EXPECT_EQ(rolled.previous_spec_version().index(), 2u);
  EXPECT_EQ(rolled.update_status().state(), api::UPDATE_STATE_ROLLBACK_STARTED);
  EXPECT_EQ(rolled.update_status().message(), "manually requested rollback");

  // The next update gets a version never used before, not 2 again.
  spec.mutable_task_template()->mutable_container()->set_image("nginx:1.27");
  api::Service v3;
  ASSERT_OK(UpdateService(rolled, spec, &v3));
  EXPECT_EQ(v3.spec_version().index(), 3u);
  EXPECT_FALSE(v3.has_update_status());
}

TEST_F(ServerTest, UpdateService_RebalanceMarksReplicatedServicesOnly) {
  auto svc = CreateService(ServiceSpec("web"));
  ASSERT_TRUE(svc.ok());
  api::UpdateServiceRequest req;
  req.set_service_id("web");
  *req.mutable_service_version() = svc->meta().version();
  req.set_rebalance(true);
  api::UpdateServiceResponse resp;
  ASSERT_OK(Call(&Server::UpdateService, req, &resp));
  EXPECT_TRUE(resp.service().rebalance());
  EXPECT_EQ(resp.service().spec_version().index(), 1u) << "the spec did not change";

  api::ServiceSpec global = ServiceSpec("agent");
  global.mutable_global();
  auto g = CreateService(global);
  ASSERT_TRUE(g.ok());
  req.set_service_id("agent");
  *req.mutable_service_version() = g->meta().version();
  EXPECT_TRUE(Fails(Call(&Server::UpdateService, req, &resp), StatusCode::INVALID_ARGUMENT,
                    "only replicated services can be rebalanced"));
}

TEST_F(ServerTest, UpdateService_RegistryAuthIsKeptWhenNotResent) {
  api::ServiceSpec spec = ServiceSpec("private");
  spec.mutable_task_template()->mutable_container()->mutable_pull_options()->set_registry_auth(
      kRegistryAuth);
  auto svc = CreateService(spec);
  ASSERT_TRUE(svc.ok());
  api::ServiceSpec next = svc->spec();  // as Get returned it: no credentials
  api::Service same;
  ASSERT_OK(UpdateService(*svc, next, &same));
  EXPECT_EQ(same.spec_version().index(), 1u);  // not a change
  next.mutable_replicated()->set_replicas(2);
  ASSERT_OK(UpdateService(same, next));
  EXPECT_EQ(
      StoredService(svc->id()).spec().task_template().container().pull_options().registry_auth(),
      kRegistryAuth);
}

TEST_F(ServerTest, UpdateService_JobsRunAgainWhenTheirSpecChanges) {
  api::ServiceSpec spec = ServiceSpec("job");
  spec.mutable_global_job();
  auto job = CreateService(spec);
  ASSERT_TRUE(job.ok());
  clock_.Advance(absl::Minutes(1));
  spec = job->spec();
  spec.mutable_task_template()->set_force_update(1);
  api::Service again;
  ASSERT_OK(UpdateService(*job, spec, &again));
  EXPECT_EQ(again.job_status().job_iteration().index(), 1u);
  EXPECT_EQ(again.job_status().last_execution().seconds(), absl::ToUnixSeconds(clock_.Now()));
  api::Service unchanged;
  ASSERT_OK(UpdateService(again, spec, &unchanged));
  EXPECT_EQ(unchanged.job_status().job_iteration().index(), 1u);
}

TEST_F(ServerTest, UpdateService_PortConflictsAreCheckedWhenPortsChange) {
  api::ServiceSpec a = ServiceSpec("a");
  Publish(&a, 80);
  ASSERT_TRUE(CreateService(a).ok());
  auto b = CreateService(ServiceSpec("b"));
  ASSERT_TRUE(b.ok());
  api::ServiceSpec spec = b->spec();
  Publish(&spec, 80);
  EXPECT_TRUE(Fails(UpdateService(*b, spec), StatusCode::ALREADY_EXISTS,
                    "port 80/tcp is already in use by service \"a\""));
  // A service keeps its own ports across updates.
  api::GetServiceRequest get;
  get.set_service_id("a");
  api::GetServiceResponse got;
  ASSERT_OK(Call(&Server::GetService, get, &got));
  api::ServiceSpec own = got.service().spec();
  own.mutable_replicated()->set_replicas(4);
  Publish(&own, 81);
  EXPECT_OK(UpdateService(got.service(), own));
}

TEST_F(ServerTest, RemoveService_DeletesTheService) {
  auto svc = CreateService(ServiceSpec("web"));
  ASSERT_TRUE(svc.ok());
  api::RemoveServiceRequest req;
  req.set_service_id("web");
  ASSERT_OK(Call(&Server::RemoveService, req));
  store_.View([&](const store::ReadTx& tx) { EXPECT_EQ(tx.GetService(svc->id()), nullptr); });
  EXPECT_TRUE(
      Fails(Call(&Server::RemoveService, req), StatusCode::NOT_FOUND, "service web not found"));
  // The name is free again.
  EXPECT_TRUE(CreateService(ServiceSpec("web")).ok());
}

TEST_F(ServerTest, ListServices_EveryFilter) {
  api::ServiceSpec web = ServiceSpec("web");
  (*web.mutable_annotations()->mutable_labels())["tier"] = "front";
  api::ServiceSpec api_spec = ServiceSpec("web-api");
  (*api_spec.mutable_annotations()->mutable_labels())["tier"] = "back";
  api::ServiceSpec agent = ServiceSpec("agent");
  agent.mutable_global();
  api::ServiceSpec job = ServiceSpec("backup");
  job.mutable_replicated_job();
  std::map<std::string, std::string> ids;
  for (const auto& s : {web, api_spec, agent, job}) {
    auto created = CreateService(s);
    ASSERT_TRUE(created.ok()) << created.status();
    ids[s.annotations().name()] = created->id();
  }
  auto names = [&](const api::ListServicesRequest::Filters& f) {
    api::ListServicesRequest req;
    *req.mutable_filters() = f;
    api::ListServicesResponse resp;
    EXPECT_OK(Call(&Server::ListServices, req, &resp));
    std::vector<std::string> out;
    for (const auto& s : resp.services()) out.push_back(s.spec().annotations().name());
    std::sort(out.begin(), out.end());
    return out;
  };
  using V = std::vector<std::string>;
  api::ListServicesRequest::Filters f;
  EXPECT_EQ(names(f), (V{"agent", "backup", "web", "web-api"}));
  f.add_names("web");
  f.add_names("agent");
  EXPECT_EQ(names(f), (V{"agent", "web"}));
  f.Clear();
  f.add_name_prefixes("web");
  EXPECT_EQ(names(f), (V{"web", "web-api"}));
  (*f.mutable_labels())["tier"] = "back";
  EXPECT_EQ(names(f), (V{"web-api"}));  // AND across fields
  f.Clear();
  (*f.mutable_labels())["tier"] = "";
  EXPECT_EQ(names(f), (V{"web", "web-api"}));  // an empty value matches any value
  f.Clear();
  f.add_id_prefixes(ids["agent"].substr(0, 10));
  f.add_id_prefixes(ids["backup"]);
  EXPECT_EQ(names(f), (V{"agent", "backup"}));
  f.Clear();
  f.add_modes(api::SERVICE_MODE_GLOBAL);
  f.add_modes(api::SERVICE_MODE_REPLICATED_JOB);
  EXPECT_EQ(names(f), (V{"agent", "backup"}));
  f.Clear();
  f.add_runtimes("container");
  EXPECT_EQ(names(f).size(), 4u);
  f.Clear();
  f.add_runtimes("attachment");
  EXPECT_TRUE(names(f).empty());
}

TEST_F(ServerTest, ListServiceStatuses_CountsDesiredRunningAndCompletedTasks) {
  api::ServiceSpec rep = ServiceSpec("rep");
  rep.mutable_replicated()->set_replicas(3);
  api::ServiceSpec glob = ServiceSpec("glob");
  glob.mutable_global();
  api::ServiceSpec rjob = ServiceSpec("rjob");
  rjob.mutable_replicated_job()->set_total_completions(5);
  rjob.mutable_replicated_job()->set_max_concurrent(2);
  api::ServiceSpec gjob = ServiceSpec("gjob");
  gjob.mutable_global_job();
  std::map<std::string, std::string> id;
  for (const auto& s : {rep, glob, rjob, gjob}) {
    auto created = CreateService(s);
    ASSERT_TRUE(created.ok());
    id[s.annotations().name()] = created->id();
  }
  // rjob and gjob ran once before: their current iteration is 1.
  for (const char* name : {"rjob", "gjob"}) {
    api::Service j = StoredService(id[name]);
    j.mutable_job_status()->mutable_job_iteration()->set_index(1);
    Replace(j);
  }
  auto task = [&](const std::string& tid, const std::string& svc, api::TaskState desired,
                  api::TaskState state, uint64_t iteration = 0) {
    api::Task t = MakeTask(tid, id[svc], "n1", 1, desired, state);
    t.mutable_job_iteration()->set_index(iteration);
    Put(t);
  };
  task("r1", "rep", api::TASK_STATE_RUNNING, api::TASK_STATE_RUNNING);
  task("r2", "rep", api::TASK_STATE_RUNNING, api::TASK_STATE_PREPARING);
  task("r3", "rep", api::TASK_STATE_SHUTDOWN, api::TASK_STATE_SHUTDOWN);
  task("g1", "glob", api::TASK_STATE_RUNNING, api::TASK_STATE_RUNNING);
  task("g2", "glob", api::TASK_STATE_RUNNING, api::TASK_STATE_RUNNING);
  task("g3", "glob", api::TASK_STATE_SHUTDOWN, api::TASK_STATE_FAILED);
  task("j1", "rjob", api::TASK_STATE_COMPLETE, api::TASK_STATE_COMPLETE, 1);
  task("j2", "rjob", api::TASK_STATE_COMPLETE, api::TASK_STATE_RUNNING, 1);
  task("j3", "rjob", api::TASK_STATE_COMPLETE, api::TASK_STATE_COMPLETE, 0);  // old run
  task("k1", "gjob", api::TASK_STATE_COMPLETE, api::TASK_STATE_COMPLETE, 1);
  task("k2", "gjob", api::TASK_STATE_COMPLETE, api::TASK_STATE_STARTING, 1);
  task("k3", "gjob", api::TASK_STATE_COMPLETE, api::TASK_STATE_COMPLETE, 0);

  api::ListServiceStatusesResponse resp;
  ASSERT_OK(Call(&Server::ListServiceStatuses, api::ListServiceStatusesRequest(), &resp));
  ASSERT_EQ(resp.statuses_size(), 4);
  std::map<std::string, api::ServiceStatus> by_id;
  for (const auto& s : resp.statuses()) by_id[s.service_id()] = s;
  auto expect = [&](const std::string& name, uint64_t desired, uint64_t running,
                    uint64_t completed) {
    const api::ServiceStatus& s = by_id[id[name]];
    EXPECT_EQ(s.desired_tasks(), desired) << name;
    EXPECT_EQ(s.running_tasks(), running) << name;
    EXPECT_EQ(s.completed_tasks(), completed) << name;
  };
  expect("rep", 3, 1, 0);
  expect("glob", 2, 2, 0);
  expect("rjob", 2, 1, 1);
  expect("gjob", 2, 0, 1);

  api::ListServiceStatusesRequest one;
  one.add_service_ids(id["glob"]);
  one.add_service_ids("no-such-service");
  ASSERT_OK(Call(&Server::ListServiceStatuses, one, &resp));
  ASSERT_EQ(resp.statuses_size(), 1);
  EXPECT_EQ(resp.statuses(0).service_id(), id["glob"]);
}

// ---- nodes ----

TEST_F(ServerTest, ListNodes_EveryFilter) {
  api::Node m = MakeNode("m1", "manager-1", api::NODE_ROLE_MANAGER);
  (*m.mutable_spec()->mutable_annotations()->mutable_labels())["zone"] = "east";
  api::Node w1 = MakeNode("w1", "worker-1");
  (*w1.mutable_spec()->mutable_annotations()->mutable_labels())["zone"] = "west";
  (*w1.mutable_description()->mutable_engine()->mutable_labels())["disk"] = "ssd";
  w1.mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  api::Node w2 = MakeNode("w2", "worker-2");
  w2.mutable_spec()->mutable_annotations()->set_name("gpu-box");
  w2.mutable_spec()->set_membership(api::NODE_MEMBERSHIP_PENDING);
  for (const auto& n : {m, w1, w2}) Put(n);
  auto ids = [&](const api::ListNodesRequest::Filters& f) {
    api::ListNodesRequest req;
    *req.mutable_filters() = f;
    api::ListNodesResponse resp;
    EXPECT_OK(Call(&Server::ListNodes, req, &resp));
    std::vector<std::string> out;
    for (const auto& n : resp.nodes()) out.push_back(n.id());
    return out;
  };
  using V = std::vector<std::string>;
  api::ListNodesRequest::Filters f;
  EXPECT_EQ(ids(f), (V{"m1", "w1", "w2"}));
  f.add_names("gpu-box");
  f.add_names("manager-1");
  EXPECT_EQ(ids(f), (V{"m1", "w2"}));
  f.Clear();
  f.add_names("worker-2");  // its spec name replaces the hostname
  EXPECT_TRUE(ids(f).empty());
  f.Clear();
  f.add_name_prefixes("worker");
  EXPECT_EQ(ids(f), (V{"w1"}));
  f.Clear();
  f.add_id_prefixes("w");
  EXPECT_EQ(ids(f), (V{"w1", "w2"}));
  f.Clear();
  (*f.mutable_labels())["zone"] = "";
  EXPECT_EQ(ids(f), (V{"m1", "w1"}));
  (*f.mutable_labels())["zone"] = "west";
  EXPECT_EQ(ids(f), (V{"w1"}));
  f.Clear();
  (*f.mutable_engine_labels())["disk"] = "ssd";
  EXPECT_EQ(ids(f), (V{"w1"}));
  f.Clear();
  f.add_memberships(api::NODE_MEMBERSHIP_PENDING);
  EXPECT_EQ(ids(f), (V{"w2"}));
  f.Clear();
  f.add_roles(api::NODE_ROLE_MANAGER);
  EXPECT_EQ(ids(f), (V{"m1"}));
  f.Clear();
  f.add_availabilities(api::NODE_AVAILABILITY_ACTIVE);
  EXPECT_EQ(ids(f), (V{"m1", "w2"}));
  f.add_roles(api::NODE_ROLE_WORKER);
  EXPECT_EQ(ids(f), (V{"w2"}));
}

TEST_F(ServerTest, UpdateNode_ValidatesVersionsAndRoleChanges) {
  Put(MakeNode("m1", "manager-1", api::NODE_ROLE_MANAGER));
  Put(MakeNode("w1", "worker-1"));
  auto get = [&](const std::string& id) {
    api::GetNodeRequest req;
    req.set_node_id(id);
    api::GetNodeResponse resp;
    EXPECT_OK(Call(&Server::GetNode, req, &resp));
    return resp.node();
  };
  auto update = [&](const api::Node& node, const api::NodeSpec& spec, api::Node* out = nullptr) {
    api::UpdateNodeRequest req;
    req.set_node_id(node.id());
    *req.mutable_node_version() = node.meta().version();
    *req.mutable_spec() = spec;
    api::UpdateNodeResponse resp;
    grpc::Status s = Call(&Server::UpdateNode, req, &resp);
    if (out) *out = resp.node();
    return s;
  };
  api::Node w1 = get("worker-1");
  api::NodeSpec spec = w1.spec();
  spec.set_availability(static_cast<api::NodeAvailability>(42));
  EXPECT_TRUE(Fails(update(w1, spec), StatusCode::INVALID_ARGUMENT, "use active, pause or drain"));
  spec.set_availability(api::NODE_AVAILABILITY_DRAIN);
  (*spec.mutable_annotations()->mutable_labels())["zone"] = "east";
  api::Node drained;
  ASSERT_OK(update(w1, spec, &drained));
  EXPECT_EQ(drained.spec().availability(), api::NODE_AVAILABILITY_DRAIN);
  EXPECT_EQ(drained.spec().annotations().labels().at("zone"), "east");
  EXPECT_TRUE(role_checks_.empty());  // the role did not change
  EXPECT_TRUE(Fails(update(w1, spec), StatusCode::FAILED_PRECONDITION, "update out of sequence"));
  api::UpdateNodeRequest no_version;
  no_version.set_node_id("w1");
  *no_version.mutable_spec() = spec;
  EXPECT_TRUE(Fails(Call(&Server::UpdateNode, no_version), StatusCode::INVALID_ARGUMENT,
                    "node_version is required"));

  // Promotion asks the hook; a refusal is passed on and nothing changes.
  spec = drained.spec();
  spec.set_desired_role(api::NODE_ROLE_MANAGER);
  role_check_status_ = absl::FailedPreconditionError("would lose quorum");
  EXPECT_TRUE(Fails(update(drained, spec), StatusCode::FAILED_PRECONDITION, "would lose quorum"));
  ASSERT_EQ(role_checks_.size(), 1u);
  EXPECT_EQ(role_checks_[0].first, "w1");
  EXPECT_EQ(role_checks_[0].second, api::NODE_ROLE_MANAGER);
  EXPECT_EQ(get("w1").spec().desired_role(), api::NODE_ROLE_WORKER);
  role_check_status_ = absl::OkStatus();
  api::Node promoted;
  ASSERT_OK(update(drained, spec, &promoted));
  EXPECT_EQ(promoted.spec().desired_role(), api::NODE_ROLE_MANAGER);

  // Accepted nodes do not go back to pending.
  spec = promoted.spec();
  spec.set_membership(api::NODE_MEMBERSHIP_PENDING);
  EXPECT_TRUE(
      Fails(update(promoted, spec), StatusCode::INVALID_ARGUMENT, "cannot go back to pending"));

  // Two managers now: one may be demoted, not the last one.
  api::Node m1 = get("m1");
  spec = m1.spec();
  spec.set_desired_role(api::NODE_ROLE_WORKER);
  api::Node demoted;
  ASSERT_OK(update(m1, spec, &demoted));
  spec = promoted.spec();
  spec.set_desired_role(api::NODE_ROLE_WORKER);
  EXPECT_TRUE(Fails(update(promoted, spec), StatusCode::FAILED_PRECONDITION,
                    "is the last manager of the swarm and cannot be demoted"));
}

TEST_F(ServerTest, RemoveNode_RefusesLiveNodesAndManagers) {
  Put(MakeNode("m1", "manager-1", api::NODE_ROLE_MANAGER));
  Put(MakeNode("m2", "manager-2", api::NODE_ROLE_MANAGER, api::NODE_STATE_DOWN));
  Put(MakeNode("w1", "worker-1"));
  // A down worker with a certificate: it is blacklisted until the certificate expires.
  api::Node w2 = MakeNode("w2", "worker-2", api::NODE_ROLE_WORKER, api::NODE_STATE_DOWN);
  const api::Cluster cluster = StoredCluster();
  auto root = ca::RootCA::Load(cluster.root_ca().ca_cert(), cluster.root_ca().ca_key());
  ASSERT_TRUE(root.ok());
  auto cert = root->Issue(*ca::CreateCsr(*ca::GenerateKey()), "w2", ca::Role::kWorker, "cluster-1",
                          absl::Hours(48), clock_.Now(), random_);
  ASSERT_TRUE(cert.ok()) << cert.status();
  w2.mutable_certificate()->set_certificate(*cert);
  Put(w2);

  auto remove = [&](const std::string& id, bool force = false) {
    api::RemoveNodeRequest req;
    req.set_node_id(id);
    req.set_force(force);
    return Call(&Server::RemoveNode, req);
  };
  EXPECT_TRUE(Fails(remove("worker-1"), StatusCode::FAILED_PRECONDITION,
                    "node w1 is not down and can't be removed"));
  EXPECT_TRUE(Fails(remove("m2"), StatusCode::FAILED_PRECONDITION,
                    "node m2 is a cluster manager and is a member of the raft cluster. It must be "
                    "demoted to worker before removal"));
  ASSERT_OK(remove("w2"));
  api::Cluster after = StoredCluster();
  ASSERT_EQ(after.blacklisted_certificates().count("w2"), 1u);
  EXPECT_EQ(after.blacklisted_certificates().at("w2").expiry().seconds(),
            absl::ToUnixSeconds(clock_.Now() + absl::Hours(48)));
  ASSERT_OK(remove("w1", /*force=*/true));
  EXPECT_EQ(StoredCluster().blacklisted_certificates().count("w1"), 1u);

  // --force removes a manager only if the hook (quorum) allows it, never the last one.
  role_check_status_ = absl::FailedPreconditionError("would lose quorum");
  EXPECT_TRUE(Fails(remove("m2", true), StatusCode::FAILED_PRECONDITION, "would lose quorum"));
  ASSERT_EQ(role_checks_.size(), 1u);
  EXPECT_EQ(role_checks_[0], std::make_pair(std::string("m2"), api::NODE_ROLE_WORKER));
  role_check_status_ = absl::OkStatus();
  ASSERT_OK(remove("m2", true));
  EXPECT_TRUE(Fails(remove("m1", true), StatusCode::FAILED_PRECONDITION,
                    "is the last manager of the swarm"));
  store_.View([](const store::ReadTx& tx) {
    ASSERT_EQ(tx.ListNodes().size(), 1u);
    EXPECT_EQ(tx.ListNodes()[0]->id(), "m1");
  });
  EXPECT_TRUE(Fails(remove("w1"), StatusCode::NOT_FOUND, "node w1 not found"));
}

// ---- tasks ----

TEST_F(ServerTest, ListTasks_EveryFilter) {
  api::Service svc_a;
  svc_a.set_id("svcA");
  *svc_a.mutable_spec() = ServiceSpec("a");
  svc_a.mutable_spec_version()->set_index(2);
  Put(svc_a);
  auto task = [&](const std::string& id, const std::string& svc, const std::string& node,
                  uint64_t slot, api::TaskState desired, uint64_t spec_version) {
    api::Task t = MakeTask(id, svc, node, slot, desired);
    t.mutable_annotations()->set_name(
        absl::StrCat(svc == "svcA" ? "a" : "b", ".", slot ? std::to_string(slot) : node, ".", id));
    t.mutable_spec_version()->set_index(spec_version);
    return t;
  };
  api::Task t1 = task("t1", "svcA", "n1", 1, api::TASK_STATE_RUNNING, 2);
  (*t1.mutable_annotations()->mutable_labels())["env"] = "prod";
  api::Task t2 = task("t2", "svcA", "n2", 2, api::TASK_STATE_RUNNING, 1);
  api::Task t3 = task("t3", "svcA", "n1", 1, api::TASK_STATE_SHUTDOWN, 1);
  api::Task t4 = task("t4", "svcB", "n2", 0, api::TASK_STATE_RUNNING, 1);
  api::Task t5 = MakeTask("x5", "", "n1", 0);
  t5.mutable_spec()->mutable_attachment()->set_container_id("c1");
  for (const auto& t : {t1, t2, t3, t4, t5}) Put(t);

  auto ids = [&](const api::ListTasksRequest::Filters& f) {
    api::ListTasksRequest req;
    *req.mutable_filters() = f;
    api::ListTasksResponse resp;
    EXPECT_OK(Call(&Server::ListTasks, req, &resp));
    std::vector<std::string> out;
    for (const auto& t : resp.tasks()) out.push_back(t.id());
    return out;
  };
  using V = std::vector<std::string>;
  api::ListTasksRequest::Filters f;
  EXPECT_EQ(ids(f), (V{"t1", "t2", "t3", "t4", "x5"}));
  f.add_service_ids("svcA");
  EXPECT_EQ(ids(f), (V{"t1", "t2", "t3"}));
  f.add_node_ids("n1");
  EXPECT_EQ(ids(f), (V{"t1", "t3"}));
  f.add_desired_states(api::TASK_STATE_RUNNING);
  EXPECT_EQ(ids(f), (V{"t1"}));
  f.Clear();
  f.add_node_ids("n2");
  f.add_node_ids("n2");
  EXPECT_EQ(ids(f), (V{"t2", "t4"}));
  f.Clear();
  f.add_names("a.1.t1");
  f.add_names("b.n2.t4");
  EXPECT_EQ(ids(f), (V{"t1", "t4"}));
  f.Clear();
  f.add_name_prefixes("a.1.");
  EXPECT_EQ(ids(f), (V{"t1", "t3"}));
  f.Clear();
  f.add_id_prefixes("x");
  f.add_id_prefixes("t4");
  EXPECT_EQ(ids(f), (V{"t4", "x5"}));
  f.Clear();
  (*f.mutable_labels())["env"] = "prod";
  EXPECT_EQ(ids(f), (V{"t1"}));
  f.Clear();
  f.add_slots(2);
  EXPECT_EQ(ids(f), (V{"t2"}));
  f.Clear();
  f.add_runtimes("attachment");
  EXPECT_EQ(ids(f), (V{"x5"}));
  f.Clear();
  f.set_up_to_date(true);
  EXPECT_EQ(ids(f), (V{"t1"}));
}

TEST_F(ServerTest, RemoveTask_DeletesIt) {
  Put(MakeTask("task-1", "svc", "n1", 1));
  api::RemoveTaskRequest req;
  req.set_task_id("task-1");
  ASSERT_OK(Call(&Server::RemoveTask, req));
  store_.View([](const store::ReadTx& tx) { EXPECT_TRUE(tx.ListTasks().empty()); });
  EXPECT_TRUE(
      Fails(Call(&Server::RemoveTask, req), StatusCode::NOT_FOUND, "task task-1 not found"));
}

// ---- networks ----

TEST_F(ServerTest, CreateNetwork_NamesIngressAndConfigFrom) {
  const std::string id = CreateNetwork("backend");
  EXPECT_TRUE(IsValidId(id));
  api::CreateNetworkRequest req;
  req.mutable_spec()->mutable_annotations()->set_name("Backend");
  EXPECT_TRUE(Fails(Call(&Server::CreateNetwork, req), StatusCode::ALREADY_EXISTS,
                    "network name \"Backend\" is already in use by network " + id));
  req.mutable_spec()->mutable_annotations()->set_name("none");
  EXPECT_TRUE(Fails(Call(&Server::CreateNetwork, req), StatusCode::INVALID_ARGUMENT,
                    "none is a pre-defined network"));
  CreateNetwork("ingress", /*ingress=*/true);
  req.mutable_spec()->mutable_annotations()->set_name("mesh2");
  req.mutable_spec()->set_ingress(true);
  EXPECT_TRUE(Fails(Call(&Server::CreateNetwork, req), StatusCode::ALREADY_EXISTS,
                    "an ingress network already exists (\"ingress\""));
  req.mutable_spec()->set_ingress(false);
  req.mutable_spec()->set_config_from("template-net");
  EXPECT_TRUE(Fails(Call(&Server::CreateNetwork, req), StatusCode::INVALID_ARGUMENT,
                    "network \"template-net\" (--config-from) not found"));
  req.mutable_spec()->set_config_from("backend");
  EXPECT_OK(Call(&Server::CreateNetwork, req));
  EXPECT_TRUE(Fails(Call(&Server::CreateNetwork, api::CreateNetworkRequest()),
                    StatusCode::INVALID_ARGUMENT, "a network spec is required"));
}

TEST_F(ServerTest, CreateNetwork_RefusesSubnetsThatOverlapAnotherNetwork) {
  api::CreateNetworkRequest req;
  req.mutable_spec()->mutable_annotations()->set_name("big");
  req.mutable_spec()->mutable_ipam()->add_configs()->set_subnet("10.20.0.0/16");
  ASSERT_OK(Call(&Server::CreateNetwork, req));
  req.mutable_spec()->mutable_annotations()->set_name("inside");
  req.mutable_spec()->mutable_ipam()->mutable_configs(0)->set_subnet("10.20.3.0/24");
  EXPECT_TRUE(Fails(Call(&Server::CreateNetwork, req), StatusCode::ALREADY_EXISTS,
                    "subnet 10.20.3.0/24 overlaps network \"big\" (10.20.0.0/16)"));
  // Subnets the allocator gave count too.
  const std::string id = CreateNetwork("pooled");
  ASSERT_TRUE(store_
                  .Update([&](store::WriteTx& tx) {
                    api::Network n = *tx.GetNetwork(id);
                    n.mutable_ipam()->add_configs()->set_subnet("10.0.1.0/24");
                    tx.UpdateObject(n);
                    return absl::OkStatus();
                  })
                  .ok());
  req.mutable_spec()->mutable_ipam()->mutable_configs(0)->set_subnet("10.0.0.0/23");
  EXPECT_TRUE(Fails(Call(&Server::CreateNetwork, req), StatusCode::ALREADY_EXISTS,
                    "overlaps network \"pooled\" (10.0.1.0/24)"));
  req.mutable_spec()->mutable_ipam()->mutable_configs(0)->set_subnet("10.21.0.0/24");
  EXPECT_OK(Call(&Server::CreateNetwork, req));
}

TEST_F(ServerTest, GetNetwork_ByIdOrName) {
  const std::string id = CreateNetwork("backend");
  api::GetNetworkRequest req;
  api::GetNetworkResponse resp;
  req.set_name("backend");
  ASSERT_OK(Call(&Server::GetNetwork, req, &resp));
  EXPECT_EQ(resp.network().id(), id);
  req.set_name("");
  req.set_network_id(id.substr(0, 6));
  ASSERT_OK(Call(&Server::GetNetwork, req, &resp));
  EXPECT_EQ(resp.network().spec().annotations().name(), "backend");
  req.set_network_id("");
  req.set_name("frontend");
  EXPECT_TRUE(
      Fails(Call(&Server::GetNetwork, req), StatusCode::NOT_FOUND, "network frontend not found"));
  EXPECT_TRUE(Fails(Call(&Server::GetNetwork, api::GetNetworkRequest()),
                    StatusCode::INVALID_ARGUMENT, "a network name or ID is required"));
}

TEST_F(ServerTest, UpdateNetwork_OnlyLabelsMayChange) {
  CreateNetwork("backend");
  api::GetNetworkRequest get;
  get.set_name("backend");
  api::GetNetworkResponse got;
  ASSERT_OK(Call(&Server::GetNetwork, get, &got));
  api::UpdateNetworkRequest req;
  req.set_network_id("backend");
  *req.mutable_network_version() = got.network().meta().version();
  *req.mutable_spec() = got.network().spec();
  req.mutable_spec()->set_attachable(true);
  EXPECT_TRUE(Fails(Call(&Server::UpdateNetwork, req), StatusCode::INVALID_ARGUMENT,
                    "only a network's labels can be changed"));
  *req.mutable_spec() = got.network().spec();
  (*req.mutable_spec()->mutable_annotations()->mutable_labels())["team"] = "db";
  api::UpdateNetworkResponse resp;
  ASSERT_OK(Call(&Server::UpdateNetwork, req, &resp));
  EXPECT_EQ(resp.network().spec().annotations().labels().at("team"), "db");
  EXPECT_TRUE(Fails(Call(&Server::UpdateNetwork, req), StatusCode::FAILED_PRECONDITION,
                    "update out of sequence"));
}

TEST_F(ServerTest, RemoveNetwork_RefusedWhileInUse) {
  const std::string net = CreateNetwork("backend");
  api::ServiceSpec spec = ServiceSpec("db");
  spec.mutable_task_template()->add_networks()->set_target("backend");
  auto db = CreateService(spec);
  ASSERT_TRUE(db.ok());
  api::RemoveNetworkRequest req;
  req.set_network_id("backend");
  EXPECT_TRUE(Fails(Call(&Server::RemoveNetwork, req), StatusCode::FAILED_PRECONDITION,
                    "network \"backend\" is in use by service db"));
  api::RemoveServiceRequest rm;
  rm.set_service_id("db");
  ASSERT_OK(Call(&Server::RemoveService, rm));

  // A task still attached (its service is gone, the task not yet stopped) holds it too.
  api::Task t = MakeTask("task-1", db->id(), "n1", 1);
  api::NetworkAttachment* a = t.add_networks();
  a->mutable_network()->set_id(net);
  Put(t);
  EXPECT_TRUE(Fails(Call(&Server::RemoveNetwork, req), StatusCode::FAILED_PRECONDITION,
                    "network \"backend\" is in use by task task-1"));
  t.mutable_status()->set_state(api::TASK_STATE_SHUTDOWN);
  store::Ptr<api::Task> stored;
  store_.View([&](const store::ReadTx& tx) { stored = tx.GetTask("task-1"); });
  *t.mutable_meta() = stored->meta();
  Replace(t);
  ASSERT_OK(Call(&Server::RemoveNetwork, req));
  EXPECT_TRUE(
      Fails(Call(&Server::RemoveNetwork, req), StatusCode::NOT_FOUND, "network backend not found"));
}

TEST_F(ServerTest, RemoveNetwork_IngressIsKeptWhileServicesPublishIngressPorts) {
  CreateNetwork("ingress", /*ingress=*/true);
  api::ServiceSpec web = ServiceSpec("web");
  Publish(&web, 80);
  api::ServiceSpec direct = ServiceSpec("direct");
  Publish(&direct, 81, api::PUBLISH_MODE_HOST);
  ASSERT_TRUE(CreateService(web).ok());
  ASSERT_TRUE(CreateService(direct).ok());
  api::RemoveNetworkRequest req;
  req.set_network_id("ingress");
  EXPECT_TRUE(Fails(Call(&Server::RemoveNetwork, req), StatusCode::FAILED_PRECONDITION,
                    "ingress network \"ingress\" cannot be removed because these services publish "
                    "ports in ingress mode: web;"));
  api::RemoveServiceRequest rm;
  rm.set_service_id("web");
  ASSERT_OK(Call(&Server::RemoveService, rm));
  EXPECT_OK(Call(&Server::RemoveNetwork, req));
}

TEST_F(ServerTest, ListNetworks_Filters) {
  const std::string front = CreateNetwork("front");
  CreateNetwork("back-1");
  CreateNetwork("back-2");
  api::ListNetworksRequest req;
  req.mutable_filters()->add_name_prefixes("back");
  api::ListNetworksResponse resp;
  ASSERT_OK(Call(&Server::ListNetworks, req, &resp));
  EXPECT_EQ(resp.networks_size(), 2);
  req.mutable_filters()->add_names("back-2");
  ASSERT_OK(Call(&Server::ListNetworks, req, &resp));
  ASSERT_EQ(resp.networks_size(), 1);
  EXPECT_EQ(resp.networks(0).spec().annotations().name(), "back-2");
  req.Clear();
  (*req.mutable_filters()->mutable_labels())["x"] = "";
  ASSERT_OK(Call(&Server::ListNetworks, req, &resp));
  EXPECT_EQ(resp.networks_size(), 0);
  req.Clear();
  req.mutable_filters()->add_id_prefixes(front.substr(0, 4));
  ASSERT_OK(Call(&Server::ListNetworks, req, &resp));
  ASSERT_EQ(resp.networks_size(), 1);
  EXPECT_EQ(resp.networks(0).id(), front);
}

// ---- secrets and configs ----

TEST_F(ServerTest, Secrets_DataIsNeverReturnedAndInternalOnesAreHidden) {
  api::CreateSecretRequest create;
  create.mutable_spec()->mutable_annotations()->set_name("db-password");
  create.mutable_spec()->set_data("hunter2");
  (*create.mutable_spec()->mutable_annotations()->mutable_labels())["app"] = "db";
  api::CreateSecretResponse created;
  ASSERT_OK(Call(&Server::CreateSecret, create, &created));
  EXPECT_TRUE(created.secret().spec().data().empty());
  EXPECT_TRUE(Fails(Call(&Server::CreateSecret, create), StatusCode::ALREADY_EXISTS,
                    "secret name \"db-password\" is already in use"));
  create.mutable_spec()->mutable_annotations()->set_name("huge");
  create.mutable_spec()->set_data(std::string(kMaxSecretSize + 1, 'x'));
  EXPECT_TRUE(Fails(Call(&Server::CreateSecret, create), StatusCode::INVALID_ARGUMENT,
                    "secret data must be 1 byte to 500 KiB"));

  api::Secret internal;
  internal.set_id("internal1");
  internal.set_internal(true);
  internal.mutable_spec()->mutable_annotations()->set_name("swarm-internal");
  internal.mutable_spec()->set_data("x");
  Put(internal);

  api::GetSecretRequest get;
  get.set_secret_id("db-password");
  api::GetSecretResponse got;
  ASSERT_OK(Call(&Server::GetSecret, get, &got));
  EXPECT_EQ(got.secret().id(), created.secret().id());
  EXPECT_TRUE(got.secret().spec().data().empty());
  store_.View([&](const store::ReadTx& tx) {
    EXPECT_EQ(tx.GetSecret(created.secret().id())->spec().data(), "hunter2");
  });
  api::ListSecretsResponse list;
  ASSERT_OK(Call(&Server::ListSecrets, api::ListSecretsRequest(), &list));
  ASSERT_EQ(list.secrets_size(), 1);
  EXPECT_EQ(list.secrets(0).spec().annotations().name(), "db-password");
  EXPECT_TRUE(list.secrets(0).spec().data().empty());
  api::ListSecretsRequest filtered;
  (*filtered.mutable_filters()->mutable_labels())["app"] = "web";
  ASSERT_OK(Call(&Server::ListSecrets, filtered, &list));
  EXPECT_EQ(list.secrets_size(), 0);

  api::RemoveSecretRequest rm;
  rm.set_secret_id("swarm-internal");
  EXPECT_TRUE(Fails(Call(&Server::RemoveSecret, rm), StatusCode::INVALID_ARGUMENT,
                    "is managed by the swarm and cannot be removed"));
}

TEST_F(ServerTest, UpdateSecret_OnlyLabelsMayChange) {
  CreateSecret("pw", "first");
  api::GetSecretRequest get;
  get.set_secret_id("pw");
  api::GetSecretResponse got;
  ASSERT_OK(Call(&Server::GetSecret, get, &got));
  api::UpdateSecretRequest req;
  req.set_secret_id("pw");
  *req.mutable_secret_version() = got.secret().meta().version();
  *req.mutable_spec() = got.secret().spec();  // no data: keeps it
  (*req.mutable_spec()->mutable_annotations()->mutable_labels())["rotated"] = "no";
  api::UpdateSecretResponse resp;
  ASSERT_OK(Call(&Server::UpdateSecret, req, &resp));
  EXPECT_EQ(resp.secret().spec().annotations().labels().at("rotated"), "no");
  EXPECT_TRUE(resp.secret().spec().data().empty());
  store_.View([&](const store::ReadTx& tx) {
    EXPECT_EQ(tx.GetSecret(resp.secret().id())->spec().data(), "first");
  });
  *req.mutable_secret_version() = resp.secret().meta().version();
  req.mutable_spec()->set_data("second");
  EXPECT_TRUE(Fails(Call(&Server::UpdateSecret, req), StatusCode::INVALID_ARGUMENT,
                    "only a secret's labels can be changed"));
  req.mutable_spec()->clear_data();
  req.mutable_spec()->mutable_annotations()->set_name("pw2");
  EXPECT_TRUE(Fails(Call(&Server::UpdateSecret, req), StatusCode::INVALID_ARGUMENT,
                    "only a secret's labels can be changed"));
  req.mutable_spec()->mutable_annotations()->set_name("pw");
  req.mutable_secret_version()->set_index(1);
  EXPECT_TRUE(Fails(Call(&Server::UpdateSecret, req), StatusCode::FAILED_PRECONDITION,
                    "update out of sequence"));
}

TEST_F(ServerTest, RemoveSecret_RefusedWhileServicesUseIt) {
  CreateSecret("pw");
  for (const char* name : {"web", "api"}) {
    api::ServiceSpec spec = ServiceSpec(name);
    auto* r = spec.mutable_task_template()->mutable_container()->add_secrets();
    r->set_secret_name("pw");
    r->mutable_file()->set_name("pw");
    ASSERT_TRUE(CreateService(spec).ok());
  }
  api::RemoveSecretRequest req;
  req.set_secret_id("pw");
  EXPECT_TRUE(Fails(Call(&Server::RemoveSecret, req), StatusCode::FAILED_PRECONDITION,
                    "secret \"pw\" is in use by the following services: api, web"));
  for (const char* name : {"web"}) {
    api::RemoveServiceRequest rm;
    rm.set_service_id(name);
    ASSERT_OK(Call(&Server::RemoveService, rm));
  }
  EXPECT_TRUE(Fails(Call(&Server::RemoveSecret, req), StatusCode::FAILED_PRECONDITION,
                    "is in use by the following service: api"));
  api::RemoveServiceRequest rm;
  rm.set_service_id("api");
  ASSERT_OK(Call(&Server::RemoveService, rm));
  ASSERT_OK(Call(&Server::RemoveSecret, req));
  store_.View([](const store::ReadTx& tx) { EXPECT_TRUE(tx.ListSecrets().empty()); });
}

TEST_F(ServerTest, Configs_DataIsReturnedImmutableAndProtectedWhileInUse) {
  const std::string id = CreateConfig("nginx.conf");
  api::GetConfigRequest get;
  get.set_config_id(id.substr(0, 8));
  api::GetConfigResponse got;
  ASSERT_OK(Call(&Server::GetConfig, get, &got));
  EXPECT_EQ(got.config().spec().data(), "listen 80;");

  api::UpdateConfigRequest upd;
  upd.set_config_id(id);
  *upd.mutable_config_version() = got.config().meta().version();
  *upd.mutable_spec() = got.config().spec();
  upd.mutable_spec()->set_data("listen 81;");
  EXPECT_TRUE(Fails(Call(&Server::UpdateConfig, upd), StatusCode::INVALID_ARGUMENT,
                    "only a config's labels can be changed"));
  upd.mutable_spec()->set_data("listen 80;");
  (*upd.mutable_spec()->mutable_annotations()->mutable_labels())["v"] = "1";
  api::UpdateConfigResponse updated;
  ASSERT_OK(Call(&Server::UpdateConfig, upd, &updated));
  EXPECT_EQ(updated.config().spec().annotations().labels().at("v"), "1");

  api::CreateConfigRequest big;
  big.mutable_spec()->mutable_annotations()->set_name("big");
  big.mutable_spec()->set_data(std::string(kMaxConfigSize + 1, 'x'));
  EXPECT_TRUE(Fails(Call(&Server::CreateConfig, big), StatusCode::INVALID_ARGUMENT,
                    "config data must be 1 byte to 1000 KiB"));

  api::ServiceSpec spec = ServiceSpec("web");
  auto* r = spec.mutable_task_template()->mutable_container()->add_configs();
  r->set_config_name("nginx.conf");
  r->mutable_file()->set_name("/etc/nginx/nginx.conf");
  ASSERT_TRUE(CreateService(spec).ok());
  api::RemoveConfigRequest rm;
  rm.set_config_id("nginx.conf");
  EXPECT_TRUE(Fails(Call(&Server::RemoveConfig, rm), StatusCode::FAILED_PRECONDITION,
                    "config \"nginx.conf\" is in use by the following service: web"));
  api::RemoveServiceRequest rm_web;
  rm_web.set_service_id("web");
  ASSERT_OK(Call(&Server::RemoveService, rm_web));
  api::ListConfigsRequest list;
  list.mutable_filters()->add_names("nginx.conf");
  api::ListConfigsResponse configs;
  ASSERT_OK(Call(&Server::ListConfigs, list, &configs));
  ASSERT_EQ(configs.configs_size(), 1);
  EXPECT_EQ(configs.configs(0).spec().data(), "listen 80;");
  ASSERT_OK(Call(&Server::RemoveConfig, rm));
  EXPECT_TRUE(Fails(Call(&Server::GetConfig, get), StatusCode::NOT_FOUND, "not found"));
}

TEST_F(ServerTest, Configs_NamesAreUniqueAndUpdatesNeedTheCurrentVersion) {
  const std::string id = CreateConfig("app.conf");
  api::CreateConfigRequest dup;
  dup.mutable_spec()->mutable_annotations()->set_name("APP.conf");
  dup.mutable_spec()->set_data("x");
  EXPECT_TRUE(Fails(Call(&Server::CreateConfig, dup), StatusCode::ALREADY_EXISTS,
                    "config name \"APP.conf\" is already in use by config " + id));
  api::UpdateConfigRequest upd;
  upd.set_config_id("app.conf");
  upd.mutable_config_version()->set_index(1);
  upd.mutable_spec()->mutable_annotations()->set_name("app.conf");
  EXPECT_TRUE(Fails(Call(&Server::UpdateConfig, upd), StatusCode::FAILED_PRECONDITION,
                    "update out of sequence: config app.conf is at version"));
  upd.clear_config_version();
  EXPECT_TRUE(Fails(Call(&Server::UpdateConfig, upd), StatusCode::INVALID_ARGUMENT,
                    "config_version is required"));
  EXPECT_TRUE(Fails(Call(&Server::CreateConfig, api::CreateConfigRequest()),
                    StatusCode::INVALID_ARGUMENT, "a config spec is required"));
}

// ---- cluster ----

TEST_F(ServerTest, GetCluster_RedactsKeys) {
  api::Cluster stored = StoredCluster();
  stored.add_unlock_keys()->set_key("SWMKEY-1-secret");
  stored.add_network_bootstrap_keys()->set_key("k");
  Replace(stored);
  api::GetClusterRequest req;
  req.set_cluster_id("default");
  api::GetClusterResponse resp;
  ASSERT_OK(Call(&Server::GetCluster, req, &resp));
  EXPECT_EQ(resp.cluster().id(), cluster_id_);
  EXPECT_FALSE(resp.cluster().root_ca().ca_cert().empty());
  EXPECT_TRUE(resp.cluster().root_ca().ca_key().empty());
  EXPECT_FALSE(StoredCluster().root_ca().ca_key().empty());
  EXPECT_EQ(resp.cluster().unlock_keys_size(), 0);
  EXPECT_EQ(resp.cluster().network_bootstrap_keys_size(), 0);
  EXPECT_FALSE(resp.cluster().root_ca().join_tokens().worker().empty());

  api::ListClustersRequest list;
  list.mutable_filters()->add_names("default");
  api::ListClustersResponse clusters;
  ASSERT_OK(Call(&Server::ListClusters, list, &clusters));
  ASSERT_EQ(clusters.clusters_size(), 1);
  EXPECT_TRUE(clusters.clusters(0).root_ca().ca_key().empty());
  list.mutable_filters()->add_name_prefixes("x");
  ASSERT_OK(Call(&Server::ListClusters, list, &clusters));
  EXPECT_EQ(clusters.clusters_size(), 0);
}

class ClusterUpdateTest : public ServerTest {
 protected:
  grpc::Status Update(const std::function<void(api::UpdateClusterRequest*)>& change,
                      api::Cluster* out = nullptr) {
    const api::Cluster current = StoredCluster();
    api::UpdateClusterRequest req;
    req.set_cluster_id(current.id());
    *req.mutable_cluster_version() = current.meta().version();
    *req.mutable_spec() = current.spec();
    change(&req);
    api::UpdateClusterResponse resp;
    grpc::Status s = Call(&Server::UpdateCluster, req, &resp);
    if (out) *out = resp.cluster();
    return s;
  }
};

TEST_F(ClusterUpdateTest, UpdateCluster_ValidatesTheSpec) {
  EXPECT_TRUE(
      Fails(Update([](auto* r) {
              r->mutable_spec()->mutable_ca_config()->mutable_node_cert_expiry()->set_seconds(60);
            }),
            StatusCode::INVALID_ARGUMENT, "must be at least 1h"));
  EXPECT_TRUE(
      Fails(Update([](auto* r) {
              r->mutable_spec()->mutable_dispatcher()->mutable_heartbeat_period()->set_seconds(-1);
            }),
            StatusCode::INVALID_ARGUMENT, "heartbeat period"));
  EXPECT_TRUE(
      Fails(Update([](auto* r) { r->mutable_spec()->mutable_annotations()->set_name("x"); }),
            StatusCode::INVALID_ARGUMENT, "the cluster's name (\"default\") cannot be changed"));
  EXPECT_TRUE(Fails(Update([](auto* r) { r->mutable_cluster_version()->set_index(0); }),
                    StatusCode::FAILED_PRECONDITION, "update out of sequence"));
  EXPECT_TRUE(Fails(Update([](auto* r) { r->clear_cluster_version(); }),
                    StatusCode::INVALID_ARGUMENT, "cluster_version is required"));
  api::Cluster updated;
  ASSERT_OK(Update(
      [](auto* r) {
        r->mutable_spec()->mutable_orchestration()->set_task_history_retention_limit(10);
        r->mutable_spec()->mutable_ca_config()->mutable_node_cert_expiry()->set_seconds(3600 * 24);
      },
      &updated));
  EXPECT_EQ(StoredCluster().spec().orchestration().task_history_retention_limit(), 10);
  EXPECT_EQ(updated.spec().ca_config().node_cert_expiry().seconds(), 3600 * 24);
  EXPECT_TRUE(updated.root_ca().ca_key().empty());
}

TEST_F(ClusterUpdateTest, UpdateCluster_RotatesJoinTokensInTheSameTransaction) {
  const api::Cluster before = StoredCluster();
  api::Cluster after;
  ASSERT_OK(Update(
      [](auto* r) {
        r->mutable_rotation()->set_worker_join_token(true);
        (*r->mutable_spec()->mutable_annotations()->mutable_labels())["rotated"] = "yes";
      },
      &after));
  const api::Cluster stored = StoredCluster();
  EXPECT_EQ(stored.meta().version().index(), before.meta().version().index() + 1);
  EXPECT_EQ(stored.spec().annotations().labels().at("rotated"), "yes");
  const std::string& worker = stored.root_ca().join_tokens().worker();
  EXPECT_NE(worker, before.root_ca().join_tokens().worker());
  EXPECT_EQ(stored.root_ca().join_tokens().manager(), before.root_ca().join_tokens().manager());
  EXPECT_EQ(after.root_ca().join_tokens().worker(), worker);
  auto token = ca::ParseJoinToken(worker);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_TRUE(ca::TokenMatchesRoot(*token, *ca::RootCA::Load(stored.root_ca().ca_cert(), "")));

  ASSERT_OK(Update([](auto* r) { r->mutable_rotation()->set_manager_join_token(true); }));
  EXPECT_NE(StoredCluster().root_ca().join_tokens().manager(),
            before.root_ca().join_tokens().manager());
  EXPECT_EQ(StoredCluster().root_ca().join_tokens().worker(), worker);
}

TEST_F(ClusterUpdateTest, UpdateCluster_UnlockKeyFollowsAutolockAndRotates) {
  EXPECT_TRUE(Fails(Update([](auto* r) { r->mutable_rotation()->set_manager_unlock_key(true); }),
                    StatusCode::FAILED_PRECONDITION,
                    "cannot rotate the unlock key: autolock is off"));
  EXPECT_EQ(UnlockKeyOf(StoredCluster()), "");
  api::Cluster shown;
  ASSERT_OK(Update(
      [](auto* r) { r->mutable_spec()->mutable_encryption_config()->set_auto_lock_managers(true); },
      &shown));
  const std::string first = UnlockKeyOf(StoredCluster());
  EXPECT_TRUE(ca::ParseUnlockKey(first).ok()) << first;
  EXPECT_EQ(shown.unlock_keys_size(), 0);  // never shown by the cluster object
  ASSERT_OK(Update([](auto* r) {
    (*r->mutable_spec()->mutable_annotations()->mutable_labels())["other"] = "change";
  }));
  EXPECT_EQ(UnlockKeyOf(StoredCluster()), first);  // other updates keep it
  ASSERT_OK(Update([](auto* r) { r->mutable_rotation()->set_manager_unlock_key(true); }));
  const std::string second = UnlockKeyOf(StoredCluster());
  EXPECT_TRUE(ca::ParseUnlockKey(second).ok());
  EXPECT_NE(second, first);
  EXPECT_EQ(StoredCluster().unlock_keys_size(), 1);
  ASSERT_OK(Update([](auto* r) {
    r->mutable_spec()->mutable_encryption_config()->set_auto_lock_managers(false);
  }));
  EXPECT_EQ(StoredCluster().unlock_keys_size(), 0);
}

TEST_F(ClusterUpdateTest, UpdateCluster_KeepsTheSigningKeyWhenTheSpecComesBackRedacted) {
  SeededRandom r(11);
  auto root = ca::RootCA::Create("cluster-1", ca::kDefaultRootValidity, clock_.Now(), r);
  ASSERT_TRUE(root.ok());
  ASSERT_OK(Update([&](auto* req) {
    req->mutable_spec()->mutable_ca_config()->set_signing_ca_cert(root->cert_pem());
    req->mutable_spec()->mutable_ca_config()->set_signing_ca_key(root->key_pem());
  }));
  api::GetClusterRequest get;
  get.set_cluster_id("default");
  api::GetClusterResponse got;
  ASSERT_OK(Call(&Server::GetCluster, get, &got));
  EXPECT_TRUE(got.cluster().spec().ca_config().signing_ca_key().empty());
  api::UpdateClusterRequest req;
  req.set_cluster_id("default");
  *req.mutable_cluster_version() = got.cluster().meta().version();
  *req.mutable_spec() = got.cluster().spec();
  req.mutable_spec()->mutable_orchestration()->set_task_history_retention_limit(3);
  ASSERT_OK(Call(&Server::UpdateCluster, req));
  EXPECT_EQ(StoredCluster().spec().ca_config().signing_ca_key(), root->key_pem());
}

TEST_F(ClusterUpdateTest, UpdateCluster_DropsExpiredBlacklistEntries) {
  api::Cluster c = StoredCluster();
  auto entry = [&](absl::Time expiry) {
    api::BlacklistedCertificate b;
    b.mutable_expiry()->set_seconds(absl::ToUnixSeconds(expiry));
    return b;
  };
  (*c.mutable_blacklisted_certificates())["old"] = entry(clock_.Now() - absl::Hours(24 * 30));
  (*c.mutable_blacklisted_certificates())["recent"] = entry(clock_.Now() - absl::Hours(24));
  (*c.mutable_blacklisted_certificates())["live"] = entry(clock_.Now() + absl::Hours(24));
  Replace(c);
  ASSERT_EQ(StoredCluster().blacklisted_certificates_size(), 3);
  ASSERT_OK(Update([](auto*) {}));
  const api::Cluster after = StoredCluster();
  const auto& list = after.blacklisted_certificates();
  EXPECT_EQ(list.count("old"), 0u);
  EXPECT_EQ(list.count("recent"), 1u);  // within the grace period
  EXPECT_EQ(list.count("live"), 1u);
}

TEST_F(ServerTest, GetUnlockKey_ComesFromTheHook) {
  EXPECT_TRUE(Fails(Call(&Server::GetUnlockKey, api::GetUnlockKeyRequest()),
                    StatusCode::UNIMPLEMENTED, "cannot report the unlock key"));
  Server::Options options;
  options.clock = &clock_;
  options.random = &random_;
  options.unlock_key = [this]() -> absl::StatusOr<std::string> {
    return UnlockKeyOf(StoredCluster());
  };
  server_ = std::make_unique<Server>(&store_, std::move(options));
  api::GetUnlockKeyResponse resp;
  ASSERT_OK(Call(&Server::GetUnlockKey, api::GetUnlockKeyRequest(), &resp));
  EXPECT_EQ(resp.unlock_key(), "");
  EXPECT_EQ(resp.version().index(), StoredCluster().meta().version().index());
}

}  // namespace
}  // namespace swarm::manager::controlapi

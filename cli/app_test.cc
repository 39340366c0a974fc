// swarmctl's commands end to end, in-process, against a fake swarmd: a gRPC server on a unix
// socket in the test's temporary directory that implements Control and NodeAdmin with canned
// objects and records what it was sent.
#include "cli/app.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "proto/control.grpc.pb.h"
#include "proto/logbroker.grpc.pb.h"
#include "proto/node.grpc.pb.h"

namespace swarm::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

// A clock whose sleeps return at once (swarm init polls for the cluster's tokens).
class InstantClock final : public Clock {
 public:
  absl::Time Now() const override { return now_; }
  void SleepFor(absl::Duration d) override { now_ += d; }

 private:
  absl::Time now_ = kNow;
};

void SetTime(absl::Time t, google::protobuf::Timestamp* ts) {
  ts->set_seconds(absl::ToUnixSeconds(t));
}

// What the fake serves and what it was sent.
struct FakeState {
  absl::Mutex mu;
  std::vector<api::Node> nodes;
  std::vector<api::Service> services;
  std::vector<api::ServiceStatus> statuses;
  std::vector<api::Task> tasks;
  std::vector<api::Network> networks;
  std::vector<api::Secret> secrets;
  std::vector<api::Config> configs;
  std::vector<api::Cluster> clusters;
  api::NodeInfoResponse info;
  std::string unlock_key;
  // The last request of each method, by method name; every method name called, in order.
  std::map<std::string, std::shared_ptr<google::protobuf::Message>> last;
  std::vector<std::string> calls;
  // UpdateService answers "out of sequence" this many times first (the orchestrator wrote the
  // service in between).
  int update_conflicts = 0;

  template <typename T>
  void Record(const std::string& method, const T& req) {
    absl::MutexLock lock(&mu);
    last[method] = std::make_shared<T>(req);
    calls.push_back(method);
  }
};

// Finds an object by exact ID, exact name or unique ID prefix, as the control API does.
template <typename T>
const T* Resolve(const std::vector<T>& objects, const std::string& ref,
                 const std::function<std::string(const T&)>& name) {
  for (const T& o : objects) {
    if (o.id() == ref) return &o;
  }
  for (const T& o : objects) {
    if (name(o) == ref) return &o;
  }
  const T* found = nullptr;
  for (const T& o : objects) {
    if (!ref.empty() && absl::StartsWith(o.id(), ref)) {
      if (found != nullptr) return nullptr;
      found = &o;
    }
  }
  return found;
}

grpc::Status NotFound(const std::string& kind, const std::string& ref) {
  return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat(kind, " ", ref, " not found"));
}

std::string SpecName(const auto& o) { return o.spec().annotations().name(); }

class FakeControl final : public api::Control::Service {
 public:
  explicit FakeControl(FakeState* s) : s_(s) {}

  grpc::Status GetNode(grpc::ServerContext*, const api::GetNodeRequest* req,
                       api::GetNodeResponse* resp) override {
    s_->Record("GetNode", *req);
    absl::MutexLock lock(&s_->mu);
    const api::Node* n = Resolve<api::Node>(
        s_->nodes, req->node_id(), [](const api::Node& n) { return n.description().hostname(); });
    if (n == nullptr) return NotFound("node", req->node_id());
    *resp->mutable_node() = *n;
    return grpc::Status::OK;
  }
  grpc::Status ListNodes(grpc::ServerContext*, const api::ListNodesRequest* req,
                         api::ListNodesResponse* resp) override {
    s_->Record("ListNodes", *req);
    absl::MutexLock lock(&s_->mu);
    for (const auto& n : s_->nodes) *resp->add_nodes() = n;
    return grpc::Status::OK;
  }
  grpc::Status UpdateNode(grpc::ServerContext*, const api::UpdateNodeRequest* req,
                          api::UpdateNodeResponse*) override {
    s_->Record("UpdateNode", *req);
    return grpc::Status::OK;
  }
  grpc::Status RemoveNode(grpc::ServerContext*, const api::RemoveNodeRequest* req,
                          api::RemoveNodeResponse*) override {
    s_->Record("RemoveNode", *req);
    absl::MutexLock lock(&s_->mu);
    if (Resolve<api::Node>(s_->nodes, req->node_id(), [](const api::Node& n) {
          return n.description().hostname();
        }) == nullptr) {
      return NotFound("node", req->node_id());
    }
    return grpc::Status::OK;
  }
  grpc::Status ListTasks(grpc::ServerContext*, const api::ListTasksRequest* req,
                         api::ListTasksResponse* resp) override {
    s_->Record("ListTasks", *req);
    absl::MutexLock lock(&s_->mu);
    for (const auto& t : s_->tasks) {
      const auto& f = req->filters();
      if (f.service_ids_size() > 0 && std::find(f.service_ids().begin(), f.service_ids().end(),
                                                t.service_id()) == f.service_ids().end()) {
        continue;
      }
      if (f.node_ids_size() > 0 &&
          std::find(f.node_ids().begin(), f.node_ids().end(), t.node_id()) == f.node_ids().end()) {
        continue;
      }
      *resp->add_tasks() = t;
    }
    return grpc::Status::OK;
  }
  grpc::Status GetService(grpc::ServerContext*, const api::GetServiceRequest* req,
                          api::GetServiceResponse* resp) override {
    s_->Record("GetService", *req);
    absl::MutexLock lock(&s_->mu);
    const api::Service* svc = Resolve<api::Service>(
        s_->services, req->service_id(), [](const api::Service& s) { return SpecName(s); });
    if (svc == nullptr) return NotFound("service", req->service_id());
    *resp->mutable_service() = *svc;
    return grpc::Status::OK;
  }
  grpc::Status ListServices(grpc::ServerContext*, const api::ListServicesRequest* req,
                            api::ListServicesResponse* resp) override {
    s_->Record("ListServices", *req);
    absl::MutexLock lock(&s_->mu);
    for (const auto& svc : s_->services) *resp->add_services() = svc;
    return grpc::Status::OK;
  }
  grpc::Status CreateService(grpc::ServerContext*, const api::CreateServiceRequest* req,
                             api::CreateServiceResponse* resp) override {
    s_->Record("CreateService", *req);
    resp->mutable_service()->set_id("newserviceid0000000000000");
    *resp->mutable_service()->mutable_spec() = req->spec();
    return grpc::Status::OK;
  }
  grpc::Status UpdateService(grpc::ServerContext*, const api::UpdateServiceRequest* req,
                             api::UpdateServiceResponse*) override {
    s_->Record("UpdateService", *req);
    absl::MutexLock lock(&s_->mu);
    if (s_->update_conflicts > 0) {
      --s_->update_conflicts;
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "update out of sequence: service web changed since it was read");
    }
    return grpc::Status::OK;
  }
  grpc::Status RemoveService(grpc::ServerContext*, const api::RemoveServiceRequest* req,
                             api::RemoveServiceResponse*) override {
    s_->Record("RemoveService", *req);
    absl::MutexLock lock(&s_->mu);
    if (Resolve<api::Service>(s_->services, req->service_id(),
                              [](const api::Service& s) { return SpecName(s); }) == nullptr) {
      return NotFound("service", req->service_id());
    }
    return grpc::Status::OK;
  }
  grpc::Status ListServiceStatuses(grpc::ServerContext*, const api::ListServiceStatusesRequest* req,
                                   api::ListServiceStatusesResponse* resp) override {
    s_->Record("ListServiceStatuses", *req);
    absl::MutexLock lock(&s_->mu);
    for (const auto& st : s_->statuses) *resp->add_statuses() = st;
    return grpc::Status::OK;
  }
  grpc::Status GetNetwork(grpc::ServerContext*, const api::GetNetworkRequest* req,
                          api::GetNetworkResponse* resp) override {
    s_->Record("GetNetwork", *req);
    absl::MutexLock lock(&s_->mu);
    const std::string ref = req->network_id().empty() ? req->name() : req->network_id();
    const api::Network* n =
        Resolve<api::Network>(s_->networks, ref, [](const api::Network& n) { return SpecName(n); });
    if (n == nullptr) return NotFound("network", ref);
    *resp->mutable_network() = *n;
    return grpc::Status::OK;
  }
  grpc::Status ListNetworks(grpc::ServerContext*, const api::ListNetworksRequest* req,
                            api::ListNetworksResponse* resp) override {
    s_->Record("ListNetworks", *req);
    absl::MutexLock lock(&s_->mu);
    for (const auto& n : s_->networks) *resp->add_networks() = n;
    return grpc::Status::OK;
  }
  grpc::Status CreateNetwork(grpc::ServerContext*, const api::CreateNetworkRequest* req,
                             api::CreateNetworkResponse* resp) override {
    s_->Record("CreateNetwork", *req);
    resp->mutable_network()->set_id("newnetworkid0000000000000");
    return grpc::Status::OK;
  }
  grpc::Status RemoveNetwork(grpc::ServerContext*, const api::RemoveNetworkRequest* req,
                             api::RemoveNetworkResponse*) override {
    s_->Record("RemoveNetwork", *req);
    return grpc::Status::OK;
  }
  grpc::Status ListClusters(grpc::ServerContext*, const api::ListClustersRequest* req,
                            api::ListClustersResponse* resp) override {
    s_->Record("ListClusters", *req);
    absl::MutexLock lock(&s_->mu);
    for (const auto& c : s_->clusters) *resp->add_clusters() = c;
    return grpc::Status::OK;
  }
  grpc::Status UpdateCluster(grpc::ServerContext*, const api::UpdateClusterRequest* req,
                             api::UpdateClusterResponse* resp) override {
    s_->Record("UpdateCluster", *req);
    absl::MutexLock lock(&s_->mu);
    api::Cluster& c = s_->clusters.at(0);
    *c.mutable_spec() = req->spec();
    if (req->rotation().worker_join_token()) {
      c.mutable_root_ca()->mutable_join_tokens()->set_worker("SWMTKN-1-rotated-worker");
    }
    if (req->rotation().manager_join_token()) {
      c.mutable_root_ca()->mutable_join_tokens()->set_manager("SWMTKN-1-rotated-manager");
    }
    if (req->rotation().manager_unlock_key()) s_->unlock_key = "SWMKEY-1-rotated";
    if (req->spec().encryption_config().auto_lock_managers() && s_->unlock_key.empty()) {
      s_->unlock_key = "SWMKEY-1-new";
    }
    *resp->mutable_cluster() = c;
    return grpc::Status::OK;
  }
  grpc::Status GetSecret(grpc::ServerContext*, const api::GetSecretRequest* req,
                         api::GetSecretResponse* resp) override {
    s_->Record("GetSecret", *req);
    absl::MutexLock lock(&s_->mu);
    const api::Secret* sec = Resolve<api::Secret>(s_->secrets, req->secret_id(),
                                                  [](const api::Secret& s) { return SpecName(s); });
    if (sec == nullptr) return NotFound("secret", req->secret_id());
    *resp->mutable_secret() = *sec;
    return grpc::Status::OK;
  }
  grpc::Status ListSecrets(grpc::ServerContext*, const api::ListSecretsRequest* req,
                           api::ListSecretsResponse* resp) override {
    s_->Record("ListSecrets", *req);
    absl::MutexLock lock(&s_->mu);
    for (const auto& sec : s_->secrets) *resp->add_secrets() = sec;
    return grpc::Status::OK;
  }
  grpc::Status CreateSecret(grpc::ServerContext*, const api::CreateSecretRequest* req,
                            api::CreateSecretResponse* resp) override {
    s_->Record("CreateSecret", *req);
    resp->mutable_secret()->set_id("newsecretid00000000000000");
    return grpc::Status::OK;
  }
  grpc::Status RemoveSecret(grpc::ServerContext*, const api::RemoveSecretRequest* req,
                            api::RemoveSecretResponse*) override {
    s_->Record("RemoveSecret", *req);
    return grpc::Status::OK;
  }
  grpc::Status ListConfigs(grpc::ServerContext*, const api::ListConfigsRequest* req,
                           api::ListConfigsResponse* resp) override {
    s_->Record("ListConfigs", *req);
    absl::MutexLock lock(&s_->mu);
    for (const auto& c : s_->configs) *resp->add_configs() = c;
    return grpc::Status::OK;
  }
  grpc::Status CreateConfig(grpc::ServerContext*, const api::CreateConfigRequest* req,
                            api::CreateConfigResponse* resp) override {
    s_->Record("CreateConfig", *req);
    resp->mutable_config()->set_id("newconfigid00000000000000");
    return grpc::Status::OK;
  }
  grpc::Status GetUnlockKey(grpc::ServerContext*, const api::GetUnlockKeyRequest* req,
                            api::GetUnlockKeyResponse* resp) override {
    s_->Record("GetUnlockKey", *req);
    absl::MutexLock lock(&s_->mu);
    resp->set_unlock_key(s_->unlock_key);
    return grpc::Status::OK;
  }

 private:
  FakeState* s_;
};

// Logs of web's first task: the first stream breaks (UNAVAILABLE, as when the leader changes)
// after two lines; the next one starts again at the second line's time and brings a third.
class FakeLogs final : public api::Logs::Service {
 public:
  static constexpr char kTask[] = "webtask100000000000000000";
  grpc::Status SubscribeLogs(grpc::ServerContext*, const api::SubscribeLogsRequest* req,
                             grpc::ServerWriter<api::SubscribeLogsMessage>* w) override {
    int call;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(*req);
      call = static_cast<int>(requests_.size());
    }
    api::SubscribeLogsMessage m;
    auto line = [&](int second, const std::string& data) {
      api::LogMessage* l = m.add_messages();
      l->mutable_context()->set_task_id(kTask);
      l->mutable_context()->set_node_id("node1id000000000000000000");
      SetTime(kNow + absl::Seconds(second), l->mutable_timestamp());
      l->set_data(data);
    };
    if (call == 1) {
      line(1, "one");
      line(2, "two");
      w->Write(m);
      return {grpc::StatusCode::UNAVAILABLE, "the raft leader changed"};
    }
    line(2, "two");  // the same instant again: already printed
    line(3, "three");
    w->Write(m);
    return {grpc::StatusCode::INVALID_ARGUMENT, "that is all"};
  }
  std::vector<api::SubscribeLogsRequest> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

 private:
  absl::Mutex mu_;
  std::vector<api::SubscribeLogsRequest> requests_ ABSL_GUARDED_BY(mu_);
};

class FakeNodeAdmin final : public api::NodeAdmin::Service {
 public:
  explicit FakeNodeAdmin(FakeState* s) : s_(s) {}

  grpc::Status InitSwarm(grpc::ServerContext*, const api::InitSwarmRequest* req,
                         api::InitSwarmResponse* resp) override {
    s_->Record("InitSwarm", *req);
    resp->set_node_id("node1id000000000000000000");
    resp->set_cluster_id("cluster1");
    if (req->autolock()) resp->set_unlock_key("SWMKEY-1-init");
    return grpc::Status::OK;
  }
  grpc::Status JoinSwarm(grpc::ServerContext*, const api::JoinSwarmRequest* req,
                         api::JoinSwarmResponse* resp) override {
    s_->Record("JoinSwarm", *req);
    if (req->join_token() == "bad") {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "invalid join token");
    }
    resp->set_role(absl::StrContains(req->join_token(), "manager") ? api::NODE_ROLE_MANAGER
                                                                   : api::NODE_ROLE_WORKER);
    return grpc::Status::OK;
  }
  grpc::Status LeaveSwarm(grpc::ServerContext*, const api::LeaveSwarmRequest* req,
                          api::LeaveSwarmResponse*) override {
    s_->Record("LeaveSwarm", *req);
    return grpc::Status::OK;
  }
  grpc::Status UnlockSwarm(grpc::ServerContext*, const api::UnlockSwarmRequest* req,
                           api::UnlockSwarmResponse*) override {
    s_->Record("UnlockSwarm", *req);
    if (req->unlock_key() != "SWMKEY-1-good") {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "wrong unlock key");
    }
    return grpc::Status::OK;
  }
  grpc::Status IssueOperatorCertificate(grpc::ServerContext*,
                                        const api::IssueOperatorCertificateRequest* req,
                                        api::IssueOperatorCertificateResponse* resp) override {
    s_->Record("IssueOperatorCertificate", *req);
    resp->set_certificate("-----BEGIN CERTIFICATE-----\noperator\n-----END CERTIFICATE-----\n");
    resp->set_root_ca("-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n");
    resp->set_operator_id("op1");
    resp->mutable_expires_at()->set_seconds(1'800'000'000);
    return grpc::Status::OK;
  }
  grpc::Status NodeInfo(grpc::ServerContext*, const api::NodeInfoRequest* req,
                        api::NodeInfoResponse* resp) override {
    s_->Record("NodeInfo", *req);
    absl::MutexLock lock(&s_->mu);
    *resp = s_->info;
    return grpc::Status::OK;
  }

 private:
  FakeState* s_;
};

struct Result {
  int code;
  std::string out;
  std::string err;
};

class SwarmctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    std::string dir = tmp != nullptr ? tmp : "/tmp";
    // A unix socket path must fit in sun_path (108 bytes); Bazel's directories can be longer.
    if (dir.size() > 80) {
      char templ[] = "/tmp/swarmctl-test-XXXXXX";
      ASSERT_NE(mkdtemp(templ), nullptr);
      dir = templ;
      own_dir_ = dir;
    }
    dir_ = dir;
    socket_ = dir + "/swarmd.sock";
    unlink(socket_.c_str());
    Populate();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + socket_, grpc::InsecureServerCredentials());
    builder.RegisterService(&control_);
    builder.RegisterService(&admin_);
    builder.RegisterService(&logs_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
    unlink(socket_.c_str());
    for (const auto& f : files_) unlink(f.c_str());
    if (!own_dir_.empty()) rmdir(own_dir_.c_str());
  }

  // A small cluster: three nodes, two services with tasks, a network, a secret, a config.
  void Populate() {
    absl::MutexLock lock(&state_.mu);
    auto node = [&](const std::string& id, const std::string& host, bool manager, bool leader) {
      api::Node n;
      n.set_id(id);
      n.mutable_meta()->mutable_version()->set_index(7);
      n.mutable_description()->set_hostname(host);
      n.mutable_description()->mutable_engine()->set_engine_version("0.1.0");
      n.mutable_status()->set_state(api::NODE_STATE_READY);
      if (manager) {
        n.set_role(api::NODE_ROLE_MANAGER);
        n.mutable_spec()->set_desired_role(api::NODE_ROLE_MANAGER);
        n.mutable_manager_status()->set_leader(leader);
        n.mutable_manager_status()->set_reachability(api::REACHABILITY_REACHABLE);
        n.mutable_manager_status()->set_addr(host == "node1" ? "10.0.0.1:2377" : "10.0.0.2:2377");
      }
      (*n.mutable_spec()->mutable_annotations()->mutable_labels())["zone"] = "a";
      state_.nodes.push_back(n);
    };
    node("node1id000000000000000000", "node1", true, true);
    node("node2id000000000000000000", "node2", true, false);
    node("node3id000000000000000000", "node3", false, false);

    api::Service web;
    web.set_id("websvcid00000000000000000");
    web.mutable_meta()->mutable_version()->set_index(42);
    web.mutable_spec()->mutable_annotations()->set_name("web");
    web.mutable_spec()->mutable_replicated()->set_replicas(2);
    auto* c = web.mutable_spec()->mutable_task_template()->mutable_container();
    c->set_image("nginx:1.25@sha256:abcd");
    c->add_env("A=1");
    auto* port = web.mutable_endpoint()->add_ports();
    port->set_published_port(8080);
    port->set_target_port(80);
    state_.services.push_back(web);
    api::Service agent;
    agent.set_id("agentsvcid000000000000000");
    agent.mutable_meta()->mutable_version()->set_index(43);
    agent.mutable_spec()->mutable_annotations()->set_name("agent");
    agent.mutable_spec()->mutable_global();
    agent.mutable_spec()->mutable_task_template()->mutable_container()->set_image("agent:2");
    state_.services.push_back(agent);
    api::ServiceStatus st;
    st.set_service_id(web.id());
    st.set_desired_tasks(2);
    st.set_running_tasks(2);
    state_.statuses.push_back(st);
    st.set_service_id(agent.id());
    st.set_desired_tasks(3);
    st.set_running_tasks(1);
    state_.statuses.push_back(st);

    for (int slot = 1; slot <= 2; ++slot) {
      api::Task t;
      t.set_id(absl::StrCat("webtask", slot, "00000000000000000"));
      t.set_service_id(web.id());
      t.set_slot(slot);
      t.set_node_id(slot == 1 ? "node1id000000000000000000" : "node3id000000000000000000");
      t.mutable_spec()->mutable_container()->set_image("nginx:1.25@sha256:abcd");
      t.set_desired_state(api::TASK_STATE_RUNNING);
      t.mutable_status()->set_state(api::TASK_STATE_RUNNING);
      SetTime(kNow - absl::Seconds(5), t.mutable_status()->mutable_timestamp());
      state_.tasks.push_back(t);
    }

    api::Network net;
    net.set_id("backendnetid0000000000000");
    net.mutable_spec()->mutable_annotations()->set_name("backend");
    net.mutable_spec()->mutable_driver_config()->set_name("overlay");
    state_.networks.push_back(net);

    api::Secret secret;
    secret.set_id("dbpwsecretid0000000000000");
    secret.mutable_spec()->mutable_annotations()->set_name("db_password");
    SetTime(kNow - absl::Minutes(1), secret.mutable_meta()->mutable_created_at());
    SetTime(kNow - absl::Minutes(1), secret.mutable_meta()->mutable_updated_at());
    state_.secrets.push_back(secret);
    api::Config config;
    config.set_id("siteconfigid0000000000000");
    config.mutable_spec()->mutable_annotations()->set_name("site");
    state_.configs.push_back(config);

    api::Cluster cluster;
    cluster.set_id("cluster1");
    cluster.mutable_meta()->mutable_version()->set_index(3);
    cluster.mutable_spec()->mutable_annotations()->set_name("default");
    cluster.mutable_spec()->mutable_orchestration()->set_task_history_retention_limit(5);
    cluster.mutable_root_ca()->mutable_join_tokens()->set_worker("SWMTKN-1-worker");
    cluster.mutable_root_ca()->mutable_join_tokens()->set_manager("SWMTKN-1-manager");
    state_.clusters.push_back(cluster);

    state_.info.set_state(api::LOCAL_NODE_STATE_ACTIVE);
    state_.info.set_node_id("node1id000000000000000000");
    state_.info.set_cluster_id("cluster1");
    state_.info.set_role(api::NODE_ROLE_MANAGER);
    state_.info.set_node_addr("10.0.0.1");
    auto* m = state_.info.add_managers();
    m->set_node_id("node1id000000000000000000");
    m->set_addr("10.0.0.1:2377");
    state_.info.set_raft_id(1);
    state_.info.set_raft_leader(1);
    state_.info.set_is_leader(true);
    state_.info.set_raft_term(2);
    state_.info.set_raft_commit(10);
    state_.info.set_raft_applied(10);
    state_.info.set_version("0.1.0-test");
  }

  Result Run(std::vector<std::string> args, const std::string& input = "",
             std::map<std::string, std::string> env = {}) {
    std::istringstream in(input);
    std::ostringstream out, err;
    Io io;
    io.in = &in;
    io.out = &out;
    io.err = &err;
    io.in_is_terminal = terminal_;
    io.getenv = [env](const std::string& name) -> std::optional<std::string> {
      auto it = env.find(name);
      if (it == env.end()) return std::nullopt;
      return it->second;
    };
    io.read_password = [this, &out](const std::string& prompt) -> absl::StatusOr<std::string> {
      out << prompt;
      return password_;
    };
    io.clock = &clock_;
    if (with_socket_) args.insert(args.begin(), {"--socket", socket_});
    int code = RunSwarmctl(args, io);
    return {code, out.str(), err.str()};
  }

  template <typename T>
  T Last(const std::string& method) {
    absl::MutexLock lock(&state_.mu);
    auto it = state_.last.find(method);
    if (it == state_.last.end()) {
      ADD_FAILURE() << method << " was not called";
      return T();
    }
    return *static_cast<const T*>(it->second.get());
  }

  bool Called(const std::string& method) {
    absl::MutexLock lock(&state_.mu);
    return state_.last.count(method) > 0;
  }

  std::string WriteFile(const std::string& name, const std::string& contents) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << contents;
    files_.push_back(path);
    return path;
  }

  FakeState state_;
  FakeControl control_{&state_};
  FakeNodeAdmin admin_{&state_};
  FakeLogs logs_;
  std::unique_ptr<grpc::Server> server_;
  InstantClock clock_;
  std::string dir_, own_dir_, socket_;
  std::vector<std::string> files_;
  bool with_socket_ = true;
  bool terminal_ = false;
  std::string password_;
};

// ---- Errors and global flags ----

TEST_F(SwarmctlTest, Run_NoDaemonSaysWhatToDo) {
  with_socket_ = false;
  Result r = Run({"--socket", dir_ + "/nothing.sock", "node", "ls"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("Error: cannot reach swarmd at unix:"));
  EXPECT_THAT(r.err, HasSubstr("is swarmd running? (use --socket to choose another)"));
}

TEST_F(SwarmctlTest, Run_DefaultSocketAndEnvironment) {
  with_socket_ = false;
  Result r = Run({"node", "ls"}, "", {{"SWARMCTL_SOCKET", dir_ + "/nothing.sock"}});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("cannot reach swarmd at unix:" + dir_ + "/nothing.sock"));

  r = Run({"node", "ls"}, "", {{"SWARMCTL_SOCKET", socket_}});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("node1"));

  // The global flag may also follow the command.
  r = Run({"node", "ls", "-q", "--socket", socket_});
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST_F(SwarmctlTest, Run_HostNeedsCertificates) {
  with_socket_ = false;
  Result r = Run({"--host", "10.0.0.1:2377", "--tls-dir", dir_ + "/nocerts", "node", "ls"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("cannot read the certificates to reach 10.0.0.1:2377"));
  const std::string certs = dir_ + "/certs";
  ASSERT_EQ(mkdir(certs.c_str(), 0700), 0);
  for (const char* f : {"ca.pem", "cert.pem", "key.pem"}) WriteFile(std::string("certs/") + f, "x");
  r = Run({"--host", "10.0.0.1:2377", "--tls-dir", certs, "node", "ls"});
  EXPECT_THAT(r.err, HasSubstr("/certs/ca.pem is not a PEM file"));
  for (const auto& f : files_) unlink(f.c_str());
  files_.clear();
  rmdir(certs.c_str());
  r = Run({"--host", "10.0.0.1:2377", "--socket", socket_, "node", "ls"});
  EXPECT_THAT(r.err, HasSubstr("--socket and --host cannot be used together"));
}

TEST_F(SwarmctlTest, Run_ParseErrorsAndHelp) {
  Result r = Run({"node", "ls", "--bogus"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, StartsWith("Error: "));
  EXPECT_THAT(r.err, HasSubstr("--bogus"));
  EXPECT_THAT(r.err, HasSubstr("See 'swarmctl node ls --help'."));

  r = Run({"service"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("subcommand is required"));

  r = Run({"frobnicate"});
  EXPECT_EQ(r.code, 1);

  r = Run({"service", "create", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("--publish"));
  EXPECT_THAT(r.out, HasSubstr("--env-file"));

  r = Run({"service", "update", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("--publish-rm"));

  r = Run({"--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "swarmctl version 0.1.0\n");

  r = Run({"service", "scale"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("required"));
}

TEST_F(SwarmctlTest, Run_ServerErrorsArePrinted) {
  Result r = Run({"service", "inspect", "nope"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "[]\n");
  EXPECT_EQ(r.err, "Error: service nope not found\n");
}

// ---- node ----

TEST_F(SwarmctlTest, NodeLs_TableWithSelf) {
  Result r = Run({"node", "ls"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "ID                            HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   "
            "ENGINE VERSION\n"
            "node1id000000000000000000 *   node1      Ready     Active         Leader           "
            "0.1.0\n"
            "node2id000000000000000000     node2      Ready     Active         Reachable        "
            "0.1.0\n"
            "node3id000000000000000000     node3      Ready     Active                          "
            "0.1.0\n");
}

TEST_F(SwarmctlTest, NodeLs_QuietJsonFilters) {
  Result r = Run({"node", "ls", "-q", "-f", "role=manager", "--filter", "name=node"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "node1id000000000000000000\nnode2id000000000000000000\nnode3id000000000000000000\n");
  auto req = Last<api::ListNodesRequest>("ListNodes");
  EXPECT_THAT(req.filters().roles(), ElementsAre(api::NODE_ROLE_MANAGER));
  EXPECT_THAT(req.filters().name_prefixes(), ElementsAre("node"));

  r = Run({"node", "ls", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("{\"Availability\":\"Active\",\"EngineVersion\":\"0.1.0\","
                                "\"Hostname\":\"node1\",\"ID\":\"node1id000000000000000000\","
                                "\"ManagerStatus\":\"Leader\",\"Self\":\"true\""));

  r = Run({"node", "ls", "--format", "{{.Hostname}}"});
  EXPECT_EQ(r.out, "node1\nnode2\nnode3\n");

  r = Run({"node", "ls", "-f", "colour=red"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("unknown filter colour"));
}

TEST_F(SwarmctlTest, NodeInspect_SelfAndNames) {
  Result r = Run({"node", "inspect", "self", "node3"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("[\n    {\n        \"id\": \"node1id000000000000000000\""));
  EXPECT_THAT(r.out, HasSubstr("\"id\": \"node3id000000000000000000\""));
  EXPECT_EQ(Last<api::GetNodeRequest>("GetNode").node_id(), "node3");

  r = Run({"node", "inspect", "--format", "{{.ID}} {{.Description.Hostname}}", "self", "node3"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "node1id000000000000000000 node1\nnode3id000000000000000000 node3\n");

  r = Run({"node", "inspect", "--format", "{{.Hostname}}", "self"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("can't evaluate field Hostname in type Node"));
}

TEST_F(SwarmctlTest, NodeUpdate_SendsSpecWithVersion) {
  Result r = Run({"node", "update", "--availability", "drain", "--label-add", "ssd=true",
                  "--label-rm", "zone", "--role", "manager", "node3"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "node3\n");
  auto req = Last<api::UpdateNodeRequest>("UpdateNode");
  EXPECT_EQ(req.node_id(), "node3id000000000000000000");
  EXPECT_EQ(req.node_version().index(), 7u);
  EXPECT_EQ(req.spec().availability(), api::NODE_AVAILABILITY_DRAIN);
  EXPECT_EQ(req.spec().desired_role(), api::NODE_ROLE_MANAGER);
  EXPECT_THAT(req.spec().annotations().labels(), UnorderedElementsAre(Pair("ssd", "true")));

  r = Run({"node", "update", "--label-rm", "nope", "node3"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "Error: key nope doesn't exist in node's labels\n");
  r = Run({"node", "update", "--availability", "sleep", "node3"});
  EXPECT_THAT(r.err, HasSubstr("invalid availability \"sleep\""));
  r = Run({"node", "update", "node3"});
  EXPECT_THAT(r.err, HasSubstr("nothing to update"));
}

TEST_F(SwarmctlTest, NodePromoteDemote) {
  Result r = Run({"node", "promote", "node3", "node1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "Node node3 promoted to a manager in the swarm.\nNode node1 is already a manager.\n");
  EXPECT_EQ(Last<api::UpdateNodeRequest>("UpdateNode").spec().desired_role(),
            api::NODE_ROLE_MANAGER);
  r = Run({"node", "demote", "node2"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Manager node2 demoted in the swarm.\n");
  EXPECT_EQ(Last<api::UpdateNodeRequest>("UpdateNode").spec().desired_role(),
            api::NODE_ROLE_WORKER);
}

TEST_F(SwarmctlTest, NodeRm_GoesOnAfterAFailure) {
  Result r = Run({"node", "rm", "--force", "ghost", "node3"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "node3\n");
  EXPECT_EQ(r.err, "Error: node ghost not found\n");
  auto req = Last<api::RemoveNodeRequest>("RemoveNode");
  EXPECT_EQ(req.node_id(), "node3");
  EXPECT_TRUE(req.force());
}

TEST_F(SwarmctlTest, NodePs_DefaultsToSelf) {
  Result r = Run({"node", "ps"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(Last<api::ListTasksRequest>("ListTasks").filters().node_ids(),
              ElementsAre("node1id000000000000000000"));
  EXPECT_THAT(r.out, HasSubstr("web.1"));
  EXPECT_THAT(r.out, Not(HasSubstr("web.2")));
  EXPECT_THAT(r.out, HasSubstr("Running 5 seconds ago"));
}

// ---- service ----

TEST_F(SwarmctlTest, ServiceCreate_BuildsSpecAndResolvesSecrets) {
  const std::string env_file = WriteFile("web.env", "FROM_FILE=1\n");
  Result r = Run({"service",
                  "create",
                  "--name",
                  "api",
                  "--replicas",
                  "3",
                  "-p",
                  "8080:80",
                  "--env",
                  "A=1",
                  "--env-file",
                  env_file,
                  "--secret",
                  "db_password",
                  "--config",
                  "source=site,target=/etc/site.conf",
                  "--network",
                  "backend",
                  "--mount",
                  "type=tmpfs,target=/tmp",
                  "--limit-memory",
                  "256M",
                  "--update-delay",
                  "10s",
                  "--tty",
                  "-d",
                  "myorg/api:2",
                  "serve",
                  "--port",
                  "80"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "newserviceid0000000000000\n");
  api::ServiceSpec spec = Last<api::CreateServiceRequest>("CreateService").spec();
  EXPECT_EQ(spec.annotations().name(), "api");
  EXPECT_EQ(spec.replicated().replicas(), 3u);
  const api::ContainerSpec& c = spec.task_template().container();
  EXPECT_EQ(c.image(), "myorg/api:2");
  EXPECT_THAT(c.args(), ElementsAre("serve", "--port", "80"));  // flags after the image
  EXPECT_THAT(c.env(), ElementsAre("FROM_FILE=1", "A=1"));
  EXPECT_TRUE(c.tty());
  ASSERT_EQ(c.secrets_size(), 1);
  EXPECT_EQ(c.secrets(0).secret_id(), "dbpwsecretid0000000000000");
  ASSERT_EQ(c.configs_size(), 1);
  EXPECT_EQ(c.configs(0).config_id(), "siteconfigid0000000000000");
  EXPECT_EQ(spec.task_template().networks(0).target(), "backend");
  EXPECT_EQ(spec.task_template().resources().limits().memory_bytes(), 256 << 20);
  EXPECT_EQ(spec.endpoint_spec().ports(0).published_port(), 8080u);
  EXPECT_EQ(spec.update_config().delay().seconds(), 10);
}

TEST_F(SwarmctlTest, ServiceCreate_BadInputSendsNothing) {
  Result r = Run({"service", "create", "-p", "80:x", "nginx"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "Error: invalid publish \"80:x\": the target port must be a number (expected "
            "[published:]target[/protocol] or published=,target=,protocol=,mode=)\n");
  EXPECT_FALSE(Called("CreateService"));

  r = Run({"service", "create", "--secret", "missing", "nginx"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "Error: secret not found: missing\n");
  EXPECT_FALSE(Called("CreateService"));

  r = Run({"service", "create", "--replicas", "-1", "nginx"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("invalid replicas \"-1\""));

  r = Run({"service", "create", "--env-file", dir_ + "/missing.env", "nginx"});
  EXPECT_THAT(r.err, HasSubstr("cannot read --env-file"));
}

TEST_F(SwarmctlTest, ServiceUpdate_AppliesFlagsOnTheCurrentSpec) {
  Result r = Run({"service", "update", "--env-add", "B=2", "--env-rm", "A", "--image", "nginx:1.26",
                  "--publish-add", "9090:90", "--replicas", "4", "--force", "-d", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "web\n");
  auto req = Last<api::UpdateServiceRequest>("UpdateService");
  EXPECT_EQ(req.service_id(), "websvcid00000000000000000");
  EXPECT_EQ(req.service_version().index(), 42u);
  EXPECT_FALSE(req.rollback());
  const api::ContainerSpec& c = req.spec().task_template().container();
  EXPECT_EQ(c.image(), "nginx:1.26");
  EXPECT_THAT(c.env(), ElementsAre("B=2"));
  EXPECT_EQ(req.spec().replicated().replicas(), 4u);
  EXPECT_EQ(req.spec().task_template().force_update(), 1u);
  EXPECT_EQ(req.spec().endpoint_spec().ports(0).target_port(), 90u);

  r = Run({"service", "update", "--rollback", "-d", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(Last<api::UpdateServiceRequest>("UpdateService").rollback());

  r = Run({"service", "update", "--rebalance", "-d", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(Last<api::UpdateServiceRequest>("UpdateService").rebalance());
  EXPECT_FALSE(Last<api::UpdateServiceRequest>("UpdateService").rollback());

  r = Run({"service", "update", "--rollback", "--image", "x", "web"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("--rollback cannot be combined"));

  r = Run({"service", "update", "--replicas", "3", "agent"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("--replicas can only be used with replicated"));

  r = Run({"service", "update", "--tty=false", "--network-add", "backend", "-d", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  req = Last<api::UpdateServiceRequest>("UpdateService");
  EXPECT_FALSE(req.spec().task_template().container().tty());
  EXPECT_EQ(req.spec().task_template().networks(0).target(), "backend");
}

// The orchestrator writes a service during its updates: the CLI reads it again and reapplies.
TEST_F(SwarmctlTest, ServiceUpdate_RetriesWhenTheServiceChangedMeanwhile) {
  {
    absl::MutexLock lock(&state_.mu);
    state_.update_conflicts = 2;
  }
  Result r = Run({"service", "rollback", "-d", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  int updates = 0;
  {
    absl::MutexLock lock(&state_.mu);
    for (const std::string& c : state_.calls) updates += c == "UpdateService";
    state_.update_conflicts = 10;
  }
  EXPECT_EQ(updates, 3);
  r = Run({"service", "scale", "-d", "web=4"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("update out of sequence"));
}

TEST_F(SwarmctlTest, ServiceScale_EachArgument) {
  Result r = Run({"service", "scale", "-d", "web=5", "agent=2", "bad", "web=x"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "web scaled to 5\n");
  EXPECT_THAT(r.err, HasSubstr("Error: scale can only be used with replicated or replicated-job "
                               "mode (agent is global)"));
  EXPECT_THAT(r.err, HasSubstr("Error: invalid scale specifier 'bad': expected format "
                               "SERVICE=REPLICAS"));
  EXPECT_THAT(r.err, HasSubstr("Error: invalid replicas \"x\""));
  EXPECT_EQ(Last<api::UpdateServiceRequest>("UpdateService").spec().replicated().replicas(), 5u);
}

TEST_F(SwarmctlTest, ServiceLs_ReplicasFromStatuses) {
  Result r = Run({"service", "ls"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "ID             NAME      MODE         REPLICAS   IMAGE        PORTS\n"
            "agentsvcid00   agent     global       1/3        agent:2      \n"
            "websvcid0000   web       replicated   2/2        nginx:1.25   *:8080->80/tcp\n");
  EXPECT_EQ(Last<api::ListServiceStatusesRequest>("ListServiceStatuses").service_ids_size(), 2);

  r = Run({"service", "ls", "-q", "--no-trunc"});
  EXPECT_EQ(r.out, "agentsvcid000000000000000\nwebsvcid00000000000000000\n");
}

TEST_F(SwarmctlTest, ServicePs_TasksWithNodeNames) {
  Result r = Run({"service", "ps", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "ID             NAME      IMAGE        NODE      DESIRED STATE   CURRENT STATE       "
            "    ERROR     PORTS\n"
            "webtask10000   web.1     nginx:1.25   node1     Running         Running 5 seconds "
            "ago             \n"
            "webtask20000   web.2     nginx:1.25   node3     Running         Running 5 seconds "
            "ago             \n");
  EXPECT_THAT(Last<api::ListTasksRequest>("ListTasks").filters().service_ids(),
              ElementsAre("websvcid00000000000000000"));

  r = Run({"service", "ps", "-f", "desired-state=running", "-f", "node=node3", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto req = Last<api::ListTasksRequest>("ListTasks");
  EXPECT_THAT(req.filters().desired_states(), ElementsAre(api::TASK_STATE_RUNNING));
  EXPECT_THAT(req.filters().node_ids(), ElementsAre("node3id000000000000000000"));
  EXPECT_THAT(r.out, Not(HasSubstr("web.1")));
}

TEST_F(SwarmctlTest, ServiceInspectAndRm) {
  Result r = Run({"service", "inspect", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("[\n    {\n        \"id\": \"websvcid00000000000000000\""));
  EXPECT_TRUE(Last<api::GetServiceRequest>("GetService").insert_defaults());

  r = Run({"service", "inspect", "--pretty", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("\nID:\t\twebsvcid00000000000000000\nName:\t\tweb\n"));
  EXPECT_THAT(r.out, HasSubstr("PublishedPort = 8080"));
  r = Run({"node", "inspect", "--pretty", "self"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("ID:\t\t\tnode1id000000000000000000\n"));

  r = Run({"service", "rm", "web", "agent"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "web\nagent\n");
  EXPECT_EQ(Last<api::RemoveServiceRequest>("RemoveService").service_id(), "agent");

  r = Run({"service", "rollback", "-d", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(Last<api::UpdateServiceRequest>("UpdateService").rollback());
}

// Without --detach the commands wait for the service to converge, showing its slots.
TEST_F(SwarmctlTest, ServiceUpdate_WaitsWithProgress) {
  Result r = Run({"service", "update", "--env-add", "B=2", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "web\n"
            "overall progress: 2 out of 2 tasks\n"
            "1/2: running\n"
            "2/2: running\n"
            "verify: Waiting 5 seconds to verify that tasks are stable...\n"
            "verify: Service converged\n");
  EXPECT_THAT(Last<api::ListTasksRequest>("ListTasks").filters().service_ids(),
              ElementsAre("websvcid00000000000000000"));

  r = Run({"service", "scale", "web=2"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("web scaled to 2\noverall progress: 2 out of 2 tasks\n"));
  r = Run({"service", "rollback", "-q", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "web\n");
}

// ---- network, secret, config ----

TEST_F(SwarmctlTest, Network_CreateLsInspectRm) {
  Result r =
      Run({"network", "create", "--driver", "overlay", "--subnet", "10.0.9.0/24", "--gateway",
           "10.0.9.1", "--attachable", "--label", "env=prod", "--internal", "front"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "newnetworkid0000000000000\n");
  api::NetworkSpec spec = Last<api::CreateNetworkRequest>("CreateNetwork").spec();
  EXPECT_EQ(spec.annotations().name(), "front");
  EXPECT_TRUE(spec.attachable());
  EXPECT_TRUE(spec.internal());
  EXPECT_EQ(spec.ipam().configs(0).gateway(), "10.0.9.1");

  r = Run({"network", "ls"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "NETWORK ID     NAME      DRIVER    SCOPE\n"
            "backendnetid   backend   overlay   swarm\n");

  r = Run({"network", "inspect", "backend"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"name\": \"backend\""));

  r = Run({"network", "rm", "backend"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Last<api::RemoveNetworkRequest>("RemoveNetwork").network_id(), "backend");

  r = Run({"network", "create", "--gateway", "10.0.9.1", "front"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("no matching subnet for gateway 10.0.9.1"));
}

TEST_F(SwarmctlTest, Secret_CreateFromStdinOrFile) {
  Result r = Run({"secret", "create", "-l", "a=b", "db", "-"}, "hunter2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "newsecretid00000000000000\n");
  auto req = Last<api::CreateSecretRequest>("CreateSecret");
  EXPECT_EQ(req.spec().annotations().name(), "db");
  EXPECT_EQ(req.spec().data(), "hunter2");
  EXPECT_THAT(req.spec().annotations().labels(), UnorderedElementsAre(Pair("a", "b")));

  const std::string file = WriteFile("cert.pem", "PEM DATA");
  r = Run({"secret", "create", "cert", file});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Last<api::CreateSecretRequest>("CreateSecret").spec().data(), "PEM DATA");

  r = Run({"secret", "create", "cert", dir_ + "/none.pem"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("cannot read the secret from"));

  r = Run({"secret", "create", "cert"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("data is required"));

  r = Run({"secret", "ls"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "ID                          NAME          DRIVER    CREATED              UPDATED\n"
            "dbpwsecretid0000000000000   db_password             About a minute ago   About a "
            "minute ago\n");

  r = Run({"secret", "rm", "db_password"});
  EXPECT_EQ(r.out, "db_password\n");
}

TEST_F(SwarmctlTest, Config_CreateLs) {
  Result r = Run({"config", "create", "site2", "-"}, "server {}");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Last<api::CreateConfigRequest>("CreateConfig").spec().data(), "server {}");
  r = Run({"config", "ls", "--format", "{{.Name}}"});
  EXPECT_EQ(r.out, "site\n");
  r = Run({"config", "create", "--driver", "x", "site3", "-"});
  EXPECT_EQ(r.code, 1);  // configs have no drivers
}

// ---- swarm ----

TEST_F(SwarmctlTest, SwarmInit_PrintsJoinCommandAndUnlockKey) {
  Result r = Run({"swarm", "init", "--advertise-addr", "10.0.0.1", "--autolock", "--cert-expiry",
                  "720h", "--dispatcher-heartbeat", "10s", "--task-history-limit", "3",
                  "--availability", "drain"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "Swarm initialized: current node (node1id000000000000000000) is now a manager.\n\n"
            "To add a worker to this swarm, run the following command:\n\n"
            "    swarmctl swarm join --token SWMTKN-1-worker 10.0.0.1:2377\n\n"
            "To add a manager to this swarm, run 'swarmctl swarm join-token manager' and follow "
            "the instructions.\n\n"
            "To unlock a swarm manager after it restarts, run the `swarmctl swarm unlock`\n"
            "command and provide the following key:\n\n"
            "    SWMKEY-1-init\n\n"
            "Please remember to store this key in a password manager, since without it you\n"
            "will not be able to restart the manager.\n");
  auto req = Last<api::InitSwarmRequest>("InitSwarm");
  EXPECT_EQ(req.advertise_addr(), "10.0.0.1");
  EXPECT_TRUE(req.autolock());
  EXPECT_EQ(req.cert_expiry().seconds(), 720 * 3600);
  EXPECT_EQ(req.dispatcher_heartbeat().seconds(), 10);
  EXPECT_EQ(req.task_history_limit(), 3);
  EXPECT_EQ(req.availability(), api::NODE_AVAILABILITY_DRAIN);

  r = Run({"swarm", "init", "--cert-expiry", "90d"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("invalid cert-expiry \"90d\""));
}

TEST_F(SwarmctlTest, SwarmInit_DefaultAddressPools) {
  Result r = Run({"swarm", "init", "--default-addr-pool", "10.20.0.0/16", "--default-addr-pool",
                  "10.30.0.0/16", "--default-addr-pool-mask-len", "26"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto req = Last<api::InitSwarmRequest>("InitSwarm");
  EXPECT_THAT(req.default_addr_pool(), ElementsAre("10.20.0.0/16", "10.30.0.0/16"));
  EXPECT_EQ(req.default_addr_pool_mask_len(), 26u);
  r = Run({"swarm", "init", "--default-addr-pool-mask-len", "40"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("--default-addr-pool-mask-len 40 is not a prefix length"));
}

TEST_F(SwarmctlTest, SwarmJoin_TokenFromFlagFileOrStdin) {
  Result r = Run({"swarm", "join", "--token", "SWMTKN-1-worker", "10.0.0.1:2377"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "This node joined a swarm as a worker.\n");
  auto req = Last<api::JoinSwarmRequest>("JoinSwarm");
  EXPECT_EQ(req.remote_addr(), "10.0.0.1:2377");
  EXPECT_EQ(req.join_token(), "SWMTKN-1-worker");

  r = Run({"swarm", "join", "--token", "-", "--availability", "pause", "10.0.0.1:2377"},
          "SWMTKN-1-manager\n");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "This node joined a swarm as a manager.\n");
  req = Last<api::JoinSwarmRequest>("JoinSwarm");
  EXPECT_EQ(req.join_token(), "SWMTKN-1-manager");
  EXPECT_EQ(req.availability(), api::NODE_AVAILABILITY_PAUSE);

  const std::string file = WriteFile("token", "  SWMTKN-1-fromfile \n");
  r = Run(
      {"swarm", "join", "--token-file", file, "--listen-addr", "0.0.0.0:2377", "10.0.0.1:2377"});
  ASSERT_EQ(r.code, 0) << r.err;
  req = Last<api::JoinSwarmRequest>("JoinSwarm");
  EXPECT_EQ(req.join_token(), "SWMTKN-1-fromfile");
  EXPECT_EQ(req.listen_addr(), "0.0.0.0:2377");

  r = Run({"swarm", "join", "10.0.0.1:2377"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("a join token is required"));
  r = Run({"swarm", "join", "--token", "bad", "10.0.0.1:2377"});
  EXPECT_EQ(r.err, "Error: invalid join token\n");
  r = Run({"swarm", "join", "--token", "x"});
  EXPECT_EQ(r.code, 1);
}

TEST_F(SwarmctlTest, SwarmJoinToken_ShowAndRotate) {
  Result r = Run({"swarm", "join-token", "worker"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "To add a worker to this swarm, run the following command:\n\n"
            "    swarmctl swarm join --token SWMTKN-1-worker 10.0.0.1:2377\n\n");
  r = Run({"swarm", "join-token", "-q", "manager"});
  EXPECT_EQ(r.out, "SWMTKN-1-manager\n");

  r = Run({"swarm", "join-token", "--rotate", "worker"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("Successfully rotated worker join token.\n\n"));
  EXPECT_THAT(r.out, HasSubstr("--token SWMTKN-1-rotated-worker"));
  auto req = Last<api::UpdateClusterRequest>("UpdateCluster");
  EXPECT_TRUE(req.rotation().worker_join_token());
  EXPECT_FALSE(req.rotation().manager_join_token());
  EXPECT_EQ(req.cluster_version().index(), 3u);

  r = Run({"swarm", "join-token", "admin"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("unknown role admin"));
}

// The script comes from the command tree; bash itself completes with it.
TEST_F(SwarmctlTest, CompletionBash_CompletesCommandsAndFlags) {
  Result r = Run({"completion", "bash"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("complete -F _swarmctl swarmctl\n"));
  EXPECT_THAT(r.out, HasSubstr("\"swarmctl service create\") words=\""));
  const std::string script = WriteFile("completion.bash", r.out);
  auto complete = [&](const std::string& words, int cword) {
    const std::string cmd =
        absl::StrCat("bash -c 'source ", script, "; COMP_WORDS=(", words, "); COMP_CWORD=", cword,
                     "; _swarmctl; echo \"${COMPREPLY[*]}\"' 2>&1");
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    char buf[4096];
    size_t n;
    while (p != nullptr && (n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    if (p != nullptr) pclose(p);
    return out;
  };
  EXPECT_EQ(complete("swarmctl serv", 1), "service\n");
  EXPECT_EQ(complete("swarmctl service cr", 2), "create\n");
  EXPECT_EQ(complete("swarmctl service create --rep", 3), "--replicas --replicas-max-per-node\n");
  // Values of flags and global flags between commands do not lose the path.
  EXPECT_EQ(complete("swarmctl --socket /x service list --fo", 5), "--format\n");
  EXPECT_EQ(complete("swarmctl swarm ca client-cert --o", 4), "--out\n");
  r = Run({"completion", "zsh"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("no completion for shell \"zsh\""));
}

// The key is made by swarmctl and never sent: only its CSR is.
TEST_F(SwarmctlTest, SwarmCaClientCert_WritesKeyLocally) {
  const std::string out = dir_ + "/op";
  Result r = Run({"swarm", "ca", "client-cert", "--out", out});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("Operator certificate op1 written to " + out +
                                " (ca.pem, cert.pem, key.pem), valid until 2027-01-15 08:00:00 "
                                "UTC.\n"));
  EXPECT_THAT(r.out, HasSubstr("swarmctl --host 10.0.0.1:2377 --tls-dir " + out + " node ls"));
  auto req = Last<api::IssueOperatorCertificateRequest>("IssueOperatorCertificate");
  EXPECT_THAT(req.csr(), StartsWith("-----BEGIN CERTIFICATE REQUEST-----"));
  EXPECT_THAT(req.csr(), Not(HasSubstr("PRIVATE KEY")));
  struct stat st {};
  ASSERT_EQ(stat((out + "/key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::ifstream key(out + "/key.pem");
  std::string key_text((std::istreambuf_iterator<char>(key)), std::istreambuf_iterator<char>());
  EXPECT_THAT(key_text, StartsWith("-----BEGIN PRIVATE KEY-----"));
  std::ifstream cert(out + "/cert.pem");
  std::string cert_text((std::istreambuf_iterator<char>(cert)), std::istreambuf_iterator<char>());
  EXPECT_THAT(cert_text, HasSubstr("operator"));
  for (const char* f : {"/key.pem", "/cert.pem", "/ca.pem"}) unlink((out + f).c_str());
  rmdir(out.c_str());

  r = Run({"swarm", "ca", "client-cert"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("--out is required"));
  r = Run({"swarm", "ca"});
  ASSERT_EQ(r.code, 0) << r.err;
}

TEST_F(SwarmctlTest, SwarmUnlock_KeyFromStdinOnly) {
  Result r = Run({"swarm", "unlock"}, "SWMKEY-1-good\n");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(Last<api::UnlockSwarmRequest>("UnlockSwarm").unlock_key(), "SWMKEY-1-good");

  r = Run({"swarm", "unlock"}, "SWMKEY-1-bad\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "Error: wrong unlock key\n");

  r = Run({"swarm", "unlock", "SWMKEY-1-good"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("reads the key from standard input, not from the command line"));

  r = Run({"swarm", "unlock"}, "");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("no unlock key on standard input"));

  terminal_ = true;
  password_ = "SWMKEY-1-good";
  r = Run({"swarm", "unlock"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Enter unlock key: ");
}

TEST_F(SwarmctlTest, SwarmUnlockKey_ShowAndRotate) {
  Result r = Run({"swarm", "unlock-key"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("no unlock key is set"));
  r = Run({"swarm", "unlock-key", "--rotate"});
  EXPECT_THAT(r.err, HasSubstr("autolock is not turned on"));

  {
    absl::MutexLock lock(&state_.mu);
    state_.unlock_key = std::string(32, '\x01');  // raw key bytes
    state_.clusters[0].mutable_spec()->mutable_encryption_config()->set_auto_lock_managers(true);
  }
  r = Run({"swarm", "unlock-key", "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "SWMKEY-1-AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE\n");

  r = Run({"swarm", "unlock-key", "--rotate"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("Successfully rotated manager unlock key.\n\nTo unlock a swarm"));
  EXPECT_THAT(r.out, HasSubstr("    SWMKEY-1-rotated\n"));
}

TEST_F(SwarmctlTest, SwarmUpdate_AutolockPrintsTheKey) {
  Result r = Run({"swarm", "update", "--autolock=true", "--task-history-limit", "10"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("Swarm updated.\nTo unlock a swarm manager"));
  EXPECT_THAT(r.out, HasSubstr("SWMKEY-1-new"));
  auto req = Last<api::UpdateClusterRequest>("UpdateCluster");
  EXPECT_TRUE(req.spec().encryption_config().auto_lock_managers());
  EXPECT_EQ(req.spec().orchestration().task_history_retention_limit(), 10);
  EXPECT_EQ(req.cluster_version().index(), 3u);

  r = Run({"swarm", "update", "--autolock=false"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Swarm updated.\n");
  EXPECT_FALSE(Last<api::UpdateClusterRequest>("UpdateCluster")
                   .spec()
                   .encryption_config()
                   .auto_lock_managers());

  r = Run({"swarm", "update"});
  EXPECT_THAT(r.err, HasSubstr("nothing to update"));
}

TEST_F(SwarmctlTest, SwarmLeave) {
  Result r = Run({"swarm", "leave", "--force"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Node left the swarm.\n");
  EXPECT_TRUE(Last<api::LeaveSwarmRequest>("LeaveSwarm").force());
}

// ---- info, version ----

TEST_F(SwarmctlTest, InfoAndVersion) {
  Result r = Run({"info"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("Swarm: active\n NodeID: node1id000000000000000000\n Is Manager: "
                                "true\n ClusterID: cluster1\n Managers: 2\n Nodes: 3\n"));
  EXPECT_THAT(r.out, HasSubstr(" Dispatcher:\n  Heartbeat Period: 5 seconds\n"));
  EXPECT_THAT(r.out, HasSubstr("  Expiry Duration: 3 months\n"));
  EXPECT_THAT(r.out, HasSubstr(" Manager Addresses:\n  10.0.0.1:2377\n"));
  EXPECT_THAT(r.out, HasSubstr("Server Version: 0.1.0-test\n"));

  r = Run({"version"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Client:\n Version:    0.1.0\n"));
  EXPECT_THAT(r.out, HasSubstr("Server:\n Version:    0.1.0-test\n"));

  {
    absl::MutexLock lock(&state_.mu);
    state_.info = api::NodeInfoResponse();
  }
  r = Run({"info"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Swarm: inactive\n");
}

}  // namespace
}  // namespace swarm::cli

namespace swarm::cli {
namespace {

TEST_F(SwarmctlTest, ServiceLogs_FollowResumesABrokenStreamWithoutRepeatingLines) {
  Result r = Run({"service", "logs", "-f", "--tail", "5", "web"});
  // The second stream ended with an error that is not a broken connection: it is reported.
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("@node1    | one\n"));
  const size_t first_two = r.out.find("| two");
  ASSERT_NE(first_two, std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("| two", first_two + 1), std::string::npos) << r.out;
  EXPECT_THAT(r.out, HasSubstr("| three\n"));
  EXPECT_THAT(r.err,
              HasSubstr("the log stream was interrupted (the raft leader changed); resuming"));
  EXPECT_THAT(r.err, HasSubstr("that is all"));
  const std::vector<api::SubscribeLogsRequest> reqs = logs_.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].options().tail(), -6);
  // Again from the last line's time, without --tail (which would repeat older lines).
  EXPECT_EQ(reqs[1].options().tail(), 0);
  EXPECT_EQ(reqs[1].options().since().seconds(), absl::ToUnixSeconds(kNow + absl::Seconds(2)));
  EXPECT_TRUE(reqs[1].options().follow());
}

}  // namespace
}  // namespace swarm::cli

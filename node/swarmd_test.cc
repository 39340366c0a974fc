// swarmd as operators run it: real processes on loopback, driven through their unix sockets
// (NodeAdmin and Control), with kill -9, restarts, autolock, and certificates of the wrong role.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "common/files.h"
#include "common/random.h"
#include "common/tls.h"
#include "gtest/gtest.h"
#include "manager/ca/ca.h"
#include "manager/keymanager/keystore.h"
#include "node/state.pb.h"
#include "node/testing/swarmd_cluster.h"
#include "proto/ca.grpc.pb.h"
#include "proto/raft_service.grpc.pb.h"

namespace swarm::node {
namespace {

namespace fs = std::filesystem;

grpc::Status CreateService(api::Control::Stub& c, const std::string& name,
                           absl::Duration timeout = absl::Seconds(10)) {
  grpc::ClientContext ctx;
  SetTimeout(ctx, timeout);
  api::CreateServiceRequest req;
  req.mutable_spec()->mutable_annotations()->set_name(name);
  // No replicas: these tests are about the control plane, and no node should try to pull.
  req.mutable_spec()->mutable_task_template()->mutable_container()->set_image("busybox");
  req.mutable_spec()->mutable_replicated()->set_replicas(0);
  api::CreateServiceResponse resp;
  return c.CreateService(&ctx, req, &resp);
}

grpc::Status CreateSecret(api::Control::Stub& c, const std::string& name, const std::string& data) {
  grpc::ClientContext ctx;
  SetTimeout(ctx);
  api::CreateSecretRequest req;
  req.mutable_spec()->mutable_annotations()->set_name(name);
  req.mutable_spec()->set_data(data);
  api::CreateSecretResponse resp;
  return c.CreateSecret(&ctx, req, &resp);
}

std::vector<std::string> ServiceNames(api::Control::Stub& c) {
  grpc::ClientContext ctx;
  SetTimeout(ctx);
  api::ListServicesResponse resp;
  grpc::Status s = c.ListServices(&ctx, api::ListServicesRequest(), &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  std::vector<std::string> names;
  for (const auto& svc : resp.services()) names.push_back(svc.spec().annotations().name());
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<api::Node> Nodes(api::Control::Stub& c) {
  grpc::ClientContext ctx;
  SetTimeout(ctx);
  api::ListNodesResponse resp;
  grpc::Status s = c.ListNodes(&ctx, api::ListNodesRequest(), &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return {resp.nodes().begin(), resp.nodes().end()};
}

// Changes a node's desired role through a manager's control API (`node promote/demote`).
grpc::Status SetRole(api::Control::Stub& c, const std::string& node_id, api::NodeRole role) {
  api::GetNodeResponse got;
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::GetNodeRequest req;
    req.set_node_id(node_id);
    grpc::Status s = c.GetNode(&ctx, req, &got);
    if (!s.ok()) return s;
  }
  grpc::ClientContext ctx;
  SetTimeout(ctx);
  api::UpdateNodeRequest req;
  req.set_node_id(node_id);
  *req.mutable_node_version() = got.node().meta().version();
  *req.mutable_spec() = got.node().spec();
  req.mutable_spec()->set_desired_role(role);
  api::UpdateNodeResponse resp;
  return c.UpdateNode(&ctx, req, &resp);
}

// Every byte under dir, for grepping a state directory.
std::string AllBytes(const std::string& dir) {
  std::string all;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream f(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    all += ss.str();
  }
  return all;
}

class SwarmdTest : public ::testing::Test {
 protected:
  // Turns autolock on or off through node 1, rotating the unlock key if asked.
  grpc::Status UpdateAutolock(bool autolock, bool rotate) {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::ListClustersResponse clusters;
    grpc::Status s = cluster_.control(1).ListClusters(&ctx, api::ListClustersRequest(), &clusters);
    if (!s.ok()) return s;
    grpc::ClientContext uctx;
    SetTimeout(uctx);
    api::UpdateClusterRequest req;
    req.set_cluster_id(clusters.clusters(0).id());
    *req.mutable_cluster_version() = clusters.clusters(0).meta().version();
    *req.mutable_spec() = clusters.clusters(0).spec();
    req.mutable_spec()->mutable_encryption_config()->set_auto_lock_managers(autolock);
    req.mutable_rotation()->set_manager_unlock_key(rotate);
    api::UpdateClusterResponse resp;
    return cluster_.control(1).UpdateCluster(&uctx, req, &resp);
  }

  // Node 1 initializes a swarm; nodes 2..n join it as managers.
  void FormManagers(int n) {
    for (int i = 1; i <= n; ++i) ASSERT_TRUE(cluster_.Start(i).ok());
    auto init = cluster_.Init(1);
    ASSERT_TRUE(init.ok()) << init.status() << cluster_.Output(1);
    for (int i = 2; i <= n; ++i) {
      auto joined = cluster_.Join(i, 1, /*manager=*/true);
      ASSERT_TRUE(joined.ok()) << joined.status() << cluster_.Output(i);
      EXPECT_EQ(joined->role(), api::NODE_ROLE_MANAGER);
    }
  }

  // Kills the leader of n managers with kill -9: writes through another manager succeed
  // again within 3 s, and the old leader catches up after a restart.
  void KillTheLeader(int n) {
    FormManagers(n);
    auto leader = cluster_.WaitForLeader(absl::Seconds(10));
    ASSERT_TRUE(leader.ok());
    ASSERT_TRUE(CreateService(cluster_.control(*leader), "before").ok());
    const int other = *leader % n + 1;

    const absl::Time killed = absl::Now();
    cluster_.Kill(*leader);
    // Writes through a surviving manager succeed again within 3 s.
    absl::Time back;
    // (A name per attempt: an attempt that timed out may still have committed.)
    for (int attempt = 0;; ++attempt) {
      grpc::Status s = CreateService(cluster_.control(other), "after-" + std::to_string(attempt),
                                     absl::Seconds(1));
      if (s.ok()) {
        back = absl::Now();
        break;
      }
      ASSERT_LT(absl::Now() - killed, absl::Seconds(10)) << s.error_message();
      absl::SleepFor(absl::Milliseconds(50));
    }
    EXPECT_LT(back - killed, absl::Seconds(3));
    std::cout << n << " managers: control API back " << absl::ToInt64Milliseconds(back - killed)
              << " ms after kill -9 of the leader\n";

    // The new leader's leader-only components mark it the leader, and the dead one
    // unreachable.
    bool flagged = false;
    for (int i = 0; i < 100 && !flagged; ++i) {
      int leaders = 0, unreachable = 0;
      for (const api::Node& node : Nodes(cluster_.control(other))) {
        leaders += node.manager_status().leader();
        unreachable += node.manager_status().reachability() == api::REACHABILITY_UNREACHABLE;
      }
      flagged = leaders == 1 && unreachable == 1;
      if (!flagged) absl::SleepFor(absl::Milliseconds(100));
    }
    EXPECT_TRUE(flagged);

    // The old leader comes back as a follower and catches up.
    ASSERT_TRUE(cluster_.Start(*leader).ok());
    const std::vector<std::string> want = ServiceNames(cluster_.control(other));
    EXPECT_TRUE(std::find(want.begin(), want.end(), "before") != want.end());
    for (int i = 0; i < 100 && ServiceNames(cluster_.control(*leader)) != want; ++i) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    EXPECT_EQ(ServiceNames(cluster_.control(*leader)), want);
  }

  // Node i's state file.
  NodeState StateOf(int i) {
    NodeState st;
    EXPECT_TRUE(st.ParseFromString(*ReadFile(cluster_.state_dir(i) + "/node.state")));
    return st;
  }
  // A channel to node to's listener with node from's own certificate and key.
  std::shared_ptr<grpc::Channel> ChannelAs(int from, int to) {
    const NodeState st = StateOf(from);
    auto keys = manager::keymanager::KeyStore(cluster_.state_dir(from), SecureRandom::Get()).Load();
    EXPECT_TRUE(keys.ok()) << keys.status();
    return grpc::CreateCustomChannel(
        cluster_.addr(to),
        tls::ChannelCredentials(
            tls::Credentials{st.root_ca_pem(), st.cert_pem(), keys.ok() ? keys->tls_key_pem : ""}),
        tls::ChannelArguments(tls::kManagerRole));
  }

  SwarmdCluster cluster_;
};

TEST_F(SwarmdTest, Init_AnInactiveNodeBecomesTheFirstManager) {
  ASSERT_TRUE(cluster_.Start(1).ok());
  auto info = cluster_.Info(1);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state(), api::LOCAL_NODE_STATE_INACTIVE);
  // Before init the control API says what to do.
  grpc::Status s = CreateService(cluster_.control(1), "early");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "swarmctl swarm init")) << s.error_message();

  auto init = cluster_.Init(1);
  ASSERT_TRUE(init.ok()) << init.status();
  info = cluster_.Info(1);
  EXPECT_EQ(info->state(), api::LOCAL_NODE_STATE_ACTIVE);
  EXPECT_EQ(info->node_id(), init->node_id());
  EXPECT_TRUE(info->is_leader());
  // A second init is refused.
  EXPECT_EQ(cluster_.Init(1).status().code(), absl::StatusCode::kFailedPrecondition);

  std::vector<api::Node> nodes = Nodes(cluster_.control(1));
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0].description().hostname(), "node-1");
  EXPECT_EQ(nodes[0].role(), api::NODE_ROLE_MANAGER);
  EXPECT_TRUE(nodes[0].manager_status().leader());
}

// Two daemons sharing an exec root would take each other's containers for their own.
TEST(SwarmdExecRootTest, ASecondDaemonOnTheSameExecRootRefusesToStart) {
  char tmpl[] = "/tmp/swarmd-exec-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  SwarmdCluster first({.exec_root_base = tmpl});
  SwarmdCluster second({.exec_root_base = tmpl});
  ASSERT_TRUE(first.Start(1).ok()) << first.Output(1);
  EXPECT_FALSE(second.Start(1).ok());
  EXPECT_TRUE(absl::StrContains(second.Output(1), "uses the exec root")) << second.Output(1);
  EXPECT_TRUE(absl::StrContains(second.Output(1), "--exec-root")) << second.Output(1);
  EXPECT_EQ(first.Terminate(1), 0);
  std::error_code ec;
  fs::remove_all(tmpl, ec);
}

TEST_F(SwarmdTest, Init_CreatesTheIngressNetworkFromTheConfiguredAddressPools) {
  ASSERT_TRUE(cluster_.Start(1).ok());
  {
    // A pool that cannot hold its subnets is refused before anything is created.
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(30));
    api::InitSwarmRequest req;
    req.add_default_addr_pool("10.9.0.0/26");
    api::InitSwarmResponse resp;
    grpc::Status s = cluster_.admin(1).InitSwarm(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_TRUE(absl::StrContains(s.error_message(), "smaller than the subnets"))
        << s.error_message();
  }
  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(30));
  api::InitSwarmRequest req;
  req.add_default_addr_pool("172.29.0.0/16");
  req.set_default_addr_pool_mask_len(25);
  api::InitSwarmResponse resp;
  grpc::Status s = cluster_.admin(1).InitSwarm(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();

  // The allocator gives the ingress network the first subnet of the pool and the first VNI.
  api::Network ingress;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    grpc::ClientContext list_ctx;
    SetTimeout(list_ctx);
    api::ListNetworksResponse list;
    if (cluster_.control(1).ListNetworks(&list_ctx, api::ListNetworksRequest(), &list).ok() &&
        list.networks_size() == 1 && list.networks(0).ipam().configs_size() == 1) {
      ingress = list.networks(0);
      break;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(ingress.spec().annotations().name(), "ingress");
  EXPECT_TRUE(ingress.spec().ingress());
  ASSERT_EQ(ingress.ipam().configs_size(), 1) << ingress.ShortDebugString();
  EXPECT_EQ(ingress.ipam().configs(0).subnet(), "172.29.0.0/25");
  EXPECT_EQ(ingress.ipam().configs(0).gateway(), "172.29.0.1");
  EXPECT_EQ(ingress.driver_state().options().at("com.docker.network.driver.overlay.vxlanid_list"),
            "4096");

  grpc::ClientContext get_ctx;
  SetTimeout(get_ctx);
  api::GetClusterRequest get;
  get.set_cluster_id(resp.cluster_id());
  api::GetClusterResponse cluster;
  ASSERT_TRUE(cluster_.control(1).GetCluster(&get_ctx, get, &cluster).ok());
  ASSERT_EQ(cluster.cluster().default_address_pool_size(), 1);
  EXPECT_EQ(cluster.cluster().default_address_pool(0), "172.29.0.0/16");
  EXPECT_EQ(cluster.cluster().subnet_size(), 25u);
}

TEST_F(SwarmdTest, ThreeManagers_ObjectsCreatedAnywhereAreSeenEverywhere) {
  FormManagers(3);
  auto leader = cluster_.WaitForLeader(absl::Seconds(10));
  ASSERT_TRUE(leader.ok());
  // Through every manager, the leader and both followers.
  for (int i = 1; i <= 3; ++i) {
    grpc::Status s = CreateService(cluster_.control(i), "web-" + std::to_string(i));
    ASSERT_TRUE(s.ok()) << "via " << i << ": " << s.error_message();
  }
  const std::vector<std::string> want = {"web-1", "web-2", "web-3"};
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(ServiceNames(cluster_.control(i)), want) << i;
  // A taken name is refused whichever manager is asked.
  EXPECT_EQ(CreateService(cluster_.control(3), "web-1").error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  // A list far over gRPC's default 4 MiB message comes through a follower, which forwards it.
  const int follower = *leader % 3 + 1;
  for (int i = 0; i < 6; ++i) {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::CreateConfigRequest req;
    req.mutable_spec()->mutable_annotations()->set_name("big-" + std::to_string(i));
    req.mutable_spec()->set_data(std::string(1000 * 1024, 'x'));  // the largest config
    api::CreateConfigResponse resp;
    grpc::Status s = cluster_.control(follower).CreateConfig(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::ListConfigsResponse resp;
    grpc::Status s = cluster_.control(follower).ListConfigs(&ctx, api::ListConfigsRequest(), &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.configs_size(), 6);
  }
  std::vector<api::Node> nodes = Nodes(cluster_.control(2));
  ASSERT_EQ(nodes.size(), 3u);
  for (const auto& n : nodes) {
    EXPECT_EQ(n.role(), api::NODE_ROLE_MANAGER);
    EXPECT_NE(n.manager_status().raft_id(), 0u);
  }

  // Every manager restarts at once: the swarm comes back by itself with its objects.
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(cluster_.Terminate(i), 0) << cluster_.Output(i);
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(cluster_.Start(i).ok());
  ASSERT_TRUE(cluster_.WaitForLeader(absl::Seconds(10)).ok());
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(ServiceNames(cluster_.control(i)), want) << i;
}

TEST_F(SwarmdTest, ThreeManagers_TransactionsOverTheMessageLimitCommit) {
  FormManagers(3);
  auto leader = cluster_.WaitForLeader(absl::Seconds(10));
  ASSERT_TRUE(leader.ok());
  // A service whose spec is 3 MiB: every task carries the spec, so the orchestrator's
  // transaction that creates its tasks is several times gRPC's default 4 MiB message.
  // Nothing matches its constraint, so its tasks stay pending and no node pulls an image.
  constexpr int kReplicas = 8;
  grpc::ClientContext ctx;
  SetTimeout(ctx);
  api::CreateServiceRequest req;
  req.mutable_spec()->mutable_annotations()->set_name("big");
  api::ContainerSpec* c = req.mutable_spec()->mutable_task_template()->mutable_container();
  c->set_image("busybox");
  c->add_env("BIG=" + std::string(3 << 20, 'x'));
  req.mutable_spec()->mutable_task_template()->mutable_placement()->add_constraints(
      "node.labels.nowhere==true");
  req.mutable_spec()->mutable_replicated()->set_replicas(kReplicas);
  api::CreateServiceResponse resp;
  grpc::Status s = cluster_.control(*leader).CreateService(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();

  // Every manager gets every task, and the swarm still takes writes afterwards.
  for (int i = 1; i <= 3; ++i) {
    int tasks = 0;
    for (absl::Time end = absl::Now() + absl::Seconds(20); absl::Now() < end;
         absl::SleepFor(absl::Milliseconds(200))) {
      grpc::ClientContext lctx;
      SetTimeout(lctx);
      api::ListTasksRequest lreq;
      lreq.mutable_filters()->add_service_ids(resp.service().id());
      api::ListTasksResponse tasks_resp;
      if (cluster_.control(i).ListTasks(&lctx, lreq, &tasks_resp).ok()) {
        tasks = tasks_resp.tasks_size();
      }
      if (tasks == kReplicas) break;
    }
    EXPECT_EQ(tasks, kReplicas) << "manager " << i;
  }
  for (int i = 1; i <= 3; ++i) {
    s = CreateService(cluster_.control(i), "after-" + std::to_string(i));
    EXPECT_TRUE(s.ok()) << "via " << i << ": " << s.error_message();
  }
}

TEST_F(SwarmdTest, KillingTheLeaderOf3_InterruptsTheControlApiForUnder3Seconds) {
  KillTheLeader(3);
}

TEST_F(SwarmdTest, KillingTheLeaderOf5_InterruptsTheControlApiForUnder3Seconds) {
  KillTheLeader(5);
}

TEST_F(SwarmdTest, Workers_JoinWithTheWorkerTokenAndCannotUseManagerServices) {
  FormManagers(1);
  ASSERT_TRUE(cluster_.Start(2).ok());
  auto joined = cluster_.Join(2, 1, /*manager=*/false);
  ASSERT_TRUE(joined.ok()) << joined.status() << cluster_.Output(2);
  EXPECT_EQ(joined->role(), api::NODE_ROLE_WORKER);
  std::vector<api::Node> nodes = Nodes(cluster_.control(1));
  ASSERT_EQ(nodes.size(), 2u);
  for (const api::Node& n : nodes) {
    if (n.id() == joined->node_id()) {
      EXPECT_EQ(n.description().hostname(), "node-2");
    }
  }

  // The worker's own socket has no control API.
  grpc::Status s = CreateService(cluster_.control(2), "x");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "not a swarm manager")) << s.error_message();

  // With the worker's own certificate, the manager refuses Control and Raft.
  const NodeState st = StateOf(2);
  auto ch = ChannelAs(2, 1);
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::ListNodesResponse resp;
    s = api::Control::NewStub(ch)->ListNodes(&ctx, api::ListNodesRequest(), &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), "swarm-manager")) << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::JoinRequest req;
    req.set_addr("127.0.0.1:1");
    api::JoinResponse resp;
    s = api::RaftMembership::NewStub(ch)->Join(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  }
  // Without any certificate, nothing but the join answers.
  {
    auto anon = grpc::CreateCustomChannel(
        cluster_.addr(1), tls::ChannelCredentials(tls::Credentials{st.root_ca_pem(), "", ""}),
        tls::ChannelArguments(tls::kManagerRole));
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::ListNodesResponse resp;
    s = api::Control::NewStub(anon)->ListNodes(&ctx, api::ListNodesRequest(), &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  }

  // The worker leaves and is inactive again.
  grpc::ClientContext ctx;
  SetTimeout(ctx);
  api::LeaveSwarmResponse left;
  ASSERT_TRUE(cluster_.admin(2).LeaveSwarm(&ctx, api::LeaveSwarmRequest(), &left).ok());
  EXPECT_EQ(cluster_.Info(2)->state(), api::LOCAL_NODE_STATE_INACTIVE);
  EXPECT_FALSE(fs::exists(cluster_.state_dir(2) + "/node.state"));
}

TEST_F(SwarmdTest, Join_WrongOrRotatedTokensAreRefusedClearly) {
  FormManagers(1);
  ASSERT_TRUE(cluster_.Start(2).ok());
  auto token = cluster_.JoinToken(1, false);
  ASSERT_TRUE(token.ok());
  auto join = [&](const std::string& t) {
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(20));
    api::JoinSwarmRequest req;
    req.set_remote_addr(cluster_.addr(1));
    req.set_join_token(t);
    api::JoinSwarmResponse resp;
    return cluster_.admin(2).JoinSwarm(&ctx, req, &resp);
  };
  grpc::Status s = join("SWMTKN-2-abc");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();

  // A token of another swarm: its digest does not match the root this manager shows.
  std::string foreign = *token;
  foreign[10] = foreign[10] == 'a' ? 'b' : 'a';
  s = join(foreign);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(
      absl::StrContains(s.error_message(), "does not belong to the cluster at " + cluster_.addr(1)))
      << s.error_message();

  // Rotate the worker token: the old one stops working at once.
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::ListClustersResponse clusters;
    ASSERT_TRUE(cluster_.control(1).ListClusters(&ctx, api::ListClustersRequest(), &clusters).ok());
    grpc::ClientContext uctx;
    SetTimeout(uctx);
    api::UpdateClusterRequest req;
    req.set_cluster_id(clusters.clusters(0).id());
    *req.mutable_cluster_version() = clusters.clusters(0).meta().version();
    *req.mutable_spec() = clusters.clusters(0).spec();
    req.mutable_rotation()->set_worker_join_token(true);
    api::UpdateClusterResponse resp;
    s = cluster_.control(1).UpdateCluster(&uctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  s = join(*token);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_EQ(cluster_.Info(2)->state(), api::LOCAL_NODE_STATE_INACTIVE);
  EXPECT_TRUE(cluster_.Join(2, 1, false).ok());
}

TEST_F(SwarmdTest, Autolock_ARestartedManagerStaysLockedUntilTheRightKey) {
  ASSERT_TRUE(cluster_.Start(1).ok());
  auto init = cluster_.Init(1, /*autolock=*/true);
  ASSERT_TRUE(init.ok()) << init.status();
  ASSERT_TRUE(absl::StartsWith(init->unlock_key(), "SWMKEY-1-"));
  ASSERT_TRUE(CreateService(cluster_.control(1), "kept").ok());

  EXPECT_EQ(cluster_.Terminate(1), 0);
  ASSERT_TRUE(cluster_.Start(1).ok());
  EXPECT_EQ(cluster_.Info(1)->state(), api::LOCAL_NODE_STATE_LOCKED);
  grpc::Status s = CreateService(cluster_.control(1), "x");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(
      absl::StrContains(s.error_message(), "this node is locked: run swarmctl swarm unlock"))
      << s.error_message();

  auto unlock = [&](const std::string& key) {
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(20));
    api::UnlockSwarmRequest req;
    req.set_unlock_key(key);
    api::UnlockSwarmResponse resp;
    return cluster_.admin(1).UnlockSwarm(&ctx, req, &resp);
  };
  // (A change in the middle: the last base64 character carries padding bits.)
  std::string wrong = init->unlock_key();
  wrong[20] = wrong[20] == 'A' ? 'B' : 'A';
  s = unlock(wrong);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_EQ(unlock("garbage").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(cluster_.Info(1)->state(), api::LOCAL_NODE_STATE_LOCKED);

  s = unlock(init->unlock_key());
  ASSERT_TRUE(s.ok()) << s.error_message() << cluster_.Output(1);
  EXPECT_EQ(cluster_.Info(1)->state(), api::LOCAL_NODE_STATE_ACTIVE);
  ASSERT_TRUE(cluster_.WaitForLeader(absl::Seconds(10)).ok());
  EXPECT_EQ(ServiceNames(cluster_.control(1)), std::vector<std::string>{"kept"});
}

TEST_F(SwarmdTest, StateDirectory_RevealsNoSecretServiceNameOrCaKey) {
  for (bool autolock : {false, true}) {
    SwarmdCluster cluster;
    ASSERT_TRUE(cluster.Start(1).ok());
    ASSERT_TRUE(cluster.Init(1, autolock).ok());
    const std::string payload = "top-secret-payload-4711";
    grpc::Status s = CreateSecret(cluster.control(1), "db-password", payload);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_TRUE(CreateService(cluster.control(1), "very-distinctive-service-name").ok());
    EXPECT_EQ(cluster.Terminate(1), 0);
    const std::string all = AllBytes(cluster.state_dir(1));
    EXPECT_FALSE(absl::StrContains(all, payload)) << "autolock " << autolock;
    EXPECT_FALSE(absl::StrContains(all, "very-distinctive-service-name")) << autolock;
    EXPECT_FALSE(absl::StrContains(all, "PRIVATE KEY")) << autolock;
  }
}

TEST_F(SwarmdTest, Leave_ManagersRefuseToEraseTheSwarmWithoutForce) {
  FormManagers(3);
  ASSERT_TRUE(cluster_.WaitForLeader(absl::Seconds(10)).ok());
  auto leave = [&](int i, bool force) {
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(30));
    api::LeaveSwarmRequest req;
    req.set_force(force);
    api::LeaveSwarmResponse resp;
    return cluster_.admin(i).LeaveSwarm(&ctx, req, &resp);
  };
  // Two managers leave (the leader among them, whichever it is); the last one keeps serving.
  const int leader = *cluster_.WaitForLeader(absl::Seconds(10));
  grpc::Status s = leave(leader, false);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const int second = leader % 3 + 1;
  s = leave(second, false);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const int last = 6 - leader - second;
  ASSERT_TRUE(CreateService(cluster_.control(last), "still-here").ok());
  s = leave(last, false);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "last manager")) << s.error_message();
  EXPECT_TRUE(leave(last, true).ok());
  EXPECT_EQ(cluster_.Info(last)->state(), api::LOCAL_NODE_STATE_INACTIVE);
}

TEST_F(SwarmdTest, Backup_OfALiveSwarmRestoresIntoAFreshStateDirectory) {
  FormManagers(3);
  ASSERT_TRUE(CreateService(cluster_.control(1), "web").ok());
  ASSERT_TRUE(CreateService(cluster_.control(2), "db").ok());
  ASSERT_TRUE(CreateSecret(cluster_.control(3), "pw", "hunter2").ok());
  // Taken through a follower while the swarm keeps serving.
  api::BackupSwarmResponse backup;
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    const int follower = *cluster_.WaitForLeader(absl::Seconds(5)) % 3 + 1;
    grpc::Status s = cluster_.admin(follower).BackupSwarm(&ctx, api::BackupSwarmRequest(), &backup);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_FALSE(backup.sealed());
  const std::string file = cluster_.dir() + "/swarm.backup";
  ASSERT_TRUE(WriteFileAtomically(file, backup.backup(), 0600, true).ok());
  ASSERT_TRUE(CreateService(cluster_.control(1), "after-backup").ok());

  SwarmdCluster restored;
  ASSERT_TRUE(restored.Start(1, {"--restore=" + file}).ok()) << restored.Output(1);
  auto info = restored.Info(1);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state(), api::LOCAL_NODE_STATE_ACTIVE) << info->error();
  EXPECT_EQ(info->cluster_id(), cluster_.Info(1)->cluster_id());
  EXPECT_EQ(ServiceNames(restored.control(1)), (std::vector<std::string>{"db", "web"}));
  grpc::ClientContext ctx;
  SetTimeout(ctx);
  api::ListSecretsResponse secrets;
  ASSERT_TRUE(restored.control(1).ListSecrets(&ctx, api::ListSecretsRequest(), &secrets).ok());
  ASSERT_EQ(secrets.secrets_size(), 1);
  EXPECT_EQ(secrets.secrets(0).spec().annotations().name(), "pw");
  // The restored swarm is a working one: it takes writes and new managers.
  EXPECT_TRUE(CreateService(restored.control(1), "new").ok());
  ASSERT_TRUE(restored.Start(2).ok());
  auto joined = restored.Join(2, 1, /*manager=*/true);
  EXPECT_TRUE(joined.ok()) << joined.status();

  // A restore into a node that is part of a swarm is refused.
  restored.Terminate(2);
  EXPECT_FALSE(restored.Start(2, {"--restore=" + file}).ok());
}

TEST_F(SwarmdTest, ForceNewCluster_TheLastManagerKeepsEveryService) {
  FormManagers(3);
  ASSERT_TRUE(CreateService(cluster_.control(1), "web").ok());
  ASSERT_TRUE(CreateService(cluster_.control(2), "db").ok());
  // Two of three managers are lost for good: no quorum, no writes.
  auto leader = cluster_.WaitForLeader(absl::Seconds(5));
  ASSERT_TRUE(leader.ok());
  const int survivor = *leader % 3 + 1;
  for (int i = 1; i <= 3; ++i) {
    if (i != survivor) cluster_.Kill(i);
  }
  EXPECT_FALSE(CreateService(cluster_.control(survivor), "x", absl::Seconds(3)).ok());

  grpc::ClientContext ctx;
  SetTimeout(ctx, absl::Seconds(30));
  api::InitSwarmRequest req;
  req.set_force_new_cluster(true);
  api::InitSwarmResponse resp;
  grpc::Status s = cluster_.admin(survivor).InitSwarm(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message() << cluster_.Output(survivor);
  EXPECT_EQ(ServiceNames(cluster_.control(survivor)), (std::vector<std::string>{"db", "web"}));
  EXPECT_TRUE(CreateService(cluster_.control(survivor), "after").ok());
  // It survives a restart as the one-manager swarm, and others can join it again.
  EXPECT_EQ(cluster_.Terminate(survivor), 0);
  ASSERT_TRUE(cluster_.Start(survivor).ok());
  EXPECT_EQ(ServiceNames(cluster_.control(survivor)),
            (std::vector<std::string>{"after", "db", "web"}));
  ASSERT_TRUE(cluster_.Start(4).ok());
  auto joined = cluster_.Join(4, survivor, /*manager=*/true);
  EXPECT_TRUE(joined.ok()) << joined.status();
}

TEST_F(SwarmdTest, PromoteAndDemote_NodesChangeRoleThemselvesAndTheLeaderHandsOver) {
  FormManagers(1);
  ASSERT_TRUE(CreateService(cluster_.control(1), "web").ok());
  ASSERT_TRUE(cluster_.Start(2).ok());
  auto worker = cluster_.Join(2, 1, /*manager=*/false);
  ASSERT_TRUE(worker.ok()) << worker.status();
  auto wait_role = [&](int i, api::NodeRole role) {
    for (int n = 0; n < 300; ++n) {
      auto info = cluster_.Info(i);
      if (info.ok() && info->role() == role &&
          (role == api::NODE_ROLE_WORKER) == (info->raft_id() == 0)) {
        return true;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  };

  // Promote the worker: it renews its certificate as a manager and joins the Raft group.
  grpc::Status s = SetRole(cluster_.control(1), worker->node_id(), api::NODE_ROLE_MANAGER);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(wait_role(2, api::NODE_ROLE_MANAGER)) << cluster_.Output(2);
  EXPECT_EQ(ServiceNames(cluster_.control(2)), std::vector<std::string>{"web"});

  // Demote the leader: it hands leadership over, leaves the Raft group and becomes a worker.
  const std::string first = cluster_.Info(1)->node_id();
  s = SetRole(cluster_.control(2), first, api::NODE_ROLE_WORKER);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(wait_role(1, api::NODE_ROLE_WORKER)) << cluster_.Output(1);
  auto leader = cluster_.WaitForLeader(absl::Seconds(10));
  ASSERT_TRUE(leader.ok());
  EXPECT_EQ(*leader, 2);
  EXPECT_EQ(ServiceNames(cluster_.control(2)), std::vector<std::string>{"web"});
  grpc::Status worker_control = CreateService(cluster_.control(1), "x");
  EXPECT_EQ(worker_control.error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  // The last manager cannot be demoted.
  s = SetRole(cluster_.control(2), worker->node_id(), api::NODE_ROLE_WORKER);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "last manager")) << s.error_message();
}

TEST_F(SwarmdTest, Demote_ADemotionThatLosesTheQuorumIsRefused) {
  FormManagers(3);
  auto leader = cluster_.WaitForLeader(absl::Seconds(10));
  ASSERT_TRUE(leader.ok());
  const int down = *leader % 3 + 1;
  const int victim = 6 - *leader - down;  // the third one
  const std::string victim_id = cluster_.Info(victim)->node_id();
  cluster_.Kill(down);
  absl::SleepFor(absl::Seconds(4));  // the leader notices the dead manager
  grpc::Status s = SetRole(cluster_.control(*leader), victim_id, api::NODE_ROLE_WORKER);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "quorum")) << s.error_message();
  EXPECT_EQ(cluster_.Info(victim)->role(), api::NODE_ROLE_MANAGER);
}

TEST_F(SwarmdTest, UnlockKey_TurningAutolockOnAndRotatingTheKeyRewrapsEveryManager) {
  FormManagers(3);
  auto unlock_key = [&](int i) {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::GetUnlockKeyResponse resp;
    grpc::Status s = cluster_.control(i).GetUnlockKey(&ctx, api::GetUnlockKeyRequest(), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return std::string(resp.unlock_key());
  };
  auto unlock = [&](int i, const std::string& key) {
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(20));
    api::UnlockSwarmRequest req;
    req.set_unlock_key(key);
    api::UnlockSwarmResponse resp;
    return cluster_.admin(i).UnlockSwarm(&ctx, req, &resp);
  };
  // The key managers re-wrap their keys within a maintenance round; give them a few.
  auto settle = [] { absl::SleepFor(absl::Seconds(2)); };

  ASSERT_TRUE(UpdateAutolock(true, false).ok());
  const std::string first = unlock_key(2);
  ASSERT_TRUE(absl::StartsWith(first, "SWMKEY-1-")) << first;
  settle();
  EXPECT_EQ(cluster_.Terminate(3), 0);
  ASSERT_TRUE(cluster_.Start(3).ok());
  EXPECT_EQ(cluster_.Info(3)->state(), api::LOCAL_NODE_STATE_LOCKED);
  ASSERT_TRUE(unlock(3, first).ok());

  // Rotate: once every manager has the new key, the old one no longer unlocks.
  ASSERT_TRUE(UpdateAutolock(true, true).ok());
  const std::string second = unlock_key(1);
  ASSERT_NE(second, first);
  settle();
  EXPECT_EQ(cluster_.Terminate(2), 0);
  ASSERT_TRUE(cluster_.Start(2).ok());
  EXPECT_EQ(unlock(2, first).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(unlock(2, second).ok());

  // Autolock off: managers restart by themselves again.
  ASSERT_TRUE(UpdateAutolock(false, false).ok());
  settle();
  EXPECT_EQ(cluster_.Terminate(1), 0);
  ASSERT_TRUE(cluster_.Start(1).ok());
  EXPECT_EQ(cluster_.Info(1)->state(), api::LOCAL_NODE_STATE_ACTIVE);
}

// Like SwarmKit, a manager rotates its Raft DEK whenever its keys are re-wrapped (autolock on
// or off, a new unlock key): the log and snapshots move to the new key, the old one leaves the
// key store, and everything written before stays readable.
TEST_F(SwarmdTest, DataKey_RotatesOnEveryManagerWithTheUnlockKey) {
  FormManagers(3);
  const std::string payload = "top-secret-payload-0815";
  grpc::Status s = CreateSecret(cluster_.control(1), "db-password", payload);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(CreateService(cluster_.control(1), "written-under-the-first-dek").ok());
  // Waits until every manager seals its log with key `id`.
  auto wait_for_dek = [&](uint32_t id) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    std::vector<uint32_t> ids;
    while (absl::Now() < deadline) {
      ids.clear();
      for (int i = 1; i <= 3; ++i) {
        auto info = cluster_.Info(i);
        ids.push_back(info.ok() ? info->raft_data_key_id() : 0);
      }
      if (ids == std::vector<uint32_t>(3, id)) return true;
      absl::SleepFor(absl::Milliseconds(200));
    }
    ADD_FAILURE() << "DEK IDs " << ids[0] << " " << ids[1] << " " << ids[2] << ", wanted " << id;
    return false;
  };
  ASSERT_TRUE(wait_for_dek(1));

  ASSERT_TRUE(UpdateAutolock(true, false).ok());  // autolock on
  ASSERT_TRUE(wait_for_dek(2));
  ASSERT_TRUE(CreateService(cluster_.control(2), "written-under-the-second-dek").ok());
  ASSERT_TRUE(UpdateAutolock(true, true).ok());  // a new unlock key
  ASSERT_TRUE(wait_for_dek(3));
  std::string unlock_key;
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::GetUnlockKeyResponse resp;
    grpc::Status s = cluster_.control(1).GetUnlockKey(&ctx, api::GetUnlockKeyRequest(), &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    unlock_key = resp.unlock_key();
  }
  // The key store has dropped the old DEKs by the time the log stops needing them; give the
  // last write a moment, then restart every manager at once.
  absl::SleepFor(absl::Seconds(1));
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(cluster_.Terminate(i), 0);
  for (int i = 1; i <= 3; ++i) {
    const std::string all = AllBytes(cluster_.state_dir(i));
    EXPECT_FALSE(absl::StrContains(all, payload)) << i;
    EXPECT_FALSE(absl::StrContains(all, "written-under-the-first-dek")) << i;
    EXPECT_FALSE(absl::StrContains(all, "PRIVATE KEY")) << i;
    EXPECT_FALSE(absl::StrContains(all, unlock_key.substr(9))) << i;
  }
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(cluster_.Start(i).ok());
  for (int i = 1; i <= 3; ++i) {
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(20));
    api::UnlockSwarmRequest req;
    req.set_unlock_key(unlock_key);
    api::UnlockSwarmResponse resp;
    grpc::Status s = cluster_.admin(i).UnlockSwarm(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << i << ": " << s.error_message() << cluster_.Output(i);
  }
  ASSERT_TRUE(wait_for_dek(3));
  ASSERT_TRUE(cluster_.WaitForLeader(absl::Seconds(10)).ok());
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(
        ServiceNames(cluster_.control(i)),
        (std::vector<std::string>{"written-under-the-first-dek", "written-under-the-second-dek"}))
        << i;
  }
}

TEST_F(SwarmdTest, DataKey_RotatesOnDemandOnOneManager) {
  FormManagers(2);
  ASSERT_TRUE(CreateService(cluster_.control(1), "before-the-rotation").ok());
  auto rotate = [&](int i) -> absl::StatusOr<uint32_t> {
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(30));
    api::RotateDataKeyResponse resp;
    grpc::Status s = cluster_.admin(i).RotateDataKey(&ctx, api::RotateDataKeyRequest(), &resp);
    if (!s.ok()) return absl::Status(absl::StatusCode(s.error_code()), s.error_message());
    return resp.key_id();
  };
  EXPECT_EQ(*rotate(2), 2u);
  ASSERT_TRUE(CreateService(cluster_.control(2), "between-the-rotations").ok());
  EXPECT_EQ(*rotate(2), 3u);
  // Each manager's DEK is its own.
  EXPECT_EQ(cluster_.Info(1)->raft_data_key_id(), 1u);
  EXPECT_EQ(cluster_.Info(2)->raft_data_key_id(), 3u);
  // kill -9 right after a rotation: the key store and the log agree.
  cluster_.Kill(2);
  ASSERT_TRUE(cluster_.Start(2).ok());
  const std::vector<std::string> want = {"before-the-rotation", "between-the-rotations"};
  for (int attempt = 0; attempt < 100 && cluster_.Info(2)->state() != api::LOCAL_NODE_STATE_ACTIVE;
       ++attempt) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(cluster_.Info(2)->state(), api::LOCAL_NODE_STATE_ACTIVE) << cluster_.Output(2);
  EXPECT_EQ(cluster_.Info(2)->raft_data_key_id(), 3u);
  EXPECT_EQ(ServiceNames(cluster_.control(2)), want);
}

TEST_F(SwarmdTest, RemovedNodes_AreRefusedFromTheMomentTheRemovalCommits) {
  FormManagers(1);
  ASSERT_TRUE(cluster_.Start(2).ok());
  auto joined = cluster_.Join(2, 1, /*manager=*/false);
  ASSERT_TRUE(joined.ok()) << joined.status();
  auto ch = ChannelAs(2, 1);
  auto ca = api::NodeCA::NewStub(ch);
  auto status = [&] {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    api::NodeCertificateStatusRequest req;
    req.set_node_id(joined->node_id());
    api::NodeCertificateStatusResponse resp;
    return ca->NodeCertificateStatus(&ctx, req, &resp);
  };
  ASSERT_TRUE(status().ok());

  grpc::ClientContext ctx;
  SetTimeout(ctx);
  api::RemoveNodeRequest req;
  req.set_node_id(joined->node_id());
  req.set_force(true);
  api::RemoveNodeResponse resp;
  grpc::Status s = cluster_.control(1).RemoveNode(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  // Same connection, next call: refused.
  s = status();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_TRUE(absl::StrContains(s.error_message(), "revoked")) << s.error_message();
}

TEST_F(SwarmdTest, ForeignAndExpiredCertificates_AreRefused) {
  FormManagers(1);
  ASSERT_TRUE(CreateService(cluster_.control(1), "web").ok());
  SeededRandom random(7);
  const absl::Time now = absl::Now();
  // What the swarm's own CA key would sign (taken from a backup, which holds it).
  api::BackupSwarmResponse backup;
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx);
    ASSERT_TRUE(cluster_.admin(1).BackupSwarm(&ctx, api::BackupSwarmRequest(), &backup).ok());
  }
  Backup file;
  ASSERT_TRUE(file.ParseFromString(backup.backup()));
  api::StoreSnapshot snap;
  ASSERT_TRUE(snap.ParseFromString(file.data()));
  const api::Cluster& cluster = snap.clusters(0);
  auto root = manager::ca::RootCA::Load(cluster.root_ca().ca_cert(), cluster.root_ca().ca_key());
  ASSERT_TRUE(root.ok());
  auto foreign = manager::ca::RootCA::Create("other-swarm", absl::Hours(24), now, random);
  ASSERT_TRUE(foreign.ok());

  auto list_nodes = [&](const std::string& cert, const std::string& key) {
    auto ch = grpc::CreateCustomChannel(
        cluster_.addr(1), tls::ChannelCredentials(tls::Credentials{root->cert_pem(), cert, key}),
        tls::ChannelArguments(tls::kManagerRole));
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(5));
    api::ListNodesResponse resp;
    return api::Control::NewStub(ch)->ListNodes(&ctx, api::ListNodesRequest(), &resp);
  };
  const std::string key = *manager::ca::GenerateKey();
  const std::string csr = *manager::ca::CreateCsr(key);
  // A valid manager certificate of this swarm works (the control check itself).
  auto good = root->Issue(csr, "operator", manager::ca::Role::kManager, cluster.id(),
                          absl::Hours(1), now - absl::Minutes(1), random);
  ASSERT_TRUE(good.ok());
  grpc::Status s = list_nodes(*good, key);
  EXPECT_TRUE(s.ok()) << s.error_message();
  // Expired an hour ago.
  auto expired = root->Issue(csr, "operator", manager::ca::Role::kManager, cluster.id(),
                             absl::Hours(1), now - absl::Hours(2), random);
  ASSERT_TRUE(expired.ok());
  // The TLS handshake fails: the call never reaches a service.
  s = list_nodes(*expired, key);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  // Signed by another swarm's CA.
  auto other = foreign->Issue(csr, "intruder", manager::ca::Role::kManager, "other-swarm",
                              absl::Hours(1), now - absl::Minutes(1), random);
  ASSERT_TRUE(other.ok());
  s = list_nodes(*other, key);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

TEST_F(SwarmdTest, ForcedRotation_EveryNodeRenewsItsCertificateAndTheSwarmKeepsWorking) {
  FormManagers(2);
  ASSERT_TRUE(cluster_.Start(3).ok());
  ASSERT_TRUE(cluster_.Join(3, 1, /*manager=*/false).ok());
  auto cert_of = [&](int i) { return StateOf(i).cert_pem(); };
  std::map<int, std::string> before;
  for (int i = 1; i <= 3; ++i) before[i] = cert_of(i);

  // `swarm ca --rotate` without a new root: force_rotate grows.
  grpc::ClientContext ctx;
  SetTimeout(ctx);
  api::ListClustersResponse clusters;
  ASSERT_TRUE(cluster_.control(1).ListClusters(&ctx, api::ListClustersRequest(), &clusters).ok());
  grpc::ClientContext uctx;
  SetTimeout(uctx);
  api::UpdateClusterRequest req;
  req.set_cluster_id(clusters.clusters(0).id());
  *req.mutable_cluster_version() = clusters.clusters(0).meta().version();
  *req.mutable_spec() = clusters.clusters(0).spec();
  req.mutable_spec()->mutable_ca_config()->set_force_rotate(
      clusters.clusters(0).spec().ca_config().force_rotate() + 1);
  api::UpdateClusterResponse resp;
  grpc::Status s = cluster_.control(1).UpdateCluster(&uctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();

  for (int i = 1; i <= 3; ++i) {
    bool renewed = false;
    for (int n = 0; n < 150 && !renewed; ++n) {
      renewed = cert_of(i) != before[i];
      if (!renewed) absl::SleepFor(absl::Milliseconds(100));
    }
    EXPECT_TRUE(renewed) << "node " << i << cluster_.Output(i);
  }
  // The managers run on their new certificates: writes through both, and the worker's new
  // certificate is accepted by the CA.
  ASSERT_TRUE(cluster_.WaitForLeader(absl::Seconds(10)).ok());
  for (int i = 1; i <= 2; ++i) {
    grpc::Status w;
    for (int n = 0; n < 50; ++n) {
      w = CreateService(cluster_.control(i), "after-rotation-" + std::to_string(i));
      if (w.ok() || w.error_code() == grpc::StatusCode::ALREADY_EXISTS) break;
      absl::SleepFor(absl::Milliseconds(100));
    }
    EXPECT_TRUE(w.ok() || w.error_code() == grpc::StatusCode::ALREADY_EXISTS) << w.error_message();
  }
  EXPECT_EQ(cluster_.Info(3)->state(), api::LOCAL_NODE_STATE_ACTIVE);
}

}  // namespace
}  // namespace swarm::node

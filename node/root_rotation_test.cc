// Root CA rotation with real swarmd processes (`swarm ca --rotate`): 3 managers and a worker
// move to a new root while services are written through the control API; the old root is
// retired, join tokens change with it, and a manager killed in the middle does not stop it.
#include <set>

#include "common/files.h"
#include "gtest/gtest.h"
#include "manager/ca/ca.h"
#include "node/state.pb.h"
#include "node/testing/swarmd_cluster.h"

namespace swarm::node {
namespace {

using manager::ca::IssuedBy;
using manager::ca::SplitPem;

class RootRotationTest : public ::testing::Test {
 protected:
  // Managers 1..3 (node 1 initializes), worker 4.
  void FormSwarm() {
    for (int i = 1; i <= 4; ++i) ASSERT_TRUE(cluster_.Start(i).ok());
    auto init = cluster_.Init(1);
    ASSERT_TRUE(init.ok()) << init.status() << cluster_.Output(1);
    for (int i = 2; i <= 4; ++i) {
      auto joined = cluster_.Join(i, 1, /*manager=*/i <= 3);
      ASSERT_TRUE(joined.ok()) << joined.status() << cluster_.Output(i);
    }
  }

  NodeState StateOf(int i) {
    NodeState st;
    EXPECT_TRUE(st.ParseFromString(*ReadFile(cluster_.state_dir(i) + "/node.state")));
    return st;
  }

  // The cluster through the first manager that answers.
  // The cluster object from any manager. Managers restart their servers to drop the old root
  // at the end of a rotation, possibly all at once (see README: a moment without the control
  // API), so this asks for up to 10 s.
  absl::StatusOr<api::Cluster> GetCluster() {
    grpc::Status s;
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    do {
      for (int i = 1; i <= 3; ++i) {
        if (!cluster_.Running(i)) continue;
        grpc::ClientContext ctx;
        SetTimeout(ctx, absl::Seconds(3));
        api::ListClustersResponse resp;
        s = cluster_.control(i).ListClusters(&ctx, api::ListClustersRequest(), &resp);
        if (s.ok() && resp.clusters_size() == 1) return resp.clusters(0);
      }
      absl::SleepFor(absl::Milliseconds(100));
    } while (absl::Now() < deadline);
    return absl::UnavailableError("no manager answered: " + s.error_message());
  }

  // `swarm ca --rotate`: force_rotate grows.
  void Rotate() {
    grpc::Status s;
    for (int attempt = 0; attempt < 20; ++attempt) {
      auto c = GetCluster();
      ASSERT_TRUE(c.ok()) << c.status();
      grpc::ClientContext ctx;
      SetTimeout(ctx);
      api::UpdateClusterRequest req;
      req.set_cluster_id(c->id());
      *req.mutable_cluster_version() = c->meta().version();
      *req.mutable_spec() = c->spec();
      req.mutable_spec()->mutable_ca_config()->set_force_rotate(
          c->spec().ca_config().force_rotate() + 1);
      api::UpdateClusterResponse resp;
      s = cluster_.control(1).UpdateCluster(&ctx, req, &resp);
      if (s.ok()) return;
      absl::SleepFor(absl::Milliseconds(200));
    }
    FAIL() << s.error_message();
  }

  // A service written through manager via (retried while managers restart with new
  // certificates); the time it took.
  absl::Duration WriteService(int via, const std::string& name) {
    const absl::Time start = absl::Now();
    grpc::Status s;
    for (int n = 0; n < 100; ++n) {
      grpc::ClientContext ctx;
      SetTimeout(ctx, absl::Seconds(3));
      api::CreateServiceRequest req;
      req.mutable_spec()->mutable_annotations()->set_name(name);
      req.mutable_spec()->mutable_task_template()->mutable_container()->set_image("busybox");
      req.mutable_spec()->mutable_replicated()->set_replicas(0);
      api::CreateServiceResponse resp;
      s = cluster_.control(via).CreateService(&ctx, req, &resp);
      if (s.ok() || s.error_code() == grpc::StatusCode::ALREADY_EXISTS) return absl::Now() - start;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ADD_FAILURE() << "writing " << name << " through node " << via << ": " << s.error_message();
    return absl::Now() - start;
  }

  // Writes services through the managers in turn until the rotation is over; returns the new
  // root. Every write succeeds within a few seconds (a manager restarts twice: with its new
  // certificate, then without the old root).
  std::string WaitForRotation(const std::string& old_root, const std::set<int>& skip = {}) {
    const absl::Time deadline = absl::Now() + absl::Seconds(90);
    int n = 0;
    while (absl::Now() < deadline) {
      const int via = n % 3 + 1;
      if (!skip.count(via) && cluster_.Running(via)) {
        EXPECT_LT(WriteService(via, "during-" + std::to_string(n)), absl::Seconds(8));
      }
      ++n;
      auto c = GetCluster();
      if (c.ok() && !c->root_ca().has_root_rotation() && c->root_ca().ca_cert() != old_root) {
        return c->root_ca().ca_cert();
      }
      absl::SleepFor(absl::Milliseconds(300));
    }
    ADD_FAILURE() << "the rotation did not finish\n" << cluster_.Output(1);
    return "";
  }

  // Every node holds a certificate from new_root and trusts it alone (they drop the old root
  // within a few role checks of the end).
  void ExpectEveryNodeOn(const std::string& new_root) {
    for (int i = 1; i <= 4; ++i) {
      bool on = false;
      for (int n = 0; n < 100 && !on; ++n) {
        const NodeState st = StateOf(i);
        on = IssuedBy(st.cert_pem(), new_root) && SplitPem(st.root_ca_pem()) == SplitPem(new_root);
        if (!on) absl::SleepFor(absl::Milliseconds(100));
      }
      EXPECT_TRUE(on) << "node " << i << "\n" << cluster_.Output(i);
    }
  }

  SwarmdCluster cluster_;
};

TEST_F(RootRotationTest, Rotate_EveryNodeMovesToTheNewRootAndOldTokensStopWorking) {
  FormSwarm();
  auto before = GetCluster();
  ASSERT_TRUE(before.ok()) << before.status();
  const std::string old_root = before->root_ca().ca_cert();
  const std::string old_worker_token = before->root_ca().join_tokens().worker();

  const absl::Time start = absl::Now();
  Rotate();
  const std::string new_root = WaitForRotation(old_root);
  ASSERT_FALSE(new_root.empty());
  std::cerr << "rotation took " << absl::Now() - start << "\n";
  ExpectEveryNodeOn(new_root);

  auto after = GetCluster();
  ASSERT_TRUE(after.ok());
  const std::string new_worker_token = after->root_ca().join_tokens().worker();
  EXPECT_NE(new_worker_token, old_worker_token);
  auto parsed = manager::ca::ParseJoinToken(new_worker_token);
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(manager::ca::TokenMatchesRoot(*parsed, *manager::ca::RootCA::Load(new_root, "")));

  // Each manager restarts its servers once it drops the old root (a moment without them):
  // wait until all three serve again before joining through one.
  for (int i = 1; i <= 3; ++i) {
    bool serving = false;
    for (int n = 0; n < 100 && !serving; ++n) {
      grpc::ClientContext ctx;
      SetTimeout(ctx, absl::Seconds(1));
      api::ListClustersResponse resp;
      serving = cluster_.control(i).ListClusters(&ctx, api::ListClustersRequest(), &resp).ok();
      if (!serving) absl::SleepFor(absl::Milliseconds(100));
    }
    ASSERT_TRUE(serving) << "manager " << i << " does not serve after the rotation";
  }

  // The old token no longer lets a node in; the new one does.
  ASSERT_TRUE(cluster_.Start(5).ok());
  api::JoinSwarmRequest req;
  req.set_remote_addr(cluster_.addr(1));
  req.set_join_token(old_worker_token);
  req.set_listen_addr("127.0.0.1:0");
  {
    grpc::ClientContext ctx;
    SetTimeout(ctx, absl::Seconds(30));
    api::JoinSwarmResponse resp;
    grpc::Status s = cluster_.admin(5).JoinSwarm(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  }
  auto joined = cluster_.Join(5, 1, /*manager=*/false);
  ASSERT_TRUE(joined.ok()) << joined.status() << cluster_.Output(5);
  EXPECT_TRUE(IssuedBy(StateOf(5).cert_pem(), new_root));

  // The control API works through every manager on the new root.
  for (int i = 1; i <= 3; ++i) {
    EXPECT_LT(WriteService(i, "after-" + std::to_string(i)), absl::Seconds(5));
  }
  EXPECT_EQ(cluster_.Info(4)->state(), api::LOCAL_NODE_STATE_ACTIVE);
}

TEST_F(RootRotationTest, Rotate_AManagerKilledInTheMiddleDoesNotStopIt) {
  FormSwarm();
  auto before = GetCluster();
  ASSERT_TRUE(before.ok()) << before.status();
  const std::string old_root = before->root_ca().ca_cert();

  Rotate();
  // The leader, which drives the rotation, is killed as soon as it started; it comes back
  // with its old certificate and must renew.
  auto leader = cluster_.WaitForLeader(absl::Seconds(10));
  ASSERT_TRUE(leader.ok());
  cluster_.Kill(*leader);
  absl::SleepFor(absl::Seconds(2));
  ASSERT_TRUE(cluster_.Start(*leader).ok()) << cluster_.Output(*leader);
  const std::string new_root = WaitForRotation(old_root);
  ASSERT_FALSE(new_root.empty());
  ExpectEveryNodeOn(new_root);
  for (int i = 1; i <= 3; ++i) {
    EXPECT_LT(WriteService(i, "after-" + std::to_string(i)), absl::Seconds(5));
  }
}

}  // namespace
}  // namespace swarm::node

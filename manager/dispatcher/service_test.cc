// The Dispatcher service on loopback with real certificates from the cluster's CA: a leader
// serving sessions, and a follower relaying them to it.
#include "manager/dispatcher/service.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "manager/ca/ca.h"
#include "manager/ca/testing.h"

namespace swarm::manager::dispatcher {
namespace {

using ca::Role;
using ca::RootCA;
using store::WriteTx;

std::chrono::system_clock::time_point In(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

// One manager's listener with the dispatcher service.
struct Listener {
  Listener(const tls::Credentials& creds, DispatcherSlot* slot, Service::Leader leader)
      : service(slot, std::move(leader)) {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", tls::ServerCredentials(creds, tls::ClientCerts::kOptional),
                       &port);
    b.RegisterService(&service);
    server = b.BuildAndStart();
  }
  ~Listener() { server->Shutdown(In(absl::Seconds(1))); }
  std::string addr() const { return absl::StrCat("127.0.0.1:", port); }

  Service service;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

class ServiceTest : public ::testing::Test {
 protected:
  ServiceTest()
      : root_(*RootCA::Create("cluster-1", ca::kDefaultRootValidity, absl::Now(), random_)),
        store_(&proposer_) {
    proposer_.set_store(&store_);
    EXPECT_TRUE(store_
                    .Update([&](WriteTx& tx) {
                      api::Cluster c;
                      c.set_id("cluster-1");
                      c.mutable_spec()->mutable_annotations()->set_name("default");
                      c.mutable_root_ca()->set_ca_cert(root_.cert_pem());
                      tx.CreateObject(c);
                      for (const char* id : {"m1", "m2"}) {
                        api::Node m;
                        m.set_id(id);
                        m.set_role(api::NODE_ROLE_MANAGER);
                        m.mutable_manager_status()->set_addr(absl::StrCat(id, ".example:4242"));
                        tx.CreateObject(m);
                      }
                      api::Node n;
                      n.set_id("w1");
                      n.set_role(api::NODE_ROLE_WORKER);
                      tx.CreateObject(n);
                      return absl::OkStatus();
                    })
                    .ok());
    Dispatcher::Options o;
    o.node_id = "m1";
    o.batch_window = absl::Milliseconds(10);
    leader_dispatcher_ = std::make_unique<LeaderDispatcher>(&store_, o, &slot_);
    leader_dispatcher_->Start();
    leader_ =
        std::make_unique<Listener>(Creds("m1", Role::kManager), &slot_, [] { return nullptr; });
    // The follower relays to the leader with its own manager certificate.
    const tls::Credentials m2 = Creds("m2", Role::kManager);
    std::shared_ptr<api::Dispatcher::Stub> to_leader =
        api::Dispatcher::NewStub(grpc::CreateCustomChannel(
            leader_->addr(), tls::ChannelCredentials(m2), tls::ChannelArguments()));
    follower_ = std::make_unique<Listener>(m2, &follower_slot_, [to_leader] { return to_leader; });
  }
  ~ServiceTest() override {
    follower_.reset();
    leader_dispatcher_->Stop();
    leader_.reset();
  }

  tls::Credentials Creds(const std::string& node, Role role) {
    return ca::IssueTestCredentials(root_, node, role, random_);
  }
  std::unique_ptr<api::Dispatcher::Stub> Agent(const std::string& addr,
                                               const tls::Credentials& creds) {
    return api::Dispatcher::NewStub(
        grpc::CreateCustomChannel(addr, tls::ChannelCredentials(creds), tls::ChannelArguments()));
  }
  api::Node GetNode(const std::string& id) {
    store::Ptr<api::Node> n;
    store_.View([&](const store::ReadTx& tx) { n = tx.GetNode(id); });
    return n ? *n : api::Node();
  }
  api::Task GetTask(const std::string& id) {
    store::Ptr<api::Task> t;
    store_.View([&](const store::ReadTx& tx) { t = tx.GetTask(id); });
    return t ? *t : api::Task();
  }
  void Assign(const std::string& task, const std::string& node) {
    ASSERT_TRUE(store_
                    .Update([&](WriteTx& tx) {
                      api::Task t;
                      t.set_id(task);
                      t.set_node_id(node);
                      t.mutable_status()->set_state(api::TASK_STATE_ASSIGNED);
                      t.set_desired_state(api::TASK_STATE_RUNNING);
                      tx.CreateObject(t);
                      return absl::OkStatus();
                    })
                    .ok());
  }

  // An agent's whole session through one manager: session, heartbeat, assignments, a report.
  void RunSession(const std::string& addr, const std::string& node, Role role) {
    auto stub = Agent(addr, Creds(node, role));
    grpc::ClientContext session_ctx;
    session_ctx.set_deadline(In(absl::Seconds(20)));
    api::SessionRequest sreq;
    sreq.mutable_description()->set_hostname("host-" + node);
    auto session = stub->Session(&session_ctx, sreq);
    api::SessionMessage first;
    ASSERT_TRUE(session->Read(&first)) << session->Finish().error_message();
    // The node is the certificate's.
    EXPECT_EQ(first.node().id(), node);
    EXPECT_EQ(first.root_ca(), root_.cert_pem());
    EXPECT_EQ(first.managers_size(), 2);
    EXPECT_EQ(GetNode(node).status().state(), api::NODE_STATE_READY);
    EXPECT_EQ(GetNode(node).status().addr(), "127.0.0.1");
    EXPECT_EQ(GetNode(node).description().hostname(), "host-" + node);

    grpc::ClientContext hctx;
    hctx.set_deadline(In(absl::Seconds(5)));
    api::HeartbeatRequest hreq;
    hreq.set_session_id(first.session_id());
    api::HeartbeatResponse hresp;
    const grpc::Status hs = stub->Heartbeat(&hctx, hreq, &hresp);
    ASSERT_TRUE(hs.ok()) << hs.error_message();
    EXPECT_GE(hresp.period().seconds(), 5);

    grpc::ClientContext actx;
    actx.set_deadline(In(absl::Seconds(20)));
    api::AssignmentsRequest areq;
    areq.set_session_id(first.session_id());
    auto assignments = stub->Assignments(&actx, areq);
    api::AssignmentsMessage m;
    ASSERT_TRUE(assignments->Read(&m));
    EXPECT_EQ(m.type(), api::ASSIGNMENTS_TYPE_COMPLETE);
    const std::string task = "task-" + node;
    Assign(task, node);
    ASSERT_TRUE(assignments->Read(&m));
    EXPECT_EQ(m.type(), api::ASSIGNMENTS_TYPE_INCREMENTAL);
    ASSERT_EQ(m.changes_size(), 1);
    EXPECT_EQ(m.changes(0).assignment().task().id(), task);

    grpc::ClientContext uctx;
    uctx.set_deadline(In(absl::Seconds(5)));
    api::UpdateTaskStatusRequest ureq;
    ureq.set_session_id(first.session_id());
    api::TaskStatusUpdate* u = ureq.add_updates();
    u->set_task_id(task);
    u->mutable_status()->set_state(api::TASK_STATE_ACCEPTED);
    api::UpdateTaskStatusResponse uresp;
    const grpc::Status us = stub->UpdateTaskStatus(&uctx, ureq, &uresp);
    ASSERT_TRUE(us.ok()) << us.error_message();
    // Written when the call returns.
    EXPECT_EQ(GetTask(task).status().state(), api::TASK_STATE_ACCEPTED);
    EXPECT_EQ(GetTask(task).status().applied_by(), "m1");

    session_ctx.TryCancel();
    actx.TryCancel();
    session->Finish();
    assignments->Finish();
  }

  SeededRandom random_{3};
  RootCA root_;
  store::LocalProposer proposer_;
  store::MemoryStore store_;
  DispatcherSlot slot_;
  DispatcherSlot follower_slot_;  // stays empty: that manager does not lead
  std::unique_ptr<LeaderDispatcher> leader_dispatcher_;
  std::unique_ptr<Listener> leader_;
  std::unique_ptr<Listener> follower_;
};

TEST_F(ServiceTest, Session_OnTheLeader) { RunSession(leader_->addr(), "w1", Role::kWorker); }

TEST_F(ServiceTest, Session_ThroughAFollower) {
  RunSession(follower_->addr(), "w1", Role::kWorker);
}

TEST_F(ServiceTest, Session_OfAManagersAgent) {
  RunSession(follower_->addr(), "m2", Role::kManager);
}

TEST_F(ServiceTest, NoCertificate_IsUnauthenticated) {
  tls::Credentials anonymous{root_.cert_pem(), "", ""};
  for (const std::string& addr : {leader_->addr(), follower_->addr()}) {
    auto stub = Agent(addr, anonymous);
    grpc::ClientContext ctx;
    ctx.set_deadline(In(absl::Seconds(5)));
    api::HeartbeatRequest req;
    req.set_session_id("x");
    api::HeartbeatResponse resp;
    EXPECT_EQ(stub->Heartbeat(&ctx, req, &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
}

TEST_F(ServiceTest, UnknownSession_IsNotFoundEverywhere) {
  for (const std::string& addr : {leader_->addr(), follower_->addr()}) {
    auto stub = Agent(addr, Creds("w1", Role::kWorker));
    grpc::ClientContext ctx;
    ctx.set_deadline(In(absl::Seconds(5)));
    api::HeartbeatRequest req;
    req.set_session_id("stale");
    api::HeartbeatResponse resp;
    const grpc::Status s = stub->Heartbeat(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(s.error_message(), kUnknownSessionMessage);
  }
}

TEST_F(ServiceTest, UnknownNode_IsDenied) {
  auto stub = Agent(follower_->addr(), Creds("stranger", Role::kWorker));
  grpc::ClientContext ctx;
  ctx.set_deadline(In(absl::Seconds(5)));
  auto session = stub->Session(&ctx, api::SessionRequest());
  api::SessionMessage m;
  EXPECT_FALSE(session->Read(&m));
  const grpc::Status s = session->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_NE(s.error_message().find("stranger"), std::string::npos);
}

TEST_F(ServiceTest, WorkerCannotSpeakForAnotherNode) {
  auto stub = Agent(leader_->addr(), Creds("w1", Role::kWorker));
  grpc::ClientContext ctx;
  ctx.set_deadline(In(absl::Seconds(5)));
  ctx.AddMetadata(kForwardedNode, "m2");
  ctx.AddMetadata(kForwardedRole, tls::kManagerRole);
  auto session = stub->Session(&ctx, api::SessionRequest());
  api::SessionMessage m;
  EXPECT_FALSE(session->Read(&m));
  EXPECT_EQ(session->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(ServiceTest, LeadershipEnd_EndsSessionsHereAndThroughFollowers) {
  auto direct = Agent(leader_->addr(), Creds("w1", Role::kWorker));
  auto relayed = Agent(follower_->addr(), Creds("m2", Role::kManager));
  grpc::ClientContext c1, c2;
  c1.set_deadline(In(absl::Seconds(20)));
  c2.set_deadline(In(absl::Seconds(20)));
  auto s1 = direct->Session(&c1, api::SessionRequest());
  auto s2 = relayed->Session(&c2, api::SessionRequest());
  api::SessionMessage m;
  ASSERT_TRUE(s1->Read(&m));
  ASSERT_TRUE(s2->Read(&m));
  leader_dispatcher_->Stop();
  EXPECT_FALSE(s1->Read(&m));
  EXPECT_FALSE(s2->Read(&m));
  EXPECT_EQ(s1->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(s2->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  // No dispatcher now: new calls are told to try again.
  grpc::ClientContext c3;
  c3.set_deadline(In(absl::Seconds(5)));
  api::HeartbeatRequest req;
  api::HeartbeatResponse resp;
  EXPECT_EQ(relayed->Heartbeat(&c3, req, &resp).error_code(), grpc::StatusCode::UNAVAILABLE);
}

// Relays end on gRPC's callback threads; the channel they relay through must not lose its last
// reference there. Here each relay holds the only one (a new channel per call), and every other
// gRPC object of the process goes away while the relays are still ending: released on gRPC's
// thread, the channel was the last user of gRPC's callback threads, and the process aborted.
TEST_F(ServiceTest, RelaysEndingAfterEverythingElseStopped_DoNotCrashTheProcess) {
  follower_.reset();
  leader_.reset();
  for (int round = 0; round < 100; ++round) {
    SCOPED_TRACE(round);
    auto leader =
        std::make_unique<Listener>(Creds("m1", Role::kManager), &slot_, [] { return nullptr; });
    const tls::Credentials m2 = Creds("m2", Role::kManager);
    auto follower = std::make_unique<Listener>(m2, &follower_slot_, [addr = leader->addr(), m2] {
      return std::shared_ptr<api::Dispatcher::Stub>(api::Dispatcher::NewStub(
          grpc::CreateCustomChannel(addr, tls::ChannelCredentials(m2), tls::ChannelArguments())));
    });
    {
      auto agent = Agent(follower->addr(), Creds("w1", Role::kWorker));
      grpc::ClientContext ctx;
      ctx.set_deadline(In(absl::Seconds(20)));
      auto session = agent->Session(&ctx, api::SessionRequest());
      api::SessionMessage m;
      ASSERT_TRUE(session->Read(&m));
      grpc::ClientContext hctx;
      hctx.set_deadline(In(absl::Seconds(5)));
      api::HeartbeatRequest hreq;
      hreq.set_session_id(m.session_id());
      api::HeartbeatResponse hresp;
      ASSERT_TRUE(agent->Heartbeat(&hctx, hreq, &hresp).ok());
      ctx.TryCancel();
      session->Finish();
    }
    if (round % 2 == 0) {
      follower.reset();
      leader.reset();
    } else {
      leader.reset();
      follower.reset();
    }
  }
}

}  // namespace
}  // namespace swarm::manager::dispatcher

// The Logs and LogBroker services on loopback with real certificates from the cluster's CA: a
// leader whose broker serves, and a follower relaying clients' and agents' calls to it.
#include "manager/logbroker/service.h"

#include <grpcpp/grpcpp.h>

#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/tls.h"
#include "gtest/gtest.h"
#include "manager/ca/ca.h"
#include "manager/ca/testing.h"

namespace swarm::manager::logbroker {
namespace {

using ca::Role;
using ca::RootCA;
using store::WriteTx;

std::chrono::system_clock::time_point In(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

// One manager's listener with the log services.
struct Listener {
  Listener(const tls::Credentials& creds, BrokerSlot* slot, Leader leader)
      : logs(slot, leader, /*require_manager=*/true), broker(slot, leader) {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", tls::ServerCredentials(creds, tls::ClientCerts::kOptional),
                       &port);
    b.RegisterService(&logs);
    b.RegisterService(&broker);
    server = b.BuildAndStart();
  }
  ~Listener() { server->Shutdown(In(absl::Seconds(1))); }
  std::string addr() const { return absl::StrCat("127.0.0.1:", port); }

  LogsService logs;
  LogBrokerService broker;
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
                      for (const char* id : {"w1", "w2"}) {
                        api::Node n;
                        n.set_id(id);
                        n.set_role(api::NODE_ROLE_WORKER);
                        n.mutable_status()->set_state(api::NODE_STATE_READY);
                        tx.CreateObject(n);
                        api::Task t;
                        t.set_id(absl::StrCat("task-", id));
                        t.set_service_id("svc");
                        t.set_node_id(id);
                        tx.CreateObject(t);
                      }
                      return absl::OkStatus();
                    })
                    .ok());
    leader_broker_ = std::make_unique<LeaderLogBroker>(&store_, LogBroker::Options(), &slot_);
    leader_broker_->Start();
    leader_ =
        std::make_unique<Listener>(Creds("m1", Role::kManager), &slot_, [] { return nullptr; });
    // The follower relays to the leader with its own manager certificate.
    const tls::Credentials m2 = Creds("m2", Role::kManager);
    std::shared_ptr<grpc::Channel> to_leader = grpc::CreateCustomChannel(
        leader_->addr(), tls::ChannelCredentials(m2), tls::ChannelArguments());
    follower_ = std::make_unique<Listener>(m2, &follower_slot_, [to_leader] { return to_leader; });
  }
  ~ServiceTest() override {
    follower_.reset();
    leader_broker_->Stop();
    leader_.reset();
  }

  tls::Credentials Creds(const std::string& node, Role role) {
    return ca::IssueTestCredentials(root_, node, role, random_);
  }
  std::shared_ptr<grpc::Channel> Channel(const std::string& addr, const tls::Credentials& creds) {
    return grpc::CreateCustomChannel(addr, tls::ChannelCredentials(creds), tls::ChannelArguments());
  }
  // Waits until the leader's broker has n listeners.
  void AwaitListeners(size_t n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (slot_.Get()->listeners() != n && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    ASSERT_EQ(slot_.Get()->listeners(), n);
  }

  SeededRandom random_{5};
  RootCA root_;
  store::LocalProposer proposer_;
  store::MemoryStore store_;
  BrokerSlot slot_;
  BrokerSlot follower_slot_;  // stays empty: that manager does not lead
  std::unique_ptr<LeaderLogBroker> leader_broker_;
  std::unique_ptr<Listener> leader_;
  std::unique_ptr<Listener> follower_;
};

// An agent: listens through one manager, and publishes its lines for the first subscription
// it is asked for, then closes its part.
void ServeOne(api::LogBroker::Stub* stub, grpc::ClientReaderInterface<api::SubscriptionMessage>* r,
              const std::string& line) {
  api::SubscriptionMessage sub;
  ASSERT_TRUE(r->Read(&sub));
  grpc::ClientContext ctx;
  ctx.set_deadline(In(absl::Seconds(10)));
  api::PublishLogsResponse resp;
  auto w = stub->PublishLogs(&ctx, &resp);
  api::PublishLogsMessage m;
  m.set_subscription_id(sub.id());
  m.add_messages()->set_data(line);
  ASSERT_TRUE(w->Write(m));
  api::PublishLogsMessage close;
  close.set_subscription_id(sub.id());
  close.set_close(true);
  ASSERT_TRUE(w->Write(close));
  ASSERT_TRUE(w->WritesDone());
  const grpc::Status s = w->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(ServiceTest, SubscribeLogs_ThroughAFollowerReachesAgentsOfEveryManager) {
  // w1's agent uses the follower, w2's the leader; the client reaches the follower.
  auto w1 = api::LogBroker::NewStub(Channel(follower_->addr(), Creds("w1", Role::kWorker)));
  auto w2 = api::LogBroker::NewStub(Channel(leader_->addr(), Creds("w2", Role::kWorker)));
  grpc::ClientContext l1, l2;
  l1.set_deadline(In(absl::Seconds(20)));
  l2.set_deadline(In(absl::Seconds(20)));
  auto r1 = w1->ListenSubscriptions(&l1, api::ListenSubscriptionsRequest());
  auto r2 = w2->ListenSubscriptions(&l2, api::ListenSubscriptionsRequest());
  AwaitListeners(2);

  auto client = api::Logs::NewStub(Channel(follower_->addr(), Creds("m3", Role::kManager)));
  grpc::ClientContext cctx;
  cctx.set_deadline(In(absl::Seconds(20)));
  api::SubscribeLogsRequest req;
  req.mutable_selector()->add_service_ids("svc");
  auto logs = client->SubscribeLogs(&cctx, req);

  std::thread a1([&] { ServeOne(w1.get(), r1.get(), "from w1"); });
  std::thread a2([&] { ServeOne(w2.get(), r2.get(), "from w2"); });
  std::map<std::string, std::string> got;  // node -> line
  api::SubscribeLogsMessage m;
  while (logs->Read(&m)) {
    EXPECT_EQ(m.unavailable_size(), 0) << m.DebugString();
    for (const api::LogMessage& lm : m.messages()) got[lm.context().node_id()] = lm.data();
  }
  const grpc::Status s = logs->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
  a1.join();
  a2.join();
  // The leader's broker saw each agent as its own node, relayed or not.
  EXPECT_EQ(got, (std::map<std::string, std::string>{{"w1", "from w1"}, {"w2", "from w2"}}));

  l1.TryCancel();
  l2.TryCancel();
  r1->Finish();
  r2->Finish();
  AwaitListeners(0);
}

TEST_F(ServiceTest, RelayedListener_LeavingIsSeenByTheLeader) {
  auto w1 = api::LogBroker::NewStub(Channel(follower_->addr(), Creds("w1", Role::kWorker)));
  grpc::ClientContext l1;
  l1.set_deadline(In(absl::Seconds(20)));
  auto r1 = w1->ListenSubscriptions(&l1, api::ListenSubscriptionsRequest());
  AwaitListeners(1);
  l1.TryCancel();
  r1->Finish();
  AwaitListeners(0);
}

TEST_F(ServiceTest, WorkerCannotSpeakForAnotherNode) {
  auto w1 = api::LogBroker::NewStub(Channel(leader_->addr(), Creds("w1", Role::kWorker)));
  grpc::ClientContext ctx;
  ctx.set_deadline(In(absl::Seconds(5)));
  ctx.AddMetadata(kForwardedNode, "w2");
  auto r = w1->ListenSubscriptions(&ctx, api::ListenSubscriptionsRequest());
  api::SubscriptionMessage m;
  EXPECT_FALSE(r->Read(&m));
  EXPECT_EQ(r->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(ServiceTest, RelayedCall_IsNotRelayedAgain) {
  // A manager relaying to the follower (which it took for the leader) is told to try again.
  auto m1 = Channel(follower_->addr(), Creds("m1", Role::kManager));
  auto broker = api::LogBroker::NewStub(m1);
  grpc::ClientContext ctx;
  ctx.set_deadline(In(absl::Seconds(5)));
  ctx.AddMetadata(kForwardedNode, "w1");
  auto r = broker->ListenSubscriptions(&ctx, api::ListenSubscriptionsRequest());
  api::SubscriptionMessage m;
  EXPECT_FALSE(r->Read(&m));
  EXPECT_EQ(r->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);

  auto logs = api::Logs::NewStub(m1);
  grpc::ClientContext lctx;
  lctx.set_deadline(In(absl::Seconds(5)));
  lctx.AddMetadata(kRelayedLogs, "1");
  api::SubscribeLogsRequest req;
  req.mutable_selector()->add_service_ids("svc");
  auto lr = logs->SubscribeLogs(&lctx, req);
  api::SubscribeLogsMessage lm;
  EXPECT_FALSE(lr->Read(&lm));
  EXPECT_EQ(lr->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ServiceTest, LeadershipEnd_EndsStreamsHereAndThroughFollowers) {
  auto direct = api::LogBroker::NewStub(Channel(leader_->addr(), Creds("w2", Role::kWorker)));
  auto relayed = api::LogBroker::NewStub(Channel(follower_->addr(), Creds("w1", Role::kWorker)));
  grpc::ClientContext c1, c2;
  c1.set_deadline(In(absl::Seconds(20)));
  c2.set_deadline(In(absl::Seconds(20)));
  auto r1 = direct->ListenSubscriptions(&c1, api::ListenSubscriptionsRequest());
  auto r2 = relayed->ListenSubscriptions(&c2, api::ListenSubscriptionsRequest());
  AwaitListeners(2);
  leader_broker_->Stop();
  api::SubscriptionMessage m;
  EXPECT_FALSE(r1->Read(&m));
  EXPECT_FALSE(r2->Read(&m));
  EXPECT_EQ(r1->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(r2->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace swarm::manager::logbroker

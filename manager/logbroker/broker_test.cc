#include "manager/logbroker/broker.h"

#include <gtest/gtest.h>

#include <vector>

#include "common/clock.h"
#include "manager/store/store.h"

namespace swarm::manager::logbroker {
namespace {

using store::ReadTx;
using store::WriteTx;

// What a fake client or agent received. The sinks share its state, which outlives the
// recorder: the broker ends what is still open when it stops, after the test body.
template <typename Message>
struct Recorder {
  struct State {
    std::vector<Message> got;
    std::optional<absl::Status> ended;
  };
  std::shared_ptr<State> state = std::make_shared<State>();
  std::vector<Message>& got = state->got;
  std::optional<absl::Status>& ended = state->ended;
  Sink<Message> sink() {
    return Sink<Message>{[st = state](Message m) { st->got.push_back(std::move(m)); },
                         [st = state](absl::Status s) {
                           EXPECT_FALSE(st->ended.has_value()) << "ended twice";
                           st->ended = s;
                         }};
  }
};
using Client = Recorder<api::SubscribeLogsMessage>;
using Agent = Recorder<api::SubscriptionMessage>;

class LogBrokerTest : public ::testing::Test {
 protected:
  LogBrokerTest() : store_(&proposer_, &clock_) {
    proposer_.set_store(&store_);
    LogBroker::Options o;
    o.clock = &clock_;
    o.close_timeout = absl::Seconds(10);
    broker_ = std::make_unique<LogBroker>(&store_, o);
    AddNode("n1", api::NODE_STATE_READY);
    AddNode("n2", api::NODE_STATE_READY);
    AddNode("n3", api::NODE_STATE_DOWN);
    AddTask("t1", "svc", "n1");
    AddTask("t2", "svc", "n2");
    AddTask("t3", "svc", "n3");
    AddTask("t9", "other", "n1");
  }
  void Write(const std::function<void(WriteTx&)>& fn) {
    ASSERT_TRUE(store_
                    .Update([&](WriteTx& tx) {
                      fn(tx);
                      return absl::OkStatus();
                    })
                    .ok());
  }
  void AddNode(const std::string& id, api::NodeState state) {
    api::Node n;
    n.set_id(id);
    n.mutable_status()->set_state(state);
    Write([&](WriteTx& tx) { tx.CreateObject(n); });
  }
  void AddTask(const std::string& id, const std::string& service, const std::string& node) {
    api::Task t;
    t.set_id(id);
    t.set_service_id(service);
    t.set_node_id(node);
    Write([&](WriteTx& tx) { tx.CreateObject(t); });
  }
  api::SubscribeLogsRequest ServiceLogs(const std::string& service, bool follow = false) {
    api::SubscribeLogsRequest req;
    req.mutable_selector()->add_service_ids(service);
    req.mutable_options()->set_follow(follow);
    return req;
  }
  static api::PublishLogsMessage Lines(const std::string& sub, const std::string& task,
                                       std::vector<std::string> lines, bool close) {
    api::PublishLogsMessage m;
    m.set_subscription_id(sub);
    for (const std::string& l : lines) {
      api::LogMessage* lm = m.add_messages();
      lm->mutable_context()->set_task_id(task);
      lm->mutable_context()->set_node_id("forged");
      lm->set_data(l);
    }
    m.set_close(close);
    return m;
  }
  static std::vector<std::string> UnavailableNodes(const Client& c) {
    std::vector<std::string> out;
    for (const auto& m : c.got) {
      for (const auto& u : m.unavailable()) out.push_back(u.node_id());
    }
    return out;
  }
  static std::vector<std::string> Data(const Client& c) {
    std::vector<std::string> out;
    for (const auto& m : c.got) {
      for (const auto& l : m.messages()) out.push_back(l.context().node_id() + ":" + l.data());
    }
    return out;
  }

  FakeClock clock_;
  store::LocalProposer proposer_;
  store::MemoryStore store_;
  std::unique_ptr<LogBroker> broker_;
};

TEST_F(LogBrokerTest, Subscribe_AsksOnlyNodesOfTheSelectedTasks) {
  Agent a1, a2;
  broker_->Listen("n1", a1.sink());
  broker_->Listen("n2", a2.sink());
  Client c;
  auto id = broker_->Subscribe(ServiceLogs("other"), c.sink());
  ASSERT_TRUE(id.ok());
  ASSERT_EQ(a1.got.size(), 1u);
  EXPECT_EQ(a1.got[0].id(), *id);
  EXPECT_EQ(a1.got[0].selector().service_ids(0), "other");
  EXPECT_TRUE(a2.got.empty());
  EXPECT_TRUE(UnavailableNodes(c).empty());
}

TEST_F(LogBrokerTest, Subscribe_ReportsDownAndDisconnectedNodesAtOnce) {
  Agent a1;
  broker_->Listen("n1", a1.sink());
  Client c;
  ASSERT_TRUE(broker_->Subscribe(ServiceLogs("svc"), c.sink()).ok());
  // n2 is READY but not listening; n3 is DOWN.
  EXPECT_EQ(UnavailableNodes(c), (std::vector<std::string>{"n2", "n3"}));
  EXPECT_NE(c.got[0].unavailable(1).reason().find("is down"), std::string::npos);
  EXPECT_FALSE(c.ended.has_value());
}

TEST_F(LogBrokerTest, Subscribe_NodeGoneFromStore) {
  AddTask("t4", "svc2", "gone");
  Client c;
  ASSERT_TRUE(broker_->Subscribe(ServiceLogs("svc2"), c.sink()).ok());
  ASSERT_EQ(UnavailableNodes(c), (std::vector<std::string>{"gone"}));
  EXPECT_NE(c.got[0].unavailable(0).reason().find("gone from the swarm"), std::string::npos);
  // Nothing to wait for: the stream ends.
  ASSERT_TRUE(c.ended.has_value());
  EXPECT_TRUE(c.ended->ok());
}

TEST_F(LogBrokerTest, Subscribe_EmptySelectorIsInvalid) {
  Client c;
  EXPECT_EQ(broker_->Subscribe(api::SubscribeLogsRequest(), c.sink()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LogBrokerTest, Publish_EndsOnceEveryNodeClosed) {
  Agent a1, a2;
  broker_->Listen("n1", a1.sink());
  broker_->Listen("n2", a2.sink());
  Client c;
  auto id = broker_->Subscribe(ServiceLogs("svc"), c.sink());
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(broker_->Publish("n1", Lines(*id, "t1", {"a", "b"}, /*close=*/true)).ok());
  EXPECT_FALSE(c.ended.has_value());
  ASSERT_TRUE(broker_->Publish("n2", Lines(*id, "t2", {"c"}, /*close=*/false)).ok());
  ASSERT_TRUE(broker_->Publish("n2", Lines(*id, "t2", {}, /*close=*/true)).ok());
  ASSERT_TRUE(c.ended.has_value());
  EXPECT_TRUE(c.ended->ok());
  // The node is the publisher, not what the message claimed.
  EXPECT_EQ(Data(c), (std::vector<std::string>{"n1:a", "n1:b", "n2:c"}));
  EXPECT_EQ(broker_->subscriptions(), 0u);
  // Late lines are refused: the agent stops.
  EXPECT_EQ(broker_->Publish("n1", Lines(*id, "t1", {"x"}, false)).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(LogBrokerTest, Publish_FromANodeNotAskedIsRefused) {
  Agent a1;
  broker_->Listen("n1", a1.sink());
  Client c;
  auto id = broker_->Subscribe(ServiceLogs("other"), c.sink());
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(broker_->Publish("n2", Lines(*id, "t2", {"x"}, false)).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(LogBrokerTest, Tick_EndsAtTheDeadlineNamingTheSilentNode) {
  Agent a1, a2;
  broker_->Listen("n1", a1.sink());
  broker_->Listen("n2", a2.sink());
  Client c;
  auto id = broker_->Subscribe(ServiceLogs("svc"), c.sink());
  ASSERT_TRUE(broker_->Publish("n1", Lines(*id, "t1", {"a"}, /*close=*/true)).ok());
  clock_.Advance(absl::Seconds(9));
  broker_->Tick();
  EXPECT_FALSE(c.ended.has_value());
  clock_.Advance(absl::Seconds(1));
  broker_->Tick();
  ASSERT_TRUE(c.ended.has_value());
  const std::vector<std::string> missing = UnavailableNodes(c);
  EXPECT_EQ(missing, (std::vector<std::string>{"n3", "n2"}));
  EXPECT_NE(c.got.back().unavailable(0).reason().find("within 10s"), std::string::npos);
}

TEST_F(LogBrokerTest, StopListening_ReportsTheNodeAndEnds) {
  Agent a1;
  const uint64_t token = broker_->Listen("n1", a1.sink());
  Client c;
  ASSERT_TRUE(broker_->Subscribe(ServiceLogs("other"), c.sink()).ok());
  broker_->StopListening("n1", token);
  EXPECT_EQ(UnavailableNodes(c), (std::vector<std::string>{"n1"}));
  ASSERT_TRUE(c.ended.has_value());
}

TEST_F(LogBrokerTest, PublishEnded_WithoutCloseReportsTheNode) {
  Agent a1;
  broker_->Listen("n1", a1.sink());
  Client c;
  auto id = broker_->Subscribe(ServiceLogs("other"), c.sink());
  broker_->PublishEnded("n1", *id);
  EXPECT_EQ(UnavailableNodes(c), (std::vector<std::string>{"n1"}));
  ASSERT_TRUE(c.ended.has_value());
}

TEST_F(LogBrokerTest, Follow_LastsUntilUnsubscribeWhichClosesTheNodes) {
  Agent a1, a2;
  broker_->Listen("n1", a1.sink());
  broker_->Listen("n2", a2.sink());
  Client c;
  auto id = broker_->Subscribe(ServiceLogs("svc", /*follow=*/true), c.sink());
  ASSERT_TRUE(broker_->Publish("n1", Lines(*id, "t1", {"a"}, /*close=*/true)).ok());
  clock_.Advance(absl::Hours(1));
  broker_->Tick();
  EXPECT_FALSE(c.ended.has_value());
  ASSERT_TRUE(broker_->Publish("n2", Lines(*id, "t2", {"b"}, false)).ok());
  EXPECT_EQ(Data(c), (std::vector<std::string>{"n1:a", "n2:b"}));
  broker_->Unsubscribe(*id);
  // Only the node still publishing is told to stop.
  EXPECT_EQ(a1.got.size(), 1u);
  ASSERT_EQ(a2.got.size(), 2u);
  EXPECT_TRUE(a2.got[1].close());
  EXPECT_EQ(broker_->subscriptions(), 0u);
}

TEST_F(LogBrokerTest, Listen_NewerListenerReplacesOlder) {
  Agent old_l, new_l;
  const uint64_t t1 = broker_->Listen("n1", old_l.sink());
  broker_->Listen("n1", new_l.sink());
  ASSERT_TRUE(old_l.ended.has_value());
  // The old stream's end does not remove the new listener.
  broker_->StopListening("n1", t1);
  Client c;
  ASSERT_TRUE(broker_->Subscribe(ServiceLogs("other"), c.sink()).ok());
  EXPECT_EQ(new_l.got.size(), 1u);
}

}  // namespace
}  // namespace swarm::manager::logbroker

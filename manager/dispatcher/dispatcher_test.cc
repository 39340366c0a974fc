// The dispatcher over a real store (LocalProposer) and a FakeClock, its steps driven by the
// test (no threads) except where a test says otherwise.
#include "manager/dispatcher/dispatcher.h"

#include <atomic>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/proto_time.h"
#include "gtest/gtest.h"

namespace swarm::manager::dispatcher {
namespace {

using store::ReadTx;
using store::WriteTx;

constexpr char kRootPem[] = "-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n";

// Records what the dispatcher sends; Busy when the test says so.
template <typename Message>
class FakeStream final : public Stream<Message> {
 public:
  void Send(Message m) override {
    absl::MutexLock lock(&mu_);
    sent_.push_back(std::move(m));
  }
  bool Busy() const override { return busy_; }
  void End(absl::Status s) override {
    absl::MutexLock lock(&mu_);
    if (!ended_) ended_ = s;
  }
  std::vector<Message> sent() const {
    absl::MutexLock lock(&mu_);
    return sent_;
  }
  std::optional<absl::Status> ended() const {
    absl::MutexLock lock(&mu_);
    return ended_;
  }
  std::atomic<bool> busy_{false};

 private:
  mutable absl::Mutex mu_;
  std::vector<Message> sent_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> ended_ ABSL_GUARDED_BY(mu_);
};
using FakeSession = FakeStream<api::SessionMessage>;
using FakeAssignments = FakeStream<api::AssignmentsMessage>;

// A proposer that lets a test slip another writer's transaction in before the next one.
class RacingProposer final : public store::Proposer {
 public:
  void set_store(store::MemoryStore* s) { local_.set_store(s); }
  void Propose(std::string data, std::function<void(absl::StatusOr<uint64_t>)> done) override {
    std::function<void()> race = std::move(before_next_);
    before_next_ = nullptr;
    if (race) race();
    ++proposals_;
    local_.Propose(std::move(data), std::move(done));
  }
  std::function<void()> before_next_;
  int proposals_ = 0;

 private:
  store::LocalProposer local_;
};

api::Task NewTask(const std::string& id, const std::string& node, api::TaskState state) {
  api::Task t;
  t.set_id(id);
  t.set_node_id(node);
  t.mutable_status()->set_state(state);
  t.set_desired_state(api::TASK_STATE_RUNNING);
  t.mutable_spec()->mutable_container()->set_image("nginx");
  return t;
}

api::TaskStatusUpdate Report(const std::string& task, api::TaskState state, absl::Time at) {
  api::TaskStatusUpdate u;
  u.set_task_id(task);
  u.mutable_status()->set_state(state);
  *u.mutable_status()->mutable_timestamp() = ToTimestamp(at);
  return u;
}

class DispatcherTest : public ::testing::Test {
 protected:
  DispatcherTest() : store_(&proposer_, &clock_) {
    proposer_.set_store(&store_);
    Write([](WriteTx& tx) {
      api::Cluster c;
      c.set_id("cluster");
      c.mutable_spec()->mutable_annotations()->set_name("default");
      c.mutable_root_ca()->set_ca_cert(kRootPem);
      tx.CreateObject(c);
      api::Node m;
      m.set_id("m1");
      m.set_role(api::NODE_ROLE_MANAGER);
      m.mutable_manager_status()->set_addr("10.0.0.1:4242");
      m.mutable_status()->set_state(api::NODE_STATE_READY);
      tx.CreateObject(m);
      for (const char* id : {"n1", "n2", "n3"}) {
        api::Node n;
        n.set_id(id);
        n.set_role(api::NODE_ROLE_WORKER);
        tx.CreateObject(n);
      }
    });
  }
  ~DispatcherTest() override {
    if (d_) d_->Stop();
  }

  Dispatcher::Options Defaults() {
    Dispatcher::Options o;
    o.node_id = "m1";
    o.clock = &clock_;
    o.random = &random_;
    o.threads = false;
    return o;
  }
  void Start(Dispatcher::Options o) {
    d_ = std::make_unique<Dispatcher>(&store_, o);
    d_->Start();
  }
  void Start() { Start(Defaults()); }

  void Write(const std::function<void(WriteTx&)>& fn) {
    ASSERT_TRUE(store_
                    .Update([&](WriteTx& tx) {
                      fn(tx);
                      return absl::OkStatus();
                    })
                    .ok());
  }
  api::Node GetNode(const std::string& id) {
    store::Ptr<api::Node> n;
    store_.View([&](const ReadTx& tx) { n = tx.GetNode(id); });
    return n ? *n : api::Node();
  }
  api::Task GetTask(const std::string& id) {
    store::Ptr<api::Task> t;
    store_.View([&](const ReadTx& tx) { t = tx.GetTask(id); });
    return t ? *t : api::Task();
  }
  // All the steps of the threads, once.
  void Step() {
    d_->ProcessEvents();
    d_->ExpireHeartbeats();
    d_->FlushWrites();
    d_->ProcessEvents();
    d_->FlushAssignments();
  }
  // Opens a session for node and returns its ID (after the first message).
  std::string Open(const std::string& node, std::shared_ptr<FakeSession>* stream = nullptr) {
    auto s = std::make_shared<FakeSession>();
    api::NodeDescription desc;
    desc.set_hostname("host-" + node);
    EXPECT_TRUE(d_->OpenSession(node, "192.168.1.7", desc, s).ok());
    Step();
    EXPECT_FALSE(s->sent().empty());
    if (stream) *stream = s;
    return s->sent().empty() ? "" : s->sent().front().session_id();
  }
  absl::Status Update(const std::string& node, const std::string& session,
                      std::vector<api::TaskStatusUpdate> updates, bool flush = true) {
    api::UpdateTaskStatusRequest req;
    req.set_session_id(session);
    for (auto& u : updates) *req.add_updates() = u;
    auto result = std::make_shared<std::optional<absl::Status>>();
    d_->UpdateTaskStatus(node, req, [result](absl::Status s) { *result = s; });
    if (flush) d_->FlushWrites();
    return result->value_or(absl::UnknownError("not answered"));
  }

  FakeClock clock_;
  SeededRandom random_{7};
  RacingProposer proposer_;
  store::MemoryStore store_;
  std::unique_ptr<Dispatcher> d_;
};

// ---- sessions ----

TEST_F(DispatcherTest, OpenSession_MarksReadyAndSendsTheSession) {
  Start();
  std::shared_ptr<FakeSession> s;
  const std::string id = Open("n1", &s);
  EXPECT_FALSE(id.empty());
  const api::Node n = GetNode("n1");
  EXPECT_EQ(n.status().state(), api::NODE_STATE_READY);
  EXPECT_EQ(n.status().addr(), "192.168.1.7");
  EXPECT_EQ(n.description().hostname(), "host-n1");

  ASSERT_EQ(s->sent().size(), 1u);
  const api::SessionMessage m = s->sent()[0];
  EXPECT_EQ(m.node().id(), "n1");
  EXPECT_EQ(m.node().status().state(), api::NODE_STATE_READY);
  ASSERT_EQ(m.managers_size(), 1);
  EXPECT_EQ(m.managers(0).peer().node_id(), "m1");
  EXPECT_EQ(m.managers(0).peer().addr(), "10.0.0.1:4242");
  EXPECT_EQ(m.managers(0).weight(), Dispatcher::kManagerWeight);
  EXPECT_EQ(m.root_ca(), kRootPem);
  EXPECT_EQ(d_->sessions(), 1u);
}

TEST_F(DispatcherTest, OpenSession_UnknownNodeIsDenied) {
  Start();
  const absl::Status s = d_->OpenSession("ghost", "1.2.3.4", {}, std::make_shared<FakeSession>());
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("not part of this swarm"), std::string::npos) << s;
}

TEST_F(DispatcherTest, NewerSession_ReplacesTheOlder) {
  Start();
  std::shared_ptr<FakeSession> first, second;
  const std::string a = Open("n1", &first);
  auto assignments = std::make_shared<FakeAssignments>();
  ASSERT_TRUE(d_->OpenAssignments("n1", a, assignments).ok());
  const std::string b = Open("n1", &second);
  EXPECT_NE(a, b);
  ASSERT_TRUE(first->ended().has_value());
  EXPECT_EQ(first->ended()->code(), absl::StatusCode::kAborted);
  ASSERT_TRUE(assignments->ended().has_value());
  EXPECT_FALSE(second->ended().has_value());
  EXPECT_EQ(d_->Heartbeat("n1", a).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(d_->Heartbeat("n1", b).ok());
  // Another node cannot use it.
  EXPECT_EQ(d_->Heartbeat("n2", b).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(DispatcherTest, ManagerListChange_SendsAnotherSessionMessage) {
  Start();
  std::shared_ptr<FakeSession> s;
  Open("n1", &s);
  Write([](WriteTx& tx) {
    api::Node m;
    m.set_id("m2");
    m.set_role(api::NODE_ROLE_MANAGER);
    m.mutable_manager_status()->set_addr("10.0.0.2:4242");
    tx.CreateObject(m);
  });
  Step();
  ASSERT_EQ(s->sent().size(), 2u);
  EXPECT_EQ(s->sent()[1].managers_size(), 2);
  EXPECT_EQ(s->sent()[1].session_id(), s->sent()[0].session_id());
  // A change that does not concern sessions sends nothing.
  Write([](WriteTx& tx) {
    api::Node m = *tx.GetNode("m2");
    m.mutable_manager_status()->set_reachability(api::REACHABILITY_REACHABLE);
    tx.UpdateObject(m);
  });
  Step();
  EXPECT_EQ(s->sent().size(), 2u);
}

TEST_F(DispatcherTest, NodeChange_SendsTheNodeAgain) {
  Start();
  std::shared_ptr<FakeSession> s;
  Open("n1", &s);
  Write([](WriteTx& tx) {
    api::Node n = *tx.GetNode("n1");
    n.mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
    tx.UpdateObject(n);
  });
  Step();
  ASSERT_EQ(s->sent().size(), 2u);
  EXPECT_EQ(s->sent()[1].node().spec().availability(), api::NODE_AVAILABILITY_DRAIN);
}

TEST_F(DispatcherTest, NodeRemoved_EndsItsSession) {
  Start();
  std::shared_ptr<FakeSession> s;
  const std::string id = Open("n1", &s);
  Write([](WriteTx& tx) {
    api::Node n;
    n.set_id("n1");
    tx.RemoveObject(n);
  });
  Step();
  ASSERT_TRUE(s->ended().has_value());
  EXPECT_EQ(s->ended()->code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(d_->Heartbeat("n1", id).status().code(), absl::StatusCode::kNotFound);
}

// ---- heartbeats ----

TEST_F(DispatcherTest, Heartbeat_UnknownSessionIsNotFound) {
  Start();
  const auto r = d_->Heartbeat("n1", "nope");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), kUnknownSessionMessage);
}

TEST_F(DispatcherTest, Heartbeat_ReturnsTheClusterPeriodWithJitter) {
  Write([](WriteTx& tx) {
    api::Cluster c = *tx.GetCluster("cluster");
    c.mutable_spec()->mutable_dispatcher()->mutable_heartbeat_period()->set_seconds(2);
    tx.UpdateObject(c);
  });
  Start();
  const std::string id = Open("n1");
  std::set<absl::Duration> seen;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<absl::Duration> p = d_->Heartbeat("n1", id);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_GE(*p, absl::Seconds(2));
    EXPECT_LT(*p, absl::Seconds(2) * (1 + Dispatcher::kJitterFraction));
    seen.insert(*p);
  }
  EXPECT_GT(seen.size(), 1u);
}

TEST_F(DispatcherTest, MissedHeartbeats_MarkDownAfterTheGraceAndNotBefore) {
  Start();
  std::shared_ptr<FakeSession> s;
  const std::string id = Open("n1", &s);
  const absl::Duration grace = Dispatcher::kDefaultHeartbeatPeriod * Dispatcher::kGraceMultiplier;
  // Heartbeats keep it up, however long.
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(grace - absl::Seconds(1));
    Step();
    ASSERT_TRUE(d_->Heartbeat("n1", id).ok());
  }
  clock_.Advance(grace - absl::Milliseconds(1));
  Step();
  EXPECT_EQ(GetNode("n1").status().state(), api::NODE_STATE_READY);
  EXPECT_FALSE(s->ended().has_value());

  clock_.Advance(absl::Milliseconds(1));
  Step();
  const api::Node n = GetNode("n1");
  EXPECT_EQ(n.status().state(), api::NODE_STATE_DOWN);
  EXPECT_EQ(n.status().message(), "heartbeat failure");
  ASSERT_TRUE(s->ended().has_value());
  EXPECT_EQ(s->ended()->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(d_->Heartbeat("n1", id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(d_->sessions(), 0u);

  // It comes back with a new session.
  Open("n1");
  EXPECT_EQ(GetNode("n1").status().state(), api::NODE_STATE_READY);
  EXPECT_TRUE(GetNode("n1").status().message().empty());
}

TEST_F(DispatcherTest, LeadershipStart_GivesEveryNodeAFullGrace) {
  Write([](WriteTx& tx) {
    for (const char* id : {"n1", "n2"}) {
      api::Node n = *tx.GetNode(id);
      n.mutable_status()->set_state(api::NODE_STATE_READY);
      tx.UpdateObject(n);
    }
    api::Node n3 = *tx.GetNode("n3");
    n3.mutable_status()->set_state(api::NODE_STATE_DOWN);
    n3.mutable_status()->set_message("earlier");
    tx.UpdateObject(n3);
  });
  const uint64_t n3_version = GetNode("n3").meta().version().index();
  // The agents were heartbeating the previous leader; they need a moment to come over.
  clock_.Advance(absl::Hours(1));
  Start();
  const absl::Duration grace = Dispatcher::kDefaultHeartbeatPeriod * Dispatcher::kGraceMultiplier;
  clock_.Advance(grace - absl::Seconds(1));
  Step();
  EXPECT_EQ(GetNode("n1").status().state(), api::NODE_STATE_READY);
  EXPECT_EQ(GetNode("n2").status().state(), api::NODE_STATE_READY);
  const std::string id = Open("n1");  // came over in time

  clock_.Advance(absl::Seconds(2));
  Step();
  EXPECT_EQ(GetNode("n1").status().state(), api::NODE_STATE_READY);
  EXPECT_EQ(GetNode("n2").status().state(), api::NODE_STATE_DOWN);
  EXPECT_EQ(GetNode("n2").status().message(), "heartbeat failure");
  // Already down: not written again.
  EXPECT_EQ(GetNode("n3").meta().version().index(), n3_version);
  EXPECT_EQ(GetNode("n3").status().message(), "earlier");
  // The managers' node too had no session (m1 is READY in the store).
  EXPECT_EQ(GetNode("m1").status().state(), api::NODE_STATE_DOWN);
}

TEST_F(DispatcherTest, JoinedNode_GetsAGraceToOpenItsSession) {
  Start();
  Write([](WriteTx& tx) {
    api::Node n;
    n.set_id("n9");
    tx.CreateObject(n);
  });
  const absl::Duration grace = Dispatcher::kDefaultHeartbeatPeriod * Dispatcher::kGraceMultiplier;
  clock_.Advance(absl::Seconds(10));
  Step();
  clock_.Advance(grace - absl::Seconds(1));
  Step();
  EXPECT_NE(GetNode("n9").status().state(), api::NODE_STATE_DOWN);
  clock_.Advance(absl::Seconds(1));
  Step();
  EXPECT_EQ(GetNode("n9").status().state(), api::NODE_STATE_DOWN);
}

TEST_F(DispatcherTest, Reconnect_OfAReadyNodeWritesNothing) {
  Start();
  Open("n1");
  const uint64_t version = GetNode("n1").meta().version().index();
  Open("n1");
  EXPECT_EQ(GetNode("n1").meta().version().index(), version);
}

// ---- task status ----

class TaskStatusTest : public DispatcherTest {
 protected:
  void SetUp() override {
    Write([](WriteTx& tx) {
      for (int i = 0; i < 300; ++i) {
        tx.CreateObject(
            NewTask(absl::StrCat("t", i), i % 2 ? "n2" : "n1", api::TASK_STATE_ASSIGNED));
      }
    });
  }
};

TEST_F(TaskStatusTest, Reports_AreBatchedIntoFewTransactions) {
  Start();
  const std::string s1 = Open("n1");
  const std::string s2 = Open("n2");
  const absl::Time at = clock_.Now();
  const int before = proposer_.proposals_;
  // Many calls, several reports of each task: one transaction for all.
  std::vector<std::shared_ptr<std::optional<absl::Status>>> results;
  for (int round = 0; round < 3; ++round) {
    const api::TaskState state =
        round == 0 ? api::TASK_STATE_ACCEPTED
                   : (round == 1 ? api::TASK_STATE_PREPARING : api::TASK_STATE_RUNNING);
    // Tasks t<even> are n1's, t<odd> n2's; 10 reports a call.
    for (int i = 0; i < 300; i += 20) {
      for (int parity = 0; parity < 2; ++parity) {
        const std::string node = parity ? "n2" : "n1";
        api::UpdateTaskStatusRequest req;
        req.set_session_id(parity ? s2 : s1);
        for (int j = i + parity; j < i + 20; j += 2) {
          *req.add_updates() = Report(absl::StrCat("t", j), state, at + absl::Seconds(round));
        }
        auto r = std::make_shared<std::optional<absl::Status>>();
        results.push_back(r);
        d_->UpdateTaskStatus(node, req, [r](absl::Status s) { *r = s; });
      }
    }
  }
  for (const auto& r : results) EXPECT_FALSE(r->has_value());  // not before the write
  d_->FlushWrites();
  EXPECT_EQ(proposer_.proposals_ - before, 1);
  for (const auto& r : results) {
    ASSERT_TRUE(r->has_value());
    EXPECT_TRUE((*r)->ok()) << **r;
  }
  const api::Task t = GetTask("t7");
  EXPECT_EQ(t.status().state(), api::TASK_STATE_RUNNING);
  EXPECT_EQ(t.status().applied_by(), "m1");
  EXPECT_EQ(FromTimestamp(t.status().applied_at()), clock_.Now());
}

TEST_F(TaskStatusTest, Reports_AreSplitIntoTransactionsOfBoundedSize) {
  Dispatcher::Options o = Defaults();
  o.max_writes_per_transaction = 100;
  Start(o);
  const std::string s1 = Open("n1");
  std::vector<api::TaskStatusUpdate> updates;
  for (int i = 0; i < 300; i += 2) {
    updates.push_back(Report(absl::StrCat("t", i), api::TASK_STATE_ACCEPTED, clock_.Now()));
  }
  const int before = proposer_.proposals_;
  EXPECT_TRUE(Update("n1", s1, updates).ok());
  EXPECT_EQ(proposer_.proposals_ - before, 2);  // 150 writes
  EXPECT_EQ(GetTask("t298").status().state(), api::TASK_STATE_ACCEPTED);
}

TEST_F(TaskStatusTest, BackwardsAndForeignReports_AreIgnored) {
  Start();
  const std::string s1 = Open("n1");
  const std::string s2 = Open("n2");
  const absl::Time at = clock_.Now();
  ASSERT_TRUE(Update("n1", s1, {Report("t0", api::TASK_STATE_RUNNING, at)}).ok());
  const uint64_t version = GetTask("t0").meta().version().index();
  // Backwards, a state only managers set, and another node's task: ignored, and the call
  // still succeeds (the agent must not retry them).
  EXPECT_TRUE(Update("n1", s1,
                     {Report("t0", api::TASK_STATE_STARTING, at + absl::Seconds(1)),
                      Report("t0", api::TASK_STATE_ORPHANED, at + absl::Seconds(1)),
                      Report("t1", api::TASK_STATE_FAILED, at + absl::Seconds(1)),
                      Report("missing", api::TASK_STATE_FAILED, at)})
                  .ok());
  EXPECT_EQ(GetTask("t0").meta().version().index(), version);
  EXPECT_EQ(GetTask("t0").status().state(), api::TASK_STATE_RUNNING);
  EXPECT_EQ(GetTask("t1").status().state(), api::TASK_STATE_ASSIGNED);
  // Terminal stays terminal.
  ASSERT_TRUE(Update("n1", s1, {Report("t0", api::TASK_STATE_FAILED, at + absl::Seconds(2))}).ok());
  ASSERT_TRUE(
      Update("n1", s1, {Report("t0", api::TASK_STATE_RUNNING, at + absl::Seconds(3))}).ok());
  EXPECT_EQ(GetTask("t0").status().state(), api::TASK_STATE_FAILED);
}

TEST_F(TaskStatusTest, UnknownSession_FailsTheCall) {
  Start();
  Open("n1");
  const absl::Status s =
      Update("n1", "stale", {Report("t0", api::TASK_STATE_RUNNING, clock_.Now())});
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(GetTask("t0").status().state(), api::TASK_STATE_ASSIGNED);
}

TEST_F(TaskStatusTest, Flooding_IsRefusedUntilTheNodeSlowsDown) {
  Dispatcher::Options o = Defaults();
  o.updates_per_second = 10;
  o.update_burst = 20;
  Start(o);
  const std::string s1 = Open("n1");
  std::vector<api::TaskStatusUpdate> batch;
  for (int i = 0; i < 20; i += 2)
    batch.push_back(Report(absl::StrCat("t", i), api::TASK_STATE_ACCEPTED, clock_.Now()));
  EXPECT_TRUE(Update("n1", s1, batch).ok());
  EXPECT_TRUE(Update("n1", s1, batch).ok());  // same again: ignored, but counted
  const absl::Status s = Update("n1", s1, {batch[0]});
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  // Another node is not affected.
  const std::string s2 = Open("n2");
  EXPECT_TRUE(Update("n2", s2, {Report("t1", api::TASK_STATE_ACCEPTED, clock_.Now())}).ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(Update("n1", s1, batch).ok());
}

TEST_F(TaskStatusTest, LostRace_IsRetriedWithFreshReads) {
  Start();
  const std::string s1 = Open("n1");
  // The orchestrator writes t0 between the dispatcher's read and its proposal.
  proposer_.before_next_ = [this] {
    Write([](WriteTx& tx) {
      api::Task t = *tx.GetTask("t0");
      t.set_desired_state(api::TASK_STATE_SHUTDOWN);
      tx.UpdateObject(t);
    });
  };
  EXPECT_TRUE(Update("n1", s1,
                     {Report("t0", api::TASK_STATE_RUNNING, clock_.Now()),
                      Report("t2", api::TASK_STATE_RUNNING, clock_.Now())})
                  .ok());
  const api::Task t = GetTask("t0");
  EXPECT_EQ(t.status().state(), api::TASK_STATE_RUNNING);
  EXPECT_EQ(t.desired_state(), api::TASK_STATE_SHUTDOWN);  // the other write stands
  EXPECT_EQ(GetTask("t2").status().state(), api::TASK_STATE_RUNNING);
}

// ---- assignments ----

TEST_F(DispatcherTest, Assignments_CompleteThenIncremental) {
  Write([](WriteTx& tx) {
    api::Secret s;
    s.set_id("s1");
    s.mutable_spec()->mutable_annotations()->set_name("s1");
    s.mutable_spec()->set_data("hush");
    tx.CreateObject(s);
    tx.CreateObject(NewTask("t1", "n1", api::TASK_STATE_RUNNING));
  });
  Start();
  const std::string id = Open("n1");
  auto a = std::make_shared<FakeAssignments>();
  EXPECT_EQ(d_->OpenAssignments("n1", "stale", a).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(d_->OpenAssignments("n1", id, a).ok());
  Step();
  ASSERT_EQ(a->sent().size(), 1u);
  EXPECT_EQ(a->sent()[0].type(), api::ASSIGNMENTS_TYPE_COMPLETE);
  ASSERT_EQ(a->sent()[0].changes_size(), 1);
  EXPECT_EQ(a->sent()[0].changes(0).assignment().task().id(), "t1");

  // Another node's task: nothing for n1.
  Write([](WriteTx& tx) { tx.CreateObject(NewTask("t2", "n2", api::TASK_STATE_ASSIGNED)); });
  Step();
  EXPECT_EQ(a->sent().size(), 1u);

  // Assigned, with a secret.
  Write([](WriteTx& tx) {
    api::Task t = NewTask("t3", "n1", api::TASK_STATE_ASSIGNED);
    t.mutable_spec()->mutable_container()->add_secrets()->set_secret_id("s1");
    tx.CreateObject(t);
  });
  Step();
  ASSERT_EQ(a->sent().size(), 2u);
  const api::AssignmentsMessage m = a->sent()[1];
  EXPECT_EQ(m.type(), api::ASSIGNMENTS_TYPE_INCREMENTAL);
  EXPECT_EQ(m.applies_to(), a->sent()[0].results_in());
  ASSERT_EQ(m.changes_size(), 2);
  EXPECT_EQ(m.changes(0).assignment().secret().spec().data(), "hush");
  EXPECT_EQ(m.changes(1).assignment().task().id(), "t3");

  // The secret changes: sent again.
  Write([](WriteTx& tx) {
    api::Secret s = *tx.GetSecret("s1");
    (*s.mutable_spec()->mutable_annotations()->mutable_labels())["a"] = "b";
    tx.UpdateObject(s);
  });
  Step();
  ASSERT_EQ(a->sent().size(), 3u);
  EXPECT_TRUE(a->sent()[2].changes(0).assignment().has_secret());

  // Moved to another node: removed, with its secret.
  Write([](WriteTx& tx) {
    api::Task t = *tx.GetTask("t3");
    t.set_node_id("n2");
    tx.UpdateObject(t);
  });
  Step();
  ASSERT_EQ(a->sent().size(), 4u);
  ASSERT_EQ(a->sent()[3].changes_size(), 2);
  EXPECT_EQ(a->sent()[3].changes(0).action(), api::ASSIGNMENT_ACTION_REMOVE);
  EXPECT_EQ(a->sent()[3].changes(0).assignment().task().id(), "t3");
  EXPECT_EQ(a->sent()[3].changes(1).assignment().secret().id(), "s1");
}

TEST_F(DispatcherTest, Assignments_WaitWhileTheStreamWritesAndCoalesce) {
  Start();
  const std::string id = Open("n1");
  auto a = std::make_shared<FakeAssignments>();
  ASSERT_TRUE(d_->OpenAssignments("n1", id, a).ok());
  Step();
  ASSERT_EQ(a->sent().size(), 1u);
  a->busy_ = true;
  Write([](WriteTx& tx) { tx.CreateObject(NewTask("t1", "n1", api::TASK_STATE_ASSIGNED)); });
  Step();
  Write([](WriteTx& tx) { tx.CreateObject(NewTask("t2", "n1", api::TASK_STATE_ASSIGNED)); });
  Step();
  EXPECT_EQ(a->sent().size(), 1u);
  a->busy_ = false;
  Step();
  ASSERT_EQ(a->sent().size(), 2u);
  EXPECT_EQ(a->sent()[1].changes_size(), 2);
}

// What a message says, as "u:network:ingress", "r:endpoint:ingress/lb-n2", in order.
std::vector<std::string> Changes(const api::AssignmentsMessage& m) {
  std::vector<std::string> out;
  for (const api::AssignmentChange& c : m.changes()) {
    std::string s = c.action() == api::ASSIGNMENT_ACTION_UPDATE ? "u:" : "r:";
    const api::Assignment& a = c.assignment();
    if (a.has_task()) s += "task:" + a.task().id();
    if (a.has_network()) s += "network:" + a.network().id();
    if (a.has_endpoint_record()) {
      s += "endpoint:" + a.endpoint_record().network_id() + "/" + a.endpoint_record().task_id();
    }
    out.push_back(s);
  }
  return out;
}

TEST_F(DispatcherTest, Assignments_IngressSandboxesReachEveryNodeOfTheMesh) {
  auto attach = [this](const std::string& node, const std::string& ip) {
    Write([&](WriteTx& tx) {
      api::Node n = *tx.GetNode(node);
      n.clear_attachments();
      api::NetworkAttachment* a = n.add_attachments();
      a->mutable_network()->set_id("ingress");
      a->add_addresses(ip);
      tx.UpdateObject(n);
    });
  };
  Write([](WriteTx& tx) {
    api::Network in;
    in.set_id("ingress");
    in.mutable_spec()->mutable_annotations()->set_name("ingress");
    in.mutable_spec()->set_ingress(true);
    tx.CreateObject(in);
  });
  attach("n1", "10.0.0.2/24");
  Start();
  auto a1 = std::make_shared<FakeAssignments>();
  auto a2 = std::make_shared<FakeAssignments>();
  ASSERT_TRUE(d_->OpenAssignments("n1", Open("n1"), a1).ok());
  ASSERT_TRUE(d_->OpenAssignments("n2", Open("n2"), a2).ok());
  Step();
  ASSERT_EQ(a1->sent().size(), 1u);
  EXPECT_EQ(Changes(a1->sent()[0]),
            (std::vector<std::string>{"u:network:ingress", "u:endpoint:ingress/lb-n1"}));
  ASSERT_EQ(a2->sent().size(), 1u);
  EXPECT_TRUE(a2->sent()[0].changes().empty());

  // The allocator gives n2 its address: n2 joins the mesh, n1 learns of n2's sandbox.
  attach("n2", "10.0.0.3/24");
  Step();
  ASSERT_EQ(a2->sent().size(), 2u);
  EXPECT_EQ(Changes(a2->sent()[1]),
            (std::vector<std::string>{"u:network:ingress", "u:endpoint:ingress/lb-n1",
                                      "u:endpoint:ingress/lb-n2"}));
  ASSERT_EQ(a1->sent().size(), 2u);
  EXPECT_EQ(Changes(a1->sent()[1]), std::vector<std::string>{"u:endpoint:ingress/lb-n2"});
  EXPECT_EQ(a1->sent()[1].changes(0).assignment().endpoint_record().node_addr(), "192.168.1.7");

  // n2 reconnects from another address: n1's record of its sandbox follows.
  api::NodeDescription desc;
  desc.set_hostname("host-n2");
  auto s2 = std::make_shared<FakeSession>();
  ASSERT_TRUE(d_->OpenSession("n2", "192.168.1.9", desc, s2).ok());
  Step();
  ASSERT_EQ(a1->sent().size(), 3u);
  EXPECT_EQ(Changes(a1->sent()[2]), std::vector<std::string>{"u:endpoint:ingress/lb-n2"});
  EXPECT_EQ(a1->sent()[2].changes(0).assignment().endpoint_record().node_addr(), "192.168.1.9");

  // node rm: its sandbox goes from n1's mesh.
  Write([](WriteTx& tx) { tx.RemoveObject(*tx.GetNode("n2")); });
  Step();
  ASSERT_EQ(a1->sent().size(), 4u);
  EXPECT_EQ(Changes(a1->sent()[3]), std::vector<std::string>{"r:endpoint:ingress/lb-n2"});
}

TEST_F(DispatcherTest, Stop_EndsStreamsAndFailsReportsNotWritten) {
  Write([](WriteTx& tx) { tx.CreateObject(NewTask("t1", "n1", api::TASK_STATE_ASSIGNED)); });
  Start();
  std::shared_ptr<FakeSession> s;
  const std::string id = Open("n1", &s);
  auto a = std::make_shared<FakeAssignments>();
  ASSERT_TRUE(d_->OpenAssignments("n1", id, a).ok());
  const absl::Status pending =
      Update("n1", id, {Report("t1", api::TASK_STATE_ACCEPTED, clock_.Now())}, /*flush=*/false);
  EXPECT_EQ(pending.code(), absl::StatusCode::kUnknown);  // not answered yet
  api::UpdateTaskStatusRequest req;
  req.set_session_id(id);
  *req.add_updates() = Report("t1", api::TASK_STATE_ACCEPTED, clock_.Now());
  absl::Status result = absl::UnknownError("not answered");
  d_->UpdateTaskStatus("n1", req, [&](absl::Status st) { result = st; });
  d_->Stop();
  EXPECT_EQ(result.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s->ended()->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(a->ended()->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(GetTask("t1").status().state(), api::TASK_STATE_ASSIGNED);
  EXPECT_EQ(d_->OpenSession("n1", "", {}, std::make_shared<FakeSession>()).code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(DispatcherTest, Threads_RunTheSteps) {
  Dispatcher::Options o = Defaults();
  o.threads = true;
  o.batch_window = absl::Milliseconds(5);
  Start(o);
  auto s = std::make_shared<FakeSession>();
  ASSERT_TRUE(d_->OpenSession("n1", "10.1.1.1", {}, s).ok());
  for (int i = 0; i < 1000 && s->sent().empty(); ++i) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(s->sent().size(), 1u);
  auto a = std::make_shared<FakeAssignments>();
  ASSERT_TRUE(d_->OpenAssignments("n1", s->sent()[0].session_id(), a).ok());
  Write([](WriteTx& tx) { tx.CreateObject(NewTask("t1", "n1", api::TASK_STATE_ASSIGNED)); });
  auto tasks = [&a] {
    int n = 0;
    for (const auto& m : a->sent()) n += m.changes_size();
    return n;
  };
  for (int i = 0; i < 1000 && tasks() == 0; ++i) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(tasks(), 1);
  // Missed heartbeats, with the injected clock.
  clock_.Advance(Dispatcher::kDefaultHeartbeatPeriod * Dispatcher::kGraceMultiplier);
  for (int i = 0; i < 1000 && !s->ended(); ++i) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_TRUE(s->ended().has_value());
  for (int i = 0; i < 1000 && GetNode("n1").status().state() != api::NODE_STATE_DOWN; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(GetNode("n1").status().state(), api::NODE_STATE_DOWN);
}

}  // namespace
}  // namespace swarm::manager::dispatcher

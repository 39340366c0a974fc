#include "agent/agent.h"

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "agent/testing/fake_executor.h"
#include "gtest/gtest.h"

namespace swarm::agent {
namespace {

using testing::FakeExecutor;

// A dispatcher that follows the protocol the agent expects, on loopback, with what it saw.
class FakeDispatcher final : public api::Dispatcher::Service {
 public:
  explicit FakeDispatcher(std::string name) : name_(std::move(name)) {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(this);
    server_ = b.BuildAndStart();
  }
  ~FakeDispatcher() override { Kill(); }

  std::string addr() const { return absl::StrCat("127.0.0.1:", port_); }
  // Stops serving: every call in progress ends, new ones fail to connect.
  void Kill() {
    {
      absl::MutexLock lock(&mu_);
      killed_ = true;
    }
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_.reset();
  }
  void SetManagers(std::vector<std::string> addrs) {
    absl::MutexLock lock(&mu_);
    managers_ = std::move(addrs);
  }
  void Assign(const api::Task& task) {
    absl::MutexLock lock(&mu_);
    tasks_[task.id()] = task;
    changes_.push_back(task);
  }
  // Waits for a reported state of a task.
  bool Saw(const std::string& task_id, api::TaskState state) {
    absl::MutexLock lock(&mu_);
    auto cond = [&]()
                    ABSL_SHARED_LOCKS_REQUIRED(mu_) { return statuses_[task_id].count(state) > 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&cond), absl::Seconds(10));
  }
  int heartbeats() {
    absl::MutexLock lock(&mu_);
    return heartbeats_;
  }
  api::NodeDescription description() {
    absl::MutexLock lock(&mu_);
    return description_;
  }

  grpc::Status Session(grpc::ServerContext* ctx, const api::SessionRequest* req,
                       grpc::ServerWriter<api::SessionMessage>* w) override {
    api::SessionMessage m;
    {
      absl::MutexLock lock(&mu_);
      description_ = req->description();
      session_ = absl::StrCat(name_, "-", ++sessions_);
      m.set_session_id(session_);
      for (const std::string& a : managers_) m.add_managers()->mutable_peer()->set_addr(a);
    }
    w->Write(m);
    return Hold(ctx);
  }
  grpc::Status Heartbeat(grpc::ServerContext*, const api::HeartbeatRequest* req,
                         api::HeartbeatResponse* resp) override {
    absl::MutexLock lock(&mu_);
    if (req->session_id() != session_) return {grpc::StatusCode::NOT_FOUND, "unknown session"};
    ++heartbeats_;
    resp->mutable_period()->set_nanos(100'000'000);
    return grpc::Status::OK;
  }
  grpc::Status UpdateTaskStatus(grpc::ServerContext*, const api::UpdateTaskStatusRequest* req,
                                api::UpdateTaskStatusResponse*) override {
    absl::MutexLock lock(&mu_);
    if (req->session_id() != session_) return {grpc::StatusCode::NOT_FOUND, "unknown session"};
    for (const auto& u : req->updates()) statuses_[u.task_id()].insert(u.status().state());
    return grpc::Status::OK;
  }
  grpc::Status Assignments(grpc::ServerContext* ctx, const api::AssignmentsRequest*,
                           grpc::ServerWriter<api::AssignmentsMessage>* w) override {
    api::AssignmentsMessage complete;
    size_t sent = 0;
    {
      absl::MutexLock lock(&mu_);
      complete.set_type(api::ASSIGNMENTS_TYPE_COMPLETE);
      for (const auto& [id, t] : tasks_)
        *complete.add_changes()->mutable_assignment()->mutable_task() = t;
      sent = changes_.size();
    }
    w->Write(complete);
    while (true) {
      api::AssignmentsMessage inc;
      inc.set_type(api::ASSIGNMENTS_TYPE_INCREMENTAL);
      {
        absl::MutexLock lock(&mu_);
        auto cond = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          return killed_ || changes_.size() > sent;
        };
        mu_.AwaitWithTimeout(absl::Condition(&cond), absl::Milliseconds(50));
        if (killed_ || ctx->IsCancelled()) return {grpc::StatusCode::UNAVAILABLE, "gone"};
        for (; sent < changes_.size(); ++sent) {
          *inc.add_changes()->mutable_assignment()->mutable_task() = changes_[sent];
        }
      }
      if (inc.changes_size() > 0 && !w->Write(inc)) return grpc::Status::CANCELLED;
    }
  }

 private:
  grpc::Status Hold(grpc::ServerContext* ctx) {
    absl::MutexLock lock(&mu_);
    while (!killed_ && !ctx->IsCancelled())
      mu_.AwaitWithTimeout(absl::Condition(&killed_), absl::Milliseconds(50));
    return {grpc::StatusCode::UNAVAILABLE, "gone"};
  }

  const std::string name_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  absl::Mutex mu_;
  bool killed_ ABSL_GUARDED_BY(mu_) = false;
  int sessions_ ABSL_GUARDED_BY(mu_) = 0;
  std::string session_ ABSL_GUARDED_BY(mu_);
  int heartbeats_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> managers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, api::Task> tasks_ ABSL_GUARDED_BY(mu_);
  std::vector<api::Task> changes_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::set<api::TaskState>> statuses_ ABSL_GUARDED_BY(mu_);
  api::NodeDescription description_ ABSL_GUARDED_BY(mu_);
};

api::Task MakeTask(const std::string& id, api::TaskState desired = api::TASK_STATE_RUNNING) {
  api::Task t;
  t.set_id(id);
  t.mutable_annotations()->set_name(absl::StrCat("web.1.", id));
  t.mutable_spec()->mutable_container()->set_image("run");
  t.set_desired_state(desired);
  t.set_node_id("node1");
  t.mutable_status()->set_state(api::TASK_STATE_ASSIGNED);
  return t;
}

class AgentTest : public ::testing::Test {
 protected:
  AgentTest() {
    const std::string dir =
        absl::StrCat(std::getenv("TEST_TMPDIR"), "/agent-",
                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
    db_ = *TaskDb::Open(dir);
  }

  std::unique_ptr<Agent> StartAgent(std::vector<std::string> managers) {
    Agent::Options o;
    o.managers = std::move(managers);
    o.credentials = grpc::InsecureChannelCredentials();
    o.executor = &executor_;
    o.db = db_.get();
    o.random = &random_;
    o.min_backoff = absl::Milliseconds(20);
    o.max_backoff = absl::Milliseconds(200);
    o.send_interval = absl::Milliseconds(20);
    auto a = Agent::Start(std::move(o));
    EXPECT_TRUE(a.ok()) << a.status();
    return a.ok() ? *std::move(a) : nullptr;
  }

  FakeExecutor executor_;
  SeededRandom random_{1};
  std::unique_ptr<TaskDb> db_;
};

TEST_F(AgentTest, RunsAssignedTasksReportsTheirStatesAndHeartbeats) {
  FakeDispatcher d("m1");
  d.Assign(MakeTask("t1"));
  auto agent = StartAgent({d.addr()});
  // Only each task's latest state is sent in a batch, so earlier ones may be skipped.
  ASSERT_TRUE(d.Saw("t1", api::TASK_STATE_RUNNING));
  // An incremental change: the task is to stop.
  d.Assign(MakeTask("t1", api::TASK_STATE_SHUTDOWN));
  ASSERT_TRUE(d.Saw("t1", api::TASK_STATE_SHUTDOWN));
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_GE(d.heartbeats(), 2);
}

TEST_F(AgentTest, ReconnectsToAnotherManagerWithoutRestartingTasks) {
  FakeDispatcher m1("m1"), m2("m2");
  m1.SetManagers({m1.addr(), m2.addr()});
  m1.Assign(MakeTask("t1"));
  m2.Assign(MakeTask("t1"));
  auto agent = StartAgent({m1.addr()});
  ASSERT_TRUE(m1.Saw("t1", api::TASK_STATE_RUNNING));
  m1.Kill();
  // The second manager, learnt from the session, gets the session and the task's state.
  for (int i = 0; i < 500 && m2.heartbeats() == 0; ++i) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_GT(m2.heartbeats(), 0);
  executor_.Exit("t1", 0);
  ASSERT_TRUE(m2.Saw("t1", api::TASK_STATE_COMPLETE));
  EXPECT_EQ(executor_.Get("t1").starts, 1) << "the running task was not restarted";
}

TEST_F(AgentTest, StatusesOfAnEarlierAgentAreSentAfterARestart) {
  FakeDispatcher d("m1");
  d.Assign(MakeTask("t1"));
  auto agent = StartAgent({d.addr()});
  ASSERT_TRUE(d.Saw("t1", api::TASK_STATE_RUNNING));
  agent.reset();
  executor_.Exit("t1", 2);  // while no agent runs
  agent = StartAgent({d.addr()});
  ASSERT_TRUE(d.Saw("t1", api::TASK_STATE_FAILED));
  EXPECT_EQ(executor_.Get("t1").starts, 1);
}

TEST_F(AgentTest, SendsTheNodeDescription) {
  FakeDispatcher d("m1");
  auto agent = StartAgent({d.addr()});
  for (int i = 0; i < 500 && d.heartbeats() == 0; ++i) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(d.description().hostname(), "fake-host");
}

}  // namespace
}  // namespace swarm::agent

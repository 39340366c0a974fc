#include "agent/task_manager.h"

#include <cstdlib>
#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "agent/testing/fake_executor.h"
#include "gtest/gtest.h"

namespace swarm::agent {
namespace {

using testing::FakeExecutor;

api::Task MakeTask(const std::string& id, const std::string& image,
                   api::TaskState desired = api::TASK_STATE_RUNNING) {
  api::Task t;
  t.set_id(id);
  t.mutable_annotations()->set_name(absl::StrCat("svc.1.", id));
  t.mutable_spec()->mutable_container()->set_image(image);
  t.set_desired_state(desired);
  t.mutable_status()->set_state(api::TASK_STATE_ASSIGNED);
  return t;
}

class TaskManagerTest : public ::testing::Test {
 protected:
  TaskManagerTest() {
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/tasks-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    OpenManager();
  }

  void OpenManager() {
    manager_.reset();
    db_.reset();
    auto db = TaskDb::Open(dir_);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
    TaskManager::Options o;
    o.executor = &executor_;
    o.db = db_.get();
    o.poll = absl::Milliseconds(10);
    o.sink = [this](const std::string& id, const api::TaskStatus& s) {
      absl::MutexLock lock(&mu_);
      reported_[id].push_back(s.state());
      last_[id] = s;
    };
    manager_ = std::make_unique<TaskManager>(o);
  }

  // Waits until the task's last reported state is `state`.
  bool Reached(const std::string& id, api::TaskState state) {
    absl::MutexLock lock(&mu_);
    auto cond = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return !reported_[id].empty() && reported_[id].back() == state;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&cond), absl::Seconds(10));
  }
  std::vector<api::TaskState> Reported(const std::string& id) {
    absl::MutexLock lock(&mu_);
    return reported_[id];
  }
  api::TaskStatus Last(const std::string& id) {
    absl::MutexLock lock(&mu_);
    return last_[id];
  }

  std::string dir_;
  FakeExecutor executor_;
  std::unique_ptr<TaskDb> db_;
  std::unique_ptr<TaskManager> manager_;
  absl::Mutex mu_;
  std::map<std::string, std::vector<api::TaskState>> reported_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, api::TaskStatus> last_ ABSL_GUARDED_BY(mu_);
};

TEST_F(TaskManagerTest, RunsATaskThroughEveryStateInOrder) {
  manager_->SetAssignments({MakeTask("t1", "run")}, {}, {});
  ASSERT_TRUE(Reached("t1", api::TASK_STATE_RUNNING));
  EXPECT_EQ(Reported("t1"),
            (std::vector<api::TaskState>{api::TASK_STATE_ACCEPTED, api::TASK_STATE_PREPARING,
                                         api::TASK_STATE_READY, api::TASK_STATE_STARTING,
                                         api::TASK_STATE_RUNNING}));
  executor_.Exit("t1", 3);
  ASSERT_TRUE(Reached("t1", api::TASK_STATE_FAILED));
  EXPECT_EQ(Last("t1").err(), "task: non-zero exit (3)");
  EXPECT_EQ(Last("t1").container().exit_code(), 3);
}

TEST_F(TaskManagerTest, CompletesOnExitZero) {
  manager_->SetAssignments({MakeTask("t1", "exit0", api::TASK_STATE_COMPLETE)}, {}, {});
  ASSERT_TRUE(Reached("t1", api::TASK_STATE_RUNNING));
  executor_.Exit("t1", 0);
  ASSERT_TRUE(Reached("t1", api::TASK_STATE_COMPLETE));
}

TEST_F(TaskManagerTest, WaitsInReadyUntilDesiredRunning) {
  manager_->SetAssignments({MakeTask("t1", "run", api::TASK_STATE_READY)}, {}, {});
  ASSERT_TRUE(Reached("t1", api::TASK_STATE_READY));
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(Reported("t1").back(), api::TASK_STATE_READY);
  EXPECT_FALSE(executor_.Get("t1").started);
  manager_->UpdateTask(MakeTask("t1", "run"));
  ASSERT_TRUE(Reached("t1", api::TASK_STATE_RUNNING));
}

TEST_F(TaskManagerTest, ShutdownStopsTheContainerAndRemovalCleansUp) {
  manager_->SetAssignments({MakeTask("t1", "run")}, {}, {});
  ASSERT_TRUE(Reached("t1", api::TASK_STATE_RUNNING));
  manager_->UpdateTask(MakeTask("t1", "run", api::TASK_STATE_SHUTDOWN));
  ASSERT_TRUE(Reached("t1", api::TASK_STATE_SHUTDOWN));
  EXPECT_FALSE(executor_.Get("t1").removed) << "kept until the task leaves the assignment";
  manager_->SetAssignments({}, {}, {});
  for (int i = 0; i < 500 && !executor_.Get("t1").removed; ++i)
    absl::SleepFor(absl::Milliseconds(10));
  EXPECT_TRUE(executor_.Get("t1").removed);
  for (int i = 0; i < 500 && !manager_->Tasks().empty(); ++i)
    absl::SleepFor(absl::Milliseconds(10));
  EXPECT_TRUE(manager_->Tasks().empty());
  EXPECT_TRUE(db_->List()->empty());
}

TEST_F(TaskManagerTest, ATaskThatCannotRunHereIsRejectedWithTheReason) {
  manager_->SetAssignments({MakeTask("t1", "missing")}, {}, {});
  ASSERT_TRUE(Reached("t1", api::TASK_STATE_REJECTED));
  EXPECT_EQ(Last("t1").err(), "image missing not found");
}

TEST_F(TaskManagerTest, HealthCheckKeepsTheTaskStartingUntilHealthy) {
  manager_->SetAssignments({MakeTask("t1", "healthcheck")}, {}, {});
  ASSERT_TRUE(Reached("t1", api::TASK_STATE_STARTING));
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(Reported("t1").back(), api::TASK_STATE_STARTING);
  executor_.SetHealth("t1", Health::kHealthy);
  ASSERT_TRUE(Reached("t1", api::TASK_STATE_RUNNING));
  executor_.SetHealth("t1", Health::kUnhealthy);
  ASSERT_TRUE(Reached("t1", api::TASK_STATE_FAILED));
  EXPECT_EQ(Last("t1").err(), "task: container unhealthy");
}

TEST_F(TaskManagerTest, ARestartedAgentAdoptsItsRunningContainers) {
  manager_->SetAssignments({MakeTask("t1", "run"), MakeTask("t2", "run")}, {}, {});
  ASSERT_TRUE(Reached("t1", api::TASK_STATE_RUNNING));
  ASSERT_TRUE(Reached("t2", api::TASK_STATE_RUNNING));
  // The agent goes away; t2's container exits meanwhile.
  OpenManager();
  executor_.Exit("t2", 0);
  ASSERT_TRUE(manager_->Restore().ok());
  ASSERT_TRUE(Reached("t2", api::TASK_STATE_COMPLETE));
  EXPECT_EQ(executor_.Get("t1").starts, 1) << "not started twice";
  EXPECT_EQ(executor_.Get("t2").starts, 1);
  // t1 is still running and reported as such; exits are noticed.
  executor_.Exit("t1", 1);
  ASSERT_TRUE(Reached("t1", api::TASK_STATE_FAILED));
}

TEST_F(TaskManagerTest, TasksUnknownToTheFirstCompleteAssignmentAreRemoved) {
  manager_->SetAssignments({MakeTask("t1", "run")}, {}, {});
  ASSERT_TRUE(Reached("t1", api::TASK_STATE_RUNNING));
  OpenManager();
  ASSERT_TRUE(manager_->Restore().ok());
  manager_->SetAssignments({}, {}, {});
  ASSERT_TRUE(Reached("t1", api::TASK_STATE_SHUTDOWN));
  for (int i = 0; i < 500 && !executor_.Get("t1").removed; ++i)
    absl::SleepFor(absl::Milliseconds(10));
  EXPECT_TRUE(executor_.Get("t1").removed);
}

}  // namespace
}  // namespace swarm::agent

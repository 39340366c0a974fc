#include "manager/dispatcher/task_status.h"

#include "common/proto_time.h"
#include "gtest/gtest.h"

namespace swarm::manager::dispatcher {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

api::Task TaskOn(const std::string& node, api::TaskState state, absl::Time at = kT0) {
  api::Task t;
  t.set_id("t1");
  t.set_node_id(node);
  t.mutable_status()->set_state(state);
  *t.mutable_status()->mutable_timestamp() = ToTimestamp(at);
  return t;
}

api::TaskStatus Status(api::TaskState state, absl::Time at = kT0 + absl::Seconds(1)) {
  api::TaskStatus s;
  s.set_state(state);
  *s.mutable_timestamp() = ToTimestamp(at);
  return s;
}

TEST(CheckTaskStatusTest, Forward_IsWritten) {
  const api::Task t = TaskOn("n1", api::TASK_STATE_ASSIGNED);
  EXPECT_TRUE(CheckTaskStatus(&t, "n1", Status(api::TASK_STATE_ACCEPTED)).ok());
  EXPECT_TRUE(CheckTaskStatus(&t, "n1", Status(api::TASK_STATE_RUNNING)).ok());
  EXPECT_TRUE(CheckTaskStatus(&t, "n1", Status(api::TASK_STATE_REJECTED)).ok());
  const api::Task running = TaskOn("n1", api::TASK_STATE_RUNNING);
  EXPECT_TRUE(CheckTaskStatus(&running, "n1", Status(api::TASK_STATE_FAILED)).ok());
}

TEST(CheckTaskStatusTest, MissingOrForeignTask_IsIgnored) {
  EXPECT_EQ(CheckTaskStatus(nullptr, "n1", Status(api::TASK_STATE_RUNNING)).code(),
            absl::StatusCode::kNotFound);
  const api::Task t = TaskOn("n2", api::TASK_STATE_ASSIGNED);
  const absl::Status s = CheckTaskStatus(&t, "n1", Status(api::TASK_STATE_RUNNING));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("n2"), std::string::npos) << s;
}

TEST(CheckTaskStatusTest, ManagerStates_AreNotTheAgents) {
  const api::Task t = TaskOn("n1", api::TASK_STATE_ASSIGNED);
  for (api::TaskState s : {api::TASK_STATE_NEW, api::TASK_STATE_PENDING, api::TASK_STATE_ASSIGNED,
                           api::TASK_STATE_REMOVE, api::TASK_STATE_ORPHANED}) {
    EXPECT_EQ(CheckTaskStatus(&t, "n1", Status(s)).code(), absl::StatusCode::kInvalidArgument)
        << api::TaskState_Name(s);
  }
}

TEST(CheckTaskStatusTest, Backwards_IsIgnored) {
  const api::Task t = TaskOn("n1", api::TASK_STATE_RUNNING);
  EXPECT_EQ(CheckTaskStatus(&t, "n1", Status(api::TASK_STATE_STARTING)).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(CheckTaskStatusTest, Terminal_StaysTerminal) {
  for (api::TaskState from : {api::TASK_STATE_COMPLETE, api::TASK_STATE_FAILED,
                              api::TASK_STATE_SHUTDOWN, api::TASK_STATE_ORPHANED}) {
    const api::Task t = TaskOn("n1", from);
    EXPECT_EQ(CheckTaskStatus(&t, "n1", Status(api::TASK_STATE_REJECTED)).code(),
              absl::StatusCode::kFailedPrecondition)
        << api::TaskState_Name(from);
    EXPECT_EQ(CheckTaskStatus(&t, "n1", Status(api::TASK_STATE_RUNNING)).code(),
              absl::StatusCode::kFailedPrecondition);
  }
}

TEST(CheckTaskStatusTest, SameState_OnlyWhenNewer) {
  const api::Task t = TaskOn("n1", api::TASK_STATE_RUNNING, kT0);
  EXPECT_TRUE(
      CheckTaskStatus(&t, "n1", Status(api::TASK_STATE_RUNNING, kT0 + absl::Seconds(1))).ok());
  EXPECT_FALSE(CheckTaskStatus(&t, "n1", Status(api::TASK_STATE_RUNNING, kT0)).ok());
  api::TaskStatus untimed;
  untimed.set_state(api::TASK_STATE_RUNNING);
  EXPECT_FALSE(CheckTaskStatus(&t, "n1", untimed).ok());
}

TEST(RateLimiterTest, Take_RefillsOverTime) {
  RateLimiter r(/*per_second=*/10, /*burst=*/20, kT0);
  EXPECT_TRUE(r.Take(20, kT0));
  EXPECT_FALSE(r.Take(1, kT0));
  EXPECT_TRUE(r.Take(1, kT0 + absl::Milliseconds(200)));  // 2 back
  EXPECT_TRUE(r.Take(1, kT0 + absl::Milliseconds(200)));
  EXPECT_FALSE(r.Take(1, kT0 + absl::Milliseconds(200)));
  // Never more than the burst in reserve.
  EXPECT_TRUE(r.Take(20, kT0 + absl::Hours(1)));
  EXPECT_FALSE(r.Take(1, kT0 + absl::Hours(1)));
}

TEST(RateLimiterTest, LargeTake_IsAdmittedAndPaidFor) {
  RateLimiter r(/*per_second=*/10, /*burst=*/20, kT0);
  EXPECT_TRUE(r.Take(100, kT0));
  // 80 in debt: 8 s before the next.
  EXPECT_FALSE(r.Take(1, kT0 + absl::Seconds(8)));
  EXPECT_TRUE(r.Take(1, kT0 + absl::Seconds(8) + absl::Milliseconds(100)));
}

}  // namespace
}  // namespace swarm::manager::dispatcher

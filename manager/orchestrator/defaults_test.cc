#include "manager/orchestrator/defaults.h"

#include "common/proto_time.h"
#include "gtest/gtest.h"

namespace swarm::manager::orchestrator {
namespace {

TEST(DefaultsTest, InsertServiceDefaults_FillsOnlyUnsetFields) {
  api::ServiceSpec s;
  s.mutable_replicated()->set_replicas(1);
  s.mutable_task_template()->mutable_container()->set_image("busybox");
  s.mutable_rollback_config()->set_parallelism(0);
  s.mutable_rollback_config()->set_max_failure_ratio(0.5);
  InsertServiceDefaults(&s);
  EXPECT_EQ(s.task_template().restart_policy().condition(), api::RESTART_CONDITION_ANY);
  EXPECT_EQ(FromProtoDuration(s.task_template().restart_policy().delay()), absl::Seconds(5));
  EXPECT_EQ(FromProtoDuration(s.task_template().container().stop_grace_period()),
            absl::Seconds(10));
  EXPECT_EQ(s.update_config().parallelism(), 1u);
  EXPECT_EQ(FromProtoDuration(s.update_config().monitor()), absl::Seconds(5));
  // A set config keeps its values (parallelism 0 = all at once).
  EXPECT_EQ(s.rollback_config().parallelism(), 0u);
  EXPECT_FLOAT_EQ(s.rollback_config().max_failure_ratio(), 0.5f);
  EXPECT_EQ(FromProtoDuration(s.rollback_config().monitor()), absl::Seconds(5));

  api::ServiceSpec job;
  job.mutable_replicated_job();
  InsertServiceDefaults(&job);
  EXPECT_FALSE(job.has_update_config());
}

}  // namespace
}  // namespace swarm::manager::orchestrator

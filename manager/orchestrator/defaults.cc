#include "manager/orchestrator/defaults.h"

namespace swarm::manager::orchestrator {

void InsertServiceDefaults(api::ServiceSpec* spec) {
  auto set_duration = [](google::protobuf::Duration* d, int64_t seconds) {
    d->set_seconds(seconds);
    d->set_nanos(0);
  };
  api::TaskSpec* task = spec->mutable_task_template();
  if (!task->has_restart_policy()) {
    task->mutable_restart_policy()->set_condition(api::RESTART_CONDITION_ANY);
  }
  if (!task->restart_policy().has_delay()) {
    set_duration(task->mutable_restart_policy()->mutable_delay(), 5);
  }
  if (task->has_container() && !task->container().has_stop_grace_period()) {
    set_duration(task->mutable_container()->mutable_stop_grace_period(), 10);
  }
  if (!spec->has_replicated_job() && !spec->has_global_job()) {
    // An unset config updates one task at a time; a set one keeps its parallelism (0 = all).
    if (!spec->has_update_config()) spec->mutable_update_config()->set_parallelism(1);
    if (!spec->has_rollback_config()) spec->mutable_rollback_config()->set_parallelism(1);
    for (api::UpdateConfig* u : {spec->mutable_update_config(), spec->mutable_rollback_config()}) {
      if (!u->has_monitor()) set_duration(u->mutable_monitor(), 5);
    }
  }
}

}  // namespace swarm::manager::orchestrator

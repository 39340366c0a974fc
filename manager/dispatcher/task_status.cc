#include "manager/dispatcher/task_status.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/proto_time.h"

namespace swarm::manager::dispatcher {

absl::Status CheckTaskStatus(const api::Task* task, const std::string& node_id,
                             const api::TaskStatus& status) {
  if (task == nullptr) return absl::NotFoundError("no such task");
  if (task->node_id() != node_id) {
    return absl::PermissionDeniedError(
        absl::StrCat("the task is assigned to ",
                     task->node_id().empty() ? "no node" : "node " + task->node_id()));
  }
  const api::TaskState to = status.state();
  if (to < api::TASK_STATE_ACCEPTED || to > api::TASK_STATE_REJECTED) {
    return absl::InvalidArgumentError(
        absl::StrCat("agents may not set state ", api::TaskState_Name(to)));
  }
  const api::TaskState from = task->status().state();
  if (from > api::TASK_STATE_RUNNING) {
    return absl::FailedPreconditionError(
        absl::StrCat("the task is already ", api::TaskState_Name(from)));
  }
  if (to < from) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the task is already ", api::TaskState_Name(from), ", past ", api::TaskState_Name(to)));
  }
  // A report of the stored state again must be newer (an agent retrying a batch resends it).
  if (to == from && (!status.has_timestamp() || (task->status().has_timestamp() &&
                                                 FromTimestamp(status.timestamp()) <=
                                                     FromTimestamp(task->status().timestamp())))) {
    return absl::FailedPreconditionError(
        absl::StrCat("the task is already ", api::TaskState_Name(from), " as of this report"));
  }
  return absl::OkStatus();
}

bool RateLimiter::Take(double n, absl::Time now) {
  if (now > last_) {
    tokens_ = std::min(burst_, tokens_ + absl::ToDoubleSeconds(now - last_) * per_second_);
    last_ = now;
  }
  if (tokens_ <= 0) return false;
  tokens_ -= n;
  return true;
}

}  // namespace swarm::manager::dispatcher

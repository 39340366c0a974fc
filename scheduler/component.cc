#include "scheduler/component.h"

#include <google/protobuf/util/message_differencer.h>
#include <google/protobuf/util/time_util.h>
#include <pthread.h>

#include <algorithm>

#include "common/logging.h"

namespace swarm::scheduler {
namespace {

namespace store = manager::store;

constexpr char kLog[] = "scheduler";
// How long the thread waits for store events before it looks at the clock again (the batch
// window is measured on the injected clock) and bounds a retry after a failed list.
constexpr absl::Duration kPoll = absl::Milliseconds(20);
// Events handled between two looks at the batch, so that a flood of events cannot hold a
// batch back.
constexpr int kMaxEventsPerRound = 10000;

bool Schedulable(const api::Task& t) {
  return t.status().state() == api::TASK_STATE_PENDING &&
         t.desired_state() <= api::TASK_STATE_COMPLETE;
}

// Whether a node update can change where tasks fit (not, e.g., a manager's reachability).
bool MattersForPlacement(const api::Node& before, const api::Node& after) {
  using google::protobuf::util::MessageDifferencer;
  return before.role() != after.role() || before.status().state() != after.status().state() ||
         before.status().addr() != after.status().addr() ||
         !MessageDifferencer::Equals(before.spec(), after.spec()) ||
         !MessageDifferencer::Equals(before.description(), after.description());
}

}  // namespace

SchedulerComponent::SchedulerComponent(store::MemoryStore* store, Clock* clock,
                                       SchedulerOptions options)
    : store_(store), clock_(clock), options_(options) {}

void SchedulerComponent::Start() {
  thread_ = std::thread([this] { Run(); });
}

void SchedulerComponent::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (watch_) watch_->Close();  // wakes the thread out of Watch::Next
  }
  if (thread_.joinable()) thread_.join();
}

void SchedulerComponent::Run() {
  pthread_setname_np(pthread_self(), "scheduler");
  std::shared_ptr<store::Watch> watch;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      watch = watch_;
    }
    if (watch == nullptr || watch->closed()) {
      if (!Relist()) {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&stopping_), kPoll);
      }
      continue;
    }
    absl::Duration wait = kPoll;
    if (batch_due_) wait = std::clamp(*batch_due_ - clock_->Now(), absl::ZeroDuration(), kPoll);
    int handled = 0;
    for (auto e = watch->Next(wait); e.has_value();
         e = ++handled < kMaxEventsPerRound ? watch->Next(absl::ZeroDuration()) : std::nullopt) {
      Handle(*e);
    }
    if (!HasWork()) {
      batch_due_.reset();
      continue;
    }
    const absl::Time now = clock_->Now();
    // After a quiet spell a batch goes at once (with everything the watch had queued); under
    // load, batches are batch_window apart and gather what arrives meanwhile.
    if (!batch_due_) {
      batch_due_ = last_batch_ ? std::max(now, *last_batch_ + options_.batch_window) : now;
    }
    if ((now >= *batch_due_ || pending_.size() >= options_.max_batch) && !Stopping()) {
      ScheduleBatch();
    }
  }
}

bool SchedulerComponent::Stopping() {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

bool SchedulerComponent::Relist() {
  absl::StatusOr<std::shared_ptr<store::Watch>> watch = store_->WatchFrom(0);
  if (!watch.ok()) {
    log::Warn(kLog, "cannot watch the store", {{"error", watch.status()}});
    return false;
  }
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      (*watch)->Close();
      return false;
    }
    watch_ = *watch;
  }
  // Watch first, list second: whatever happens in between is in both, and events that the
  // list already reflects are skipped by version.
  std::vector<store::Ptr<api::Node>> nodes;
  std::vector<TaskPtr> tasks;
  store_->View([&](const store::ReadTx& tx) {
    nodes = tx.ListNodes();
    tasks = tx.ListTasks();
  });
  scheduler_.reset();
  nodes_ = std::make_unique<NodeSet>();
  scheduler_ = std::make_unique<Scheduler>(nodes_.get());
  pending_.clear();
  unschedulable_.clear();
  retry_unschedulable_ = false;
  batch_due_.reset();
  for (auto& n : nodes) nodes_->UpsertNode(std::move(n));
  for (const TaskPtr& t : tasks) OnTask(t->id(), t, t->meta().version().index(), /*force=*/true);
  log::Info(kLog, "watching nodes and tasks",
            {{"nodes", nodes.size()}, {"tasks", tasks.size()}, {"pending", pending_.size()}});
  return true;
}

void SchedulerComponent::Handle(const store::Event& e) {
  const store::Ptr<api::StoreAction>& obj = e.new_object ? e.new_object : e.old_object;
  if (obj == nullptr) return;
  switch (obj->target_case()) {
    case api::StoreAction::kNode:
      OnNode(obj->node().id(),
             e.new_object ? std::shared_ptr<const api::Node>(e.new_object, &e.new_object->node())
                          : nullptr,
             e.index);
      break;
    case api::StoreAction::kTask:
      OnTask(obj->task().id(),
             e.new_object ? TaskPtr(e.new_object, &e.new_object->task()) : nullptr, e.index,
             /*force=*/false);
      break;
    default:
      break;
  }
}

void SchedulerComponent::OnNode(const std::string& id, std::shared_ptr<const api::Node> node,
                                uint64_t index) {
  const NodeInfo* known = nodes_->Find(id);
  const api::Node* before = known ? known->node() : nullptr;
  if (before != nullptr && before->meta().version().index() >= index) return;  // seen
  if (node == nullptr) {
    nodes_->RemoveNode(id);
    return;
  }
  if (before == nullptr || MattersForPlacement(*before, *node)) retry_unschedulable_ = true;
  nodes_->UpsertNode(std::move(node));
}

uint64_t SchedulerComponent::KnownVersion(const std::string& id) const {
  uint64_t v = nodes_->TaskVersion(id).value_or(0);
  if (auto it = pending_.find(id); it != pending_.end()) {
    v = std::max(v, it->second->meta().version().index());
  }
  if (auto it = unschedulable_.find(id); it != unschedulable_.end()) {
    v = std::max(v, it->second->meta().version().index());
  }
  return v;
}

void SchedulerComponent::OnTask(const std::string& id, TaskPtr task, uint64_t index, bool force) {
  if (!force && KnownVersion(id) >= index) return;  // the list or a refresh was newer
  const bool held = nodes_->TaskVersion(id).has_value();
  if (task == nullptr) {
    nodes_->RemoveTask(id);
    pending_.erase(id);
    unschedulable_.erase(id);
  } else {
    nodes_->UpsertTask(*task);
    if (!Schedulable(*task)) {
      pending_.erase(id);
      unschedulable_.erase(id);
    } else if (auto it = unschedulable_.find(id); it != unschedulable_.end() && !force) {
      it->second = std::move(task);  // e.g. our own explanation written: keep waiting
    } else {
      unschedulable_.erase(id);
      pending_[id] = std::move(task);
    }
  }
  if (held && !nodes_->TaskVersion(id).has_value()) retry_unschedulable_ = true;
}

bool SchedulerComponent::HasWork() const {
  return !pending_.empty() || (retry_unschedulable_ && !unschedulable_.empty());
}

void SchedulerComponent::ScheduleBatch() {
  if (retry_unschedulable_) {
    for (auto& [id, t] : unschedulable_) pending_.emplace(id, std::move(t));
    unschedulable_.clear();
    retry_unschedulable_ = false;
  }
  batch_due_.reset();
  last_batch_ = clock_->Now();
  std::vector<TaskPtr> tasks;
  tasks.reserve(pending_.size());
  for (auto& [id, t] : pending_) tasks.push_back(std::move(t));
  pending_.clear();
  std::vector<const api::Task*> ptrs;
  ptrs.reserve(tasks.size());
  for (const TaskPtr& t : tasks) ptrs.push_back(t.get());

  const std::vector<Decision> decisions = scheduler_->Schedule(ptrs);
  std::vector<Write> writes;
  size_t assigned = 0, unplaceable = 0;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const Decision& d = decisions[i];
    if (d.node != nullptr) {
      ++assigned;
      writes.push_back(Write{tasks[i], d.node->id(), ""});
      continue;
    }
    ++unplaceable;
    const api::TaskStatus& status = tasks[i]->status();
    if (status.message() != d.message || status.err() != d.message) {
      writes.push_back(Write{tasks[i], "", d.message});
    }
    unschedulable_[tasks[i]->id()] = std::move(tasks[i]);
  }
  log::Debug(kLog, "batch scheduled",
             {{"tasks", tasks.size()}, {"assigned", assigned}, {"unplaceable", unplaceable}});
  WriteDecisions(writes);
}

void SchedulerComponent::WriteDecisions(const std::vector<Write>& writes) {
  const google::protobuf::Timestamp now =
      google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(clock_->Now()));
  size_t next = 0;
  // Stop() does not wait for the rest of a large batch: the next leader lists and schedules
  // whatever is still pending.
  while (next < writes.size() && !Stopping()) {
    const size_t begin = next;
    std::vector<std::string> changed;  // tasks that changed since we read them
    absl::Status s = store_->Update([&](store::WriteTx& tx) {
      next = begin;
      changed.clear();
      while (next < writes.size() && next - begin < options_.max_writes_per_transaction &&
             tx.bytes() < store::kMaxTransactionBytes) {
        const Write& w = writes[next++];
        const TaskPtr current = tx.GetTask(w.task->id());
        if (current == nullptr ||
            current->meta().version().index() != w.task->meta().version().index()) {
          changed.push_back(w.task->id());
          continue;
        }
        // Built in place in the store action: a task is copied once on its way to the store.
        api::StoreAction action;
        api::Task& t = *action.mutable_task();
        t = *current;
        api::TaskStatus* status = t.mutable_status();
        if (!w.node_id.empty()) {
          t.set_node_id(w.node_id);
          status->set_state(api::TASK_STATE_ASSIGNED);
          status->set_message(kAssignedMessage);
          status->clear_err();
        } else {
          status->set_message(w.message);
          status->set_err(w.message);
        }
        *status->mutable_timestamp() = now;
        tx.Update(std::move(action));
      }
      return absl::OkStatus();
    });
    if (!s.ok()) {
      // Lost a race with another writer (or the leadership): nothing of this transaction was
      // written. Read its tasks again; the next batch decides with fresh objects.
      log::Info(kLog, "decisions not written, rescheduling",
                {{"tasks", next - begin}, {"reason", s}});
      changed.clear();
      for (size_t i = begin; i < next; ++i) changed.push_back(writes[i].task->id());
    }
    if (!changed.empty()) Refresh(changed);
  }
}

void SchedulerComponent::Refresh(const std::vector<std::string>& ids) {
  std::vector<TaskPtr> tasks(ids.size());
  store_->View([&](const store::ReadTx& tx) {
    for (size_t i = 0; i < ids.size(); ++i) tasks[i] = tx.GetTask(ids[i]);
  });
  for (size_t i = 0; i < ids.size(); ++i) {
    const uint64_t version = tasks[i] ? tasks[i]->meta().version().index() : 0;
    OnTask(ids[i], std::move(tasks[i]), version, /*force=*/true);
  }
}

}  // namespace swarm::scheduler

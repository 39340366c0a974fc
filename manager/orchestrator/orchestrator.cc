#include "manager/orchestrator/orchestrator.h"

#include <pthread.h>
#include <time.h>

#include <algorithm>

#include "common/logging.h"
#include "common/status_macros.h"

namespace swarm::manager::orchestrator {
namespace {

constexpr char kLog[] = "orchestrator";
// How long the thread waits for store events before it looks at the clock again; bounds how
// late a due time (measured on the injected clock) is noticed.
constexpr absl::Duration kPoll = absl::Milliseconds(100);

absl::Duration ThreadCpuTime() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return absl::DurationFromTimespec(ts);
}

}  // namespace

void Orchestrator::Start() {
  // Events from now on; the first round looks at every service, so nothing before is missed.
  auto watch = store_->WatchFrom(0);
  if (watch.ok()) watch_ = *watch;
  thread_ = std::thread([this] { Run(); });
}

void Orchestrator::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  if (watch_) watch_->Close();
}

void Orchestrator::Run() {
  pthread_setname_np(pthread_self(), "orchestrator");
  absl::Time next_resync = clock_->Now() + kResync;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    const bool idle = !all_dirty_ && dirty_.empty();
    // Wait for the first event when there is nothing to do, or while the last round's pause
    // lasts; then take what is queued.
    const absl::Duration wait =
        idle ? kPoll : std::clamp(quiet_until_ - clock_->Now(), absl::ZeroDuration(), kPoll);
    if (watch_ != nullptr) {
      for (auto e = watch_->Next(wait); e.has_value(); e = watch_->Next(absl::ZeroDuration())) {
        const api::StoreAction& obj = e->new_object ? *e->new_object : *e->old_object;
        switch (obj.target_case()) {
          case api::StoreAction::kService:
            dirty_.insert(obj.service().id());
            break;
          case api::StoreAction::kTask:
            dirty_.insert(obj.task().service_id());
            break;
          case api::StoreAction::kNode:
          case api::StoreAction::kCluster:
            all_dirty_ = true;
            break;
          default:
            break;
        }
      }
    } else {
      clock_->SleepFor(wait);
    }
    const absl::Time now = clock_->Now();
    if (now >= next_resync) {
      all_dirty_ = true;
      next_resync = now + kResync;
    }
    for (auto it = due_.begin(); it != due_.end();) {
      if (it->second > now) {
        ++it;
        continue;
      }
      dirty_.insert(it->first);
      it = due_.erase(it);
    }
    if ((all_dirty_ || !dirty_.empty()) && now >= quiet_until_) {
      const absl::Duration cpu_before = ThreadCpuTime();
      Round();
      // A round costs more the larger the services: at 20,000 tasks, every status report
      // would otherwise start another full round. The next one waits as long as this one
      // worked (its CPU time: waiting for its writes to commit costs nothing, and pausing for
      // it would only add latency), so the orchestrator takes at most about half a core
      // however fast the events come; reconciling is level-triggered, so what arrives
      // meanwhile is handled together.
      quiet_until_ = clock_->Now() + (ThreadCpuTime() - cpu_before);
    }
  }
}

void Orchestrator::Round() {
  // What the dirty services' reconciliation reads, taken under the store's read lock: only
  // shared pointers to immutable objects, so the lock is held for a moment. Reconciling a
  // large service takes tens of milliseconds, and the Raft loop's next apply waits for the
  // lock all that time (at a lower CPU priority, too: the reader runs at the normal one).
  struct Read {
    std::string id;
    store::Ptr<api::Service> service;
    std::vector<store::Ptr<api::Task>> tasks;
  };
  std::vector<Read> reads;
  std::vector<store::Ptr<api::Node>> node_list;
  int64_t history = 5;
  store_->View([&](const store::ReadTx& tx) {
    for (const auto& c : tx.ListClusters()) {
      history = c->spec().orchestration().task_history_retention_limit();
    }
    node_list = tx.ListNodes();
    if (all_dirty_) {
      for (const auto& s : tx.ListServices()) dirty_.insert(s->id());
      // Tasks whose service is gone.
      for (const auto& t : tx.ListTasks()) {
        if (!t->service_id().empty()) dirty_.insert(t->service_id());
      }
      all_dirty_ = false;
    }
    reads.reserve(dirty_.size());
    for (const std::string& id : dirty_) {
      if (id.empty()) continue;  // tasks that belong to no service are not ours
      reads.push_back(Read{id, tx.GetService(id), tx.TasksByService(id)});
    }
    dirty_.clear();
  });

  std::vector<std::pair<std::string, Plan>> plans;
  const absl::Time now = clock_->Now();
  const NodeIndex nodes(std::move(node_list));
  for (const Read& r : reads) {
    ServiceState state;
    state.service = r.service.get();
    state.tasks.reserve(r.tasks.size());
    for (const auto& t : r.tasks) state.tasks.push_back(t.get());
    state.nodes = &nodes;
    state.task_history_limit = history;
    state.now = now;
    Plan plan = Reconcile(state, *random_);
    if (!plan.empty() || plan.next_check != absl::InfiniteFuture()) {
      plans.emplace_back(r.id, std::move(plan));
    }
  }
  for (auto& [id, plan] : plans) {
    if (plan.next_check != absl::InfiniteFuture()) {
      auto [it, fresh] = due_.emplace(id, plan.next_check);
      if (!fresh) it->second = std::min(it->second, plan.next_check);
    }
    if (plan.empty()) continue;
    log::Info(kLog, "reconciling a service",
              {{"service", id},
               {"create", plan.create.size()},
               {"update", plan.update.size()},
               {"remove", plan.remove.size()},
               {"service_update", plan.service.has_value()}});
    const absl::Status s = Write(plan);
    if (!s.ok()) {
      // Usually a race with the scheduler or an agent's report ("update out of sequence");
      // anything else is worth a line. Either way: look again shortly.
      if (s.code() == absl::StatusCode::kFailedPrecondition) {
        log::Debug(kLog, "plan not written; retrying", {{"service", id}, {"reason", s}});
      } else {
        log::Warn(kLog, "plan not written; retrying", {{"service", id}, {"reason", s}});
      }
      due_[id] = now + kRetryAfter;
    }
  }
}

absl::Status Orchestrator::Write(const Plan& plan) {
  // Every write of the plan, in the order they are best applied: state changes of existing
  // tasks, deletions, new tasks, then the service.
  std::vector<std::function<void(store::WriteTx&)>> writes;
  writes.reserve(plan.update.size() + plan.remove.size() + plan.create.size() + 1);
  for (const api::Task& t : plan.update) {
    writes.push_back([&t](store::WriteTx& tx) { tx.UpdateObject(t); });
  }
  for (const std::string& id : plan.remove) {
    writes.push_back([&id](store::WriteTx& tx) {
      api::Task t;
      t.set_id(id);
      tx.RemoveObject(t);
    });
  }
  for (const api::Task& t : plan.create) {
    writes.push_back([&t](store::WriteTx& tx) { tx.CreateObject(t); });
  }
  if (plan.service) {
    writes.push_back([&plan](store::WriteTx& tx) { tx.UpdateObject(*plan.service); });
  }
  for (size_t next = 0; next < writes.size();) {
    RETURN_IF_ERROR(store_->Update([&](store::WriteTx& tx) {
      const size_t begin = next;
      while (next < writes.size() && next - begin < kMaxWritesPerTransaction &&
             tx.bytes() < store::kMaxTransactionBytes) {
        writes[next++](tx);
      }
      return absl::OkStatus();
    }));
  }
  return absl::OkStatus();
}

}  // namespace swarm::manager::orchestrator

#include "manager/allocator/allocator.h"

#include <pthread.h>

#include "common/logging.h"
#include "common/proto_time.h"

namespace swarm::manager::allocator {
namespace {

constexpr char kLog[] = "allocator";
constexpr absl::Duration kPoll = absl::Milliseconds(100);

bool Waiting(const api::Task& t) {
  return t.status().state() == api::TASK_STATE_NEW && t.desired_state() <= api::TASK_STATE_COMPLETE;
}

}  // namespace

void Allocator::Start() {
  auto watch = store_->WatchFrom(0);
  if (watch.ok()) watch_ = *watch;
  thread_ = std::thread([this] { Run(); });
}

void Allocator::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  if (watch_) watch_->Close();
}

void Allocator::Run() {
  pthread_setname_np(pthread_self(), "allocator");
  // Everything that was waiting before the watch began.
  std::set<std::string> todo;
  store_->View([&](const store::ReadTx& tx) {
    for (const auto& t : tx.ListTasks()) {
      if (Waiting(*t)) todo.insert(t->id());
    }
  });
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    if (watch_ != nullptr) {
      for (auto e = watch_->Next(todo.empty() ? kPoll : absl::ZeroDuration()); e.has_value();
           e = watch_->Next(absl::ZeroDuration())) {
        if (e->new_object && e->new_object->has_task() && Waiting(e->new_object->task())) {
          todo.insert(e->new_object->task().id());
        }
      }
    } else {
      clock_->SleepFor(kPoll);
    }
    if (todo.empty()) continue;
    std::set<std::string> retry = Allocate(todo);
    todo.clear();
    if (!retry.empty()) {
      clock_->SleepFor(absl::Milliseconds(50));
      todo = std::move(retry);
    }
  }
}

std::set<std::string> Allocator::Allocate(const std::set<std::string>& ids) {
  std::set<std::string> retry;
  auto it = ids.begin();
  while (it != ids.end()) {
    std::vector<std::string> batch;
    for (; it != ids.end() && batch.size() < kBatch; ++it) batch.push_back(*it);
    const absl::Status s = store_->Update([&](store::WriteTx& tx) {
      const auto now = ToTimestamp(clock_->Now());
      for (const std::string& id : batch) {
        auto t = tx.GetTask(id);
        if (t == nullptr || !Waiting(*t)) continue;
        api::Task next = *t;
        next.mutable_networks()->Clear();
        for (const api::NetworkAttachmentConfig& c : t->spec().networks()) {
          api::NetworkAttachment* a = next.add_networks();
          a->mutable_network()->set_id(c.target());
          *a->mutable_aliases() = c.aliases();
          *a->mutable_driver_attachment_opts() = c.driver_attachment_opts();
        }
        next.mutable_status()->set_state(api::TASK_STATE_PENDING);
        next.mutable_status()->set_message("pending task scheduling");
        *next.mutable_status()->mutable_timestamp() = now;
        tx.UpdateObject(next);
      }
      return absl::OkStatus();
    });
    if (!s.ok()) {
      log::Debug(kLog, "allocation not written; retrying", {{"reason", s}});
      retry.insert(batch.begin(), batch.end());
    }
  }
  return retry;
}

}  // namespace swarm::manager::allocator

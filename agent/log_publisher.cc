#include "agent/log_publisher.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/proto_time.h"

namespace swarm::agent {
namespace {

constexpr char kLog[] = "agent-logs";
// Lines per PublishLogs message when reading a backlog.
constexpr int kBatch = 100;

// Whether the selector picks the task (the union of its lists).
bool Selects(const api::LogSelector& sel, const api::Task& t) {
  auto has = [](const auto& list, const std::string& v) {
    return !v.empty() && std::find(list.begin(), list.end(), v) != list.end();
  };
  return has(sel.service_ids(), t.service_id()) || has(sel.node_ids(), t.node_id()) ||
         has(sel.task_ids(), t.id());
}

bool StreamSelected(const api::LogSubscriptionOptions& o, const std::string& stream) {
  if (o.streams().empty()) return true;
  const api::LogStream s = stream == "stderr"   ? api::LOG_STREAM_STDERR
                           : stream == "stdout" ? api::LOG_STREAM_STDOUT
                                                : api::LOG_STREAM_UNKNOWN;
  for (int v : o.streams()) {
    if (v == s) return true;
  }
  return false;
}

// One subscription being served: its publish stream, written by its task readers.
class Publication {
 public:
  Publication(api::LogBroker::StubInterface* stub, std::string id) : id_(std::move(id)) {
    writer_ = stub->PublishLogs(&ctx_, &resp_);
  }
  void Cancel() {
    cancelled_ = true;
    ctx_.TryCancel();
  }
  bool cancelled() const { return cancelled_; }
  // Adds a line to the batch; sends the batch when it is full or `flush`.
  void Add(const api::Task& task, const runtime::LogEntry& e) {
    absl::MutexLock lock(&mu_);
    api::LogMessage* m = batch_.add_messages();
    m->mutable_context()->set_service_id(task.service_id());
    m->mutable_context()->set_node_id(task.node_id());
    m->mutable_context()->set_task_id(task.id());
    *m->mutable_timestamp() = ToTimestamp(e.time);
    m->set_stream(e.stream == "stderr" ? api::LOG_STREAM_STDERR : api::LOG_STREAM_STDOUT);
    m->set_data(e.log);
    if (batch_.messages_size() >= kBatch) SendLocked(false);
  }
  void Flush() {
    absl::MutexLock lock(&mu_);
    if (batch_.messages_size() > 0) SendLocked(false);
  }
  // Sends what is left with close, and ends the stream.
  absl::Status Close() {
    {
      absl::MutexLock lock(&mu_);
      SendLocked(true);
    }
    writer_->WritesDone();
    return FromGrpcStatus(writer_->Finish());
  }

 private:
  void SendLocked(bool close) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    batch_.set_subscription_id(id_);
    batch_.set_close(close);
    if (!writer_->Write(batch_)) cancelled_ = true;
    batch_.Clear();
  }

  const std::string id_;
  grpc::ClientContext ctx_;
  api::PublishLogsResponse resp_;
  std::unique_ptr<grpc::ClientWriterInterface<api::PublishLogsMessage>> writer_;
  std::atomic<bool> cancelled_{false};
  absl::Mutex mu_;
  api::PublishLogsMessage batch_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::Status LogPublisher::ReadTask(const std::string& path,
                                    const api::LogSubscriptionOptions& options,
                                    const std::function<bool()>& running,
                                    const std::function<void(const runtime::LogEntry&)>& sink,
                                    absl::Duration poll_interval,
                                    const std::function<void()>& idle) {
  const absl::Time since =
      options.has_since() ? FromTimestamp(options.since()) : absl::InfinitePast();
  auto selected = [&](const runtime::LogEntry& e) {
    return e.time >= since && StreamSelected(options, e.stream);
  };
  // Selected lines to skip: tail > 0 skips that many; tail < 0 keeps the last -tail-1 of
  // those there now (counted in a first pass).
  int64_t skip = options.tail() > 0 ? options.tail() : 0;
  if (options.tail() < 0) {
    int64_t total = 0;
    runtime::ReadLogsOptions count;
    absl::Status s = runtime::ReadLogs(path, count, [&](const runtime::LogEntry& e) {
      if (selected(e)) ++total;
      return true;
    });
    if (!s.ok()) return s;
    skip = std::max<int64_t>(0, total - (-options.tail() - 1));
  }
  runtime::ReadLogsOptions ro;
  ro.follow = options.follow();
  ro.still_running = [&] {
    if (idle) idle();
    return running();
  };
  ro.poll_interval = poll_interval;
  return runtime::ReadLogs(path, ro, [&](const runtime::LogEntry& e) {
    if (!running()) return false;
    if (!selected(e)) return true;
    if (skip > 0) {
      --skip;
      return true;
    }
    sink(e);
    return true;
  });
}

absl::Status LogPublisher::Run(api::LogBroker::StubInterface* stub, grpc::ClientContext* listen) {
  std::unique_ptr<grpc::ClientReaderInterface<api::SubscriptionMessage>> reader =
      stub->ListenSubscriptions(listen, api::ListenSubscriptionsRequest());
  struct Served {
    std::shared_ptr<Publication> pub;
    std::thread thread;
  };
  std::map<std::string, Served> served;
  api::SubscriptionMessage sub;
  while (reader->Read(&sub)) {
    if (sub.close()) {
      if (auto it = served.find(sub.id()); it != served.end()) it->second.pub->Cancel();
      continue;
    }
    if (served.count(sub.id())) continue;
    // Threads of subscriptions that are over are joined as new ones come.
    for (auto it = served.begin(); it != served.end();) {
      if (it->second.pub->cancelled() && it->second.thread.joinable()) {
        it->second.thread.join();
        it = served.erase(it);
      } else {
        ++it;
      }
    }
    auto pub = std::make_shared<Publication>(stub, sub.id());
    std::vector<std::pair<api::Task, std::string>> tasks;
    for (const api::Task& t : options_.tasks()) {
      if (!Selects(sub.selector(), t)) continue;
      absl::StatusOr<std::string> path = options_.log_path(t);
      if (path.ok()) tasks.emplace_back(t, *path);
    }
    std::thread th([this, pub, tasks = std::move(tasks), options = sub.options()] {
      pthread_setname_np(pthread_self(), "agent-logsub");
      auto running = [pub] { return !pub->cancelled(); };
      auto read = [&](const api::Task& task, const std::string& path) {
        absl::Status s = ReadTask(
            path, options, running, [&](const runtime::LogEntry& e) { pub->Add(task, e); },
            options_.poll_interval, [&] { pub->Flush(); });
        if (!s.ok())
          log::Warn(kLog, "cannot read a task's logs", {{"task", task.id()}, {"reason", s}});
      };
      if (options.follow()) {
        std::vector<std::thread> readers;
        for (const auto& [task, path] : tasks) {
          readers.emplace_back([&read, &task = task, &path = path] { read(task, path); });
        }
        for (std::thread& r : readers) r.join();
      } else {
        for (const auto& [task, path] : tasks) read(task, path);
      }
      if (!pub->cancelled()) (void)pub->Close();
      pub->Cancel();  // done: joinable by the listener loop
    });
    served.emplace(sub.id(), Served{pub, std::move(th)});
  }
  for (auto& [id, s] : served) s.pub->Cancel();
  for (auto& [id, s] : served) s.thread.join();
  return FromGrpcStatus(reader->Finish());
}

}  // namespace swarm::agent

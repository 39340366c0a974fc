#include "manager/logbroker/broker.h"

#include <pthread.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/id.h"

namespace swarm::manager::logbroker {

bool Selects(const api::LogSelector& selector, const std::string& service_id,
             const std::string& node_id, const std::string& task_id) {
  auto has = [](const auto& list, const std::string& v) {
    return !v.empty() && std::find(list.begin(), list.end(), v) != list.end();
  };
  return has(selector.service_ids(), service_id) || has(selector.node_ids(), node_id) ||
         has(selector.task_ids(), task_id);
}

LogBroker::LogBroker(const store::MemoryStore* store, Options options)
    : store_(store), options_(std::move(options)) {}

LogBroker::~LogBroker() { Stop(); }

void LogBroker::Start() {
  tick_ = std::thread([this] { TickLoop(); });
}

void LogBroker::Stop() {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    const absl::Status why = absl::UnavailableError("the manager is stopping");
    for (auto& [id, sub] : subs_) actions.push_back([end = sub.sink.end, why] { end(why); });
    for (auto& [node, l] : listeners_) actions.push_back([end = l.sink.end, why] { end(why); });
    subs_.clear();
    listeners_.clear();
  }
  for (auto& a : actions) a();
  if (tick_.joinable()) tick_.join();
}

void LogBroker::TickLoop() {
  pthread_setname_np(pthread_self(), "logbroker-tick");
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.tick_interval)) return;
    }
    Tick();
  }
}

absl::StatusOr<std::string> LogBroker::Subscribe(const api::SubscribeLogsRequest& req,
                                                 Sink<api::SubscribeLogsMessage> sink) {
  const api::LogSelector& sel = req.selector();
  if (sel.service_ids().empty() && sel.node_ids().empty() && sel.task_ids().empty()) {
    return absl::InvalidArgumentError("a log subscription needs a service, task or node");
  }
  // The nodes to ask, and why others cannot answer.
  std::set<std::string> nodes;
  std::map<std::string, std::string> missing;
  store_->View([&](const store::ReadTx& tx) {
    for (const std::string& n : sel.node_ids()) nodes.insert(n);
    for (const auto& t : tx.ListTasks()) {
      if (!t->node_id().empty() && Selects(sel, t->service_id(), t->node_id(), t->id())) {
        nodes.insert(t->node_id());
      }
    }
    for (auto it = nodes.begin(); it != nodes.end();) {
      store::Ptr<api::Node> n = tx.GetNode(*it);
      if (n == nullptr) {
        missing[*it] = "is gone from the swarm";
      } else if (n->status().state() == api::NODE_STATE_DOWN) {
        missing[*it] = "is down";
      }
      it = missing.count(*it) ? nodes.erase(it) : std::next(it);
    }
  });

  const std::string id = NewId(*options_.random);
  Actions actions;
  api::SubscribeLogsMessage notices;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("the manager is stopping");
    Subscription& sub = subs_[id];
    sub.req = req;
    sub.sink = std::move(sink);
    if (!req.options().follow()) sub.deadline = options_.clock->Now() + options_.close_timeout;
    api::SubscriptionMessage ask;
    ask.set_id(id);
    *ask.mutable_selector() = req.selector();
    *ask.mutable_options() = req.options();
    for (const std::string& n : nodes) {
      auto l = listeners_.find(n);
      if (l == listeners_.end()) {
        missing[n] = "is not connected to this manager";
        continue;
      }
      sub.pending.insert(n);
      actions.push_back([send = l->second.sink.send, ask] { send(ask); });
    }
    for (const auto& [n, why] : missing) {
      api::LogUnavailable* u = notices.add_unavailable();
      u->set_node_id(n);
      u->set_reason(absl::StrCat("node ", n, " ", why, ": its logs are unavailable"));
    }
    if (!missing.empty()) {
      actions.insert(actions.begin(), [send = sub.sink.send, notices] { send(notices); });
    }
    EndIfDoneLocked(id, &actions);
  }
  for (auto& a : actions) a();
  return id;
}

void LogBroker::EndIfDoneLocked(const std::string& id, Actions* actions) {
  auto it = subs_.find(id);
  if (it == subs_.end() || !it->second.pending.empty() || it->second.req.options().follow()) {
    return;
  }
  actions->push_back([end = it->second.sink.end] { end(absl::OkStatus()); });
  subs_.erase(it);
}

void LogBroker::DropNodeLocked(const std::string& id, const std::string& node_id,
                               const std::string& why, Actions* actions) {
  auto it = subs_.find(id);
  if (it == subs_.end() || it->second.pending.erase(node_id) == 0) return;
  api::SubscribeLogsMessage notice;
  api::LogUnavailable* u = notice.add_unavailable();
  u->set_node_id(node_id);
  u->set_reason(absl::StrCat("node ", node_id, " ", why, ": its logs are incomplete"));
  actions->push_back([send = it->second.sink.send, notice] { send(notice); });
  EndIfDoneLocked(id, actions);
}

void LogBroker::Unsubscribe(const std::string& id) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    auto it = subs_.find(id);
    if (it == subs_.end()) return;
    api::SubscriptionMessage close;
    close.set_id(id);
    close.set_close(true);
    for (const std::string& n : it->second.pending) {
      if (auto l = listeners_.find(n); l != listeners_.end()) {
        actions.push_back([send = l->second.sink.send, close] { send(close); });
      }
    }
    subs_.erase(it);
  }
  for (auto& a : actions) a();
}

uint64_t LogBroker::Listen(const std::string& node_id, Sink<api::SubscriptionMessage> sink) {
  Actions actions;
  uint64_t token;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      sink.end(absl::UnavailableError("the manager is stopping"));
      return 0;
    }
    token = next_token_++;
    Listener& l = listeners_[node_id];
    if (l.sink.end) {
      actions.push_back([end = l.sink.end] {
        end(absl::AbortedError("a newer log listener of this node replaced this one"));
      });
    }
    l.token = token;
    l.sink = std::move(sink);
  }
  for (auto& a : actions) a();
  return token;
}

void LogBroker::StopListening(const std::string& node_id, uint64_t token) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    auto l = listeners_.find(node_id);
    if (l == listeners_.end() || l->second.token != token) return;
    listeners_.erase(l);
    std::vector<std::string> ids;
    for (const auto& [id, sub] : subs_) {
      if (sub.pending.count(node_id)) ids.push_back(id);
    }
    for (const std::string& id : ids) {
      DropNodeLocked(id, node_id, "disconnected before it sent all its logs", &actions);
    }
  }
  for (auto& a : actions) a();
}

absl::Status LogBroker::Publish(const std::string& node_id, const api::PublishLogsMessage& msg) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    auto it = subs_.find(msg.subscription_id());
    if (it == subs_.end()) {
      return absl::NotFoundError(
          absl::StrCat("log subscription ", msg.subscription_id(), " is over"));
    }
    Subscription& sub = it->second;
    if (!sub.pending.count(node_id)) {
      return absl::PermissionDeniedError(absl::StrCat("log subscription ", msg.subscription_id(),
                                                      " does not expect logs from ", node_id));
    }
    if (!msg.messages().empty()) {
      api::SubscribeLogsMessage out;
      for (const api::LogMessage& m : msg.messages()) {
        api::LogMessage* o = out.add_messages();
        *o = m;
        // The node is who published, whatever the message says.
        o->mutable_context()->set_node_id(node_id);
      }
      actions.push_back([send = sub.sink.send, out = std::move(out)] { send(out); });
    }
    if (msg.close()) {
      sub.pending.erase(node_id);
      EndIfDoneLocked(msg.subscription_id(), &actions);
    }
  }
  for (auto& a : actions) a();
  return absl::OkStatus();
}

void LogBroker::PublishEnded(const std::string& node_id, const std::string& id) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    DropNodeLocked(id, node_id, "stopped publishing before it sent all its logs", &actions);
  }
  for (auto& a : actions) a();
}

void LogBroker::Tick() {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = options_.clock->Now();
    std::vector<std::string> late;
    for (const auto& [id, sub] : subs_) {
      if (now >= sub.deadline) late.push_back(id);
    }
    const std::string why = absl::StrCat("did not finish sending its logs within ",
                                         absl::FormatDuration(options_.close_timeout));
    for (const std::string& id : late) {
      const std::set<std::string> pending = subs_[id].pending;
      for (const std::string& n : pending) DropNodeLocked(id, n, why, &actions);
      EndIfDoneLocked(id, &actions);
    }
  }
  for (auto& a : actions) a();
}

size_t LogBroker::subscriptions() const {
  absl::MutexLock lock(&mu_);
  return subs_.size();
}

size_t LogBroker::listeners() const {
  absl::MutexLock lock(&mu_);
  return listeners_.size();
}

std::shared_ptr<LogBroker> BrokerSlot::Get() const {
  absl::MutexLock lock(&mu_);
  return broker_;
}

void BrokerSlot::Set(std::shared_ptr<LogBroker> broker) {
  absl::MutexLock lock(&mu_);
  broker_ = std::move(broker);
}

void BrokerSlot::Clear(const LogBroker* broker) {
  absl::MutexLock lock(&mu_);
  if (broker_.get() == broker) broker_.reset();
}

void LeaderLogBroker::Start() {
  broker_ = std::make_shared<LogBroker>(store_, options_);
  broker_->Start();
  slot_->Set(broker_);
}

void LeaderLogBroker::Stop() {
  if (broker_ == nullptr) return;
  slot_->Clear(broker_.get());
  broker_->Stop();
  broker_.reset();
}

}  // namespace swarm::manager::logbroker

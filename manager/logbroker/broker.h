// LogBroker: the manager's side of `service logs`. A client's subscription (Logs.SubscribeLogs)
// is resolved against the store to the nodes that run (or ran) the selected tasks; each node
// whose agent listens here (LogBroker.ListenSubscriptions) is asked to publish, and the lines
// it publishes (LogBroker.PublishLogs) are passed to the client. Nodes that cannot publish
// (gone from the store, DOWN, or not listening here) are named to the client at once
// (LogUnavailable), so a dead node never holds a subscription up.
//
// Close semantics. Without follow, a subscription ends once every node asked has closed its
// part (PublishLogsMessage.close), or at its deadline (Options::close_timeout after it began):
// nodes that have not finished by then are reported unavailable ("did not finish sending its
// logs within 10s") and the stream ends. A listener that goes away, or a publish stream that
// breaks before close, is reported the same way for its node. With follow, a subscription
// lasts until the client goes away (Unsubscribe), which tells its nodes to stop.
//
// Where it lives: on the leader only, as a leader-only component (LeaderLogBroker), so that one
// broker sees every subscription and every agent; the other managers relay both clients' and
// agents' calls to it (service.h). Each leadership gets a new broker; the end of a leadership
// ends its streams (UNAVAILABLE), and agents and clients reconnect to the new leader.
//
// Owner: LeaderLogBroker (shared with the calls in flight). Thread-safety: thread-safe. Sinks are
// called without mu_ held and must not block (they queue onto gRPC streams). Threads:
// "logbroker-tick" (deadlines), started by Start and joined by Stop.
#ifndef SWARM_MANAGER_LOGBROKER_BROKER_H_
#define SWARM_MANAGER_LOGBROKER_BROKER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/random.h"
#include "manager/leader/runtime.h"
#include "manager/store/store.h"
#include "proto/logbroker.pb.h"

namespace swarm::manager::logbroker {

// A stream to write to: messages are queued, End finishes it (once).
template <typename Message>
struct Sink {
  std::function<void(Message)> send;
  std::function<void(absl::Status)> end;
};

class LogBroker {
 public:
  struct Options {
    Clock* clock = &Clock::Real();
    Random* random = &SecureRandom::Get();
    // How long a subscription without follow waits for its nodes to close their parts.
    absl::Duration close_timeout = absl::Seconds(10);
    // How often deadlines are checked by the tick thread.
    absl::Duration tick_interval = absl::Milliseconds(200);
  };

  LogBroker(const store::MemoryStore* store, Options options);
  ~LogBroker();
  LogBroker(const LogBroker&) = delete;
  LogBroker& operator=(const LogBroker&) = delete;

  void Start();
  // Ends every subscription and listener (UNAVAILABLE), joins the tick thread.
  void Stop();

  // A client's subscription; returns its ID. INVALID_ARGUMENT for an empty selector.
  // Notices of unavailable nodes are sent before this returns; the sink may be ended before
  // it returns too (no node to wait for).
  absl::StatusOr<std::string> Subscribe(const api::SubscribeLogsRequest& req,
                                        Sink<api::SubscribeLogsMessage> sink);
  // The client went away: the nodes still publishing are told to stop.
  void Unsubscribe(const std::string& id);

  // An agent listens for the subscriptions of its node; returns a token for StopListening.
  // A newer listener of the same node replaces the older one (which is ended).
  uint64_t Listen(const std::string& node_id, Sink<api::SubscriptionMessage> sink);
  void StopListening(const std::string& node_id, uint64_t token);

  // Lines from node_id for a subscription. NOT_FOUND when the subscription is over (the agent
  // stops), PERMISSION_DENIED when it did not ask node_id.
  absl::Status Publish(const std::string& node_id, const api::PublishLogsMessage& msg);
  // A publish stream of node_id for subscription `id` ended; without a close before, the
  // node's part is reported missing.
  void PublishEnded(const std::string& node_id, const std::string& id);

  // Ends subscriptions past their deadline (the tick thread calls it; tests may too).
  void Tick();

  // Subscriptions in progress (tests).
  size_t subscriptions() const;
  // Nodes listening (tests).
  size_t listeners() const;

 private:
  struct Subscription {
    api::SubscribeLogsRequest req;
    Sink<api::SubscribeLogsMessage> sink;
    // Nodes asked that have not closed their part yet.
    std::set<std::string> pending;
    absl::Time deadline = absl::InfiniteFuture();
  };
  struct Listener {
    uint64_t token = 0;
    Sink<api::SubscriptionMessage> sink;
  };
  // What to do once mu_ is released.
  using Actions = std::vector<std::function<void()>>;

  // Reports node's part of sub missing and drops it; ends sub when nothing is left.
  void DropNodeLocked(const std::string& id, const std::string& node_id, const std::string& why,
                      Actions* actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndIfDoneLocked(const std::string& id, Actions* actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TickLoop();

  const store::MemoryStore* store_;
  const Options options_;

  mutable absl::Mutex mu_;
  std::map<std::string, Subscription> subs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Listener> listeners_ ABSL_GUARDED_BY(mu_);
  uint64_t next_token_ ABSL_GUARDED_BY(mu_) = 1;
  // Signalled by Stop (through Await).
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread tick_;
};

// Where the gRPC services find the broker: set while this manager leads, empty otherwise.
// Thread-safe.
class BrokerSlot {
 public:
  std::shared_ptr<LogBroker> Get() const;
  void Set(std::shared_ptr<LogBroker> broker);
  // Empties the slot if it still holds this broker.
  void Clear(const LogBroker* broker);

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<LogBroker> broker_ ABSL_GUARDED_BY(mu_);
};

// The broker as a leader-only component: each leadership starts a new LogBroker and publishes
// it in the slot; Stop withdraws it and ends its streams. Calls in flight keep the stopped
// object alive until they end.
class LeaderLogBroker final : public leader::Component {
 public:
  LeaderLogBroker(const store::MemoryStore* store, LogBroker::Options options, BrokerSlot* slot)
      : store_(store), options_(std::move(options)), slot_(slot) {}
  ~LeaderLogBroker() override { Stop(); }

  const char* name() const override { return "logbroker"; }
  void Start() override;
  void Stop() override;

 private:
  const store::MemoryStore* store_;
  LogBroker::Options options_;
  BrokerSlot* slot_;
  std::shared_ptr<LogBroker> broker_;
};

// Whether a task is selected (the union of the selector's lists).
bool Selects(const api::LogSelector& selector, const std::string& service_id,
             const std::string& node_id, const std::string& task_id);

}  // namespace swarm::manager::logbroker

#endif  // SWARM_MANAGER_LOGBROKER_BROKER_H_

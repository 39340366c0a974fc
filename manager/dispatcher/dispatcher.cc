#include "manager/dispatcher/dispatcher.h"

#include <google/protobuf/util/message_differencer.h>
#include <pthread.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/id.h"
#include "common/logging.h"
#include "common/proto_time.h"

namespace swarm::manager::dispatcher {
namespace {

constexpr char kLog[] = "dispatcher";
// Attempts of one transaction that keeps losing races with other writers.
constexpr int kMaxAttempts = 5;
constexpr char kHeartbeatFailure[] = "heartbeat failure";

using google::protobuf::util::MessageDifferencer;

bool IsManager(const api::Node& n) {
  return n.role() == api::NODE_ROLE_MANAGER || n.has_manager_status();
}

// The root certificates agents must trust: the current root, and the next one during a root
// rotation.
std::string RootCaOf(const api::Cluster& c) {
  std::string pem = c.root_ca().ca_cert();
  const std::string& next = c.root_ca().root_rotation().ca_cert();
  if (!next.empty()) {
    if (!pem.empty() && pem.back() != '\n') pem += '\n';
    pem += next;
  }
  return pem;
}

// Whether two nodes' network attachments hold the same addresses on the same networks (the
// Network copies in them are not sent: the networks are, from the store).
bool SameAttachments(const api::Node& a, const api::Node& b) {
  if (a.attachments_size() != b.attachments_size()) return false;
  for (int i = 0; i < a.attachments_size(); ++i) {
    const api::NetworkAttachment& x = a.attachments(i);
    const api::NetworkAttachment& y = b.attachments(i);
    if (x.network().id() != y.network().id() ||
        !std::equal(x.addresses().begin(), x.addresses().end(), y.addresses().begin(),
                    y.addresses().end())) {
      return false;
    }
  }
  return true;
}

bool Retryable(const absl::Status& s) {
  // Out of sequence (another writer won the race) or an object gone since it was read: the
  // transaction is rebuilt from fresh reads.
  return s.code() == absl::StatusCode::kFailedPrecondition ||
         s.code() == absl::StatusCode::kNotFound;
}

}  // namespace

// ---- lifecycle ----

Dispatcher::Dispatcher(store::MemoryStore* store, Options options)
    : store_(store),
      options_(std::move(options)),
      clock_(options_.clock),
      jitter_(options_.random->Next64()) {}

Dispatcher::~Dispatcher() { Stop(); }

void Dispatcher::Start() {
  // Events from now on; what came before is read below (an event for something already read
  // is harmless: every step compares against the store).
  absl::StatusOr<std::shared_ptr<store::Watch>> watch = store_->WatchFrom(0);
  if (watch.ok()) watch_ = *watch;
  std::vector<store::Ptr<api::Node>> nodes;
  ClusterView cluster;
  store_->View([&](const store::ReadTx& tx) {
    nodes = tx.ListNodes();
    cluster = ReadCluster(tx);
  });
  {
    absl::MutexLock lock(&mu_);
    if (started_ || stopping_) return;
    started_ = true;
    period_ = cluster.period;
    common_ = std::move(cluster.common);
    // Agents reconnect after a leader change: nobody is marked down before a full grace.
    const absl::Time deadline = clock_->Now() + GraceLocked();
    for (const store::Ptr<api::Node>& n : nodes) {
      if (n->status().state() != api::NODE_STATE_DOWN) nodes_[n->id()].deadline = deadline;
    }
  }
  log::Info(kLog, "dispatcher started", {{"nodes", nodes.size()}});
  if (!options_.threads) return;
  writer_ = std::thread([this] { RunWriter(); });
  watcher_ = std::thread([this] { RunWatcher(); });
}

void Dispatcher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (writer_.joinable()) writer_.join();
  if (watcher_.joinable()) watcher_.join();
  if (watch_) watch_->Close();
  std::vector<std::function<void()>> ends;
  std::vector<Reports> reports;
  {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> ids;
    for (const auto& [id, n] : nodes_) ids.push_back(id);
    const absl::Status why = absl::UnavailableError(
        "this manager stopped leading the swarm; start a new session (any manager will do)");
    for (const std::string& id : ids) {
      for (auto& end : ForgetLocked(id, why)) ends.push_back(std::move(end));
    }
    reports.swap(reports_);
    node_writes_.clear();
    queued_updates_ = 0;
  }
  for (auto& end : ends) end();
  for (Reports& r : reports) {
    r.done(absl::UnavailableError(
        "this manager stopped leading the swarm before the task states were written; send "
        "them again"));
  }
}

// ---- RPCs ----

absl::Status Dispatcher::OpenSession(const std::string& node_id, const std::string& addr,
                                     const api::NodeDescription& description,
                                     std::shared_ptr<SessionStream> stream) {
  bool known = false;
  store_->View([&](const store::ReadTx& tx) { known = tx.GetNode(node_id) != nullptr; });
  if (!known) {
    return absl::PermissionDeniedError(
        absl::StrCat("node ", node_id,
                     " is not part of this swarm (it was removed, or never joined); join it "
                     "again with a join token"));
  }
  std::vector<std::function<void()>> ends;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || !started_) {
      return absl::UnavailableError(
          "this manager's dispatcher is starting or stopping; start a new session in a moment");
    }
    const absl::Time now = clock_->Now();
    Node& n = nodes_[node_id];
    const absl::Status replaced = absl::AbortedError("replaced by a newer session of this node");
    if (n.stream) ends.push_back([s = std::move(n.stream), replaced] { s->End(replaced); });
    if (n.assignments) {
      ends.push_back([a = std::move(n.assignments), replaced] { a->stream->End(replaced); });
    }
    n.generation = next_generation_++;
    n.session_id = NewId(*options_.random);
    n.stream = std::move(stream);
    n.registered = false;
    n.node_version = 0;
    n.deadline = now + GraceLocked();
    if (!n.limiter) n.limiter.emplace(options_.updates_per_second, options_.update_burst, now);
    n.limited = false;
    dirty_.erase(node_id);
    sessions_due_.erase(node_id);
    node_writes_[node_id] = NodeWrite{true, n.generation, description, addr};
  }
  for (auto& end : ends) end();
  log::Debug(kLog, "session opened", {{"node", node_id}, {"addr", addr}});
  return absl::OkStatus();
}

absl::StatusOr<absl::Duration> Dispatcher::Heartbeat(const std::string& node_id,
                                                     const std::string& session_id) {
  absl::MutexLock lock(&mu_);
  Node* n = SessionLocked(node_id, session_id);
  if (n == nullptr) return absl::NotFoundError(kUnknownSessionMessage);
  n->deadline = clock_->Now() + GraceLocked();
  constexpr uint64_t kSteps = 1000;
  const double jitter = kJitterFraction * jitter_.Uniform(kSteps) / kSteps;
  return period_ * (1 + jitter);
}

void Dispatcher::UpdateTaskStatus(const std::string& node_id,
                                  const api::UpdateTaskStatusRequest& request,
                                  std::function<void(absl::Status)> done) {
  const size_t count = request.updates_size();
  absl::Status refused;
  bool log_limit = false;
  {
    absl::MutexLock lock(&mu_);
    Node* n = SessionLocked(node_id, request.session_id());
    if (n == nullptr) {
      refused = absl::NotFoundError(kUnknownSessionMessage);
    } else if (count == 0) {
      // Nothing to write.
    } else if (!n->limiter->Take(count, clock_->Now())) {
      log_limit = !n->limited;
      n->limited = true;
      refused = absl::ResourceExhaustedError(
          absl::StrCat("node ", node_id, " sends task states faster than ",
                       options_.updates_per_second, " a second (at most ", options_.update_burst,
                       " at once); send them again in a moment, in smaller batches"));
    } else {
      n->limited = false;
      reports_.push_back(
          Reports{node_id, {request.updates().begin(), request.updates().end()}, std::move(done)});
      queued_updates_ += count;
      return;
    }
  }
  if (log_limit) {
    log::Warn(kLog, "a node floods task states: refusing them until it slows down",
              {{"node", node_id}, {"updates", count}});
  }
  done(refused);
}

absl::Status Dispatcher::OpenAssignments(const std::string& node_id, const std::string& session_id,
                                         std::shared_ptr<AssignmentsStream> stream) {
  std::shared_ptr<Assignments> old;
  {
    absl::MutexLock lock(&mu_);
    Node* n = SessionLocked(node_id, session_id);
    if (n == nullptr) return absl::NotFoundError(kUnknownSessionMessage);
    old = std::move(n->assignments);
    n->assignments = std::make_shared<Assignments>();
    n->assignments->stream = std::move(stream);
    dirty_.insert(node_id);
  }
  if (old) old->stream->End(absl::AbortedError("replaced by a newer assignments stream"));
  return absl::OkStatus();
}

void Dispatcher::StreamClosed(const std::string& node_id, const SessionStream* stream) {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node_id);
  if (it != nodes_.end() && it->second.stream.get() == stream) it->second.stream.reset();
}

void Dispatcher::StreamClosed(const std::string& node_id, const AssignmentsStream* stream) {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node_id);
  if (it != nodes_.end() && it->second.assignments &&
      it->second.assignments->stream.get() == stream) {
    it->second.assignments.reset();
  }
}

size_t Dispatcher::sessions() const {
  absl::MutexLock lock(&mu_);
  return std::count_if(nodes_.begin(), nodes_.end(),
                       [](const auto& e) { return e.second.generation != 0; });
}

// ---- the steps ----

void Dispatcher::ProcessEvents() {
  if (watch_ == nullptr) return;
  std::vector<std::function<void()>> ends;
  bool reread = false;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    // Networks whose endpoint records may have changed: every node taking part is due.
    absl::flat_hash_set<std::string> networks;
    for (auto e = watch_->Next(absl::ZeroDuration()); e.has_value();
         e = watch_->Next(absl::ZeroDuration())) {
      const api::StoreAction& obj = e->new_object ? *e->new_object : *e->old_object;
      switch (obj.target_case()) {
        case api::StoreAction::kTask:
          // The node the task left and the node it is on, and its networks' other nodes.
          for (const auto& o : {e->old_object, e->new_object}) {
            if (o == nullptr) continue;
            for (const api::NetworkAttachment& a : o->task().networks()) {
              networks.insert(a.network().id());
            }
            if (o->task().node_id().empty()) continue;
            auto it = nodes_.find(o->task().node_id());
            if (it != nodes_.end() && it->second.assignments) dirty_.insert(it->first);
          }
          break;
        case api::StoreAction::kNetwork:
          // Sent as it is to the nodes taking part in it (and withdrawn when it goes).
          networks.insert(obj.network().id());
          break;
        case api::StoreAction::kService:
          // Its name, VIPs and published ports are in its tasks' records.
          for (const auto& o : {e->old_object, e->new_object}) {
            if (o == nullptr) continue;
            for (const auto& vip : o->service().endpoint().virtual_ips()) {
              networks.insert(vip.network_id());
            }
          }
          break;
        case api::StoreAction::kSecret:
        case api::StoreAction::kConfig: {
          // A new one is nobody's yet: tasks refer to it through their own events.
          if (e->kind == api::STORE_ACTION_KIND_CREATE) break;
          const bool secret = obj.has_secret();
          const std::string& id = secret ? obj.secret().id() : obj.config().id();
          for (const auto& [node_id, n] : nodes_) {
            if (n.assignments &&
                (secret ? n.assignments->set.HasSecret(id) : n.assignments->set.HasConfig(id))) {
              dirty_.insert(node_id);
            }
          }
          break;
        }
        case api::StoreAction::kNode: {
          const api::Node& node = obj.node();
          if (e->kind == api::STORE_ACTION_KIND_REMOVE) {
            for (auto& end :
                 ForgetLocked(node.id(), absl::PermissionDeniedError(absl::StrCat(
                                             "node ", node.id(), " was removed from the swarm")))) {
              ends.push_back(std::move(end));
            }
            node_writes_.erase(node.id());
          } else if (auto it = nodes_.find(node.id()); it == nodes_.end()) {
            // A node that just joined has a grace period to open its session.
            if (e->kind == api::STORE_ACTION_KIND_CREATE &&
                node.status().state() != api::NODE_STATE_DOWN) {
              nodes_[node.id()].deadline = now + GraceLocked();
            }
          } else if (it->second.registered && e->index > it->second.node_version) {
            sessions_due_.insert(node.id());
          }
          // A node's address is in the records of its tasks and of its ingress sandbox.
          if (e->old_object && e->new_object &&
              e->old_object->node().status().addr() != node.status().addr()) {
            for (const auto& [id, n] : nodes_) {
              if (n.assignments && n.assignments->set.HasNodeEndpoints(node.id())) {
                dirty_.insert(id);
              }
            }
          }
          // Its ingress address (allocated, dropped, or gone with the node) is a record for
          // every node of the ingress network, and makes the node itself take part in it.
          const api::Node& none = api::Node::default_instance();
          const api::Node& before = e->old_object ? e->old_object->node() : none;
          const api::Node& after = e->new_object ? e->new_object->node() : none;
          if (!SameAttachments(before, after)) {
            for (const api::Node* o : {&before, &after}) {
              for (const api::NetworkAttachment& a : o->attachments()) {
                networks.insert(a.network().id());
              }
            }
            if (auto it = nodes_.find(node.id()); it != nodes_.end() && it->second.assignments) {
              dirty_.insert(node.id());
            }
          }
          if ((e->old_object && IsManager(e->old_object->node())) ||
              (e->new_object && IsManager(e->new_object->node()))) {
            reread = true;
          }
          break;
        }
        case api::StoreAction::kCluster:
          reread = true;
          break;
        default:
          break;
      }
    }
    if (!networks.empty()) {
      for (const auto& [id, n] : nodes_) {
        if (!n.assignments) continue;
        for (const std::string& network_id : networks) {
          if (n.assignments->set.HasNetwork(network_id)) {
            dirty_.insert(id);
            break;
          }
        }
      }
    }
  }
  for (auto& end : ends) end();
  if (!reread) return;
  ClusterView cluster;
  store_->View([&](const store::ReadTx& tx) { cluster = ReadCluster(tx); });
  absl::MutexLock lock(&mu_);
  period_ = cluster.period;
  if (!SameCommon(cluster.common, common_)) {
    common_ = std::move(cluster.common);
    all_sessions_due_ = true;
  }
}

void Dispatcher::ExpireHeartbeats() {
  std::vector<std::function<void()>> ends;
  std::vector<std::string> expired;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    const absl::Time now = clock_->Now();
    for (const auto& [id, n] : nodes_) {
      if (n.deadline <= now) expired.push_back(id);
    }
    const absl::Status why = absl::UnavailableError(
        absl::StrCat("no heartbeat within ", absl::FormatDuration(GraceLocked()),
                     ": the node is marked down; start a new session"));
    for (const std::string& id : expired) {
      const uint64_t generation = nodes_[id].generation;
      for (auto& end : ForgetLocked(id, why)) ends.push_back(std::move(end));
      node_writes_[id] = NodeWrite{false, generation, {}, {}};
    }
  }
  for (auto& end : ends) end();
}

void Dispatcher::FlushAssignments() {
  struct AssignmentsDue {
    std::string node_id;
    std::shared_ptr<Assignments> assignments;
  };
  struct SessionDue {
    std::string node_id;
    uint64_t generation;
    std::string session_id;
    std::shared_ptr<SessionStream> stream;
    api::SessionMessage message;
  };
  std::vector<AssignmentsDue> assignments;
  std::vector<SessionDue> sessions;
  SessionCommon common;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = dirty_.begin(); it != dirty_.end();) {
      auto n = nodes_.find(*it);
      if (n == nodes_.end() || !n->second.assignments) {
        dirty_.erase(it++);
      } else if (n->second.assignments->stream->Busy()) {
        ++it;  // its changes wait, and go out together once the stream has written
      } else {
        assignments.push_back({*it, n->second.assignments});
        dirty_.erase(it++);
      }
    }
    auto due = [&](const std::string& id, const Node& n) {
      if (n.registered && n.stream) sessions.push_back({id, n.generation, n.session_id, n.stream});
    };
    if (all_sessions_due_) {
      for (const auto& [id, n] : nodes_) due(id, n);
    } else {
      for (const std::string& id : sessions_due_) {
        if (auto it = nodes_.find(id); it != nodes_.end()) due(id, it->second);
      }
    }
    all_sessions_due_ = false;
    sessions_due_.clear();
    if (!sessions.empty()) common = common_;
  }
  if (assignments.empty() && sessions.empty()) return;

  // Under the store's lock, only shared pointers are taken; the messages (copies of every
  // changed task) are built after, so the Raft loop's applies do not wait for the fan-out.
  std::vector<NodeAssignments> reads(assignments.size());
  std::vector<store::Ptr<api::Node>> nodes(sessions.size());
  store_->View([&](const store::ReadTx& tx) {
    for (size_t i = 0; i < assignments.size(); ++i) {
      reads[i] = ReadAssignments(tx, assignments[i].node_id);
    }
    for (size_t i = 0; i < sessions.size(); ++i) nodes[i] = tx.GetNode(sessions[i].node_id);
  });
  std::vector<std::pair<AssignmentsStream*, api::AssignmentsMessage>> messages;
  for (size_t i = 0; i < assignments.size(); ++i) {
    std::optional<api::AssignmentsMessage> m = assignments[i].assignments->set.Next(reads[i]);
    if (m) messages.emplace_back(assignments[i].assignments->stream.get(), *std::move(m));
  }
  for (size_t i = 0; i < sessions.size(); ++i) {
    if (nodes[i]) sessions[i].message = SessionMessageOf(sessions[i].session_id, *nodes[i], common);
  }
  {
    absl::MutexLock lock(&mu_);
    for (SessionDue& s : sessions) {
      auto it = nodes_.find(s.node_id);
      if (it == nodes_.end() || it->second.generation != s.generation || !s.message.has_node()) {
        s.stream = nullptr;  // ended meanwhile, or the node is gone (its event ends it)
        continue;
      }
      it->second.node_version = s.message.node().meta().version().index();
    }
  }
  // The streams are held by `assignments` and `sessions` until sent.
  for (auto& [stream, m] : messages) stream->Send(std::move(m));
  for (SessionDue& s : sessions) {
    if (s.stream) s.stream->Send(std::move(s.message));
  }
}

void Dispatcher::FlushWrites() {
  std::map<std::string, NodeWrite> node_writes;
  std::vector<Reports> reports;
  {
    absl::MutexLock lock(&mu_);
    node_writes.swap(node_writes_);
    reports.swap(reports_);
    queued_updates_ = 0;
  }
  if (node_writes.empty() && reports.empty()) return;

  // One write per object: the node states, and per (node, task) the furthest state reported
  // (the latest of equal ones), remembering which calls reported it.
  struct Write {
    std::string node_id;
    const NodeWrite* node = nullptr;
    const api::TaskStatusUpdate* task = nullptr;
    std::vector<size_t> reports;
  };
  std::vector<Write> writes;
  for (const auto& [id, w] : node_writes) writes.push_back(Write{id, &w, nullptr, {}});
  std::map<std::pair<std::string, std::string>, size_t> by_task;
  for (size_t r = 0; r < reports.size(); ++r) {
    for (const api::TaskStatusUpdate& u : reports[r].updates) {
      auto [it, fresh] = by_task.emplace(std::pair(reports[r].node_id, u.task_id()), writes.size());
      if (fresh) writes.push_back(Write{reports[r].node_id, nullptr, &u, {}});
      Write& w = writes[it->second];
      if (w.reports.empty() || w.reports.back() != r) w.reports.push_back(r);
      if (u.status().state() >= w.task->status().state()) w.task = &u;
    }
  }

  std::vector<absl::Status> results(reports.size());
  // Sessions whose READY write committed, and those whose write failed (why).
  std::vector<std::pair<std::string, uint64_t>> registered;
  std::vector<std::pair<std::string, absl::Status>> failed;
  const size_t per_tx = std::max<size_t>(1, options_.max_writes_per_transaction);
  for (size_t begin = 0, end = 0; begin < writes.size(); begin = end) {
    // What the last attempt decided, for the log and the sessions.
    std::vector<std::pair<size_t, absl::Status>> ignored;
    std::vector<size_t> missing_nodes;
    std::vector<std::pair<std::string, bool>> transitions;  // node, now ready
    absl::Status s;
    for (int attempt = 1;; ++attempt) {
      s = store_->Update([&](store::WriteTx& tx) {
        ignored.clear();
        missing_nodes.clear();
        transitions.clear();
        const google::protobuf::Timestamp now = ToTimestamp(clock_->Now());
        for (end = begin; end < writes.size() && end - begin < per_tx &&
                          tx.bytes() < store::kMaxTransactionBytes;
             ++end) {
          const size_t i = end;
          const Write& w = writes[i];
          if (w.node != nullptr) {
            store::Ptr<api::Node> cur = tx.GetNode(w.node_id);
            if (cur == nullptr) {
              missing_nodes.push_back(i);
              continue;
            }
            const api::NodeStatus& st = cur->status();
            api::Node next = *cur;
            if (w.node->ready) {
              const bool has_description = w.node->description.ByteSizeLong() > 0;
              // The agent does not report what its node trusts; the CA records it.
              api::NodeDescription described = w.node->description;
              *described.mutable_tls_info() = cur->description().tls_info();
              if (st.state() == api::NODE_STATE_READY && st.addr() == w.node->addr &&
                  st.message().empty() &&
                  (!has_description || MessageDifferencer::Equals(described, cur->description()))) {
                continue;  // as it is (a reconnect after a leader change)
              }
              if (has_description) *next.mutable_description() = described;
              next.mutable_status()->set_state(api::NODE_STATE_READY);
              next.mutable_status()->clear_message();
              next.mutable_status()->set_addr(w.node->addr);
            } else {
              if (st.state() == api::NODE_STATE_DOWN) continue;
              next.mutable_status()->set_state(api::NODE_STATE_DOWN);
              next.mutable_status()->set_message(kHeartbeatFailure);
            }
            if (st.state() != next.status().state())
              transitions.emplace_back(w.node_id, w.node->ready);
            tx.UpdateObject(next);
            continue;
          }
          store::Ptr<api::Task> cur = tx.GetTask(w.task->task_id());
          if (absl::Status ok = CheckTaskStatus(cur.get(), w.node_id, w.task->status()); !ok.ok()) {
            ignored.emplace_back(i, std::move(ok));
            continue;
          }
          api::Task next = *cur;
          *next.mutable_status() = w.task->status();
          next.mutable_status()->set_applied_by(options_.node_id);
          *next.mutable_status()->mutable_applied_at() = now;
          tx.UpdateObject(next);
        }
        return absl::OkStatus();
      });
      if (s.ok() || attempt == kMaxAttempts || !Retryable(s)) break;
    }
    if (!s.ok()) {
      log::Warn(kLog, "task and node states not written", {{"reason", s}, {"writes", end - begin}});
    }
    for (size_t i = begin; i < end; ++i) {
      const Write& w = writes[i];
      if (w.node != nullptr) {
        if (!s.ok()) {
          if (w.node->ready) failed.emplace_back(w.node_id, s);
        } else if (w.node->ready && std::find(missing_nodes.begin(), missing_nodes.end(), i) ==
                                        missing_nodes.end()) {
          registered.emplace_back(w.node_id, w.node->generation);
        } else if (w.node->ready) {
          failed.emplace_back(w.node_id, absl::PermissionDeniedError(absl::StrCat(
                                             "node ", w.node_id, " was removed from the swarm")));
        }
        continue;
      }
      if (s.ok()) continue;
      for (size_t r : w.reports) {
        if (results[r].ok()) results[r] = s;
      }
    }
    if (!s.ok()) continue;
    for (const auto& [i, why] : ignored) {
      // Stale and repeated reports are the normal result of races and retries; the others
      // say that an agent and the managers disagree about a task.
      log::Log(why.code() == absl::StatusCode::kFailedPrecondition ? log::Level::kDebug
                                                                   : log::Level::kInfo,
               kLog, "ignored a task state report",
               {{"node", writes[i].node_id},
                {"task", writes[i].task->task_id()},
                {"state", api::TaskState_Name(writes[i].task->status().state())},
                {"reason", why.message()}});
    }
    for (const auto& [id, ready] : transitions) {
      if (ready) {
        log::Info(kLog, "node is ready", {{"node", id}});
      } else {
        log::Warn(kLog, "node is down: it missed its heartbeats", {{"node", id}});
      }
    }
  }

  std::vector<std::function<void()>> ends;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, generation] : registered) {
      auto it = nodes_.find(id);
      if (it == nodes_.end() || it->second.generation != generation) continue;
      it->second.registered = true;
      sessions_due_.insert(id);  // the first SessionMessage
    }
    for (auto& [id, why] : failed) {
      auto it = nodes_.find(id);
      if (it == nodes_.end() || it->second.registered) continue;
      for (auto& end : ForgetLocked(id, why)) ends.push_back(std::move(end));
    }
  }
  for (auto& end : ends) end();
  for (size_t r = 0; r < reports.size(); ++r) reports[r].done(results[r]);
}

// ---- helpers ----

absl::Duration Dispatcher::GraceLocked() const { return period_ * kGraceMultiplier; }

Dispatcher::Node* Dispatcher::SessionLocked(const std::string& node_id,
                                            const std::string& session_id) {
  auto it = nodes_.find(node_id);
  if (it == nodes_.end() || it->second.generation == 0 || session_id.empty() ||
      it->second.session_id != session_id) {
    return nullptr;
  }
  return &it->second;
}

Dispatcher::ClusterView Dispatcher::ReadCluster(const store::ReadTx& tx) {
  ClusterView v;
  for (const store::Ptr<api::Cluster>& c : tx.ListClusters()) {
    if (c->spec().dispatcher().has_heartbeat_period()) {
      const absl::Duration d = FromProtoDuration(c->spec().dispatcher().heartbeat_period());
      if (d > absl::ZeroDuration()) v.period = d;
    }
    v.common.root_ca = RootCaOf(*c);
    v.common.keys.assign(c->network_bootstrap_keys().begin(), c->network_bootstrap_keys().end());
  }
  for (const store::Ptr<api::Node>& n : tx.ListNodes()) {
    if (n->role() != api::NODE_ROLE_MANAGER || n->manager_status().addr().empty()) continue;
    api::WeightedPeer p;
    p.mutable_peer()->set_node_id(n->id());
    p.mutable_peer()->set_addr(n->manager_status().addr());
    p.set_weight(kManagerWeight);
    v.common.managers.push_back(std::move(p));
  }
  std::sort(v.common.managers.begin(), v.common.managers.end(),
            [](const api::WeightedPeer& a, const api::WeightedPeer& b) {
              return a.peer().node_id() < b.peer().node_id();
            });
  return v;
}

bool Dispatcher::SameCommon(const SessionCommon& a, const SessionCommon& b) {
  auto same = [](const auto& x, const auto& y) {
    return std::equal(x.begin(), x.end(), y.begin(), y.end(), [](const auto& m, const auto& n) {
      return MessageDifferencer::Equals(m, n);
    });
  };
  return a.root_ca == b.root_ca && same(a.managers, b.managers) && same(a.keys, b.keys);
}

api::SessionMessage Dispatcher::SessionMessageOf(const std::string& session_id,
                                                 const api::Node& node,
                                                 const SessionCommon& common) {
  api::SessionMessage m;
  m.set_session_id(session_id);
  *m.mutable_node() = node;
  for (const api::WeightedPeer& p : common.managers) *m.add_managers() = p;
  for (const api::EncryptionKey& k : common.keys) *m.add_network_bootstrap_keys() = k;
  m.set_root_ca(common.root_ca);
  return m;
}

std::vector<std::function<void()>> Dispatcher::ForgetLocked(const std::string& node_id,
                                                            absl::Status why) {
  std::vector<std::function<void()>> ends;
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) return ends;
  if (it->second.stream) ends.push_back([s = std::move(it->second.stream), why] { s->End(why); });
  if (it->second.assignments) {
    ends.push_back([a = std::move(it->second.assignments), why] { a->stream->End(why); });
  }
  nodes_.erase(it);
  dirty_.erase(node_id);
  sessions_due_.erase(node_id);
  return ends;
}

// ---- threads ----

void Dispatcher::RunWriter() {
  pthread_setname_np(pthread_self(), "dispatch-write");
  absl::Time last_flush = absl::InfinitePast();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Dispatcher* d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(d->mu_) {
            return d->stopping_ || !d->node_writes_.empty() || !d->reports_.empty();
          },
          this));
      if (stopping_) return;
      // Writes gather until batch_window after the previous flush, unless the batch is full:
      // under load, few large transactions; after a quiet spell, the first write goes at once.
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](Dispatcher* d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(d->mu_) {
                                 return d->stopping_ || d->queued_updates_ >= d->options_.max_batch;
                               },
                               this),
                           last_flush + options_.batch_window - absl::Now());
      if (stopping_) return;
    }
    last_flush = absl::Now();
    FlushWrites();
  }
}

void Dispatcher::RunWatcher() {
  pthread_setname_np(pthread_self(), "dispatch-watch");
  absl::Time last_round = absl::InfinitePast();
  while (true) {
    // A store event wakes the thread (heartbeats and session messages are looked at every
    // assignment_window anyway); like writes, the first change after a quiet spell goes out
    // at once, then rounds are assignment_window apart.
    if (watch_ != nullptr) {
      watch_->Wait(options_.assignment_window);
    }
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                           watch_ != nullptr ? last_round + options_.assignment_window - absl::Now()
                                             : options_.assignment_window);
      if (stopping_) return;
    }
    last_round = absl::Now();
    ProcessEvents();
    ExpireHeartbeats();
    FlushAssignments();
  }
}

// ---- the slot and the leader component ----

std::shared_ptr<Dispatcher> DispatcherSlot::Get() const {
  absl::MutexLock lock(&mu_);
  return dispatcher_;
}

void DispatcherSlot::Set(std::shared_ptr<Dispatcher> dispatcher) {
  absl::MutexLock lock(&mu_);
  dispatcher_ = std::move(dispatcher);
}

void DispatcherSlot::Clear(const Dispatcher* dispatcher) {
  absl::MutexLock lock(&mu_);
  if (dispatcher_.get() == dispatcher) dispatcher_.reset();
}

void LeaderDispatcher::Start() {
  dispatcher_ = std::make_shared<Dispatcher>(store_, options_);
  dispatcher_->Start();
  slot_->Set(dispatcher_);
}

void LeaderDispatcher::Stop() {
  if (dispatcher_ == nullptr) return;
  slot_->Clear(dispatcher_.get());
  dispatcher_->Stop();
  dispatcher_.reset();
}

}  // namespace swarm::manager::dispatcher

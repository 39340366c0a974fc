#include "manager/orchestrator/reconcile.h"

#include <algorithm>
#include <climits>
#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/id.h"
#include "common/proto_time.h"
#include "google/protobuf/util/message_differencer.h"
#include "manager/orchestrator/defaults.h"
#include "scheduler/constraint.h"

namespace swarm::manager::orchestrator {

NodeIndex::NodeIndex(std::vector<std::shared_ptr<const api::Node>> nodes)
    : nodes_(std::move(nodes)) {
  by_id_.reserve(nodes_.size());
  for (const auto& n : nodes_) by_id_[n->id()] = n.get();
}

const api::Node* NodeIndex::Get(std::string_view id) const {
  auto it = by_id_.find(absl::string_view(id.data(), id.size()));
  return it == by_id_.end() ? nullptr : it->second;
}

namespace {

using api::Task;
using google::protobuf::util::MessageDifferencer;

bool IsJobSpec(const api::ServiceSpec& s) { return s.has_replicated_job() || s.has_global_job(); }
bool IsGlobalSpec(const api::ServiceSpec& s) { return s.has_global() || s.has_global_job(); }

// Desired READY, RUNNING or (jobs) COMPLETE: the orchestrator wants the task to run.
bool DesiredLive(const Task& t) { return t.desired_state() <= api::TASK_STATE_COMPLETE; }
bool Terminal(const Task& t) { return t.status().state() > api::TASK_STATE_RUNNING; }
bool Assigned(const Task& t) { return t.status().state() >= api::TASK_STATE_ASSIGNED; }
bool NodeGone(const api::Node* n) {
  return n == nullptr || n->status().state() == api::NODE_STATE_DOWN;
}
absl::Time CreatedAt(const Task& t) { return FromTimestamp(t.meta().created_at()); }
absl::Time StatusAt(const Task& t) { return FromTimestamp(t.status().timestamp()); }

// An exit that counts against the restart policy and, for tasks of an update, as a failure.
bool ExitedByItself(const Task& t, bool job) {
  switch (t.status().state()) {
    case api::TASK_STATE_COMPLETE:
      return !job;
    case api::TASK_STATE_FAILED:
    case api::TASK_STATE_REJECTED:
    case api::TASK_STATE_ORPHANED:
      return true;
    default:
      return false;
  }
}

// One task as this plan sees it: the stored object, or the copy the plan changed.
struct Entry {
  const Task* stored = nullptr;
  std::unique_ptr<Task> changed;
  const Task& task() const { return changed ? *changed : *stored; }
  Task& Mutable() {
    if (!changed) changed = std::make_unique<Task>(*stored);
    return *changed;
  }
};

struct Slot {
  enum class State {
    kFree,      // nothing occupies it (never used, or removed)
    kLive,      // a task runs or is on its way
    kDone,      // jobs: a task of this iteration completed
    kFinished,  // its task ended and the restart policy says no more
    kWaiting,   // its task ended; restarts when the delay has passed
    kRestart,   // its task ended; restart now
  };
  uint64_t number = 0;          // replicated modes
  std::string node_id;          // global modes
  std::vector<Entry*> all;      // oldest first
  std::vector<Entry*> current;  // this job iteration's (every task for services)
  State state = State::kFree;
  Entry* newest = nullptr;  // the newest current task (kFinished, kWaiting, kRestart)
  bool remove = false;      // scaled down in this plan
};

class Reconciler {
 public:
  Reconciler(const ServiceState& in, Random& random) : in_(in), random_(random) {}
  Plan Run();

 private:
  void RemoveService();
  void MarkEnded();
  void ClassifySlots();
  void Classify(Slot& slot);
  void Replicated();
  void ReplicatedJob();
  void Global();
  // Returns false when a failure action rolled the service back (the plan is then complete).
  bool RollOut();
  void Rebalance(int budget);
  void ReapHistory();
  void Finish();

  bool IsClean(const Task& t) const;
  bool Evicted(const Task& t) const;
  bool Runs(const Task& t) const;
  bool MeetsPlacement(const api::Node& n) const;
  bool MayKeep(const api::Node* n) const;
  bool MayTake(const api::Node* n) const;
  void Create(Slot& slot, api::TaskState desired, const Entry* replaces);
  void SetDesired(Entry* e, api::TaskState desired);
  void Wake(absl::Time t) { plan_.next_check = std::min(plan_.next_check, t); }
  api::UpdateStatus& MutableUpdateStatus();

  const ServiceState& in_;
  Random& random_;
  const api::Service* svc_ = nullptr;
  // The service's spec with the defaults the orchestrators use for what it leaves unset
  // (restart policy, update and rollback configs); tasks are made from the spec as stored.
  api::ServiceSpec effective_;
  bool job_ = false;
  bool global_ = false;
  std::vector<scheduler::Constraint> constraints_;
  bool constraints_valid_ = true;
  std::vector<Entry> entries_;
  std::map<std::pair<uint64_t, std::string>, Slot> slots_;
  Plan plan_;
};

bool Reconciler::Runs(const Task& t) const {
  return Assigned(t) && !Terminal(t) && !NodeGone(in_.nodes->Get(t.node_id()));
}

bool Reconciler::IsClean(const Task& t) const {
  // Tasks record the spec version they were made from; a task of another version is still
  // clean when the change touched neither the task template nor the endpoint spec (replicas,
  // update config). The VIPs and ports the allocator fills in are not compared: a task made
  // before its service's endpoint was allocated is not outdated once it is.
  if (t.spec_version().index() == svc_->spec_version().index()) return true;
  return MessageDifferencer::Equals(t.spec(), svc_->spec().task_template()) &&
         (!t.has_endpoint() ||
          MessageDifferencer::Equals(t.endpoint().spec(), svc_->spec().endpoint_spec()));
}

bool Reconciler::MeetsPlacement(const api::Node& n) const {
  if (!constraints_valid_ || !scheduler::MatchesAll(constraints_, n)) return false;
  const auto& platforms = svc_->spec().task_template().placement().platforms();
  if (platforms.empty()) return true;
  const api::Platform& have = n.description().platform();
  for (const api::Platform& p : platforms) {
    const bool os = p.os().empty() || absl::EqualsIgnoreCase(p.os(), have.os());
    const bool arch =
        p.architecture().empty() || absl::EqualsIgnoreCase(p.architecture(), have.architecture());
    if (os && arch) return true;
  }
  return false;
}

bool Reconciler::MayKeep(const api::Node* n) const {
  return !NodeGone(n) && n->spec().availability() != api::NODE_AVAILABILITY_DRAIN &&
         MeetsPlacement(*n);
}

bool Reconciler::MayTake(const api::Node* n) const {
  return MayKeep(n) && n->spec().availability() == api::NODE_AVAILABILITY_ACTIVE;
}

// Replicated tasks leave drained nodes and nodes that no longer meet the placement.
bool Reconciler::Evicted(const Task& t) const {
  if (global_ || t.node_id().empty()) return false;
  const api::Node* n = in_.nodes->Get(t.node_id());
  return n != nullptr && !MayKeep(n);
}

void Reconciler::SetDesired(Entry* e, api::TaskState desired) {
  if (e->task().desired_state() != desired) e->Mutable().set_desired_state(desired);
}

api::UpdateStatus& Reconciler::MutableUpdateStatus() {
  if (!plan_.service) plan_.service = *svc_;
  return *plan_.service->mutable_update_status();
}

void Reconciler::Create(Slot& slot, api::TaskState desired, const Entry* replaces) {
  const api::ServiceSpec& spec = svc_->spec();
  Task t;
  t.set_id(NewId(random_));
  *t.mutable_spec() = spec.task_template();
  *t.mutable_spec_version() = svc_->spec_version();
  t.set_service_id(svc_->id());
  t.set_slot(slot.number);
  t.set_node_id(slot.node_id);
  t.mutable_annotations()->set_name(absl::StrCat(spec.annotations().name(), ".",
                                                 global_ ? slot.node_id : absl::StrCat(slot.number),
                                                 ".", t.id()));
  *t.mutable_service_annotations() = spec.annotations();
  t.set_desired_state(desired);
  t.mutable_status()->set_state(api::TASK_STATE_NEW);
  t.mutable_status()->set_message("created");
  *t.mutable_status()->mutable_timestamp() = ToTimestamp(in_.now);
  *t.mutable_endpoint() = svc_->endpoint();
  if (spec.task_template().has_log_driver())
    *t.mutable_log_driver() = spec.task_template().log_driver();
  if (job_) *t.mutable_job_iteration() = svc_->job_status().job_iteration();
  if (replaces != nullptr) {
    t.set_replaced_task_id(replaces->task().id());
    *t.mutable_replaced_task_status() = replaces->task().status();
  }
  plan_.create.push_back(std::move(t));
}

Plan Reconciler::Run() {
  entries_.resize(in_.tasks.size());
  for (size_t i = 0; i < in_.tasks.size(); ++i) entries_[i].stored = in_.tasks[i];
  svc_ = in_.service;
  if (svc_ == nullptr) {
    RemoveService();
    Finish();
    return std::move(plan_);
  }
  const api::ServiceSpec& spec = svc_->spec();
  effective_ = spec;
  InsertServiceDefaults(&effective_);
  job_ = IsJobSpec(spec);
  global_ = IsGlobalSpec(spec);
  const auto& exprs = spec.task_template().placement().constraints();
  auto parsed = scheduler::Constraint::ParseAll({exprs.begin(), exprs.end()});
  // The control API refuses malformed constraints; one that slipped through matches nothing.
  constraints_valid_ = parsed.ok();
  if (parsed.ok()) constraints_ = *std::move(parsed);

  MarkEnded();
  ClassifySlots();
  if (spec.has_replicated()) Replicated();
  if (spec.has_replicated_job()) ReplicatedJob();
  if (global_) Global();
  if (!job_ && !RollOut()) {
    Finish();
    return std::move(plan_);
  }
  ReapHistory();
  Finish();
  return std::move(plan_);
}

void Reconciler::RemoveService() {
  for (Entry& e : entries_) {
    if (!Runs(e.task())) {
      plan_.remove.push_back(e.task().id());
    } else {
      SetDesired(&e, api::TASK_STATE_REMOVE);
    }
  }
}

// Tasks that ended (exited, or their node is down or gone) no longer count as live.
void Reconciler::MarkEnded() {
  const uint64_t iteration = svc_->job_status().job_iteration().index();
  for (Entry& e : entries_) {
    const Task& t = e.task();
    const bool current = !job_ || t.job_iteration().index() == iteration;
    const bool succeeded = job_ && t.status().state() == api::TASK_STATE_COMPLETE;
    if (Assigned(t) && !Terminal(t) && NodeGone(in_.nodes->Get(t.node_id()))) {
      Task& m = e.Mutable();
      m.mutable_status()->set_state(api::TASK_STATE_ORPHANED);
      m.mutable_status()->set_message(
          in_.nodes->Get(t.node_id()) == nullptr
              ? absl::StrCat("node ", t.node_id(), " was removed from the swarm")
              : absl::StrCat("node ", t.node_id(), " is down"));
      *m.mutable_status()->mutable_timestamp() = ToTimestamp(in_.now);
    }
    if (!DesiredLive(e.task()) || succeeded) continue;
    // Live tasks of an earlier job iteration stop: the job was changed and runs again.
    if (Terminal(e.task()) || !current) SetDesired(&e, api::TASK_STATE_SHUTDOWN);
  }
}

void Reconciler::ClassifySlots() {
  const uint64_t iteration = svc_->job_status().job_iteration().index();
  for (Entry& e : entries_) {
    const Task& t = e.task();
    Slot& slot = slots_[global_ ? std::make_pair(uint64_t{0}, t.node_id())
                                : std::make_pair(t.slot(), std::string())];
    slot.number = t.slot();
    slot.node_id = global_ ? t.node_id() : "";
    slot.all.push_back(&e);
    if (!job_ || t.job_iteration().index() == iteration) slot.current.push_back(&e);
  }
  auto older = [](const Entry* a, const Entry* b) {
    const absl::Time ta = CreatedAt(a->task()), tb = CreatedAt(b->task());
    if (ta != tb) return ta < tb;
    return a->task().id() < b->task().id();
  };
  for (auto& [key, slot] : slots_) {
    std::sort(slot.all.begin(), slot.all.end(), older);
    std::sort(slot.current.begin(), slot.current.end(), older);
    Classify(slot);
  }
}

void Reconciler::Classify(Slot& slot) {
  using State = Slot::State;
  bool done = false;
  for (Entry* e : slot.current) {
    const Task& t = e->task();
    if (job_ && t.status().state() == api::TASK_STATE_COMPLETE &&
        t.desired_state() == api::TASK_STATE_COMPLETE) {
      done = true;
    } else if (DesiredLive(t)) {
      slot.state = State::kLive;
      return;
    }
  }
  if (done) {
    slot.state = State::kDone;
    return;
  }
  if (slot.current.empty() ||
      slot.current.back()->task().desired_state() == api::TASK_STATE_REMOVE) {
    slot.state = State::kFree;
    return;
  }
  // The newest task ended. Tasks the orchestrator stopped itself (or that never started) leave
  // the slot to be filled again at once; so do tasks of a global service whose node went away
  // and came back.
  slot.newest = slot.current.back();
  const Task& last = slot.newest->task();
  const api::TaskState s = last.status().state();
  if (s == api::TASK_STATE_SHUTDOWN || !Assigned(last) ||
      (global_ && s == api::TASK_STATE_ORPHANED)) {
    slot.state = State::kRestart;
    return;
  }
  const api::RestartPolicy& policy = effective_.task_template().restart_policy();
  const bool succeeded = s == api::TASK_STATE_COMPLETE;
  bool restart = false;
  switch (policy.condition()) {
    case api::RESTART_CONDITION_ANY:
      restart = !(job_ && succeeded);
      break;
    case api::RESTART_CONDITION_ON_FAILURE:
      restart = !succeeded;
      break;
    default:
      break;
  }
  if (restart && policy.max_attempts() > 0) {
    const absl::Duration window = FromProtoDuration(policy.window());
    uint64_t attempts = 0;
    for (const Entry* e : slot.current) {
      const Task& t = e->task();
      if (t.spec_version().index() != last.spec_version().index() || !ExitedByItself(t, job_))
        continue;
      if (window > absl::ZeroDuration() && StatusAt(t) < in_.now - window) continue;
      ++attempts;
    }
    // The first run is not a restart: max_attempts restarts allow max_attempts + 1 exits.
    restart = attempts <= policy.max_attempts();
  }
  if (!restart) {
    slot.state = State::kFinished;
    return;
  }
  const absl::Time at = StatusAt(last) + FromProtoDuration(policy.delay());
  if (in_.now < at) {
    slot.state = State::kWaiting;
    Wake(at);
    return;
  }
  slot.state = State::kRestart;
}

void Reconciler::Replicated() {
  using State = Slot::State;
  std::vector<Slot*> occupied;
  absl::flat_hash_map<std::string, int> per_node;
  for (auto& [key, slot] : slots_) {
    if (slot.state == State::kFree) continue;
    occupied.push_back(&slot);
    for (const Entry* e : slot.current) {
      if (DesiredLive(e->task()) && !e->task().node_id().empty()) ++per_node[e->task().node_id()];
    }
  }
  const uint64_t replicas = svc_->spec().replicated().replicas();
  if (occupied.size() > replicas) {
    // Scale down: slots that do not run first, then those on the busiest nodes, then the
    // newest (highest) slots.
    auto running_on = [&](const Slot* s) -> std::pair<int, const std::string*> {
      for (const Entry* e : s->current) {
        const Task& t = e->task();
        if (DesiredLive(t) && t.status().state() == api::TASK_STATE_RUNNING) {
          return {per_node[t.node_id()], &t.node_id()};
        }
      }
      return {INT_MAX, nullptr};
    };
    std::stable_sort(occupied.begin(), occupied.end(), [&](const Slot* a, const Slot* b) {
      const int la = running_on(a).first, lb = running_on(b).first;
      if (la != lb) return la > lb;
      return a->number > b->number;
    });
    for (size_t i = 0; i < occupied.size() - replicas; ++i) {
      Slot* s = occupied[i];
      s->remove = true;
      for (Entry* e : s->all) SetDesired(e, api::TASK_STATE_REMOVE);
    }
  }
  uint64_t count = 0;
  for (auto& [key, slot] : slots_) {
    if (slot.state == State::kFree || slot.remove) continue;
    ++count;
    if (slot.state == State::kRestart) Create(slot, api::TASK_STATE_RUNNING, slot.newest);
  }
  for (uint64_t n = 1; count < replicas; ++n) {
    Slot& slot = slots_[{n, ""}];
    if (slot.number == 0) slot.number = n;
    if (slot.state != State::kFree || slot.remove) continue;
    Create(slot, api::TASK_STATE_RUNNING, nullptr);
    ++count;
  }
}

void Reconciler::ReplicatedJob() {
  using State = Slot::State;
  const api::ReplicatedJob& job = svc_->spec().replicated_job();
  const uint64_t total = std::max<uint64_t>(job.total_completions(), 1);
  const uint64_t concurrent =
      job.max_concurrent() == 0 ? total : std::min(job.max_concurrent(), total);
  uint64_t active = 0;
  for (auto& [key, slot] : slots_) {
    if (slot.state == State::kLive || slot.state == State::kWaiting) ++active;
    if (slot.state == State::kRestart) {
      Create(slot, api::TASK_STATE_COMPLETE, slot.newest);
      ++active;
    }
  }
  for (uint64_t n = 1; n <= total && active < concurrent; ++n) {
    Slot& slot = slots_[{n, ""}];
    if (slot.number == 0) slot.number = n;
    if (slot.state != State::kFree) continue;
    Create(slot, api::TASK_STATE_COMPLETE, nullptr);
    ++active;
  }
}

void Reconciler::Global() {
  using State = Slot::State;
  const api::TaskState desired = job_ ? api::TASK_STATE_COMPLETE : api::TASK_STATE_RUNNING;
  for (auto& [key, slot] : slots_) {
    if (MayKeep(in_.nodes->Get(slot.node_id))) continue;
    slot.remove = true;  // no task of this service belongs on that node
    for (Entry* e : slot.current) {
      if (DesiredLive(e->task()) && e->task().status().state() != api::TASK_STATE_COMPLETE)
        SetDesired(e, api::TASK_STATE_SHUTDOWN);
    }
  }
  for (const auto& node : in_.nodes->all()) {
    if (!MayTake(node.get())) continue;
    Slot& slot = slots_[{0, node->id()}];
    slot.node_id = node->id();
    if (slot.state == State::kFree || slot.state == State::kRestart) {
      Create(slot, desired, slot.state == State::kRestart ? slot.newest : nullptr);
    }
  }
}

bool Reconciler::RollOut() {
  using State = Slot::State;
  api::UpdateStatus status = svc_->update_status();
  const bool rolling_back = status.state() == api::UPDATE_STATE_ROLLBACK_STARTED ||
                            status.state() == api::UPDATE_STATE_ROLLBACK_PAUSED;
  const api::UpdateConfig& config =
      rolling_back ? effective_.rollback_config() : effective_.update_config();

  // What each live slot needs: nothing, to finish a replacement in progress, or a replacement.
  std::vector<std::pair<Slot*, std::vector<Entry*>>> outdated, evicted;
  const bool was_active = status.state() == api::UPDATE_STATE_UPDATING ||
                          status.state() == api::UPDATE_STATE_ROLLBACK_STARTED;
  absl::Time started = FromTimestamp(status.started_at());
  int in_progress = 0;
  bool update_in_flight = false;
  uint64_t slots = 0;
  absl::Time last_started = absl::InfinitePast();
  for (auto& [key, slot] : slots_) {
    if (slot.remove || slot.state == State::kFree) continue;
    ++slots;
    if (slot.state != State::kLive) continue;
    Entry* fresh = nullptr;
    std::vector<Entry*> old_live;
    bool old_running = false, old_outdated = false;
    for (Entry* e : slot.current) {
      const Task& t = e->task();
      const bool clean = IsClean(t), evict = Evicted(t);
      if (clean && t.status().state() == api::TASK_STATE_RUNNING) {
        last_started = std::max(last_started, StatusAt(t));
      }
      if (DesiredLive(t)) {
        if (clean && !evict) {
          fresh = e;
        } else {
          old_live.push_back(e);
          old_outdated |= !clean;
        }
      } else if (Runs(t)) {
        // A task being stopped: outdated, evicted, or moved by a rebalance.
        old_running = true;
        old_outdated |= !clean;
      }
    }
    if (fresh == nullptr) {
      (old_outdated ? outdated : evicted).push_back({&slot, std::move(old_live)});
      continue;
    }
    const Task& f = fresh->task();
    if (f.status().state() == api::TASK_STATE_RUNNING ||
        f.desired_state() == api::TASK_STATE_READY) {
      // Start-first: the new task runs, stop the old one. Stop-first: the old one must stop.
      for (Entry* e : old_live) SetDesired(e, api::TASK_STATE_SHUTDOWN);
      if (!old_live.empty()) old_running = true;
    }
    if (f.desired_state() == api::TASK_STATE_READY && !old_running) {
      SetDesired(fresh, api::TASK_STATE_RUNNING);
    }
    // A replacement is in progress until its new task runs; so is every new task of an update.
    const bool of_update = was_active && CreatedAt(f) >= started;
    if (f.status().state() < api::TASK_STATE_RUNNING &&
        (old_running || !old_live.empty() || of_update)) {
      ++in_progress;
      update_in_flight |= old_outdated || of_update;
    }
  }

  const bool updating = !outdated.empty() || update_in_flight;
  api::UpdateState state = status.state();
  if (updating && state != api::UPDATE_STATE_UPDATING && state != api::UPDATE_STATE_PAUSED &&
      state != api::UPDATE_STATE_ROLLBACK_STARTED && state != api::UPDATE_STATE_ROLLBACK_PAUSED) {
    state = api::UPDATE_STATE_UPDATING;
    api::UpdateStatus& u = MutableUpdateStatus();
    u.Clear();
    u.set_state(state);
    *u.mutable_started_at() = ToTimestamp(in_.now);
    u.set_message("update in progress");
    started = in_.now;
  }

  const bool active =
      state == api::UPDATE_STATE_UPDATING || state == api::UPDATE_STATE_ROLLBACK_STARTED;
  if (active) {
    // Tasks of the new spec that failed since the update started.
    const Task* failed = nullptr;
    uint64_t failures = 0;
    for (const Entry& e : entries_) {
      const Task& t = e.task();
      if (CreatedAt(t) >= started && IsClean(t) && ExitedByItself(t, false)) {
        ++failures;
        if (failed == nullptr || CreatedAt(t) > CreatedAt(*failed)) failed = &t;
      }
    }
    if (failed != nullptr &&
        static_cast<double>(failures) >
            static_cast<double>(config.max_failure_ratio()) * std::max<uint64_t>(slots, 1)) {
      const std::string why = absl::StrCat("failure or early termination of task ", failed->id());
      api::UpdateFailureAction action = config.failure_action();
      if (action == api::UPDATE_FAILURE_ACTION_ROLLBACK &&
          (rolling_back || !svc_->has_previous_spec())) {
        action = api::UPDATE_FAILURE_ACTION_PAUSE;
      }
      if (action == api::UPDATE_FAILURE_ACTION_ROLLBACK) {
        api::Service& s = *(plan_.service = *svc_);
        std::swap(*s.mutable_spec_version(), *s.mutable_previous_spec_version());
        s.mutable_spec()->Swap(s.mutable_previous_spec());
        api::UpdateStatus& u = *s.mutable_update_status();
        u.Clear();
        u.set_state(api::UPDATE_STATE_ROLLBACK_STARTED);
        *u.mutable_started_at() = ToTimestamp(in_.now);
        u.set_message(absl::StrCat("update rolled back due to ", why));
        // Tasks are made from the rolled-back spec in the next round, not from this one.
        plan_.create.clear();
        Wake(in_.now);
        return false;
      }
      if (action == api::UPDATE_FAILURE_ACTION_PAUSE) {
        state = rolling_back ? api::UPDATE_STATE_ROLLBACK_PAUSED : api::UPDATE_STATE_PAUSED;
        api::UpdateStatus& u = MutableUpdateStatus();
        u.set_state(state);
        u.set_message(absl::StrCat(rolling_back ? "rollback" : "update", " paused due to ", why));
      }
    }
  }
  const bool paused =
      state == api::UPDATE_STATE_PAUSED || state == api::UPDATE_STATE_ROLLBACK_PAUSED;

  // Replacements: evictions first (a drained node empties even while an update is paused),
  // then outdated slots, those whose task does not run yet first.
  auto not_running = [](const std::pair<Slot*, std::vector<Entry*>>& s) {
    for (const Entry* e : s.second) {
      if (e->task().status().state() == api::TASK_STATE_RUNNING) return false;
    }
    return true;
  };
  std::stable_partition(outdated.begin(), outdated.end(), not_running);
  struct Replacement {
    Slot* slot;
    std::vector<Entry*>* old_live;
    bool eviction;
  };
  std::vector<Replacement> todo;
  for (auto& [slot, old_live] : evicted) todo.push_back({slot, &old_live, true});
  if (!paused) {
    for (auto& [slot, old_live] : outdated) todo.push_back({slot, &old_live, false});
  }
  int budget =
      config.parallelism() == 0 ? INT_MAX : static_cast<int>(config.parallelism()) - in_progress;
  const absl::Duration delay = FromProtoDuration(config.delay());
  if (delay > absl::ZeroDuration() && (!todo.empty() || svc_->rebalance())) {
    // Batches: the next one starts `delay` after the last one is running.
    if (in_progress > 0) {
      budget = 0;
    } else if (last_started != absl::InfinitePast() && in_.now < last_started + delay) {
      budget = 0;
      Wake(last_started + delay);
    }
  }
  if (todo.empty() && !paused && in_progress == 0) Rebalance(budget);
  const bool start_first = config.order() == api::UPDATE_ORDER_START_FIRST;
  for (const Replacement& r : todo) {
    if (budget <= 0) break;
    --budget;
    if (start_first && !r.eviction) {
      Create(*r.slot, api::TASK_STATE_RUNNING, nullptr);
      continue;
    }
    bool old_runs = false;
    for (Entry* e : *r.old_live) {
      old_runs |= Runs(e->task());
      SetDesired(e, api::TASK_STATE_SHUTDOWN);
    }
    for (Entry* e : r.slot->current) old_runs |= Runs(e->task()) && !DesiredLive(e->task());
    Create(*r.slot, old_runs ? api::TASK_STATE_READY : api::TASK_STATE_RUNNING, nullptr);
  }

  if (active && !paused && outdated.empty() && !update_in_flight) {
    const absl::Time settled =
        std::max(started, last_started) + FromProtoDuration(config.monitor());
    if (in_.now >= settled) {
      api::UpdateStatus& u = MutableUpdateStatus();
      // An automatic rollback keeps why the update was rolled back: that is what the operator
      // needs to know once it is over.
      const std::string why = absl::StartsWith(u.message(), "update rolled back due to ")
                                  ? absl::StrCat(" (", u.message(), ")")
                                  : "";
      u.set_state(rolling_back ? api::UPDATE_STATE_ROLLBACK_COMPLETED
                               : api::UPDATE_STATE_COMPLETED);
      u.set_message(rolling_back ? "rollback completed" + why : "update completed");
      *u.mutable_completed_at() = ToTimestamp(in_.now);
    } else {
      Wake(settled);
    }
  }
  return true;
}

// Moves tasks from the nodes with most of the service's tasks, while any node that may take
// them has two fewer. Only once everything runs: the counts must be settled. The replacement
// starts at once (the scheduler places it on the node with fewest of the service's tasks,
// since the old one still counts where it runs) and the old one stops.
void Reconciler::Rebalance(int budget) {
  if (!svc_->rebalance() || !svc_->spec().has_replicated()) return;
  std::map<std::string, std::vector<Entry*>> on_node;
  for (const auto& n : in_.nodes->all()) {
    if (MayTake(n.get())) on_node[n->id()];
  }
  for (auto& [key, slot] : slots_) {
    if (slot.remove) continue;
    if (slot.state == Slot::State::kWaiting || slot.state == Slot::State::kRestart) return;
    for (Entry* e : slot.current) {
      const Task& t = e->task();
      if (!DesiredLive(t)) continue;
      if (t.status().state() != api::TASK_STATE_RUNNING) return;
      auto it = on_node.find(t.node_id());
      if (it != on_node.end()) it->second.push_back(e);
    }
  }
  // Tasks that may move off each node, and how many of the service's tasks each will run.
  std::vector<std::pair<std::vector<Entry*>, size_t>> nodes;
  for (auto& [id, tasks] : on_node) nodes.push_back({tasks, tasks.size()});
  auto fewer = [](const auto& a, const auto& b) { return a.second < b.second; };
  auto most = [&] { return std::max_element(nodes.begin(), nodes.end(), fewer); };
  auto least = [&] { return std::min_element(nodes.begin(), nodes.end(), fewer); };
  if (nodes.empty() || most()->second < least()->second + 2) {
    if (!plan_.service) plan_.service = *svc_;
    plan_.service->set_rebalance(false);  // spread evenly: done
    return;
  }
  for (; budget > 0 && most()->second >= least()->second + 2; --budget) {
    auto from = most();
    Entry* e = from->first.back();
    from->first.pop_back();
    --from->second;
    ++least()->second;  // where the scheduler will place the replacement
    SetDesired(e, api::TASK_STATE_SHUTDOWN);
    Create(slots_[{e->task().slot(), ""}], api::TASK_STATE_RUNNING, nullptr);
  }
}

void Reconciler::ReapHistory() {
  const uint64_t iteration = svc_->job_status().job_iteration().index();
  const int64_t limit = in_.task_history_limit;
  const uint64_t attempts = effective_.task_template().restart_policy().max_attempts();
  const size_t keep =
      limit < 0 ? SIZE_MAX
                : std::max<size_t>({static_cast<size_t>(limit),
                                    attempts > 0 ? static_cast<size_t>(attempts) + 1 : 0, 1});
  for (auto& [key, slot] : slots_) {
    size_t kept = 0;
    // Newest first: the newest dead tasks are the history that stays.
    for (auto it = slot.all.rbegin(); it != slot.all.rend(); ++it) {
      Entry* e = *it;
      const Task& t = e->task();
      const bool dead = !DesiredLive(t) || (job_ && t.job_iteration().index() != iteration);
      if (!dead || Runs(t)) continue;
      const bool removed = t.desired_state() == api::TASK_STATE_REMOVE;
      if (!removed && (kept < keep || e->changed)) {
        ++kept;
        continue;
      }
      plan_.remove.push_back(t.id());
      e->changed.reset();
    }
  }
}

void Reconciler::Finish() {
  // Removed tasks were dropped from the entries' changes; keep the remaining ones.
  for (Entry& e : entries_) {
    if (e.changed) plan_.update.push_back(*std::move(e.changed));
  }
}

}  // namespace

Plan Reconcile(const ServiceState& state, Random& random) {
  return Reconciler(state, random).Run();
}

}  // namespace swarm::manager::orchestrator

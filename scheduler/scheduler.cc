#include "scheduler/scheduler.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace swarm::scheduler {
namespace {

// The signature of what the load-independent filters and the spread tree depend on.
std::string PlanSignature(const api::Task& task) {
  const api::Placement& p = task.spec().placement();
  std::string sig;
  for (const std::string& c : p.constraints()) absl::StrAppend(&sig, c, "\x1f");
  sig += '\x1e';
  for (const api::Platform& pl : p.platforms()) {
    absl::StrAppend(&sig, pl.os(), "/", pl.architecture(), "\x1f");
  }
  sig += '\x1e';
  for (const api::PlacementPreference& pref : p.preferences()) {
    absl::StrAppend(&sig, pref.spread().spread_descriptor(), "\x1f");
  }
  return sig;
}

std::string DeterministicBytes(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  m.SerializeWithCachedSizes(&coded);
  return out;
}

}  // namespace

// What the load-independent filters concluded about every node for one signature: the
// rejected nodes counted per filter, the others filed in the spread tree. Kept current one
// node at a time (Sync) as the node set reports changes.
struct Scheduler::Plan {
  struct Branch {
    std::string value;  // the spread label's value ("" for the root)
    int parent = -1;
    std::vector<int> children;    // inner branches (depth < levels)
    std::vector<uint32_t> slots;  // nodes, in leaves (depth == levels)
  };
  // Where a slot's node is in the plan.
  struct Where {
    int32_t branch = -1;  // the leaf holding it, or
    int32_t pos = -1;
    int32_t rejected = -1;  // the FilterId that rejected it; both -1: not in the plan
  };

  explicit Plan(const TaskRequirements& r) : req(r) {
    levels = static_cast<int>(req.spread.size());
    branches.emplace_back();
  }

  // Files the slot's node (if the slot holds a node with its object) where it belongs now.
  void Add(const NodeSet& nodes, uint32_t slot) {
    const NodeInfo* node = nodes.slot(slot).info;
    if (node == nullptr || node->node() == nullptr) return;
    if (where.size() <= slot) where.resize(nodes.slot_count());
    if (std::optional<FilterId> f = FirstRejection(req, *node, /*load_dependent=*/false)) {
      ++rejected[static_cast<int>(*f)];
      where[slot].rejected = static_cast<int32_t>(*f);
      return;
    }
    int b = 0;
    for (const AttributeKey& key : req.spread) {
      auto [child, fresh] = child_of.try_emplace(
          std::make_pair(b, NodeAttribute(key, *node->node())), static_cast<int>(branches.size()));
      if (fresh) {
        branches.emplace_back();
        branches.back().value = child->first.second;
        branches.back().parent = b;
        branches[b].children.push_back(child->second);
      }
      b = child->second;
    }
    where[slot] = Where{b, static_cast<int32_t>(branches[b].slots.size()), -1};
    branches[b].slots.push_back(slot);
  }

  void Remove(uint32_t slot) {
    if (slot >= where.size()) return;
    Where& w = where[slot];
    if (w.rejected >= 0) {
      --rejected[w.rejected];
    } else if (w.branch >= 0) {
      std::vector<uint32_t>& leaf = branches[w.branch].slots;
      leaf[w.pos] = leaf.back();
      where[leaf.back()].pos = w.pos;
      leaf.pop_back();
    }
    w = Where{};
  }

  const TaskRequirements req;  // its load-independent part
  int levels = 0;
  uint64_t generation = 0;  // of the node set, when last brought up to date
  uint64_t last_use = 0;
  Rejections rejected{};
  // [0] is the root; a branch's index is greater than its parent's. Branches whose nodes all
  // left stay, empty.
  std::vector<Branch> branches;
  absl::flat_hash_map<std::pair<int, std::string>, int> child_of;
  std::vector<Where> where;  // by slot
};

// One group's placement in progress: the plan's tree with heaps ordered by current load.
class Scheduler::Placement {
 public:
  Placement(const Plan& plan, const NodeSet& nodes, const TaskRequirements& req)
      : plan_(plan), nodes_(nodes), req_(req) {
    const size_t n = plan.branches.size();
    tasks_.assign(n, 0);
    child_heaps_.resize(n);
    node_heaps_.resize(n);
    for (size_t b = 0; b < n; ++b) {
      const std::vector<uint32_t>& slots = plan.branches[b].slots;
      std::vector<Candidate>& heap = node_heaps_[b];
      heap.reserve(slots.size());
      for (uint32_t s : slots) {
        const NodeSet::Slot& slot = nodes.slot(s);
        heap.push_back({0, slot.total_tasks, slot.id_prefix, s});
      }
    }
    // Most nodes run no task of the service: visit only those that do.
    for (const auto& [s, count] : nodes.ServiceSlots(req.service)) {
      if (s >= plan.where.size() || plan.where[s].branch < 0) continue;
      const Plan::Where& w = plan.where[s];
      node_heaps_[w.branch][w.pos].service_tasks = count;
      tasks_[w.branch] += count;
    }
    for (size_t b = 0; b < n; ++b) {
      std::make_heap(node_heaps_[b].begin(), node_heaps_[b].end(), CandidateAfter());
    }
    for (size_t b = n; b-- > 1;) tasks_[plan.branches[b].parent] += tasks_[b];
    for (size_t b = 0; b < n; ++b) {
      child_heaps_[b] = plan.branches[b].children;
      std::make_heap(child_heaps_[b].begin(), child_heaps_[b].end(), BranchAfter());
    }
  }

  // The best node that passes the load-dependent filters, or null once every node of the
  // tree is ruled out. Nodes ruled out on the way are counted in rejected.
  NodeInfo* Pick(Rejections& rejected) {
    path_.clear();
    path_.push_back(0);
    while (true) {
      const int b = path_.back();
      if (static_cast<int>(path_.size()) - 1 == plan_.levels) {
        std::vector<Candidate>& heap = node_heaps_[b];
        while (!heap.empty()) {
          NodeInfo* node = nodes_.slot(heap.front().slot).info;
          std::optional<FilterId> f = FirstRejection(req_, *node, /*load_dependent=*/true);
          if (!f) return node;
          ++rejected[static_cast<int>(*f)];
          std::pop_heap(heap.begin(), heap.end(), CandidateAfter());
          heap.pop_back();
        }
      } else if (!child_heaps_[b].empty()) {
        path_.push_back(child_heaps_[b].front());
        continue;
      }
      // The branch is exhausted: leave it for good and try its parent's next best.
      path_.pop_back();
      if (path_.empty()) return nullptr;
      std::vector<int>& siblings = child_heaps_[path_.back()];
      std::pop_heap(siblings.begin(), siblings.end(), BranchAfter());
      siblings.pop_back();
    }
  }

  // Accounts for a task placed on the node Pick just returned.
  void Placed() {
    std::vector<Candidate>& heap = node_heaps_[path_.back()];
    std::pop_heap(heap.begin(), heap.end(), CandidateAfter());
    ++heap.back().service_tasks;
    ++heap.back().total_tasks;
    std::push_heap(heap.begin(), heap.end(), CandidateAfter());
    ++tasks_[0];
    // Up from the leaf: each branch on the path is on top of its parent's heap.
    for (size_t i = path_.size(); i-- > 1;) {
      std::vector<int>& siblings = child_heaps_[path_[i - 1]];
      std::pop_heap(siblings.begin(), siblings.end(), BranchAfter());
      ++tasks_[path_[i]];
      std::push_heap(siblings.begin(), siblings.end(), BranchAfter());
    }
  }

 private:
  struct Candidate {
    int32_t service_tasks;
    int32_t total_tasks;
    uint64_t id_prefix;
    uint32_t slot;
  };
  // Heap orders (std heaps keep the greatest on top): "a comes after b".
  struct CandidateOrder {
    const NodeSet* nodes;
    bool operator()(const Candidate& a, const Candidate& b) const {
      if (a.service_tasks != b.service_tasks) return a.service_tasks > b.service_tasks;
      if (a.total_tasks != b.total_tasks) return a.total_tasks > b.total_tasks;
      if (a.id_prefix != b.id_prefix) return a.id_prefix > b.id_prefix;
      return nodes->slot(a.slot).info->id() > nodes->slot(b.slot).info->id();
    }
  };
  CandidateOrder CandidateAfter() const { return CandidateOrder{&nodes_}; }
  // Branches: fewest tasks of the service, then the smallest value.
  struct BranchOrder {
    const Placement* p;
    bool operator()(int a, int b) const {
      if (p->tasks_[a] != p->tasks_[b]) return p->tasks_[a] > p->tasks_[b];
      return p->plan_.branches[a].value > p->plan_.branches[b].value;
    }
  };
  BranchOrder BranchAfter() const { return BranchOrder{this}; }

  const Plan& plan_;
  const NodeSet& nodes_;
  const TaskRequirements& req_;
  // Tasks of the service under each branch, those placed so far included.
  std::vector<int64_t> tasks_;
  std::vector<std::vector<int>> child_heaps_;
  std::vector<std::vector<Candidate>> node_heaps_;
  // Root to the branch of the last pick.
  std::vector<int> path_;
};

Scheduler::Scheduler(NodeSet* nodes) : nodes_(nodes) {}
Scheduler::~Scheduler() = default;

std::string Scheduler::GroupKey(const api::Task& task) {
  std::string key = task.service_id();
  key += '\x1d';
  if (task.spec_version().index() != 0) {
    absl::StrAppend(&key, task.spec_version().index());
  } else {
    key += DeterministicBytes(task.spec());
  }
  if (task.has_endpoint()) {
    key += '\x1d';
    for (HostPort p : HostPortsOf(task)) absl::StrAppend(&key, p, ",");
  }
  return key;
}

const Scheduler::Plan& Scheduler::GetPlan(const api::Task& task, const TaskRequirements& req) {
  std::string sig = PlanSignature(task);
  auto it = plans_.find(sig);
  Plan* plan = it == plans_.end() ? nullptr : it->second.get();
  if (plan != nullptr && plan->generation != nodes_->generation()) {
    // Filter again the nodes that changed since, unless so many did that starting over is as
    // cheap (or the log no longer goes back that far).
    std::vector<uint32_t> changed;
    if (nodes_->ChangedSince(plan->generation, &changed) &&
        changed.size() <= nodes_->nodes().size() / 4 + 16) {
      std::sort(changed.begin(), changed.end());
      changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
      for (uint32_t s : changed) {
        plan->Remove(s);
        plan->Add(*nodes_, s);
      }
    } else {
      plans_.erase(it);
      plan = nullptr;
    }
  }
  if (plan == nullptr) {
    if (plans_.size() >= kMaxPlans) {
      auto oldest = plans_.begin();
      for (auto p = plans_.begin(); p != plans_.end(); ++p) {
        if (p->second->last_use < oldest->second->last_use) oldest = p;
      }
      plans_.erase(oldest);
    }
    auto fresh = std::make_unique<Plan>(req);
    for (const NodeInfo* node : nodes_->nodes()) fresh->Add(*nodes_, node->slot());
    plan = fresh.get();
    plans_[std::move(sig)] = std::move(fresh);
  }
  plan->generation = nodes_->generation();
  plan->last_use = ++plan_uses_;
  return *plan;
}

void Scheduler::PlacePreset(const api::Task& task, TaskRequirements& req, Decision& decision) {
  NodeInfo* node = nodes_->Find(task.node_id());
  if (node == nullptr || node->node() == nullptr) {
    decision.message =
        absl::StrCat("no suitable node (node ", task.node_id(), " is not in the cluster)");
    return;
  }
  if (std::optional<FilterId> f = FirstRejection(req, *node)) {
    Rejections rejected{};
    rejected[static_cast<int>(*f)] = 1;
    decision.message = NoSuitableNodeMessage(rejected);
    return;
  }
  decision.node = node;
  req.service = nodes_->Assign(task, node);
}

void Scheduler::PlaceGroup(const std::vector<const api::Task*>& tasks,
                           const std::vector<size_t>& group, TaskRequirements& req,
                           std::vector<Decision>& decisions) {
  const Plan& plan = GetPlan(*tasks[group.front()], req);
  Placement placement(plan, *nodes_, req);
  Rejections rejected = plan.rejected;
  for (size_t i = 0; i < group.size(); ++i) {
    NodeInfo* node = placement.Pick(rejected);
    if (node == nullptr) {
      const std::string message = NoSuitableNodeMessage(rejected);
      for (size_t j = i; j < group.size(); ++j) decisions[group[j]].message = message;
      return;
    }
    decisions[group[i]].node = node;
    req.service = nodes_->Assign(*tasks[group[i]], node);
    placement.Placed();
  }
}

std::vector<Decision> Scheduler::Schedule(const std::vector<const api::Task*>& tasks) {
  std::vector<Decision> decisions(tasks.size());
  // Groups in the order of their first task; within a group, preset tasks (global services)
  // first, so that the group's tree is built with their load counted.
  absl::flat_hash_map<std::string, size_t> group_of;
  std::vector<std::vector<size_t>> presets;
  std::vector<std::vector<size_t>> free;
  for (size_t i = 0; i < tasks.size(); ++i) {
    auto [it, fresh] = group_of.try_emplace(GroupKey(*tasks[i]), free.size());
    if (fresh) {
      presets.emplace_back();
      free.emplace_back();
    }
    (tasks[i]->node_id().empty() ? free : presets)[it->second].push_back(i);
  }
  for (size_t g = 0; g < free.size(); ++g) {
    const api::Task& first = *tasks[presets[g].empty() ? free[g].front() : presets[g].front()];
    absl::StatusOr<TaskRequirements> req = TaskRequirements::FromTask(first);
    if (!req.ok()) {
      const std::string message(req.status().message());
      for (size_t i : presets[g]) decisions[i].message = message;
      for (size_t i : free[g]) decisions[i].message = message;
      continue;
    }
    req->service = nodes_->FindService(req->service_id);
    for (size_t i : presets[g]) PlacePreset(*tasks[i], *req, decisions[i]);
    if (!free[g].empty()) PlaceGroup(tasks, free[g], *req, decisions);
  }
  return decisions;
}

}  // namespace swarm::scheduler

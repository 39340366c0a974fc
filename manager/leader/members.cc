#include "manager/leader/members.h"

#include <pthread.h>

#include <set>

#include "common/logging.h"

namespace swarm::manager::leader {
namespace {
constexpr char kLog[] = "members";
}  // namespace

void MemberReconciler::Start() {
  thread_ = std::thread([this] { Run(); });
}

void MemberReconciler::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void MemberReconciler::Run() {
  pthread_setname_np(pthread_self(), "leader-members");
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), kPeriod);
      if (stopping_) return;
    }
    const raft::NodeStatus rs = raft_->Status();
    if (rs.state != raft::StateType::kLeader) continue;  // until the runtime stops us
    SyncManagerStatus(rs);
    RemoveOrphanMembers(rs);
  }
}

void MemberReconciler::SyncManagerStatus(const raft::NodeStatus& rs) {
  const absl::Time now = clock_->Now();
  for (uint64_t id : rs.active) last_seen_[id] = now;
  std::vector<api::Node> changed;
  store_->View([&](const store::ReadTx& tx) {
    for (const auto& n : tx.ListNodes()) {
      const uint64_t id = n->manager_status().raft_id();
      if (id == 0) continue;
      const bool leader = id == rs.leader;
      // The leader's view of a member's activity resets every election timeout; a member is
      // unreachable once it has not been heard from for longer than that.
      auto seen = last_seen_.find(id);
      const bool reachable = rs.members.count(id) && seen != last_seen_.end() &&
                             now - seen->second < kUnreachableAfter;
      const api::Reachability reach =
          reachable ? api::REACHABILITY_REACHABLE : api::REACHABILITY_UNREACHABLE;
      if (n->manager_status().leader() == leader && n->manager_status().reachability() == reach)
        continue;
      api::Node copy = *n;
      copy.mutable_manager_status()->set_leader(leader);
      copy.mutable_manager_status()->set_reachability(reach);
      changed.push_back(std::move(copy));
    }
  });
  if (changed.empty()) return;
  absl::Status s = store_->Update([&](store::WriteTx& tx) {
    for (const api::Node& n : changed) tx.UpdateObject(n);
    return absl::OkStatus();
  });
  // A concurrent write to one of these nodes wins; the next round retries.
  if (!s.ok()) log::Info(kLog, "manager status not updated", {{"reason", s}});
}

void MemberReconciler::RemoveOrphanMembers(const raft::NodeStatus& rs) {
  std::set<uint64_t> referenced;
  store_->View([&](const store::ReadTx& tx) {
    for (const auto& n : tx.ListNodes()) referenced.insert(n->manager_status().raft_id());
  });
  const absl::Time now = clock_->Now();
  std::set<uint64_t> members(rs.conf_state.voters.begin(), rs.conf_state.voters.end());
  members.insert(rs.conf_state.learners.begin(), rs.conf_state.learners.end());
  std::erase_if(unreferenced_since_, [&](const auto& e) {
    return !members.count(e.first) || referenced.count(e.first);
  });
  for (uint64_t id : members) {
    if (id == rs.id || referenced.count(id)) continue;
    auto [it, fresh] = unreferenced_since_.emplace(id, now);
    if (fresh || now - it->second < kOrphanGrace) continue;
    log::Info(kLog, "removing a raft member whose node is gone", {{"member", id}});
    if (raft_->RemoveMember(id, absl::Seconds(5)).ok()) unreferenced_since_.erase(id);
  }
}

}  // namespace swarm::manager::leader

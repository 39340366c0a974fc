// A test harness that drives several RawNodes through the full Ready loop (persist to a
// MemoryStorage, send, apply, advance) over an in-memory network that tests can cut, filter
// and heal. Everything is synchronous and deterministic: Stabilize() runs rounds until no node
// has anything left to do.
#ifndef SWARM_RAFT_TEST_NETWORK_H_
#define SWARM_RAFT_TEST_NETWORK_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "raft/raw_node.h"
#include "raft/storage.h"

namespace swarm::raft::testing {

inline Config TestConfig(uint64_t id, Storage* storage) {
  Config c;
  c.id = id;
  c.election_tick = 10;
  c.heartbeat_tick = 1;
  c.storage = storage;
  c.seed = id;
  return c;
}

class TestNetwork {
 public:
  // A cluster whose initial membership is voters + learners. tweak adjusts each node's config.
  explicit TestNetwork(std::vector<uint64_t> voters, std::vector<uint64_t> learners = {},
                       std::function<void(Config&)> tweak = nullptr)
      : tweak_(std::move(tweak)) {
    ConfState cs{voters, learners};
    std::vector<uint64_t> all = voters;
    all.insert(all.end(), learners.begin(), learners.end());
    for (uint64_t id : all) {
      auto& n = nodes_[id];
      n.storage = std::make_unique<MemoryStorage>();
      n.storage->Bootstrap(cs);
      Start(id);
    }
  }

  // Adds a node that is not in any configuration yet (to be added by a conf change).
  void AddBlankNode(uint64_t id) {
    nodes_[id].storage = std::make_unique<MemoryStorage>();
    Start(id);
  }

  RawNode& node(uint64_t id) { return *nodes_.at(id).raw; }
  MemoryStorage& storage(uint64_t id) { return *nodes_.at(id).storage; }
  // Payloads of the normal, non-empty entries each node applied, in order.
  const std::vector<std::string>& applied(uint64_t id) { return nodes_.at(id).applied; }
  std::vector<ReadState>& read_states(uint64_t id) { return nodes_.at(id).read_states; }
  bool alive(uint64_t id) const { return nodes_.at(id).raw != nullptr; }

  uint64_t Leader() {
    uint64_t lead = kNone, term = 0;
    for (auto& [id, n] : nodes_) {
      if (!n.raw) continue;
      raft::Status s = n.raw->GetStatus();
      if (s.soft_state.state == StateType::kLeader && s.hard_state.term >= term) {
        lead = id;
        term = s.hard_state.term;
      }
    }
    return lead;
  }
  StateType State(uint64_t id) { return node(id).GetStatus().soft_state.state; }
  uint64_t Term(uint64_t id) { return node(id).GetStatus().hard_state.term; }
  uint64_t Committed(uint64_t id) { return node(id).GetStatus().hard_state.commit; }

  // Network faults. A message is delivered unless its link is cut or a filter drops it.
  void Isolate(uint64_t id) {
    for (auto& [other, n] : nodes_) {
      if (other != id) {
        Cut(id, other);
      }
    }
  }
  void Cut(uint64_t a, uint64_t b) {
    cut_.insert({a, b});
    cut_.insert({b, a});
  }
  void CutOneWay(uint64_t from, uint64_t to) { cut_.insert({from, to}); }
  void Heal() {
    cut_.clear();
    filter_ = nullptr;
  }
  // Drops every message for which drop returns true; drop may also alter a message it keeps.
  void SetFilter(std::function<bool(Message&)> drop) { filter_ = std::move(drop); }

  // Loses everything not persisted; Restart() rebuilds the node from its storage.
  void Crash(uint64_t id) {
    auto& n = nodes_.at(id);
    n.raw.reset();
    n.applied.clear();
  }
  void Restart(uint64_t id) { Start(id); }

  void Campaign(uint64_t id) {
    ASSERT_TRUE(node(id).Campaign().ok());
    Stabilize();
  }
  absl::Status Propose(uint64_t id, const std::string& data) {
    absl::Status s = node(id).Propose(data);
    Stabilize();
    return s;
  }
  void Tick(uint64_t id, int n = 1) {
    for (int i = 0; i < n; ++i) {
      node(id).Tick();
      Stabilize();
    }
  }
  void TickAll(int n = 1) {
    for (int i = 0; i < n; ++i) {
      for (auto& [id, node] : nodes_) {
        if (node.raw) node.raw->Tick();
      }
      Stabilize();
    }
  }

  // Hands m to its receiver (subject to the network's faults), then stabilizes.
  void Deliver(Message m) {
    queue_.push_back(std::move(m));
    Stabilize();
  }

  // Runs Ready rounds and delivers messages until nothing is left to do.
  void Stabilize() {
    for (int round = 0; round < 10000; ++round) {
      bool progress = false;
      for (auto& [id, n] : nodes_) {
        if (n.raw && n.raw->HasReady()) {
          HandleReady(id, n);
          progress = true;
        }
      }
      while (!queue_.empty()) {
        Message m = std::move(queue_.front());
        queue_.pop_front();
        progress = true;
        if (cut_.count({m.from, m.to}) || (filter_ && filter_(m))) continue;
        auto it = nodes_.find(m.to);
        if (it == nodes_.end() || !it->second.raw) continue;
        (void)it->second.raw->Step(std::move(m));
        it->second.raw->CheckInvariants();
      }
      if (!progress) return;
    }
    FAIL() << "the network did not stabilize";
  }

  // Messages counted by type since the last reset (delivered or not).
  std::map<MessageType, int>& sent() { return sent_; }

 private:
  struct NodeState {
    std::unique_ptr<MemoryStorage> storage;
    std::unique_ptr<RawNode> raw;
    std::vector<std::string> applied;
    std::vector<ReadState> read_states;
  };

  void Start(uint64_t id) {
    auto& n = nodes_.at(id);
    Config c = TestConfig(id, n.storage.get());
    if (tweak_) tweak_(c);
    auto raw = RawNode::Create(c);
    ASSERT_TRUE(raw.ok()) << raw.status();
    n.raw = *std::move(raw);
  }

  void HandleReady(uint64_t id, NodeState& n) {
    Ready rd = n.raw->GetReady();
    for (Message& m : rd.messages) Queue(std::move(m));
    if (!rd.snapshot.empty()) {
      ASSERT_TRUE(n.storage->ApplySnapshot(rd.snapshot).ok());
      // The state machine is replaced by the snapshot's: here, the list of applied payloads.
      n.applied.clear();
      std::string data(rd.snapshot.data.view());
      size_t pos = 0;
      while (pos < data.size()) {
        size_t end = data.find('\n', pos);
        n.applied.push_back(data.substr(pos, end - pos));
        pos = end + 1;
      }
    }
    ASSERT_TRUE(n.storage->Append(rd.entries).ok());
    if (!rd.hard_state.empty()) n.storage->SetHardState(rd.hard_state);
    for (Message& m : rd.messages_after_persist) Queue(std::move(m));
    for (const Entry& e : rd.committed_entries) {
      if (e.type == EntryType::kNormal && !e.data.empty()) {
        n.applied.emplace_back(e.data.view());
      }
    }
    for (ReadState& r : rd.read_states) n.read_states.push_back(std::move(r));
    n.raw->Advance();
    n.raw->CheckInvariants();
    (void)id;
  }

  void Queue(Message m) {
    ++sent_[m.type];
    queue_.push_back(std::move(m));
  }

  std::function<void(Config&)> tweak_;
  std::map<uint64_t, NodeState> nodes_;
  std::deque<Message> queue_;
  std::set<std::pair<uint64_t, uint64_t>> cut_;
  std::function<bool(Message&)> filter_;
  std::map<MessageType, int> sent_;
};

// Serializes a node's applied payloads as snapshot data (one per line).
inline std::string SnapshotData(const std::vector<std::string>& applied) {
  std::string out;
  for (const std::string& s : applied) out += s + "\n";
  return out;
}

}  // namespace swarm::raft::testing

#endif  // SWARM_RAFT_TEST_NETWORK_H_

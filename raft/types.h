// Plain data of the Raft core: entries, persistent state, membership, snapshots and messages.
// They mirror proto/raft.proto one to one (raft/codec converts); the core works on these
// structs because they are cheap to copy and move: an entry's payload is an immutable shared
// buffer, so handing an entry to the log, to two followers' messages, to Ready and to the
// application shares one allocation instead of copying the bytes each time.
#ifndef SWARM_RAFT_TYPES_H_
#define SWARM_RAFT_TYPES_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace swarm::raft {

// No node: a vote for nobody, an unknown leader.
inline constexpr uint64_t kNone = 0;

// Immutable bytes shared by every copy.
class Payload {
 public:
  Payload() = default;
  explicit Payload(std::string bytes)
      : bytes_(bytes.empty() ? nullptr : std::make_shared<const std::string>(std::move(bytes))) {}
  std::string_view view() const { return bytes_ ? std::string_view(*bytes_) : std::string_view(); }
  size_t size() const { return bytes_ ? bytes_->size() : 0; }
  bool empty() const { return size() == 0; }
  friend bool operator==(const Payload& a, const Payload& b) { return a.view() == b.view(); }

 private:
  std::shared_ptr<const std::string> bytes_;
};

enum class EntryType : uint8_t { kNormal, kConfChange };

struct Entry {
  uint64_t index = 0;
  uint64_t term = 0;
  EntryType type = EntryType::kNormal;
  Payload data;

  // Bytes the entry counts for in flow control and batching limits.
  size_t Size() const { return data.size() + 16; }
  friend bool operator==(const Entry&, const Entry&) = default;
};

// What must be durable before a node answers: the paper's persistent state.
struct HardState {
  uint64_t term = 0;
  uint64_t vote = kNone;
  uint64_t commit = 0;

  bool empty() const { return term == 0 && vote == kNone && commit == 0; }
  friend bool operator==(const HardState&, const HardState&) = default;
};

// Members: voters count toward quorums, learners only receive the log. Kept sorted.
struct ConfState {
  std::vector<uint64_t> voters;
  std::vector<uint64_t> learners;
  friend bool operator==(const ConfState&, const ConfState&) = default;
};

struct SnapshotMetadata {
  ConfState conf_state;
  uint64_t index = 0;
  uint64_t term = 0;
  friend bool operator==(const SnapshotMetadata&, const SnapshotMetadata&) = default;
};

struct Snapshot {
  Payload data;
  SnapshotMetadata metadata;
  bool empty() const { return metadata.index == 0; }
  friend bool operator==(const Snapshot&, const Snapshot&) = default;
};

enum class ConfChangeType : uint8_t { kAddNode, kRemoveNode, kAddLearnerNode };

// A single-server membership change (the payload of a kConfChange entry).
struct ConfChange {
  ConfChangeType type = ConfChangeType::kAddNode;
  uint64_t node_id = kNone;
  std::string context;

  // The entry payload: the encoding of proto/raft.proto's ConfChange.
  std::string Encode() const;
  // Parses a payload; false when it is not a ConfChange.
  static bool Decode(std::string_view bytes, ConfChange* out);
  friend bool operator==(const ConfChange&, const ConfChange&) = default;
};

enum class MessageType : uint8_t {
  kHup,             // local: start an election
  kBeat,            // local: leader sends heartbeats
  kProp,            // proposal (local, or forwarded to the leader)
  kApp,             // append entries
  kAppResp,         // answer to kApp
  kVote,            // request vote
  kVoteResp,        // answer to kVote
  kSnap,            // install snapshot
  kHeartbeat,       // leader heartbeat
  kHeartbeatResp,   // answer to kHeartbeat
  kUnreachable,     // local: the transport could not reach `from`
  kSnapStatus,      // local: snapshot delivery to `from` ended (reject = failed)
  kCheckQuorum,     // local: leader checks that a quorum is active
  kTransferLeader,  // hand leadership to `from` (local, or forwarded to the leader)
  kTimeoutNow,      // leadership transfer: campaign now
  kReadIndex,       // linearizable read (local, or forwarded to the leader)
  kReadIndexResp,   // leader's answer to a forwarded read
  kPreVote,         // would you vote for me?
  kPreVoteResp,     // answer to kPreVote
};

const char* MessageTypeName(MessageType type);

// True for messages that never leave the node.
bool IsLocalMessage(MessageType type);
// True for answers (which are never forwarded and never start an election).
bool IsResponseMessage(MessageType type);

struct Message {
  MessageType type = MessageType::kHup;
  uint64_t to = kNone;
  uint64_t from = kNone;
  uint64_t term = 0;
  uint64_t log_term = 0;
  uint64_t index = 0;
  std::vector<Entry> entries;
  uint64_t commit = 0;
  // Only for kSnap.
  std::optional<Snapshot> snapshot;
  bool reject = false;
  uint64_t reject_hint = 0;
  std::string context;
};

// The outcome of a ReadIndex request: once the application has applied `index`, a read of its
// state machine is linearizable. `context` identifies the request.
struct ReadState {
  uint64_t index = 0;
  std::string context;
  friend bool operator==(const ReadState&, const ReadState&) = default;
};

enum class StateType : uint8_t { kFollower, kCandidate, kLeader, kPreCandidate };
const char* StateTypeName(StateType state);

// Stops the process: a broken Raft invariant or an inconsistent storage must never be limped
// past, since going on could lose or reorder committed entries.
[[noreturn]] void Fatal(const std::string& message);

// Volatile state that the application may want to observe (not persisted).
struct SoftState {
  uint64_t lead = kNone;
  StateType state = StateType::kFollower;
  friend bool operator==(const SoftState&, const SoftState&) = default;
};

}  // namespace swarm::raft

#endif  // SWARM_RAFT_TYPES_H_

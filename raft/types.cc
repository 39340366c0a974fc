#include "raft/types.h"

#include <cstdio>
#include <cstdlib>

#include "proto/raft.pb.h"

namespace swarm::raft {

std::string ConfChange::Encode() const {
  raftpb::ConfChange pb;
  switch (type) {
    case ConfChangeType::kAddNode:
      pb.set_type(raftpb::CONF_CHANGE_ADD_NODE);
      break;
    case ConfChangeType::kRemoveNode:
      pb.set_type(raftpb::CONF_CHANGE_REMOVE_NODE);
      break;
    case ConfChangeType::kAddLearnerNode:
      pb.set_type(raftpb::CONF_CHANGE_ADD_LEARNER_NODE);
      break;
  }
  pb.set_node_id(node_id);
  pb.set_context(context);
  return pb.SerializeAsString();
}

bool ConfChange::Decode(std::string_view bytes, ConfChange* out) {
  raftpb::ConfChange pb;
  if (!pb.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return false;
  switch (pb.type()) {
    case raftpb::CONF_CHANGE_ADD_NODE:
      out->type = ConfChangeType::kAddNode;
      break;
    case raftpb::CONF_CHANGE_REMOVE_NODE:
      out->type = ConfChangeType::kRemoveNode;
      break;
    case raftpb::CONF_CHANGE_ADD_LEARNER_NODE:
      out->type = ConfChangeType::kAddLearnerNode;
      break;
    default:
      return false;
  }
  out->node_id = pb.node_id();
  out->context = pb.context();
  return out->node_id != kNone;
}

const char* MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kHup:
      return "MsgHup";
    case MessageType::kBeat:
      return "MsgBeat";
    case MessageType::kProp:
      return "MsgProp";
    case MessageType::kApp:
      return "MsgApp";
    case MessageType::kAppResp:
      return "MsgAppResp";
    case MessageType::kVote:
      return "MsgVote";
    case MessageType::kVoteResp:
      return "MsgVoteResp";
    case MessageType::kSnap:
      return "MsgSnap";
    case MessageType::kHeartbeat:
      return "MsgHeartbeat";
    case MessageType::kHeartbeatResp:
      return "MsgHeartbeatResp";
    case MessageType::kUnreachable:
      return "MsgUnreachable";
    case MessageType::kSnapStatus:
      return "MsgSnapStatus";
    case MessageType::kCheckQuorum:
      return "MsgCheckQuorum";
    case MessageType::kTransferLeader:
      return "MsgTransferLeader";
    case MessageType::kTimeoutNow:
      return "MsgTimeoutNow";
    case MessageType::kReadIndex:
      return "MsgReadIndex";
    case MessageType::kReadIndexResp:
      return "MsgReadIndexResp";
    case MessageType::kPreVote:
      return "MsgPreVote";
    case MessageType::kPreVoteResp:
      return "MsgPreVoteResp";
  }
  return "MsgUnknown";
}

bool IsLocalMessage(MessageType type) {
  return type == MessageType::kHup || type == MessageType::kBeat ||
         type == MessageType::kUnreachable || type == MessageType::kSnapStatus ||
         type == MessageType::kCheckQuorum;
}

bool IsResponseMessage(MessageType type) {
  return type == MessageType::kAppResp || type == MessageType::kVoteResp ||
         type == MessageType::kHeartbeatResp || type == MessageType::kUnreachable ||
         type == MessageType::kPreVoteResp;
}

const char* StateTypeName(StateType state) {
  switch (state) {
    case StateType::kFollower:
      return "follower";
    case StateType::kCandidate:
      return "candidate";
    case StateType::kLeader:
      return "leader";
    case StateType::kPreCandidate:
      return "pre-candidate";
  }
  return "unknown";
}

void Fatal(const std::string& message) {
  std::fprintf(stderr, "FATAL: raft: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace swarm::raft

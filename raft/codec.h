// Conversions between the core's structs (raft/types.h) and their encodings in
// proto/raft.proto, used on disk (raft/disk_storage) and on the wire (raft/transport).
#ifndef SWARM_RAFT_CODEC_H_
#define SWARM_RAFT_CODEC_H_

#include "proto/raft.pb.h"
#include "raft/types.h"

namespace swarm::raft {

void ToProto(const Entry& e, raftpb::Entry* pb);
Entry FromProto(const raftpb::Entry& pb);
void ToProto(const HardState& hs, raftpb::HardState* pb);
HardState FromProto(const raftpb::HardState& pb);
void ToProto(const ConfState& cs, raftpb::ConfState* pb);
ConfState FromProto(const raftpb::ConfState& pb);
void ToProto(const SnapshotMetadata& m, raftpb::SnapshotMetadata* pb);
SnapshotMetadata FromProto(const raftpb::SnapshotMetadata& pb);
// Messages: the snapshot's data is included only when with_snapshot_data (the transport
// streams it separately in chunks).
void ToProto(const Message& m, raftpb::Message* pb, bool with_snapshot_data = true);
Message FromProto(const raftpb::Message& pb);

}  // namespace swarm::raft

#endif  // SWARM_RAFT_CODEC_H_

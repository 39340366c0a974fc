#include "raft/codec.h"

namespace swarm::raft {

void ToProto(const Entry& e, raftpb::Entry* pb) {
  pb->set_index(e.index);
  pb->set_term(e.term);
  pb->set_type(e.type == EntryType::kConfChange ? raftpb::ENTRY_CONF_CHANGE : raftpb::ENTRY_NORMAL);
  pb->set_data(std::string(e.data.view()));
}

Entry FromProto(const raftpb::Entry& pb) {
  return Entry{pb.index(), pb.term(),
               pb.type() == raftpb::ENTRY_CONF_CHANGE ? EntryType::kConfChange : EntryType::kNormal,
               Payload(pb.data())};
}

void ToProto(const HardState& hs, raftpb::HardState* pb) {
  pb->set_term(hs.term);
  pb->set_vote(hs.vote);
  pb->set_commit(hs.commit);
}

HardState FromProto(const raftpb::HardState& pb) {
  return HardState{pb.term(), pb.vote(), pb.commit()};
}

void ToProto(const ConfState& cs, raftpb::ConfState* pb) {
  pb->mutable_voters()->Assign(cs.voters.begin(), cs.voters.end());
  pb->mutable_learners()->Assign(cs.learners.begin(), cs.learners.end());
}

ConfState FromProto(const raftpb::ConfState& pb) {
  return ConfState{{pb.voters().begin(), pb.voters().end()},
                   {pb.learners().begin(), pb.learners().end()}};
}

void ToProto(const SnapshotMetadata& m, raftpb::SnapshotMetadata* pb) {
  ToProto(m.conf_state, pb->mutable_conf_state());
  pb->set_index(m.index);
  pb->set_term(m.term);
}

SnapshotMetadata FromProto(const raftpb::SnapshotMetadata& pb) {
  return SnapshotMetadata{FromProto(pb.conf_state()), pb.index(), pb.term()};
}

void ToProto(const Message& m, raftpb::Message* pb, bool with_snapshot_data) {
  pb->set_type(static_cast<raftpb::MessageType>(static_cast<int>(m.type)));
  pb->set_to(m.to);
  pb->set_from(m.from);
  pb->set_term(m.term);
  pb->set_log_term(m.log_term);
  pb->set_index(m.index);
  pb->mutable_entries()->Reserve(static_cast<int>(m.entries.size()));
  for (const Entry& e : m.entries) ToProto(e, pb->add_entries());
  pb->set_commit(m.commit);
  if (m.snapshot) {
    ToProto(m.snapshot->metadata, pb->mutable_snapshot()->mutable_metadata());
    if (with_snapshot_data) pb->mutable_snapshot()->set_data(std::string(m.snapshot->data.view()));
  }
  pb->set_reject(m.reject);
  pb->set_reject_hint(m.reject_hint);
  pb->set_context(m.context);
}

Message FromProto(const raftpb::Message& pb) {
  Message m;
  m.type = static_cast<MessageType>(static_cast<int>(pb.type()));
  m.to = pb.to();
  m.from = pb.from();
  m.term = pb.term();
  m.log_term = pb.log_term();
  m.index = pb.index();
  m.entries.reserve(pb.entries_size());
  for (const raftpb::Entry& e : pb.entries()) m.entries.push_back(FromProto(e));
  m.commit = pb.commit();
  if (pb.has_snapshot()) {
    m.snapshot = Snapshot{Payload(pb.snapshot().data()), FromProto(pb.snapshot().metadata())};
  }
  m.reject = pb.reject();
  m.reject_hint = pb.reject_hint();
  m.context = pb.context();
  return m;
}

}  // namespace swarm::raft

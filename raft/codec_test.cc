#include "raft/codec.h"

#include "gtest/gtest.h"

namespace swarm::raft {
namespace {

TEST(Codec, MessageRoundTripKeepsEveryField) {
  for (int t = 0; t <= static_cast<int>(MessageType::kPreVoteResp); ++t) {
    Message m;
    m.type = static_cast<MessageType>(t);
    m.to = 2;
    m.from = 3;
    m.term = 4;
    m.log_term = 5;
    m.index = 6;
    m.entries = {Entry{7, 4, EntryType::kNormal, Payload("a")},
                 Entry{8, 4, EntryType::kConfChange, Payload("b")}};
    m.commit = 9;
    m.snapshot = Snapshot{Payload("state"), SnapshotMetadata{ConfState{{1, 2}, {3}}, 10, 3}};
    m.reject = true;
    m.reject_hint = 11;
    m.context = "ctx";
    raftpb::Message pb;
    ToProto(m, &pb);
    // The C++ and proto enums must agree on every value.
    EXPECT_EQ(static_cast<int>(pb.type()), t);
    raftpb::Message parsed;
    ASSERT_TRUE(parsed.ParseFromString(pb.SerializeAsString()));
    Message back = FromProto(parsed);
    EXPECT_EQ(back.type, m.type);
    EXPECT_EQ(back.entries, m.entries);
    EXPECT_EQ(back.snapshot, m.snapshot);
    EXPECT_EQ(back.context, m.context);
    EXPECT_EQ(
        std::tie(back.to, back.from, back.term, back.log_term, back.index, back.commit, back.reject,
                 back.reject_hint),
        std::tie(m.to, m.from, m.term, m.log_term, m.index, m.commit, m.reject, m.reject_hint));
  }
  EXPECT_EQ(raftpb::MessageType_Name(raftpb::MSG_PRE_VOTE_RESP), std::string("MSG_PRE_VOTE_RESP"));
  EXPECT_EQ(static_cast<int>(MessageType::kPreVoteResp), raftpb::MSG_PRE_VOTE_RESP);
}

TEST(Codec, SnapshotDataCanBeLeftOut) {
  Message m;
  m.type = MessageType::kSnap;
  m.snapshot = Snapshot{Payload("big"), SnapshotMetadata{{}, 5, 2}};
  raftpb::Message pb;
  ToProto(m, &pb, /*with_snapshot_data=*/false);
  EXPECT_TRUE(pb.snapshot().data().empty());
  EXPECT_EQ(pb.snapshot().metadata().index(), 5u);
}

}  // namespace
}  // namespace swarm::raft

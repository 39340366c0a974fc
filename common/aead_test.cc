#include "common/aead.h"

#include "gtest/gtest.h"

namespace swarm {
namespace {

TEST(Aead, SealOpenRoundTrip) {
  SeededRandom r(1);
  KeyRing ring(NewDataKey(7, r));
  std::string sealed = SealRecord(ring.current(), "secret payload", "log/1", r);
  EXPECT_EQ(sealed.find("secret payload"), std::string::npos);
  auto opened = OpenRecord(ring, sealed, "log/1");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, "secret payload");
  EXPECT_EQ(*OpenRecord(ring, SealRecord(ring.current(), "", "", r), ""), "");
}

TEST(Aead, FreshNonceEachRecord) {
  SeededRandom r(1);
  DataKey k = NewDataKey(1, r);
  EXPECT_NE(SealRecord(k, "same", "a", r), SealRecord(k, "same", "a", r));
}

TEST(Aead, EveryFlippedByteIsDetected) {
  SeededRandom r(2);
  KeyRing ring(NewDataKey(1, r));
  std::string sealed = SealRecord(ring.current(), "0123456789", "log/5", r);
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string bad = sealed;
    bad[i] ^= 0x01;
    absl::StatusOr<std::string> opened = OpenRecord(ring, bad, "log/5");
    EXPECT_FALSE(opened.ok()) << "byte " << i;
  }
  // Moved to another place: refused.
  EXPECT_EQ(OpenRecord(ring, sealed, "log/6").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(OpenRecord(ring, sealed.substr(0, 10), "log/5").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(Aead, RotatedKeysStillOpenOldRecords) {
  SeededRandom r(3);
  DataKey old_key = NewDataKey(1, r);
  std::string old_record = SealRecord(old_key, "old", "x", r);
  KeyRing ring(NewDataKey(2, r));
  EXPECT_EQ(OpenRecord(ring, old_record, "x").status().code(), absl::StatusCode::kNotFound);
  ring.AddOld(old_key);
  EXPECT_EQ(*OpenRecord(ring, old_record, "x"), "old");
  // A record sealed with a different key of the same ID fails authentication.
  KeyRing impostor(NewDataKey(1, r));
  EXPECT_EQ(OpenRecord(impostor, old_record, "x").status().code(), absl::StatusCode::kDataLoss);
}

TEST(Aead, Rotate_KeepsThePreviousKeyUntilDropped) {
  SeededRandom r(4);
  KeyRing ring(NewDataKey(1, r));
  const std::string before = SealRecord(ring.current(), "before", "x", r);
  ring.Rotate(NewDataKey(2, r));
  const std::string after = SealRecord(ring.current(), "after", "x", r);
  EXPECT_EQ(*RecordKeyId(before), 1u);
  EXPECT_EQ(*RecordKeyId(after), 2u);
  EXPECT_EQ(*OpenRecord(ring, before, "x"), "before");
  EXPECT_EQ(*OpenRecord(ring, after, "x"), "after");
  ring.DropOld();
  EXPECT_EQ(OpenRecord(ring, before, "x").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*OpenRecord(ring, after, "x"), "after");
  EXPECT_EQ(RecordKeyId("short").status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace swarm

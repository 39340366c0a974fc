// Snapshot data as a stream. A state machine writes its snapshot through a SnapshotWriter and
// restores from a SnapshotReader, piece by piece, so that no side holds the whole snapshot:
// the node seals each megabyte into the log as it comes (DiskStorage), the transport sends the
// stored chunks one at a time, and a follower stores what it receives before it restores from
// its own disk. A snapshot then needs memory for the state machine's state and a few chunks,
// not for a serialized copy of it (or three: taken, stored, sent).
//
// For state machines whose snapshot is a protocol buffer message of repeated message fields
// (the store's StoreSnapshot, raftkv's KVSnapshot), MessageFieldWriter and MessageFieldReader
// write and read that wire format one field at a time.
//
// Thread-safety: none of these classes is thread-safe; each is used by one thread at a time.
#ifndef SWARM_RAFT_SNAPSHOT_IO_H_
#define SWARM_RAFT_SNAPSHOT_IO_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace google::protobuf {
class MessageLite;
}  // namespace google::protobuf

namespace swarm::raft {

// Where a snapshot's bytes go, in order, in pieces of any size.
class SnapshotWriter {
 public:
  virtual ~SnapshotWriter() = default;
  virtual absl::Status Write(std::string_view bytes) = 0;
};

// A snapshot's bytes, in order.
class SnapshotReader {
 public:
  virtual ~SnapshotReader() = default;
  // Reads up to n bytes into buf; 0 at the end. DATA_LOSS when a stored chunk does not open.
  virtual absl::StatusOr<size_t> Read(char* buf, size_t n) = 0;
};

// A stored snapshot's data, for sending: its size and format, then the bytes.
struct StoredSnapshot {
  // kSnapshotFormatStreamed, or 0 for a snapshot written whole before streaming existed.
  uint32_t format = 0;
  uint64_t size = 0;
  std::unique_ptr<SnapshotReader> reader;
};
// The node's snapshot data: a varint-prefixed RaftSnapshotData (the members), then the state
// machine's bytes to the end. Format 0 was one RaftSnapshotData with the state inside.
inline constexpr uint32_t kSnapshotFormatStreamed = 1;

// Reads exactly n bytes (DATA_LOSS when the data ends first).
absl::Status ReadExactly(SnapshotReader& in, char* buf, size_t n);
// Reads a base-128 varint (DATA_LOSS when malformed or cut short); false at a clean end.
absl::StatusOr<bool> ReadVarint(SnapshotReader& in, uint64_t* v);
void AppendVarint(std::string& out, uint64_t v);
// Reads everything left, for state machines whose state is small.
absl::StatusOr<std::string> ReadAll(SnapshotReader& in);

class StringSnapshotReader final : public SnapshotReader {
 public:
  explicit StringSnapshotReader(std::string_view data) : data_(data) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override;

 private:
  std::string_view data_;
};

class StringSnapshotWriter final : public SnapshotWriter {
 public:
  absl::Status Write(std::string_view bytes) override;
  const std::string& data() const { return data_; }

 private:
  std::string data_;
};

// Writes messages as the fields of an enclosing message (tag, length, bytes), buffered.
class MessageFieldWriter {
 public:
  explicit MessageFieldWriter(SnapshotWriter& out) : out_(out) {}
  absl::Status Write(int field, const google::protobuf::MessageLite& m);
  // Writes what is buffered; call once after the last field.
  absl::Status Flush();

 private:
  SnapshotWriter& out_;
  std::string buffer_;
};

// Reads the length-delimited fields of a message from a SnapshotReader, buffered.
class MessageFieldReader {
 public:
  explicit MessageFieldReader(SnapshotReader& in);
  ~MessageFieldReader();
  // The next field's number and bytes; false at the end. DATA_LOSS when the data is not a
  // sequence of length-delimited fields.
  absl::StatusOr<bool> Next(int* field, std::string* bytes);

 private:
  class Buffered;
  std::unique_ptr<Buffered> in_;
};

}  // namespace swarm::raft

#endif  // SWARM_RAFT_SNAPSHOT_IO_H_

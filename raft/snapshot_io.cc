#include "raft/snapshot_io.h"

#include <google/protobuf/message_lite.h>

#include <algorithm>
#include <cstring>

#include "common/status_macros.h"

namespace swarm::raft {

absl::Status ReadExactly(SnapshotReader& in, char* buf, size_t n) {
  while (n > 0) {
    ASSIGN_OR_RETURN(const size_t got, in.Read(buf, n));
    if (got == 0) return absl::DataLossError("the snapshot data ends early");
    buf += got;
    n -= got;
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> ReadVarint(SnapshotReader& in, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    char c;
    ASSIGN_OR_RETURN(const size_t got, in.Read(&c, 1));
    if (got == 0) {
      if (shift == 0) return false;
      return absl::DataLossError("the snapshot data ends inside a varint");
    }
    *v |= static_cast<uint64_t>(c & 0x7f) << shift;
    if ((c & 0x80) == 0) return true;
  }
  return absl::DataLossError("the snapshot data holds a malformed varint");
}

void AppendVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

absl::StatusOr<std::string> ReadAll(SnapshotReader& in) {
  std::string out;
  char buf[64 << 10];
  for (;;) {
    ASSIGN_OR_RETURN(const size_t got, in.Read(buf, sizeof buf));
    if (got == 0) return out;
    out.append(buf, got);
  }
}

absl::StatusOr<size_t> StringSnapshotReader::Read(char* buf, size_t n) {
  n = std::min(n, data_.size());
  std::memcpy(buf, data_.data(), n);
  data_.remove_prefix(n);
  return n;
}

absl::Status StringSnapshotWriter::Write(std::string_view bytes) {
  data_.append(bytes);
  return absl::OkStatus();
}

absl::Status MessageFieldWriter::Write(int field, const google::protobuf::MessageLite& m) {
  const size_t size = m.ByteSizeLong();
  AppendVarint(buffer_, static_cast<uint64_t>(field) << 3 | 2);  // wire type 2: length-delimited
  AppendVarint(buffer_, size);
  const size_t at = buffer_.size();
  buffer_.resize(at + size);
  m.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(buffer_.data() + at));
  return buffer_.size() >= (64u << 10) ? Flush() : absl::OkStatus();
}

absl::Status MessageFieldWriter::Flush() {
  absl::Status s = out_.Write(buffer_);
  buffer_.clear();
  return s;
}

// Reads ahead 64 KiB at a time: fields are small, and a varint is read a byte at a time.
class MessageFieldReader::Buffered final : public SnapshotReader {
 public:
  explicit Buffered(SnapshotReader& in) : in_(in) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    if (pos_ == end_ && n < sizeof buf_) {
      ASSIGN_OR_RETURN(end_, in_.Read(buf_, sizeof buf_));
      pos_ = 0;
    }
    if (pos_ == end_) return in_.Read(buf, n);  // a large read goes straight through
    n = std::min(n, end_ - pos_);
    std::memcpy(buf, buf_ + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  SnapshotReader& in_;
  char buf_[64 << 10];
  size_t pos_ = 0, end_ = 0;
};

MessageFieldReader::MessageFieldReader(SnapshotReader& in) : in_(std::make_unique<Buffered>(in)) {}
MessageFieldReader::~MessageFieldReader() = default;

absl::StatusOr<bool> MessageFieldReader::Next(int* field, std::string* bytes) {
  uint64_t tag = 0, size = 0;
  ASSIGN_OR_RETURN(const bool more, ReadVarint(*in_, &tag));
  if (!more) return false;
  if ((tag & 7) != 2 || (tag >> 3) == 0 || (tag >> 3) > (1u << 29)) {
    return absl::DataLossError("the snapshot data holds a field that is not length-delimited");
  }
  ASSIGN_OR_RETURN(const bool sized, ReadVarint(*in_, &size));
  if (!sized || size > (1u << 30)) {
    return absl::DataLossError("the snapshot data holds a field without a sane length");
  }
  *field = static_cast<int>(tag >> 3);
  bytes->resize(size);
  RETURN_IF_ERROR(ReadExactly(*in_, bytes->data(), size));
  return true;
}

}  // namespace swarm::raft

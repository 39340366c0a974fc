// Authenticated encryption of records at rest (AES-256-GCM through OpenSSL's EVP interface):
// the Raft log's entries and snapshots, and later the keys that autolock wraps.
//
// A sealed record is: version (1 byte, = 1) | key ID (4 bytes, big-endian) | nonce (12 bytes,
// fresh from the CSPRNG for each record) | ciphertext | tag (16 bytes). The key ID lets keys
// rotate: old records stay readable as long as the key ring holds their key. The associated
// data (for example "log/42") binds a record to its place, so a record moved elsewhere fails
// to open just like a corrupted one.
//
// Thread-safety: KeyRing is immutable once built; SealRecord and OpenRecord are thread-safe.
#ifndef SWARM_COMMON_AEAD_H_
#define SWARM_COMMON_AEAD_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/random.h"

namespace swarm {

inline constexpr size_t kAeadKeySize = 32;

struct DataKey {
  uint32_t id = 0;
  // kAeadKeySize bytes.
  std::string key;
};

// A new random key with the given ID.
DataKey NewDataKey(uint32_t id, Random& random);

class KeyRing {
 public:
  // current seals new records; it is also used to open them.
  explicit KeyRing(DataKey current);
  // Keeps an older key to open records sealed with it.
  void AddOld(DataKey key);
  // Makes next the current key; the previous current key stays to open older records.
  void Rotate(DataKey next);
  // Forgets every key but the current one, once nothing sealed with them is left.
  void DropOld() { old_.clear(); }
  const DataKey& current() const { return current_; }
  const DataKey* Find(uint32_t id) const;
  // The older keys, by ID.
  const std::map<uint32_t, DataKey>& old() const { return old_; }

 private:
  DataKey current_;
  std::map<uint32_t, DataKey> old_;
};

std::string SealRecord(const DataKey& key, std::string_view plaintext, std::string_view aad,
                       Random& random);

// The ID of the key that sealed record, without opening it. DATA_LOSS as for OpenRecord when
// the record is truncated or has an unknown version.
absl::StatusOr<uint32_t> RecordKeyId(std::string_view record);

// Errors: DATA_LOSS when the record is truncated, has an unknown version, or fails
// authentication (corrupted, moved, or sealed with another key); NOT_FOUND when its key ID is
// not in the ring.
absl::StatusOr<std::string> OpenRecord(const KeyRing& keys, std::string_view record,
                                       std::string_view aad);

}  // namespace swarm

#endif  // SWARM_COMMON_AEAD_H_

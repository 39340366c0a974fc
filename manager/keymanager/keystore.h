// KeyStore: a manager's keys at rest — the Raft data encryption key (DEK) and the node's TLS
// private key — in STATE_DIR/keys, always wrapped, never in the clear.
//
// Autolock off: the keys are wrapped with a random node-local key (STATE_DIR/keys.local), so
// the node restarts by itself. Autolock on: they are wrapped with a key encryption key derived
// from the unlock key (SWMKEY-1-...), which is never stored: a restarted manager stays locked
// until Unlock() gets the right key. A wrong key changes nothing. Files are replaced atomically
// (write, fsync, rename), so a crash leaves the old record or the new one.
//
// DEK rotation: the new DEK is stored as current with the previous ones in old_deks (wrapped
// the same way) before the Raft log seals anything with it; once the log no longer holds a
// record sealed with an old DEK, the keys are stored again without it. A manager that finds
// old DEKs at start has a rotation to finish.
//
// Thread-safety: not thread-safe; the manager's startup and the key manager call it in turn.
#ifndef SWARM_MANAGER_KEYMANAGER_KEYSTORE_H_
#define SWARM_MANAGER_KEYMANAGER_KEYSTORE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/aead.h"
#include "common/random.h"

namespace swarm::manager::keymanager {

struct Keys {
  DataKey dek;
  std::string tls_key_pem;
  // Previous DEKs still needed to read the Raft log (a rotation in progress).
  std::vector<DataKey> old_deks;
};

class KeyStore {
 public:
  KeyStore(std::string state_dir, Random& random) : dir_(std::move(state_dir)), random_(random) {}

  // Whether keys were stored before.
  bool Exists() const;
  // Whether the stored keys need the unlock key.
  absl::StatusOr<bool> Locked() const;

  // Stores keys for the first time or replaces them: wrapped with the unlock key (SWMKEY-1-...,
  // autolock on; the cluster's key, so every manager unlocks with the same one) or, when
  // unlock_key is empty, with a fresh node-local key. INVALID_ARGUMENT for a malformed key.
  absl::Status Store(const Keys& keys, const std::string& unlock_key);
  // Reads keys protected by the node-local key. FAILED_PRECONDITION "this node is locked: run
  // swarmctl swarm unlock" when autolock is on.
  absl::StatusOr<Keys> Load() const;
  // Reads keys protected by the unlock key. PERMISSION_DENIED for a wrong key,
  // INVALID_ARGUMENT for a malformed one; nothing on disk changes either way.
  absl::StatusOr<Keys> Unlock(const std::string& unlock_key) const;

 private:
  std::string path(const char* name) const { return dir_ + "/" + name; }

  std::string dir_;
  Random& random_;
};

}  // namespace swarm::manager::keymanager

#endif  // SWARM_MANAGER_KEYMANAGER_KEYSTORE_H_

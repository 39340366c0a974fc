#include "manager/keymanager/keystore.h"

#include <filesystem>

#include "common/files.h"
#include "manager/ca/ca.h"
#include "manager/keymanager/keys.pb.h"

namespace swarm::manager::keymanager {
namespace {

constexpr char kKeys[] = "keys";
constexpr char kLocal[] = "keys.local";
constexpr char kDekAad[] = "swarm raft dek";
constexpr char kTlsAad[] = "swarm tls key";
constexpr char kOldDekAad[] = "swarm raft old dek";

std::string Wrap(const std::string& kek_secret, bool from_unlock_key, const std::string& key,
                 const char* aad, Random& random) {
  if (from_unlock_key) return ca::WrapKey(kek_secret, key, random);
  return SealRecord(DataKey{0, kek_secret}, key, aad, random);
}

}  // namespace

bool KeyStore::Exists() const { return std::filesystem::exists(path(kKeys)); }

absl::StatusOr<bool> KeyStore::Locked() const {
  auto data = ReadFile(path(kKeys));
  if (!data.ok()) return data.status();
  KeyStoreRecord rec;
  if (!rec.ParseFromString(*data)) {
    return absl::DataLossError(path(kKeys) + " is damaged; restore the manager from a backup");
  }
  return rec.protection() == KEY_PROTECTION_UNLOCK_KEY;
}

absl::Status KeyStore::Store(const Keys& keys, const std::string& unlock_key) {
  const bool autolock = !unlock_key.empty();
  std::string secret;
  if (autolock) {
    auto parsed = ca::ParseUnlockKey(unlock_key);
    if (!parsed.ok()) return parsed.status();
    secret = *parsed;
  } else if (absl::StatusOr<bool> locked = Locked(); locked.ok() && !*locked) {
    // Keys already wrapped by the node-local key (a DEK rotation) keep it: with a fresh one,
    // a crash between writing it and the record would leave a record nothing opens.
    auto local = ReadFile(path(kLocal));
    if (!local.ok()) return local.status();
    if (local->size() != kAeadKeySize) {
      return absl::DataLossError(path(kLocal) + " is damaged; restore the manager from a backup");
    }
    secret = *std::move(local);
  } else {
    secret = NewDataKey(0, random_).key;
    if (absl::Status s = WriteFileAtomically(path(kLocal), secret, 0600, /*sync=*/true); !s.ok())
      return s;
  }
  KeyStoreRecord rec;
  rec.set_protection(autolock ? KEY_PROTECTION_UNLOCK_KEY : KEY_PROTECTION_NODE_LOCAL);
  rec.set_dek_id(keys.dek.id);
  rec.set_dek(Wrap(secret, autolock, keys.dek.key, kDekAad, random_));
  if (!keys.tls_key_pem.empty()) {
    rec.set_tls_key(Wrap(secret, autolock, keys.tls_key_pem, kTlsAad, random_));
  }
  for (const DataKey& old : keys.old_deks) {
    OldDek* o = rec.add_old_deks();
    o->set_id(old.id);
    o->set_key(Wrap(secret, autolock, old.key, kOldDekAad, random_));
  }
  if (absl::Status s =
          WriteFileAtomically(path(kKeys), rec.SerializeAsString(), 0600, /*sync=*/true);
      !s.ok())
    return s;
  if (autolock) {
    // The node-local key must not outlive the switch to autolock.
    std::error_code ec;
    std::filesystem::remove(path(kLocal), ec);
  }
  return absl::OkStatus();
}

absl::StatusOr<Keys> KeyStore::Load() const {
  auto data = ReadFile(path(kKeys));
  if (!data.ok()) return data.status();
  KeyStoreRecord rec;
  if (!rec.ParseFromString(*data)) {
    return absl::DataLossError(path(kKeys) + " is damaged; restore the manager from a backup");
  }
  if (rec.protection() == KEY_PROTECTION_UNLOCK_KEY) {
    return absl::FailedPreconditionError("this node is locked: run swarmctl swarm unlock");
  }
  auto secret = ReadFile(path(kLocal));
  if (!secret.ok()) return secret.status();
  KeyRing ring(DataKey{0, *secret});
  auto dek = OpenRecord(ring, rec.dek(), kDekAad);
  if (!dek.ok()) {
    return absl::DataLossError(path(kKeys) + ": the data key does not open with " + path(kLocal) +
                               " (" + std::string(dek.status().message()) + ")");
  }
  Keys keys{DataKey{rec.dek_id(), *dek}, ""};
  if (!rec.tls_key().empty()) {
    auto tls = OpenRecord(ring, rec.tls_key(), kTlsAad);
    if (!tls.ok()) return absl::DataLossError(path(kKeys) + ": the TLS key does not open");
    keys.tls_key_pem = *tls;
  }
  for (const OldDek& o : rec.old_deks()) {
    auto old = OpenRecord(ring, o.key(), kOldDekAad);
    if (!old.ok()) return absl::DataLossError(path(kKeys) + ": an old data key does not open");
    keys.old_deks.push_back(DataKey{o.id(), *old});
  }
  return keys;
}

absl::StatusOr<Keys> KeyStore::Unlock(const std::string& unlock_key) const {
  auto secret = ca::ParseUnlockKey(unlock_key);
  if (!secret.ok()) return secret.status();
  auto data = ReadFile(path(kKeys));
  if (!data.ok()) return data.status();
  KeyStoreRecord rec;
  if (!rec.ParseFromString(*data)) {
    return absl::DataLossError(path(kKeys) + " is damaged; restore the manager from a backup");
  }
  if (rec.protection() != KEY_PROTECTION_UNLOCK_KEY) {
    return absl::FailedPreconditionError("this node is not locked (autolock is off)");
  }
  auto dek = ca::UnwrapKey(*secret, rec.dek());
  if (!dek.ok()) return dek.status();
  Keys keys{DataKey{rec.dek_id(), *dek}, ""};
  if (!rec.tls_key().empty()) {
    auto tls = ca::UnwrapKey(*secret, rec.tls_key());
    if (!tls.ok()) return tls.status();
    keys.tls_key_pem = *tls;
  }
  for (const OldDek& o : rec.old_deks()) {
    auto old = ca::UnwrapKey(*secret, o.key());
    if (!old.ok()) return old.status();
    keys.old_deks.push_back(DataKey{o.id(), *old});
  }
  return keys;
}

}  // namespace swarm::manager::keymanager

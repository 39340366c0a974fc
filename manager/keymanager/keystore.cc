#include "manager/keymanager/keystore.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "common/errno_status.h"
#include "manager/ca/ca.h"
#include "manager/keymanager/keys.pb.h"

namespace swarm::manager::keymanager {
namespace {

constexpr char kKeys[] = "keys";
constexpr char kLocal[] = "keys.local";
constexpr char kDekAad[] = "swarm raft dek";
constexpr char kTlsAad[] = "swarm tls key";

std::string Wrap(const std::string& kek_secret, bool from_unlock_key, const std::string& key,
                 const char* aad, Random& random) {
  if (from_unlock_key) return ca::WrapKey(kek_secret, key, random);
  return SealRecord(DataKey{0, kek_secret}, key, aad, random);
}

}  // namespace

bool KeyStore::Exists() const { return std::filesystem::exists(path(kKeys)); }

absl::StatusOr<std::string> KeyStore::Read(const std::string& p) const {
  int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "opening " + p);
  std::string data;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) data.append(buf, static_cast<size_t>(n));
  const int err = errno;
  close(fd);
  if (n < 0) return ErrnoToStatus(err, "reading " + p);
  return data;
}

absl::Status KeyStore::WriteAtomically(const std::string& p, const std::string& data) const {
  const std::string tmp = p + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoToStatus(errno, "creating " + tmp);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      const int err = errno;
      close(fd);
      return ErrnoToStatus(err, "writing " + tmp);
    }
    off += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    const int err = errno;
    close(fd);
    return ErrnoToStatus(err, "syncing " + tmp);
  }
  close(fd);
  if (rename(tmp.c_str(), p.c_str()) != 0) return ErrnoToStatus(errno, "replacing " + p);
  return absl::OkStatus();
}

absl::StatusOr<bool> KeyStore::Locked() const {
  auto data = Read(path(kKeys));
  if (!data.ok()) return data.status();
  KeyStoreRecord rec;
  if (!rec.ParseFromString(*data)) {
    return absl::DataLossError(path(kKeys) + " is damaged; restore the manager from a backup");
  }
  return rec.protection() == KEY_PROTECTION_UNLOCK_KEY;
}

absl::StatusOr<std::optional<std::string>> KeyStore::Store(const Keys& keys, bool autolock) {
  std::optional<std::string> unlock_key;
  std::string secret;
  if (autolock) {
    unlock_key = ca::GenerateUnlockKey(random_);
    auto parsed = ca::ParseUnlockKey(*unlock_key);
    if (!parsed.ok()) return parsed.status();
    secret = *parsed;
  } else {
    secret = NewDataKey(0, random_).key;
    if (absl::Status s = WriteAtomically(path(kLocal), secret); !s.ok()) return s;
  }
  KeyStoreRecord rec;
  rec.set_protection(autolock ? KEY_PROTECTION_UNLOCK_KEY : KEY_PROTECTION_NODE_LOCAL);
  rec.set_dek_id(keys.dek.id);
  rec.set_dek(Wrap(secret, autolock, keys.dek.key, kDekAad, random_));
  if (!keys.tls_key_pem.empty()) {
    rec.set_tls_key(Wrap(secret, autolock, keys.tls_key_pem, kTlsAad, random_));
  }
  if (absl::Status s = WriteAtomically(path(kKeys), rec.SerializeAsString()); !s.ok()) return s;
  if (autolock) {
    // The node-local key must not outlive the switch to autolock.
    std::error_code ec;
    std::filesystem::remove(path(kLocal), ec);
  }
  return unlock_key;
}

absl::StatusOr<Keys> KeyStore::Load() const {
  auto data = Read(path(kKeys));
  if (!data.ok()) return data.status();
  KeyStoreRecord rec;
  if (!rec.ParseFromString(*data)) {
    return absl::DataLossError(path(kKeys) + " is damaged; restore the manager from a backup");
  }
  if (rec.protection() == KEY_PROTECTION_UNLOCK_KEY) {
    return absl::FailedPreconditionError("this node is locked: run swarmctl swarm unlock");
  }
  auto secret = Read(path(kLocal));
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
  return keys;
}

absl::StatusOr<Keys> KeyStore::Unlock(const std::string& unlock_key) const {
  auto secret = ca::ParseUnlockKey(unlock_key);
  if (!secret.ok()) return secret.status();
  auto data = Read(path(kKeys));
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
  return keys;
}

}  // namespace swarm::manager::keymanager

#include "common/aead.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

namespace swarm {
namespace {

constexpr uint8_t kVersion = 1;
constexpr size_t kNonceSize = 12;
constexpr size_t kTagSize = 16;
constexpr size_t kHeaderSize = 1 + 4 + kNonceSize;

struct CtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CtxDeleter>;

[[noreturn]] void CipherFailure(const char* what) {
  // Only a broken OpenSSL gets here (the sizes are all fixed): do not write data we could not
  // read back.
  std::fprintf(stderr, "FATAL: AES-256-GCM %s failed\n", what);
  std::abort();
}

const unsigned char* U(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// OpenSSL 3 looks EVP_aes_256_gcm() up in its provider tables (locks, string compares) on every
// init; the fetched cipher is looked up once.
const EVP_CIPHER* Aes256Gcm() {
  static const EVP_CIPHER* const cipher = [] {
    EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    if (c == nullptr) CipherFailure("fetch");
    return c;
  }();
  return cipher;
}

// A context keyed with one key, kept per thread: records are sealed one at a time (the Raft
// log writes one per entry), and setting up a context and its AES key schedule costs more
// than sealing a small record. Only the nonce changes between records, which a keyed context
// takes without redoing the key schedule. The context is freed (and its key wiped) when the
// thread exits.
class KeyedCtx {
 public:
  // The context for key, initialized for encryption (encrypt = true) or decryption, with no
  // nonce set yet.
  EVP_CIPHER_CTX* Get(const std::string& key, bool encrypt) {
    if (!ctx_) {
      ctx_.reset(EVP_CIPHER_CTX_new());
      if (!ctx_) CipherFailure("context allocation");
    }
    if (!keyed_ || key_id_ != key || encrypt_ != encrypt) {
      const int ok = encrypt
                         ? EVP_EncryptInit_ex(ctx_.get(), Aes256Gcm(), nullptr, U(key), nullptr)
                         : EVP_DecryptInit_ex(ctx_.get(), Aes256Gcm(), nullptr, U(key), nullptr);
      if (ok != 1) CipherFailure(encrypt ? "encrypt init" : "decrypt init");
      key_id_.assign(key);
      encrypt_ = encrypt;
      keyed_ = true;
    }
    return ctx_.get();
  }
  ~KeyedCtx() { OPENSSL_cleanse(key_id_.data(), key_id_.size()); }

 private:
  Ctx ctx_;
  // The key the context holds (compared, never used to encrypt).
  std::string key_id_;
  bool encrypt_ = false;
  bool keyed_ = false;
};

KeyedCtx& SealCtx() {
  thread_local KeyedCtx ctx;
  return ctx;
}

KeyedCtx& OpenCtx() {
  thread_local KeyedCtx ctx;
  return ctx;
}

}  // namespace

DataKey NewDataKey(uint32_t id, Random& random) {
  DataKey k{id, std::string(kAeadKeySize, '\0')};
  random.Fill(k.key.data(), k.key.size());
  return k;
}

KeyRing::KeyRing(DataKey current) : current_(std::move(current)) {}

void KeyRing::AddOld(DataKey key) {
  const uint32_t id = key.id;
  old_[id] = std::move(key);
}

void KeyRing::Rotate(DataKey next) {
  old_.erase(next.id);
  AddOld(std::move(current_));
  current_ = std::move(next);
}

const DataKey* KeyRing::Find(uint32_t id) const {
  if (id == current_.id) return &current_;
  auto it = old_.find(id);
  return it == old_.end() ? nullptr : &it->second;
}

std::string SealRecord(const DataKey& key, std::string_view plaintext, std::string_view aad,
                       Random& random) {
  if (key.key.size() != kAeadKeySize) CipherFailure("key size check");
  std::string out(kHeaderSize + plaintext.size() + kTagSize, '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  p[0] = kVersion;
  p[1] = static_cast<unsigned char>(key.id >> 24);
  p[2] = static_cast<unsigned char>(key.id >> 16);
  p[3] = static_cast<unsigned char>(key.id >> 8);
  p[4] = static_cast<unsigned char>(key.id);
  unsigned char* nonce = p + 5;
  random.Fill(nonce, kNonceSize);

  EVP_CIPHER_CTX* ctx = SealCtx().Get(key.key, /*encrypt=*/true);
  int len = 0;
  if (EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce) != 1) CipherFailure("set nonce");
  if (!aad.empty() &&
      EVP_EncryptUpdate(ctx, nullptr, &len, U(aad), static_cast<int>(aad.size())) != 1) {
    CipherFailure("encrypt aad");
  }
  unsigned char* ct = p + kHeaderSize;
  if (EVP_EncryptUpdate(ctx, ct, &len, U(plaintext), static_cast<int>(plaintext.size())) != 1) {
    CipherFailure("encrypt");
  }
  if (EVP_EncryptFinal_ex(ctx, ct + len, &len) != 1) CipherFailure("encrypt final");
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTagSize, ct + plaintext.size()) != 1) {
    CipherFailure("get tag");
  }
  return out;
}

absl::StatusOr<uint32_t> RecordKeyId(std::string_view record) {
  if (record.size() < kHeaderSize + kTagSize) {
    return absl::DataLossError("encrypted record is truncated");
  }
  const unsigned char* p = U(record);
  if (p[0] != kVersion) {
    return absl::DataLossError("encrypted record has unknown version " + std::to_string(p[0]));
  }
  return (uint32_t{p[1]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 8) | uint32_t{p[4]};
}

absl::StatusOr<std::string> OpenRecord(const KeyRing& keys, std::string_view record,
                                       std::string_view aad) {
  absl::StatusOr<uint32_t> id = RecordKeyId(record);
  if (!id.ok()) return id.status();
  const unsigned char* p = U(record);
  const DataKey* key = keys.Find(*id);
  if (key == nullptr) {
    return absl::NotFoundError("encrypted record uses key " + std::to_string(*id) +
                               ", which this node does not have");
  }
  const unsigned char* nonce = p + 5;
  const size_t ct_size = record.size() - kHeaderSize - kTagSize;
  std::string out(ct_size, '\0');
  EVP_CIPHER_CTX* ctx = OpenCtx().Get(key->key, /*encrypt=*/false);
  int len = 0;
  if (EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce) != 1) CipherFailure("set nonce");
  if (!aad.empty() &&
      EVP_DecryptUpdate(ctx, nullptr, &len, U(aad), static_cast<int>(aad.size())) != 1) {
    CipherFailure("decrypt aad");
  }
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (EVP_DecryptUpdate(ctx, o, &len, p + kHeaderSize, static_cast<int>(ct_size)) != 1) {
    CipherFailure("decrypt");
  }
  std::string tag(record.substr(kHeaderSize + ct_size));
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kTagSize, tag.data()) != 1) {
    CipherFailure("set tag");
  }
  if (EVP_DecryptFinal_ex(ctx, o + len, &len) != 1) {
    return absl::DataLossError(
        "encrypted record failed authentication (corrupted, moved, or "
        "sealed with another key)");
  }
  return out;
}

}  // namespace swarm

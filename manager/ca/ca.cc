#include "manager/ca/ca.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "absl/numeric/int128.h"
#include "common/aead.h"

namespace swarm::manager::ca {
namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Req = std::unique_ptr<X509_REQ, Deleter<X509_REQ, X509_REQ_free>>;
using Store = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;
using StoreCtx = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;

constexpr char kRootCommonName[] = "swarm-ca";
constexpr char kTokenPrefix[] = "SWMTKN";
constexpr char kUnlockPrefix[] = "SWMKEY-1-";
constexpr size_t kDigestChars = 50;
constexpr size_t kSecretChars = 25;

// The last OpenSSL error, for messages.
std::string SslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

absl::Status Internal(const std::string& what) {
  return absl::InternalError(what + ": " + SslError());
}

std::string BioToString(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

Bio MemBio(const std::string& s) {
  return Bio(BIO_new_mem_buf(s.data(), static_cast<int>(s.size())));
}

absl::StatusOr<Pkey> ReadKey(const std::string& pem) {
  Bio bio = MemBio(pem);
  Pkey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return absl::InvalidArgumentError("the private key is not valid PEM: " + SslError());
  return key;
}

absl::StatusOr<X509Ptr> ReadCert(const std::string& pem) {
  Bio bio = MemBio(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return absl::InvalidArgumentError("the certificate is not valid PEM: " + SslError());
  return cert;
}

// Every certificate of a PEM bundle; INVALID_ARGUMENT when there is none or one is broken.
absl::StatusOr<std::vector<X509Ptr>> ReadCerts(const std::string& pem) {
  std::vector<X509Ptr> out;
  Bio bio = MemBio(pem);
  while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(c);
  if (out.empty()) {
    return absl::InvalidArgumentError("the certificate is not valid PEM: " + SslError());
  }
  ERR_clear_error();  // the end of the input reads as an error
  return out;
}

std::string CertToPem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return BioToString(bio.get());
}

absl::Status SetName(X509_NAME* name, const char* field, const std::string& value) {
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.data()),
                                 static_cast<int>(value.size()), -1, 0) != 1) {
    return Internal(std::string("setting ") + field);
  }
  return absl::OkStatus();
}

std::string NameField(X509_NAME* name, int nid) {
  int i = X509_NAME_get_index_by_NID(name, nid, -1);
  if (i < 0) return "";
  ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, s);
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return Internal(std::string("making extension ") + value);
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return Internal("adding an extension");
  return absl::OkStatus();
}

absl::Status SetSerialAndValidity(X509* cert, absl::Time now, absl::Duration validity,
                                  Random& random) {
  unsigned char serial[16];
  random.Fill(serial, sizeof(serial));
  serial[0] &= 0x7f;  // positive
  std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>> bn(BN_bin2bn(serial, sizeof(serial), nullptr));
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert))) {
    return Internal("setting the serial number");
  }
  // Backdated a little so that clocks slightly behind ours accept the certificate.
  const time_t from = absl::ToTimeT(now - absl::Minutes(5));
  const time_t to = absl::ToTimeT(now + validity);
  if (!ASN1_TIME_set(X509_getm_notBefore(cert), from) ||
      !ASN1_TIME_set(X509_getm_notAfter(cert), to)) {
    return Internal("setting the validity");
  }
  return absl::OkStatus();
}

absl::Time AsnToTime(const ASN1_TIME* t) {
  struct tm tm {};
  ASN1_TIME_to_tm(t, &tm);
  return absl::FromTimeT(timegm(&tm));
}

std::string Base36(const unsigned char* bytes, size_t n, size_t width) {
  // Big-endian bytes to base 36, zero-padded to width.
  std::vector<unsigned char> num(bytes, bytes + n);
  std::string out;
  static constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  while (!num.empty()) {
    unsigned rem = 0;
    std::vector<unsigned char> next;
    for (unsigned char b : num) {
      unsigned cur = rem * 256 + b;
      unsigned q = cur / 36;
      rem = cur % 36;
      if (!next.empty() || q != 0) next.push_back(static_cast<unsigned char>(q));
    }
    out.push_back(kDigits[rem]);
    num.swap(next);
  }
  while (out.size() < width) out.push_back('0');
  return std::string(out.rbegin(), out.rend());
}

bool IsBase36(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))) return false;
  }
  return true;
}

std::string Base64Url(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

absl::StatusOr<std::string> FromBase64Url(std::string_view s) {
  std::string in(s);
  for (char& c : in) {
    if (c == '-') {
      c = '+';
    } else if (c == '_') {
      c = '/';
    } else if (!isalnum(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError("not base64url");
    }
  }
  const size_t pad = (4 - in.size() % 4) % 4;
  in.append(pad, '=');
  std::string out(3 * in.size() / 4 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0) return absl::InvalidArgumentError("not base64url");
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string DeriveKek(const std::string& unlock_secret) {
  PkeyCtx ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr));
  std::string kek(kAeadKeySize, '\0');
  size_t len = kek.size();
  static constexpr char kInfo[] = "swarm autolock key encryption key";
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_hkdf_md(ctx.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_CTX_set1_hkdf_key(ctx.get(),
                                 reinterpret_cast<const unsigned char*>(unlock_secret.data()),
                                 static_cast<int>(unlock_secret.size())) != 1 ||
      EVP_PKEY_CTX_add1_hkdf_info(ctx.get(), reinterpret_cast<const unsigned char*>(kInfo),
                                  sizeof(kInfo) - 1) != 1 ||
      EVP_PKEY_derive(ctx.get(), reinterpret_cast<unsigned char*>(kek.data()), &len) != 1) {
    std::abort();  // HKDF with fixed parameters cannot fail unless OpenSSL is broken
  }
  return kek;
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kManager:
      return "swarm-manager";
    case Role::kOperator:
      return "swarm-operator";
    default:
      return "swarm-worker";
  }
}

absl::StatusOr<std::string> GenerateKey() {
  Pkey key(EVP_EC_gen("P-256"));
  if (!key) return Internal("generating an ECDSA P-256 key");
  Bio bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Internal("encoding a private key");
  }
  return BioToString(bio.get());
}

absl::StatusOr<std::string> CreateCsr(const std::string& key_pem) {
  auto key = ReadKey(key_pem);
  if (!key.ok()) return key.status();
  Req req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), 0) != 1 ||
      X509_REQ_set_pubkey(req.get(), key->get()) != 1 ||
      X509_REQ_sign(req.get(), key->get(), EVP_sha256()) == 0) {
    return Internal("creating a certificate signing request");
  }
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), req.get());
  return BioToString(bio.get());
}

absl::StatusOr<RootCA> RootCA::Create(const std::string& cluster_id, absl::Duration validity,
                                      absl::Time now, Random& random) {
  auto key_pem = GenerateKey();
  if (!key_pem.ok()) return key_pem.status();
  auto key = ReadKey(*key_pem);
  if (!key.ok()) return key.status();
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) return Internal("creating the root");
  if (absl::Status s = SetSerialAndValidity(cert.get(), now, validity, random); !s.ok()) return s;
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (absl::Status s = SetName(name, "CN", kRootCommonName); !s.ok()) return s;
  if (absl::Status s = SetName(name, "O", cluster_id); !s.ok()) return s;
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key->get());
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                            std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"},
                            std::pair{NID_subject_key_identifier, "hash"}}) {
    if (absl::Status s = AddExtension(cert.get(), cert.get(), nid, value); !s.ok()) return s;
  }
  if (X509_sign(cert.get(), key->get(), EVP_sha256()) == 0) return Internal("signing the root");
  return RootCA(CertToPem(cert.get()), *std::move(key_pem));
}

absl::StatusOr<RootCA> RootCA::Load(const std::string& cert_pem, const std::string& key_pem) {
  auto certs = ReadCerts(cert_pem);
  if (!certs.ok()) return certs.status();
  if (!key_pem.empty()) {
    auto key = ReadKey(key_pem);
    if (!key.ok()) return key.status();
    if (X509_check_private_key((*certs)[0].get(), key->get()) != 1) {
      return absl::InvalidArgumentError("the root CA key does not match its certificate");
    }
  }
  return RootCA(cert_pem, key_pem);
}

std::string RootCA::Digest() const {
  auto cert = ReadCert(cert_pem_);
  unsigned char* der = nullptr;
  int n = i2d_X509(cert->get(), &der);
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(der, static_cast<size_t>(n), md);
  OPENSSL_free(der);
  return std::string(reinterpret_cast<char*>(md), sizeof(md));
}

absl::StatusOr<std::string> RootCA::Issue(const std::string& csr_pem, const std::string& node_id,
                                          Role role, const std::string& cluster_id,
                                          absl::Duration validity, absl::Time now,
                                          Random& random) const {
  if (!can_sign()) {
    return absl::FailedPreconditionError("this node holds no root CA key and cannot sign");
  }
  Bio bio = MemBio(csr_pem);
  Req req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!req) return absl::InvalidArgumentError("the CSR is not valid PEM: " + SslError());
  Pkey pub(X509_REQ_get_pubkey(req.get()));
  if (!pub || X509_REQ_verify(req.get(), pub.get()) != 1) {
    return absl::InvalidArgumentError("the CSR's signature does not verify");
  }
  if (EVP_PKEY_get_base_id(pub.get()) != EVP_PKEY_EC) {
    return absl::InvalidArgumentError("the CSR must carry an ECDSA key");
  }
  auto root = ReadCert(cert_pem_);
  auto key = ReadKey(key_pem_);
  if (!root.ok()) return root.status();
  if (!key.ok()) return key.status();

  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) return Internal("creating a certificate");
  if (absl::Status s = SetSerialAndValidity(cert.get(), now, validity, random); !s.ok()) return s;
  // The subject is the CA's to decide; the CSR contributes only its public key.
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (absl::Status s = SetName(name, "O", cluster_id); !s.ok()) return s;
  if (absl::Status s = SetName(name, "OU", RoleName(role)); !s.ok()) return s;
  if (absl::Status s = SetName(name, "CN", node_id); !s.ok()) return s;
  X509_set_issuer_name(cert.get(), X509_get_subject_name(root->get()));
  X509_set_pubkey(cert.get(), pub.get());
  const std::string san = std::string("DNS:") + RoleName(role) + ",DNS:" + node_id;
  // An operator only ever dials managers: its certificate cannot serve.
  const std::string usage = role == Role::kOperator ? "clientAuth" : "serverAuth,clientAuth";
  for (auto [nid, value] :
       {std::pair{NID_basic_constraints, std::string("critical,CA:FALSE")},
        std::pair{NID_key_usage, std::string("critical,digitalSignature,keyEncipherment")},
        std::pair{NID_ext_key_usage, usage}, std::pair{NID_subject_alt_name, san},
        std::pair{NID_authority_key_identifier, std::string("keyid:always")}}) {
    if (absl::Status s = AddExtension(cert.get(), root->get(), nid, value.c_str()); !s.ok()) {
      return s;
    }
  }
  if (X509_sign(cert.get(), key->get(), EVP_sha256()) == 0) {
    return Internal("signing a node certificate");
  }
  return CertToPem(cert.get());
}

absl::StatusOr<Identity> RootCA::Verify(const std::string& cert_pem, absl::Time now) const {
  auto chain = ReadCerts(cert_pem);
  if (!chain.ok()) return chain.status();
  auto roots = ReadCerts(cert_pem_);
  if (!roots.ok()) return roots.status();
  Store store(X509_STORE_new());
  for (const X509Ptr& root : *roots) X509_STORE_add_cert(store.get(), root.get());
  // What follows the node's certificate is untrusted: it must itself chain to a root.
  struct FreeStack {
    void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }
  };
  std::unique_ptr<STACK_OF(X509), FreeStack> untrusted(sk_X509_new_null());
  for (size_t i = 1; i < chain->size(); ++i) sk_X509_push(untrusted.get(), (*chain)[i].get());
  X509* cert = (*chain)[0].get();
  StoreCtx ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), cert, untrusted.get());
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, absl::ToTimeT(now));
  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    return absl::PermissionDeniedError(std::string("certificate rejected: ") +
                                       X509_verify_cert_error_string(err));
  }
  Identity id;
  X509_NAME* name = X509_get_subject_name(cert);
  id.node_id = NameField(name, NID_commonName);
  id.cluster_id = NameField(name, NID_organizationName);
  const std::string ou = NameField(name, NID_organizationalUnitName);
  if (ou == RoleName(Role::kManager)) {
    id.role = Role::kManager;
  } else if (ou == RoleName(Role::kWorker)) {
    id.role = Role::kWorker;
  } else if (ou == RoleName(Role::kOperator)) {
    id.role = Role::kOperator;
  } else {
    return absl::InvalidArgumentError("the certificate names no swarm role (OU \"" + ou + "\")");
  }
  if (id.node_id.empty()) return absl::InvalidArgumentError("the certificate names no node");
  id.not_before = AsnToTime(X509_get0_notBefore(cert));
  id.not_after = AsnToTime(X509_get0_notAfter(cert));
  return id;
}

absl::StatusOr<std::string> CrossSign(const RootCA& old_root, const std::string& new_root_pem,
                                      absl::Time now, Random& random) {
  if (!old_root.can_sign()) {
    return absl::FailedPreconditionError("cross-signing needs the old root's key");
  }
  auto old_cert = ReadCert(old_root.cert_pem());
  auto old_key = ReadKey(old_root.key_pem());
  auto new_cert = ReadCert(new_root_pem);
  if (!old_cert.ok()) return old_cert.status();
  if (!old_key.ok()) return old_key.status();
  if (!new_cert.ok()) return new_cert.status();
  Pkey new_key(X509_get_pubkey(new_cert->get()));
  X509Ptr cert(X509_new());
  if (!cert || !new_key || X509_set_version(cert.get(), 2) != 1) {
    return Internal("creating the cross-signed root");
  }
  if (absl::Status s = SetSerialAndValidity(cert.get(), now, absl::ZeroDuration(), random);
      !s.ok()) {
    return s;
  }
  // As long as the new root: nodes keep it in their chains until their next renewal.
  if (!X509_set1_notBefore(cert.get(), X509_get0_notBefore(new_cert->get())) ||
      !X509_set1_notAfter(cert.get(), X509_get0_notAfter(new_cert->get()))) {
    return Internal("setting the cross-signed root's validity");
  }
  X509_set_subject_name(cert.get(), X509_get_subject_name(new_cert->get()));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(old_cert->get()));
  X509_set_pubkey(cert.get(), new_key.get());
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                            std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"},
                            std::pair{NID_subject_key_identifier, "hash"},
                            std::pair{NID_authority_key_identifier, "keyid:always"}}) {
    if (absl::Status s = AddExtension(cert.get(), old_cert->get(), nid, value); !s.ok()) return s;
  }
  if (X509_sign(cert.get(), old_key->get(), EVP_sha256()) == 0) {
    return Internal("cross-signing the new root");
  }
  return CertToPem(cert.get());
}

bool IssuedBy(const std::string& cert_pem, const std::string& root_pem) {
  auto cert = ReadCert(cert_pem);
  auto root = ReadCert(root_pem);
  if (!cert.ok() || !root.ok()) return false;
  Pkey key(X509_get_pubkey(root->get()));
  const bool signed_by = key && X509_verify(cert->get(), key.get()) == 1;
  ERR_clear_error();
  return signed_by &&
         X509_NAME_cmp(X509_get_issuer_name(cert->get()), X509_get_subject_name(root->get())) == 0;
}

namespace {
template <typename T, int (*ToDer)(const T*, unsigned char**)>
std::string Der(const T* value) {
  unsigned char* der = nullptr;
  const int n = ToDer(value, &der);
  if (n <= 0) return "";
  std::string out(reinterpret_cast<char*>(der), n);
  OPENSSL_free(der);
  return out;
}
}  // namespace

std::string PublicKeyDer(const std::string& cert_pem) {
  auto cert = ReadCert(cert_pem);
  if (!cert.ok()) return "";
  return Der<EVP_PKEY, i2d_PUBKEY>(X509_get0_pubkey(cert->get()));
}

Issuer IssuerAmong(const std::string& cert_pem, const std::string& roots) {
  for (const std::string& root : SplitPem(roots)) {
    if (!IssuedBy(cert_pem, root)) continue;
    auto r = ReadCert(root);
    if (!r.ok()) break;
    return Issuer{Der<X509_NAME, i2d_X509_NAME>(X509_get_subject_name(r->get())),
                  Der<EVP_PKEY, i2d_PUBKEY>(X509_get0_pubkey(r->get()))};
  }
  return Issuer{};
}

bool UsesCertFrom(const std::string& issued_cert, const std::string& presented_issuer_key,
                  const std::string& root_pem) {
  return IssuedBy(issued_cert, root_pem) && !presented_issuer_key.empty() &&
         presented_issuer_key == PublicKeyDer(root_pem);
}

std::vector<std::string> SplitPem(const std::string& bundle) {
  std::vector<std::string> out;
  auto certs = ReadCerts(bundle);
  if (!certs.ok()) return out;
  for (const X509Ptr& c : *certs) out.push_back(CertToPem(c.get()));
  return out;
}

std::string GenerateJoinToken(const RootCA& root, Random& random) {
  const std::string digest = root.Digest();
  unsigned char secret[16];
  random.Fill(secret, sizeof(secret));
  return std::string(kTokenPrefix) + "-1-" +
         Base36(reinterpret_cast<const unsigned char*>(digest.data()), digest.size(),
                kDigestChars) +
         "-" + Base36(secret, sizeof(secret), kSecretChars);
}

absl::StatusOr<JoinToken> ParseJoinToken(std::string_view token) {
  const std::string hint =
      "; a join token looks like SWMTKN-1-<50 characters>-<25 characters> "
      "(get one with: swarmctl swarm join-token worker|manager)";
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= token.size(); ++i) {
    if (i == token.size() || token[i] == '-') {
      parts.push_back(token.substr(start, i - start));
      start = i + 1;
    }
  }
  if (parts[0] != kTokenPrefix) {
    return absl::InvalidArgumentError("invalid join token: it does not start with SWMTKN" + hint);
  }
  if (parts.size() != 4) {
    return absl::InvalidArgumentError(absl::StrCat("invalid join token: it has ", parts.size(),
                                                   " parts separated by '-' instead of 4 (is it "
                                                   "cut short?)",
                                                   hint));
  }
  if (parts[1] != "1") {
    return absl::InvalidArgumentError("invalid join token: unsupported version \"" +
                                      std::string(parts[1]) + "\"" + hint);
  }
  if (parts[2].size() != kDigestChars || !IsBase36(parts[2])) {
    return absl::InvalidArgumentError("invalid join token: the CA digest has " +
                                      std::to_string(parts[2].size()) +
                                      " characters instead of 50" + hint);
  }
  if (parts[3].size() != kSecretChars || !IsBase36(parts[3])) {
    return absl::InvalidArgumentError("invalid join token: the secret has " +
                                      std::to_string(parts[3].size()) +
                                      " characters instead of 25" + hint);
  }
  return JoinToken{std::string(parts[2]), std::string(parts[3])};
}

bool TokenMatchesRoot(const JoinToken& token, const RootCA& root) {
  const std::string digest = root.Digest();
  return token.digest ==
         Base36(reinterpret_cast<const unsigned char*>(digest.data()), digest.size(), kDigestChars);
}

absl::Time RenewalTime(absl::Time not_before, absl::Time not_after, Random& random) {
  const absl::Duration life = not_after - not_before;
  const absl::Duration window = life * 3 / 10;  // from 1/2 to 4/5
  const int64_t span = absl::ToInt64Milliseconds(window);
  const int64_t offset = span > 0 ? static_cast<int64_t>(random.Uniform(span)) : 0;
  return not_before + life / 2 + absl::Milliseconds(offset);
}

std::string GenerateUnlockKey(Random& random) {
  std::string secret(kAeadKeySize, '\0');
  random.Fill(secret.data(), secret.size());
  return kUnlockPrefix + Base64Url(secret);
}

absl::StatusOr<std::string> ParseUnlockKey(std::string_view unlock_key) {
  const std::string hint =
      "; an unlock key looks like SWMKEY-1-<43 characters> (a manager's "
      "root user can see it with: swarmctl swarm unlock-key)";
  if (unlock_key.substr(0, sizeof(kUnlockPrefix) - 1) != kUnlockPrefix) {
    return absl::InvalidArgumentError("invalid unlock key: it does not start with SWMKEY-1-" +
                                      hint);
  }
  auto secret = FromBase64Url(unlock_key.substr(sizeof(kUnlockPrefix) - 1));
  if (!secret.ok() || secret->size() != kAeadKeySize) {
    return absl::InvalidArgumentError("invalid unlock key: wrong length or characters" + hint);
  }
  return secret;
}

std::string WrapKey(const std::string& unlock_secret, const std::string& key, Random& random) {
  return SealRecord(DataKey{0, DeriveKek(unlock_secret)}, key, "swarm wrapped key", random);
}

absl::StatusOr<std::string> UnwrapKey(const std::string& unlock_secret,
                                      const std::string& wrapped) {
  auto key =
      OpenRecord(KeyRing(DataKey{0, DeriveKek(unlock_secret)}), wrapped, "swarm wrapped key");
  if (!key.ok()) {
    return absl::PermissionDeniedError(
        "wrong unlock key: it does not unlock this node's keys; nothing was changed");
  }
  return key;
}

}  // namespace swarm::manager::ca

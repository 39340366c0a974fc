#include "common/tls.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <optional>

namespace swarm::tls {
namespace {

using grpc::experimental::IdentityKeyCertPair;
using grpc::experimental::StaticDataCertificateProvider;

std::shared_ptr<StaticDataCertificateProvider> Provider(const Credentials& c) {
  if (c.cert_pem.empty()) return std::make_shared<StaticDataCertificateProvider>(c.root_pem);
  return std::make_shared<StaticDataCertificateProvider>(
      c.root_pem, std::vector<IdentityKeyCertPair>{{c.key_pem, c.cert_pem}});
}

std::string NameField(X509_NAME* name, int nid) {
  const int i = X509_NAME_get_index_by_NID(name, nid, -1);
  if (i < 0) return "";
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

// Whom a PEM certificate names; nullopt when it does not parse.
std::optional<Peer> ParsePeer(const char* pem, size_t size) {
  BIO* bio = BIO_new_mem_buf(pem, static_cast<int>(size));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (cert == nullptr) return std::nullopt;
  X509_NAME* name = X509_get_subject_name(cert);
  Peer p{NameField(name, NID_commonName), NameField(name, NID_organizationalUnitName),
         NameField(name, NID_organizationName)};
  X509_free(cert);
  return p;
}

}  // namespace

namespace {

// The revocation check, run for every call on a connection whose peer presented a verified
// certificate. The node ID is parsed from the certificate once per connection and kept on the
// connection's auth context.
class RevocationCheck final : public grpc::AuthMetadataProcessor {
 public:
  explicit RevocationCheck(RevokedFn revoked) : revoked_(std::move(revoked)) {}
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata&, grpc::AuthContext* context, OutputMetadata*,
                       OutputMetadata*) override {
    if (!context->IsPeerAuthenticated()) return grpc::Status::OK;  // a joining node
    std::string node_id;
    std::vector<grpc::string_ref> ids = context->FindPropertyValues(kNodeIdProperty);
    if (!ids.empty()) {
      node_id.assign(ids[0].data(), ids[0].size());
    } else {
      std::vector<grpc::string_ref> pems =
          context->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
      if (pems.empty()) return grpc::Status::OK;
      std::optional<Peer> peer = ParsePeer(pems[0].data(), pems[0].size());
      if (!peer) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unreadable certificate");
      node_id = peer->node_id;
      context->AddProperty(kNodeIdProperty, node_id);
    }
    if (!node_id.empty() && revoked_(node_id)) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          "the certificate of node " + node_id +
                              " is revoked: the node was removed from the swarm; join it again "
                              "with a join token");
    }
    return grpc::Status::OK;
  }

 private:
  static constexpr char kNodeIdProperty[] = "swarm_node_id";
  RevokedFn revoked_;
};

}  // namespace

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const Credentials& c,
                                                           ClientCerts clients, RevokedFn revoked) {
  grpc::experimental::TlsServerCredentialsOptions options(Provider(c));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(clients == ClientCerts::kRequire
                                    ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                    : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  std::shared_ptr<grpc::ServerCredentials> creds =
      grpc::experimental::TlsServerCredentials(options);
  if (revoked)
    creds->SetAuthMetadataProcessor(std::make_shared<RevocationCheck>(std::move(revoked)));
  return creds;
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const Credentials& c) {
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(Provider(c));
  options.watch_root_certs();
  if (!c.cert_pem.empty()) options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(true);
  return grpc::experimental::TlsCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> UnverifiedChannelCredentials() {
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_verify_server_certs(false);
  options.set_check_call_host(false);
  options.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  return grpc::experimental::TlsCredentials(options);
}

grpc::ChannelArguments ChannelArguments(std::string_view server_role) {
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride(std::string(server_role));
  // Answers come from an authenticated manager, and a list of a large swarm's tasks or a
  // forwarded one is far over gRPC's default 4 MiB: a cap here would fail it, not protect.
  args.SetMaxReceiveMessageSize(-1);
  return args;
}

absl::StatusOr<KeyAndCsr> GenerateKeyAndCsr() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) return absl::InternalError("generating an ECDSA P-256 key failed");
  KeyAndCsr out;
  X509_REQ* req = X509_REQ_new();
  BIO* key_bio = BIO_new(BIO_s_mem());
  BIO* csr_bio = BIO_new(BIO_s_mem());
  const bool ok =
      req != nullptr && key_bio != nullptr && csr_bio != nullptr &&
      PEM_write_bio_PrivateKey(key_bio, key, nullptr, nullptr, 0, nullptr, nullptr) == 1 &&
      X509_REQ_set_version(req, 0) == 1 && X509_REQ_set_pubkey(req, key) == 1 &&
      X509_REQ_sign(req, key, EVP_sha256()) != 0 && PEM_write_bio_X509_REQ(csr_bio, req) == 1;
  if (ok) {
    char* data = nullptr;
    long n = BIO_get_mem_data(key_bio, &data);
    out.key_pem.assign(data, static_cast<size_t>(n));
    n = BIO_get_mem_data(csr_bio, &data);
    out.csr_pem.assign(data, static_cast<size_t>(n));
  }
  BIO_free(csr_bio);
  BIO_free(key_bio);
  X509_REQ_free(req);
  EVP_PKEY_free(key);
  if (!ok) return absl::InternalError("creating a certificate signing request failed");
  return out;
}

std::optional<std::string> PeerCertificate(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) return std::nullopt;
  std::vector<grpc::string_ref> pems = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pems.empty()) return std::nullopt;
  return std::string(pems[0].data(), pems[0].size());
}

absl::StatusOr<Peer> PeerOf(const grpc::ServerContextBase& context) {
  std::optional<std::string> pem = PeerCertificate(context);
  if (!pem) return absl::UnauthenticatedError("the caller presented no verified certificate");
  std::optional<Peer> p = ParsePeer(pem->data(), pem->size());
  if (!p) return absl::UnauthenticatedError("the caller's certificate does not parse");
  return *p;
}

absl::Status RequireRole(const grpc::ServerContextBase& context,
                         std::initializer_list<std::string_view> roles) {
  absl::StatusOr<Peer> peer = PeerOf(context);
  if (!peer.ok()) return peer.status();
  std::string wanted;
  for (std::string_view r : roles) {
    if (peer->role == r) return absl::OkStatus();
    wanted += (wanted.empty() ? "" : " or ") + std::string(r);
  }
  return absl::PermissionDeniedError("this call needs a " + wanted + " certificate; node " +
                                     peer->node_id + " presented " +
                                     (peer->role.empty() ? "no role" : peer->role));
}

}  // namespace swarm::tls

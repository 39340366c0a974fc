#include "common/tls.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

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

}  // namespace

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const Credentials& c,
                                                           ClientCerts clients) {
  grpc::experimental::TlsServerCredentialsOptions options(Provider(c));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(clients == ClientCerts::kRequire
                                    ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                    : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  return grpc::experimental::TlsServerCredentials(options);
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
  options.set_certificate_verifier(
      std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  return grpc::experimental::TlsCredentials(options);
}

grpc::ChannelArguments ChannelArguments(std::string_view server_role) {
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride(std::string(server_role));
  return args;
}

absl::StatusOr<Peer> PeerOf(const grpc::ServerContext& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) {
    return absl::UnauthenticatedError("the caller presented no verified certificate");
  }
  std::vector<grpc::string_ref> pems = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pems.empty()) return absl::UnauthenticatedError("the caller's certificate is missing");
  BIO* bio = BIO_new_mem_buf(pems[0].data(), static_cast<int>(pems[0].size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (cert == nullptr) return absl::UnauthenticatedError("the caller's certificate does not parse");
  X509_NAME* name = X509_get_subject_name(cert);
  Peer p{NameField(name, NID_commonName), NameField(name, NID_organizationalUnitName),
         NameField(name, NID_organizationName)};
  X509_free(cert);
  return p;
}

absl::Status RequireRole(const grpc::ServerContext& context,
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

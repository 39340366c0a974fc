#include "manager/ca/testing.h"

#include "gtest/gtest.h"

namespace swarm::manager::ca {

tls::Credentials IssueTestCredentials(const RootCA& root, const std::string& node, Role role,
                                      Random& random, absl::Time now, absl::Duration validity) {
  absl::StatusOr<std::string> key = GenerateKey();
  EXPECT_TRUE(key.ok()) << key.status();
  if (!key.ok()) return {};
  absl::StatusOr<std::string> csr = CreateCsr(*key);
  EXPECT_TRUE(csr.ok()) << csr.status();
  if (!csr.ok()) return {};
  absl::StatusOr<std::string> cert =
      root.Issue(*csr, node, role, "cluster-1", validity, now, random);
  EXPECT_TRUE(cert.ok()) << cert.status();
  return tls::Credentials{root.cert_pem(), cert.ok() ? *cert : "", *key};
}

}  // namespace swarm::manager::ca

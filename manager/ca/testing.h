// For tests: node credentials issued by a root CA the way a join makes them (a fresh key and
// CSR on the "node", the certificate from the root). A failed issue is a test failure.
#ifndef SWARM_MANAGER_CA_TESTING_H_
#define SWARM_MANAGER_CA_TESTING_H_

#include <string>

#include "absl/time/time.h"
#include "common/random.h"
#include "common/tls.h"
#include "manager/ca/ca.h"

namespace swarm::manager::ca {

tls::Credentials IssueTestCredentials(const RootCA& root, const std::string& node, Role role,
                                      Random& random, absl::Time now = absl::Now(),
                                      absl::Duration validity = kDefaultNodeCertValidity);

}  // namespace swarm::manager::ca

#endif  // SWARM_MANAGER_CA_TESTING_H_

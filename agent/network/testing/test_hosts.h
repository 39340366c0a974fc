// Test hosts for the data plane's tests and benchmark: two "hosts" that are network
// namespaces of the test's own, joined by a veth pair (the underlay, 192.168.77.1/24 and
// 192.168.77.2/24 on `ul0`), plus as many extra namespaces ("containers") as a test asks
// for. Nothing is created in the namespace the test runs in, and no traffic leaves these
// namespaces.
//
// Cleanup: the destructor removes every overlay namespace under the hosts' run directories,
// every namespace it made and its directory, also after a failed assertion. Linking this
// library also moves the process into a private mount namespace before main() (a static
// initializer, while the process is still single-threaded), so that even a test killed
// mid-way leaves no bind mount behind, and with the mounts gone the kernel frees the
// namespaces and every link and nftables table in them.
//
// Thread-safety: one test thread.
#ifndef SWARM_AGENT_NETWORK_TESTING_TEST_HOSTS_H_
#define SWARM_AGENT_NETWORK_TESTING_TEST_HOSTS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/network/netns.h"
#include "agent/network/overlay.h"
#include "common/ip.h"

namespace swarm::agent::network::testing {

IpAddress Ip(const char* text);    // aborts on a malformed literal
IpNetwork Cidr(const char* text);  // same

class TestHosts {
 public:
  static constexpr char kUnderlayDevice[] = "ul0";

  // underlay_mtu: MTU of the underlay veth pair.
  static absl::StatusOr<std::unique_ptr<TestHosts>> Create(int underlay_mtu = 1500);
  ~TestHosts();

  const std::string& dir() const { return dir_; }
  // Host i (0 or 1): its namespace, its underlay address, its node config for overlays.
  const std::string& host(int i) const { return hosts_[i]; }
  IpAddress underlay_address(int i) const;
  UnderlayConfig underlay(int i) const;

  // A new namespace <dir>/<name> (loopback up), removed by the destructor.
  absl::StatusOr<std::string> NewNamespace(const std::string& name);

 private:
  TestHosts() = default;
  std::string dir_;
  std::string hosts_[2];
  std::vector<std::string> namespaces_;  // every namespace made here, in order
};

// Hosts on one switch, for tests that run whole nodes (swarmd) as hosts: a namespace
// <dir>/switch holding a bridge, and for each host number i a namespace <dir>/host-<i> whose
// eth0 (address <prefix><i>/24) is a port of that bridge. The destructor removes them all
// (whatever ran in them must be gone first: their links go with the namespaces).
class BridgedHosts {
 public:
  // prefix: the first three octets and a dot, e.g. "10.77.0."; numbers in 1..254.
  static absl::StatusOr<std::unique_ptr<BridgedHosts>> Create(const std::string& dir,
                                                              const std::string& prefix,
                                                              const std::vector<int>& numbers);
  ~BridgedHosts();

  std::string path(int i) const;
  std::string ip(int i) const { return prefix_ + std::to_string(i); }
  // Plugs host i's eth0 in or out.
  absl::Status SetLink(int i, bool up);

 private:
  BridgedHosts() = default;
  std::string dir_, prefix_;
  std::vector<int> made_;  // hosts whose namespace exists
};

// A socket created inside the namespace at netns_path (the kernel binds a socket to the
// namespace of its creator for life), usable from any thread afterwards.
absl::StatusOr<ScopedFd> SocketIn(const std::string& netns_path, int domain, int type,
                                  int protocol = 0);

// ICMP echo from the namespace at netns_path to `to`: true once a reply comes back, trying
// for up to timeout_ms (the first requests may go out before ARP is answered).
absl::StatusOr<bool> Ping(const std::string& netns_path, const IpAddress& to,
                          int timeout_ms = 3000);

struct EchoResult {
  std::string echoed;     // what the client read back
  IpAddress seen_source;  // the client's address as the server saw it
};

// A TCP server listening on server_ip:port in server_ns and a client in client_ns that
// connects to connect_ip:port, sends payload and reads it back from the server's echo.
absl::StatusOr<EchoResult> TcpEcho(const std::string& client_ns, const std::string& server_ns,
                                   const IpAddress& server_ip, const IpAddress& connect_ip,
                                   int port, const std::string& payload);

}  // namespace swarm::agent::network::testing

#endif  // SWARM_AGENT_NETWORK_TESTING_TEST_HOSTS_H_

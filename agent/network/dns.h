// Service discovery (issue 11): the embedded DNS server that answers on 127.0.0.11:53 inside
// every container's network namespace, as Docker's does.
//
// Two parts, both owned by the agent (one of each per node):
//
// - DnsTable: the records, scoped per network ID, that the agent updates as tasks start and
//   stop. A container asks with the list of networks it is attached to and sees only their
//   records. Names are case-insensitive. What resolves:
//     SERVICE         the service's VIP on that network (TTL kServiceTtl), or in dnsrr
//                     endpoint mode the addresses of its running tasks (TTL kTaskTtl)
//     tasks.SERVICE   the addresses of the service's running tasks (TTL kTaskTtl)
//     a task's names  (task name, container hostname, network aliases) its address (kTaskTtl)
//   A change is visible to the very next query: answers are computed from the table on every
//   query, nothing is cached, and task addresses carry TTL 0 so that clients do not cache them
//   either (no stale answer after a task is gone). VIPs live as long as their service, so
//   they get Docker's 600 seconds.
//   Pure and synchronous (STYLE 1): Answer() turns a query into a response without I/O.
//
// - DnsServer: the sockets and one event thread (epoll, named dns-server) serving every
//   container of the node. AddContainer opens a UDP and a TCP socket bound to 127.0.0.11:53
//   in the container's network namespace (created on a short-lived thread that setns()es
//   there: a socket belongs to the namespace it was created in for life) plus a UDP socket
//   for forwarding; from then on they are served from the daemon's thread like any other
//   socket. Names that are not ours are forwarded over UDP to the upstream resolvers (the
//   host's, from its resolv.conf), one after the other on timeout; SERVFAIL when all fail.
//   Upstreams on the host's loopback (127.0.0.53 of systemd-resolved) are asked from the
//   daemon's own namespace, the others from the container's.
//
// How the agent uses them (one table and one server per node):
//   at start   table = DnsTable; server = DnsServer(&table, {.upstreams =
//              UpstreamsFromResolvConf(*ReadResolvConf())}); server.Start()
//   records    agent/endpoints.h's listener: table.ReplaceTasks(network, <its records as
//              TaskRecords: task ID, service name, {task name, aliases}, IP without prefix>);
//              from a task's service endpoint: table.SetService(network, {name, mode, VIP of
//              that network}), RemoveService when the service goes; RemoveNetwork when the
//              node leaves the network
//   container  before its process starts: server.AddContainer(container ID, fd of its
//              network namespace, its network IDs), and /etc/resolv.conf in the container =
//              ContainerResolvConf(host's) (a runtime FileSpec); SetNetworks when it joins or
//              leaves one; RemoveContainer when it stops, before its namespace goes
//   at exit    server.Stop()
//
// Thread-safety: DnsTable is thread-safe (one mutex; readers never see half an update).
// DnsServer's methods are thread-safe, except that Start and Stop are the owner's and are not
// called concurrently with each other; its state is guarded by one mutex that the event
// thread holds while it handles ready sockets (only non-blocking socket calls are made under
// it). Lock order: DnsServer::mu_ before DnsTable::mu_. The table must outlive the server.
#ifndef SWARM_AGENT_NETWORK_DNS_H_
#define SWARM_AGENT_NETWORK_DNS_H_

#include <netinet/in.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/network/dns_message.h"
#include "agent/network/netns.h"
#include "common/clock.h"
#include "common/ip.h"
#include "common/random.h"

namespace swarm::agent::network::dns {

inline constexpr char kServerAddress[] = "127.0.0.11";
inline constexpr uint32_t kServiceTtl = 600;
inline constexpr uint32_t kTaskTtl = 0;

enum class EndpointMode { kVip, kDnsrr };

struct ServiceRecord {
  std::string name;
  EndpointMode mode = EndpointMode::kVip;
  std::vector<IpAddress> vips;       // the service's VIP(s) on this network; unused for dnsrr
  std::vector<std::string> aliases;  // the service's network aliases; resolve like its name
};

// A running task (or a lone container) attached to a network.
struct TaskRecord {
  std::string task_id;       // the key; also resolves (Docker resolves container IDs)
  std::string service_name;  // "" for a container that is no service's
  // Names that resolve to this task: task name ("web.1.<id>"), container hostname, aliases.
  std::vector<std::string> names;
  IpAddress address;  // its address on this network
};

class DnsTable {
 public:
  // Adds or replaces the service `service.name` on network_id.
  void SetService(const std::string& network_id, ServiceRecord service);
  void RemoveService(const std::string& network_id, std::string_view service_name);
  // Adds or replaces the task task.task_id on network_id. Call when it is running: only
  // records in the table resolve.
  void AddTask(const std::string& network_id, TaskRecord task);
  // Takes effect for the next query. No-op for an unknown task.
  void RemoveTask(const std::string& network_id, std::string_view task_id);
  // Replaces every task of network_id at once (services stay): for a caller that learns a
  // network's records level-triggered, as agent/endpoints.h's listener does. Queries see
  // either the old set or the new one, never a mix.
  void ReplaceTasks(const std::string& network_id, std::vector<TaskRecord> tasks);
  // Forgets everything on the network (the last local task of it went).
  void RemoveNetwork(const std::string& network_id);

  struct Addresses {
    std::vector<IpAddress> addresses;  // may be empty: a dnsrr service with no running task
    uint32_t ttl = kTaskTtl;
  };
  // The addresses `name` has on `networks` (union in network order, without duplicates), or
  // nullopt if the name is not ours there.
  std::optional<Addresses> Lookup(std::string_view name,
                                  const std::vector<std::string>& networks) const;
  // The first name of the task at `address` on `networks`, for PTR queries.
  std::optional<std::string> LookupAddress(const IpAddress& address,
                                           const std::vector<std::string>& networks) const;

  // The response to `query` from a container attached to `networks`, or nullopt if the
  // question is not about our names (the caller forwards it). A, AAAA (NOERROR without
  // records when the name has no address of that family) and PTR of our addresses; other
  // types of our names get NOERROR without records. Several addresses come rotated by
  // `rotation` places (round-robin when the caller counts up). Not a QUERY: NOTIMP; not
  // exactly one question: FORMERR.
  std::optional<Message> Answer(const Message& query, const std::vector<std::string>& networks,
                                uint64_t rotation) const;

 private:
  struct Network {
    std::map<std::string, ServiceRecord> services;  // by canonical name
    std::map<std::string, TaskRecord> tasks;        // by task ID
    // Canonical task name / hostname / alias / ID -> task IDs; service name -> task IDs.
    std::map<std::string, std::set<std::string>> tasks_by_name;
    std::map<std::string, std::set<std::string>> tasks_by_service;
  };
  void AddTaskLocked(Network& net, TaskRecord task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveTaskLocked(Network& net, const std::string& task_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LookupLocked(const Network& net, const std::string& name, Addresses& out, bool& found) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, Network> networks_ ABSL_GUARDED_BY(mu_);
};

// An upstream resolver (IPv4).
struct Upstream {
  IpAddress address;
  uint16_t port = 53;
  // Ask it from the daemon's namespace instead of the container's: for resolvers on the
  // host's loopback, which a container's namespace cannot reach.
  bool from_host_namespace = false;
};

// The host's IPv4 nameservers as upstreams (loopback ones from the host's namespace). IPv6
// nameservers are left out: forwarding is IPv4 only.
std::vector<Upstream> UpstreamsFromResolvConf(const ResolvConf& host);

// Reads and parses a resolv.conf file (the host's /etc/resolv.conf).
absl::StatusOr<ResolvConf> ReadResolvConf(const std::string& path = "/etc/resolv.conf");

struct DnsServerOptions {
  std::vector<Upstream> upstreams;
  // How long to wait for one upstream before asking the next (or answering SERVFAIL).
  absl::Duration upstream_timeout = absl::Seconds(2);
  // A TCP client connection idle this long is closed.
  absl::Duration tcp_idle_timeout = absl::Seconds(10);
  uint16_t port = 53;
  size_t max_tcp_connections_per_container = 64;
  size_t max_pending_forwards = 4096;
  // A TCP client that does not read its answers is dropped past this many unsent bytes.
  size_t max_tcp_output_bytes = 1 << 20;
  Clock* clock = &Clock::Real();
  // Forwarded queries get a random ID from here (guessing it is how a spoofed answer gets in).
  Random* random = &SecureRandom::Get();
};

class DnsServer {
 public:
  // `table` is not owned and must outlive the server.
  DnsServer(const DnsTable* table, DnsServerOptions options);
  ~DnsServer();  // Stop()s
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  // Starts the event thread and opens the socket for host-namespace forwarding.
  absl::Status Start();
  // Stops and joins the event thread; closes every socket of every container.
  void Stop();

  // Opens 127.0.0.11:<port> (UDP and TCP) in the network namespace netns_fd (not owned; only
  // used during the call) and serves the container from now on, with the records of
  // `networks`. Names that are not ours go to `upstreams` (a service's --dns), or when there
  // are none to the server's. The namespace's loopback must be up. AlreadyExists for a known
  // container_id.
  absl::Status AddContainer(const std::string& container_id, int netns_fd,
                            std::vector<std::string> networks,
                            std::vector<Upstream> upstreams = {});
  // The container joined or left a network.
  absl::Status SetNetworks(const std::string& container_id, std::vector<std::string> networks);
  // Closes the container's sockets (and its TCP connections) before returning, and drops its
  // queries in flight. NotFound for an unknown container_id.
  absl::Status RemoveContainer(const std::string& container_id);

 private:
  enum class Kind { kWake, kUdp, kTcpListen, kForward, kHostForward, kTcpConn };
  struct Source {
    Kind kind;
    std::string container_id;  // "" for kWake and kHostForward
  };
  struct Container {
    ScopedFd udp, tcp, forward;
    uint64_t udp_token = 0, tcp_token = 0, forward_token = 0;
    std::vector<std::string> networks;
    std::set<uint64_t> connections;   // tokens of its TCP connections
    std::vector<Upstream> upstreams;  // its own; empty: the server's
  };
  struct Connection {
    std::string container_id;
    ScopedFd fd;
    std::string in, out;  // bytes read and not yet handled; bytes not yet written
    absl::Time idle_deadline;
    bool want_write = false;  // registered for EPOLLOUT
  };
  // Where a response goes: a UDP client's address, or a TCP connection (by token).
  struct Client {
    sockaddr_in udp_address{};
    uint64_t connection = 0;  // 0: UDP
  };
  struct Pending {
    std::string container_id;
    Client client;
    Message query;
    std::string wire;  // the query as sent upstream (with our ID)
    size_t upstream = 0;
    absl::Time deadline;
  };

  const std::vector<Upstream>& UpstreamsOf(const Container& c) const {
    return c.upstreams.empty() ? options_.upstreams : c.upstreams;
  }
  void Run();
  void HandleEventLocked(uint64_t token, uint32_t events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReadUdpLocked(const std::string& container_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AcceptLocked(const std::string& container_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReadConnectionLocked(uint64_t token) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FlushConnectionLocked(uint64_t token) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CloseConnectionLocked(uint64_t token) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReadForwardLocked(int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleQueryLocked(const std::string& container_id, std::string_view wire,
                         const Client& client) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends p to upstream p.upstream or the next one that accepts it; SERVFAIL when none does.
  void SendUpstreamLocked(uint16_t id, Pending p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReplyLocked(const std::string& container_id, const Client& client, const Message& query,
                   std::string response) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int NextTimeoutMsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t RegisterLocked(int fd, uint32_t events, Source source)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnregisterLocked(int fd, uint64_t token) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveContainerLocked(const std::string& container_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const DnsTable* const table_;
  const DnsServerOptions options_;

  absl::Mutex mu_;
  ScopedFd epoll_ ABSL_GUARDED_BY(mu_);
  ScopedFd wake_ ABSL_GUARDED_BY(mu_);          // eventfd: Stop() wakes the event thread
  ScopedFd host_forward_ ABSL_GUARDED_BY(mu_);  // UDP, in the daemon's namespace
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_token_ ABSL_GUARDED_BY(mu_) = 1;  // never reused: a stale event finds nothing
  uint64_t rotation_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, Source> sources_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Container> containers_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Connection> connections_ ABSL_GUARDED_BY(mu_);
  std::map<uint16_t, Pending> pending_ ABSL_GUARDED_BY(mu_);  // by the ID sent upstream
  std::thread thread_;  // started by Start(), joined by Stop()
};

}  // namespace swarm::agent::network::dns

#endif  // SWARM_AGENT_NETWORK_DNS_H_

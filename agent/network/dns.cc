#include "agent/network/dns.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/errno_status.h"
#include "common/logging.h"

namespace swarm::agent::network::dns {

namespace {

constexpr char kTasksPrefix[] = "tasks.";
constexpr size_t kMaxTcpMessage = 65535;
constexpr int kMaxPacketsPerWakeup = 64;

bool SameAddress(const IpAddress& a, const IpAddress& b) {
  return a.family == b.family &&
         std::equal(a.bytes.begin(), a.bytes.begin() + a.bits() / 8, b.bytes.begin());
}

void AppendUnique(std::vector<IpAddress>& out, const IpAddress& ip) {
  for (const IpAddress& have : out) {
    if (SameAddress(have, ip)) return;
  }
  out.push_back(ip);
}

// "4.3.2.1.in-addr.arpa" -> 1.2.3.4.
std::optional<IpAddress> ParseReverseName(const std::string& canonical) {
  constexpr char kSuffix[] = ".in-addr.arpa";
  if (!absl::EndsWith(canonical, kSuffix)) return std::nullopt;
  std::vector<std::string> parts =
      absl::StrSplit(canonical.substr(0, canonical.size() - (sizeof(kSuffix) - 1)), '.');
  if (parts.size() != 4) return std::nullopt;
  IpAddress ip;
  for (int i = 0; i < 4; ++i) {
    int v = 0;
    if (parts[i].empty() || parts[i].size() > 3 || !absl::SimpleAtoi(parts[i], &v) || v < 0 ||
        v > 255) {
      return std::nullopt;
    }
    ip.bytes[3 - i] = static_cast<unsigned char>(v);
  }
  return ip;
}

std::string AddressText(const sockaddr_in& sa) {
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &sa.sin_addr, buf, sizeof(buf));
  return absl::StrCat(buf, ":", ntohs(sa.sin_port));
}

void SetId(std::string& wire, uint16_t id) {
  wire[0] = static_cast<char>(id >> 8);
  wire[1] = static_cast<char>(id & 0xFF);
}

}  // namespace

// ---- DnsTable

void DnsTable::SetService(const std::string& network_id, ServiceRecord service) {
  absl::MutexLock lock(&mu_);
  networks_[network_id].services[CanonicalName(service.name)] = std::move(service);
}

void DnsTable::RemoveService(const std::string& network_id, std::string_view service_name) {
  absl::MutexLock lock(&mu_);
  auto it = networks_.find(network_id);
  if (it == networks_.end()) return;
  it->second.services.erase(CanonicalName(service_name));
}

void DnsTable::AddTask(const std::string& network_id, TaskRecord task) {
  absl::MutexLock lock(&mu_);
  AddTaskLocked(networks_[network_id], std::move(task));
}

void DnsTable::ReplaceTasks(const std::string& network_id, std::vector<TaskRecord> tasks) {
  absl::MutexLock lock(&mu_);
  Network& net = networks_[network_id];
  net.tasks.clear();
  net.tasks_by_name.clear();
  net.tasks_by_service.clear();
  for (TaskRecord& task : tasks) AddTaskLocked(net, std::move(task));
}

void DnsTable::AddTaskLocked(Network& net, TaskRecord task) {
  RemoveTaskLocked(net, task.task_id);
  const std::string id = task.task_id;
  net.tasks_by_name[CanonicalName(id)].insert(id);
  for (const std::string& name : task.names) net.tasks_by_name[CanonicalName(name)].insert(id);
  if (!task.service_name.empty()) {
    net.tasks_by_service[CanonicalName(task.service_name)].insert(id);
  }
  net.tasks[id] = std::move(task);
}

void DnsTable::RemoveTask(const std::string& network_id, std::string_view task_id) {
  absl::MutexLock lock(&mu_);
  auto it = networks_.find(network_id);
  if (it == networks_.end()) return;
  RemoveTaskLocked(it->second, std::string(task_id));
}

void DnsTable::RemoveTaskLocked(Network& net, const std::string& task_id) {
  auto it = net.tasks.find(task_id);
  if (it == net.tasks.end()) return;
  auto drop = [&](std::map<std::string, std::set<std::string>>& index, const std::string& key) {
    auto entry = index.find(key);
    if (entry == index.end()) return;
    entry->second.erase(task_id);
    if (entry->second.empty()) index.erase(entry);
  };
  drop(net.tasks_by_name, CanonicalName(task_id));
  for (const std::string& name : it->second.names) drop(net.tasks_by_name, CanonicalName(name));
  if (!it->second.service_name.empty()) {
    drop(net.tasks_by_service, CanonicalName(it->second.service_name));
  }
  net.tasks.erase(it);
}

void DnsTable::RemoveNetwork(const std::string& network_id) {
  absl::MutexLock lock(&mu_);
  networks_.erase(network_id);
}

void DnsTable::LookupLocked(const Network& net, const std::string& name, Addresses& out,
                            bool& found) const {
  auto add_tasks = [&](const std::set<std::string>& ids) {
    for (const std::string& id : ids) {
      auto task = net.tasks.find(id);
      if (task != net.tasks.end()) AppendUnique(out.addresses, task->second.address);
    }
    out.ttl = std::min(out.ttl, kTaskTtl);
  };
  if (absl::StartsWith(name, kTasksPrefix)) {
    auto it = net.tasks_by_service.find(name.substr(sizeof(kTasksPrefix) - 1));
    if (it != net.tasks_by_service.end()) {
      found = true;
      add_tasks(it->second);
    }
  }
  for (const auto& [service_name, service] : net.services) {
    bool match = service_name == name;
    for (const std::string& alias : service.aliases) match = match || CanonicalName(alias) == name;
    if (!match) continue;
    found = true;
    if (service.mode == EndpointMode::kVip) {
      for (const IpAddress& vip : service.vips) AppendUnique(out.addresses, vip);
      out.ttl = std::min(out.ttl, kServiceTtl);
    } else {
      auto it = net.tasks_by_service.find(service_name);
      if (it != net.tasks_by_service.end()) add_tasks(it->second);
      out.ttl = std::min(out.ttl, kTaskTtl);
    }
  }
  auto it = net.tasks_by_name.find(name);
  if (it != net.tasks_by_name.end()) {
    found = true;
    add_tasks(it->second);
  }
}

std::optional<DnsTable::Addresses> DnsTable::Lookup(
    std::string_view name, const std::vector<std::string>& networks) const {
  const std::string key = CanonicalName(name);
  Addresses out;
  out.ttl = kServiceTtl;  // lowered by whatever task address goes in
  bool found = false;
  absl::ReaderMutexLock lock(&mu_);
  for (const std::string& network_id : networks) {
    auto net = networks_.find(network_id);
    if (net != networks_.end()) LookupLocked(net->second, key, out, found);
  }
  if (!found) return std::nullopt;
  return out;
}

std::optional<std::string> DnsTable::LookupAddress(const IpAddress& address,
                                                   const std::vector<std::string>& networks) const {
  absl::ReaderMutexLock lock(&mu_);
  for (const std::string& network_id : networks) {
    auto net = networks_.find(network_id);
    if (net == networks_.end()) continue;
    for (const auto& [id, task] : net->second.tasks) {
      if (SameAddress(task.address, address)) return task.names.empty() ? id : task.names[0];
    }
  }
  return std::nullopt;
}

std::optional<Message> DnsTable::Answer(const Message& query,
                                        const std::vector<std::string>& networks,
                                        uint64_t rotation) const {
  if (query.header.opcode != kOpcodeQuery) return ResponseTo(query, kRcodeNotImp);
  if (query.questions.size() != 1) return ResponseTo(query, kRcodeFormErr);
  const Question& q = query.questions[0];
  if (q.qclass != kClassIn) return std::nullopt;
  const std::string key = CanonicalName(q.name);

  if (q.type == kTypePtr) {
    std::optional<IpAddress> ip = ParseReverseName(key);
    if (!ip.has_value()) return std::nullopt;
    std::optional<std::string> name = LookupAddress(*ip, networks);
    if (!name.has_value()) return std::nullopt;
    Message r = ResponseTo(query, kRcodeNoError);
    r.header.aa = true;
    r.answers.push_back(PtrRecord(q.name, *name, kTaskTtl));
    return r;
  }

  std::optional<Addresses> found = Lookup(key, networks);
  if (!found.has_value()) return std::nullopt;
  Message r = ResponseTo(query, kRcodeNoError);
  r.header.aa = true;
  const int family = q.type == kTypeA ? AF_INET : q.type == kTypeAaaa ? AF_INET6 : -1;
  std::vector<IpAddress> matching;
  for (const IpAddress& ip : found->addresses) {
    if (ip.family == family) matching.push_back(ip);
  }
  if (!matching.empty()) {
    std::rotate(matching.begin(), matching.begin() + rotation % matching.size(), matching.end());
  }
  for (const IpAddress& ip : matching) {
    if (family == AF_INET) {
      unsigned char v4[4];
      std::memcpy(v4, ip.bytes.data(), 4);
      r.answers.push_back(ARecord(q.name, v4, found->ttl));
    } else {
      unsigned char v6[16];
      std::memcpy(v6, ip.bytes.data(), 16);
      r.answers.push_back(AaaaRecord(q.name, v6, found->ttl));
    }
  }
  return r;
}

// ---- resolv.conf

std::vector<Upstream> UpstreamsFromResolvConf(const ResolvConf& host) {
  std::vector<Upstream> out;
  for (const std::string& text : host.nameservers) {
    std::optional<IpAddress> ip = ParseIp(text);
    if (!ip.has_value() || ip->family != AF_INET) continue;
    Upstream u;
    u.address = *ip;
    u.from_host_namespace = ip->bytes[0] == 127;
    out.push_back(u);
  }
  return out;
}

absl::StatusOr<ResolvConf> ReadResolvConf(const std::string& path) {
  std::ifstream in(path);
  if (!in) return ErrnoToStatus(errno, absl::StrCat("reading ", path));
  std::stringstream content;
  content << in.rdbuf();
  return ParseResolvConf(content.str());
}

// ---- DnsServer

DnsServer::DnsServer(const DnsTable* table, DnsServerOptions options)
    : table_(table), options_(std::move(options)) {}

DnsServer::~DnsServer() { Stop(); }

absl::Status DnsServer::Start() {
  absl::MutexLock lock(&mu_);
  if (running_) return absl::FailedPreconditionError("starting the DNS server: already started");
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return ErrnoToStatus(errno, "starting the DNS server: creating an epoll instance");
  epoll_ = ScopedFd(ep);
  int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) return ErrnoToStatus(errno, "starting the DNS server: creating an eventfd");
  wake_ = ScopedFd(wake);
  RegisterLocked(wake_.get(), EPOLLIN, {Kind::kWake, ""});
  int fwd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fwd < 0) {
    return ErrnoToStatus(errno, "starting the DNS server: opening the host's forwarding socket");
  }
  host_forward_ = ScopedFd(fwd);
  RegisterLocked(host_forward_.get(), EPOLLIN, {Kind::kHostForward, ""});
  running_ = true;
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void DnsServer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (!running_) return;
    stopping_ = true;
    uint64_t one = 1;
    if (write(wake_.get(), &one, sizeof(one)) < 0) {
      // The eventfd counter cannot overflow with one write per Stop; the loop also polls
      // stopping_ at least once a second.
    }
  }
  thread_.join();
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  for (const auto& [id, c] : containers_) ids.push_back(id);
  for (const std::string& id : ids) RemoveContainerLocked(id);
  pending_.clear();
  sources_.clear();
  host_forward_ = ScopedFd();
  wake_ = ScopedFd();
  epoll_ = ScopedFd();
  running_ = false;
}

uint64_t DnsServer::RegisterLocked(int fd, uint32_t events, Source source) {
  uint64_t token = next_token_++;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  // Cannot fail for a fresh socket on a live epoll instance but for ENOMEM; such a socket
  // would just never be served, which the caller's queries time out on.
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    log::Error("dns", "registering a socket with epoll failed",
               {{"error", ErrnoToStatus(errno, "epoll_ctl")}});
  }
  sources_[token] = std::move(source);
  return token;
}

void DnsServer::UnregisterLocked(int fd, uint64_t token) {
  if (fd >= 0) epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  sources_.erase(token);
}

absl::Status DnsServer::AddContainer(const std::string& container_id, int netns_fd,
                                     std::vector<std::string> networks,
                                     std::vector<Upstream> upstreams) {
  {
    absl::MutexLock lock(&mu_);
    if (!running_) {
      return absl::FailedPreconditionError(
          absl::StrCat("serving DNS to container ", container_id, ": the server is not started"));
    }
    if (containers_.count(container_id) != 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("serving DNS to container ", container_id, ": already served"));
    }
  }
  // The sockets are made on a thread inside the container's namespace and are that
  // namespace's for life; no lock is held meanwhile.
  Container c;
  c.upstreams = std::move(upstreams);
  const sockaddr_in bind_address = ToSockaddr(*ParseIp(kServerAddress), options_.port);
  const std::string where = absl::StrCat(kServerAddress, ":", options_.port, " in container ",
                                         container_id, "'s network namespace");
  absl::Status status = RunInNetns(netns_fd, [&]() -> absl::Status {
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (udp < 0) return ErrnoToStatus(errno, absl::StrCat("opening a UDP socket for ", where));
    c.udp = ScopedFd(udp);
    // With lo down the binds below succeed but no query would ever arrive: say so now.
    ifreq lo{};
    std::snprintf(lo.ifr_name, IFNAMSIZ, "lo");
    if (ioctl(udp, SIOCGIFFLAGS, &lo) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("reading the flags of lo for ", where));
    }
    if ((lo.ifr_flags & IFF_UP) == 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "serving DNS on ", where, ": the loopback device is down; bring lo up first"));
    }
    if (bind(udp, reinterpret_cast<const sockaddr*>(&bind_address), sizeof(bind_address)) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("binding UDP ", where));
    }
    int tcp = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (tcp < 0) return ErrnoToStatus(errno, absl::StrCat("opening a TCP socket for ", where));
    c.tcp = ScopedFd(tcp);
    int one = 1;
    setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(tcp, reinterpret_cast<const sockaddr*>(&bind_address), sizeof(bind_address)) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("binding TCP ", where));
    }
    if (listen(tcp, 64) != 0) return ErrnoToStatus(errno, absl::StrCat("listening on TCP ", where));
    int fwd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fwd < 0) {
      return ErrnoToStatus(errno, absl::StrCat("opening the forwarding socket for ", where));
    }
    c.forward = ScopedFd(fwd);
    return absl::OkStatus();
  });
  if (!status.ok()) {
    // The errors from inside say where already; a failed setns does not.
    if (absl::StrContains(status.message(), container_id)) return status;
    return absl::Status(status.code(), absl::StrCat("serving DNS to container ", container_id, ": ",
                                                    status.message()));
  }

  absl::MutexLock lock(&mu_);
  if (!running_ || stopping_) {
    return absl::FailedPreconditionError(
        absl::StrCat("serving DNS to container ", container_id, ": the server stopped"));
  }
  if (containers_.count(container_id) != 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("serving DNS to container ", container_id, ": already served"));
  }
  c.networks = std::move(networks);
  c.udp_token = RegisterLocked(c.udp.get(), EPOLLIN, {Kind::kUdp, container_id});
  c.tcp_token = RegisterLocked(c.tcp.get(), EPOLLIN, {Kind::kTcpListen, container_id});
  c.forward_token = RegisterLocked(c.forward.get(), EPOLLIN, {Kind::kForward, container_id});
  containers_.emplace(container_id, std::move(c));
  return absl::OkStatus();
}

absl::Status DnsServer::SetNetworks(const std::string& container_id,
                                    std::vector<std::string> networks) {
  absl::MutexLock lock(&mu_);
  auto it = containers_.find(container_id);
  if (it == containers_.end()) {
    return absl::NotFoundError(
        absl::StrCat("setting the DNS networks of container ", container_id, ": not served"));
  }
  it->second.networks = std::move(networks);
  return absl::OkStatus();
}

absl::Status DnsServer::RemoveContainer(const std::string& container_id) {
  absl::MutexLock lock(&mu_);
  if (containers_.count(container_id) == 0) {
    return absl::NotFoundError(
        absl::StrCat("removing container ", container_id, " from the DNS server: not served"));
  }
  RemoveContainerLocked(container_id);
  return absl::OkStatus();
}

void DnsServer::RemoveContainerLocked(const std::string& container_id) {
  auto it = containers_.find(container_id);
  if (it == containers_.end()) return;
  Container& c = it->second;
  for (uint64_t token : std::set<uint64_t>(c.connections)) CloseConnectionLocked(token);
  UnregisterLocked(c.udp.get(), c.udp_token);
  UnregisterLocked(c.tcp.get(), c.tcp_token);
  UnregisterLocked(c.forward.get(), c.forward_token);
  for (auto p = pending_.begin(); p != pending_.end();) {
    p = p->second.container_id == container_id ? pending_.erase(p) : std::next(p);
  }
  containers_.erase(it);  // closes the sockets
}

void DnsServer::Run() {
  pthread_setname_np(pthread_self(), "dns-server");
  epoll_event events[64];
  while (true) {
    int epoll_fd, timeout_ms;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      epoll_fd = epoll_.get();
      timeout_ms = NextTimeoutMsLocked();
    }
    int n = epoll_wait(epoll_fd, events, 64, timeout_ms);
    if (n < 0 && errno != EINTR) {
      log::Error("dns", "waiting for DNS sockets failed; the server stops",
                 {{"error", ErrnoToStatus(errno, "epoll_wait")}});
      return;
    }
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    for (int i = 0; i < n; ++i) HandleEventLocked(events[i].data.u64, events[i].events);
    ExpireLocked();
  }
}

int DnsServer::NextTimeoutMsLocked() const {
  absl::Time next = options_.clock->Now() + absl::Seconds(1);
  for (const auto& [id, p] : pending_) next = std::min(next, p.deadline);
  for (const auto& [token, conn] : connections_) next = std::min(next, conn.idle_deadline);
  absl::Duration wait = next - options_.clock->Now();
  if (wait <= absl::ZeroDuration()) return 0;
  return static_cast<int>(
      absl::ToInt64Milliseconds(wait + absl::Milliseconds(1) - absl::Nanoseconds(1)));
}

void DnsServer::HandleEventLocked(uint64_t token, uint32_t events) {
  auto it = sources_.find(token);
  if (it == sources_.end()) return;  // closed since epoll_wait returned
  const Source source = it->second;
  switch (source.kind) {
    case Kind::kWake: {
      uint64_t v;
      if (read(wake_.get(), &v, sizeof(v)) < 0) {
        // EAGAIN: already drained.
      }
      return;
    }
    case Kind::kUdp:
      ReadUdpLocked(source.container_id);
      return;
    case Kind::kTcpListen:
      AcceptLocked(source.container_id);
      return;
    case Kind::kForward: {
      auto c = containers_.find(source.container_id);
      if (c != containers_.end()) ReadForwardLocked(c->second.forward.get());
      return;
    }
    case Kind::kHostForward:
      ReadForwardLocked(host_forward_.get());
      return;
    case Kind::kTcpConn:
      if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ReadConnectionLocked(token);
      if ((events & EPOLLOUT) && connections_.count(token) != 0) FlushConnectionLocked(token);
      return;
  }
}

void DnsServer::ReadUdpLocked(const std::string& container_id) {
  char buf[kMaxTcpMessage];
  for (int i = 0; i < kMaxPacketsPerWakeup; ++i) {
    auto c = containers_.find(container_id);
    if (c == containers_.end()) return;
    Client client;
    socklen_t len = sizeof(client.udp_address);
    ssize_t n = recvfrom(c->second.udp.get(), buf, sizeof(buf), 0,
                         reinterpret_cast<sockaddr*>(&client.udp_address), &len);
    if (n < 0) return;  // EAGAIN: drained; other errors are the client's (ICMP) and passing
    HandleQueryLocked(container_id, std::string_view(buf, n), client);
  }
}

void DnsServer::AcceptLocked(const std::string& container_id) {
  for (int i = 0; i < kMaxPacketsPerWakeup; ++i) {
    auto c = containers_.find(container_id);
    if (c == containers_.end()) return;
    int fd = accept4(c->second.tcp.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (c->second.connections.size() >= options_.max_tcp_connections_per_container) {
      close(fd);  // a client holding connections open must not starve the node of fds
      continue;
    }
    uint64_t token = RegisterLocked(fd, EPOLLIN, {Kind::kTcpConn, container_id});
    Connection conn;
    conn.container_id = container_id;
    conn.fd = ScopedFd(fd);
    conn.idle_deadline = options_.clock->Now() + options_.tcp_idle_timeout;
    connections_.emplace(token, std::move(conn));
    c->second.connections.insert(token);
  }
}

void DnsServer::CloseConnectionLocked(uint64_t token) {
  auto it = connections_.find(token);
  if (it == connections_.end()) return;
  UnregisterLocked(it->second.fd.get(), token);
  auto c = containers_.find(it->second.container_id);
  if (c != containers_.end()) c->second.connections.erase(token);
  connections_.erase(it);
}

void DnsServer::ReadConnectionLocked(uint64_t token) {
  auto it = connections_.find(token);
  if (it == connections_.end()) return;
  char buf[16384];
  ssize_t n = read(it->second.fd.get(), buf, sizeof(buf));
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    CloseConnectionLocked(token);
    return;
  }
  if (n < 0) return;
  it->second.in.append(buf, n);
  it->second.idle_deadline = options_.clock->Now() + options_.tcp_idle_timeout;
  // Each message is preceded by its length in two bytes (RFC 1035 4.2.2); a client may send
  // several before reading.
  while (true) {
    it = connections_.find(token);
    if (it == connections_.end()) return;
    std::string& in = it->second.in;
    if (in.size() < 2) return;
    size_t len = (static_cast<uint8_t>(in[0]) << 8) | static_cast<uint8_t>(in[1]);
    if (in.size() < 2 + len) return;
    std::string message = in.substr(2, len);
    in.erase(0, 2 + len);
    Client client;
    client.connection = token;
    HandleQueryLocked(it->second.container_id, message, client);
  }
}

void DnsServer::FlushConnectionLocked(uint64_t token) {
  auto it = connections_.find(token);
  if (it == connections_.end()) return;
  Connection& conn = it->second;
  while (!conn.out.empty()) {
    ssize_t n = send(conn.fd.get(), conn.out.data(), conn.out.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      CloseConnectionLocked(token);
      return;
    }
    conn.out.erase(0, n);
  }
  const bool want_write = !conn.out.empty();
  if (want_write != conn.want_write) {
    epoll_event ev{};
    ev.events = want_write ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
    ev.data.u64 = token;
    epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, conn.fd.get(), &ev);
    conn.want_write = want_write;
  }
}

void DnsServer::HandleQueryLocked(const std::string& container_id, std::string_view wire,
                                  const Client& client) {
  auto c = containers_.find(container_id);
  if (c == containers_.end()) return;
  absl::StatusOr<Message> query = ParseMessage(wire);
  if (!query.ok()) {
    std::optional<std::string> formerr = FormErrResponse(wire);
    if (formerr.has_value()) ReplyLocked(container_id, client, Message{}, std::move(*formerr));
    return;
  }
  if (query->header.qr) return;  // a response: answering it could loop
  std::optional<Message> answer = table_->Answer(*query, c->second.networks, rotation_++);
  if (answer.has_value()) {
    ReplyLocked(container_id, client, *query,
                client.connection != 0 ? BuildMessage(*answer)
                                       : BuildUdpResponse(*answer, MaxUdpResponseSize(*query)));
    return;
  }
  if (UpstreamsOf(c->second).empty() || pending_.size() >= options_.max_pending_forwards) {
    ReplyLocked(container_id, client, *query, BuildMessage(ResponseTo(*query, kRcodeServFail)));
    return;
  }
  uint16_t id = 0;
  do {
    id = static_cast<uint16_t>(options_.random->Uniform(65536));
  } while (pending_.count(id) != 0);
  Pending p;
  p.container_id = container_id;
  p.client = client;
  p.query = std::move(*query);
  p.wire = std::string(wire);
  SetId(p.wire, id);
  p.upstream = 0;
  SendUpstreamLocked(id, std::move(p));
}

void DnsServer::SendUpstreamLocked(uint16_t id, Pending p) {
  auto c = containers_.find(p.container_id);
  if (c == containers_.end()) return;
  const std::vector<Upstream>& upstreams = UpstreamsOf(c->second);
  for (; p.upstream < upstreams.size(); ++p.upstream) {
    const Upstream& u = upstreams[p.upstream];
    const int fd = u.from_host_namespace ? host_forward_.get() : c->second.forward.get();
    const sockaddr_in to = ToSockaddr(u.address, u.port);
    if (sendto(fd, p.wire.data(), p.wire.size(), 0, reinterpret_cast<const sockaddr*>(&to),
               sizeof(to)) >= 0) {
      p.deadline = options_.clock->Now() + options_.upstream_timeout;
      pending_[id] = std::move(p);
      return;
    }
    log::Debug("dns", "forwarding a query failed",
               {{"upstream", AddressText(to)},
                {"error", ErrnoToStatus(errno, "sending to the upstream resolver")}});
  }
  ReplyLocked(p.container_id, p.client, p.query, BuildMessage(ResponseTo(p.query, kRcodeServFail)));
}

void DnsServer::ReadForwardLocked(int fd) {
  char buf[kMaxTcpMessage];
  for (int i = 0; i < kMaxPacketsPerWakeup; ++i) {
    sockaddr_in from{};
    socklen_t len = sizeof(from);
    ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) return;
    if (static_cast<size_t>(n) < kHeaderSize) continue;
    const uint16_t id = (static_cast<uint8_t>(buf[0]) << 8) | static_cast<uint8_t>(buf[1]);
    auto it = pending_.find(id);
    if (it == pending_.end()) continue;
    Pending& p = it->second;
    auto c = containers_.find(p.container_id);
    if (c == containers_.end()) continue;
    const Upstream& u = UpstreamsOf(c->second)[p.upstream];
    const int expected_fd = u.from_host_namespace ? host_forward_.get() : c->second.forward.get();
    const sockaddr_in want = ToSockaddr(u.address, u.port);
    // Only the upstream we asked, on the socket we asked it from, may answer.
    if (fd != expected_fd || from.sin_addr.s_addr != want.sin_addr.s_addr ||
        from.sin_port != want.sin_port) {
      continue;
    }
    std::string response(buf, n);
    SetId(response, p.query.header.id);
    Pending done = std::move(p);
    pending_.erase(it);
    ReplyLocked(done.container_id, done.client, done.query, std::move(response));
  }
}

void DnsServer::ReplyLocked(const std::string& container_id, const Client& client,
                            const Message& query, std::string response) {
  auto c = containers_.find(container_id);
  if (c == containers_.end()) return;
  if (client.connection == 0) {
    // A forwarded answer may exceed what this client accepts (it came over UDP with the
    // client's own EDNS size, but our limit is lower than some upstreams').
    if (response.size() > MaxUdpResponseSize(query)) {
      absl::StatusOr<Message> parsed = ParseMessage(response);
      response = parsed.ok() ? BuildUdpResponse(*parsed, MaxUdpResponseSize(query))
                             : BuildMessage(ResponseTo(query, kRcodeServFail));
    }
    sendto(c->second.udp.get(), response.data(), response.size(), 0,
           reinterpret_cast<const sockaddr*>(&client.udp_address), sizeof(client.udp_address));
    return;
  }
  auto conn = connections_.find(client.connection);
  if (conn == connections_.end()) return;
  if (response.size() > kMaxTcpMessage) return;
  if (conn->second.out.size() + 2 + response.size() > options_.max_tcp_output_bytes) {
    CloseConnectionLocked(client.connection);
    return;
  }
  conn->second.out.push_back(static_cast<char>(response.size() >> 8));
  conn->second.out.push_back(static_cast<char>(response.size() & 0xFF));
  conn->second.out.append(response);
  FlushConnectionLocked(client.connection);
}

void DnsServer::ExpireLocked() {
  const absl::Time now = options_.clock->Now();
  std::vector<uint16_t> expired;
  for (const auto& [id, p] : pending_) {
    if (p.deadline <= now) expired.push_back(id);
  }
  for (uint16_t id : expired) {
    Pending p = std::move(pending_[id]);
    pending_.erase(id);
    ++p.upstream;  // that one timed out: the next, or SERVFAIL
    SendUpstreamLocked(id, std::move(p));
  }
  std::vector<uint64_t> idle;
  for (const auto& [token, conn] : connections_) {
    if (conn.idle_deadline <= now) idle.push_back(token);
  }
  for (uint64_t token : idle) CloseConnectionLocked(token);
}

}  // namespace swarm::agent::network::dns

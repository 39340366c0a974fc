#include "agent/network/testing/test_hosts.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/network/netlink.h"
#include "common/errno_status.h"
#include "common/status_macros.h"

namespace swarm::agent::network::testing {

namespace {

// Runs before main(), while the process has one thread (unshare(CLONE_NEWNS) refuses a
// process whose threads share their filesystem context).
const bool kPrivateMounts = [] {
  if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr)) {
    std::perror("test_hosts: making a private mount namespace");
    std::abort();
  }
  return true;
}();

void RemoveTree(const std::string& path) {
  if (DIR* d = opendir(path.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      std::string child = absl::StrCat(path, "/", name);
      if (e->d_type == DT_DIR) {
        RemoveTree(child);
      } else {
        umount2(child.c_str(), MNT_DETACH);
        unlink(child.c_str());
      }
    }
    closedir(d);
  }
  rmdir(path.c_str());
}

uint16_t Checksum(const void* data, size_t len) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += (p[i] << 8) | p[i + 1];
  if (len % 2) sum += p[len - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<uint16_t>(~sum));
}

}  // namespace

IpAddress Ip(const char* text) {
  std::optional<IpAddress> ip = ParseIp(text);
  if (!ip) std::abort();
  return *ip;
}

IpNetwork Cidr(const char* text) {
  std::optional<IpNetwork> n = ParseCidr(text);
  if (!n) std::abort();
  return *n;
}

absl::StatusOr<std::unique_ptr<TestHosts>> TestHosts::Create(int underlay_mtu) {
  (void)kPrivateMounts;
  std::unique_ptr<TestHosts> t(new TestHosts());
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string templ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/swarm-net-XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) return ErrnoToStatus(errno, "making a test directory");
  t->dir_ = templ;
  for (int i = 0; i < 2; ++i) {
    ASSIGN_OR_RETURN(t->hosts_[i], t->NewNamespace(i == 0 ? "host-a" : "host-b"));
  }
  ASSIGN_OR_RETURN(ScopedFd b, OpenNetns(t->hosts_[1]));
  ASSIGN_OR_RETURN(std::unique_ptr<Netlink> a, Netlink::OpenAt(t->hosts_[0]));
  VethOptions ul;
  ul.name = kUnderlayDevice;
  ul.peer_name = kUnderlayDevice;
  ul.peer_netns_fd = b.get();
  ul.mtu = underlay_mtu;
  RETURN_IF_ERROR(a->CreateVeth(ul));
  for (int i = 0; i < 2; ++i) {
    ASSIGN_OR_RETURN(std::unique_ptr<Netlink> nl, Netlink::OpenAt(t->hosts_[i]));
    RETURN_IF_ERROR(nl->AddAddress(kUnderlayDevice, t->underlay_address(i), 24));
  }
  return t;
}

TestHosts::~TestHosts() {
  for (int i = 0; i < 2; ++i) {
    if (!hosts_[i].empty()) (void)Overlay::CleanupStale(underlay(i));
  }
  for (auto it = namespaces_.rbegin(); it != namespaces_.rend(); ++it) {
    (void)DeleteNamedNetns(*it);
  }
  if (!dir_.empty()) RemoveTree(dir_);
}

IpAddress TestHosts::underlay_address(int i) const {
  return Ip(i == 0 ? "192.168.77.1" : "192.168.77.2");
}

UnderlayConfig TestHosts::underlay(int i) const {
  UnderlayConfig u;
  u.run_dir = absl::StrCat(dir_, i == 0 ? "/run-a" : "/run-b");
  u.host_netns_path = hosts_[i];
  u.device = kUnderlayDevice;
  u.address = underlay_address(i);
  return u;
}

absl::StatusOr<std::string> TestHosts::NewNamespace(const std::string& name) {
  std::string path = absl::StrCat(dir_, "/", name);
  RETURN_IF_ERROR(CreateNamedNetns(path));
  namespaces_.push_back(path);
  return path;
}

absl::StatusOr<std::unique_ptr<BridgedHosts>> BridgedHosts::Create(
    const std::string& dir, const std::string& prefix, const std::vector<int>& numbers) {
  std::unique_ptr<BridgedHosts> h(new BridgedHosts());
  h->dir_ = dir;
  h->prefix_ = prefix;
  RETURN_IF_ERROR(CreateNamedNetns(dir + "/switch"));
  ASSIGN_OR_RETURN(std::unique_ptr<Netlink> sw, Netlink::OpenAt(dir + "/switch"));
  RETURN_IF_ERROR(sw->CreateBridge("br0"));
  RETURN_IF_ERROR(sw->SetLinkUp("br0", true));
  for (int i : numbers) {
    RETURN_IF_ERROR(CreateNamedNetns(h->path(i)));
    h->made_.push_back(i);
    ASSIGN_OR_RETURN(ScopedFd fd, OpenNetns(h->path(i)));
    RETURN_IF_ERROR(sw->CreateVeth({.name = absl::StrCat("h", i),
                                    .peer_name = "eth0",
                                    .peer_netns_fd = fd.get(),
                                    .master = "br0"}));
    ASSIGN_OR_RETURN(std::unique_ptr<Netlink> host, Netlink::OpenAt(h->path(i)));
    RETURN_IF_ERROR(host->AddAddress("eth0", Ip(h->ip(i).c_str()), 24));
  }
  return h;
}

BridgedHosts::~BridgedHosts() {
  for (int i : made_) (void)DeleteNamedNetns(path(i));
  (void)DeleteNamedNetns(dir_ + "/switch");
}

std::string BridgedHosts::path(int i) const { return absl::StrCat(dir_, "/host-", i); }

absl::Status BridgedHosts::SetLink(int i, bool up) {
  ASSIGN_OR_RETURN(std::unique_ptr<Netlink> host, Netlink::OpenAt(path(i)));
  return host->SetLinkUp("eth0", up);
}

absl::StatusOr<ScopedFd> SocketIn(const std::string& netns_path, int domain, int type,
                                  int protocol) {
  ASSIGN_OR_RETURN(ScopedFd ns, OpenNetns(netns_path));
  ScopedFd result;
  RETURN_IF_ERROR(RunInNetns(ns.get(), [&]() -> absl::Status {
    int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
    if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening a socket in ", netns_path));
    result = ScopedFd(fd);
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<bool> Ping(const std::string& netns_path, const IpAddress& to, int timeout_ms) {
  ASSIGN_OR_RETURN(ScopedFd s, SocketIn(netns_path, AF_INET, SOCK_RAW, IPPROTO_ICMP));
  const uint16_t id = static_cast<uint16_t>(getpid());
  sockaddr_in dst = ToSockaddr(to, 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (uint16_t seq = 1; std::chrono::steady_clock::now() < deadline; ++seq) {
    uint8_t packet[64] = {};
    auto* icmp = reinterpret_cast<icmphdr*>(packet);
    icmp->type = ICMP_ECHO;
    icmp->un.echo.id = htons(id);
    icmp->un.echo.sequence = htons(seq);
    icmp->checksum = Checksum(packet, sizeof(packet));
    if (sendto(s.get(), packet, sizeof(packet), 0, reinterpret_cast<sockaddr*>(&dst), sizeof(dst)) <
            0 &&
        errno != EHOSTUNREACH) {
      return ErrnoToStatus(errno, absl::StrCat("sending an ICMP echo to ", FormatIp(to)));
    }
    auto wait_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    while (std::chrono::steady_clock::now() < wait_until) {
      pollfd p{s.get(), POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      uint8_t reply[1500];
      sockaddr_in from{};
      socklen_t from_len = sizeof(from);
      ssize_t n =
          recvfrom(s.get(), reply, sizeof(reply), 0, reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n < static_cast<ssize_t>(sizeof(iphdr) + sizeof(icmphdr))) continue;
      auto* ip = reinterpret_cast<iphdr*>(reply);
      auto* r = reinterpret_cast<icmphdr*>(reply + ip->ihl * 4);
      if (r->type == ICMP_ECHOREPLY && ntohs(r->un.echo.id) == id &&
          std::memcmp(&from.sin_addr, to.bytes.data(), 4) == 0) {
        return true;
      }
    }
  }
  return false;
}

absl::StatusOr<EchoResult> TcpEcho(const std::string& client_ns, const std::string& server_ns,
                                   const IpAddress& server_ip, const IpAddress& connect_ip,
                                   int port, const std::string& payload) {
  ASSIGN_OR_RETURN(ScopedFd listener, SocketIn(server_ns, AF_INET, SOCK_STREAM));
  int one = 1;
  setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in bind_addr = ToSockaddr(server_ip, port);
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&bind_addr), sizeof(bind_addr)) != 0 ||
      listen(listener.get(), 4) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("listening on ", FormatIp(server_ip), ":", port));
  }
  ASSIGN_OR_RETURN(ScopedFd client, SocketIn(client_ns, AF_INET, SOCK_STREAM));
  timeval tv{5, 0};
  setsockopt(client.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  setsockopt(client.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in to = ToSockaddr(connect_ip, port);
  if (connect(client.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("connecting to ", FormatIp(connect_ip), ":", port));
  }
  pollfd p{listener.get(), POLLIN, 0};
  if (poll(&p, 1, 5000) != 1) return absl::DeadlineExceededError("no connection to accept");
  sockaddr_in peer{};
  socklen_t peer_len = sizeof(peer);
  ScopedFd conn(
      accept4(listener.get(), reinterpret_cast<sockaddr*>(&peer), &peer_len, SOCK_CLOEXEC));
  if (!conn.valid()) return ErrnoToStatus(errno, "accepting");
  setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (send(client.get(), payload.data(), payload.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(payload.size())) {
    return ErrnoToStatus(errno, "sending the payload");
  }
  std::string got(payload.size(), '\0');
  size_t have = 0;
  while (have < got.size()) {
    ssize_t n = recv(conn.get(), got.data() + have, got.size() - have, 0);
    if (n <= 0) return ErrnoToStatus(errno, "server reading the payload");
    have += n;
  }
  if (send(conn.get(), got.data(), got.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(got.size())) {
    return ErrnoToStatus(errno, "server echoing");
  }
  EchoResult result;
  result.echoed.assign(payload.size(), '\0');
  have = 0;
  while (have < result.echoed.size()) {
    ssize_t n = recv(client.get(), result.echoed.data() + have, result.echoed.size() - have, 0);
    if (n <= 0) return ErrnoToStatus(errno, "client reading the echo");
    have += n;
  }
  result.seen_source.family = AF_INET;
  std::memcpy(result.seen_source.bytes.data(), &peer.sin_addr, 4);
  return result;
}

}  // namespace swarm::agent::network::testing

// Overlay data plane cost: TCP throughput and request latency between two containers on
// different "hosts" over a VXLAN overlay network (agent/network: veth -> bridge -> VXLAN ->
// underlay -> VXLAN -> bridge -> veth), against the same measurements between the two host
// namespaces directly over the underlay, in the same run, printed with ratios. Goal (issue 11):
// overlay throughput over 0.8 of the underlay's.
//
// The hosts are network namespaces of the bench's own joined by a veth pair (MTU 1500, so the
// overlay MTU is 1450), as in the tests (agent/network/testing/test_hosts.h): nothing touches
// the namespace the bench runs in and no traffic leaves these namespaces. Sockets are created
// inside the namespaces and then driven by ordinary threads: a sender writing 128 KiB at a
// time for --seconds and a receiver counting bytes (one TCP stream); for latency, one
// connection with TCP_NODELAY and a 64-byte request answered by a 64-byte reply, for --seconds.
// The throughput threads are pinned (--pin, default both on CPU 0: left to the scheduler, one
// stream swings by 50% between runs on two cores); the latency threads are not, since on a
// shared machine a pinned thread waits behind whatever else runs on its CPU. Underlay and
// overlay take turns for --rounds rounds so a shared machine's load falls on both; the
// summary gives medians.
//
//   bazel run -c opt //bench:overlay_bench -- --seconds=2 --rounds=5 --pin=same
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "agent/network/netlink.h"
#include "agent/network/overlay.h"
#include "agent/network/testing/test_hosts.h"
#include "common/status_macros.h"

namespace swarm::agent::network {
namespace {

using Clock = std::chrono::steady_clock;
using testing::Ip;

// Pins the calling thread to the CPU --pin gives it (when the machine has more than one).
// --pin: "same" (sender and receiver on CPU 0: the whole data path on one CPU, so the figure
// is its cost per byte and the other CPU takes the machine's other load), "split" (sender on
// CPU 0, receiver on CPU 1), "none" (the scheduler decides).
std::string pin_mode = "same";

void PinTo(int cpu) {
  if (pin_mode == "none") return;
  if (pin_mode == "same") cpu = 0;
  if (std::thread::hardware_concurrency() < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

struct Pair {
  ScopedFd client;
  ScopedFd server;  // the accepted connection
};

absl::StatusOr<Pair> Connect(const std::string& client_ns, const std::string& server_ns,
                             const IpAddress& server_ip, int port) {
  ASSIGN_OR_RETURN(ScopedFd listener, testing::SocketIn(server_ns, AF_INET, SOCK_STREAM));
  int one = 1;
  setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sa = ToSockaddr(server_ip, port);
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 ||
      listen(listener.get(), 1) != 0) {
    return absl::InternalError(std::string("listen: ") + strerror(errno));
  }
  Pair p;
  ASSIGN_OR_RETURN(p.client, testing::SocketIn(client_ns, AF_INET, SOCK_STREAM));
  if (connect(p.client.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    return absl::InternalError(std::string("connect: ") + strerror(errno));
  }
  pollfd pf{listener.get(), POLLIN, 0};
  if (poll(&pf, 1, 5000) != 1) return absl::DeadlineExceededError("accept timed out");
  p.server = ScopedFd(accept(listener.get(), nullptr, nullptr));
  if (!p.server.valid()) return absl::InternalError(std::string("accept: ") + strerror(errno));
  return p;
}

// Bits per second of one TCP stream from client to server.
absl::StatusOr<double> Throughput(const std::string& client_ns, const std::string& server_ns,
                                  const IpAddress& server_ip, int port, double seconds) {
  ASSIGN_OR_RETURN(Pair p, Connect(client_ns, server_ns, server_ip, port));
  std::atomic<uint64_t> received{0};
  Clock::time_point first, last;
  std::thread receiver([&] {
    PinTo(1);
    std::vector<char> buf(256 << 10);
    bool started = false;
    while (true) {
      ssize_t n = recv(p.server.get(), buf.data(), buf.size(), 0);
      if (n <= 0) break;
      if (!started) {
        first = Clock::now();
        started = true;
      } else {
        received += n;  // bytes after the first read, over the time after it
      }
      last = Clock::now();
    }
  });
  std::thread sender([&] {
    PinTo(0);
    std::vector<char> chunk(128 << 10, 'x');
    auto end = Clock::now() + std::chrono::duration<double>(seconds);
    while (Clock::now() < end) {
      if (send(p.client.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0) break;
    }
    shutdown(p.client.get(), SHUT_WR);
  });
  sender.join();
  receiver.join();
  double elapsed = std::chrono::duration<double>(last - first).count();
  if (elapsed <= 0) return absl::InternalError("nothing received");
  return received * 8.0 / elapsed;
}

struct Latency {
  double p50_us = 0;
  double p99_us = 0;
  size_t requests = 0;
};

absl::StatusOr<Latency> RequestLatency(const std::string& client_ns, const std::string& server_ns,
                                       const IpAddress& server_ip, int port, double seconds) {
  ASSIGN_OR_RETURN(Pair p, Connect(client_ns, server_ns, server_ip, port));
  int one = 1;
  setsockopt(p.client.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(p.server.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  auto read_full = [](int fd, char* buf, size_t len) {
    size_t have = 0;
    while (have < len) {
      ssize_t n = recv(fd, buf + have, len - have, 0);
      if (n <= 0) return false;
      have += n;
    }
    return true;
  };
  std::thread server([&] {
    char buf[64];
    while (read_full(p.server.get(), buf, sizeof(buf))) {
      if (send(p.server.get(), buf, sizeof(buf), MSG_NOSIGNAL) != sizeof(buf)) break;
    }
  });
  std::vector<double> samples;
  std::thread client([&] {
    char req[64] = {}, rep[64];
    auto end = Clock::now() + std::chrono::duration<double>(seconds);
    for (int i = 0; Clock::now() < end; ++i) {
      auto t0 = Clock::now();
      if (send(p.client.get(), req, sizeof(req), MSG_NOSIGNAL) != sizeof(req)) break;
      if (!read_full(p.client.get(), rep, sizeof(rep))) break;
      if (i >= 100) {  // warm-up: ARP, caches
        samples.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      }
    }
  });
  client.join();
  shutdown(p.client.get(), SHUT_WR);
  server.join();
  if (samples.empty()) return absl::InternalError("no requests completed");
  std::sort(samples.begin(), samples.end());
  Latency l;
  l.requests = samples.size();
  l.p50_us = samples[samples.size() / 2];
  l.p99_us = samples[std::min(samples.size() - 1, samples.size() * 99 / 100)];
  return l;
}

int Main(int argc, char** argv) {
  double seconds = 2;
  int rounds = 5;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (absl::StartsWith(a, "--seconds=")) {
      (void)absl::SimpleAtod(a.substr(10), &seconds);
    } else if (absl::StartsWith(a, "--pin=")) {
      pin_mode = a.substr(6);
    } else if (absl::StartsWith(a, "--rounds=")) {
      (void)absl::SimpleAtoi(a.substr(9), &rounds);
    } else {
      std::fprintf(stderr,
                   "usage: overlay_bench [--seconds=2] [--rounds=5] [--pin=same|split|none]\n");
      return 2;
    }
  }
  auto hosts = testing::TestHosts::Create();
  if (!hosts.ok()) {
    std::fprintf(stderr, "setting up the hosts: %s\n", hosts.status().ToString().c_str());
    return 1;
  }
  OverlayNetwork net{.id = "bench",
                     .vni = 4242,
                     .subnet = testing::Cidr("10.30.0.0/24"),
                     .gateway = Ip("10.30.0.1")};
  std::unique_ptr<Overlay> overlay[2];
  std::string container[2];
  IpAddress ip[2] = {Ip("10.30.0.2"), Ip("10.30.0.3")};
  std::vector<Endpoint> peers;
  for (int i = 0; i < 2; ++i) {
    auto ov = Overlay::Create((*hosts)->underlay(i), net);
    auto ns = (*hosts)->NewNamespace(i == 0 ? "ctr-a" : "ctr-b");
    if (!ov.ok() || !ns.ok()) {
      std::fprintf(stderr, "setting up the overlay: %s %s\n", ov.status().ToString().c_str(),
                   ns.status().ToString().c_str());
      return 1;
    }
    overlay[i] = std::move(*ov);
    container[i] = *ns;
    absl::Status s = overlay[i]->Attach({.netns_path = container[i], .ip = ip[i]});
    if (!s.ok()) {
      std::fprintf(stderr, "attaching: %s\n", s.ToString().c_str());
      return 1;
    }
    peers.push_back({ip[i], MacFromIpv4(ip[i]), (*hosts)->underlay_address(i)});
  }
  for (auto& ov : overlay) {
    absl::Status s = ov->SetPeers(peers);
    if (!s.ok()) {
      std::fprintf(stderr, "peers: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  std::printf(
      "overlay_bench: %d round(s) of %.1f s per measurement; underlay MTU 1500, "
      "overlay MTU %d\n",
      rounds, seconds, overlay[0]->mtu());

  struct Side {
    const char* name;
    std::string client_ns, server_ns;
    IpAddress server_ip;
    std::vector<double> bps;
    std::vector<Latency> lat;
  };
  Side sides[2] = {
      {"underlay", (*hosts)->host(0), (*hosts)->host(1), (*hosts)->underlay_address(1), {}, {}},
      {"overlay", container[0], container[1], ip[1], {}, {}}};
  int port = 9000;
  // A first stream in a fresh process runs at half speed (socket memory, caches); neither side
  // should get that round.
  for (Side& s : sides) {
    if (!Throughput(s.client_ns, s.server_ns, s.server_ip, port++, 1).ok()) {
      std::fprintf(stderr, "%s: warm-up failed\n", s.name);
      return 1;
    }
  }
  for (int r = 0; r < rounds; ++r) {
    for (Side& s : sides) {
      auto bps = Throughput(s.client_ns, s.server_ns, s.server_ip, port++, seconds);
      auto lat = RequestLatency(s.client_ns, s.server_ns, s.server_ip, port++, seconds);
      if (!bps.ok() || !lat.ok()) {
        std::fprintf(stderr, "%s: %s %s\n", s.name, bps.status().ToString().c_str(),
                     lat.status().ToString().c_str());
        return 1;
      }
      s.bps.push_back(*bps);
      s.lat.push_back(*lat);
      std::printf("  round %d %-8s  %7.2f Gbit/s   p50 %6.1f us   p99 %6.1f us   (%zu requests)\n",
                  r + 1, s.name, *bps / 1e9, lat->p50_us, lat->p99_us, lat->requests);
      std::fflush(stdout);
    }
  }
  // Medians over the rounds: on a shared two-core machine a round now and then lands on a
  // busy CPU, and a mean would carry that round into the ratio.
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  auto lat = [&](const Side& s, bool p99) {
    std::vector<double> v;
    for (const Latency& l : s.lat) v.push_back(p99 ? l.p99_us : l.p50_us);
    return median(v);
  };
  const Side& u = sides[0];
  const Side& o = sides[1];
  std::printf("\nmedians of %d rounds %9s %12s %12s   (throughput min..max)\n", rounds,
              "throughput", "p50", "p99");
  for (const Side* s : {&u, &o}) {
    std::printf("%-18s %7.2f Gbit/s %9.1f us %9.1f us   (%.2f..%.2f)\n", s->name,
                median(s->bps) / 1e9, lat(*s, false), lat(*s, true),
                *std::min_element(s->bps.begin(), s->bps.end()) / 1e9,
                *std::max_element(s->bps.begin(), s->bps.end()) / 1e9);
  }
  std::printf("overlay/underlay: throughput %.2f (goal > 0.80), p50 latency %.2fx, p99 %.2fx\n",
              median(o.bps) / median(u.bps), lat(o, false) / lat(u, false),
              lat(o, true) / lat(u, true));
  for (auto& ov : overlay) (void)ov->Remove();
  return 0;
}

}  // namespace
}  // namespace swarm::agent::network

int main(int argc, char** argv) { return swarm::agent::network::Main(argc, argv); }

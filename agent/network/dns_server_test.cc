// DnsServer end to end, as root: each "container" is a network namespace of the test's own,
// held only by a file descriptor (no bind mount), so the kernel frees it however the test
// ends. The server's sockets, the fake upstream resolver and the clients all live in those
// namespaces; no packet leaves them.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/network/dns.h"
#include "agent/network/dns_message.h"
#include "agent/network/netns.h"
#include "common/errno_status.h"
#include "common/ip.h"
#include "common/status_macros.h"

namespace swarm::agent::network::dns {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

IpAddress Ip(const char* text) { return *ParseIp(text); }

sockaddr_in Sockaddr(const char* ip, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, ip, &sa.sin_addr);
  return sa;
}

// Brings lo up in the calling thread's network namespace.
absl::Status LoopbackUp() {
  ScopedFd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq req{};
  std::snprintf(req.ifr_name, IFNAMSIZ, "lo");
  if (ioctl(s.get(), SIOCGIFFLAGS, &req) != 0) return ErrnoToStatus(errno, "reading lo's flags");
  req.ifr_flags |= IFF_UP;
  if (ioctl(s.get(), SIOCSIFFLAGS, &req) != 0) return ErrnoToStatus(errno, "bringing lo up");
  return absl::OkStatus();
}

// A new network namespace, its loopback up unless told otherwise.
absl::StatusOr<ScopedFd> NewNetns(bool loopback_up = true) {
  absl::StatusOr<ScopedFd> result = absl::InternalError("not run");
  std::thread t([&] {
    pthread_setname_np(pthread_self(), "test-unshare");
    if (unshare(CLONE_NEWNET) != 0) {
      result = ErrnoToStatus(errno, "creating a network namespace (unshare)");
      return;
    }
    if (absl::Status up = loopback_up ? LoopbackUp() : absl::OkStatus(); !up.ok()) {
      result = up;
      return;
    }
    result = OpenNetns("");
  });
  t.join();
  return result;
}

// Waits up to 2 s for fd to be readable.
absl::Status WaitReadable(int fd) {
  pollfd p{fd, POLLIN, 0};
  int n = poll(&p, 1, 2000);
  if (n < 0) return ErrnoToStatus(errno, "polling");
  if (n == 0) return absl::DeadlineExceededError("no answer within 2 s");
  return absl::OkStatus();
}

// Sends raw bytes to 127.0.0.11:53 over UDP from inside netns and returns the reply.
absl::StatusOr<std::string> AskUdpRaw(int netns, const std::string& wire) {
  std::string reply;
  absl::Status s = RunInNetns(netns, [&]() -> absl::Status {
    ScopedFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in to = Sockaddr("127.0.0.11", 53);
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
      return ErrnoToStatus(errno, "connecting to 127.0.0.11");
    }
    if (send(fd.get(), wire.data(), wire.size(), 0) < 0) return ErrnoToStatus(errno, "sending");
    RETURN_IF_ERROR(WaitReadable(fd.get()));
    char buf[65536];
    ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0) return ErrnoToStatus(errno, "receiving");
    reply.assign(buf, n);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return reply;
}

absl::StatusOr<Message> AskUdp(int netns, const Message& query) {
  ASSIGN_OR_RETURN(std::string reply, AskUdpRaw(netns, BuildMessage(query)));
  return ParseMessage(reply);
}

// Sends each query over one TCP connection (all written before any is read) and returns the
// replies in order.
absl::StatusOr<std::vector<Message>> AskTcp(int netns, const std::vector<Message>& queries) {
  std::vector<Message> replies;
  absl::Status s = RunInNetns(netns, [&]() -> absl::Status {
    ScopedFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in to = Sockaddr("127.0.0.11", 53);
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
      return ErrnoToStatus(errno, "connecting to 127.0.0.11 over TCP");
    }
    std::string out;
    for (const Message& q : queries) {
      std::string wire = BuildMessage(q);
      out.push_back(static_cast<char>(wire.size() >> 8));
      out.push_back(static_cast<char>(wire.size() & 0xFF));
      out += wire;
    }
    if (send(fd.get(), out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
      return ErrnoToStatus(errno, "sending over TCP");
    }
    std::string in;
    while (replies.size() < queries.size()) {
      if (in.size() >= 2) {
        size_t len = (static_cast<uint8_t>(in[0]) << 8) | static_cast<uint8_t>(in[1]);
        if (in.size() >= 2 + len) {
          ASSIGN_OR_RETURN(Message m, ParseMessage(in.substr(2, len)));
          replies.push_back(std::move(m));
          in.erase(0, 2 + len);
          continue;
        }
      }
      RETURN_IF_ERROR(WaitReadable(fd.get()));
      char buf[4096];
      ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
      if (n < 0) return ErrnoToStatus(errno, "receiving over TCP");
      if (n == 0) return absl::UnavailableError("the server closed the connection");
      in.append(buf, n);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return replies;
}

Message Query(const std::string& name, uint16_t type = kTypeA, uint16_t id = 0x4242) {
  Message m;
  m.header.id = id;
  m.header.rd = true;
  m.questions.push_back({name, type, kClassIn});
  return m;
}

std::vector<std::string> Addresses(const Message& r) {
  std::vector<std::string> out;
  for (const ResourceRecord& rr : r.answers) {
    if (rr.type != kTypeA || rr.rdata.size() != 4) continue;
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, rr.rdata.data(), buf, sizeof(buf));
    out.push_back(buf);
  }
  return out;
}

// A resolver listening on ip:53 (UDP) inside a namespace, answering every A question with
// 192.0.2.1, counting what it was asked.
class FakeUpstream {
 public:
  static absl::StatusOr<std::unique_ptr<FakeUpstream>> Start(int netns, const char* ip) {
    auto up = std::unique_ptr<FakeUpstream>(new FakeUpstream());
    RETURN_IF_ERROR(RunInNetns(netns, [&]() -> absl::Status {
      up->fd_ = ScopedFd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
      sockaddr_in at = Sockaddr(ip, 53);
      if (bind(up->fd_.get(), reinterpret_cast<sockaddr*>(&at), sizeof(at)) != 0) {
        return ErrnoToStatus(errno, absl::StrCat("binding the fake upstream to ", ip));
      }
      return absl::OkStatus();
    }));
    up->thread_ = std::thread([p = up.get()] { p->Serve(); });
    return up;
  }
  ~FakeUpstream() {
    stop_ = true;
    thread_.join();
  }
  std::vector<std::string> asked() {
    absl::MutexLock lock(&mu_);
    return asked_;
  }

 private:
  FakeUpstream() = default;
  void Serve() {
    pthread_setname_np(pthread_self(), "fake-upstream");
    while (!stop_) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      char buf[4096];
      sockaddr_in from{};
      socklen_t len = sizeof(from);
      ssize_t n =
          recvfrom(fd_.get(), buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n <= 0) continue;
      absl::StatusOr<Message> q = ParseMessage(std::string_view(buf, n));
      if (!q.ok() || q->questions.empty()) continue;
      {
        absl::MutexLock lock(&mu_);
        asked_.push_back(q->questions[0].name);
      }
      Message r = ResponseTo(*q, kRcodeNoError);
      r.answers.push_back(ARecord(q->questions[0].name, {192, 0, 2, 1}, 300));
      std::string wire = BuildMessage(r);
      sendto(fd_.get(), wire.data(), wire.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }
  ScopedFd fd_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<std::string> asked_ ABSL_GUARDED_BY(mu_);
};

class DnsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ns = NewNetns();
    ASSERT_TRUE(ns.ok()) << ns.status();
    ns_ = std::move(*ns);
    table_.SetService("front", {.name = "web", .vips = {Ip("10.0.0.2")}});
    table_.AddTask(
        "front",
        {.task_id = "t1", .service_name = "web", .names = {"web.1.t1"}, .address = Ip("10.0.0.3")});
    table_.AddTask(
        "front",
        {.task_id = "t2", .service_name = "web", .names = {"web.2.t2"}, .address = Ip("10.0.0.4")});
    table_.SetService("back", {.name = "db", .vips = {Ip("10.1.0.2")}});
  }

  // A server forwarding to `upstreams` (on 127.x addresses of the container's namespace),
  // serving container c1 in ns_ on network front.
  void StartServer(std::vector<const char*> upstreams,
                   absl::Duration tcp_idle_timeout = absl::Seconds(10)) {
    DnsServerOptions options;
    options.tcp_idle_timeout = tcp_idle_timeout;
    for (const char* ip : upstreams) options.upstreams.push_back({.address = Ip(ip)});
    options.upstream_timeout = absl::Milliseconds(300);
    server_ = std::make_unique<DnsServer>(&table_, std::move(options));
    ASSERT_TRUE(server_->Start().ok());
    absl::Status added = server_->AddContainer("c1", ns_.get(), {"front"});
    ASSERT_TRUE(added.ok()) << added;
  }

  ScopedFd ns_;
  DnsTable table_;
  std::unique_ptr<DnsServer> server_;
};

TEST_F(DnsServerTest, Udp_ServiceNameGivesTheVip) {
  StartServer({});
  auto r = AskUdp(ns_.get(), Query("web"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->header.id, 0x4242);
  EXPECT_EQ(r->header.rcode, kRcodeNoError);
  ASSERT_THAT(Addresses(*r), ElementsAre("10.0.0.2"));
  EXPECT_EQ(r->answers[0].ttl, kServiceTtl);
  // Names are case-insensitive; the question comes back as asked.
  auto upper = AskUdp(ns_.get(), Query("WEB."));
  ASSERT_TRUE(upper.ok()) << upper.status();
  EXPECT_THAT(Addresses(*upper), ElementsAre("10.0.0.2"));
}

TEST_F(DnsServerTest, Udp_TasksNameGivesRunningTasksAndARemovedOneIsGoneAtOnce) {
  StartServer({});
  std::set<std::string> firsts;
  for (int i = 0; i < 4; ++i) {
    auto r = AskUdp(ns_.get(), Query("tasks.web"));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_THAT(Addresses(*r), UnorderedElementsAre("10.0.0.3", "10.0.0.4"));
    EXPECT_EQ(r->answers[0].ttl, kTaskTtl);
    firsts.insert(Addresses(*r)[0]);
  }
  EXPECT_EQ(firsts.size(), 2u) << "answers are round-robin";

  table_.RemoveTask("front", "t1");
  auto after = AskUdp(ns_.get(), Query("tasks.web"));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_THAT(Addresses(*after), ElementsAre("10.0.0.4"));
  auto gone = AskUdp(ns_.get(), Query("web.1.t1"));
  ASSERT_TRUE(gone.ok()) << gone.status();
  // No longer ours: forwarded, and with no upstream that is SERVFAIL, never the old address.
  EXPECT_EQ(gone->header.rcode, kRcodeServFail);
  EXPECT_TRUE(gone->answers.empty());
}

TEST_F(DnsServerTest, Udp_AaaaOfOurNameIsNoErrorWithoutRecords) {
  StartServer({});
  auto r = AskUdp(ns_.get(), Query("web", kTypeAaaa));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->header.rcode, kRcodeNoError);
  EXPECT_TRUE(r->answers.empty());
}

TEST_F(DnsServerTest, Udp_OnlyTheContainersNetworksResolve) {
  StartServer({});
  auto db = AskUdp(ns_.get(), Query("db"));
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_TRUE(Addresses(*db).empty());
  ASSERT_TRUE(server_->SetNetworks("c1", {"front", "back"}).ok());
  db = AskUdp(ns_.get(), Query("db"));
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_THAT(Addresses(*db), ElementsAre("10.1.0.2"));

  // A second container, on back only, in a namespace of its own.
  auto ns2 = NewNetns();
  ASSERT_TRUE(ns2.ok()) << ns2.status();
  ASSERT_TRUE(server_->AddContainer("c2", ns2->get(), {"back"}).ok());
  auto web = AskUdp(ns2->get(), Query("web"));
  ASSERT_TRUE(web.ok()) << web.status();
  EXPECT_TRUE(Addresses(*web).empty());
  auto db2 = AskUdp(ns2->get(), Query("db"));
  ASSERT_TRUE(db2.ok()) << db2.status();
  EXPECT_THAT(Addresses(*db2), ElementsAre("10.1.0.2"));
}

TEST_F(DnsServerTest, Tcp_AnswersSeveralQueriesOnOneConnection) {
  StartServer({});
  auto r = AskTcp(ns_.get(), {Query("web", kTypeA, 1), Query("tasks.web", kTypeA, 2)});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].header.id, 1);
  EXPECT_THAT(Addresses((*r)[0]), ElementsAre("10.0.0.2"));
  EXPECT_EQ((*r)[1].header.id, 2);
  EXPECT_THAT(Addresses((*r)[1]), UnorderedElementsAre("10.0.0.3", "10.0.0.4"));
}

TEST_F(DnsServerTest, LargeAnswer_TruncatedOverUdpAndWholeOverTcp) {
  StartServer({});
  for (int i = 0; i < 60; ++i) {
    table_.AddTask("front", {.task_id = absl::StrCat("big", i),
                             .service_name = "big",
                             .address = Ip(absl::StrCat("10.0.1.", i + 1).c_str())});
  }
  auto udp = AskUdpRaw(ns_.get(), BuildMessage(Query("tasks.big")));
  ASSERT_TRUE(udp.ok()) << udp.status();
  EXPECT_LE(udp->size(), 512u);
  auto truncated = ParseMessage(*udp);
  ASSERT_TRUE(truncated.ok()) << truncated.status();
  EXPECT_TRUE(truncated->header.tc);
  EXPECT_LT(truncated->answers.size(), 60u);

  auto tcp = AskTcp(ns_.get(), {Query("tasks.big")});
  ASSERT_TRUE(tcp.ok()) << tcp.status();
  EXPECT_FALSE((*tcp)[0].header.tc);
  EXPECT_EQ(Addresses((*tcp)[0]).size(), 60u);
}

TEST_F(DnsServerTest, Malformed_GetsFormErrAndTheServerKeepsServing) {
  StartServer({});
  std::string garbage(
      "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x3f"
      "abc",
      16);
  auto r = AskUdpRaw(ns_.get(), garbage);
  ASSERT_TRUE(r.ok()) << r.status();
  auto m = ParseMessage(*r);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->header.id, 0x1234);
  EXPECT_EQ(m->header.rcode, kRcodeFormErr);
  auto ok = AskUdp(ns_.get(), Query("web"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_THAT(Addresses(*ok), ElementsAre("10.0.0.2"));
}

TEST_F(DnsServerTest, Forward_UnknownNamesGoToTheUpstream) {
  auto upstream = FakeUpstream::Start(ns_.get(), "127.0.0.2");
  ASSERT_TRUE(upstream.ok()) << upstream.status();
  StartServer({"127.0.0.2"});
  auto r = AskUdp(ns_.get(), Query("example.org", kTypeA, 0x7777));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->header.id, 0x7777);
  EXPECT_EQ(r->header.rcode, kRcodeNoError);
  EXPECT_THAT(Addresses(*r), ElementsAre("192.0.2.1"));
  // Over TCP too (forwarded over UDP).
  auto t = AskTcp(ns_.get(), {Query("other.example", kTypeA, 9)});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)[0].header.id, 9);
  EXPECT_THAT(Addresses((*t)[0]), ElementsAre("192.0.2.1"));
  // Our names never reach the upstream.
  ASSERT_TRUE(AskUdp(ns_.get(), Query("web")).ok());
  EXPECT_THAT((*upstream)->asked(), ElementsAre("example.org", "other.example"));
}

TEST_F(DnsServerTest, Forward_DeadUpstreamIsServFailAndTheNextOneIsTried) {
  auto upstream = FakeUpstream::Start(ns_.get(), "127.0.0.2");
  ASSERT_TRUE(upstream.ok()) << upstream.status();
  StartServer({"127.0.0.3", "127.0.0.2"});  // nothing listens on 127.0.0.3
  auto r = AskUdp(ns_.get(), Query("example.org"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Addresses(*r), ElementsAre("192.0.2.1"));

  server_.reset();
  StartServer({"127.0.0.3"});
  const absl::Time start = absl::Now();
  auto dead = AskUdp(ns_.get(), Query("example.org", kTypeA, 0x5151));
  ASSERT_TRUE(dead.ok()) << dead.status();
  EXPECT_EQ(dead->header.id, 0x5151);
  EXPECT_EQ(dead->header.rcode, kRcodeServFail);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(250));  // after the timeout, not before
}

TEST_F(DnsServerTest, Forward_AContainersOwnUpstreamsReplaceTheServers) {
  auto servers = FakeUpstream::Start(ns_.get(), "127.0.0.2");
  ASSERT_TRUE(servers.ok()) << servers.status();
  auto own = FakeUpstream::Start(ns_.get(), "127.0.0.4");  // a service's --dns
  ASSERT_TRUE(own.ok()) << own.status();
  StartServer({"127.0.0.2"});
  ASSERT_TRUE(server_->RemoveContainer("c1").ok());
  absl::Status added =
      server_->AddContainer("c1", ns_.get(), {"front"}, {{.address = Ip("127.0.0.4")}});
  ASSERT_TRUE(added.ok()) << added;
  auto r = AskUdp(ns_.get(), Query("example.org"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Addresses(*r), ElementsAre("192.0.2.1"));
  EXPECT_THAT((*own)->asked(), ElementsAre("example.org"));
  EXPECT_THAT((*servers)->asked(), ElementsAre());
  // Our names still come from the swarm.
  auto web = AskUdp(ns_.get(), Query("web"));
  ASSERT_TRUE(web.ok()) << web.status();
  EXPECT_EQ(web->header.rcode, kRcodeNoError);
  EXPECT_THAT((*own)->asked(), ElementsAre("example.org"));
}

TEST_F(DnsServerTest, RemoveContainer_ClosesItsSocketsAtOnce) {
  StartServer({});
  ASSERT_TRUE(server_->RemoveContainer("c1").ok());
  EXPECT_TRUE(absl::IsNotFound(server_->RemoveContainer("c1")));
  auto tcp = AskTcp(ns_.get(), {Query("web")});
  EXPECT_FALSE(tcp.ok());
  // The address is free again: the container can be served anew.
  ASSERT_TRUE(server_->AddContainer("c1", ns_.get(), {"front"}).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(server_->AddContainer("c1", ns_.get(), {"front"})));
  auto r = AskUdp(ns_.get(), Query("web"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Addresses(*r), ElementsAre("10.0.0.2"));
}

TEST_F(DnsServerTest, Tcp_IdleConnectionsAreClosed) {
  StartServer({}, absl::Milliseconds(200));
  ScopedFd conn;
  ASSERT_TRUE(RunInNetns(ns_.get(), [&]() -> absl::Status {
                conn = ScopedFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
                sockaddr_in to = Sockaddr("127.0.0.11", 53);
                if (connect(conn.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
                  return ErrnoToStatus(errno, "connecting");
                }
                return absl::OkStatus();
              }).ok());
  const absl::Time start = absl::Now();
  ASSERT_TRUE(WaitReadable(conn.get()).ok());
  char c;
  EXPECT_EQ(recv(conn.get(), &c, 1, 0), 0) << "closed by the server";
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(150));
}

// Queries race table updates and the container being removed and added again: every answer
// is one the table could give at some moment, and nothing crashes or hangs.
TEST_F(DnsServerTest, Concurrent_QueriesDuringUpdatesSeeOnlyRealStates) {
  StartServer({});
  std::atomic<bool> done{false};
  std::atomic<int> answered{0};
  std::thread churn([&] {
    pthread_setname_np(pthread_self(), "test-churn");
    // Until the client has had 40 answers, re-adding the container after every 10 of them,
    // so that the client makes progress whatever the scheduling.
    for (int readd_at = 10; answered < 40;) {
      table_.AddTask("front", {.task_id = "t5", .service_name = "web", .address = Ip("10.0.0.5")});
      absl::SleepFor(absl::Microseconds(100));
      table_.RemoveTask("front", "t5");
      if (answered >= readd_at) {
        readd_at += 10;
        EXPECT_TRUE(server_->RemoveContainer("c1").ok());
        EXPECT_TRUE(server_->AddContainer("c1", ns_.get(), {"front"}).ok());
      }
    }
    done = true;
  });
  while (!done) {
    auto r = AskUdp(ns_.get(), Query("tasks.web"));
    if (!r.ok()) continue;  // asked while the container was being re-added
    ++answered;
    for (const std::string& a : Addresses(*r)) {
      EXPECT_TRUE(a == "10.0.0.3" || a == "10.0.0.4" || a == "10.0.0.5") << a;
    }
  }
  churn.join();
  auto r = AskUdp(ns_.get(), Query("tasks.web"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Addresses(*r), UnorderedElementsAre("10.0.0.3", "10.0.0.4"));
}

TEST_F(DnsServerTest, AddContainer_LoopbackDownSaysWhatFailed) {
  StartServer({});
  auto down = NewNetns(/*loopback_up=*/false);
  ASSERT_TRUE(down.ok()) << down.status();
  absl::Status s = server_->AddContainer("c3", down->get(), {"front"});
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("127.0.0.11:53 in container c3's network namespace: the loopback"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("bring lo up first"));
  // Nothing of it is kept: once lo is up it can be added.
  ASSERT_TRUE(RunInNetns(down->get(), LoopbackUp).ok());
  ASSERT_TRUE(server_->AddContainer("c3", down->get(), {"front"}).ok());
  auto r = AskUdp(down->get(), Query("web"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Addresses(*r), ElementsAre("10.0.0.2"));
}

TEST_F(DnsServerTest, AddContainer_BadNamespaceNamesTheContainer) {
  StartServer({});
  absl::Status s = server_->AddContainer("c4", /*netns_fd=*/-1, {"front"});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("serving DNS to container c4: joining"));
}

TEST(DnsServerLifecycleTest, AddContainerBeforeStartIsRefused) {
  DnsTable table;
  DnsServer server(&table, {});
  EXPECT_TRUE(absl::IsFailedPrecondition(server.AddContainer("c", 0, {})));
  server.Stop();  // without Start: a no-op
}

}  // namespace
}  // namespace swarm::agent::network::dns

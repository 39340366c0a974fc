// DnsTable: scoping, updates and the answers it gives (pure; the sockets are in
// dns_server_test.cc).
#include "agent/network/dns.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "agent/network/dns_message.h"
#include "common/ip.h"
#include "common/random.h"

namespace swarm::agent::network::dns {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

IpAddress Ip(const char* text) { return *ParseIp(text); }

std::string Text(const IpAddress& ip) {
  char buf[64];
  inet_ntop(ip.family, ip.bytes.data(), buf, sizeof(buf));
  return buf;
}

std::vector<std::string> Texts(const std::optional<DnsTable::Addresses>& a) {
  std::vector<std::string> out;
  if (a.has_value()) {
    for (const IpAddress& ip : a->addresses) out.push_back(Text(ip));
  }
  return out;
}

TaskRecord Task(const std::string& id, const std::string& service, const char* ip,
                std::vector<std::string> names = {}) {
  return TaskRecord{
      .task_id = id, .service_name = service, .names = std::move(names), .address = Ip(ip)};
}

Message Query(const std::string& name, uint16_t type = kTypeA) {
  Message m;
  m.header.id = 7;
  m.header.rd = true;
  m.questions.push_back({name, type, kClassIn});
  return m;
}

std::vector<std::string> AnswerTexts(const Message& r) {
  std::vector<std::string> out;
  for (const ResourceRecord& rr : r.answers) {
    char buf[64];
    inet_ntop(rr.type == kTypeA ? AF_INET : AF_INET6, rr.rdata.data(), buf, sizeof(buf));
    out.push_back(buf);
  }
  return out;
}

class DnsTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    table_.SetService("front", {.name = "web", .vips = {Ip("10.0.0.2")}});
    table_.AddTask("front", Task("t1", "web", "10.0.0.3", {"web.1.t1", "host-a"}));
    table_.AddTask("front", Task("t2", "web", "10.0.0.4", {"web.2.t2"}));
    table_.SetService("back", {.name = "db", .mode = EndpointMode::kDnsrr});
    table_.AddTask("back", Task("t3", "db", "10.1.0.3", {"db.1.t3"}));
    table_.AddTask("back", Task("t4", "db", "10.1.0.4", {"db.2.t4"}));
  }
  DnsTable table_;
};

TEST_F(DnsTableTest, Lookup_ServiceGivesItsVipAndTasksGivesTheTasks) {
  auto vip = table_.Lookup("web", {"front"});
  ASSERT_TRUE(vip.has_value());
  EXPECT_THAT(Texts(vip), ElementsAre("10.0.0.2"));
  EXPECT_EQ(vip->ttl, kServiceTtl);
  auto tasks = table_.Lookup("tasks.web", {"front"});
  EXPECT_THAT(Texts(tasks), UnorderedElementsAre("10.0.0.3", "10.0.0.4"));
  EXPECT_EQ(tasks->ttl, kTaskTtl);
  EXPECT_THAT(Texts(table_.Lookup("web.1.t1", {"front"})), ElementsAre("10.0.0.3"));
  EXPECT_THAT(Texts(table_.Lookup("host-a", {"front"})), ElementsAre("10.0.0.3"));
  EXPECT_THAT(Texts(table_.Lookup("t2", {"front"})), ElementsAre("10.0.0.4"));
}

TEST_F(DnsTableTest, Lookup_DnsrrServiceGivesTheTaskAddresses) {
  auto db = table_.Lookup("db", {"back"});
  EXPECT_THAT(Texts(db), UnorderedElementsAre("10.1.0.3", "10.1.0.4"));
  EXPECT_EQ(db->ttl, kTaskTtl);
}

TEST_F(DnsTableTest, Lookup_IsCaseInsensitiveAndIgnoresTheTrailingDot) {
  EXPECT_THAT(Texts(table_.Lookup("WEB.", {"front"})), ElementsAre("10.0.0.2"));
  EXPECT_THAT(Texts(table_.Lookup("Tasks.Web", {"front"})),
              UnorderedElementsAre("10.0.0.3", "10.0.0.4"));
  table_.AddTask("front", Task("t9", "Api", "10.0.0.9", {"MixedCase"}));
  EXPECT_THAT(Texts(table_.Lookup("mixedcase", {"front"})), ElementsAre("10.0.0.9"));
  EXPECT_THAT(Texts(table_.Lookup("tasks.api", {"front"})), ElementsAre("10.0.0.9"));
}

TEST_F(DnsTableTest, Lookup_ScopedToTheContainersNetworks) {
  EXPECT_FALSE(table_.Lookup("db", {"front"}).has_value());
  EXPECT_FALSE(table_.Lookup("web", {"back"}).has_value());
  EXPECT_FALSE(table_.Lookup("web", {}).has_value());
  EXPECT_FALSE(table_.Lookup("web", {"unknown"}).has_value());
  EXPECT_TRUE(table_.Lookup("db", {"front", "back"}).has_value());
  EXPECT_FALSE(table_.LookupAddress(Ip("10.1.0.3"), {"front"}).has_value());
  EXPECT_EQ(table_.LookupAddress(Ip("10.1.0.3"), {"back"}), "db.1.t3");
}

TEST_F(DnsTableTest, Lookup_AServiceOnTwoNetworksGivesTheVipsOfTheAskersNetworks) {
  table_.SetService("back", {.name = "web", .vips = {Ip("10.1.0.2")}});
  EXPECT_THAT(Texts(table_.Lookup("web", {"back"})), ElementsAre("10.1.0.2"));
  EXPECT_THAT(Texts(table_.Lookup("web", {"front", "back"})), ElementsAre("10.0.0.2", "10.1.0.2"));
}

TEST_F(DnsTableTest, RemoveTask_TakesEffectAtOnce) {
  table_.RemoveTask("front", "t1");
  EXPECT_THAT(Texts(table_.Lookup("tasks.web", {"front"})), ElementsAre("10.0.0.4"));
  EXPECT_FALSE(table_.Lookup("web.1.t1", {"front"}).has_value());
  EXPECT_FALSE(table_.Lookup("host-a", {"front"}).has_value());
  table_.RemoveTask("front", "t2");
  EXPECT_FALSE(table_.Lookup("tasks.web", {"front"}).has_value());
  // The VIP stays while the service does.
  EXPECT_THAT(Texts(table_.Lookup("web", {"front"})), ElementsAre("10.0.0.2"));
  table_.RemoveService("front", "WEB");
  EXPECT_FALSE(table_.Lookup("web", {"front"}).has_value());
  // Unknown ones are no-ops.
  table_.RemoveTask("front", "nope");
  table_.RemoveTask("nowhere", "t1");
  table_.RemoveService("nowhere", "web");
}

TEST_F(DnsTableTest, AddTask_ReplacesTheSameTaskAndItsOldNames) {
  table_.AddTask("front", Task("t1", "web", "10.0.0.30", {"renamed"}));
  EXPECT_FALSE(table_.Lookup("host-a", {"front"}).has_value());
  EXPECT_THAT(Texts(table_.Lookup("renamed", {"front"})), ElementsAre("10.0.0.30"));
  EXPECT_THAT(Texts(table_.Lookup("tasks.web", {"front"})),
              UnorderedElementsAre("10.0.0.30", "10.0.0.4"));
}

TEST_F(DnsTableTest, ReplaceTasks_SwapsTheNetworksTasksAndKeepsItsServices) {
  table_.ReplaceTasks("front", {Task("t2", "web", "10.0.0.4", {"web.2.t2"}),
                                Task("t5", "web", "10.0.0.5", {"web.3.t5"})});
  EXPECT_THAT(Texts(table_.Lookup("tasks.web", {"front"})),
              UnorderedElementsAre("10.0.0.4", "10.0.0.5"));
  EXPECT_FALSE(table_.Lookup("web.1.t1", {"front"}).has_value());
  EXPECT_FALSE(table_.Lookup("host-a", {"front"}).has_value());
  EXPECT_THAT(Texts(table_.Lookup("web", {"front"})), ElementsAre("10.0.0.2"));
  // Other networks are untouched.
  EXPECT_THAT(Texts(table_.Lookup("db", {"back"})), UnorderedElementsAre("10.1.0.3", "10.1.0.4"));
  table_.ReplaceTasks("front", {});
  EXPECT_FALSE(table_.Lookup("tasks.web", {"front"}).has_value());
}

TEST_F(DnsTableTest, RemoveNetwork_ForgetsItsRecords) {
  table_.RemoveNetwork("back");
  EXPECT_FALSE(table_.Lookup("db", {"back"}).has_value());
  EXPECT_TRUE(table_.Lookup("web", {"front"}).has_value());
}

TEST_F(DnsTableTest, Lookup_ServiceAliasesResolveLikeTheName) {
  table_.SetService("front", {.name = "web", .vips = {Ip("10.0.0.2")}, .aliases = {"www"}});
  EXPECT_THAT(Texts(table_.Lookup("WWW", {"front"})), ElementsAre("10.0.0.2"));
}

TEST_F(DnsTableTest, Answer_ARecordsRotateForRoundRobin) {
  std::set<std::string> firsts;
  for (uint64_t rotation = 0; rotation < 4; ++rotation) {
    auto r = table_.Answer(Query("tasks.web"), {"front"}, rotation);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->header.rcode, kRcodeNoError);
    EXPECT_TRUE(r->header.aa);
    EXPECT_EQ(r->header.id, 7);
    ASSERT_EQ(r->answers.size(), 2u);
    EXPECT_EQ(r->answers[0].ttl, kTaskTtl);
    firsts.insert(AnswerTexts(*r)[0]);
  }
  EXPECT_THAT(firsts, UnorderedElementsAre("10.0.0.3", "10.0.0.4"));
}

TEST_F(DnsTableTest, Answer_AaaaForOurNameIsNoErrorWithoutRecords) {
  auto r = table_.Answer(Query("web", kTypeAaaa), {"front"}, 0);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->header.rcode, kRcodeNoError);
  EXPECT_TRUE(r->answers.empty());
  table_.AddTask("front", Task("t6", "v6", "fd00::6"));
  auto v6 = table_.Answer(Query("tasks.v6", kTypeAaaa), {"front"}, 0);
  ASSERT_TRUE(v6.has_value());
  EXPECT_THAT(AnswerTexts(*v6), ElementsAre("fd00::6"));
  // Other types of our names: NOERROR, nothing.
  auto mx = table_.Answer(Query("web", 15), {"front"}, 0);
  ASSERT_TRUE(mx.has_value());
  EXPECT_TRUE(mx->answers.empty());
}

TEST_F(DnsTableTest, Answer_NotOursIsForwarded) {
  EXPECT_FALSE(table_.Answer(Query("example.com"), {"front"}, 0).has_value());
  EXPECT_FALSE(table_.Answer(Query("db"), {"front"}, 0).has_value());
  EXPECT_FALSE(table_.Answer(Query("9.9.9.9.in-addr.arpa", kTypePtr), {"front"}, 0).has_value());
  Message chaos = Query("web");
  chaos.questions[0].qclass = 3;
  EXPECT_FALSE(table_.Answer(chaos, {"front"}, 0).has_value());
}

TEST_F(DnsTableTest, Answer_PtrOfATaskAddress) {
  auto r = table_.Answer(Query("3.0.0.10.in-addr.arpa", kTypePtr), {"front"}, 0);
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->answers.size(), 1u);
  EXPECT_EQ(r->answers[0].rdata_name, "web.1.t1");
}

TEST_F(DnsTableTest, Answer_BadQueriesGetFormErrOrNotImp) {
  Message none = Query("web");
  none.questions.clear();
  EXPECT_EQ(table_.Answer(none, {"front"}, 0)->header.rcode, kRcodeFormErr);
  Message two = Query("web");
  two.questions.push_back(two.questions[0]);
  EXPECT_EQ(table_.Answer(two, {"front"}, 0)->header.rcode, kRcodeFormErr);
  Message update = Query("web");
  update.header.opcode = 5;
  EXPECT_EQ(table_.Answer(update, {"front"}, 0)->header.rcode, kRcodeNotImp);
}

TEST_F(DnsTableTest, ConcurrentUpdatesAndLookups_NeverSeeHalfATask) {
  std::thread writer([&] {
    for (int i = 0; i < 2000; ++i) {
      table_.AddTask("front", Task("tx", "web", "10.0.0.50", {"busy"}));
      table_.RemoveTask("front", "tx");
    }
  });
  for (int i = 0; i < 2000; ++i) {
    auto busy = table_.Lookup("busy", {"front"});
    if (busy.has_value()) {
      EXPECT_THAT(Texts(busy), ElementsAre("10.0.0.50"));
    }
  }
  writer.join();
  EXPECT_FALSE(table_.Lookup("busy", {"front"}).has_value());
}

// Fuzz-style: whatever parses as a query is answered or forwarded, never a crash, and the
// answer always builds into a message that parses and fits a UDP client's limit.
TEST_F(DnsTableTest, Answer_MutatedQueriesNeverCrash) {
  const std::string seeds[] = {BuildMessage(Query("tasks.web")), BuildMessage(Query("db")),
                               BuildMessage(Query("3.0.0.10.in-addr.arpa", kTypePtr)),
                               BuildMessage(Query("web.1.t1", kTypeAaaa))};
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SeededRandom rng(seed);
    for (int i = 0; i < 2000; ++i) {
      std::string wire = seeds[rng.Uniform(4)];
      const int mutations = 1 + rng.Uniform(4);
      for (int k = 0; k < mutations; ++k) {
        wire[12 + rng.Uniform(wire.size() - 12)] = static_cast<char>(rng.Uniform(256));
      }
      auto query = ParseMessage(wire);
      if (!query.ok()) continue;
      auto answer = table_.Answer(*query, {"front", "back"}, rng.Next64());
      if (!answer.has_value()) continue;
      std::string udp = BuildUdpResponse(*answer, MaxUdpResponseSize(*query));
      auto parsed = ParseMessage(udp);
      ASSERT_TRUE(parsed.ok()) << "seed " << seed << " iteration " << i << ": " << parsed.status();
      EXPECT_EQ(parsed->header.id, query->header.id);
    }
  }
}

TEST(UpstreamsFromResolvConfTest, LoopbackResolversAreAskedFromTheHost) {
  auto ups = UpstreamsFromResolvConf(
      ParseResolvConf("nameserver 127.0.0.53\nnameserver 192.0.2.1\nnameserver 2001:db8::1\n"
                      "nameserver bogus\n"));
  ASSERT_EQ(ups.size(), 2u);
  EXPECT_TRUE(ups[0].from_host_namespace);
  EXPECT_FALSE(ups[1].from_host_namespace);
  EXPECT_EQ(Text(ups[1].address), "192.0.2.1");
  EXPECT_EQ(ups[1].port, 53);
}

TEST(ReadResolvConfTest, MissingFileSaysWhich) {
  auto conf = ReadResolvConf("/nonexistent/resolv.conf");
  ASSERT_FALSE(conf.ok());
  EXPECT_THAT(std::string(conf.status().message()),
              ::testing::HasSubstr("reading /nonexistent/resolv.conf"));
}

}  // namespace
}  // namespace swarm::agent::network::dns

#include "agent/network/dns_message.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/random.h"

namespace swarm::agent::network::dns {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Message Query(const std::string& name, uint16_t type = kTypeA, uint16_t id = 0x1234) {
  Message m;
  m.header.id = id;
  m.header.rd = true;
  m.questions.push_back({name, type, kClassIn});
  return m;
}

Message WithEdns(Message m, uint16_t size) {
  ResourceRecord opt;
  opt.type = kTypeOpt;
  opt.rclass = size;
  m.additionals.push_back(opt);
  return m;
}

TEST(DnsMessageTest, ParseMessage_RoundTripsAQuery) {
  std::string wire = BuildMessage(Query("Web.Example"));
  // Header, then 3 Web 7 Example 0, type, class.
  EXPECT_EQ(wire.size(), 12u + 1 + 3 + 1 + 7 + 1 + 4);
  auto m = ParseMessage(wire);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->header.id, 0x1234);
  EXPECT_TRUE(m->header.rd);
  EXPECT_FALSE(m->header.qr);
  ASSERT_EQ(m->questions.size(), 1u);
  EXPECT_EQ(m->questions[0].name, "Web.Example");
  EXPECT_EQ(m->questions[0].type, kTypeA);
  EXPECT_EQ(m->Opt(), nullptr);
}

TEST(DnsMessageTest, BuildMessage_AnswersPointToTheQuestionName) {
  Message r = ResponseTo(Query("web"), kRcodeNoError);
  r.answers.push_back(ARecord("web", {10, 0, 0, 2}, 600));
  r.answers.push_back(ARecord("WEB", {10, 0, 0, 3}, 600));
  std::string wire = BuildMessage(r);
  // 12 header + 9 question + 2 * (2 pointer + 10 fixed + 4 address).
  EXPECT_EQ(wire.size(), 12u + 9 + 2 * 16);
  auto m = ParseMessage(wire);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->header.qr);
  EXPECT_TRUE(m->header.ra);
  ASSERT_EQ(m->answers.size(), 2u);
  EXPECT_EQ(m->answers[0].name, "web");
  EXPECT_EQ(m->answers[0].ttl, 600u);
  EXPECT_EQ(m->answers[1].rdata, std::string("\x0a\x00\x00\x03", 4));
}

TEST(DnsMessageTest, PtrRecord_WritesTheTargetAsAName) {
  Message r = ResponseTo(Query("2.0.0.10.in-addr.arpa", kTypePtr), kRcodeNoError);
  r.answers.push_back(PtrRecord("2.0.0.10.in-addr.arpa", "web.1.abc", 0));
  auto m = ParseMessage(BuildMessage(r));
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->answers.size(), 1u);
  EXPECT_EQ(m->answers[0].rdata, std::string("\x03web\x01\x31\x03\x61\x62\x63\x00", 11));
}

TEST(DnsMessageTest, ParseMessage_FollowsBackwardPointers) {
  // A question "a.b" and an answer named by a pointer to offset 14 ("b").
  std::string wire("\x00\x01\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00", 12);
  wire += std::string(
      "\x01"
      "a\x01"
      "b\x00\x00\x01\x00\x01",
      9);
  wire += std::string("\xc0\x0e\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04\x01\x02\x03\x04", 16);
  auto m = ParseMessage(wire);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->answers.size(), 1u);
  EXPECT_EQ(m->answers[0].name, "b");
}

TEST(DnsMessageTest, ParseMessage_MalformedIsAnErrorThatSaysWhy) {
  std::string header("\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 12);
  struct Case {
    std::string wire;
    std::string why;
  } cases[] = {
      {"", "shorter than a header"},
      {header.substr(0, 11), "shorter than a header"},
      {header, "question runs past the end"},
      {header + std::string("\x03"
                            "ab",
                            3),
       "question runs past the end"},
      {header + std::string("\xc0\x0c\x00\x01\x00\x01", 6), "does not point backwards"},
      {header + std::string("\xc0\x20\x00\x01\x00\x01", 6), "does not point backwards"},
      {header + std::string("\x40"
                            "a\x00\x00\x01\x00\x01",
                            7),
       "unsupported label type"},
      {header + std::string("\x00\x00\x01\x00\x01"
                            "junk",
                            9),
       "trailing garbage"},
  };
  for (const Case& c : cases) {
    auto m = ParseMessage(c.wire);
    ASSERT_FALSE(m.ok()) << c.why;
    EXPECT_TRUE(absl::IsInvalidArgument(m.status()));
    EXPECT_THAT(m.status().message(), HasSubstr(c.why));
  }
  // A name of 300 bytes: 5 labels of 59.
  std::string longname = header;
  for (int i = 0; i < 5; ++i) longname += char(59) + std::string(59, 'x');
  longname += std::string("\x00\x00\x01\x00\x01", 5);
  EXPECT_THAT(ParseMessage(longname).status().message(), HasSubstr("longer than 255"));
}

TEST(DnsMessageTest, FormErrResponse_KeepsTheIdAndDropsResponsesAndRunts) {
  std::string garbage("\xab\xcd\x01\x00\x00\x05\x00\x00\x00\x00\x00\x00\xff", 13);
  auto r = FormErrResponse(garbage);
  ASSERT_TRUE(r.has_value());
  auto m = ParseMessage(*r);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->header.id, 0xabcd);
  EXPECT_TRUE(m->header.qr);
  EXPECT_EQ(m->header.rcode, kRcodeFormErr);
  EXPECT_FALSE(FormErrResponse(garbage.substr(0, 11)).has_value());
  garbage[2] = '\x81';  // QR: a response
  EXPECT_FALSE(FormErrResponse(garbage).has_value());
}

TEST(DnsMessageTest, BuildUdpResponse_TruncatesTo512WithoutEdns) {
  Message q = Query("tasks.web");
  Message r = ResponseTo(q, kRcodeNoError);
  for (unsigned char i = 1; i <= 60; ++i)
    r.answers.push_back(ARecord("tasks.web", {10, 0, 1, i}, 0));
  EXPECT_GT(BuildMessage(r).size(), 512u);
  EXPECT_EQ(MaxUdpResponseSize(q), 512u);
  std::string udp = BuildUdpResponse(r, MaxUdpResponseSize(q));
  EXPECT_LE(udp.size(), 512u);
  auto m = ParseMessage(udp);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->header.tc);
  EXPECT_GT(m->answers.size(), 0u);
  EXPECT_LT(m->answers.size(), 60u);

  // With EDNS (4096), the whole answer fits and keeps its OPT record.
  Message qe = WithEdns(q, 4096);
  EXPECT_EQ(MaxUdpResponseSize(qe), 4096u);
  Message re = ResponseTo(qe, kRcodeNoError);
  re.answers = r.answers;
  auto me = ParseMessage(BuildUdpResponse(re, MaxUdpResponseSize(qe)));
  ASSERT_TRUE(me.ok());
  EXPECT_FALSE(me->header.tc);
  EXPECT_EQ(me->answers.size(), 60u);
  EXPECT_NE(me->Opt(), nullptr);
  // Advertised sizes are clamped.
  EXPECT_EQ(MaxUdpResponseSize(WithEdns(q, 100)), 512u);
  EXPECT_EQ(MaxUdpResponseSize(WithEdns(q, 65000)), kMaxUdpSizeWithEdns);
}

TEST(DnsMessageTest, CanonicalName_LowersAndDropsTheTrailingDot) {
  EXPECT_EQ(CanonicalName("Tasks.WEB."), "tasks.web");
  EXPECT_EQ(CanonicalName(""), "");
}

TEST(DnsMessageTest, ResolvConf_KeepsSearchDomainsAndPointsAt127_0_0_11) {
  ResolvConf host = ParseResolvConf(
      "# generated\nnameserver 192.0.2.53\n; old\nnameserver 127.0.0.53\n"
      "domain first.example\nsearch corp.example  lab.example\noptions ndots:5 edns0\n");
  EXPECT_THAT(host.nameservers, ElementsAre("192.0.2.53", "127.0.0.53"));
  EXPECT_THAT(host.search, ElementsAre("corp.example", "lab.example"));
  EXPECT_THAT(host.options, ElementsAre("ndots:5", "edns0"));
  EXPECT_EQ(ContainerResolvConf(host),
            "nameserver 127.0.0.11\nsearch corp.example lab.example\noptions ndots:0\n");
  EXPECT_EQ(ContainerResolvConf(ResolvConf{}), "nameserver 127.0.0.11\noptions ndots:0\n");
  // A service's --dns-search and --dns-option replace the host's and the default.
  ResolvConf service;
  service.search = {"svc.example"};
  service.options = {"ndots:2", "timeout:1"};
  EXPECT_EQ(ContainerResolvConf(host, service),
            "nameserver 127.0.0.11\nsearch svc.example\noptions ndots:2 timeout:1\n");
  service.options = {"timeout:1"};
  EXPECT_EQ(ContainerResolvConf(host, service),
            "nameserver 127.0.0.11\nsearch svc.example\noptions timeout:1 ndots:0\n");
}

// Fuzz-style: random bytes and mutations of valid messages never crash the parser, and
// whatever parses builds again and parses to the same sections.
TEST(DnsMessageTest, ParseMessage_RandomAndMutatedInputNeverCrash) {
  Message r = ResponseTo(WithEdns(Query("tasks.web.example"), 1232), kRcodeNoError);
  for (unsigned char i = 1; i <= 5; ++i)
    r.answers.push_back(ARecord("tasks.web.example", {10, 0, 0, i}, 0));
  r.answers.push_back(PtrRecord("x.in-addr.arpa", "web.1", 0));
  const std::string seeds[] = {BuildMessage(Query("web")), BuildMessage(r),
                               BuildMessage(Query("2.0.0.10.in-addr.arpa", kTypePtr))};
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SeededRandom rng(seed);
    for (int iteration = 0; iteration < 2000; ++iteration) {
      std::string wire;
      if (iteration % 4 == 0) {
        wire.resize(rng.Uniform(600));
        rng.Fill(wire.data(), wire.size());
      } else {
        wire = seeds[rng.Uniform(3)];
        const int mutations = 1 + rng.Uniform(8);
        for (int k = 0; k < mutations; ++k) {
          switch (rng.Uniform(4)) {
            case 0:  // flip a byte
              wire[rng.Uniform(wire.size())] = static_cast<char>(rng.Uniform(256));
              break;
            case 1:  // truncate
              wire.resize(rng.Uniform(wire.size() + 1));
              break;
            case 2:  // insert a byte
              wire.insert(wire.begin() + rng.Uniform(wire.size() + 1),
                          static_cast<char>(rng.Uniform(256)));
              break;
            case 3:  // a compression pointer somewhere
              if (wire.size() >= 2) {
                size_t at = rng.Uniform(wire.size() - 1);
                wire[at] = static_cast<char>(0xC0 | rng.Uniform(4));
                wire[at + 1] = static_cast<char>(rng.Uniform(256));
              }
              break;
          }
          if (wire.empty()) break;
        }
      }
      absl::StatusOr<Message> m = ParseMessage(wire);
      if (!m.ok()) {
        std::optional<std::string> formerr = FormErrResponse(wire);
        if (formerr.has_value()) {
          ASSERT_TRUE(ParseMessage(*formerr).ok());
        }
        continue;
      }
      auto again = ParseMessage(BuildMessage(*m));
      ASSERT_TRUE(again.ok()) << "seed " << seed << " iteration " << iteration << ": "
                              << again.status();
      EXPECT_EQ(again->questions.size(), m->questions.size());
      EXPECT_EQ(again->answers.size(), m->answers.size());
      EXPECT_EQ(again->additionals.size(), m->additionals.size());
      auto udp = ParseMessage(BuildUdpResponse(*m, 512));
      ASSERT_TRUE(udp.ok()) << udp.status();
      EXPECT_LE(udp->answers.size(), m->answers.size());
    }
  }
}

}  // namespace
}  // namespace swarm::agent::network::dns

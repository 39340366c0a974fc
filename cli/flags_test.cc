#include "cli/flags.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

namespace swarm::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The message of a failed parse, or "" when it did not fail.
template <typename T>
std::string Error(const absl::StatusOr<T>& r) {
  return r.ok() ? "" : std::string(r.status().message());
}

EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(ParseDuration, GoSyntax) {
  EXPECT_EQ(*ParseDuration("d", "10s"), absl::Seconds(10));
  EXPECT_EQ(*ParseDuration("d", "1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseDuration("d", "500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseDuration("d", "1.5h"), absl::Minutes(90));
  EXPECT_EQ(*ParseDuration("d", "2us"), absl::Microseconds(2));
  EXPECT_EQ(*ParseDuration("d", "2\xc2\xb5s"), absl::Microseconds(2));
  EXPECT_EQ(*ParseDuration("d", "3ns"), absl::Nanoseconds(3));
  EXPECT_EQ(*ParseDuration("d", "0"), absl::ZeroDuration());
  EXPECT_EQ(*ParseDuration("d", "+5s"), absl::Seconds(5));
  EXPECT_EQ(*ParseDuration("d", ".5s"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseDuration("d", "1h2m3s4ms"),
            absl::Hours(1) + absl::Minutes(2) + absl::Seconds(3) + absl::Milliseconds(4));
}

TEST(ParseDuration, RejectsWhatGoRejects) {
  EXPECT_EQ(Error(ParseDuration("restart-delay", "10")),
            "invalid restart-delay \"10\": the unit is missing (ns, us, ms, s, m or h) (expected "
            "a duration such as 10s, 1m30s, 500ms or 2h)");
  EXPECT_THAT(Error(ParseDuration("d", "1x")), HasSubstr("unknown unit \"x\""));
  EXPECT_THAT(Error(ParseDuration("d", "")), HasSubstr("it is empty"));
  EXPECT_THAT(Error(ParseDuration("d", "s")), HasSubstr("must start with a number"));
  EXPECT_THAT(Error(ParseDuration("d", ".s")), HasSubstr("a number is missing"));
  EXPECT_THAT(Error(ParseDuration("d", "-1s")), HasSubstr("must not be negative"));
  EXPECT_THAT(Error(ParseDuration("d", "99999999999h")), HasSubstr("too large"));
  EXPECT_THAT(Error(ParseDuration("d", "1d")), HasSubstr("unknown unit \"d\""));
}

TEST(FormatGoDuration, MatchesGo) {
  EXPECT_EQ(FormatGoDuration(absl::ZeroDuration()), "0s");
  EXPECT_EQ(FormatGoDuration(absl::Minutes(90)), "1h30m0s");
  EXPECT_EQ(FormatGoDuration(absl::Milliseconds(500)), "500ms");
  EXPECT_EQ(FormatGoDuration(absl::Milliseconds(1500)), "1.5s");
  EXPECT_EQ(FormatGoDuration(absl::Hours(2160)), "2160h0m0s");
  EXPECT_EQ(FormatGoDuration(absl::Nanoseconds(7)), "7ns");
}

TEST(ParseBytes, DockerUnits) {
  EXPECT_EQ(*ParseBytes("m", "1024"), 1024);
  EXPECT_EQ(*ParseBytes("m", "512k"), 512 * 1024);
  EXPECT_EQ(*ParseBytes("m", "50M"), 50 * 1024 * 1024);
  EXPECT_EQ(*ParseBytes("m", "1.5G"), 1536LL * 1024 * 1024);
  EXPECT_EQ(*ParseBytes("m", "1.5gb"), 1536LL * 1024 * 1024);
  EXPECT_EQ(*ParseBytes("m", "2GiB"), 2LL * 1024 * 1024 * 1024);
  EXPECT_EQ(*ParseBytes("m", "100b"), 100);
  EXPECT_EQ(*ParseBytes("m", "1 t"), 1LL << 40);
}

TEST(ParseBytes, Errors) {
  EXPECT_EQ(Error(ParseBytes("limit-memory", "12x")),
            "invalid limit-memory \"12x\": unknown unit \"x\" (expected a number of bytes with an "
            "optional unit b, k, m, g, t or p, such as 512k, 50M or 1.5G)");
  EXPECT_THAT(Error(ParseBytes("m", "")), HasSubstr("must start with a number"));
  EXPECT_THAT(Error(ParseBytes("m", "-1m")), HasSubstr("must start with a number"));
  EXPECT_THAT(Error(ParseBytes("m", "1.")), HasSubstr("digits must follow"));
  EXPECT_THAT(Error(ParseBytes("m", "99999999p")), HasSubstr("too large"));
}

TEST(ParseNanoCpus, Decimal) {
  EXPECT_EQ(*ParseNanoCpus("c", "0.5"), 500'000'000);
  EXPECT_EQ(*ParseNanoCpus("c", "2"), 2'000'000'000);
  EXPECT_EQ(*ParseNanoCpus("c", "1.25"), 1'250'000'000);
  EXPECT_EQ(*ParseNanoCpus("c", ".1"), 100'000'000);
  EXPECT_EQ(*ParseNanoCpus("c", "0.000000001"), 1);
  EXPECT_EQ(*ParseNanoCpus("c", "1.0000000000"), 1'000'000'000);
  EXPECT_THAT(Error(ParseNanoCpus("limit-cpu", "0.0000000001")), HasSubstr("too precise"));
  EXPECT_THAT(Error(ParseNanoCpus("limit-cpu", "abc")), HasSubstr("not a number"));
  EXPECT_THAT(Error(ParseNanoCpus("limit-cpu", "-1")), HasSubstr("negative"));
  EXPECT_THAT(Error(ParseNanoCpus("limit-cpu", ".")), HasSubstr("not a number"));
  EXPECT_THAT(Error(ParseNanoCpus("limit-cpu", "")), HasSubstr("not a number"));
}

TEST(ParseScalars, IntegersRatiosBooleansModes) {
  EXPECT_EQ(*ParseUint("replicas", "3"), 3u);
  EXPECT_THAT(Error(ParseUint("replicas", "-3")), HasSubstr("invalid replicas \"-3\""));
  EXPECT_THAT(Error(ParseUint("replicas", "3x")), HasSubstr("non-negative whole number"));
  EXPECT_THAT(Error(ParseUint("replicas", "99999999999999999999999")), HasSubstr("too large"));
  EXPECT_EQ(*ParseInt("n", "-1"), -1);
  EXPECT_FALSE(ParseInt("n", "-").ok());
  EXPECT_FLOAT_EQ(*ParseRatio("r", "0.2"), 0.2f);
  EXPECT_THAT(Error(ParseRatio("r", "1.5")), HasSubstr("out of range"));
  EXPECT_THAT(Error(ParseRatio("r", "nan")), HasSubstr("not a number"));
  EXPECT_TRUE(*ParseBool("b", "true"));
  EXPECT_TRUE(*ParseBool("b", "1"));
  EXPECT_FALSE(*ParseBool("b", "False"));
  EXPECT_FALSE(ParseBool("b", "yes").ok());
  EXPECT_EQ(*ParseFileMode("mode", "0444"), 0444u);
  EXPECT_EQ(*ParseFileMode("mode", "0o400"), 0400u);
  EXPECT_EQ(*ParseFileMode("mode", "292"), 0444u);
  EXPECT_EQ(*ParseFileMode("mode", "0x124"), 0444u);
  EXPECT_FALSE(ParseFileMode("mode", "0999").ok());
  EXPECT_FALSE(ParseFileMode("mode", "").ok());
  EXPECT_FALSE(ParseFileMode("mode", "077777").ok());
}

TEST(ParseEnums, NamesAndErrors) {
  EXPECT_EQ(*ParseRestartCondition("on-failure"), api::RESTART_CONDITION_ON_FAILURE);
  EXPECT_EQ(*ParseRestartCondition("none"), api::RESTART_CONDITION_NONE);
  EXPECT_EQ(Error(ParseRestartCondition("always")),
            "invalid restart-condition \"always\": unknown condition (expected none, on-failure "
            "or any)");
  EXPECT_EQ(*ParseFailureAction("a", "rollback", true), api::UPDATE_FAILURE_ACTION_ROLLBACK);
  EXPECT_THAT(Error(ParseFailureAction("rollback-failure-action", "rollback", false)),
              HasSubstr("(expected pause or continue)"));
  EXPECT_EQ(*ParseUpdateOrder("o", "start-first"), api::UPDATE_ORDER_START_FIRST);
  EXPECT_FALSE(ParseUpdateOrder("o", "first").ok());
  EXPECT_EQ(*ParseAvailability("drain"), api::NODE_AVAILABILITY_DRAIN);
  EXPECT_EQ(*ParseAvailability("Pause"), api::NODE_AVAILABILITY_PAUSE);
  EXPECT_THAT(Error(ParseAvailability("off")), HasSubstr("active, pause or drain"));
  EXPECT_EQ(*ParseRole("manager"), api::NODE_ROLE_MANAGER);
  EXPECT_FALSE(ParseRole("boss").ok());
  EXPECT_EQ(*ParseEndpointMode("dnsrr"), api::RESOLUTION_MODE_DNSRR);
  EXPECT_FALSE(ParseEndpointMode("rr").ok());
}

TEST(ParsePublish, ShortForms) {
  auto ports = ParsePublish("8080:80");
  ASSERT_TRUE(ports.ok());
  ASSERT_EQ(ports->size(), 1u);
  EXPECT_EQ((*ports)[0].published_port(), 8080u);
  EXPECT_EQ((*ports)[0].target_port(), 80u);
  EXPECT_EQ((*ports)[0].protocol(), api::PORT_PROTOCOL_TCP);
  EXPECT_EQ((*ports)[0].publish_mode(), api::PUBLISH_MODE_INGRESS);

  ports = ParsePublish("8080:80/udp");
  ASSERT_TRUE(ports.ok());
  EXPECT_EQ((*ports)[0].protocol(), api::PORT_PROTOCOL_UDP);

  ports = ParsePublish("80");
  ASSERT_TRUE(ports.ok());
  EXPECT_EQ((*ports)[0].published_port(), 0u);  // the cluster picks one
  EXPECT_EQ((*ports)[0].target_port(), 80u);

  ports = ParsePublish("53/SCTP");
  ASSERT_TRUE(ports.ok());
  EXPECT_EQ((*ports)[0].protocol(), api::PORT_PROTOCOL_SCTP);

  ports = ParsePublish("8080-8082:80-82");
  ASSERT_TRUE(ports.ok());
  ASSERT_EQ(ports->size(), 3u);
  EXPECT_EQ((*ports)[2].published_port(), 8082u);
  EXPECT_EQ((*ports)[2].target_port(), 82u);
}

TEST(ParsePublish, LongForm) {
  auto ports = ParsePublish("published=8080,target=80,protocol=udp,mode=host");
  ASSERT_TRUE(ports.ok()) << ports.status();
  ASSERT_EQ(ports->size(), 1u);
  EXPECT_EQ((*ports)[0].published_port(), 8080u);
  EXPECT_EQ((*ports)[0].target_port(), 80u);
  EXPECT_EQ((*ports)[0].protocol(), api::PORT_PROTOCOL_UDP);
  EXPECT_EQ((*ports)[0].publish_mode(), api::PUBLISH_MODE_HOST);

  ports = ParsePublish("target=443");
  ASSERT_TRUE(ports.ok());
  EXPECT_EQ((*ports)[0].publish_mode(), api::PUBLISH_MODE_INGRESS);
  EXPECT_EQ((*ports)[0].published_port(), 0u);
}

TEST(ParsePublish, ErrorsSayWhatAndTheForm) {
  EXPECT_EQ(Error(ParsePublish("80:x")),
            "invalid publish \"80:x\": the target port must be a number (expected "
            "[published:]target[/protocol] or published=,target=,protocol=,mode=)");
  EXPECT_THAT(Error(ParsePublish("x:80")), HasSubstr("the published port must be a number"));
  EXPECT_THAT(Error(ParsePublish("80:70000")), HasSubstr("from 1 to 65535"));
  EXPECT_THAT(Error(ParsePublish("80/icmp")), HasSubstr("unknown protocol \"icmp\""));
  EXPECT_THAT(Error(ParsePublish("1.2.3.4:80:80")), HasSubstr("host address is not supported"));
  EXPECT_THAT(Error(ParsePublish("80-81:80")), HasSubstr("same length"));
  EXPECT_THAT(Error(ParsePublish(":80")), HasSubstr("published port is missing"));
  EXPECT_THAT(Error(ParsePublish("80:")), HasSubstr("target port is missing"));
  EXPECT_THAT(Error(ParsePublish("")), HasSubstr("it is empty"));
  EXPECT_THAT(Error(ParsePublish("published=80")), HasSubstr("target port is missing"));
  EXPECT_THAT(Error(ParsePublish("target=80,mode=bridge")), HasSubstr("unknown mode \"bridge\""));
  EXPECT_THAT(Error(ParsePublish("target=80,foo=1")), HasSubstr("unknown field \"foo\""));
  EXPECT_THAT(Error(ParsePublish("target=80,published")), HasSubstr("is not key=value"));
  EXPECT_THAT(Error(ParsePublish("target=x")), HasSubstr("the target port must be a number"));
}

TEST(ParseMount, BindVolumeTmpfs) {
  auto m = ParseMount("type=bind,source=/a,target=/b,readonly");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->type(), api::MOUNT_TYPE_BIND);
  EXPECT_EQ(m->source(), "/a");
  EXPECT_EQ(m->target(), "/b");
  EXPECT_TRUE(m->readonly());

  m = ParseMount(
      "type=volume,src=data,dst=/var/lib/data,volume-driver=local,volume-opt=o=1,"
      "volume-label=x=y,volume-nocopy");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->type(), api::MOUNT_TYPE_VOLUME);
  EXPECT_EQ(m->source(), "data");
  EXPECT_EQ(m->volume_options().driver_config().name(), "local");
  EXPECT_EQ(m->volume_options().driver_config().options().at("o"), "1");
  EXPECT_EQ(m->volume_options().labels().at("x"), "y");
  EXPECT_TRUE(m->volume_options().no_copy());
  EXPECT_FALSE(m->readonly());

  m = ParseMount("target=/cache");  // volume is the default type; an anonymous volume
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->type(), api::MOUNT_TYPE_VOLUME);

  m = ParseMount("type=tmpfs,destination=/tmp,tmpfs-size=64m,tmpfs-mode=1770,ro=false");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->type(), api::MOUNT_TYPE_TMPFS);
  EXPECT_EQ(m->tmpfs_options().size_bytes(), 64 * 1024 * 1024);
  EXPECT_EQ(m->tmpfs_options().mode(), 01770u);

  m = ParseMount("type=bind,source=/a,target=/b,bind-propagation=rshared,bind-nonrecursive");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->bind_options().propagation(), api::MOUNT_PROPAGATION_RSHARED);
  EXPECT_TRUE(m->bind_options().non_recursive());

  m = ParseMount("\"type=bind\",\"source=/a,b\",target=/c");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->source(), "/a,b");
}

TEST(ParseMount, Errors) {
  EXPECT_THAT(Error(ParseMount("type=bind,source=/a")), HasSubstr("the target is missing"));
  EXPECT_THAT(Error(ParseMount("type=bind,target=/b")), HasSubstr("a bind mount needs a source"));
  EXPECT_THAT(Error(ParseMount("type=bind,source=rel,target=/b")), HasSubstr("absolute path"));
  EXPECT_THAT(Error(ParseMount("type=nfs,target=/b")), HasSubstr("unknown type \"nfs\""));
  EXPECT_THAT(Error(ParseMount("target=b")), HasSubstr("the target must be an absolute path"));
  EXPECT_THAT(Error(ParseMount("type=tmpfs,source=/x,target=/b")), HasSubstr("no source"));
  EXPECT_THAT(Error(ParseMount("type=bind,source=/a,target=/b,volume-nocopy")),
              HasSubstr("volume-* options do not apply to a bind mount"));
  EXPECT_THAT(Error(ParseMount("type=volume,target=/b,bind-propagation=shared")),
              HasSubstr("bind-* options do not apply"));
  EXPECT_THAT(Error(ParseMount("target=/b,tmpfs-size=1m")), HasSubstr("tmpfs-* options"));
  EXPECT_THAT(Error(ParseMount("target=/b,colour=red")), HasSubstr("unknown field \"colour\""));
  EXPECT_THAT(Error(ParseMount("target=/b,readonly=maybe")), HasSubstr("true or false"));
  EXPECT_THAT(Error(ParseMount("target=/b,bogus")), HasSubstr("is not key=value"));
  EXPECT_THAT(Error(ParseMount("type=tmpfs,target=/b,tmpfs-size=lots")),
              HasSubstr("is not a size"));
  EXPECT_THAT(Error(ParseMount("\"type=bind")), HasSubstr("quote is not closed"));
  EXPECT_THAT(Error(ParseMount("")), HasSubstr("(expected type=bind|volume|tmpfs"));
}

TEST(ParseEnv, ValuesAndLookups) {
  EnvLookup env = FakeEnv({{"HOME", "/root"}});
  EXPECT_EQ(*ParseEnv("A=1", env), "A=1");
  EXPECT_EQ(*ParseEnv("A=", env), "A=");
  EXPECT_EQ(*ParseEnv("A=b=c", env), "A=b=c");
  EXPECT_EQ(*ParseEnv("HOME", env), "HOME=/root");
  EXPECT_EQ(*ParseEnv("UNSET", env), "UNSET");
  EXPECT_EQ(*ParseEnv("UNSET", nullptr), "UNSET");
  EXPECT_THAT(Error(ParseEnv("=1", env)), HasSubstr("the variable name is missing"));
  EXPECT_THAT(Error(ParseEnv("A B=1", env)), HasSubstr("whitespace"));
  EXPECT_EQ(EnvKey("A=1"), "A");
  EXPECT_EQ(EnvKey("A"), "A");
}

TEST(ParseEnvFile, LinesCommentsAndLookups) {
  auto entries = ParseEnvFile("app.env",
                              "# settings\n"
                              "A=1\n"
                              "\n"
                              "  B=two words\r\n"
                              "HOME\n"
                              "UNSET\n",
                              FakeEnv({{"HOME", "/root"}}));
  ASSERT_TRUE(entries.ok()) << entries.status();
  EXPECT_THAT(*entries, ElementsAre("A=1", "B=two words", "HOME=/root"));
  EXPECT_THAT(Error(ParseEnvFile("app.env", "A=1\nBAD KEY=2\n", nullptr)),
              HasSubstr("line 2: \"BAD KEY\" contains whitespace"));
  EXPECT_THAT(Error(ParseEnvFile("app.env", "=2\n", nullptr)), HasSubstr("has no variable name"));
}

TEST(ParseLabel, KeyValueAndBareKey) {
  EXPECT_EQ(*ParseLabel("label", "a=b"), std::make_pair(std::string("a"), std::string("b")));
  EXPECT_EQ(*ParseLabel("label", "a=b=c"), std::make_pair(std::string("a"), std::string("b=c")));
  EXPECT_EQ(*ParseLabel("label", "a"), std::make_pair(std::string("a"), std::string("")));
  EXPECT_THAT(Error(ParseLabel("label", "=b")), HasSubstr("the key is missing"));
  EXPECT_TRUE(ParseKeyValue("sysctl", "net.core.somaxconn=1024").ok());
  EXPECT_THAT(Error(ParseKeyValue("sysctl", "net.core.somaxconn")), HasSubstr("'=' is missing"));
}

TEST(ParseSecretReference, ShortAndLongForms) {
  auto ref = ParseSecretReference("db_password");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->secret_name(), "db_password");
  EXPECT_EQ(ref->secret_id(), "");
  EXPECT_EQ(ref->file().name(), "db_password");
  EXPECT_EQ(ref->file().uid(), "0");
  EXPECT_EQ(ref->file().gid(), "0");
  EXPECT_EQ(ref->file().mode(), 0444u);

  ref = ParseSecretReference("source=db,target=pw.txt,uid=1000,gid=1001,mode=0400");
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->secret_name(), "db");
  EXPECT_EQ(ref->file().name(), "pw.txt");
  EXPECT_EQ(ref->file().uid(), "1000");
  EXPECT_EQ(ref->file().gid(), "1001");
  EXPECT_EQ(ref->file().mode(), 0400u);

  EXPECT_THAT(Error(ParseSecretReference("target=x")), HasSubstr("source (the name) is missing"));
  EXPECT_THAT(Error(ParseSecretReference("src=a,mode=rw")), HasSubstr("mode must be a number"));
  EXPECT_THAT(Error(ParseSecretReference("src=a,uid=root")), HasSubstr("uid must be a number"));
  EXPECT_THAT(Error(ParseSecretReference("src=a,owner=me")), HasSubstr("unknown field \"owner\""));
  EXPECT_THAT(Error(ParseSecretReference("")), HasSubstr("the name is missing"));
}

TEST(ParseConfigReference, TargetIsAbsolute) {
  auto ref = ParseConfigReference("nginx.conf");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->config_name(), "nginx.conf");
  EXPECT_EQ(ref->file().name(), "/nginx.conf");
  ref = ParseConfigReference("source=site,target=/etc/nginx/conf.d/site.conf,mode=0440");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->file().name(), "/etc/nginx/conf.d/site.conf");
  EXPECT_EQ(ref->file().mode(), 0440u);
  ref = ParseConfigReference("source=site,target=etc/site.conf");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->file().name(), "/etc/site.conf");
  EXPECT_THAT(Error(ParseConfigReference("target=/x")), HasSubstr("invalid config"));
}

TEST(ParseOthers, NetworksPreferencesUlimitsHostsCapabilities) {
  auto net = ParseNetworkAttachment("backend");
  ASSERT_TRUE(net.ok());
  EXPECT_EQ(net->target(), "backend");
  net = ParseNetworkAttachment("name=backend,alias=db,alias=pg,driver-opt=mtu=1400");
  ASSERT_TRUE(net.ok()) << net.status();
  EXPECT_THAT(net->aliases(), ElementsAre("db", "pg"));
  EXPECT_EQ(net->driver_attachment_opts().at("mtu"), "1400");
  EXPECT_THAT(Error(ParseNetworkAttachment("alias=db")), HasSubstr("the name is missing"));
  EXPECT_THAT(Error(ParseNetworkAttachment("a,b")), HasSubstr("no ','"));

  auto pref = ParsePlacementPreference("spread=node.labels.dc");
  ASSERT_TRUE(pref.ok());
  EXPECT_EQ(pref->spread().spread_descriptor(), "node.labels.dc");
  EXPECT_THAT(Error(ParsePlacementPreference("pack=x")), HasSubstr("unknown strategy"));
  EXPECT_THAT(Error(ParsePlacementPreference("spread=")), HasSubstr("attribute is missing"));

  auto ulimit = ParseUlimit("nofile=1024:2048");
  ASSERT_TRUE(ulimit.ok());
  EXPECT_EQ(ulimit->name(), "nofile");
  EXPECT_EQ(ulimit->soft(), 1024);
  EXPECT_EQ(ulimit->hard(), 2048);
  EXPECT_EQ(ParseUlimit("nproc=10")->hard(), 10);
  EXPECT_THAT(Error(ParseUlimit("files=1")), HasSubstr("unknown limit"));
  EXPECT_THAT(Error(ParseUlimit("nofile=2:1")), HasSubstr("above the hard limit"));
  EXPECT_THAT(Error(ParseUlimit("nofile=x")), HasSubstr("soft limit is not a number"));

  EXPECT_EQ(*ParseExtraHost("db:10.0.0.5"), "10.0.0.5 db");
  EXPECT_EQ(*ParseExtraHost("db=10.0.0.5"), "10.0.0.5 db");
  EXPECT_EQ(*ParseExtraHost("v6:fe80::1"), "fe80::1 v6");
  EXPECT_THAT(Error(ParseExtraHost("db:nope")), HasSubstr("is not an IP address"));
  EXPECT_THAT(Error(ParseExtraHost("db")), HasSubstr("':' is missing"));

  EXPECT_EQ(NormalizeCapability("net_admin"), "CAP_NET_ADMIN");
  EXPECT_EQ(NormalizeCapability("CAP_SYS_TIME"), "CAP_SYS_TIME");
  EXPECT_EQ(NormalizeCapability("all"), "ALL");
}

TEST(ShellSplit, QuotesAndEscapes) {
  EXPECT_THAT(*ShellSplit("a", "sh -c 'echo hello world'"),
              ElementsAre("sh", "-c", "echo hello world"));
  EXPECT_THAT(*ShellSplit("a", R"(echo "a \"b\"" c\ d '')"),
              ElementsAre("echo", "a \"b\"", "c d", ""));
  EXPECT_TRUE(ShellSplit("a", "   ")->empty());
  EXPECT_THAT(Error(ShellSplit("entrypoint", "echo 'oops")), HasSubstr("quote is not closed"));
  EXPECT_THAT(Error(ShellSplit("entrypoint", "echo \\")), HasSubstr("lone backslash"));
}

}  // namespace
}  // namespace swarm::cli

namespace swarm::cli {
namespace {

// Hostile input gets an error or a value, never a crash.
TEST(Parsers, NeverCrashOnHostileInput) {
  const std::vector<std::string> inputs = {"",
                                           "=",
                                           ",",
                                           "\"",
                                           "\\",
                                           "::",
                                           ":",
                                           "-",
                                           "/",
                                           "=,=",
                                           "a=b=c,d",
                                           "\"\"",
                                           "999999999999999999999999",
                                           "-999999999999999999999",
                                           "1e400",
                                           "nan",
                                           "inf",
                                           "0x",
                                           "0o",
                                           "\xff\xfe\xfd",
                                           "..",
                                           "1..2",
                                           "80:80:80:80",
                                           "80-",
                                           "-80",
                                           "65535-1:1-65535",
                                           "1-65535",
                                           "type=",
                                           "target=,target=",
                                           std::string(10000, 'a'),
                                           std::string(1000, ',') + "=",
                                           "\0"};
  for (const std::string& in : inputs) {
    (void)ParseDuration("d", in);
    (void)ParseBytes("b", in);
    (void)ParseNanoCpus("c", in);
    (void)ParseUint("u", in);
    (void)ParseInt("i", in);
    (void)ParseRatio("r", in);
    (void)ParseBool("b", in);
    (void)ParseFileMode("m", in);
    (void)ParsePublish(in);
    (void)ParseMount(in);
    (void)ParseEnv(in, nullptr);
    (void)ParseEnvFile("f", in, nullptr);
    (void)ParseLabel("l", in);
    (void)ParseKeyValue("k", in);
    (void)ParseSecretReference(in);
    (void)ParseConfigReference(in);
    (void)ParseNetworkAttachment(in);
    (void)ParsePlacementPreference(in);
    (void)ParseUlimit(in);
    (void)ParseExtraHost(in);
    (void)ShellSplit("s", in);
  }
  // A range as wide as the port space expands to every port, and no more.
  auto all = ParsePublish("1-65535");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 65535u);
}

}  // namespace
}  // namespace swarm::cli

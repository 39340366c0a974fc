#include "scheduler/constraint.h"

#include "gtest/gtest.h"

namespace swarm::scheduler {
namespace {

api::Node TestNode() {
  api::Node n;
  n.set_id("node1abc");
  n.set_role(api::NODE_ROLE_MANAGER);
  n.mutable_description()->set_hostname("Host-A");
  n.mutable_description()->mutable_platform()->set_os("linux");
  n.mutable_description()->mutable_platform()->set_architecture("x86_64");
  (*n.mutable_spec()->mutable_annotations()->mutable_labels())["zone"] = "East";
  (*n.mutable_description()->mutable_engine()->mutable_labels())["disk"] = "ssd";
  n.mutable_status()->set_addr("10.1.2.3");
  return n;
}

bool Match(const std::string& expr, const api::Node& node = TestNode()) {
  auto c = Constraint::Parse(expr);
  EXPECT_TRUE(c.ok()) << expr << ": " << c.status();
  return c.ok() && c->Matches(node);
}

std::string ParseError(const std::string& expr) {
  auto c = Constraint::Parse(expr);
  EXPECT_FALSE(c.ok()) << expr << " parsed";
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(c.status().message());
}

TEST(ConstraintTest, Parse_AcceptsEveryKeyAndBothOperators) {
  auto c = Constraint::Parse("  node.labels.zone  ==  east ");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->key().kind, AttributeKey::Kind::kNodeLabel);
  EXPECT_EQ(c->key().label, "zone");
  EXPECT_EQ(c->op(), Constraint::Op::kEqual);
  EXPECT_EQ(c->value(), "east");
  EXPECT_EQ(c->ToString(), "node.labels.zone==east");

  c = Constraint::Parse("engine.labels.disk!=hdd");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->key().kind, AttributeKey::Kind::kEngineLabel);
  EXPECT_EQ(c->op(), Constraint::Op::kNotEqual);
  for (const char* e : {"node.id==x", "node.hostname==h", "node.role==worker", "NODE.ROLE==Manager",
                        "node.platform.os==linux", "node.platform.arch==arm64", "node.ip==10.0.0.1",
                        "node.ip!=10.0.0.0/8", "node.ip==fe80::1/64"}) {
    EXPECT_TRUE(Constraint::Parse(e).ok()) << e;
  }
}

TEST(ConstraintTest, Parse_RefusesMalformedExpressionsSayingWhy) {
  EXPECT_NE(ParseError("node.labels.zone=east").find("has no operator"), std::string::npos);
  EXPECT_NE(ParseError("==east").find("no key"), std::string::npos);
  EXPECT_NE(ParseError("node.labels.zone==").find("no value"), std::string::npos);
  EXPECT_NE(ParseError("node.colour==red").find("unknown node attribute \"node.colour\""),
            std::string::npos);
  EXPECT_NE(ParseError("node.labels.==x").find("names no label"), std::string::npos);
  EXPECT_NE(ParseError("node.labels.a b==x").find("label name \"a b\" is invalid"),
            std::string::npos);
  EXPECT_NE(ParseError("node.labels.a==b==c").find("contains '='"), std::string::npos);
  EXPECT_NE(ParseError("node.labels.a==<b").find("contains '<'"), std::string::npos);
  EXPECT_NE(ParseError("node.role==boss").find("manager or worker"), std::string::npos);
  EXPECT_NE(ParseError("node.ip==10.0.0.300").find("IP address or a CIDR"), std::string::npos);
  EXPECT_NE(ParseError("node.ip==10.0.0.0/33").find("IP address or a CIDR"), std::string::npos);
}

TEST(ConstraintTest, ParseAll_StopsAtTheFirstBadExpression) {
  auto all = Constraint::ParseAll({"node.role==manager", "node.labels.zone==east"});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 2u);
  auto bad = Constraint::ParseAll({"node.role==manager", "bogus"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("\"bogus\""), absl::string_view::npos);
}

TEST(ConstraintTest, Matches_ComparesValuesCaseInsensitively) {
  EXPECT_TRUE(Match("node.id==node1abc"));
  EXPECT_FALSE(Match("node.id==node1"));
  EXPECT_TRUE(Match("node.hostname==host-a"));
  EXPECT_TRUE(Match("node.role==manager"));
  EXPECT_FALSE(Match("node.role==worker"));
  EXPECT_TRUE(Match("node.role!=worker"));
  EXPECT_TRUE(Match("node.platform.os==Linux"));
  EXPECT_TRUE(Match("node.platform.arch!=aarch64"));
  EXPECT_TRUE(Match("node.labels.zone==east"));
  EXPECT_FALSE(Match("node.labels.zone!=east"));
  EXPECT_TRUE(Match("engine.labels.disk==SSD"));
}

TEST(ConstraintTest, Matches_LabelNamesAreCaseSensitiveAndMissingValuesAreEmpty) {
  EXPECT_FALSE(Match("node.labels.Zone==east"));
  EXPECT_TRUE(Match("node.labels.Zone!=east"));
  EXPECT_FALSE(Match("node.labels.rack==r1"));
  EXPECT_TRUE(Match("node.labels.rack!=r1"));
  api::Node bare;
  bare.set_id("n2");
  EXPECT_FALSE(Match("node.hostname==host-a", bare));
  EXPECT_TRUE(Match("node.platform.os!=linux", bare));
  EXPECT_FALSE(Match("engine.labels.disk==ssd", bare));
  EXPECT_TRUE(Match("node.role==worker", bare));
}

TEST(ConstraintTest, Matches_NodeIpTakesAddressesAndNetworks) {
  EXPECT_TRUE(Match("node.ip==10.1.2.3"));
  EXPECT_TRUE(Match("node.ip==10.0.0.0/8"));
  EXPECT_FALSE(Match("node.ip==10.1.3.0/24"));
  EXPECT_TRUE(Match("node.ip!=10.1.3.0/24"));
  EXPECT_FALSE(Match("node.ip==fe80::/10"));
  api::Node with_port = TestNode();
  with_port.mutable_status()->set_addr("10.1.2.3:4242");
  EXPECT_TRUE(Match("node.ip==10.1.2.0/24", with_port));
  api::Node v6 = TestNode();
  v6.mutable_status()->set_addr("[fe80::5]:2377");
  EXPECT_TRUE(Match("node.ip==fe80::/10", v6));
  EXPECT_FALSE(Match("node.ip==10.0.0.0/8", v6));
  api::Node unknown = TestNode();
  unknown.mutable_status()->clear_addr();
  EXPECT_FALSE(Match("node.ip==10.0.0.0/8", unknown));
  EXPECT_TRUE(Match("node.ip!=10.0.0.0/8", unknown));
}

TEST(ConstraintTest, MatchesAll_NeedsEveryConstraint) {
  auto all = Constraint::ParseAll({"node.role==manager", "node.labels.zone==east"});
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(MatchesAll(*all, TestNode()));
  api::Node west = TestNode();
  (*west.mutable_spec()->mutable_annotations()->mutable_labels())["zone"] = "west";
  EXPECT_FALSE(MatchesAll(*all, west));
  EXPECT_TRUE(MatchesAll({}, west));
}

TEST(ConstraintTest, NodeAttribute_IsWhatSpreadPreferencesGroupBy) {
  auto key = ParseAttributeKey("node.labels.zone");
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(NodeAttribute(*key, TestNode()), "East");
  EXPECT_EQ(NodeAttribute(*ParseAttributeKey("node.role"), TestNode()), "manager");
  EXPECT_EQ(NodeAttribute(*ParseAttributeKey("node.ip"), TestNode()), "10.1.2.3");
  EXPECT_EQ(NodeAttribute(*ParseAttributeKey("engine.labels.none"), TestNode()), "");
  EXPECT_FALSE(ParseAttributeKey("spread").ok());
}

}  // namespace
}  // namespace swarm::scheduler

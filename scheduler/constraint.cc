#include "scheduler/constraint.h"

#include <arpa/inet.h>

#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/ip.h"

namespace swarm::scheduler {
namespace {

constexpr char kNodeLabelPrefix[] = "node.labels.";
constexpr char kEngineLabelPrefix[] = "engine.labels.";
constexpr char kAcceptedKeys[] =
    "node.id, node.hostname, node.role, node.ip, node.platform.os, node.platform.arch, "
    "node.labels.<label>, engine.labels.<label>";

absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Docker's character sets: label names are identifiers with dots and dashes; values may not
// contain anything that could be read as an operator (<, >, ~, =, !).
bool IsKeyChar(char c) { return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.'; }
bool IsValueChar(char c) {
  return absl::ascii_isalnum(c) || absl::ascii_isspace(c) ||
         absl::string_view(":-_.*()?+[]\\^$|/").find(c) != absl::string_view::npos;
}

// The node's address without a port: "10.0.0.5:2377" -> 10.0.0.5, "[fe80::1]:2377" -> fe80::1.
std::optional<IpAddress> NodeIp(const api::Node& node) {
  std::string_view addr = node.status().addr();
  if (auto ip = ParseIp(addr)) return ip;
  if (!addr.empty() && addr.front() == '[') {
    size_t end = addr.find(']');
    if (end == std::string_view::npos) return std::nullopt;
    return ParseIp(addr.substr(1, end - 1));
  }
  if (size_t colon = addr.rfind(':'); colon != std::string_view::npos) {
    return ParseIp(addr.substr(0, colon));
  }
  return std::nullopt;
}

const char* RoleName(api::NodeRole role) {
  return role == api::NODE_ROLE_MANAGER ? "manager" : "worker";
}

}  // namespace

absl::StatusOr<AttributeKey> ParseAttributeKey(std::string_view key_in) {
  const absl::string_view key = Absl(key_in);
  AttributeKey k;
  const std::string lower = absl::AsciiStrToLower(key);
  auto label_of = [&](absl::string_view prefix) -> absl::StatusOr<std::string> {
    std::string label(key.substr(prefix.size()));
    if (label.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", key, "\" names no label: write ", prefix, "<label>"));
    }
    for (char c : label) {
      if (!IsKeyChar(c)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "label name \"", label, "\" is invalid: use letters, digits, '.', '-' and '_' only"));
      }
    }
    return label;
  };
  if (lower == "node.id") {
    k.kind = AttributeKey::Kind::kNodeId;
  } else if (lower == "node.hostname") {
    k.kind = AttributeKey::Kind::kNodeHostname;
  } else if (lower == "node.role") {
    k.kind = AttributeKey::Kind::kNodeRole;
  } else if (lower == "node.ip") {
    k.kind = AttributeKey::Kind::kNodeIp;
  } else if (lower == "node.platform.os") {
    k.kind = AttributeKey::Kind::kPlatformOs;
  } else if (lower == "node.platform.arch") {
    k.kind = AttributeKey::Kind::kPlatformArch;
  } else if (absl::StartsWith(lower, kNodeLabelPrefix)) {
    k.kind = AttributeKey::Kind::kNodeLabel;
    auto label = label_of(kNodeLabelPrefix);
    if (!label.ok()) return label.status();
    k.label = *std::move(label);
  } else if (absl::StartsWith(lower, kEngineLabelPrefix)) {
    k.kind = AttributeKey::Kind::kEngineLabel;
    auto label = label_of(kEngineLabelPrefix);
    if (!label.ok()) return label.status();
    k.label = *std::move(label);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown node attribute \"", key, "\": use one of ", kAcceptedKeys));
  }
  return k;
}

std::string NodeAttribute(const AttributeKey& key, const api::Node& node) {
  switch (key.kind) {
    case AttributeKey::Kind::kNodeId:
      return node.id();
    case AttributeKey::Kind::kNodeHostname:
      return node.description().hostname();
    case AttributeKey::Kind::kNodeRole:
      return RoleName(node.role());
    case AttributeKey::Kind::kNodeIp: {
      std::optional<IpAddress> ip = NodeIp(node);
      if (!ip) return "";
      char buf[INET6_ADDRSTRLEN] = {};
      inet_ntop(ip->family, ip->bytes.data(), buf, sizeof(buf));
      return buf;
    }
    case AttributeKey::Kind::kPlatformOs:
      return node.description().platform().os();
    case AttributeKey::Kind::kPlatformArch:
      return node.description().platform().architecture();
    case AttributeKey::Kind::kNodeLabel: {
      const auto& labels = node.spec().annotations().labels();
      auto it = labels.find(key.label);
      return it == labels.end() ? "" : it->second;
    }
    case AttributeKey::Kind::kEngineLabel: {
      const auto& labels = node.description().engine().labels();
      auto it = labels.find(key.label);
      return it == labels.end() ? "" : it->second;
    }
  }
  return "";
}

absl::StatusOr<Constraint> Constraint::Parse(std::string_view expression_in) {
  const absl::string_view expression = Absl(expression_in);
  Op op = Op::kEqual;
  size_t at = expression.find("==");
  if (at == absl::string_view::npos) {
    at = expression.find("!=");
    op = Op::kNotEqual;
  }
  if (at == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("constraint \"", expression,
                     "\" has no operator: write KEY==VALUE or KEY!=VALUE, e.g. "
                     "node.labels.zone==east"));
  }
  const absl::string_view key_text = absl::StripAsciiWhitespace(expression.substr(0, at));
  const absl::string_view value = absl::StripAsciiWhitespace(expression.substr(at + 2));
  if (key_text.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("constraint \"", expression, "\" has no key before its operator"));
  }
  auto key = ParseAttributeKey(std::string_view(key_text.data(), key_text.size()));
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("constraint \"", expression, "\": ", key.status().message()));
  }
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "constraint \"", expression, "\" has no value after its operator: write KEY==VALUE"));
  }
  for (char c : value) {
    if (!IsValueChar(c)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "constraint \"", expression, "\": value \"", value, "\" contains '", std::string(1, c),
          "'; values may hold letters, digits, spaces and :-_.*()?+[]\\^$|/ (one operator, "
          "== or !=, per constraint)"));
    }
  }
  if (key->kind == AttributeKey::Kind::kNodeRole && !absl::EqualsIgnoreCase(value, "manager") &&
      !absl::EqualsIgnoreCase(value, "worker")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "constraint \"", expression, "\": node.role is manager or worker, not \"", value, "\""));
  }
  if (key->kind == AttributeKey::Kind::kNodeIp &&
      !ParseCidr(std::string_view(value.data(), value.size()), /*require_prefix=*/false)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "constraint \"", expression, "\": node.ip takes an IP address or a CIDR network (e.g. ",
        "10.0.0.0/8), not \"", value, "\""));
  }
  return Constraint(*std::move(key), std::string(key_text), op, std::string(value));
}

absl::StatusOr<std::vector<Constraint>> Constraint::ParseAll(
    const std::vector<std::string>& exprs) {
  std::vector<Constraint> out;
  out.reserve(exprs.size());
  for (const std::string& e : exprs) {
    auto c = Parse(e);
    if (!c.ok()) return c.status();
    out.push_back(*std::move(c));
  }
  return out;
}

bool Constraint::Matches(const api::Node& node) const {
  bool equal;
  if (key_.kind == AttributeKey::Kind::kNodeIp) {
    std::optional<IpNetwork> net = ParseCidr(value_, /*require_prefix=*/false);
    std::optional<IpAddress> ip = NodeIp(node);
    equal = net && ip && net->Contains(*ip);
  } else {
    equal = absl::EqualsIgnoreCase(NodeAttribute(key_, node), value_);
  }
  return op_ == Op::kEqual ? equal : !equal;
}

std::string Constraint::ToString() const {
  return absl::StrCat(key_text_, op_ == Op::kEqual ? "==" : "!=", value_);
}

bool MatchesAll(const std::vector<Constraint>& constraints, const api::Node& node) {
  for (const Constraint& c : constraints) {
    if (!c.Matches(node)) return false;
  }
  return true;
}

}  // namespace swarm::scheduler

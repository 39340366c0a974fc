// Placement constraints (`--constraint node.labels.zone==east`) and the node attributes they
// and spread preferences (`--placement-pref spread=node.labels.zone`) name. Pure functions
// over plain data: the control API parses constraints to refuse malformed ones when a service
// is created, and the scheduler parses them again to filter nodes.
//
// An expression is KEY==VALUE or KEY!=VALUE (spaces around the operator are ignored). KEY is
// one of node.id, node.hostname, node.role, node.ip, node.platform.os, node.platform.arch,
// node.labels.<label> or engine.labels.<label>; the key names are case-insensitive, label
// names are not. Values compare case-insensitively, as in Docker; a node without the
// attribute has the empty value, so `!=` matches it and `==` does not. node.role takes
// manager or worker; node.ip takes an address or a CIDR network, matched against the address
// the node connects from.
//
// Thread-safety: Constraint and AttributeKey are values; all functions are thread-safe.
#ifndef SWARM_SCHEDULER_CONSTRAINT_H_
#define SWARM_SCHEDULER_CONSTRAINT_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/objects.pb.h"

namespace swarm::scheduler {

// A node attribute, as named in a constraint or a spread preference.
struct AttributeKey {
  enum class Kind {
    kNodeId,
    kNodeHostname,
    kNodeRole,
    kNodeIp,
    kPlatformOs,
    kPlatformArch,
    kNodeLabel,
    kEngineLabel,
  };
  Kind kind = Kind::kNodeId;
  // The label name (kNodeLabel, kEngineLabel), as written.
  std::string label;
};

// Parses an attribute name; INVALID_ARGUMENT listing the accepted keys when it is none.
absl::StatusOr<AttributeKey> ParseAttributeKey(std::string_view key);

// The node's value of an attribute: "manager"/"worker" for the role, the empty string when
// the node does not have it (no description yet, no such label).
std::string NodeAttribute(const AttributeKey& key, const api::Node& node);

class Constraint {
 public:
  enum class Op { kEqual, kNotEqual };

  // Parses one expression; INVALID_ARGUMENT saying what is wrong and what is expected.
  static absl::StatusOr<Constraint> Parse(std::string_view expression);
  // Parses every expression; the first error names the expression it is about.
  static absl::StatusOr<std::vector<Constraint>> ParseAll(const std::vector<std::string>& exprs);

  // Whether the node satisfies the constraint.
  bool Matches(const api::Node& node) const;

  const AttributeKey& key() const { return key_; }
  Op op() const { return op_; }
  const std::string& value() const { return value_; }
  // The expression in canonical form, e.g. "node.labels.zone==east".
  std::string ToString() const;

 private:
  Constraint(AttributeKey key, std::string key_text, Op op, std::string value)
      : key_(std::move(key)), key_text_(std::move(key_text)), op_(op), value_(std::move(value)) {}

  AttributeKey key_;
  std::string key_text_;
  Op op_;
  std::string value_;
};

// Whether the node satisfies every constraint (true for none).
bool MatchesAll(const std::vector<Constraint>& constraints, const api::Node& node);

}  // namespace swarm::scheduler

#endif  // SWARM_SCHEDULER_CONSTRAINT_H_

// A subset of Go's text/template, the language of Docker's --format flags and of the task
// templates of service specs (`--hostname '{{.Node.Hostname}}'`). A template is parsed once
// into a tree (Template::Parse) and executed any number of times against a Value, the plain
// data model here: Go's nil, bools, integers, floats, strings, lists, maps (string keys, kept
// sorted as Go prints and ranges over them) and structs (named fields in order, some of them
// embedded as Go embeds structs, so `.Spec.Name` finds `.Spec.Annotations.Name`).
//
// The language:
//   text {{pipeline}} text        actions; `{{- ` and ` -}}` trim the spaces beside them;
//                                 {{/* comments */}}
//   .  .A.B  $  $x.A  (pipeline).A   operands: dot, fields, variables, parenthesised pipelines;
//                                 "string" and `raw` literals, numbers, true, false, nil
//   f a b | g c                   commands chained by pipes (the value of each goes last to the
//                                 next); $x := pipeline and $x = pipeline
//   {{if p}} {{else if p}} {{else}} {{end}}, {{with p}} {{else}} {{end}},
//   {{range p}} {{else}} {{end}}, {{range $i, $e := p}}, {{break}}, {{continue}}
//   functions: json, join, split, lower, upper, title, pad, truncate, index, len, print,
//   printf (%s %v %d %q %%), println, eq, ne, lt, le, gt, ge, and, or, not
//
// Errors name the position as Go's do ("template: :1:8: unexpected \"}\" in operand";
// columns count from 1) and, at run time, the operand being evaluated ("template: :1:3:
// executing \"\" at <.Node.Hostnme>: can't evaluate field Hostnme in type Node"). Templates
// are bounded: nesting deeper than kMaxDepth is a parse error and execution stops with an
// error past kMaxOutput bytes, so untrusted input cannot exhaust the stack or memory.
//
// Thread-safety: a parsed Template is immutable; Execute may run on several threads at once.
// Values are plain data.
#ifndef SWARM_COMMON_TEMPLATE_H_
#define SWARM_COMMON_TEMPLATE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace swarm::tmpl {

inline constexpr int kMaxDepth = 100;
inline constexpr size_t kMaxOutput = 64 << 20;

class Value {
 public:
  // kInvalid is Go's invalid reflect.Value: what a missing map key yields, printed as
  // "<no value>".
  enum class Kind { kInvalid, kNil, kBool, kInt, kFloat, kString, kList, kMap, kStruct };
  struct Field;  // below: it holds a Value

  Value() = default;
  static Value Nil();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double d);
  static Value String(std::string s);
  static Value List(std::vector<Value> items);
  static Value Map(std::map<std::string, Value> entries);
  // type_name is what errors call it ("Node").
  static Value Struct(std::string type_name, std::vector<Field> fields);

  Kind kind() const { return kind_; }
  bool is_valid() const { return kind_ != Kind::kInvalid; }
  bool bool_value() const { return bool_; }
  int64_t int_value() const { return int_; }
  double float_value() const { return float_; }
  const std::string& string_value() const { return string_; }
  const std::vector<Value>& list() const { return *list_; }
  const std::map<std::string, Value>& map() const { return *map_; }
  const std::vector<Field>& fields() const { return *fields_; }
  // The struct's type name, or Go's name of the kind ("string", "map", "[]interface {}").
  std::string TypeName() const;

  // A struct's field (searching embedded structs) or nullptr.
  const Value* FindField(absl::string_view name) const;
  // Go's truth: false, 0, nil, "" and empty lists and maps are false; structs are true.
  bool Truth() const;
  // What {{.}} prints: Go's fmt.Print of the value ("<no value>", "<nil>", "[a b]",
  // "map[a:1 b:2]", "{x y}").
  std::string Print() const;
  // What {{json .}} prints (compact, no HTML escaping, as Docker's json function).
  std::string Json() const;

  bool operator==(const Value& other) const;

 private:
  Kind kind_ = Kind::kInvalid;
  bool bool_ = false;
  int64_t int_ = 0;
  double float_ = 0;
  std::string string_;  // the string, or a struct's type name
  // Shared: values are immutable once built, and copies are frequent while executing.
  std::shared_ptr<const std::vector<Value>> list_;
  std::shared_ptr<const std::map<std::string, Value>> map_;
  std::shared_ptr<const std::vector<Field>> fields_;
};

struct Value::Field {
  std::string name;
  Value value;
  // Go's embedded struct: its fields are found from the outer struct too and json inlines
  // them.
  bool embedded = false;
};

struct Node;

class Template {
 public:
  // INVALID_ARGUMENT "template: :LINE:COL: what" when text is not a template.
  static absl::StatusOr<Template> Parse(absl::string_view text);

  // INVALID_ARGUMENT "template: :LINE:COL: executing \"\" at <operand>: what" when the data
  // does not have what the template asks for.
  absl::StatusOr<std::string> Execute(const Value& data) const;

  // Whether the template has no actions, only text.
  bool IsPlainText() const;
  // The source text.
  const std::string& text() const { return *text_; }

 private:
  Template() = default;
  std::shared_ptr<const std::string> text_;
  std::shared_ptr<const Node> root_;
};

// Parses and executes once.
absl::StatusOr<std::string> Render(absl::string_view text, const Value& data);

}  // namespace swarm::tmpl

#endif  // SWARM_COMMON_TEMPLATE_H_

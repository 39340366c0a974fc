#include "common/template_fuzz.h"

#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "common/template.h"

namespace swarm::tmpl {
namespace {

using Field = Value::Field;

const Value& FuzzData() {
  static const Value* data = [] {
    Value labels = Value::Map({{"a", Value::String("1")}, {"b", Value::String("2")}});
    Value annotations = Value::Struct(
        "Annotations", {Field{"Name", Value::String("web")}, Field{"Labels", labels}});
    Value list = Value::List({Value::Int(1), Value::String("x"), Value::Bool(false),
                              Value::Float(-2.5), Value::Nil(), labels});
    return new Value(Value::Struct(
        "Data", {Field{"Spec", annotations, /*embedded=*/true}, Field{"ID", Value::String("id")},
                 Field{"List", list}, Field{"Empty", Value::List({})},
                 Field{"Nested", Value::List({list, list, list})}, Field{"N", Value::Int(3)},
                 Field{"Nil", Value::Nil()}, Field{"Map", labels}}));
  }();
  return *data;
}

// Stops the process: libFuzzer and the deterministic driver both report it.
void Check(bool ok, const char* what) {
  if (!ok) {
    __builtin_trap();
  }
  (void)what;
}

}  // namespace
}  // namespace swarm::tmpl

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace swarm::tmpl;
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<Template> t = Template::Parse(text);
  if (!t.ok()) {
    Check(absl::StartsWith(t.status().message(), "template: :"), "parse errors name a position");
    return 0;
  }
  absl::StatusOr<std::string> first = t->Execute(FuzzData());
  absl::StatusOr<std::string> second = t->Execute(FuzzData());
  Check(first.ok() == second.ok(), "execution is deterministic");
  if (!first.ok()) {
    Check(absl::StartsWith(first.status().message(), "template: :"), "errors name a position");
    Check(first.status() == second.status(), "same error twice");
    return 0;
  }
  Check(*first == *second, "same output twice");
  Check(first->size() <= kMaxOutput, "output is bounded");
  if (t->IsPlainText()) Check(first->size() <= text.size(), "plain text is copied or trimmed");
  return 0;
}

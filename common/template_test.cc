#include "common/template.h"

#include "gtest/gtest.h"

namespace swarm::tmpl {
namespace {

using Field = Value::Field;

// A node as task templates and `node inspect` see it.
Value Data() {
  Value platform = Value::Struct(
      "Platform", {{"OS", Value::String("linux")}, {"Architecture", Value::String("x86_64")}});
  Value annotations = Value::Struct(
      "Annotations",
      {{"Name", Value::String("web")},
       {"Labels", Value::Map({{"tier", Value::String("front")}, {"app", Value::String("shop")}})}});
  Value spec = Value::Struct("ServiceSpec", {{"Annotations", annotations, /*embedded=*/true},
                                             {"Replicas", Value::Int(3)}});
  return Value::Struct(
      "Data", {{"ID", Value::String("abc123")},
               {"Hostname", Value::String("Node-1")},
               {"Platform", platform},
               {"Spec", spec},
               {"Names", Value::List({Value::String("a"), Value::String("b"), Value::String("c")})},
               {"Empty", Value::List({})},
               {"Ready", Value::Bool(true)},
               {"Ratio", Value::Float(0.5)},
               {"Nothing", Value::Nil()}});
}

std::string R(const std::string& text) {
  absl::StatusOr<std::string> out = Render(text, Data());
  if (!out.ok()) return "ERROR: " + std::string(out.status().message());
  return *out;
}

TEST(TemplateTest, Execute_Fields) {
  EXPECT_EQ(R("plain"), "plain");
  EXPECT_EQ(R("{{.ID}}"), "abc123");
  EXPECT_EQ(R("{{.Platform.OS}}/{{.Platform.Architecture}}"), "linux/x86_64");
  EXPECT_EQ(R("{{ .Hostname }}"), "Node-1");
  // Embedded structs: .Spec.Name is .Spec.Annotations.Name, as in Docker's types.
  EXPECT_EQ(R("{{.Spec.Name}} {{.Spec.Annotations.Name}}"), "web web");
  EXPECT_EQ(R("{{.Spec.Labels.tier}}"), "front");
  EXPECT_EQ(R("{{.Spec.Labels.missing}}"), "<no value>");
  EXPECT_EQ(R("{{.Names}} {{.Spec.Labels}} {{.Ready}} {{.Ratio}} {{.Nothing}}"),
            "[a b c] map[app:shop tier:front] true 0.5 <nil>");
  EXPECT_EQ(R("{{.Platform}}"), "{linux x86_64}");
  EXPECT_EQ(R("{{.}}").substr(0, 8), "{abc123 ");
}

TEST(TemplateTest, Execute_Functions) {
  EXPECT_EQ(R("{{json .Platform}}"), R"({"OS":"linux","Architecture":"x86_64"})");
  EXPECT_EQ(R("{{json .Spec}}"),
            R"({"Name":"web","Labels":{"app":"shop","tier":"front"},"Replicas":3})");
  EXPECT_EQ(R("{{json .Names}} {{json .Nothing}} {{json \"<&>\"}}"), R"(["a","b","c"] null "<&>")");
  EXPECT_EQ(R("{{join .Names \", \"}}"), "a, b, c");
  EXPECT_EQ(R("{{lower .Hostname}} {{upper .Hostname}} {{title \"hello world\"}}"),
            "node-1 NODE-1 Hello World");
  EXPECT_EQ(R("{{index .Names 1}} {{index .Spec.Labels \"app\"}}[{{index .Spec.Labels \"x\"}}]"),
            "b shop[]");
  EXPECT_EQ(R("{{len .Names}} {{len .Hostname}} {{len .Spec.Labels}}"), "3 6 2");
  EXPECT_EQ(R("{{println .ID \"x\"}}"), "abc123 x\n");
  EXPECT_EQ(R("{{print 1 2 \"a\" 3}}"), "1 2a3");
  EXPECT_EQ(R("{{printf \"%s-%d %5s|%-4d|%q %%\" .ID 7 \"ab\" 3 \"q\"}}"),
            "abc123-7    ab|3   |\"q\" %");
  EXPECT_EQ(R("{{join (split \"a:b:c\" \":\") \"-\"}}"), "a-b-c");
  EXPECT_EQ(R("{{printf \"%.3s|%-6.2s|\" .ID .Hostname}}"), "abc|No    |");
  EXPECT_EQ(R("{{truncate .ID 3}}|{{pad .ID 1 2}}|"), "abc| abc123  |");
  EXPECT_EQ(R("{{eq .ID \"abc123\"}} {{ne 1 2}} {{lt 1 2}} {{ge 2.5 3}} {{eq 1 3 1}}"),
            "true true true false true");
  EXPECT_EQ(R("{{and .Ready .ID}} {{or .Empty \"none\"}} {{not .Ready}}"), "abc123 none false");
}

TEST(TemplateTest, Execute_Pipelines) {
  EXPECT_EQ(R("{{.Hostname | lower}}"), "node-1");
  EXPECT_EQ(R("{{.Hostname | lower | upper | printf \"<%s>\"}}"), "<NODE-1>");
  EXPECT_EQ(R("{{\"x\" | printf \"%s%s\" \"y\"}}"), "yx");
  EXPECT_EQ(R("{{(index .Names 0) | upper}}"), "A");
  EXPECT_EQ(R("{{(.Platform).OS}}"), "linux");
  EXPECT_EQ(R("{{$x := .Platform.OS}}[{{$x}}]{{$x = \"y\"}}{{$x}}"), "[linux]y");
  EXPECT_EQ(R("{{`raw\\n`}} {{\"esc\\t\\u00e9\"}} {{0x10}} {{-2}} {{1e3}} {{true}}"),
            "raw\\n esc\t\xc3\xa9 16 -2 1000 true");
}

TEST(TemplateTest, Execute_Control) {
  EXPECT_EQ(R("{{if .Ready}}yes{{else}}no{{end}}"), "yes");
  EXPECT_EQ(R("{{if .Empty}}yes{{else if .Nothing}}nil{{else}}no{{end}}"), "no");
  EXPECT_EQ(R("{{if .Empty}}a{{else if .Ready}}b{{else}}c{{end}}"), "b");
  EXPECT_EQ(R("{{with .Platform}}{{.OS}}{{end}}"), "linux");
  EXPECT_EQ(R("{{with .Empty}}x{{else}}empty{{end}}"), "empty");
  EXPECT_EQ(R("{{range .Names}}<{{.}}>{{end}}"), "<a><b><c>");
  EXPECT_EQ(R("{{range $i, $n := .Names}}{{$i}}={{$n}} {{end}}"), "0=a 1=b 2=c ");
  EXPECT_EQ(R("{{range $n := .Names}}{{$n}}{{end}}"), "abc");
  // $ is the data inside range, . the element.
  EXPECT_EQ(R("{{range .Names}}{{.}}@{{$.Hostname}} {{end}}"), "a@Node-1 b@Node-1 c@Node-1 ");
  EXPECT_EQ(R("{{range $k, $v := .Spec.Labels}}{{$k}}={{$v}};{{end}}"), "app=shop;tier=front;");
  EXPECT_EQ(R("{{range .Empty}}x{{else}}none{{end}}"), "none");
  EXPECT_EQ(R("{{range .Nothing}}x{{else}}nil{{end}}"), "nil");
  EXPECT_EQ(R("{{range .Names}}{{if eq . \"b\"}}{{break}}{{end}}{{.}}{{end}}"), "a");
  EXPECT_EQ(R("{{range .Names}}{{if eq . \"b\"}}{{continue}}{{end}}{{.}}{{end}}"), "ac");
  EXPECT_EQ(R("{{range 3}}{{.}}{{end}}"), "012");
  EXPECT_EQ(R("a  {{- .ID -}}  \n b"), "aabc123b");
  EXPECT_EQ(R("a {{/* a comment */}} b {{- /* trimmed */ -}} c"), "a  bc");
  EXPECT_EQ(R("{{range .Names}}{{$x := .}}{{$x}}{{end}}"), "abc");
}

TEST(TemplateTest, Parse_ErrorsNamePosition) {
  auto error = [](const std::string& text) {
    absl::StatusOr<Template> t = Template::Parse(text);
    return t.ok() ? std::string("OK") : std::string(t.status().message());
  };
  EXPECT_EQ(error("{{.Name }"), "template: :1:8: unexpected \"}\" in operand");
  EXPECT_EQ(error("{{json .}"), "template: :1:8: bad character U+007D '}'");
  EXPECT_EQ(error("{{.ID"), "template: :1:0: unclosed action");
  EXPECT_EQ(error("x\n{{if .A}}"), "template: :2:9: unexpected EOF");
  EXPECT_EQ(error("{{end}}"), "template: :1:2: unexpected {{end}}");
  EXPECT_EQ(error("{{else}}"), "template: :1:2: unexpected {{else}}");
  EXPECT_EQ(error("{{nope .}}"), "template: :1:2: function \"nope\" not defined");
  EXPECT_EQ(error("{{$x}}"), "template: :1:2: undefined variable \"$x\"");
  EXPECT_EQ(error("{{}}"), "template: :1:2: missing value for command");
  EXPECT_EQ(error("{{break}}"), "template: :1:2: {{break}} outside {{range}}");
  EXPECT_EQ(error("{{\"a}}"), "template: :1:2: unterminated quoted string");
  EXPECT_EQ(error("{{(.A}}"), "template: :1:5: unclosed left paren");
  EXPECT_EQ(error("{{.A)}}"), "template: :1:4: unexpected right paren");
  EXPECT_EQ(error("{{.A | \"x\"}}"), "template: :1:7: non executable command in pipeline stage 2");
  EXPECT_EQ(error("{{template \"x\"}}"), "template: :1:2: {{template}} is not supported");
  EXPECT_EQ(error("{{1x}}"), "template: :1:2: bad number syntax: \"1x\"");
  EXPECT_EQ(error("{{\"a\".B}}"), "template: :1:2: unexpected . after term \"\\\"a\\\"\"");
  EXPECT_EQ(error("{{.A \x01}}"), "template: :1:5: unrecognized character in action: U+0001");
  EXPECT_EQ(error("{{/* x"), "template: :1:0: unclosed comment");
  EXPECT_EQ(error("{{range .A}}{{else}}{{else}}{{end}}"),
            "template: :1:22: expected end; found {{else}}");
  std::string deep;
  for (int i = 0; i <= kMaxDepth; ++i) deep += "{{if .}}";
  EXPECT_NE(error(deep).find("nesting too deep"), std::string::npos);
}

TEST(TemplateTest, Execute_ErrorsNameOperand) {
  EXPECT_EQ(R("{{.Hostnme}}"),
            "ERROR: template: :1:2: executing \"\" at <.Hostnme>: can't evaluate field Hostnme "
            "in type Data");
  EXPECT_EQ(R("x\n {{.Platform.Os}}"),
            "ERROR: template: :2:3: executing \"\" at <.Platform.Os>: can't evaluate field Os in "
            "type Platform");
  EXPECT_EQ(R("{{.ID.X}}"),
            "ERROR: template: :1:2: executing \"\" at <.ID.X>: can't evaluate field X in type "
            "string");
  EXPECT_EQ(R("{{.Nothing.X}}"),
            "ERROR: template: :1:2: executing \"\" at <.Nothing.X>: nil pointer evaluating "
            "interface {}.X");
  EXPECT_EQ(R("{{index .Names 5}}"),
            "ERROR: template: :1:2: executing \"\" at <index>: error calling index: index out of "
            "range: 5");
  EXPECT_EQ(R("{{lower .Names}}"),
            "ERROR: template: :1:2: executing \"\" at <lower>: error calling lower: wrong type for "
            "value; expected string; got []interface {}");
  EXPECT_EQ(R("{{json}}"),
            "ERROR: template: :1:2: executing \"\" at <json>: wrong number of args for json: want "
            "1 got 0");
  EXPECT_EQ(R("{{.ID 1}}"),
            "ERROR: template: :1:2: executing \"\" at <.ID>: ID has arguments but cannot be "
            "invoked as function");
  EXPECT_EQ(R("{{range .ID}}{{end}}"),
            "ERROR: template: :1:8: executing \"\" at <.ID>: range can't iterate over abc123");
  EXPECT_EQ(R("{{eq .Names 1}}"),
            "ERROR: template: :1:2: executing \"\" at <eq>: error calling eq: non-comparable type");
  EXPECT_EQ(R("{{nil}}"), "ERROR: template: :1:2: executing \"\" at <nil>: nil is not a command");
}

TEST(TemplateTest, Execute_IsBounded) {
  // 100^4 iterations without output: stopped by the step budget, not run to the end.
  std::vector<Value> hundred(100, Value::Int(1));
  Value data = Value::Struct("D", {Field{"L", Value::List(hundred)}});
  absl::StatusOr<std::string> out = Render(
      "{{range .L}}{{range $.L}}{{range $.L}}{{range $.L}}{{end}}{{end}}{{end}}{{end}}", data);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("takes too long"), std::string::npos);
}

TEST(TemplateTest, Template_ParsedOnceExecutedMany) {
  absl::StatusOr<Template> t = Template::Parse("{{.N}}");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->IsPlainText());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(*t->Execute(Value::Struct("", {Field{"N", Value::Int(i)}})), std::to_string(i));
  }
  EXPECT_TRUE(Template::Parse("no actions")->IsPlainText());
}

TEST(ValueTest, Print_FloatsAsGo) {
  EXPECT_EQ(Value::Float(1e6).Print(), "1e+06");
  EXPECT_EQ(Value::Float(100000).Print(), "100000");
  EXPECT_EQ(Value::Float(0.0001).Print(), "0.0001");
  EXPECT_EQ(Value::Float(0.00001).Print(), "1e-05");
  EXPECT_EQ(Value::Float(2.5).Print(), "2.5");
}

}  // namespace
}  // namespace swarm::tmpl

// Runs the template fuzz entry deterministically: every seed, then mutations of the seeds
// (byte flips, insertions of template syntax, splices of two seeds) from a fixed seed, so CI
// covers the same inputs on every run. A crash or a trap in the entry fails the test.
#include "common/template_fuzz.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace swarm::tmpl {
namespace {

const std::vector<std::string> kSeeds = {
    "",
    "plain text",
    "{{.ID}}",
    "{{.Name}} {{.Spec.Labels.a}} {{index .Map \"b\"}}",
    "{{json .}}",
    "{{range $i, $e := .List}}{{$i}}:{{$e}},{{else}}none{{end}}",
    "{{range .Nested}}{{range .}}{{.}}{{end}}{{end}}",
    "{{if .Empty}}a{{else if .N}}b{{else}}c{{end}}",
    "{{with .Spec}}{{.Name | upper | lower}}{{end}}",
    "{{join (split \"a,b,c\" \",\") \"-\"}}",
    "{{printf \"%s %d %v %q %5s %-3d\" .ID .N .List .ID \"x\" 1}}",
    "{{range .List}}{{if eq . 1}}{{continue}}{{end}}{{break}}{{end}}",
    "{{$x := .N}}{{$x = 4}}{{$x}}{{$.ID}}",
    "{{len .List}} {{and .N .ID}} {{or .Nil .Empty 0}} {{not .N}} {{lt 1 2.5}}",
    "{{truncate .ID 1}}{{pad .ID 1 1}}{{title \"a b\"}}{{println 1 2}}",
    "a {{- .ID -}} b {{/* c */}}",
    "{{(index .Nested 0).X}}",
    "{{range 5}}{{.}}{{end}}",
    "{{`raw`}} {{\"\\u00e9\\x41\\101\"}} {{0x1F}} {{1e3}} {{-7}} {{nil}}",
    "{{.ID.X}} {{.Nil.X}}",
    "table {{.ID}}\t{{.Name}}",
    "{{if}}{{end}}",
    "{{range .List}}",
    "{{\"}}",
};

const std::vector<std::string> kFragments = {
    "{{",        "}}", "{{-", "-}}", "{{end}}", "{{else}}", "{{range .List}}",
    "{{if .N}}", "(",  ")",   "|",   "$",       "$x := ",   ".",
    "\"",        "`",  "/*",  "*/",  "index",   "json",     " ",
    "\n",        "\\", ",",
};

void RunOne(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

TEST(TemplateFuzzTest, Seeds) {
  for (const std::string& s : kSeeds) RunOne(s);
}

TEST(TemplateFuzzTest, Mutations) {
  std::mt19937_64 random(20260101);  // fixed: the same inputs on every run
  auto pick = [&](size_t n) { return static_cast<size_t>(random() % n); };
  constexpr int kRuns = 20000;
  for (int run = 0; run < kRuns; ++run) {
    std::string s = kSeeds[pick(kSeeds.size())];
    const int edits = 1 + static_cast<int>(pick(4));
    for (int e = 0; e < edits; ++e) {
      const size_t at = s.empty() ? 0 : pick(s.size() + 1);
      switch (pick(5)) {
        case 0:  // flip a byte
          if (!s.empty()) s[pick(s.size())] = static_cast<char>(random());
          break;
        case 1:  // delete a run
          if (!s.empty()) s.erase(pick(s.size()), 1 + pick(4));
          break;
        case 2:  // insert syntax
          s.insert(at, kFragments[pick(kFragments.size())]);
          break;
        case 3: {  // splice another seed
          const std::string& other = kSeeds[pick(kSeeds.size())];
          s.insert(at, other.substr(0, pick(other.size() + 1)));
          break;
        }
        default:  // duplicate a run
          if (!s.empty()) {
            const size_t from = pick(s.size());
            s.insert(at, s.substr(from, 1 + pick(8)));
          }
      }
    }
    RunOne(s);
  }
}

TEST(TemplateFuzzTest, DeepNesting) {
  std::string deep;
  for (int i = 0; i < 5000; ++i) deep += "{{range .Nested}}(";
  RunOne(deep);
  std::string parens = "{{";
  for (int i = 0; i < 5000; ++i) parens += "(";
  RunOne(parens + ".ID" + std::string(5000, ')') + "}}");
}

}  // namespace
}  // namespace swarm::tmpl

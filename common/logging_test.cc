#include "common/logging.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarm::log {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

TEST(FormatLine, WritesKeyValueFields) {
  EXPECT_EQ(FormatLine("raft", "became leader", {{"term", 5}, {"id", "abc"}, {"ok", true}}),
            "raft: became leader term=5 id=abc ok=true");
}

TEST(FormatLine, QuotesValuesThatWouldBreakTheLine) {
  EXPECT_EQ(FormatLine("ca", "refused", {{"reason", "bad token"}, {"q", "a\"b"}, {"e", ""}}),
            "ca: refused reason=\"bad token\" q=\"a\\\"b\" e=\"\"");
  EXPECT_EQ(FormatLine("x", "y", {{"status", absl::NotFoundError("no such node")}}),
            "x: y status=\"NOT_FOUND: no such node\"");
}

TEST(Log, WritesTimestampLevelAndFiltersByLevel) {
  std::ostringstream out;
  RedirectForTesting(&out);
  SetLevel(Level::kInfo);
  Debug("store", "hidden");
  Info("store", "committed", {{"index", 7}});
  Error("store", "failed");
  RedirectForTesting(nullptr);

  std::string text = out.str();
  EXPECT_THAT(text, ::testing::Not(HasSubstr("hidden")));
  EXPECT_THAT(text, HasSubstr(" info store: committed index=7\n"));
  EXPECT_THAT(text, HasSubstr(" error store: failed\n"));
  std::string first = text.substr(0, text.find('\n'));
  EXPECT_THAT(first, MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z info .*"));
  EXPECT_FALSE(Enabled(Level::kDebug));
  EXPECT_TRUE(Enabled(Level::kWarn));
}

}  // namespace
}  // namespace swarm::log

// Structured logging: one line per event, "TIME LEVEL component: message key=value ...",
// written through spdlog (thread-safe, to stderr by default).
//
//   log::Info("raft", "became leader", {{"term", term}, {"id", id}});
//
// Values that contain spaces, quotes or '=' are quoted so that lines stay machine-readable.
#ifndef SWARM_COMMON_LOGGING_H_
#define SWARM_COMMON_LOGGING_H_

#include <initializer_list>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace swarm::log {

enum class Level { kDebug, kInfo, kWarn, kError };

// One key=value pair of a log line.
struct Field {
  Field(std::string_view k, const absl::AlphaNum& v)
      : key(k), value(v.Piece().data(), v.Piece().size()) {}
  // A template so that ints and string literals do not narrow to bool.
  template <typename B, std::enable_if_t<std::is_same_v<B, bool>, int> = 0>
  Field(std::string_view k, B v) : key(k), value(v ? "true" : "false") {}
  Field(std::string_view k, const absl::Status& v) : key(k), value(v.ToString()) {}
  std::string key;
  std::string value;
};

using Fields = std::initializer_list<Field>;

// Formats the part of a line after the level: "component: message k=v ...".
std::string FormatLine(std::string_view component, std::string_view message, Fields fields);

void Log(Level level, std::string_view component, std::string_view message, Fields fields = {});

inline void Debug(std::string_view component, std::string_view message, Fields fields = {}) {
  Log(Level::kDebug, component, message, fields);
}
inline void Info(std::string_view component, std::string_view message, Fields fields = {}) {
  Log(Level::kInfo, component, message, fields);
}
inline void Warn(std::string_view component, std::string_view message, Fields fields = {}) {
  Log(Level::kWarn, component, message, fields);
}
inline void Error(std::string_view component, std::string_view message, Fields fields = {}) {
  Log(Level::kError, component, message, fields);
}

// Lines below this level are dropped. The default is kInfo, or SWARM_LOG_LEVEL
// (debug, info, warn, error) when set in the environment.
void SetLevel(Level level);
bool Enabled(Level level);

// Sends every line to out instead of stderr (tests); nullptr restores stderr.
void RedirectForTesting(std::ostream* out);

}  // namespace swarm::log

#endif  // SWARM_COMMON_LOGGING_H_

#include "common/logging.h"

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

namespace swarm::log {
namespace {

constexpr char kPattern[] = "%Y-%m-%dT%H:%M:%S.%fZ %l %v";

spdlog::level::level_enum ToSpdlog(Level level) {
  switch (level) {
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarn:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

Level LevelFromEnvironment() {
  const char* env = std::getenv("SWARM_LOG_LEVEL");
  if (env == nullptr) return Level::kInfo;
  std::string_view v(env);
  if (v == "debug") return Level::kDebug;
  if (v == "warn") return Level::kWarn;
  if (v == "error") return Level::kError;
  return Level::kInfo;
}

std::shared_ptr<spdlog::logger> MakeLogger(spdlog::sink_ptr sink) {
  auto logger = std::make_shared<spdlog::logger>("swarm", std::move(sink));
  logger->set_pattern(kPattern, spdlog::pattern_time_type::utc);
  return logger;
}

// The logger in use; replaced atomically by RedirectForTesting.
std::shared_ptr<spdlog::logger>& Logger() {
  static auto* logger = [] {
    auto* l = new std::shared_ptr<spdlog::logger>(
        MakeLogger(std::make_shared<spdlog::sinks::stderr_sink_mt>()));
    (*l)->set_level(ToSpdlog(LevelFromEnvironment()));
    return l;
  }();
  return *logger;
}

void AppendValue(std::string& out, std::string_view value) {
  bool plain = !value.empty();
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' || c == '\n' || c == '\t' || c == '\\') {
      plain = false;
      break;
    }
  }
  if (plain) {
    out.append(value);
    return;
  }
  out.push_back('"');
  for (char c : value) {
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        out.push_back(c);
    }
  }
  out.push_back('"');
}

}  // namespace

std::string FormatLine(std::string_view component, std::string_view message, Fields fields) {
  // Debian's Abseil has its own string_view type, so plain std::string appends here.
  std::string line;
  line.append(component).append(": ").append(message);
  for (const Field& f : fields) {
    line.append(" ").append(f.key).append("=");
    AppendValue(line, f.value);
  }
  return line;
}

void Log(Level level, std::string_view component, std::string_view message, Fields fields) {
  auto logger = std::atomic_load(&Logger());
  if (!logger->should_log(ToSpdlog(level))) return;
  logger->log(ToSpdlog(level), "{}", FormatLine(component, message, fields));
}

void SetLevel(Level level) { std::atomic_load(&Logger())->set_level(ToSpdlog(level)); }

bool Enabled(Level level) { return std::atomic_load(&Logger())->should_log(ToSpdlog(level)); }

void RedirectForTesting(std::ostream* out) {
  auto old = std::atomic_load(&Logger());
  spdlog::sink_ptr sink;
  if (out != nullptr) {
    sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*out, /*force_flush=*/true);
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  }
  auto logger = MakeLogger(std::move(sink));
  logger->set_level(old->level());
  std::atomic_store(&Logger(), logger);
}

}  // namespace swarm::log

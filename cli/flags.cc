#include "cli/flags.h"

#include <arpa/inet.h>

#include <cmath>
#include <cstdlib>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace swarm::cli {
namespace {

constexpr char kDurationForm[] = "a duration such as 10s, 1m30s, 500ms or 2h";
constexpr char kBytesForm[] =
    "a number of bytes with an optional unit b, k, m, g, t or p, such as 512k, 50M or 1.5G";
constexpr char kCpusForm[] = "a number of CPUs such as 0.5 or 2";
constexpr char kPublishForm[] =
    "[published:]target[/protocol] or published=,target=,protocol=,mode=";
constexpr char kMountForm[] =
    "type=bind|volume|tmpfs,source=SRC,target=/DST[,readonly][,OPTION=VALUE...]";
constexpr char kSecretForm[] = "NAME or source=NAME,target=FILE,uid=UID,gid=GID,mode=MODE";
constexpr char kNetworkForm[] = "NAME or name=NAME,alias=ALIAS,driver-opt=KEY=VALUE";

bool IsDigits(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::string Quote(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

// Splits comma-separated fields as Go's encoding/csv does for one line: a field may be
// double-quoted to hold commas ("a,b") and "" inside quotes is a quote.
absl::StatusOr<std::vector<std::string>> SplitCsv(absl::string_view text) {
  std::vector<std::string> fields;
  std::string cur;
  bool quoted = false;
  bool field_start = true;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          cur += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        cur += c;
      }
      continue;
    }
    if (c == '"' && field_start) {
      quoted = true;
      field_start = false;
    } else if (c == ',') {
      fields.push_back(std::move(cur));
      cur.clear();
      field_start = true;
    } else {
      cur += c;
      field_start = false;
    }
  }
  if (quoted) return absl::InvalidArgumentError("a quote is not closed");
  fields.push_back(std::move(cur));
  return fields;
}

// Parses a port number 1..65535.
std::optional<uint32_t> PortNumber(absl::string_view s) {
  uint32_t v = 0;
  if (!IsDigits(s) || !absl::SimpleAtoi(s, &v) || v == 0 || v > 65535) return std::nullopt;
  return v;
}

// A port or a range "a-b" of ports.
struct PortRange {
  uint32_t first = 0;
  uint32_t last = 0;
};

std::optional<PortRange> ParsePortRange(absl::string_view s) {
  std::vector<absl::string_view> parts = absl::StrSplit(s, absl::MaxSplits('-', 1));
  auto first = PortNumber(parts[0]);
  if (!first) return std::nullopt;
  if (parts.size() == 1) return PortRange{*first, *first};
  auto last = PortNumber(parts[1]);
  if (!last || *last < *first) return std::nullopt;
  return PortRange{*first, *last};
}

absl::StatusOr<api::PortProtocol> ParseProtocol(absl::string_view what, absl::string_view value,
                                                absl::string_view text,
                                                absl::string_view expected) {
  const std::string p = absl::AsciiStrToLower(text);
  if (p == "tcp") return api::PORT_PROTOCOL_TCP;
  if (p == "udp") return api::PORT_PROTOCOL_UDP;
  if (p == "sctp") return api::PORT_PROTOCOL_SCTP;
  return InvalidFlag(what, value,
                     absl::StrCat("unknown protocol ", Quote(text), " (use tcp, udp or sctp)"),
                     expected);
}

absl::StatusOr<std::vector<api::PortConfig>> ParsePublishLong(absl::string_view text) {
  auto fields = SplitCsv(text);
  if (!fields.ok()) return InvalidFlag("publish", text, fields.status().message(), kPublishForm);
  api::PortConfig port;
  for (const std::string& field : *fields) {
    std::pair<std::string, std::string> kv = absl::StrSplit(field, absl::MaxSplits('=', 1));
    const std::string key = absl::AsciiStrToLower(kv.first);
    const std::string& val = kv.second;
    if (field.find('=') == std::string::npos || key.empty()) {
      return InvalidFlag("publish", text, absl::StrCat("field ", Quote(field), " is not key=value"),
                         kPublishForm);
    }
    if (key == "target") {
      auto p = PortNumber(val);
      if (!p) {
        return InvalidFlag("publish", text, "the target port must be a number from 1 to 65535",
                           kPublishForm);
      }
      port.set_target_port(*p);
    } else if (key == "published") {
      auto p = PortNumber(val);
      if (!p) {
        return InvalidFlag("publish", text, "the published port must be a number from 1 to 65535",
                           kPublishForm);
      }
      port.set_published_port(*p);
    } else if (key == "protocol") {
      auto proto = ParseProtocol("publish", text, val, kPublishForm);
      if (!proto.ok()) return proto.status();
      port.set_protocol(*proto);
    } else if (key == "mode") {
      const std::string mode = absl::AsciiStrToLower(val);
      if (mode == "ingress") {
        port.set_publish_mode(api::PUBLISH_MODE_INGRESS);
      } else if (mode == "host") {
        port.set_publish_mode(api::PUBLISH_MODE_HOST);
      } else {
        return InvalidFlag("publish", text,
                           absl::StrCat("unknown mode ", Quote(val), " (use ingress or host)"),
                           kPublishForm);
      }
    } else if (key == "name") {
      port.set_name(val);
    } else {
      return InvalidFlag("publish", text, absl::StrCat("unknown field ", Quote(kv.first)),
                         kPublishForm);
    }
  }
  if (port.target_port() == 0) {
    return InvalidFlag("publish", text, "the target port is missing", kPublishForm);
  }
  return std::vector<api::PortConfig>{port};
}

absl::StatusOr<std::vector<api::PortConfig>> ParsePublishShort(absl::string_view text) {
  absl::string_view rest = text;
  api::PortProtocol protocol = api::PORT_PROTOCOL_TCP;
  if (size_t slash = rest.rfind('/'); slash != absl::string_view::npos) {
    auto proto = ParseProtocol("publish", text, rest.substr(slash + 1), kPublishForm);
    if (!proto.ok()) return proto.status();
    protocol = *proto;
    rest = rest.substr(0, slash);
  }
  std::vector<absl::string_view> parts = absl::StrSplit(rest, ':');
  if (parts.size() > 2) {
    return InvalidFlag("publish", text,
                       "publishing on one host address is not supported (a port is published on "
                       "every address of every node)",
                       kPublishForm);
  }
  absl::string_view target_text = parts.back();
  if (target_text.empty()) {
    return InvalidFlag("publish", text, "the target port is missing", kPublishForm);
  }
  auto target = ParsePortRange(target_text);
  if (!target) {
    return InvalidFlag("publish", text,
                       IsDigits(absl::StrReplaceAll(target_text, {{"-", ""}}))
                           ? "the target port must be from 1 to 65535 (a range as low-high)"
                           : "the target port must be a number",
                       kPublishForm);
  }
  std::optional<PortRange> published;
  if (parts.size() == 2) {
    if (parts[0].empty()) {
      return InvalidFlag("publish", text, "the published port is missing before ':'", kPublishForm);
    }
    published = ParsePortRange(parts[0]);
    if (!published) {
      return InvalidFlag("publish", text,
                         IsDigits(absl::StrReplaceAll(parts[0], {{"-", ""}}))
                             ? "the published port must be from 1 to 65535 (a range as low-high)"
                             : "the published port must be a number",
                         kPublishForm);
    }
    if (published->last - published->first != target->last - target->first) {
      return InvalidFlag("publish", text,
                         "the published and target port ranges must have the same length",
                         kPublishForm);
    }
  }
  std::vector<api::PortConfig> ports;
  for (uint32_t i = 0; i <= target->last - target->first; ++i) {
    api::PortConfig port;
    port.set_protocol(protocol);
    port.set_target_port(target->first + i);
    if (published) port.set_published_port(published->first + i);
    port.set_publish_mode(api::PUBLISH_MODE_INGRESS);
    ports.push_back(std::move(port));
  }
  return ports;
}

// The fields of a secret or config reference.
struct FileReference {
  std::string source;
  std::string target;
  std::string uid = "0";
  std::string gid = "0";
  uint32_t mode = 0444;
};

absl::StatusOr<FileReference> ParseFileReference(absl::string_view what, absl::string_view text) {
  FileReference ref;
  if (text.empty()) return InvalidFlag(what, text, "the name is missing", kSecretForm);
  if (text.find('=') == absl::string_view::npos && text.find(',') == absl::string_view::npos) {
    ref.source = std::string(text);
    return ref;
  }
  auto fields = SplitCsv(text);
  if (!fields.ok()) return InvalidFlag(what, text, fields.status().message(), kSecretForm);
  for (const std::string& field : *fields) {
    size_t eq = field.find('=');
    if (eq == std::string::npos || eq == 0) {
      return InvalidFlag(what, text, absl::StrCat("field ", Quote(field), " is not key=value"),
                         kSecretForm);
    }
    const std::string key = absl::AsciiStrToLower(field.substr(0, eq));
    const std::string val = field.substr(eq + 1);
    if (key == "source" || key == "src") {
      ref.source = val;
    } else if (key == "target") {
      ref.target = val;
    } else if (key == "uid" || key == "gid") {
      if (!IsDigits(val)) {
        return InvalidFlag(what, text, absl::StrCat(key, " must be a number"), kSecretForm);
      }
      (key == "uid" ? ref.uid : ref.gid) = val;
    } else if (key == "mode") {
      auto mode = ParseFileMode(what, val);
      if (!mode.ok()) {
        return InvalidFlag(what, text, "mode must be a number such as 0444 (octal)", kSecretForm);
      }
      ref.mode = *mode;
    } else {
      return InvalidFlag(what, text, absl::StrCat("unknown field ", Quote(field.substr(0, eq))),
                         kSecretForm);
    }
  }
  if (ref.source.empty()) {
    return InvalidFlag(what, text, "source (the name) is missing", kSecretForm);
  }
  return ref;
}

// Go's leadingInt: the decimal digits at the front of s, false on overflow.
bool LeadingInt(absl::string_view* s, uint64_t* value) {
  uint64_t v = 0;
  size_t i = 0;
  for (; i < s->size(); ++i) {
    const char c = (*s)[i];
    if (c < '0' || c > '9') break;
    if (v > (uint64_t{1} << 63) / 10) return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
    if (v > (uint64_t{1} << 63)) return false;
  }
  *value = v;
  s->remove_prefix(i);
  return true;
}

}  // namespace

absl::Status InvalidFlag(absl::string_view what, absl::string_view value, absl::string_view problem,
                         absl::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat("invalid ", what, " ", Quote(value), ": ", problem,
                                                 " (expected ", expected, ")"));
}

absl::StatusOr<absl::Duration> ParseDuration(absl::string_view what, absl::string_view text) {
  // A port of Go's time.ParseDuration.
  absl::string_view s = text;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    if (s[0] == '-') return InvalidFlag(what, text, "it must not be negative", kDurationForm);
    s.remove_prefix(1);
  }
  if (s == "0") return absl::ZeroDuration();
  if (s.empty()) return InvalidFlag(what, text, "it is empty", kDurationForm);
  uint64_t total = 0;
  constexpr uint64_t kMax = uint64_t{1} << 63;
  while (!s.empty()) {
    if (!(s[0] == '.' || (s[0] >= '0' && s[0] <= '9'))) {
      return InvalidFlag(what, text, "it must start with a number", kDurationForm);
    }
    size_t before = s.size();
    uint64_t v = 0;
    if (!LeadingInt(&s, &v)) return InvalidFlag(what, text, "it is too large", kDurationForm);
    const bool pre = before != s.size();
    bool post = false;
    uint64_t f = 0;
    double scale = 1;
    if (!s.empty() && s[0] == '.') {
      s.remove_prefix(1);
      size_t i = 0;
      bool overflow = false;
      for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
        if (overflow) continue;
        if (f > (kMax - 1) / 10) {
          overflow = true;  // further digits no longer matter
          continue;
        }
        f = f * 10 + static_cast<uint64_t>(s[i] - '0');
        scale *= 10;
      }
      post = i > 0;
      s.remove_prefix(i);
    }
    if (!pre && !post) return InvalidFlag(what, text, "a number is missing", kDurationForm);
    size_t i = 0;
    while (i < s.size() && s[i] != '.' && !(s[i] >= '0' && s[i] <= '9')) ++i;
    if (i == 0) {
      return InvalidFlag(what, text, "the unit is missing (ns, us, ms, s, m or h)", kDurationForm);
    }
    const absl::string_view unit_text = s.substr(0, i);
    s.remove_prefix(i);
    uint64_t unit = 0;
    if (unit_text == "ns") {
      unit = 1;
    } else if (unit_text == "us" || unit_text == "\xc2\xb5s" || unit_text == "\xce\xbcs") {
      unit = 1000;
    } else if (unit_text == "ms") {
      unit = 1000 * 1000;
    } else if (unit_text == "s") {
      unit = 1000 * 1000 * 1000;
    } else if (unit_text == "m") {
      unit = uint64_t{60} * 1000 * 1000 * 1000;
    } else if (unit_text == "h") {
      unit = uint64_t{3600} * 1000 * 1000 * 1000;
    } else {
      return InvalidFlag(
          what, text,
          absl::StrCat("unknown unit ", Quote(unit_text), " (use ns, us, ms, s, m or h)"),
          kDurationForm);
    }
    if (v > kMax / unit) return InvalidFlag(what, text, "it is too large", kDurationForm);
    v *= unit;
    if (f > 0) {
      v += static_cast<uint64_t>(static_cast<double>(f) * (static_cast<double>(unit) / scale));
      if (v > kMax) return InvalidFlag(what, text, "it is too large", kDurationForm);
    }
    total += v;
    if (total >= kMax) return InvalidFlag(what, text, "it is too large", kDurationForm);
  }
  return absl::Nanoseconds(static_cast<int64_t>(total));
}

void SetProtoDuration(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t nanos = absl::ToInt64Nanoseconds(d);
  out->set_seconds(nanos / 1'000'000'000);
  out->set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
}

std::string FormatGoDuration(absl::Duration d) {
  // Go's Duration.String().
  const bool neg = d < absl::ZeroDuration();
  uint64_t u = neg ? static_cast<uint64_t>(-absl::ToInt64Nanoseconds(d))
                   : static_cast<uint64_t>(absl::ToInt64Nanoseconds(d));
  auto fraction = [](uint64_t v, int prec, std::string* out) {
    // Appends "." and the prec low digits of v without trailing zeros; returns v / 10^prec.
    std::string digits;
    bool print = false;
    for (int i = 0; i < prec; ++i) {
      const int digit = static_cast<int>(v % 10);
      print = print || digit != 0;
      if (print) digits.insert(digits.begin(), static_cast<char>('0' + digit));
      v /= 10;
    }
    if (print) *out = "." + digits + *out;
    return v;
  };
  std::string out;
  if (u < 1000 * 1000 * 1000) {
    if (u == 0) return "0s";
    int prec = 0;
    if (u < 1000) {
      out = "ns";
    } else if (u < 1000 * 1000) {
      prec = 3;
      out = "\xc2\xb5s";
    } else {
      prec = 6;
      out = "ms";
    }
    u = fraction(u, prec, &out);
    out = absl::StrCat(u, out);
  } else {
    out = "s";
    u = fraction(u, 9, &out);
    out = absl::StrCat(u % 60, out);
    u /= 60;
    if (u > 0) {
      out = absl::StrCat(u % 60, "m", out);
      u /= 60;
      if (u > 0) out = absl::StrCat(u, "h", out);
    }
  }
  return neg ? "-" + out : out;
}

absl::StatusOr<int64_t> ParseBytes(absl::string_view what, absl::string_view text) {
  // Docker's units.RAMInBytes: ^(\d+(\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$
  absl::string_view s = text;
  size_t i = 0;
  while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0) return InvalidFlag(what, text, "it must start with a number", kBytesForm);
  if (i < s.size() && s[i] == '.') {
    size_t j = i + 1;
    while (j < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[j]))) ++j;
    if (j == i + 1) return InvalidFlag(what, text, "digits must follow the '.'", kBytesForm);
    i = j;
  }
  const std::string number(s.substr(0, i));
  absl::string_view unit = s.substr(i);
  if (absl::ConsumePrefix(&unit, " ") && unit.empty()) {
    return InvalidFlag(what, text, "the unit is missing after the space", kBytesForm);
  }
  double multiplier = 1;
  if (!unit.empty()) {
    switch (absl::ascii_tolower(static_cast<unsigned char>(unit[0]))) {
      case 'k':
        multiplier = 1024.0;
        unit.remove_prefix(1);
        break;
      case 'm':
        multiplier = 1024.0 * 1024;
        unit.remove_prefix(1);
        break;
      case 'g':
        multiplier = 1024.0 * 1024 * 1024;
        unit.remove_prefix(1);
        break;
      case 't':
        multiplier = 1024.0 * 1024 * 1024 * 1024;
        unit.remove_prefix(1);
        break;
      case 'p':
        multiplier = 1024.0 * 1024 * 1024 * 1024 * 1024;
        unit.remove_prefix(1);
        break;
      default:
        break;
    }
    if (!unit.empty() && (unit[0] == 'i' || unit[0] == 'I')) unit.remove_prefix(1);
    if (!unit.empty() && (unit[0] == 'b' || unit[0] == 'B')) unit.remove_prefix(1);
    if (!unit.empty()) {
      return InvalidFlag(what, text, absl::StrCat("unknown unit ", Quote(s.substr(i))), kBytesForm);
    }
  }
  double value = 0;
  if (!absl::SimpleAtod(number, &value)) {
    return InvalidFlag(what, text, "it must start with a number", kBytesForm);
  }
  const double bytes = value * multiplier;
  if (bytes >= 9.2e18) return InvalidFlag(what, text, "it is too large", kBytesForm);
  return static_cast<int64_t>(bytes);
}

absl::StatusOr<int64_t> ParseNanoCpus(absl::string_view what, absl::string_view text) {
  absl::string_view s = text;
  if (absl::StartsWith(s, "-"))
    return InvalidFlag(what, text, "it must not be negative", kCpusForm);
  std::vector<absl::string_view> parts = absl::StrSplit(s, absl::MaxSplits('.', 1));
  absl::string_view whole = parts[0];
  absl::string_view frac = parts.size() > 1 ? parts[1] : absl::string_view();
  if ((whole.empty() && frac.empty()) || (!whole.empty() && !IsDigits(whole)) ||
      (!frac.empty() && !IsDigits(frac)) || (parts.size() > 1 && whole.empty() && frac.empty())) {
    return InvalidFlag(what, text, "it is not a number", kCpusForm);
  }
  while (frac.size() > 9 && frac.back() == '0') frac.remove_suffix(1);
  if (frac.size() > 9) {
    return InvalidFlag(what, text, "it is too precise (at most 9 decimal places)", kCpusForm);
  }
  uint64_t units = 0;
  if (!whole.empty() && (!absl::SimpleAtoi(whole, &units) || units > 9'000'000'000ULL)) {
    return InvalidFlag(what, text, "it is too large", kCpusForm);
  }
  uint64_t nanos = 0;
  if (!frac.empty()) {
    std::string padded(frac);
    padded.resize(9, '0');
    absl::SimpleAtoi(padded, &nanos);
  }
  return static_cast<int64_t>(units * 1'000'000'000ULL + nanos);
}

absl::StatusOr<uint64_t> ParseUint(absl::string_view what, absl::string_view text) {
  uint64_t v = 0;
  if (!IsDigits(text)) {
    return InvalidFlag(what, text, "it is not a non-negative whole number", "a number such as 3");
  }
  if (!absl::SimpleAtoi(text, &v)) {
    return InvalidFlag(what, text, "it is too large", "a number such as 3");
  }
  return v;
}

absl::StatusOr<int64_t> ParseInt(absl::string_view what, absl::string_view text) {
  int64_t v = 0;
  absl::string_view digits = text;
  absl::ConsumePrefix(&digits, "-");
  if (!IsDigits(digits) || !absl::SimpleAtoi(text, &v)) {
    return InvalidFlag(what, text, "it is not a whole number", "a number such as 3 or -1");
  }
  return v;
}

absl::StatusOr<float> ParseRatio(absl::string_view what, absl::string_view text) {
  double v = 0;
  if (text.empty() || !absl::SimpleAtod(text, &v) || std::isnan(v)) {
    return InvalidFlag(what, text, "it is not a number", "a fraction from 0 to 1 such as 0.2");
  }
  if (v < 0 || v > 1) {
    return InvalidFlag(what, text, "it is out of range", "a fraction from 0 to 1 such as 0.2");
  }
  return static_cast<float>(v);
}

absl::StatusOr<bool> ParseBool(absl::string_view what, absl::string_view text) {
  if (text == "1" || text == "t" || text == "T" || text == "TRUE" || text == "true" ||
      text == "True") {
    return true;
  }
  if (text == "0" || text == "f" || text == "F" || text == "FALSE" || text == "false" ||
      text == "False") {
    return false;
  }
  return InvalidFlag(what, text, "it is not a boolean", "true or false");
}

absl::StatusOr<uint32_t> ParseFileMode(absl::string_view what, absl::string_view text) {
  constexpr char kForm[] = "permission bits such as 0444 (octal)";
  absl::string_view s = text;
  int base = 10;
  if (absl::ConsumePrefix(&s, "0x") || absl::ConsumePrefix(&s, "0X")) {
    base = 16;
  } else if (absl::ConsumePrefix(&s, "0o") || absl::ConsumePrefix(&s, "0O")) {
    base = 8;
  } else if (s.size() > 1 && s[0] == '0') {
    base = 8;
    s.remove_prefix(1);
  }
  if (s.empty()) return InvalidFlag(what, text, "it is not a number", kForm);
  uint64_t v = 0;
  for (char c : s) {
    int digit = -1;
    if (c >= '0' && c <= '9') digit = c - '0';
    if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    if (digit < 0 || digit >= base) return InvalidFlag(what, text, "it is not a number", kForm);
    v = v * static_cast<uint64_t>(base) + static_cast<uint64_t>(digit);
    if (v > 07777) return InvalidFlag(what, text, "it is larger than 07777", kForm);
  }
  return static_cast<uint32_t>(v);
}

absl::StatusOr<api::RestartCondition> ParseRestartCondition(absl::string_view text) {
  if (text == "none") return api::RESTART_CONDITION_NONE;
  if (text == "on-failure") return api::RESTART_CONDITION_ON_FAILURE;
  if (text == "any") return api::RESTART_CONDITION_ANY;
  return InvalidFlag("restart-condition", text, "unknown condition", "none, on-failure or any");
}

absl::StatusOr<api::UpdateFailureAction> ParseFailureAction(absl::string_view what,
                                                            absl::string_view text,
                                                            bool allow_rollback) {
  if (text == "pause") return api::UPDATE_FAILURE_ACTION_PAUSE;
  if (text == "continue") return api::UPDATE_FAILURE_ACTION_CONTINUE;
  if (text == "rollback" && allow_rollback) return api::UPDATE_FAILURE_ACTION_ROLLBACK;
  return InvalidFlag(what, text, "unknown action",
                     allow_rollback ? "pause, continue or rollback" : "pause or continue");
}

absl::StatusOr<api::UpdateOrder> ParseUpdateOrder(absl::string_view what, absl::string_view text) {
  if (text == "stop-first") return api::UPDATE_ORDER_STOP_FIRST;
  if (text == "start-first") return api::UPDATE_ORDER_START_FIRST;
  return InvalidFlag(what, text, "unknown order", "start-first or stop-first");
}

absl::StatusOr<api::NodeAvailability> ParseAvailability(absl::string_view text) {
  const std::string t = absl::AsciiStrToLower(text);
  if (t == "active") return api::NODE_AVAILABILITY_ACTIVE;
  if (t == "pause") return api::NODE_AVAILABILITY_PAUSE;
  if (t == "drain") return api::NODE_AVAILABILITY_DRAIN;
  return InvalidFlag("availability", text, "unknown availability", "active, pause or drain");
}

absl::StatusOr<api::NodeRole> ParseRole(absl::string_view text) {
  const std::string t = absl::AsciiStrToLower(text);
  if (t == "worker") return api::NODE_ROLE_WORKER;
  if (t == "manager") return api::NODE_ROLE_MANAGER;
  return InvalidFlag("role", text, "unknown role", "worker or manager");
}

absl::StatusOr<api::ResolutionMode> ParseEndpointMode(absl::string_view text) {
  const std::string t = absl::AsciiStrToLower(text);
  if (t == "vip") return api::RESOLUTION_MODE_VIP;
  if (t == "dnsrr") return api::RESOLUTION_MODE_DNSRR;
  return InvalidFlag("endpoint-mode", text, "unknown mode", "vip or dnsrr");
}

absl::StatusOr<std::vector<api::PortConfig>> ParsePublish(absl::string_view text) {
  if (text.empty()) return InvalidFlag("publish", text, "it is empty", kPublishForm);
  if (text.find('=') != absl::string_view::npos) return ParsePublishLong(text);
  return ParsePublishShort(text);
}

absl::StatusOr<api::Mount> ParseMount(absl::string_view text) {
  auto fields = SplitCsv(text);
  if (!fields.ok()) return InvalidFlag("mount", text, fields.status().message(), kMountForm);
  api::Mount mount;
  std::string type = "volume";
  bool bind_options = false, volume_options = false, tmpfs_options = false;
  auto bad = [&](absl::string_view problem) {
    return InvalidFlag("mount", text, problem, kMountForm);
  };
  for (const std::string& field : *fields) {
    if (field.empty()) continue;
    const size_t eq = field.find('=');
    const std::string key = absl::AsciiStrToLower(field.substr(0, eq));
    if (eq == std::string::npos) {
      if (key == "readonly" || key == "ro") {
        mount.set_readonly(true);
      } else if (key == "volume-nocopy") {
        mount.mutable_volume_options()->set_no_copy(true);
        volume_options = true;
      } else if (key == "bind-nonrecursive") {
        mount.mutable_bind_options()->set_non_recursive(true);
        bind_options = true;
      } else {
        return bad(absl::StrCat("field ", Quote(field), " is not key=value"));
      }
      continue;
    }
    const std::string val = field.substr(eq + 1);
    if (key == "type") {
      type = absl::AsciiStrToLower(val);
    } else if (key == "source" || key == "src") {
      mount.set_source(val);
    } else if (key == "target" || key == "dst" || key == "destination") {
      mount.set_target(val);
    } else if (key == "readonly" || key == "ro") {
      auto b = ParseBool(key, val);
      if (!b.ok()) return bad(absl::StrCat(key, " must be true or false"));
      mount.set_readonly(*b);
    } else if (key == "consistency") {
      // Docker accepts it for compatibility with Docker Desktop; it means nothing on Linux.
    } else if (key == "bind-propagation") {
      static const std::pair<const char*, api::MountPropagation> kModes[] = {
          {"rprivate", api::MOUNT_PROPAGATION_RPRIVATE},
          {"private", api::MOUNT_PROPAGATION_PRIVATE},
          {"rshared", api::MOUNT_PROPAGATION_RSHARED},
          {"shared", api::MOUNT_PROPAGATION_SHARED},
          {"rslave", api::MOUNT_PROPAGATION_RSLAVE},
          {"slave", api::MOUNT_PROPAGATION_SLAVE}};
      bool found = false;
      for (const auto& [name, mode] : kModes) {
        if (absl::AsciiStrToLower(val) == name) {
          mount.mutable_bind_options()->set_propagation(mode);
          found = true;
        }
      }
      if (!found) {
        return bad(absl::StrCat("unknown bind-propagation ", Quote(val),
                                " (use rprivate, private, rshared, shared, rslave or slave)"));
      }
      bind_options = true;
    } else if (key == "bind-nonrecursive") {
      auto b = ParseBool(key, val);
      if (!b.ok()) return bad("bind-nonrecursive must be true or false");
      mount.mutable_bind_options()->set_non_recursive(*b);
      bind_options = true;
    } else if (key == "volume-driver") {
      mount.mutable_volume_options()->mutable_driver_config()->set_name(val);
      volume_options = true;
    } else if (key == "volume-label" || key == "volume-opt") {
      const size_t eq2 = val.find('=');
      const std::string k = val.substr(0, eq2);
      const std::string v = eq2 == std::string::npos ? "" : val.substr(eq2 + 1);
      if (k.empty()) return bad(absl::StrCat(key, " needs KEY=VALUE"));
      if (key == "volume-label") {
        (*mount.mutable_volume_options()->mutable_labels())[k] = v;
      } else {
        (*mount.mutable_volume_options()->mutable_driver_config()->mutable_options())[k] = v;
      }
      volume_options = true;
    } else if (key == "volume-nocopy") {
      auto b = ParseBool(key, val);
      if (!b.ok()) return bad("volume-nocopy must be true or false");
      mount.mutable_volume_options()->set_no_copy(*b);
      volume_options = true;
    } else if (key == "volume-subpath") {
      mount.mutable_volume_options()->set_subpath(val);
      volume_options = true;
    } else if (key == "tmpfs-size") {
      auto size = ParseBytes("tmpfs-size", val);
      if (!size.ok())
        return bad(absl::StrCat("tmpfs-size ", Quote(val), " is not a size such as 64m"));
      mount.mutable_tmpfs_options()->set_size_bytes(*size);
      tmpfs_options = true;
    } else if (key == "tmpfs-mode") {
      // Always octal, as in Docker (strconv.ParseUint(val, 8, 32)).
      uint32_t mode = 0;
      bool ok = !val.empty() && val.size() <= 5;
      for (char c : val) {
        ok = ok && c >= '0' && c <= '7';
        mode = mode * 8 + static_cast<uint32_t>(c - '0');
      }
      if (!ok) return bad(absl::StrCat("tmpfs-mode ", Quote(val), " is not octal such as 1777"));
      mount.mutable_tmpfs_options()->set_mode(mode);
      tmpfs_options = true;
    } else {
      return bad(absl::StrCat("unknown field ", Quote(field.substr(0, eq))));
    }
  }
  if (type == "bind") {
    mount.set_type(api::MOUNT_TYPE_BIND);
  } else if (type == "volume") {
    mount.set_type(api::MOUNT_TYPE_VOLUME);
  } else if (type == "tmpfs") {
    mount.set_type(api::MOUNT_TYPE_TMPFS);
  } else {
    return bad(absl::StrCat("unknown type ", Quote(type), " (use bind, volume or tmpfs)"));
  }
  if (mount.target().empty()) return bad("the target is missing");
  if (mount.target()[0] != '/') return bad("the target must be an absolute path");
  if (type == "bind" && mount.source().empty()) return bad("a bind mount needs a source");
  if (type == "bind" && mount.source()[0] != '/') {
    return bad("the source of a bind mount must be an absolute path");
  }
  if (type == "tmpfs" && !mount.source().empty()) return bad("a tmpfs mount has no source");
  if (volume_options && type != "volume") {
    return bad(absl::StrCat("volume-* options do not apply to a ", type, " mount"));
  }
  if (bind_options && type != "bind") {
    return bad(absl::StrCat("bind-* options do not apply to a ", type, " mount"));
  }
  if (tmpfs_options && type != "tmpfs") {
    return bad(absl::StrCat("tmpfs-* options do not apply to a ", type, " mount"));
  }
  return mount;
}

std::string EnvKey(absl::string_view entry) {
  return std::string(entry.substr(0, entry.find('=')));
}

absl::StatusOr<std::string> ParseEnv(absl::string_view text, const EnvLookup& lookup) {
  constexpr char kForm[] = "KEY=VALUE or KEY";
  const std::string key = EnvKey(text);
  if (key.empty()) return InvalidFlag("env", text, "the variable name is missing", kForm);
  if (absl::StrContains(key, " ") || absl::StrContains(key, "\t")) {
    return InvalidFlag("env", text, "the variable name contains whitespace", kForm);
  }
  if (text.find('=') != absl::string_view::npos) return std::string(text);
  if (lookup) {
    if (std::optional<std::string> value = lookup(key)) return absl::StrCat(key, "=", *value);
  }
  return key;
}

absl::StatusOr<std::vector<std::string>> ParseEnvFile(absl::string_view name,
                                                      absl::string_view contents,
                                                      const EnvLookup& lookup) {
  std::vector<std::string> entries;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    ++line_number;
    absl::ConsumeSuffix(&line, "\r");
    line = absl::StripLeadingAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    const size_t eq = line.find('=');
    const absl::string_view key = line.substr(0, eq);
    if (key.empty() || key.find_first_of(" \t") != absl::string_view::npos) {
      return InvalidFlag(
          "env-file", name,
          absl::StrCat("line ", line_number, ": ", Quote(key),
                       key.empty() ? " has no variable name" : " contains whitespace"),
          "lines of KEY=VALUE, KEY, or # comments");
    }
    if (eq != absl::string_view::npos) {
      entries.emplace_back(line);
    } else if (lookup) {
      if (std::optional<std::string> value = lookup(std::string(key))) {
        entries.push_back(absl::StrCat(key, "=", *value));
      }
    }
  }
  return entries;
}

absl::StatusOr<std::pair<std::string, std::string>> ParseLabel(absl::string_view what,
                                                               absl::string_view text) {
  const size_t eq = text.find('=');
  std::string key(text.substr(0, eq));
  if (key.empty()) return InvalidFlag(what, text, "the key is missing", "KEY=VALUE or KEY");
  std::string value = eq == absl::string_view::npos ? "" : std::string(text.substr(eq + 1));
  return std::make_pair(std::move(key), std::move(value));
}

absl::StatusOr<std::pair<std::string, std::string>> ParseKeyValue(absl::string_view what,
                                                                  absl::string_view text) {
  const size_t eq = text.find('=');
  if (eq == absl::string_view::npos) {
    return InvalidFlag(what, text, "the '=' is missing", "KEY=VALUE");
  }
  if (eq == 0) return InvalidFlag(what, text, "the key is missing", "KEY=VALUE");
  return std::make_pair(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
}

absl::StatusOr<api::SecretReference> ParseSecretReference(absl::string_view text) {
  auto ref = ParseFileReference("secret", text);
  if (!ref.ok()) return ref.status();
  api::SecretReference out;
  out.set_secret_name(ref->source);
  api::FileTarget* file = out.mutable_file();
  file->set_name(ref->target.empty() ? ref->source : ref->target);
  file->set_uid(ref->uid);
  file->set_gid(ref->gid);
  file->set_mode(ref->mode);
  return out;
}

absl::StatusOr<api::ConfigReference> ParseConfigReference(absl::string_view text) {
  auto ref = ParseFileReference("config", text);
  if (!ref.ok()) return ref.status();
  api::ConfigReference out;
  out.set_config_name(ref->source);
  api::FileTarget* file = out.mutable_file();
  std::string target = ref->target.empty() ? ref->source : ref->target;
  if (target[0] != '/') target = "/" + target;
  file->set_name(target);
  file->set_uid(ref->uid);
  file->set_gid(ref->gid);
  file->set_mode(ref->mode);
  return out;
}

absl::StatusOr<api::NetworkAttachmentConfig> ParseNetworkAttachment(absl::string_view text) {
  api::NetworkAttachmentConfig net;
  if (text.empty()) return InvalidFlag("network", text, "the name is missing", kNetworkForm);
  if (text.find('=') == absl::string_view::npos) {
    if (text.find(',') != absl::string_view::npos) {
      return InvalidFlag("network", text, "a network name has no ','", kNetworkForm);
    }
    net.set_target(std::string(text));
    return net;
  }
  auto fields = SplitCsv(text);
  if (!fields.ok()) return InvalidFlag("network", text, fields.status().message(), kNetworkForm);
  for (const std::string& field : *fields) {
    const size_t eq = field.find('=');
    if (eq == std::string::npos || eq == 0) {
      return InvalidFlag("network", text, absl::StrCat("field ", Quote(field), " is not key=value"),
                         kNetworkForm);
    }
    const std::string key = absl::AsciiStrToLower(field.substr(0, eq));
    const std::string val = field.substr(eq + 1);
    if (key == "name" || key == "target") {
      net.set_target(val);
    } else if (key == "alias") {
      net.add_aliases(val);
    } else if (key == "driver-opt") {
      auto kv = ParseKeyValue("network", val);
      if (!kv.ok()) return InvalidFlag("network", text, "driver-opt needs KEY=VALUE", kNetworkForm);
      (*net.mutable_driver_attachment_opts())[kv->first] = kv->second;
    } else {
      return InvalidFlag("network", text,
                         absl::StrCat("unknown field ", Quote(field.substr(0, eq))), kNetworkForm);
    }
  }
  if (net.target().empty())
    return InvalidFlag("network", text, "the name is missing", kNetworkForm);
  return net;
}

absl::StatusOr<api::PlacementPreference> ParsePlacementPreference(absl::string_view text) {
  constexpr char kForm[] = "spread=ATTRIBUTE, e.g. spread=node.labels.datacenter";
  const size_t eq = text.find('=');
  if (eq == absl::string_view::npos) {
    return InvalidFlag("placement-pref", text, "the '=' is missing", kForm);
  }
  if (text.substr(0, eq) != "spread") {
    return InvalidFlag("placement-pref", text,
                       absl::StrCat("unknown strategy ", Quote(text.substr(0, eq))), kForm);
  }
  if (eq + 1 == text.size())
    return InvalidFlag("placement-pref", text, "the attribute is missing", kForm);
  api::PlacementPreference pref;
  pref.mutable_spread()->set_spread_descriptor(std::string(text.substr(eq + 1)));
  return pref;
}

absl::StatusOr<api::Ulimit> ParseUlimit(absl::string_view text) {
  constexpr char kForm[] = "NAME=SOFT[:HARD], e.g. nofile=1024:2048";
  const size_t eq = text.find('=');
  if (eq == absl::string_view::npos || eq == 0) {
    return InvalidFlag("ulimit", text, "the name or the '=' is missing", kForm);
  }
  static const char* const kNames[] = {
      "core",   "cpu",   "data", "fsize",  "locks",  "memlock",    "msgqueue", "nice",
      "nofile", "nproc", "rss",  "rtprio", "rttime", "sigpending", "stack",    "as"};
  const std::string name = absl::AsciiStrToLower(text.substr(0, eq));
  bool known = false;
  for (const char* n : kNames) known = known || name == n;
  if (!known)
    return InvalidFlag("ulimit", text, absl::StrCat("unknown limit ", Quote(name)), kForm);
  std::vector<absl::string_view> values = absl::StrSplit(text.substr(eq + 1), ':');
  if (values.size() > 2) return InvalidFlag("ulimit", text, "too many ':'", kForm);
  api::Ulimit limit;
  limit.set_name(name);
  int64_t soft = 0, hard = 0;
  if (!absl::SimpleAtoi(values[0], &soft)) {
    return InvalidFlag("ulimit", text, "the soft limit is not a number", kForm);
  }
  hard = soft;
  if (values.size() == 2 && !absl::SimpleAtoi(values[1], &hard)) {
    return InvalidFlag("ulimit", text, "the hard limit is not a number", kForm);
  }
  if (soft > hard && hard != -1) {
    return InvalidFlag("ulimit", text, "the soft limit is above the hard limit", kForm);
  }
  limit.set_soft(soft);
  limit.set_hard(hard);
  return limit;
}

absl::StatusOr<std::string> ParseExtraHost(absl::string_view text) {
  constexpr char kForm[] = "HOSTNAME:IP, e.g. db:10.0.0.5";
  size_t sep = text.find('=');
  if (sep == absl::string_view::npos) sep = text.find(':');
  if (sep == absl::string_view::npos || sep == 0) {
    return InvalidFlag("host", text, "the hostname or the ':' is missing", kForm);
  }
  const std::string host(text.substr(0, sep));
  std::string ip(text.substr(sep + 1));
  if (ip.size() > 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  unsigned char buf[16];
  if (inet_pton(AF_INET, ip.c_str(), buf) != 1 && inet_pton(AF_INET6, ip.c_str(), buf) != 1) {
    return InvalidFlag("host", text, absl::StrCat(Quote(ip), " is not an IP address"), kForm);
  }
  return absl::StrCat(ip, " ", host);
}

std::string NormalizeCapability(absl::string_view text) {
  std::string cap = absl::AsciiStrToUpper(text);
  if (cap == "ALL" || absl::StartsWith(cap, "CAP_")) return cap;
  return "CAP_" + cap;
}

absl::StatusOr<std::vector<std::string>> ShellSplit(absl::string_view what,
                                                    absl::string_view text) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quote == '\'') {
      if (c == '\'') {
        quote = 0;
      } else {
        cur += c;
      }
      continue;
    }
    if (quote == '"') {
      if (c == '"') {
        quote = 0;
      } else if (c == '\\' && i + 1 < text.size() &&
                 (text[i + 1] == '"' || text[i + 1] == '\\' || text[i + 1] == '$' ||
                  text[i + 1] == '`')) {
        cur += text[++i];
      } else {
        cur += c;
      }
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::move(cur));
      cur.clear();
      in_word = false;
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == '\\') {
      if (i + 1 == text.size()) {
        return InvalidFlag(what, text, "it ends with a lone backslash", "a shell-quoted command");
      }
      cur += text[++i];
      in_word = true;
    } else {
      cur += c;
      in_word = true;
    }
  }
  if (quote != 0) {
    return InvalidFlag(what, text,
                       absl::StrCat("a ", std::string(1, quote), " quote is not closed"),
                       "a shell-quoted command");
  }
  if (in_word) words.push_back(std::move(cur));
  return words;
}

}  // namespace swarm::cli

#include "common/template.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace swarm::tmpl {

// ---- Value ----

Value Value::Nil() {
  Value v;
  v.kind_ = Kind::kNil;
  return v;
}

Value Value::Bool(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.bool_ = b;
  return v;
}

Value Value::Int(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.int_ = i;
  return v;
}

Value Value::Float(double d) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.float_ = d;
  return v;
}

Value Value::String(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.string_ = std::move(s);
  return v;
}

Value Value::List(std::vector<Value> items) {
  Value v;
  v.kind_ = Kind::kList;
  v.list_ = std::make_shared<const std::vector<Value>>(std::move(items));
  return v;
}

Value Value::Map(std::map<std::string, Value> entries) {
  Value v;
  v.kind_ = Kind::kMap;
  v.map_ = std::make_shared<const std::map<std::string, Value>>(std::move(entries));
  return v;
}

Value Value::Struct(std::string type_name, std::vector<Field> fields) {
  Value v;
  v.kind_ = Kind::kStruct;
  v.string_ = std::move(type_name);
  v.fields_ = std::make_shared<const std::vector<Field>>(std::move(fields));
  return v;
}

std::string Value::TypeName() const {
  switch (kind_) {
    case Kind::kInvalid:
      return "<no value>";
    case Kind::kNil:
      return "nil";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float64";
    case Kind::kString:
      return "string";
    case Kind::kList:
      return "[]interface {}";
    case Kind::kMap:
      return "map[string]interface {}";
    case Kind::kStruct:
      return string_.empty() ? "struct" : string_;
  }
  return "?";
}

const Value* Value::FindField(absl::string_view name) const {
  if (kind_ != Kind::kStruct) return nullptr;
  for (const Field& f : *fields_) {
    if (f.name == name) return &f.value;
  }
  // Go promotes the fields of embedded structs (breadth first; ours are shallow).
  for (const Field& f : *fields_) {
    if (!f.embedded) continue;
    if (const Value* v = f.value.FindField(name); v != nullptr) return v;
  }
  return nullptr;
}

bool Value::Truth() const {
  switch (kind_) {
    case Kind::kInvalid:
    case Kind::kNil:
      return false;
    case Kind::kBool:
      return bool_;
    case Kind::kInt:
      return int_ != 0;
    case Kind::kFloat:
      return float_ != 0;
    case Kind::kString:
      return !string_.empty();
    case Kind::kList:
      return !list_->empty();
    case Kind::kMap:
      return !map_->empty();
    case Kind::kStruct:
      return true;
  }
  return false;
}

namespace {

// Go's %v of a float64 (%g, shortest): the shortest representation, in exponent form below
// 1e-4 and from 1e6 on ("1e+06", exponents of at least two digits).
std::string FormatFloat(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  if (ec != std::errc()) return "?";
  std::string sci(buf, end);
  const size_t e = sci.find('e');
  int exp = 0;
  (void)absl::SimpleAtoi(sci.substr(e + 1), &exp);
  if (exp < -4 || exp >= 6) {
    std::string mantissa = sci.substr(0, e);
    std::string digits = std::to_string(exp < 0 ? -exp : exp);
    if (digits.size() < 2) digits = "0" + digits;
    return absl::StrCat(mantissa, "e", exp < 0 ? "-" : "+", digits);
  }
  auto [fend, fec] = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::fixed);
  if (fec != std::errc()) return sci;
  return std::string(buf, fend);
}

nlohmann::ordered_json ToJson(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kInvalid:
    case Value::Kind::kNil:
      return nullptr;
    case Value::Kind::kBool:
      return v.bool_value();
    case Value::Kind::kInt:
      return v.int_value();
    case Value::Kind::kFloat:
      return v.float_value();
    case Value::Kind::kString:
      return v.string_value();
    case Value::Kind::kList: {
      nlohmann::ordered_json a = nlohmann::ordered_json::array();
      for (const Value& item : v.list()) a.push_back(ToJson(item));
      return a;
    }
    case Value::Kind::kMap: {
      nlohmann::ordered_json o = nlohmann::ordered_json::object();
      for (const auto& [k, item] : v.map()) o[k] = ToJson(item);
      return o;
    }
    case Value::Kind::kStruct: {
      nlohmann::ordered_json o = nlohmann::ordered_json::object();
      for (const Value::Field& f : v.fields()) {
        if (f.embedded && f.value.kind() == Value::Kind::kStruct) {
          nlohmann::ordered_json inner = ToJson(f.value);
          for (auto& [k, item] : inner.items()) {
            if (!o.contains(k)) o[k] = item;
          }
        } else if (!f.embedded || f.value.is_valid()) {
          o[f.name] = ToJson(f.value);
        }
      }
      return o;
    }
  }
  return nullptr;
}

}  // namespace

std::string Value::Print() const {
  switch (kind_) {
    case Kind::kInvalid:
      return "<no value>";
    case Kind::kNil:
      return "<nil>";
    case Kind::kBool:
      return bool_ ? "true" : "false";
    case Kind::kInt:
      return std::to_string(int_);
    case Kind::kFloat:
      return FormatFloat(float_);
    case Kind::kString:
      return string_;
    case Kind::kList: {
      std::vector<std::string> parts;
      for (const Value& v : *list_) parts.push_back(v.Print());
      return absl::StrCat("[", absl::StrJoin(parts, " "), "]");
    }
    case Kind::kMap: {
      std::vector<std::string> parts;
      for (const auto& [k, v] : *map_) parts.push_back(absl::StrCat(k, ":", v.Print()));
      return absl::StrCat("map[", absl::StrJoin(parts, " "), "]");
    }
    case Kind::kStruct: {
      std::vector<std::string> parts;
      for (const Field& f : *fields_) parts.push_back(f.value.Print());
      return absl::StrCat("{", absl::StrJoin(parts, " "), "}");
    }
  }
  return "";
}

std::string Value::Json() const {
  return ToJson(*this).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

bool Value::operator==(const Value& o) const {
  if (kind_ != o.kind_) return false;
  switch (kind_) {
    case Kind::kInvalid:
    case Kind::kNil:
      return true;
    case Kind::kBool:
      return bool_ == o.bool_;
    case Kind::kInt:
      return int_ == o.int_;
    case Kind::kFloat:
      return float_ == o.float_;
    case Kind::kString:
      return string_ == o.string_;
    case Kind::kList:
      return *list_ == *o.list_;
    case Kind::kMap:
      return *map_ == *o.map_;
    case Kind::kStruct:
      if (string_ != o.string_ || fields_->size() != o.fields_->size()) return false;
      for (size_t i = 0; i < fields_->size(); ++i) {
        if ((*fields_)[i].name != (*o.fields_)[i].name ||
            !((*fields_)[i].value == (*o.fields_)[i].value)) {
          return false;
        }
      }
      return true;
  }
  return false;
}

// ---- Lexer ----

namespace {

enum class Tok {
  kText,
  kLeft,
  kRight,
  kSpace,
  kIdent,
  kField,
  kVariable,
  kDot,
  kString,
  kRawString,
  kNumber,
  kBool,
  kNil,
  kLParen,
  kRParen,
  kPipe,
  kDeclare,
  kAssign,
  kChar,
  // Keywords.
  kIf,
  kElse,
  kEnd,
  kRange,
  kWith,
  kBreak,
  kContinue,
  kDefine,
  kTemplate,
  kBlock,
  kEof,
  kError,
};

bool IsKeyword(Tok t) { return t >= Tok::kIf && t <= Tok::kBlock; }

struct Token {
  Tok type;
  size_t pos;
  std::string val;
};

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool IsAlnum(char c) {
  return c == '_' || absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         static_cast<unsigned char>(c) >= 0x80;
}

// Go's "%#U" for an unexpected character.
std::string CharName(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  if (absl::ascii_isprint(u)) return absl::StrFormat("U+%04X '%c'", u, c);
  return absl::StrFormat("U+%04X", u);
}

class Lexer {
 public:
  explicit Lexer(absl::string_view text) : text_(text) {}

  std::vector<Token> Run() {
    while (LexText()) {
      if (in_action_ && !LexAction()) break;
    }
    return std::move(tokens_);
  }

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek(size_t ahead = 0) const {
    return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0';
  }
  bool StartsWith(absl::string_view s, size_t at) const {
    return at <= text_.size() && text_.substr(at).substr(0, s.size()) == s;
  }
  void Emit(Tok t, size_t start) {
    tokens_.push_back({t, start, std::string(text_.substr(start, pos_ - start))});
  }
  bool Error(size_t at, std::string message) {
    tokens_.push_back({Tok::kError, at, std::move(message)});
    return false;
  }
  // " -}}" or "}}" at pos_; sets *trim for the former.
  bool AtRightDelim(bool* trim) const {
    if (pos_ + 1 < text_.size() && IsSpace(text_[pos_]) && text_[pos_ + 1] == '-' &&
        StartsWith("}}", pos_ + 2)) {
      *trim = true;
      return true;
    }
    *trim = false;
    return StartsWith("}}", pos_);
  }
  // Consumes the right delimiter at pos_ (and the spaces after it when trimmed).
  void ConsumeRightDelim(bool trim) {
    const size_t start = pos_;
    pos_ += trim ? 4 : 2;
    tokens_.push_back({Tok::kRight, start, "}}"});
    if (trim) {
      while (!AtEnd() && IsSpace(text_[pos_])) ++pos_;
    }
  }
  bool AtTerminator() const {
    const char c = Peek();
    if (AtEnd() || IsSpace(c)) return true;
    switch (c) {
      case '.':
      case ',':
      case '|':
      case ':':
      case ')':
      case '(':
        return true;
    }
    return StartsWith("}}", pos_);
  }

  // Text up to the next action; false at the end of the input.
  bool LexText() {
    const size_t open = text_.find("{{", pos_);
    if (open == absl::string_view::npos) {
      if (pos_ < text_.size()) {
        tokens_.push_back({Tok::kText, pos_, std::string(text_.substr(pos_))});
      }
      tokens_.push_back({Tok::kEof, text_.size(), ""});
      return false;
    }
    const bool trim = open + 3 < text_.size() && text_[open + 2] == '-' && IsSpace(text_[open + 3]);
    size_t text_end = open;
    if (trim) {
      while (text_end > pos_ && IsSpace(text_[text_end - 1])) --text_end;
    }
    if (text_end > pos_) {
      tokens_.push_back({Tok::kText, pos_, std::string(text_.substr(pos_, text_end - pos_))});
    }
    pos_ = open + 2 + (trim ? 2 : 0);
    in_action_ = !StartsWith("/*", pos_);
    if (!in_action_) return LexComment(open);
    tokens_.push_back({Tok::kLeft, open, "{{"});
    return true;
  }

  bool LexComment(size_t open) {
    const size_t close = text_.find("*/", pos_ + 2);
    if (close == absl::string_view::npos) return Error(open, "unclosed comment");
    pos_ = close + 2;
    bool trim;
    if (!AtRightDelim(&trim)) return Error(open, "comment ends before closing delimiter");
    pos_ += trim ? 4 : 2;
    if (trim) {
      while (!AtEnd() && IsSpace(text_[pos_])) ++pos_;
    }
    return true;
  }

  // The inside of one action, through its right delimiter.
  bool LexAction() {
    int parens = 0;
    const size_t open = tokens_.back().pos;
    while (true) {
      bool trim;
      if (AtRightDelim(&trim)) {
        if (parens > 0) return Error(pos_, "unclosed left paren");
        ConsumeRightDelim(trim);
        return true;
      }
      if (AtEnd()) return Error(open, "unclosed action");
      const size_t start = pos_;
      const char c = text_[pos_];
      if (IsSpace(c)) {
        while (!AtEnd() && IsSpace(text_[pos_]) && !AtRightDelim(&trim)) ++pos_;
        Emit(Tok::kSpace, start);
        continue;
      }
      switch (c) {
        case '=':
          ++pos_;
          Emit(Tok::kAssign, start);
          continue;
        case ':':
          if (Peek(1) != '=') return Error(start, "expected :=");
          pos_ += 2;
          Emit(Tok::kDeclare, start);
          continue;
        case '|':
          ++pos_;
          Emit(Tok::kPipe, start);
          continue;
        case '"': {
          ++pos_;
          while (true) {
            if (AtEnd() || text_[pos_] == '\n') {
              return Error(start, "unterminated quoted string");
            }
            if (text_[pos_] == '\\' && pos_ + 1 < text_.size() && text_[pos_ + 1] != '\n') {
              pos_ += 2;
              continue;
            }
            if (text_[pos_++] == '"') break;
          }
          Emit(Tok::kString, start);
          continue;
        }
        case '`': {
          const size_t close = text_.find('`', pos_ + 1);
          if (close == absl::string_view::npos) {
            return Error(start, "unterminated raw quoted string");
          }
          pos_ = close + 1;
          Emit(Tok::kRawString, start);
          continue;
        }
        case '$':
        case '.': {
          if (c == '.' && absl::ascii_isdigit(static_cast<unsigned char>(Peek(1)))) {
            if (!LexNumber()) return false;
            continue;
          }
          ++pos_;
          if (AtTerminator()) {
            Emit(c == '$' ? Tok::kVariable : Tok::kDot, start);
            continue;
          }
          while (!AtEnd() && IsAlnum(text_[pos_])) ++pos_;
          if (!AtTerminator()) return Error(pos_, "bad character " + CharName(Peek()));
          Emit(c == '$' ? Tok::kVariable : Tok::kField, start);
          continue;
        }
        case '(':
          ++parens;
          ++pos_;
          Emit(Tok::kLParen, start);
          continue;
        case ')':
          if (--parens < 0) return Error(start, "unexpected right paren");
          ++pos_;
          Emit(Tok::kRParen, start);
          continue;
        case '\'':
          return Error(start, "character constants are not supported; use a \"string\"");
      }
      if (c == '+' || c == '-' || absl::ascii_isdigit(static_cast<unsigned char>(c))) {
        if (!LexNumber()) return false;
        continue;
      }
      if (IsAlnum(c)) {
        while (!AtEnd() && IsAlnum(text_[pos_])) ++pos_;
        if (!AtTerminator()) return Error(pos_, "bad character " + CharName(Peek()));
        const absl::string_view word = text_.substr(start, pos_ - start);
        static const std::pair<const char*, Tok> kWords[] = {{"if", Tok::kIf},
                                                             {"else", Tok::kElse},
                                                             {"end", Tok::kEnd},
                                                             {"range", Tok::kRange},
                                                             {"with", Tok::kWith},
                                                             {"break", Tok::kBreak},
                                                             {"continue", Tok::kContinue},
                                                             {"define", Tok::kDefine},
                                                             {"template", Tok::kTemplate},
                                                             {"block", Tok::kBlock},
                                                             {"true", Tok::kBool},
                                                             {"false", Tok::kBool},
                                                             {"nil", Tok::kNil}};
        Tok type = Tok::kIdent;
        for (const auto& [name, t] : kWords) {
          if (word == name) type = t;
        }
        Emit(type, start);
        continue;
      }
      if (absl::ascii_isprint(static_cast<unsigned char>(c))) {
        ++pos_;
        Emit(Tok::kChar, start);
        continue;
      }
      return Error(start, "unrecognized character in action: " + CharName(c));
    }
  }

  // Go's number syntax, less imaginary numbers: [+-] then decimal, 0x hex, 0o/0 octal, 0b
  // binary, with a fraction and an exponent for decimals.
  bool LexNumber() {
    const size_t start = pos_;
    if (Peek() == '+' || Peek() == '-') ++pos_;
    std::string digits = "0123456789_";
    if (Peek() == '0' && (Peek(1) == 'x' || Peek(1) == 'X')) {
      pos_ += 2;
      digits = "0123456789abcdefABCDEF_";
    } else if (Peek() == '0' && (Peek(1) == 'o' || Peek(1) == 'O')) {
      pos_ += 2;
      digits = "01234567_";
    } else if (Peek() == '0' && (Peek(1) == 'b' || Peek(1) == 'B')) {
      pos_ += 2;
      digits = "01_";
    }
    auto run = [&](const std::string& set) {
      while (!AtEnd() && set.find(text_[pos_]) != std::string::npos) ++pos_;
    };
    run(digits);
    if (digits.size() == 11) {
      if (Peek() == '.') {
        ++pos_;
        run(digits);
      }
      if (Peek() == 'e' || Peek() == 'E') {
        ++pos_;
        if (Peek() == '+' || Peek() == '-') ++pos_;
        run("0123456789_");
      }
    }
    if (IsAlnum(Peek()) || Peek() == '.') {
      ++pos_;
      return Error(start, absl::StrCat("bad number syntax: \"",
                                       absl::CEscape(text_.substr(start, pos_ - start)), "\""));
    }
    Emit(Tok::kNumber, start);
    return true;
  }

  absl::string_view text_;
  size_t pos_ = 0;
  std::vector<Token> tokens_;
  bool in_action_ = false;
};

// Go's item.String() for "unexpected X in Y".
std::string Describe(const Token& t) {
  switch (t.type) {
    case Tok::kEof:
      return "EOF";
    case Tok::kError:
      return t.val;
    default:
      break;
  }
  if (IsKeyword(t.type)) return absl::StrCat("<", t.val, ">");
  if (t.val.size() > 10) return absl::StrCat("\"", absl::CEscape(t.val.substr(0, 10)), "\"...");
  return absl::StrCat("\"", absl::CEscape(t.val), "\"");
}

// Go's strconv.Unquote for a double-quoted literal.
bool Unquote(absl::string_view q, std::string* out) {
  if (q.size() < 2 || q.front() != '"' || q.back() != '"') return false;
  q = q.substr(1, q.size() - 2);
  out->clear();
  for (size_t i = 0; i < q.size(); ++i) {
    char c = q[i];
    if (c != '\\') {
      if (c == '"') return false;
      out->push_back(c);
      continue;
    }
    if (++i >= q.size()) return false;
    c = q[i];
    auto hex = [&](size_t n, uint32_t* value) {
      if (i + n >= q.size()) return false;
      *value = 0;
      for (size_t k = 1; k <= n; ++k) {
        const char h = q[i + k];
        int d;
        if (h >= '0' && h <= '9') {
          d = h - '0';
        } else if (h >= 'a' && h <= 'f') {
          d = h - 'a' + 10;
        } else if (h >= 'A' && h <= 'F') {
          d = h - 'A' + 10;
        } else {
          return false;
        }
        *value = *value * 16 + static_cast<uint32_t>(d);
      }
      i += n;
      return true;
    };
    uint32_t cp;
    switch (c) {
      case 'a':
        out->push_back('\a');
        break;
      case 'b':
        out->push_back('\b');
        break;
      case 'f':
        out->push_back('\f');
        break;
      case 'n':
        out->push_back('\n');
        break;
      case 'r':
        out->push_back('\r');
        break;
      case 't':
        out->push_back('\t');
        break;
      case 'v':
        out->push_back('\v');
        break;
      case '\\':
      case '"':
        out->push_back(c);
        break;
      case 'x':
        if (!hex(2, &cp)) return false;
        out->push_back(static_cast<char>(cp));
        break;
      case 'u':
      case 'U':
        if (!hex(c == 'u' ? 4 : 8, &cp) || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) {
          return false;
        }
        if (cp < 0x80) {
          out->push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
          out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
          out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else if (cp < 0x10000) {
          out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
          out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
          out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else {
          out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
          out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
          out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
          out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        }
        break;
      default:
        if (c >= '0' && c <= '7') {
          if (i + 2 >= q.size()) return false;
          uint32_t v = 0;
          for (size_t k = 0; k < 3; ++k) {
            const char o = q[i + k];
            if (o < '0' || o > '7') return false;
            v = v * 8 + static_cast<uint32_t>(o - '0');
          }
          if (v > 255) return false;
          i += 2;
          out->push_back(static_cast<char>(v));
          break;
        }
        return false;
    }
  }
  return true;
}

}  // namespace

// ---- The tree ----

struct Node {
  enum class Type {
    kList,
    kText,
    kAction,
    kIf,
    kRange,
    kWith,
    kBreak,
    kContinue,
    kPipe,
    kCommand,
    kField,     // .A.B: fields
    kVariable,  // $x.A: text = "$x", fields = [A]
    kChain,     // (pipe).A: children[0] = the term, fields
    kDot,
    kNil,
    kLiteral,  // a bool, number or string: literal
    kIdent,    // a function: text
    // Markers the item list parser stops at; never in a finished tree.
    kElse,
    kEnd,
  };
  Type type;
  size_t pos = 0;
  size_t end = 0;  // with pos, the source text errors quote ("at <.A.B>")
  std::string text;
  std::vector<std::string> fields;
  Value literal;
  std::vector<std::unique_ptr<Node>> children;
  std::unique_ptr<Node> pipe;
  std::unique_ptr<Node> list;
  std::unique_ptr<Node> else_list;
  // Pipelines: the variables declared ($x := ...) or assigned ($x = ...).
  std::vector<std::string> decls;
  bool is_assign = false;
  // An {{else}} followed by "if" or "with" (which the control parser consumes).
  bool else_chain = false;
};

namespace {

// "template: :LINE:COL: " for a byte offset of text (columns count bytes from 0, as Go's).
std::string Location(absl::string_view text, size_t pos) {
  pos = std::min(pos, text.size());
  const absl::string_view before = text.substr(0, pos);
  const size_t line = 1 + static_cast<size_t>(std::count(before.begin(), before.end(), '\n'));
  const size_t nl = before.rfind('\n');
  const size_t col = nl == absl::string_view::npos ? pos : pos - nl - 1;
  return absl::StrCat("template: :", line, ":", col, ": ");
}

const char* const kFunctions[] = {
    "and", "eq",  "ge", "gt",  "index", "join",   "json",    "le",    "len",   "lower",    "lt",
    "ne",  "not", "or", "pad", "print", "printf", "println", "split", "title", "truncate", "upper"};

bool IsFunction(absl::string_view name) {
  for (const char* f : kFunctions) {
    if (name == f) return true;
  }
  return false;
}

class Parser {
 public:
  Parser(absl::string_view text, std::vector<Token> tokens)
      : text_(text), tokens_(std::move(tokens)) {}

  // The root list, or the first error.
  absl::StatusOr<std::unique_ptr<Node>> Parse() {
    auto root = NewNode(Node::Type::kList, 0);
    while (PeekToken().type != Tok::kEof) {
      std::unique_ptr<Node> n = TextOrAction();
      if (!error_.ok()) return error_;
      if (n->type == Node::Type::kEnd || n->type == Node::Type::kElse) {
        Fail(n->pos, n->type == Node::Type::kEnd ? "unexpected {{end}}" : "unexpected {{else}}");
        return error_;
      }
      root->children.push_back(std::move(n));
    }
    if (!error_.ok()) return error_;
    return root;
  }

 private:
  std::unique_ptr<Node> NewNode(Node::Type type, size_t pos) {
    auto n = std::make_unique<Node>();
    n->type = type;
    n->pos = pos;
    n->end = pos;
    return n;
  }
  // Records the first error; parsing then unwinds with placeholder nodes.
  void Fail(size_t pos, absl::string_view message) {
    if (error_.ok())
      error_ = absl::InvalidArgumentError(Location(text_, pos) + std::string(message));
  }
  bool Failed() const { return !error_.ok(); }

  const Token& PeekToken() const { return tokens_[std::min(i_, tokens_.size() - 1)]; }
  const Token& Next() {
    const Token& t = PeekToken();
    ++i_;
    return t;
  }
  void Backup() { --i_; }
  const Token& PeekNonSpace() {
    while (PeekToken().type == Tok::kSpace) ++i_;
    return PeekToken();
  }
  const Token& NextNonSpace() {
    PeekNonSpace();
    return Next();
  }
  void Unexpected(const Token& t, absl::string_view context) {
    if (t.type == Tok::kError) {
      Fail(t.pos, t.val);
    } else {
      Fail(t.pos, absl::StrCat("unexpected ", Describe(t), " in ", context));
    }
  }
  // Placeholder returned after an error.
  std::unique_ptr<Node> Bad() { return NewNode(Node::Type::kList, 0); }

  std::unique_ptr<Node> TextOrAction() {
    const Token& t = NextNonSpace();
    switch (t.type) {
      case Tok::kText: {
        auto n = NewNode(Node::Type::kText, t.pos);
        n->text = t.val;
        return n;
      }
      case Tok::kLeft:
        return Action();
      default:
        Unexpected(t, "input");
        return Bad();
    }
  }

  std::unique_ptr<Node> Action() {
    const Token& t = NextNonSpace();
    switch (t.type) {
      case Tok::kIf:
      case Tok::kRange:
      case Tok::kWith:
        return Control(t.type, t.pos);
      case Tok::kElse: {
        auto n = NewNode(Node::Type::kElse, t.pos);
        const Token& p = PeekNonSpace();
        if (p.type == Tok::kIf || p.type == Tok::kWith) {
          n->else_chain = true;
          return n;
        }
        Expect(Tok::kRight, "else");
        return n;
      }
      case Tok::kEnd: {
        auto n = NewNode(Node::Type::kEnd, t.pos);
        Expect(Tok::kRight, "end");
        return n;
      }
      case Tok::kBreak:
      case Tok::kContinue: {
        const bool is_break = t.type == Tok::kBreak;
        auto n = NewNode(is_break ? Node::Type::kBreak : Node::Type::kContinue, t.pos);
        const Token& r = NextNonSpace();
        if (r.type != Tok::kRight) {
          Unexpected(r, is_break ? "{{break}}" : "{{continue}}");
        } else if (range_depth_ == 0) {
          Fail(t.pos, is_break ? "{{break}} outside {{range}}" : "{{continue}} outside {{range}}");
        }
        return n;
      }
      case Tok::kDefine:
      case Tok::kTemplate:
      case Tok::kBlock:
        Fail(t.pos, absl::StrCat("{{", t.val, "}} is not supported"));
        return Bad();
      default:
        break;
    }
    Backup();
    const size_t pos = PeekToken().pos;
    auto n = NewNode(Node::Type::kAction, pos);
    n->pipe = Pipeline("command", Tok::kRight);
    return n;
  }

  void Expect(Tok type, absl::string_view context) {
    const Token& t = NextNonSpace();
    if (t.type != type) Unexpected(t, context);
  }

  // {{if}}, {{range}} or {{with}} after its keyword, through its {{end}}.
  std::unique_ptr<Node> Control(Tok keyword, size_t pos) {
    const char* context = keyword == Tok::kIf ? "if" : keyword == Tok::kRange ? "range" : "with";
    if (++depth_ > kMaxDepth) {
      Fail(pos, "template nesting too deep");
      return Bad();
    }
    const size_t vars = vars_.size();
    auto n = NewNode(keyword == Tok::kIf      ? Node::Type::kIf
                     : keyword == Tok::kRange ? Node::Type::kRange
                                              : Node::Type::kWith,
                     pos);
    n->pipe = Pipeline(context, Tok::kRight);
    if (keyword == Tok::kRange) ++range_depth_;
    std::unique_ptr<Node> next;
    n->list = ItemList(&next);
    if (keyword == Tok::kRange) --range_depth_;
    if (!Failed() && next->type == Node::Type::kElse) {
      if (next->else_chain) {
        const Token& k = NextNonSpace();
        if ((keyword == Tok::kIf && k.type == Tok::kIf) ||
            (keyword == Tok::kWith && k.type == Tok::kWith)) {
          n->else_list = NewNode(Node::Type::kList, next->pos);
          n->else_list->children.push_back(Control(k.type, k.pos));
        } else {
          Unexpected(k, "else");
        }
      } else {
        n->else_list = ItemList(&next);
        if (!Failed() && next->type != Node::Type::kEnd)
          Fail(next->pos, "expected end; found {{else}}");
      }
    }
    vars_.resize(vars);
    --depth_;
    return n;
  }

  // Nodes up to an {{else}} or {{end}}, which goes to *next.
  std::unique_ptr<Node> ItemList(std::unique_ptr<Node>* next) {
    auto list = NewNode(Node::Type::kList, PeekNonSpace().pos);
    while (!Failed() && PeekNonSpace().type != Tok::kEof) {
      std::unique_ptr<Node> n = TextOrAction();
      if (n->type == Node::Type::kEnd || n->type == Node::Type::kElse) {
        *next = std::move(n);
        return list;
      }
      list->children.push_back(std::move(n));
    }
    if (!Failed()) Fail(PeekToken().pos, "unexpected EOF");
    *next = Bad();
    return list;
  }

  std::unique_ptr<Node> Pipeline(absl::string_view context, Tok end) {
    auto pipe = NewNode(Node::Type::kPipe, PeekNonSpace().pos);
    // Declarations: $x :=, $x =, and for range $i, $e :=.
    while (!Failed() && PeekNonSpace().type == Tok::kVariable) {
      const size_t save = i_;
      const Token& v = Next();
      const Token& after = PeekNonSpace();
      if (after.type == Tok::kDeclare || after.type == Tok::kAssign) {
        pipe->is_assign = after.type == Tok::kAssign;
        Next();
        pipe->decls.push_back(v.val);
        vars_.push_back(v.val);
        break;
      }
      if (after.type == Tok::kChar && after.val == ",") {
        Next();
        pipe->decls.push_back(v.val);
        vars_.push_back(v.val);
        if (context == "range" && pipe->decls.size() < 2) {
          const Tok t = PeekNonSpace().type;
          if (t == Tok::kVariable) continue;
          Fail(PeekToken().pos, "range can only initialize variables");
          break;
        }
        Fail(v.pos, absl::StrCat("too many declarations in ", context));
        break;
      }
      i_ = save;
      break;
    }
    while (!Failed()) {
      const Token& t = NextNonSpace();
      if (t.type == end) {
        pipe->end = t.pos;
        if (pipe->children.empty()) {
          Fail(t.pos, absl::StrCat("missing value for ", context));
        }
        for (size_t k = 1; k < pipe->children.size(); ++k) {
          const Node& first = *pipe->children[k]->children[0];
          if (first.type == Node::Type::kLiteral || first.type == Node::Type::kDot ||
              first.type == Node::Type::kNil) {
            Fail(first.pos, absl::StrCat("non executable command in pipeline stage ", k + 1));
          }
        }
        return pipe;
      }
      switch (t.type) {
        case Tok::kBool:
        case Tok::kDot:
        case Tok::kField:
        case Tok::kIdent:
        case Tok::kNumber:
        case Tok::kNil:
        case Tok::kRawString:
        case Tok::kString:
        case Tok::kVariable:
        case Tok::kLParen:
          Backup();
          pipe->children.push_back(Command());
          break;
        default:
          Unexpected(t, context);
      }
    }
    return pipe;
  }

  std::unique_ptr<Node> Command() {
    auto cmd = NewNode(Node::Type::kCommand, PeekNonSpace().pos);
    while (!Failed()) {
      PeekNonSpace();
      if (std::unique_ptr<Node> operand = Operand(); operand != nullptr) {
        cmd->end = operand->end;
        cmd->children.push_back(std::move(operand));
      }
      if (Failed()) break;
      const Token& t = Next();
      if (t.type == Tok::kSpace) continue;
      if (t.type == Tok::kRight || t.type == Tok::kRParen) {
        Backup();
      } else if (t.type != Tok::kPipe) {
        Unexpected(t, "operand");
      }
      break;
    }
    if (!Failed() && cmd->children.empty()) Fail(cmd->pos, "empty command");
    return cmd;
  }

  std::unique_ptr<Node> Operand() {
    std::unique_ptr<Node> term = Term();
    if (term == nullptr || Failed()) return term;
    if (PeekToken().type != Tok::kField) return term;
    std::vector<std::string> more;
    size_t end = term->end;
    while (PeekToken().type == Tok::kField) {
      const Token& f = Next();
      more.push_back(f.val.substr(1));
      end = f.pos + f.val.size();
    }
    switch (term->type) {
      case Node::Type::kField:
      case Node::Type::kVariable:
        term->fields.insert(term->fields.end(), more.begin(), more.end());
        term->end = end;
        return term;
      case Node::Type::kLiteral:
      case Node::Type::kNil:
      case Node::Type::kDot:
        Fail(term->pos,
             absl::StrCat("unexpected . after term \"",
                          absl::CEscape(text_.substr(term->pos, term->end - term->pos)), "\""));
        return term;
      default: {
        auto chain = NewNode(Node::Type::kChain, term->pos);
        chain->end = end;
        chain->fields = std::move(more);
        chain->children.push_back(std::move(term));
        return chain;
      }
    }
  }

  // One operand without its trailing fields; nullptr when the next token is none.
  std::unique_ptr<Node> Term() {
    const Token& t = NextNonSpace();
    auto n = NewNode(Node::Type::kLiteral, t.pos);
    n->end = t.pos + t.val.size();
    switch (t.type) {
      case Tok::kIdent:
        if (!IsFunction(t.val)) {
          Fail(t.pos, absl::StrCat("function \"", t.val, "\" not defined"));
        }
        n->type = Node::Type::kIdent;
        n->text = t.val;
        return n;
      case Tok::kDot:
        n->type = Node::Type::kDot;
        return n;
      case Tok::kNil:
        n->type = Node::Type::kNil;
        return n;
      case Tok::kVariable:
        if (std::find(vars_.begin(), vars_.end(), t.val) == vars_.end()) {
          Fail(t.pos, absl::StrCat("undefined variable \"", t.val, "\""));
        }
        n->type = Node::Type::kVariable;
        n->text = t.val;
        return n;
      case Tok::kField:
        n->type = Node::Type::kField;
        n->fields.push_back(t.val.substr(1));
        return n;
      case Tok::kBool:
        n->literal = Value::Bool(t.val == "true");
        return n;
      case Tok::kNumber:
        n->literal = ParseNumber(t);
        return n;
      case Tok::kString: {
        std::string s;
        if (!Unquote(t.val, &s)) Fail(t.pos, absl::StrCat("bad string syntax: ", t.val));
        n->literal = Value::String(std::move(s));
        return n;
      }
      case Tok::kRawString: {
        std::string s = t.val.substr(1, t.val.size() - 2);
        s.erase(std::remove(s.begin(), s.end(), '\r'), s.end());
        n->literal = Value::String(std::move(s));
        return n;
      }
      case Tok::kLParen: {
        if (++depth_ > kMaxDepth) {
          Fail(t.pos, "template nesting too deep");
          return n;
        }
        n = Pipeline("parenthesized pipeline", Tok::kRParen);
        n->pos = t.pos;
        n->end += 1;  // through the ')'
        --depth_;
        return n;
      }
      default:
        Backup();
        return nullptr;
    }
  }

  Value ParseNumber(const Token& t) {
    std::string s;
    for (char c : t.val) {
      if (c != '_') s.push_back(c);
    }
    bool negative = false;
    absl::string_view v = s;
    if (!v.empty() && (v[0] == '+' || v[0] == '-')) {
      negative = v[0] == '-';
      v.remove_prefix(1);
    }
    int base = 10;
    if (v.size() > 2 && v[0] == '0') {
      const char b = absl::ascii_tolower(static_cast<unsigned char>(v[1]));
      base = b == 'x' ? 16 : b == 'o' ? 8 : b == 'b' ? 2 : 10;
      if (base != 10) v.remove_prefix(2);
    }
    if (base == 10 && v.find_first_of(".eE") != absl::string_view::npos) {
      double d;
      if (absl::SimpleAtod(s, &d)) return Value::Float(d);
    } else {
      uint64_t u = 0;
      bool ok = !v.empty();
      for (char c : v) {
        const int d = absl::ascii_isdigit(static_cast<unsigned char>(c))
                          ? c - '0'
                          : absl::ascii_tolower(static_cast<unsigned char>(c)) - 'a' + 10;
        if (d < 0 || d >= base || u > (UINT64_MAX - static_cast<uint64_t>(d)) / base) {
          ok = false;
          break;
        }
        u = u * base + static_cast<uint64_t>(d);
      }
      if (ok && u <= static_cast<uint64_t>(INT64_MAX)) {
        return Value::Int(negative ? -static_cast<int64_t>(u) : static_cast<int64_t>(u));
      }
      if (ok && negative && u == static_cast<uint64_t>(INT64_MAX) + 1) return Value::Int(INT64_MIN);
    }
    Fail(t.pos, absl::StrCat("illegal number syntax: \"", absl::CEscape(t.val), "\""));
    return Value();
  }

  absl::string_view text_;
  std::vector<Token> tokens_;
  size_t i_ = 0;
  absl::Status error_;
  std::vector<std::string> vars_ = {"$"};
  int range_depth_ = 0;
  int depth_ = 0;
};

// ---- Execution ----

enum class Flow { kNormal, kBreak, kContinue };

// The first n characters of s (UTF-8).
std::string Utf8Prefix(const std::string& s, size_t n) {
  size_t chars = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (chars == n) return s.substr(0, i);
      ++chars;
    }
  }
  return s;
}

// Runs one template over one value. Errors stop execution: the first one is kept in error_
// and every evaluation after it returns at once.
class Executor {
 public:
  static constexpr size_t kMaxSteps = 10'000'000;

  Executor(absl::string_view text, const Value& root) : text_(text) {
    vars_.push_back({"$", root});
  }

  absl::StatusOr<std::string> Run(const Node& root, const Value& dot) {
    Walk(dot, root);
    if (!error_.ok()) return error_;
    return std::move(out_);
  }

 private:
  bool Failed() const { return !error_.ok(); }
  Value Fail(const Node& at, absl::string_view message) {
    if (error_.ok()) {
      error_ =
          absl::InvalidArgumentError(absl::StrCat(Location(text_, at.pos), "executing \"\" at <",
                                                  absl::StripTrailingAsciiWhitespace(text_.substr(
                                                      at.pos, std::max(at.end, at.pos) - at.pos)),
                                                  ">: ", message));
    }
    return Value();
  }
  bool Step(const Node& at) {
    if (++steps_ > kMaxSteps) Fail(at, "template execution takes too long");
    return !Failed();
  }
  void Write(const Node& at, absl::string_view s) {
    if (out_.size() + s.size() > kMaxOutput) {
      Fail(at, "template output is too large");
      return;
    }
    out_.append(s.data(), s.size());
  }

  Flow Walk(const Value& dot, const Node& n) {
    if (!Step(n)) return Flow::kNormal;
    switch (n.type) {
      case Node::Type::kList:
        for (const auto& child : n.children) {
          const Flow f = Walk(dot, *child);
          if (Failed()) return Flow::kNormal;
          if (f != Flow::kNormal) return f;
        }
        return Flow::kNormal;
      case Node::Type::kText:
        Write(n, n.text);
        return Flow::kNormal;
      case Node::Type::kAction: {
        const Value v = EvalPipeline(dot, *n.pipe);
        // An action that declares variables prints nothing.
        if (!Failed() && n.pipe->decls.empty()) Write(*n.pipe, v.Print());
        return Flow::kNormal;
      }
      case Node::Type::kIf:
      case Node::Type::kWith: {
        const size_t mark = vars_.size();
        const Value v = EvalPipeline(dot, *n.pipe);
        Flow f = Flow::kNormal;
        if (Failed()) return f;
        if (v.Truth()) {
          f = Walk(n.type == Node::Type::kWith ? v : dot, *n.list);
        } else if (n.else_list != nullptr) {
          f = Walk(dot, *n.else_list);
        }
        vars_.resize(mark);
        return f;
      }
      case Node::Type::kRange:
        return Range(dot, n);
      case Node::Type::kBreak:
        return Flow::kBreak;
      case Node::Type::kContinue:
        return Flow::kContinue;
      default:
        Fail(n, "unknown node");
        return Flow::kNormal;
    }
  }

  Flow Range(const Value& dot, const Node& n) {
    const size_t mark = vars_.size();
    const Value v = EvalPipeline(dot, *n.pipe);
    if (Failed()) return Flow::kNormal;
    // One element: $e = elem, or $i = index and $e = elem.
    auto iterate = [&](const Value& index, const Value& elem) {
      const size_t decls = n.pipe->decls.size();
      if (decls >= 1) vars_[vars_.size() - 1].second = elem;
      if (decls >= 2) vars_[vars_.size() - 2].second = index;
      const size_t inner = vars_.size();
      const Flow f = Walk(elem, *n.list);
      vars_.resize(inner);
      return f;
    };
    bool any = false;
    switch (v.kind()) {
      case Value::Kind::kList:
        for (size_t i = 0; i < v.list().size() && !Failed(); ++i) {
          any = true;
          if (iterate(Value::Int(static_cast<int64_t>(i)), v.list()[i]) == Flow::kBreak) break;
        }
        break;
      case Value::Kind::kMap:
        for (const auto& [k, item] : v.map()) {
          if (Failed()) break;
          any = true;
          if (iterate(Value::String(k), item) == Flow::kBreak) break;
        }
        break;
      case Value::Kind::kInt:
        if (n.pipe->decls.size() > 1) {
          Fail(*n.pipe, "can't use an integer with two range variables");
          break;
        }
        for (int64_t i = 0; i < v.int_value() && !Failed(); ++i) {
          any = true;
          if (iterate(Value::Int(i), Value::Int(i)) == Flow::kBreak) break;
        }
        break;
      case Value::Kind::kInvalid:
      case Value::Kind::kNil:
        break;
      default:
        Fail(*n.pipe, absl::StrCat("range can't iterate over ", v.Print()));
    }
    if (!any && !Failed() && n.else_list != nullptr) Walk(dot, *n.else_list);
    vars_.resize(mark);
    return Flow::kNormal;
  }

  Value EvalPipeline(const Value& dot, const Node& pipe) {
    Value value;
    bool has_final = false;
    for (const auto& cmd : pipe.children) {
      value = EvalCommand(dot, *cmd, has_final ? &value : nullptr);
      if (Failed()) return Value();
      has_final = true;
    }
    for (const std::string& name : pipe.decls) {
      if (pipe.is_assign) {
        SetVar(pipe, name, value);
      } else {
        vars_.push_back({name, value});
      }
    }
    return value;
  }

  void SetVar(const Node& at, const std::string& name, const Value& v) {
    for (size_t i = vars_.size(); i-- > 0;) {
      if (vars_[i].first == name) {
        vars_[i].second = v;
        return;
      }
    }
    Fail(at, absl::StrCat("undefined variable: ", name));
  }

  Value VarValue(const Node& at, const std::string& name) {
    for (size_t i = vars_.size(); i-- > 0;) {
      if (vars_[i].first == name) return vars_[i].second;
    }
    return Fail(at, absl::StrCat("undefined variable: ", name));
  }

  Value EvalCommand(const Value& dot, const Node& cmd, const Value* final) {
    if (!Step(cmd)) return Value();
    const Node& first = *cmd.children[0];
    switch (first.type) {
      case Node::Type::kField:
        return EvalFields(first, dot, first.fields, cmd, final);
      case Node::Type::kVariable:
        return EvalFields(first, VarValue(first, first.text), first.fields, cmd, final);
      case Node::Type::kChain: {
        const Value receiver = EvalArg(dot, *first.children[0]);
        if (Failed()) return Value();
        return EvalFields(first, receiver, first.fields, cmd, final);
      }
      case Node::Type::kIdent:
        return CallFunction(dot, first, cmd, final);
      default:
        break;
    }
    if (cmd.children.size() > 1 || final != nullptr) {
      return Fail(first, absl::StrCat("can't give argument to non-function ",
                                      text_.substr(first.pos, first.end - first.pos)));
    }
    switch (first.type) {
      case Node::Type::kPipe:
        return EvalPipeline(dot, first);
      case Node::Type::kDot:
        return dot;
      case Node::Type::kNil:
        return Fail(first, "nil is not a command");
      default:
        return first.literal;
    }
  }

  // receiver.f1.f2... ; the command's other arguments (and a piped value) are an error, as
  // fields are not methods.
  Value EvalFields(const Node& at, Value receiver, const std::vector<std::string>& fields,
                   const Node& cmd, const Value* final) {
    for (size_t i = 0; i < fields.size() && !Failed(); ++i) {
      const bool last = i + 1 == fields.size();
      if (last && (cmd.children.size() > 1 || final != nullptr)) {
        return Fail(at,
                    absl::StrCat(fields[i], " has arguments but cannot be invoked as function"));
      }
      receiver = Field(at, receiver, fields[i]);
    }
    if (fields.empty() && (cmd.children.size() > 1 || final != nullptr)) {
      return Fail(at, absl::StrCat("can't give argument to non-function ",
                                   text_.substr(at.pos, at.end - at.pos)));
    }
    return receiver;
  }

  Value Field(const Node& at, const Value& receiver, const std::string& name) {
    switch (receiver.kind()) {
      case Value::Kind::kInvalid:
        return Value();
      case Value::Kind::kNil:
        return Fail(at, absl::StrCat("nil pointer evaluating interface {}.", name));
      case Value::Kind::kMap: {
        auto it = receiver.map().find(name);
        return it == receiver.map().end() ? Value() : it->second;
      }
      case Value::Kind::kStruct:
        if (const Value* v = receiver.FindField(name); v != nullptr) return *v;
        break;
      default:
        break;
    }
    return Fail(at, absl::StrCat("can't evaluate field ", name, " in type ", receiver.TypeName()));
  }

  Value EvalArg(const Value& dot, const Node& n) {
    if (!Step(n)) return Value();
    switch (n.type) {
      case Node::Type::kDot:
        return dot;
      case Node::Type::kNil:
        return Value::Nil();
      case Node::Type::kField:
        return EvalFields(n, dot, n.fields, n, nullptr);
      case Node::Type::kVariable:
        return EvalFields(n, VarValue(n, n.text), n.fields, n, nullptr);
      case Node::Type::kChain: {
        const Value receiver = EvalArg(dot, *n.children[0]);
        if (Failed()) return Value();
        return EvalFields(n, receiver, n.fields, n, nullptr);
      }
      case Node::Type::kPipe:
        return EvalPipeline(dot, n);
      case Node::Type::kIdent:
        return CallFunction(dot, n, n, nullptr);
      default:
        return n.literal;
    }
  }

  // The function named by fn, with the command's other arguments and then final.
  Value CallFunction(const Value& dot, const Node& fn, const Node& cmd, const Value* final) {
    const std::string& name = fn.text;
    std::vector<const Node*> arg_nodes;
    if (&cmd != &fn) {
      for (size_t i = 1; i < cmd.children.size(); ++i) arg_nodes.push_back(cmd.children[i].get());
    }
    const size_t argc = arg_nodes.size() + (final != nullptr ? 1 : 0);
    // and/or evaluate their arguments lazily, as Go's do.
    if (name == "and" || name == "or") {
      if (argc < 1)
        return Fail(fn, absl::StrCat("wrong number of args for ", name, ": want at least 1 got 0"));
      Value v;
      for (size_t i = 0; i < argc; ++i) {
        v = i < arg_nodes.size() ? EvalArg(dot, *arg_nodes[i]) : *final;
        if (Failed()) return Value();
        if (v.Truth() == (name == "or")) return v;
      }
      return v;
    }
    std::vector<Value> args;
    for (const Node* a : arg_nodes) {
      args.push_back(EvalArg(dot, *a));
      if (Failed()) return Value();
    }
    if (final != nullptr) args.push_back(*final);
    return Builtin(fn, name, args);
  }

  bool WantArgs(const Node& fn, const std::vector<Value>& args, size_t min, size_t max) {
    if (args.size() >= min && args.size() <= max) return true;
    if (min == max) {
      Fail(fn, absl::StrCat("wrong number of args for ", fn.text, ": want ", min, " got ",
                            args.size()));
    } else {
      Fail(fn, absl::StrCat("wrong number of args for ", fn.text, ": want at least ", min, " got ",
                            args.size()));
    }
    return false;
  }
  bool WantString(const Node& fn, const Value& v, std::string* out) {
    if (v.kind() != Value::Kind::kString) {
      Fail(fn, absl::StrCat("error calling ", fn.text,
                            ": wrong type for value; expected string; got ", v.TypeName()));
      return false;
    }
    *out = v.string_value();
    return true;
  }
  bool WantInt(const Node& fn, const Value& v, int64_t* out) {
    if (v.kind() != Value::Kind::kInt) {
      Fail(fn, absl::StrCat("error calling ", fn.text, ": wrong type for value; expected int; got ",
                            v.TypeName()));
      return false;
    }
    *out = v.int_value();
    return true;
  }

  Value Builtin(const Node& fn, const std::string& name, const std::vector<Value>& args) {
    constexpr size_t kMany = SIZE_MAX;
    if (name == "json") {
      if (!WantArgs(fn, args, 1, 1)) return Value();
      return Value::String(args[0].Json());
    }
    if (name == "lower" || name == "upper" || name == "title") {
      std::string s;
      if (!WantArgs(fn, args, 1, 1) || !WantString(fn, args[0], &s)) return Value();
      if (name == "lower") return Value::String(absl::AsciiStrToLower(s));
      if (name == "upper") return Value::String(absl::AsciiStrToUpper(s));
      bool start = true;
      for (char& c : s) {
        if (start) c = absl::ascii_toupper(static_cast<unsigned char>(c));
        start = IsSpace(c);
      }
      return Value::String(s);
    }
    if (name == "join") {
      std::string sep;
      if (!WantArgs(fn, args, 2, 2) || !WantString(fn, args[1], &sep)) return Value();
      if (args[0].kind() != Value::Kind::kList) {
        return Fail(
            fn, absl::StrCat("error calling join: wrong type for value; expected []string; got ",
                             args[0].TypeName()));
      }
      std::vector<std::string> parts;
      for (const Value& v : args[0].list()) parts.push_back(v.Print());
      return Value::String(absl::StrJoin(parts, sep));
    }
    if (name == "split") {
      std::string s, sep;
      if (!WantArgs(fn, args, 2, 2) || !WantString(fn, args[0], &s) ||
          !WantString(fn, args[1], &sep)) {
        return Value();
      }
      std::vector<Value> parts;
      if (sep.empty()) {
        for (char c : s) parts.push_back(Value::String(std::string(1, c)));
      } else {
        for (absl::string_view p : absl::StrSplit(s, sep))
          parts.push_back(Value::String(std::string(p)));
      }
      return Value::List(std::move(parts));
    }
    if (name == "pad") {
      std::string s;
      int64_t left, right;
      if (!WantArgs(fn, args, 3, 3) || !WantString(fn, args[0], &s) ||
          !WantInt(fn, args[1], &left) || !WantInt(fn, args[2], &right)) {
        return Value();
      }
      left = std::clamp<int64_t>(left, 0, 1024);
      right = std::clamp<int64_t>(right, 0, 1024);
      return Value::String(absl::StrCat(std::string(left, ' '), s, std::string(right, ' ')));
    }
    if (name == "truncate") {
      std::string s;
      int64_t n;
      if (!WantArgs(fn, args, 2, 2) || !WantString(fn, args[0], &s) || !WantInt(fn, args[1], &n)) {
        return Value();
      }
      // Counts characters, not bytes.
      int64_t chars = 0;
      for (size_t i = 0; i < s.size(); ++i) {
        if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
          if (chars == n) return Value::String(s.substr(0, i));
          ++chars;
        }
      }
      return Value::String(s);
    }
    if (name == "len") {
      if (!WantArgs(fn, args, 1, 1)) return Value();
      switch (args[0].kind()) {
        case Value::Kind::kString:
          return Value::Int(static_cast<int64_t>(args[0].string_value().size()));
        case Value::Kind::kList:
          return Value::Int(static_cast<int64_t>(args[0].list().size()));
        case Value::Kind::kMap:
          return Value::Int(static_cast<int64_t>(args[0].map().size()));
        default:
          return Fail(fn, absl::StrCat("error calling len: len of type ", args[0].TypeName()));
      }
    }
    if (name == "index") {
      if (!WantArgs(fn, args, 1, kMany)) return Value();
      Value item = args[0];
      for (size_t i = 1; i < args.size(); ++i) {
        const Value& key = args[i];
        if (item.kind() == Value::Kind::kList || item.kind() == Value::Kind::kString) {
          if (key.kind() != Value::Kind::kInt) {
            return Fail(fn, absl::StrCat("error calling index: cannot index slice/array with type ",
                                         key.TypeName()));
          }
          const size_t size =
              item.kind() == Value::Kind::kList ? item.list().size() : item.string_value().size();
          if (key.int_value() < 0 || static_cast<uint64_t>(key.int_value()) >= size) {
            return Fail(fn,
                        absl::StrCat("error calling index: index out of range: ", key.int_value()));
          }
          item = item.kind() == Value::Kind::kList
                     ? item.list()[key.int_value()]
                     : Value::Int(static_cast<unsigned char>(item.string_value()[key.int_value()]));
        } else if (item.kind() == Value::Kind::kMap) {
          if (key.kind() != Value::Kind::kString) {
            return Fail(fn, absl::StrCat("error calling index: value has type ", key.TypeName(),
                                         "; should be string"));
          }
          auto it = item.map().find(key.string_value());
          // A missing key gives the zero value of the map's values: ours hold strings.
          item = it == item.map().end() ? Value::String("") : it->second;
        } else if (item.kind() == Value::Kind::kNil || item.kind() == Value::Kind::kInvalid) {
          return Fail(fn, "error calling index: index of untyped nil");
        } else {
          return Fail(
              fn, absl::StrCat("error calling index: can't index item of type ", item.TypeName()));
        }
      }
      return item;
    }
    if (name == "print" || name == "println") {
      std::string s;
      for (size_t i = 0; i < args.size(); ++i) {
        const bool strings = args[i].kind() == Value::Kind::kString ||
                             (i > 0 && args[i - 1].kind() == Value::Kind::kString);
        if (i > 0 && (name == "println" || !strings)) s += ' ';
        s += args[i].Print();
      }
      if (name == "println") s += '\n';
      return Value::String(s);
    }
    if (name == "printf") {
      std::string format;
      if (!WantArgs(fn, args, 1, kMany) || !WantString(fn, args[0], &format)) return Value();
      return Value::String(Printf(format, args));
    }
    if (name == "not") {
      if (!WantArgs(fn, args, 1, 1)) return Value();
      return Value::Bool(!args[0].Truth());
    }
    if (name == "eq" || name == "ne") {
      if (!WantArgs(fn, args, 2, name == "eq" ? kMany : 2)) return Value();
      for (size_t i = 1; i < args.size(); ++i) {
        int cmp;
        if (!Compare(fn, args[0], args[i], /*ordered=*/false, &cmp)) return Value();
        if (cmp == 0) return Value::Bool(name == "eq");
      }
      return Value::Bool(name == "ne");
    }
    if (name == "lt" || name == "le" || name == "gt" || name == "ge") {
      int cmp;
      if (!WantArgs(fn, args, 2, 2) || !Compare(fn, args[0], args[1], /*ordered=*/true, &cmp)) {
        return Value();
      }
      if (name == "lt") return Value::Bool(cmp < 0);
      if (name == "le") return Value::Bool(cmp <= 0);
      if (name == "gt") return Value::Bool(cmp > 0);
      return Value::Bool(cmp >= 0);
    }
    return Fail(fn, absl::StrCat("function \"", name, "\" not defined"));
  }

  // Basic values only, as Go's eq and lt; ints and floats compare as numbers.
  bool Compare(const Node& fn, const Value& a, const Value& b, bool ordered, int* cmp) {
    using K = Value::Kind;
    auto numeric = [](const Value& v) { return v.kind() == K::kInt || v.kind() == K::kFloat; };
    if (numeric(a) && numeric(b)) {
      if (a.kind() == K::kInt && b.kind() == K::kInt) {
        *cmp = a.int_value() < b.int_value() ? -1 : a.int_value() > b.int_value() ? 1 : 0;
      } else {
        const double x = a.kind() == K::kInt ? static_cast<double>(a.int_value()) : a.float_value();
        const double y = b.kind() == K::kInt ? static_cast<double>(b.int_value()) : b.float_value();
        *cmp = x < y ? -1 : x > y ? 1 : 0;
      }
      return true;
    }
    if (a.kind() == K::kString && b.kind() == K::kString) {
      *cmp = a.string_value().compare(b.string_value());
      *cmp = *cmp < 0 ? -1 : *cmp > 0 ? 1 : 0;
      return true;
    }
    if (!ordered && a.kind() == K::kBool && b.kind() == K::kBool) {
      *cmp = a.bool_value() == b.bool_value() ? 0 : 1;
      return true;
    }
    if (!ordered &&
        (a.kind() == K::kNil || b.kind() == K::kNil || !a.is_valid() || !b.is_valid())) {
      *cmp = (a.kind() == b.kind()) ? 0 : 1;
      return true;
    }
    const bool basic = (a.kind() == K::kBool || a.kind() == K::kString || numeric(a)) &&
                       (b.kind() == K::kBool || b.kind() == K::kString || numeric(b));
    Fail(fn, absl::StrCat("error calling ", fn.text, ": ",
                          basic && a.kind() != b.kind() ? "incompatible types for comparison"
                          : ordered                     ? "invalid type for comparison"
                                                        : "non-comparable type"));
    return false;
  }

  // Go's fmt.Sprintf for %v %s %d %q %t %%, with flags '-' and '0', a width and, for strings,
  // a precision ("%.12s").
  static std::string Printf(const std::string& format, const std::vector<Value>& args) {
    std::string out;
    size_t next = 1;
    for (size_t i = 0; i < format.size(); ++i) {
      if (format[i] != '%') {
        out += format[i];
        continue;
      }
      if (++i >= format.size()) {
        out += "%!(NOVERB)";
        break;
      }
      bool left = false, zero = false;
      for (; i < format.size() && (format[i] == '-' || format[i] == '0'); ++i) {
        if (format[i] == '-') left = true;
        if (format[i] == '0') zero = true;
      }
      size_t width = 0;
      for (; i < format.size() && absl::ascii_isdigit(static_cast<unsigned char>(format[i])); ++i) {
        width = std::min<size_t>(width * 10 + (format[i] - '0'), 1024);
      }
      std::optional<size_t> precision;
      if (i < format.size() && format[i] == '.') {
        precision = 0;
        for (++i; i < format.size() && absl::ascii_isdigit(static_cast<unsigned char>(format[i]));
             ++i) {
          *precision = std::min<size_t>(*precision * 10 + (format[i] - '0'), 1 << 20);
        }
      }
      if (i >= format.size()) {
        out += "%!(NOVERB)";
        break;
      }
      const char verb = format[i];
      if (verb == '%') {
        out += '%';
        continue;
      }
      if (next >= args.size()) {
        absl::StrAppend(&out, "%!", std::string(1, verb), "(MISSING)");
        continue;
      }
      const Value& v = args[next++];
      std::string s;
      switch (verb) {
        case 'v':
        case 's':
          s = v.Print();
          if (precision && v.kind() != Value::Kind::kFloat) s = Utf8Prefix(s, *precision);
          break;
        case 'd':
          s = v.kind() == Value::Kind::kInt
                  ? std::to_string(v.int_value())
                  : absl::StrCat("%!d(", v.TypeName(), "=", v.Print(), ")");
          break;
        case 't':
          s = v.kind() == Value::Kind::kBool
                  ? v.Print()
                  : absl::StrCat("%!t(", v.TypeName(), "=", v.Print(), ")");
          break;
        case 'q':
          s = absl::StrCat("\"", absl::CEscape(v.Print()), "\"");
          break;
        default:
          s = absl::StrCat("%!", std::string(1, verb), "(", v.TypeName(), "=", v.Print(), ")");
      }
      if (s.size() < width) {
        const std::string pad(width - s.size(), zero && !left ? '0' : ' ');
        s = left ? s + std::string(width - s.size(), ' ') : pad + s;
      }
      out += s;
    }
    if (next < args.size()) {
      std::vector<std::string> extra;
      for (size_t k = next; k < args.size(); ++k) {
        extra.push_back(absl::StrCat(args[k].TypeName(), "=", args[k].Print()));
      }
      absl::StrAppend(&out, "%!(EXTRA ", absl::StrJoin(extra, ", "), ")");
    }
    return out;
  }

  absl::string_view text_;
  std::string out_;
  std::vector<std::pair<std::string, Value>> vars_;
  size_t steps_ = 0;
  absl::Status error_;
};

bool HasActions(const Node& n) {
  for (const auto& c : n.children) {
    if (c->type != Node::Type::kText) return true;
  }
  return false;
}

}  // namespace

// ---- Template ----

absl::StatusOr<Template> Template::Parse(absl::string_view text) {
  Template t;
  t.text_ = std::make_shared<const std::string>(text);
  Parser parser(*t.text_, Lexer(*t.text_).Run());
  absl::StatusOr<std::unique_ptr<Node>> root = parser.Parse();
  if (!root.ok()) return root.status();
  t.root_ = std::shared_ptr<const Node>(std::move(*root));
  return t;
}

absl::StatusOr<std::string> Template::Execute(const Value& data) const {
  Executor e(*text_, data);
  return e.Run(*root_, data);
}

bool Template::IsPlainText() const { return !HasActions(*root_); }

absl::StatusOr<std::string> Render(absl::string_view text, const Value& data) {
  absl::StatusOr<Template> t = Template::Parse(text);
  if (!t.ok()) return t.status();
  return t->Execute(data);
}

}  // namespace swarm::tmpl

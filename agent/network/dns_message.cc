#include "agent/network/dns_message.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace swarm::agent::network::dns {

namespace {

constexpr size_t kMaxNameLength = 255;  // wire bytes, RFC 1035 2.3.4
constexpr size_t kMaxLabelLength = 63;

// Debian's Abseil has its own string_view.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

class Reader {
 public:
  explicit Reader(std::string_view wire) : wire_(wire) {}

  size_t pos() const { return pos_; }
  bool AtEnd() const { return pos_ == wire_.size(); }

  absl::StatusOr<uint16_t> U16(const char* what) {
    if (wire_.size() - pos_ < 2) return Short(what);
    uint16_t v = (static_cast<uint8_t>(wire_[pos_]) << 8) | static_cast<uint8_t>(wire_[pos_ + 1]);
    pos_ += 2;
    return v;
  }
  absl::StatusOr<uint32_t> U32(const char* what) {
    auto hi = U16(what);
    if (!hi.ok()) return hi.status();
    auto lo = U16(what);
    if (!lo.ok()) return lo.status();
    return (static_cast<uint32_t>(*hi) << 16) | *lo;
  }
  absl::StatusOr<std::string> Bytes(size_t n, const char* what) {
    if (wire_.size() - pos_ < n) return Short(what);
    std::string out(wire_.substr(pos_, n));
    pos_ += n;
    return out;
  }

  // A possibly compressed name. Pointers must point before the label that holds them, so
  // following them always terminates.
  absl::StatusOr<std::string> Name(const char* what) {
    std::string name;
    size_t wire_length = 1;  // the final zero byte
    size_t p = pos_;
    bool jumped = false;
    while (true) {
      if (p >= wire_.size()) return Short(what);
      uint8_t len = static_cast<uint8_t>(wire_[p]);
      if ((len & 0xC0) == 0xC0) {
        if (p + 1 >= wire_.size()) return Short(what);
        size_t target = ((len & 0x3F) << 8) | static_cast<uint8_t>(wire_[p + 1]);
        if (target >= p) {
          return absl::InvalidArgumentError(absl::StrCat(
              "malformed DNS message: compression pointer in ", what, " does not point backwards"));
        }
        if (!jumped) pos_ = p + 2;
        jumped = true;
        p = target;
        continue;
      }
      if ((len & 0xC0) != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("malformed DNS message: unsupported label type in ", what));
      }
      if (len == 0) {
        if (!jumped) pos_ = p + 1;
        return name;
      }
      if (len > kMaxLabelLength || wire_.size() - p - 1 < len) return Short(what);
      wire_length += len + 1;
      if (wire_length > kMaxNameLength) {
        return absl::InvalidArgumentError(
            absl::StrCat("malformed DNS message: name longer than 255 bytes in ", what));
      }
      if (!name.empty()) name.push_back('.');
      name.append(wire_.substr(p + 1, len));
      p += 1 + len;
    }
  }

 private:
  absl::Status Short(const char* what) const {
    return absl::InvalidArgumentError(absl::StrCat(
        "malformed DNS message: ", what, " runs past the end (", wire_.size(), " bytes)"));
  }
  std::string_view wire_;
  size_t pos_ = 0;
};

void PutU16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}
void PutU32(std::string& out, uint32_t v) {
  PutU16(out, v >> 16);
  PutU16(out, v & 0xFFFF);
}

// Writes a name uncompressed. Names come from our table or a parsed message, so labels are
// non-empty and short; an over-long label is cut rather than corrupting the message.
void PutName(std::string& out, std::string_view name) {
  if (!name.empty()) {
    for (absl::string_view label : absl::StrSplit(Av(name), '.')) {
      if (label.empty()) continue;
      label = label.substr(0, kMaxLabelLength);
      out.push_back(static_cast<char>(label.size()));
      out.append(label.data(), label.size());
    }
  }
  out.push_back('\0');
}

bool SameName(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(Av(a), Av(b));
}

void PutRecord(std::string& out, const ResourceRecord& rr, const std::string* question_name) {
  if (question_name != nullptr && SameName(rr.name, *question_name)) {
    PutU16(out, 0xC000 | kHeaderSize);  // the first question's name starts right after the header
  } else {
    PutName(out, rr.name);
  }
  PutU16(out, rr.type);
  PutU16(out, rr.rclass);
  PutU32(out, rr.ttl);
  if (rr.rdata_name.has_value()) {
    std::string data;
    PutName(data, *rr.rdata_name);
    PutU16(out, data.size());
    out.append(data);
  } else {
    PutU16(out, rr.rdata.size());
    out.append(rr.rdata);
  }
}

void PutHeader(std::string& out, const Header& h, size_t qd, size_t an, size_t ns, size_t ar) {
  PutU16(out, h.id);
  uint8_t b2 = (h.qr ? 0x80 : 0) | ((h.opcode & 0x0F) << 3) | (h.aa ? 0x04 : 0) |
               (h.tc ? 0x02 : 0) | (h.rd ? 0x01 : 0);
  uint8_t b3 = (h.ra ? 0x80 : 0) | (h.rcode & 0x0F);
  out.push_back(static_cast<char>(b2));
  out.push_back(static_cast<char>(b3));
  PutU16(out, qd);
  PutU16(out, an);
  PutU16(out, ns);
  PutU16(out, ar);
}

Header ParseHeaderBytes(std::string_view wire) {
  Header h;
  h.id = (static_cast<uint8_t>(wire[0]) << 8) | static_cast<uint8_t>(wire[1]);
  uint8_t b2 = wire[2], b3 = wire[3];
  h.qr = b2 & 0x80;
  h.opcode = (b2 >> 3) & 0x0F;
  h.aa = b2 & 0x04;
  h.tc = b2 & 0x02;
  h.rd = b2 & 0x01;
  h.ra = b3 & 0x80;
  h.rcode = b3 & 0x0F;
  return h;
}

absl::Status ReadRecords(Reader& r, uint16_t count, const char* what,
                         std::vector<ResourceRecord>& out) {
  for (uint16_t i = 0; i < count; ++i) {
    ResourceRecord rr;
    auto name = r.Name(what);
    if (!name.ok()) return name.status();
    rr.name = std::move(*name);
    auto type = r.U16(what);
    if (!type.ok()) return type.status();
    auto rclass = r.U16(what);
    if (!rclass.ok()) return rclass.status();
    auto ttl = r.U32(what);
    if (!ttl.ok()) return ttl.status();
    auto len = r.U16(what);
    if (!len.ok()) return len.status();
    auto data = r.Bytes(*len, what);
    if (!data.ok()) return data.status();
    rr.type = *type;
    rr.rclass = *rclass;
    rr.ttl = *ttl;
    rr.rdata = std::move(*data);
    out.push_back(std::move(rr));
  }
  return absl::OkStatus();
}

}  // namespace

const ResourceRecord* Message::Opt() const {
  for (const ResourceRecord& rr : additionals) {
    if (rr.type == kTypeOpt) return &rr;
  }
  return nullptr;
}

absl::StatusOr<Message> ParseMessage(std::string_view wire) {
  if (wire.size() < kHeaderSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed DNS message: ", wire.size(), " bytes, shorter than a header"));
  }
  Message m;
  m.header = ParseHeaderBytes(wire);
  Reader r(wire);
  r.Bytes(4, "header").IgnoreError();
  uint16_t counts[4];
  for (uint16_t& c : counts) c = *r.U16("header");
  // Counts are not trusted for reserving: each entry is read from bytes that must exist.
  for (uint16_t i = 0; i < counts[0]; ++i) {
    Question q;
    auto name = r.Name("question");
    if (!name.ok()) return name.status();
    auto type = r.U16("question");
    if (!type.ok()) return type.status();
    auto qclass = r.U16("question");
    if (!qclass.ok()) return qclass.status();
    q.name = std::move(*name);
    q.type = *type;
    q.qclass = *qclass;
    m.questions.push_back(std::move(q));
  }
  if (auto s = ReadRecords(r, counts[1], "answer", m.answers); !s.ok()) return s;
  if (auto s = ReadRecords(r, counts[2], "authority record", m.authorities); !s.ok()) return s;
  if (auto s = ReadRecords(r, counts[3], "additional record", m.additionals); !s.ok()) return s;
  if (!r.AtEnd()) {
    return absl::InvalidArgumentError(absl::StrCat("malformed DNS message: ", wire.size() - r.pos(),
                                                   " bytes of trailing garbage"));
  }
  return m;
}

std::string BuildMessage(const Message& m) {
  std::string out;
  PutHeader(out, m.header, m.questions.size(), m.answers.size(), m.authorities.size(),
            m.additionals.size());
  for (const Question& q : m.questions) {
    PutName(out, q.name);
    PutU16(out, q.type);
    PutU16(out, q.qclass);
  }
  // A pointer to the first question is only valid if it was written in full at offset 12.
  const std::string* qname =
      m.questions.empty() || m.questions[0].name.empty() ? nullptr : &m.questions[0].name;
  for (const auto* section : {&m.answers, &m.authorities, &m.additionals}) {
    for (const ResourceRecord& rr : *section) PutRecord(out, rr, qname);
  }
  return out;
}

std::string BuildUdpResponse(const Message& message, size_t max_size) {
  std::string full = BuildMessage(message);
  if (full.size() <= max_size) return full;
  Message cut = message;
  cut.header.tc = true;
  cut.authorities.clear();
  cut.additionals.clear();
  if (const ResourceRecord* opt = message.Opt()) cut.additionals.push_back(*opt);
  cut.answers.clear();
  std::string out = BuildMessage(cut);
  for (const ResourceRecord& rr : message.answers) {
    cut.answers.push_back(rr);
    std::string longer = BuildMessage(cut);
    if (longer.size() > max_size) break;
    out = std::move(longer);
  }
  return out;
}

size_t MaxUdpResponseSize(const Message& query) {
  const ResourceRecord* opt = query.Opt();
  if (opt == nullptr) return kMaxUdpSizeWithoutEdns;
  return std::clamp<size_t>(opt->rclass, kMaxUdpSizeWithoutEdns, kMaxUdpSizeWithEdns);
}

std::optional<std::string> FormErrResponse(std::string_view wire) {
  if (wire.size() < kHeaderSize) return std::nullopt;
  Header h = ParseHeaderBytes(wire);
  if (h.qr) return std::nullopt;
  Header out;
  out.id = h.id;
  out.qr = true;
  out.opcode = h.opcode;
  out.rd = h.rd;
  out.ra = true;
  out.rcode = kRcodeFormErr;
  std::string bytes;
  PutHeader(bytes, out, 0, 0, 0, 0);
  return bytes;
}

Message ResponseTo(const Message& query, uint8_t rcode) {
  Message r;
  r.header.id = query.header.id;
  r.header.qr = true;
  r.header.opcode = query.header.opcode;
  r.header.rd = query.header.rd;
  r.header.ra = true;
  r.header.rcode = rcode;
  r.questions = query.questions;
  if (query.Opt() != nullptr) {
    ResourceRecord opt;
    opt.type = kTypeOpt;
    opt.rclass = kMaxUdpSizeWithEdns;
    r.additionals.push_back(std::move(opt));
  }
  return r;
}

ResourceRecord ARecord(const std::string& name, const unsigned char (&ipv4)[4], uint32_t ttl) {
  ResourceRecord rr;
  rr.name = name;
  rr.type = kTypeA;
  rr.ttl = ttl;
  rr.rdata.assign(reinterpret_cast<const char*>(ipv4), 4);
  return rr;
}

ResourceRecord AaaaRecord(const std::string& name, const unsigned char (&ipv6)[16], uint32_t ttl) {
  ResourceRecord rr;
  rr.name = name;
  rr.type = kTypeAaaa;
  rr.ttl = ttl;
  rr.rdata.assign(reinterpret_cast<const char*>(ipv6), 16);
  return rr;
}

ResourceRecord PtrRecord(const std::string& name, const std::string& target, uint32_t ttl) {
  ResourceRecord rr;
  rr.name = name;
  rr.type = kTypePtr;
  rr.ttl = ttl;
  rr.rdata_name = target;
  return rr;
}

std::string CanonicalName(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return absl::AsciiStrToLower(Av(name));
}

ResolvConf ParseResolvConf(std::string_view content) {
  ResolvConf conf;
  for (absl::string_view line : absl::StrSplit(Av(content), '\n')) {
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (f.empty() || f[0][0] == '#' || f[0][0] == ';') continue;
    if (f[0] == "nameserver" && f.size() >= 2) {
      conf.nameservers.emplace_back(f[1]);
    } else if (f[0] == "search" || f[0] == "domain") {
      conf.search.clear();
      for (size_t i = 1; i < f.size(); ++i) conf.search.emplace_back(f[i]);
    } else if (f[0] == "options") {
      for (size_t i = 1; i < f.size(); ++i) conf.options.emplace_back(f[i]);
    }
  }
  return conf;
}

std::string ContainerResolvConf(const ResolvConf& host, const ResolvConf& service) {
  std::string out = "nameserver 127.0.0.11\n";
  const std::vector<std::string>& search = service.search.empty() ? host.search : service.search;
  if (!search.empty()) absl::StrAppend(&out, "search ", absl::StrJoin(search, " "), "\n");
  std::vector<std::string> options = service.options;
  if (std::none_of(options.begin(), options.end(),
                   [](const std::string& o) { return absl::StartsWith(o, "ndots:"); })) {
    options.push_back("ndots:0");
  }
  absl::StrAppend(&out, "options ", absl::StrJoin(options, " "), "\n");
  return out;
}

}  // namespace swarm::agent::network::dns

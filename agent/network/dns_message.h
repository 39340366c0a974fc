// DNS messages on the wire (RFC 1035, EDNS0 from RFC 6891) for the embedded DNS server
// (dns.h): parsing queries and responses from untrusted bytes, building responses, truncating
// them to what a UDP client accepts, and the container's resolv.conf. Pure code over plain
// data (STYLE 1): no sockets, no clock, no threads.
//
// Parsing never trusts the input: every length and compression pointer is checked against
// the buffer, pointers may only point backwards (so no loops), names are at most 255 bytes.
// A malformed message is an InvalidArgument status, which the server answers with FORMERR
// (FormErrResponse) when at least the header is readable.
//
// Thread-safety: values and pure functions.
#ifndef SWARM_AGENT_NETWORK_DNS_MESSAGE_H_
#define SWARM_AGENT_NETWORK_DNS_MESSAGE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace swarm::agent::network::dns {

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeCname = 5;
inline constexpr uint16_t kTypePtr = 12;
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr uint16_t kTypeOpt = 41;
inline constexpr uint16_t kClassIn = 1;

inline constexpr uint8_t kOpcodeQuery = 0;

inline constexpr uint8_t kRcodeNoError = 0;
inline constexpr uint8_t kRcodeFormErr = 1;
inline constexpr uint8_t kRcodeServFail = 2;
inline constexpr uint8_t kRcodeNxDomain = 3;
inline constexpr uint8_t kRcodeNotImp = 4;

// The largest UDP response a client that sent no EDNS OPT record accepts (RFC 1035 4.2.1).
inline constexpr size_t kMaxUdpSizeWithoutEdns = 512;
// The largest UDP response we send to an EDNS client, whatever larger size it advertises.
inline constexpr size_t kMaxUdpSizeWithEdns = 4096;
inline constexpr size_t kHeaderSize = 12;

struct Header {
  uint16_t id = 0;
  bool qr = false;  // a response
  uint8_t opcode = kOpcodeQuery;
  bool aa = false;  // authoritative answer
  bool tc = false;  // truncated
  bool rd = false;  // recursion desired
  bool ra = false;  // recursion available
  uint8_t rcode = kRcodeNoError;
};

struct Question {
  std::string name;  // dotted, without the trailing dot; "" is the root; case as received
  uint16_t type = kTypeA;
  uint16_t qclass = kClassIn;
};

struct ResourceRecord {
  std::string name;  // as in Question
  uint16_t type = kTypeA;
  uint16_t rclass = kClassIn;  // for OPT: the sender's UDP payload size
  uint32_t ttl = 0;            // for OPT: extended rcode and flags
  // The record's data as on the wire, except for types whose data holds a name (PTR,
  // CNAME): parsed records keep those bytes verbatim too (they may hold compression
  // pointers into the message); to build one, use PtrRecord, which writes the name.
  std::string rdata;
  std::optional<std::string> rdata_name;  // set by PtrRecord: written as an uncompressed name
};

struct Message {
  Header header;
  std::vector<Question> questions;
  std::vector<ResourceRecord> answers;
  std::vector<ResourceRecord> authorities;
  std::vector<ResourceRecord> additionals;

  // The EDNS OPT record among the additionals, if any.
  const ResourceRecord* Opt() const;
};

// Parses a whole message. InvalidArgument (saying what is wrong) for anything malformed:
// short header, counts beyond the data, bad labels or pointers, trailing garbage.
absl::StatusOr<Message> ParseMessage(std::string_view wire);

// Serializes a message. Record names equal to the first question's name are written as a
// pointer to it; other names are written in full.
std::string BuildMessage(const Message& message);

// Serializes a response for a UDP client that accepts at most max_size bytes: if the full
// message is larger, as many whole answers as fit are kept (authorities and additionals
// other than OPT are dropped) and TC is set, telling the client to retry over TCP.
std::string BuildUdpResponse(const Message& message, size_t max_size);

// The largest UDP response the sender of `query` accepts: 512 without EDNS, else its
// advertised size clamped to [512, kMaxUdpSizeWithEdns].
size_t MaxUdpResponseSize(const Message& query);

// A FORMERR response to a message that failed to parse, or nullopt when even its header is
// unreadable (shorter than 12 bytes) or it is itself a response: such packets are dropped,
// as answering them could loop between two servers.
std::optional<std::string> FormErrResponse(std::string_view wire);

// The start of a response to `query`: same id, opcode, RD and question; QR and RA set; an OPT
// record (our UDP size) when the query had one.
Message ResponseTo(const Message& query, uint8_t rcode);

// Records of our answers.
ResourceRecord ARecord(const std::string& name, const unsigned char (&ipv4)[4], uint32_t ttl);
ResourceRecord AaaaRecord(const std::string& name, const unsigned char (&ipv6)[16], uint32_t ttl);
ResourceRecord PtrRecord(const std::string& name, const std::string& target, uint32_t ttl);

// Lower-cases ASCII letters and drops one trailing dot: the key names are compared by
// (DNS names are case-insensitive, RFC 4343).
std::string CanonicalName(std::string_view name);

// resolv.conf: what the host's says, and what a container's should say.
struct ResolvConf {
  std::vector<std::string> nameservers;  // in order, as written (addresses)
  std::vector<std::string> search;       // the last search/domain line wins, as in glibc
  std::vector<std::string> options;      // "ndots:2", "edns0", ...
};

// Parses resolv.conf content; unknown lines and comments (# or ;) are ignored.
ResolvConf ParseResolvConf(std::string_view content);

// A container's resolv.conf: the embedded server (127.0.0.11) as the only nameserver, the
// service's search domains (--dns-search) or else the host's, and the service's options
// (--dns-option) with `ndots:0` unless they set ndots, so that a single-label name such as a
// service name is asked as is first, before the search domains are tried. (The service's
// nameservers,
// --dns, are the embedded server's upstreams for the container, not lines here.)
std::string ContainerResolvConf(const ResolvConf& host, const ResolvConf& service = {});

}  // namespace swarm::agent::network::dns

#endif  // SWARM_AGENT_NETWORK_DNS_MESSAGE_H_

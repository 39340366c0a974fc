#include "cli/format.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace swarm::cli {
namespace {

// Docker's formatter: tabwriter.NewWriter(out, 10, 1, 3, ' ', 0).
constexpr size_t kMinWidth = 10;
constexpr size_t kPadding = 3;
// Docker's `service ps` shortens errors to this many characters.
constexpr size_t kMaxErrorLength = 30;

size_t Utf8Length(absl::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

// The first n characters of s (UTF-8 aware).
std::string Utf8Prefix(absl::string_view s, size_t n) {
  size_t chars = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (chars == n) return std::string(s.substr(0, i));
      ++chars;
    }
  }
  return std::string(s);
}

std::string Ellipsis(absl::string_view s, size_t max) {
  if (Utf8Length(s) <= max) return std::string(s);
  return Utf8Prefix(s, max - 1) + "\xe2\x80\xa6";  // "…"
}

std::string DriverName(const api::Network& n) {
  if (!n.spec().driver_config().name().empty()) return n.spec().driver_config().name();
  if (!n.driver_state().name().empty()) return n.driver_state().name();
  return "overlay";
}

std::string Name(const api::Annotations& a) { return a.name(); }

// One row of a listing as templates see it: a struct whose fields are the columns, sorted by
// key as Docker's json prints them. header_row puts the column headers in place of the values
// (the header line of a `table` format).
tmpl::Value RowValue(const Listing& listing, const std::vector<std::string>* row) {
  std::vector<tmpl::Value::Field> fields;
  for (size_t i = 0; i < listing.columns.size(); ++i) {
    const Column& c = listing.columns[i];
    fields.push_back({c.key, tmpl::Value::String(row == nullptr ? c.header : (*row)[i])});
  }
  std::sort(
      fields.begin(), fields.end(),
      [](const tmpl::Value::Field& a, const tmpl::Value::Field& b) { return a.name < b.name; });
  return tmpl::Value::Struct("row", std::move(fields));
}

// "invalid --format: <engine's error>", naming the fields a row has when one is missing.
absl::Status FormatError(const absl::Status& s, const Listing& listing) {
  std::string message = absl::StrCat("invalid --format: ", s.message());
  if (absl::StrContains(s.message(), "can't evaluate field")) {
    std::vector<std::string> keys;
    for (const Column& c : listing.columns) keys.push_back("{{." + c.key + "}}");
    absl::StrAppend(&message, " (fields: ", absl::StrJoin(keys, ", "),
                    ", or {{json .}}; or use --format json)");
  }
  return absl::InvalidArgumentError(message);
}

// Protobuf field names as Go's (and so Docker's templates) spell them: "node_id" -> "NodeID".
std::string GoFieldName(absl::string_view proto_name) {
  static const std::map<std::string, std::string, std::less<>> kInitialisms = {
      {"id", "ID"},   {"ids", "IDs"},   {"ip", "IP"},     {"os", "OS"},
      {"tls", "TLS"}, {"ca", "CA"},     {"url", "URL"},   {"dns", "DNS"},
      {"vip", "VIP"}, {"vips", "VIPs"}, {"cpus", "CPUs"}, {"tty", "TTY"}};
  std::string out;
  for (absl::string_view part : absl::StrSplit(proto_name, '_', absl::SkipEmpty())) {
    auto it = kInitialisms.find(part);
    if (it != kInitialisms.end()) {
      out += it->second;
    } else {
      out += absl::AsciiStrToUpper(part.substr(0, 1));
      out += std::string(part.substr(1));
    }
  }
  return out;
}

tmpl::Value ScalarValue(const google::protobuf::Message& m,
                        const google::protobuf::FieldDescriptor* f, int index) {
  using FD = google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* r = m.GetReflection();
  const bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case FD::CPPTYPE_INT32:
      return tmpl::Value::Int(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f));
    case FD::CPPTYPE_INT64:
      return tmpl::Value::Int(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f));
    case FD::CPPTYPE_UINT32:
      return tmpl::Value::Int(rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f));
    case FD::CPPTYPE_UINT64:
      return tmpl::Value::Int(
          static_cast<int64_t>(rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f)));
    case FD::CPPTYPE_DOUBLE:
      return tmpl::Value::Float(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f));
    case FD::CPPTYPE_FLOAT:
      return tmpl::Value::Float(rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f));
    case FD::CPPTYPE_BOOL:
      return tmpl::Value::Bool(rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f));
    case FD::CPPTYPE_ENUM: {
      const google::protobuf::EnumValueDescriptor* e =
          rep ? r->GetRepeatedEnum(m, f, index) : r->GetEnum(m, f);
      return tmpl::Value::String(e->name());
    }
    case FD::CPPTYPE_STRING: {
      std::string v = rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f);
      if (f->type() == FD::TYPE_BYTES) v = absl::Base64Escape(v);
      return tmpl::Value::String(std::move(v));
    }
    case FD::CPPTYPE_MESSAGE:
      return ProtoValue(rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f));
  }
  return tmpl::Value();
}

// Sort key of a task: service name, slot (or node for global services), newest first.
struct TaskRow {
  std::string name;
  const api::Task* task;
};

}  // namespace

std::string HumanDuration(absl::Duration d) {
  const int64_t seconds = absl::ToInt64Seconds(d);
  if (seconds < 1) return "Less than a second";
  if (seconds == 1) return "1 second";
  if (seconds < 60) return absl::StrCat(seconds, " seconds");
  const int64_t minutes = absl::ToInt64Minutes(d);
  if (minutes == 1) return "About a minute";
  if (minutes < 60) return absl::StrCat(minutes, " minutes");
  const int64_t hours = static_cast<int64_t>(absl::ToDoubleHours(d) + 0.5);
  if (hours == 1) return "About an hour";
  if (hours < 48) return absl::StrCat(hours, " hours");
  if (hours < 24 * 7 * 2) return absl::StrCat(hours / 24, " days");
  if (hours < 24 * 30 * 2) return absl::StrCat(hours / 24 / 7, " weeks");
  if (hours < 24 * 365 * 2) return absl::StrCat(hours / 24 / 30, " months");
  return absl::StrCat(absl::ToInt64Hours(d) / 24 / 365, " years");
}

std::string TimeAgo(absl::Time then, absl::Time now) {
  if (then == absl::UnixEpoch()) return "";
  return HumanDuration(now - then) + " ago";
}

std::string TruncateId(absl::string_view id, bool no_trunc) {
  if (no_trunc || id.size() <= 12) return std::string(id);
  return std::string(id.substr(0, 12));
}

std::string TaskStateName(api::TaskState state) {
  switch (state) {
    case api::TASK_STATE_NEW:
      return "New";
    case api::TASK_STATE_PENDING:
      return "Pending";
    case api::TASK_STATE_ASSIGNED:
      return "Assigned";
    case api::TASK_STATE_ACCEPTED:
      return "Accepted";
    case api::TASK_STATE_PREPARING:
      return "Preparing";
    case api::TASK_STATE_READY:
      return "Ready";
    case api::TASK_STATE_STARTING:
      return "Starting";
    case api::TASK_STATE_RUNNING:
      return "Running";
    case api::TASK_STATE_COMPLETE:
      return "Complete";
    case api::TASK_STATE_SHUTDOWN:
      return "Shutdown";
    case api::TASK_STATE_FAILED:
      return "Failed";
    case api::TASK_STATE_REJECTED:
      return "Rejected";
    case api::TASK_STATE_REMOVE:
      return "Remove";
    case api::TASK_STATE_ORPHANED:
      return "Orphaned";
    default:
      return absl::StrCat("State(", static_cast<int>(state), ")");
  }
}

std::string NodeStateName(api::NodeState state) {
  switch (state) {
    case api::NODE_STATE_UNKNOWN:
      return "Unknown";
    case api::NODE_STATE_DOWN:
      return "Down";
    case api::NODE_STATE_READY:
      return "Ready";
    case api::NODE_STATE_DISCONNECTED:
      return "Disconnected";
    default:
      return "Unknown";
  }
}

std::string AvailabilityName(api::NodeAvailability availability) {
  switch (availability) {
    case api::NODE_AVAILABILITY_ACTIVE:
      return "Active";
    case api::NODE_AVAILABILITY_PAUSE:
      return "Pause";
    case api::NODE_AVAILABILITY_DRAIN:
      return "Drain";
    default:
      return "Unknown";
  }
}

std::string RoleName(api::NodeRole role) {
  return role == api::NODE_ROLE_MANAGER ? "manager" : "worker";
}

std::string ManagerStatusName(const api::Node& node) {
  if (!node.has_manager_status()) return "";
  if (node.manager_status().leader()) return "Leader";
  switch (node.manager_status().reachability()) {
    case api::REACHABILITY_REACHABLE:
      return "Reachable";
    case api::REACHABILITY_UNREACHABLE:
      return "Unreachable";
    default:
      return "Unknown";
  }
}

std::string ServiceModeName(const api::ServiceSpec& spec) {
  switch (spec.mode_case()) {
    case api::ServiceSpec::kGlobal:
      return "global";
    case api::ServiceSpec::kReplicatedJob:
      return "replicated job";
    case api::ServiceSpec::kGlobalJob:
      return "global job";
    default:
      return "replicated";
  }
}

std::string ProtocolName(api::PortProtocol protocol) {
  switch (protocol) {
    case api::PORT_PROTOCOL_UDP:
      return "udp";
    case api::PORT_PROTOCOL_SCTP:
      return "sctp";
    default:
      return "tcp";
  }
}

std::string ImageWithoutDigest(absl::string_view image) {
  return std::string(image.substr(0, image.find('@')));
}

std::string FormatServicePorts(const google::protobuf::RepeatedPtrField<api::PortConfig>& ports) {
  std::vector<api::PortConfig> ingress;
  for (const api::PortConfig& p : ports) {
    if (p.publish_mode() == api::PUBLISH_MODE_INGRESS) ingress.push_back(p);
  }
  std::stable_sort(ingress.begin(), ingress.end(),
                   [](const api::PortConfig& a, const api::PortConfig& b) {
                     if (a.protocol() != b.protocol()) return a.protocol() < b.protocol();
                     return a.published_port() < b.published_port();
                   });
  std::vector<std::string> out;
  for (size_t i = 0; i < ingress.size();) {
    size_t j = i;
    while (j + 1 < ingress.size() && ingress[j + 1].protocol() == ingress[i].protocol() &&
           ingress[i].published_port() != 0 &&
           ingress[j + 1].published_port() == ingress[j].published_port() + 1 &&
           ingress[j + 1].target_port() == ingress[j].target_port() + 1) {
      ++j;
    }
    const api::PortConfig& first = ingress[i];
    const api::PortConfig& last = ingress[j];
    const std::string proto = ProtocolName(first.protocol());
    if (i == j) {
      out.push_back(
          absl::StrCat("*:", first.published_port(), "->", first.target_port(), "/", proto));
    } else {
      out.push_back(absl::StrCat("*:", first.published_port(), "-", last.published_port(), "->",
                                 first.target_port(), "-", last.target_port(), "/", proto));
    }
    i = j + 1;
  }
  return absl::StrJoin(out, ", ");
}

std::string FormatTaskPorts(const api::Task& task) {
  std::vector<std::string> out;
  for (const api::PortConfig& p : task.status().port_status().ports()) {
    out.push_back(absl::StrCat("*:", p.published_port(), "->", p.target_port(), "/",
                               ProtocolName(p.protocol())));
  }
  return absl::StrJoin(out, ", ");
}

std::string RenderTable(const std::vector<std::vector<std::string>>& lines) {
  std::vector<size_t> widths;
  for (const auto& line : lines) {
    // The last cell of a line is not part of any column.
    for (size_t i = 0; i + 1 < line.size(); ++i) {
      if (widths.size() <= i) widths.resize(i + 1, kMinWidth);
      widths[i] = std::max(widths[i], Utf8Length(line[i]) + kPadding);
    }
  }
  std::string out;
  for (const auto& line : lines) {
    for (size_t i = 0; i < line.size(); ++i) {
      out += line[i];
      if (i + 1 < line.size()) out.append(widths[i] - Utf8Length(line[i]), ' ');
    }
    out += '\n';
  }
  return out;
}

absl::StatusOr<std::string> RenderListing(const Listing& listing, const OutputOptions& options) {
  if (options.quiet) {
    std::string out;
    for (const auto& row : listing.rows) absl::StrAppend(&out, row[0], "\n");
    return out;
  }
  std::string format = options.format;
  if (format.empty() || format == "table") {
    std::vector<std::vector<std::string>> lines;
    std::vector<std::string> header;
    for (const Column& c : listing.columns) {
      if (c.in_table) header.push_back(c.header);
    }
    lines.push_back(std::move(header));
    for (size_t r = 0; r < listing.rows.size(); ++r) {
      std::vector<std::string> line;
      for (size_t i = 0; i < listing.columns.size(); ++i) {
        if (listing.columns[i].in_table) line.push_back(listing.rows[r][i]);
      }
      if (r < listing.id_marks.size() && !line.empty()) line[0] += listing.id_marks[r];
      lines.push_back(std::move(line));
    }
    return RenderTable(lines);
  }
  if (format == "json") format = "{{json .}}";
  // As Docker's formatter: "table" first, the spaces around, and \t and \n escapes.
  const bool table = absl::StartsWith(format, "table");
  if (table) format = format.substr(5);
  const size_t first = format.find_first_not_of(' ');
  format = first == std::string::npos
               ? ""
               : format.substr(first, format.find_last_not_of(' ') - first + 1);
  format = absl::StrReplaceAll(format, {{"\\t", "\t"}, {"\\n", "\n"}});
  absl::StatusOr<tmpl::Template> t = tmpl::Template::Parse(format);
  if (!t.ok()) return FormatError(t.status(), listing);
  // The header line; it also checks the template when there are no rows.
  absl::StatusOr<std::string> header = t->Execute(RowValue(listing, nullptr));
  if (!header.ok()) return FormatError(header.status(), listing);
  std::string text = table ? *header + "\n" : "";
  for (const auto& row : listing.rows) {
    absl::StatusOr<std::string> line = t->Execute(RowValue(listing, &row));
    if (!line.ok()) return FormatError(line.status(), listing);
    absl::StrAppend(&text, *line, "\n");
  }
  if (!table) return text;
  std::vector<std::vector<std::string>> lines;
  absl::string_view body = text;
  body.remove_suffix(1);  // the last line's "\n"
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    lines.push_back(absl::StrSplit(line, '\t'));
  }
  return RenderTable(lines);
}

tmpl::Value ProtoValue(const google::protobuf::Message& m) {
  using FD = google::protobuf::FieldDescriptor;
  const google::protobuf::Descriptor* d = m.GetDescriptor();
  if (d->full_name() == "google.protobuf.Timestamp") {
    const auto& ts = static_cast<const google::protobuf::Timestamp&>(m);
    return tmpl::Value::String(
        absl::FormatTime(absl::RFC3339_full, FromTimestamp(ts), absl::UTCTimeZone()));
  }
  if (d->full_name() == "google.protobuf.Duration") {
    const google::protobuf::Reflection* r = m.GetReflection();
    return tmpl::Value::String(
        absl::FormatDuration(absl::Seconds(r->GetInt64(m, d->FindFieldByName("seconds"))) +
                             absl::Nanoseconds(r->GetInt32(m, d->FindFieldByName("nanos")))));
  }
  const google::protobuf::Reflection* r = m.GetReflection();
  std::vector<tmpl::Value::Field> fields;
  for (int i = 0; i < d->field_count(); ++i) {
    const FD* f = d->field(i);
    tmpl::Value v;
    if (f->is_map()) {
      std::map<std::string, tmpl::Value> entries;
      for (int k = 0; k < r->FieldSize(m, f); ++k) {
        const google::protobuf::Message& entry = r->GetRepeatedMessage(m, f, k);
        const FD* key = entry.GetDescriptor()->map_key();
        const FD* value = entry.GetDescriptor()->map_value();
        entries[ScalarValue(entry, key, -1).Print()] = ScalarValue(entry, value, -1);
      }
      v = tmpl::Value::Map(std::move(entries));
    } else if (f->is_repeated()) {
      std::vector<tmpl::Value> items;
      for (int k = 0; k < r->FieldSize(m, f); ++k) items.push_back(ScalarValue(m, f, k));
      v = tmpl::Value::List(std::move(items));
    } else if (f->cpp_type() == FD::CPPTYPE_MESSAGE && !r->HasField(m, f)) {
      v = tmpl::Value::Nil();  // Go's nil pointer
    } else if (f->containing_oneof() != nullptr && !r->HasField(m, f)) {
      v = tmpl::Value::Nil();
    } else {
      v = ScalarValue(m, f, -1);
    }
    // Docker's types embed Meta (ID, Version, CreatedAt) and Annotations (Name, Labels).
    const bool embedded = f->name() == "meta" || f->name() == "annotations";
    fields.push_back({GoFieldName(f->name()), std::move(v), embedded});
  }
  return tmpl::Value::Struct(d->name(), std::move(fields));
}

absl::StatusOr<std::string> InspectTemplate(
    const std::vector<const google::protobuf::Message*>& objects, const std::string& format) {
  const std::string text = absl::StrReplaceAll(format, {{"\\t", "\t"}, {"\\n", "\n"}});
  absl::StatusOr<tmpl::Template> t = tmpl::Template::Parse(text);
  if (!t.ok())
    return absl::InvalidArgumentError(absl::StrCat("invalid --format: ", t.status().message()));
  std::string out;
  for (const google::protobuf::Message* m : objects) {
    absl::StatusOr<std::string> one = t->Execute(ProtoValue(*m));
    if (!one.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("invalid --format: ", one.status().message()));
    }
    absl::StrAppend(&out, *one, "\n");
  }
  return out;
}

absl::StatusOr<std::string> InspectJson(
    const std::vector<const google::protobuf::Message*>& objects) {
  // ordered_json keeps protobuf's field order, so "id" comes first as in docker inspect.
  nlohmann::ordered_json array = nlohmann::ordered_json::array();
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = false;
  for (const google::protobuf::Message* m : objects) {
    std::string json;
    auto status = google::protobuf::util::MessageToJsonString(*m, &json, options);
    if (!status.ok()) {
      return absl::InternalError(absl::StrCat("cannot print as JSON: ", status.ToString()));
    }
    nlohmann::ordered_json value =
        nlohmann::ordered_json::parse(json, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) return absl::InternalError("protobuf printed invalid JSON");
    array.push_back(std::move(value));
  }
  return array.dump(4, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

bool NaturalLess(absl::string_view a, absl::string_view b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const bool da = absl::ascii_isdigit(static_cast<unsigned char>(a[i]));
    const bool db = absl::ascii_isdigit(static_cast<unsigned char>(b[j]));
    if (da && db) {
      size_t ie = i, je = j;
      while (ie < a.size() && absl::ascii_isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && absl::ascii_isdigit(static_cast<unsigned char>(b[je]))) ++je;
      absl::string_view na = a.substr(i, ie - i);
      absl::string_view nb = b.substr(j, je - j);
      while (na.size() > 1 && na[0] == '0') na.remove_prefix(1);
      while (nb.size() > 1 && nb[0] == '0') nb.remove_prefix(1);
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = ie;
      j = je;
      continue;
    }
    if (a[i] != b[j]) return a[i] < b[j];
    ++i;
    ++j;
  }
  return a.size() - i < b.size() - j;
}

Listing NodeListing(const std::vector<api::Node>& nodes, absl::string_view self_id, bool no_trunc) {
  (void)no_trunc;  // Docker shows node IDs in full either way.
  std::vector<const api::Node*> sorted;
  for (const api::Node& n : nodes) sorted.push_back(&n);
  std::stable_sort(sorted.begin(), sorted.end(), [](const api::Node* a, const api::Node* b) {
    if (a->description().hostname() != b->description().hostname()) {
      return NaturalLess(a->description().hostname(), b->description().hostname());
    }
    return a->id() < b->id();
  });
  Listing l;
  l.columns = {{"ID", "ID"},
               {"Hostname", "HOSTNAME"},
               {"Status", "STATUS"},
               {"Availability", "AVAILABILITY"},
               {"ManagerStatus", "MANAGER STATUS"},
               {"EngineVersion", "ENGINE VERSION"},
               {"Self", "SELF", /*in_table=*/false}};
  for (const api::Node* n : sorted) {
    const bool self = !self_id.empty() && n->id() == self_id;
    l.rows.push_back({n->id(), n->description().hostname(), NodeStateName(n->status().state()),
                      AvailabilityName(n->spec().availability()), ManagerStatusName(*n),
                      n->description().engine().engine_version(), self ? "true" : "false"});
    l.id_marks.push_back(self ? " *" : "");
  }
  return l;
}

Listing ServiceListing(const std::vector<api::Service>& services,
                       const std::vector<api::ServiceStatus>& statuses, bool no_trunc) {
  std::map<std::string, const api::ServiceStatus*> by_id;
  for (const api::ServiceStatus& s : statuses) by_id[s.service_id()] = &s;
  std::vector<const api::Service*> sorted;
  for (const api::Service& s : services) sorted.push_back(&s);
  std::stable_sort(sorted.begin(), sorted.end(), [](const api::Service* a, const api::Service* b) {
    return NaturalLess(a->spec().annotations().name(), b->spec().annotations().name());
  });
  Listing l;
  l.columns = {{"ID", "ID"},       {"Name", "NAME"},  {"Mode", "MODE"}, {"Replicas", "REPLICAS"},
               {"Image", "IMAGE"}, {"Ports", "PORTS"}};
  for (const api::Service* s : sorted) {
    const api::ServiceSpec& spec = s->spec();
    auto it = by_id.find(s->id());
    const uint64_t running = it == by_id.end() ? 0 : it->second->running_tasks();
    const uint64_t completed = it == by_id.end() ? 0 : it->second->completed_tasks();
    uint64_t desired = it == by_id.end() ? 0 : it->second->desired_tasks();
    std::string replicas;
    switch (spec.mode_case()) {
      case api::ServiceSpec::kReplicatedJob: {
        uint64_t total = spec.replicated_job().total_completions();
        replicas = absl::StrCat(running, "/", desired, " (", completed, "/", total, " completed)");
        break;
      }
      case api::ServiceSpec::kGlobalJob:
        replicas =
            absl::StrCat(running, "/", desired, " (", completed, "/", desired, " completed)");
        break;
      case api::ServiceSpec::kGlobal:
        replicas = absl::StrCat(running, "/", desired);
        break;
      default:
        if (it == by_id.end()) desired = spec.replicated().replicas();
        replicas = absl::StrCat(running, "/", desired);
        if (spec.task_template().placement().max_replicas() > 0) {
          absl::StrAppend(&replicas, " (max ", spec.task_template().placement().max_replicas(),
                          " per node)");
        }
    }
    const auto& ports =
        s->endpoint().ports_size() > 0 ? s->endpoint().ports() : spec.endpoint_spec().ports();
    l.rows.push_back(
        {TruncateId(s->id(), no_trunc), spec.annotations().name(), ServiceModeName(spec), replicas,
         ImageWithoutDigest(spec.task_template().container().image()), FormatServicePorts(ports)});
  }
  return l;
}

Listing TaskListing(const std::vector<api::Task>& tasks,
                    const std::map<std::string, std::string>& service_names,
                    const std::map<std::string, std::string>& node_names, absl::Time now,
                    bool no_trunc) {
  std::vector<TaskRow> rows;
  for (const api::Task& t : tasks) {
    std::string service = t.service_annotations().name();
    if (service.empty()) {
      auto it = service_names.find(t.service_id());
      service = it != service_names.end() ? it->second : t.service_id();
    }
    std::string name = t.slot() != 0 ? absl::StrCat(service, ".", t.slot())
                                     : absl::StrCat(service, ".", t.node_id());
    rows.push_back({std::move(name), &t});
  }
  std::stable_sort(rows.begin(), rows.end(), [](const TaskRow& a, const TaskRow& b) {
    if (a.name != b.name) return NaturalLess(a.name, b.name);
    const absl::Time ta = FromTimestamp(a.task->meta().created_at());
    const absl::Time tb = FromTimestamp(b.task->meta().created_at());
    return ta > tb;  // newest first
  });
  Listing l;
  l.columns = {{"ID", "ID"},
               {"Name", "NAME"},
               {"Image", "IMAGE"},
               {"Node", "NODE"},
               {"DesiredState", "DESIRED STATE"},
               {"CurrentState", "CURRENT STATE"},
               {"Error", "ERROR"},
               {"Ports", "PORTS"}};
  std::string previous;
  for (const TaskRow& r : rows) {
    const api::Task& t = *r.task;
    std::string name = r.name == previous ? " \\_ " + r.name : r.name;
    previous = r.name;
    std::string node;
    if (!t.node_id().empty()) {
      auto it = node_names.find(t.node_id());
      node = it != node_names.end() && !it->second.empty() ? it->second : t.node_id();
    }
    std::string current = TaskStateName(t.status().state());
    if (t.status().has_timestamp()) {
      absl::StrAppend(
          &current, " ",
          absl::AsciiStrToLower(HumanDuration(now - FromTimestamp(t.status().timestamp()))),
          " ago");
    }
    std::string error;
    if (!t.status().err().empty()) {
      error = absl::StrCat(
          "\"", no_trunc ? t.status().err() : Ellipsis(t.status().err(), kMaxErrorLength), "\"");
    }
    l.rows.push_back({TruncateId(t.id(), no_trunc), name,
                      ImageWithoutDigest(t.spec().container().image()), node,
                      TaskStateName(t.desired_state()), current, error, FormatTaskPorts(t)});
  }
  return l;
}

Listing NetworkListing(const std::vector<api::Network>& networks, bool no_trunc) {
  std::vector<const api::Network*> sorted;
  for (const api::Network& n : networks) sorted.push_back(&n);
  std::stable_sort(sorted.begin(), sorted.end(), [](const api::Network* a, const api::Network* b) {
    return NaturalLess(a->spec().annotations().name(), b->spec().annotations().name());
  });
  Listing l;
  l.columns = {{"ID", "NETWORK ID"}, {"Name", "NAME"}, {"Driver", "DRIVER"}, {"Scope", "SCOPE"}};
  for (const api::Network* n : sorted) {
    l.rows.push_back(
        {TruncateId(n->id(), no_trunc), Name(n->spec().annotations()), DriverName(*n), "swarm"});
  }
  return l;
}

Listing SecretListing(const std::vector<api::Secret>& secrets, absl::Time now, bool no_trunc) {
  (void)no_trunc;  // Docker shows secret IDs in full either way.
  std::vector<const api::Secret*> sorted;
  for (const api::Secret& s : secrets) sorted.push_back(&s);
  std::stable_sort(sorted.begin(), sorted.end(), [](const api::Secret* a, const api::Secret* b) {
    return NaturalLess(a->spec().annotations().name(), b->spec().annotations().name());
  });
  Listing l;
  l.columns = {{"ID", "ID"},
               {"Name", "NAME"},
               {"Driver", "DRIVER"},
               {"CreatedAt", "CREATED"},
               {"UpdatedAt", "UPDATED"}};
  for (const api::Secret* s : sorted) {
    l.rows.push_back({s->id(), Name(s->spec().annotations()), s->spec().driver().name(),
                      TimeAgo(FromTimestamp(s->meta().created_at()), now),
                      TimeAgo(FromTimestamp(s->meta().updated_at()), now)});
  }
  return l;
}

Listing ConfigListing(const std::vector<api::Config>& configs, absl::Time now, bool no_trunc) {
  (void)no_trunc;  // Docker shows config IDs in full either way.
  std::vector<const api::Config*> sorted;
  for (const api::Config& c : configs) sorted.push_back(&c);
  std::stable_sort(sorted.begin(), sorted.end(), [](const api::Config* a, const api::Config* b) {
    return NaturalLess(a->spec().annotations().name(), b->spec().annotations().name());
  });
  Listing l;
  l.columns = {{"ID", "ID"}, {"Name", "NAME"}, {"CreatedAt", "CREATED"}, {"UpdatedAt", "UPDATED"}};
  for (const api::Config* c : sorted) {
    l.rows.push_back({c->id(), Name(c->spec().annotations()),
                      TimeAgo(FromTimestamp(c->meta().created_at()), now),
                      TimeAgo(FromTimestamp(c->meta().updated_at()), now)});
  }
  return l;
}

}  // namespace swarm::cli

// What swarmctl prints, as Docker prints it: aligned tables (Go's tabwriter with Docker's
// settings: minimum width 10, padding 3), relative times ("5 seconds ago", "About a minute
// ago"), truncated IDs, capitalized states, published ports ("*:8080->80/tcp"), the listings
// of `node ls`, `service ls`, `service ps`, `network ls`, `secret ls` and `config ls` with
// Docker's columns, `--format json` (one JSON object per row), `--format` templates (Go's
// text/template through common/template, with Docker's `table` form), `-q`, and `inspect`'s
// JSON array or template. Everything here is pure: the current time is a
// parameter, so tests pin it.
//
// Thread-safety: all functions are thread-safe (they hold no state).
#ifndef SWARM_CLI_FORMAT_H_
#define SWARM_CLI_FORMAT_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/proto_time.h"
#include "common/template.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "proto/control.pb.h"
#include "proto/objects.pb.h"

namespace swarm::cli {

// Docker's units.HumanDuration: "Less than a second", "1 second", "5 seconds", "About a
// minute", "3 minutes", "About an hour", "5 hours", "3 days", "2 weeks", "4 months", "2 years".
std::string HumanDuration(absl::Duration d);
// HumanDuration(now - then) + " ago" ("About a minute ago"); "" when then is unset.
std::string TimeAgo(absl::Time then, absl::Time now);

// The first 12 characters of an ID unless no_trunc.
std::string TruncateId(absl::string_view id, bool no_trunc);

// Docker's capitalized names: "Running", "Ready", "Drain", "Leader", "Reachable"...
std::string TaskStateName(api::TaskState state);
std::string NodeStateName(api::NodeState state);
std::string AvailabilityName(api::NodeAvailability availability);
std::string RoleName(api::NodeRole role);
// "Leader", "Reachable", "Unreachable", "Unknown"; "" for a worker.
std::string ManagerStatusName(const api::Node& node);
// "replicated", "global", "replicated job", "global job".
std::string ServiceModeName(const api::ServiceSpec& spec);
// "tcp", "udp", "sctp".
std::string ProtocolName(api::PortProtocol protocol);
// An image reference without its digest: "nginx:1.25@sha256:..." -> "nginx:1.25".
std::string ImageWithoutDigest(absl::string_view image);
// Ingress-published ports as `service ls` shows them, consecutive ports as ranges:
// "*:8080->80/tcp, *:30000-30001->53-54/udp".
std::string FormatServicePorts(const google::protobuf::RepeatedPtrField<api::PortConfig>& ports);
// Ports a task publishes on its node: "*:30000->80/tcp".
std::string FormatTaskPorts(const api::Task& task);

// Lines of cells aligned like Docker's tabwriter (min width 10, padding 3; the last cell of a
// line is not padded). Widths count UTF-8 characters.
std::string RenderTable(const std::vector<std::vector<std::string>>& lines);

// One column of a listing: the key is the field name of templates and JSON ("ID",
// "Hostname"), the header what the table shows ("ID", "HOSTNAME").
struct Column {
  std::string key;
  std::string header;
  // False for fields that templates and JSON have but the default table does not ("Self").
  bool in_table = true;
};

// The rows of an `ls`/`ps` command. The first column is the ID (what -q prints).
struct Listing {
  std::vector<Column> columns;
  std::vector<std::vector<std::string>> rows;
  // When not empty, one per row: appended to the ID in the default table only (`node ls`
  // marks the node the CLI talks to with " *").
  std::vector<std::string> id_marks;
};

// How to print a listing: -q, --format ("", "table", "json", "table TEMPLATE" or TEMPLATE).
// TEMPLATE is Go's text/template over one row: a struct with a field per column key, {{json .}}
// printing it with sorted keys as Docker does; \t and \n are escapes. With "table", the cells
// (split at tabs) are aligned as the default table, under a header line made by running the
// template over the column headers.
struct OutputOptions {
  bool quiet = false;
  bool no_trunc = false;
  std::string format;
};

// INVALID_ARGUMENT "invalid --format: template: ..." for a template that does not parse or
// asks for a field rows do not have (naming the fields they have).
absl::StatusOr<std::string> RenderListing(const Listing& listing, const OutputOptions& options);

// A protobuf message as templates see it, shaped like Docker's Go types: fields named as Go
// names them ("node_id" -> NodeID), Meta and Annotations embedded (so .CreatedAt, .Version,
// .Spec.Name and .Spec.Labels work), unset messages nil, maps as maps, enums by name,
// timestamps in RFC 3339, durations as Go prints them ("1m30s").
tmpl::Value ProtoValue(const google::protobuf::Message& m);
// `inspect --format TEMPLATE`: the template run over each object, one result per line.
absl::StatusOr<std::string> InspectTemplate(
    const std::vector<const google::protobuf::Message*>& objects, const std::string& format);

// The objects as a JSON array (4-space indentation), as `docker inspect` prints them; field
// names are protobuf's JSON names.
absl::StatusOr<std::string> InspectJson(
    const std::vector<const google::protobuf::Message*>& objects);

// `node ls`: ID (with " *" after the node the CLI talks to), HOSTNAME, STATUS, AVAILABILITY,
// MANAGER STATUS, ENGINE VERSION, and Self ("true"/"false") for templates and JSON; sorted by
// hostname (natural order). Node IDs are shown in full, as Docker does.
Listing NodeListing(const std::vector<api::Node>& nodes, absl::string_view self_id, bool no_trunc);
// `service ls`: ID, NAME, MODE, REPLICAS (running/desired from the statuses), IMAGE, PORTS;
// sorted by name.
Listing ServiceListing(const std::vector<api::Service>& services,
                       const std::vector<api::ServiceStatus>& statuses, bool no_trunc);
// `service ps` / `node ps`: ID, NAME ("web.1", " \_ web.1" for older tasks of the same
// slot), IMAGE, NODE, DESIRED STATE, CURRENT STATE ("Running 5 seconds ago"), ERROR,
// PORTS. service_names and node_names map IDs to names (missing: the ID is shown).
Listing TaskListing(const std::vector<api::Task>& tasks,
                    const std::map<std::string, std::string>& service_names,
                    const std::map<std::string, std::string>& node_names, absl::Time now,
                    bool no_trunc);
// `network ls`: NETWORK ID, NAME, DRIVER, SCOPE.
Listing NetworkListing(const std::vector<api::Network>& networks, bool no_trunc);
// `secret ls`: ID, NAME, DRIVER, CREATED, UPDATED.
Listing SecretListing(const std::vector<api::Secret>& secrets, absl::Time now, bool no_trunc);
// `config ls`: ID, NAME, CREATED, UPDATED.
Listing ConfigListing(const std::vector<api::Config>& configs, absl::Time now, bool no_trunc);

// Natural order: "node2" < "node10".
bool NaturalLess(absl::string_view a, absl::string_view b);

}  // namespace swarm::cli

#endif  // SWARM_CLI_FORMAT_H_

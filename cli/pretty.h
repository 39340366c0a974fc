// The human-readable `inspect --pretty` views of a service and a node, following the layout
// of Docker's pretty templates (tab-separated "Key:<TAB>value" lines, nested items indented
// by one space), and the value formats they use: Docker's binary sizes ("512MiB") and Go's
// durations ("1m30s"). Pure functions of the objects.
//
// Thread-safety: all functions are thread-safe (they hold no state).
#ifndef SWARM_CLI_PRETTY_H_
#define SWARM_CLI_PRETTY_H_

#include <cstdint>
#include <string>

#include "proto/objects.pb.h"

namespace swarm::cli {

// Docker's units.BytesSize: "512MiB", "1.5GiB", "100B".
std::string BytesSize(double bytes);

// `service inspect --pretty`.
std::string PrettyService(const api::Service& service);
// `node inspect --pretty`.
std::string PrettyNode(const api::Node& node);

}  // namespace swarm::cli

#endif  // SWARM_CLI_PRETTY_H_

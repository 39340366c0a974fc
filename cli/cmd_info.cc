// `swarmctl info` and `swarmctl version`.
#include <ostream>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/completion.h"
#include "cli/format.h"
#include "common/status_macros.h"

namespace swarm::cli {
namespace {

std::string StateName(api::LocalNodeState state) {
  switch (state) {
    case api::LOCAL_NODE_STATE_PENDING:
      return "pending";
    case api::LOCAL_NODE_STATE_ACTIVE:
      return "active";
    case api::LOCAL_NODE_STATE_LOCKED:
      return "locked";
    case api::LOCAL_NODE_STATE_ERROR:
      return "error";
    default:
      return "inactive";
  }
}

absl::Duration FromProto(const google::protobuf::Duration& d, absl::Duration fallback) {
  if (d.seconds() == 0 && d.nanos() == 0) return fallback;
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

void PrintCluster(Session& s, Client* c) {
  std::ostream& out = s.out();
  auto clusters = c->Control(&api::Control::Stub::ListClusters, api::ListClustersRequest());
  auto nodes = c->Control(&api::Control::Stub::ListNodes, api::ListNodesRequest());
  if (nodes.ok()) {
    int managers = 0;
    for (const api::Node& n : nodes->nodes()) {
      if (n.role() == api::NODE_ROLE_MANAGER) ++managers;
    }
    out << " Managers: " << managers << "\n";
    out << " Nodes: " << nodes->nodes_size() << "\n";
  }
  if (!clusters.ok() || clusters->clusters_size() == 0) return;
  const api::Cluster& cluster = clusters->clusters(0);
  const api::ClusterSpec& spec = cluster.spec();
  if (cluster.default_address_pool_size() > 0) {
    out << " Default Address Pool:";
    for (const std::string& pool : cluster.default_address_pool()) out << " " << pool;
    out << "\n";
  }
  if (cluster.subnet_size() > 0) out << " SubnetSize: " << cluster.subnet_size() << "\n";
  if (cluster.vxlan_udp_port() > 0) out << " Data Path Port: " << cluster.vxlan_udp_port() << "\n";
  out << " Orchestration:\n  Task History Retention Limit: "
      << spec.orchestration().task_history_retention_limit() << "\n";
  out << " Raft:\n  Snapshot Interval: " << spec.raft().snapshot_interval()
      << "\n  Number of Old Snapshots to Retain: " << spec.raft().keep_old_snapshots()
      << "\n  Heartbeat Tick: " << spec.raft().heartbeat_tick()
      << "\n  Election Tick: " << spec.raft().election_tick() << "\n";
  out << " Dispatcher:\n  Heartbeat Period: "
      << HumanDuration(FromProto(spec.dispatcher().heartbeat_period(), absl::Seconds(5))) << "\n";
  out << " CA Configuration:\n  Expiry Duration: "
      << HumanDuration(FromProto(spec.ca_config().node_cert_expiry(), absl::Hours(24 * 90)))
      << "\n";
  out << "  Force Rotate: " << spec.ca_config().force_rotate() << "\n";
  out << " Autolock Managers: "
      << (spec.encryption_config().auto_lock_managers() ? "true" : "false") << "\n";
  out << " Root Rotation In Progress: "
      << (cluster.root_ca().has_root_rotation() ? "true" : "false") << "\n";
}

absl::Status Info(Session& s) {
  ASSIGN_OR_RETURN(Client * c, s.client());
  std::ostream& out = s.out();
  if (!c->is_local()) {
    // NodeInfo is a node-local call; over TCP, describe the cluster only.
    out << "Swarm: active\n";
    PrintCluster(s, c);
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(auto info,
                   c->NodeAdmin(&api::NodeAdmin::Stub::NodeInfo, api::NodeInfoRequest()));
  out << "Swarm: " << StateName(info.state()) << "\n";
  if (!info.error().empty()) out << " Error: " << info.error() << "\n";
  if (info.state() == api::LOCAL_NODE_STATE_INACTIVE) {
    if (!info.version().empty()) out << "Server Version: " << info.version() << "\n";
    return absl::OkStatus();
  }
  const bool manager = info.role() == api::NODE_ROLE_MANAGER;
  out << " NodeID: " << info.node_id() << "\n";
  out << " Is Manager: " << (manager ? "true" : "false") << "\n";
  out << " ClusterID: " << info.cluster_id() << "\n";
  if (manager && info.state() == api::LOCAL_NODE_STATE_ACTIVE) PrintCluster(s, c);
  out << " Node Address: " << info.node_addr() << "\n";
  if (info.managers_size() > 0) {
    out << " Manager Addresses:\n";
    for (const api::RemoteManager& m : info.managers()) out << "  " << m.addr() << "\n";
  }
  if (manager && info.raft_id() != 0) {
    out << " Raft Status:\n  Member ID: " << absl::StrCat(absl::Hex(info.raft_id()))
        << "\n  Is Leader: " << (info.is_leader() ? "true" : "false") << "\n  Leader ID: "
        << (info.raft_leader() == 0 ? "none" : absl::StrCat(absl::Hex(info.raft_leader())))
        << "\n  Term: " << info.raft_term() << "\n  Commit Index: " << info.raft_commit()
        << "\n  Applied Index: " << info.raft_applied() << "\n";
  }
  if (!info.version().empty()) out << "Server Version: " << info.version() << "\n";
  return absl::OkStatus();
}

absl::Status Version(Session& s) {
  s.out() << "Client:\n Version:    " << kVersion << "\n API:        swarm.api (gRPC)\n\n";
  ASSIGN_OR_RETURN(Client * c, s.client());
  if (!c->is_local()) {
    s.out() << "Server:\n Address:    " << c->target() << "\n";
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(auto info,
                   c->NodeAdmin(&api::NodeAdmin::Stub::NodeInfo, api::NodeInfoRequest()));
  s.out() << "Server:\n Version:    " << (info.version().empty() ? "unknown" : info.version())
          << "\n";
  return absl::OkStatus();
}

}  // namespace

void AddInfoCommands(CommandTree& tree) {
  tree.Command(tree.root(), "info", "Display system-wide information", Info);
  tree.Command(tree.root(), "version", "Show the swarmctl and swarmd version information", Version);

  auto shell = std::make_shared<std::string>();
  const CLI::App* root = tree.root();
  CLI::App* cmd =
      tree.Command(tree.root(), "completion", "Print a shell completion script (bash)",
                   [shell, root](Session& s) -> absl::Status {
                     if (*shell != "bash") {
                       return absl::InvalidArgumentError(absl::StrCat(
                           "no completion for shell \"", *shell, "\": swarmctl completes bash"));
                     }
                     s.out() << BashCompletion(*root);
                     return absl::OkStatus();
                   });
  cmd->add_option("SHELL", *shell, "bash")->required();
}

}  // namespace swarm::cli

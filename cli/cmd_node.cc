// `swarmctl node ls|inspect|update|promote|demote|rm|ps`.
#include <map>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/pretty.h"
#include "cli/requests.h"
#include "common/status_macros.h"

namespace swarm::cli {
namespace {

// A node named on the command line: "self", an ID, an ID prefix or a name (the control API
// resolves the last three).
absl::StatusOr<api::Node> GetNode(Session& s, const std::string& name) {
  std::string id = name;
  if (name == "self") {
    id = s.SelfNodeId();
    if (id.empty()) {
      return absl::FailedPreconditionError(
          "cannot tell which node is self here: name the node by ID or hostname");
    }
  }
  ASSIGN_OR_RETURN(Client * c, s.client());
  api::GetNodeRequest req;
  req.set_node_id(id);
  ASSIGN_OR_RETURN(auto resp, c->Control(&api::Control::Stub::GetNode, req));
  return resp.node();
}

absl::Status UpdateNodeSpec(Session& s, const api::Node& node, const api::NodeSpec& spec) {
  ASSIGN_OR_RETURN(Client * c, s.client());
  api::UpdateNodeRequest req;
  req.set_node_id(node.id());
  *req.mutable_node_version() = node.meta().version();
  *req.mutable_spec() = spec;
  return c->Control(&api::Control::Stub::UpdateNode, req).status();
}

std::map<std::string, std::string> ServiceNames(Client* c) {
  std::map<std::string, std::string> names;
  auto services = c->Control(&api::Control::Stub::ListServices, api::ListServicesRequest());
  if (services.ok()) {
    for (const api::Service& svc : services->services()) {
      names[svc.id()] = svc.spec().annotations().name();
    }
  }
  return names;
}

struct NodeUpdateFlags {
  std::optional<std::string> availability;
  std::optional<std::string> role;
  std::vector<std::string> label_add;
  std::vector<std::string> label_rm;
  std::string node;
};

absl::Status Update(Session& s, const NodeUpdateFlags& f) {
  if (!f.availability && !f.role && f.label_add.empty() && f.label_rm.empty()) {
    return absl::InvalidArgumentError(
        "nothing to update: give --availability, --label-add, --label-rm or --role");
  }
  ASSIGN_OR_RETURN(api::Node node, GetNode(s, f.node));
  api::NodeSpec spec = node.spec();
  if (f.availability) {
    ASSIGN_OR_RETURN(api::NodeAvailability a, ParseAvailability(*f.availability));
    spec.set_availability(a);
  }
  if (f.role) {
    ASSIGN_OR_RETURN(api::NodeRole r, ParseRole(*f.role));
    spec.set_desired_role(r);
  }
  auto* labels = spec.mutable_annotations()->mutable_labels();
  for (const std::string& key : f.label_rm) {
    if (labels->erase(key) == 0) {
      return absl::NotFoundError(absl::StrCat("key ", key, " doesn't exist in node's labels"));
    }
  }
  for (const std::string& l : f.label_add) {
    ASSIGN_OR_RETURN(auto kv, ParseLabel("label-add", l));
    (*labels)[kv.first] = kv.second;
  }
  RETURN_IF_ERROR(UpdateNodeSpec(s, node, spec));
  s.out() << f.node << "\n";
  return absl::OkStatus();
}

absl::Status ChangeRole(Session& s, const std::string& name, api::NodeRole role) {
  ASSIGN_OR_RETURN(api::Node node, GetNode(s, name));
  if (node.spec().desired_role() == role) {
    s.out() << (role == api::NODE_ROLE_MANAGER ? "Node " + name + " is already a manager.\n"
                                               : "Node " + name + " is already a worker.\n");
    return absl::OkStatus();
  }
  api::NodeSpec spec = node.spec();
  spec.set_desired_role(role);
  RETURN_IF_ERROR(UpdateNodeSpec(s, node, spec));
  s.out() << (role == api::NODE_ROLE_MANAGER
                  ? "Node " + name + " promoted to a manager in the swarm.\n"
                  : "Manager " + name + " demoted in the swarm.\n");
  return absl::OkStatus();
}

struct NodeListFlags {
  ListFlags list;
  std::vector<std::string> nodes;
  std::string format;
  bool pretty = false;
};

absl::Status List(Session& s, const ListFlags& f) {
  ASSIGN_OR_RETURN(Filters filters,
                   ParseFilters(f.filters, {"id", "name", "label", "node.label", "role",
                                            "membership", "availability"}));
  ASSIGN_OR_RETURN(api::ListNodesRequest req, NodeListRequest(filters));
  ASSIGN_OR_RETURN(Client * c, s.client());
  ASSIGN_OR_RETURN(auto resp, c->Control(&api::Control::Stub::ListNodes, req));
  std::vector<api::Node> nodes(resp.nodes().begin(), resp.nodes().end());
  const std::string self = f.output.quiet ? "" : s.SelfNodeId();
  return PrintListing(s, NodeListing(nodes, self, f.output.no_trunc), f.output);
}

absl::Status Inspect(Session& s, const NodeListFlags& f) {
  if (f.pretty && !f.format.empty()) {
    return absl::InvalidArgumentError("--format and --pretty cannot be used together");
  }
  return InspectEach<api::Node>(
      s, f.nodes, f.format, [&](const std::string& name) { return GetNode(s, name); },
      f.pretty ? PrettyNode : nullptr);
}

absl::Status Ps(Session& s, const NodeListFlags& f) {
  std::vector<std::string> names = f.nodes.empty() ? std::vector<std::string>{"self"} : f.nodes;
  std::vector<std::string> ids;
  std::map<std::string, std::string> node_names;
  for (const std::string& name : names) {
    ASSIGN_OR_RETURN(api::Node node, GetNode(s, name));
    ids.push_back(node.id());
    node_names[node.id()] = node.description().hostname();
  }
  ASSIGN_OR_RETURN(Filters filters, ParseFilters(f.list.filters, {"id", "name", "desired-state"}));
  ASSIGN_OR_RETURN(api::ListTasksRequest req, TaskListRequest(filters, {}, ids));
  ASSIGN_OR_RETURN(Client * c, s.client());
  ASSIGN_OR_RETURN(auto resp, c->Control(&api::Control::Stub::ListTasks, req));
  std::vector<api::Task> tasks(resp.tasks().begin(), resp.tasks().end());
  return PrintListing(
      s, TaskListing(tasks, ServiceNames(c), node_names, s.now(), f.list.output.no_trunc),
      f.list.output);
}

}  // namespace

void AddNodeCommands(CommandTree& tree) {
  CLI::App* node = tree.Group(tree.root(), "node", "Manage swarm nodes");

  auto ls = std::make_shared<ListFlags>();
  CLI::App* cmd = tree.Command(node, "ls", "List nodes in the swarm",
                               [ls](Session& s) { return List(s, *ls); });
  cmd->alias("list");
  AddListFlags(tree, cmd, ls.get(), /*no_trunc=*/false,
               "id, name, label, node.label, role, membership, availability");

  auto inspect = std::make_shared<NodeListFlags>();
  cmd = tree.Command(node, "inspect", "Display detailed information on one or more nodes",
                     [inspect](Session& s) { return Inspect(s, *inspect); });
  cmd->add_option("-f,--format", inspect->format,
                  "Format output: json, or a Go template ('{{.Spec.Name}}', '{{json .Spec}}')");
  tree.Flag(cmd, "--pretty", &inspect->pretty, "Print the information in a human friendly format");
  cmd->add_option("NODE", inspect->nodes, "Nodes (ID, name or self)")->required();

  auto update = std::make_shared<NodeUpdateFlags>();
  cmd = tree.Command(node, "update", "Update a node",
                     [update](Session& s) { return Update(s, *update); });
  tree.Opt(cmd, "--availability", &update->availability,
           "Availability of the node (\"active\", \"pause\", \"drain\")");
  tree.Opt(cmd, "--role", &update->role, "Role of the node (\"worker\", \"manager\")");
  tree.List(cmd, "--label-add", &update->label_add, "Add or update a node label (key=value)");
  tree.List(cmd, "--label-rm", &update->label_rm, "Remove a node label if exists");
  cmd->add_option("NODE", update->node, "Node (ID or name)")->required();

  auto promote = std::make_shared<std::vector<std::string>>();
  cmd = tree.Command(node, "promote", "Promote one or more nodes to manager in the swarm",
                     [promote](Session& s) {
                       return ForEach(s, *promote, [&s](const std::string& n) {
                         return ChangeRole(s, n, api::NODE_ROLE_MANAGER);
                       });
                     });
  cmd->add_option("NODE", *promote, "Nodes")->required();

  auto demote = std::make_shared<std::vector<std::string>>();
  cmd = tree.Command(node, "demote", "Demote one or more nodes from manager in the swarm",
                     [demote](Session& s) {
                       return ForEach(s, *demote, [&s](const std::string& n) {
                         return ChangeRole(s, n, api::NODE_ROLE_WORKER);
                       });
                     });
  cmd->add_option("NODE", *demote, "Nodes")->required();

  auto rm = std::make_shared<std::pair<bool, std::vector<std::string>>>();
  cmd = tree.Command(node, "rm", "Remove one or more nodes from the swarm", [rm](Session& s) {
    return RemoveEach(s, rm->second, [&rm](Client* c, const std::string& n) {
      api::RemoveNodeRequest req;
      req.set_node_id(n);
      req.set_force(rm->first);
      return c->Control(&api::Control::Stub::RemoveNode, req).status();
    });
  });
  cmd->alias("remove");
  tree.Flag(cmd, "-f,--force", &rm->first, "Force remove a node from the swarm");
  cmd->add_option("NODE", rm->second, "Nodes")->required();

  auto ps = std::make_shared<NodeListFlags>();
  cmd =
      tree.Command(node, "ps", "List tasks running on one or more nodes, defaults to current node",
                   [ps](Session& s) { return Ps(s, *ps); });
  AddListFlags(tree, cmd, &ps->list, /*no_trunc=*/true, "id, name, desired-state");
  cmd->add_option("NODE", ps->nodes, "Nodes (default: self)");
}

}  // namespace swarm::cli

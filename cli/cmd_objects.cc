// `swarmctl network|secret|config create|ls|inspect|rm`.
#include <ostream>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/requests.h"
#include "common/status_macros.h"

namespace swarm::cli {
namespace {

// ---- network ----

absl::StatusOr<api::Network> GetNetwork(Session& s, const std::string& name) {
  ASSIGN_OR_RETURN(Client * c, s.client());
  api::GetNetworkRequest req;
  req.set_network_id(name);
  auto resp = c->Control(&api::Control::Stub::GetNetwork, req);
  if (!resp.ok() && absl::IsNotFound(resp.status())) {
    req.clear_network_id();
    req.set_name(name);
    resp = c->Control(&api::Control::Stub::GetNetwork, req);
  }
  if (!resp.ok()) return resp.status();
  return resp->network();
}

struct InspectFlags {
  std::vector<std::string> names;
  std::string format;
};

absl::Status NetworkCreate(Session& s, const NetworkFlags& f) {
  ASSIGN_OR_RETURN(api::NetworkSpec spec, BuildNetworkSpec(f));
  ASSIGN_OR_RETURN(Client * c, s.client());
  api::CreateNetworkRequest req;
  *req.mutable_spec() = spec;
  ASSIGN_OR_RETURN(auto resp, c->Control(&api::Control::Stub::CreateNetwork, req));
  s.out() << resp.network().id() << "\n";
  return absl::OkStatus();
}

absl::Status NetworkList(Session& s, const ListFlags& f) {
  ASSIGN_OR_RETURN(Filters filters, ParseFilters(f.filters, {"id", "name", "label"}));
  ASSIGN_OR_RETURN(api::ListNetworksRequest req, NetworkListRequest(filters));
  ASSIGN_OR_RETURN(Client * c, s.client());
  ASSIGN_OR_RETURN(auto resp, c->Control(&api::Control::Stub::ListNetworks, req));
  std::vector<api::Network> networks(resp.networks().begin(), resp.networks().end());
  return PrintListing(s, NetworkListing(networks, f.output.no_trunc), f.output);
}

// ---- secret and config ----

// The calls that differ between secrets and configs.
struct Kind {
  const char* name;  // "secret"
  std::function<absl::StatusOr<std::string>(
      Client*, const std::string& name, std::string data, const std::vector<std::string>& labels,
      const std::string& driver, const std::string& template_driver)>
      create;
  std::function<absl::StatusOr<Listing>(Session&, Client*, const Filters&, bool no_trunc)> list;
  std::function<absl::StatusOr<std::unique_ptr<google::protobuf::Message>>(Client*,
                                                                           const std::string&)>
      get;
  std::function<absl::Status(Client*, const std::string&)> remove;
};

Kind SecretKind() {
  Kind k;
  k.name = "secret";
  k.create = [](Client* c, const std::string& name, std::string data,
                const std::vector<std::string>& labels, const std::string& driver,
                const std::string& template_driver) -> absl::StatusOr<std::string> {
    api::CreateSecretRequest req;
    ASSIGN_OR_RETURN(*req.mutable_spec(),
                     BuildSecretSpec(name, std::move(data), labels, driver, template_driver));
    ASSIGN_OR_RETURN(auto resp, c->Control(&api::Control::Stub::CreateSecret, req));
    return resp.secret().id();
  };
  k.list = [](Session& s, Client* c, const Filters& filters,
              bool no_trunc) -> absl::StatusOr<Listing> {
    ASSIGN_OR_RETURN(api::ListSecretsRequest req, SecretListRequest(filters));
    ASSIGN_OR_RETURN(auto resp, c->Control(&api::Control::Stub::ListSecrets, req));
    std::vector<api::Secret> v(resp.secrets().begin(), resp.secrets().end());
    return SecretListing(v, s.now(), no_trunc);
  };
  k.get =
      [](Client* c,
         const std::string& name) -> absl::StatusOr<std::unique_ptr<google::protobuf::Message>> {
    api::GetSecretRequest req;
    req.set_secret_id(name);
    ASSIGN_OR_RETURN(auto resp, c->Control(&api::Control::Stub::GetSecret, req));
    return std::make_unique<api::Secret>(resp.secret());
  };
  k.remove = [](Client* c, const std::string& name) {
    api::RemoveSecretRequest req;
    req.set_secret_id(name);
    return c->Control(&api::Control::Stub::RemoveSecret, req).status();
  };
  return k;
}

Kind ConfigKind() {
  Kind k;
  k.name = "config";
  k.create = [](Client* c, const std::string& name, std::string data,
                const std::vector<std::string>& labels, const std::string& /*driver*/,
                const std::string& template_driver) -> absl::StatusOr<std::string> {
    api::CreateConfigRequest req;
    ASSIGN_OR_RETURN(*req.mutable_spec(),
                     BuildConfigSpec(name, std::move(data), labels, template_driver));
    ASSIGN_OR_RETURN(auto resp, c->Control(&api::Control::Stub::CreateConfig, req));
    return resp.config().id();
  };
  k.list = [](Session& s, Client* c, const Filters& filters,
              bool no_trunc) -> absl::StatusOr<Listing> {
    ASSIGN_OR_RETURN(api::ListConfigsRequest req, ConfigListRequest(filters));
    ASSIGN_OR_RETURN(auto resp, c->Control(&api::Control::Stub::ListConfigs, req));
    std::vector<api::Config> v(resp.configs().begin(), resp.configs().end());
    return ConfigListing(v, s.now(), no_trunc);
  };
  k.get =
      [](Client* c,
         const std::string& name) -> absl::StatusOr<std::unique_ptr<google::protobuf::Message>> {
    api::GetConfigRequest req;
    req.set_config_id(name);
    ASSIGN_OR_RETURN(auto resp, c->Control(&api::Control::Stub::GetConfig, req));
    return std::make_unique<api::Config>(resp.config());
  };
  k.remove = [](Client* c, const std::string& name) {
    api::RemoveConfigRequest req;
    req.set_config_id(name);
    return c->Control(&api::Control::Stub::RemoveConfig, req).status();
  };
  return k;
}

struct DataCreateFlags {
  std::string name;
  std::string file;
  std::vector<std::string> labels;
  std::string driver;
  std::string template_driver;
};

absl::Status DataCreate(Session& s, const Kind& kind, const DataCreateFlags& f) {
  std::string data;
  if (!f.file.empty()) {
    absl::StatusOr<std::string> read = ReadFileOrStdin(s, f.file);
    if (!read.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("cannot read the ", kind.name, " from ",
                                                     f.file == "-" ? "standard input" : f.file,
                                                     ": ", read.status().message()));
    }
    data = std::move(*read);
  } else if (f.driver.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("the ", kind.name,
                                                   " data is required: swarmctl ", kind.name,
                                                   " create NAME FILE (or - for standard input)"));
  }
  ASSIGN_OR_RETURN(Client * c, s.client());
  ASSIGN_OR_RETURN(std::string id,
                   kind.create(c, f.name, std::move(data), f.labels, f.driver, f.template_driver));
  s.out() << id << "\n";
  return absl::OkStatus();
}

void AddDataCommands(CommandTree& tree, Kind kind, const std::string& title) {
  auto k = std::make_shared<Kind>(std::move(kind));
  CLI::App* group = tree.Group(tree.root(), k->name, "Manage Swarm " + title);

  auto create = std::make_shared<DataCreateFlags>();
  CLI::App* cmd = tree.Command(
      group, "create", "Create a " + std::string(k->name) + " from a file or STDIN as content",
      [k, create](Session& s) { return DataCreate(s, *k, *create); });
  tree.List(cmd, "-l,--label", &create->labels, "Labels (key=value)");
  if (std::string(k->name) == "secret") {
    cmd->add_option("-d,--driver", create->driver, "Secret driver");
  }
  cmd->add_option("--template-driver", create->template_driver, "Template driver");
  cmd->add_option("NAME", create->name, "Name")->required();
  cmd->add_option("FILE", create->file, "File with the data, or - for standard input");

  auto ls = std::make_shared<ListFlags>();
  cmd = tree.Command(group, "ls", "List " + title, [k, ls](Session& s) -> absl::Status {
    ASSIGN_OR_RETURN(Filters filters, ParseFilters(ls->filters, {"id", "name", "label"}));
    ASSIGN_OR_RETURN(Client * c, s.client());
    ASSIGN_OR_RETURN(Listing listing, k->list(s, c, filters, ls->output.no_trunc));
    return PrintListing(s, listing, ls->output);
  });
  cmd->alias("list");
  AddListFlags(tree, cmd, ls.get(), /*no_trunc=*/false, "id, name, label");

  auto inspect = std::make_shared<InspectFlags>();
  cmd = tree.Command(group, "inspect", "Display detailed information on one or more " + title,
                     [k, inspect](Session& s) -> absl::Status {
                       ASSIGN_OR_RETURN(Client * c, s.client());
                       return InspectEach<std::unique_ptr<google::protobuf::Message>>(
                           s, inspect->names, inspect->format,
                           [&](const std::string& name) { return k->get(c, name); });
                     });
  cmd->add_option("-f,--format", inspect->format,
                  "Format output: json, or a Go template ('{{.Spec.Name}}', '{{json .Spec}}')");
  cmd->add_option("NAME", inspect->names, "IDs or names")->required();

  auto rm = std::make_shared<std::vector<std::string>>();
  cmd = tree.Command(group, "rm", "Remove one or more " + title,
                     [k, rm](Session& s) { return RemoveEach(s, *rm, k->remove); });
  cmd->alias("remove");
  cmd->add_option("NAME", *rm, "IDs or names")->required();
}

}  // namespace

void AddObjectCommands(CommandTree& tree) {
  CLI::App* network = tree.Group(tree.root(), "network", "Manage networks");

  auto create = std::make_shared<NetworkFlags>();
  CLI::App* cmd = tree.Command(network, "create", "Create a network",
                               [create](Session& s) { return NetworkCreate(s, *create); });
  cmd->add_option("-d,--driver", create->driver, "Driver to manage the Network (default overlay)");
  tree.List(cmd, "-o,--opt", &create->opts, "Set driver specific options");
  tree.List(cmd, "--label", &create->labels, "Set metadata on a network");
  tree.List(cmd, "--subnet", &create->subnets,
            "Subnet in CIDR format that represents a network segment");
  tree.List(cmd, "--gateway", &create->gateways, "IPv4 or IPv6 Gateway for the master subnet");
  tree.List(cmd, "--ip-range", &create->ip_ranges, "Allocate container ip from a sub-range");
  tree.List(cmd, "--aux-address", &create->aux_addresses,
            "Auxiliary IPv4 or IPv6 addresses used by Network driver");
  cmd->add_option("--ipam-driver", create->ipam_driver, "IP Address Management Driver");
  tree.List(cmd, "--ipam-opt", &create->ipam_opts, "Set IPAM driver specific options");
  tree.Flag(cmd, "--attachable", &create->attachable, "Enable manual container attachment");
  tree.Flag(cmd, "--internal", &create->internal, "Restrict external access to the network");
  tree.Flag(cmd, "--ipv6", &create->ipv6, "Enable IPv6 networking");
  tree.Flag(cmd, "--ingress", &create->ingress, "Create swarm routing-mesh network");
  cmd->add_option("NAME", create->name, "Network name")->required();

  auto ls = std::make_shared<ListFlags>();
  cmd = tree.Command(network, "ls", "List networks",
                     [ls](Session& s) { return NetworkList(s, *ls); });
  cmd->alias("list");
  AddListFlags(tree, cmd, ls.get(), /*no_trunc=*/true, "id, name, label");

  auto inspect = std::make_shared<InspectFlags>();
  cmd = tree.Command(network, "inspect", "Display detailed information on one or more networks",
                     [inspect](Session& s) {
                       return InspectEach<api::Network>(
                           s, inspect->names, inspect->format,
                           [&](const std::string& name) { return GetNetwork(s, name); });
                     });
  cmd->add_option("-f,--format", inspect->format,
                  "Format output: json, or a Go template ('{{.Spec.Name}}', '{{json .Spec}}')");
  cmd->add_option("NETWORK", inspect->names, "Networks (ID or name)")->required();

  auto rm = std::make_shared<std::vector<std::string>>();
  cmd = tree.Command(network, "rm", "Remove one or more networks", [rm](Session& s) {
    return RemoveEach(s, *rm, [](Client* c, const std::string& name) {
      api::RemoveNetworkRequest req;
      req.set_network_id(name);
      return c->Control(&api::Control::Stub::RemoveNetwork, req).status();
    });
  });
  cmd->alias("remove");
  cmd->add_option("NETWORK", *rm, "Networks (ID or name)")->required();

  AddDataCommands(tree, SecretKind(), "secrets");
  AddDataCommands(tree, ConfigKind(), "configs");
}

}  // namespace swarm::cli

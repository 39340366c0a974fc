#include "cli/commands.h"

#include <grpc/support/time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <istream>
#include <iterator>
#include <ostream>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "common/tls.h"

namespace swarm::cli {

// ---- Client ----

Client::Client(std::shared_ptr<grpc::Channel> channel, std::string target, std::string socket_path)
    : channel_(std::move(channel)),
      control_(api::Control::NewStub(channel_)),
      node_admin_(api::NodeAdmin::NewStub(channel_)),
      target_(std::move(target)),
      socket_path_(std::move(socket_path)) {}

std::unique_ptr<Client> Client::Local(const std::string& socket_path) {
  const std::string target = "unix:" + socket_path;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // a large swarm's lists are far over gRPC's default 4 MiB
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  return std::unique_ptr<Client>(new Client(std::move(channel), target, socket_path));
}

absl::StatusOr<std::unique_ptr<Client>> Client::Remote(const std::string& addr,
                                                       const std::string& tls_dir) {
  tls::Credentials creds;
  for (auto [file, field] : {std::pair<const char*, std::string*>{"ca.pem", &creds.root_pem},
                             {"cert.pem", &creds.cert_pem},
                             {"key.pem", &creds.key_pem}}) {
    absl::StatusOr<std::string> data = ReadFile(absl::StrCat(tls_dir, "/", file));
    if (!data.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot read the certificates to reach ", addr, ": ", data.status().message(),
          " (--tls-dir must hold ca.pem, cert.pem and key.pem: an operator certificate from "
          "swarmctl swarm ca client-cert on a manager)"));
    }
    if (data->find("-----BEGIN") == std::string::npos) {
      return absl::FailedPreconditionError(
          absl::StrCat(tls_dir, "/", file,
                       " is not a PEM file (--tls-dir must hold ca.pem, cert.pem and key.pem: "
                       "an operator certificate from swarmctl swarm ca client-cert)"));
    }
    *field = std::move(*data);
  }
  auto channel = grpc::CreateCustomChannel(addr, tls::ChannelCredentials(creds),
                                           tls::ChannelArguments(tls::kManagerRole));
  return std::unique_ptr<Client>(new Client(std::move(channel), addr, ""));
}

void Client::SetDeadline(grpc::ClientContext* ctx, absl::Duration timeout) {
  // gRPC's own monotonic clock: deadlines are a transport matter, not the injected Clock's.
  ctx->set_deadline(
      gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                   gpr_time_from_millis(absl::ToInt64Milliseconds(timeout), GPR_TIMESPAN)));
}

absl::Status Client::LocalOnlyError() {
  return absl::FailedPreconditionError(
      "this command talks to a node's own swarmd: run it on that node, without --host");
}

absl::Status Client::MapError(const grpc::Status& s) const {
  const bool connected = channel_->GetState(false) == GRPC_CHANNEL_READY;
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE && !connected) {
    if (is_local()) {
      struct stat st;
      if (stat(socket_path_.c_str(), &st) == 0 && access(socket_path_.c_str(), R_OK | W_OK) != 0 &&
          errno == EACCES) {
        return absl::PermissionDeniedError(
            absl::StrCat("permission denied on ", socket_path_,
                         ": the socket of swarmd is for root only (run swarmctl with sudo)"));
      }
      return absl::UnavailableError(
          absl::StrCat("cannot reach swarmd at ", target_,
                       ": is swarmd running? (use --socket to choose another)"));
    }
    return absl::UnavailableError(
        absl::StrCat("cannot reach the manager at ", target_, ": ", s.error_message()));
  }
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::DeadlineExceededError(
        absl::StrCat(target_, " did not answer in time (", s.error_message(), ")"));
  }
  return FromGrpcStatus(s);
}

// ---- Session ----

absl::StatusOr<Client*> Session::client() {
  if (client_ == nullptr) {
    if (!options_.host.empty()) {
      ASSIGN_OR_RETURN(client_, Client::Remote(options_.host, options_.tls_dir));
    } else {
      client_ = Client::Local(options_.socket);
    }
  }
  return client_.get();
}

std::string Session::SelfNodeId() {
  auto c = client();
  if (!c.ok() || !(*c)->is_local()) return "";
  auto info = (*c)->NodeAdmin(&api::NodeAdmin::Stub::NodeInfo, api::NodeInfoRequest());
  return info.ok() ? info->node_id() : "";
}

std::string Session::ManagerAddress() {
  auto c = client();
  if (!c.ok()) return "";
  std::string self;
  if ((*c)->is_local()) {
    auto info = (*c)->NodeAdmin(&api::NodeAdmin::Stub::NodeInfo, api::NodeInfoRequest());
    if (info.ok()) {
      self = info->node_id();
      for (const api::RemoteManager& m : info->managers()) {
        if (m.node_id() == info->node_id() && !m.addr().empty()) return m.addr();
      }
    }
  }
  auto nodes = (*c)->Control(&api::Control::Stub::ListNodes, api::ListNodesRequest());
  if (!nodes.ok()) return "";
  std::string leader;
  for (const api::Node& n : nodes->nodes()) {
    if (!n.has_manager_status()) continue;
    if (n.id() == self) return n.manager_status().addr();
    if (n.manager_status().leader()) leader = n.manager_status().addr();
  }
  return leader;
}

absl::StatusOr<api::Cluster> Session::GetCluster() {
  ASSIGN_OR_RETURN(Client * c, client());
  ASSIGN_OR_RETURN(auto resp,
                   c->Control(&api::Control::Stub::ListClusters, api::ListClustersRequest()));
  if (resp.clusters_size() == 0) {
    return absl::FailedPreconditionError(
        "this node is not part of a swarm: run swarmctl swarm init or swarmctl swarm join");
  }
  return resp.clusters(0);
}

// ---- CommandTree ----

CLI::App* CommandTree::Group(CLI::App* parent, const std::string& name,
                             const std::string& description) {
  CLI::App* app = parent->add_subcommand(name, description);
  app->require_subcommand(1);
  return app;
}

CLI::App* CommandTree::Command(CLI::App* parent, const std::string& name,
                               const std::string& description, Handler handler) {
  CLI::App* app = parent->add_subcommand(name, description);
  handlers_[app] = std::move(handler);
  return app;
}

const Handler* CommandTree::Selected() const {
  const CLI::App* app = root_;
  while (true) {
    auto subs = app->get_subcommands();
    if (subs.empty()) break;
    app = subs.front();
  }
  auto it = handlers_.find(app);
  return it == handlers_.end() ? nullptr : &it->second;
}

void CommandTree::Opt(CLI::App* app, const std::string& names, std::optional<std::string>* target,
                      const std::string& description) {
  app->add_option_function<std::string>(
      names, [target](const std::string& v) { *target = v; }, description);
}

void CommandTree::List(CLI::App* app, const std::string& names, std::vector<std::string>* target,
                       const std::string& description) {
  app->add_option(names, *target, description)->allow_extra_args(false);
}

void CommandTree::Bool(CLI::App* app, const std::string& names, std::optional<bool>* target,
                       const std::string& description) {
  bool* storage = &bool_storage_.emplace_back(false);
  CLI::Option* opt = app->add_flag(names, *storage, description);
  after_parse_.push_back([opt, storage, target] {
    if (opt->count() > 0) *target = *storage;
  });
}

void CommandTree::Flag(CLI::App* app, const std::string& names, bool* target,
                       const std::string& description) {
  app->add_flag(names, *target, description);
}

void CommandTree::AfterParse() {
  for (const auto& f : after_parse_) f();
}

// ---- Shared helpers ----

void AddListFlags(CommandTree& tree, CLI::App* app, ListFlags* flags, bool no_trunc,
                  const std::string& filter_help) {
  tree.Flag(app, "-q,--quiet", &flags->output.quiet, "Only display IDs");
  if (no_trunc) tree.Flag(app, "--no-trunc", &flags->output.no_trunc, "Do not truncate output");
  app->add_option("--format", flags->output.format,
                  "Format output: table, json, or a Go template ('table {{.ID}}\\t{{.Name}}', "
                  "'{{json .}}')");
  tree.List(app, "-f,--filter", &flags->filters,
            "Filter output based on conditions (" + filter_help + ")");
}

absl::Status PrintListing(Session& session, const Listing& listing, const OutputOptions& output) {
  ASSIGN_OR_RETURN(std::string text, RenderListing(listing, output));
  session.out() << text;
  return absl::OkStatus();
}

absl::Status PrintInspect(Session& session,
                          const std::vector<const google::protobuf::Message*>& objects,
                          const std::string& format) {
  std::string text;
  if (!format.empty() && format != "json") {
    ASSIGN_OR_RETURN(text, InspectTemplate(objects, format));
  } else {
    ASSIGN_OR_RETURN(text, InspectJson(objects));
  }
  session.out() << text;
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFileOrStdin(Session& session, const std::string& path) {
  if (path == "-") {
    std::string data((std::istreambuf_iterator<char>(session.in())),
                     std::istreambuf_iterator<char>());
    if (session.in().bad()) return absl::DataLossError("cannot read standard input");
    return data;
  }
  return ReadFile(path);
}

absl::Status ForEach(Session& session, const std::vector<std::string>& args,
                     const std::function<absl::Status(const std::string&)>& f) {
  bool failed = false;
  for (const std::string& arg : args) {
    absl::Status s = f(arg);
    if (!s.ok()) {
      session.err() << "Error: " << s.message() << "\n";
      failed = true;
    }
  }
  // An error without a message: it was reported already.
  return failed ? absl::UnknownError("") : absl::OkStatus();
}

absl::Status RemoveEach(Session& session, const std::vector<std::string>& names,
                        const std::function<absl::Status(Client*, const std::string&)>& remove) {
  return ForEach(session, names, [&](const std::string& name) -> absl::Status {
    ASSIGN_OR_RETURN(Client * c, session.client());
    RETURN_IF_ERROR(remove(c, name));
    session.out() << name << "\n";
    return absl::OkStatus();
  });
}

}  // namespace swarm::cli

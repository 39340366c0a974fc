// Internals of swarmctl's command layer, shared by the files that define the commands
// (cmd_swarm.cc, cmd_node.cc, cmd_service.cc, cmd_objects.cc, cmd_info.cc):
// - Client: one gRPC channel to swarmd (unix socket) or a manager (TCP + mutual TLS), with
//   one call helper that sets a deadline and turns gRPC errors into messages that say what
//   to do ("cannot reach swarmd at unix:/var/run/swarmd.sock: is swarmd running? ...").
// - Session: what a running command has: the Io, the global options, a client dialed on
//   first use.
// - CommandTree: the CLI11 app, a handler per leaf command, and flag helpers that record
//   whether a flag was given (std::optional) as `service update` and `swarm update` need.
//
// Thread-safety: none; one command line runs on one thread.
#ifndef SWARM_CLI_COMMANDS_H_
#define SWARM_CLI_COMMANDS_H_

#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli/app.h"
#include "cli/format.h"
#include "proto/control.grpc.pb.h"
#include "proto/node.grpc.pb.h"

namespace swarm::cli {

// Flags that apply to every command.
struct GlobalOptions {
  std::string socket;   // --socket / SWARMCTL_SOCKET
  std::string host;     // --host / SWARMCTL_HOST
  std::string tls_dir;  // --tls-dir / SWARMCTL_TLS_DIR
};

inline constexpr absl::Duration kDefaultTimeout = absl::Seconds(30);
// Init and join wait for certificates and the first Raft election.
inline constexpr absl::Duration kLongTimeout = absl::Minutes(2);

class Client {
 public:
  // A client of the local socket (no I/O yet: gRPC connects on the first call).
  static std::unique_ptr<Client> Local(const std::string& socket_path);
  // A client of a manager over TCP with the certificates of tls_dir (ca.pem, cert.pem,
  // key.pem); fails when they cannot be read.
  static absl::StatusOr<std::unique_ptr<Client>> Remote(const std::string& addr,
                                                        const std::string& tls_dir);

  bool is_local() const { return !socket_path_.empty(); }
  // "unix:/var/run/swarmd.sock" or the manager's address.
  const std::string& target() const { return target_; }
  // For streaming services (Logs).
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }

  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Control(grpc::Status (api::Control::Stub::*method)(grpc::ClientContext*,
                                                                          const Req&, Resp*),
                               const Req& req, absl::Duration timeout = kDefaultTimeout) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, timeout);
    Resp resp;
    grpc::Status s = (control_.get()->*method)(&ctx, req, &resp);
    if (!s.ok()) return MapError(s);
    return resp;
  }

  // NodeAdmin is served on the node's own socket only.
  template <typename Req, typename Resp>
  absl::StatusOr<Resp> NodeAdmin(grpc::Status (api::NodeAdmin::Stub::*method)(grpc::ClientContext*,
                                                                              const Req&, Resp*),
                                 const Req& req, absl::Duration timeout = kDefaultTimeout) {
    if (!is_local()) return LocalOnlyError();
    grpc::ClientContext ctx;
    SetDeadline(&ctx, timeout);
    Resp resp;
    grpc::Status s = (node_admin_.get()->*method)(&ctx, req, &resp);
    if (!s.ok()) return MapError(s);
    return resp;
  }

 private:
  Client(std::shared_ptr<grpc::Channel> channel, std::string target, std::string socket_path);
  static void SetDeadline(grpc::ClientContext* ctx, absl::Duration timeout);
  absl::Status MapError(const grpc::Status& s) const;
  static absl::Status LocalOnlyError();

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<api::Control::Stub> control_;
  std::unique_ptr<api::NodeAdmin::Stub> node_admin_;
  std::string target_;
  std::string socket_path_;  // empty over TCP
};

class Session {
 public:
  Session(const Io& io, const GlobalOptions& options) : io_(io), options_(options) {}

  std::ostream& out() { return *io_.out; }
  std::ostream& err() { return *io_.err; }
  std::istream& in() { return *io_.in; }
  const Io& io() const { return io_; }
  absl::Time now() const { return io_.clock->Now(); }
  // Dials on first use.
  absl::StatusOr<Client*> client();

  // This node's ID from NodeInfo (local socket only); "" when it cannot be known.
  std::string SelfNodeId();
  // The address a joining node should dial: this node's manager address, or the leader's.
  std::string ManagerAddress();
  // The cluster (there is one); FAILED_PRECONDITION when this node is in none.
  absl::StatusOr<api::Cluster> GetCluster();

 private:
  const Io& io_;
  const GlobalOptions& options_;
  std::unique_ptr<Client> client_;
};

// What a leaf command does once its flags are parsed.
using Handler = std::function<absl::Status(Session&)>;

class CommandTree {
 public:
  explicit CommandTree(CLI::App* root) : root_(root) {}

  CLI::App* root() { return root_; }
  // A command that only holds subcommands (`swarmctl node`).
  CLI::App* Group(CLI::App* parent, const std::string& name, const std::string& description);
  // A command that does something.
  CLI::App* Command(CLI::App* parent, const std::string& name, const std::string& description,
                    Handler handler);
  // The handler of the deepest parsed command; nullptr when none.
  const Handler* Selected() const;

  // A flag with a value, nullopt when not given.
  void Opt(CLI::App* app, const std::string& names, std::optional<std::string>* target,
           const std::string& description);
  // A flag with a value, repeatable; each occurrence takes exactly one value.
  void List(CLI::App* app, const std::string& names, std::vector<std::string>* target,
            const std::string& description);
  // A boolean flag (--tty, --tty=false), nullopt when not given.
  void Bool(CLI::App* app, const std::string& names, std::optional<bool>* target,
            const std::string& description);
  // A boolean flag where absence means false.
  void Flag(CLI::App* app, const std::string& names, bool* target, const std::string& description);

  // Runs what the flag helpers need once parsing is done.
  void AfterParse();

 private:
  CLI::App* root_;
  std::map<const CLI::App*, Handler> handlers_;
  std::deque<bool> bool_storage_;
  std::vector<std::function<void()>> after_parse_;
};

// The --quiet, --no-trunc, --format and --filter flags of an ls/ps command.
struct ListFlags {
  OutputOptions output;
  std::vector<std::string> filters;
};
void AddListFlags(CommandTree& tree, CLI::App* app, ListFlags* flags, bool no_trunc,
                  const std::string& filter_help);
// Prints a listing with the options of ListFlags.
absl::Status PrintListing(Session& session, const Listing& listing, const OutputOptions& output);
// Prints objects as `inspect` does: a JSON array for "" or "json", else the template run over
// each object (InspectTemplate).
absl::Status PrintInspect(Session& session,
                          const std::vector<const google::protobuf::Message*>& objects,
                          const std::string& format);

// Reads a whole file, or standard input for "-".
absl::StatusOr<std::string> ReadFileOrStdin(Session& session, const std::string& path);
// Runs f for each argument; reports each failure as "Error: ..." and returns an error at the
// end if any failed (the commands that take several objects go on after a failure, as
// Docker's do). That error has an empty message: RunSwarmctl prints errors with a message
// only, so nothing is reported twice.
absl::Status ForEach(Session& session, const std::vector<std::string>& args,
                     const std::function<absl::Status(const std::string&)>& f);

// `rm`: removes each named object with remove (going on past failures, as ForEach does) and
// prints the name of each one removed, as Docker does.
absl::Status RemoveEach(Session& session, const std::vector<std::string>& names,
                        const std::function<absl::Status(Client*, const std::string&)>& remove);

// `inspect`: gets each named object (going on past failures, as ForEach does), then prints
// the ones found with PrintInspect, or one after another with pretty when it is set. T is a
// message, or a pointer to one when the kind is only known at run time.
template <typename T>
absl::Status InspectEach(Session& session, const std::vector<std::string>& names,
                         const std::string& format,
                         const std::function<absl::StatusOr<T>(const std::string&)>& get,
                         const std::function<std::string(const T&)>& pretty = nullptr) {
  std::vector<T> found;
  absl::Status status = ForEach(session, names, [&](const std::string& name) -> absl::Status {
    absl::StatusOr<T> o = get(name);
    if (!o.ok()) return o.status();
    found.push_back(*std::move(o));
    return absl::OkStatus();
  });
  if (pretty) {
    for (size_t i = 0; i < found.size(); ++i) {
      session.out() << (i > 0 ? "\n" : "") << pretty(found[i]);
    }
    return status;
  }
  std::vector<const google::protobuf::Message*> objects;
  for (const T& o : found) {
    if constexpr (std::is_base_of_v<google::protobuf::Message, T>) {
      objects.push_back(&o);
    } else {
      objects.push_back(&*o);
    }
  }
  if (absl::Status s = PrintInspect(session, objects, format); !s.ok()) return s;
  return status;
}

void AddSwarmCommands(CommandTree& tree);
void AddNodeCommands(CommandTree& tree);
void AddServiceCommands(CommandTree& tree);
void AddObjectCommands(CommandTree& tree);  // network, secret, config
void AddInfoCommands(CommandTree& tree);    // info, version

}  // namespace swarm::cli

#endif  // SWARM_CLI_COMMANDS_H_

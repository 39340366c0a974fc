// `swarmctl swarm init|join|join-token|leave|unlock|unlock-key|update`.
#include <filesystem>
#include <istream>
#include <ostream>
#include <system_error>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/requests.h"
#include "cli/rotation_progress.h"
#include "common/files.h"
#include "common/proto_time.h"
#include "common/status_macros.h"
#include "common/tls.h"

namespace swarm::cli {
namespace {

// The unlock key as users see it: SWMKEY-1-<base64url of the 32 secret bytes>.
std::string HumanUnlockKey(const std::string& key) {
  if (absl::StartsWith(key, "SWMKEY-")) return key;
  return "SWMKEY-1-" + absl::WebSafeBase64Escape(key);
}

void PrintUnlockKey(Session& s, const std::string& key) {
  s.out() << "To unlock a swarm manager after it restarts, run the `swarmctl swarm unlock`\n"
             "command and provide the following key:\n\n    "
          << key
          << "\n\nPlease remember to store this key in a password manager, since without it you\n"
             "will not be able to restart the manager.\n";
}

void PrintJoinCommand(Session& s, const std::string& role, const std::string& token,
                      const std::string& addr) {
  s.out() << "To add a " << role << " to this swarm, run the following command:\n\n"
          << "    swarmctl swarm join --token " << token << " "
          << (addr.empty() ? "<MANAGER-IP>:2377" : addr) << "\n\n";
}

absl::StatusOr<std::string> TokenOf(const api::Cluster& cluster, const std::string& role) {
  const std::string& token = role == "worker" ? cluster.root_ca().join_tokens().worker()
                                              : cluster.root_ca().join_tokens().manager();
  if (token.empty()) {
    return absl::UnavailableError(absl::StrCat("the cluster has no ", role, " join token yet"));
  }
  return token;
}

// ---- swarm init ----

struct InitFlags {
  std::string listen_addr;
  std::string advertise_addr;
  bool autolock = false;
  std::optional<std::string> cert_expiry;
  std::optional<std::string> availability;
  bool force_new_cluster = false;
  std::optional<std::string> task_history_limit;
  std::optional<std::string> dispatcher_heartbeat;
  std::vector<std::string> default_addr_pool;
  std::optional<std::string> default_addr_pool_mask_len;
};

absl::Status Init(Session& s, const InitFlags& f) {
  api::InitSwarmRequest req;
  req.set_listen_addr(f.listen_addr);
  req.set_advertise_addr(f.advertise_addr);
  req.set_autolock(f.autolock);
  req.set_force_new_cluster(f.force_new_cluster);
  if (f.cert_expiry) {
    ASSIGN_OR_RETURN(absl::Duration d, ParseDuration("cert-expiry", *f.cert_expiry));
    SetProtoDuration(d, req.mutable_cert_expiry());
  }
  if (f.availability) {
    ASSIGN_OR_RETURN(api::NodeAvailability a, ParseAvailability(*f.availability));
    req.set_availability(a);
  }
  if (f.task_history_limit) {
    ASSIGN_OR_RETURN(int64_t n, ParseInt("task-history-limit", *f.task_history_limit));
    req.set_task_history_limit(n);
  }
  if (f.dispatcher_heartbeat) {
    ASSIGN_OR_RETURN(absl::Duration d,
                     ParseDuration("dispatcher-heartbeat", *f.dispatcher_heartbeat));
    SetProtoDuration(d, req.mutable_dispatcher_heartbeat());
  }
  for (const std::string& pool : f.default_addr_pool) req.add_default_addr_pool(pool);
  if (f.default_addr_pool_mask_len) {
    ASSIGN_OR_RETURN(int64_t n,
                     ParseInt("default-addr-pool-mask-len", *f.default_addr_pool_mask_len));
    if (n < 1 || n > 32) {
      return absl::InvalidArgumentError(
          absl::StrCat("--default-addr-pool-mask-len ", n, " is not a prefix length (1-32)"));
    }
    req.set_default_addr_pool_mask_len(static_cast<uint32_t>(n));
  }
  ASSIGN_OR_RETURN(Client * c, s.client());
  ASSIGN_OR_RETURN(auto resp, c->NodeAdmin(&api::NodeAdmin::Stub::InitSwarm, req, kLongTimeout));
  s.out() << "Swarm initialized: current node (" << resp.node_id() << ") is now a manager.\n\n";

  // The join hint needs the cluster's tokens, which a brand-new manager serves once its
  // Raft leadership settles: give it a few seconds.
  absl::StatusOr<api::Cluster> cluster = s.GetCluster();
  for (int i = 0; i < 20 && !cluster.ok() &&
                  (cluster.status().code() == absl::StatusCode::kUnavailable ||
                   cluster.status().code() == absl::StatusCode::kFailedPrecondition);
       ++i) {
    s.io().clock->SleepFor(absl::Milliseconds(250));
    cluster = s.GetCluster();
  }
  absl::StatusOr<std::string> token =
      cluster.ok() ? TokenOf(*cluster, "worker") : absl::StatusOr<std::string>(cluster.status());
  if (token.ok()) {
    std::string addr = s.ManagerAddress();
    if (addr.empty()) addr = f.advertise_addr;
    PrintJoinCommand(s, "worker", *token, addr);
  } else {
    s.out() << "To add a worker to this swarm, run 'swarmctl swarm join-token worker' and follow "
               "the instructions.\n\n";
  }
  s.out() << "To add a manager to this swarm, run 'swarmctl swarm join-token manager' and follow "
             "the instructions.\n\n";
  if (f.autolock && !resp.unlock_key().empty()) PrintUnlockKey(s, resp.unlock_key());
  return absl::OkStatus();
}

// ---- swarm join ----

struct JoinFlags {
  std::optional<std::string> token;
  std::optional<std::string> token_file;
  std::string listen_addr;
  std::string advertise_addr;
  std::optional<std::string> availability;
  std::string remote;
};

absl::Status Join(Session& s, const JoinFlags& f) {
  if (f.token && f.token_file) {
    return absl::InvalidArgumentError("give the join token once: --token or --token-file");
  }
  std::string token;
  if (f.token_file || (f.token && *f.token == "-")) {
    const std::string path = f.token_file.value_or("-");
    absl::StatusOr<std::string> data = ReadFileOrStdin(s, path);
    if (!data.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("cannot read the join token from ",
                                                     path == "-" ? "standard input" : path, ": ",
                                                     data.status().message()));
    }
    token = std::string(absl::StripAsciiWhitespace(*data));
  } else if (f.token) {
    token = *f.token;
  }
  if (token.empty()) {
    return absl::InvalidArgumentError(
        "a join token is required: --token TOKEN, --token-file FILE or --token - (standard "
        "input); a manager prints it with: swarmctl swarm join-token worker");
  }
  api::JoinSwarmRequest req;
  req.set_remote_addr(f.remote);
  req.set_join_token(token);
  req.set_listen_addr(f.listen_addr);
  req.set_advertise_addr(f.advertise_addr);
  if (f.availability) {
    ASSIGN_OR_RETURN(api::NodeAvailability a, ParseAvailability(*f.availability));
    req.set_availability(a);
  }
  ASSIGN_OR_RETURN(Client * c, s.client());
  ASSIGN_OR_RETURN(auto resp, c->NodeAdmin(&api::NodeAdmin::Stub::JoinSwarm, req, kLongTimeout));
  s.out() << "This node joined a swarm as a "
          << (resp.role() == api::NODE_ROLE_MANAGER ? "manager" : "worker") << ".\n";
  return absl::OkStatus();
}

// ---- swarm join-token ----

struct JoinTokenFlags {
  bool quiet = false;
  bool rotate = false;
  std::string role;
};

absl::Status JoinToken(Session& s, const JoinTokenFlags& f) {
  if (f.role != "worker" && f.role != "manager") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown role ", f.role, ": use swarmctl swarm join-token worker|manager"));
  }
  ASSIGN_OR_RETURN(api::Cluster cluster, s.GetCluster());
  if (f.rotate) {
    ASSIGN_OR_RETURN(Client * c, s.client());
    api::UpdateClusterRequest req;
    req.set_cluster_id(cluster.id());
    *req.mutable_cluster_version() = cluster.meta().version();
    *req.mutable_spec() = cluster.spec();
    if (f.role == "worker") {
      req.mutable_rotation()->set_worker_join_token(true);
    } else {
      req.mutable_rotation()->set_manager_join_token(true);
    }
    ASSIGN_OR_RETURN(auto resp, c->Control(&api::Control::Stub::UpdateCluster, req));
    cluster = resp.cluster();
    if (!f.quiet) s.out() << "Successfully rotated " << f.role << " join token.\n\n";
  }
  ASSIGN_OR_RETURN(std::string token, TokenOf(cluster, f.role));
  if (f.quiet) {
    s.out() << token << "\n";
    return absl::OkStatus();
  }
  PrintJoinCommand(s, f.role, token, s.ManagerAddress());
  return absl::OkStatus();
}

// ---- swarm ca ----

struct CaFlags {
  bool rotate = false;
  bool detach = false;
  bool quiet = false;
  std::optional<std::string> ca_cert;
  std::optional<std::string> ca_key;
  std::optional<std::string> cert_expiry;
};

// How long a rotation may make no progress before the nodes holding it up are named.
constexpr absl::Duration kRotationStall = absl::Seconds(30);

// Polls until the root rotation is over, printing its progress (unless quiet) when it changes;
// names the nodes holding it up when nothing moved for kRotationStall.
absl::Status WaitForRootRotation(Session& s, bool quiet) {
  ASSIGN_OR_RETURN(Client * c, s.client());
  std::string shown;
  absl::Time last_change = s.now();
  bool named = false;
  absl::Time last_answer = s.now();
  while (true) {
    // Managers restart with their new certificates: a failed poll is retried for a while.
    absl::StatusOr<api::Cluster> cluster = s.GetCluster();
    absl::StatusOr<api::ListNodesResponse> nodes =
        cluster.ok() ? c->Control(&api::Control::Stub::ListNodes, api::ListNodesRequest())
                     : absl::StatusOr<api::ListNodesResponse>(cluster.status());
    if (!nodes.ok()) {
      if (s.now() - last_answer > kRotationStall) return nodes.status();
      s.io().clock->SleepFor(absl::Milliseconds(500));
      continue;
    }
    last_answer = s.now();
    const RotationView v = EvaluateRootRotation(
        *cluster, std::vector<api::Node>(nodes->nodes().begin(), nodes->nodes().end()));
    const std::string text = RenderRootRotation(v);
    if (text != shown) {
      if (!quiet) s.out() << text << std::flush;
      shown = text;
      last_change = s.now();
      named = false;
    } else if (!named && s.now() - last_change >= kRotationStall && !v.waiting_for.empty()) {
      s.err() << "The root rotation is waiting for " << v.waiting_for.size()
              << (v.waiting_for.size() == 1 ? " node" : " nodes") << ": "
              << absl::StrJoin(v.waiting_for, ", ")
              << ".\nA node that is down holds the rotation up until it comes back or is removed "
                 "(swarmctl node rm --force NODE); the rotation goes on in the background "
                 "(Ctrl-C stops only this command).\n";
      named = true;
    }
    if (v.done) return absl::OkStatus();
    s.io().clock->SleepFor(absl::Milliseconds(200));
  }
}

// `swarm ca`: the root CA certificate, as Docker prints it; with --rotate, a new root (or the
// one of --ca-cert/--ca-key) replaces it on every node.
absl::Status Ca(Session& s, const CaFlags& f) {
  if (!f.rotate) {
    for (const auto& [flag, given] :
         {std::pair{"ca-cert", f.ca_cert.has_value()}, std::pair{"ca-key", f.ca_key.has_value()},
          std::pair{"cert-expiry", f.cert_expiry.has_value()}}) {
      if (given) {
        return absl::InvalidArgumentError(
            absl::StrCat("`--", flag, "` flag requires the `--rotate` flag to update the CA"));
      }
    }
    ASSIGN_OR_RETURN(api::Cluster cluster, s.GetCluster());
    s.out() << cluster.root_ca().ca_cert();
    return absl::OkStatus();
  }
  if (f.ca_cert.has_value() != f.ca_key.has_value()) {
    return absl::InvalidArgumentError(
        "the --ca-cert flag requires that a --ca-key flag be provided as well (and the other "
        "way round): this swarm signs node certificates with the root's key");
  }
  ASSIGN_OR_RETURN(api::Cluster cluster, s.GetCluster());
  api::UpdateClusterRequest req;
  req.set_cluster_id(cluster.id());
  *req.mutable_cluster_version() = cluster.meta().version();
  *req.mutable_spec() = cluster.spec();
  api::CAConfig* ca = req.mutable_spec()->mutable_ca_config();
  if (f.cert_expiry) {
    ASSIGN_OR_RETURN(absl::Duration d, ParseDuration("cert-expiry", *f.cert_expiry));
    SetProtoDuration(d, ca->mutable_node_cert_expiry());
  }
  std::string cert, key;
  if (f.ca_cert) {
    ASSIGN_OR_RETURN(cert, ReadFileOrStdin(s, *f.ca_cert));
    ASSIGN_OR_RETURN(key, ReadFileOrStdin(s, *f.ca_key));
  }
  ca->set_signing_ca_cert(cert);
  ca->set_signing_ca_key(key);
  // Without a root of its own, the swarm makes one (Docker's ForceRotate); a new --rotate
  // during a rotation starts over.
  if (cert.empty()) ca->set_force_rotate(ca->force_rotate() + 1);
  ASSIGN_OR_RETURN(Client * c, s.client());
  RETURN_IF_ERROR(c->Control(&api::Control::Stub::UpdateCluster, req).status());
  if (f.detach) return absl::OkStatus();
  RETURN_IF_ERROR(WaitForRootRotation(s, f.quiet));
  if (f.quiet) return absl::OkStatus();
  ASSIGN_OR_RETURN(cluster, s.GetCluster());
  s.out() << cluster.root_ca().ca_cert();
  return absl::OkStatus();
}

// `swarm ca client-cert --out DIR`: an operator certificate for remote swarmctl. The key is
// made here and written 0600; only its CSR goes to swarmd, which signs it as swarm-operator
// (the control API and nothing else).
absl::Status ClientCert(Session& s, const std::string& out_dir) {
  if (out_dir.empty()) return absl::InvalidArgumentError("--out DIR is required");
  ASSIGN_OR_RETURN(Client * c, s.client());
  if (!c->is_local()) {
    return absl::FailedPreconditionError(
        "operator certificates are issued through a manager's local socket: run this on a "
        "manager node, without --host");
  }
  ASSIGN_OR_RETURN(tls::KeyAndCsr key, tls::GenerateKeyAndCsr());
  api::IssueOperatorCertificateRequest req;
  req.set_csr(key.csr_pem);
  ASSIGN_OR_RETURN(auto resp, c->NodeAdmin(&api::NodeAdmin::Stub::IssueOperatorCertificate, req));
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", out_dir, ": ", ec.message()));
  }
  RETURN_IF_ERROR(WriteFileAtomically(out_dir + "/key.pem", key.key_pem, 0600));
  RETURN_IF_ERROR(WriteFileAtomically(out_dir + "/cert.pem", resp.certificate(), 0644));
  RETURN_IF_ERROR(WriteFileAtomically(out_dir + "/ca.pem", resp.root_ca(), 0644));
  const std::string addr = s.ManagerAddress();
  s.out() << "Operator certificate " << resp.operator_id() << " written to " << out_dir
          << " (ca.pem, cert.pem, key.pem), valid until "
          << absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", FromTimestamp(resp.expires_at()),
                              absl::UTCTimeZone())
          << ".\nIt reaches the control API of the managers and nothing else. From another "
             "machine:\n\n    swarmctl --host "
          << (addr.empty() ? "MANAGER:PORT" : addr) << " --tls-dir " << out_dir << " node ls\n\n";
  return absl::OkStatus();
}

// ---- swarm unlock-key ----

absl::Status UnlockKey(Session& s, bool quiet, bool rotate) {
  ASSIGN_OR_RETURN(Client * c, s.client());
  if (rotate) {
    ASSIGN_OR_RETURN(api::Cluster cluster, s.GetCluster());
    if (!cluster.spec().encryption_config().auto_lock_managers()) {
      return absl::FailedPreconditionError(
          "cannot rotate because autolock is not turned on (swarmctl swarm update "
          "--autolock=true)");
    }
    api::UpdateClusterRequest req;
    req.set_cluster_id(cluster.id());
    *req.mutable_cluster_version() = cluster.meta().version();
    *req.mutable_spec() = cluster.spec();
    req.mutable_rotation()->set_manager_unlock_key(true);
    RETURN_IF_ERROR(c->Control(&api::Control::Stub::UpdateCluster, req).status());
    if (!quiet) s.out() << "Successfully rotated manager unlock key.\n\n";
  }
  ASSIGN_OR_RETURN(auto resp,
                   c->Control(&api::Control::Stub::GetUnlockKey, api::GetUnlockKeyRequest()));
  if (resp.unlock_key().empty()) {
    return absl::FailedPreconditionError(
        "no unlock key is set: autolock is off (turn it on with swarmctl swarm update "
        "--autolock=true)");
  }
  const std::string key = HumanUnlockKey(resp.unlock_key());
  if (quiet) {
    s.out() << key << "\n";
  } else {
    PrintUnlockKey(s, key);
  }
  return absl::OkStatus();
}

// ---- swarm unlock ----

absl::Status Unlock(Session& s, const std::vector<std::string>& extra) {
  if (!extra.empty()) {
    return absl::InvalidArgumentError(
        "swarmctl swarm unlock reads the key from standard input, not from the command line "
        "(where it would stay in the shell history and the process list)");
  }
  std::string key;
  if (s.io().in_is_terminal && s.io().read_password) {
    ASSIGN_OR_RETURN(key, s.io().read_password("Enter unlock key: "));
  } else {
    std::getline(s.in(), key);
  }
  key = std::string(absl::StripAsciiWhitespace(key));
  if (key.empty()) {
    return absl::InvalidArgumentError(
        "no unlock key on standard input (a manager prints it with: swarmctl swarm unlock-key)");
  }
  api::UnlockSwarmRequest req;
  req.set_unlock_key(key);
  ASSIGN_OR_RETURN(Client * c, s.client());
  return c->NodeAdmin(&api::NodeAdmin::Stub::UnlockSwarm, req, kLongTimeout).status();
}

// ---- swarm update ----

absl::Status Update(Session& s, const ClusterFlags& f) {
  ASSIGN_OR_RETURN(api::Cluster cluster, s.GetCluster());
  const bool was_locked = cluster.spec().encryption_config().auto_lock_managers();
  api::UpdateClusterRequest req;
  req.set_cluster_id(cluster.id());
  *req.mutable_cluster_version() = cluster.meta().version();
  *req.mutable_spec() = cluster.spec();
  RETURN_IF_ERROR(ApplyClusterUpdate(f, req.mutable_spec()));
  ASSIGN_OR_RETURN(Client * c, s.client());
  RETURN_IF_ERROR(c->Control(&api::Control::Stub::UpdateCluster, req).status());
  s.out() << "Swarm updated.\n";
  if (!was_locked && f.autolock.value_or(false)) {
    ASSIGN_OR_RETURN(auto key,
                     c->Control(&api::Control::Stub::GetUnlockKey, api::GetUnlockKeyRequest()));
    if (!key.unlock_key().empty()) PrintUnlockKey(s, HumanUnlockKey(key.unlock_key()));
  }
  return absl::OkStatus();
}

}  // namespace

void AddSwarmCommands(CommandTree& tree) {
  CLI::App* swarm = tree.Group(tree.root(), "swarm", "Manage the swarm");

  auto init = std::make_shared<InitFlags>();
  CLI::App* cmd = tree.Command(swarm, "init", "Initialize a swarm",
                               [init](Session& s) { return Init(s, *init); });
  cmd->add_option("--listen-addr", init->listen_addr, "Listen address (host:port)");
  cmd->add_option("--advertise-addr", init->advertise_addr, "Advertised address (host:port)");
  tree.Flag(cmd, "--autolock", &init->autolock,
            "Enable manager autolocking (requiring an unlock key to start a stopped manager)");
  tree.Opt(cmd, "--cert-expiry", &init->cert_expiry,
           "Validity period for node certificates (default 2160h0m0s)");
  tree.Opt(cmd, "--availability", &init->availability,
           "Availability of the node (\"active\", \"pause\", \"drain\")");
  tree.Flag(cmd, "--force-new-cluster", &init->force_new_cluster,
            "Force create a new cluster from current state");
  tree.Opt(cmd, "--task-history-limit", &init->task_history_limit,
           "Task history retention limit (default 5)");
  tree.Opt(cmd, "--dispatcher-heartbeat", &init->dispatcher_heartbeat,
           "Dispatcher heartbeat period (default 5s)");
  tree.List(cmd, "--default-addr-pool", &init->default_addr_pool,
            "Default address pool in CIDR format (default 10.0.0.0/8; repeatable)");
  tree.Opt(cmd, "--default-addr-pool-mask-len", &init->default_addr_pool_mask_len,
           "Default address pool subnet mask length (default 24)");

  auto join = std::make_shared<JoinFlags>();
  cmd = tree.Command(swarm, "join", "Join a swarm as a node and/or manager",
                     [join](Session& s) { return Join(s, *join); });
  tree.Opt(cmd, "--token", &join->token, "Token for entry into the swarm (- reads standard input)");
  tree.Opt(cmd, "--token-file", &join->token_file, "File holding the token");
  cmd->add_option("--listen-addr", join->listen_addr, "Listen address (host:port)");
  cmd->add_option("--advertise-addr", join->advertise_addr, "Advertised address (host:port)");
  tree.Opt(cmd, "--availability", &join->availability,
           "Availability of the node (\"active\", \"pause\", \"drain\")");
  cmd->add_option("HOST:PORT", join->remote, "Address of a manager")->required();

  auto token = std::make_shared<JoinTokenFlags>();
  cmd = tree.Command(swarm, "join-token", "Manage join tokens",
                     [token](Session& s) { return JoinToken(s, *token); });
  tree.Flag(cmd, "-q,--quiet", &token->quiet, "Only display token");
  tree.Flag(cmd, "--rotate", &token->rotate, "Rotate join token");
  cmd->add_option("ROLE", token->role, "worker or manager")->required();

  auto leave_force = std::make_shared<bool>(false);
  cmd = tree.Command(swarm, "leave", "Leave the swarm", [leave_force](Session& s) -> absl::Status {
    api::LeaveSwarmRequest req;
    req.set_force(*leave_force);
    ASSIGN_OR_RETURN(Client * c, s.client());
    RETURN_IF_ERROR(c->NodeAdmin(&api::NodeAdmin::Stub::LeaveSwarm, req, kLongTimeout).status());
    s.out() << "Node left the swarm.\n";
    return absl::OkStatus();
  });
  tree.Flag(cmd, "-f,--force", leave_force.get(),
            "Force this node to leave the swarm, ignoring warnings");

  // A key typed on the command line is captured (by a hidden positional) only to refuse it.
  auto unlock_args = std::make_shared<std::vector<std::string>>();
  cmd = tree.Command(swarm, "unlock", "Unlock swarm (the key is read from standard input)",
                     [unlock_args](Session& s) { return Unlock(s, *unlock_args); });
  cmd->add_option("KEY", *unlock_args)->group("");

  auto ca_flags = std::make_shared<CaFlags>();
  CLI::App* ca =
      tree.Command(swarm, "ca", "Display and rotate the root CA, or issue operator certificates",
                   [ca_flags](Session& s) { return Ca(s, *ca_flags); });
  tree.Flag(ca, "--rotate", &ca_flags->rotate,
            "Rotate the swarm CA - if no certificate or key are provided, new ones will be "
            "generated");
  tree.Opt(ca, "--ca-cert", &ca_flags->ca_cert,
           "Path to the PEM-formatted root CA certificate to use for the new cluster");
  tree.Opt(ca, "--ca-key", &ca_flags->ca_key,
           "Path to the PEM-formatted root CA key to use for the new cluster");
  tree.Opt(ca, "--cert-expiry", &ca_flags->cert_expiry,
           "Validity period for node certificates (ns|us|ms|s|m|h)");
  tree.Flag(ca, "-d,--detach", &ca_flags->detach,
            "Exit immediately instead of waiting for the root rotation to converge");
  tree.Flag(ca, "-q,--quiet", &ca_flags->quiet, "Suppress progress output");
  auto client_cert_dir = std::make_shared<std::string>();
  cmd = tree.Command(ca, "client-cert",
                     "Issue an operator certificate for remote swarmctl (control API only); run "
                     "on a manager",
                     [client_cert_dir](Session& s) { return ClientCert(s, *client_cert_dir); });
  cmd->add_option("--out", *client_cert_dir,
                  "Directory to write ca.pem, cert.pem and key.pem (key 0600) to")
      ->required();

  auto key = std::make_shared<std::pair<bool, bool>>(false, false);
  cmd = tree.Command(swarm, "unlock-key", "Manage the unlock key",
                     [key](Session& s) { return UnlockKey(s, key->first, key->second); });
  tree.Flag(cmd, "-q,--quiet", &key->first, "Only display token");
  tree.Flag(cmd, "--rotate", &key->second, "Rotate unlock key");

  auto update = std::make_shared<ClusterFlags>();
  cmd = tree.Command(swarm, "update", "Update the swarm",
                     [update](Session& s) { return Update(s, *update); });
  tree.Bool(cmd, "--autolock", &update->autolock,
            "Change manager autolocking setting (true|false)");
  tree.Opt(cmd, "--cert-expiry", &update->cert_expiry, "Validity period for node certificates");
  tree.Opt(cmd, "--task-history-limit", &update->task_history_limit,
           "Task history retention limit");
  tree.Opt(cmd, "--dispatcher-heartbeat", &update->dispatcher_heartbeat,
           "Dispatcher heartbeat period");
}

}  // namespace swarm::cli

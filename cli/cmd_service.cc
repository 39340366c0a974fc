// `swarmctl service create|ls|ps|inspect|update|scale|rm|rollback`.
#include <functional>
#include <map>
#include <ostream>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/pretty.h"
#include "cli/progress.h"
#include "cli/requests.h"
#include "cli/service_spec.h"
#include "common/files.h"
#include "common/proto_time.h"
#include "common/status_macros.h"
#include "proto/logbroker.grpc.pb.h"

namespace swarm::cli {
namespace {

absl::StatusOr<api::Service> GetService(Session& s, const std::string& name,
                                        bool insert_defaults = false) {
  ASSIGN_OR_RETURN(Client * c, s.client());
  api::GetServiceRequest req;
  req.set_service_id(name);
  req.set_insert_defaults(insert_defaults);
  ASSIGN_OR_RETURN(auto resp, c->Control(&api::Control::Stub::GetService, req));
  return resp.service();
}

absl::Status SendUpdate(Session& s, const api::Service& service, const api::ServiceSpec& spec,
                        bool rollback, bool rebalance = false) {
  ASSIGN_OR_RETURN(Client * c, s.client());
  api::UpdateServiceRequest req;
  req.set_service_id(service.id());
  *req.mutable_service_version() = service.meta().version();
  if (!rollback) *req.mutable_spec() = spec;
  req.set_rollback(rollback);
  req.set_rebalance(rebalance);
  return c->Control(&api::Control::Stub::UpdateService, req).status();
}

// Reads the service, computes the new spec from it with change and sends it; when the service
// changed in between (the orchestrator records an update's progress on it), reads it again and
// reapplies the change, as the store's "out of sequence" error asks, a few times.
absl::StatusOr<api::Service> UpdateWithRetry(
    Session& s, const std::string& name, bool rollback, bool rebalance,
    const std::function<absl::StatusOr<api::ServiceSpec>(const api::Service&)>& change) {
  constexpr int kAttempts = 5;
  for (int attempt = 1;; ++attempt) {
    ASSIGN_OR_RETURN(api::Service service, GetService(s, name));
    ASSIGN_OR_RETURN(api::ServiceSpec spec, change(service));
    absl::Status sent = SendUpdate(s, service, spec, rollback, rebalance);
    if (sent.ok()) return service;
    if (attempt == kAttempts || sent.code() != absl::StatusCode::kFailedPrecondition ||
        !absl::StrContains(sent.message(), "out of sequence")) {
      return sent;
    }
  }
}

// The service and its tasks through the control API, for progress.
class ControlProgressSource final : public ProgressSource {
 public:
  ControlProgressSource(Client* client, std::string service_id)
      : client_(client), service_id_(std::move(service_id)) {}

  absl::StatusOr<api::Service> GetService() override {
    api::GetServiceRequest req;
    req.set_service_id(service_id_);
    ASSIGN_OR_RETURN(auto resp, client_->Control(&api::Control::Stub::GetService, req));
    return resp.service();
  }
  absl::StatusOr<std::vector<api::Task>> ListTasks() override {
    api::ListTasksRequest req;
    req.mutable_filters()->add_service_ids(service_id_);
    ASSIGN_OR_RETURN(auto resp, client_->Control(&api::Control::Stub::ListTasks, req));
    return std::vector<api::Task>(resp.tasks().begin(), resp.tasks().end());
  }

 private:
  Client* const client_;
  const std::string service_id_;
};

// Without --detach, waits for the service to converge and shows its progress (none with -q).
absl::Status WaitUnlessDetached(Session& s, const std::string& service_id, bool detach, bool quiet,
                                bool rollback = false) {
  if (detach) return absl::OkStatus();
  ASSIGN_OR_RETURN(Client * c, s.client());
  ControlProgressSource source(c, service_id);
  ProgressOptions options;
  options.terminal = s.io().out_is_terminal;
  options.quiet = quiet;
  options.rollback = rollback;
  return WaitForConvergence(source, *s.io().clock, s.out(), options);
}

ServiceFlagEnv FlagEnv(Session& s, std::shared_ptr<std::map<std::string, std::string>> cache) {
  ServiceFlagEnv env;
  env.getenv = s.io().getenv;
  env.read_file = [](const std::string& path) { return ReadFile(path); };
  env.network_id = [&s, cache](const std::string& name) -> std::string {
    auto it = cache->find(name);
    if (it != cache->end()) return it->second;
    std::string id;
    auto c = s.client();
    if (c.ok()) {
      api::GetNetworkRequest req;
      req.set_network_id(name);
      auto resp = (*c)->Control(&api::Control::Stub::GetNetwork, req);
      if (!resp.ok()) {
        req.clear_network_id();
        req.set_name(name);
        resp = (*c)->Control(&api::Control::Stub::GetNetwork, req);
      }
      if (resp.ok()) id = resp->network().id();
    }
    (*cache)[name] = id;
    return id;
  };
  return env;
}

// Fills the IDs of the secrets and configs the spec names.
absl::Status ResolveSpecReferences(Session& s, api::ServiceSpec* spec) {
  const api::ContainerSpec& c = spec->task_template().container();
  api::ListSecretsRequest secrets_req;
  api::ListConfigsRequest configs_req;
  bool need_secrets = false, need_configs = false;
  for (const api::SecretReference& r : c.secrets()) {
    if (r.secret_id().empty()) need_secrets = true;
  }
  for (const api::ConfigReference& r : c.configs()) {
    if (r.config_id().empty()) need_configs = true;
  }
  if (!need_secrets && !need_configs) return absl::OkStatus();
  ASSIGN_OR_RETURN(Client * client, s.client());
  std::vector<api::Secret> secrets;
  std::vector<api::Config> configs;
  if (need_secrets) {
    ASSIGN_OR_RETURN(auto resp, client->Control(&api::Control::Stub::ListSecrets, secrets_req));
    secrets.assign(resp.secrets().begin(), resp.secrets().end());
  }
  if (need_configs) {
    ASSIGN_OR_RETURN(auto resp, client->Control(&api::Control::Stub::ListConfigs, configs_req));
    configs.assign(resp.configs().begin(), resp.configs().end());
  }
  return ResolveReferences(secrets, configs, spec);
}

struct CreateFlags {
  ServiceFlags service;
  std::vector<std::string> command_line;  // IMAGE [COMMAND] [ARG...]
  bool detach = false;
  bool quiet = false;
};

absl::Status Create(Session& s, CreateFlags& f) {
  if (f.command_line.empty()) {
    return absl::InvalidArgumentError("an image is required: swarmctl service create IMAGE");
  }
  f.service.image = f.command_line[0];
  f.service.args.assign(f.command_line.begin() + 1, f.command_line.end());
  auto cache = std::make_shared<std::map<std::string, std::string>>();
  ASSIGN_OR_RETURN(api::ServiceSpec spec, BuildServiceSpec(f.service, FlagEnv(s, cache)));
  RETURN_IF_ERROR(ResolveSpecReferences(s, &spec));
  ASSIGN_OR_RETURN(Client * c, s.client());
  api::CreateServiceRequest req;
  *req.mutable_spec() = spec;
  ASSIGN_OR_RETURN(auto resp, c->Control(&api::Control::Stub::CreateService, req));
  s.out() << resp.service().id() << "\n";
  return WaitUnlessDetached(s, resp.service().id(), f.detach, f.quiet);
}

struct UpdateFlags {
  ServiceFlags service;
  std::string name;
  bool rollback = false;
  bool rebalance = false;
  bool detach = false;
  bool quiet = false;
};

absl::Status Update(Session& s, const UpdateFlags& f) {
  if (f.rollback && (!(f.service == ServiceFlags{}) || f.rebalance)) {
    return absl::InvalidArgumentError("--rollback cannot be combined with other changes");
  }
  auto cache = std::make_shared<std::map<std::string, std::string>>();
  ASSIGN_OR_RETURN(
      api::Service service,
      UpdateWithRetry(s, f.name, f.rollback, !f.rollback && f.rebalance,
                      [&](const api::Service& current) -> absl::StatusOr<api::ServiceSpec> {
                        api::ServiceSpec spec = current.spec();
                        if (f.rollback) return spec;
                        RETURN_IF_ERROR(ApplyServiceUpdate(f.service, FlagEnv(s, cache), &spec));
                        RETURN_IF_ERROR(ResolveSpecReferences(s, &spec));
                        return spec;
                      }));
  s.out() << f.name << "\n";
  return WaitUnlessDetached(s, service.id(), f.detach, f.quiet, f.rollback);
}

absl::Status Scale(Session& s, const std::string& arg, bool detach) {
  const size_t eq = arg.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid scale specifier '", arg, "': expected format SERVICE=REPLICAS"));
  }
  const std::string name = arg.substr(0, eq);
  ASSIGN_OR_RETURN(uint64_t replicas, ParseUint("replicas", arg.substr(eq + 1)));
  ASSIGN_OR_RETURN(
      api::Service service,
      UpdateWithRetry(s, name, /*rollback=*/false, /*rebalance=*/false,
                      [&](const api::Service& current) -> absl::StatusOr<api::ServiceSpec> {
                        api::ServiceSpec spec = current.spec();
                        if (spec.has_replicated()) {
                          spec.mutable_replicated()->set_replicas(replicas);
                        } else if (spec.has_replicated_job()) {
                          spec.mutable_replicated_job()->set_total_completions(replicas);
                        } else {
                          return absl::FailedPreconditionError(absl::StrCat(
                              "scale can only be used with replicated or replicated-job mode (",
                              name, " is ", ServiceModeName(spec), ")"));
                        }
                        return spec;
                      }));
  s.out() << name << " scaled to " << replicas << "\n";
  return WaitUnlessDetached(s, service.id(), detach, /*quiet=*/false);
}

absl::Status List(Session& s, const ListFlags& f) {
  ASSIGN_OR_RETURN(Filters filters, ParseFilters(f.filters, {"id", "name", "label", "mode"}));
  ASSIGN_OR_RETURN(api::ListServicesRequest req, ServiceListRequest(filters));
  ASSIGN_OR_RETURN(Client * c, s.client());
  ASSIGN_OR_RETURN(auto resp, c->Control(&api::Control::Stub::ListServices, req));
  std::vector<api::Service> services(resp.services().begin(), resp.services().end());
  std::vector<api::ServiceStatus> statuses;
  if (!services.empty() && !f.output.quiet) {
    api::ListServiceStatusesRequest sreq;
    for (const api::Service& svc : services) sreq.add_service_ids(svc.id());
    ASSIGN_OR_RETURN(auto sresp, c->Control(&api::Control::Stub::ListServiceStatuses, sreq));
    statuses.assign(sresp.statuses().begin(), sresp.statuses().end());
  }
  return PrintListing(s, ServiceListing(services, statuses, f.output.no_trunc), f.output);
}

struct PsFlags {
  ListFlags list;
  std::vector<std::string> services;
};

struct InspectFlags {
  std::vector<std::string> services;
  std::string format;
  bool pretty = false;
};

absl::Status Ps(Session& s, const PsFlags& f) {
  std::vector<std::string> ids;
  std::map<std::string, std::string> service_names;
  for (const std::string& name : f.services) {
    ASSIGN_OR_RETURN(api::Service svc, GetService(s, name));
    ids.push_back(svc.id());
    service_names[svc.id()] = svc.spec().annotations().name();
  }
  ASSIGN_OR_RETURN(Filters filters,
                   ParseFilters(f.list.filters, {"id", "name", "node", "desired-state"}));
  ASSIGN_OR_RETURN(Client * c, s.client());
  std::vector<std::string> node_ids;
  for (const auto& [key, value] : filters) {
    if (key != "node") continue;
    api::GetNodeRequest nreq;
    nreq.set_node_id(value);
    ASSIGN_OR_RETURN(auto node, c->Control(&api::Control::Stub::GetNode, nreq));
    node_ids.push_back(node.node().id());
  }
  ASSIGN_OR_RETURN(api::ListTasksRequest req, TaskListRequest(filters, ids, node_ids));
  ASSIGN_OR_RETURN(auto resp, c->Control(&api::Control::Stub::ListTasks, req));
  std::vector<api::Task> tasks(resp.tasks().begin(), resp.tasks().end());
  std::map<std::string, std::string> node_names;
  if (!f.list.output.quiet) {
    auto nodes = c->Control(&api::Control::Stub::ListNodes, api::ListNodesRequest());
    if (nodes.ok()) {
      for (const api::Node& n : nodes->nodes()) node_names[n.id()] = n.description().hostname();
    }
  }
  return PrintListing(
      s, TaskListing(tasks, service_names, node_names, s.now(), f.list.output.no_trunc),
      f.list.output);
}

absl::Status Inspect(Session& s, const InspectFlags& f) {
  if (f.pretty && !f.format.empty()) {
    return absl::InvalidArgumentError("--format and --pretty cannot be used together");
  }
  return InspectEach<api::Service>(
      s, f.services, f.format,
      [&](const std::string& name) { return GetService(s, name, /*insert_defaults=*/true); },
      f.pretty ? PrettyService : nullptr);
}

struct LogsFlags {
  std::string target;
  bool follow = false;
  std::string since;
  std::string tail = "all";
  bool timestamps = false;
  bool no_task_ids = false;
  bool no_trunc = false;
  bool raw = false;
};

// --since: a Go duration before now ("10m") or an RFC 3339 time.
absl::StatusOr<absl::Time> ParseSince(Session& s, const std::string& text) {
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, text, &t, &err)) return t;
  absl::StatusOr<absl::Duration> d = ParseDuration("--since", text);
  if (!d.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid --since \"", text, "\": give a duration such as 10m or an RFC 3339 time"));
  }
  return s.now() - *d;
}

// How often, and after how long, a broken --follow stream is opened again before giving up.
constexpr int kLogRetries = 30;
constexpr absl::Duration kLogRetryDelay = absl::Milliseconds(500);

// `service logs SERVICE|TASK`: the lines of the tasks as the agents publish them, prefixed
// "<task name>.<task id>@<node>    | " as Docker prints them. Nodes whose logs cannot come are
// named on stderr and the rest keeps coming.
absl::Status Logs(Session& s, const LogsFlags& f) {
  ASSIGN_OR_RETURN(Client * c, s.client());
  api::SubscribeLogsRequest req;
  std::string service_name;
  absl::StatusOr<api::Service> svc = GetService(s, f.target);
  if (svc.ok()) {
    req.mutable_selector()->add_service_ids(svc->id());
  } else {
    api::GetTaskRequest treq;
    treq.set_task_id(f.target);
    absl::StatusOr<api::GetTaskResponse> task = c->Control(&api::Control::Stub::GetTask, treq);
    if (!task.ok()) {
      return absl::NotFoundError(
          absl::StrCat("no such service or task: ", f.target, " (", svc.status().message(), ")"));
    }
    req.mutable_selector()->add_task_ids(task->task().id());
  }
  api::LogSubscriptionOptions* o = req.mutable_options();
  o->set_follow(f.follow);
  if (f.tail != "all") {
    int64_t n;
    if (!absl::SimpleAtoi(f.tail, &n) || n < 0) {
      return absl::InvalidArgumentError("--tail takes a number of lines or \"all\"");
    }
    o->set_tail(-n - 1);
  }
  if (!f.since.empty()) {
    ASSIGN_OR_RETURN(absl::Time since, ParseSince(s, f.since));
    *o->mutable_since() = ToTimestamp(since);
  }

  // Names of tasks and nodes, looked up once (and again for a task not seen before).
  std::map<std::string, std::string> node_names;
  if (auto nodes = c->Control(&api::Control::Stub::ListNodes, api::ListNodesRequest());
      nodes.ok()) {
    for (const api::Node& n : nodes->nodes()) {
      node_names[n.id()] = n.description().hostname().empty() ? n.id() : n.description().hostname();
    }
  }
  std::map<std::string, std::string> task_names;
  auto task_name = [&](const std::string& id) -> const std::string& {
    auto it = task_names.find(id);
    if (it != task_names.end()) return it->second;
    std::string name = id;
    api::GetTaskRequest treq;
    treq.set_task_id(id);
    if (auto t = c->Control(&api::Control::Stub::GetTask, treq); t.ok()) {
      const api::Task& task = t->task();
      const std::string service = task.service_annotations().name().empty()
                                      ? task.service_id()
                                      : task.service_annotations().name();
      name = task.slot() != 0 ? absl::StrCat(service, ".", task.slot())
                              : absl::StrCat(service, ".", task.node_id());
    }
    return task_names[id] = name;
  };

  std::unique_ptr<api::Logs::Stub> stub = api::Logs::NewStub(c->channel());
  // With --follow, a stream that breaks (the leader changed, the manager restarted) is opened
  // again from the last line's time; lines of that very instant already printed are skipped.
  absl::Time last_time = absl::InfinitePast();
  std::set<std::string> printed_at_last_time;
  int retries = 0;
  for (;;) {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<api::SubscribeLogsMessage>> reader =
        stub->SubscribeLogs(&ctx, req);
    api::SubscribeLogsMessage msg;
    while (reader->Read(&msg)) {
      retries = 0;
      for (const api::LogUnavailable& u : msg.unavailable()) {
        std::string reason = u.reason();
        if (auto n = node_names.find(u.node_id()); n != node_names.end()) {
          reason = absl::StrReplaceAll(reason, {{u.node_id(), n->second}});
        }
        s.err() << "error from daemon in stream: " << reason << "\n";
      }
      for (const api::LogMessage& m : msg.messages()) {
        const absl::Time at = FromTimestamp(m.timestamp());
        const std::string key = absl::StrCat(m.context().task_id(), "\n", m.data());
        if (at < last_time || (at == last_time && printed_at_last_time.contains(key))) continue;
        if (at > last_time) printed_at_last_time.clear();
        last_time = at;
        printed_at_last_time.insert(key);
        std::string line;
        if (f.timestamps) {
          absl::StrAppend(&line,
                          absl::FormatTime(absl::RFC3339_full, FromTimestamp(m.timestamp()),
                                           absl::UTCTimeZone()),
                          " ");
        }
        if (!f.raw) {
          const std::string& task = m.context().task_id();
          std::string id = f.no_trunc ? task : task.substr(0, 12);
          auto node = node_names.find(m.context().node_id());
          absl::StrAppend(&line, task_name(task), f.no_task_ids ? "" : "." + id, "@",
                          node == node_names.end() ? m.context().node_id() : node->second,
                          "    | ");
        }
        absl::StrAppend(&line, m.data());
        if (line.empty() || line.back() != '\n') line += "\n";
        s.out() << line;
      }
      s.out().flush();
    }
    grpc::Status st = reader->Finish();
    const bool resumable = f.follow && st.error_code() == grpc::StatusCode::UNAVAILABLE;
    if (!resumable || ++retries > kLogRetries) {
      if (st.ok()) return absl::OkStatus();
      return absl::Status(static_cast<absl::StatusCode>(st.error_code()), st.error_message());
    }
    s.err() << "the log stream was interrupted (" << st.error_message() << "); resuming\n";
    s.io().clock->SleepFor(kLogRetryDelay);
    o->clear_tail();
    if (last_time != absl::InfinitePast()) *o->mutable_since() = ToTimestamp(last_time);
  }
}

// The flags create and update share; update adds the --X-add/--X-rm forms.
void AddServiceFlags(CommandTree& t, CLI::App* cmd, ServiceFlags* f, bool update) {
  auto list = [&](const std::string& create_name, const std::string& update_name,
                  std::vector<std::string>* add, std::vector<std::string>* rm,
                  const std::string& help) {
    if (!update) {
      t.List(cmd, create_name, add, help);
    } else {
      t.List(cmd, update_name + "-add", add, "Add or update: " + help);
      if (rm != nullptr) t.List(cmd, update_name + "-rm", rm, "Remove: " + help);
    }
  };
  if (!update) {
    t.Opt(cmd, "--name", &f->name, "Service name");
    t.Opt(cmd, "--mode", &f->mode,
          "Service mode (\"replicated\", \"global\", \"replicated-job\", \"global-job\")");
    t.List(cmd, "--env-file", &f->env_files, "Read in a file of environment variables");
  } else {
    t.Opt(cmd, "--image", &f->update_image, "Service image tag");
    t.Opt(cmd, "--args", &f->update_args, "Service command args");
    t.Flag(cmd, "--force", &f->force, "Force update even if no changes require it");
  }
  t.Opt(cmd, "--replicas", &f->replicas, "Number of tasks");
  t.Opt(cmd, "--max-concurrent", &f->max_concurrent,
        "Number of job tasks to run concurrently (default equal to --replicas)");
  t.Opt(cmd, "-w,--workdir", &f->workdir, "Working directory inside the container");
  t.Opt(cmd, "-u,--user", &f->user, "Username or UID (format: <name|uid>[:<group|gid>])");
  t.Opt(cmd, "--hostname", &f->hostname, "Container hostname");
  t.Opt(cmd, "--entrypoint", &f->entrypoint, "Overwrite the default ENTRYPOINT of the image");
  t.Opt(cmd, "--stop-signal", &f->stop_signal, "Signal to stop the container");
  t.Opt(cmd, "--stop-grace-period", &f->stop_grace_period,
        "Time to wait before force killing a container (ns|us|ms|s|m|h)");
  t.Bool(cmd, "-t,--tty", &f->tty, "Allocate a pseudo-TTY");
  t.Bool(cmd, "--init", &f->init, "Use an init inside each service container");
  t.Bool(cmd, "--read-only", &f->read_only, "Mount the container's root filesystem as read only");
  t.Opt(cmd, "--oom-score-adj", &f->oom_score_adj, "Tune host's OOM preferences (-1000 to 1000)");
  t.Flag(cmd, "--with-registry-auth", &f->with_registry_auth,
         "Send registry authentication details to swarm agents");
  t.Opt(cmd, "--limit-cpu", &f->limit_cpu, "Limit CPUs");
  t.Opt(cmd, "--limit-memory", &f->limit_memory, "Limit Memory");
  t.Opt(cmd, "--limit-pids", &f->limit_pids, "Limit maximum number of processes (0 = unlimited)");
  t.Opt(cmd, "--reserve-cpu", &f->reserve_cpu, "Reserve CPUs");
  t.Opt(cmd, "--reserve-memory", &f->reserve_memory, "Reserve Memory");
  t.Opt(cmd, "--restart-condition", &f->restart_condition,
        "Restart when condition is met (\"none\", \"on-failure\", \"any\")");
  t.Opt(cmd, "--restart-delay", &f->restart_delay,
        "Delay between restart attempts (ns|us|ms|s|m|h)");
  t.Opt(cmd, "--restart-max-attempts", &f->restart_max_attempts,
        "Maximum number of restarts before giving up");
  t.Opt(cmd, "--restart-window", &f->restart_window,
        "Window used to evaluate the restart policy (ns|us|ms|s|m|h)");
  for (const std::string p : {"update", "rollback"}) {
    const bool u = p == "update";
    t.Opt(cmd, "--" + p + "-parallelism", u ? &f->update_parallelism : &f->rollback_parallelism,
          "Maximum number of tasks updated simultaneously (0 to update all at once)");
    t.Opt(cmd, "--" + p + "-delay", u ? &f->update_delay : &f->rollback_delay,
          "Delay between updates (ns|us|ms|s|m|h)");
    t.Opt(cmd, "--" + p + "-failure-action",
          u ? &f->update_failure_action : &f->rollback_failure_action,
          u ? "Action on update failure (\"pause\", \"continue\", \"rollback\")"
            : "Action on rollback failure (\"pause\", \"continue\")");
    t.Opt(cmd, "--" + p + "-monitor", u ? &f->update_monitor : &f->rollback_monitor,
          "Duration after each task update to monitor for failure (ns|us|ms|s|m|h)");
    t.Opt(cmd, "--" + p + "-max-failure-ratio",
          u ? &f->update_max_failure_ratio : &f->rollback_max_failure_ratio,
          "Failure rate to tolerate during an update");
    t.Opt(cmd, "--" + p + "-order", u ? &f->update_order : &f->rollback_order,
          "Order of operations (\"start-first\", \"stop-first\")");
  }
  t.Opt(cmd, "--endpoint-mode", &f->endpoint_mode, "Endpoint mode (vip or dnsrr)");
  t.Opt(cmd, "--replicas-max-per-node", &f->replicas_max_per_node,
        "Maximum number of tasks per node (default 0 = unlimited)");
  t.Opt(cmd, "--health-cmd", &f->health_cmd, "Command to run to check health");
  t.Opt(cmd, "--health-interval", &f->health_interval, "Time between running the check (ms|s|m|h)");
  t.Opt(cmd, "--health-timeout", &f->health_timeout,
        "Maximum time to allow one check to run (ms|s|m|h)");
  t.Opt(cmd, "--health-retries", &f->health_retries,
        "Consecutive failures needed to report unhealthy");
  t.Opt(cmd, "--health-start-period", &f->health_start_period,
        "Start period for the container to initialize before counting retries (ms|s|m|h)");
  t.Opt(cmd, "--health-start-interval", &f->health_start_interval,
        "Time between running the check during the start period (ms|s|m|h)");
  t.Flag(cmd, "--no-healthcheck", &f->no_healthcheck,
         "Disable any container-specified HEALTHCHECK");
  t.Opt(cmd, "--log-driver", &f->log_driver, "Logging driver for service");
  t.List(cmd, "--log-opt", &f->log_opts, "Logging driver options");

  if (!update) t.List(cmd, "-e,--env", &f->env, "Set environment variables");
  if (update) {
    t.List(cmd, "--env-add", &f->env, "Add or update an environment variable");
    t.List(cmd, "--env-rm", &f->env_rm, "Remove an environment variable");
  }
  if (!update) t.List(cmd, "-l,--label", &f->labels, "Service labels");
  if (update) {
    t.List(cmd, "--label-add", &f->labels, "Add or update a service label");
    t.List(cmd, "--label-rm", &f->label_rm, "Remove a label by its key");
  }
  list("--container-label", "--container-label", &f->container_labels, &f->container_label_rm,
       "Container labels");
  list("--mount", "--mount", &f->mounts, &f->mount_rm,
       "Attach a filesystem mount to the service (rm: by target path)");
  if (!update) t.List(cmd, "-p,--publish", &f->publish, "Publish a port as a node port");
  if (update) {
    t.List(cmd, "--publish-add", &f->publish, "Add or update a published port");
    t.List(cmd, "--publish-rm", &f->publish_rm, "Remove a published port by its target port");
  }
  list("--network", "--network", &f->networks, &f->network_rm, "Network attachments");
  list("--constraint", "--constraint", &f->constraints, &f->constraint_rm, "Placement constraints");
  list("--placement-pref", "--placement-pref", &f->placement_prefs, &f->placement_pref_rm,
       "Placement preferences");
  list("--secret", "--secret", &f->secrets, &f->secret_rm, "Secrets to expose to the service");
  list("--config", "--config", &f->configs, &f->config_rm, "Configs to expose to the service");
  list("--dns", "--dns", &f->dns, &f->dns_rm, "Custom DNS servers");
  list("--dns-search", "--dns-search", &f->dns_search, &f->dns_search_rm,
       "Custom DNS search domains");
  list("--dns-option", "--dns-option", &f->dns_options, &f->dns_option_rm, "DNS options");
  list("--host", "--host", &f->hosts, &f->host_rm, "A custom host-to-IP mapping (host:ip)");
  list("--group", "--group", &f->groups, &f->group_rm,
       "Additional supplementary user groups for the container");
  t.List(cmd, "--cap-add", &f->cap_add, "Add Linux capabilities");
  t.List(cmd, "--cap-drop", &f->cap_drop, "Drop Linux capabilities");
  list("--ulimit", "--ulimit", &f->ulimits, &f->ulimit_rm, "Ulimit options (name=soft[:hard])");
  list("--sysctl", "--sysctl", &f->sysctls, &f->sysctl_rm, "Sysctl options");
}

}  // namespace

void AddServiceCommands(CommandTree& tree) {
  CLI::App* service = tree.Group(tree.root(), "service", "Manage swarm services");

  auto create = std::make_shared<CreateFlags>();
  CLI::App* cmd = tree.Command(service, "create", "Create a new service",
                               [create](Session& s) { return Create(s, *create); });
  AddServiceFlags(tree, cmd, &create->service, /*update=*/false);
  tree.Flag(cmd, "-d,--detach", &create->detach,
            "Exit immediately instead of waiting for the service to converge");
  tree.Flag(cmd, "-q,--quiet", &create->quiet, "Suppress progress output");
  cmd->add_option("IMAGE", create->command_line, "IMAGE [COMMAND] [ARG...]")->required();
  // As Docker: flags after the image belong to the container's command.
  cmd->positionals_at_end(true);

  auto update = std::make_shared<UpdateFlags>();
  cmd = tree.Command(service, "update", "Update a service",
                     [update](Session& s) { return Update(s, *update); });
  AddServiceFlags(tree, cmd, &update->service, /*update=*/true);
  tree.Flag(cmd, "--rollback", &update->rollback, "Rollback to previous specification");
  tree.Flag(cmd, "--rebalance", &update->rebalance,
            "Spread the tasks evenly over the eligible nodes, including nodes that joined "
            "since (moves tasks with the update parallelism and delay)");
  tree.Flag(cmd, "-d,--detach", &update->detach,
            "Exit immediately instead of waiting for the service to converge");
  tree.Flag(cmd, "-q,--quiet", &update->quiet, "Suppress progress output");
  cmd->add_option("SERVICE", update->name, "Service (ID or name)")->required();

  auto ls = std::make_shared<ListFlags>();
  cmd = tree.Command(service, "ls", "List services", [ls](Session& s) { return List(s, *ls); });
  cmd->alias("list");
  AddListFlags(tree, cmd, ls.get(), /*no_trunc=*/true, "id, name, label, mode");

  auto ps = std::make_shared<PsFlags>();
  cmd = tree.Command(service, "ps", "List the tasks of one or more services",
                     [ps](Session& s) { return Ps(s, *ps); });
  AddListFlags(tree, cmd, &ps->list, /*no_trunc=*/true, "id, name, node, desired-state");
  cmd->add_option("SERVICE", ps->services, "Services (ID or name)")->required();

  auto logs = std::make_shared<LogsFlags>();
  cmd = tree.Command(service, "logs", "Fetch the logs of a service or task",
                     [logs](Session& s) { return Logs(s, *logs); });
  tree.Flag(cmd, "-f,--follow", &logs->follow, "Follow log output");
  cmd->add_option("--since", logs->since,
                  "Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m "
                  "for 42 minutes)");
  cmd->add_option("-n,--tail", logs->tail, "Number of lines to show from the end of the logs")
      ->default_str("all");
  tree.Flag(cmd, "-t,--timestamps", &logs->timestamps, "Show timestamps");
  tree.Flag(cmd, "--no-task-ids", &logs->no_task_ids, "Do not include task IDs in output");
  tree.Flag(cmd, "--no-trunc", &logs->no_trunc, "Do not truncate output");
  tree.Flag(cmd, "--raw", &logs->raw, "Do not neatly format logs");
  cmd->add_option("SERVICE|TASK", logs->target, "Service or task (ID or name)")->required();

  auto inspect = std::make_shared<InspectFlags>();
  cmd = tree.Command(service, "inspect", "Display detailed information on one or more services",
                     [inspect](Session& s) { return Inspect(s, *inspect); });
  cmd->add_option("-f,--format", inspect->format,
                  "Format output: json, or a Go template ('{{.Spec.Name}}', '{{json .Spec}}')");
  tree.Flag(cmd, "--pretty", &inspect->pretty, "Print the information in a human friendly format");
  cmd->add_option("SERVICE", inspect->services, "Services (ID or name)")->required();

  auto scale = std::make_shared<std::pair<bool, std::vector<std::string>>>();
  cmd = tree.Command(
      service, "scale", "Scale one or multiple replicated services", [scale](Session& s) {
        return ForEach(s, scale->second,
                       [&s, scale](const std::string& a) { return Scale(s, a, scale->first); });
      });
  tree.Flag(cmd, "-d,--detach", &scale->first,
            "Exit immediately instead of waiting for the service to converge");
  cmd->add_option("SERVICE=REPLICAS", scale->second, "Services and their replica counts")
      ->required();

  auto rm = std::make_shared<std::vector<std::string>>();
  cmd = tree.Command(service, "rm", "Remove one or more services", [rm](Session& s) {
    return RemoveEach(s, *rm, [](Client* c, const std::string& name) {
      api::RemoveServiceRequest req;
      req.set_service_id(name);
      return c->Control(&api::Control::Stub::RemoveService, req).status();
    });
  });
  cmd->alias("remove");
  cmd->add_option("SERVICE", *rm, "Services (ID or name)")->required();

  struct RollbackFlags {
    std::string name;
    bool detach = false;
    bool quiet = false;
  };
  auto rollback = std::make_shared<RollbackFlags>();
  cmd = tree.Command(
      service, "rollback", "Revert changes to a service's configuration",
      [rollback](Session& s) -> absl::Status {
        ASSIGN_OR_RETURN(api::Service svc,
                         UpdateWithRetry(s, rollback->name, /*rollback=*/true,
                                         /*rebalance=*/false, [](const api::Service& current) {
                                           return absl::StatusOr<api::ServiceSpec>(current.spec());
                                         }));
        s.out() << rollback->name << "\n";
        return WaitUnlessDetached(s, svc.id(), rollback->detach, rollback->quiet,
                                  /*rollback=*/true);
      });
  tree.Flag(cmd, "-d,--detach", &rollback->detach,
            "Exit immediately instead of waiting for the service to converge");
  tree.Flag(cmd, "-q,--quiet", &rollback->quiet, "Suppress progress output");
  cmd->add_option("SERVICE", rollback->name, "Service (ID or name)")->required();
}

}  // namespace swarm::cli

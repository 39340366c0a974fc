// From `service create` / `service update` flags to a ServiceSpec, as Docker does it. The
// flags arrive as the strings the user typed (ServiceFlags); BuildServiceSpec turns a create
// command into a new spec and ApplyServiceUpdate applies an update command, including its
// --X-add / --X-rm forms, onto the spec the service has now. Both are pure: the client's
// environment and files (for -e KEY and --env-file) come through ServiceFlagEnv, and names of
// secrets and configs are left for the command layer to resolve to IDs (ResolveReferences).
//
// Thread-safety: all functions are thread-safe (they hold no state).
#ifndef SWARM_CLI_SERVICE_SPEC_H_
#define SWARM_CLI_SERVICE_SPEC_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cli/flags.h"
#include "proto/objects.pb.h"
#include "proto/specs.pb.h"

namespace swarm::cli {

// What `service create` and `service update` were given. A scalar is nullopt when its flag
// was not given; lists hold every occurrence in order. For update, the list fields hold the
// --X-add values and the *_rm fields the --X-rm values; create leaves the *_rm fields empty.
struct ServiceFlags {
  // Positional arguments of create: IMAGE [COMMAND] [ARG...] (COMMAND and ARGs become the
  // container's args, as in Docker).
  std::string image;
  std::vector<std::string> args;

  // Update only.
  std::optional<std::string> update_image;  // --image
  std::optional<std::string> update_args;   // --args (shell-split)
  bool force = false;                       // --force: redeploy even without changes
  // --with-registry-auth: send the login `docker login` stored for the image's registry.
  bool with_registry_auth = false;

  std::optional<std::string> name;
  std::optional<std::string> mode;  // replicated | global | replicated-job | global-job
  std::optional<std::string> replicas;
  std::optional<std::string> max_concurrent;
  std::optional<std::string> workdir;
  std::optional<std::string> user;
  std::optional<std::string> hostname;
  std::optional<std::string> entrypoint;  // shell-split into the container's command
  std::optional<std::string> stop_signal;
  std::optional<std::string> stop_grace_period;
  std::optional<bool> tty;
  std::optional<bool> init;
  std::optional<bool> read_only;
  std::optional<std::string> oom_score_adj;

  std::optional<std::string> limit_cpu;
  std::optional<std::string> limit_memory;
  std::optional<std::string> limit_pids;
  std::optional<std::string> reserve_cpu;
  std::optional<std::string> reserve_memory;

  std::optional<std::string> restart_condition;
  std::optional<std::string> restart_delay;
  std::optional<std::string> restart_max_attempts;
  std::optional<std::string> restart_window;

  std::optional<std::string> update_parallelism;
  std::optional<std::string> update_delay;
  std::optional<std::string> update_failure_action;
  std::optional<std::string> update_monitor;
  std::optional<std::string> update_max_failure_ratio;
  std::optional<std::string> update_order;

  std::optional<std::string> rollback_parallelism;
  std::optional<std::string> rollback_delay;
  std::optional<std::string> rollback_failure_action;
  std::optional<std::string> rollback_monitor;
  std::optional<std::string> rollback_max_failure_ratio;
  std::optional<std::string> rollback_order;

  std::optional<std::string> endpoint_mode;
  std::optional<std::string> replicas_max_per_node;

  std::optional<std::string> health_cmd;
  std::optional<std::string> health_interval;
  std::optional<std::string> health_timeout;
  std::optional<std::string> health_retries;
  std::optional<std::string> health_start_period;
  std::optional<std::string> health_start_interval;
  bool no_healthcheck = false;

  std::optional<std::string> log_driver;
  std::vector<std::string> log_opts;

  std::vector<std::string> env;        // --env / --env-add
  std::vector<std::string> env_files;  // --env-file (create only)
  std::vector<std::string> labels;     // --label / --label-add
  std::vector<std::string> container_labels;
  std::vector<std::string> mounts;
  std::vector<std::string> publish;
  std::vector<std::string> networks;
  std::vector<std::string> constraints;
  std::vector<std::string> placement_prefs;
  std::vector<std::string> secrets;
  std::vector<std::string> configs;
  std::vector<std::string> dns;
  std::vector<std::string> dns_search;
  std::vector<std::string> dns_options;
  std::vector<std::string> hosts;
  std::vector<std::string> groups;
  std::vector<std::string> cap_add;
  std::vector<std::string> cap_drop;
  std::vector<std::string> ulimits;
  std::vector<std::string> sysctls;

  // Update only: --X-rm.
  std::vector<std::string> env_rm;              // keys
  std::vector<std::string> label_rm;            // keys
  std::vector<std::string> container_label_rm;  // keys
  std::vector<std::string> mount_rm;            // targets
  std::vector<std::string> publish_rm;          // [published:]target[/protocol] or long form
  std::vector<std::string> network_rm;          // names or IDs
  std::vector<std::string> constraint_rm;       // exact expressions
  std::vector<std::string> placement_pref_rm;   // spread=ATTRIBUTE
  std::vector<std::string> secret_rm;           // names or IDs
  std::vector<std::string> config_rm;           // names or IDs
  std::vector<std::string> dns_rm;
  std::vector<std::string> dns_search_rm;
  std::vector<std::string> dns_option_rm;
  std::vector<std::string> host_rm;  // HOSTNAME or HOSTNAME:IP
  std::vector<std::string> group_rm;
  std::vector<std::string> ulimit_rm;  // names
  std::vector<std::string> sysctl_rm;  // keys

  bool operator==(const ServiceFlags&) const = default;
};

// What building a spec may need from outside.
struct ServiceFlagEnv {
  // The client's environment (-e KEY, --env-file lines without a value).
  EnvLookup getenv;
  // Reads an --env-file, and Docker's config.json for --with-registry-auth.
  std::function<absl::StatusOr<std::string>(const std::string& path)> read_file;
  // Resolves a network name or ID to its ID, or returns "" when unknown. Optional; update
  // uses it to match --network-rm and duplicate --network-add values against attachments,
  // which hold IDs.
  std::function<std::string(const std::string& name_or_id)> network_id;
};

// The spec of `service create`. Unset policies stay unset (the cluster's defaults apply);
// setting any --update-* (--rollback-*) flag creates a config with Docker's parallelism of 1.
absl::StatusOr<api::ServiceSpec> BuildServiceSpec(const ServiceFlags& flags,
                                                  const ServiceFlagEnv& env);

// Applies `service update` flags to spec. On error spec may be partly modified; callers
// work on a copy.
absl::Status ApplyServiceUpdate(const ServiceFlags& flags, const ServiceFlagEnv& env,
                                api::ServiceSpec* spec);

// Fills secret_id and config_id of references that only have a name, from the secrets and
// configs that exist (matched by exact name, then by exact ID). NOT_FOUND "secret not
// found: NAME" when one does not exist.
absl::Status ResolveReferences(const std::vector<api::Secret>& secrets,
                               const std::vector<api::Config>& configs, api::ServiceSpec* spec);

}  // namespace swarm::cli

#endif  // SWARM_CLI_SERVICE_SPEC_H_

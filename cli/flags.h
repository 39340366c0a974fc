// Parsers for the values of swarmctl's flags, with Docker's syntax and semantics: Go durations,
// human sizes, CPU counts, published ports, mounts, environment variables, labels, secret and
// config references, restart/update/rollback policies. They are pure functions of their
// input (the environment is looked up through an injected function), so that the command
// layer stays thin and every accepted or rejected form is unit-tested.
//
// Every error is INVALID_ARGUMENT and reads
//   invalid <what> "<value>": <what is wrong> (expected <the accepted form>)
// where <what> is the flag's name without dashes (e.g. `publish`, `restart-delay`).
//
// Thread-safety: all functions are thread-safe (they hold no state).
#ifndef SWARM_CLI_FLAGS_H_
#define SWARM_CLI_FLAGS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "proto/specs.pb.h"
#include "proto/types.pb.h"

namespace swarm::cli {

// Looks up a variable of the client's environment (`-e KEY` without a value takes it from
// there, as Docker does); nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// The INVALID_ARGUMENT status every parser returns.
absl::Status InvalidFlag(absl::string_view what, absl::string_view value, absl::string_view problem,
                         absl::string_view expected);

// ---- Scalars ----

// Go's time.ParseDuration ("1h30m", "10s", "1.5h", "500ms", "2us", "0"); must not be negative.
absl::StatusOr<absl::Duration> ParseDuration(absl::string_view what, absl::string_view text);
// Go's Duration.String(): "1h30m0s", "500ms", "0s".
std::string FormatGoDuration(absl::Duration d);
// Stores d in a protobuf Duration, to the nanosecond.
void SetProtoDuration(absl::Duration d, google::protobuf::Duration* out);
// Docker's RAMInBytes: a number with an optional binary unit b, k, m, g, t, p (any case, an
// optional "b" or "ib" after it): "512k" = 524288, "1.5G", "50M", "1024".
absl::StatusOr<int64_t> ParseBytes(absl::string_view what, absl::string_view text);
// A number of CPUs as nano CPUs: "0.5" = 500000000, "2" = 2000000000 (at most 9 decimals).
absl::StatusOr<int64_t> ParseNanoCpus(absl::string_view what, absl::string_view text);
// A non-negative decimal integer.
absl::StatusOr<uint64_t> ParseUint(absl::string_view what, absl::string_view text);
// A decimal integer, possibly negative.
absl::StatusOr<int64_t> ParseInt(absl::string_view what, absl::string_view text);
// A fraction between 0 and 1 ("0.2").
absl::StatusOr<float> ParseRatio(absl::string_view what, absl::string_view text);
// Go's strconv.ParseBool: 1, t, T, TRUE, true, True and their false twins.
absl::StatusOr<bool> ParseBool(absl::string_view what, absl::string_view text);
// File permission bits as Go's strconv.ParseUint(s, 0, 32) reads them: "0444" and "0o444"
// are octal, "0x124" hexadecimal, "292" decimal.
absl::StatusOr<uint32_t> ParseFileMode(absl::string_view what, absl::string_view text);

// ---- Enumerations ----

// none | on-failure | any.
absl::StatusOr<api::RestartCondition> ParseRestartCondition(absl::string_view text);
// pause | continue | rollback (rollback only when allow_rollback; not in a rollback config).
absl::StatusOr<api::UpdateFailureAction> ParseFailureAction(absl::string_view what,
                                                            absl::string_view text,
                                                            bool allow_rollback);
// start-first | stop-first.
absl::StatusOr<api::UpdateOrder> ParseUpdateOrder(absl::string_view what, absl::string_view text);
// active | pause | drain.
absl::StatusOr<api::NodeAvailability> ParseAvailability(absl::string_view text);
// worker | manager.
absl::StatusOr<api::NodeRole> ParseRole(absl::string_view text);
// vip | dnsrr.
absl::StatusOr<api::ResolutionMode> ParseEndpointMode(absl::string_view text);

// ---- Structured values ----

// `--publish`: the short form [published:]target[/protocol] (ranges such as 8080-8081:80-81
// expand to one port each; a bare target publishes on a port the cluster picks) or the long
// form published=8080,target=80,protocol=tcp,mode=host.
absl::StatusOr<std::vector<api::PortConfig>> ParsePublish(absl::string_view text);
// `--mount`: comma-separated key=value fields: type (bind, volume (the default), tmpfs),
// source|src, target|dst|destination, readonly|ro[=bool], bind-propagation,
// bind-nonrecursive, volume-driver, volume-label, volume-opt, volume-nocopy, volume-subpath,
// tmpfs-size, tmpfs-mode.
absl::StatusOr<api::Mount> ParseMount(absl::string_view text);
// `--env`: "KEY=value" as is; a bare "KEY" takes the client's value, or stays "KEY" (unset
// in the container) when the client has none.
absl::StatusOr<std::string> ParseEnv(absl::string_view text, const EnvLookup& lookup);
// The lines of an `--env-file` (`name` is the file, for messages): KEY=value lines, comments
// (#) and blank lines skipped, bare KEY lines taken from the client's environment (dropped
// when it has none).
absl::StatusOr<std::vector<std::string>> ParseEnvFile(absl::string_view name,
                                                      absl::string_view contents,
                                                      const EnvLookup& lookup);
// The key of an environment entry: "A=1" -> "A".
std::string EnvKey(absl::string_view entry);
// `--label`-style KEY=value; a bare KEY has the empty value.
absl::StatusOr<std::pair<std::string, std::string>> ParseLabel(absl::string_view what,
                                                               absl::string_view text);
// KEY=value where the '=' is required (`--sysctl`, `--log-opt`, `--opt`).
absl::StatusOr<std::pair<std::string, std::string>> ParseKeyValue(absl::string_view what,
                                                                  absl::string_view text);
// `--secret`: NAME, or source=NAME,target=FILE,uid=,gid=,mode= (target defaults to the
// name, uid and gid to 0, mode to 0444). secret_id is left empty: the command layer
// resolves the name.
absl::StatusOr<api::SecretReference> ParseSecretReference(absl::string_view text);
// `--config`: as for secrets; a relative target is placed under "/" (the default target is
// /NAME).
absl::StatusOr<api::ConfigReference> ParseConfigReference(absl::string_view text);
// `--network`: NAME, or name=NAME,alias=ALIAS,driver-opt=K=V.
absl::StatusOr<api::NetworkAttachmentConfig> ParseNetworkAttachment(absl::string_view text);
// `--placement-pref`: spread=ATTRIBUTE.
absl::StatusOr<api::PlacementPreference> ParsePlacementPreference(absl::string_view text);
// `--ulimit`: NAME=SOFT[:HARD].
absl::StatusOr<api::Ulimit> ParseUlimit(absl::string_view text);
// `--host`: HOSTNAME:IP (or HOSTNAME=IP), returned as the /etc/hosts line "IP HOSTNAME".
absl::StatusOr<std::string> ParseExtraHost(absl::string_view text);
// A capability name as the runtime wants it: "net_admin" -> "CAP_NET_ADMIN"; "ALL" stays.
std::string NormalizeCapability(absl::string_view text);
// Splits a command line as a POSIX shell would (quotes, backslashes), without expansions
// (`--entrypoint`, `--args`, `--health-cmd` is not split).
absl::StatusOr<std::vector<std::string>> ShellSplit(absl::string_view what, absl::string_view text);

}  // namespace swarm::cli

#endif  // SWARM_CLI_FLAGS_H_

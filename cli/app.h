// swarmctl, the operator's command line, as a function: RunSwarmctl parses the arguments
// (Docker's command names and flags), talks to swarmd over gRPC (the node's unix socket by
// default, a manager over mutual TLS with --host) and prints what Docker prints. main() is a
// thin wrapper; tests call RunSwarmctl in-process with their own streams, environment and
// clock, against a fake server on a unix socket.
//
// Errors go to the error stream as "Error: <message>" and make the exit code 1; nothing the
// user types can crash the program (CLI11's exceptions are caught here).
//
// Thread-safety: RunSwarmctl may run on several threads at once with distinct Io values.
#ifndef SWARM_CLI_APP_H_
#define SWARM_CLI_APP_H_

#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/flags.h"
#include "common/clock.h"

namespace swarm::cli {

// The default control socket of swarmd.
inline constexpr char kDefaultSocket[] = "/var/run/swarmd.sock";
// swarmctl's own version.
inline constexpr char kVersion[] = "0.1.0";

// Everything the CLI touches outside itself; null members mean the process's own.
struct Io {
  std::istream* in = nullptr;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  // Whether `in` is a terminal (swarm unlock prompts and hides what is typed).
  bool in_is_terminal = false;
  // Whether `out` is a terminal (service progress is redrawn in place with bars).
  bool out_is_terminal = false;
  // The environment (SWARMCTL_SOCKET, SWARMCTL_HOST, SWARMCTL_TLS_DIR, HOME, -e KEY).
  EnvLookup getenv;
  // Prints the prompt and reads a line without echoing it; used when in_is_terminal.
  std::function<absl::StatusOr<std::string>(const std::string& prompt)> read_password;
  // Relative times ("5 seconds ago") are computed against this clock, and service progress
  // polls on it.
  Clock* clock = nullptr;
};

// Runs one command line (args without the program name); returns the exit code.
int RunSwarmctl(const std::vector<std::string>& args, const Io& io);

// The Io of the real process: standard streams, getenv, the terminal, the real clock.
Io ProcessIo();

}  // namespace swarm::cli

#endif  // SWARM_CLI_APP_H_

#include "cli/app.h"

#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <exception>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"

namespace swarm::cli {
namespace {

// "swarmctl service create": the commands the user got to before the error.
std::string CommandPath(const CLI::App& root) {
  std::vector<std::string> names = {"swarmctl"};
  const CLI::App* app = &root;
  while (true) {
    auto subs = app->get_subcommands();
    if (subs.empty()) break;
    app = subs.front();
    names.push_back(app->get_name());
  }
  return absl::StrJoin(names, " ");
}

std::string FromEnv(const Io& io, const char* name) {
  if (!io.getenv) return "";
  return io.getenv(name).value_or("");
}

int Run(const std::vector<std::string>& args, const Io& io) {
  CLI::App app{
      "swarmctl: manage a swarm of swarmd nodes with Docker's swarm mode commands.\n"
      "It talks to the local swarmd over " +
          std::string(kDefaultSocket) + " unless --socket or --host says otherwise.",
      "swarmctl"};
  app.fallthrough();  // global flags may follow the command
  app.set_version_flag("-v,--version", std::string("swarmctl version ") + kVersion,
                       "Print version information and quit");
  app.require_subcommand(1);
  GlobalOptions options;
  app.add_option("--socket", options.socket,
                 std::string("Unix socket of the local swarmd (env SWARMCTL_SOCKET; default ") +
                     kDefaultSocket + ")");
  app.add_option("-H,--host", options.host,
                 "Address of a manager to reach over TCP with mutual TLS (env SWARMCTL_HOST)");
  app.add_option("--tls-dir", options.tls_dir,
                 "Directory with ca.pem, cert.pem and key.pem for --host (env SWARMCTL_TLS_DIR; "
                 "default ~/.swarmctl)");

  CommandTree tree(&app);
  AddSwarmCommands(tree);
  AddNodeCommands(tree);
  AddServiceCommands(tree);
  AddObjectCommands(tree);
  AddInfoCommands(tree);

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e, *io.out, *io.err);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e, *io.out, *io.err);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e, *io.out, *io.err);
  } catch (const CLI::ParseError& e) {
    *io.err << "Error: " << e.what() << "\nSee '" << CommandPath(app) << " --help'.\n";
    return 1;
  }
  tree.AfterParse();

  if (!options.socket.empty() && !options.host.empty()) {
    *io.err << "Error: --socket and --host cannot be used together\n";
    return 1;
  }
  if (options.host.empty() && options.socket.empty()) options.host = FromEnv(io, "SWARMCTL_HOST");
  if (options.socket.empty()) options.socket = FromEnv(io, "SWARMCTL_SOCKET");
  if (options.socket.empty()) options.socket = kDefaultSocket;
  if (options.tls_dir.empty()) options.tls_dir = FromEnv(io, "SWARMCTL_TLS_DIR");
  if (options.tls_dir.empty()) options.tls_dir = FromEnv(io, "HOME") + "/.swarmctl";

  const Handler* handler = tree.Selected();
  if (handler == nullptr) {
    *io.err << "Error: a command is required\nSee '" << CommandPath(app) << " --help'.\n";
    return 1;
  }
  Session session(io, options);
  absl::Status status = (*handler)(session);
  if (!status.ok()) {
    if (!status.message().empty()) *io.err << "Error: " << status.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int RunSwarmctl(const std::vector<std::string>& args, const Io& given) {
  Io io = given;
  if (io.in == nullptr) io.in = &std::cin;
  if (io.out == nullptr) io.out = &std::cout;
  if (io.err == nullptr) io.err = &std::cerr;
  if (io.clock == nullptr) io.clock = &Clock::Real();
  // Nothing may escape: CLI11 throws, and so can the standard library on exhaustion.
  try {
    return Run(args, io);
  } catch (const std::exception& e) {
    *io.err << "Error: " << e.what() << "\n";
  } catch (...) {
    *io.err << "Error: unexpected failure\n";
  }
  return 1;
}

Io ProcessIo() {
  Io io;
  io.in = &std::cin;
  io.out = &std::cout;
  io.err = &std::cerr;
  io.in_is_terminal = isatty(STDIN_FILENO) == 1;
  io.out_is_terminal = isatty(STDOUT_FILENO) == 1;
  io.getenv = [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
  io.read_password = [](const std::string& prompt) -> absl::StatusOr<std::string> {
    std::cout << prompt << std::flush;
    termios saved;
    const bool terminal = tcgetattr(STDIN_FILENO, &saved) == 0;
    if (terminal) {
      termios quiet = saved;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    std::string line;
    std::getline(std::cin, line);
    if (terminal) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    std::cout << "\n";
    if (!std::cin && line.empty()) return absl::DataLossError("no input");
    return line;
  };
  io.clock = &Clock::Real();
  return io;
}

}  // namespace swarm::cli

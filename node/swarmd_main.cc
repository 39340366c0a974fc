// swarmd: the node daemon. Starts inactive (or resumes its stored state) and waits for
// `swarmctl swarm init|join` on its unix socket; SIGTERM or SIGINT stops it cleanly.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/logging.h"
#include "node/daemon.h"
#include "node/state.pb.h"

namespace swarm::node {
namespace {

int Main(int argc, char** argv) {
  DaemonConfig config;
  std::vector<std::string> labels;
  int tick_ms = 100;
  CLI::App app{"swarmd: the swarm node daemon (agent, and manager when the node is one)"};
  app.add_option("--state-dir", config.state_dir, "where the node keeps its state")
      ->capture_default_str();
  app.add_option("--socket", config.socket, "unix socket of the local API (swarmctl)")
      ->capture_default_str();
  app.add_option("--exec-root", config.exec_root,
                 "where running containers' small files live (best on a tmpfs); one per daemon")
      ->capture_default_str();
  app.add_option("--listen-addr", config.listen_addr, "address for cluster traffic (host:port)")
      ->capture_default_str();
  app.add_option("--advertise-addr", config.advertise_addr,
                 "address other nodes reach this one at (default: --listen-addr)");
  app.add_option("--hostname", config.hostname,
                 "hostname the node reports (default: the machine's)");
  app.add_option("--label", labels, "engine label KEY=VALUE the node reports (repeatable)");
  std::vector<std::string> insecure;
  app.add_option("--insecure-registry", insecure,
                 "registry (HOST:PORT) to pull images from over plain HTTP (repeatable)");
  app.add_option("--executor", config.executor,
                 "what runs tasks: container, or simulated (tests and benchmarks)")
      ->capture_default_str()
      ->check(CLI::IsMember({"container", "simulated"}));
  app.add_option("--restore", config.restore_file,
                 "start a new swarm from a backup (swarmctl swarm backup); a sealed backup "
                 "reads the unlock key from standard input");
  app.add_option("--tick-ms", tick_ms, "Raft tick interval in milliseconds (managers)")
      ->capture_default_str()
      ->check(CLI::Range(10, 10000));
  app.add_flag_callback(
      "--version",
      [] {
        std::cout << "swarmd " << kVersion << "\n";
        std::exit(0);
      },
      "print the version and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (const std::string& l : labels) {
    std::pair<std::string, std::string> kv = absl::StrSplit(l, absl::MaxSplits('=', 1));
    if (kv.first.empty()) {
      std::cerr << "swarmd: invalid --label \"" << l << "\": expected KEY=VALUE\n";
      return 2;
    }
    config.labels[kv.first] = kv.second;
  }
  config.insecure_registries.insert(insecure.begin(), insecure.end());
  config.tick_interval = absl::Milliseconds(tick_ms);
  if (!config.restore_file.empty()) {
    auto bytes = ReadFile(config.restore_file);
    Backup backup;
    if (bytes.ok() && backup.ParseFromString(*bytes) && backup.sealed()) {
      // The key comes from standard input, never from the command line.
      if (isatty(0)) std::cerr << "Enter unlock key: " << std::flush;
      std::getline(std::cin, config.restore_unlock_key);
    }
  }

  // Shims are forked by swarm-shim, beside swarmd; without it, by a fork of swarmd made
  // before the daemon grows.
  agent::runtime::ShimLauncher::Handle shim_launcher;
  if (config.executor == "container") {
    const std::string program = agent::runtime::ShimProgramBesideExecutable();
    if (program.empty()) {
      log::Warn("swarmd",
                "swarm-shim is not installed beside swarmd: shims are forked from swarmd, "
                "which costs more CPU per container");
    }
    absl::StatusOr<agent::runtime::ShimLauncher::Handle> launcher =
        agent::runtime::ShimLauncher::Start(program);
    if (!launcher.ok()) {
      std::cerr << "swarmd: " << launcher.status().message() << "\n";
      return 1;
    }
    shim_launcher = std::move(*launcher);
    config.shim_launcher = shim_launcher.get();
  }

  // Signals are taken synchronously by this thread; every other thread blocks them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Daemon daemon(config);
  if (absl::Status s = daemon.Start(); !s.ok()) {
    std::cerr << "swarmd: " << s.message() << "\n";
    return 1;
  }
  int sig = 0;
  sigwait(&stop, &sig);
  log::Info("swarmd", "stopping", {{"signal", sig}});
  daemon.Stop();
  return 0;
}

}  // namespace
}  // namespace swarm::node

int main(int argc, char** argv) { return swarm::node::Main(argc, argv); }

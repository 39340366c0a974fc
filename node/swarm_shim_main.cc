// swarm-shim: the program of swarmd's shim launcher (agent/runtime/shim.h), installed beside
// swarmd. A static binary, so that the fork of each shim and the shim's clone of its container
// copy a few dozen mappings rather than the hundreds of a process linked against Debian's
// shared libraries. swarmd starts it; it is not run by hand. Being static, it is also the
// container init of `--init` (agent/runtime/init.h): `swarm-shim -- COMMAND...`, mounted in the
// container as /sbin/docker-init.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string_view>

#include "absl/strings/numbers.h"
#include "agent/runtime/init.h"
#include "agent/runtime/shim.h"

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "--") {
    return swarm::agent::runtime::RunContainerInit(argv + 2);
  }
  constexpr int kControl = 3;  // the launcher's socket, as ShimLauncher::Start passes it
  pid_t daemon = 0;
  struct stat st;
  if (argc != 3 || std::string_view(argv[1]) != "launcher" || !absl::SimpleAtoi(argv[2], &daemon) ||
      fstat(kControl, &st) != 0 || !S_ISSOCK(st.st_mode)) {
    fprintf(stderr,
            "swarm-shim: swarmd starts this program itself, with its socket as fd 3; there is "
            "nothing to run by hand (usage: swarm-shim launcher DAEMON-PID)\n");
    return 2;
  }
  swarm::agent::runtime::RunShimLauncher(kControl, daemon);
}

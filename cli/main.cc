// swarmctl: the operator's command line (see app.h).
#include <string>
#include <vector>

#include "cli/app.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return swarm::cli::RunSwarmctl(args, swarm::cli::ProcessIo());
}

// `swarmctl completion bash`: a bash completion script derived from the command tree, so it
// always offers the commands and flags this swarmctl has. It completes command names at each
// level and the flags of the command typed so far (global flags everywhere).
//
// Thread-safety: pure.
#ifndef SWARM_CLI_COMPLETION_H_
#define SWARM_CLI_COMPLETION_H_

#include <CLI/CLI.hpp>
#include <string>

namespace swarm::cli {

std::string BashCompletion(const CLI::App& root);

}  // namespace swarm::cli

#endif  // SWARM_CLI_COMPLETION_H_

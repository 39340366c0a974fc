// The swarmctl binary as an operator runs it, for the end-to-end tests: one command line
// through sh, its exit code and what it printed (standard output and error together, as a
// terminal shows them). The tests share it so that they check the same thing a user sees.
//
// Thread-compatible: each call runs one child process and waits for it.
#ifndef SWARM_TESTS_E2E_SWARMCTL_RUNNER_H_
#define SWARM_TESTS_E2E_SWARMCTL_RUNNER_H_

#include <string>
#include <string_view>

namespace swarm::e2e {

struct CtlResult {
  int code = -1;    // exit code, or -1 when it did not exit normally
  std::string out;  // stdout and stderr
};

// Runs `cli/swarmctl <target> <args>` (the runfiles' binary) through sh: target is how to reach
// the swarm ("--socket PATH", "--host ADDR --tls-dir DIR"), args is shell text, quoted as on a
// command line. stdin_text is its standard input (empty: an empty pipe, never a terminal).
CtlResult RunSwarmctl(const std::string& target, const std::string& args,
                      const std::string& stdin_text = "");

// s as one word for sh, in single quotes.
std::string ShellQuote(std::string_view s);

}  // namespace swarm::e2e

#endif  // SWARM_TESTS_E2E_SWARMCTL_RUNNER_H_

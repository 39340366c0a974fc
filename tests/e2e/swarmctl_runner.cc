#include "tests/e2e/swarmctl_runner.h"

#include <sys/wait.h>

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace swarm::e2e {

std::string ShellQuote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

CtlResult RunSwarmctl(const std::string& target, const std::string& args,
                      const std::string& stdin_text) {
  const std::string cmd = absl::StrCat("printf '%s' ", ShellQuote(stdin_text), " | cli/swarmctl ",
                                       target, " ", args, " 2>&1");
  CtlResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace swarm::e2e

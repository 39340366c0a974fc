#include "agent/runtime/init.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace swarm::agent::runtime {

int RunContainerInit(char** argv) {
  if (argv[0] == nullptr) {
    fprintf(stderr, "docker-init: no command to run\n");
    return 127;
  }
  // Every signal is taken synchronously; the command starts with the mask it would have had.
  sigset_t all, before;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &before);
  const pid_t command = fork();
  if (command < 0) {
    fprintf(stderr, "docker-init: fork: %s\n", strerror(errno));
    return 127;
  }
  if (command == 0) {
    sigprocmask(SIG_SETMASK, &before, nullptr);
    execvp(argv[0], argv);
    fprintf(stderr, "docker-init: running %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  for (;;) {
    siginfo_t info;
    const int sig = sigwaitinfo(&all, &info);
    if (sig < 0) continue;  // EINTR
    if (sig != SIGCHLD) {
      kill(command, sig);
      continue;
    }
    int status = 0;
    for (pid_t done; (done = waitpid(-1, &status, WNOHANG)) > 0;) {
      if (done != command) continue;  // an orphan, reaped
      // What else is left dies with the PID namespace when we exit.
      return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
    }
  }
}

}  // namespace swarm::agent::runtime

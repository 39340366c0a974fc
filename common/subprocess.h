// Child processes for multi-process tests, benchmarks and demos: start a binary with its
// output appended to a log file, and stop it with SIGKILL or SIGTERM. The test harnesses of
// raftkv and swarmd share these.
//
// Thread-safety: the functions are thread-safe; a pid must be waited for by one caller.
#ifndef SWARM_COMMON_SUBPROCESS_H_
#define SWARM_COMMON_SUBPROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace swarm {

// Starts args[0] with args, its standard output and error appended to log_path.
pid_t Spawn(std::vector<std::string> args, const std::string& log_path);
// kill -9, then reaps it.
void KillProcess(pid_t pid);
// Waits up to timeout for pid to exit and returns its exit code (128 + signal when killed by
// one), or -1 when it is still running.
int WaitForExit(pid_t pid, absl::Duration timeout);
// SIGTERM, then WaitForExit; after timeout it is killed with SIGKILL and -1 is returned.
int TerminateProcess(pid_t pid, absl::Duration timeout = absl::Seconds(10));

}  // namespace swarm

#endif  // SWARM_COMMON_SUBPROCESS_H_

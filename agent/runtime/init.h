// The container init of `--init` (Docker's docker-init, tini): run as the container's PID 1
// in front of its command, it reaps every process that ends up its child (orphans a PID 1 that
// is an ordinary program would leave as zombies), hands the signals it gets to the command
// (SIGTERM from `stop` reaches it, where a PID 1 without a handler would ignore it), and exits
// as the command did. swarm-shim runs it when started as `swarm-shim -- COMMAND...`: the
// runtime mounts that static program into the container as /sbin/docker-init.
//
// Thread-safety: runs alone in its process.
#ifndef SWARM_AGENT_RUNTIME_INIT_H_
#define SWARM_AGENT_RUNTIME_INIT_H_

namespace swarm::agent::runtime {

// Runs argv[0] (looked up in PATH) with argv (null-terminated) and returns the exit code to
// exit with: the command's, 128 + the signal that ended it, or 127 when it cannot be run.
int RunContainerInit(char** argv);

}  // namespace swarm::agent::runtime

#endif  // SWARM_AGENT_RUNTIME_INIT_H_

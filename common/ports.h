// Picking ports for servers that tests and benchmarks start on loopback.
#ifndef SWARM_COMMON_PORTS_H_
#define SWARM_COMMON_PORTS_H_

namespace swarm {

// A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's choice). Another
// process could take it before the caller binds it; use it for servers whose address must be
// known before they start (Raft members that must name each other).
int FreeLoopbackPort();

}  // namespace swarm

#endif  // SWARM_COMMON_PORTS_H_

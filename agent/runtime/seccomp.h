// The default seccomp profile of containers, with Docker's semantics: an allow list, EPERM
// for every other system call, argument filters where Docker has them (clone without
// namespace flags, personality values, socket families), and the groups of calls that an
// added capability unlocks (mount and unshare with CAP_SYS_ADMIN, ptrace with
// CAP_SYS_PTRACE, ...). One deliberate difference: Docker allows ptrace on kernels >= 4.8;
// we keep it behind CAP_SYS_PTRACE, as Docker did before 19.03, so that a process cannot
// inspect its neighbours without being granted that capability.
//
// The profile is compiled once into a classic BPF program (libseccomp does the compiling);
// the program is plain bytes, so the runtime caches it per capability set and a container's
// init loads it with one prctl() right before execve. Thread-safety: free functions without
// shared state.
#ifndef SWARM_AGENT_RUNTIME_SECCOMP_H_
#define SWARM_AGENT_RUNTIME_SECCOMP_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace swarm::agent::runtime {

// Changes whenever the profile's rules change (it names cached compiled programs).
inline constexpr int kSeccompProfileVersion = 1;

// "2.5.4": libseccomp's version, which also shapes the compiled program.
std::string SeccompLibraryVersion();

// `capabilities` are the container's effective capabilities by name ("CAP_SYS_ADMIN").
// Returns the BPF program (an array of struct sock_filter) as bytes.
absl::StatusOr<std::string> CompileDefaultSeccompProfile(
    const std::vector<std::string>& capabilities);

// Installs a program from CompileDefaultSeccompProfile on the calling thread. Needs
// no_new_privs or CAP_SYS_ADMIN. Async-signal-safe (used between clone and execve).
int LoadSeccompProgram(const std::string& program);

}  // namespace swarm::agent::runtime

#endif  // SWARM_AGENT_RUNTIME_SECCOMP_H_

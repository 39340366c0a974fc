// Per-thread CPU priority. Linux applies the nice value to each thread, so a process can keep
// its few latency-critical threads (a Raft member's loop, ticker, senders and receivers)
// ahead of its busy ones: on a saturated host, a heartbeat that waits behind assignment
// fan-out or TLS handshakes makes a healthy cluster elect a new leader.
//
// Raising a priority (a negative nice) needs CAP_SYS_NICE; without it the thread keeps its
// priority and the error says so. Thread-safe: each call acts on the calling thread only.
#ifndef SWARM_COMMON_THREAD_PRIORITY_H_
#define SWARM_COMMON_THREAD_PRIORITY_H_

#include "absl/status/status.h"

namespace swarm {

// The nice value of the raft threads.
inline constexpr int kRaftThreadNice = -10;

// Sets the calling thread's nice value (-20..19).
absl::Status SetThreadNice(int nice);
// The calling thread's nice value.
int ThreadNice();

// Sets the calling thread's nice value for a scope (a pooled thread serving one long call)
// and restores it at the end, so the pool's thread goes back as it was. Errors are ignored:
// a thread that cannot be raised keeps working at its priority.
class ScopedThreadNice {
 public:
  explicit ScopedThreadNice(int nice) : before_(ThreadNice()) { (void)SetThreadNice(nice); }
  ~ScopedThreadNice() { (void)SetThreadNice(before_); }
  ScopedThreadNice(const ScopedThreadNice&) = delete;
  ScopedThreadNice& operator=(const ScopedThreadNice&) = delete;

 private:
  const int before_;
};

}  // namespace swarm

#endif  // SWARM_COMMON_THREAD_PRIORITY_H_

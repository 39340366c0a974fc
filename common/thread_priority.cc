#include "common/thread_priority.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"

namespace swarm {
namespace {

id_t ThreadId() { return static_cast<id_t>(syscall(SYS_gettid)); }

}  // namespace

absl::Status SetThreadNice(int nice) {
  if (setpriority(PRIO_PROCESS, ThreadId(), nice) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("setting the thread's nice value to ", nice,
                                             " (raising it needs CAP_SYS_NICE)"));
  }
  return absl::OkStatus();
}

int ThreadNice() {
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, ThreadId());
  return errno == 0 ? nice : 0;
}

}  // namespace swarm

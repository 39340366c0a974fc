#include "agent/runtime/fsutil.h"

#include <errno.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/errno_status.h"

namespace swarm::agent::runtime {

absl::Status RemoveAll(const std::string& path) {
  if (access(path.c_str(), F_OK) != 0) return absl::OkStatus();
  int rc = nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int type, FTW*) -> int {
        int r = (type == FTW_DP) ? rmdir(p) : unlink(p);
        return (r != 0 && errno != ENOENT) ? -1 : 0;
      },
      64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  if (rc != 0) return ErrnoToStatus(errno, absl::StrCat("removing ", path));
  return absl::OkStatus();
}

absl::Status MkdirAll(const std::string& path, mode_t mode) {
  std::string cur = path[0] == '/' ? "" : ".";
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    cur = absl::StrCat(cur, "/", std::string(part));
    if (mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) {
      return ErrnoToStatus(errno, absl::StrCat("creating directory ", cur));
    }
  }
  return absl::OkStatus();
}

uint64_t ProcessStartTime(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat;
  if (!std::getline(in, stat)) return 0;
  // The command name may contain spaces and parentheses; fields resume after the last ')'.
  size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 > stat.size()) return 0;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
  uint64_t start = 0;
  // Field 22 overall is index 19 after "pid (comm)".
  if (fields.size() > 19) (void)absl::SimpleAtoi(fields[19], &start);
  return start;
}

}  // namespace swarm::agent::runtime

#include "common/sysctl.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace swarm {

absl::Status CheckContainerSysctl(const std::string& key, bool host_network) {
  static constexpr const char* kIpc[] = {"kernel.msgmax", "kernel.msgmnb",         "kernel.msgmni",
                                         "kernel.sem",    "kernel.shmall",         "kernel.shmmax",
                                         "kernel.shmmni", "kernel.shm_rmid_forced"};
  for (const char* k : kIpc) {
    if (key == k) return absl::OkStatus();
  }
  if (absl::StartsWith(key, "fs.mqueue.") || key == "kernel.domainname") return absl::OkStatus();
  if (absl::StartsWith(key, "net.")) {
    if (!host_network) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("sysctl ", key,
                     " would change the host: a service on the host network has no network "
                     "namespace of its own (leave out --sysctl ",
                     key, " or use another network)"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "sysctl ", key,
      " is not namespaced: a container may set only net.*, fs.mqueue.*, "
      "kernel.domainname and the IPC parameters kernel.msgmax, kernel.msgmnb, kernel.msgmni, "
      "kernel.sem, kernel.shmall, kernel.shmmax, kernel.shmmni and kernel.shm_rmid_forced"));
}

}  // namespace swarm

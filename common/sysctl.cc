#include "common/sysctl.h"

#include <filesystem>

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

absl::Status CheckContainerMountTarget(const std::string& target) {
  const std::string normal = std::filesystem::path(target).lexically_normal().string();
  if (normal == "/proc" || normal == "/proc/" || absl::StartsWith(normal, "/proc/")) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot mount at ", target, ": /proc belongs to the container's runtime"));
  }
  return absl::OkStatus();
}

}  // namespace swarm

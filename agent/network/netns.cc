#include "agent/network/netns.h"

#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/errno_status.h"

namespace swarm::agent::network {

ScopedFd& ScopedFd::operator=(ScopedFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.Release();
  }
  return *this;
}

ScopedFd::~ScopedFd() {
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<ScopedFd> OpenNetns(std::string_view path) {
  std::string p = path.empty() ? std::string("/proc/thread-self/ns/net") : std::string(path);
  int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening network namespace ", p));
  return ScopedFd(fd);
}

absl::Status RunInNetns(int netns_fd, const std::function<absl::Status()>& fn) {
  absl::Status status;
  // A thread of its own: setns(CLONE_NEWNET) changes only the calling thread, which then
  // ends, so no other code ever runs in the wrong namespace.
  std::thread worker([&] {
    pthread_setname_np(pthread_self(), "netns-run");
    if (setns(netns_fd, CLONE_NEWNET) != 0) {
      status = ErrnoToStatus(errno, "joining a network namespace (setns)");
      return;
    }
    status = fn();
  });
  worker.join();
  return status;
}

namespace {

absl::Status SetLoopbackUp() {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return ErrnoToStatus(errno, "opening a socket to bring lo up");
  ifreq req{};
  std::snprintf(req.ifr_name, IFNAMSIZ, "lo");
  absl::Status status;
  if (ioctl(s, SIOCGIFFLAGS, &req) != 0) {
    status = ErrnoToStatus(errno, "reading the flags of lo");
  } else {
    req.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &req) != 0) status = ErrnoToStatus(errno, "bringing lo up");
  }
  close(s);
  return status;
}

}  // namespace

absl::Status CreateNamedNetns(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("creating ", path));
  close(fd);
  absl::Status status;
  std::thread worker([&] {
    pthread_setname_np(pthread_self(), "netns-create");
    if (unshare(CLONE_NEWNET) != 0) {
      status = ErrnoToStatus(errno, "creating a network namespace (unshare)");
      return;
    }
    if (mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0) {
      status = ErrnoToStatus(errno, absl::StrCat("bind-mounting a network namespace on ", path));
      return;
    }
    status = SetLoopbackUp();
  });
  worker.join();
  if (!status.ok()) {
    umount2(path.c_str(), MNT_DETACH);
    unlink(path.c_str());
  }
  return status;
}

absl::Status DeleteNamedNetns(const std::string& path) {
  if (access(path.c_str(), F_OK) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("removing network namespace ", path));
  }
  // EINVAL: not a mount point (a file left by a crash between create and mount).
  if (umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
    return ErrnoToStatus(errno, absl::StrCat("unmounting network namespace ", path));
  }
  if (unlink(path.c_str()) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("removing ", path));
  }
  return absl::OkStatus();
}

bool IsNetnsMount(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // "36 35 0:4 net:[4026532] /run/swarmd/netns/ov-x rw shared:1 - nsfs nsfs rw"
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() < 5 || f[4] != path) continue;
    for (size_t i = 5; i + 1 < f.size(); ++i) {
      if (f[i] == "-") return f[i + 1] == "nsfs";
    }
  }
  return false;
}

absl::Status WriteSysctl(int netns_fd, const std::string& key, const std::string& value) {
  auto write_it = [&]() -> absl::Status {
    const std::string path = "/proc/sys/" + key;
    const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoToStatus(errno, "opening " + path);
    const bool ok = write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
    const int error = errno;
    close(fd);
    if (!ok) return ErrnoToStatus(error, "writing " + value + " to " + path);
    return absl::OkStatus();
  };
  if (netns_fd < 0) return write_it();
  return RunInNetns(netns_fd, write_it);
}

}  // namespace swarm::agent::network

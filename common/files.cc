#include "common/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"

namespace swarm {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "opening " + path);
  std::string data;
  char buf[16384];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      close(fd);
      return ErrnoToStatus(err, "reading " + path);
    }
    data.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return data;
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view data, mode_t mode,
                                 bool sync) {
  // The PID and a counter keep two processes, or two threads, replacing the same file from
  // sharing a temporary file (one's rename would take the other's away).
  static std::atomic<uint64_t> writes{0};
  const std::string tmp =
      absl::StrCat(path, ".tmp.", getpid(), ".", writes.fetch_add(1, std::memory_order_relaxed));
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoToStatus(errno, "creating " + tmp);
  auto fail = [&](const std::string& what) {
    const int err = errno;
    close(fd);
    unlink(tmp.c_str());
    return ErrnoToStatus(err, what);
  };
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("writing " + tmp);
    }
    off += static_cast<size_t>(n);
  }
  if (sync && fsync(fd) != 0) return fail("syncing " + tmp);
  if (close(fd) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return ErrnoToStatus(err, "writing " + tmp);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return ErrnoToStatus(err, "replacing " + path);
  }
  return absl::OkStatus();
}

}  // namespace swarm

#include "agent/runtime/container.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "agent/runtime/seccomp.h"
#include "common/errno_status.h"
#include "common/status_macros.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

namespace swarm::agent::runtime {
namespace {

constexpr const char* kDefaultCapabilities[] = {
    "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
    "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_KILL",    "CAP_AUDIT_WRITE",
};

// Docker's masked and read-only paths.
constexpr const char* kMaskedPaths[] = {
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
};
constexpr const char* kReadOnlyPaths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

struct DeviceNode {
  const char* path;
  unsigned major, minor;
};
constexpr DeviceNode kDevices[] = {
    {"/dev/null", 1, 3},   {"/dev/zero", 1, 5},    {"/dev/full", 1, 7},
    {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0},
};

// Fields of struct clone_args (linux/sched.h) that we use; declared here because that
// header clashes with glibc's <sched.h>.
struct CloneArgs {
  uint64_t flags;
  uint64_t pidfd;
  uint64_t child_tid;
  uint64_t parent_tid;
  uint64_t exit_signal;
  uint64_t stack;
  uint64_t stack_size;
  uint64_t tls;
  uint64_t set_tid;
  uint64_t set_tid_size;
  uint64_t cgroup;
};

struct Message {
  int step;
  char text[1020];
};

absl::Status SendStep(int fd, int step, std::string_view text = {}) {
  Message m{};
  m.step = step;
  size_t n = std::min(text.size(), sizeof(m.text) - 1);
  memcpy(m.text, text.data(), n);
  if (send(fd, &m, sizeof(int) + n + 1, MSG_NOSIGNAL) < 0) {
    return ErrnoToStatus(errno, absl::StrCat("sending handshake step ", step));
  }
  return absl::OkStatus();
}

// Returns the step received, 0 on EOF, or -1 with `text` holding the peer's error.
int ReceiveStep(int fd, std::string* text) {
  Message m{};
  ssize_t n;
  do {
    n = recv(fd, &m, sizeof m, 0);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return 0;
  m.text[sizeof(m.text) - 1] = '\0';
  if (text != nullptr) *text = m.text;
  return m.step;
}

std::string OverlayOptions(const ContainerSpec& spec, const ContainerPaths& paths) {
  return absl::StrCat("lowerdir=", absl::StrJoin(spec.lower_dirs, ":"), ",upperdir=", paths.upper,
                      ",workdir=", paths.work);
}

// ---------------------------------------------------------------------------------------
// The child. Everything below runs in the new namespaces, between clone and execve. Errors
// go to the parent over the handshake socket and end the process.

class Child {
 public:
  Child(const CreateRequest& r, int sock, bool join_cgroup_ns)
      : r_(r), spec_(*r.spec), sock_(sock), unshare_cgroup_ns_(join_cgroup_ns) {}

  [[noreturn]] void Run() {
    UnblockSignals();
    // With a user namespace nothing can be set up before the id maps exist; otherwise the
    // mounts below overlap with the parent moving us into our cgroups (on cgroup v1 each
    // move can wait for an RCU grace period), and step 1 is awaited just before step 2.
    const bool configured_first = spec_.user_namespace;
    if (configured_first) {
      AwaitConfigured();
      // Become the namespace's root (the host's userns_host_id); until now we were the
      // host's root, which the namespace cannot map.
      prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
      if (setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0) {
        Fail(errno, "becoming root of the user namespace");
      }
    }
    Check(SetUpStdio(), "setting up stdio");
    JoinNetworkNamespace();
    MountRootfs();
    MountSpecialFilesystems();
    MountUserMounts();
    MountSecretFiles();
    if (!spec_.hostname.empty() && sethostname(spec_.hostname.data(), spec_.hostname.size()) != 0) {
      Fail(errno, "setting hostname");
    }
    int fifo = open(r_.paths.exec_fifo.c_str(), O_PATH | O_CLOEXEC);
    if (fifo < 0) Fail(errno, absl::StrCat("opening ", r_.paths.exec_fifo));
    PivotRoot();
    SetKernelParameters();  // before MaskPaths makes /proc/sys read-only
    MaskPaths();
    if (spec_.read_only_rootfs &&
        mount(nullptr, "/", nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
      Fail(errno, "remounting the rootfs read-only");
    }
    ResolveUser();
    ChangeDirectory();
    std::string path = ResolveCommand(spec_.args);
    SetRlimits();
    if (setsid() < 0) Fail(errno, "creating a session");
    if (spec_.tty && ioctl(0, TIOCSCTTY, 0) != 0) Fail(errno, "taking the terminal");
    if (!configured_first) AwaitConfigured();
    // In our cgroup now: a cgroup namespace made here is rooted at it (v1; on v2 clone3 made
    // one already).
    if (unshare_cgroup_ns_ && unshare(CLONE_NEWCGROUP) != 0) Fail(errno, "unsharing cgroup ns");
    Check(SendStep(sock_, 2), "sending step 2");

    // Step 3: blocks until Runtime::Start opens the fifo for reading.
    int w = open(absl::StrCat("/proc/self/fd/", fifo).c_str(), O_WRONLY | O_CLOEXEC);
    if (w < 0) Fail(errno, "opening the exec fifo");
    if (write(w, "0", 1) != 1) Fail(errno, "writing the exec fifo");
    close(w);
    close(fifo);

    DropPrivileges();
    if (spec_.no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
      Fail(errno, "setting no_new_privs");
    }
    if (r_.seccomp_program != nullptr && LoadSeccompProgram(*r_.seccomp_program) != 0) {
      Fail(errno, "loading the seccomp filter");
    }
    std::vector<char*> argv, envp;
    for (const auto& a : spec_.args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (const auto& e : spec_.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    execve(path.c_str(), argv.data(), envp.data());
    Fail(errno, absl::StrCat("executing ", path));
  }

  // Runs `args` as the container's process would run (user, directory, capabilities,
  // no_new_privs, seccomp); the caller has already joined the container's namespaces.
  [[noreturn]] void Exec(const std::vector<std::string>& args) {
    UnblockSignals();
    ResolveUser();
    ChangeDirectory();
    std::string path = ResolveCommand(args);
    DropPrivileges();
    if (spec_.no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
      Fail(errno, "setting no_new_privs");
    }
    if (r_.seccomp_program != nullptr && LoadSeccompProgram(*r_.seccomp_program) != 0) {
      Fail(errno, "loading the seccomp filter");
    }
    std::vector<char*> argv, envp;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (const auto& e : spec_.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    execve(path.c_str(), argv.data(), envp.data());
    Fail(errno, absl::StrCat("executing ", path));
  }

 private:
  // The shim blocks SIGCHLD for its signalfd; a container's processes start with none
  // blocked.
  static void UnblockSignals() {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
  }
  void AwaitConfigured() {
    std::string text;
    if (ReceiveStep(sock_, &text) != 1) _exit(127);  // the parent gave up
  }
  [[noreturn]] void Fail(int err, const std::string& what) {
    std::string msg(ErrnoToStatus(err, what).message());
    if (sock_ >= 0) {
      (void)SendStep(sock_, -1, msg);
    } else {
      msg += "\n";
      (void)!write(2, msg.data(), msg.size());
    }
    _exit(127);
  }
  void Check(const absl::Status& s, const std::string& what) {
    if (!s.ok()) {
      (void)SendStep(sock_, -1, absl::StrCat(what, ": ", std::string(s.message())));
      _exit(127);
    }
  }
  void Mount(const std::string& source, const std::string& target, const char* type,
             unsigned long flags, const std::string& data = "") {
    if (mount(source.c_str(), target.c_str(), type, flags, data.empty() ? nullptr : data.c_str()) !=
        0) {
      Fail(errno, absl::StrCat("mounting ", type ? type : source, " at ", target));
    }
  }
  void MkdirAll(const std::string& path, mode_t mode = 0755) {
    std::string cur;
    for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
      cur = absl::StrCat(cur, "/", std::string(part));
      if (mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) {
        Fail(errno, absl::StrCat("creating directory ", cur));
      }
    }
  }
  absl::Status SetUpStdio() {
    int fds[3] = {r_.stdin_fd, r_.stdout_fd, r_.stderr_fd};
    for (int i = 0; i < 3; ++i) {
      if (fds[i] >= 0 && dup2(fds[i], i) < 0) return ErrnoToStatus(errno, "dup2");
    }
    return absl::OkStatus();
  }

  void JoinNetworkNamespace() {
    if (spec_.network != NetworkMode::kPath) return;
    int fd = open(spec_.netns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) Fail(errno, absl::StrCat("opening network namespace ", spec_.netns_path));
    if (setns(fd, CLONE_NEWNET) != 0) Fail(errno, "joining the network namespace");
    close(fd);
  }

  void MountRootfs() {
    // Nothing we mount from here on may leak back to the host.
    Mount("", "/", nullptr, MS_REC | MS_PRIVATE);
    // With a user namespace the shim mounted the overlay already (see
    // CreateContainerProcess); the container's root could not.
    // It is locked into this namespace (it came from a more privileged one), and
    // pivot_root refuses a locked root: a bind of it onto itself is ours.
    if (spec_.user_namespace) {
      Mount(r_.paths.rootfs, r_.paths.rootfs, nullptr, MS_BIND | MS_REC);
      return;
    }
    Mount("overlay", r_.paths.rootfs, "overlay", 0, OverlayOptions(*r_.spec, r_.paths));
  }

  // Makes `target` (an absolute path inside the container) exist, as a directory or an
  // empty file, and returns a path that names it for mount(2): /proc/self/fd/N of an O_PATH
  // descriptor. Every component is resolved with RESOLVE_IN_ROOT, so symbolic links in the
  // image (an absolute "/etc" or "../../..") stay inside the rootfs instead of reaching the
  // host's files. Resolve again after mounting on it to name the new mount.
  std::string InRoot(const std::string& target, bool directory, int depth = 0) {
    if (depth > 40) Fail(ELOOP, absl::StrCat("resolving ", target, " in the rootfs"));
    if (root_fd_ < 0) {
      root_fd_ = open(r_.paths.rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (root_fd_ < 0) Fail(errno, "opening the rootfs");
    }
    std::vector<std::string> parts = absl::StrSplit(target, '/', absl::SkipEmpty());
    std::string rel = ".";
    int fd = -1;
    for (size_t i = 0; i < parts.size(); ++i) {
      const bool last = i + 1 == parts.size();
      std::string next = rel == "." ? parts[i] : absl::StrCat(rel, "/", parts[i]);
      fd = OpenInRoot(next);
      if (fd < 0 && errno == ENOENT) {
        int parent = OpenInRoot(rel);
        if (parent < 0) Fail(errno, absl::StrCat("resolving ", rel, " in the rootfs"));
        // A dangling link: follow it by hand, still inside the rootfs (RESOLVE_IN_ROOT
        // clamps "..", an absolute target starts at the rootfs), creating what it names.
        char link[PATH_MAX];
        ssize_t n = readlinkat(parent, parts[i].c_str(), link, sizeof link - 1);
        if (n > 0) {
          close(parent);
          link[n] = '\0';
          std::string rest;
          for (size_t j = i + 1; j < parts.size(); ++j) absl::StrAppend(&rest, "/", parts[j]);
          std::string via =
              link[0] == '/' ? absl::StrCat(link, rest) : absl::StrCat("/", rel, "/", link, rest);
          return InRoot(via, directory, depth + 1);
        }
        if (!last || directory) {
          if (mkdirat(parent, parts[i].c_str(), 0755) != 0 && errno != EEXIST) {
            Fail(errno, absl::StrCat("creating ", target, " in the rootfs"));
          }
        } else {
          int f =
              openat(parent, parts[i].c_str(), O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
          if (f < 0 && errno != EEXIST) Fail(errno, absl::StrCat("creating ", target));
          if (f >= 0) close(f);
        }
        close(parent);
        fd = OpenInRoot(next);
      }
      if (fd < 0) Fail(errno, absl::StrCat("resolving ", target, " in the rootfs"));
      if (!last) close(fd);
      rel = next;
    }
    if (fd < 0) fd = OpenInRoot(".");
    held_.push_back(fd);  // closed by execve (O_CLOEXEC)
    return absl::StrCat("/proc/self/fd/", fd);
  }
  int OpenInRoot(const std::string& rel) {
    open_how how{};
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    return static_cast<int>(syscall(SYS_openat2, root_fd_, rel.c_str(), &how, sizeof how));
  }

  void MountSpecialFilesystems() {
    Mount("proc", InRoot("/proc", true), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC);
    const unsigned long ro = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY;
    if (spec_.network == NetworkMode::kNone || !spec_.user_namespace) {
      Mount("sysfs", InRoot("/sys", true), "sysfs", ro);
    } else {
      // sysfs needs the network namespace's owner; a user namespace on the host network
      // gets a read-only bind of the host's instead.
      Mount("/sys", InRoot("/sys", true), nullptr, MS_BIND | MS_REC);
      Mount("", InRoot("/sys", true), nullptr, MS_BIND | MS_REMOUNT | ro);
    }
    if (DetectCgroupVersion() == CgroupVersion::kV2) {
      Mount("cgroup2", InRoot("/sys/fs/cgroup", true), "cgroup2", ro);
    }
    Mount("tmpfs", InRoot("/dev", true), "tmpfs", MS_NOSUID | MS_STRICTATIME,
          "mode=755,size=65536k");
    // Our own tmpfs from here on: no links of the image's under /dev any more.
    int dev = open(InRoot("/dev", true).c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (dev < 0) Fail(errno, "opening the container's /dev");
    for (const DeviceNode& d : kDevices) {
      const char* name = d.path + 5;  // after "/dev/"
      if (spec_.user_namespace) {
        Mount(d.path, InRoot(d.path, false), nullptr, MS_BIND);
      } else if (mknodat(dev, name, S_IFCHR | 0666, makedev(d.major, d.minor)) != 0) {
        Fail(errno, absl::StrCat("creating device ", d.path));
      } else {
        (void)!fchmodat(dev, name, 0666, 0);  // mknod honours the umask
      }
    }
    Mount("devpts", InRoot("/dev/pts", true), "devpts", MS_NOSUID | MS_NOEXEC,
          spec_.user_namespace ? "newinstance,ptmxmode=0666,mode=0620"
                               : "newinstance,ptmxmode=0666,mode=0620,gid=5");
    Mount("shm", InRoot("/dev/shm", true), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
          "mode=1777,size=65536k");
    Mount("mqueue", InRoot("/dev/mqueue", true), "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC);
    const std::pair<const char*, const char*> links[] = {
        {"/proc/self/fd", "fd"},       {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
        {"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"},         {"/proc/kcore", "core"},
    };
    for (const auto& [target, link] : links) {
      if (symlinkat(target, dev, link) != 0) Fail(errno, absl::StrCat("creating /dev/", link));
    }
    close(dev);
  }

  void MountUserMounts() {
    for (size_t i = 0; i < spec_.mounts.size(); ++i) {
      const MountSpec& m = spec_.mounts[i];
      if (m.type == MountSpec::Type::kTmpfs) {
        std::string data = "mode=1777";
        if (m.tmpfs_size_bytes > 0) absl::StrAppend(&data, ",size=", m.tmpfs_size_bytes);
        Mount("tmpfs", InRoot(m.target, true), "tmpfs",
              MS_NOSUID | MS_NODEV | (m.read_only ? MS_RDONLY : 0), data);
        continue;
      }
      const std::string& source = r_.mount_sources[i];
      struct stat st;
      if (stat(source.c_str(), &st) != 0) Fail(errno, absl::StrCat("inspecting ", source));
      Mount(source, InRoot(m.target, S_ISDIR(st.st_mode)), nullptr, MS_BIND | MS_REC);
      if (m.read_only) {
        Mount("", InRoot(m.target, S_ISDIR(st.st_mode)), nullptr,
              MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV);
      }
    }
  }

  // Each file is written on a private tmpfs, then bind-mounted read-only onto its target;
  // the data never reaches a disk.
  void MountSecretFiles() {
    if (spec_.files.empty()) return;
    const std::string& staging = r_.paths.staging;
    MkdirAll(staging);
    Mount("tmpfs", staging, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=700");
    for (size_t i = 0; i < spec_.files.size(); ++i) {
      const FileSpec& f = spec_.files[i];
      std::string tmp = absl::StrCat(staging, "/", i);
      int fd = open(tmp.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, f.mode);
      if (fd < 0) Fail(errno, absl::StrCat("writing secret file for ", f.target));
      if (write(fd, f.data.data(), f.data.size()) != static_cast<ssize_t>(f.data.size())) {
        Fail(errno, absl::StrCat("writing secret file for ", f.target));
      }
      close(fd);
      if (chmod(tmp.c_str(), f.mode) != 0 || chown(tmp.c_str(), f.uid, f.gid) != 0) {
        Fail(errno, absl::StrCat("setting owner of secret file for ", f.target));
      }
      Mount(tmp, InRoot(f.target, false), nullptr, MS_BIND);
      Mount("", InRoot(f.target, false), nullptr,
            MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (f.read_only ? MS_RDONLY : 0));
    }
  }

  void PivotRoot() {
    if (chdir(r_.paths.rootfs.c_str()) != 0) Fail(errno, "entering the rootfs");
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves
    // the new root alone without a temporary directory (runc's trick).
    if (syscall(SYS_pivot_root, ".", ".") != 0) Fail(errno, "pivot_root");
    if (umount2(".", MNT_DETACH) != 0) Fail(errno, "detaching the old root");
    if (chdir("/") != 0) Fail(errno, "entering /");
  }

  // The sysctls (namespaced: Runtime::Create checked).
  void SetKernelParameters() {
    for (const auto& [key, value] : spec_.sysctls) {
      WriteProcFile(absl::StrCat("/proc/sys/", absl::StrReplaceAll(key, {{".", "/"}})), value,
                    absl::StrCat("setting sysctl ", key));
    }
  }

  void WriteProcFile(const std::string& path, const std::string& value, const std::string& what) {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) Fail(errno, what);
    if (write(fd, value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
      Fail(errno, what);
    }
    close(fd);
  }

  void MaskPaths() {
    for (const char* p : kMaskedPaths) {
      struct stat st;
      if (stat(p, &st) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        Mount("tmpfs", p, "tmpfs", MS_RDONLY);
      } else {
        Mount("/dev/null", p, nullptr, MS_BIND);
      }
    }
    for (const char* p : kReadOnlyPaths) {
      if (access(p, F_OK) != 0) continue;
      Mount(p, p, nullptr, MS_BIND | MS_REC);
      Mount(p, p, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
    }
  }

  // Looks `name` up in the container's /etc/<file> ("name:x:id:..."): the numeric id or -1.
  static long LookupId(const char* file, const std::string& name, long* gid_out = nullptr) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
      std::vector<std::string> f = absl::StrSplit(line, ':');
      if (f.size() < 3 || f[0] != name) continue;
      long id = -1;
      if (!absl::SimpleAtoi(f[2], &id)) return -1;
      if (gid_out != nullptr && f.size() > 3) (void)absl::SimpleAtoi(f[3], gid_out);
      return id;
    }
    return -1;
  }

  void ResolveUser() {
    ResolveGroups();
    if (spec_.user.empty()) return;
    std::vector<std::string> parts = absl::StrSplit(spec_.user, absl::MaxSplits(':', 1));
    long uid = -1, gid = -1;
    if (!absl::SimpleAtoi(parts[0], &uid)) {
      uid = LookupId("/etc/passwd", parts[0], &gid);
      if (uid < 0) Fail(ENOENT, absl::StrCat("looking up user ", parts[0]));
    } else {
      std::ifstream in("/etc/passwd");
      std::string line;
      while (std::getline(in, line)) {
        std::vector<std::string> f = absl::StrSplit(line, ':');
        long id;
        if (f.size() > 3 && absl::SimpleAtoi(f[2], &id) && id == uid) {
          (void)absl::SimpleAtoi(f[3], &gid);
          break;
        }
      }
    }
    if (parts.size() > 1 && !absl::SimpleAtoi(parts[1], &gid)) {
      gid = LookupId("/etc/group", parts[1]);
      if (gid < 0) Fail(ENOENT, absl::StrCat("looking up group ", parts[1]));
    }
    uid_ = static_cast<uid_t>(uid);
    gid_ = static_cast<gid_t>(gid < 0 ? 0 : gid);
  }

  // --group: names from the container's /etc/group, or GIDs.
  void ResolveGroups() {
    for (const std::string& g : spec_.groups) {
      long gid = -1;
      if (!absl::SimpleAtoi(g, &gid)) gid = LookupId("/etc/group", g);
      if (gid < 0) Fail(ENOENT, absl::StrCat("looking up group ", g));
      groups_.push_back(static_cast<gid_t>(gid));
    }
  }

  void ChangeDirectory() {
    const std::string& wd = spec_.working_dir.empty() ? "/" : spec_.working_dir;
    if (chdir(wd.c_str()) != 0) {
      MkdirAll(wd);
      if (chdir(wd.c_str()) != 0) Fail(errno, absl::StrCat("entering working directory ", wd));
    }
  }

  std::string ResolveCommand(const std::vector<std::string>& args) {
    if (args.empty()) Fail(EINVAL, "resolving the command: no command given");
    const std::string& cmd = args[0];
    if (cmd.find('/') != std::string::npos) {
      if (access(cmd.c_str(), X_OK) != 0) Fail(errno, absl::StrCat("looking up ", cmd));
      return cmd;
    }
    std::string path_var = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (const auto& e : spec_.env) {
      if (absl::StartsWith(e, "PATH=")) path_var = e.substr(5);
    }
    for (absl::string_view dir : absl::StrSplit(path_var, ':', absl::SkipEmpty())) {
      std::string candidate = absl::StrCat(std::string(dir), "/", cmd);
      struct stat st;
      if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
          access(candidate.c_str(), X_OK) == 0) {
        return candidate;
      }
    }
    Fail(ENOENT, absl::StrCat("looking up \"", cmd, "\" in PATH"));
  }

  void SetRlimits() {
    for (const RlimitSpec& l : spec_.rlimits) {
      rlimit rl{l.soft, l.hard};
      if (setrlimit(l.resource, &rl) != 0) Fail(errno, absl::StrCat("setting rlimit ", l.resource));
    }
  }

  void DropPrivileges() {
    std::vector<std::string> names = EffectiveCapabilities(spec_);
    std::vector<cap_value_t> keep;
    for (const auto& n : names) {
      cap_value_t v;
      if (cap_from_name(absl::AsciiStrToLower(n).c_str(), &v) == 0) keep.push_back(v);
    }
    // The bounding set first: dropping from it needs CAP_SETPCAP, which we still hold.
    for (cap_value_t c = 0; c <= CAP_LAST_CAP; ++c) {
      if (std::find(keep.begin(), keep.end(), c) != keep.end()) continue;
      if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL) {
        Fail(errno, "dropping from the capability bounding set");
      }
    }
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) Fail(errno, "setting keepcaps");
    // The primary group (another user's) and --group's.
    std::vector<gid_t> groups = groups_;
    if (uid_ != 0 || gid_ != 0) groups.insert(groups.begin(), gid_);
    if (setgroups(groups.size(), groups.data()) != 0) Fail(errno, "setting supplementary groups");
    if (uid_ != 0 || gid_ != 0) {
      if (setresgid(gid_, gid_, gid_) != 0) Fail(errno, absl::StrCat("setting gid ", gid_));
      if (setresuid(uid_, uid_, uid_) != 0) Fail(errno, absl::StrCat("setting uid ", uid_));
    }
    cap_t caps = cap_init();
    // Root keeps the set in effective/permitted/inheritable; another user starts with none,
    // as with Docker (file capabilities can still grant from the bounding set).
    if (uid_ == 0 && !keep.empty()) {
      for (cap_flag_t f : {CAP_EFFECTIVE, CAP_PERMITTED, CAP_INHERITABLE}) {
        cap_set_flag(caps, f, keep.size(), keep.data(), CAP_SET);
      }
    }
    int rc = cap_set_proc(caps);
    cap_free(caps);
    if (rc != 0) Fail(errno, "setting capabilities");
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) Fail(errno, "clearing keepcaps");
  }

  const CreateRequest& r_;
  const ContainerSpec& spec_;
  int root_fd_ = -1;       // O_PATH of the rootfs, for InRoot
  std::vector<int> held_;  // O_PATH descriptors named by mount targets
  int sock_;
  bool unshare_cgroup_ns_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::vector<gid_t> groups_;  // supplementary, from --group
};

std::string NormalizeCap(std::string name) {
  name = absl::AsciiStrToUpper(name);
  if (name != "ALL" && !absl::StartsWith(name, "CAP_")) name = "CAP_" + name;
  return name;
}

// Writes text to the process's /proc/<pid>/<file> (the parent configuring its child).
absl::Status WriteProcessFile(pid_t pid, const char* file, const std::string& text) {
  std::string path = absl::StrCat("/proc/", pid, "/", file);
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening ", path));
  ssize_t n = write(fd, text.data(), text.size());
  int err = errno;
  close(fd);
  if (n < 0) return ErrnoToStatus(err, absl::StrCat("writing ", path));
  return absl::OkStatus();
}

}  // namespace

std::vector<std::string> EffectiveCapabilities(const ContainerSpec& spec) {
  std::vector<std::string> caps;
  bool drop_all = false;
  for (const auto& d : spec.cap_drop) drop_all |= NormalizeCap(d) == "ALL";
  if (!drop_all) caps.assign(std::begin(kDefaultCapabilities), std::end(kDefaultCapabilities));
  for (const auto& a : spec.cap_add) {
    std::string n = NormalizeCap(a);
    if (n == "ALL") {
      caps.clear();
      for (cap_value_t c = 0; c <= CAP_LAST_CAP; ++c) {
        char* name = cap_to_name(c);
        caps.push_back(absl::AsciiStrToUpper(name));
        cap_free(name);
      }
      break;
    }
    if (std::find(caps.begin(), caps.end(), n) == caps.end()) caps.push_back(n);
  }
  for (const auto& d : spec.cap_drop) {
    std::string n = NormalizeCap(d);
    caps.erase(std::remove(caps.begin(), caps.end(), n), caps.end());
  }
  return caps;
}

absl::StatusOr<CreatedProcess> CreateContainerProcess(const CreateRequest& request) {
  const ContainerSpec& spec = *request.spec;
  const bool v2 = request.cgroup != nullptr && request.cgroup->version() == CgroupVersion::kV2;

  // Step 0: with a user namespace the container's root may not mount the overlay (its
  // work directory is created mode 000, and the host's root owns the layers), so the shim
  // mounts it, in a mount namespace of its own that the host never sees and that dies
  // with the shim; the child's namespace starts as a copy of it.
  if (spec.user_namespace) {
    if (unshare(CLONE_NEWNS) != 0) return ErrnoToStatus(errno, "unsharing the shim's mounts");
    if (mount("", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      return ErrnoToStatus(errno, "making the shim's mounts private");
    }
    if (mount("overlay", request.paths.rootfs.c_str(), "overlay", 0,
              OverlayOptions(spec, request.paths).c_str()) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("mounting overlay at ", request.paths.rootfs));
    }
  }

  // Step 0: the socket pair of the handshake.
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return ErrnoToStatus(errno, "creating the handshake socket pair");
  }

  // Clone the child straight into its namespaces (and, on v2, its cgroup).
  uint64_t flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_PIDFD;
  if (spec.network == NetworkMode::kNone) flags |= CLONE_NEWNET;
  if (spec.user_namespace) flags |= CLONE_NEWUSER;
  int cgroup_fd = v2 ? request.cgroup->OpenDirFd() : -1;
  if (v2 && cgroup_fd < 0) {
    close(sv[0]);
    close(sv[1]);
    return ErrnoToStatus(errno, "opening the container's cgroup");
  }
  // On v2 the child is born in its cgroup, so its cgroup namespace can start with it; on v1
  // it unshares one after the parent has moved it (step 1).
  if (v2) flags |= CLONE_NEWCGROUP | CLONE_INTO_CGROUP;
  int pidfd = -1;
  CloneArgs args{};
  args.flags = flags;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  args.cgroup = v2 ? static_cast<uint64_t>(cgroup_fd) : 0;
  long pid = syscall(SYS_clone3, &args, sizeof args);
  if (pid == 0) {
    close(sv[0]);
    Child(request, sv[1], !v2 && request.cgroup != nullptr).Run();
  }
  int clone_errno = errno;
  if (cgroup_fd >= 0) close(cgroup_fd);
  close(sv[1]);
  if (pid < 0) {
    close(sv[0]);
    return ErrnoToStatus(clone_errno, "cloning the container process");
  }
  CreatedProcess created{static_cast<pid_t>(pid), pidfd, sv[0]};
  auto fail = [&](absl::Status s) {
    kill(created.pid, SIGKILL);
    waitpid(created.pid, nullptr, 0);
    close(created.pidfd);
    close(created.handshake);
    return s;
  };

  // Step 1: cgroup (v1), id maps and OOM score, then let the child go on.
  if (!v2 && request.cgroup != nullptr) {
    if (absl::Status s = request.cgroup->AddProcess(created.pid); !s.ok()) return fail(s);
  }
  if (spec.user_namespace) {
    const std::string map = absl::StrCat("0 ", spec.userns_host_id, " ", spec.userns_size, "\n");
    absl::Status s = WriteProcessFile(created.pid, "uid_map", map);
    if (s.ok()) s = WriteProcessFile(created.pid, "gid_map", map);
    if (!s.ok()) return fail(s);
  }
  // Always, as Docker (a container must not inherit the daemon's own score), and from here:
  // lowering it needs CAP_SYS_RESOURCE, which a child in a user namespace does not have.
  if (absl::Status s =
          WriteProcessFile(created.pid, "oom_score_adj", std::to_string(spec.oom_score_adj));
      !s.ok()) {
    return fail(s);
  }
  // The child may have failed already (it sets up while we work): its message is still
  // queued, so a failed send is reported only when there is none.
  absl::Status sent = SendStep(created.handshake, 1);

  // Step 2: the child reports its rootfs ready, or why not.
  std::string text;
  int step = ReceiveStep(created.handshake, &text);
  if (step != 2) {
    if (step < 0) return fail(absl::FailedPreconditionError(text));
    if (!sent.ok()) return fail(sent);
    return fail(
        absl::FailedPreconditionError("creating the container: the child died during setup"));
  }
  return created;
}

absl::StatusOr<ExecProcess> ExecInContainer(const CreateRequest& request, int init_pidfd,
                                            const std::vector<std::string>& args) {
  const ContainerSpec& spec = *request.spec;
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "creating the exec output pipe");
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(out[0]);
    close(out[1]);
    return ErrnoToStatus(e, "forking the exec process");
  }
  if (pid == 0) {
    // The intermediate: joins the cgroup and namespaces, forks the process that lands in
    // the container's pid namespace, and exits with its status.
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(out[1], 1);
    dup2(out[1], 2);
    auto die = [](const std::string& msg) {
      std::string line = msg + "\n";
      (void)!write(2, line.data(), line.size());
      _exit(126);
    };
    if (request.cgroup != nullptr) {
      if (absl::Status s = request.cgroup->AddProcess(getpid()); !s.ok()) {
        die(std::string(s.message()));
      }
    }
    int flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP | CLONE_NEWPID;
    if (spec.network == NetworkMode::kNone || spec.network == NetworkMode::kPath) {
      flags |= CLONE_NEWNET;
    }
    if (spec.user_namespace) flags |= CLONE_NEWUSER;
    if (setns(init_pidfd, flags) != 0) {
      die(std::string(ErrnoToStatus(errno, "joining the container's namespaces").message()));
    }
    pid_t child = fork();
    if (child < 0) die(std::string(ErrnoToStatus(errno, "forking into the container").message()));
    if (child == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      Child(request, -1, false).Exec(args);
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
  close(out[1]);
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  return ExecProcess{pid, pidfd, out[0]};
}

absl::Status AwaitExec(int handshake_fd) {
  std::string text;
  int step = ReceiveStep(handshake_fd, &text);
  if (step == 0) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("starting the container: ", text));
}

}  // namespace swarm::agent::runtime

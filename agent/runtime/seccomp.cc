#include "agent/runtime/seccomp.h"

#include <errno.h>
#include <linux/filter.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"

namespace swarm::agent::runtime {
namespace {

// Allowed for every container.
constexpr const char* kAllowed[] = {
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "modify_ldt",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
};

// Calls that one capability unlocks.
struct CapabilityGroup {
  const char* capability;
  std::vector<const char*> syscalls;
};

const std::vector<CapabilityGroup>& CapabilityGroups() {
  static const auto* groups = new std::vector<CapabilityGroup>{
      {"CAP_DAC_READ_SEARCH", {"open_by_handle_at"}},
      {"CAP_SYS_ADMIN",
       {"bpf",           "clone",         "clone3",      "fanotify_init",   "fsconfig",
        "fsmount",       "fsopen",        "fspick",      "lookup_dcookie",  "mount",
        "mount_setattr", "move_mount",    "open_tree",   "perf_event_open", "quotactl",
        "quotactl_fd",   "setdomainname", "sethostname", "setns",           "syslog",
        "umount",        "umount2",       "unshare"}},
      {"CAP_SYS_BOOT", {"reboot"}},
      {"CAP_SYS_CHROOT", {"chroot"}},
      {"CAP_SYS_MODULE", {"delete_module", "init_module", "finit_module"}},
      {"CAP_SYS_PACCT", {"acct"}},
      {"CAP_SYS_PTRACE",
       {"kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev",
        "ptrace"}},
      {"CAP_SYS_RAWIO", {"iopl", "ioperm"}},
      {"CAP_SYS_TIME", {"settimeofday", "stime", "clock_settime", "clock_settime64"}},
      {"CAP_SYS_TTY_CONFIG", {"vhangup"}},
      {"CAP_SYS_NICE", {"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"}},
      {"CAP_SYSLOG", {"syslog"}},
      {"CAP_BPF", {"bpf"}},
      {"CAP_PERFMON", {"perf_event_open"}},
  };
  return *groups;
}

// Namespace flags a process without CAP_SYS_ADMIN may not pass to clone.
constexpr uint64_t kCloneNamespaceMask = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
                                         CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP;
// PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and the query value.
constexpr uint64_t kPersonalities[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};
constexpr int kAfVsock = 40;

struct CtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

absl::Status Allow(scmp_filter_ctx ctx, const char* name, unsigned count = 0,
                   const scmp_arg_cmp* args = nullptr) {
  int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) return absl::OkStatus();  // unknown on every architecture
  int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, count, args);
  // -EOPNOTSUPP/-EACCES: the call does not exist on one of the added architectures.
  if (rc < 0 && rc != -EOPNOTSUPP && rc != -EACCES && rc != -EEXIST) {
    return ErrnoToStatus(-rc, absl::StrCat("adding seccomp rule for ", name));
  }
  return absl::OkStatus();
}

}  // namespace

std::string SeccompLibraryVersion() {
  const scmp_version* v = seccomp_version();
  return absl::StrCat(v->major, ".", v->minor, ".", v->micro);
}

absl::StatusOr<std::string> CompileDefaultSeccompProfile(
    const std::vector<std::string>& capabilities) {
  auto has = [&](const char* cap) {
    return std::find(capabilities.begin(), capabilities.end(), cap) != capabilities.end();
  };
  std::unique_ptr<void, CtxDeleter> ctx(seccomp_init(SCMP_ACT_ERRNO(EPERM)));
  if (!ctx) return absl::InternalError("compiling seccomp profile: seccomp_init failed");
  // 32-bit and x32 entry points of an x86-64 kernel get the same rules.
  if (seccomp_arch_native() == SCMP_ARCH_X86_64) {
    seccomp_arch_add(ctx.get(), SCMP_ARCH_X86);
    seccomp_arch_add(ctx.get(), SCMP_ARCH_X32);
  }
  for (const char* name : kAllowed) {
    if (absl::Status s = Allow(ctx.get(), name); !s.ok()) return s;
  }
  for (const auto& group : CapabilityGroups()) {
    if (!has(group.capability)) continue;
    for (const char* name : group.syscalls) {
      if (absl::Status s = Allow(ctx.get(), name); !s.ok()) return s;
    }
  }
  if (!has("CAP_SYS_ADMIN")) {
    scmp_arg_cmp no_namespaces = SCMP_A0(SCMP_CMP_MASKED_EQ, kCloneNamespaceMask, 0);
    if (absl::Status s = Allow(ctx.get(), "clone", 1, &no_namespaces); !s.ok()) return s;
    // clone3 passes its flags in memory, which BPF cannot read: ENOSYS makes libc fall back
    // to clone, which is filtered above.
    int nr = seccomp_syscall_resolve_name("clone3");
    if (nr != __NR_SCMP_ERROR) seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), nr, 0);
  }
  for (uint64_t persona : kPersonalities) {
    scmp_arg_cmp eq = SCMP_A0(SCMP_CMP_EQ, persona);
    if (absl::Status s = Allow(ctx.get(), "personality", 1, &eq); !s.ok()) return s;
  }
  scmp_arg_cmp not_vsock = SCMP_A0(SCMP_CMP_NE, static_cast<uint64_t>(kAfVsock));
  if (absl::Status s = Allow(ctx.get(), "socket", 1, &not_vsock); !s.ok()) return s;

  int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "creating a memfd for the seccomp program");
  int rc = seccomp_export_bpf(ctx.get(), fd);
  if (rc < 0) {
    close(fd);
    return ErrnoToStatus(-rc, "exporting the seccomp program");
  }
  off_t size = lseek(fd, 0, SEEK_END);
  std::string program(size, '\0');
  ssize_t n = pread(fd, program.data(), program.size(), 0);
  close(fd);
  if (n != size) return absl::InternalError("reading back the seccomp program: short read");
  return program;
}

int LoadSeccompProgram(const std::string& program) {
  sock_fprog prog;
  prog.len = static_cast<unsigned short>(program.size() / sizeof(sock_filter));
  prog.filter = reinterpret_cast<sock_filter*>(const_cast<char*>(program.data()));
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

}  // namespace swarm::agent::runtime

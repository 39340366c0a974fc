// A tiny static program copied into test images: each subcommand tries one thing a
// container should or should not be allowed to do and prints "<what>: ok" or
// "<what>: <ERRNO NAME>", so tests assert on the kernel's real answer.
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int Report(const char* what, int rc) {
  if (rc == 0) {
    printf("%s: ok\n", what);
  } else {
    printf("%s: %s\n", what, strerrorname_np(errno));
  }
  fflush(stdout);
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr,
            "usage: probe unshare|mount|keyctl|ptrace|chown PATH|write PATH|alloc MB|"
            "forks N\n");
    return 2;
  }
  const char* cmd = argv[1];
  if (!strcmp(cmd, "unshare")) return Report("unshare", unshare(CLONE_NEWNS));
  if (!strcmp(cmd, "mount")) return Report("mount", mount("none", "/mnt", "tmpfs", 0, nullptr));
  if (!strcmp(cmd, "keyctl")) {
    // KEYCTL_GET_KEYRING_ID (0) of KEY_SPEC_SESSION_KEYRING (-3), creating it.
    long rc = syscall(SYS_keyctl, 0, -3, 1);
    return Report("keyctl", rc < 0 ? -1 : 0);
  }
  if (!strcmp(cmd, "ptrace"))
    return Report("ptrace", ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) < 0 ? -1 : 0);
  if (!strcmp(cmd, "chown") && argc > 2) return Report("chown", chown(argv[2], 1234, 1234));
  if (!strcmp(cmd, "write") && argc > 2) {
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) close(fd);
    return Report("write", fd < 0 ? -1 : 0);
  }
  if (!strcmp(cmd, "alloc") && argc > 2) {
    long mb = atol(argv[2]);
    for (long i = 0; i < mb; ++i) {
      char* p = static_cast<char*>(malloc(1 << 20));
      if (p == nullptr) return Report("alloc", -1);
      memset(p, 1, 1 << 20);
    }
    printf("alloc: ok %ld MiB\n", mb);
    return 0;
  }
  if (!strcmp(cmd, "forks") && argc > 2) {
    int n = atoi(argv[2]), made = 0, first_errno = 0;
    for (int i = 0; i < n; ++i) {
      pid_t p = fork();
      if (p == 0) {
        pause();
        _exit(0);
      }
      if (p < 0) {
        if (first_errno == 0) first_errno = errno;
        continue;
      }
      ++made;
    }
    printf("forks: %d of %d%s%s\n", made, n, first_errno ? " " : "",
           first_errno ? strerrorname_np(first_errno) : "");
    fflush(stdout);
    kill(0, SIGKILL);
    return 0;
  }
  fprintf(stderr, "probe: unknown command %s\n", cmd);
  return 2;
}

#include "agent/runtime/shim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/runtime/health.h"
#include "agent/runtime/logs.h"
#include "common/clock.h"
#include "common/errno_status.h"
#include "common/status_macros.h"

// std::optional as JSON null or the value (nlohmann 3.11 has no conversion of its own).
namespace nlohmann {
template <typename T>
struct adl_serializer<std::optional<T>> {
  static void to_json(json& j, const std::optional<T>& o) {
    if (o) {
      j = *o;
    } else {
      j = nullptr;
    }
  }
  static void from_json(const json& j, std::optional<T>& o) {
    if (j.is_null()) {
      o.reset();
    } else {
      o = j.get<T>();
    }
  }
};
}  // namespace nlohmann

namespace swarm::agent::runtime {
namespace {

// Byte strings (CBOR) for what may not be UTF-8: file data, the seccomp program.
nlohmann::json::binary_t Bytes(const std::string& s) {
  return nlohmann::json::binary_t(std::vector<uint8_t>(s.begin(), s.end()));
}
std::string FromBytes(const nlohmann::json& j) {
  const auto& b = j.get_binary();
  return std::string(b.begin(), b.end());
}

}  // namespace

// What the shim launcher's child receives (ShimLauncher::Launch), as JSON for CBOR. Found
// by nlohmann's get<T>() through argument-dependent lookup, hence here, not in the unnamed
// namespace.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(MountSpec, type, source, target, read_only, tmpfs_size_bytes)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RlimitSpec, resource, soft, hard)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Resources, memory_bytes, nano_cpus, cpu_shares, pids_limit)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(HealthCheckSpec, test, interval_ms, timeout_ms, start_period_ms,
                                   retries)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ContainerPaths, dir, upper, work, rootfs, exec_fifo, staging)
void to_json(nlohmann::json& j, const FileSpec& f) {
  j = {{"target", f.target}, {"data", Bytes(f.data)}, {"mode", f.mode},
       {"uid", f.uid},       {"gid", f.gid},          {"read_only", f.read_only}};
}
void from_json(const nlohmann::json& j, FileSpec& f) {
  f = {j.at("target"), FromBytes(j.at("data")), j.at("mode"), j.at("uid"),
       j.at("gid"),    j.at("read_only")};
}
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ContainerSpec, name, image, lower_dirs, args, entrypoint, env,
                                   init, tty, working_dir, user, groups, hostname, read_only_rootfs,
                                   cap_add, cap_drop, no_new_privileges, seccomp_unconfined, mounts,
                                   files, rlimits, sysctls, oom_score_adj, resources, network,
                                   netns_path, user_namespace, userns_host_id, userns_size,
                                   stop_signal, stop_grace_ms, log_max_size_bytes, log_max_files,
                                   healthcheck)

namespace {

void WriteAll(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    s.remove_prefix(n);
  }
}

bool ReadAll(int fd, char* data, size_t size) {
  while (size > 0) {
    ssize_t n = read(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= n;
  }
  return true;
}

// The request's parts on the launcher's socket: a native-endian 64-bit size, then the bytes.
void AppendFrame(std::string& out, std::string_view bytes) {
  const uint64_t size = bytes.size();
  out.append(reinterpret_cast<const char*>(&size), sizeof size);
  out.append(bytes);
}
bool ReadFrame(int fd, std::string* bytes) {
  uint64_t size = 0;
  if (!ReadAll(fd, reinterpret_cast<char*>(&size), sizeof size) || size > (64u << 20)) {
    return false;
  }
  bytes->resize(size);
  return ReadAll(fd, bytes->data(), size);
}

// The shim's own errors, in shim.log (created only when there is something to say).
void ShimLog(const std::string& dir, const std::string& line) {
  int fd = open((dir + "/shim.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return;
  WriteAll(fd, line + "\n");
  close(fd);
}

// The shim's body, after fork. Never returns.
[[noreturn]] void RunShim(CreateRequest request, const Cgroup& cgroup, const std::string& dir,
                          const std::string& log_path, int64_t log_max_size, int log_max_files,
                          int ready_fd) {
  setsid();
  signal(SIGPIPE, SIG_IGN);
  // Orphans of health checks (a check's process inside the container whose parent timed
  // out) come to us and are reaped here; otherwise they could keep the container's pid
  // namespace from dying.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  // Keep only the ready pipe (moved to fd 3); the daemon's sockets and files are not ours.
  if (ready_fd != 3) {
    dup2(ready_fd, 3);
    ready_fd = 3;
  }
  int devnull = open("/dev/null", O_RDWR);
  dup2(devnull, 0);
  dup2(devnull, 1);
  dup2(devnull, 2);
  syscall(SYS_close_range, 4, ~0U, 0);
  fcntl(ready_fd, F_SETFD, FD_CLOEXEC);

  auto fail_early = [&](const absl::Status& s) {
    std::string msg(s.message());
    for (char& c : msg) c = c == '\n' ? ' ' : c;
    WriteAll(ready_fd, absl::StrCat("error ", msg, "\n"));
    _exit(1);
  };
  // The container's output: two pipes, or with a terminal its master (err stays closed).
  int out[2] = {-1, -1}, err[2] = {-1, -1};
  int open_pipes = 2;
  int null_in = -1;
  if (request.spec->tty) {
    out[0] = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    char name[64];
    if (out[0] < 0 || grantpt(out[0]) != 0 || unlockpt(out[0]) != 0 ||
        ptsname_r(out[0], name, sizeof name) != 0 ||
        (out[1] = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
      fail_early(ErrnoToStatus(errno, "creating the container's terminal"));
    }
    request.stdin_fd = request.stdout_fd = request.stderr_fd = out[1];
    open_pipes = 1;
  } else {
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
      fail_early(ErrnoToStatus(errno, "creating stdio pipes"));
    }
    null_in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    request.stdin_fd = null_in;
    request.stdout_fd = out[1];
    request.stderr_fd = err[1];
  }
  absl::StatusOr<CreatedProcess> created = CreateContainerProcess(request);
  if (!created.ok()) fail_early(created.status());
  for (int fd : {out[1], err[1], null_in}) {
    if (fd >= 0) close(fd);
  }
  // The log exists before Create returns: a reader that starts right after Start (`run`
  // following its container's output) must not find it missing.
  LogWriter log(log_path, log_max_size, log_max_files, Clock::Real());
  if (absl::Status s = log.Open(); !s.ok()) ShimLog(dir, s.ToString());
  WriteAll(ready_fd, absl::StrCat("ok ", created->pid, " ", getpid(), "\n"));
  close(ready_fd);
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  if (err[0] >= 0) fcntl(err[0], F_SETFL, O_NONBLOCK);

  ExitRecord record;
  int handshake = created->handshake;
  bool exited = false;
  int status = 0;
  char buf[65536];
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, nullptr);
  int sigchld = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
  HealthMonitor health(request.spec->healthcheck, dir, [&]() -> absl::StatusOr<ProbeProcess> {
    absl::StatusOr<ExecProcess> p =
        ExecInContainer(request, created->pidfd, request.spec->healthcheck.test);
    if (!p.ok()) return p.status();
    return ProbeProcess{p->pid, p->pidfd, p->output};
  });
  // Runs until the container has exited and its pipes are drained; after init's exit the
  // kernel kills the rest of its pid namespace, so EOF follows soon (bounded all the same).
  absl::Time drain_deadline = absl::InfiniteFuture();
  while (open_pipes > 0 || !exited) {
    pollfd fds[7] = {{out[0], POLLIN, 0},
                     {err[0], POLLIN, 0},
                     {exited ? -1 : created->pidfd, POLLIN, 0},
                     {handshake, POLLIN, 0},
                     {exited ? -1 : health.output_fd(), POLLIN, 0},
                     {exited ? -1 : health.pidfd(), POLLIN, 0},
                     {sigchld, POLLIN, 0}};
    absl::Duration wait = exited ? absl::Milliseconds(100) : health.Timeout(absl::Now());
    int timeout = wait == absl::InfiniteDuration()
                      ? -1
                      : static_cast<int>(absl::ToInt64Milliseconds(wait + absl::Milliseconds(1)));
    if (poll(fds, 7, timeout) < 0 && errno != EINTR) break;
    if (fds[6].revents != 0) {
      signalfd_siginfo si;
      while (read(sigchld, &si, sizeof si) == sizeof si) {
      }
      // Reap strays; the container's init and the running check have their own waiters.
      for (;;) {
        siginfo_t info{};
        if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) break;
        if (info.si_pid == created->pid || info.si_pid == health.probe_pid()) break;
        waitpid(info.si_pid, nullptr, 0);
      }
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (void)log.Write(i == 0 ? "stdout" : "stderr", std::string_view(buf, n));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {  // a terminal's end: EIO
        close(fds[i].fd);
        (i == 0 ? out[0] : err[0]) = -1;
        --open_pipes;
      }
    }
    if (handshake >= 0 && fds[3].revents != 0) {
      absl::Status s = AwaitExec(handshake);
      if (!s.ok()) record.error = std::string(s.message());
      close(handshake);
      handshake = -1;
      if (s.ok()) health.Begin(absl::Now());
    }
    if (!exited && fds[2].revents != 0) {
      while (waitpid(created->pid, &status, 0) < 0 && errno == EINTR) {
      }
      exited = true;
      health.Stop();
      drain_deadline = absl::Now() + absl::Seconds(2);
    }
    if (!exited) health.Service(absl::Now());
    if (exited && absl::Now() > drain_deadline) break;
  }
  (void)log.Flush();

  bool oom = cgroup.OomKills() > 0;
  if (WIFEXITED(status)) {
    record.exit_code = WEXITSTATUS(status);
    record.reason = ExitRecord::Reason::kExited;
  } else if (WIFSIGNALED(status)) {
    record.signal = WTERMSIG(status);
    record.exit_code = 128 + record.signal;
    record.reason = ExitRecord::Reason::kSignaled;
  }
  if (oom) record.reason = ExitRecord::Reason::kOomKilled;
  if (!record.error.empty()) record.reason = ExitRecord::Reason::kFailed;
  record.finished_at = absl::Now();
  if (absl::Status s = WriteExitRecord(dir + "/exit.json", record); !s.ok()) {
    ShimLog(dir, s.ToString());
    _exit(1);
  }
  _exit(0);
}

std::string EncodeLaunch(const CreateRequest& r, const Cgroup& cgroup, const std::string& dir,
                         const std::string& log_path, int64_t log_max_size, int log_max_files) {
  nlohmann::json j = {{"spec", *r.spec},
                      {"paths", r.paths},
                      {"mount_sources", r.mount_sources},
                      {"cgroup", cgroup.paths()},
                      {"dir", dir},
                      {"log_path", log_path},
                      {"log_max_size", log_max_size},
                      {"log_max_files", log_max_files}};
  // The seccomp program (kilobytes) follows the document as a frame of its own: nlohmann
  // reads a CBOR byte string one byte at a time, which was a tenth of a shim's CPU time.
  j["seccomp"] = r.seccomp_program != nullptr;
  std::vector<uint8_t> cbor = nlohmann::json::to_cbor(j);
  std::string out;
  AppendFrame(out, std::string_view(reinterpret_cast<const char*>(cbor.data()), cbor.size()));
  AppendFrame(out, r.seccomp_program != nullptr ? *r.seccomp_program : "");
  return out;
}

// The launcher's child: reads the request from `fd`, then is the shim, answering on `fd`.
[[noreturn]] void ServeLaunch(int fd) {
  auto fail = [fd](const std::string& why) {
    WriteAll(fd, absl::StrCat("error ", why, "\n"));
    _exit(1);
  };
  std::string bytes, seccomp;
  if (!ReadFrame(fd, &bytes) || !ReadFrame(fd, &seccomp)) {
    fail("the shim launcher got a truncated request");
  }
  nlohmann::json j = nlohmann::json::from_cbor(bytes, true, false);
  if (j.is_discarded()) fail("the shim launcher got a request it cannot parse");
  try {
    const ContainerSpec spec = j.at("spec").get<ContainerSpec>();
    const Cgroup cgroup = Cgroup::AtPaths(j.at("cgroup"));
    CreateRequest r;
    r.spec = &spec;
    r.paths = j.at("paths").get<ContainerPaths>();
    r.mount_sources = j.at("mount_sources");
    r.seccomp_program = j.at("seccomp").get<bool>() ? &seccomp : nullptr;
    r.cgroup = &cgroup;
    RunShim(std::move(r), cgroup, j.at("dir"), j.at("log_path"), j.at("log_max_size"),
            j.at("log_max_files"), fd);
  } catch (const nlohmann::json::exception& e) {
    fail(absl::StrCat("the shim launcher got a malformed request: ", e.what()));
  }
  _exit(1);  // not reached: RunShim and fail exit
}

}  // namespace

[[noreturn]] void RunShimLauncher(int control, pid_t daemon) {
  prctl(PR_SET_NAME, "swarm-shims");
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // As the daemon's threads do (its main thread takes them): the shims inherit the mask, so
  // a SIGTERM or SIGINT meant for swarmd never ends a shim (a container's init unblocks all
  // before it runs). The launcher itself ends with the daemon.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigprocmask(SIG_BLOCK, &stop, nullptr);
  if (getppid() != daemon) _exit(0);  // it died before the line above
  signal(SIGCHLD, SIG_IGN);           // shims are reaped by the kernel
  for (;;) {
    char byte;
    iovec iov{&byte, 1};
    alignas(cmsghdr) char control_buf[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control_buf;
    msg.msg_controllen = sizeof control_buf;
    const ssize_t n = recvmsg(control, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(0);
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    if (cm == nullptr || cm->cmsg_type != SCM_RIGHTS) continue;
    int fd;
    memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    const pid_t pid = fork();
    if (pid == 0) {
      close(control);
      signal(SIGCHLD, SIG_DFL);
      prctl(PR_SET_NAME, "swarm-shim");
      ServeLaunch(fd);
    }
    if (pid < 0) WriteAll(fd, absl::StrCat("error forking the shim: ", strerror(errno), "\n"));
    close(fd);
  }
}

namespace {

// "ok <container pid> <shim pid>", "error <why>", or nothing (the shim died).
absl::StatusOr<ShimProcess> ReadAnswer(int fd) {
  // One line: the container's init holds a copy of the write end until its execve, so
  // EOF would only come at start.
  std::string answer;
  char c;
  for (;;) {
    ssize_t n = read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || c == '\n') break;
    answer.push_back(c);
  }
  std::vector<std::string> words = absl::StrSplit(answer, absl::MaxSplits(' ', 2));
  ShimProcess p;
  if (words.size() == 3 && words[0] == "ok" && absl::SimpleAtoi(words[1], &p.container_pid) &&
      absl::SimpleAtoi(words[2], &p.shim_pid)) {
    return p;
  }
  if (absl::StartsWith(answer, "error ")) return absl::FailedPreconditionError(answer.substr(6));
  return absl::InternalError("creating the container: the shim died without a word");
}

}  // namespace

std::string ReasonName(ExitRecord::Reason reason) {
  switch (reason) {
    case ExitRecord::Reason::kExited:
      return "exited";
    case ExitRecord::Reason::kSignaled:
      return "signaled";
    case ExitRecord::Reason::kOomKilled:
      return "oom-killed";
    case ExitRecord::Reason::kFailed:
      return "failed";
  }
  return "unknown";
}

std::string ShimProgramBesideExecutable() {
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "";
  std::string path(self, n);
  path = path.substr(0, path.rfind('/') + 1) + "swarm-shim";
  return access(path.c_str(), X_OK) == 0 ? path : "";
}

absl::StatusOr<ShimLauncher::Handle> ShimLauncher::Start(const std::string& program) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return ErrnoToStatus(errno, "creating the shim launcher's socket");
  }
  const pid_t daemon = getpid();
  pid_t pid = -1;
  int error = 0;
  if (!program.empty()) {
    // The launcher's end becomes its fd 3 (without close-on-exec), all else closes on exec.
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, sv[1], 3);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    const std::string daemon_pid = absl::StrCat(daemon);
    char* argv[] = {const_cast<char*>("swarm-shim"), const_cast<char*>("launcher"),
                    const_cast<char*>(daemon_pid.c_str()), nullptr};
    error = posix_spawn(&pid, program.c_str(), &actions, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
  } else {
    pid = fork();
    if (pid == 0) {
      close(sv[0]);
      RunShimLauncher(sv[1], daemon);
    }
    error = pid < 0 ? errno : 0;
  }
  close(sv[1]);
  if (error != 0) {
    close(sv[0]);
    return ErrnoToStatus(
        error, program.empty() ? "forking the shim launcher" : absl::StrCat("starting ", program));
  }
  return Handle(new ShimLauncher(sv[0], pid));
}

ShimLauncher::~ShimLauncher() {
  close(control_);  // the launcher reads EOF and exits
  waitpid(pid_, nullptr, 0);
}

absl::StatusOr<ShimProcess> ShimLauncher::Launch(const CreateRequest& request, const Cgroup& cgroup,
                                                 const std::string& container_dir,
                                                 const std::string& log_path,
                                                 int64_t log_max_size_bytes, int log_max_files) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return ErrnoToStatus(errno, "creating the shim's socket");
  }
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control_buf[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control_buf;
  msg.msg_controllen = sizeof control_buf;
  cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &sv[1], sizeof(int));
  const bool sent = sendmsg(control_, &msg, MSG_NOSIGNAL) == 1;
  const int send_errno = errno;
  close(sv[1]);
  if (!sent) {
    close(sv[0]);
    return absl::UnavailableError(
        absl::StrCat("the shim launcher is gone: ", strerror(send_errno)));
  }
  WriteAll(sv[0], EncodeLaunch(request, cgroup, container_dir, log_path, log_max_size_bytes,
                               log_max_files));
  absl::StatusOr<ShimProcess> p = ReadAnswer(sv[0]);
  close(sv[0]);
  return p;
}

absl::StatusOr<ShimProcess> LaunchShim(const CreateRequest& request, const Cgroup& cgroup,
                                       const std::string& container_dir,
                                       const std::string& log_path, int64_t log_max_size_bytes,
                                       int log_max_files, ShimLauncher* launcher) {
  if (launcher != nullptr) {
    absl::StatusOr<ShimProcess> p = launcher->Launch(request, cgroup, container_dir, log_path,
                                                     log_max_size_bytes, log_max_files);
    if (p.status().code() != absl::StatusCode::kUnavailable) return p;
    // The launcher died (killed by hand, say): fork from here, slower but working.
  }
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "creating the shim's pipe");
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(ready[0]);
    close(ready[1]);
    return ErrnoToStatus(e, "forking the shim");
  }
  if (pid == 0) {
    close(ready[0]);
    RunShim(request, cgroup, container_dir, log_path, log_max_size_bytes, log_max_files, ready[1]);
  }
  close(ready[1]);
  absl::StatusOr<ShimProcess> p = ReadAnswer(ready[0]);
  close(ready[0]);
  if (!p.ok()) waitpid(pid, nullptr, 0);
  return p;
}

absl::Status WriteExitRecord(const std::string& path, const ExitRecord& record) {
  nlohmann::json j;
  j["reason"] = ReasonName(record.reason);
  j["exit_code"] = record.exit_code;
  j["signal"] = record.signal;
  j["error"] = record.error;
  j["finished_at_ns"] = absl::ToUnixNanos(record.finished_at);
  std::string tmp = path + ".tmp";
  std::string data = j.dump();
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("writing ", tmp));
  WriteAll(fd, data);
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("renaming ", tmp));
  }
  return absl::OkStatus();
}

absl::StatusOr<ExitRecord> ReadExitRecord(const std::string& path) {
  std::ifstream in(path);
  if (!in) return ErrnoToStatus(errno, absl::StrCat("reading ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return absl::DataLossError(absl::StrCat(path, " is not valid JSON"));
  ExitRecord r;
  std::string reason = j.value("reason", "");
  for (auto c : {ExitRecord::Reason::kExited, ExitRecord::Reason::kSignaled,
                 ExitRecord::Reason::kOomKilled, ExitRecord::Reason::kFailed}) {
    if (ReasonName(c) == reason) r.reason = c;
  }
  r.exit_code = j.value("exit_code", 0);
  r.signal = j.value("signal", 0);
  r.error = j.value("error", "");
  r.finished_at = absl::FromUnixNanos(j.value("finished_at_ns", int64_t{0}));
  return r;
}

}  // namespace swarm::agent::runtime

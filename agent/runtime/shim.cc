#include "agent/runtime/shim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/runtime/health.h"
#include "agent/runtime/logs.h"
#include "common/clock.h"
#include "common/errno_status.h"
#include "common/status_macros.h"

namespace swarm::agent::runtime {
namespace {

void WriteAll(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    s.remove_prefix(n);
  }
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
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    fail_early(ErrnoToStatus(errno, "creating stdio pipes"));
  }
  int null_in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  request.stdin_fd = null_in;
  request.stdout_fd = out[1];
  request.stderr_fd = err[1];
  absl::StatusOr<CreatedProcess> created = CreateContainerProcess(request);
  if (!created.ok()) fail_early(created.status());
  close(out[1]);
  close(err[1]);
  close(null_in);
  WriteAll(ready_fd, absl::StrCat("ok ", created->pid, "\n"));
  close(ready_fd);

  LogWriter log(log_path, log_max_size, log_max_files, Clock::Real());
  if (absl::Status s = log.Open(); !s.ok()) ShimLog(dir, s.ToString());
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  fcntl(err[0], F_SETFL, O_NONBLOCK);

  ExitRecord record;
  int handshake = created->handshake;
  bool exited = false;
  int status = 0;
  int open_pipes = 2;
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
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
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

absl::StatusOr<ShimProcess> LaunchShim(const CreateRequest& request, const Cgroup& cgroup,
                                       const std::string& container_dir,
                                       const std::string& log_path, int64_t log_max_size_bytes,
                                       int log_max_files) {
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
  // One line: the container's init holds a copy of the write end until its execve, so
  // EOF would only come at start.
  std::string answer;
  char c;
  for (;;) {
    ssize_t n = read(ready[0], &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || c == '\n') break;
    answer.push_back(c);
  }
  close(ready[0]);
  int container_pid = 0;
  if (answer.rfind("ok ", 0) == 0 && absl::SimpleAtoi(answer.substr(3), &container_pid)) {
    return ShimProcess{pid, container_pid};
  }
  waitpid(pid, nullptr, 0);
  if (answer.rfind("error ", 0) == 0) return absl::FailedPreconditionError(answer.substr(6));
  return absl::InternalError("creating the container: the shim died without a word");
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

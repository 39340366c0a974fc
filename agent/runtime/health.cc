#include "agent/runtime/health.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/files.h"

namespace swarm::agent::runtime {

std::string HealthStatusName(HealthStatus status) {
  switch (status) {
    case HealthStatus::kNone:
      return "none";
    case HealthStatus::kStarting:
      return "starting";
    case HealthStatus::kHealthy:
      return "healthy";
    case HealthStatus::kUnhealthy:
      return "unhealthy";
  }
  return "unknown";
}

HealthState NextHealth(HealthState state, bool success, bool in_start_period, int retries) {
  if (success) {
    state.failing_streak = 0;
    state.status = HealthStatus::kHealthy;
    return state;
  }
  if (in_start_period) return state;  // Docker: failures while starting up do not count
  ++state.failing_streak;
  if (state.failing_streak >= (retries > 0 ? retries : 1)) state.status = HealthStatus::kUnhealthy;
  return state;
}

absl::Status WriteHealth(const std::string& dir, const HealthState& s) {
  nlohmann::json j;
  j["status"] = HealthStatusName(s.status);
  j["failing_streak"] = s.failing_streak;
  j["last_exit_code"] = s.last_exit_code;
  j["last_output"] = s.last_output;
  j["last_check_ns"] = absl::ToUnixNanos(s.last_check);
  return WriteFileAtomically(dir + "/health.json",
                             j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

absl::StatusOr<HealthState> ReadHealth(const std::string& dir) {
  HealthState s;
  std::ifstream in(dir + "/health.json");
  if (!in) {
    if (access(dir.c_str(), F_OK) != 0) return ErrnoToStatus(errno, absl::StrCat("reading ", dir));
    s.status = HealthStatus::kNone;
    return s;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return absl::DataLossError(absl::StrCat(dir, "/health.json is not JSON"));
  std::string name = j.value("status", "none");
  for (auto c : {HealthStatus::kNone, HealthStatus::kStarting, HealthStatus::kHealthy,
                 HealthStatus::kUnhealthy}) {
    if (HealthStatusName(c) == name) s.status = c;
  }
  s.failing_streak = j.value("failing_streak", 0);
  s.last_exit_code = j.value("last_exit_code", 0);
  s.last_output = j.value("last_output", "");
  s.last_check = absl::FromUnixNanos(j.value("last_check_ns", int64_t{0}));
  return s;
}

HealthMonitor::HealthMonitor(HealthCheckSpec spec, std::string container_dir, Launcher launch)
    : spec_(std::move(spec)), dir_(std::move(container_dir)), launch_(std::move(launch)) {}

void HealthMonitor::Begin(absl::Time now) {
  if (spec_.test.empty() || begun_) return;
  begun_ = true;
  started_at_ = now;
  next_check_ = now + absl::Milliseconds(spec_.interval_ms);
  (void)WriteHealth(dir_, state_);
}

absl::Duration HealthMonitor::Timeout(absl::Time now) const {
  if (!begun_) return absl::InfiniteDuration();
  absl::Time until = probe_.pid > 0 ? deadline_ : next_check_;
  return until > now ? until - now : absl::ZeroDuration();
}

void HealthMonitor::Service(absl::Time now) {
  if (!begun_) return;
  if (probe_.output >= 0) {
    char buf[4096];
    for (;;) {
      ssize_t n = read(probe_.output, buf, sizeof buf);
      if (n <= 0) {
        if (n == 0) {
          close(probe_.output);
          probe_.output = -1;
        }
        break;
      }
      output_.append(buf, n);
      if (output_.size() > 4096) output_.erase(0, output_.size() - 4096);
    }
  }
  if (probe_.pid > 0) {
    int status = 0;
    pid_t r = waitpid(probe_.pid, &status, WNOHANG);
    if (r == probe_.pid) {
      bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      Finish(ok, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), now);
    } else if (now >= deadline_) {
      kill(probe_.pid, SIGKILL);
      waitpid(probe_.pid, nullptr, 0);
      output_ += "health check timed out\n";
      Finish(false, -1, now);
    }
    return;
  }
  if (now < next_check_) return;
  output_.clear();
  absl::StatusOr<ProbeProcess> p = launch_();
  if (!p.ok()) {
    output_ = std::string(p.status().message());
    Finish(false, -1, now);
    return;
  }
  probe_ = *p;
  fcntl(probe_.output, F_SETFL, O_NONBLOCK);
  deadline_ = now + absl::Milliseconds(spec_.timeout_ms);
}

void HealthMonitor::Finish(bool success, int exit_code, absl::Time now) {
  if (probe_.output >= 0) close(probe_.output);
  if (probe_.pidfd >= 0) close(probe_.pidfd);
  probe_ = ProbeProcess{};
  bool in_start_period = now < started_at_ + absl::Milliseconds(spec_.start_period_ms);
  state_ = NextHealth(state_, success, in_start_period, spec_.retries);
  state_.last_exit_code = exit_code;
  state_.last_output = output_;
  state_.last_check = now;
  next_check_ = now + absl::Milliseconds(spec_.interval_ms);
  (void)WriteHealth(dir_, state_);
}

void HealthMonitor::Stop() {
  if (probe_.pid > 0) {
    kill(probe_.pid, SIGKILL);
    waitpid(probe_.pid, nullptr, 0);
  }
  if (probe_.output >= 0) close(probe_.output);
  if (probe_.pidfd >= 0) close(probe_.pidfd);
  probe_ = ProbeProcess{};
}

}  // namespace swarm::agent::runtime

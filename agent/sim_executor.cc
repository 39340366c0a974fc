#include "agent/sim_executor.h"

#include <unistd.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/task_template.h"

namespace swarm::agent {
namespace {

namespace fs = std::filesystem;

// A container's record: "start_ns" while it runs, "start_ns exit_code" once it ended.
struct Record {
  bool started = false;
  absl::Time start;
  std::optional<int> exit;
};

class SimulatedController final : public Controller {
 public:
  SimulatedController(const SimulatedExecutor::Options& options, const api::Task& task,
                      api::NodeDescription node)
      : options_(options),
        task_(task),
        node_(std::move(node)),
        path_((fs::path(options.dir) /
               (task.annotations().name().empty() ? task.id() : task.annotations().name()))
                  .string()),
        image_(task.spec().container().image()),
        args_(task.spec().container().args().begin(), task.spec().container().args().end()) {}

  absl::Status Prepare() override {
    if (absl::StartsWith(image_, "missing")) {
      return absl::NotFoundError(absl::StrCat("image ", image_, " is not on this node"));
    }
    if (!args_.empty() && args_[0] != "run" && !(args_[0] == "exit" && args_.size() == 3)) {
      return absl::InvalidArgumentError(
          "simulated tasks take no args, [\"run\"] or [\"exit\", CODE, DURATION]");
    }
    // Task templates, as a real container's: a bad one rejects the task.
    api::ContainerSpec spec = task_.spec().container();
    RETURN_IF_ERROR(ExpandContainerTemplates(task_, node_, &spec));
    if (fs::exists(path_)) return absl::OkStatus();
    std::error_code ec;
    fs::create_directories(options_.dir, ec);
    std::string expanded = absl::StrCat("hostname=", spec.hostname(), "\n");
    for (const std::string& env : spec.env()) absl::StrAppend(&expanded, "env=", env, "\n");
    for (const api::Mount& m : spec.mounts()) {
      absl::StrAppend(&expanded, "mount=", m.source(), ":", m.target(), "\n");
    }
    RETURN_IF_ERROR(WriteFileAtomically(path_ + ".spec", expanded));
    return WriteFileAtomically(path_, "");
  }

  absl::Status Start() override {
    ASSIGN_OR_RETURN(Record r, Read());
    if (r.started) return absl::OkStatus();
    return Write(absl::StrCat(absl::ToUnixNanos(options_.clock->Now())));
  }

  absl::StatusOr<bool> Started() override {
    absl::StatusOr<Record> r = Read();
    return r.ok() && r->started;
  }

  // Simulated: sleeps on the (maybe fake) clock, deaf to wake_fd.
  absl::StatusOr<std::optional<ExitStatus>> Wait(absl::Duration timeout, int) override {
    ASSIGN_OR_RETURN(Record r, Read());
    if (!r.exit && r.started && args_.size() == 3) {
      int code = 0;
      absl::Duration run;
      if (!absl::SimpleAtoi(args_[1], &code) || !absl::ParseDuration(args_[2], &run)) {
        return absl::InvalidArgumentError("bad exit code or duration in the task's args");
      }
      const absl::Time end = r.start + run;
      const absl::Time now = options_.clock->Now();
      if (now < end) {
        options_.clock->SleepFor(std::min(timeout, end - now));
        if (options_.clock->Now() < end) return std::nullopt;
      }
      RETURN_IF_ERROR(Write(absl::StrCat(absl::ToUnixNanos(r.start), " ", code)));
      r.exit = code;
    }
    if (!r.exit) {
      options_.clock->SleepFor(timeout);
      ASSIGN_OR_RETURN(r, Read());
      if (!r.exit) return std::nullopt;
    }
    ExitStatus e;
    e.exit_code = *r.exit;
    return e;
  }

  Health CheckHealth() override { return Health::kNone; }

  absl::Status Shutdown() override {
    ASSIGN_OR_RETURN(Record r, Read());
    if (r.exit) return absl::OkStatus();
    return Write(absl::StrCat(absl::ToUnixNanos(r.start), " 143"));  // SIGTERM
  }
  absl::Status Terminate() override { return Shutdown(); }

  absl::Status Remove() override {
    std::error_code ec;
    fs::remove(path_, ec);
    fs::remove(path_ + ".spec", ec);
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<Record> Read() {
    ASSIGN_OR_RETURN(std::string data, ReadFile(path_));
    Record r;
    std::vector<std::string> parts = absl::StrSplit(data, ' ', absl::SkipEmpty());
    int64_t ns = 0;
    if (!parts.empty() && absl::SimpleAtoi(parts[0], &ns)) {
      r.started = true;
      r.start = absl::FromUnixNanos(ns);
    }
    int code = 0;
    if (parts.size() > 1 && absl::SimpleAtoi(parts[1], &code)) r.exit = code;
    return r;
  }
  absl::Status Write(const std::string& data) { return WriteFileAtomically(path_, data); }

  const SimulatedExecutor::Options& options_;
  const api::Task task_;
  const api::NodeDescription node_;
  const std::string path_;
  const std::string image_;
  const std::vector<std::string> args_;
};

}  // namespace

SimulatedExecutor::SimulatedExecutor(Options options) : options_(std::move(options)) {}

api::NodeDescription SimulatedExecutor::Describe() {
  api::NodeDescription d;
  std::string hostname = options_.hostname;
  if (hostname.empty()) {
    char buf[256] = {};
    if (gethostname(buf, sizeof(buf) - 1) == 0) hostname = buf;
  }
  d.set_hostname(hostname);
  d.mutable_platform()->set_os("linux");
  d.mutable_platform()->set_architecture("x86_64");
  d.mutable_resources()->set_nano_cpus(options_.nano_cpus);
  d.mutable_resources()->set_memory_bytes(options_.memory_bytes);
  d.mutable_engine()->set_engine_version("swarmd (simulated executor)");
  d.mutable_engine()->mutable_labels()->insert(options_.labels.begin(), options_.labels.end());
  return d;
}

std::unique_ptr<Controller> SimulatedExecutor::NewController(const api::Task& task,
                                                             const Dependencies&) {
  return std::make_unique<SimulatedController>(options_, task, Describe());
}

}  // namespace swarm::agent

#include "cli/progress.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cli/format.h"
#include "common/proto_time.h"

namespace swarm::cli {
namespace {

// Docker pads states to its longest ("preparing").
constexpr size_t kStateWidth = 9;
constexpr int kBarWidth = 50;

int StepOf(api::TaskState s) {
  switch (s) {
    case api::TASK_STATE_NEW:
      return 1;
    case api::TASK_STATE_PENDING:
      return 3;
    case api::TASK_STATE_ASSIGNED:
      return 4;
    case api::TASK_STATE_ACCEPTED:
      return 5;
    case api::TASK_STATE_PREPARING:
      return 6;
    case api::TASK_STATE_READY:
      return 7;
    case api::TASK_STATE_STARTING:
      return 8;
    case api::TASK_STATE_RUNNING:
    case api::TASK_STATE_COMPLETE:
      return kSteps;
    default:
      return 0;
  }
}

// A task its service still wants (not being shut down or removed).
bool Current(const api::Task& t) { return t.desired_state() <= api::TASK_STATE_COMPLETE; }

// As the orchestrator judges it: a task of an older spec version is still current when the
// change touched neither its template nor the endpoint (a scale, an update config).
bool UpToDate(const api::Task& t, const api::Service& s) {
  if (s.spec_version().index() == 0 || t.spec_version().index() == s.spec_version().index()) {
    return true;
  }
  return google::protobuf::util::MessageDifferencer::Equals(t.spec(), s.spec().task_template()) &&
         (!t.has_endpoint() || google::protobuf::util::MessageDifferencer::Equals(
                                   t.endpoint().spec(), s.spec().endpoint_spec()));
}

bool Failed(const api::Task& t) {
  return t.status().state() == api::TASK_STATE_FAILED ||
         t.status().state() == api::TASK_STATE_REJECTED;
}

// The task that stands for a slot or node: a current one of the current spec first, then the
// newest (whose error, if it failed, says why the slot is empty).
const api::Task* Representative(const std::vector<const api::Task*>& tasks, const api::Service& s) {
  const api::Task* best = nullptr;
  auto rank = [&](const api::Task* t) {
    return std::make_tuple(Current(*t), UpToDate(*t, s), FromTimestamp(t->meta().created_at()),
                           static_cast<int>(t->status().state()));
  };
  for (const api::Task* t : tasks) {
    if (best == nullptr || rank(t) > rank(best)) best = t;
  }
  return best;
}

std::string Key(const api::Task& t) { return t.slot() != 0 ? absl::StrCat(t.slot()) : t.node_id(); }

ProgressView::Line LineOf(const std::string& id, const api::Task* t) {
  ProgressView::Line line;
  line.id = id;
  if (t == nullptr) return line;
  if (!t->status().err().empty()) {
    line.state = t->status().err();
    line.error = true;
    return line;
  }
  line.state = absl::AsciiStrToLower(TaskStateName(t->status().state()));
  line.step = StepOf(t->status().state());
  return line;
}

}  // namespace

ProgressView Evaluate(const api::Service& service, const std::vector<api::Task>& tasks,
                      bool rollback) {
  ProgressView view;
  const api::ServiceSpec& spec = service.spec();
  std::map<std::string, std::vector<const api::Task*>> by_key;
  for (const api::Task& t : tasks) by_key[Key(t)].push_back(&t);

  bool updating = false;
  const std::string& message = service.update_status().message();
  switch (service.update_status().state()) {
    case api::UPDATE_STATE_UPDATING:
    case api::UPDATE_STATE_ROLLBACK_STARTED:
      updating = true;
      break;
    case api::UPDATE_STATE_PAUSED:
      view.failure = absl::StrCat("update paused: ", message);
      break;
    case api::UPDATE_STATE_ROLLBACK_PAUSED:
      view.failure = absl::StrCat("rollback paused: ", message);
      break;
    case api::UPDATE_STATE_ROLLBACK_COMPLETED:
      if (!rollback) view.failure = absl::StrCat("update rolled back: ", message);
      break;
    default:
      break;
  }

  auto done = [&](const api::Task* t, api::TaskState goal) {
    return t != nullptr && Current(*t) && UpToDate(*t, service) && t->status().state() == goal;
  };
  if (spec.has_replicated() || spec.has_replicated_job()) {
    const bool job = spec.has_replicated_job();
    view.is_job = job;
    const uint64_t slots = job ? std::min<uint64_t>(spec.replicated_job().max_concurrent() > 0
                                                        ? spec.replicated_job().max_concurrent()
                                                        : spec.replicated_job().total_completions(),
                                                    spec.replicated_job().total_completions())
                               : spec.replicated().replicas();
    uint64_t running = 0;
    for (uint64_t slot = 1; slot <= slots; ++slot) {
      auto it = by_key.find(absl::StrCat(slot));
      const api::Task* t = it == by_key.end() ? nullptr : Representative(it->second, service);
      if (done(t, api::TASK_STATE_RUNNING)) ++running;
      view.lines.push_back(LineOf(absl::StrCat(slot, "/", slots), t));
    }
    if (job) {
      const uint64_t total = spec.replicated_job().total_completions();
      uint64_t completed = 0;
      for (const api::Task& t : tasks) {
        if (UpToDate(t, service) && t.status().state() == api::TASK_STATE_COMPLETE) ++completed;
      }
      view.overall = absl::StrCat("job progress: ", std::min(completed, total), " out of ", total,
                                  " complete");
      view.converged = completed >= total;
    } else {
      view.overall = absl::StrCat("overall progress: ", running, " out of ", slots, " tasks");
      view.converged = running == slots && !updating;
    }
  } else {
    // Global services and jobs: one task per node; the nodes are those with a current task.
    const bool job = spec.has_global_job();
    view.is_job = job;
    uint64_t nodes = 0, finished = 0;
    for (const auto& [node, node_tasks] : by_key) {
      const api::Task* t = Representative(node_tasks, service);
      if (t == nullptr || !Current(*t)) continue;
      ++nodes;
      if (done(t, job ? api::TASK_STATE_COMPLETE : api::TASK_STATE_RUNNING)) ++finished;
      view.lines.push_back(LineOf(TruncateId(node, /*no_trunc=*/false), t));
    }
    view.overall = job ? absl::StrCat("job progress: ", finished, " out of ", nodes, " complete")
                       : absl::StrCat("overall progress: ", finished, " out of ", nodes, " tasks");
    view.converged = finished == nodes && !updating;
  }
  return view;
}

std::vector<std::string> RenderProgress(const ProgressView& view, bool bars) {
  std::vector<std::string> out = {view.overall};
  for (const ProgressView::Line& l : view.lines) {
    std::string line = absl::StrCat(l.id, ": ");
    if (l.state.empty()) {
      out.push_back(line);
      continue;
    }
    if (l.error || !bars) {
      out.push_back(line + l.state);
      continue;
    }
    std::string state = l.state;
    if (state.size() < kStateWidth) state.append(kStateWidth - state.size(), ' ');
    const int filled = std::min(kBarWidth, l.step * 100 / kSteps / 2);
    absl::StrAppend(&line, state, " [", std::string(filled, '='), ">",
                    std::string(kBarWidth - filled, ' '), "]");
    out.push_back(line);
  }
  return out;
}

absl::Status WaitForConvergence(ProgressSource& source, Clock& clock, std::ostream& out,
                                const ProgressOptions& options) {
  // Failed tasks seen at the first poll are history; later failures count per slot.
  std::set<std::string> failed_before, counted;
  std::map<std::string, int> failures;
  bool first = true;
  std::string fingerprint;
  absl::Time last_change = clock.Now();
  std::optional<absl::Time> converged_since;
  size_t drawn = 0;                            // terminal: lines of the block on screen
  std::map<std::string, std::string> printed;  // plain: the last line printed per ID
  const std::string verify_line =
      options.verify > absl::ZeroDuration()
          ? absl::StrCat("verify: Waiting ", absl::ToInt64Seconds(options.verify),
                         " seconds to verify that tasks are stable...")
          : "";

  auto draw = [&](const ProgressView& view, const std::string& last_line) {
    if (options.quiet) return;
    std::vector<std::string> lines = RenderProgress(view, options.terminal);
    if (!last_line.empty()) lines.push_back(last_line);
    if (options.terminal) {
      if (drawn > 0) out << "\x1b[" << drawn << "A";
      while (lines.size() < drawn) lines.push_back("");
      for (const std::string& l : lines) out << "\x1b[2K" << l << "\n";
      drawn = lines.size();
    } else {
      for (size_t i = 0; i < lines.size(); ++i) {
        const std::string id = i == 0 ? "" : i <= view.lines.size() ? view.lines[i - 1].id : "~";
        auto [it, inserted] = printed.try_emplace(id, lines[i]);
        if (!inserted && it->second == lines[i]) continue;
        it->second = lines[i];
        if (absl::EndsWith(lines[i], ": ")) continue;  // a slot with no task yet
        out << lines[i] << "\n";
      }
    }
    out.flush();
  };

  while (true) {
    absl::StatusOr<api::Service> service = source.GetService();
    if (!service.ok()) return service.status();
    absl::StatusOr<std::vector<api::Task>> tasks = source.ListTasks();
    if (!tasks.ok()) return tasks.status();
    const absl::Time now = clock.Now();
    ProgressView view = Evaluate(*service, *tasks, options.rollback);
    const std::string name = service->spec().annotations().name();

    std::string now_fingerprint;
    for (const api::Task& t : *tasks) {
      absl::StrAppend(&now_fingerprint, t.id(), ":", t.status().state(), ":", t.status().err(),
                      ";");
      if (!Failed(t)) continue;
      if (first) {
        failed_before.insert(t.id());
      } else if (!failed_before.contains(t.id()) && counted.insert(t.id()).second &&
                 ++failures[Key(t)] >= kMaxFailuresPerSlot && view.failure.empty()) {
        const std::string what = t.slot() != 0 ? absl::StrCat("task ", name, ".", t.slot())
                                               : absl::StrCat("task on node ", t.node_id());
        view.failure = absl::StrCat(what, " failed ", kMaxFailuresPerSlot, " times: ",
                                    t.status().err().empty()
                                        ? absl::AsciiStrToLower(TaskStateName(t.status().state()))
                                        : t.status().err());
      }
    }
    first = false;
    if (now_fingerprint != fingerprint) {
      fingerprint = now_fingerprint;
      last_change = now;
    }
    if (view.failure.empty() && !view.converged && now - last_change >= options.stall) {
      for (const ProgressView::Line& l : view.lines) {
        if (l.error) {
          view.failure = absl::StrCat(l.id, ": ", l.state);
          break;
        }
      }
    }

    if (!view.failure.empty()) {
      draw(view, "");
      return absl::FailedPreconditionError(
          absl::StrCat("service ", name, " did not converge: ", view.failure));
    }
    if (view.converged) {
      if (!converged_since) converged_since = now;
      if (view.is_job || now - *converged_since >= options.verify) {
        draw(view, view.is_job ? "job complete" : "verify: Service converged");
        return absl::OkStatus();
      }
      draw(view, verify_line);
    } else {
      converged_since.reset();
      draw(view, "");
    }
    clock.SleepFor(options.poll);
  }
}

}  // namespace swarm::cli

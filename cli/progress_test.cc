#include "cli/progress.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace swarm::cli {
namespace {

// Sleeps return at once, having moved time forward.
class SteppingClock final : public Clock {
 public:
  absl::Time Now() const override { return now_; }
  void SleepFor(absl::Duration d) override { now_ += d; }

 private:
  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
};

// Serves one scripted snapshot per poll; the last one stays.
class ScriptedSource final : public ProgressSource {
 public:
  struct Snapshot {
    api::Service service;
    std::vector<api::Task> tasks;
  };
  explicit ScriptedSource(std::vector<Snapshot> script) : script_(std::move(script)) {}

  absl::StatusOr<api::Service> GetService() override { return Current().service; }
  absl::StatusOr<std::vector<api::Task>> ListTasks() override {
    std::vector<api::Task> tasks = Current().tasks;
    ++polls_;
    return tasks;
  }
  int polls() const { return polls_; }

 private:
  const Snapshot& Current() const { return script_[std::min<size_t>(polls_, script_.size() - 1)]; }
  std::vector<Snapshot> script_;
  int polls_ = 0;
};

api::Service Replicated(uint64_t replicas) {
  api::Service s;
  s.set_id("svc1");
  s.mutable_spec()->mutable_annotations()->set_name("web");
  s.mutable_spec()->mutable_replicated()->set_replicas(replicas);
  s.mutable_spec_version()->set_index(7);
  return s;
}

api::Task T(const std::string& id, uint64_t slot, api::TaskState state, const std::string& err = "",
            uint64_t version = 7) {
  api::Task t;
  t.set_id(id);
  t.set_slot(slot);
  t.set_node_id("node1");
  t.set_desired_state(api::TASK_STATE_RUNNING);
  t.mutable_status()->set_state(state);
  t.mutable_status()->set_err(err);
  t.mutable_spec_version()->set_index(version);
  if (state == api::TASK_STATE_FAILED || state == api::TASK_STATE_REJECTED) {
    t.set_desired_state(api::TASK_STATE_SHUTDOWN);
  }
  t.mutable_meta()->mutable_created_at()->set_seconds(static_cast<int64_t>(id.back()));
  return t;
}

struct Outcome {
  absl::Status status;
  std::string out;
  int polls = 0;
};

Outcome Wait(std::vector<ScriptedSource::Snapshot> script, ProgressOptions options = {}) {
  ScriptedSource source(std::move(script));
  SteppingClock clock;
  std::ostringstream out;
  Outcome o;
  o.status = WaitForConvergence(source, clock, out, options);
  o.out = out.str();
  o.polls = source.polls();
  return o;
}

TEST(Progress, Wait_ReplicatedConvergesAfterVerifyPeriod) {
  Outcome o = Wait({
      {Replicated(3), {}},
      {Replicated(3),
       {T("a1", 1, api::TASK_STATE_PENDING), T("b1", 2, api::TASK_STATE_ASSIGNED),
        T("c1", 3, api::TASK_STATE_NEW)}},
      {Replicated(3),
       {T("a1", 1, api::TASK_STATE_RUNNING), T("b1", 2, api::TASK_STATE_RUNNING),
        T("c1", 3, api::TASK_STATE_PREPARING)}},
      {Replicated(3),
       {T("a1", 1, api::TASK_STATE_RUNNING), T("b1", 2, api::TASK_STATE_RUNNING),
        T("c1", 3, api::TASK_STATE_RUNNING)}},
  });
  ASSERT_TRUE(o.status.ok()) << o.status;
  EXPECT_EQ(o.out,
            "overall progress: 0 out of 3 tasks\n"
            "1/3: pending\n"
            "2/3: assigned\n"
            "3/3: new\n"
            "overall progress: 2 out of 3 tasks\n"
            "1/3: running\n"
            "2/3: running\n"
            "3/3: preparing\n"
            "overall progress: 3 out of 3 tasks\n"
            "3/3: running\n"
            "verify: Waiting 5 seconds to verify that tasks are stable...\n"
            "verify: Service converged\n");
  // 5 s of verification at 200 ms polls after the first converged one.
  EXPECT_EQ(o.polls, 3 + 1 + 25);
}

TEST(Progress, Wait_VerifyStartsOverWhenATaskFalls) {
  std::vector<ScriptedSource::Snapshot> script;
  for (int i = 0; i < 10; ++i)
    script.push_back({Replicated(1), {T("a1", 1, api::TASK_STATE_RUNNING)}});
  script.push_back({Replicated(1), {T("a1", 1, api::TASK_STATE_FAILED, "exit 1")}});
  script.push_back(
      {Replicated(1),
       {T("a1", 1, api::TASK_STATE_FAILED, "exit 1"), T("a2", 1, api::TASK_STATE_RUNNING)}});
  Outcome o = Wait(script);
  ASSERT_TRUE(o.status.ok()) << o.status;
  EXPECT_EQ(o.polls, 10 + 1 + 26);
  EXPECT_NE(o.out.find("1/1: exit 1\n"), std::string::npos) << o.out;
}

TEST(Progress, Wait_ZeroReplicasConverge) {
  ProgressOptions options;
  options.verify = absl::ZeroDuration();
  Outcome o = Wait({{Replicated(0), {}}}, options);
  ASSERT_TRUE(o.status.ok()) << o.status;
  EXPECT_EQ(o.out, "overall progress: 0 out of 0 tasks\nverify: Service converged\n");
}

TEST(Progress, Wait_TasksOfTheOldSpecDoNotCount) {
  ProgressOptions options;
  options.verify = absl::ZeroDuration();
  api::Service updating = Replicated(1);
  updating.mutable_update_status()->set_state(api::UPDATE_STATE_UPDATING);
  api::Service done = Replicated(1);
  done.mutable_update_status()->set_state(api::UPDATE_STATE_COMPLETED);
  api::Task old = T("a1", 1, api::TASK_STATE_RUNNING, "", /*version=*/6);
  old.mutable_spec()->mutable_container()->set_image("nginx:1.24");
  Outcome o = Wait({{updating, {old}},
                    {updating, {T("a2", 1, api::TASK_STATE_STARTING)}},
                    {done, {T("a2", 1, api::TASK_STATE_RUNNING)}}},
                   options);
  ASSERT_TRUE(o.status.ok()) << o.status;
  EXPECT_EQ(o.polls, 3);
  EXPECT_EQ(o.out.find("overall progress: 1 out of 1"),
            o.out.rfind("overall progress: 1 out of 1"));
}

// A scale changes the spec version but not the tasks' template: the tasks still count.
TEST(Progress, Evaluate_ScaledTasksOfAnOlderVersionCount) {
  api::Service scaled = Replicated(2);
  ProgressView v = Evaluate(
      scaled,
      {T("a1", 1, api::TASK_STATE_RUNNING, "", /*version=*/6), T("a2", 2, api::TASK_STATE_RUNNING)},
      false);
  EXPECT_TRUE(v.converged);
  EXPECT_EQ(v.overall, "overall progress: 2 out of 2 tasks");
}

TEST(Progress, Wait_UpdatePausedFails) {
  api::Service paused = Replicated(1);
  paused.mutable_update_status()->set_state(api::UPDATE_STATE_PAUSED);
  paused.mutable_update_status()->set_message("update paused due to failure of task abc");
  Outcome o = Wait({{paused, {T("a1", 1, api::TASK_STATE_RUNNING, "", 6)}}});
  EXPECT_EQ(o.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(
      o.status.message(),
      "service web did not converge: update paused: update paused due to failure of task abc");

  api::Service rolled_back = Replicated(1);
  rolled_back.mutable_update_status()->set_state(api::UPDATE_STATE_ROLLBACK_COMPLETED);
  rolled_back.mutable_update_status()->set_message("rollback completed");
  o = Wait({{rolled_back, {T("a1", 1, api::TASK_STATE_RUNNING)}}});
  EXPECT_EQ(o.status.message(),
            "service web did not converge: update rolled back: rollback completed");
  // A rollback that completed is what `service rollback` waits for.
  ProgressOptions rollback;
  rollback.rollback = true;
  rollback.verify = absl::ZeroDuration();
  o = Wait({{rolled_back, {T("a1", 1, api::TASK_STATE_RUNNING)}}}, rollback);
  EXPECT_TRUE(o.status.ok()) << o.status;
}

TEST(Progress, Wait_UnplaceableTaskFailsAfterStall) {
  const std::string err = "no suitable node (scheduling constraints not satisfied on 3 nodes)";
  Outcome o = Wait({{Replicated(1), {T("a1", 1, api::TASK_STATE_PENDING, err)}}});
  EXPECT_EQ(o.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(o.status.message(), "service web did not converge: 1/1: " + err);
  EXPECT_EQ(o.polls, 301);  // 60 s at 200 ms
  EXPECT_EQ(o.out, "overall progress: 0 out of 1 tasks\n1/1: " + err + "\n");
}

TEST(Progress, Wait_SlotFailingThreeTimesFails) {
  // A failure from before the wait does not count.
  api::Task old = T("a0", 1, api::TASK_STATE_FAILED, "old");
  Outcome o = Wait({
      {Replicated(1), {old, T("a1", 1, api::TASK_STATE_PREPARING)}},
      {Replicated(1), {old, T("a1", 1, api::TASK_STATE_REJECTED, "image not found")}},
      {Replicated(1),
       {old, T("a1", 1, api::TASK_STATE_REJECTED, "image not found"),
        T("a2", 1, api::TASK_STATE_REJECTED, "image not found")}},
      {Replicated(1),
       {old, T("a1", 1, api::TASK_STATE_REJECTED, "image not found"),
        T("a2", 1, api::TASK_STATE_REJECTED, "image not found"),
        T("a3", 1, api::TASK_STATE_REJECTED, "image not found")}},
  });
  EXPECT_EQ(o.status.message(),
            "service web did not converge: task web.1 failed 3 times: image not found");
  EXPECT_EQ(o.polls, 4);
}

TEST(Progress, Wait_QuietPrintsNothing) {
  ProgressOptions options;
  options.quiet = true;
  Outcome o = Wait({{Replicated(1), {T("a1", 1, api::TASK_STATE_RUNNING)}}}, options);
  ASSERT_TRUE(o.status.ok());
  EXPECT_EQ(o.out, "");
}

TEST(Progress, Wait_TerminalRedrawsInPlace) {
  ProgressOptions options;
  options.terminal = true;
  options.verify = absl::ZeroDuration();
  Outcome o = Wait({{Replicated(1), {T("a1", 1, api::TASK_STATE_PREPARING)}},
                    {Replicated(1), {T("a1", 1, api::TASK_STATE_RUNNING)}}},
                   options);
  ASSERT_TRUE(o.status.ok());
  EXPECT_EQ(o.out,
            "\x1b[2Koverall progress: 0 out of 1 tasks\n"
            "\x1b[2K1/1: preparing [=================================>                 ]\n"
            "\x1b[2A"
            "\x1b[2Koverall progress: 1 out of 1 tasks\n"
            "\x1b[2K1/1: running   [==================================================>]\n"
            "\x1b[2Kverify: Service converged\n");
}

TEST(Progress, Evaluate_GlobalServiceAndJobs) {
  api::Service global;
  global.mutable_spec()->mutable_annotations()->set_name("agent");
  global.mutable_spec()->mutable_global();
  api::Task on1 = T("g1", 0, api::TASK_STATE_RUNNING, "", 0);
  on1.set_node_id("node1id000000000000");
  api::Task on2 = T("g2", 0, api::TASK_STATE_STARTING, "", 0);
  on2.set_node_id("node2id000000000000");
  ProgressView v = Evaluate(global, {on1, on2}, false);
  EXPECT_EQ(v.overall, "overall progress: 1 out of 2 tasks");
  EXPECT_FALSE(v.converged);
  EXPECT_EQ(RenderProgress(v, false),
            (std::vector<std::string>{"overall progress: 1 out of 2 tasks", "node1id00000: running",
                                      "node2id00000: starting"}));

  api::Service job;
  job.mutable_spec()->mutable_annotations()->set_name("migrate");
  job.mutable_spec()->mutable_replicated_job()->set_total_completions(2);
  api::Task done = T("j1", 1, api::TASK_STATE_COMPLETE, "", 0);
  done.set_desired_state(api::TASK_STATE_COMPLETE);
  v = Evaluate(job, {done, T("j2", 2, api::TASK_STATE_RUNNING, "", 0)}, false);
  EXPECT_EQ(v.overall, "job progress: 1 out of 2 complete");
  EXPECT_FALSE(v.converged);
  api::Task done2 = done;
  done2.set_id("j3");
  done2.set_slot(2);
  v = Evaluate(job, {done, done2}, false);
  EXPECT_TRUE(v.converged);
  EXPECT_TRUE(v.is_job);
}

}  // namespace
}  // namespace swarm::cli

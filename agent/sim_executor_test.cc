#include "agent/sim_executor.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace swarm::agent {
namespace {

class SimulatedExecutorTest : public ::testing::Test {
 protected:
  SimulatedExecutorTest() {
    options_.dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/sim-",
                                ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(options_.dir);
    options_.hostname = "sim-host";
  }
  static api::Task Task(const std::string& name, const std::vector<std::string>& args,
                        const std::string& image = "sim") {
    api::Task t;
    t.set_id(name);
    t.mutable_annotations()->set_name(name);
    t.mutable_spec()->mutable_container()->set_image(image);
    for (const auto& a : args) t.mutable_spec()->mutable_container()->add_args(a);
    return t;
  }
  SimulatedExecutor::Options options_;
};

TEST_F(SimulatedExecutorTest, ExitsWithItsCodeAfterItsDuration) {
  SimulatedExecutor e(options_);
  auto c = e.NewController(Task("t1", {"exit", "3", "50ms"}), {});
  ASSERT_TRUE(c->Prepare().ok());
  EXPECT_FALSE(*c->Started());
  ASSERT_TRUE(c->Start().ok());
  EXPECT_TRUE(*c->Started());
  auto first = c->Wait(absl::Milliseconds(1), -1);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->has_value());
  auto exit = c->Wait(absl::Seconds(1), -1);
  ASSERT_TRUE(exit.ok() && exit->has_value());
  EXPECT_EQ((*exit)->exit_code, 3);
}

TEST_F(SimulatedExecutorTest, ARunningContainerOutlivesItsControllerAndStopsOnShutdown) {
  SimulatedExecutor e(options_);
  auto c = e.NewController(Task("t1", {}), {});
  ASSERT_TRUE(c->Prepare().ok());
  ASSERT_TRUE(c->Start().ok());
  c.reset();
  // A new controller (a restarted agent) finds it started and still running.
  auto again = e.NewController(Task("t1", {}), {});
  EXPECT_TRUE(*again->Started());
  EXPECT_FALSE(again->Wait(absl::Milliseconds(1), -1)->has_value());
  ASSERT_TRUE(again->Shutdown().ok());
  EXPECT_EQ((*again->Wait(absl::ZeroDuration(), -1))->exit_code, 143);
  ASSERT_TRUE(again->Remove().ok());
  EXPECT_FALSE(*e.NewController(Task("t1", {}), {})->Started());
}

TEST_F(SimulatedExecutorTest, MissingImagesAndBadArgsCannotBePrepared) {
  SimulatedExecutor e(options_);
  EXPECT_EQ(e.NewController(Task("t1", {}, "missing:1"), {})->Prepare().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(e.NewController(Task("t2", {"dance"}), {})->Prepare().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e.Describe().hostname(), "sim-host");
}

TEST_F(SimulatedExecutorTest, TaskTemplatesAreExpandedOrRejectTheTask) {
  SimulatedExecutor e(options_);
  api::Task t = Task("web.2.t1", {});
  t.set_slot(2);
  t.set_node_id("node1");
  t.mutable_service_annotations()->set_name("web");
  t.mutable_spec()->mutable_container()->set_hostname("{{.Service.Name}}-{{.Task.Slot}}");
  t.mutable_spec()->mutable_container()->add_env("HOST={{.Node.Hostname}}");
  ASSERT_TRUE(e.NewController(t, {})->Prepare().ok());
  std::ifstream spec(options_.dir + "/web.2.t1.spec");
  std::string text((std::istreambuf_iterator<char>(spec)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "hostname=web-2\nenv=HOST=sim-host\n");

  api::Task bad = Task("web.3.t2", {});
  bad.mutable_spec()->mutable_container()->set_hostname("{{.Node.Hostnme}}");
  absl::Status s = e.NewController(bad, {})->Prepare();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("can't evaluate field Hostnme"), std::string::npos) << s;
}

}  // namespace
}  // namespace swarm::agent

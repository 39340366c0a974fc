#include "agent/log_publisher.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "agent/runtime/logs.h"
#include "common/clock.h"
#include "common/proto_time.h"

namespace swarm::agent {
namespace {

class LogPublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) / ("logpub" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "container.log").string();
    clock_.Advance(absl::FromUnixSeconds(1700000000) - clock_.Now());
    writer_ = std::make_unique<runtime::LogWriter>(path_, 0, 1, clock_);
    ASSERT_TRUE(writer_->Open().ok());
  }
  void TearDown() override {
    writer_.reset();
    std::filesystem::remove_all(dir_);
  }
  // Writes line<i> for i in [from, to), one second apart; odd lines on stderr.
  void WriteLines(int from, int to) {
    for (int i = from; i < to; ++i) {
      ASSERT_TRUE(
          writer_->Write(i % 2 ? "stderr" : "stdout", "line" + std::to_string(i) + "\n").ok());
      clock_.Advance(absl::Seconds(1));
    }
  }
  std::vector<std::string> Read(const api::LogSubscriptionOptions& o) {
    std::vector<std::string> got;
    absl::Status s = LogPublisher::ReadTask(
        path_, o, [] { return true; }, [&](const runtime::LogEntry& e) { got.push_back(e.log); });
    EXPECT_TRUE(s.ok()) << s;
    return got;
  }

  std::filesystem::path dir_;
  std::string path_;
  FakeClock clock_;
  std::unique_ptr<runtime::LogWriter> writer_;
};

TEST_F(LogPublisherTest, ReadTask_AllInOrder) {
  WriteLines(0, 3);
  EXPECT_EQ(Read({}), (std::vector<std::string>{"line0\n", "line1\n", "line2\n"}));
}

TEST_F(LogPublisherTest, ReadTask_TailKeepsTheLastLines) {
  WriteLines(0, 5);
  api::LogSubscriptionOptions o;
  o.set_tail(-3);  // the last 2
  EXPECT_EQ(Read(o), (std::vector<std::string>{"line3\n", "line4\n"}));
  o.set_tail(-1);  // only new lines
  EXPECT_TRUE(Read(o).empty());
  o.set_tail(-100);
  EXPECT_EQ(Read(o).size(), 5u);
  o.set_tail(4);  // skips 4
  EXPECT_EQ(Read(o), (std::vector<std::string>{"line4\n"}));
}

TEST_F(LogPublisherTest, ReadTask_SinceAndStreams) {
  const absl::Time start = clock_.Now();
  WriteLines(0, 5);
  api::LogSubscriptionOptions o;
  *o.mutable_since() = ToTimestamp(start + absl::Seconds(2));
  EXPECT_EQ(Read(o), (std::vector<std::string>{"line2\n", "line3\n", "line4\n"}));
  o.add_streams(api::LOG_STREAM_STDERR);
  EXPECT_EQ(Read(o), (std::vector<std::string>{"line3\n"}));
}

TEST_F(LogPublisherTest, ReadTask_FollowSeesNewLinesUntilStopped) {
  WriteLines(0, 2);
  api::LogSubscriptionOptions o;
  o.set_follow(true);
  o.set_tail(-2);  // the last line, then new ones
  std::atomic<bool> running{true};
  std::atomic<int> count{0};
  std::vector<std::string> got;
  std::thread reader([&] {
    absl::Status s = LogPublisher::ReadTask(
        path_, o, [&] { return running.load(); },
        [&](const runtime::LogEntry& e) {
          got.push_back(e.log);
          ++count;
        },
        absl::Milliseconds(10));
    EXPECT_TRUE(s.ok()) << s;
  });
  while (count < 1) absl::SleepFor(absl::Milliseconds(5));
  WriteLines(2, 4);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (count < 3 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  running = false;
  reader.join();
  EXPECT_EQ(got, (std::vector<std::string>{"line1\n", "line2\n", "line3\n"}));
}

}  // namespace
}  // namespace swarm::agent

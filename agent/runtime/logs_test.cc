#include "agent/runtime/logs.h"

#include <stdlib.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "agent/runtime/fsutil.h"
#include "gtest/gtest.h"

namespace swarm::agent::runtime {
namespace {

class LogsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/logs_test.XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/container.log";
  }
  void TearDown() override { ASSERT_TRUE(RemoveAll(dir_).ok()); }
  std::vector<LogEntry> ReadAll() {
    std::vector<LogEntry> out;
    EXPECT_TRUE(ReadLogs(path_, {}, [&](const LogEntry& e) {
                  out.push_back(e);
                  return true;
                }).ok());
    return out;
  }
  std::string dir_, path_;
  FakeClock clock_;
};

TEST_F(LogsTest, Write_SplitsLinesKeepsStreamsAndTime) {
  LogWriter w(path_, 0, 1, clock_);
  ASSERT_TRUE(w.Open().ok());
  ASSERT_TRUE(w.Write("stdout", "one\ntw").ok());
  ASSERT_TRUE(w.Write("stderr", "err \"quoted\"\n").ok());
  ASSERT_TRUE(w.Write("stdout", "o\n").ok());
  ASSERT_TRUE(w.Write("stdout", "no newline").ok());
  ASSERT_TRUE(w.Flush().ok());
  auto entries = ReadAll();
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[0].log, "one\n");
  EXPECT_EQ(entries[0].stream, "stdout");
  EXPECT_EQ(entries[0].time, clock_.Now());
  EXPECT_EQ(entries[1].log, "err \"quoted\"\n");
  EXPECT_EQ(entries[1].stream, "stderr");
  EXPECT_EQ(entries[2].log, "two\n");
  EXPECT_EQ(entries[3].log, "no newline");
}

TEST_F(LogsTest, FormatLogLine_IsDockerJsonFile) {
  std::string line = FormatLogLine({"stdout", "hi\n", absl::FromUnixSeconds(0)});
  EXPECT_EQ(
      line,
      "{\"log\":\"hi\\n\",\"stream\":\"stdout\",\"time\":\"1970-01-01T00:00:00.000000000Z\"}\n");
}

TEST_F(LogsTest, Rotate_KeepsAtMostMaxFilesAndReadsOldestFirst) {
  LogWriter w(path_, 200, 3, clock_);
  ASSERT_TRUE(w.Open().ok());
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(w.Write("stdout", "line " + std::to_string(i) + "\n").ok());
  }
  EXPECT_EQ(access((path_ + ".1").c_str(), F_OK), 0);
  EXPECT_EQ(access((path_ + ".2").c_str(), F_OK), 0);
  EXPECT_NE(access((path_ + ".3").c_str(), F_OK), 0);
  auto entries = ReadAll();
  ASSERT_FALSE(entries.empty());
  EXPECT_LT(entries.size(), 30u);  // the oldest were rotated away
  EXPECT_EQ(entries.back().log, "line 29\n");
  for (size_t i = 1; i < entries.size(); ++i) {
    EXPECT_LT(std::stoi(entries[i - 1].log.substr(5)), std::stoi(entries[i].log.substr(5)));
  }
}

TEST_F(LogsTest, Follow_SeesLinesWrittenLaterUntilNotRunning) {
  LogWriter w(path_, 0, 1, clock_);
  ASSERT_TRUE(w.Open().ok());
  ASSERT_TRUE(w.Write("stdout", "first\n").ok());
  std::atomic<bool> running{true};
  std::vector<std::string> seen;
  std::thread reader([&] {
    ReadLogsOptions o;
    o.follow = true;
    o.poll_interval = absl::Milliseconds(5);
    o.still_running = [&] { return running.load(); };
    EXPECT_TRUE(ReadLogs(path_, o, [&](const LogEntry& e) {
                  seen.push_back(e.log);
                  return true;
                }).ok());
  });
  absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(w.Write("stdout", "second\n").ok());
  absl::SleepFor(absl::Milliseconds(50));
  running = false;
  reader.join();
  EXPECT_EQ(seen, (std::vector<std::string>{"first\n", "second\n"}));
}

}  // namespace
}  // namespace swarm::agent::runtime

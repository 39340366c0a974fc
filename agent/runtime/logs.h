// Container logs in Docker's json-file format: one JSON object per line,
// {"log":"text\n","stream":"stdout","time":"2026-01-02T03:04:05.123456789Z"}, written by
// the shim and rotated by size (container.log, container.log.1, ... oldest last), read back
// with follow for `service logs` and the CLI.
//
// Owner: LogWriter belongs to the shim of one container (one writer per file); any number
// of LogReaders may read concurrently. Thread-safety: a LogWriter is not thread-safe.
// Invariant: every line in a log file is a complete JSON object (a line is written with
// one write() call; a reader that meets a partial last line waits for the rest).
#ifndef SWARM_AGENT_RUNTIME_LOGS_H_
#define SWARM_AGENT_RUNTIME_LOGS_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace swarm::agent::runtime {

struct LogEntry {
  std::string stream;  // "stdout" or "stderr"
  std::string log;     // the line, with its newline when it had one
  absl::Time time;
};

class LogWriter {
 public:
  // max_size_bytes 0 = never rotate; max_files counts the current file.
  LogWriter(std::string path, int64_t max_size_bytes, int max_files, Clock& clock);
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  absl::Status Open();
  // Splits `data` into lines; a trailing partial line is kept until its newline or Flush().
  absl::Status Write(const std::string& stream, std::string_view data);
  absl::Status Flush();

 private:
  absl::Status WriteLine(const std::string& stream, std::string_view line);
  absl::Status Rotate();

  std::string path_;
  int64_t max_size_;
  int max_files_;
  Clock& clock_;
  int fd_ = -1;
  int64_t size_ = 0;
  std::string partial_[2];  // stdout, stderr
};

std::string FormatLogLine(const LogEntry& entry);
bool ParseLogLine(std::string_view line, LogEntry* entry);

struct ReadLogsOptions {
  bool follow = false;
  // With follow: called while no new data is there; reading stops once it returns false
  // and the file has been drained.
  std::function<bool()> still_running;
  absl::Duration poll_interval = absl::Milliseconds(50);
};

// Calls sink for every entry, oldest first (rotated files included); sink returns false to
// stop early.
absl::Status ReadLogs(const std::string& path, const ReadLogsOptions& options,
                      const std::function<bool(const LogEntry&)>& sink);

}  // namespace swarm::agent::runtime

#endif  // SWARM_AGENT_RUNTIME_LOGS_H_

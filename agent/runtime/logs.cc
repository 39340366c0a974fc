#include "agent/runtime/logs.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/status_macros.h"

namespace swarm::agent::runtime {

LogWriter::LogWriter(std::string path, int64_t max_size_bytes, int max_files, Clock& clock)
    : path_(std::move(path)),
      max_size_(max_size_bytes),
      max_files_(max_files < 1 ? 1 : max_files),
      clock_(clock) {}

LogWriter::~LogWriter() {
  (void)Flush();
  if (fd_ >= 0) close(fd_);
}

absl::Status LogWriter::Open() {
  fd_ = open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd_ < 0) return ErrnoToStatus(errno, absl::StrCat("opening log ", path_));
  struct stat st;
  size_ = fstat(fd_, &st) == 0 ? st.st_size : 0;
  return absl::OkStatus();
}

absl::Status LogWriter::Write(const std::string& stream, std::string_view data) {
  std::string& partial = partial_[stream == "stderr" ? 1 : 0];
  size_t start = 0;
  while (start < data.size()) {
    size_t nl = data.find('\n', start);
    if (nl == std::string_view::npos) {
      partial.append(data.substr(start));
      // A line without end still gets written once it is large (Docker cuts at 16 KiB).
      if (partial.size() >= 16384) {
        RETURN_IF_ERROR(WriteLine(stream, partial));
        partial.clear();
      }
      break;
    }
    partial.append(data.substr(start, nl + 1 - start));
    RETURN_IF_ERROR(WriteLine(stream, partial));
    partial.clear();
    start = nl + 1;
  }
  return absl::OkStatus();
}

absl::Status LogWriter::Flush() {
  for (int i = 0; i < 2; ++i) {
    if (!partial_[i].empty()) {
      RETURN_IF_ERROR(WriteLine(i == 0 ? "stdout" : "stderr", partial_[i]));
      partial_[i].clear();
    }
  }
  return absl::OkStatus();
}

absl::Status LogWriter::WriteLine(const std::string& stream, std::string_view line) {
  std::string out = FormatLogLine({stream, std::string(line), clock_.Now()});
  if (max_size_ > 0 && size_ > 0 && size_ + static_cast<int64_t>(out.size()) > max_size_) {
    RETURN_IF_ERROR(Rotate());
  }
  ssize_t n = write(fd_, out.data(), out.size());
  if (n < 0) return ErrnoToStatus(errno, absl::StrCat("writing log ", path_));
  size_ += n;
  return absl::OkStatus();
}

absl::Status LogWriter::Rotate() {
  if (max_files_ <= 1) {
    if (ftruncate(fd_, 0) != 0) return ErrnoToStatus(errno, absl::StrCat("truncating ", path_));
    size_ = 0;
    return absl::OkStatus();
  }
  for (int i = max_files_ - 1; i >= 1; --i) {
    std::string from = i == 1 ? path_ : absl::StrCat(path_, ".", i - 1);
    std::string to = absl::StrCat(path_, ".", i);
    if (rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) {
      return ErrnoToStatus(errno, absl::StrCat("rotating ", from));
    }
  }
  close(fd_);
  fd_ = -1;
  return Open();
}

std::string FormatLogLine(const LogEntry& entry) {
  nlohmann::json j;
  j["log"] = entry.log;
  j["stream"] = entry.stream;
  j["time"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ", entry.time, absl::UTCTimeZone());
  // Invalid UTF-8 from a container must not make the line unwritable.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

bool ParseLogLine(std::string_view line, LogEntry* entry) {
  auto j = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return false;
  entry->log = j.value("log", "");
  entry->stream = j.value("stream", "");
  std::string err;
  if (!absl::ParseTime("%Y-%m-%dT%H:%M:%E*SZ", j.value("time", ""), absl::UTCTimeZone(),
                       &entry->time, &err)) {
    entry->time = absl::InfinitePast();
  }
  return true;
}

namespace {

// Reads complete lines from fd; returns false if sink asked to stop.
bool Drain(int fd, std::string* buffer, const std::function<bool(const LogEntry&)>& sink) {
  char chunk[65536];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0) break;
    buffer->append(chunk, n);
  }
  size_t start = 0;
  for (;;) {
    size_t nl = buffer->find('\n', start);
    if (nl == std::string::npos) break;
    LogEntry e;
    if (ParseLogLine(std::string_view(*buffer).substr(start, nl - start), &e) && !sink(e)) {
      return false;
    }
    start = nl + 1;
  }
  buffer->erase(0, start);
  return true;
}

}  // namespace

absl::Status ReadLogs(const std::string& path, const ReadLogsOptions& options,
                      const std::function<bool(const LogEntry&)>& sink) {
  // Rotated files, oldest first.
  std::vector<std::string> rotated;
  for (int i = 1;; ++i) {
    std::string p = absl::StrCat(path, ".", i);
    if (access(p.c_str(), F_OK) != 0) break;
    rotated.insert(rotated.begin(), p);
  }
  for (const auto& p : rotated) {
    int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;  // rotated away meanwhile
    std::string buffer;
    bool go_on = Drain(fd, &buffer, sink);
    close(fd);
    if (!go_on) return absl::OkStatus();
  }
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening log ", path));
  std::string buffer;
  struct stat opened;
  fstat(fd, &opened);
  for (;;) {
    if (!Drain(fd, &buffer, sink)) break;
    if (!options.follow) break;
    // The writer rotated: finish the old file (done above), then continue in the new one.
    struct stat now;
    if (stat(path.c_str(), &now) == 0 && now.st_ino != opened.st_ino) {
      int next = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (next >= 0) {
        close(fd);
        fd = next;
        fstat(fd, &opened);
        buffer.clear();
        continue;
      }
    }
    if (options.still_running && !options.still_running()) {
      Drain(fd, &buffer, sink);
      break;
    }
    absl::SleepFor(options.poll_interval);
  }
  close(fd);
  return absl::OkStatus();
}

}  // namespace swarm::agent::runtime

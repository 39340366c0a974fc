// TaskDb: the agent's local record of its tasks (RocksDB under the state directory, one key per
// task ID, the value the task as the agent last saw it with the status it last observed). A
// restarted agent reads it to know which tasks it had and how far each got, so it adopts the
// still-running containers instead of starting duplicates, and reports exits that happened
// while it was down. A status is recorded before it is reported. RUNNING and the final states
// are synced, so the managers never hear of them from an agent that could forget them; the
// steps before (accepted, preparing, ready, starting) only reach the write-ahead log (they
// survive the agent being killed, not the machine losing power), because a restarted agent
// redoes them from what exists: it finds the container it made by name.
//
// No secret or config data is stored: tasks refer to them by ID only.
//
// Thread-safety: thread-safe (RocksDB is).
#ifndef SWARM_AGENT_TASK_DB_H_
#define SWARM_AGENT_TASK_DB_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/objects.pb.h"

namespace rocksdb {
class DB;
}

namespace swarm::agent {

class TaskDb {
 public:
  // Opens (creating if needed) the database in dir.
  static absl::StatusOr<std::unique_ptr<TaskDb>> Open(const std::string& dir);
  ~TaskDb();

  // sync: wait for the disk (see above for which states need it).
  absl::Status Put(const api::Task& task, bool sync = true);
  absl::Status Delete(const std::string& task_id);
  // Every task recorded. DATA_LOSS naming the key when a record does not parse.
  absl::StatusOr<std::vector<api::Task>> List() const;

 private:
  explicit TaskDb(std::unique_ptr<rocksdb::DB> db);
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace swarm::agent

#endif  // SWARM_AGENT_TASK_DB_H_

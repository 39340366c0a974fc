// TaskDb: the agent's local record of its tasks (RocksDB under the state directory, one key per
// task ID, the value the task as the agent last saw it with the status it last observed). A
// restarted agent reads it to know which tasks it had and how far each got, so it adopts the
// still-running containers instead of starting duplicates, and reports exits that happened
// while it was down. The final states are recorded, synced, before they are reported, so the
// managers never hear of a task's end from an agent that could forget it. ACCEPTED (before
// the container is made: a restarted agent knows the task even if the managers no longer
// assign it, and removes its container) and RUNNING are recorded unsynced before they are
// reported: they survive the agent being killed; a power loss may take them, and with them
// the containers, which run on no longer anyway. The other steps (preparing, ready,
// starting) are not recorded: a restarted agent redoes them from what exists, finding the
// container it made by name. Each write, and more each sync, sits on the way of a task's
// start: under a burst of container creations the filesystem's journal makes a sync wait
// for hundreds of milliseconds.
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

#include "agent/task_db.h"

#include <rocksdb/db.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace swarm::agent {
namespace {

absl::Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", s.ToString()));
}

}  // namespace

TaskDb::TaskDb(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}
TaskDb::~TaskDb() = default;

absl::StatusOr<std::unique_ptr<TaskDb>> TaskDb::Open(const std::string& dir) {
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &db);
  if (!s.ok()) {
    return absl::InternalError(
        absl::StrCat("opening the agent's task database at ", dir, ": ", s.ToString()));
  }
  return std::unique_ptr<TaskDb>(new TaskDb(std::unique_ptr<rocksdb::DB>(db)));
}

absl::Status TaskDb::Put(const api::Task& task, bool sync) {
  rocksdb::WriteOptions w;
  w.sync = sync;
  return FromRocks(db_->Put(w, task.id(), task.SerializeAsString()),
                   absl::StrCat("recording task ", task.id()));
}

absl::Status TaskDb::Delete(const std::string& task_id) {
  rocksdb::WriteOptions w;
  w.sync = true;
  return FromRocks(db_->Delete(w, task_id), absl::StrCat("forgetting task ", task_id));
}

absl::StatusOr<std::vector<api::Task>> TaskDb::List() const {
  std::vector<api::Task> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    api::Task t;
    if (!t.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError(
          absl::StrCat("the agent's task database has a corrupt record ", it->key().ToString()));
    }
    out.push_back(std::move(t));
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "reading the agent's task database"));
  return out;
}

}  // namespace swarm::agent

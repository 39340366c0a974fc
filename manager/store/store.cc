#include "manager/store/store.h"

#include <google/protobuf/util/time_util.h>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "common/random.h"
#include "common/status_macros.h"

namespace swarm::manager::store {
namespace {

using Case = api::StoreAction::TargetCase;
// Object IDs by a key (a service, node or network ID), in ID order.
using IdIndex = absl::flat_hash_map<std::string, absl::btree_set<std::string>>;

constexpr Case kCases[] = {api::StoreAction::kNode,    api::StoreAction::kService,
                           api::StoreAction::kTask,    api::StoreAction::kNetwork,
                           api::StoreAction::kCluster, api::StoreAction::kSecret,
                           api::StoreAction::kConfig};

// Store objects all have the same shape (id, meta, and for most a spec with annotations), so
// the store reaches them through reflection on StoreAction's oneof instead of a switch per
// kind.
const google::protobuf::FieldDescriptor* TargetField(Case c) {
  return api::StoreAction::descriptor()->FindFieldByNumber(static_cast<int>(c));
}

// StoreAction's field that holds objects of this type; null for a type that is no store object.
const google::protobuf::FieldDescriptor* TargetFieldOfType(
    const google::protobuf::Descriptor* type) {
  const google::protobuf::OneofDescriptor* target =
      api::StoreAction::descriptor()->FindOneofByName("target");
  for (int i = 0; i < target->field_count(); ++i) {
    if (target->field(i)->message_type() == type) return target->field(i);
  }
  return nullptr;
}

const google::protobuf::Message& Target(const api::StoreAction& a) {
  return a.GetReflection()->GetMessage(a, TargetField(a.target_case()));
}

google::protobuf::Message* MutableTarget(api::StoreAction* a) {
  return a->GetReflection()->MutableMessage(a, TargetField(a->target_case()));
}

const std::string& KindName(Case c) { return TargetField(c)->name(); }

std::string IdOf(const api::StoreAction& a) {
  if (a.target_case() == api::StoreAction::TARGET_NOT_SET) return "";
  const google::protobuf::Message& t = Target(a);
  return t.GetReflection()->GetString(t, t.GetDescriptor()->FindFieldByName("id"));
}

// Kinds whose names must be unique: all but nodes (named after their hostnames) and tasks
// (named after their service and slot).
bool HasUniqueName(Case c) { return c != api::StoreAction::kNode && c != api::StoreAction::kTask; }

std::string UniqueNameOf(const api::StoreAction& a) {
  if (!HasUniqueName(a.target_case())) return "";
  const google::protobuf::Message& t = Target(a);
  const auto* r = t.GetReflection();
  const google::protobuf::Message& spec =
      r->GetMessage(t, t.GetDescriptor()->FindFieldByName("spec"));
  const auto& annotations = static_cast<const api::Annotations&>(
      spec.GetReflection()->GetMessage(spec, spec.GetDescriptor()->FindFieldByName("annotations")));
  // Names are unique without regard to case, as in SwarmKit: "web" and "WEB" are one name.
  return absl::AsciiStrToLower(annotations.name());
}

const api::Meta& MetaOf(const api::StoreAction& a) {
  const google::protobuf::Message& t = Target(a);
  return static_cast<const api::Meta&>(
      t.GetReflection()->GetMessage(t, t.GetDescriptor()->FindFieldByName("meta")));
}

api::Meta* MutableMeta(api::StoreAction* a) {
  google::protobuf::Message* t = MutableTarget(a);
  return static_cast<api::Meta*>(
      t->GetReflection()->MutableMessage(t, t->GetDescriptor()->FindFieldByName("meta")));
}

uint64_t VersionOf(const api::StoreAction& a) { return MetaOf(a).version().index(); }

// The field of api::StoreSnapshot that holds objects of a kind; 0 for none.
int SnapshotField(Case c) {
  switch (c) {
    case api::StoreAction::kNode:
      return api::StoreSnapshot::kNodesFieldNumber;
    case api::StoreAction::kService:
      return api::StoreSnapshot::kServicesFieldNumber;
    case api::StoreAction::kTask:
      return api::StoreSnapshot::kTasksFieldNumber;
    case api::StoreAction::kNetwork:
      return api::StoreSnapshot::kNetworksFieldNumber;
    case api::StoreAction::kCluster:
      return api::StoreSnapshot::kClustersFieldNumber;
    case api::StoreAction::kSecret:
      return api::StoreSnapshot::kSecretsFieldNumber;
    case api::StoreAction::kConfig:
      return api::StoreSnapshot::kConfigsFieldNumber;
    default:
      return 0;
  }
}

// An object as it is stored (the kind of the write is not part of it).
}  // namespace

namespace internal {

api::StoreAction WrapMessage(const google::protobuf::Message& o) {
  api::StoreAction a;
  const google::protobuf::FieldDescriptor* f = TargetFieldOfType(o.GetDescriptor());
  if (f == nullptr) {
    raft::Fatal("store: " + o.GetDescriptor()->full_name() + " is not a store object");
  }
  a.GetReflection()->MutableMessage(&a, f)->CopyFrom(o);
  return a;
}

}  // namespace internal

// ---- Tables ----

struct MemoryStore::Tables {
  struct Table {
    // B-trees and hashes rather than std::map: with tens of thousands of objects, the red-black
    // trees' pointer chasing and string compares were a tenth of the Raft loop's time (every
    // write is validated and applied there).
    absl::btree_map<std::string, std::shared_ptr<const api::StoreAction>> objects;  // by ID
    absl::flat_hash_map<std::string, std::string> names;  // unique name -> ID
  };
  std::map<Case, Table> tables;
  // Task IDs by service, node and the networks a task is attached to (its allocated
  // attachments), in ID order. A key whose last task goes goes with it.
  IdIndex tasks_by_service;
  IdIndex tasks_by_node;
  IdIndex tasks_by_network;

  Table& Get(Case c) { return tables[c]; }
  const Table* Find(Case c) const {
    auto it = tables.find(c);
    return it == tables.end() ? nullptr : &it->second;
  }
  std::shared_ptr<const api::StoreAction> Object(Case c, const std::string& id) const {
    const Table* t = Find(c);
    if (t == nullptr) return nullptr;
    auto it = t->objects.find(id);
    return it == t->objects.end() ? nullptr : it->second;
  }

  void Put(std::shared_ptr<const api::StoreAction> o) {
    Table& t = Get(o->target_case());
    const std::string id = IdOf(*o);
    auto old = t.objects.find(id);
    if (old != t.objects.end()) Unindex(*old->second);
    Index(*o);
    t.objects[id] = std::move(o);
  }
  void Erase(const api::StoreAction& o) {
    Table& t = Get(o.target_case());
    auto it = t.objects.find(IdOf(o));
    if (it == t.objects.end()) return;
    Unindex(*it->second);
    t.objects.erase(it);
  }
  void Index(const api::StoreAction& o) {
    const std::string id = IdOf(o);
    if (HasUniqueName(o.target_case())) Get(o.target_case()).names[UniqueNameOf(o)] = id;
    if (o.has_task()) {
      tasks_by_service[o.task().service_id()].insert(id);
      tasks_by_node[o.task().node_id()].insert(id);
      for (const api::NetworkAttachment& a : o.task().networks()) {
        tasks_by_network[a.network().id()].insert(id);
      }
    }
  }
  void Unindex(const api::StoreAction& o) {
    const std::string id = IdOf(o);
    if (HasUniqueName(o.target_case())) Get(o.target_case()).names.erase(UniqueNameOf(o));
    if (o.has_task()) {
      RemoveFrom(tasks_by_service, o.task().service_id(), id);
      RemoveFrom(tasks_by_node, o.task().node_id(), id);
      for (const api::NetworkAttachment& a : o.task().networks()) {
        RemoveFrom(tasks_by_network, a.network().id(), id);
      }
    }
  }
  static void RemoveFrom(IdIndex& index, const std::string& key, const std::string& id) {
    auto it = index.find(key);
    if (it == index.end()) return;
    it->second.erase(id);
    if (it->second.empty()) index.erase(it);
  }
};

// ---- Watch ----

std::optional<Event> Watch::Next(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closed_ || !queue_.empty(); };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (queue_.empty()) return std::nullopt;
  Event e = std::move(queue_.front());
  queue_.pop_front();
  return e;
}

bool Watch::Wait(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closed_ || !queue_.empty(); };
  return mu_.AwaitWithTimeout(absl::Condition(&ready), timeout) && !queue_.empty();
}

void Watch::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

bool Watch::closed() const {
  absl::MutexLock lock(&mu_);
  return closed_;
}

void Watch::Push(const Event& e) {
  absl::MutexLock lock(&mu_);
  if (!closed_) queue_.push_back(e);
}

// ---- ReadTx ----

// The stored object of a StoreAction, sharing its ownership.
#define SWARM_STORE_GETTER(Type, CaseName, field)                              \
  Ptr<api::Type> ReadTx::Get##Type(const std::string& id) const {              \
    auto o = store_->tables_->Object(api::StoreAction::CaseName, id);          \
    if (o == nullptr) return nullptr;                                          \
    return Ptr<api::Type>(o, &o->field());                                     \
  }                                                                            \
  std::vector<Ptr<api::Type>> ReadTx::List##Type##s() const {                  \
    std::vector<Ptr<api::Type>> out;                                           \
    if (const auto* t = store_->tables_->Find(api::StoreAction::CaseName)) {   \
      out.reserve(t->objects.size());                                          \
      for (const auto& [id, o] : t->objects) out.emplace_back(o, &o->field()); \
    }                                                                          \
    return out;                                                                \
  }

SWARM_STORE_GETTER(Node, kNode, node)
SWARM_STORE_GETTER(Service, kService, service)
SWARM_STORE_GETTER(Task, kTask, task)
SWARM_STORE_GETTER(Network, kNetwork, network)
SWARM_STORE_GETTER(Cluster, kCluster, cluster)
SWARM_STORE_GETTER(Secret, kSecret, secret)
SWARM_STORE_GETTER(Config, kConfig, config)
#undef SWARM_STORE_GETTER

namespace {

std::vector<Ptr<api::Task>> TasksIn(
    const IdIndex& index, const std::string& key,
    const std::function<std::shared_ptr<const api::StoreAction>(const std::string&)>& lookup) {
  std::vector<Ptr<api::Task>> out;
  auto it = index.find(key);
  if (it == index.end()) return out;
  out.reserve(it->second.size());
  for (const std::string& id : it->second) {
    if (auto o = lookup(id)) out.emplace_back(o, &o->task());
  }
  return out;
}

}  // namespace

std::vector<Ptr<api::Task>> ReadTx::TasksByService(const std::string& service_id) const {
  const MemoryStore::Tables* t = store_->tables_.get();
  return TasksIn(t->tasks_by_service, service_id,
                 [t](const std::string& id) { return t->Object(api::StoreAction::kTask, id); });
}

std::vector<Ptr<api::Task>> ReadTx::TasksByNode(const std::string& node_id) const {
  const MemoryStore::Tables* t = store_->tables_.get();
  return TasksIn(t->tasks_by_node, node_id,
                 [t](const std::string& id) { return t->Object(api::StoreAction::kTask, id); });
}

std::vector<Ptr<api::Task>> ReadTx::TasksByNetwork(const std::string& network_id) const {
  const MemoryStore::Tables* t = store_->tables_.get();
  return TasksIn(t->tasks_by_network, network_id,
                 [t](const std::string& id) { return t->Object(api::StoreAction::kTask, id); });
}

std::optional<std::string> ReadTx::IdByName(Case kind, const std::string& name) const {
  const MemoryStore::Tables::Table* t = store_->tables_->Find(kind);
  if (t == nullptr) return std::nullopt;
  auto it = t->names.find(absl::AsciiStrToLower(name));
  if (it == t->names.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> ReadTx::IdsByPrefix(Case kind, const std::string& prefix) const {
  std::vector<std::string> out;
  const MemoryStore::Tables::Table* t = store_->tables_->Find(kind);
  if (t == nullptr) return out;
  for (auto it = t->objects.lower_bound(prefix);
       it != t->objects.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    out.push_back(it->first);
  }
  return out;
}

// ---- WriteTx ----

void WriteTx::Add(api::StoreActionKind kind, api::StoreAction object) {
  object.set_kind(kind);
  // Timestamps come from the proposer's clock, so every manager applies the same bytes.
  if (kind != api::STORE_ACTION_KIND_REMOVE) {
    if (api::Meta* m = MutableMeta(&object)) {
      const auto ts =
          google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(now_));
      if (kind == api::STORE_ACTION_KIND_CREATE) *m->mutable_created_at() = ts;
      *m->mutable_updated_at() = ts;
    }
  }
  actions_.push_back(std::move(object));
}

size_t WriteTx::bytes() const {
  for (; sized_ < actions_.size(); ++sized_) bytes_ += actions_[sized_].ByteSizeLong();
  return bytes_;
}

void WriteTx::Create(api::StoreAction object) {
  Add(api::STORE_ACTION_KIND_CREATE, std::move(object));
}
void WriteTx::Update(api::StoreAction object) {
  Add(api::STORE_ACTION_KIND_UPDATE, std::move(object));
}
void WriteTx::Remove(api::StoreAction object) {
  Add(api::STORE_ACTION_KIND_REMOVE, std::move(object));
}

// ---- MemoryStore ----

MemoryStore::MemoryStore(Proposer* proposer, Clock* clock)
    : proposer_(proposer), clock_(clock), tables_(std::make_unique<Tables>()) {
  absl::MutexLock lock(&results_mu_);
  next_request_ = SecureRandom::Get().Next64();
}

MemoryStore::~MemoryStore() = default;

void MemoryStore::View(const std::function<void(const ReadTx&)>& fn) const {
  absl::ReaderMutexLock lock(&mu_);
  fn(ReadTx(this));
}

absl::Status MemoryStore::Update(const std::function<absl::Status(WriteTx&)>& fn) {
  api::InternalRaftRequest req;
  {
    absl::ReaderMutexLock lock(&mu_);
    WriteTx tx(this, clock_->Now());
    absl::Status s = fn(tx);
    if (!s.ok()) return s;
    if (tx.actions_.empty()) return absl::OkStatus();
    for (api::StoreAction& a : tx.actions_) *req.add_action() = std::move(a);
  }
  {
    absl::MutexLock lock(&results_mu_);
    req.set_id(next_request_++);
    results_[req.id()] = absl::UnknownError("pending");
  }
  std::promise<absl::Status> done;
  std::future<absl::Status> result = done.get_future();
  proposer_->Propose(req.SerializeAsString(),
                     [this, id = req.id(), &done](absl::StatusOr<uint64_t> index) {
                       absl::MutexLock lock(&results_mu_);
                       absl::Status s = index.ok() ? results_[id] : index.status();
                       results_.erase(id);
                       done.set_value(s);
                     });
  return result.get();
}

absl::StatusOr<std::shared_ptr<Watch>> MemoryStore::WatchFrom(uint64_t after_index) {
  auto w = std::make_shared<Watch>();
  absl::MutexLock lock(&mu_);
  if (after_index != 0 && after_index < last_index_) {
    const uint64_t floor = history_.empty() ? last_index_ : history_.front().index - 1;
    if (after_index < floor) {
      return absl::OutOfRangeError(
          "events after index " + std::to_string(after_index) +
          " are no longer kept; list the objects again and watch from the listed index");
    }
    for (const Event& e : history_) {
      if (e.index > after_index) w->Push(e);
    }
  }
  watches_.push_back(w);
  return w;
}

uint64_t MemoryStore::last_index() const {
  absl::ReaderMutexLock lock(&mu_);
  return last_index_;
}

void MemoryStore::Apply(uint64_t index, std::string_view data) {
  api::InternalRaftRequest req;
  if (!req.ParseFromArray(data.data(), static_cast<int>(data.size()))) {
    raft::Fatal("store: a committed transaction at index " + std::to_string(index) +
                " does not parse");
  }
  absl::Status s = ApplyTransaction(req, index);
  absl::MutexLock lock(&results_mu_);
  auto it = results_.find(req.id());
  if (it != results_.end()) it->second = s;  // one of ours: Update() is waiting for it
}

absl::Status MemoryStore::ValidateLocked(const api::InternalRaftRequest& req) const {
  // The transaction's own earlier writes count: an overlay of what it created or removed.
  std::map<std::pair<Case, std::string>, const api::StoreAction*> overlay;
  std::map<std::pair<Case, std::string>, std::string> names;  // name -> ID after earlier writes
  auto current = [&](Case c, const std::string& id) -> const api::StoreAction* {
    auto it = overlay.find({c, id});
    if (it != overlay.end()) return it->second;
    return tables_->Object(c, id).get();
  };
  auto name_owner = [&](Case c, const std::string& name) -> std::string {
    auto it = names.find({c, name});
    if (it != names.end()) return it->second;
    const Tables::Table* t = tables_->Find(c);
    if (t == nullptr) return "";
    auto n = t->names.find(name);
    return n == t->names.end() ? "" : n->second;
  };
  for (const api::StoreAction& a : req.action()) {
    const Case c = a.target_case();
    if (c == api::StoreAction::TARGET_NOT_SET) {
      return absl::InvalidArgumentError("store: a write names no object");
    }
    const std::string id = IdOf(a);
    auto what = [&] { return std::string(KindName(c)) + " " + id; };
    if (id.empty())
      return absl::InvalidArgumentError(std::string("store: a ") + KindName(c) + " without an ID");
    const api::StoreAction* cur = current(c, id);
    switch (a.kind()) {
      case api::STORE_ACTION_KIND_CREATE:
        if (cur != nullptr) return absl::AlreadyExistsError(what() + " already exists");
        break;
      case api::STORE_ACTION_KIND_UPDATE:
        if (cur == nullptr) return absl::NotFoundError(what() + " does not exist");
        if (VersionOf(a) != VersionOf(*cur)) {
          return absl::FailedPreconditionError(
              "update out of sequence: " + what() + " changed since it was read (read at " +
              std::to_string(VersionOf(a)) + ", now at " + std::to_string(VersionOf(*cur)) +
              "); read it again and retry");
        }
        break;
      case api::STORE_ACTION_KIND_REMOVE:
        if (cur == nullptr) return absl::NotFoundError(what() + " does not exist");
        break;
      default:
        return absl::InvalidArgumentError("store: unknown write kind");
    }
    if (HasUniqueName(c) && a.kind() != api::STORE_ACTION_KIND_REMOVE) {
      const std::string name = UniqueNameOf(a);
      if (name.empty()) {
        return absl::InvalidArgumentError("a " + KindName(c) + " needs a name");
      }
      const std::string owner = name_owner(c, name);
      if (!owner.empty() && owner != id) {
        return absl::AlreadyExistsError(KindName(c) + " name \"" + name +
                                        "\" is already in use by " + owner);
      }
    }
    if (cur != nullptr && HasUniqueName(c)) names[{c, UniqueNameOf(*cur)}] = "";
    if (a.kind() == api::STORE_ACTION_KIND_REMOVE) {
      overlay[{c, id}] = nullptr;
    } else {
      overlay[{c, id}] = &a;
      if (HasUniqueName(c)) names[{c, UniqueNameOf(a)}] = id;
    }
  }
  return absl::OkStatus();
}

absl::Status MemoryStore::ApplyTransaction(api::InternalRaftRequest& req, uint64_t index) {
  absl::MutexLock lock(&mu_);
  if (index <= last_index_) {
    raft::Fatal("store: applying index " + std::to_string(index) + " after " +
                std::to_string(last_index_));
  }
  last_index_ = index;
  absl::Status s = ValidateLocked(req);
  if (!s.ok()) return s;
  for (api::StoreAction& a : *req.mutable_action()) {
    Event e;
    e.kind = a.kind();
    e.index = index;
    e.old_object = tables_->Object(a.target_case(), IdOf(a));
    if (a.kind() == api::STORE_ACTION_KIND_REMOVE) {
      tables_->Erase(a);
    } else {
      // Moved, not copied: the request is ours and this runs on the Raft loop under the
      // write lock, for every object of the transaction.
      auto o = std::make_shared<api::StoreAction>(std::move(a));
      o->clear_kind();
      MutableMeta(o.get())->mutable_version()->set_index(index);
      if (e.old_object) {
        *MutableMeta(o.get())->mutable_created_at() = MetaOf(*e.old_object).created_at();
      }
      e.new_object = o;
      tables_->Put(std::move(o));
    }
    PublishLocked(e);
  }
  return absl::OkStatus();
}

void MemoryStore::PublishLocked(const Event& e) {
  history_.push_back(e);
  while (history_.size() > kEventHistory) history_.pop_front();
  for (auto it = watches_.begin(); it != watches_.end();) {
    std::shared_ptr<Watch> w = it->lock();
    if (!w || w->closed()) {
      it = watches_.erase(it);
      continue;
    }
    w->Push(e);
    ++it;
  }
}

absl::Status MemoryStore::WriteSnapshot(raft::SnapshotWriter& out) {
  // Without mu_: the Raft node runs neither Apply nor Restore (the only writers of the tables)
  // while it writes a snapshot, and holding mu_ shared for seconds would hold up WatchFrom,
  // and with it every reader queued behind it.
  return WriteTables(out);
}

std::string MemoryStore::Snapshot() {
  absl::ReaderMutexLock lock(&mu_);
  raft::StringSnapshotWriter out;
  (void)WriteTables(out);  // writing to memory does not fail
  return out.data();
}

absl::Status MemoryStore::WriteTables(raft::SnapshotWriter& out) const {
  // Field by field rather than built as one api::StoreSnapshot: building it copied every
  // object in the store, every snapshot interval.
  raft::MessageFieldWriter fields(out);
  for (const auto& [c, t] : tables_->tables) {
    const int field = SnapshotField(c);
    if (field == 0) continue;
    for (const auto& [id, ptr] : t.objects) RETURN_IF_ERROR(fields.Write(field, Target(*ptr)));
  }
  return fields.Flush();
}

absl::Status MemoryStore::Restore(std::string_view data) {
  raft::StringSnapshotReader in(data);
  return Restore(in);
}

absl::Status MemoryStore::Restore(raft::SnapshotReader& in) {
  auto tables = std::make_unique<Tables>();
  uint64_t last = 0;
  // Each field is parsed straight into the StoreAction that keeps it. Fields of kinds this
  // version does not know are skipped, as a parse of the whole StoreSnapshot would.
  raft::MessageFieldReader fields(in);
  int field = 0;
  std::string bytes;
  for (;;) {
    ASSIGN_OR_RETURN(const bool more, fields.Next(&field, &bytes));
    if (!more) break;
    const google::protobuf::FieldDescriptor* f =
        api::StoreSnapshot::descriptor()->FindFieldByNumber(field);
    const google::protobuf::FieldDescriptor* target =
        f == nullptr ? nullptr : TargetFieldOfType(f->message_type());
    if (target == nullptr) continue;
    auto o = std::make_shared<api::StoreAction>();
    if (!o->GetReflection()->MutableMessage(o.get(), target)->ParseFromString(bytes)) {
      return absl::DataLossError("store snapshot does not parse");
    }
    last = std::max(last, VersionOf(*o));
    tables->Put(std::move(o));
  }
  absl::MutexLock lock(&mu_);
  tables_ = std::move(tables);
  last_index_ = last;
  history_.clear();
  // Watchers cannot be told what changed across a snapshot: they must list again.
  for (auto& weak : watches_) {
    if (auto w = weak.lock()) w->Close();
  }
  watches_.clear();
  return absl::OkStatus();
}

// ---- LocalProposer ----

void LocalProposer::Propose(std::string data, std::function<void(absl::StatusOr<uint64_t>)> done) {
  uint64_t index;
  {
    absl::MutexLock lock(&mu_);
    index = ++index_;
    store_->Apply(index, data);
  }
  done(index);
}

}  // namespace swarm::manager::store

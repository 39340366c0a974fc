#include "manager/store/store.h"

#include <google/protobuf/util/message_differencer.h>

#include <thread>

#include "gtest/gtest.h"
#include "raft/snapshot_io.h"

namespace swarm::manager::store {
namespace {

api::Service NewService(const std::string& id, const std::string& name) {
  api::Service s;
  s.set_id(id);
  s.mutable_spec()->mutable_annotations()->set_name(name);
  return s;
}

api::Task NewTask(const std::string& id, const std::string& service, const std::string& node) {
  api::Task t;
  t.set_id(id);
  t.set_service_id(service);
  t.set_node_id(node);
  return t;
}

class StoreTest : public ::testing::Test {
 protected:
  StoreTest() : store_(&proposer_, &clock_) { proposer_.set_store(&store_); }

  absl::Status CreateService(const std::string& id, const std::string& name) {
    return store_.Update([&](WriteTx& tx) {
      tx.CreateObject(NewService(id, name));
      return absl::OkStatus();
    });
  }
  api::Service GetService(const std::string& id) {
    Ptr<api::Service> s;
    store_.View([&](const ReadTx& tx) { s = tx.GetService(id); });
    EXPECT_NE(s, nullptr) << id;
    return s ? *s : api::Service();
  }

  FakeClock clock_;
  LocalProposer proposer_;
  MemoryStore store_;
};

TEST_F(StoreTest, Create_IsReadableWithVersionAndIndexes) {
  ASSERT_TRUE(CreateService("svc1", "web").ok());
  ASSERT_TRUE(store_
                  .Update([](WriteTx& tx) {
                    tx.CreateObject(NewTask("t1", "svc1", "n1"));
                    tx.CreateObject(NewTask("t2", "svc1", "n2"));
                    tx.CreateObject(NewTask("t3", "svc9", "n1"));
                    return absl::OkStatus();
                  })
                  .ok());
  api::Service s = GetService("svc1");
  EXPECT_EQ(s.meta().version().index(), 1u);
  EXPECT_TRUE(s.meta().has_created_at());
  store_.View([](const ReadTx& tx) {
    EXPECT_EQ(tx.IdByName(api::StoreAction::kService, "web"), "svc1");
    EXPECT_EQ(tx.TasksByService("svc1").size(), 2u);
    EXPECT_EQ(tx.TasksByNode("n1").size(), 2u);
    EXPECT_EQ(tx.ListTasks().size(), 3u);
    EXPECT_EQ(tx.GetTask("t2")->meta().version().index(), 2u);
    EXPECT_EQ(tx.IdsByPrefix(api::StoreAction::kTask, "t").size(), 3u);
    EXPECT_TRUE(tx.IdsByPrefix(api::StoreAction::kTask, "x").empty());
  });
}

TEST_F(StoreTest, TasksByNetwork_FollowsTheAttachments) {
  api::Task t1 = NewTask("t1", "svc1", "n1");
  t1.add_networks()->mutable_network()->set_id("net-a");
  t1.add_networks()->mutable_network()->set_id("net-b");
  api::Task t2 = NewTask("t2", "svc1", "n2");
  t2.add_networks()->mutable_network()->set_id("net-a");
  ASSERT_TRUE(store_
                  .Update([&](WriteTx& tx) {
                    tx.CreateObject(t1);
                    tx.CreateObject(t2);
                    tx.CreateObject(NewTask("t3", "svc1", "n1"));
                    return absl::OkStatus();
                  })
                  .ok());
  store_.View([](const ReadTx& tx) {
    EXPECT_EQ(tx.TasksByNetwork("net-a").size(), 2u);
    EXPECT_EQ(tx.TasksByNetwork("net-b").size(), 1u);
    EXPECT_TRUE(tx.TasksByNetwork("net-c").empty());
  });
  // Detached from net-a (an update), then removed.
  Ptr<api::Task> read;
  store_.View([&](const ReadTx& tx) { read = tx.GetTask("t1"); });
  api::Task moved = *read;
  moved.mutable_networks()->DeleteSubrange(0, 1);
  ASSERT_TRUE(store_
                  .Update([&](WriteTx& tx) {
                    tx.UpdateObject(moved);
                    return absl::OkStatus();
                  })
                  .ok());
  store_.View([](const ReadTx& tx) {
    ASSERT_EQ(tx.TasksByNetwork("net-a").size(), 1u);
    EXPECT_EQ(tx.TasksByNetwork("net-a")[0]->id(), "t2");
    EXPECT_EQ(tx.TasksByNetwork("net-b").size(), 1u);
  });
  ASSERT_TRUE(store_
                  .Update([&](WriteTx& tx) {
                    api::Task gone;
                    gone.set_id("t2");
                    tx.RemoveObject(gone);
                    return absl::OkStatus();
                  })
                  .ok());
  store_.View([](const ReadTx& tx) { EXPECT_TRUE(tx.TasksByNetwork("net-a").empty()); });
}

TEST_F(StoreTest, Create_TakenNameIsRefused) {
  ASSERT_TRUE(CreateService("svc1", "web").ok());
  absl::Status s = CreateService("svc2", "web");
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(std::string(s.message()).find("\"web\" is already in use by svc1"), std::string::npos)
      << s;
  EXPECT_EQ(CreateService("svc1", "other").code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(StoreTest, Update_StaleVersionIsOutOfSequence) {
  ASSERT_TRUE(CreateService("svc1", "web").ok());
  api::Service read = GetService("svc1");
  api::Service first = read;
  first.mutable_spec()->mutable_annotations()->mutable_labels()->insert({"a", "1"});
  ASSERT_TRUE(store_
                  .Update([&](WriteTx& tx) {
                    tx.UpdateObject(first);
                    return absl::OkStatus();
                  })
                  .ok());
  // A second writer that read the same version loses.
  api::Service second = read;
  second.mutable_spec()->mutable_annotations()->mutable_labels()->insert({"b", "2"});
  absl::Status s = store_.Update([&](WriteTx& tx) {
    tx.UpdateObject(second);
    return absl::OkStatus();
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(s.message()).find("update out of sequence"), std::string::npos);
  EXPECT_EQ(GetService("svc1").spec().annotations().labels().count("b"), 0u);
  EXPECT_EQ(GetService("svc1").meta().version().index(), 2u);
}

TEST_F(StoreTest, Transaction_IsAllOrNothing) {
  ASSERT_TRUE(CreateService("svc1", "web").ok());
  absl::Status s = store_.Update([&](WriteTx& tx) {
    tx.CreateObject(NewService("svc2", "api"));
    tx.CreateObject(NewService("svc3", "web"));  // taken: the whole transaction fails
    return absl::OkStatus();
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  store_.View([](const ReadTx& tx) { EXPECT_EQ(tx.GetService("svc2"), nullptr); });
  // Renaming and taking the freed name in one transaction works.
  api::Service s1 = GetService("svc1");
  s1.mutable_spec()->mutable_annotations()->set_name("web-old");
  EXPECT_TRUE(store_
                  .Update([&](WriteTx& tx) {
                    tx.UpdateObject(s1);
                    tx.CreateObject(NewService("svc2", "web"));
                    return absl::OkStatus();
                  })
                  .ok());
  // The function's own error aborts without writing.
  EXPECT_EQ(store_
                .Update([&](WriteTx& tx) {
                  tx.CreateObject(NewService("svc9", "x"));
                  return absl::InvalidArgumentError("bad spec");
                })
                .code(),
            absl::StatusCode::kInvalidArgument);
  store_.View([](const ReadTx& tx) { EXPECT_EQ(tx.GetService("svc9"), nullptr); });
}

TEST_F(StoreTest, Watch_SeesOrderedEventsWithOldAndNew) {
  auto w = store_.WatchFrom(0);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(CreateService("svc1", "web").ok());
  api::Service s = GetService("svc1");
  s.mutable_spec()->mutable_annotations()->set_name("web2");
  ASSERT_TRUE(store_
                  .Update([&](WriteTx& tx) {
                    tx.UpdateObject(s);
                    return absl::OkStatus();
                  })
                  .ok());
  ASSERT_TRUE(store_
                  .Update([&](WriteTx& tx) {
                    tx.RemoveObject(s);
                    return absl::OkStatus();
                  })
                  .ok());

  auto e1 = (*w)->Next(absl::Seconds(1));
  ASSERT_TRUE(e1.has_value());
  EXPECT_EQ(e1->kind, api::STORE_ACTION_KIND_CREATE);
  EXPECT_EQ(e1->old_object, nullptr);
  EXPECT_EQ(e1->new_object->service().spec().annotations().name(), "web");
  auto e2 = (*w)->Next(absl::Seconds(1));
  EXPECT_EQ(e2->kind, api::STORE_ACTION_KIND_UPDATE);
  EXPECT_EQ(e2->old_object->service().spec().annotations().name(), "web");
  EXPECT_EQ(e2->new_object->service().spec().annotations().name(), "web2");
  auto e3 = (*w)->Next(absl::Seconds(1));
  EXPECT_EQ(e3->kind, api::STORE_ACTION_KIND_REMOVE);
  EXPECT_EQ(e3->index, 3u);
  EXPECT_FALSE((*w)->Next(absl::Milliseconds(10)).has_value());
}

TEST_F(StoreTest, Watch_ResumesWithoutMissingOrRepeating) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(CreateService("s" + std::to_string(i), "n" + std::to_string(i)).ok());
  }
  auto w = store_.WatchFrom(3);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(CreateService("s5", "n5").ok());
  std::vector<uint64_t> seen;
  while (auto e = (*w)->Next(absl::Milliseconds(50))) seen.push_back(e->index);
  EXPECT_EQ(seen, (std::vector<uint64_t>{4, 5, 6}));
}

TEST_F(StoreTest, Watch_TooOldIsOutOfRange) {
  for (size_t i = 0; i < MemoryStore::kEventHistory + 10; ++i) {
    ASSERT_TRUE(store_
                    .Update([&](WriteTx& tx) {
                      tx.CreateObject(NewTask("t" + std::to_string(i), "s", "n"));
                      return absl::OkStatus();
                    })
                    .ok());
  }
  EXPECT_EQ(store_.WatchFrom(2).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(store_.WatchFrom(store_.last_index() - 5).ok());
}

TEST_F(StoreTest, Snapshot_RestoresTheSameObjects) {
  ASSERT_TRUE(CreateService("svc1", "web").ok());
  ASSERT_TRUE(store_
                  .Update([](WriteTx& tx) {
                    tx.CreateObject(NewTask("t1", "svc1", "n1"));
                    api::Node n;
                    n.set_id("n1");
                    tx.CreateObject(n);
                    return absl::OkStatus();
                  })
                  .ok());
  const std::string snap = store_.Snapshot();

  LocalProposer p2;
  MemoryStore other(&p2);
  p2.set_store(&other);
  ASSERT_TRUE(other.Restore(snap).ok());
  EXPECT_EQ(other.Snapshot(), snap);
  EXPECT_EQ(other.last_index(), 2u);
  other.View([](const ReadTx& tx) {
    EXPECT_EQ(tx.TasksByService("svc1").size(), 1u);
    EXPECT_EQ(tx.IdByName(api::StoreAction::kService, "web"), "svc1");
  });
  EXPECT_EQ(other.Restore("not a snapshot").code(), absl::StatusCode::kDataLoss);

  // A kind of object a newer version added (field 15 here) is skipped, not an error.
  std::string newer = snap;
  raft::AppendVarint(newer, 15 << 3 | 2);
  raft::AppendVarint(newer, 3);
  newer += "abc";
  ASSERT_TRUE(other.Restore(newer).ok());
  EXPECT_EQ(other.Snapshot(), snap);
}

TEST_F(StoreTest, Apply_IsDeterministicAcrossManagers) {
  // Two managers applying the same committed entries end with identical state, including the
  // transactions that failed validation.
  LocalProposer pa, pb;
  MemoryStore a(&pa), b(&pb);
  std::vector<std::string> entries;
  for (int i = 0; i < 50; ++i) {
    api::InternalRaftRequest req;
    req.set_id(i);
    api::StoreAction* act = req.add_action();
    act->set_kind(api::STORE_ACTION_KIND_CREATE);
    // Every third one reuses a name: rejected on both.
    *act->mutable_service() =
        NewService("s" + std::to_string(i), "n" + std::to_string(i % 3 ? i : 0));
    entries.push_back(req.SerializeAsString());
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    a.Apply(i + 1, entries[i]);
    b.Apply(i + 1, entries[i]);
  }
  EXPECT_EQ(a.Snapshot(), b.Snapshot());
  a.View([](const ReadTx& tx) { EXPECT_EQ(tx.ListServices().size(), 34u); });
}

TEST_F(StoreTest, ConcurrentWriters_OneWinsPerVersion) {
  ASSERT_TRUE(CreateService("svc1", "web").ok());
  const api::Service read = GetService("svc1");
  std::atomic<int> ok{0}, out_of_sequence{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      api::Service s = read;
      (*s.mutable_spec()->mutable_annotations()->mutable_labels())["writer"] = std::to_string(i);
      absl::Status st = store_.Update([&](WriteTx& tx) {
        tx.UpdateObject(s);
        return absl::OkStatus();
      });
      if (st.ok()) {
        ++ok;
      } else if (st.code() == absl::StatusCode::kFailedPrecondition) {
        ++out_of_sequence;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(out_of_sequence, 7);
}

}  // namespace
}  // namespace swarm::manager::store

#include "manager/keymanager/keystore.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "manager/ca/ca.h"

namespace swarm::manager::keymanager {
namespace {

namespace fs = std::filesystem;

class KeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string AllFiles() {
    std::string all;
    for (const auto& f : fs::directory_iterator(dir_)) {
      std::ifstream in(f.path(), std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      all += ss.str();
    }
    return all;
  }

  fs::path dir_;
  SeededRandom random_{3};
  Keys keys_{DataKey{7, std::string(32, 'D')}, "-----BEGIN PRIVATE KEY-----tls-secret"};
};

TEST_F(KeyStoreTest, WithoutAutolock_RestartsByItself) {
  KeyStore ks(dir_.string(), random_);
  EXPECT_FALSE(ks.Exists());
  ASSERT_TRUE(ks.Store(keys_, /*unlock_key=*/"").ok());
  EXPECT_FALSE(*ks.Locked());
  auto loaded = KeyStore(dir_.string(), random_).Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->dek.id, 7u);
  EXPECT_EQ(loaded->dek.key, keys_.dek.key);
  EXPECT_EQ(loaded->tls_key_pem, keys_.tls_key_pem);
  // Wrapped even without autolock.
  EXPECT_EQ(AllFiles().find("tls-secret"), std::string::npos);
  EXPECT_EQ(AllFiles().find(keys_.dek.key), std::string::npos);
}

TEST_F(KeyStoreTest, WithAutolock_StaysLockedUntilTheRightKey) {
  KeyStore ks(dir_.string(), random_);
  const std::string unlock = ca::GenerateUnlockKey(random_);
  ASSERT_TRUE(ks.Store(keys_, unlock).ok());
  EXPECT_TRUE(*ks.Locked());
  EXPECT_FALSE(fs::exists(dir_ / "keys.local"));
  // Nothing on disk reveals the keys or the unlock key.
  const std::string files = AllFiles();
  EXPECT_EQ(files.find("tls-secret"), std::string::npos);
  EXPECT_EQ(files.find(unlock.substr(9)), std::string::npos);

  absl::StatusOr<Keys> locked = ks.Load();
  EXPECT_EQ(locked.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(locked.status().message()).find("run swarmctl swarm unlock"),
            std::string::npos);

  const std::string stored = AllFiles();
  absl::StatusOr<Keys> bad = ks.Unlock("SWMKEY-1-" + std::string(43, 'A'));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(std::string(bad.status().message()).find("wrong unlock key"), std::string::npos);
  EXPECT_EQ(ks.Unlock("not-a-key").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AllFiles(), stored);  // a wrong key changed nothing

  auto good = ks.Unlock(unlock);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->dek.key, keys_.dek.key);
  EXPECT_EQ(good->tls_key_pem, keys_.tls_key_pem);
}

TEST_F(KeyStoreTest, RotatingTheUnlockKeyRetiresTheOldOne) {
  KeyStore ks(dir_.string(), random_);
  const std::string first = ca::GenerateUnlockKey(random_);
  const std::string second = ca::GenerateUnlockKey(random_);
  ASSERT_TRUE(ks.Store(keys_, first).ok());
  ASSERT_TRUE(ks.Store(keys_, second).ok());
  EXPECT_EQ(ks.Unlock(first).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(ks.Unlock(second).ok());
  EXPECT_EQ(ks.Store(keys_, "SWMKEY-1-short").code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(KeyStoreTest, TurningAutolockOffAgain) {
  KeyStore ks(dir_.string(), random_);
  const std::string unlock = ca::GenerateUnlockKey(random_);
  ASSERT_TRUE(ks.Store(keys_, unlock).ok());
  auto keys = ks.Unlock(unlock);
  ASSERT_TRUE(keys.ok());
  ASSERT_TRUE(ks.Store(*keys, "").ok());
  EXPECT_FALSE(*ks.Locked());
  EXPECT_TRUE(ks.Load().ok());
  EXPECT_EQ(ks.Unlock(unlock).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(KeyStoreTest, DekRotation_OldDeksAreKeptWrappedUntilDropped) {
  for (const bool autolock : {false, true}) {
    SCOPED_TRACE(autolock ? "autolock" : "node-local key");
    KeyStore ks(dir_.string(), random_);
    const std::string unlock = autolock ? ca::GenerateUnlockKey(random_) : "";
    ASSERT_TRUE(ks.Store(keys_, unlock).ok());
    const std::string local_before = autolock ? "" : AllFiles();
    Keys rotated = keys_;
    rotated.dek = NewDataKey(8, random_);
    rotated.old_deks = {keys_.dek};
    ASSERT_TRUE(ks.Store(rotated, unlock).ok());
    auto pending = autolock ? ks.Unlock(unlock) : ks.Load();
    ASSERT_TRUE(pending.ok()) << pending.status();
    EXPECT_EQ(pending->dek.id, 8u);
    EXPECT_EQ(pending->dek.key, rotated.dek.key);
    ASSERT_EQ(pending->old_deks.size(), 1u);
    EXPECT_EQ(pending->old_deks[0].id, 7u);
    EXPECT_EQ(pending->old_deks[0].key, keys_.dek.key);
    const std::string files = AllFiles();
    EXPECT_EQ(files.find(keys_.dek.key), std::string::npos);
    EXPECT_EQ(files.find(rotated.dek.key), std::string::npos);

    rotated.old_deks.clear();
    ASSERT_TRUE(ks.Store(rotated, unlock).ok());
    auto done = autolock ? ks.Unlock(unlock) : ks.Load();
    ASSERT_TRUE(done.ok()) << done.status();
    EXPECT_EQ(done->dek.id, 8u);
    EXPECT_TRUE(done->old_deks.empty());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
}

TEST_F(KeyStoreTest, StoreWithoutAutolock_KeepsTheNodeLocalKey) {
  // A crash between writing keys.local and keys must leave a record that opens: storing again
  // (a DEK rotation) reuses the node-local key instead of making a new one.
  KeyStore ks(dir_.string(), random_);
  ASSERT_TRUE(ks.Store(keys_, "").ok());
  std::ifstream in(dir_ / "keys.local", std::ios::binary);
  std::stringstream before;
  before << in.rdbuf();
  Keys rotated = keys_;
  rotated.dek = NewDataKey(8, random_);
  ASSERT_TRUE(ks.Store(rotated, "").ok());
  std::ifstream again(dir_ / "keys.local", std::ios::binary);
  std::stringstream after;
  after << again.rdbuf();
  EXPECT_EQ(before.str(), after.str());
  EXPECT_EQ(ks.Load()->dek.id, 8u);
}

TEST_F(KeyStoreTest, DamagedRecordIsReportedNotGuessed) {
  KeyStore ks(dir_.string(), random_);
  ASSERT_TRUE(ks.Store(keys_, "").ok());
  std::ofstream(dir_ / "keys.local", std::ios::binary | std::ios::trunc) << std::string(32, 'x');
  absl::StatusOr<Keys> loaded = ks.Load();
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace swarm::manager::keymanager

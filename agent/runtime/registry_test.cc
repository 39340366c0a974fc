// Pulls from a real registry: Debian's docker-registry on 127.0.0.1 (a free port), filled by
// skopeo from an OCI layout that the test builds from busybox-static. The registry process
// and every file are removed at the end, also when a test fails.
#include "agent/runtime/registry.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/runtime/fsutil.h"
#include "agent/runtime/logs.h"
#include "agent/runtime/runtime.h"
#include "agent/runtime/testing/local_registry.h"
#include "agent/runtime/testing/test_image.h"
#include "common/registry_auth.h"
#include "gtest/gtest.h"

namespace swarm::agent::runtime {
namespace {

class RegistryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto registry = testing::LocalRegistry::Start({"echo", "pulled"});
    ASSERT_TRUE(registry.ok()) << registry.status();
    local_ = registry->release();
    dir_ = local_->dir();
    registry_ = local_->addr();
    manifest_digest_ = local_->manifest_digest();
  }

  static void TearDownTestSuite() {
    delete local_;
    local_ = nullptr;
  }

  void SetUp() override {
    state_ = dir_ + "/state-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    auto store = ImageStore::Open(state_ + "/images");
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
  }
  void TearDown() override { EXPECT_TRUE(RemoveAll(state_).ok()); }

  RegistryOptions Options() {
    RegistryOptions o;
    o.insecure_registries = {registry_};
    return o;
  }
  std::string Ref(const std::string& suffix) {
    return absl::StrCat(registry_, "/test/busybox", suffix);
  }
  std::string LayerBlobInRegistry() {
    auto info = store_->Get(Ref(":latest"));
    return info.ok() ? info->layer_blobs[0] : "";
  }

  static testing::LocalRegistry* local_;
  static std::string dir_, registry_, manifest_digest_;
  std::string state_;
  std::unique_ptr<ImageStore> store_;
};

testing::LocalRegistry* RegistryTest::local_ = nullptr;
std::string RegistryTest::dir_, RegistryTest::registry_, RegistryTest::manifest_digest_;

TEST_F(RegistryTest, Pull_ByTagThenRunsAContainer) {
  std::vector<PullProgress> completed;
  std::mutex mu;
  RegistryOptions o = Options();
  o.progress = [&](const PullProgress& p) {
    std::lock_guard<std::mutex> lock(mu);
    if (p.complete) completed.push_back(p);
    return true;
  };
  RegistryClient client(*store_, o);
  auto id = client.Pull(Ref(":latest"));
  ASSERT_TRUE(id.ok()) << id.status();
  auto info = store_->Get(Ref(""));  // no tag means :latest
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->manifest_digest, manifest_digest_);
  EXPECT_EQ(completed.size(), 2u);  // the config and the one layer, each reported done
  for (const auto& p : completed) EXPECT_EQ(p.done_bytes, p.total_bytes);

  std::string cgroup_parent = absl::StrCat("swarm-test-", getpid());
  auto rt = Runtime::Open({state_, cgroup_parent, store_.get()});
  ASSERT_TRUE(rt.ok());
  ContainerSpec spec;
  spec.image = Ref(":latest");
  auto cid = (*rt)->Create(spec);
  ASSERT_TRUE(cid.ok()) << cid.status();
  ASSERT_TRUE((*rt)->Start(*cid).ok());
  EXPECT_TRUE((*rt)->Wait(*cid, absl::Seconds(30)).ok());
  std::string out;
  ReadLogs((*rt)->LogPath(*cid), {}, [&](const LogEntry& e) {
    out += e.log;
    return true;
  }).IgnoreError();
  EXPECT_EQ(out, "pulled\n");
  EXPECT_TRUE((*rt)->Remove(*cid).ok());
  EXPECT_TRUE(Cgroup::RemoveParent(cgroup_parent).ok());
}

TEST_F(RegistryTest, Pull_ByDigestPinsTheManifest) {
  RegistryClient client(*store_, Options());
  auto id = client.Pull(Ref("@" + manifest_digest_));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_TRUE(store_->Get(Ref("@" + manifest_digest_)).ok());
  // A digest the registry does not have is not found, not silently replaced by a tag.
  auto missing = client.Pull(Ref("@sha256:" + std::string(64, '0')));
  EXPECT_FALSE(missing.ok());
}

TEST_F(RegistryTest, Pull_CorruptedBlobIsRejected) {
  // Pull once to learn the layer digest, then corrupt that blob inside the registry.
  {
    RegistryClient client(*store_, Options());
    ASSERT_TRUE(client.Pull(Ref(":latest")).ok());
  }
  std::string layer = LayerBlobInRegistry();
  ASSERT_FALSE(layer.empty());
  std::string hex = layer.substr(7);
  std::string data = absl::StrCat(dir_, "/data/docker/registry/v2/blobs/sha256/", hex.substr(0, 2),
                                  "/", hex, "/data");
  std::string backup = data + ".orig";
  ASSERT_EQ(system(absl::StrCat("cp ", data, " ", backup).c_str()), 0);
  {
    std::fstream io(data, std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(100);
    char c = io.get();
    io.seekp(100);
    io.put(static_cast<char>(c ^ 0x55));
  }
  auto fresh = ImageStore::Open(state_ + "/images2");
  ASSERT_TRUE(fresh.ok());
  RegistryClient client(**fresh, Options());
  auto id = client.Pull(Ref(":latest"));
  ASSERT_EQ(rename(backup.c_str(), data.c_str()), 0);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kDataLoss) << id.status();
  EXPECT_NE(std::string(id.status().message()).find(layer), std::string::npos) << id.status();
  EXPECT_FALSE((*fresh)->HasBlob(layer));
  EXPECT_FALSE((*fresh)->Get(Ref(":latest")).ok());
}

TEST_F(RegistryTest, Pull_InterruptedPullResumes) {
  RegistryOptions first = Options();
  first.max_concurrent_downloads = 1;
  std::string layer;
  int64_t layer_size = 0;
  first.progress = [&](const PullProgress& p) {
    // Let the config through, cut the layer after 64 KiB.
    if (p.total_bytes > 100000 && p.done_bytes >= 65536) {
      layer = p.digest;
      layer_size = p.total_bytes;
      return false;
    }
    return true;
  };
  auto interrupted = RegistryClient(*store_, first).Pull(Ref(":latest"));
  ASSERT_FALSE(interrupted.ok());
  EXPECT_EQ(interrupted.status().code(), absl::StatusCode::kCancelled) << interrupted.status();
  ASSERT_FALSE(layer.empty());
  EXPECT_FALSE(store_->HasBlob(layer));

  RegistryOptions second = Options();
  int64_t fetched = 0, done = 0;
  second.progress = [&](const PullProgress& p) {
    if (p.digest == layer && p.complete) {
      fetched = p.fetched_bytes;
      done = p.done_bytes;
    }
    return true;
  };
  auto resumed = RegistryClient(*store_, second).Pull(Ref(":latest"));
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_TRUE(store_->HasBlob(layer));
  EXPECT_EQ(done, layer_size);
  // Only the rest came over the network: the first 64 KiB were reused.
  EXPECT_GT(fetched, 0);
  EXPECT_LE(fetched, layer_size - 65536);
}

// A second registry that wants a user name and password (htpasswd, bcrypt): the client
// answers the Basic challenge with the credentials it was given, and only then.
class RegistryAuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/registry_auth_test.XXXXXX";
    dir_ = mkdtemp(tmpl);
    registry_ = absl::StrCat("127.0.0.1:", testing::FreePort());
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    ASSERT_NE(crypt_gensalt_rn("$2b$", 5, nullptr, 0, setting, sizeof setting), nullptr);
    crypt_data data{};
    const char* hash = crypt_r("secret", setting, &data);
    ASSERT_NE(hash, nullptr);
    std::ofstream(dir_ + "/htpasswd") << "alice:" << hash << "\n";
    std::ofstream(dir_ + "/config.yml")
        << "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: "
        << dir_ << "/data\nhttp:\n  addr: " << registry_
        << "\nauth:\n  htpasswd:\n    realm: test\n    path: " << dir_ << "/htpasswd\n";
    pid_ = fork();
    if (pid_ == 0) {
      execl("/usr/bin/docker-registry", "docker-registry", "serve", (dir_ + "/config.yml").c_str(),
            nullptr);
      _exit(127);
    }
    for (int i = 0;
         i < 200 && testing::HttpStatus(absl::StrCat("http://", registry_, "/v2/")) != 401; ++i) {
      usleep(50000);
    }
    ASSERT_EQ(testing::HttpStatus(absl::StrCat("http://", registry_, "/v2/")), 401);
    ASSERT_TRUE(testing::BuildBusyboxRootfs(dir_ + "/rootfs").ok());
    ASSERT_TRUE(testing::BuildOciLayout({dir_ + "/rootfs"}, dir_ + "/layout").ok());
    std::string push = absl::StrCat(
        "skopeo --insecure-policy copy -q --dest-tls-verify=false --dest-creds alice:secret oci:",
        dir_, "/layout:latest docker://", registry_, "/private/busybox:latest");
    ASSERT_EQ(system(push.c_str()), 0) << push;
  }
  static void TearDownTestSuite() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    ASSERT_TRUE(RemoveAll(dir_).ok());
  }
  static std::string dir_, registry_;
  static pid_t pid_;
};

std::string RegistryAuthTest::dir_, RegistryAuthTest::registry_;
pid_t RegistryAuthTest::pid_ = -1;

TEST_F(RegistryAuthTest, Pull_BasicAuthWithAndWithoutCredentials) {
  auto store = ImageStore::Open(dir_ + "/state/images");
  ASSERT_TRUE(store.ok());
  std::string ref = absl::StrCat(registry_, "/private/busybox:latest");
  RegistryOptions anonymous;
  anonymous.insecure_registries = {registry_};
  auto refused = RegistryClient(**store, anonymous).Pull(ref);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied) << refused.status();

  RegistryOptions wrong = anonymous;
  wrong.credentials[registry_] = {"alice", "guess"};
  auto bad = RegistryClient(**store, wrong).Pull(ref);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kPermissionDenied) << bad.status();

  RegistryOptions alice = anonymous;
  alice.credentials[registry_] = {"alice", "secret"};
  auto id = RegistryClient(**store, alice).Pull(ref);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_TRUE((*store)->Get(ref).ok());
}

TEST_F(RegistryAuthTest, Pull_WithAServicesRegistryAuth) {
  auto store = ImageStore::Open(dir_ + "/state/service-images");
  ASSERT_TRUE(store.ok());
  const std::string ref = absl::StrCat(registry_, "/private/busybox:latest");
  RegistryOptions node;
  node.insecure_registries = {registry_};
  // What `swarmctl service create --with-registry-auth` sends after `docker login`.
  auto with = WithServiceCredentials(node, ref, EncodeRegistryAuth({"alice", "secret", registry_}));
  ASSERT_TRUE(with.ok()) << with.status();
  auto id = RegistryClient(**store, *with).Pull(ref);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_TRUE((*store)->Get(ref).ok());

  auto garbled = WithServiceCredentials(node, ref, "%%%");
  EXPECT_EQ(garbled.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(garbled.status().message(), "--with-registry-auth"));
  auto none = WithServiceCredentials(node, ref, "");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->credentials.empty());
  // A login for another registry is not handed to this one.
  auto elsewhere =
      WithServiceCredentials(node, ref, EncodeRegistryAuth({"alice", "secret", "other.example"}));
  ASSERT_TRUE(elsewhere.ok());
  EXPECT_TRUE(elsewhere->credentials.empty());
}

}  // namespace
}  // namespace swarm::agent::runtime

// The image store with real layouts and archives made from busybox-static, and containers
// run from the loaded images (whiteouts are only real once overlayfs stacks the layers).
#include "agent/runtime/image_store.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "agent/runtime/fsutil.h"
#include "agent/runtime/logs.h"
#include "agent/runtime/runtime.h"
#include "agent/runtime/testing/test_image.h"
#include "gtest/gtest.h"

namespace swarm::agent::runtime {
namespace {

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path);
  out << data;
}

int CountEntries(const std::string& dir) {
  std::string cmd = absl::StrCat("ls -A ", dir, " | wc -l");
  FILE* f = popen(cmd.c_str(), "r");
  int n = -1;
  if (f != nullptr && fscanf(f, "%d", &n) != 1) n = -1;
  if (f != nullptr) pclose(f);
  return n;
}

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/image_store_test.XXXXXX";
    dir_ = mkdtemp(tmpl);
    rootfs_ = dir_ + "/rootfs";
    ASSERT_TRUE(testing::BuildBusyboxRootfs(rootfs_).ok());
    auto store = ImageStore::Open(dir_ + "/state/images");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    cgroup_parent_ = absl::StrCat("swarm-test-", getpid());
    auto rt = Runtime::Open({dir_ + "/state", cgroup_parent_, store_.get()});
    ASSERT_TRUE(rt.ok());
    runtime_ = std::move(*rt);
  }
  void TearDown() override {
    if (runtime_ != nullptr) {
      auto all = runtime_->List();
      if (all.ok()) {
        for (const auto& c : *all) EXPECT_TRUE(runtime_->Remove(c.id, true).ok());
      }
    }
    EXPECT_TRUE(Cgroup::RemoveParent(cgroup_parent_).ok());
    runtime_.reset();  // joins its deleter before the directory goes
    EXPECT_TRUE(RemoveAll(dir_).ok());
  }

  std::string RunOutput(const std::string& image, std::vector<std::string> args) {
    ContainerSpec spec;
    spec.image = image;
    spec.args = std::move(args);
    auto id = runtime_->Create(spec);
    EXPECT_TRUE(id.ok()) << id.status();
    if (!id.ok()) return "";
    EXPECT_TRUE(runtime_->Start(*id).ok());
    EXPECT_TRUE(runtime_->Wait(*id, absl::Seconds(30)).ok());
    std::string out;
    ReadLogs(runtime_->LogPath(*id), {}, [&](const LogEntry& e) {
      out += e.log;
      return true;
    }).IgnoreError();
    EXPECT_TRUE(runtime_->Remove(*id).ok());
    return out;
  }

  std::string dir_, rootfs_, cgroup_parent_;
  std::unique_ptr<ImageStore> store_;
  std::unique_ptr<Runtime> runtime_;
};

TEST_F(ImageStoreTest, LoadOciLayout_GzipImageRunsWithItsConfig) {
  testing::LayoutOptions o;
  o.env.push_back("GREETING=hello from the image");
  o.cmd = {"sh", "-c", "echo $GREETING"};
  auto manifest = testing::BuildOciLayout({rootfs_}, dir_ + "/layout", o);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  auto ids = store_->LoadOciLayout(dir_ + "/layout", "busybox:latest");
  ASSERT_TRUE(ids.ok()) << ids.status();
  ASSERT_EQ(ids->size(), 1u);
  // Docker's resolution: "busybox" is docker.io/library/busybox:latest.
  auto info = store_->Get("busybox");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->id, (*ids)[0]);
  EXPECT_EQ(info->manifest_digest, *manifest);
  EXPECT_EQ(info->diff_ids.size(), 1u);
  EXPECT_TRUE(store_->Get("docker.io/library/busybox@" + *manifest).ok());
  EXPECT_EQ(RunOutput("busybox", {}), "hello from the image\n");
  EXPECT_EQ(RunOutput("busybox", {"echo", "override"}), "override\n");
}

TEST_F(ImageStoreTest, Layers_WhiteoutsAndOpaqueDirectoriesApply) {
  std::string l1 = dir_ + "/l1", l2 = dir_ + "/l2";
  ASSERT_TRUE(MkdirAll(l1 + "/a").ok());
  ASSERT_TRUE(MkdirAll(l1 + "/d").ok());
  WriteFile(l1 + "/a/gone", "x");
  WriteFile(l1 + "/a/kept", "x");
  WriteFile(l1 + "/d/old", "x");
  ASSERT_TRUE(MkdirAll(l2 + "/a").ok());
  ASSERT_TRUE(MkdirAll(l2 + "/d").ok());
  WriteFile(l2 + "/a/.wh.gone", "");
  WriteFile(l2 + "/d/.wh..wh..opq", "");
  WriteFile(l2 + "/d/new", "x");
  testing::LayoutOptions o;
  o.compression = "zstd";
  ASSERT_TRUE(testing::BuildOciLayout({rootfs_, l1, l2}, dir_ + "/layout", o).ok());
  ASSERT_TRUE(store_->LoadOciLayout(dir_ + "/layout", "layered:1").ok());
  EXPECT_EQ(RunOutput("layered:1", {"ls", "/a", "/d"}), "/a:\nkept\n\n/d:\nnew\n");
}

TEST_F(ImageStoreTest, Layers_SharedLayerIsUnpackedOnceAndCollectedWhenUnused) {
  std::string extra = dir_ + "/extra";
  ASSERT_TRUE(MkdirAll(extra).ok());
  WriteFile(extra + "/hello", "hi");
  ASSERT_TRUE(testing::BuildOciLayout({rootfs_}, dir_ + "/one").ok());
  ASSERT_TRUE(testing::BuildOciLayout({rootfs_, extra}, dir_ + "/two").ok());
  ASSERT_TRUE(store_->LoadOciLayout(dir_ + "/one", "one").ok());
  ASSERT_TRUE(store_->LoadOciLayout(dir_ + "/two", "two").ok());
  std::string layers = store_->root() + "/layers";
  EXPECT_EQ(CountEntries(layers), 2);  // busybox's layer once, plus the extra one
  auto images = store_->List();
  ASSERT_TRUE(images.ok());
  EXPECT_EQ(images->size(), 2u);

  ASSERT_TRUE(store_->Remove("two").ok());
  auto removed = store_->GarbageCollect({});
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 1);
  EXPECT_EQ(CountEntries(layers), 1);
  EXPECT_EQ(RunOutput("one", {"true"}), "");
  ASSERT_TRUE(store_->Remove("one").ok());
  EXPECT_FALSE(store_->Get("one").ok());
  EXPECT_EQ(*store_->GarbageCollect({}), 1);
  EXPECT_EQ(CountEntries(layers), 0);
  EXPECT_EQ(CountEntries(store_->root() + "/blobs/sha256"), 0);
}

TEST_F(ImageStoreTest, LoadOciLayout_CorruptedBlobIsRejected) {
  auto manifest = testing::BuildOciLayout({rootfs_}, dir_ + "/layout");
  ASSERT_TRUE(manifest.ok());
  auto info_json = dir_ + "/layout/blobs/sha256/";
  // Flip the last byte of the (only) layer: find it as the largest blob.
  std::string cmd = absl::StrCat("ls -S ", info_json, " | head -1");
  FILE* f = popen(cmd.c_str(), "r");
  char name[128] = {};
  ASSERT_EQ(fscanf(f, "%127s", name), 1);
  pclose(f);
  std::string blob = info_json + name;
  std::fstream io(blob, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(-1, std::ios::end);
  char c = io.get();
  io.seekp(-1, std::ios::end);
  io.put(static_cast<char>(c ^ 0xff));
  io.close();
  auto ids = store_->LoadOciLayout(dir_ + "/layout", "bad");
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kDataLoss) << ids.status();
  EXPECT_FALSE(store_->Get("bad").ok());
}

TEST_F(ImageStoreTest, LoadArchive_DockerSaveAndOciArchive) {
  // A `docker save` archive: manifest.json, the config and uncompressed layer tars.
  testing::LayoutOptions o;
  o.compression = "none";
  o.cmd = {"echo", "saved"};
  ASSERT_TRUE(testing::BuildOciLayout({rootfs_}, dir_ + "/layout", o).ok());
  std::ifstream index_in(dir_ + "/layout/index.json");
  std::string save = dir_ + "/save";
  ASSERT_TRUE(MkdirAll(save).ok());
  // Reuse the layout's blobs under docker-save names.
  std::string blobs = dir_ + "/layout/blobs/sha256/";
  std::string script = absl::StrCat(
      "set -e; cd ", blobs, "; m=$(grep -l schemaVersion * | head -1); ",
      "cfg=$(sed 's/.*\"config\":{[^}]*\"digest\":\"sha256:\\([0-9a-f]*\\)\".*/\\1/' $m); ",
      "lay=$(sed 's/.*\"layers\":\\[{[^}]*\"digest\":\"sha256:\\([0-9a-f]*\\)\".*/\\1/' $m); ",
      "cp $cfg ", save, "/$cfg.json; mkdir ", save, "/$lay; cp $lay ", save, "/$lay/layer.tar; ",
      "printf "
      "'[{\"Config\":\"%s.json\",\"RepoTags\":[\"saved:v1\"],\"Layers\":[\"%s/layer.tar\"]}]'",
      " $cfg $lay > ", save, "/manifest.json; tar -C ", save, " -cf ", dir_, "/save.tar .; ",
      "tar -C ", dir_, "/layout -cf ", dir_, "/oci.tar .");
  ASSERT_EQ(system(script.c_str()), 0);
  auto ids = store_->LoadArchive(dir_ + "/save.tar");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(RunOutput("saved:v1", {}), "saved\n");
  auto oci = store_->LoadArchive(dir_ + "/oci.tar", "fromoci:1");
  ASSERT_TRUE(oci.ok()) << oci.status();
  EXPECT_EQ(RunOutput("fromoci:1", {}), "saved\n");
}

}  // namespace
}  // namespace swarm::agent::runtime

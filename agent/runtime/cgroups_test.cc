// Limits land in the kernel's files for the hierarchy this machine has, and a cgroup with
// processes in it is emptied and removed. Each test uses its own parent and removes it.
#include "agent/runtime/cgroups.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace swarm::agent::runtime {
namespace {

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

std::string PathOf(const Cgroup& cg, const std::string& controller) {
  if (cg.version() == CgroupVersion::kV2) return cg.paths()[0];
  for (const auto& p : cg.paths()) {
    if (p.find("/sys/fs/cgroup/" + controller + "/") == 0) return p;
  }
  return "";
}

class CgroupTest : public ::testing::Test {
 protected:
  void TearDown() override { EXPECT_TRUE(Cgroup::RemoveParent(parent_).ok()); }
  std::string parent_ = absl::StrCat("swarm-test-cg-", getpid());
};

TEST_F(CgroupTest, Create_WritesDockerUnitsAsKernelLimits) {
  Resources r;
  r.memory_bytes = 64 << 20;
  r.nano_cpus = 500000000;  // half a CPU
  r.cpu_shares = 512;
  r.pids_limit = 42;
  auto cg = Cgroup::Create(parent_, "limits", r);
  ASSERT_TRUE(cg.ok()) << cg.status();
  if (cg->version() == CgroupVersion::kV1) {
    EXPECT_EQ(Read(PathOf(*cg, "memory") + "/memory.limit_in_bytes"), "67108864");
    EXPECT_EQ(Read(PathOf(*cg, "cpu") + "/cpu.cfs_period_us"), "100000");
    EXPECT_EQ(Read(PathOf(*cg, "cpu") + "/cpu.cfs_quota_us"), "50000");
    EXPECT_EQ(Read(PathOf(*cg, "cpu") + "/cpu.shares"), "512");
    EXPECT_EQ(Read(PathOf(*cg, "pids") + "/pids.max"), "42");
    // Docker's device rules: mknod of anything, use of the nodes we create only.
    std::string devices = Read(PathOf(*cg, "devices") + "/devices.list");
    EXPECT_NE(devices.find("c 1:3 rwm"), std::string::npos) << devices;
    EXPECT_EQ(devices.find("a *:* rwm"), std::string::npos) << devices;
  } else {
    EXPECT_EQ(Read(PathOf(*cg, "") + "/memory.max"), "67108864");
    EXPECT_EQ(Read(PathOf(*cg, "") + "/cpu.max"), "50000 100000");
    EXPECT_EQ(Read(PathOf(*cg, "") + "/pids.max"), "42");
  }
  EXPECT_TRUE(cg->Destroy().ok());
}

TEST_F(CgroupTest, Destroy_KillsWhatIsLeftAndRemovesEveryDirectory) {
  auto cg = Cgroup::Create(parent_, "busy", Resources{});
  ASSERT_TRUE(cg.ok()) << cg.status();
  pid_t child = fork();
  if (child == 0) {
    pause();
    _exit(0);
  }
  ASSERT_TRUE(cg->AddProcess(child).ok());
  auto stats = cg->ReadStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->pids_current, 1u);
  ASSERT_TRUE(cg->Destroy().ok());
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  for (const auto& p : cg->paths()) EXPECT_NE(access(p.c_str(), F_OK), 0) << p;
}

// The BPF device filter that replaces v1's devices controller on cgroup v2. This machine's
// controllers are on v1, but its unified hierarchy (/sys/fs/cgroup/unified) runs BPF device
// programs all the same, so the filter is tested for real there.
TEST(DeviceFilter_Test, AllowsTheDefaultNodesAndDeniesOthers) {
  std::string unified =
      DetectCgroupVersion() == CgroupVersion::kV2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified";
  ASSERT_EQ(access((unified + "/cgroup.procs").c_str(), F_OK), 0) << "no cgroup2 hierarchy";
  std::string dir = absl::StrCat(unified, "/swarm-test-dev-", getpid());
  char tmpl[] = "/tmp/device_filter_test.XXXXXX";
  std::string nodes = mkdtemp(tmpl);
  ASSERT_EQ(mknod((nodes + "/kmsg").c_str(), S_IFCHR | 0600, makedev(1, 11)), 0);
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  // Control: outside the filtered cgroup the node opens.
  int control = open((nodes + "/kmsg").c_str(), O_RDONLY | O_NONBLOCK);
  EXPECT_GE(control, 0);
  if (control >= 0) close(control);

  int fd = open(dir.c_str(), O_DIRECTORY | O_RDONLY);
  ASSERT_GE(fd, 0);
  absl::Status attached = AttachDeviceFilter(fd);
  close(fd);
  EXPECT_TRUE(attached.ok()) << attached;
  pid_t child = fork();
  if (child == 0) {
    std::ofstream(dir + "/cgroup.procs") << getpid();
    int bits = 0;
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd >= 0) bits |= 1;  // allowed: c 1:3 rwm
    int kmsg = open((nodes + "/kmsg").c_str(), O_RDONLY | O_NONBLOCK);
    if (kmsg < 0 && errno == EPERM) bits |= 2;  // denied: c 1:11
    if (mknod((nodes + "/loop").c_str(), S_IFBLK | 0600, makedev(7, 0)) == 0) bits |= 4;
    int loop = open((nodes + "/loop").c_str(), O_RDONLY);
    if (loop < 0 && errno == EPERM) bits |= 8;  // mknod yes, use no: b 7:0
    _exit(bits);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1 | 2 | 4 | 8);
  EXPECT_EQ(rmdir(dir.c_str()), 0);
  unlink((nodes + "/kmsg").c_str());
  unlink((nodes + "/loop").c_str());
  rmdir(nodes.c_str());
}

}  // namespace
}  // namespace swarm::agent::runtime

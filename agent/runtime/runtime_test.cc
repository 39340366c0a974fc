// Isolation and lifecycle of real containers (root, namespaces, cgroups). Each test gets its
// own state directory and cgroup parent and removes both, containers included, on the way
// out, also when it fails.
#include "agent/runtime/runtime.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/runtime/fsutil.h"
#include "agent/runtime/health.h"
#include "agent/runtime/logs.h"
#include "agent/runtime/testing/test_image.h"
#include "common/files.h"
#include "gtest/gtest.h"

namespace swarm::agent::runtime {
namespace {

class RuntimeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/runtime_test.XXXXXX";
    suite_dir_ = mkdtemp(tmpl);
    rootfs_ = suite_dir_ + "/rootfs";
    // A user namespace's root (an unprivileged host user) must reach the layers.
    chmod(suite_dir_.c_str(), 0755);
    ASSERT_TRUE(testing::BuildBusyboxRootfs(rootfs_, testing::ProbePath()).ok());
    // Shims of a "crashed daemon" reparent to us, not to init, so the test can reap them.
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    // Both kinds, while the test has one thread: swarm-shim (in the runfiles) and a fork.
    auto program = ShimLauncher::Start("node/swarm-shim");
    ASSERT_TRUE(program.ok()) << program.status();
    program_launcher_ = std::move(*program);
    auto forked = ShimLauncher::Start();
    ASSERT_TRUE(forked.ok()) << forked.status();
    forked_launcher_ = std::move(*forked);
  }
  static void TearDownTestSuite() {
    // The forked launcher holds the other's socket (it was forked after it): it goes first,
    // or the other would never read EOF.
    forked_launcher_.reset();
    program_launcher_.reset();
    ASSERT_TRUE(RemoveAll(suite_dir_).ok());
  }

  void SetUp() override {
    state_ = absl::StrCat(suite_dir_, "/state-",
                          ::testing::UnitTest::GetInstance()->current_test_info()->name());
    cgroup_parent_ = absl::StrCat("swarm-test-", getpid());
    auto rt = Runtime::Open({state_, cgroup_parent_, nullptr});
    ASSERT_TRUE(rt.ok()) << rt.status();
    runtime_ = std::move(*rt);
  }

  void TearDown() override {
    auto all = runtime_->List();
    ASSERT_TRUE(all.ok());
    for (const auto& c : *all) EXPECT_TRUE(runtime_->Remove(c.id, /*force=*/true).ok());
    EXPECT_TRUE(Cgroup::RemoveParent(cgroup_parent_).ok());
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    runtime_.reset();  // joins its deleter before the directory goes
    EXPECT_TRUE(RemoveAll(state_).ok());
  }

  ContainerSpec Spec(std::vector<std::string> args) {
    ContainerSpec spec;
    spec.lower_dirs = {rootfs_};
    spec.args = std::move(args);
    return spec;
  }

  struct Result {
    ExitRecord exit;
    std::string stdout_text;
    std::string stderr_text;
  };

  // create, start, wait; the container stays for the test to inspect or remove.
  Result Run(ContainerSpec spec, std::string* id_out = nullptr) {
    Result r;
    auto id = runtime_->Create(std::move(spec));
    EXPECT_TRUE(id.ok()) << id.status();
    if (!id.ok()) return r;
    if (id_out != nullptr) *id_out = *id;
    EXPECT_TRUE(runtime_->Start(*id).ok());
    auto exit = runtime_->Wait(*id, absl::Seconds(60));
    EXPECT_TRUE(exit.ok()) << exit.status();
    if (exit.ok()) r.exit = *exit;
    ReadLogs(runtime_->LogPath(*id), {}, [&](const LogEntry& e) {
      (e.stream == "stdout" ? r.stdout_text : r.stderr_text) += e.log;
      return true;
    }).IgnoreError();
    return r;
  }

  static std::string suite_dir_, rootfs_;
  // Everything a spec says reaches the container when `launcher` forks its shim; a dead
  // launcher only makes the runtime fork shims itself. Returns the shim's count of mappings.
  void CheckLauncher(ShimLauncher& launcher, size_t* shim_mappings);

  static ShimLauncher::Handle program_launcher_;
  static ShimLauncher::Handle forked_launcher_;
  std::string state_, cgroup_parent_;
  std::unique_ptr<Runtime> runtime_;
};

std::string RuntimeTest::suite_dir_;
ShimLauncher::Handle RuntimeTest::program_launcher_;
ShimLauncher::Handle RuntimeTest::forked_launcher_;

// The shell installs its trap before it prints; stopping earlier would hit the default
// disposition, which PID 1 ignores.
bool WaitForLog(const std::string& path, const std::string& text) {
  for (int i = 0; i < 1000; ++i) {
    std::ifstream log(path);
    std::stringstream ss;
    ss << log.rdbuf();
    if (absl::StrContains(ss.str(), text)) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}
std::string RuntimeTest::rootfs_;

TEST_F(RuntimeTest, Run_SeesPid1AndOwnHostname) {
  ContainerSpec spec = Spec({"sh", "-c", "echo pid=$$; hostname; echo oops >&2; exit 3"});
  spec.hostname = "box1";
  Result r = Run(spec);
  EXPECT_EQ(r.stdout_text, "pid=1\nbox1\n");
  EXPECT_EQ(r.stderr_text, "oops\n");
  EXPECT_EQ(r.exit.reason, ExitRecord::Reason::kExited);
  EXPECT_EQ(r.exit.exit_code, 3);
}

TEST_F(RuntimeTest, Run_OnlyLoopbackNetworkAndOwnProcesses) {
  Result r = Run(Spec({"sh", "-c", "ls /sys/class/net; ps -o pid | wc -l"}));
  // A header, then sh (pid 1), ps and wc: nothing of the host's.
  EXPECT_EQ(r.stdout_text, "lo\n4\n");
}

TEST_F(RuntimeTest, Run_EnvironmentWorkingDirectoryAndUser) {
  ContainerSpec spec = Spec({"sh", "-c", "echo $FOO; pwd; id -u; id -g"});
  spec.env = {"FOO=bar"};
  spec.working_dir = "/work/dir";
  spec.user = "nobody";
  Result r = Run(spec);
  EXPECT_EQ(r.stdout_text, "bar\n/work/dir\n65534\n65534\n") << r.stderr_text << r.exit.error;
}

TEST_F(RuntimeTest, Logs_RotateBySizeAndReadBackInOrder) {
  ContainerSpec spec = Spec({"sh", "-c", "for i in $(seq 1 60); do echo line $i; done"});
  spec.log_max_size_bytes = 1000;
  spec.log_max_files = 3;
  std::string id;
  Result r = Run(spec, &id);
  EXPECT_EQ(access((runtime_->LogPath(id) + ".2").c_str(), F_OK), 0);
  EXPECT_NE(access((runtime_->LogPath(id) + ".3").c_str(), F_OK), 0);
  // The oldest lines are gone; the rest come back in order, up to the last one.
  ASSERT_FALSE(r.stdout_text.empty());
  EXPECT_NE(r.stdout_text.find("line 59\nline 60\n"), std::string::npos);
  EXPECT_EQ(r.stdout_text.find("line 1\n"), std::string::npos);
}

TEST_F(RuntimeTest, Run_RlimitsApply) {
  ContainerSpec spec = Spec({"sh", "-c", "ulimit -n; ulimit -Hn"});
  spec.rlimits.push_back({RLIMIT_NOFILE, 100, 200});
  EXPECT_EQ(Run(spec).stdout_text, "100\n200\n");
}

TEST_F(RuntimeTest, Run_SupplementaryGroupsApplyToRootAndOtherUsers) {
  ContainerSpec spec = Spec({"id", "-G"});
  spec.groups = {"nogroup", "1234"};
  // (The kernel keeps the list sorted; id -G prints the primary group first.)
  EXPECT_EQ(Run(spec).stdout_text, "0 1234 65534\n");
  spec.user = "nobody";
  EXPECT_EQ(Run(spec).stdout_text, "65534 1234\n");
  spec.groups = {"no-such-group"};
  auto id = runtime_->Create(spec);
  EXPECT_TRUE(absl::StrContains(id.status().message(), "looking up group no-such-group"))
      << id.status();
}

TEST_F(RuntimeTest, Run_SysctlsAndOomScoreApplyInsideTheContainerOnly) {
  const std::string host_somaxconn = ReadFile("/proc/sys/net/core/somaxconn").value_or("");
  const std::string host_shmmni = ReadFile("/proc/sys/kernel/shmmni").value_or("");
  ContainerSpec spec = Spec({"sh", "-c",
                             "cat /proc/sys/net/core/somaxconn /proc/sys/kernel/shmmni "
                             "/proc/self/oom_score_adj"});
  spec.sysctls = {{"net.core.somaxconn", "1234"}, {"kernel.shmmni", "2345"}};
  spec.oom_score_adj = 567;
  Result r = Run(spec);
  EXPECT_EQ(r.stdout_text, "1234\n2345\n567\n") << r.stderr_text << r.exit.error;
  EXPECT_EQ(ReadFile("/proc/sys/net/core/somaxconn").value_or(""), host_somaxconn);
  EXPECT_EQ(ReadFile("/proc/sys/kernel/shmmni").value_or(""), host_shmmni);

  // What would change the host is refused before anything runs.
  ContainerSpec host = Spec({"true"});
  host.sysctls = {{"vm.swappiness", "1"}};
  auto id = runtime_->Create(host);
  EXPECT_TRUE(absl::StrContains(id.status().message(), "sysctl vm.swappiness is not namespaced"))
      << id.status();
  host.sysctls = {{"net.core.somaxconn", "1"}};
  host.network = NetworkMode::kHost;
  id = runtime_->Create(host);
  EXPECT_TRUE(absl::StrContains(id.status().message(), "would change the host")) << id.status();
  // Nor can a mount redirect the writes.
  ContainerSpec over = Spec({"true"});
  over.mounts.push_back({.type = MountSpec::Type::kTmpfs, .target = "/proc/sys/net"});
  id = runtime_->Create(over);
  EXPECT_TRUE(absl::StrContains(id.status().message(), "cannot mount at /proc/sys/net"))
      << id.status();
}

TEST_F(RuntimeTest, EtcHosts_HostnameAtTheAddressAndExtraEntries) {
  ContainerSpec spec = Spec({"cat", "/etc/hosts"});
  spec.hostname = "web-1";
  spec.etc_hosts = EtcHostsSpec{"10.0.1.5", {"10.0.0.9 db db.local"}};
  Result r = Run(spec);
  EXPECT_TRUE(absl::StartsWith(r.stdout_text, "127.0.0.1\tlocalhost\n")) << r.stdout_text;
  EXPECT_TRUE(absl::EndsWith(r.stdout_text, "\n10.0.1.5\tweb-1\n10.0.0.9 db db.local\n"))
      << r.stdout_text;
  // Root in the container may edit it, as in Docker (a secret stays read-only).
  ContainerSpec edit =
      Spec({"sh", "-c", "echo '10.0.0.7 cache' >> /etc/hosts && tail -1 /etc/hosts"});
  edit.etc_hosts = EtcHostsSpec{};
  EXPECT_EQ(Run(edit).stdout_text, "10.0.0.7 cache\n");
  // On the host's network: the host's own entries first.
  spec.network = NetworkMode::kHost;
  spec.etc_hosts = EtcHostsSpec{"", {"10.0.0.9 db"}};
  EXPECT_EQ(Run(spec).stdout_text, ReadFile("/etc/hosts").value_or("") + "10.0.0.9 db\n");
}

int CountLines(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) ++n;
  return n;
}

TEST_F(RuntimeTest, Network_HostAndGivenNamespace) {
  // Host mode: the container sees the host's interfaces.
  ContainerSpec host = Spec({"sh", "-c", "wc -l < /proc/net/dev"});
  host.network = NetworkMode::kHost;
  EXPECT_EQ(Run(host).stdout_text, absl::StrCat(CountLines("/proc/net/dev"), "\n"));

  // A given namespace: one made here whose loopback is up (a fresh one's is down).
  std::string ns = absl::StrCat("swarm-test-", getpid());
  struct NetnsGuard {
    std::string name;
    ~NetnsGuard() { (void)!system(absl::StrCat("ip netns del ", name).c_str()); }
  };
  ASSERT_EQ(system(absl::StrCat("ip netns add ", ns).c_str()), 0);
  NetnsGuard guard{ns};
  ASSERT_EQ(system(absl::StrCat("ip -n ", ns, " link set lo up").c_str()), 0);
  ContainerSpec given = Spec({"cat", "/sys/class/net/lo/flags"});
  given.network = NetworkMode::kPath;
  given.netns_path = "/run/netns/" + ns;
  EXPECT_EQ(Run(given).stdout_text, "0x9\n");  // IFF_UP | IFF_LOOPBACK
  EXPECT_EQ(Run(Spec({"cat", "/sys/class/net/lo/flags"})).stdout_text, "0x8\n");
}

TEST_F(RuntimeTest, Memory_AllocatingProcessIsOomKilledAndReportedAsOom) {
  ContainerSpec spec = Spec({"probe", "alloc", "256"});
  spec.resources.memory_bytes = 32 << 20;
  Result r = Run(spec);
  EXPECT_EQ(r.exit.reason, ExitRecord::Reason::kOomKilled);
  EXPECT_EQ(r.exit.signal, SIGKILL);
  EXPECT_EQ(r.stdout_text.find("alloc: ok"), std::string::npos);
}

TEST_F(RuntimeTest, Pids_LimitStopsForks) {
  ContainerSpec spec = Spec({"probe", "forks", "40"});
  spec.resources.pids_limit = 10;
  Result r = Run(spec);
  // The probe itself is one of the 10.
  EXPECT_EQ(r.stdout_text, "forks: 9 of 40 EAGAIN\n");
}

TEST_F(RuntimeTest, Seccomp_DefaultProfileDeniesUnshareMountKeyctlPtrace) {
  for (const char* what : {"unshare", "mount", "keyctl", "ptrace"}) {
    Result r = Run(Spec({"probe", what}));
    EXPECT_EQ(r.stdout_text, absl::StrCat(what, ": EPERM\n"));
  }
  // Controls: the same calls succeed where the profile is not in the way, so the EPERMs
  // above are the profile's doing.
  ContainerSpec unconfined = Spec({"sh", "-c", "probe keyctl; probe ptrace"});
  unconfined.seccomp_unconfined = true;
  EXPECT_EQ(Run(unconfined).stdout_text, "keyctl: ok\nptrace: ok\n");
  ContainerSpec admin = Spec({"probe", "unshare"});
  admin.cap_add = {"SYS_ADMIN"};
  EXPECT_EQ(Run(admin).stdout_text, "unshare: ok\n");
}

TEST_F(RuntimeTest, Capabilities_DroppedChownIsGone) {
  ContainerSpec with = Spec({"sh", "-c", "touch /tmp/f && probe chown /tmp/f"});
  EXPECT_EQ(Run(with).stdout_text, "chown: ok\n");
  ContainerSpec without = with;
  without.cap_drop = {"CHOWN"};
  EXPECT_EQ(Run(without).stdout_text, "chown: EPERM\n");
  ContainerSpec status = Spec({"sh", "-c", "grep CapBnd /proc/self/status"});
  // Docker's default set: 0x00000000a80425fb.
  EXPECT_EQ(Run(status).stdout_text, "CapBnd:\t00000000a80425fb\n");
}

TEST_F(RuntimeTest, MaskedPaths_KcoreIsNullAndProcSysReadOnly) {
  // This machine's kernel has no /proc/kcore (CONFIG_PROC_KCORE is off); where it exists it
  // is masked like the others, which the loop checks by printing every one that exists.
  Result r = Run(Spec({"sh", "-c",
                       "for p in /proc/kcore /proc/keys /proc/timer_list; do [ -e $p ] && "
                       "stat -c \"$p %F %t:%T\" $p; done; wc -c < /proc/keys; "
                       "echo 1 > /proc/sys/kernel/ns_last_pid || echo refused; ls /dev"}));
  std::string expected =
      "/proc/keys character special file 1:3\n"
      "/proc/timer_list character special file 1:3\n0\nrefused\n";
  if (access("/proc/kcore", F_OK) == 0) {
    expected = "/proc/kcore character special file 1:3\n" + expected;
  }
  EXPECT_TRUE(absl::StartsWith(r.stdout_text, expected)) << r.stdout_text;
  EXPECT_TRUE(absl::StrContains(r.stdout_text, "null")) << r.stdout_text;
  EXPECT_TRUE(absl::StrContains(r.stdout_text, "pts")) << r.stdout_text;
  EXPECT_TRUE(absl::StrContains(r.stdout_text, "shm")) << r.stdout_text;
  EXPECT_TRUE(absl::StrContains(r.stdout_text, "mqueue")) << r.stdout_text;
}

TEST_F(RuntimeTest, ReadOnlyRootfs_RefusesWritesButTmpfsWorks) {
  ContainerSpec spec = Spec({"sh", "-c", "probe write /etc/x; probe write /scratch/x"});
  spec.read_only_rootfs = true;
  spec.mounts.push_back({MountSpec::Type::kTmpfs, "", "/scratch", false, 1 << 20});
  EXPECT_EQ(Run(spec).stdout_text, "write: EROFS\nwrite: ok\n");
  // Without the option the same write lands in the container's upper directory only.
  std::string id;
  EXPECT_EQ(Run(Spec({"probe", "write", "/etc/x"}), &id).stdout_text, "write: ok\n");
  EXPECT_EQ(access((rootfs_ + "/etc/x").c_str(), F_OK), -1);
}

TEST_F(RuntimeTest, Mounts_BindAndNamedVolumePersistAcrossContainers) {
  std::string host = state_ + "-bind";
  ASSERT_TRUE(MkdirAll(host).ok());
  ContainerSpec writer = Spec({"sh", "-c", "echo b > /data/f && echo v > /vol/f"});
  writer.mounts.push_back({MountSpec::Type::kBind, host, "/data"});
  writer.mounts.push_back({MountSpec::Type::kVolume, "v1", "/vol"});
  EXPECT_EQ(Run(writer).exit.exit_code, 0);
  ContainerSpec reader = Spec({"sh", "-c", "cat /data/f /vol/f; probe write /data/g"});
  reader.mounts.push_back({MountSpec::Type::kBind, host, "/data", /*read_only=*/true});
  reader.mounts.push_back({MountSpec::Type::kVolume, "v1", "/vol"});
  EXPECT_EQ(Run(reader).stdout_text, "b\nv\nwrite: EROFS\n");
  std::ifstream f(host + "/f");
  std::string line;
  std::getline(f, line);
  EXPECT_EQ(line, "b");
  EXPECT_TRUE(runtime_->RemoveVolume("v1").ok());
  EXPECT_TRUE(RemoveAll(host).ok());
}

TEST_F(RuntimeTest, Mounts_SymlinksInTheImageCannotReachTheHost) {
  // A layer whose /data is an absolute link to a host directory: the mount point (and its
  // missing parents) must be made inside the rootfs, where the link leads in there.
  std::string host_dir = state_ + "-host";
  std::string layer = state_ + "-layer";
  ASSERT_TRUE(MkdirAll(host_dir).ok());
  ASSERT_TRUE(MkdirAll(layer).ok());
  ASSERT_EQ(symlink(host_dir.c_str(), (layer + "/data").c_str()), 0);
  ASSERT_EQ(symlink("../../../../../..", (layer + "/up").c_str()), 0);
  ContainerSpec spec = Spec({"sh", "-c", "ls -d /data/sub /up/escape"});
  spec.lower_dirs = {layer, rootfs_};
  spec.mounts.push_back({MountSpec::Type::kTmpfs, "", "/data/sub", false, 0});
  spec.mounts.push_back({MountSpec::Type::kTmpfs, "", "/up/escape", false, 0});
  Result r = Run(spec);
  EXPECT_EQ(r.exit.exit_code, 0) << r.stderr_text << r.exit.error;
  EXPECT_NE(access((host_dir + "/sub").c_str(), F_OK), 0);
  EXPECT_NE(access("/escape", F_OK), 0);
  EXPECT_TRUE(RemoveAll(host_dir).ok());
  EXPECT_TRUE(RemoveAll(layer).ok());
}

TEST_F(RuntimeTest, Secrets_AreReadOnlyFilesOnTmpfs) {
  ContainerSpec spec =
      Spec({"sh", "-c",
            "cat /run/secrets/token; grep /run/secrets/token /proc/mounts | cut -d' ' -f3;"
            " probe write /run/secrets/token"});
  spec.files.push_back({"/run/secrets/token", "s3cret\n", 0400, 0, 0});
  EXPECT_EQ(Run(spec).stdout_text, "s3cret\ntmpfs\nwrite: EROFS\n");
}

TEST_F(RuntimeTest, Stop_GracePeriodThenKill) {
  // PID 1 without a TERM handler ignores SIGTERM: the grace period runs out, then SIGKILL.
  auto id = runtime_->Create(Spec({"sleep", "1000"}));
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(runtime_->Start(*id).ok());
  absl::Time start = absl::Now();
  auto exit = runtime_->Stop(*id, absl::Milliseconds(700));
  absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->reason, ExitRecord::Reason::kSignaled);
  EXPECT_EQ(exit->signal, SIGKILL);
  EXPECT_GE(took, absl::Milliseconds(700));
  EXPECT_LT(took, absl::Seconds(5));

  // A process that handles the stop signal exits by itself, well within the grace period.
  auto polite = runtime_->Create(
      Spec({"sh", "-c", "trap 'exit 3' TERM; echo ready; while true; do sleep 0.05; done"}));
  ASSERT_TRUE(polite.ok());
  ASSERT_TRUE(runtime_->Start(*polite).ok());
  ASSERT_TRUE(WaitForLog(runtime_->LogPath(*polite), "ready"));
  start = absl::Now();
  exit = runtime_->Stop(*polite, absl::Seconds(10));
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->reason, ExitRecord::Reason::kExited);
  EXPECT_EQ(exit->exit_code, 3);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(RuntimeTest, Init_TheCommandIsNotPid1AndStopsAtSigterm) {
  ContainerSpec spec = Spec({"sh", "-c", "echo $$; exit 7"});
  spec.init = true;
  // Without an init program the runtime says what is missing.
  EXPECT_EQ(runtime_->Create(spec).status().code(), absl::StatusCode::kFailedPrecondition);
  runtime_.reset();
  char init[PATH_MAX];
  ASSERT_NE(realpath("node/swarm-shim", init), nullptr);
  auto rt = Runtime::Open({.root = state_, .cgroup_parent = cgroup_parent_, .init_program = init});
  ASSERT_TRUE(rt.ok()) << rt.status();
  runtime_ = std::move(*rt);

  Result r = Run(spec);
  EXPECT_EQ(r.stdout_text, "2\n") << r.stderr_text << r.exit.error;  // the init is PID 1
  EXPECT_EQ(r.exit.reason, ExitRecord::Reason::kExited);
  EXPECT_EQ(r.exit.exit_code, 7);

  // sleep as PID 1 ignores SIGTERM (Stop_GracePeriodThenKill); behind the init it gets it.
  ContainerSpec sleeper = Spec({"sleep", "1000"});
  sleeper.init = true;
  auto id = runtime_->Create(sleeper);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(runtime_->Start(*id).ok());
  absl::SleepFor(absl::Milliseconds(200));  // the init has started sleep
  const absl::Time start = absl::Now();
  auto exit = runtime_->Stop(*id, absl::Seconds(10));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->reason, ExitRecord::Reason::kExited);
  EXPECT_EQ(exit->exit_code, 128 + SIGTERM);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(RuntimeTest, Tty_StdioIsATerminalAndItsOutputIsLogged) {
  ContainerSpec spec =
      Spec({"sh", "-c", "[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo tty; echo $TERM; echo e >&2"});
  spec.tty = true;
  Result r = Run(spec);
  // One stream, with the terminal's line endings, as Docker's logs of a tty container.
  EXPECT_EQ(r.stdout_text, "tty\r\nxterm\r\ne\r\n") << r.exit.error;
  EXPECT_EQ(r.stderr_text, "");
  EXPECT_EQ(r.exit.exit_code, 0);
  // A shell reading the terminal waits for input instead of ending at once, as with -t.
  ContainerSpec shell = Spec({"sh"});
  shell.tty = true;
  auto id = runtime_->Create(shell);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(runtime_->Start(*id).ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(runtime_->Wait(*id, absl::Milliseconds(500)).status()));
}

TEST_F(RuntimeTest, Lifecycle_CreatedRunningExitedRemovedLeavesNothing) {
  auto id = runtime_->Create(Spec({"sleep", "1000"}));
  ASSERT_TRUE(id.ok());
  auto info = runtime_->Inspect(*id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, ContainerStatus::kCreated);
  ASSERT_TRUE(runtime_->Start(*id).ok());
  EXPECT_EQ(runtime_->Inspect(*id)->status, ContainerStatus::kRunning);
  auto stats = runtime_->Stats(*id);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_GT(stats->memory_usage_bytes, 0u);
  EXPECT_EQ(stats->pids_current, 1u);
  EXPECT_FALSE(runtime_->Remove(*id).ok());  // running: refuses without force
  ASSERT_TRUE(runtime_->Kill(*id, SIGKILL).ok());
  auto exit = runtime_->Wait(*id, absl::Seconds(10));
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->exit_code, 137);
  EXPECT_EQ(runtime_->Inspect(*id)->status, ContainerStatus::kExited);
  std::vector<std::string> cgroup_dirs = Cgroup::Open(cgroup_parent_, *id).paths();
  ASSERT_TRUE(runtime_->Remove(*id).ok());
  EXPECT_NE(access(runtime_->ContainerDir(*id).c_str(), F_OK), 0);
  for (const auto& d : cgroup_dirs) EXPECT_NE(access(d.c_str(), F_OK), 0) << d;
  // Its upper directory and logs went to the trash; the runtime deletes them before it
  // goes away.
  runtime_.reset();
  EXPECT_NE(access((state_ + "/trash/" + *id).c_str(), F_OK), 0);
  EXPECT_NE(access((state_ + "/containers/" + *id).c_str(), F_OK), 0);
  runtime_ = *Runtime::Open({state_, cgroup_parent_, nullptr});
}

TEST_F(RuntimeTest, Create_UnknownCommandFailsWithReason) {
  auto id = runtime_->Create(Spec({"no-such-command"}));
  ASSERT_FALSE(id.ok());
  EXPECT_TRUE(absl::StrContains(id.status().message(), "no-such-command")) << id.status();
  auto all = runtime_->List();
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
}

void RuntimeTest::CheckLauncher(ShimLauncher& launcher, size_t* shim_mappings) {
  runtime_.reset();
  auto rt = Runtime::Open({state_, cgroup_parent_, nullptr, "", &launcher});
  ASSERT_TRUE(rt.ok()) << rt.status();
  runtime_ = std::move(*rt);
  ASSERT_TRUE(MkdirAll(state_ + "/bind").ok());
  std::ofstream(state_ + "/bind/in") << "bound\n";
  ContainerSpec spec = Spec({});
  spec.args = {"sh", "-c",
               "echo $FOO; pwd; id -u; hostname; od -An -tx1 /run/secrets/bin; cat /b/in; "
               "ulimit -n; touch /x 2>/dev/null || echo read-only; "
               "touch /t/ok && echo tmpfs"};
  spec.env = {"FOO=bar"};
  spec.working_dir = "/etc";
  spec.user = "nobody";
  spec.hostname = "launched";
  spec.read_only_rootfs = true;
  spec.files.push_back({"/run/secrets/bin", std::string("\xff\x00\x01", 3), 0444, 0, 0});
  spec.mounts.push_back({.type = MountSpec::Type::kBind,
                         .source = state_ + "/bind",
                         .target = "/b",
                         .read_only = true});
  spec.mounts.push_back({.type = MountSpec::Type::kTmpfs, .target = "/t"});
  spec.rlimits.push_back({RLIMIT_NOFILE, 321, 321});
  Result r = Run(spec);
  EXPECT_EQ(r.stdout_text, "bar\n/etc\n65534\nlaunched\n ff 00 01\nbound\n321\nread-only\ntmpfs\n")
      << r.stderr_text << r.exit.error;

  // The shim is the launcher's child, not ours.
  auto id = runtime_->Create(Spec({"sleep", "10"}));
  ASSERT_TRUE(id.ok()) << id.status();
  auto info = runtime_->Inspect(*id);
  ASSERT_TRUE(info.ok()) << info.status();
  std::ifstream stat(absl::StrCat("/proc/", info->shim_pid, "/stat"));
  std::string pid, comm, state;
  pid_t ppid = 0;
  stat >> pid >> comm >> state >> ppid;
  EXPECT_EQ(ppid, launcher.pid());
  std::ifstream maps(absl::StrCat("/proc/", info->shim_pid, "/maps"));
  *shim_mappings = 0;
  for (std::string line; std::getline(maps, line);) ++*shim_mappings;
  ASSERT_TRUE(runtime_->Remove(*id, /*force=*/true).ok());

  ASSERT_EQ(kill(launcher.pid(), SIGKILL), 0);
  absl::SleepFor(absl::Milliseconds(50));
  Result after = Run(Spec({"echo", "forked here"}));
  EXPECT_EQ(after.stdout_text, "forked here\n") << after.exit.error;
}

// swarm-shim is static: its shims map a few dozen regions, where a fork of a process linked
// against Debian's shared libraries maps hundreds, each copied by the container's clone.
TEST_F(RuntimeTest, ShimLauncher_ProgramCarriesTheWholeSpecInAFewMappings) {
  size_t mappings = 0;
  CheckLauncher(*program_launcher_, &mappings);
  EXPECT_GT(mappings, 0u);
  EXPECT_LT(mappings, 64u);
}

TEST_F(RuntimeTest, ShimLauncher_ForkedCarriesTheWholeSpec) {
  size_t mappings = 0;
  CheckLauncher(*forked_launcher_, &mappings);
  EXPECT_GT(mappings, 0u);
}

TEST_F(RuntimeTest, Names_ResolveToTheirContainerAndAreUnique) {
  ContainerSpec spec = Spec({"true"});
  spec.name = "web.1.abc";
  auto id = runtime_->Create(spec);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(runtime_->Resolve("web.1.abc").value_or(""), *id);
  EXPECT_EQ(runtime_->Resolve(id->substr(0, 8)).value_or(""), *id);
  EXPECT_EQ(runtime_->Resolve("web.1").status().code(), absl::StatusCode::kNotFound);

  auto twice = runtime_->Create(spec);
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(absl::StrContains(twice.status().message(), *id)) << twice.status();

  spec.name = "a/b";
  EXPECT_EQ(runtime_->Create(spec).status().code(), absl::StatusCode::kInvalidArgument);

  // Removal frees the name; a link left to a container that is gone does not hold it.
  ASSERT_TRUE(runtime_->Remove(*id).ok());
  EXPECT_EQ(runtime_->Resolve("web.1.abc").status().code(), absl::StatusCode::kNotFound);
  ASSERT_EQ(symlink("gone", (state_ + "/names/web.2.abc").c_str()), 0);
  spec.name = "web.2.abc";
  auto again = runtime_->Create(spec);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(runtime_->Resolve("web.2.abc").value_or(""), *again);
}

// After a reboot a tmpfs run root is empty: the upper directories left on disk go, those of
// containers that still exist stay.
TEST_F(RuntimeTest, RunRoot_DataWithoutSmallFilesIsTrashed) {
  runtime_.reset();
  const std::string run = state_ + "/run";
  auto open = [&] { return Runtime::Open({state_, cgroup_parent_, nullptr, run}); };
  runtime_ = *open();
  auto kept = runtime_->Create(Spec({"true"}));
  auto lost = runtime_->Create(Spec({"true"}));
  ASSERT_TRUE(kept.ok() && lost.ok());
  EXPECT_NE(runtime_->DataDir(*kept), runtime_->ContainerDir(*kept));
  ASSERT_TRUE(runtime_->Remove(*lost).ok());
  ASSERT_TRUE(MkdirAll(runtime_->DataDir(*lost) + "/upper").ok());  // as a reboot leaves it
  runtime_.reset();
  // A tool given the run root as its root finds nothing to take there.
  auto wrong = Runtime::Open({run, cgroup_parent_, nullptr, state_ + "/elsewhere"});
  ASSERT_TRUE(wrong.ok());
  (*wrong)->TidyUpAtDaemonStart();
  wrong->reset();
  EXPECT_EQ(access((run + "/containers/" + *kept + "/config.json").c_str(), F_OK), 0);
  runtime_ = *open();
  runtime_->TidyUpAtDaemonStart();
  runtime_.reset();  // finishes emptying the trash
  EXPECT_EQ(access((state_ + "/containers/" + *lost).c_str(), F_OK), -1);
  EXPECT_EQ(access((state_ + "/containers/" + *kept + "/upper").c_str(), F_OK), 0);
  runtime_ = *open();
}

TEST_F(RuntimeTest, DaemonRestart_ContainerKeepsRunningAndIsReattached) {
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  ContainerSpec spec = Spec(
      {"sh", "-c", "trap 'echo bye; exit 7' TERM; echo hello; while true; do sleep 0.05; done"});
  // A "daemon" process creates and starts the container, reports its id, then dies hard.
  pid_t daemon = fork();
  if (daemon == 0) {
    close(pipefd[0]);
    auto rt = Runtime::Open({state_, cgroup_parent_, nullptr});
    if (!rt.ok()) _exit(1);
    auto id = (*rt)->Create(spec);
    if (!id.ok() || !(*rt)->Start(*id).ok()) _exit(1);
    (void)!write(pipefd[1], id->data(), id->size());
    close(pipefd[1]);
    pause();
    _exit(0);
  }
  close(pipefd[1]);
  char buf[64] = {};
  ASSERT_GT(read(pipefd[0], buf, sizeof buf - 1), 0);
  close(pipefd[0]);
  std::string id = buf;
  kill(daemon, SIGKILL);
  waitpid(daemon, nullptr, 0);

  // A new daemon finds the container still running and re-attaches to it.
  auto rt = Runtime::Open({state_, cgroup_parent_, nullptr});
  ASSERT_TRUE(rt.ok());
  auto info = (*rt)->Inspect(id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->status, ContainerStatus::kRunning);
  EXPECT_EQ(kill(info->pid, 0), 0);
  ASSERT_TRUE(WaitForLog((*rt)->LogPath(id), "hello"));
  auto exit = (*rt)->Stop(id, absl::Seconds(10));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->reason, ExitRecord::Reason::kExited);
  EXPECT_EQ(exit->exit_code, 7);
  std::string out;
  ReadLogs((*rt)->LogPath(id), {}, [&](const LogEntry& e) {
    out += e.log;
    return true;
  }).IgnoreError();
  EXPECT_EQ(out, "hello\nbye\n");
}

// Waits until the container's health status is `want`; returns the last state seen.
HealthState WaitForHealth(Runtime& rt, const std::string& id, HealthStatus want) {
  HealthState last;
  for (int i = 0; i < 500; ++i) {
    auto h = rt.Health(id);
    if (h.ok()) last = *h;
    if (h.ok() && h->status == want) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return last;
}

TEST_F(RuntimeTest, HealthCheck_RunsInsideTheContainerHealthyThenUnhealthy) {
  // /tmp/ok exists only inside this container, so a passing check ran in its mount namespace.
  ContainerSpec spec = Spec({"sh", "-c", "touch /tmp/ok; sleep 1; rm /tmp/ok; sleep 100"});
  spec.healthcheck.test = {"sh", "-c", "test -e /tmp/ok && hostname"};
  spec.healthcheck.interval_ms = 100;
  spec.healthcheck.timeout_ms = 2000;
  spec.healthcheck.retries = 2;
  spec.hostname = "checked";
  auto id = runtime_->Create(spec);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(runtime_->Start(*id).ok());
  HealthState healthy = WaitForHealth(*runtime_, *id, HealthStatus::kHealthy);
  EXPECT_EQ(healthy.status, HealthStatus::kHealthy) << healthy.last_output;
  EXPECT_EQ(healthy.last_output, "checked\n");
  HealthState unhealthy = WaitForHealth(*runtime_, *id, HealthStatus::kUnhealthy);
  EXPECT_EQ(unhealthy.status, HealthStatus::kUnhealthy);
  EXPECT_GE(unhealthy.failing_streak, 2);
  EXPECT_EQ(unhealthy.last_exit_code, 1);
}

TEST_F(RuntimeTest, HealthCheck_TimeoutFailsAndStartPeriodForgives) {
  ContainerSpec slow = Spec({"sleep", "100"});
  slow.healthcheck.test = {"sleep", "10"};
  slow.healthcheck.interval_ms = 50;
  slow.healthcheck.timeout_ms = 200;
  slow.healthcheck.retries = 1;
  auto id = runtime_->Create(slow);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(runtime_->Start(*id).ok());
  HealthState h = WaitForHealth(*runtime_, *id, HealthStatus::kUnhealthy);
  EXPECT_EQ(h.status, HealthStatus::kUnhealthy);
  EXPECT_EQ(h.last_output, "health check timed out\n");

  ContainerSpec forgiven = Spec({"sleep", "100"});
  forgiven.healthcheck.test = {"false"};
  forgiven.healthcheck.interval_ms = 50;
  forgiven.healthcheck.retries = 1;
  forgiven.healthcheck.start_period_ms = 60000;
  auto id2 = runtime_->Create(forgiven);
  ASSERT_TRUE(id2.ok());
  ASSERT_TRUE(runtime_->Start(*id2).ok());
  absl::SleepFor(absl::Milliseconds(600));  // about ten failing checks
  auto state = runtime_->Health(*id2);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->status, HealthStatus::kStarting);
  EXPECT_NE(state->last_check, absl::Time());  // checks did run
  EXPECT_EQ(state->last_exit_code, 1);
}

TEST_F(RuntimeTest, UserNamespace_RootIsRemappedToAnUnprivilegedHostUser) {
  ContainerSpec spec = Spec({"sh", "-c",
                             "id -u; cat /proc/self/uid_map | tr -s ' '; touch /written && echo "
                             "wrote; sleep 100"});
  spec.user_namespace = true;
  spec.userns_host_id = 200000;
  spec.userns_size = 65536;
  auto id = runtime_->Create(spec);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(runtime_->Start(*id).ok());
  ASSERT_TRUE(WaitForLog(runtime_->LogPath(*id), "wrote"));
  // Seen from the host, the container's root is uid 200000.
  auto info = runtime_->Inspect(*id);
  ASSERT_TRUE(info.ok());
  std::ifstream status(absl::StrCat("/proc/", info->pid, "/status"));
  std::string line, uid_line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "Uid:")) uid_line = line;
  }
  EXPECT_EQ(uid_line, "Uid:\t200000\t200000\t200000\t200000");
  auto exit = runtime_->Stop(*id, absl::Milliseconds(100));
  ASSERT_TRUE(exit.ok());
  std::string out;
  ReadLogs(runtime_->LogPath(*id), {}, [&](const LogEntry& e) {
    out += e.log;
    return true;
  }).IgnoreError();
  EXPECT_EQ(out, "0\n 0 200000 65536\nwrote\n");
}

}  // namespace
}  // namespace swarm::agent::runtime

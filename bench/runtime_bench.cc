// Container start-up cost: the time to create, start, wait for and remove a container that
// runs /bin/true from the busybox-static image, median over --runs (default 50), for our
// runtime and for crun and runc on the same rootfs (the image's unpacked layer) in the same
// run, printed side by side with ratios. Needs root, cgroups and the crun and runc packages.
//
// Our side is measured twice: through the Runtime library (what the node daemon does) and
// through the swarmd-runtime CLI (a fresh process per container, as crun and runc are).
// crun 1.8 refuses hybrid cgroup hosts, so where /sys/fs/cgroup/unified is mounted its side
// runs in a private mount namespace with that mount detached (v1 cgroups only, as ours).
// The contenders take turns, one container each per round, so a shared machine's load
// falls on all alike. Small state files of all three live on a tmpfs the bench mounts (as
// /run is on a production node); our overlay upper directories and logs are on disk, and
// crun and runc run on the read-only layer itself (no overlay, no log file, no shim).
//
// Then --burst (default 100, 0 to skip) containers are created and started at once.
//
//   bazel run -c opt //bench:runtime_bench -- --runs=50 [--burst=100]
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/runtime/cgroups.h"
#include "agent/runtime/fsutil.h"
#include "agent/runtime/image_store.h"
#include "agent/runtime/runtime.h"
#include "agent/runtime/testing/test_image.h"

namespace swarm::agent::runtime {
namespace {

struct Figures {
  double median_ms = 0, p10_ms = 0, p90_ms = 0;
  int runs = 0;
  std::string error;
};

Figures Summarize(std::vector<double> ms) {
  Figures f;
  if (ms.empty()) return f;
  std::sort(ms.begin(), ms.end());
  f.runs = ms.size();
  f.median_ms = ms.size() % 2 ? ms[ms.size() / 2] : (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]) / 2;
  f.p10_ms = ms[ms.size() / 10];
  f.p90_ms = ms[ms.size() * 9 / 10];
  return f;
}

// Runs argv to completion with stdio on /dev/null; returns its exit status.
int RunQuiet(const std::vector<std::string>& argv) {
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execvp(a[0], a.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// An OCI bundle for crun/runc: their own default spec, with our rootfs and /bin/true.
bool MakeBundle(const std::string& tool, const std::string& bundle, const std::string& rootfs,
                const std::string& cgroup_parent) {
  MkdirAll(bundle).IgnoreError();
  if (RunQuiet({tool, "spec", "--bundle", bundle}) != 0) return false;
  auto spec = nlohmann::json::parse(ReadAll(bundle + "/config.json"), nullptr, false);
  if (spec.is_discarded()) return false;
  spec["process"]["args"] = {"/bin/true"};
  spec["process"]["terminal"] = false;
  spec["root"] = {{"path", rootfs}, {"readonly", true}};
  spec["linux"]["cgroupsPath"] = absl::StrCat("/", cgroup_parent, "/", tool);
  std::ofstream(bundle + "/config.json") << spec.dump(2);
  return true;
}

// One container of a peer: `tool run` = create + start + wait + delete in one process.
// Returns milliseconds, or a negative number when the run failed.
double RunPeerOnce(const std::string& tool, const std::string& bundle, const std::string& state,
                   int n) {
  std::string id = absl::StrCat(tool, "-bench-", getpid(), "-", n);
  absl::Time t0 = absl::Now();
  int rc = RunQuiet({tool, "--root", state, "run", "--bundle", bundle, id});
  double elapsed = absl::ToDoubleMilliseconds(absl::Now() - t0);
  if (rc != 0) {
    RunQuiet({tool, "--root", state, "delete", "-f", id});
    return -1;
  }
  return elapsed;
}

// crun 1.8 refuses a hybrid cgroup host, so its runs happen in a helper process that lives
// in a private mount namespace without /sys/fs/cgroup/unified. The helper runs one
// container per request byte and answers with the time it took.
class CrunHelper {
 public:
  CrunHelper(const std::string& bundle, const std::string& state) {
    int req[2], resp[2];
    if (pipe(req) != 0 || pipe(resp) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      close(req[1]);
      close(resp[0]);
      if (access("/sys/fs/cgroup/unified/cgroup.procs", F_OK) == 0 &&
          (unshare(CLONE_NEWNS) != 0 || mount("", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) ||
           umount2("/sys/fs/cgroup/unified", MNT_DETACH) != 0)) {
        _exit(1);
      }
      int n = 0;
      char c;
      while (read(req[0], &c, 1) == 1) {
        double ms = RunPeerOnce("crun", bundle, state, n++);
        if (write(resp[1], &ms, sizeof ms) != sizeof ms) break;
      }
      _exit(0);
    }
    close(req[0]);
    close(resp[1]);
    req_ = req[1];
    resp_ = resp[0];
  }
  ~CrunHelper() {
    if (req_ >= 0) close(req_);
    if (resp_ >= 0) close(resp_);
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
  }
  double RunOnce() {
    double ms = -1;
    if (req_ < 0 || write(req_, "r", 1) != 1 || read(resp_, &ms, sizeof ms) != sizeof ms) {
      return -1;
    }
    return ms;
  }

 private:
  pid_t pid_ = -1;
  int req_ = -1, resp_ = -1;
};

// One container of ours through the library; fills the four phases.
double RunLibraryOnce(Runtime& rt, double phases[4], std::string* error) {
  ContainerSpec spec;
  spec.image = "busybox";
  spec.args = {"/bin/true"};
  absl::Time t[5];
  t[0] = absl::Now();
  auto id = rt.Create(spec);
  t[1] = absl::Now();
  absl::Status s = id.ok() ? rt.Start(*id) : id.status();
  t[2] = absl::Now();
  absl::StatusOr<ExitRecord> exit = s.ok() ? rt.Wait(*id) : absl::StatusOr<ExitRecord>(s);
  if (exit.ok() && exit->exit_code != 0) exit = absl::InternalError(exit->error);
  t[3] = absl::Now();
  s = exit.ok() ? rt.Remove(*id) : exit.status();
  t[4] = absl::Now();
  if (!s.ok()) {
    *error = std::string(s.message());
    if (id.ok()) (void)rt.Remove(*id, true);
    return -1;
  }
  for (int p = 0; p < 4; ++p) phases[p] = absl::ToDoubleMilliseconds(t[p + 1] - t[p]);
  return absl::ToDoubleMilliseconds(t[4] - t[0]);
}

// --burst: `count` containers of `sleep 3600` created and started at once, one thread each (as
// the agent does for a service's tasks), then removed at once. Prints the wall time of each
// half and the slowest single create; shows what contention, not one container, costs.
void RunBurst(Runtime& rt, int count) {
  std::vector<std::string> ids(count);
  std::vector<absl::Status> errors(count);
  std::vector<double> create_ms(count);
  auto all = [&](const std::function<void(int)>& fn) {
    std::vector<std::thread> threads;
    for (int i = 0; i < count; ++i) threads.emplace_back(fn, i);
    for (auto& t : threads) t.join();
  };
  absl::Time t0 = absl::Now();
  all([&](int i) {
    ContainerSpec spec;
    spec.image = "busybox";
    spec.args = {"sleep", "3600"};
    spec.stop_signal = SIGKILL;
    absl::Time start = absl::Now();
    absl::StatusOr<std::string> id = rt.Create(spec);
    create_ms[i] = absl::ToDoubleMilliseconds(absl::Now() - start);
    if (!id.ok()) {
      errors[i] = id.status();
      return;
    }
    ids[i] = *id;
    errors[i] = rt.Start(*id);
  });
  const double up_ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
  t0 = absl::Now();
  all([&](int i) {
    if (!ids[i].empty()) (void)rt.Remove(ids[i], /*force=*/true);
  });
  const double down_ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
  for (const absl::Status& s : errors) {
    if (!s.ok()) {
      printf("  burst of %d: failed: %s\n", count, std::string(s.message()).c_str());
      return;
    }
  }
  printf(
      "  burst of %d (one thread each): all created and started in %.0f ms (%.1f ms a "
      "container), slowest create %.0f ms; all removed in %.0f ms\n",
      count, up_ms, up_ms / count, *std::max_element(create_ms.begin(), create_ms.end()), down_ms);
}

double RunCliOnce(const std::string& cli, const std::string& root, const std::string& run_root,
                  const std::string& parent) {
  absl::Time t0 = absl::Now();
  int rc = RunQuiet({cli, "--root", root, "--run-root", run_root, "--cgroup-parent", parent, "run",
                     "--rm", "busybox", "/bin/true"});
  double elapsed = absl::ToDoubleMilliseconds(absl::Now() - t0);
  return rc == 0 ? elapsed : -1;
}

void Print(const char* name, const Figures& f) {
  if (!f.error.empty()) {
    printf("  %-22s failed: %s\n", name, f.error.c_str());
  } else {
    printf("  %-22s median %6.2f ms   p10 %6.2f ms   p90 %6.2f ms   (%d runs)\n", name, f.median_ms,
           f.p10_ms, f.p90_ms, f.runs);
  }
}

void Ratio(const char* what, const Figures& a, const Figures& b) {
  if (a.error.empty() && b.error.empty() && b.median_ms > 0) {
    printf("  %-30s %.2f\n", what, a.median_ms / b.median_ms);
  } else {
    printf("  %-30s n/a\n", what);
  }
}

int Main(int argc, char** argv) {
  int runs = 50, burst = 100;
  for (int i = 1; i < argc; ++i) {
    if (strncmp(argv[i], "--runs=", 7) == 0 && !absl::SimpleAtoi(argv[i] + 7, &runs)) return 2;
    if (strncmp(argv[i], "--burst=", 8) == 0 && !absl::SimpleAtoi(argv[i] + 8, &burst)) return 2;
  }
  if (runs < 1) runs = 1;
  // As swarmd does: shims are forked by swarm-shim (in the runfiles).
  absl::StatusOr<ShimLauncher::Handle> launcher = ShimLauncher::Start("node/swarm-shim");
  if (!launcher.ok()) {
    fprintf(stderr, "runtime_bench: %s\n", std::string(launcher.status().message()).c_str());
    return 1;
  }
  char tmpl[] = "/tmp/runtime_bench.XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string parent = absl::StrCat("swarm-bench-", getpid());
  std::string rootfs = dir + "/rootfs";
  int rc = 1;
  std::string run_mounted;
  do {
    if (absl::Status s = testing::BuildBusyboxRootfs(rootfs); !s.ok()) {
      fprintf(stderr, "runtime_bench: %s\n", std::string(s.message()).c_str());
      break;
    }
    auto layout = testing::BuildOciLayout({rootfs}, dir + "/layout");
    auto store = layout.ok() ? ImageStore::Open(dir + "/state/images")
                             : absl::StatusOr<std::unique_ptr<ImageStore>>(layout.status());
    auto loaded = store.ok() ? (*store)->LoadOciLayout(dir + "/layout", "busybox")
                             : absl::StatusOr<std::vector<std::string>>(store.status());
    auto image = loaded.ok() ? (*store)->ResolveForContainer("busybox")
                             : absl::StatusOr<ResolvedImage>(loaded.status());
    // Small state files go to a tmpfs, as /run is on a production node; crun and runc keep
    // their state there too.
    std::string run = dir + "/run";
    if (MkdirAll(run).ok() && mount("tmpfs", run.c_str(), "tmpfs", 0, "mode=0700") == 0) {
      run_mounted = run;
    }
    auto rt =
        image.ok()
            ? Runtime::Open({dir + "/state", parent, store->get(), run + "/swarm", launcher->get()})
            : absl::StatusOr<std::unique_ptr<Runtime>>(image.status());
    if (!rt.ok()) {
      fprintf(stderr, "runtime_bench: %s\n", std::string(rt.status().message()).c_str());
      break;
    }
    // The peers run on the very directory our containers use as their lower layer.
    std::string layer = image->lower_dirs[0];
    printf("runtime_bench: create + start + wait + remove of a container running /bin/true\n");
    std::string load;
    if (std::ifstream in("/proc/loadavg"); in) std::getline(in, load);
    printf("  load average at start: %s (the peers take turns with us, one container each)\n",
           load.substr(0, load.find(' ', load.find(' ', load.find(' ') + 1) + 1)).c_str());
    printf("  from the busybox-static image, median of %d runs each, cgroup %s, %d CPUs\n", runs,
           DetectCgroupVersion() == CgroupVersion::kV2 ? "v2" : "v1 (hybrid host)",
           static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
    std::string cli = "agent/runtime/swarmd-runtime";
    bool have_cli = access(cli.c_str(), X_OK) == 0;
    bool have_crun = MakeBundle("crun", dir + "/crun-bundle", layer, parent);
    bool have_runc = MakeBundle("runc", dir + "/runc-bundle", layer, parent);
    CrunHelper crun_helper(dir + "/crun-bundle", dir + "/run/crun");
    // The four contenders take turns, one container each per round, so that the load of a
    // shared machine falls on all of them alike; three warm-up rounds are not counted.
    std::vector<double> lib_ms, cli_ms, crun_ms, runc_ms, phases[4];
    Figures lib, via_cli, crun, runc;
    if (!have_cli) via_cli.error = "swarmd-runtime not found in runfiles";
    if (!have_crun) crun.error = "crun not installed (apt-get install crun)";
    if (!have_runc) runc.error = "runc not installed (apt-get install runc)";
    for (int round = -3; round < runs; ++round) {
      double ph[4];
      double ms = lib.error.empty() ? RunLibraryOnce(**rt, ph, &lib.error) : -1;
      if (round >= 0 && ms >= 0) {
        lib_ms.push_back(ms);
        for (int p = 0; p < 4; ++p) phases[p].push_back(ph[p]);
      }
      if (via_cli.error.empty()) {
        ms = RunCliOnce(cli, dir + "/state", dir + "/run/swarm", parent);
        if (ms < 0) via_cli.error = "swarmd-runtime run failed";
        if (round >= 0 && ms >= 0) cli_ms.push_back(ms);
      }
      if (crun.error.empty()) {
        ms = crun_helper.RunOnce();
        if (ms < 0) crun.error = "crun run failed";
        if (round >= 0 && ms >= 0) crun_ms.push_back(ms);
      }
      if (runc.error.empty()) {
        ms = RunPeerOnce("runc", dir + "/runc-bundle", dir + "/run/runc", round + 3);
        if (ms < 0) runc.error = "runc run failed";
        if (round >= 0 && ms >= 0) runc_ms.push_back(ms);
      }
    }
    auto finish = [](Figures& f, const std::vector<double>& ms) {
      if (f.error.empty()) {
        f = Summarize(ms);
      }
    };
    finish(lib, lib_ms);
    finish(via_cli, cli_ms);
    finish(crun, crun_ms);
    finish(runc, runc_ms);
    if (lib.error.empty()) {
      printf(
          "  swarm library phases (median ms): create %.2f  start %.2f  wait %.2f  remove %.2f\n",
          Summarize(phases[0]).median_ms, Summarize(phases[1]).median_ms,
          Summarize(phases[2]).median_ms, Summarize(phases[3]).median_ms);
    }
    if (burst > 0) RunBurst(**rt, burst);
    Print("swarm (library)", lib);
    Print("swarm (CLI process)", via_cli);
    Print("crun", crun);
    Print("runc", runc);
    printf("ratios (median; below 1.0 means we are faster):\n");
    Ratio("swarm library / crun", lib, crun);
    Ratio("swarm library / runc", lib, runc);
    Ratio("swarm CLI / crun", via_cli, crun);
    Ratio("swarm CLI / runc", via_cli, runc);
    printf("goal: swarm library / crun <= 1.0: %s\n",
           lib.error.empty() && crun.error.empty() && lib.median_ms <= crun.median_ms ? "met"
                                                                                      : "NOT met");
    rc = lib.error.empty() ? 0 : 1;
  } while (false);
  // Peers' cgroups: crun and runc use every hierarchy (name=systemd, cpuset, freezer,
  // blkio, the unified one, ...) and leave their directories behind, empty, on delete.
  if (DIR* d = opendir("/sys/fs/cgroup")) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::string base = absl::StrCat("/sys/fs/cgroup/", e->d_name, "/", parent);
      for (const char* tool : {"/crun", "/runc"}) rmdir((base + tool).c_str());
    }
    closedir(d);
  }
  (void)Cgroup::RemoveParent(parent);
  if (DIR* d = opendir("/sys/fs/cgroup")) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.')
        rmdir(absl::StrCat("/sys/fs/cgroup/", e->d_name, "/", parent).c_str());
    }
    closedir(d);
  }
  if (!run_mounted.empty()) umount2(run_mounted.c_str(), MNT_DETACH);
  (void)RemoveAll(dir);
  return rc;
}

}  // namespace
}  // namespace swarm::agent::runtime

int main(int argc, char** argv) { return swarm::agent::runtime::Main(argc, argv); }

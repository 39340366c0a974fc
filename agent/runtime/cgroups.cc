#include "agent/runtime/cgroups.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/errno_status.h"
#include "common/status_macros.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

namespace swarm::agent::runtime {
namespace {

constexpr char kRoot[] = "/sys/fs/cgroup";
constexpr int64_t kCfsPeriodUs = 100000;

// Writes each value with a write(2) of its own (a cgroup file takes one value per write)
// through one open file.
absl::Status WriteFile(const std::string& path, const std::vector<std::string>& values) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening ", path));
  for (const std::string& value : values) {
    if (write(fd, value.data(), value.size()) < 0) {
      const int err = errno;
      close(fd);
      return ErrnoToStatus(err, absl::StrCat("writing '", value, "' to ", path));
    }
  }
  close(fd);
  return absl::OkStatus();
}

absl::Status WriteFile(const std::string& path, const std::string& value) {
  return WriteFile(path, std::vector<std::string>{value});
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening ", path));
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      int err = errno;
      close(fd);
      return ErrnoToStatus(err, absl::StrCat("reading ", path));
    }
    if (n == 0) break;
    out.append(buf, n);
  }
  close(fd);
  return out;
}

uint64_t ReadUint(const std::string& path) {
  auto s = ReadFile(path);
  uint64_t v = 0;
  if (s.ok()) (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(*s), &v);
  return v;
}

// "key value" lines (memory.events, cpu.stat, memory.oom_control).
uint64_t ReadKeyed(const std::string& path, std::string_view key) {
  auto s = ReadFile(path);
  if (!s.ok()) return 0;
  for (absl::string_view line : absl::StrSplit(*s, '\n')) {
    std::vector<absl::string_view> kv = absl::StrSplit(line, ' ');
    uint64_t v = 0;
    if (kv.size() == 2 && kv[0] == absl::string_view(key.data(), key.size()) &&
        absl::SimpleAtoi(kv[1], &v)) {
      return v;
    }
  }
  return 0;
}

absl::Status MkdirAll(const std::string& path) {
  if (mkdir(path.c_str(), 0755) == 0 || errno == EEXIST) return absl::OkStatus();
  if (errno != ENOENT) return ErrnoToStatus(errno, absl::StrCat("creating cgroup ", path));
  auto slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) {
    return ErrnoToStatus(ENOENT, absl::StrCat("creating cgroup ", path));
  }
  RETURN_IF_ERROR(MkdirAll(path.substr(0, slash)));
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, absl::StrCat("creating cgroup ", path));
  }
  return absl::OkStatus();
}

// Kills every process left in the cgroup directory and removes it, retrying while the kernel
// finishes tearing the processes down (rmdir says EBUSY until then).
absl::Status KillAndRemove(const std::string& dir) {
  for (int attempt = 0; attempt < 500; ++attempt) {
    if (rmdir(dir.c_str()) == 0 || errno == ENOENT) return absl::OkStatus();
    if (errno != EBUSY) return ErrnoToStatus(errno, absl::StrCat("removing cgroup ", dir));
    if (access((dir + "/cgroup.kill").c_str(), F_OK) == 0) {
      (void)WriteFile(dir + "/cgroup.kill", "1");
    } else if (auto procs = ReadFile(dir + "/cgroup.procs"); procs.ok()) {
      for (absl::string_view p : absl::StrSplit(*procs, '\n', absl::SkipEmpty())) {
        int pid = 0;
        if (absl::SimpleAtoi(p, &pid) && pid > 0) kill(pid, SIGKILL);
      }
    }
    usleep(attempt < 20 ? 1000 : 10000);
  }
  return absl::DeadlineExceededError(absl::StrCat("removing cgroup ", dir, ": still busy"));
}

// The table of operations: one entry per cgroup version (crun's libcrun/cgroup-*.c shape).
struct CgroupOps {
  // Directories of the cgroup named `rel` (relative to the hierarchy roots).
  std::vector<std::string> (*paths)(const std::string& rel);
  absl::Status (*apply)(const std::vector<std::string>& paths, const Resources& r);
  CgroupStats (*stats)(const std::vector<std::string>& paths);
};

// ---- v1: memory, cpu, cpuacct, pids and devices hierarchies.
constexpr const char* kV1Controllers[] = {"memory", "cpu", "cpuacct", "pids", "devices"};

std::vector<std::string> V1Paths(const std::string& rel) {
  std::vector<std::string> out;
  std::vector<std::string> seen;
  for (const char* c : kV1Controllers) {
    std::string mount = absl::StrCat(kRoot, "/", c);
    // Co-mounted controllers (cpu,cpuacct) share one directory; visit it once.
    char real[PATH_MAX];
    std::string key = realpath(mount.c_str(), real) != nullptr ? real : mount;
    bool dup = false;
    for (const auto& s : seen) dup |= s == key;
    if (dup) continue;
    seen.push_back(key);
    out.push_back(absl::StrCat(mount, "/", rel));
  }
  return out;
}

// The directory serving `controller`: the one under its own mount, or, where controllers
// are co-mounted ("cpu,cpuacct"), the one whose hierarchy has its files.
std::string V1Path(const std::vector<std::string>& paths, std::string_view controller) {
  std::string prefix = absl::StrCat(kRoot, "/", std::string(controller), "/");
  for (const auto& p : paths) {
    if (p.rfind(prefix, 0) == 0) return p;
  }
  std::string probe = absl::StrCat("/", std::string(controller), ".stat");
  if (controller == "cpuacct") probe = "/cpuacct.usage";
  if (controller == "pids") probe = "/pids.max";
  if (controller == "devices") probe = "/devices.list";
  for (const auto& p : paths) {
    if (access((p + probe).c_str(), F_OK) == 0) return p;
  }
  return "";
}

// Docker's default device rules: deny all, then mknod of any kind and use of the nodes we
// create. -1 is a wildcard; type 'a' matches both kinds.
struct DeviceRule {
  char type;  // 'c', 'b'
  int major, minor;
  const char* access;  // of "rwm"
};
constexpr DeviceRule kDeviceRules[] = {
    {'c', -1, -1, "m"}, {'b', -1, -1, "m"}, {'c', 1, 3, "rwm"},    {'c', 1, 5, "rwm"},
    {'c', 1, 7, "rwm"}, {'c', 1, 8, "rwm"}, {'c', 1, 9, "rwm"},    {'c', 5, 0, "rwm"},
    {'c', 5, 1, "rwm"}, {'c', 5, 2, "rwm"}, {'c', 136, -1, "rwm"}, {'c', 10, 200, "rwm"},
};

std::string V1DeviceRule(const DeviceRule& r) {
  auto num = [](int n) { return n < 0 ? std::string("*") : absl::StrCat(n); };
  return absl::StrCat(std::string(1, r.type), " ", num(r.major), ":", num(r.minor), " ", r.access);
}

absl::Status V1Apply(const std::vector<std::string>& paths, const Resources& r) {
  if (std::string mem = V1Path(paths, "memory"); !mem.empty() && r.memory_bytes > 0) {
    RETURN_IF_ERROR(WriteFile(mem + "/memory.limit_in_bytes", absl::StrCat(r.memory_bytes)));
    // Present only with swap accounting; without it there is no swap to limit.
    if (access((mem + "/memory.memsw.limit_in_bytes").c_str(), F_OK) == 0) {
      RETURN_IF_ERROR(
          WriteFile(mem + "/memory.memsw.limit_in_bytes", absl::StrCat(r.memory_bytes)));
    }
  }
  if (std::string cpu = V1Path(paths, "cpu"); !cpu.empty()) {
    if (r.nano_cpus > 0) {
      RETURN_IF_ERROR(WriteFile(cpu + "/cpu.cfs_period_us", absl::StrCat(kCfsPeriodUs)));
      RETURN_IF_ERROR(WriteFile(cpu + "/cpu.cfs_quota_us",
                                absl::StrCat(r.nano_cpus * kCfsPeriodUs / 1000000000)));
    }
    if (r.cpu_shares > 0) {
      RETURN_IF_ERROR(WriteFile(cpu + "/cpu.shares", absl::StrCat(r.cpu_shares)));
    }
  }
  if (std::string pids = V1Path(paths, "pids"); !pids.empty() && r.pids_limit > 0) {
    RETURN_IF_ERROR(WriteFile(pids + "/pids.max", absl::StrCat(r.pids_limit)));
  }
  if (std::string dev = V1Path(paths, "devices"); !dev.empty()) {
    RETURN_IF_ERROR(WriteFile(dev + "/devices.deny", "a"));
    std::vector<std::string> rules;
    for (const DeviceRule& rule : kDeviceRules) rules.push_back(V1DeviceRule(rule));
    RETURN_IF_ERROR(WriteFile(dev + "/devices.allow", rules));
  }
  return absl::OkStatus();
}

CgroupStats V1Stats(const std::vector<std::string>& paths) {
  CgroupStats s;
  std::string mem = V1Path(paths, "memory");
  s.memory_usage_bytes = ReadUint(mem + "/memory.usage_in_bytes");
  s.oom_kills = ReadKeyed(mem + "/memory.oom_control", "oom_kill");
  s.cpu_usage_ns = ReadUint(V1Path(paths, "cpuacct") + "/cpuacct.usage");
  s.pids_current = ReadUint(V1Path(paths, "pids") + "/pids.current");
  return s;
}

// ---- v2: one directory; controllers enabled in every ancestor's subtree_control.
std::vector<std::string> V2Paths(const std::string& rel) { return {absl::StrCat(kRoot, "/", rel)}; }

absl::Status V2Apply(const std::vector<std::string>& paths, const Resources& r) {
  const std::string& dir = paths[0];
  if (r.memory_bytes > 0) {
    RETURN_IF_ERROR(WriteFile(dir + "/memory.max", absl::StrCat(r.memory_bytes)));
    if (access((dir + "/memory.swap.max").c_str(), F_OK) == 0) {
      RETURN_IF_ERROR(WriteFile(dir + "/memory.swap.max", "0"));
    }
  }
  if (r.nano_cpus > 0) {
    RETURN_IF_ERROR(
        WriteFile(dir + "/cpu.max",
                  absl::StrCat(r.nano_cpus * kCfsPeriodUs / 1000000000, " ", kCfsPeriodUs)));
  }
  if (r.cpu_shares > 0) {
    // The conversion runc and crun use from v1 shares [2, 262144] to v2 weight [1, 10000].
    int64_t weight = 1 + ((r.cpu_shares - 2) * 9999) / 262142;
    RETURN_IF_ERROR(WriteFile(dir + "/cpu.weight", absl::StrCat(weight)));
  }
  if (r.pids_limit > 0) {
    RETURN_IF_ERROR(WriteFile(dir + "/pids.max", absl::StrCat(r.pids_limit)));
  }
  int fd = open(dir.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening cgroup ", dir));
  absl::Status attached = AttachDeviceFilter(fd);
  close(fd);
  return attached;
}

CgroupStats V2Stats(const std::vector<std::string>& paths) {
  const std::string& dir = paths[0];
  CgroupStats s;
  s.memory_usage_bytes = ReadUint(dir + "/memory.current");
  s.oom_kills = ReadKeyed(dir + "/memory.events", "oom_kill");
  s.cpu_usage_ns = ReadKeyed(dir + "/cpu.stat", "usage_usec") * 1000;
  s.pids_current = ReadUint(dir + "/pids.current");
  return s;
}

// Enables the controllers we use for the children of every level from the root down to dir.
absl::Status V2EnableControllers(const std::string& rel) {
  std::string dir = kRoot;
  for (absl::string_view part : absl::StrSplit(rel, '/', absl::SkipEmpty())) {
    for (const char* c : {"+memory", "+cpu", "+pids"}) {
      // A controller the kernel lacks or already enabled is not an error worth stopping for;
      // a limit that then cannot be written fails loudly in V2Apply.
      (void)WriteFile(dir + "/cgroup.subtree_control", c);
    }
    dir = absl::StrCat(dir, "/", std::string(part));
  }
  return absl::OkStatus();
}

const CgroupOps kV1Ops = {V1Paths, V1Apply, V1Stats};
const CgroupOps kV2Ops = {V2Paths, V2Apply, V2Stats};

const CgroupOps& Ops(CgroupVersion v) { return v == CgroupVersion::kV2 ? kV2Ops : kV1Ops; }

}  // namespace

absl::Status AttachDeviceFilter(int cgroup_dir_fd) {
  // The program sees struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor;}
  // with access_type = (access << 16) | type. It allows what a rule allows, else denies.
  std::vector<bpf_insn> p;
  auto emit = [&](uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
    bpf_insn i{};
    i.code = code;
    i.dst_reg = dst;
    i.src_reg = src;
    i.off = off;
    i.imm = imm;
    p.push_back(i);
  };
  emit(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_2, BPF_REG_1, 0, 0);  // r2 = access_type
  emit(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_3, BPF_REG_2, 0, 0);
  emit(BPF_ALU | BPF_AND | BPF_K, BPF_REG_3, 0, 0, 0xffff);  // r3 = device type
  emit(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_4, BPF_REG_2, 0, 0);
  emit(BPF_ALU | BPF_RSH | BPF_K, BPF_REG_4, 0, 0, 16);         // r4 = access asked
  emit(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_5, BPF_REG_1, 4, 0);  // r5 = major
  emit(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_6, BPF_REG_1, 8, 0);  // r6 = minor
  for (const DeviceRule& r : kDeviceRules) {
    std::vector<size_t> to_next;  // jumps to patch to the end of this rule's block
    int type = r.type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;
    to_next.push_back(p.size());
    emit(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_3, 0, 0, type);
    int allowed = 0;
    for (const char* a = r.access; *a; ++a) {
      allowed |= *a == 'r'   ? BPF_DEVCG_ACC_READ
                 : *a == 'w' ? BPF_DEVCG_ACC_WRITE
                             : BPF_DEVCG_ACC_MKNOD;
    }
    emit(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_7, BPF_REG_4, 0, 0);
    emit(BPF_ALU | BPF_AND | BPF_K, BPF_REG_7, 0, 0, ~allowed);  // asked but not allowed
    to_next.push_back(p.size());
    emit(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_7, 0, 0, 0);
    if (r.major >= 0) {
      to_next.push_back(p.size());
      emit(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, 0, r.major);
    }
    if (r.minor >= 0) {
      to_next.push_back(p.size());
      emit(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_6, 0, 0, r.minor);
    }
    emit(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1);
    emit(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    for (size_t j : to_next) p[j].off = static_cast<int16_t>(p.size() - j - 1);
  }
  emit(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0);
  emit(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);

  bpf_attr load{};
  load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  load.insns = reinterpret_cast<uint64_t>(p.data());
  load.insn_cnt = p.size();
  load.license = reinterpret_cast<uint64_t>("Apache-2.0");
  int prog = static_cast<int>(syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load));
  if (prog < 0) {
    // Again with the verifier's log, to say why.
    int err = errno;
    std::string log(1 << 16, '\0');
    load.log_buf = reinterpret_cast<uint64_t>(log.data());
    load.log_size = log.size();
    load.log_level = 1;
    (void)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
    log.resize(strnlen(log.data(), log.size()));
    if (log.size() > 600) log = log.substr(log.size() - 600);
    return ErrnoToStatus(err, absl::StrCat("loading the device filter (BPF): ", log));
  }
  bpf_attr attach{};
  attach.target_fd = cgroup_dir_fd;
  attach.attach_bpf_fd = prog;
  attach.attach_type = BPF_CGROUP_DEVICE;
  int rc = static_cast<int>(syscall(SYS_bpf, BPF_PROG_ATTACH, &attach, sizeof attach));
  int err = errno;
  close(prog);  // the attachment keeps the program alive
  if (rc != 0) return ErrnoToStatus(err, "attaching the device filter to the cgroup");
  return absl::OkStatus();
}

CgroupVersion DetectCgroupVersion() {
  static const CgroupVersion version = [] {
    struct statfs fs;
    if (statfs(kRoot, &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC) return CgroupVersion::kV2;
    return CgroupVersion::kV1;
  }();
  return version;
}

absl::StatusOr<Cgroup> Cgroup::Create(const std::string& parent, const std::string& name,
                                      const Resources& resources) {
  Cgroup cg = Open(parent, name);
  std::string rel = parent.empty() ? name : absl::StrCat(parent, "/", name);
  if (cg.version_ == CgroupVersion::kV2) RETURN_IF_ERROR(V2EnableControllers(rel));
  // v1: a cpu hierarchy of its own is used only for CPU limits; without any, the
  // container stays in its parent's cpu cgroup and skips one move (usage still comes from
  // cpuacct).
  if (cg.version_ == CgroupVersion::kV1 && resources.nano_cpus == 0 && resources.cpu_shares == 0) {
    std::string cpu = absl::StrCat(kRoot, "/cpu/");
    std::string cpuacct = V1Path(cg.paths_, "cpuacct");
    for (auto it = cg.paths_.begin(); it != cg.paths_.end(); ++it) {
      if (it->rfind(cpu, 0) == 0 && *it != cpuacct) {
        cg.paths_.erase(it);
        break;
      }
    }
  }
  for (const auto& p : cg.paths_) RETURN_IF_ERROR(MkdirAll(p));
  absl::Status applied = Ops(cg.version_).apply(cg.paths_, resources);
  if (!applied.ok()) {
    (void)cg.Destroy();
    return applied;
  }
  return cg;
}

Cgroup Cgroup::Open(const std::string& parent, const std::string& name) {
  Cgroup cg;
  cg.version_ = DetectCgroupVersion();
  std::string rel = parent.empty() ? name : absl::StrCat(parent, "/", name);
  cg.paths_ = Ops(cg.version_).paths(rel);
  return cg;
}

Cgroup Cgroup::AtPaths(std::vector<std::string> paths) {
  Cgroup cg;
  cg.version_ = DetectCgroupVersion();
  cg.paths_ = std::move(paths);
  return cg;
}

absl::Status Cgroup::AddProcess(pid_t pid) const {
  for (const auto& p : paths_) {
    RETURN_IF_ERROR(WriteFile(p + "/cgroup.procs", absl::StrCat(pid)));
  }
  return absl::OkStatus();
}

int Cgroup::OpenDirFd() const {
  if (version_ != CgroupVersion::kV2) return -1;
  return open(paths_[0].c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC);
}

absl::StatusOr<CgroupStats> Cgroup::ReadStats() const {
  if (access(paths_[0].c_str(), F_OK) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("reading stats of cgroup ", paths_[0]));
  }
  return Ops(version_).stats(paths_);
}

uint64_t Cgroup::OomKills() const {
  if (version_ == CgroupVersion::kV2) return ReadKeyed(paths_[0] + "/memory.events", "oom_kill");
  return ReadKeyed(V1Path(paths_, "memory") + "/memory.oom_control", "oom_kill");
}

absl::Status Cgroup::Destroy() const {
  absl::Status first;
  for (const auto& p : paths_) first.Update(KillAndRemove(p));
  return first;
}

absl::Status Cgroup::RemoveParent(const std::string& parent) {
  Cgroup cg = Open("", parent);
  absl::Status first;
  for (const auto& p : cg.paths_) {
    if (rmdir(p.c_str()) != 0 && errno != ENOENT) {
      first.Update(ErrnoToStatus(errno, absl::StrCat("removing cgroup parent ", p)));
    }
  }
  return first;
}

}  // namespace swarm::agent::runtime

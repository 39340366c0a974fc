// swarmd-runtime: a debugging CLI for one node's container runtime, so the runtime can be
// used and tested without a cluster. A thin shell over Runtime, ImageStore and
// RegistryClient; every command is one call (or a short sequence) of theirs.
//
//   swarmd-runtime [--root DIR] [--run-root DIR] [--cgroup-parent P] COMMAND ...
//   (root: images, volumes, upper dirs, logs; run-root: small state files, best on tmpfs)
//   run|create [flags] IMAGE [CMD...]   start|wait|inspect|stats ID   stop [-t S] ID
//   kill [-s SIG] ID   rm [-f] ID...   ps [-a]   logs [-f] ID
//   image pull [--insecure-registry H] [--user U:P] REF
//   image load (-i FILE | --layout DIR) [--tag T]   image ls   image rm REF   image prune
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/runtime/health.h"
#include "agent/runtime/image_store.h"
#include "agent/runtime/logs.h"
#include "agent/runtime/reference.h"
#include "agent/runtime/registry.h"
#include "agent/runtime/runtime.h"

namespace swarm::agent::runtime {
namespace {

constexpr char kUsage[] =
    "usage: swarmd-runtime [--root DIR] [--run-root DIR] [--cgroup-parent P] COMMAND\n"
    "  run [-d] [--rm] [--name N] [-e K=V] [-v SRC:DST[:ro]] [--tmpfs DST] [--read-only]\n"
    "      [-m BYTES] [--cpus F] [--pids-limit N] [--cap-add C] [--cap-drop C] [-u USER]\n"
    "      [-h HOST] [-w DIR] [--network none|host|PATH] [--health-cmd CMD]\n"
    "      [--health-interval SEC] [--secret NAME=VALUE] IMAGE [CMD...]\n"
    "  create (flags as run) IMAGE [CMD...]\n"
    "  start ID | wait ID | stop [-t SEC] ID | kill [-s SIG] ID | rm [-f] ID...\n"
    "  ps [-a] | logs [-f] ID | inspect ID | stats ID | health ID\n"
    "  image pull [--insecure-registry HOST] [--user U:P] REF\n"
    "  image load (-i FILE | --layout DIR) [--tag T] | image ls | image rm REF | image prune\n";

int Fail(const absl::Status& s) {
  std::cerr << "swarmd-runtime: " << s.message() << "\n";
  return 1;
}

int Usage() {
  std::cerr << kUsage;
  return 2;
}

// Parses the flags shared by run and create; returns the index of IMAGE or -1.
int ParseContainerFlags(const std::vector<std::string>& a, size_t i, ContainerSpec* spec,
                        bool* detach, bool* remove) {
  auto value = [&](size_t& j) -> std::string { return j + 1 < a.size() ? a[++j] : ""; };
  for (; i < a.size(); ++i) {
    const std::string& f = a[i];
    if (f.empty() || f[0] != '-') return static_cast<int>(i);
    if (f == "-d") {
      *detach = true;
    } else if (f == "--rm") {
      *remove = true;
    } else if (f == "--name") {
      spec->name = value(i);
    } else if (f == "-e") {
      spec->env.push_back(value(i));
    } else if (f == "-v") {
      std::vector<std::string> p = absl::StrSplit(value(i), ':');
      if (p.size() < 2) return -1;
      MountSpec m;
      m.type =
          p[0].find('/') == std::string::npos ? MountSpec::Type::kVolume : MountSpec::Type::kBind;
      m.source = p[0];
      m.target = p[1];
      m.read_only = p.size() > 2 && p[2] == "ro";
      spec->mounts.push_back(m);
    } else if (f == "--tmpfs") {
      spec->mounts.push_back({MountSpec::Type::kTmpfs, "", value(i), false, 0});
    } else if (f == "--read-only") {
      spec->read_only_rootfs = true;
    } else if (f == "-m" || f == "--memory") {
      if (!absl::SimpleAtoi(value(i), &spec->resources.memory_bytes)) return -1;
    } else if (f == "--cpus") {
      double cpus = 0;
      if (!absl::SimpleAtod(value(i), &cpus)) return -1;
      spec->resources.nano_cpus = static_cast<int64_t>(cpus * 1e9);
    } else if (f == "--pids-limit") {
      if (!absl::SimpleAtoi(value(i), &spec->resources.pids_limit)) return -1;
    } else if (f == "--cap-add") {
      spec->cap_add.push_back(value(i));
    } else if (f == "--cap-drop") {
      spec->cap_drop.push_back(value(i));
    } else if (f == "-u" || f == "--user") {
      spec->user = value(i);
    } else if (f == "-h" || f == "--hostname") {
      spec->hostname = value(i);
    } else if (f == "-w" || f == "--workdir") {
      spec->working_dir = value(i);
    } else if (f == "--network") {
      std::string n = value(i);
      spec->network = n == "host"   ? NetworkMode::kHost
                      : n == "none" ? NetworkMode::kNone
                                    : NetworkMode::kPath;
      spec->netns_path = n;
    } else if (f == "--health-cmd") {
      spec->healthcheck.test = {"/bin/sh", "-c", value(i)};
    } else if (f == "--health-interval") {
      double s = 0;
      if (!absl::SimpleAtod(value(i), &s)) return -1;
      spec->healthcheck.interval_ms = static_cast<int64_t>(s * 1000);
    } else if (f == "--secret") {
      std::string kv = value(i);
      size_t eq = kv.find('=');
      if (eq == std::string::npos) return -1;
      spec->files.push_back({"/run/secrets/" + kv.substr(0, eq), kv.substr(eq + 1), 0444, 0, 0});
    } else {
      return -1;
    }
  }
  return -1;
}

// `running` (when given) says whether to keep following; otherwise the container's status.
int FollowLogs(Runtime& rt, const std::string& id, bool follow,
               std::atomic<bool>* running = nullptr) {
  ReadLogsOptions o;
  o.follow = follow;
  o.poll_interval = absl::Milliseconds(5);
  o.still_running = [&] {
    if (running != nullptr) return running->load();
    auto info = rt.Inspect(id);
    return info.ok() &&
           (info->status == ContainerStatus::kRunning || info->status == ContainerStatus::kCreated);
  };
  absl::Status s = ReadLogs(rt.LogPath(id), o, [](const LogEntry& e) {
    FILE* out = e.stream == "stderr" ? stderr : stdout;
    fwrite(e.log.data(), 1, e.log.size(), out);
    fflush(out);
    return true;
  });
  return s.ok() ? 0 : Fail(s);
}

std::string Describe(const ExitRecord& e) {
  std::string s = absl::StrCat(ReasonName(e.reason), " (", e.exit_code, ")");
  if (!e.error.empty()) absl::StrAppend(&s, ": ", e.error);
  return s;
}

int Main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  std::string root = "/var/lib/swarmd/runtime";
  std::string run_root = "/run/swarmd/runtime";
  std::string cgroup_parent = "swarm";
  size_t i = 0;
  while (i < a.size() && absl::StartsWith(a[i], "--")) {
    if (a[i] == "--root" && i + 1 < a.size()) {
      root = a[i + 1];
    } else if (a[i] == "--run-root" && i + 1 < a.size()) {
      run_root = a[i + 1];
    } else if (a[i] == "--cgroup-parent" && i + 1 < a.size()) {
      cgroup_parent = a[i + 1];
    } else {
      return Usage();
    }
    i += 2;
  }
  if (i >= a.size()) return Usage();
  std::string cmd = a[i++];

  auto store = ImageStore::Open(root + "/images");
  if (!store.ok()) return Fail(store.status());
  auto opened = Runtime::Open({root, cgroup_parent, store->get(), run_root});
  if (!opened.ok()) return Fail(opened.status());
  Runtime& rt = **opened;
  auto resolve = [&](const std::string& x) { return rt.Resolve(x); };

  if (cmd == "run" || cmd == "create") {
    ContainerSpec spec;
    bool detach = false, remove = false;
    int image_at = ParseContainerFlags(a, i, &spec, &detach, &remove);
    if (image_at < 0) return Usage();
    spec.image = a[image_at];
    spec.args.assign(a.begin() + image_at + 1, a.end());
    auto id = rt.Create(spec);
    if (!id.ok()) return Fail(id.status());
    if (cmd == "create") {
      std::cout << *id << "\n";
      return 0;
    }
    if (absl::Status s = rt.Start(*id); !s.ok()) return Fail(s);
    if (detach) {
      std::cout << *id << "\n";
      return 0;
    }
    // The logs are followed on a thread until Wait (a pidfd, no polling) sees the exit.
    std::atomic<bool> running{true};
    std::thread follower([&] { FollowLogs(rt, *id, true, &running); });
    auto exit = rt.Wait(*id);
    running = false;
    follower.join();
    if (!exit.ok()) return Fail(exit.status());
    if (exit->reason != ExitRecord::Reason::kExited) {
      std::cerr << "swarmd-runtime: container " << Describe(*exit) << "\n";
    }
    if (remove) (void)rt.Remove(*id);
    return exit->exit_code;
  }
  if (cmd == "start" || cmd == "wait" || cmd == "inspect" || cmd == "stats" || cmd == "health") {
    if (i >= a.size()) return Usage();
    auto id = resolve(a[i]);
    if (!id.ok()) return Fail(id.status());
    if (cmd == "start") {
      absl::Status s = rt.Start(*id);
      return s.ok() ? 0 : Fail(s);
    }
    if (cmd == "wait") {
      auto exit = rt.Wait(*id);
      if (!exit.ok()) return Fail(exit.status());
      std::cout << Describe(*exit) << "\n";
      return 0;
    }
    if (cmd == "stats") {
      auto s = rt.Stats(*id);
      if (!s.ok()) return Fail(s.status());
      std::cout << "memory " << s->memory_usage_bytes << " bytes, cpu " << s->cpu_usage_ns
                << " ns, pids " << s->pids_current << ", oom kills " << s->oom_kills << "\n";
      return 0;
    }
    if (cmd == "health") {
      auto h = rt.Health(*id);
      if (!h.ok()) return Fail(h.status());
      std::cout << HealthStatusName(h->status) << " (failing streak " << h->failing_streak << ")\n";
      return 0;
    }
    auto info = rt.Inspect(*id);
    if (!info.ok()) return Fail(info.status());
    nlohmann::json j;
    j["id"] = info->id;
    j["name"] = info->name;
    j["image"] = info->image;
    j["args"] = info->args;
    j["status"] = StatusName(info->status);
    j["pid"] = info->pid;
    j["shim_pid"] = info->shim_pid;
    if (info->exit) {
      j["exit"] = {{"reason", ReasonName(info->exit->reason)},
                   {"exit_code", info->exit->exit_code},
                   {"signal", info->exit->signal},
                   {"error", info->exit->error}};
    }
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  if (cmd == "stop" || cmd == "kill") {
    absl::Duration grace = absl::Seconds(-1);
    int sig = SIGKILL;
    while (i + 1 < a.size() && (a[i] == "-t" || a[i] == "-s")) {
      if (a[i] == "-t") {
        int secs = 0;
        if (!absl::SimpleAtoi(a[i + 1], &secs)) return Usage();
        grace = absl::Seconds(secs);
      } else if (!absl::SimpleAtoi(a[i + 1], &sig)) {
        std::string name = absl::StrCat("SIG", absl::StripPrefix(a[i + 1], "SIG"));
        for (int s = 1; s < NSIG; ++s) {
          if (sigabbrev_np(s) != nullptr && absl::StrCat("SIG", sigabbrev_np(s)) == name) sig = s;
        }
      }
      i += 2;
    }
    if (i >= a.size()) return Usage();
    auto id = resolve(a[i]);
    if (!id.ok()) return Fail(id.status());
    if (cmd == "kill") {
      absl::Status s = rt.Kill(*id, sig);
      return s.ok() ? 0 : Fail(s);
    }
    auto exit = rt.Stop(*id, grace);
    if (!exit.ok()) return Fail(exit.status());
    std::cout << Describe(*exit) << "\n";
    return 0;
  }
  if (cmd == "rm") {
    bool force = i < a.size() && a[i] == "-f";
    if (force) ++i;
    int rc = 0;
    for (; i < a.size(); ++i) {
      auto id = resolve(a[i]);
      absl::Status s = id.ok() ? rt.Remove(*id, force) : id.status();
      if (!s.ok()) rc = Fail(s);
    }
    return rc;
  }
  if (cmd == "ps") {
    bool all = i < a.size() && a[i] == "-a";
    auto list = rt.List();
    if (!list.ok()) return Fail(list.status());
    printf("%-13s %-30s %-10s %-22s %s\n", "CONTAINER ID", "IMAGE", "STATUS", "EXIT", "COMMAND");
    for (const auto& c : *list) {
      if (!all && c.status != ContainerStatus::kRunning) continue;
      std::string exit = c.exit ? Describe(*c.exit) : "";
      printf("%-13s %-30s %-10s %-22s %s\n", c.id.substr(0, 12).c_str(), c.image.c_str(),
             StatusName(c.status).c_str(), exit.substr(0, 22).c_str(),
             absl::StrJoin(c.args, " ").substr(0, 40).c_str());
    }
    return 0;
  }
  if (cmd == "logs") {
    bool follow = i < a.size() && a[i] == "-f";
    if (follow) ++i;
    if (i >= a.size()) return Usage();
    auto id = resolve(a[i]);
    if (!id.ok()) return Fail(id.status());
    return FollowLogs(rt, *id, follow);
  }
  if (cmd == "image") {
    if (i >= a.size()) return Usage();
    std::string sub = a[i++];
    ImageStore& images = **store;
    if (sub == "pull") {
      RegistryOptions o;
      for (; i + 1 < a.size() && absl::StartsWith(a[i], "--"); i += 2) {
        if (a[i] == "--insecure-registry") {
          o.insecure_registries.insert(a[i + 1]);
        } else if (a[i] == "--user") {
          std::string u = a[i + 1];
          size_t colon = u.find(':');
          auto ref = ParseReference(i + 2 < a.size() ? a[i + 2] : "");
          if (colon == std::string::npos || !ref.ok()) return Usage();
          o.credentials[ref->registry] = {u.substr(0, colon), u.substr(colon + 1)};
        } else {
          return Usage();
        }
      }
      if (i >= a.size()) return Usage();
      o.progress = [](const PullProgress& p) {
        if (p.complete) {
          fprintf(stderr, "%s: done (%lld bytes, %lld fetched)\n", p.digest.substr(7, 12).c_str(),
                  static_cast<long long>(p.done_bytes), static_cast<long long>(p.fetched_bytes));
        }
        return true;
      };
      auto id = RegistryClient(images, o).Pull(a[i]);
      if (!id.ok()) return Fail(id.status());
      std::cout << *id << "\n";
      return 0;
    }
    if (sub == "load") {
      std::string file, layout, tag;
      for (; i + 1 < a.size(); i += 2) {
        if (a[i] == "-i") {
          file = a[i + 1];
        } else if (a[i] == "--layout") {
          layout = a[i + 1];
        } else if (a[i] == "--tag") {
          tag = a[i + 1];
        } else {
          return Usage();
        }
      }
      auto ids = !layout.empty() ? images.LoadOciLayout(layout, tag)
                 : !file.empty() ? images.LoadArchive(file, tag)
                                 : absl::StatusOr<std::vector<std::string>>(
                                       absl::InvalidArgumentError("give -i FILE or --layout DIR"));
      if (!ids.ok()) return Fail(ids.status());
      for (const auto& id : *ids) std::cout << "loaded " << id << "\n";
      return 0;
    }
    if (sub == "ls") {
      auto list = images.List();
      if (!list.ok()) return Fail(list.status());
      printf("%-50s %-14s %s\n", "REFERENCE", "IMAGE ID", "SIZE");
      for (const auto& img : *list) {
        std::vector<std::string> tags = img.tags;
        if (tags.empty()) tags.push_back("<none>");
        for (const auto& t : tags) {
          if (absl::StrContains(t, "@")) continue;
          printf("%-50s %-14s %lld\n", t.c_str(), img.id.substr(7, 12).c_str(),
                 static_cast<long long>(img.size_bytes));
        }
      }
      return 0;
    }
    if (sub == "rm" && i < a.size()) {
      absl::Status s = images.Remove(a[i]);
      return s.ok() ? 0 : Fail(s);
    }
    if (sub == "prune") {
      std::set<std::string> in_use;
      auto list = rt.List();
      if (!list.ok()) return Fail(list.status());
      for (const auto& c : *list) {
        auto dirs = rt.LowerDirs(c.id);
        if (dirs.ok()) in_use.insert(dirs->begin(), dirs->end());
      }
      auto removed = images.GarbageCollect(in_use);
      if (!removed.ok()) return Fail(removed.status());
      std::cout << "removed " << *removed << " layers\n";
      return 0;
    }
    return Usage();
  }
  return Usage();
}

}  // namespace
}  // namespace swarm::agent::runtime

int main(int argc, char** argv) { return swarm::agent::runtime::Main(argc, argv); }

#include "agent/runtime/testing/test_image.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/runtime/fsutil.h"
#include "agent/runtime/image_store.h"
#include "common/errno_status.h"
#include "common/status_macros.h"

namespace swarm::agent::runtime::testing {
namespace {

using json = nlohmann::json;

absl::Status WriteString(const std::string& path, const std::string& data, mode_t mode = 0644) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  out.close();
  if (!out) return ErrnoToStatus(errno, absl::StrCat("writing ", path));
  chmod(path.c_str(), mode);
  return absl::OkStatus();
}

absl::Status Copy(const std::string& from, const std::string& to, mode_t mode) {
  std::ifstream in(from, std::ios::binary);
  if (!in) return ErrnoToStatus(errno, absl::StrCat("reading ", from));
  std::stringstream ss;
  ss << in.rdbuf();
  return WriteString(to, ss.str(), mode);
}

// Tars the contents of dir (paths relative to it) into out, uncompressed.
absl::Status TarDirectory(const std::string& dir, const std::string& out) {
  archive* w = archive_write_new();
  archive_write_set_format_pax_restricted(w);
  if (archive_write_open_filename(w, out.c_str()) != ARCHIVE_OK) {
    std::string e = archive_error_string(w);
    archive_write_free(w);
    return absl::InternalError(absl::StrCat("creating ", out, ": ", e));
  }
  archive* disk = archive_read_disk_new();
  archive_read_disk_set_standard_lookup(disk);
  archive_read_disk_set_behavior(disk, ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS);
  absl::Status status;
  if (archive_read_disk_open(disk, dir.c_str()) != ARCHIVE_OK) {
    status = absl::InternalError(absl::StrCat("reading ", dir, ": ", archive_error_string(disk)));
  }
  while (status.ok()) {
    archive_entry* entry = archive_entry_new();
    int rc = archive_read_next_header2(disk, entry);
    if (rc == ARCHIVE_EOF) {
      archive_entry_free(entry);
      break;
    }
    if (rc < ARCHIVE_WARN) {
      status = absl::InternalError(archive_error_string(disk));
      archive_entry_free(entry);
      break;
    }
    archive_read_disk_descend(disk);
    std::string path = archive_entry_pathname(entry);
    std::string rel = path.size() > dir.size() ? path.substr(dir.size() + 1) : "";
    if (rel.empty()) {
      archive_entry_free(entry);
      continue;
    }
    archive_entry_set_pathname(entry, rel.c_str());
    archive_write_header(w, entry);
    if (archive_entry_filetype(entry) == AE_IFREG && archive_entry_size(entry) > 0) {
      std::ifstream in(path, std::ios::binary);
      char buf[65536];
      while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        archive_write_data(w, buf, in.gcount());
      }
    }
    archive_entry_free(entry);
  }
  archive_read_free(disk);
  archive_write_close(w);
  archive_write_free(w);
  return status;
}

absl::Status Compress(const std::string& in_path, const std::string& out_path,
                      const std::string& compression) {
  archive* w = archive_write_new();
  archive_write_set_format_raw(w);
  if (compression == "zstd") {
    archive_write_add_filter_zstd(w);
  } else {
    archive_write_add_filter_gzip(w);
  }
  if (archive_write_open_filename(w, out_path.c_str()) != ARCHIVE_OK) {
    std::string e = archive_error_string(w);
    archive_write_free(w);
    return absl::InternalError(absl::StrCat("creating ", out_path, ": ", e));
  }
  archive_entry* entry = archive_entry_new();
  archive_entry_set_filetype(entry, AE_IFREG);
  archive_write_header(w, entry);
  std::ifstream in(in_path, std::ios::binary);
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) archive_write_data(w, buf, in.gcount());
  archive_entry_free(entry);
  archive_write_close(w);
  archive_write_free(w);
  return absl::OkStatus();
}

std::string Hex(const std::string& digest) { return digest.substr(7); }

absl::StatusOr<std::string> StoreBlob(const std::string& layout, const std::string& file) {
  ASSIGN_OR_RETURN(std::string digest, DigestFile(file));
  std::string dest = absl::StrCat(layout, "/blobs/sha256/", Hex(digest));
  if (rename(file.c_str(), dest.c_str()) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("moving ", file));
  }
  return digest;
}

int64_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

}  // namespace

std::string ProbePath() {
  const char* src = getenv("TEST_SRCDIR");
  if (src != nullptr) return absl::StrCat(src, "/swarm/agent/runtime/probe");
  return "agent/runtime/probe";
}

absl::Status BuildBusyboxRootfs(const std::string& dir, const std::string& probe) {
  for (const char* sub : {"/bin", "/etc", "/root", "/proc", "/sys", "/dev", "/mnt", "/var"}) {
    RETURN_IF_ERROR(MkdirAll(dir + sub));
  }
  RETURN_IF_ERROR(MkdirAll(dir + "/tmp"));
  chmod((dir + "/tmp").c_str(), 01777);
  RETURN_IF_ERROR(Copy("/bin/busybox", dir + "/bin/busybox", 0755));
  FILE* list = popen("/bin/busybox --list", "r");
  if (list == nullptr) return ErrnoToStatus(errno, "listing busybox applets");
  char line[256];
  while (fgets(line, sizeof line, list) != nullptr) {
    std::string applet = line;
    while (!applet.empty() && (applet.back() == '\n' || applet.back() == '\r')) applet.pop_back();
    if (applet.empty() || applet == "busybox") continue;
    std::string link = absl::StrCat(dir, "/bin/", applet);
    if (symlink("busybox", link.c_str()) != 0 && errno != EEXIST) {
      pclose(list);
      return ErrnoToStatus(errno, absl::StrCat("linking ", link));
    }
  }
  pclose(list);
  RETURN_IF_ERROR(WriteString(dir + "/etc/passwd",
                              "root:x:0:0:root:/root:/bin/sh\n"
                              "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"));
  RETURN_IF_ERROR(WriteString(dir + "/etc/group", "root:x:0:\nnogroup:x:65534:\n"));
  if (!probe.empty()) RETURN_IF_ERROR(Copy(probe, dir + "/bin/probe", 0755));
  return absl::OkStatus();
}

absl::StatusOr<std::string> BuildOciLayout(const std::vector<std::string>& layer_dirs,
                                           const std::string& layout,
                                           const LayoutOptions& options) {
  RETURN_IF_ERROR(MkdirAll(layout + "/blobs/sha256"));
  json layers = json::array();
  json diff_ids = json::array();
  int n = 0;
  for (const auto& dir : layer_dirs) {
    std::string tar = absl::StrCat(layout, "/layer", n, ".tar");
    std::string packed = absl::StrCat(layout, "/layer", n++, ".tar.c");
    RETURN_IF_ERROR(TarDirectory(dir, tar));
    ASSIGN_OR_RETURN(std::string diff_id, DigestFile(tar));
    diff_ids.push_back(diff_id);
    std::string media = "application/vnd.oci.image.layer.v1.tar";
    if (options.compression == "none") {
      packed = tar;
    } else {
      RETURN_IF_ERROR(Compress(tar, packed, options.compression));
      unlink(tar.c_str());
      absl::StrAppend(&media, "+", options.compression);
    }
    int64_t size = FileSize(packed);
    ASSIGN_OR_RETURN(std::string digest, StoreBlob(layout, packed));
    layers.push_back({{"mediaType", media}, {"digest", digest}, {"size", size}});
  }
  json config = {{"architecture", "amd64"},
                 {"os", "linux"},
                 {"config", {{"Env", options.env}, {"Cmd", options.cmd}}},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  if (!options.healthcheck.empty()) {
    config["config"]["Healthcheck"] = {{"Test", options.healthcheck},
                                       {"Interval", options.healthcheck_interval_ns}};
  }
  std::string config_file = layout + "/config.json";
  RETURN_IF_ERROR(WriteString(config_file, config.dump()));
  int64_t config_size = FileSize(config_file);
  ASSIGN_OR_RETURN(std::string config_digest, StoreBlob(layout, config_file));
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                   {"config",
                    {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                     {"digest", config_digest},
                     {"size", config_size}}},
                   {"layers", layers}};
  std::string manifest_file = layout + "/manifest.json";
  RETURN_IF_ERROR(WriteString(manifest_file, manifest.dump()));
  int64_t manifest_size = FileSize(manifest_file);
  ASSIGN_OR_RETURN(std::string manifest_digest, StoreBlob(layout, manifest_file));
  json index = {{"schemaVersion", 2},
                {"manifests",
                 {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                   {"digest", manifest_digest},
                   {"size", manifest_size},
                   {"annotations", {{"org.opencontainers.image.ref.name", options.tag}}}}}}};
  RETURN_IF_ERROR(WriteString(layout + "/index.json", index.dump()));
  RETURN_IF_ERROR(WriteString(layout + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  return manifest_digest;
}

}  // namespace swarm::agent::runtime::testing

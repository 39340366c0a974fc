#include "agent/runtime/image_store.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/runtime/fsutil.h"
#include "agent/runtime/reference.h"
#include "common/errno_status.h"
#include "common/files.h"
#include "common/id.h"
#include "common/random.h"
#include "common/status_macros.h"

namespace swarm::agent::runtime {
namespace {

using json = nlohmann::json;

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  void Update(const void* data, size_t n) { EVP_DigestUpdate(ctx_, data, n); }
  std::string Final() {
    unsigned char md[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    static const char* hex = "0123456789abcdef";
    std::string out = "sha256:";
    for (unsigned i = 0; i < len; ++i) {
      out.push_back(hex[md[i] >> 4]);
      out.push_back(hex[md[i] & 15]);
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

std::string Hex(const std::string& digest) { return digest.substr(digest.find(':') + 1); }

absl::StatusOr<json> ReadJsonFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string data, ReadFile(path));
  json j = json::parse(data, nullptr, false);
  if (j.is_discarded()) return absl::DataLossError(absl::StrCat(path, " is not valid JSON"));
  return j;
}

absl::Status CopyFile(const std::string& from, const std::string& to) {
  int in = open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return ErrnoToStatus(errno, absl::StrCat("opening ", from));
  int out = open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    close(in);
    return ErrnoToStatus(errno, absl::StrCat("creating ", to));
  }
  char buf[1 << 16];
  absl::Status status;
  for (;;) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n < 0) {
      status = ErrnoToStatus(errno, absl::StrCat("reading ", from));
      break;
    }
    if (n == 0) break;
    if (write(out, buf, n) != n) {
      status = ErrnoToStatus(errno, absl::StrCat("writing ", to));
      break;
    }
  }
  close(in);
  close(out);
  return status;
}

std::vector<std::string> StringList(const json& j, const char* key) {
  std::vector<std::string> out;
  if (j.contains(key) && j[key].is_array()) {
    for (const auto& v : j[key]) {
      if (v.is_string()) out.push_back(v.get<std::string>());
    }
  }
  return out;
}

constexpr const char* kIndexTypes[] = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
};

bool IsIndex(const std::string& media_type) {
  for (const char* t : kIndexTypes) {
    if (media_type == t) return true;
  }
  return false;
}

struct ArchiveReader {
  archive* a = archive_read_new();
  ~ArchiveReader() { archive_read_free(a); }
};
struct ArchiveWriter {
  archive* a = archive_write_disk_new();
  ~ArchiveWriter() { archive_write_free(a); }
};

constexpr int kExtractFlags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER |
                              ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_FFLAGS |
                              ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS;

// Extracts a tar (any compression) under dest. With `whiteouts`, .wh. entries become
// overlayfs whiteouts and opaque markers.
absl::Status ExtractTar(const std::string& path, const std::string& dest, bool whiteouts) {
  ArchiveReader r;
  archive_read_support_filter_all(r.a);
  archive_read_support_format_tar(r.a);
  archive_read_support_format_gnutar(r.a);
  if (archive_read_open_filename(r.a, path.c_str(), 1 << 16) != ARCHIVE_OK) {
    return absl::DataLossError(absl::StrCat("opening ", path, ": ", archive_error_string(r.a)));
  }
  ArchiveWriter w;
  archive_write_disk_set_options(w.a, kExtractFlags);
  archive_write_disk_set_standard_lookup(w.a);
  archive_entry* entry;
  for (;;) {
    int rc = archive_read_next_header(r.a, &entry);
    if (rc == ARCHIVE_EOF) break;
    if (rc < ARCHIVE_WARN) {
      return absl::DataLossError(absl::StrCat("reading ", path, ": ", archive_error_string(r.a)));
    }
    std::string name = archive_entry_pathname(entry);
    // Entries are placed under dest by prefixing it (so libarchive sees absolute paths);
    // a leading '/' in the archive is dropped as Docker does, ".." is refused (NODOTDOT).
    while (absl::StartsWith(name, "./") || absl::StartsWith(name, "/")) {
      name = name.substr(name[0] == '/' ? 1 : 2);
    }
    while (!name.empty() && name.back() == '/') name.pop_back();
    if (name.empty() || name == ".") continue;
    size_t slash = name.rfind('/');
    std::string parent = slash == std::string::npos ? "" : name.substr(0, slash);
    std::string base = slash == std::string::npos ? name : name.substr(slash + 1);
    if (whiteouts && absl::StartsWith(base, ".wh.")) {
      if (parent.find("..") != std::string::npos) {
        return absl::DataLossError(absl::StrCat("layer ", path, ": bad whiteout ", name));
      }
      std::string dir = parent.empty() ? dest : absl::StrCat(dest, "/", parent);
      RETURN_IF_ERROR(MkdirAll(dir));
      if (base == ".wh..wh..opq") {
        if (setxattr(dir.c_str(), "trusted.overlay.opaque", "y", 1, 0) != 0) {
          return ErrnoToStatus(errno, absl::StrCat("marking ", dir, " opaque"));
        }
      } else {
        std::string target = absl::StrCat(dir, "/", base.substr(4));
        if (mknod(target.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0 && errno != EEXIST) {
          return ErrnoToStatus(errno, absl::StrCat("creating whiteout ", target));
        }
      }
      continue;
    }
    archive_entry_set_pathname(entry, absl::StrCat(dest, "/", name).c_str());
    if (const char* link = archive_entry_hardlink(entry)) {
      std::string target = link;
      while (absl::StartsWith(target, "./") || absl::StartsWith(target, "/")) {
        target = target.substr(target[0] == '/' ? 1 : 2);
      }
      archive_entry_set_hardlink(entry, absl::StrCat(dest, "/", target).c_str());
    }
    rc = archive_write_header(w.a, entry);
    if (rc < ARCHIVE_WARN) {
      return absl::DataLossError(
          absl::StrCat("extracting ", name, " from ", path, ": ", archive_error_string(w.a)));
    }
    const void* buf;
    size_t size;
    la_int64_t offset;
    while ((rc = archive_read_data_block(r.a, &buf, &size, &offset)) == ARCHIVE_OK) {
      if (archive_write_data_block(w.a, buf, size, offset) < ARCHIVE_WARN) {
        return absl::DataLossError(absl::StrCat("writing ", name, ": ", archive_error_string(w.a)));
      }
    }
    if (rc < ARCHIVE_WARN) {
      return absl::DataLossError(
          absl::StrCat("reading ", name, " from ", path, ": ", archive_error_string(r.a)));
    }
    archive_write_finish_entry(w.a);
  }
  if (archive_write_close(w.a) != ARCHIVE_OK) {
    return absl::DataLossError(absl::StrCat("finishing ", path, ": ", archive_error_string(w.a)));
  }
  return absl::OkStatus();
}

// The digest of a layer's uncompressed tar stream.
absl::StatusOr<std::string> DiffId(const std::string& path) {
  ArchiveReader r;
  archive_read_support_filter_all(r.a);
  archive_read_support_format_raw(r.a);
  archive_entry* entry;
  if (archive_read_open_filename(r.a, path.c_str(), 1 << 16) != ARCHIVE_OK ||
      archive_read_next_header(r.a, &entry) != ARCHIVE_OK) {
    return absl::DataLossError(absl::StrCat("opening ", path, ": ", archive_error_string(r.a)));
  }
  Sha256 h;
  char buf[1 << 16];
  for (;;) {
    la_ssize_t n = archive_read_data(r.a, buf, sizeof buf);
    if (n < 0) {
      return absl::DataLossError(
          absl::StrCat("decompressing ", path, ": ", archive_error_string(r.a)));
    }
    if (n == 0) break;
    h.Update(buf, n);
  }
  return h.Final();
}

HealthCheckSpec ParseHealthcheck(const json& hc) {
  HealthCheckSpec spec;
  std::vector<std::string> test = StringList(hc, "Test");
  if (!test.empty() && test[0] == "CMD") {
    spec.test.assign(test.begin() + 1, test.end());
  } else if (test.size() == 2 && test[0] == "CMD-SHELL") {
    spec.test = {"/bin/sh", "-c", test[1]};
  }
  auto ms = [&](const char* key, int64_t def) {
    int64_t ns = hc.value(key, int64_t{0});
    return ns > 0 ? ns / 1000000 : def;
  };
  spec.interval_ms = ms("Interval", 30000);
  spec.timeout_ms = ms("Timeout", 30000);
  spec.start_period_ms = ms("StartPeriod", 0);
  spec.retries = hc.value("Retries", 0) > 0 ? hc.value("Retries", 3) : 3;
  return spec;
}

std::string NormalizeTag(const std::string& tag) {
  auto ref = ParseReference(tag);
  return ref.ok() ? ref->String() : tag;
}

}  // namespace

std::string DigestBytes(std::string_view data) {
  Sha256 h;
  h.Update(data.data(), data.size());
  return h.Final();
}

absl::StatusOr<std::string> DigestFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("opening ", path));
  Sha256 h;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      int e = errno;
      close(fd);
      return ErrnoToStatus(e, absl::StrCat("reading ", path));
    }
    if (n == 0) break;
    h.Update(buf, n);
  }
  close(fd);
  return h.Final();
}

absl::StatusOr<std::unique_ptr<ImageStore>> ImageStore::Open(const std::string& root) {
  for (const char* sub : {"/blobs/sha256", "/layers", "/images", "/tmp"}) {
    RETURN_IF_ERROR(MkdirAll(root + sub));
  }
  // Half-unpacked layers from a crash are garbage; partial downloads are kept for resuming.
  if (DIR* d = opendir((root + "/tmp").c_str())) {
    while (dirent* e = readdir(d)) {
      if (absl::StartsWith(e->d_name, "unpack-") || absl::StartsWith(e->d_name, "load-")) {
        (void)RemoveAll(absl::StrCat(root, "/tmp/", e->d_name));
      }
    }
    closedir(d);
  }
  return std::unique_ptr<ImageStore>(new ImageStore(root));
}

bool ImageStore::HasBlob(const std::string& digest) const {
  return IsValidDigest(digest) && access(BlobPath(digest).c_str(), F_OK) == 0;
}
std::string ImageStore::BlobPath(const std::string& digest) const {
  return absl::StrCat(root_, "/blobs/sha256/", Hex(digest));
}
std::string ImageStore::TempPath(const std::string& name) const {
  return absl::StrCat(root_, "/tmp/", name);
}
std::string ImageStore::LayerDir(const std::string& diff_id) const {
  return absl::StrCat(root_, "/layers/", Hex(diff_id));
}

absl::Status ImageStore::CommitBlob(const std::string& tmp_path, const std::string& digest) {
  if (!IsValidDigest(digest)) {
    return absl::InvalidArgumentError(absl::StrCat("storing blob: bad digest \"", digest, "\""));
  }
  ASSIGN_OR_RETURN(std::string actual, DigestFile(tmp_path));
  if (actual != digest) {
    unlink(tmp_path.c_str());
    return absl::DataLossError(
        absl::StrCat("blob ", digest, " failed verification: its content", " hashes to ", actual));
  }
  if (rename(tmp_path.c_str(), BlobPath(digest).c_str()) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("storing blob ", digest));
  }
  return absl::OkStatus();
}

absl::Status ImageStore::UnpackLayer(const LayerDescriptor& layer, const std::string& diff_id) {
  std::string final_dir = LayerDir(diff_id);
  if (access(final_dir.c_str(), F_OK) == 0) return absl::OkStatus();  // unpacked once
  std::string blob = BlobPath(layer.digest);
  ASSIGN_OR_RETURN(std::string actual, DiffId(blob));
  if (actual != diff_id) {
    return absl::DataLossError(absl::StrCat("layer ", layer.digest, " uncompresses to ", actual,
                                            " but the image config says ", diff_id));
  }
  std::string tmp = TempPath(
      absl::StrCat("unpack-", Hex(diff_id).substr(0, 16), "-", NewId(SecureRandom::Get())));
  RETURN_IF_ERROR(MkdirAll(tmp));
  absl::Status s = ExtractTar(blob, tmp, /*whiteouts=*/true);
  if (s.ok() && rename(tmp.c_str(), final_dir.c_str()) != 0) {
    if (errno != EEXIST && errno != ENOTEMPTY) {
      s = ErrnoToStatus(errno, absl::StrCat("storing layer ", diff_id));
    }
  }
  (void)RemoveAll(tmp);
  return s;
}

absl::StatusOr<std::string> ImageStore::ImportImage(const std::string& config_digest,
                                                    const std::vector<LayerDescriptor>& layers,
                                                    const std::string& manifest_digest,
                                                    const std::vector<std::string>& tags) {
  ASSIGN_OR_RETURN(json config, ReadJsonFile(BlobPath(config_digest)));
  std::vector<std::string> diff_ids;
  if (config.contains("rootfs")) diff_ids = StringList(config["rootfs"], "diff_ids");
  if (diff_ids.size() != layers.size()) {
    return absl::DataLossError(absl::StrCat("image ", config_digest, ": ", layers.size(),
                                            " layers but ", diff_ids.size(), " diff ids"));
  }
  int64_t size = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (!HasBlob(layers[i].digest)) {
      return absl::NotFoundError(absl::StrCat("layer blob ", layers[i].digest, " is missing"));
    }
    RETURN_IF_ERROR(UnpackLayer(layers[i], diff_ids[i]));
    struct stat st;
    if (stat(BlobPath(layers[i].digest).c_str(), &st) == 0) size += st.st_size;
  }
  json record;
  record["id"] = config_digest;
  record["manifest_digest"] = manifest_digest;
  record["diff_ids"] = diff_ids;
  std::vector<std::string> blobs;
  for (const auto& l : layers) blobs.push_back(l.digest);
  record["layer_blobs"] = blobs;
  record["size"] = size;
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(WriteFileAtomically(absl::StrCat(root_, "/images/", Hex(config_digest), ".json"),
                                      record.dump()));
  ASSIGN_OR_RETURN(auto all_tags, ReadTags());
  for (const auto& t : tags) all_tags[NormalizeTag(t)] = config_digest;
  if (!manifest_digest.empty()) {
    for (const auto& t : tags) {
      if (auto ref = ParseReference(t); ref.ok()) {
        all_tags[absl::StrCat(ref->Name(), "@", manifest_digest)] = config_digest;
      }
    }
  }
  RETURN_IF_ERROR(WriteTags(all_tags));
  return config_digest;
}

absl::StatusOr<std::map<std::string, std::string>> ImageStore::ReadTags() const {
  std::string path = root_ + "/tags.json";
  if (access(path.c_str(), F_OK) != 0) return std::map<std::string, std::string>{};
  ASSIGN_OR_RETURN(json j, ReadJsonFile(path));
  return j.get<std::map<std::string, std::string>>();
}

absl::Status ImageStore::WriteTags(const std::map<std::string, std::string>& tags) const {
  return WriteFileAtomically(root_ + "/tags.json", json(tags).dump(1));
}

absl::StatusOr<std::vector<std::string>> ImageStore::LoadOciIndex(const std::string& dir,
                                                                  const std::string& index_path,
                                                                  const std::string& tag) {
  ASSIGN_OR_RETURN(json index, ReadJsonFile(index_path));
  std::vector<std::string> ids;
  if (!index.contains("manifests") || !index["manifests"].is_array()) {
    return absl::DataLossError(absl::StrCat(index_path, " has no manifests"));
  }
  auto import_blob = [&](const std::string& digest) -> absl::Status {
    if (!IsValidDigest(digest)) {
      return absl::DataLossError(absl::StrCat("bad digest \"", digest, "\" in ", dir));
    }
    if (HasBlob(digest)) return absl::OkStatus();
    std::string tmp = TempPath(absl::StrCat("copy-", NewId(SecureRandom::Get())));
    RETURN_IF_ERROR(CopyFile(absl::StrCat(dir, "/blobs/sha256/", Hex(digest)), tmp));
    return CommitBlob(tmp, digest);
  };
  for (json desc : index["manifests"]) {
    std::string ref_name;
    if (desc.contains("annotations")) {
      ref_name = desc["annotations"].value("org.opencontainers.image.ref.name", "");
    }
    std::string digest = desc.value("digest", "");
    RETURN_IF_ERROR(import_blob(digest));
    ASSIGN_OR_RETURN(json manifest, ReadJsonFile(BlobPath(digest)));
    std::string media = desc.value("mediaType", manifest.value("mediaType", ""));
    if (IsIndex(media)) {
      ASSIGN_OR_RETURN(digest, SelectPlatformManifest(manifest.dump()));
      RETURN_IF_ERROR(import_blob(digest));
      ASSIGN_OR_RETURN(manifest, ReadJsonFile(BlobPath(digest)));
    }
    std::string config_digest = manifest["config"].value("digest", "");
    RETURN_IF_ERROR(import_blob(config_digest));
    std::vector<LayerDescriptor> layers;
    for (const auto& l : manifest["layers"]) {
      layers.push_back({l.value("digest", ""), l.value("mediaType", "")});
      RETURN_IF_ERROR(import_blob(layers.back().digest));
    }
    std::vector<std::string> tags;
    // A ref.name is either a full reference or just a tag (OCI leaves it open).
    if (!ref_name.empty() &&
        (ref_name.find('/') != std::string::npos || ref_name.find(':') != std::string::npos)) {
      tags.push_back(ref_name);
    } else if (!tag.empty()) {
      tags.push_back(tag);
    }
    ASSIGN_OR_RETURN(std::string id, ImportImage(config_digest, layers, digest, tags));
    ids.push_back(id);
  }
  return ids;
}

absl::StatusOr<std::vector<std::string>> ImageStore::LoadOciLayout(const std::string& dir,
                                                                   const std::string& tag) {
  return LoadOciIndex(dir, dir + "/index.json", tag);
}

absl::StatusOr<std::vector<std::string>> ImageStore::LoadArchive(const std::string& path,
                                                                 const std::string& tag) {
  std::string tmp = TempPath(absl::StrCat("load-", NewId(SecureRandom::Get())));
  RETURN_IF_ERROR(MkdirAll(tmp));
  struct Cleanup {
    std::string dir;
    ~Cleanup() { (void)RemoveAll(dir); }
  } cleanup{tmp};
  RETURN_IF_ERROR(ExtractTar(path, tmp, /*whiteouts=*/false));
  if (access((tmp + "/index.json").c_str(), F_OK) == 0) return LoadOciLayout(tmp, tag);
  ASSIGN_OR_RETURN(json manifest, ReadJsonFile(tmp + "/manifest.json"));
  std::vector<std::string> ids;
  for (const auto& m : manifest) {
    auto commit = [&](const std::string& rel) -> absl::StatusOr<std::string> {
      std::string file = absl::StrCat(tmp, "/", rel);
      ASSIGN_OR_RETURN(std::string digest, DigestFile(file));
      if (!HasBlob(digest)) {
        std::string t = TempPath(absl::StrCat("copy-", NewId(SecureRandom::Get())));
        RETURN_IF_ERROR(CopyFile(file, t));
        RETURN_IF_ERROR(CommitBlob(t, digest));
      }
      return digest;
    };
    ASSIGN_OR_RETURN(std::string config_digest, commit(m.value("Config", "")));
    std::vector<LayerDescriptor> layers;
    for (const auto& l : StringList(m, "Layers")) {
      ASSIGN_OR_RETURN(std::string d, commit(l));
      layers.push_back({d, "application/vnd.docker.image.rootfs.diff.tar"});
    }
    std::vector<std::string> tags = StringList(m, "RepoTags");
    if (tags.empty() && !tag.empty()) tags.push_back(tag);
    ASSIGN_OR_RETURN(std::string id, ImportImage(config_digest, layers, "", tags));
    ids.push_back(id);
  }
  return ids;
}

absl::StatusOr<std::string> ImageStore::ResolveId(const std::string& ref_or_id) const {
  std::string candidate = ref_or_id;
  if (!absl::StartsWith(candidate, "sha256:") && candidate.size() >= 12 &&
      candidate.find_first_not_of("0123456789abcdef") == std::string::npos) {
    // A bare id prefix, as `docker images` prints it.
    DIR* d = opendir((root_ + "/images").c_str());
    std::string found;
    while (d != nullptr && (true)) {
      dirent* e = readdir(d);
      if (e == nullptr) break;
      if (absl::StartsWith(e->d_name, candidate)) {
        found = absl::StrCat("sha256:", std::string(e->d_name).substr(0, 64));
      }
    }
    if (d != nullptr) closedir(d);
    if (!found.empty()) return found;
  }
  if (IsValidDigest(candidate) &&
      access(absl::StrCat(root_, "/images/", Hex(candidate), ".json").c_str(), F_OK) == 0) {
    return candidate;
  }
  ASSIGN_OR_RETURN(Reference ref, ParseReference(ref_or_id));
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(auto tags, ReadTags());
  auto it = tags.find(ref.String());
  if (it == tags.end()) {
    return absl::NotFoundError(
        absl::StrCat("no such image: ", ref.String(), " (pull or load it first)"));
  }
  return it->second;
}

absl::StatusOr<ImageInfo> ImageStore::Get(const std::string& ref_or_id) const {
  ASSIGN_OR_RETURN(std::string id, ResolveId(ref_or_id));
  ASSIGN_OR_RETURN(json record, ReadJsonFile(absl::StrCat(root_, "/images/", Hex(id), ".json")));
  ImageInfo info;
  info.id = id;
  info.manifest_digest = record.value("manifest_digest", "");
  info.layer_blobs = StringList(record, "layer_blobs");
  info.diff_ids = StringList(record, "diff_ids");
  info.size_bytes = record.value("size", int64_t{0});
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(auto tags, ReadTags());
  for (const auto& [t, i] : tags) {
    if (i == id) info.tags.push_back(t);
  }
  return info;
}

absl::StatusOr<std::vector<ImageInfo>> ImageStore::List() const {
  std::vector<ImageInfo> out;
  DIR* d = opendir((root_ + "/images").c_str());
  if (d == nullptr) return ErrnoToStatus(errno, "listing images");
  std::vector<std::string> ids;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (absl::EndsWith(n, ".json") && n.size() == 64 + 5)
      ids.push_back("sha256:" + n.substr(0, 64));
  }
  closedir(d);
  for (const auto& id : ids) {
    ASSIGN_OR_RETURN(ImageInfo info, Get(id));
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<ResolvedImage> ImageStore::ResolveForContainer(const std::string& ref_or_id) const {
  ASSIGN_OR_RETURN(std::string image_id, ResolveId(ref_or_id));
  {
    // An image's content never changes under its id: resolve each once.
    absl::MutexLock lock(&mu_);
    auto it = resolved_.find(image_id);
    if (it != resolved_.end()) return it->second;
  }
  ASSIGN_OR_RETURN(ImageInfo info, Get(image_id));
  ASSIGN_OR_RETURN(json config, ReadJsonFile(BlobPath(info.id)));
  ResolvedImage r;
  r.id = info.id;
  for (auto it = info.diff_ids.rbegin(); it != info.diff_ids.rend(); ++it) {
    r.lower_dirs.push_back(LayerDir(*it));
  }
  if (config.contains("config") && config["config"].is_object()) {
    const json& c = config["config"];
    r.env = StringList(c, "Env");
    r.entrypoint = StringList(c, "Entrypoint");
    r.cmd = StringList(c, "Cmd");
    r.working_dir = c.value("WorkingDir", "");
    r.user = c.value("User", "");
    if (c.contains("Healthcheck") && c["Healthcheck"].is_object()) {
      r.healthcheck = ParseHealthcheck(c["Healthcheck"]);
    }
  }
  absl::MutexLock lock(&mu_);
  resolved_[r.id] = r;
  return r;
}

absl::Status ImageStore::Remove(const std::string& ref_or_id) {
  ASSIGN_OR_RETURN(std::string id, ResolveId(ref_or_id));
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(auto tags, ReadTags());
  bool by_id = ref_or_id == id || absl::StartsWith(Hex(id), ref_or_id);
  if (!by_id) {
    ASSIGN_OR_RETURN(Reference ref, ParseReference(ref_or_id));
    tags.erase(ref.String());
  }
  // Digest references ("name@sha256:...") go with the image once its last tag is gone.
  bool still_tagged = false;
  for (const auto& [ref, image] : tags) {
    still_tagged |= image == id && ref.find('@') == std::string::npos;
  }
  if (by_id || !still_tagged) {
    still_tagged = false;
    for (auto it = tags.begin(); it != tags.end();) {
      it = it->second == id ? tags.erase(it) : std::next(it);
    }
  }
  RETURN_IF_ERROR(WriteTags(tags));
  if (!still_tagged) resolved_.erase(id);
  if (!still_tagged) unlink(absl::StrCat(root_, "/images/", Hex(id), ".json").c_str());
  return absl::OkStatus();
}

absl::StatusOr<int> ImageStore::GarbageCollect(const std::set<std::string>& in_use) {
  std::set<std::string> keep_layers = in_use;
  std::set<std::string> keep_blobs;
  ASSIGN_OR_RETURN(std::vector<ImageInfo> images, List());
  for (const auto& i : images) {
    for (const auto& d : i.diff_ids) keep_layers.insert(LayerDir(d));
    for (const auto& b : i.layer_blobs) keep_blobs.insert(Hex(b));
    keep_blobs.insert(Hex(i.id));
    if (!i.manifest_digest.empty()) keep_blobs.insert(Hex(i.manifest_digest));
  }
  int removed = 0;
  if (DIR* d = opendir((root_ + "/layers").c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::string dir = absl::StrCat(root_, "/layers/", e->d_name);
      if (keep_layers.count(dir) == 0) {
        RETURN_IF_ERROR(RemoveAll(dir));
        ++removed;
      }
    }
    closedir(d);
  }
  if (DIR* d = opendir((root_ + "/blobs/sha256").c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.' || keep_blobs.count(e->d_name) > 0) continue;
      unlink(absl::StrCat(root_, "/blobs/sha256/", e->d_name).c_str());
    }
    closedir(d);
  }
  return removed;
}

absl::StatusOr<std::string> SelectPlatformManifest(const std::string& index_json) {
  json index = json::parse(index_json, nullptr, false);
  if (index.is_discarded() || !index.contains("manifests")) {
    return absl::DataLossError("reading a manifest list: not a valid index");
  }
#if defined(__x86_64__)
  const std::string arch = "amd64";
#elif defined(__aarch64__)
  const std::string arch = "arm64";
#else
  const std::string arch = "unknown";
#endif
  for (const auto& m : index["manifests"]) {
    if (!m.contains("platform")) continue;
    const json& p = m["platform"];
    if (p.value("os", "") == "linux" && p.value("architecture", "") == arch) {
      return m.value("digest", "");
    }
  }
  return absl::NotFoundError(absl::StrCat("the manifest list has no image for linux/", arch));
}

}  // namespace swarm::agent::runtime

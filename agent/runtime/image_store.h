// The node's content-addressed image store. Blobs (manifests, configs, compressed layers)
// are kept by sha256 and verified on the way in; each layer is unpacked once, into a
// directory named by its diff id (the digest of the uncompressed tar, verified too), and
// shared by every image and container that uses it as an overlay lower directory. Whiteouts
// (.wh.name) become overlay whiteouts (0:0 character devices) and opaque directories
// (.wh..wh..opq) get trusted.overlay.opaque=y, so overlayfs applies them when layers stack.
// gzip, zstd and plain tar layers are read through libarchive.
//
// On disk (root = <state>/images):
//   blobs/sha256/<hex>          blobs; written to tmp/ first, renamed once verified
//   layers/<diff hex>/          unpacked layers; unpacked in tmp/, renamed when complete
//   images/<config hex>.json    one record per image: config, layers, manifest digest
//   tags.json                   reference ("docker.io/library/busybox:latest") -> image id
//   tmp/                        partial downloads and unpacks (a crash leaves them here;
//                               Open() clears unpacks, partial downloads are resumed)
//
// Owner: the node (one per state directory), shared by Runtime and the registry client.
// Thread-safety: thread-safe; mu_ guards tags.json and image records (read-modify-write).
// Unpacking the same layer twice at once is harmless: the second rename loses and is dropped.
#ifndef SWARM_AGENT_RUNTIME_IMAGE_STORE_H_
#define SWARM_AGENT_RUNTIME_IMAGE_STORE_H_

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/runtime/spec.h"

namespace swarm::agent::runtime {

struct ImageInfo {
  std::string id;               // the config digest, "sha256:..."
  std::string manifest_digest;  // what a registry calls it ("" for docker-save loads)
  std::vector<std::string> tags;
  std::vector<std::string> layer_blobs;  // compressed layer digests, bottom first
  std::vector<std::string> diff_ids;     // uncompressed digests, bottom first
  int64_t size_bytes = 0;                // sum of the layer blobs
};

// What a container takes from its image.
struct ResolvedImage {
  std::string id;
  std::vector<std::string> lower_dirs;  // uppermost first, as overlayfs wants them
  std::vector<std::string> env, entrypoint, cmd;
  std::string working_dir, user;
  HealthCheckSpec healthcheck;
};

struct LayerDescriptor {
  std::string digest;
  std::string media_type;
};

class ImageStore {
 public:
  static absl::StatusOr<std::unique_ptr<ImageStore>> Open(const std::string& root);

  // Loads every image of an OCI image layout directory (index.json, blobs/). Images without
  // a ref.name annotation get `tag` when given. Returns the image ids.
  absl::StatusOr<std::vector<std::string>> LoadOciLayout(const std::string& dir,
                                                         const std::string& tag = "");
  // Loads a tar archive: `docker save` output or an OCI layout as a tar.
  absl::StatusOr<std::vector<std::string>> LoadArchive(const std::string& path,
                                                       const std::string& tag = "");

  absl::StatusOr<ImageInfo> Get(const std::string& ref_or_id) const;
  absl::StatusOr<std::vector<ImageInfo>> List() const;
  absl::StatusOr<ResolvedImage> ResolveForContainer(const std::string& ref_or_id) const;
  // Removes a tag, or the image when given its id (and then all its tags).
  absl::Status Remove(const std::string& ref_or_id);
  // Deletes layers and blobs that no image refers to, except layer directories in
  // `in_use` (lower dirs of existing containers). Returns the number of layers removed.
  absl::StatusOr<int> GarbageCollect(const std::set<std::string>& in_use);

  // For the registry client.
  bool HasBlob(const std::string& digest) const;
  std::string BlobPath(const std::string& digest) const;
  std::string TempPath(const std::string& name) const;
  // Verifies the digest of `tmp_path` and moves it into blobs/.
  absl::Status CommitBlob(const std::string& tmp_path, const std::string& digest);
  // Records an image whose config and layers are in blobs/: unpacks its layers and tags it.
  absl::StatusOr<std::string> ImportImage(const std::string& config_digest,
                                          const std::vector<LayerDescriptor>& layers,
                                          const std::string& manifest_digest,
                                          const std::vector<std::string>& tags);
  // The unpacked directory of a layer (empty until unpacked).
  std::string LayerDir(const std::string& diff_id) const;
  const std::string& root() const { return root_; }

 private:
  explicit ImageStore(std::string root) : root_(std::move(root)) {}
  absl::Status UnpackLayer(const LayerDescriptor& layer, const std::string& diff_id);
  absl::StatusOr<std::string> ResolveId(const std::string& ref_or_id) const;
  absl::StatusOr<std::map<std::string, std::string>> ReadTags() const;
  absl::Status WriteTags(const std::map<std::string, std::string>& tags) const;
  absl::StatusOr<std::vector<std::string>> LoadOciIndex(const std::string& dir,
                                                        const std::string& index_path,
                                                        const std::string& tag);

  const std::string root_;
  mutable absl::Mutex mu_;  // serializes tags.json and image record updates
  // Images already resolved for containers, by id.
  mutable std::map<std::string, ResolvedImage> resolved_ ABSL_GUARDED_BY(mu_);
};

// From a manifest list / OCI index, the digest of the manifest for this machine (linux and
// this architecture).
absl::StatusOr<std::string> SelectPlatformManifest(const std::string& index_json);

// sha256 of a file as "sha256:<hex>".
absl::StatusOr<std::string> DigestFile(const std::string& path);
std::string DigestBytes(std::string_view data);

}  // namespace swarm::agent::runtime

#endif  // SWARM_AGENT_RUNTIME_IMAGE_STORE_H_

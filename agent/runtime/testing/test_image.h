// Test images made on the spot from Debian's busybox-static: a rootfs directory with
// /bin/busybox, a symlink per applet, /etc/passwd and /etc/group, and the probe program;
// and an OCI image layout of one or more such directories (gzip or zstd layers), which
// tests load into the image store, push with skopeo, or measure with the bench.
// Test-only; thread-compatible.
#ifndef SWARM_AGENT_RUNTIME_TESTING_TEST_IMAGE_H_
#define SWARM_AGENT_RUNTIME_TESTING_TEST_IMAGE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace swarm::agent::runtime::testing {

// Fills `dir` (created if missing). `probe` is copied to /bin/probe when not empty.
absl::Status BuildBusyboxRootfs(const std::string& dir, const std::string& probe = "");

struct LayoutOptions {
  std::string tag = "latest";        // the ref.name annotation
  std::string compression = "gzip";  // "gzip", "zstd" or "none"
  std::vector<std::string> cmd = {"sh"};
  std::vector<std::string> env = {
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  std::vector<std::string> healthcheck;  // Docker's Test form, e.g. {"CMD-SHELL", "true"}
  int64_t healthcheck_interval_ns = 0;
};

// Writes an OCI image layout at `layout` whose layers are the directories in `layer_dirs`
// (bottom first, tarred as they are, so ".wh." files become whiteouts). Returns the
// manifest digest.
absl::StatusOr<std::string> BuildOciLayout(const std::vector<std::string>& layer_dirs,
                                           const std::string& layout,
                                           const LayoutOptions& options = {});

// Where the probe binary is in a test's runfiles.
std::string ProbePath();

}  // namespace swarm::agent::runtime::testing

#endif  // SWARM_AGENT_RUNTIME_TESTING_TEST_IMAGE_H_

// Writes an OCI image layout of Debian's busybox-static (with the probe program) so the
// debugging CLI and the bench have an image on a node without network:
//   make_busybox_image DIR [TAG]      then   swarmd-runtime image load --layout DIR --tag busybox
#include <stdio.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "agent/runtime/fsutil.h"
#include "agent/runtime/testing/test_image.h"

int main(int argc, char** argv) {
  using namespace swarm::agent::runtime;
  if (argc < 2) {
    fprintf(stderr, "usage: make_busybox_image LAYOUT_DIR [TAG]\n");
    return 2;
  }
  std::string layout = argv[1];
  std::string rootfs = absl::StrCat(layout, ".rootfs.", getpid());
  std::string probe = testing::ProbePath();
  absl::Status s =
      testing::BuildBusyboxRootfs(rootfs, access(probe.c_str(), X_OK) == 0 ? probe : "");
  testing::LayoutOptions o;
  if (argc > 2) o.tag = argv[2];
  absl::StatusOr<std::string> digest =
      s.ok() ? testing::BuildOciLayout({rootfs}, layout, o) : absl::StatusOr<std::string>(s);
  (void)RemoveAll(rootfs);
  if (!digest.ok()) {
    fprintf(stderr, "make_busybox_image: %s\n", std::string(digest.status().message()).c_str());
    return 1;
  }
  printf("%s\n", digest->c_str());
  return 0;
}

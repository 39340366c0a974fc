// Reading and replacing small files (state records, keys, JSON) with errors that say which
// file and why.
#ifndef SWARM_COMMON_FILES_H_
#define SWARM_COMMON_FILES_H_

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace swarm {

absl::StatusOr<std::string> ReadFile(const std::string& path);

// Replaces path with data: written to a temporary file beside it, then renamed over it, so a
// crash leaves the old contents or the new ones, never a mix. With sync, the data is on disk
// before the rename (for records that must survive power loss).
absl::Status WriteFileAtomically(const std::string& path, std::string_view data, mode_t mode = 0644,
                                 bool sync = false);

}  // namespace swarm

#endif  // SWARM_COMMON_FILES_H_

#include "common/errno_status.h"

#include <cstring>

#include "absl/strings/ascii.h"

namespace swarm {

absl::Status ErrnoToStatus(int error_number, std::string_view what) {
  // absl::ErrnoToStatus keeps the code mapping (ENOENT -> NOT_FOUND, EACCES ->
  // PERMISSION_DENIED, ...); the message is ours so that it reads as one sentence.
  std::string reason = std::strerror(error_number);
  if (!reason.empty()) reason[0] = absl::ascii_tolower(reason[0]);
  return absl::Status(absl::ErrnoToStatus(error_number, "").code(),
                      std::string(what) + ": " + reason);
}

}  // namespace swarm

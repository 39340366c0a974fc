// Turns a failed system call into an absl::Status that says what we were doing and why it
// failed, for example "mounting proc at /x/proc: permission denied".
#ifndef SWARM_COMMON_ERRNO_STATUS_H_
#define SWARM_COMMON_ERRNO_STATUS_H_

#include <string_view>

#include "absl/status/status.h"

namespace swarm {

// `what` describes the operation in the progressive form ("opening /var/lib/swarmd/db").
absl::Status ErrnoToStatus(int error_number, std::string_view what);

}  // namespace swarm

#endif  // SWARM_COMMON_ERRNO_STATUS_H_

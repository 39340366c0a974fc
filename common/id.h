// Object IDs: 25 characters of lower-case base 36, the encoding of a random 128-bit number,
// like Docker swarm's (so IDs look familiar and prefixes are as selective).
#ifndef SWARM_COMMON_ID_H_
#define SWARM_COMMON_ID_H_

#include <string>
#include <string_view>

#include "common/random.h"

namespace swarm {

inline constexpr size_t kIdLength = 25;

// A new ID drawn from random (SecureRandom::Get() in production).
std::string NewId(Random& random);

// True when id has the form NewId produces.
bool IsValidId(std::string_view id);

}  // namespace swarm

#endif  // SWARM_COMMON_ID_H_

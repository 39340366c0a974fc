// Early-return helpers for absl::Status and absl::StatusOr, which the installed Abseil
// (20220623) does not ship yet. Errors are values everywhere in the project (STYLE.md 3).
#ifndef SWARM_COMMON_STATUS_MACROS_H_
#define SWARM_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns the status of `expr` from the enclosing function when it is not OK.
#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    ::absl::Status swarm_status_ = (expr);         \
    if (!swarm_status_.ok()) return swarm_status_; \
  } while (0)

#define SWARM_STATUS_CONCAT_INNER_(a, b) a##b
#define SWARM_STATUS_CONCAT_(a, b) SWARM_STATUS_CONCAT_INNER_(a, b)

// `ASSIGN_OR_RETURN(auto x, F());` declares x from an OK StatusOr, or returns its status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  SWARM_ASSIGN_OR_RETURN_IMPL_(SWARM_STATUS_CONCAT_(swarm_statusor_, __LINE__), lhs, expr)

#define SWARM_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)  \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // SWARM_COMMON_STATUS_MACROS_H_

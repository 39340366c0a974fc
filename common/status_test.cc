#include <cerrno>

#include "common/errno_status.h"
#include "common/status_macros.h"
#include "gtest/gtest.h"

namespace swarm {
namespace {

absl::StatusOr<int> Half(int n) {
  if (n % 2 != 0) return absl::InvalidArgumentError("odd number");
  return n / 2;
}

absl::StatusOr<int> Quarter(int n) {
  ASSIGN_OR_RETURN(int half, Half(n));
  ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

absl::Status CheckEven(int n) {
  RETURN_IF_ERROR(Half(n).status());
  return absl::OkStatus();
}

TEST(StatusMacros, AssignOrReturn_PassesValuesAndErrors) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status(), absl::InvalidArgumentError("odd number"));
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(3).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ErrnoToStatus, SaysWhatWeWereDoingAndWhy) {
  absl::Status s = ErrnoToStatus(EACCES, "mounting proc at /x/proc");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(), "mounting proc at /x/proc: permission denied");
  EXPECT_EQ(ErrnoToStatus(ENOENT, "opening /nope").code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace swarm

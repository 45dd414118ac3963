// The outcome vocabulary (pyhost/outcome.h): names, wire types, exit codes.
#include "pyhost/outcome.h"

#include <set>
#include <string>

#include <gtest/gtest.h>

namespace pyhost {
namespace {

TEST(OutcomeTest, EveryOutcomeHasItsOwnName) {
  std::set<std::string> names;
  for (int i = 0; i <= static_cast<int>(Outcome::kHostError); ++i) {
    names.insert(std::string(OutcomeName(static_cast<Outcome>(i))));
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(Outcome::kHostError) + 1);
  EXPECT_EQ(OutcomeName(Outcome::kOk), "ok");
  EXPECT_EQ(OutcomeName(Outcome::kHostError), "host_error");
}

TEST(OutcomeTest, StatusesMapToOneWireTypeEach) {
  EXPECT_EQ(ErrorTypeForStatus(absl::InvalidArgumentError("x")), error_type::kBadRequest);
  EXPECT_EQ(ErrorTypeForStatus(absl::InvalidArgumentError("x"), error_type::kToolLoad),
            error_type::kToolLoad);
  EXPECT_EQ(ErrorTypeForStatus(absl::NotFoundError("x")), error_type::kNotFound);
  EXPECT_EQ(ErrorTypeForStatus(absl::UnimplementedError("x")), error_type::kNotImplemented);
  EXPECT_EQ(ErrorTypeForStatus(absl::CancelledError("x")), error_type::kInterrupted);
  EXPECT_EQ(ErrorTypeForStatus(absl::InternalError("x")), error_type::kHost);
  EXPECT_EQ(ErrorTypeForStatus(absl::UnavailableError("x")), error_type::kHost);
  EXPECT_EQ(ErrorTypeForStatus(absl::ResourceExhaustedError("x")), error_type::kHost);
}

TEST(OutcomeTest, AHostFailureIsNotAUsageError) {
  EXPECT_EQ(ExitCodeForStatus(absl::OkStatus()), kExitOk);
  EXPECT_EQ(ExitCodeForStatus(absl::InvalidArgumentError("x")), kExitUsage);
  EXPECT_EQ(ExitCodeForStatus(absl::NotFoundError("x")), kExitUsage);
  EXPECT_EQ(ExitCodeForStatus(absl::UnimplementedError("x")), kExitUsage);
  EXPECT_EQ(ExitCodeForStatus(absl::InternalError("x")), kExitHostError);
  EXPECT_EQ(ExitCodeForStatus(absl::UnavailableError("x")), kExitHostError);
  EXPECT_EQ(ExitCodeForStatus(absl::CancelledError("x")), kExitCodeFailed);
  EXPECT_EQ(ExitCodeForOutcome(Outcome::kOk), kExitOk);
  EXPECT_EQ(ExitCodeForOutcome(Outcome::kCodeError), kExitCodeFailed);
  EXPECT_EQ(ExitCodeForOutcome(Outcome::kTimeout), kExitCodeFailed);
  EXPECT_EQ(ExitCodeForOutcome(Outcome::kHostError), kExitHostError);
}

}  // namespace
}  // namespace pyhost

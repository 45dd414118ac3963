// Limits through the public API: a policy's limits are ceilings a request may lower,
// never raise; limits no isolation mode enforces yet are refused, not ignored.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "pyhost/host.h"

namespace pyhost {
namespace {

using ::testing::HasSubstr;

class LimitsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    HostOptions options;
    options.pool_size = 1;
    options.prewarm_modules.clear();
    absl::StatusOr<std::unique_ptr<Host>> host = Host::Create(options);
    ASSERT_TRUE(host.ok()) << host.status();
    host_ = host->release();
  }
  static void TearDownTestSuite() {
    delete host_;
    host_ = nullptr;
  }
  static Host* host_;
};
Host* LimitsTest::host_ = nullptr;

TEST_F(LimitsTest, ARequestAskingMoreThanItsPolicysCeilingIsRefusedNamingBoth) {
  ExecRequest request;
  request.code = "result = 1";
  request.policy = *NamedPolicy("strict");
  request.policy->name = "capped";
  request.policy->limits.timeout_ms = 1000;
  request.limits.timeout_ms = 5000;
  absl::StatusOr<ExecResult> run = host_->Execute(request);
  ASSERT_TRUE(absl::IsInvalidArgument(run.status())) << run.status();
  EXPECT_THAT(std::string(run.status().message()), HasSubstr("timeout_ms 5000"));
  EXPECT_THAT(std::string(run.status().message()), HasSubstr("'capped'"));
  EXPECT_THAT(std::string(run.status().message()), HasSubstr("1000"));
}

TEST_F(LimitsTest, LimitsNoModeEnforcesYetAreRefusedNotIgnored) {
  ExecRequest request;
  request.code = "result = 1";
  request.limits.memory_mb = 64;
  absl::StatusOr<ExecResult> run = host_->Execute(request);
  ASSERT_TRUE(absl::IsUnimplemented(run.status())) << run.status();
  EXPECT_THAT(std::string(run.status().message()), HasSubstr("memory_mb"));
}

TEST_F(LimitsTest, AHostWhoseDefaultPolicyHasLimitsItCannotEnforceDoesNotStart) {
  HostOptions options;
  options.pool_size = 1;
  options.default_policy.limits.cpu_ms = 100;
  absl::StatusOr<std::unique_ptr<Host>> host = Host::Create(options);
  EXPECT_TRUE(absl::IsUnimplemented(host.status())) << host.status();
}

}  // namespace
}  // namespace pyhost

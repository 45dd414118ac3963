// A test fixture with one Host for the whole suite, and Run(code, policy) through it,
// for the suites that only need executions (encoding_test, conversion_test,
// shared_state_test, strict_programs_test, limit_faults_test).
#ifndef PYHOST_TESTS_SECURITY_SHARED_HOST_H_
#define PYHOST_TESTS_SECURITY_SHARED_HOST_H_

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "pyhost/host.h"

namespace pyhost {

class SharedHostTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    HostOptions options;
    options.pool_size = 2;
    absl::StatusOr<std::unique_ptr<Host>> host = Host::Create(options);
    ASSERT_TRUE(host.ok()) << host.status();
    host_ = host->release();
  }
  static void TearDownTestSuite() {
    delete host_;
    host_ = nullptr;
  }

  static ExecResult Run(const std::string& code, const std::string& policy = "strict") {
    return Run(code, *LoadPolicy(policy));
  }
  static ExecResult Run(const std::string& code, const Policy& policy) {
    ExecRequest request;
    request.code = code;
    request.policy = policy;
    absl::StatusOr<ExecResult> result = host_->Execute(request);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *std::move(result) : ExecResult{};
  }

  static inline Host* host_ = nullptr;
};

}  // namespace pyhost

#endif  // PYHOST_TESTS_SECURITY_SHARED_HOST_H_

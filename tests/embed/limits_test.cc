// Limits through the public API: where the limits in force come from (the request,
// the environment, the defaults; a policy's limits are ceilings a request may lower,
// never raise), what the answers say of them, and tools' limits.
#include <stdlib.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
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

ExecResult RunOn(Host& host, ExecRequest request) {
  absl::StatusOr<ExecResult> run = host.Execute(request);
  EXPECT_TRUE(run.ok()) << run.status();
  return run.ok() ? *run : ExecResult{};
}

ExecRequest Code(const char* code) {
  ExecRequest request;
  request.code = code;
  return request;
}

TEST_F(LimitsTest, TheDefaultsAreThirtySecondsAnd256MbAndCpuFollowsTheWallLimit) {
  ExecResult result = RunOn(*host_, Code("result = 1"));
  EXPECT_EQ(result.stats.limits.timeout_ms, kDefaultTimeoutMs);
  EXPECT_EQ(result.stats.limits.cpu_ms, kDefaultTimeoutMs);
  EXPECT_EQ(result.stats.limits.memory_mb, kDefaultMemoryMb);
  EXPECT_EQ(kDefaultTimeoutMs, 30000);
  EXPECT_EQ(kDefaultMemoryMb, 256);
  EXPECT_TRUE(result.stats.limit_hit.empty());
  EXPECT_GT(result.stats.peak_memory_bytes, 0);
  EXPECT_EQ(result.ToJson()["stats"]["limits"],
            (nlohmann::json{{"timeout_ms", 30000}, {"cpu_ms", 30000}, {"memory_mb", 256}}));
}

TEST_F(LimitsTest, ARequestLowersItsLimitsAndTheCpuLimitFollowsItsWallLimit) {
  ExecRequest request = Code("result = 1");
  request.limits.timeout_ms = 700;
  request.limits.memory_mb = 32;
  ExecResult result = RunOn(*host_, request);
  EXPECT_EQ(result.stats.limits.timeout_ms, 700);
  EXPECT_EQ(result.stats.limits.cpu_ms, 700);
  EXPECT_EQ(result.stats.limits.memory_mb, 32);
}

TEST_F(LimitsTest, APolicysCeilingLowersTheDefault) {
  ExecRequest request = Code("result = 1");
  request.policy = *NamedPolicy("strict");
  request.policy->limits.timeout_ms = 1000;
  request.policy->limits.memory_mb = 100;
  ExecResult result = RunOn(*host_, request);
  EXPECT_EQ(result.stats.limits.timeout_ms, 1000);
  EXPECT_EQ(result.stats.limits.cpu_ms, 1000);
  EXPECT_EQ(result.stats.limits.memory_mb, 100);
}

TEST_F(LimitsTest, EveryProfileHasCeilingsAndStrictsAreFiveMinutesAndOneGigabyte) {
  for (const char* name : {"yolo", "balanced", "data_science", "strict", "enterprise"}) {
    Limits ceilings = NamedPolicy(name)->limits;
    EXPECT_TRUE(ceilings.timeout_ms && ceilings.cpu_ms && ceilings.memory_mb) << name;
    EXPECT_GE(*ceilings.timeout_ms, kDefaultTimeoutMs) << name;
    EXPECT_GE(*ceilings.memory_mb, kDefaultMemoryMb) << name;
  }
  Limits strict = NamedPolicy("strict")->limits;
  EXPECT_EQ(strict.timeout_ms, 5 * 60 * 1000);
  EXPECT_EQ(strict.memory_mb, 1024);
  ExecRequest request = Code("result = 1");
  request.limits.memory_mb = 2048;
  absl::StatusOr<ExecResult> run = host_->Execute(request);
  ASSERT_TRUE(absl::IsInvalidArgument(run.status())) << run.status();
  EXPECT_THAT(std::string(run.status().message()), HasSubstr("memory_mb 2048"));
  EXPECT_THAT(std::string(run.status().message()), HasSubstr("'strict'"));
  EXPECT_THAT(std::string(run.status().message()), HasSubstr("1024"));
}

TEST_F(LimitsTest, NonPositiveLimitsAreRefusedNamingTheField) {
  for (int64_t value : {int64_t{0}, int64_t{-5}}) {
    ExecRequest request = Code("result = 1");
    request.limits.cpu_ms = value;
    absl::StatusOr<ExecResult> run = host_->Execute(request);
    ASSERT_TRUE(absl::IsInvalidArgument(run.status())) << run.status();
    EXPECT_THAT(std::string(run.status().message()), HasSubstr("cpu_ms"));
  }
}

// Each test below makes a Host of its own: the environment is read at Host::Create.
class EnvironmentLimitsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    unsetenv("PYHOST_TIMEOUT_MS");
    unsetenv("PYHOST_MAX_MEMORY_MB");
  }
  static absl::StatusOr<std::unique_ptr<Host>> MakeHost() {
    HostOptions options;
    options.pool_size = 1;
    options.prewarm_modules.clear();
    return Host::Create(options);
  }
};

TEST_F(EnvironmentLimitsTest, TheEnvironmentSetsTheDefaultsWithinTheCeilings) {
  setenv("PYHOST_TIMEOUT_MS", "1234", 1);
  setenv("PYHOST_MAX_MEMORY_MB", "4096", 1);  // above strict's ceiling: lowered to it
  absl::StatusOr<std::unique_ptr<Host>> host = MakeHost();
  ASSERT_TRUE(host.ok()) << host.status();
  ExecResult result = RunOn(**host, Code("result = 1"));
  EXPECT_EQ(result.stats.limits.timeout_ms, 1234);
  EXPECT_EQ(result.stats.limits.cpu_ms, 1234);
  EXPECT_EQ(result.stats.limits.memory_mb, 1024);
}

TEST_F(EnvironmentLimitsTest, ABadValueStopsTheHostNamingTheVariable) {
  for (const char* variable : {"PYHOST_TIMEOUT_MS", "PYHOST_MAX_MEMORY_MB"}) {
    for (const char* value : {"soon", "0", "-3", "12ms"}) {
      setenv(variable, value, 1);
      absl::StatusOr<std::unique_ptr<Host>> host = MakeHost();
      ASSERT_TRUE(absl::IsInvalidArgument(host.status())) << variable << "=" << value;
      EXPECT_THAT(std::string(host.status().message()), HasSubstr(variable));
      EXPECT_THAT(std::string(host.status().message()), HasSubstr(value));
      unsetenv(variable);
    }
  }
}

TEST_F(LimitsTest, AToolsLimitsHoldForEachCallAndAreReported) {
  for (Isolation isolation : {Isolation::kFresh, Isolation::kResident}) {
    ToolOptions options;
    options.isolation = isolation;
    options.limits.timeout_ms = 300;
    std::string name = absl::StrCat("spin_", IsolationName(isolation));
    ASSERT_TRUE(host_
                    ->RegisterTool(name, R"(
def run(args):
    if args.get("spin"):
        while True:
            pass
    return "fine"
)",
                                   options)
                    .ok());
    absl::StatusOr<ToolCallResult> spun = host_->CallTool(name, {{"spin", true}});
    ASSERT_TRUE(spun.ok()) << spun.status();
    EXPECT_EQ(spun->outcome, Outcome::kTimeout);
    EXPECT_EQ(spun->envelope["ok"], false);
    EXPECT_EQ(spun->envelope["error"]["type"], "Timeout");
    EXPECT_THAT(spun->envelope["error"]["message"].get<std::string>(), HasSubstr("300 ms"));
    EXPECT_EQ(spun->stats.limit_hit, "timeout_ms");
    EXPECT_EQ(spun->stats.limits.timeout_ms, 300);
    absl::StatusOr<ToolCallResult> fine = host_->CallTool(name, nlohmann::json::object());
    ASSERT_TRUE(fine.ok()) << fine.status();
    EXPECT_EQ(fine->envelope, (nlohmann::json{{"ok", true}, {"data", "fine"}}));
    ASSERT_TRUE(host_->UnregisterTool(name).ok());
  }
  ToolOptions greedy;
  greedy.limits.memory_mb = 1 << 20;
  absl::Status refused = host_->RegisterTool("greedy", "def run(args): pass", greedy);
  EXPECT_TRUE(absl::IsInvalidArgument(refused)) << refused;
  EXPECT_THAT(std::string(refused.message()), HasSubstr("memory_mb"));
}

}  // namespace
}  // namespace pyhost

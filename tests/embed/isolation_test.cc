// The isolation seam: the one request skeleton (embed/isolation.h) and what every
// mode shares: the limits it refuses, the process refusal, a context that cannot be
// entered as an answer, the stats every answer carries.
#include "embed/isolation.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/cleanup/cleanup.h"
#include "embed/executions.h"

namespace pyhost {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

class IsolationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    PoolOptions options;
    options.size = 2;
    absl::StatusOr<std::unique_ptr<InterpreterPool>> pool = InterpreterPool::Start(options);
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = pool->release();
  }
  static void TearDownTestSuite() {
    delete pool_;
    pool_ = nullptr;
  }

  ExecutionSettings Settings() const {
    ExecutionSettings settings;
    settings.policy = &policy_;
    settings.max_output_bytes = 1 << 16;
    return settings;
  }

  static InterpreterPool* pool_;
  const Policy policy_ = *NamedPolicy("strict");
  std::shared_ptr<WorkDirStock> dirs_ = std::make_shared<WorkDirStock>(DefaultWorkRoot(), 1);
  CancellationSet running_;
  Isolations isolations_{*pool_, dirs_, running_};
};
InterpreterPool* IsolationTest::pool_ = nullptr;

TEST_F(IsolationTest, EveryModeEnforcesEveryLimitAndRefusesNonPositiveOnes) {
  for (Isolation isolation : {Isolation::kFresh, Isolation::kResident, Isolation::kProcess}) {
    IsolationMode& mode = isolations_.Shared(isolation, policy_);
    EXPECT_TRUE(CheckEnforced(mode, Limits{}).ok());
    EXPECT_TRUE(CheckEnforced(mode, Limits{100, 100, 64}).ok());
    Limits negative;
    negative.memory_mb = -1;
    absl::Status refused = CheckEnforced(mode, negative);
    EXPECT_TRUE(absl::IsInvalidArgument(refused)) << refused;
    EXPECT_THAT(std::string(refused.message()), HasSubstr("memory_mb"));
  }
}

TEST_F(IsolationTest, RunRefusesBeforeAnythingRuns) {
  ExecRequest request;
  request.code = "result = 1";
  ExecResult result;
  SnippetExecution snippet(request, result);
  ExecutionSettings settings = Settings();
  settings.limits.cpu_ms = 0;
  absl::Status ran =
      isolations_.Run(isolations_.Shared(Isolation::kFresh, policy_), settings, snippet);
  EXPECT_TRUE(absl::IsInvalidArgument(ran)) << ran;
  EXPECT_EQ(result.stats.interpreter_id, -1);  // no interpreter was taken
}

TEST_F(IsolationTest, EveryModeStopsCodeAtItsLimitsAndSaysWhich) {
  const struct {
    const char* code;
    Limits limits;
    Outcome outcome;
    const char* type;
    const char* limit;
  } cases[] = {
      {"while True: pass", Limits{200, std::nullopt, std::nullopt}, Outcome::kTimeout, "Timeout",
       "timeout_ms"},
      {"import time\ntime.sleep(60)", Limits{200, std::nullopt, std::nullopt}, Outcome::kTimeout,
       "Timeout", "timeout_ms"},
      {"while True: pass", Limits{std::nullopt, 200, std::nullopt}, Outcome::kCpuLimit,
       "CpuLimitExceeded", "cpu_ms"},
      {"x = bytearray(3 * 1024**3)", Limits{std::nullopt, std::nullopt, 64}, Outcome::kMemoryLimit,
       "MemoryLimitExceeded", "memory_mb"},
  };
  for (Isolation isolation : {Isolation::kFresh, Isolation::kResident}) {
    for (const auto& c : cases) {
      ExecRequest request;
      request.code = c.code;
      ExecResult result;
      SnippetExecution snippet(request, result);
      ExecutionSettings settings = Settings();
      settings.limits = c.limits;
      ASSERT_TRUE(isolations_.Run(isolations_.Shared(isolation, policy_), settings, snippet).ok());
      EXPECT_EQ(result.outcome, c.outcome) << c.code << " " << result.ToJson().dump();
      ASSERT_TRUE(result.error.has_value()) << c.code;
      EXPECT_EQ(result.error->type, c.type) << c.code;
      EXPECT_THAT(result.error->message, HasSubstr(c.limit)) << c.code;
      EXPECT_GT(result.error->line, 0) << c.code;
      EXPECT_EQ(result.stats.limit_hit, c.limit) << c.code;
      EXPECT_LT(result.stats.wall_us, 2.2e6) << c.code;  // generous: noisy machines
      // The interpreter answers the next execution.
      ExecRequest next;
      next.code = "result = 41 + 1";
      ExecResult answer;
      SnippetExecution again(next, answer);
      ASSERT_TRUE(isolations_.Run(isolations_.Shared(isolation, policy_), Settings(), again).ok());
      EXPECT_EQ(answer.result, 42) << answer.ToJson().dump();
    }
  }
}

TEST_F(IsolationTest, PoliciesWithPackagesOrProcessIsolationAreRunInProcesses) {
  EXPECT_EQ(isolations_.Shared(Isolation::kProcess, policy_).isolation(), Isolation::kProcess);
  Policy packages = policy_;
  packages.packages = {"/usr/lib/python3/dist-packages"};
  Policy required = policy_;
  required.process_isolation = true;
  for (const Policy* policy : {&packages, &required}) {
    for (Isolation asked : {Isolation::kFresh, Isolation::kResident}) {
      EXPECT_EQ(isolations_.Shared(asked, *policy).isolation(), Isolation::kProcess);
    }
  }
  EXPECT_EQ(isolations_.Shared(Isolation::kFresh, *NamedPolicy("data_science")).isolation(),
            Isolation::kProcess);
}

TEST_F(IsolationTest, AnswersCarryTheModeThePolicyTheInterpreterAndTheTimes) {
  for (Isolation isolation : {Isolation::kFresh, Isolation::kResident}) {
    ExecRequest request;
    request.code = "result = sum(args['xs'])";
    request.args = {{"xs", {1, 2, 3}}};
    ExecResult result;
    SnippetExecution snippet(request, result);
    ASSERT_TRUE(isolations_.Run(isolations_.Shared(isolation, policy_), Settings(), snippet).ok());
    EXPECT_EQ(result.outcome, Outcome::kOk);
    EXPECT_TRUE(result.ok);
    EXPECT_EQ(result.result, 6);
    EXPECT_EQ(result.stats.isolation, isolation);
    EXPECT_EQ(result.stats.policy, "strict");
    EXPECT_GE(result.stats.interpreter_id, 0);
    EXPECT_GT(result.stats.wall_us, 0);
  }
}

TEST_F(IsolationTest, ResidentSnippetsShareOneInterpreterFreshOnesNever) {
  auto interpreter_of = [&](Isolation isolation) {
    ExecRequest request;
    request.code = "pass";
    ExecResult result;
    SnippetExecution snippet(request, result);
    EXPECT_TRUE(isolations_.Run(isolations_.Shared(isolation, policy_), Settings(), snippet).ok());
    return result.stats.interpreter_id;
  };
  EXPECT_EQ(interpreter_of(Isolation::kResident), interpreter_of(Isolation::kResident));
  EXPECT_NE(interpreter_of(Isolation::kFresh), interpreter_of(Isolation::kFresh));
}

// The context cannot be entered when no execution directory can be made (a file
// stands where the stock's root was): that
// is pyhost's failure, and the answer of every kind of execution says so.
TEST_F(IsolationTest, AContextThatCannotBeEnteredIsAHostErrorAnswer) {
  std::string root = DefaultWorkRoot() + "-gone-" + std::to_string(getpid());
  auto gone = std::make_shared<WorkDirStock>(root, /*spares=*/0);
  std::filesystem::remove_all(gone->root());
  FILE* blocker = fopen(gone->root().c_str(), "w");  // a file where the root was
  ASSERT_NE(blocker, nullptr);
  fclose(blocker);
  absl::Cleanup unblock = [&] { std::filesystem::remove(gone->root()); };
  Isolations isolations(*pool_, gone, running_);
  IsolationMode& fresh = isolations.Shared(Isolation::kFresh, policy_);

  ExecRequest request;
  request.code = "result = 1";
  ExecResult result;
  SnippetExecution snippet(request, result);
  ASSERT_TRUE(isolations.Run(fresh, Settings(), snippet).ok());
  EXPECT_EQ(result.outcome, Outcome::kHostError);
  EXPECT_FALSE(result.ok);
  ASSERT_TRUE(result.error.has_value());
  EXPECT_EQ(result.error->type, error_type::kHost);

  CompiledTool tool;
  {
    ToolLoadExecution load("echo", "def run(args):\n    return args\n");
    // Compiled where directories can be made: the host's own isolations.
    ASSERT_TRUE(
        isolations_.Run(isolations_.Shared(Isolation::kFresh, policy_), Settings(), load).ok());
    ASSERT_TRUE(load.status().ok()) << load.status();
    tool = load.compiled();
  }
  ToolCallResult call;
  const json args = json::object();  // outlives the execution, which refers to it
  ToolCallExecution calling(tool, nullptr, args, call);
  ASSERT_TRUE(isolations.Run(fresh, Settings(), calling).ok());
  EXPECT_EQ(call.outcome, Outcome::kHostError);
  EXPECT_EQ(call.envelope["ok"], false);
  EXPECT_EQ(call.envelope["error"]["type"], std::string(error_type::kHost));

  // A tool's load gives the context's own Status: the registration's answer.
  ToolLoadExecution load("echo", "def run(args):\n    return args\n");
  ASSERT_TRUE(isolations.Run(fresh, Settings(), load).ok());
  EXPECT_FALSE(load.status().ok());
  EXPECT_FALSE(absl::IsInvalidArgument(load.status())) << load.status();
}

// The code's files in OUTPUT_DIR are the caller's only when there is a caller to hand
// them to: a tool's load keeps none (its directory is removed like any other).
TEST_F(IsolationTest, ALoadKeepsNoOutputs) {
  ToolLoadExecution load("writer",
                         "import os\nopen(os.path.join(OUTPUT_DIR, 'f.txt'), 'w').write('x')\n"
                         "def run(args):\n    return 1\n");
  ASSERT_TRUE(
      isolations_.Run(isolations_.Shared(Isolation::kFresh, policy_), Settings(), load).ok());
  ASSERT_TRUE(load.status().ok()) << load.status();
  EXPECT_TRUE(load.answer().output.files.empty());
  EXPECT_TRUE(load.answer().output.dir.empty());
}

TEST_F(IsolationTest, OutcomesComeFromWhereTheFailureArose) {
  struct Case {
    const char* code;
    Outcome outcome;
    const char* type;
  } cases[] = {{"result = 1", Outcome::kOk, ""},
               {"raise KeyError('k')", Outcome::kCodeError, "KeyError"},
               {"result = {1, 2}", Outcome::kCodeError, "ResultNotSerializable"},
               // Raised by the code itself, not by an interruption: the code's error.
               {"raise KeyboardInterrupt", Outcome::kCodeError, "KeyboardInterrupt"}};
  for (const Case& c : cases) {
    ExecRequest request;
    request.code = c.code;
    ExecResult result;
    SnippetExecution snippet(request, result);
    ASSERT_TRUE(
        isolations_.Run(isolations_.Shared(Isolation::kFresh, policy_), Settings(), snippet).ok());
    EXPECT_EQ(result.outcome, c.outcome) << c.code;
    EXPECT_EQ(result.ok, c.outcome == Outcome::kOk) << c.code;
    if (result.error) {
      EXPECT_EQ(result.error->type, c.type) << c.code;
    }
    EXPECT_EQ(result.ToJson()["outcome"], std::string(OutcomeName(c.outcome))) << c.code;
  }
}

}  // namespace
}  // namespace pyhost

#include "embed/tool_registry.h"

#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "policy/limits.h"

namespace pyhost {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

constexpr char kWordCount[] = R"(
def run(args):
    text = args.get("text", "")
    words = text.strip().split()
    return {"ok": True, "data": {"wordCount": len(words), "words": words}}
)";

class ToolRegistryTest : public ::testing::TestWithParam<Isolation> {
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
  void SetUp() override {
    isolations_ = std::make_unique<Isolations>(*pool_, dirs_, running_);
    tools_ =
        std::make_unique<ToolRegistry>(*isolations_, 1 << 16, *NamedPolicy("strict"),
                                       *DefaultLimitsFromEnvironment(), std::vector<std::string>{});
  }
  void TearDown() override {
    tools_.reset();
    isolations_.reset();
  }

  absl::Status Register(const std::string& name, const std::string& source) {
    ToolOptions options;
    options.isolation = GetParam();
    return tools_->Register(name, source, options);
  }
  json Call(const std::string& name, const json& args) {
    absl::StatusOr<ToolCallResult> result = tools_->Call(name, args);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? result->envelope : json();
  }

  static InterpreterPool* pool_;
  std::shared_ptr<WorkDirStock> dirs_ = std::make_shared<WorkDirStock>(DefaultWorkRoot(), 2);
  CancellationSet running_;
  std::unique_ptr<Isolations> isolations_;
  std::unique_ptr<ToolRegistry> tools_;
};
InterpreterPool* ToolRegistryTest::pool_ = nullptr;

TEST_P(ToolRegistryTest, DictWithOkPassesThrough) {
  ASSERT_TRUE(Register("wc", kWordCount).ok());
  EXPECT_EQ(Call("wc", {{"text", "a b  c"}}),
            json({{"ok", true}, {"data", {{"wordCount", 3}, {"words", {"a", "b", "c"}}}}}));
  ASSERT_TRUE(Register("fail",
                       "def run(args):\n    return {'ok': False, 'error': "
                       "{'message': 'Missing parameter: text'}}\n")
                  .ok());
  EXPECT_EQ(Call("fail", json::object()),
            json({{"ok", false}, {"error", {{"message", "Missing parameter: text"}}}}));
}

TEST_P(ToolRegistryTest, AnythingElseIsWrappedAsData) {
  ASSERT_TRUE(Register("s", "def run(args):\n    return 'some value'\n").ok());
  EXPECT_EQ(Call("s", json::object()), json({{"ok", true}, {"data", "some value"}}));
  ASSERT_TRUE(Register("d", "def run(args):\n    return {'sum': sum(args['items'])}\n").ok());
  EXPECT_EQ(Call("d", {{"items", {1, 2}}}), json({{"ok", true}, {"data", {{"sum", 3}}}}));
  ASSERT_TRUE(Register("n", "def run(args):\n    pass\n").ok());
  EXPECT_EQ(Call("n", json::object()), json({{"ok", true}, {"data", nullptr}}));
}

TEST_P(ToolRegistryTest, ExceptionBecomesErrorEnvelope) {
  ASSERT_TRUE(
      Register("div", "def run(args):\n    a = args['a']\n    return a / args['b']\n").ok());
  json envelope = Call("div", {{"a", 1}, {"b", 0}});
  EXPECT_EQ(envelope["ok"], json(false));
  EXPECT_EQ(envelope["error"]["type"], json("ZeroDivisionError"));
  EXPECT_EQ(envelope["error"]["message"], json("division by zero"));
  EXPECT_EQ(envelope["error"]["line"], json(3));
  EXPECT_THAT(envelope["error"]["traceback"].get<std::string>(),
              HasSubstr("File \"<tool:div>\", line 3, in run"));
  json missing = Call("div", {{"a", 1}});
  EXPECT_EQ(missing["error"]["type"], json("KeyError"));
  EXPECT_THAT(missing["error"]["hint"].get<std::string>(), HasSubstr("args has no key 'b'"));
}

TEST_P(ToolRegistryTest, NonSerializableReturnIsAnErrorEnvelope) {
  ASSERT_TRUE(Register("set", "def run(args):\n    return {1, 2}\n").ok());
  json envelope = Call("set", json::object());
  EXPECT_EQ(envelope["ok"], json(false));
  EXPECT_EQ(envelope["error"]["type"], json("ResultNotSerializable"));
}

TEST_P(ToolRegistryTest, SyntaxErrorIsReportedAtRegistrationWithItsLine) {
  absl::Status status = Register("bad", "def run(args):\n    return (1,\n\nx = 2\n");
  ASSERT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_THAT(std::string(status.message()), HasSubstr("SyntaxError at line 2"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("tool 'bad'"));
}

TEST_P(ToolRegistryTest, MissingRunOrFailingModuleBodyIsReportedAtRegistration) {
  absl::Status no_run = Register("norun", "def main(args):\n    return 1\n");
  ASSERT_TRUE(absl::IsInvalidArgument(no_run));
  EXPECT_THAT(std::string(no_run.message()), HasSubstr("defines no run(args)"));
  absl::Status not_callable = Register("notcallable", "run = 3\n");
  EXPECT_THAT(std::string(not_callable.message()), HasSubstr("defines no run(args)"));
  absl::Status raises = Register("raises", "1 / 0\ndef run(args): pass\n");
  ASSERT_TRUE(absl::IsInvalidArgument(raises));
  EXPECT_THAT(std::string(raises.message()), HasSubstr("ZeroDivisionError at line 1"));
  absl::Status denied = Register("denied", "import socket\ndef run(args): pass\n");
  ASSERT_TRUE(absl::IsInvalidArgument(denied));  // the module body runs under the policy
  EXPECT_THAT(std::string(denied.message()), HasSubstr("not allowed by policy 'strict'"));
}

TEST_P(ToolRegistryTest, UnknownToolIsNotFoundNamingRegisteredOnes) {
  ASSERT_TRUE(Register("alpha", kWordCount).ok());
  absl::StatusOr<ToolCallResult> result = tools_->Call("beta", json::object());
  ASSERT_TRUE(absl::IsNotFound(result.status()));
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("registered: alpha"));
}

TEST_P(ToolRegistryTest, InvalidNamesAreRejected) {
  for (const char* name : {"", "has space", "semi;colon", "../x"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(Register(name, kWordCount))) << name;
  }
  EXPECT_TRUE(absl::IsInvalidArgument(Register(std::string(65, 'a'), kWordCount)));
}

TEST_P(ToolRegistryTest, ReRegisteringReplacesAndUnregisterRemoves) {
  ASSERT_TRUE(Register("v", "def run(args):\n    return 1\n").ok());
  ASSERT_TRUE(Register("v", "def run(args):\n    return 2\n").ok());
  EXPECT_EQ(Call("v", json::object())["data"], json(2));
  EXPECT_EQ(tools_->Names(), std::vector<std::string>{"v"});
  ASSERT_TRUE(tools_->Unregister("v").ok());
  EXPECT_TRUE(absl::IsNotFound(tools_->Call("v", json::object()).status()));
  EXPECT_TRUE(absl::IsNotFound(tools_->Unregister("v")));
}

TEST_P(ToolRegistryTest, PrintsAreCapturedNotWrittenToTheHost) {
  ASSERT_TRUE(Register("p",
                       "import sys\ndef run(args):\n    print('to stdout')\n"
                       "    print('to stderr', file=sys.stderr)\n    return 1\n")
                  .ok());
  testing::internal::CaptureStdout();
  absl::StatusOr<ToolCallResult> result = tools_->Call("p", json::object());
  std::string host_stdout = testing::internal::GetCapturedStdout();
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(host_stdout, "");
  EXPECT_EQ(result->stdout_stream.text, "to stdout\n");
  EXPECT_EQ(result->stderr_stream.text, "to stderr\n");
  // The next call starts with empty captures.
  ASSERT_TRUE(Register("q", "def run(args):\n    return 2\n").ok());
  EXPECT_EQ(tools_->Call("q", json::object())->stdout_stream.text, "");
}

TEST_P(ToolRegistryTest, ConcurrentCallsFromManyThreads) {
  ASSERT_TRUE(Register("wc", kWordCount).ok());
  std::vector<std::thread> threads;
  std::atomic<int> correct{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        std::string text(static_cast<size_t>(t + i), 'w');
        for (size_t k = 1; k < text.size(); k += 2) text[k] = ' ';
        json envelope = Call("wc", {{"text", text}});
        size_t expected = (text.size() + 1) / 2;
        if (envelope["data"]["wordCount"] == json(expected)) ++correct;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(correct.load(), 80);
}

INSTANTIATE_TEST_SUITE_P(Isolations, ToolRegistryTest,
                         ::testing::Values(Isolation::kFresh, Isolation::kResident),
                         [](const auto& info) { return std::string(IsolationName(info.param)); });

// Resident-only semantics: module state persists between calls, globals do not.
TEST(ResidentToolTest, ModuleStatePersistsGlobalsOfACallDoNot) {
  PoolOptions options;
  options.size = 1;
  absl::StatusOr<std::unique_ptr<InterpreterPool>> pool = InterpreterPool::Start(options);
  ASSERT_TRUE(pool.ok());
  auto dirs = std::make_shared<WorkDirStock>(DefaultWorkRoot(), 1);
  CancellationSet running;
  Isolations isolations(**pool, dirs, running);
  ToolRegistry tools(isolations, 1024, *NamedPolicy("strict"), *DefaultLimitsFromEnvironment(), {});
  ToolOptions resident;
  resident.isolation = Isolation::kResident;
  ASSERT_TRUE(tools
                  .Register("state", R"(
import json
cache = []
counter = 0
def run(args):
    global counter
    counter += 1              # a global assigned by the call: does not persist
    cache.append(args["x"])   # module state mutated in place: persists
    json.pyhost_marker = True # module attribute: persists
    return {"counter": counter, "cache": list(cache)}
)",
                            resident)
                  .ok());
  EXPECT_EQ(tools.Call("state", {{"x", 1}})->envelope["data"],
            json({{"counter", 1}, {"cache", {1}}}));
  EXPECT_EQ(tools.Call("state", {{"x", 2}})->envelope["data"],
            json({{"counter", 1}, {"cache", {1, 2}}}));
  ASSERT_TRUE(tools.Unregister("state").ok());
}

TEST(FreshToolTest, EveryCallStartsFromScratch) {
  PoolOptions options;
  options.size = 2;
  absl::StatusOr<std::unique_ptr<InterpreterPool>> pool = InterpreterPool::Start(options);
  ASSERT_TRUE(pool.ok());
  auto dirs = std::make_shared<WorkDirStock>(DefaultWorkRoot(), 1);
  CancellationSet running;
  Isolations isolations(**pool, dirs, running);
  ToolRegistry tools(isolations, 1024, *NamedPolicy("strict"), *DefaultLimitsFromEnvironment(), {});
  ASSERT_TRUE(tools
                  .Register("state", R"(
import sys
cache = []
def run(args):
    cache.append(args["x"])
    sys.pyhost_marker = getattr(sys, "pyhost_marker", 0) + 1
    return {"cache": cache, "marker": sys.pyhost_marker}
)",
                            ToolOptions{})
                  .ok());
  for (int x : {1, 2, 3}) {
    EXPECT_EQ(tools.Call("state", {{"x", x}})->envelope["data"],
              json({{"cache", {x}}, {"marker", 1}}));
  }
}

}  // namespace
}  // namespace pyhost

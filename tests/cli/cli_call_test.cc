// End-to-end tests of `pyhost call`: the built binary loads a tool file, calls its
// run(args) and prints the envelope.

#include <string>

#include "tests/cli/cli_harness.h"

namespace pyhost::cli_test {
namespace {

TEST_F(CallTest, PrintsTheEnvelope) {
  std::string tool = dir_.Write("add.py",
                                "def run(args):\n"
                                "    print('adding')\n"
                                "    return {'sum': args['a'] + args['b']}\n");
  Outcome run = RunPyhost({"call", tool, "--args", R"({"a": 1, "b": 2})"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(OnlyJson(run), json::parse(R"({"ok": true, "data": {"sum": 3}})"));
  // What run() printed goes to stderr, keeping stdout one JSON document.
  EXPECT_THAT(run.err, HasSubstr("adding"));
}

TEST_F(CallTest, ScalarData) {
  std::string tool = dir_.Write("wc.py", "def run(args):\n    return len(args['text'].split())\n");
  Outcome run = RunPyhost({"call", tool, R"(--args={"text": "a b c d"})"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(OnlyJson(run), json::parse(R"({"ok": true, "data": 4})"));
}

TEST_F(CallTest, ArgsDefaultToEmptyDict) {
  std::string tool = dir_.Write("echo.py", "def run(args):\n    return args\n");
  Outcome run = RunPyhost({"call", tool});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(OnlyJson(run), json::parse(R"({"ok": true, "data": {}})"));
}

TEST_F(CallTest, DictWithOkPassesThrough) {
  std::string tool =
      dir_.Write("pass.py", "def run(args):\n    return {'ok': True, 'items': [1, 2]}\n");
  Outcome run = RunPyhost({"call", tool});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(OnlyJson(run), json::parse(R"({"ok": true, "items": [1, 2]})"));
}

TEST_F(CallTest, DictWithOkFalsePassesThroughAndExitsOne) {
  std::string tool =
      dir_.Write("refuse.py", "def run(args):\n    return {'ok': False, 'why': 'custom'}\n");
  Outcome run = RunPyhost({"call", tool});
  ASSERT_TRUE(run.exited && run.exit_code == 1) << run.Describe();
  EXPECT_EQ(OnlyJson(run), json::parse(R"({"ok": false, "why": "custom"})"));
}

TEST_F(CallTest, ExceptionIsAnErrorEnvelope) {
  std::string tool = dir_.Write("boom.py",
                                "def run(args):\n"
                                "    raise ValueError('bad value')\n");
  Outcome run = RunPyhost({"call", tool});
  ASSERT_TRUE(run.exited && run.exit_code == 1) << run.Describe();
  json envelope = OnlyJson(run);
  EXPECT_EQ(envelope["ok"], false);
  ASSERT_TRUE(envelope["error"].is_object()) << envelope.dump();
  EXPECT_EQ(envelope["error"]["message"], "bad value");
  EXPECT_EQ(envelope["error"]["type"], "ValueError");
  EXPECT_THAT(envelope["error"]["traceback"].get<std::string>(),
              HasSubstr("ValueError: bad value"));
  EXPECT_FALSE(envelope.contains("data")) << envelope.dump();
}

TEST_F(CallTest, SysExitInRunIsAnErrorEnvelope) {
  std::string tool = dir_.Write("quit.py", "import sys\ndef run(args):\n    sys.exit(4)\n");
  Outcome run = RunPyhost({"call", tool});
  ASSERT_TRUE(run.exited && run.exit_code == 1) << run.Describe();
  json envelope = OnlyJson(run);
  EXPECT_EQ(envelope["ok"], false);
  EXPECT_EQ(envelope["error"]["type"], "SystemExit");
}

TEST_F(CallTest, UnserializableReturnIsAnErrorEnvelope) {
  std::string tool = dir_.Write("set.py", "def run(args):\n    return {1, 2}\n");
  Outcome run = RunPyhost({"call", tool});
  ASSERT_TRUE(run.exited && run.exit_code == 1) << run.Describe();
  json envelope = OnlyJson(run);
  EXPECT_EQ(envelope["ok"], false);
  EXPECT_EQ(envelope["error"]["type"], "ResultNotSerializable");
}

TEST_F(CallTest, FileWithoutRunIsAClearError) {
  std::string tool = dir_.Write("norun.py", "x = 1\n");
  Outcome run = RunPyhost({"call", tool});
  ASSERT_TRUE(run.exited && run.exit_code == 1) << run.Describe();
  json envelope = OnlyJson(run);
  EXPECT_EQ(envelope["ok"], false);
  EXPECT_EQ(envelope["error"]["type"], "ToolLoadError");
  EXPECT_THAT(envelope["error"]["message"].get<std::string>(), HasSubstr("run(args)"));
}

TEST_F(CallTest, SyntaxErrorInToolIsAClearError) {
  std::string tool = dir_.Write("broken.py", "def run(args:\n    return 1\n");
  Outcome run = RunPyhost({"call", tool});
  ASSERT_TRUE(run.exited && run.exit_code == 1) << run.Describe();
  json envelope = OnlyJson(run);
  EXPECT_EQ(envelope["ok"], false);
  EXPECT_EQ(envelope["error"]["type"], "ToolLoadError");
  EXPECT_THAT(envelope["error"]["message"].get<std::string>(), HasSubstr("SyntaxError"));
  EXPECT_THAT(envelope["error"]["message"].get<std::string>(), HasSubstr("line 1"));
}

TEST_F(CallTest, ErrorAtImportTimeIsAClearError) {
  std::string tool =
      dir_.Write("importfail.py", "import no_such_module_xyz\ndef run(args):\n    return 1\n");
  Outcome run = RunPyhost({"call", tool});
  ASSERT_TRUE(run.exited && run.exit_code == 1) << run.Describe();
  json envelope = OnlyJson(run);
  EXPECT_EQ(envelope["ok"], false);
  EXPECT_THAT(envelope["error"]["message"].get<std::string>(), HasSubstr("no_such_module_xyz"));
}

TEST_F(CallTest, MissingFileExitsTwo) {
  Outcome run = RunPyhost({"call", dir_.PathOf("absent.py"), "--args", "{}"});
  EXPECT_TRUE(run.exited && run.exit_code == 2) << run.Describe();
  EXPECT_THAT(run.out, IsEmpty());
  EXPECT_THAT(run.err, HasSubstr("absent.py"));
}

TEST_F(CallTest, BadArgsExitsTwo) {
  std::string tool = dir_.Write("echo.py", "def run(args):\n    print('ran')\n    return args\n");
  Outcome run = RunPyhost({"call", tool, "--args", "{not json"});
  EXPECT_TRUE(run.exited && run.exit_code == 2) << run.Describe();
  EXPECT_THAT(run.out, IsEmpty());
  EXPECT_THAT(run.err, HasSubstr("--args is not valid JSON"));
  EXPECT_THAT(run.err, ::testing::Not(HasSubstr("ran")));
}

TEST_F(CallTest, IsolationTool) {
  std::string tool = dir_.Write("mul.py", "def run(args):\n    return args['x'] * 3\n");
  Outcome run = RunPyhost({"call", tool, "--isolation", "tool", "--args", R"({"x": 5})"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(OnlyJson(run), json::parse(R"({"ok": true, "data": 15})"));
}

TEST_F(CallTest, IsolationProcessCallsTheToolInAChildProcess) {
  std::string tool = dir_.Write("pid.py", "import os\ndef run(args):\n    return os.getpid()\n");
  Outcome run = RunPyhost({"call", tool, "--isolation", "process"});
  EXPECT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  json envelope = OnlyJson(run);
  EXPECT_EQ(envelope["ok"], true) << run.Describe();
  EXPECT_NE(envelope["data"], run.pid) << run.Describe();
}

// A tool's limits hold for its call; a module body stuck at load fails the call too.
TEST_F(CallTest, LimitsEndAToolThatLoopsInItsCallOrItsLoad) {
  std::string spinning = dir_.Write("spin.py", "def run(args):\n    while True:\n        pass\n");
  Outcome run = RunPyhost({"call", spinning, "--timeout-ms", "300"});
  EXPECT_TRUE(run.exited && run.exit_code == 1) << run.Describe();
  json envelope = OnlyJson(run);
  EXPECT_EQ(envelope["ok"], false) << run.Describe();
  EXPECT_EQ(envelope["error"]["type"], "Timeout") << run.Describe();
  std::string greedy =
      dir_.Write("greedy.py", "x = bytearray(2**31)\ndef run(args):\n  return 1\n");
  Outcome load = RunPyhost({"call", greedy, "--memory-mb", "64"});
  EXPECT_FALSE(load.exited && load.exit_code == 0) << load.Describe();
  EXPECT_THAT(load.out + load.err, HasSubstr("MemoryLimitExceeded")) << load.Describe();
}

TEST_F(CallTest, ToolFromStdin) {
  Outcome run = RunPyhost({"call", "-", "--args", R"({"n": 2})"},
                          "def run(args):\n    return args['n'] + 40\n");
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(OnlyJson(run), json::parse(R"({"ok": true, "data": 42})"));
}

TEST_F(CallTest, FileNameThatIsNotAToolName) {
  // The tool name comes from the file name; odd characters must not make it fail.
  std::string tool = dir_.Write("my tool (v2)!.py", "def run(args):\n    return 'fine'\n");
  Outcome run = RunPyhost({"call", tool});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(OnlyJson(run), json::parse(R"({"ok": true, "data": "fine"})"));
}

// run() may return {"ok": <anything>}; the dict passes through as the envelope, and
// the exit status must not assume "ok" is a bool (it once aborted the process here).
TEST_F(CallTest, NonBoolOkInReturnedDictPassesThrough) {
  for (const char* ok : {"'yes'", "1", "None"}) {
    SCOPED_TRACE(std::string("'ok': ") + ok);
    std::string tool = dir_.Write(
        "okval.py", std::string("def run(args):\n    return {'ok': ") + ok + ", 'v': 1}\n");
    Outcome run = RunPyhost({"call", tool});
    EXPECT_TRUE(run.exited) << run.Describe();
    EXPECT_TRUE(run.exit_code == 0 || run.exit_code == 1) << run.Describe();
    EXPECT_TRUE(OnlyJson(run).is_object());
  }
}

}  // namespace
}  // namespace pyhost::cli_test

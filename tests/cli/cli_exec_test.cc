// End-to-end tests of `pyhost exec`: the built binary runs a snippet (-c, a file or
// stdin) and prints one JSON answer; errors, policies, files and descriptors as the
// command sees them, and how it stops (signals, a closed output, a crash).

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/cli/cli_harness.h"

namespace pyhost::cli_test {
namespace {

// --- the answer ----------------------------------------------------------------------

TEST_F(ExecTest, PrintsOneJsonObject) {
  Outcome run = RunPyhost({"exec", "-c", "print('hello'); result = {'ok': True, 'answer': 42}"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_EQ(answer["ok"], true);
  EXPECT_EQ(answer["stdout"], "hello\n");
  EXPECT_EQ(answer["stderr"], "");
  EXPECT_EQ(answer["stdout_truncated"], false);
  EXPECT_EQ(answer["stderr_truncated"], false);
  EXPECT_EQ(answer["result"], json({{"ok", true}, {"answer", 42}}));
  EXPECT_TRUE(answer["error"].is_null()) << answer.dump();
  ASSERT_TRUE(answer["stats"].is_object()) << answer.dump();
  EXPECT_EQ(answer["stats"]["isolation"], "fresh");
  for (const char* field : {"wall_us", "cpu_us", "wait_us", "interpreter_id"}) {
    EXPECT_TRUE(answer["stats"][field].is_number()) << field << " in " << answer.dump();
  }
  EXPECT_THAT(run.err, IsEmpty());
}

// Process isolation through the command (issue 10): the README's done-when line, and
// a child that writes to descriptor 1 below every guard cannot forge the answer.
TEST_F(ExecTest, DataScienceRunsNumpyInProcessIsolation) {
  if (!std::filesystem::exists("/usr/lib/python3/dist-packages/numpy")) {
    GTEST_SKIP() << "python3-numpy is not installed (scripts/install-deps.sh installs it)";
  }
  Outcome run = RunPyhost({"exec", "--policy", "data_science", "-c",
                           "import numpy; result = int(numpy.arange(10).sum())"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_EQ(answer["result"], 45) << answer.dump();
  EXPECT_EQ(answer["stats"]["isolation"], "process") << answer.dump();
  EXPECT_EQ(answer["stats"]["rerouted"], "process") << answer.dump();
}

TEST_F(ExecTest, AProcessIsolatedChildCannotWriteToTheCommandsOutput) {
  Outcome run = RunPyhost({"exec", "--isolation", "process", "--policy", "yolo", "-c",
                           "import ctypes\n"
                           "ctypes.CDLL(None).write(1, b'{\"ok\": true}\\n', 13)\n"
                           "result = 1"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  json answer = OnlyJson(run);  // one object: the command's
  EXPECT_EQ(answer["result"], 1) << answer.dump();
  EXPECT_EQ(answer["stats"]["isolation"], "process") << answer.dump();
}

TEST_F(ExecTest, ArgsAreVisibleAsArgs) {
  Outcome run = RunPyhost({"exec", "--args", R"({"xs": [1, 2, 3], "name": "n"})", "-c",
                           "result = {'sum': sum(args['xs']), 'name': args['name']}"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(OnlyJson(run)["result"], json({{"sum", 6}, {"name", "n"}}));
}

TEST_F(ExecTest, ArgsWithEqualsSign) {
  Outcome run = RunPyhost({"exec", R"(--args={"k": [true, null]})", "-c", "result = args"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(OnlyJson(run)["result"], json::parse(R"({"k": [true, null]})"));
}

TEST_F(ExecTest, ArgsDefaultToEmptyDict) {
  Outcome run = RunPyhost({"exec", "-c", "result = {'type': type(args).__name__, 'args': args}"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(OnlyJson(run)["result"], json({{"type", "dict"}, {"args", json::object()}}));
}

TEST_F(ExecTest, NoResultIsNull) {
  Outcome run = RunPyhost({"exec", "-c", "x = 1"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_EQ(answer["ok"], true);
  EXPECT_TRUE(answer["result"].is_null());
}

TEST_F(ExecTest, RunsFile) {
  std::string file = dir_.Write("snippet.py",
                                "import math\n"
                                "print('from file')\n"
                                "result = {'root': math.isqrt(args['n'])}\n");
  Outcome run = RunPyhost({"exec", "--args", R"({"n": 49})", file});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_EQ(answer["stdout"], "from file\n");
  EXPECT_EQ(answer["result"], json({{"root", 7}}));
}

TEST_F(ExecTest, RunsCodeFromStdin) {
  Outcome run = RunPyhost({"exec", "-"}, "print('piped')\nresult = [1, 'two', 3.5]\n");
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_EQ(answer["stdout"], "piped\n");
  EXPECT_EQ(answer["result"], json({1, "two", 3.5}));
}

TEST_F(ExecTest, IsolationTool) {
  Outcome run = RunPyhost({"exec", "--isolation", "tool", "-c", "result = 'resident'"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_EQ(answer["result"], "resident");
  EXPECT_EQ(answer["stats"]["isolation"], "resident");
}

TEST_F(ExecTest, IsolationFreshExplicit) {
  Outcome run = RunPyhost({"exec", "--isolation=fresh", "-c", "result = 1"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(OnlyJson(run)["stats"]["isolation"], "fresh");
}

TEST_F(ExecTest, MaxOutputBytesTruncates) {
  Outcome run =
      RunPyhost({"exec", "--max-output-bytes", "10", "-c",
                 "import sys\nprint('x' * 100)\nsys.stderr.write('e' * 100)\nresult = 1"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_EQ(answer["ok"], true);
  EXPECT_EQ(answer["result"], 1);
  EXPECT_EQ(answer["stdout_truncated"], true);
  EXPECT_EQ(answer["stderr_truncated"], true);
  std::string out = answer["stdout"], err = answer["stderr"];
  EXPECT_LE(out.size(), 10u);
  EXPECT_LE(err.size(), 10u);
  EXPECT_THAT(out, StartsWith("xxxxx"));
  EXPECT_THAT(err, StartsWith("eeeee"));
}

TEST_F(ExecTest, OutputUnderTheCapIsNotTruncated) {
  Outcome run = RunPyhost({"exec", "--max-output-bytes", "100", "-c", "print('short')"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_EQ(answer["stdout"], "short\n");
  EXPECT_EQ(answer["stdout_truncated"], false);
}

TEST_F(ExecTest, UserStderrIsCapturedNotPrinted) {
  Outcome run = RunPyhost({"exec", "-c", "import sys\nprint('oops', file=sys.stderr)\nresult = 0"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_EQ(answer["stderr"], "oops\n");
  EXPECT_EQ(answer["stdout"], "");
  EXPECT_THAT(run.err, IsEmpty());
}

// --- errors --------------------------------------------------------------------------

// Checks the common shape of a failed exec: exit 1, one JSON object, ok false, an
// error object with every field; returns the error.
json ExpectFailure(const Outcome& run, const std::string& type) {
  EXPECT_TRUE(run.exited && run.exit_code == 1) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_EQ(answer["ok"], false) << answer.dump();
  EXPECT_TRUE(answer["result"].is_null()) << answer.dump();
  json error = answer["error"];
  if (!error.is_object()) {
    ADD_FAILURE() << "error is not an object: " << answer.dump();
    return json::object();
  }
  EXPECT_EQ(error["type"], type) << answer.dump();
  EXPECT_TRUE(error["message"].is_string()) << answer.dump();
  EXPECT_TRUE(error["line"].is_number_integer()) << answer.dump();
  EXPECT_TRUE(error["traceback"].is_string()) << answer.dump();
  EXPECT_TRUE(error["hint"].is_string()) << answer.dump();
  return error;
}

TEST_F(ExecTest, NameError) {
  Outcome run = RunPyhost({"exec", "-c", "x = 1\nprint('before')\nprint(undefined_name)\n"});
  json error = ExpectFailure(run, "NameError");
  EXPECT_THAT(error["message"].get<std::string>(), HasSubstr("undefined_name"));
  EXPECT_EQ(error["line"], 3);
  EXPECT_THAT(error["traceback"].get<std::string>(), HasSubstr("NameError"));
  EXPECT_THAT(error["hint"].get<std::string>(), HasSubstr("undefined_name"));
  // What ran before the error is kept.
  EXPECT_EQ(OnlyJson(run)["stdout"], "before\n");
}

TEST_F(ExecTest, KeyErrorOnArgsHintMentionsArgs) {
  Outcome run =
      RunPyhost({"exec", "--args", R"({"present": 1})", "-c", "result = args['missing']"});
  json error = ExpectFailure(run, "KeyError");
  EXPECT_THAT(error["message"].get<std::string>(), HasSubstr("missing"));
  EXPECT_EQ(error["line"], 1);
  EXPECT_THAT(error["traceback"].get<std::string>(), HasSubstr("KeyError"));
  std::string hint = error["hint"];
  EXPECT_THAT(hint, HasSubstr("args"));
  EXPECT_THAT(hint, HasSubstr("missing"));
}

TEST_F(ExecTest, SyntaxErrorWithItsLine) {
  Outcome run = RunPyhost({"exec", "-c", "a = 1\nb = 2\nc = )\nd = 4\n"});
  json error = ExpectFailure(run, "SyntaxError");
  EXPECT_EQ(error["line"], 3);
  EXPECT_THAT(error["message"].get<std::string>(), HasSubstr(")"));
  EXPECT_FALSE(error["hint"].get<std::string>().empty());
}

TEST_F(ExecTest, SysExitIsAnErrorNotAnExit) {
  Outcome run = RunPyhost({"exec", "-c", "import sys\nprint('still here')\nsys.exit(3)"});
  json error = ExpectFailure(run, "SystemExit");  // exit 1, not 3: the host lived on
  EXPECT_EQ(error["message"], "3");
  EXPECT_EQ(error["line"], 3);
  EXPECT_THAT(error["hint"].get<std::string>(), HasSubstr("result"));
  EXPECT_EQ(OnlyJson(run)["stdout"], "still here\n");
}

TEST_F(ExecTest, KeyboardInterruptDoesNotReachTheHost) {
  Outcome run = RunPyhost({"exec", "-c", "raise KeyboardInterrupt"});
  json error = ExpectFailure(run, "KeyboardInterrupt");
  EXPECT_EQ(error["line"], 1);
}

TEST_F(ExecTest, SetResultIsNotSerializable) {
  Outcome run = RunPyhost({"exec", "-c", "print('made a set')\nresult = {1, 2, 3}"});
  json error = ExpectFailure(run, "ResultNotSerializable");
  EXPECT_THAT(error["message"].get<std::string>(), HasSubstr("set"));
  EXPECT_THAT(error["hint"].get<std::string>(), HasSubstr("list("));
  EXPECT_EQ(OnlyJson(run)["stdout"], "made a set\n");
}

TEST_F(ExecTest, NonFiniteFloatIsNotSerializable) {
  Outcome run = RunPyhost({"exec", "-c", "result = {'x': float('nan')}"});
  ExpectFailure(run, "ResultNotSerializable");
}

TEST_F(ExecTest, CyclicResultIsNotSerializable) {
  Outcome run = RunPyhost({"exec", "-c", "a = []\na.append(a)\nresult = a"});
  ExpectFailure(run, "ResultNotSerializable");
}

TEST_F(ExecTest, ExceptionRaisedInAFunction) {
  Outcome run = RunPyhost({"exec", "-c",
                           "def f(x):\n"
                           "    return 1 / x\n"
                           "result = f(0)\n"});
  json error = ExpectFailure(run, "ZeroDivisionError");
  EXPECT_EQ(error["line"], 2);
  std::string traceback = error["traceback"];
  EXPECT_THAT(traceback, HasSubstr("line 3"));
  EXPECT_THAT(traceback, HasSubstr("line 2"));
  // Only the user's frames: nothing of the host's Python support code.
  EXPECT_THAT(traceback, ::testing::Not(HasSubstr("pyhost_support")));
}

TEST_F(ExecTest, InputHasNoStdin) {
  // The snippet's stdin is not the command's: it cannot read (and in serve mode
  // steal) request lines.
  Outcome run = RunPyhost({"exec", "-c", "result = input()"}, "a line\n");
  EXPECT_TRUE(run.exited && run.exit_code == 1) << run.Describe();
  EXPECT_EQ(OnlyJson(run)["ok"], false);
}

TEST_F(ExecTest, ArgsTooDeepOrPast64BitsAreUsageErrors) {
  std::string deep = std::string(60000, '[') + std::string(60000, ']');  // one argument: < 128 KB
  Outcome too_deep = RunPyhost({"exec", "--args", deep, "-c", "result = 1"});
  ASSERT_TRUE(too_deep.exited && too_deep.exit_code == 2) << too_deep.Describe();
  EXPECT_THAT(too_deep.err, HasSubstr("--args: nested deeper than 256 levels"));
  Outcome past =
      RunPyhost({"exec", "--args", R"({"n": 99999999999999999999})", "-c", "result = args"});
  ASSERT_TRUE(past.exited && past.exit_code == 2) << past.Describe();
  EXPECT_THAT(past.err,
              HasSubstr("--args: n: integer 99999999999999999999 does not fit in 64 bits"));
}

// --- policies, files and descriptors -------------------------------------------------

// Policies: strict by default, chosen by name, file or inline object.
TEST_F(ExecTest, StrictIsTheDefaultAndDeniesReadingHostFiles) {
  Outcome run = RunPyhost({"exec", "-c", "result = open('/etc/hostname').read()"});
  ASSERT_TRUE(run.exited && run.exit_code == 1) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_EQ(answer["error"]["type"], "PermissionError");
  EXPECT_THAT(answer["error"]["message"].get<std::string>(), HasSubstr("policy 'strict'"));
  EXPECT_EQ(answer["stats"]["policy"], "strict");
}

TEST_F(ExecTest, YoloPolicyByNameAllowsIt) {
  Outcome run = RunPyhost(
      {"exec", "--policy", "yolo", "-c", "result = len(open('/etc/hostname').read()) > 0"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(OnlyJson(run)["result"], true);
}

TEST_F(ExecTest, OutputDirFilesAreListed) {
  Outcome run =
      RunPyhost({"exec", "-c",
                 "import os\nopen(os.path.join(OUTPUT_DIR, 'hello.txt'), 'w').write('hi')\n"
                 "result = {'files': os.listdir(OUTPUT_DIR)}"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_EQ(answer["result"]["files"], json({"hello.txt"}));
  EXPECT_EQ(answer["output_files"], json({"hello.txt"}));
  std::string dir = answer["output_dir"].get<std::string>();
  std::string text = testutil::ReadFile(dir + "/hello.txt");
  EXPECT_EQ(text, "hi");
  std::filesystem::remove_all(std::filesystem::path(dir).parent_path());
}

// The same for `pyhost exec`: stdout holds one JSON object whatever the code writes.
// os.write on a descriptor the code did not open is refused outright...
TEST_F(ExecTest, FdLevelWriteDoesNotCorruptStdout) {
  Outcome run = RunPyhost({"exec", "-c", "import os\nos.write(1, b'not json\\n')\nresult = 1"});
  ASSERT_TRUE(run.exited && run.exit_code == 1) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_EQ(answer["error"]["type"], "PermissionError") << answer.dump();
  EXPECT_EQ(CountLines(run.out), 1u) << run.Describe();
}

// ...and where nothing refuses it (yolo lets ctypes call libc's write), the command's
// private protocol descriptor still keeps stdout one JSON object.
TEST_F(ExecTest, NativeWriteToFdOneLandsOnStderr) {
  Outcome run =
      RunPyhost({"exec", "--policy", "yolo", "-c",
                 "import ctypes\nctypes.CDLL(None).write(1, b'not json\\n', 9)\nresult = 1"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(OnlyJson(run)["result"], 1);
  EXPECT_THAT(run.err, HasSubstr("not json"));
}

// A NUL byte in code is python3's SyntaxError for it, with the snippet's file and line.
TEST_F(ExecTest, NulByteIsASyntaxErrorWithFileAndLine) {
  Outcome run =
      RunPyhost({"exec", dir_.Write("nul.py", std::string("x = 1\ny = 2\0\nz = 3\n", 18))});
  ASSERT_TRUE(run.exited && run.exit_code == 1) << run.Describe();
  json error = OnlyJson(run)["error"];
  EXPECT_EQ(error["type"], "SyntaxError") << error.dump();
  EXPECT_EQ(error["message"], "source code cannot contain null bytes") << error.dump();
  EXPECT_EQ(error["line"], 2) << error.dump();
  EXPECT_EQ(
      error["traceback"],
      "  File \"<code>\", line 2\n    y = 2\nSyntaxError: source code cannot contain null bytes")
      << error.dump();
}

// The issue's reproducers of the output caps, end to end.
TEST_F(ExecTest, OutputCapIsOutOfTheCodesReach) {
  Outcome run =
      RunPyhost({"exec", "--max-output-bytes", "1000", "-c",
                 "import sys\ntry:\n    sys.stdout.limit = 10**12\nexcept AttributeError:\n"
                 "    pass\nprint('x' * 8_000_000)"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_EQ(answer["stdout"], std::string(1000, 'x'));
  EXPECT_EQ(answer["stdout_truncated"], true);
  run = RunPyhost({"exec", "--max-output-bytes", "5", "-c", "print('é' * 10)"});
  EXPECT_EQ(OnlyJson(run)["stdout"], "éé");
  run = RunPyhost({"exec", "-c", "import sys\nsys.stdout.buffer.write(b'raw\\n')"});
  EXPECT_EQ(OnlyJson(run)["stdout"], "raw\n");
}

// A dir_fd is where a relative path starts, for the policy's file rules too: judged
// against the cwd instead, a path that names WORK_DIR/x from the cwd reached a file
// outside the roots from a directory deep inside WORK_DIR (read and removed here).
// dir_fd use inside the roots (shutil.rmtree, os.open/mkdir/rename with dir_fd) works.
TEST_F(ExecTest, DirFdPathsAreJudgedFromTheirDirectory) {
  std::string canary = dir_.Write("canary.txt", "host secret");
  // A writable farm of the policy's, holding farm/<farm's own path>/host -> the
  // canary's directory (made here: strict lets no code link outside its roots).
  const std::filesystem::path farm = dir_.PathOf("farm");
  std::filesystem::create_directories(farm.string() + farm.string());
  std::filesystem::create_directory_symlink(farm.parent_path(),
                                            farm.string() + farm.string() + "/host");
  std::string policy = dir_.Write(
      "policy.json", json({{"extends", "strict"}, {"files", {{"write", {farm.string()}}}}}).dump());
  constexpr char kCode[] = R"PY(
import os, shutil
outcome = {}
def attempt(name, act):
    try:
        outcome[name] = act()
    except PermissionError:
        outcome[name] = 'denied'
farm = args['farm']
depth = max(len([part for part in os.getcwd().split('/') if part]), 1)
deep = farm + '/d' * depth
os.makedirs(deep)
# From the cwd this is farm/host/canary.txt (nothing there, inside the roots);
# from `deep` it is farm + farm/host/canary.txt: the host's file.
rel = '../' * depth + farm.lstrip('/') + '/host/' + os.path.basename(args['canary'])
d = os.open(deep, os.O_RDONLY)
attempt('read', lambda: os.read(os.open(rel, os.O_RDONLY, dir_fd=d), 100).decode())
attempt('remove', lambda: os.remove(rel, dir_fd=d))
attempt('rename', lambda: os.rename(rel, WORK_DIR + '/stolen', src_dir_fd=d))
attempt('link', lambda: os.link(rel, WORK_DIR + '/linked', src_dir_fd=d))
w = os.open(WORK_DIR, os.O_RDONLY)
os.mkdir('tree', dir_fd=w)
os.makedirs(WORK_DIR + '/tree/a/b')
os.close(os.open('tree/a/b/f', os.O_CREAT | os.O_WRONLY, dir_fd=w))
os.rename('tree/a/b/f', 'tree/g', src_dir_fd=w, dst_dir_fd=w)
shutil.rmtree(WORK_DIR + '/tree')
outcome['inside'] = sorted(os.listdir(WORK_DIR))
result = outcome
)PY";
  Outcome run =
      RunPyhost({"exec", "--policy", policy, "--args",
                 json({{"canary", canary}, {"farm", farm.string()}}).dump(), "-c", kCode});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  json result = OnlyJson(run)["result"];
  EXPECT_EQ(result["read"], "denied") << result.dump();
  EXPECT_EQ(result["remove"], "denied") << result.dump();
  EXPECT_EQ(result["rename"], "denied") << result.dump();
  EXPECT_EQ(result["link"], "denied") << result.dump();
  EXPECT_EQ(result["inside"], json::array()) << result.dump();
  EXPECT_EQ(testutil::ReadFile(canary), "host secret");
}

// _posixsubprocess.fork_exec raises no audit event of its own (subprocess.Popen
// does): called directly, it obeys the policy's process rule too.
TEST_F(ExecTest, ForkExecCalledDirectlyObeysTheProcessRule) {
  std::string canary = dir_.PathOf("spawned");
  constexpr char kCode[] = R"PY(
import os, _posixsubprocess
r, w = os.pipe()
pid = _posixsubprocess.fork_exec(
    [b'/bin/sh', b'-c', ('touch ' + args['canary']).encode()], [b'/bin/sh'], True, (w,), None,
    None, -1, -1, -1, -1, -1, -1, r, w, False, False, -1, None, None, None, -1, None, False)
os.waitpid(pid, 0)
)PY";
  Outcome run = RunPyhost({"exec", "--policy",
                           dir_.Write("p.json", R"({"extends": "yolo", "processes": false})"),
                           "--args", json({{"canary", canary}}).dump(), "-c", kCode});
  ASSERT_TRUE(run.exited && run.exit_code == 1) << run.Describe();
  json error = OnlyJson(run)["error"];
  EXPECT_EQ(error["type"], "PermissionError") << error.dump();
  EXPECT_THAT(error["message"].get<std::string>(), HasSubstr("processes are not allowed"));
  EXPECT_FALSE(std::filesystem::exists(canary));
}

// --- stopping: SIGINT, SIGTERM, SIGHUP, a closed output, a crash (issue 7, item 8) ---

struct StopCase {
  const char* name;
  int signal;
  const char* code;
  int max_seconds;                           // from the signal to the exit, generously
  const char* answer = "KeyboardInterrupt";  // Interrupted: the code did not stop in time
};

class StopTest : public ::testing::TestWithParam<StopCase> {};

// exec answers with KeyboardInterrupt (or, for code stuck in C, gives up after its
// grace), exits 128+N, and leaves no work root behind.
TEST_P(StopTest, ExecStopsAnswersAndCleansUp) {
  const StopCase& stop = GetParam();
  auto start = std::chrono::steady_clock::now();
  Outcome run = RunPyhost({"exec", "-c", stop.code}, "", std::chrono::seconds(20),
                          {stop.signal, std::chrono::milliseconds(400)});
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(run.exited) << run.Describe();
  EXPECT_EQ(run.exit_code, 128 + stop.signal) << run.Describe();
  EXPECT_LT(seconds, 0.4 + stop.max_seconds) << run.Describe();
  json answer = OnlyJson(run);  // always one answer, forced exit included
  EXPECT_EQ(answer["ok"], false) << run.Describe();
  EXPECT_EQ(answer["error"]["type"], stop.answer) << run.Describe();
  EXPECT_FALSE(WorkRootExists(run.pid)) << "the work root outlived the command";
}

INSTANTIATE_TEST_SUITE_P(
    Signals, StopTest,
    ::testing::Values(StopCase{"SigintPythonLoop", SIGINT, "while True:\n    pass\n", 3},
                      StopCase{"SigtermSleep", SIGTERM, "import time\ntime.sleep(60)\n", 3},
                      StopCase{"SighupSleep", SIGHUP, "import time\ntime.sleep(60)\n", 3},
                      StopCase{"SigintCaughtAndIgnored", SIGINT,
                               "import time\nwhile True:\n    try:\n        time.sleep(60)\n"
                               "    except KeyboardInterrupt:\n        pass\n",
                               5, "Interrupted"},
                      StopCase{"SigintStuckInC", SIGINT, "sum(range(10**12))\n", 5, "Interrupted"}),
    [](const ::testing::TestParamInfo<StopCase>& info) { return info.param.name; });

// An answer that cannot be written is lost: the exit status says so (it was 0).
TEST_F(ExecTest, AnAnswerThatCannotBeWrittenIsAFailure) {
  Interrupt closed;
  closed.close_stdout = true;
  Outcome run = RunPyhost({"exec", "-c", "import time\ntime.sleep(0.3)\nresult = 1"}, "",
                          std::chrono::seconds(20), closed);
  ASSERT_TRUE(run.exited) << run.Describe();
  EXPECT_EQ(run.exit_code, 1) << run.Describe();
  EXPECT_THAT(run.err, ::testing::HasSubstr("the answer could not be written")) << run.Describe();
}

// A crash of the command itself still removes its work root (the fatal-signal handler).
TEST_F(ExecTest, FatalSignalRemovesTheWorkRoot) {
  Outcome run = RunPyhost({"exec", "-c", "while True:\n    pass\n"}, "", std::chrono::seconds(20),
                          {SIGSEGV, std::chrono::milliseconds(400)});
  EXPECT_FALSE(run.exited) << run.Describe();
  EXPECT_EQ(run.term_signal, SIGSEGV) << run.Describe();
  EXPECT_FALSE(WorkRootExists(run.pid)) << "the work root outlived the crash";
}

}  // namespace
}  // namespace pyhost::cli_test

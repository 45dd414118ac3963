#include "embed/runner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "bindings/thread_state.h"
#include "embed/pool.h"

namespace pyhost {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

class RunnerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    PoolOptions options;
    options.size = 2;
    options.interpreter.prewarm_modules = {"json"};
    absl::StatusOr<std::unique_ptr<InterpreterPool>> pool = InterpreterPool::Start(options);
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = pool->release();
  }
  static void TearDownTestSuite() {
    delete pool_;
    pool_ = nullptr;
  }

  ExecResult Run(const std::string& code, json args = json::object(), size_t max_output = 1 << 20) {
    ExecRequest request;
    request.code = code;
    request.args = std::move(args);
    absl::StatusOr<InterpreterLease> lease = pool_->Acquire();
    EXPECT_TRUE(lease.ok());
    ExecResult result;
    ThreadStateScope scope((*lease)->state());
    RunSnippet(lease->get(), request, max_output, json::object(), result);
    EXPECT_FALSE(PyErr_Occurred()) << "a Python error escaped";
    return result;
  }

  static InterpreterPool* pool_;
};
InterpreterPool* RunnerTest::pool_ = nullptr;

TEST_F(RunnerTest, ResultStdoutAndStderrAreSeparate) {
  ExecResult r =
      Run("import sys\nprint('out')\nprint('err', file=sys.stderr)\n"
          "result = {'sum': sum(args['xs'])}",
          {{"xs", {1, 2, 3}}});
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.stdout_stream.text, "out\n");
  EXPECT_EQ(r.stderr_stream.text, "err\n");
  EXPECT_EQ(r.result, json({{"sum", 6}}));
  EXPECT_FALSE(r.error.has_value());
}

TEST_F(RunnerTest, NoResultIsNull) {
  ExecResult r = Run("x = 1");
  EXPECT_TRUE(r.ok);
  EXPECT_TRUE(r.result.is_null());
}

TEST_F(RunnerTest, OutputIsCappedWithAFlag) {
  ExecResult r = Run("print('é' * 100)\nimport sys\nsys.stderr.write('x' * 5)", json::object(),
                     /*max_output=*/11);
  EXPECT_TRUE(r.stdout_stream.truncated);
  EXPECT_LE(r.stdout_stream.text.size(), 11u);
  EXPECT_EQ(r.stdout_stream.text.rfind("éé", 0), 0u);  // kept the start
  EXPECT_FALSE(r.stderr_stream.truncated);
  EXPECT_EQ(r.stderr_stream.text, "xxxxx");
}

TEST_F(RunnerTest, RealStreamsAreNotReachableThroughSysDunder) {
  ExecResult r =
      Run("import sys\nsys.__stdout__.write('via dunder')\nsys.stdout = sys.__stdout__\n"
          "print('after')");
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.stdout_stream.text, "via dunderafter\n");
}

TEST_F(RunnerTest, ErrorHasTypeMessageLineAndUserOnlyTraceback) {
  ExecResult r = Run("def f(d):\n    return d['k']\n\nx = 1\nf({})\n");
  EXPECT_FALSE(r.ok);
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->type, "KeyError");
  EXPECT_EQ(r.error->message, "'k'");
  EXPECT_EQ(r.error->line, 2);
  EXPECT_THAT(r.error->traceback, HasSubstr("File \"<code>\", line 5, in <module>"));
  EXPECT_THAT(r.error->traceback, HasSubstr("File \"<code>\", line 2, in f"));
  EXPECT_THAT(r.error->traceback, HasSubstr("return d['k']"));
  EXPECT_THAT(r.error->traceback, Not(HasSubstr("pyhost_support")));
}

TEST_F(RunnerTest, ErrorsInsideTheStdlibShowOnlyUserFrames) {
  ExecResult r = Run("import json\njson.loads('{bad')\n");
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->type, "JSONDecodeError");
  EXPECT_EQ(r.error->line, 2);
  EXPECT_THAT(r.error->traceback, Not(HasSubstr("json/decoder.py")));
}

TEST_F(RunnerTest, HintsForCommonMistakes) {
  struct Case {
    const char* code;
    json args;
    const char* type;
    const char* hint;
  } cases[] = {
      {"x = args['name']", {{"text", "a"}}, "KeyError", "args has no key 'name' (keys: 'text')"},
      {"json.dumps(1)", json::object(), "NameError", "add `import json`"},
      {"valeu = 1\nprint(vaule)", json::object(), "NameError", "did you mean 'valeu'?"},
      {"import numpyy", json::object(), "ModuleNotFoundError", "not available"},
      {"x = None\nx.upper()", json::object(), "AttributeError", "is None"},
      {"1 / 0", json::object(), "ZeroDivisionError", "divisor is zero"},
      {"if True:\nprint(1)", json::object(), "IndentationError", "indent"},
      {"def f(:\n  pass", json::object(), "SyntaxError", "brackets"},
      {"def f(): return f()\nf()", json::object(), "RecursionError", "recursion"},
  };
  for (const Case& c : cases) {
    ExecResult r = Run(c.code, c.args);
    ASSERT_TRUE(r.error.has_value()) << c.code;
    EXPECT_EQ(r.error->type, c.type) << c.code;
    EXPECT_THAT(r.error->hint, HasSubstr(c.hint)) << c.code;
  }
}

TEST_F(RunnerTest, SyntaxErrorReportsItsLine) {
  ExecResult r = Run("x = 1\ny = (2,\nz = 3 +\n");
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->type, "SyntaxError");
  EXPECT_GE(r.error->line, 2);
  EXPECT_THAT(r.error->traceback, HasSubstr("<code>"));
}

TEST_F(RunnerTest, ExitAndInterruptEndTheExecutionNotTheHost) {
  for (const char* code : {"import sys; sys.exit(3)", "raise SystemExit('bye')",
                           "raise KeyboardInterrupt", "import os; exit()"}) {
    ExecResult r = Run(code);
    EXPECT_FALSE(r.ok) << code;
    ASSERT_TRUE(r.error.has_value()) << code;
    EXPECT_THAT(r.error->type, testing::AnyOf("SystemExit", "KeyboardInterrupt", "NameError"))
        << code;
  }
}

TEST_F(RunnerTest, NonSerializableResultIsAClearError) {
  ExecResult r = Run("print('kept')\nresult = {'ids': {1, 2}}");
  EXPECT_FALSE(r.ok);
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->type, "ResultNotSerializable");
  EXPECT_THAT(r.error->message, HasSubstr("result['ids']"));
  EXPECT_THAT(r.error->message, HasSubstr("set"));
  EXPECT_EQ(r.stdout_stream.text, "kept\n");  // nothing is lost
}

TEST_F(RunnerTest, NulByteInCodeIsASyntaxError) {
  ExecResult r = Run(std::string("x = 1\0", 6));
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->type, "SyntaxError");
  // python3's words for it (3.12+, of a file), with the snippet's filename and line.
  EXPECT_THAT(r.error->message, HasSubstr("null bytes"));
  EXPECT_EQ(r.error->line, 1);
  EXPECT_THAT(r.error->traceback, HasSubstr("File \"<code>\", line 1"));
}

TEST_F(RunnerTest, ArgsThatAreNotUtf8AreAnArgsError) {
  ExecResult r = Run("result = args", {{"s", std::string("\xc3", 1)}});
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->type, "ArgsError");
}

// sqlite3 calls Python user functions through PyGILState_Ensure: this works only
// because the executing thread state is bound as the thread's PyGILState state.
TEST_F(RunnerTest, CallbacksThroughPyGILStateWork) {
  ExecResult r =
      Run("import sqlite3\n"
          "db = sqlite3.connect(':memory:')\n"
          "db.create_function('twice', 1, lambda x: 2 * x)\n"
          "result = db.execute('select twice(21)').fetchone()[0]\n");
  ASSERT_TRUE(r.ok) << (r.error ? r.error->traceback : "");
  EXPECT_EQ(r.result, json(42));
}

TEST_F(RunnerTest, ToolCompileLoadAndCall) {
  absl::StatusOr<InterpreterLease> lease = pool_->Acquire();
  ASSERT_TRUE(lease.ok());
  ThreadStateScope scope((*lease)->state());
  CompiledTool tool;
  ASSERT_FALSE(CompileTool(lease->get(), "echo", "def run(args):\n    return args\n", tool));
  EXPECT_EQ(tool.filename, "<tool:echo>");
  ToolModule module;
  ASSERT_FALSE(LoadToolModule(lease->get(), tool, json::object(), module));
  ToolCallResult result;
  CallToolRun(lease->get(), tool, module, {{"a", 1}}, /*isolate_globals=*/true, 1024, result);
  EXPECT_EQ(result.envelope, json({{"ok", true}, {"data", {{"a", 1}}}}));
}

// --- Output caps (issue 7, item 16) --------------------------------------------------

// The cap is not the code's to change: nothing on sys.stdout or its type raises it.
TEST_F(RunnerTest, CodeCannotRaiseItsOutputCap) {
  ExecResult r =
      Run("import sys\n"
          "refused = []\n"
          "for attempt in ('sys.stdout.limit = 10**12', 'sys.stdout.buffer.limit = 10**12',\n"
          "                'type(sys.stdout).write = lambda self, s: 0',\n"
          "                'type(sys.stdout.buffer).write = lambda self, b: 0', "
          "'type(sys.stdout)()'):\n"
          "    try:\n"
          "        exec(attempt)\n"
          "    except (AttributeError, TypeError):\n"
          "        refused.append(attempt)\n"
          "print('x' * 5000)\n"
          "result = len(refused)\n",
          json::object(), /*max_output=*/1000);
  ASSERT_TRUE(r.ok) << (r.error ? r.error->traceback : "");
  EXPECT_EQ(r.result, 5);
  EXPECT_TRUE(r.stdout_stream.truncated);
  EXPECT_EQ(r.stdout_stream.text, std::string(1000, 'x'));
}

// Truncated output is a prefix of what was written, cut at a character boundary:
// nothing written after the cut is kept, even what would still fit.
TEST_F(RunnerTest, TruncatedOutputIsAPrefixOfWhatWasWritten) {
  ExecResult r = Run("print('é' * 10)", json::object(), /*max_output=*/5);
  EXPECT_TRUE(r.stdout_stream.truncated);
  EXPECT_EQ(r.stdout_stream.text, "éé");
  r = Run("import sys\nprint('aaa')\nprint('ab€d')\nprint('b')\nsys.stdout.buffer.write(b'c')\n",
          json::object(), /*max_output=*/8);
  EXPECT_TRUE(r.stdout_stream.truncated);
  EXPECT_EQ(r.stdout_stream.text, "aaa\nab");  // "€" (3 bytes) would end at byte 9
  r = Run("print('1234')", json::object(), /*max_output=*/5);  // exactly the cap
  EXPECT_FALSE(r.stdout_stream.truncated);
  EXPECT_EQ(r.stdout_stream.text, "1234\n");
}

// sys.stdout.buffer exists, as in python3; bytes count against the same cap, in the
// order they were written with the text; bytes that are not UTF-8 become U+FFFD.
TEST_F(RunnerTest, StdoutBufferTakesBytes) {
  ExecResult r =
      Run("import io, sys\n"
          "n = sys.stdout.buffer.write(b'bytes\\n')\n"
          "print('text')\n"
          "sys.stderr.buffer.write(memoryview(b'err'))\n"
          "sys.stdout.buffer.write(bytearray(b'a\\xffb\\n'))\n"
          "sys.stdout.buffer.flush()\n"
          "w = io.TextIOWrapper(sys.stdout.buffer, encoding='utf-8', write_through=True)\n"
          "w.write('wrapped\\n')\n"
          "del w\n"
          "print('still open')\n"
          "result = [n, sys.stdout.buffer is sys.stdout.buffer, sys.stdout.encoding]\n");
  ASSERT_TRUE(r.ok) << (r.error ? r.error->traceback : "");
  EXPECT_EQ(r.result, json({6, true, "utf-8"}));
  EXPECT_EQ(r.stdout_stream.text,
            "bytes\ntext\na\xef\xbf\xbd"
            "b\nwrapped\nstill open\n");
  EXPECT_EQ(r.stderr_stream.text, "err");
  r = Run("import sys\nsys.stdout.buffer.write(b'ab\\xc3\\xa9cd')", json::object(),
          /*max_output=*/3);
  EXPECT_TRUE(r.stdout_stream.truncated);
  EXPECT_EQ(r.stdout_stream.text, "ab");  // "é" would not fit whole
  r = Run("import sys\nsys.stdout.buffer.write('no')");
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->type, "TypeError");
}

// Like python3's sys.stdout (errors="strict"): a lone surrogate raises and writes nothing.
TEST_F(RunnerTest, SurrogatesInOutputRaiseAsInPython) {
  ExecResult r = Run("print('before')\nprint('a\\ud800b')");
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->type, "UnicodeEncodeError");
  EXPECT_THAT(r.error->message, HasSubstr("surrogates not allowed"));
  EXPECT_EQ(r.stdout_stream.text, "before\n");
}

// A flood is never held whole by the host: what is past the cap is not encoded or
// copied (the peak RSS, reset first, barely moves while 100 MB are written).
TEST_F(RunnerTest, FloodsAreNotBufferedPastTheCap) {
  ExecResult r =
      Run("import sys\n"
          "def peak_kb():\n"
          "    with open('/proc/self/status') as f:\n"
          "        return int([l for l in f if l.startswith('VmHWM')][0].split()[1])\n"
          "def growth(write):\n"
          "    with open('/proc/self/clear_refs', 'w') as f:\n"
          "        f.write('5')  # resets the peak to the current RSS\n"
          "    before = peak_kb()\n"
          "    write()\n"
          "    return peak_kb() - before\n"
          "text, data, wide = 'x' * 10**8, b'y' * 10**8, 'é' * 3 * 10**7\n"
          "result = [growth(lambda: print(text)), growth(lambda: sys.stdout.buffer.write(data)),\n"
          "          growth(lambda: sys.stderr.write(wide))]\n",
          json::object(), /*max_output=*/1 << 20);
  ASSERT_TRUE(r.ok) << (r.error ? r.error->traceback : "");
  for (const json& kb : r.result) EXPECT_LT(kb.get<int64_t>(), 40 * 1024) << r.result.dump();
  EXPECT_EQ(r.stdout_stream.text.size(), 1u << 20);
  EXPECT_TRUE(r.stdout_stream.truncated);
  EXPECT_EQ(r.stderr_stream.text.size(), (1u << 20));  // 2-byte characters fit exactly
}

// In an interpreter that runs execution after execution (resident), the standard
// streams are pyhost's again at the start of each: replacing them does not silence
// later executions.
TEST_F(RunnerTest, ReplacedStreamsAreRestoredForTheNextExecution) {
  absl::StatusOr<InterpreterLease> lease = pool_->Acquire();
  ASSERT_TRUE(lease.ok());
  ThreadStateScope scope((*lease)->state());
  auto run = [&](const std::string& code) {
    ExecRequest request;
    request.code = code;
    ExecResult result;
    RunSnippet(lease->get(), request, 1 << 20, json::object(), result);
    return result;
  };
  ExecResult first =
      run("import sys, io\n"
          "print('first')\n"
          "sys.stdout = None\nsys.__stdout__ = io.StringIO()\n"
          "sys.stderr = io.StringIO()\nsys.__stderr__ = None\n");
  EXPECT_TRUE(first.ok);
  EXPECT_EQ(first.stdout_stream.text, "first\n");
  ExecResult second =
      run("import sys\nprint('second')\nprint('err', file=sys.stderr)\n"
          "sys.__stdout__.write('dunder')\nsys.__stderr__.write('!')\n");
  ASSERT_TRUE(second.ok) << (second.error ? second.error->traceback : "");
  EXPECT_EQ(second.stdout_stream.text, "second\ndunder");
  EXPECT_EQ(second.stderr_stream.text, "err\n!");
}

// --- Resident globals (issue 7, item 17) ---------------------------------------------

// Globals a call assigns do not persist whichever function assigns them, also when a
// finalizer triggered by dropping them assigns one; module state mutated in place does.
TEST_F(RunnerTest, ResidentCallsRestoreTheModuleBindings) {
  absl::StatusOr<InterpreterLease> lease = pool_->Acquire();
  ASSERT_TRUE(lease.ok());
  ThreadStateScope scope((*lease)->state());
  CompiledTool tool;
  ASSERT_FALSE(CompileTool(lease->get(), "g", R"(
import functools
count = 0
seen = []
class Noisy:
    def __del__(self):
        global leaked
        leaked = True
def helper():
    global count, noisy
    count += 1
    noisy = Noisy()
def deco(f):
    @functools.wraps(f)
    def wrapper(args):
        return f(args)
    return wrapper
@deco
def run(args):
    helper()
    seen.append(count)
    return [count, 'leaked' in globals(), len(seen)]
)",
                           tool));
  ToolModule module;
  ASSERT_FALSE(LoadToolModule(lease->get(), tool, json::object(), module));
  for (int call = 1; call <= 3; ++call) {
    ToolCallResult result;
    CallToolRun(lease->get(), tool, module, json::object(), /*isolate_globals=*/true, 1024, result);
    EXPECT_EQ(result.envelope, json({{"ok", true}, {"data", {1, false, call}}})) << call;
  }
}

}  // namespace
}  // namespace pyhost

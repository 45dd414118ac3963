// End-to-end tests of the `pyhost` command (exec, call, serve): every test spawns the
// real binary with pipes on stdin, stdout and stderr, and checks its exit status and
// what it printed.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

#ifndef PYHOST_BINARY
#error "PYHOST_BINARY must name the pyhost executable"
#endif

// ---------------------------------------------------------------------------------
// Running the binary.

// A file descriptor closed when it goes out of scope.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Close();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~Fd() { Close(); }
  int get() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

struct Pipe {
  Fd read, write;
  static Pipe Make() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return {};
    }
    Pipe pipe;
    pipe.read = Fd(fds[0]);
    pipe.write = Fd(fds[1]);
    return pipe;
  }
};

// A spawned process; one still running when this goes out of scope is killed and
// reaped (only this process, by its pid).
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  void set_pid(pid_t pid) { pid_ = pid; }
  pid_t pid() const { return pid_; }
  void Kill() {
    if (pid_ > 0) ::kill(pid_, SIGKILL);
  }
  // Waits for the child; returns its wait status.
  int Wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
};

struct Outcome {
  pid_t pid = -1;
  bool exited = false;  // false: killed by a signal (see term_signal) or not started
  int exit_code = -1;
  int term_signal = 0;
  bool timed_out = false;
  std::string out;
  std::string err;

  std::string Describe() const {
    std::ostringstream text;
    if (timed_out) text << "TIMED OUT; ";
    if (exited) {
      text << "exit " << exit_code;
    } else {
      text << "killed by signal " << term_signal << " (" << strsignal(term_signal) << ")";
    }
    text << "\n--- stdout ---\n" << out.substr(0, 4000) << "\n--- stderr ---\n"
         << err.substr(0, 4000);
    return text.str();
  }
};

// A signal sent to the command while it runs.
struct Interrupt {
  int signal = 0;  // none
  std::chrono::milliseconds after{0};
  bool keep_stdin_open = false;  // the input does not end before the signal
  bool close_stdout = false;     // the command's reader goes away at once (EPIPE)
};

// Runs `pyhost ARGS...` with INPUT on its standard input; gives up (and kills it)
// after TIMEOUT.
Outcome RunPyhost(const std::vector<std::string>& args, const std::string& input = "",
                  std::chrono::milliseconds timeout = std::chrono::seconds(30),
                  const Interrupt& interrupt = {}) {
  Outcome outcome;
  Pipe in = Pipe::Make(), out = Pipe::Make(), err = Pipe::Make();
  if (!in.read.open() || !out.read.open() || !err.read.open()) return outcome;

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 clears O_CLOEXEC on the target; every other pipe end closes at exec.
  posix_spawn_file_actions_adddup2(&actions, in.read.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out.write.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err.write.get(), STDERR_FILENO);

  std::vector<std::string> argv_strings = {PYHOST_BINARY};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);

  Child child;
  pid_t pid = -1;
  int spawned = ::posix_spawn(&pid, PYHOST_BINARY, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    ADD_FAILURE() << "posix_spawn " << PYHOST_BINARY << ": " << std::strerror(spawned);
    return outcome;
  }
  child.set_pid(pid);
  outcome.pid = pid;
  in.read.Close();
  out.write.Close();
  err.write.Close();
  if (interrupt.close_stdout) out.read.Close();

  ::fcntl(in.write.get(), F_SETFL, ::fcntl(in.write.get(), F_GETFL) | O_NONBLOCK);
  size_t written = 0;
  if (input.empty() && !interrupt.keep_stdin_open) in.write.Close();

  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + timeout;
  bool signalled = interrupt.signal == 0;
  while (out.read.open() || err.read.open()) {
    if (!signalled && std::chrono::steady_clock::now() >= start + interrupt.after) {
      ::kill(pid, interrupt.signal);
      signalled = true;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      outcome.timed_out = true;
      child.Kill();
      break;
    }
    std::vector<pollfd> fds;
    if (out.read.open()) fds.push_back({out.read.get(), POLLIN, 0});
    if (err.read.open()) fds.push_back({err.read.get(), POLLIN, 0});
    if (in.write.open() && written < input.size()) fds.push_back({in.write.get(), POLLOUT, 0});
    int wait_ms = static_cast<int>(left.count());
    if (!signalled) wait_ms = std::min(wait_ms, 10);
    int ready = ::poll(fds.data(), fds.size(), wait_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      ADD_FAILURE() << "poll: " << std::strerror(errno);
      child.Kill();
      break;
    }
    for (const pollfd& p : fds) {
      if (p.revents == 0) continue;
      if (p.fd == in.write.get()) {
        ssize_t n = ::write(p.fd, input.data() + written, input.size() - written);
        if (n > 0) written += static_cast<size_t>(n);
        if ((n < 0 && errno != EAGAIN && errno != EINTR) ||
            (written == input.size() && !interrupt.keep_stdin_open)) {
          in.write.Close();  // done, or the child closed its end (EPIPE)
        }
        continue;
      }
      Fd& source = p.fd == out.read.get() ? out.read : err.read;
      std::string& sink = p.fd == out.read.get() ? outcome.out : outcome.err;
      char buffer[65536];
      ssize_t n = ::read(p.fd, buffer, sizeof buffer);
      if (n > 0) {
        sink.append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        source.Close();
      }
    }
  }
  in.write.Close();
  int status = child.Wait();
  if (WIFEXITED(status)) {
    outcome.exited = true;
    outcome.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    outcome.term_signal = WTERMSIG(status);
  }
  return outcome;
}

// The one JSON object a one-shot command prints: stdout must be exactly one line.
json OnlyJson(const Outcome& run) {
  const std::string& out = run.out;
  if (out.empty() || out.back() != '\n' || std::count(out.begin(), out.end(), '\n') != 1) {
    ADD_FAILURE() << "stdout is not exactly one line\n" << run.Describe();
    return json::object();
  }
  json parsed = json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    ADD_FAILURE() << "stdout is not one JSON object\n" << run.Describe();
    return json::object();
  }
  return parsed;
}

// The answers of `pyhost serve`, one JSON object per stdout line, by id (as dumped
// JSON: 1 -> "1", "a" -> "\"a\""). Every line must be an object with a unique id.
std::map<std::string, json> AnswersById(const Outcome& run) {
  std::map<std::string, json> answers;
  std::istringstream lines(run.out);
  std::string line;
  while (std::getline(lines, line)) {
    json answer = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (answer.is_discarded() || !answer.is_object() || !answer.contains("id")) {
      ADD_FAILURE() << "stdout line is not an answer object with an id: " << line;
      continue;
    }
    std::string id = answer["id"].dump();
    if (!answers.emplace(id, answer).second) ADD_FAILURE() << "two answers for id " << id;
  }
  if (!run.out.empty() && run.out.back() != '\n') ADD_FAILURE() << "last answer has no newline";
  return answers;
}

// JSON lines for `pyhost serve`.
std::string Lines(const std::vector<json>& requests) {
  std::string text;
  for (const json& request : requests) text += request.dump() + "\n";
  return text;
}

size_t CountLines(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

// A scratch directory, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "pyhost_cli_test.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    }
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string Write(const std::string& name, const std::string& content) const {
    std::filesystem::path file = path_ / name;
    std::ofstream(file, std::ios::binary) << content;
    return file.string();
  }
  std::string PathOf(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }
  TempDir dir_;
};

using ExecTest = CliTest;
using UsageTest = CliTest;
using CallTest = CliTest;
using ServeTest = CliTest;

// ---------------------------------------------------------------------------------
// pyhost exec

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
  Outcome run = RunPyhost({"exec", "--max-output-bytes", "10", "-c",
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
  Outcome run = RunPyhost({"exec", "--args", R"({"present": 1})", "-c", "result = args['missing']"});
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

// ---------------------------------------------------------------------------------
// Usage errors: exit 2, a message on stderr, nothing on stdout.

struct UsageCase {
  std::string name;
  std::vector<std::string> args;
  std::string stderr_has;
};

void PrintTo(const UsageCase& c, std::ostream* os) { *os << c.name; }

class UsageErrorTest : public ::testing::TestWithParam<UsageCase> {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }
};

TEST_P(UsageErrorTest, ExitsTwoWithMessage) {
  const UsageCase& c = GetParam();
  Outcome run = RunPyhost(c.args);
  EXPECT_TRUE(run.exited && run.exit_code == 2) << run.Describe();
  EXPECT_THAT(run.out, IsEmpty());
  EXPECT_THAT(run.err, HasSubstr(c.stderr_has)) << run.Describe();
}

INSTANTIATE_TEST_SUITE_P(
    Cli, UsageErrorTest,
    ::testing::Values(
        UsageCase{"NoCommand", {}, "missing command"},
        UsageCase{"UnknownCommand", {"frobnicate"}, "unknown command 'frobnicate'"},
        UsageCase{"ExecBadArgsJson", {"exec", "--args", "{bad", "-c", "1"}, "--args is not valid JSON"},
        UsageCase{"ExecMissingCode", {"exec"}, "exec needs -c CODE, FILE or -"},
        UsageCase{"ExecMissingCodeWithArgs", {"exec", "--args", "{}"}, "exec needs"},
        UsageCase{"ExecDashCWithoutCode", {"exec", "-c"}, "-c needs the code"},
        UsageCase{"ExecTwoCodes", {"exec", "-c", "1", "-c", "2"}, "one of -c CODE, FILE or -"},
        UsageCase{"ExecUnknownFlag", {"exec", "--bogus", "1", "-c", "1"}, "unknown flag --bogus"},
        UsageCase{"ExecFlagWithoutValue", {"exec", "-c", "1", "--args"}, "--args needs a value"},
        UsageCase{"ExecMissingFile", {"exec", "/nonexistent/pyhost_cli_test/missing.py"},
                  "cannot read '/nonexistent/pyhost_cli_test/missing.py'"},
        UsageCase{"ExecBadIsolation", {"exec", "--isolation", "bogus", "-c", "1"}, "unknown isolation 'bogus'"},
        UsageCase{"ExecZeroMaxOutput", {"exec", "--max-output-bytes", "0", "-c", "1"}, "positive integer"},
        UsageCase{"ExecNonNumericTimeout", {"exec", "--timeout-ms", "soon", "-c", "1"}, "positive integer"},
        // Flags accepted on the command line but not enforced yet: refused, never ignored.
        UsageCase{"UnknownPolicy", {"exec", "--policy", "lenient", "-c", "1"}, "unknown policy 'lenient'"},
        UsageCase{"MissingPolicyFile", {"exec", "--policy", "/nonexistent/p.json", "-c", "1"},
                  "cannot read policy file"},
        UsageCase{"TimeoutNotImplemented", {"exec", "--timeout-ms", "100", "-c", "1"}, "not implemented yet"},
        UsageCase{"CpuNotImplemented", {"exec", "--cpu-ms", "100", "-c", "1"}, "not implemented yet"},
        UsageCase{"MemoryNotImplemented", {"exec", "--memory-mb", "64", "-c", "1"}, "not implemented yet"},
        UsageCase{"ProcessIsolationNotImplemented", {"exec", "--isolation", "process", "-c", "1"},
                  "not implemented yet"},
        UsageCase{"CallMissingFile", {"call", "/nonexistent/pyhost_cli_test/tool.py"}, "cannot read"},
        UsageCase{"CallNoFile", {"call"}, "call needs a FILE"},
        UsageCase{"CallUnknownFlag", {"call", "x.py", "--bogus", "1"}, "call: unknown flag --bogus"},
        UsageCase{"CallBadIsolation", {"call", "x.py", "--isolation", "bogus"}, "unknown isolation"},
        UsageCase{"ServeUnknownFlag", {"serve", "--bogus", "1"}, "serve: unknown flag --bogus"},
        UsageCase{"ServeZeroWorkers", {"serve", "--workers", "0"}, "--workers takes 1 to 256"},
        UsageCase{"ServeTooManyWorkers", {"serve", "--workers", "1000"}, "--workers takes 1 to 256"}),
    [](const ::testing::TestParamInfo<UsageCase>& info) { return info.param.name; });

TEST_F(UsageTest, HelpExitsZero) {
  Outcome run = RunPyhost({"--help"});
  EXPECT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_THAT(run.out, HasSubstr("usage:"));
  EXPECT_THAT(run.out, HasSubstr("pyhost serve"));
}

TEST_F(UsageTest, NotImplementedFlagsDoNotRunTheCode) {
  // The snippet would print; a refused request must not have run it at all.
  Outcome run = RunPyhost({"exec", "--timeout-ms", "100", "-c", "print('ran anyway')"});
  EXPECT_TRUE(run.exited && run.exit_code == 2) << run.Describe();
  EXPECT_THAT(run.out, IsEmpty());
  EXPECT_THAT(run.err, ::testing::Not(HasSubstr("ran anyway")));
}

// ---------------------------------------------------------------------------------
// pyhost call

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
  std::string tool = dir_.Write("pass.py", "def run(args):\n    return {'ok': True, 'items': [1, 2]}\n");
  Outcome run = RunPyhost({"call", tool});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(OnlyJson(run), json::parse(R"({"ok": true, "items": [1, 2]})"));
}

TEST_F(CallTest, DictWithOkFalsePassesThroughAndExitsOne) {
  std::string tool = dir_.Write("refuse.py", "def run(args):\n    return {'ok': False, 'why': 'custom'}\n");
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
  EXPECT_THAT(envelope["error"]["traceback"].get<std::string>(), HasSubstr("ValueError: bad value"));
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
  std::string tool = dir_.Write("importfail.py", "import no_such_module_xyz\ndef run(args):\n    return 1\n");
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

TEST_F(CallTest, IsolationProcessIsNotImplemented) {
  std::string tool = dir_.Write("mul.py", "def run(args):\n    return 1\n");
  Outcome run = RunPyhost({"call", tool, "--isolation", "process"});
  EXPECT_TRUE(run.exited && run.exit_code == 2) << run.Describe();
  EXPECT_THAT(run.out, IsEmpty());
  EXPECT_THAT(run.err, HasSubstr("not implemented yet"));
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
    std::string tool = dir_.Write("okval.py", std::string("def run(args):\n    return {'ok': ") +
                                                  ok + ", 'v': 1}\n");
    Outcome run = RunPyhost({"call", tool});
    EXPECT_TRUE(run.exited) << run.Describe();
    EXPECT_TRUE(run.exit_code == 0 || run.exit_code == 1) << run.Describe();
    EXPECT_TRUE(OnlyJson(run).is_object());
  }
}

// ---------------------------------------------------------------------------------
// pyhost serve

TEST_F(ServeTest, RegisterThenCallAndExec) {
  std::vector<json> requests = {
      {{"id", 1}, {"op", "register"}, {"name", "wc"},
       {"source", "def run(args):\n    print('counting')\n    return len(args['text'].split())\n"}},
      {{"id", 2}, {"op", "call"}, {"name", "wc"}, {"args", {{"text", "a b c"}}}},
      {{"id", "three"}, {"op", "exec"}, {"code", "print('hi')\nresult = sum(args['xs'])"},
       {"args", {{"xs", {1, 2, 3}}}}},
  };
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(CountLines(run.out), 3u) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 3u) << run.Describe();

  EXPECT_EQ(answers["1"], json::parse(R"({"id": 1, "ok": true, "name": "wc"})"));

  json call = answers["2"];
  EXPECT_EQ(call["ok"], true) << call.dump();
  EXPECT_EQ(call["data"], 3) << call.dump();
  EXPECT_EQ(call["stdout"], "counting\n") << call.dump();
  EXPECT_EQ(call["stats"]["isolation"], "fresh") << call.dump();

  json exec = answers["\"three\""];
  EXPECT_EQ(exec["ok"], true) << exec.dump();
  EXPECT_EQ(exec["result"], 6) << exec.dump();
  EXPECT_EQ(exec["stdout"], "hi\n") << exec.dump();
  EXPECT_TRUE(exec["error"].is_null()) << exec.dump();
  EXPECT_EQ(exec["stats"]["isolation"], "fresh") << exec.dump();
}

TEST_F(ServeTest, EmptyInputExitsZero) {
  Outcome run = RunPyhost({"serve"});
  EXPECT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_THAT(run.out, IsEmpty());
}

TEST_F(ServeTest, BadRequestsGetErrorsAndTheServerGoesOn) {
  std::string input;
  input += "this is not json\n";                                                   // line 1
  input += R"({"id": 1, "op": "frobnicate"})" "\n";                                // line 2
  input += R"({"id": 2, "op": "exec"})" "\n";                                      // line 3
  input += R"({"id": 3, "op": "call"})" "\n";                                      // line 4
  input += R"({"id": 4, "op": "call", "name": "nope"})" "\n";                      // line 5
  input += R"({"id": 5, "op": "register", "name": "bad", "source": "def run(args:\n  pass"})" "\n";
  input += R"({"id": 6, "op": "register", "source": "def run(args): return 1"})" "\n";
  input += R"({"id": 7})" "\n";                                                    // line 8
  input += "[1, 2]\n";                                                             // line 9
  input += "\n   \n";                                                              // blank: no answer
  input += R"({"id": 8, "op": "exec", "code": 42})" "\n";
  input += R"({"id": 9, "op": "exec", "code": "result = args['k']", "args": {}})" "\n";
  input += R"({"id": 10, "op": "exec", "code": "result = 'still serving'"})" "\n";
  input += R"({"id": 11, "op": "call", "name": "bad"})" "\n";
  Outcome run = RunPyhost({"serve"}, input);
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(CountLines(run.out), 13u) << run.Describe();  // blank lines get no answer

  // Answers to lines that are not objects carry id null: match them by message.
  std::vector<std::string> null_id_messages;
  std::map<std::string, json> answers;
  std::istringstream lines(run.out);
  std::string line;
  while (std::getline(lines, line)) {
    json answer = json::parse(line, nullptr, false);
    ASSERT_TRUE(answer.is_object()) << line;
    if (answer["id"].is_null()) {
      EXPECT_EQ(answer["ok"], false) << line;
      EXPECT_EQ(answer["error"]["type"], "BadRequest") << line;
      null_id_messages.push_back(answer["error"]["message"]);
    } else {
      answers[answer["id"].dump()] = answer;
    }
  }
  EXPECT_THAT(null_id_messages, ::testing::UnorderedElementsAre("line 1 is not a JSON object",
                                                                "line 9 is not a JSON object"));
  auto expect_error = [&](const std::string& id, const std::string& type,
                          const std::string& message_has) {
    SCOPED_TRACE("id " + id);
    ASSERT_EQ(answers.count(id), 1u) << run.Describe();
    const json& answer = answers[id];
    EXPECT_EQ(answer["ok"], false) << answer.dump();
    ASSERT_TRUE(answer["error"].is_object()) << answer.dump();
    EXPECT_EQ(answer["error"]["type"], type) << answer.dump();
    EXPECT_THAT(answer["error"]["message"].get<std::string>(), HasSubstr(message_has));
  };
  expect_error("1", "BadRequest", "unknown op \"frobnicate\"");
  expect_error("2", "BadRequest", "missing field 'code'");
  expect_error("3", "BadRequest", "missing field 'name'");
  expect_error("4", "NotFound", "no tool named 'nope'");
  expect_error("5", "ToolLoadError", "SyntaxError");
  expect_error("6", "BadRequest", "missing field 'name'");
  expect_error("7", "BadRequest", "missing field 'op'");
  expect_error("8", "BadRequest", "field 'code' must be a string");
  expect_error("9", "KeyError", "k");
  EXPECT_THAT(answers["9"]["error"]["hint"].get<std::string>(), HasSubstr("args"));
  EXPECT_EQ(answers["9"]["error"]["line"], 1);
  expect_error("11", "NotFound", "no tool named 'bad'");  // the failed register left nothing

  ASSERT_EQ(answers.count("10"), 1u);
  EXPECT_EQ(answers["10"]["ok"], true) << answers["10"].dump();
  EXPECT_EQ(answers["10"]["result"], "still serving");
}

TEST_F(ServeTest, ExecFailuresAreAnswers) {
  std::vector<json> requests = {
      {{"id", 1}, {"op", "exec"}, {"code", "import sys\nsys.exit(3)"}},
      {{"id", 2}, {"op", "exec"}, {"code", "raise KeyboardInterrupt"}},
      {{"id", 3}, {"op", "exec"}, {"code", "result = {1, 2}"}},
      {{"id", 4}, {"op", "exec"}, {"code", "x = (\n"}},
      {{"id", 5}, {"op", "exec"}, {"code", "result = 'alive'"}},
  };
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 5u) << run.Describe();
  EXPECT_EQ(answers["1"]["error"]["type"], "SystemExit");
  EXPECT_EQ(answers["2"]["error"]["type"], "KeyboardInterrupt");
  EXPECT_EQ(answers["3"]["error"]["type"], "ResultNotSerializable");
  EXPECT_EQ(answers["4"]["error"]["type"], "SyntaxError");
  EXPECT_EQ(answers["4"]["error"]["line"], 1);
  for (const char* id : {"1", "2", "3", "4"}) EXPECT_EQ(answers[id]["ok"], false) << id;
  EXPECT_EQ(answers["5"]["ok"], true);
  EXPECT_EQ(answers["5"]["result"], "alive");
}

TEST_F(ServeTest, RequestWithoutIdIsAnsweredWithNullId) {
  Outcome run = RunPyhost({"serve"}, R"({"op": "exec", "code": "result = 5"})" "\n");
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_TRUE(answer.contains("id") && answer["id"].is_null()) << answer.dump();
  EXPECT_EQ(answer["result"], 5);
}

// A line of 70,000 nested arrays (140 KB) overflowed the stack while it was parsed,
// copied, dumped or converted: depth is bounded where the text enters.
TEST_F(ServeTest, DeeplyNestedLinesAreRefusedAndTheServerGoesOn) {
  std::string deep = std::string(70000, '[') + std::string(70000, ']');
  std::string limit = std::string(256, '[') + std::string(256, ']');  // values may nest 256
  std::string input = "{\"id\": " + deep + ", \"op\": \"exec\", \"code\": \"1\"}\n" +
                      "{\"id\": 2, \"op\": \"exec\", \"code\": \"1\", \"args\": {\"x\": " + deep + "}}\n" +
                      "{\"id\": 3, \"op\": \"exec\", \"code\": \"result = args\", \"args\": " + limit + "}\n" +
                      R"({"id": 4, "op": "exec", "code": "result = 'alive'"})" "\n";
  Outcome run = RunPyhost({"serve"}, input);
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  ASSERT_EQ(CountLines(run.out), 4u) << run.Describe();
  std::istringstream lines(run.out);
  std::string line;
  int refused = 0;
  std::map<std::string, json> answers;
  while (std::getline(lines, line)) {
    json answer = json::parse(line);
    if (!answer["id"].is_null()) {
      answers[answer["id"].dump()] = answer;
      continue;
    }
    ++refused;
    EXPECT_EQ(answer["error"]["type"], "BadRequest");
    EXPECT_THAT(answer["error"]["message"].get<std::string>(),
                HasSubstr("is nested deeper than 257 levels of arrays and objects"));
  }
  EXPECT_EQ(refused, 2);
  EXPECT_EQ(answers["3"]["result"], json::parse(limit)) << answers["3"].dump().substr(0, 500);
  EXPECT_EQ(answers["4"]["result"], "alive");
}

// nlohmann::json keeps an integer literal past 64 bits as a double: ids stopped
// matching and args lost precision. Exact, or refused with a clear error; the answer's
// id is the request's own or, if that cannot be kept, null (and the message says so).
TEST_F(ServeTest, IntegersPast64BitsAreKeptExactOrRefusedNeverRounded) {
  std::string input =
      R"({"id": 123456789012345678901234567890, "op": "exec", "code": "result = 1"})" "\n"
      R"({"id": 18446744073709551615, "op": "exec", "code": "result = args", "args": {"n": 18446744073709551615}})" "\n"
      R"({"id": -9223372036854775808, "op": "exec", "code": "result = args['n'] - 1", "args": {"n": -9223372036854775807}})" "\n"
      R"({"id": 4, "op": "exec", "code": "result = 1", "args": {"n": 18446744073709551616}})" "\n"
      R"({"id": 5, "op": "call", "name": "x", "args": [99999999999999999999999]})" "\n"
      R"({"id": 6, "op": "exec", "code": "result = 1", "max_output_bytes": 18446744073709551616})" "\n"
      R"({"id": 7, "op": "exec", "code": "result = 1", "policy": {"extends": "strict", "limits": {"timeout_ms": 99999999999999999999}}})" "\n"
      R"({"id": 8, "op": "exec", "code": "result = [2**64 - 1, -2**63, 2**64]"})" "\n";
  Outcome run = RunPyhost({"serve"}, input);
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 8u) << run.Describe();
  EXPECT_THAT(answers["null"]["error"]["message"].get<std::string>(),
              HasSubstr("field 'id' holds the integer 123456789012345678901234567890"));
  EXPECT_THAT(answers["null"]["error"]["message"].get<std::string>(), HasSubstr("id is null"));
  EXPECT_EQ(answers["18446744073709551615"]["result"].dump(), R"({"n":18446744073709551615})");
  EXPECT_EQ(answers["-9223372036854775808"]["result"].dump(), "-9223372036854775808");
  for (const auto& [id, field] : std::map<std::string, std::string>{
           {"4", "args.n: integer 18446744073709551616"},
           {"5", "args[0]: integer 99999999999999999999999"},
           {"6", "max_output_bytes: integer 18446744073709551616"},
           {"7", "policy.limits.timeout_ms: integer 99999999999999999999"}}) {
    EXPECT_EQ(answers[id]["error"]["type"], "BadRequest") << answers[id].dump();
    EXPECT_THAT(answers[id]["error"]["message"].get<std::string>(),
                HasSubstr(field + " does not fit in 64 bits"));
  }
  EXPECT_EQ(answers["8"]["error"]["type"], "ResultNotSerializable") << answers["8"].dump();
  EXPECT_THAT(answers["8"]["error"]["message"].get<std::string>(),
              HasSubstr("result[2]: int does not fit in 64 bits"));
}

TEST_F(ExecTest, ArgsTooDeepOrPast64BitsAreUsageErrors) {
  std::string deep = std::string(60000, '[') + std::string(60000, ']');  // one argument: < 128 KB
  Outcome too_deep = RunPyhost({"exec", "--args", deep, "-c", "result = 1"});
  ASSERT_TRUE(too_deep.exited && too_deep.exit_code == 2) << too_deep.Describe();
  EXPECT_THAT(too_deep.err, HasSubstr("--args: nested deeper than 256 levels"));
  Outcome past = RunPyhost({"exec", "--args", R"({"n": 99999999999999999999})", "-c", "result = args"});
  ASSERT_TRUE(past.exited && past.exit_code == 2) << past.Describe();
  EXPECT_THAT(past.err, HasSubstr("--args: n: integer 99999999999999999999 does not fit in 64 bits"));
}

TEST_F(ServeTest, NotImplementedFieldsAreRefused) {
  std::vector<json> requests = {
      {{"id", 1}, {"op", "exec"}, {"code", "print('ran')"}, {"timeout_ms", 100}},
      {{"id", 3}, {"op", "exec"}, {"code", "print('ran')"}, {"isolation", "process"}},
      {{"id", 5}, {"op", "exec"}, {"code", "print('ran')"}, {"memory_mb", 64}},
      {{"id", 6}, {"op", "exec"}, {"code", "print('ran')"}, {"cpu_ms", 10}},
      {{"id", 7}, {"op", "exec"}, {"code", "print('ran')"},
       {"policy", {{"extends", "strict"}, {"limits", {{"timeout_ms", 5}}}}}},
  };
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 5u) << run.Describe();
  for (auto& [id, answer] : answers) {
    EXPECT_EQ(answer["ok"], false) << answer.dump();
    EXPECT_EQ(answer["error"]["type"], "NotImplemented") << answer.dump();
    EXPECT_THAT(answer["error"]["message"].get<std::string>(), HasSubstr("not implemented yet"));
    EXPECT_FALSE(answer.contains("stdout")) << answer.dump();
  }
}

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
  Outcome run = RunPyhost({"exec", "--policy", "yolo", "-c", "result = len(open('/etc/hostname').read()) > 0"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(OnlyJson(run)["result"], true);
}

TEST_F(ExecTest, OutputDirFilesAreListed) {
  Outcome run = RunPyhost({"exec", "-c",
                           "import os\nopen(os.path.join(OUTPUT_DIR, 'hello.txt'), 'w').write('hi')\n"
                           "result = {'files': os.listdir(OUTPUT_DIR)}"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_EQ(answer["result"]["files"], json({"hello.txt"}));
  EXPECT_EQ(answer["output_files"], json({"hello.txt"}));
  std::string dir = answer["output_dir"].get<std::string>();
  std::ifstream written(dir + "/hello.txt");
  std::string text((std::istreambuf_iterator<char>(written)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "hi");
  std::filesystem::remove_all(std::filesystem::path(dir).parent_path());
}

TEST_F(UsageTest, PolicyFileWithUnknownFieldNamesIt) {
  std::string file = dir_.Write("p.json", R"({"extends": "strict", "netwrok": ["*"]})");
  Outcome run = RunPyhost({"exec", "--policy", file, "-c", "1"});
  EXPECT_TRUE(run.exited && run.exit_code == 2) << run.Describe();
  EXPECT_THAT(run.err, HasSubstr("unknown policy field 'netwrok'"));
}

TEST_F(ServeTest, PolicyAsAnObject) {
  std::vector<json> requests = {
      {{"id", 1}, {"op", "exec"}, {"code", "import csv\nresult = 1"},
       {"policy", {{"name", "tiny"}, {"imports", {{"allow", {"json"}}}}}}},
      {{"id", 2}, {"op", "exec"}, {"code", "import json\nresult = 2"},
       {"policy", {{"name", "tiny"}, {"imports", {{"allow", {"json"}}}}}}},
  };
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 2u) << run.Describe();
  EXPECT_EQ(answers["1"]["error"]["type"], "ImportError") << answers["1"].dump();
  EXPECT_THAT(answers["1"]["error"]["message"].get<std::string>(), HasSubstr("policy 'tiny'"));
  EXPECT_EQ(answers["2"]["result"], 2) << answers["2"].dump();
}

TEST_F(ServeTest, ExecFieldsAreChecked) {
  std::vector<json> requests = {
      {{"id", 1}, {"op", "exec"}, {"code", "1"}, {"timeout_ms", -5}},
      {{"id", 2}, {"op", "exec"}, {"code", "1"}, {"isolation", "bogus"}},
      {{"id", 3}, {"op", "exec"}, {"code", "print('x' * 50)"}, {"max_output_bytes", 8}},
      {{"id", 4}, {"op", "exec"}, {"code", "result = 4"}, {"isolation", "tool"}},
  };
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 4u) << run.Describe();
  EXPECT_EQ(answers["1"]["error"]["type"], "BadRequest");
  EXPECT_THAT(answers["1"]["error"]["message"].get<std::string>(), HasSubstr("timeout_ms"));
  EXPECT_EQ(answers["2"]["error"]["type"], "BadRequest");
  EXPECT_EQ(answers["3"]["ok"], true);
  EXPECT_EQ(answers["3"]["stdout_truncated"], true);
  EXPECT_LE(answers["3"]["stdout"].get<std::string>().size(), 8u);
  EXPECT_EQ(answers["4"]["result"], 4);
  EXPECT_EQ(answers["4"]["stats"]["isolation"], "resident");
}

TEST_F(ServeTest, FiftyConcurrentExecs) {
  std::vector<json> requests;
  for (int n = 0; n < 50; ++n) {
    requests.push_back({{"id", n},
                        {"op", "exec"},
                        {"code", "import time\n"
                                 "print('start', args['n'])\n"
                                 "time.sleep(0.01)\n"
                                 "print('end', args['n'])\n"
                                 "result = {'n': args['n'], 'square': args['n'] ** 2}\n"},
                        {"args", {{"n", n}}}});
  }
  Outcome run = RunPyhost({"serve", "--workers", "8"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(CountLines(run.out), 50u);
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 50u) << run.Describe();
  for (int n = 0; n < 50; ++n) {
    const json& answer = answers[std::to_string(n)];
    SCOPED_TRACE(answer.dump());
    EXPECT_EQ(answer["ok"], true);
    EXPECT_EQ(answer["result"], json({{"n", n}, {"square", n * n}}));
    // Each answer holds its own request's output, none of its neighbours'.
    EXPECT_EQ(answer["stdout"], "start " + std::to_string(n) + "\nend " + std::to_string(n) + "\n");
  }
}

TEST_F(ServeTest, ConcurrentCallsOfAResidentTool) {
  std::vector<json> requests = {
      {{"id", "reg"}, {"op", "register"}, {"name", "echo"}, {"isolation", "tool"},
       {"source", "calls = []\n"
                  "def run(args):\n"
                  "    calls.append(args['n'])\n"
                  "    print('n =', args['n'])\n"
                  "    return {'n': args['n'], 'calls_so_far': len(calls)}\n"}}};
  for (int n = 0; n < 20; ++n) {
    requests.push_back({{"id", n}, {"op", "call"}, {"name", "echo"}, {"args", {{"n", n}}}});
  }
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 21u) << run.Describe();
  EXPECT_EQ(answers["\"reg\""]["ok"], true);
  std::set<int> counts;
  for (int n = 0; n < 20; ++n) {
    const json& answer = answers[std::to_string(n)];
    SCOPED_TRACE(answer.dump());
    EXPECT_EQ(answer["ok"], true);
    EXPECT_EQ(answer["data"]["n"], n);
    EXPECT_EQ(answer["stdout"], "n = " + std::to_string(n) + "\n");
    EXPECT_EQ(answer["stats"]["isolation"], "resident");
    counts.insert(answer["data"]["calls_so_far"].get<int>());
  }
  // Module state persists in a resident tool and calls are serialized: 1..20, once each.
  EXPECT_EQ(counts.size(), 20u);
  EXPECT_EQ(*counts.begin(), 1);
  EXPECT_EQ(*counts.rbegin(), 20);
}

TEST_F(ServeTest, AnswersEverythingBeforeExitingAtEndOfInput) {
  std::vector<json> requests = {
      {{"id", "slow"}, {"op", "exec"}, {"code", "import time\ntime.sleep(0.5)\nresult = 'late'"}},
      {{"id", "fast"}, {"op", "exec"}, {"code", "result = 'early'"}},
  };
  Outcome run = RunPyhost({"serve", "--workers", "2"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 2u) << run.Describe();
  EXPECT_EQ(answers["\"slow\""]["result"], "late");
  EXPECT_EQ(answers["\"fast\""]["result"], "early");
  // Answers come as requests complete, not in request order.
  json first = json::parse(run.out.substr(0, run.out.find('\n')), nullptr, false);
  EXPECT_EQ(first["id"], "fast") << run.Describe();
}

TEST_F(ServeTest, UserStdoutNeverCorruptsTheProtocol) {
  const std::string code =
      "import sys\n"
      "print('{\"id\": 1, \"ok\": false, \"error\": {\"type\": \"Fake\"}}')\n"
      "print('{\"id\": 999, \"ok\": true}')\n"
      "sys.stdout.write('{\"id\": ')\n"  // half a line, no newline
      "sys.stdout.flush()\n"
      "sys.stderr.write('{\"id\": 998}\\n')\n"
      "result = 'genuine'\n";
  std::vector<json> requests = {
      {{"id", 1}, {"op", "exec"}, {"code", code}},
      {{"id", 2}, {"op", "register"}, {"name", "noisy"},
       {"source", "def run(args):\n    print('{\"id\": 2, \"ok\": false}')\n    return 'quiet'\n"}},
      {{"id", 3}, {"op", "call"}, {"name", "noisy"}},
      {{"id", 4}, {"op", "exec"}, {"code", "result = 4"}},
  };
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(CountLines(run.out), 4u) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 4u) << run.Describe();
  EXPECT_EQ(answers["1"]["ok"], true);
  EXPECT_EQ(answers["1"]["result"], "genuine");
  EXPECT_EQ(answers["1"]["stdout"],
            "{\"id\": 1, \"ok\": false, \"error\": {\"type\": \"Fake\"}}\n{\"id\": 999, \"ok\": true}\n{\"id\": ");
  EXPECT_EQ(answers["1"]["stderr"], "{\"id\": 998}\n");
  EXPECT_EQ(answers["2"]["ok"], true);
  EXPECT_EQ(answers["3"]["ok"], true);
  EXPECT_EQ(answers["3"]["data"], "quiet");
  EXPECT_EQ(answers["3"]["stdout"], "{\"id\": 2, \"ok\": false}\n");
  EXPECT_EQ(answers["4"]["result"], 4);
  EXPECT_THAT(run.err, ::testing::Not(HasSubstr("998")));
}

TEST_F(ServeTest, SnippetCannotReadRequestLines) {
  // The snippet's sys.stdin is not the request stream: it cannot swallow line 2. It is
  // at its end, as python3's with nothing to read: readline() gives "".
  std::vector<json> requests = {
      {{"id", 1}, {"op", "exec"}, {"code", "import sys\nresult = sys.stdin.readline()"}},
      {{"id", 2}, {"op", "exec"}, {"code", "result = 2"}},
  };
  Outcome run = RunPyhost({"serve", "--workers", "1"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 2u) << run.Describe();
  EXPECT_EQ(answers["1"]["ok"], true) << run.Describe();
  EXPECT_EQ(answers["1"]["result"], "");
  EXPECT_EQ(answers["2"]["result"], 2);
}

TEST_F(ServeTest, ReRegisterReplacesTheTool) {
  std::vector<json> requests = {
      {{"id", 1}, {"op", "register"}, {"name", "v"}, {"source", "def run(args):\n    return 'v1'\n"}},
      {{"id", 2}, {"op", "register"}, {"name", "v"}, {"source", "def run(args):\n    return 'v2'\n"}},
      {{"id", 3}, {"op", "call"}, {"name", "v"}},
  };
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 3u) << run.Describe();
  EXPECT_EQ(answers["3"]["data"], "v2");
}

TEST_F(ServeTest, RegisterRejectsBadIsolation) {
  std::vector<json> requests = {
      {{"id", 1}, {"op", "register"}, {"name", "t"}, {"source", "def run(args): return 1"},
       {"isolation", "bogus"}},
      {{"id", 2}, {"op", "register"}, {"name", "t"}, {"source", "def run(args): return 1"},
       {"isolation", 7}},
  };
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 2u) << run.Describe();
  for (const char* id : {"1", "2"}) {
    EXPECT_EQ(answers[id]["ok"], false) << id;
    EXPECT_EQ(answers[id]["error"]["type"], "BadRequest") << answers[id].dump();
  }
}

// A client must tell "not supported yet" from a host failure: register with process
// isolation is answered NotImplemented, as the same request to exec is.
TEST_F(ServeTest, RegisterProcessIsolationIsNotImplemented) {
  std::vector<json> requests = {
      {{"id", 1}, {"op", "register"}, {"name", "t"}, {"source", "def run(args): return 1"},
       {"isolation", "process"}},
  };
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_EQ(answer["ok"], false);
  EXPECT_THAT(answer["error"]["message"].get<std::string>(), HasSubstr("not implemented yet"));
  EXPECT_EQ(answer["error"]["type"], "NotImplemented") << answer.dump();
}

// Output written to file descriptor 1 directly (os.write, a subprocess, a C extension's
// printf) must not reach the protocol stream: here a snippet tries to forge an answer
// for its own id. The command keeps its protocol on a private descriptor.
TEST_F(ServeTest, FdLevelWriteCannotForgeAnswers) {
  std::vector<json> requests = {
      {{"id", 1}, {"op", "exec"},
       {"code", "import os\nos.write(1, b'{\"id\": 1, \"ok\": false, \"forged\": true}\\n')\nresult = 1"}},
  };
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  ASSERT_EQ(CountLines(run.out), 1u) << run.Describe();
  json answer = OnlyJson(run);
  EXPECT_FALSE(answer.contains("forged")) << run.Describe();  // the genuine answer only
  EXPECT_EQ(answer["error"]["type"], "PermissionError") << run.Describe();
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
  Outcome run = RunPyhost({"exec", "--policy", "yolo", "-c",
                           "import ctypes\nctypes.CDLL(None).write(1, b'not json\\n', 9)\nresult = 1"});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(OnlyJson(run)["result"], 1);
  EXPECT_THAT(run.err, HasSubstr("not json"));
}

// A register waits for the requests read before it (serve.h): calls sent before a
// re-register of the same name run the old source.
TEST_F(ServeTest, CallsSentBeforeReRegisterRunTheOldSource) {
  std::vector<json> requests = {
      {{"id", "r1"}, {"op", "register"}, {"name", "v"}, {"source", "def run(args):\n    return 'v1'\n"}}};
  for (int n = 0; n < 20; ++n) requests.push_back({{"id", n}, {"op", "call"}, {"name", "v"}});
  requests.push_back(
      {{"id", "r2"}, {"op", "register"}, {"name", "v"}, {"source", "def run(args):\n    return 'v2'\n"}});
  Outcome run = RunPyhost({"serve"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 22u) << run.Describe();
  for (int n = 0; n < 20; ++n) EXPECT_EQ(answers[std::to_string(n)]["data"], "v1") << n;
}

// ---------------------------------------------------------------------------------
// Issue 7, the command's items: files a user names (9, 17), serve's read-ahead (13),
// the protocol descriptors (14), output caps (16) and the small ones (17).

// Files a user names are read only if they are regular files of bounded size; the
// error names the path and why, and nothing blocks or grows without end.
INSTANTIATE_TEST_SUITE_P(
    UserFiles, UsageErrorTest,
    ::testing::Values(
        UsageCase{"ExecDirectory", {"exec", "/usr"}, "cannot read '/usr': a directory, not a regular file"},
        UsageCase{"CallDirectory", {"call", "/usr"}, "cannot read '/usr': a directory"},
        UsageCase{"ExecDevZero", {"exec", "/dev/zero"}, "'/dev/zero': a character device, not a regular file"},
        UsageCase{"CallDevZero", {"call", "/dev/zero"}, "'/dev/zero': a character device"},
        UsageCase{"PolicyDevZero", {"exec", "--policy", "/dev/zero", "-c", "1"},
                  "cannot read policy file '/dev/zero': a character device, not a regular file"},
        UsageCase{"PolicyDirectory", {"exec", "--policy", "/usr/", "-c", "1"},
                  "cannot read policy file '/usr/': a directory"},
        UsageCase{"CallPolicyDevZero", {"call", "x.py", "--policy", "/dev/zero"},
                  "policy file '/dev/zero': a character device"},
        // A flag the command does not know is unknown, also when no value follows it.
        UsageCase{"ServeUnknownFlagLast", {"serve", "--zzz"}, "serve: unknown flag --zzz"},
        UsageCase{"ExecUnknownFlagLast", {"exec", "-c", "1", "--zzz"}, "exec: unknown flag --zzz"},
        UsageCase{"CallUnknownFlagLast", {"call", "x.py", "--zzz"}, "call: unknown flag --zzz"},
        UsageCase{"ServeKnownFlagWithoutValue", {"serve", "--workers"}, "--workers needs a value"}),
    [](const ::testing::TestParamInfo<UsageCase>& info) { return info.param.name; });

TEST_F(UsageTest, FifoIsRefusedWithoutBlocking) {
  std::string fifo = dir_.PathOf("pipe");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"exec", fifo}, {"call", fifo},
        {"exec", "--policy", fifo, "-c", "1"}}) {
    Outcome run = RunPyhost(args, "", std::chrono::seconds(10));
    EXPECT_TRUE(run.exited && run.exit_code == 2) << run.Describe();
    EXPECT_THAT(run.err, HasSubstr("'" + fifo + "': a FIFO, not a regular file")) << run.Describe();
  }
}

TEST_F(UsageTest, OversizedFilesAreRefused) {
  std::string code = dir_.PathOf("big.py"), policy = dir_.PathOf("big.json");
  // Sparse files: their size is what counts, and nothing of them is read.
  ASSERT_EQ(::truncate(dir_.Write("big.py", "").c_str(), (16 << 20) + 1), 0);
  ASSERT_EQ(::truncate(dir_.Write("big.json", "").c_str(), (1 << 20) + 1), 0);
  Outcome run = RunPyhost({"exec", code});
  EXPECT_TRUE(run.exited && run.exit_code == 2) << run.Describe();
  EXPECT_THAT(run.err, HasSubstr("'" + code + "': larger than the limit of 16777216 bytes"));
  run = RunPyhost({"exec", "--policy", policy, "-c", "1"});
  EXPECT_TRUE(run.exited && run.exit_code == 2) << run.Describe();
  EXPECT_THAT(run.err, HasSubstr("policy file '" + policy + "': larger than the limit of 1048576 bytes"));
  run = RunPyhost({"exec", "-"}, std::string((16 << 20) + 1, '#'));
  EXPECT_TRUE(run.exited && run.exit_code == 2) << run.Describe();
  EXPECT_THAT(run.err, HasSubstr("standard input: more than the limit of 16777216 bytes"));
}

TEST_F(UsageTest, CodeAndPolicyAtTheLimitsAreRead) {
  std::string code = "result = 1\n" + std::string((16 << 20) - 11, '#');
  Outcome run = RunPyhost({"exec", dir_.Write("max.py", code)});
  EXPECT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::string policy = R"({"extends": "yolo"})";
  policy += std::string((1 << 20) - policy.size(), ' ');
  run = RunPyhost({"exec", "--policy", dir_.Write("max.json", policy), "-c", "result = 2"});
  EXPECT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_EQ(OnlyJson(run)["result"], 2);
}

// In serve, a request's "policy" path is a file the client named: the same rules,
// as an answer (the server goes on).
TEST_F(ServeTest, PolicyPathsThatAreNotRegularFilesAreRefused) {
  std::string fifo = dir_.PathOf("pipe");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  std::vector<json> requests;
  int id = 0;
  for (const std::string& path : {std::string("/dev/zero"), fifo, std::string("/usr/")}) {
    requests.push_back({{"id", ++id}, {"op", "exec"}, {"code", "result = 1"}, {"policy", path}});
    requests.push_back({{"id", ++id}, {"op", "register"}, {"name", "t"}, {"policy", path},
                        {"source", "def run(args):\n    return 1\n"}});
  }
  requests.push_back({{"id", ++id}, {"op", "exec"}, {"code", "result = 'still here'"}});
  Outcome run = RunPyhost({"serve"}, Lines(requests), std::chrono::seconds(20));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), static_cast<size_t>(id)) << run.Describe();
  for (int n = 1; n < id; ++n) {
    const json& answer = answers[std::to_string(n)];
    EXPECT_EQ(answer["ok"], false) << answer.dump();
    EXPECT_THAT(answer["error"]["message"].get<std::string>(), HasSubstr("not a regular file"))
        << answer.dump();
  }
  EXPECT_EQ(answers[std::to_string(id)]["result"], "still here");
}

// A NUL byte in code is python3's SyntaxError for it, with the snippet's file and line.
TEST_F(ExecTest, NulByteIsASyntaxErrorWithFileAndLine) {
  Outcome run = RunPyhost({"exec", dir_.Write("nul.py", std::string("x = 1\ny = 2\0\nz = 3\n", 18))});
  ASSERT_TRUE(run.exited && run.exit_code == 1) << run.Describe();
  json error = OnlyJson(run)["error"];
  EXPECT_EQ(error["type"], "SyntaxError") << error.dump();
  EXPECT_EQ(error["message"], "source code cannot contain null bytes") << error.dump();
  EXPECT_EQ(error["line"], 2) << error.dump();
  EXPECT_EQ(error["traceback"],
            "  File \"<code>\", line 2\n    y = 2\nSyntaxError: source code cannot contain null bytes")
      << error.dump();
}

// What prewarming prints is not any request's output.
TEST_F(ServeTest, PrewarmOutputIsDiscarded) {
  std::vector<json> requests;
  for (int n = 0; n < 6; ++n) requests.push_back({{"id", n}, {"op", "exec"}, {"code", "result = 1"}});
  requests.push_back({{"id", "r"}, {"op", "register"}, {"name", "t"},
                      {"source", "def run(args):\n    return 1\n"}});
  requests.push_back({{"id", "c"}, {"op", "call"}, {"name", "t"}});
  Outcome run = RunPyhost({"serve", "--prewarm", "this,json", "--pool-size", "2"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), requests.size()) << run.Describe();
  for (const auto& [id, answer] : answers) {
    if (id == "\"r\"") continue;
    EXPECT_EQ(answer["stdout"], "") << id << ": " << answer.dump();
  }
  EXPECT_THAT(run.err, ::testing::Not(HasSubstr("Beautiful is better")));
}

// Globals a resident call assigns do not persist, whichever function of the tool
// assigns them: run itself, a decorated run (a closure), a helper, a closure's body.
// Module state mutated in place still persists.
TEST_F(ServeTest, ResidentCallsDoNotKeepGlobalsAnyFunctionAssigns) {
  const std::string tools[] = {
      // a decorated run: functools.wraps returns a closure around the real run
      "import functools\n"
      "count = 0\n"
      "def deco(f):\n"
      "    @functools.wraps(f)\n"
      "    def wrapper(args):\n"
      "        return f(args)\n"
      "    return wrapper\n"
      "@deco\n"
      "def run(args):\n"
      "    global count\n"
      "    count += 1\n"
      "    return count\n",
      // a helper function assigning a global
      "count = 0\n"
      "def bump():\n"
      "    global count\n"
      "    count += 1\n"
      "    return count\n"
      "def run(args):\n"
      "    return bump()\n",
      // run is a closure made by a factory, assigning a global and a new one
      "count = 0\n"
      "def make(step):\n"
      "    def run(args):\n"
      "        global count, added\n"
      "        count += step\n"
      "        added = globals().get('added', 0) + 1\n"
      "        return count * 10 + added\n"
      "    return run\n"
      "run = make(1)\n",
  };
  int id = 0;
  std::vector<json> requests;
  for (size_t t = 0; t < std::size(tools); ++t) {
    std::string name = "t" + std::to_string(t);
    requests.push_back({{"id", ++id}, {"op", "register"}, {"name", name}, {"source", tools[t]},
                        {"isolation", "tool"}});
    for (int call = 0; call < 3; ++call) requests.push_back({{"id", ++id}, {"op", "call"}, {"name", name}});
  }
  requests.push_back({{"id", ++id}, {"op", "register"}, {"name", "state"}, {"isolation", "tool"},
                      {"source", "cache = []\ndef run(args):\n    cache.append(1)\n    return len(cache)\n"}});
  for (int call = 0; call < 3; ++call) requests.push_back({{"id", ++id}, {"op", "call"}, {"name", "state"}});
  Outcome run = RunPyhost({"serve", "--workers", "1"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), requests.size()) << run.Describe();
  const json expected[] = {1, 1, 11};
  for (size_t t = 0; t < std::size(tools); ++t) {
    for (int call = 0; call < 3; ++call) {
      const json& answer = answers[std::to_string(t * 4 + 2 + call)];
      EXPECT_EQ(answer["data"], expected[t]) << "tool " << t << " call " << call << ": " << answer.dump();
    }
  }
  for (int call = 0; call < 3; ++call) {
    EXPECT_EQ(answers[std::to_string(id - 2 + call)]["data"], call + 1);  // persists
  }
}

// The issue's reproducers of the output caps, end to end.
TEST_F(ExecTest, OutputCapIsOutOfTheCodesReach) {
  Outcome run = RunPyhost({"exec", "--max-output-bytes", "1000", "-c",
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

// Resident snippets and resident tools: a replaced sys.stdout does not silence the
// executions and calls after it.
TEST_F(ServeTest, ReplacedStdoutDoesNotSilenceLaterResidentExecutions) {
  std::vector<json> requests = {
      {{"id", 1}, {"op", "exec"}, {"isolation", "tool"},
       {"code", "import sys\nsys.stdout = None\nsys.stderr = None"}},
      {{"id", 2}, {"op", "exec"}, {"isolation", "tool"}, {"code", "import sys\nprint('hello')\nprint('e', file=sys.stderr)"}},
      {{"id", 3}, {"op", "register"}, {"name", "t"}, {"isolation", "tool"},
       {"source", "import sys\ndef run(args):\n    print('call', args['n'])\n    sys.stdout = None\n    return 1\n"}},
      {{"id", 4}, {"op", "call"}, {"name", "t"}, {"args", {{"n", 1}}}},
      {{"id", 5}, {"op", "call"}, {"name", "t"}, {"args", {{"n", 2}}}},
  };
  Outcome run = RunPyhost({"serve", "--workers", "1"}, Lines(requests));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), requests.size()) << run.Describe();
  EXPECT_EQ(answers["2"]["stdout"], "hello\n") << answers["2"].dump();
  EXPECT_EQ(answers["2"]["stderr"], "e\n") << answers["2"].dump();
  EXPECT_EQ(answers["4"]["stdout"], "call 1\n") << answers["4"].dump();
  EXPECT_EQ(answers["5"]["stdout"], "call 2\n") << answers["5"].dump();
}

// `pyhost serve ARGS...` fed by one thread and read by others while the test watches
// it from outside (its pid, its memory): for what RunPyhost's all-at-once cannot see.
class ServeProcess {
 public:
  // With `stdout_path`, the answers go to that file instead of a pipe.
  explicit ServeProcess(const std::vector<std::string>& args, const std::string& stdout_path = "") {
    Pipe in = Pipe::Make(), out = Pipe::Make(), err = Pipe::Make();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in.read.get(), STDIN_FILENO);
    if (stdout_path.empty()) {
      posix_spawn_file_actions_adddup2(&actions, out.write.get(), STDOUT_FILENO);
    } else {
      posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, stdout_path.c_str(),
                                       O_WRONLY | O_CREAT | O_TRUNC, 0600);
    }
    posix_spawn_file_actions_adddup2(&actions, err.write.get(), STDERR_FILENO);
    std::vector<std::string> argv_strings = {PYHOST_BINARY, "serve"};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& arg : argv_strings) argv.push_back(arg.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    int spawned = ::posix_spawn(&pid, PYHOST_BINARY, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) {
      ADD_FAILURE() << "posix_spawn: " << std::strerror(spawned);
      return;
    }
    child_.set_pid(pid);
    in_ = std::move(in.write);
    readers_.emplace_back([this, fd = std::move(out.read)] { Drain(fd.get(), out_); });
    readers_.emplace_back([this, fd = std::move(err.read)] { Drain(fd.get(), err_); });
  }
  ~ServeProcess() {
    child_.Kill();  // still running only if the test failed: unblocks the threads
    CloseInput();
    for (std::thread& thread : readers_) thread.join();
  }

  pid_t pid() const { return child_.pid(); }

  // Writes `input` from a thread, with blocking writes; written() is the progress.
  void Feed(std::string input) {
    writer_ = std::thread([this, input = std::move(input)] {
      size_t done = 0;
      while (done < input.size()) {
        // In pieces: one blocking write of everything would only return at the end.
        ssize_t n = ::write(in_.get(), input.data() + done, std::min<size_t>(input.size() - done, 65536));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += static_cast<size_t>(n);
        written_ = done;
      }
      feed_done_ = true;
    });
  }
  size_t written() const { return written_; }

  // Waits until the writer is done or has made no progress for `quiet` (the server
  // stopped reading); false if neither happened within `limit`.
  bool WaitUntilWriterDoneOrStalled(std::chrono::milliseconds quiet, std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    size_t last = written_;
    auto last_change = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() < deadline) {
      if (feed_done_) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (written_ != last) {
        last = written_;
        last_change = std::chrono::steady_clock::now();
      } else if (std::chrono::steady_clock::now() - last_change >= quiet) {
        return true;
      }
    }
    return false;
  }

  // Waits until stdout holds `lines` lines; false after `limit`.
  bool WaitForLines(size_t lines, std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (CountLines(out_) >= lines) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // A field of /proc/<pid>/status in kB (VmRSS, VmHWM), or -1.
  int64_t StatusKb(const std::string& field) const {
    std::ifstream status("/proc/" + std::to_string(pid()) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
    }
    return -1;
  }

  // Ends the input once the writer is done and waits for the exit (killing the
  // server after `limit`).
  Outcome Finish(std::chrono::seconds limit) {
    if (writer_.joinable()) writer_.join();
    CloseInput();
    Outcome outcome;
    auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    pid_t done = 0;
    while ((done = ::waitpid(pid(), &status, WNOHANG)) == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (done == 0) {
      outcome.timed_out = true;
      child_.Kill();
      status = child_.Wait();
    } else {
      child_.set_pid(-1);
    }
    for (std::thread& thread : readers_) thread.join();
    readers_.clear();
    outcome.exited = WIFEXITED(status);
    outcome.exit_code = outcome.exited ? WEXITSTATUS(status) : -1;
    outcome.term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    std::lock_guard<std::mutex> lock(mu_);
    outcome.out = out_;
    outcome.err = err_;
    return outcome;
  }

 private:
  void CloseInput() {
    if (writer_.joinable()) writer_.join();
    in_.Close();
  }
  void Drain(int fd, std::string& sink) {
    char buffer[65536];
    for (;;) {
      ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      std::lock_guard<std::mutex> lock(mu_);
      sink.append(buffer, static_cast<size_t>(n));
    }
  }

  Child child_;
  Fd in_;
  std::thread writer_;
  std::atomic<size_t> written_{0};
  std::atomic<bool> feed_done_{false};
  std::vector<std::thread> readers_;
  std::mutex mu_;
  std::string out_, err_;
};

// Serve reads ahead of what it can answer only so far: with one slow request running
// and thousands of 100 KB requests sent, the client is held back by the pipe and the
// server's memory stays bounded; every request is still answered exactly once.
TEST_F(ServeTest, ReadAheadIsBoundedWhileASlowRequestRuns) {
  const std::string marker = dir_.PathOf("go");
  constexpr int kCalls = 3000;
  const std::string pad(100 * 1000, 'p');
  std::string input = Lines({
      {{"id", "r"}, {"op", "register"}, {"name", "size"}, {"isolation", "tool"},
       {"source", "def run(args):\n    return len(args['pad'])\n"}},
      {{"id", "slow"}, {"op", "exec"},
       {"code", "import os, time\nwhile not os.path.exists(" + json(marker).dump() +
                    "):\n    time.sleep(0.01)\nresult = 'done'"}},
  });
  for (int n = 0; n < kCalls; ++n) {
    input += json({{"id", n}, {"op", "call"}, {"name", "size"}, {"args", {{"pad", pad}}}}).dump() + "\n";
  }
  ServeProcess serve({"--workers", "1", "--pool-size", "1"});
  serve.Feed(input);
  ASSERT_TRUE(serve.WaitUntilWriterDoneOrStalled(std::chrono::seconds(2), std::chrono::seconds(120)));
  int64_t rss_kb = serve.StatusKb("VmRSS");
  size_t written = serve.written();
  dir_.Write("go", "");
  Outcome run = serve.Finish(std::chrono::seconds(300));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  // Unbounded, the server held all 300 MB of requests by now (and ~25 MB bounded).
  EXPECT_GT(rss_kb, 0);
  EXPECT_LT(rss_kb, 100 * 1024) << "the server read ahead without bound";
  EXPECT_LT(written, input.size() / 2) << "the client was never held back";
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), static_cast<size_t>(kCalls + 2)) << run.Describe().substr(0, 2000);
  EXPECT_EQ(answers["\"slow\""]["result"], "done");
  for (int n = 0; n < kCalls; ++n) {
    ASSERT_EQ(answers[std::to_string(n)]["data"], 100000) << n;
  }
}

// A line longer than one request may be is skipped without being held whole, and
// answered with an error naming its line; the server goes on.
TEST_F(ServeTest, OverlongLineIsSkippedWithAnErrorAnswer) {
  std::string input = "{\"id\": 1, \"op\": \"exec\", \"code\": \"" + std::string(64 << 20, 'x') + "\"}\n";
  input += Lines({{{"id", 2}, {"op", "exec"}, {"code", "result = 'after'"}}});
  ServeProcess serve({"--pool-size", "1"});
  serve.Feed(input);
  ASSERT_TRUE(serve.WaitForLines(2, std::chrono::seconds(120)));
  int64_t peak_kb = serve.StatusKb("VmHWM");
  Outcome run = serve.Finish(std::chrono::seconds(60));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe().substr(0, 2000);
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 2u) << run.Describe().substr(0, 2000);
  const json& skipped = answers["null"];
  EXPECT_EQ(skipped["error"]["type"], "BadRequest") << skipped.dump();
  EXPECT_EQ(skipped["error"]["message"],
            "line 1 is longer than 16777216 bytes, the limit of one request; it was skipped");
  EXPECT_EQ(answers["2"]["result"], "after");
  // Held whole, the 64 MB line alone would have raised the peak past this.
  EXPECT_GT(peak_kb, 0);
  EXPECT_LT(peak_kb, 120 * 1024) << "peak RSS in kB";
}

// --- Protocol descriptors (issue 7, item 14) ----------------------------------------

// Python that tries every way found to reach the host's descriptors by a path: the
// /proc/self/fd family, /dev/fd and /dev/std*, symlinks the code makes to them, a
// dir_fd on /proc, the parent's (the client's) descriptors for the same pipes, and a
// dir_fd whose relative path a checker resolving against the cwd would misjudge.
// Reached ones are written to (a forged answer for id 2) or read from (stealing
// requests); result: what was reached.
constexpr char kReopenHostDescriptors[] = R"PY(
import os, threading
FORGED = b'{"id": 2, "ok": true, "forged": true}\n'
pid, tid, ppid = os.getpid(), threading.get_native_id(), os.getppid()
host = set()
for n in range(64):
    try:
        st = os.fstat(n)
        host.add((st.st_dev, st.st_ino))
    except OSError:
        pass
owned = set()
def dir_fd(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    owned.add(fd)
    return fd
def link(target, name):
    try:
        os.symlink(target, name)
    except PermissionError:
        pass  # strict: no link out of the roots at all (a stronger rule than the one tested)
link('/proc', WORK_DIR + '/p')
# A directory as deep as the cwd, so that "../" * depth + WORK_DIR/x names WORK_DIR/x
# from the cwd but WORK_DIR/WORK_DIR/x from that directory.
depth = len([part for part in os.getcwd().split('/') if part])
deep = WORK_DIR + '/d' * max(depth, 1)
os.makedirs(deep)
os.makedirs(WORK_DIR + WORK_DIR)
bases = [(dir_fd(base), base, rel) for base, rel in
         [('/proc/self/fd', '{n}'), ('/proc', 'self/fd/{n}'), ('/', 'proc/self/fd/{n}'),
          (WORK_DIR, 'p/self/fd/{n}'),
          (deep, '../' * max(depth, 1) + WORK_DIR.lstrip('/') + '/x{n}')]]
reached, stolen = [], []
def attempt(path, n=None, at=None, foreign=False):
    for flags in (os.O_WRONLY, os.O_RDONLY):
        try:
            fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=at)
        except OSError:  # refused (PermissionError), or nothing there
            continue
        try:
            st = os.fstat(fd)
            if foreign and (st.st_dev, st.st_ino) not in host:
                continue  # another process's own file, not one of the host's
            reached.append(path if at is None else '%s (dir_fd)' % path)
            try:
                if flags == os.O_WRONLY:
                    os.write(fd, FORGED)
                else:
                    stolen.append(os.read(fd, 65536).decode(errors='replace'))
            except OSError:
                pass
        finally:
            os.close(fd)
for n in range(64):
    if n in owned:
        continue
    for path in ['/proc/self/fd/%d', '/proc/thread-self/fd/%d', '/proc/%d/fd/%%d' % pid,
                 '/proc/%d/task/%d/fd/%%d' % (pid, tid), '/proc/%d/fd/%%d' % tid, '/dev/fd/%d',
                 '/proc/self/fd/../fd/%d', '//proc/./self//fd/%d', WORK_DIR + '/p/self/fd/%d']:
        attempt(path % n)
    link('/proc/self/fd/%d' % n, WORK_DIR + '/l%d' % n)
    attempt(WORK_DIR + '/l%d' % n)
    link('p/self/fd/%d' % n, WORK_DIR + '/r%d' % n)
    attempt(WORK_DIR + '/r%d' % n)
    link('/proc/self/fd/%d' % n, WORK_DIR + WORK_DIR + '/x%d' % n)
    for at, base, rel in bases:
        if at is not None:
            attempt(rel.format(n=n), at=at)
    attempt('/proc/%d/fd/%d' % (ppid, n), foreign=True)
for path in ['/dev/stdin', '/dev/stdout', '/dev/stderr']:
    attempt(path)
result = {'reached': sorted(set(reached)), 'stolen': stolen}
)PY";

class ProtocolDescriptorTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }
};

// Whatever the policy (yolo included: protecting the host is not a policy rule),
// code cannot reopen serve's protocol descriptors, or any other descriptor the host
// holds, by a path: no forged answer arrives, no request is stolen.
TEST_P(ProtocolDescriptorTest, HostDescriptorsCannotBeReopenedByPath) {
  std::vector<json> requests = {
      {{"id", 1}, {"op", "exec"}, {"policy", GetParam()}, {"code", kReopenHostDescriptors}},
      {{"id", 2}, {"op", "exec"}, {"code", "result = 'genuine'"}},
  };
  Outcome run = RunPyhost({"serve", "--workers", "1"}, Lines(requests), std::chrono::seconds(120));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(CountLines(run.out), 2u) << run.Describe();
  ASSERT_EQ(answers["1"]["ok"], true) << answers["1"].dump();
  EXPECT_EQ(answers["1"]["result"]["reached"], json::array()) << answers["1"].dump();
  EXPECT_EQ(answers["1"]["result"]["stolen"], json::array()) << answers["1"].dump();
  EXPECT_FALSE(answers["2"].contains("forged")) << answers["2"].dump();
  EXPECT_EQ(answers["2"]["result"], "genuine") << answers["2"].dump();
}

INSTANTIATE_TEST_SUITE_P(Policies, ProtocolDescriptorTest, ::testing::Values("yolo", "strict"),
                         [](const auto& info) { return info.param; });

// Where processes are allowed (yolo), a child cannot be handed a host descriptor:
// as its stdout (subprocess), in pass_fds, or through posix_spawn's file actions.
TEST_F(ServeTest, ChildProcessesAreNotHandedHostDescriptors) {
  constexpr char kCode[] = R"PY(
import os, subprocess
FORGED = '{"id": 2, "ok": true, "forged": true}'
refused, ran = [], []
def attempt(label, call):
    try:
        call()
        ran.append(label)
    except PermissionError:
        refused.append(label)
    except OSError:  # the host closed that descriptor meanwhile (its threads open and close some)
        refused.append(label)
def is_open(n):
    try:
        os.fstat(n)
        return True
    except OSError:
        return False
host_fds = [n for n in range(64) if is_open(n)]  # the code has opened nothing yet
for n in host_fds:
    attempt('stdout=%d' % n, lambda: subprocess.run(['/bin/sh', '-c', 'echo ' + repr(FORGED)], stdout=n, stderr=subprocess.DEVNULL))
    attempt('stdin=%d' % n, lambda: subprocess.run(['/bin/true'], stdin=n))
    attempt('pass_fds=%d' % n, lambda: subprocess.run(['/bin/sh', '-c', 'echo %s >&%d' % (repr(FORGED), n)], pass_fds=[n], stderr=subprocess.DEVNULL))
    attempt('spawn dup2 %d' % n, lambda: os.waitpid(os.posix_spawn('/bin/sh', ['sh', '-c', 'echo ' + repr(FORGED)], {}, file_actions=[(os.POSIX_SPAWN_DUP2, n, 1)]), 0))
    attempt('spawn open %d' % n, lambda: os.waitpid(os.posix_spawn('/bin/sh', ['sh', '-c', 'echo ' + repr(FORGED)], {}, file_actions=[(os.POSIX_SPAWN_OPEN, 1, '/proc/self/fd/%d' % n, os.O_WRONLY, 0)]), 0))
# What the code made itself still works.
r, w = os.pipe()
subprocess.run(['/bin/bash', '-c', 'echo mine >&%d' % w], pass_fds=[w])  # dash: fds 0-9 only
os.close(w)
own = os.read(r, 100).decode()
out = subprocess.run(['/bin/echo', 'captured'], capture_output=True).stdout.decode()
result = {'ran': ran, 'refused': len(refused) == 5 * len(host_fds), 'own': own, 'out': out}
)PY";
  std::vector<json> requests = {
      {{"id", 1}, {"op", "exec"}, {"policy", "yolo"}, {"code", kCode}},
      {{"id", 2}, {"op", "exec"}, {"code", "result = 'genuine'"}},
  };
  Outcome run = RunPyhost({"serve", "--workers", "1"}, Lines(requests), std::chrono::seconds(120));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  ASSERT_EQ(CountLines(run.out), 2u) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_TRUE(answers["1"]["result"].is_object()) << answers["1"].dump();
  const json& result = answers["1"]["result"];
  EXPECT_EQ(result["ran"], json::array()) << answers["1"].dump();
  EXPECT_EQ(result["refused"], true) << answers["1"].dump();
  EXPECT_EQ(result["own"], "mine\n") << answers["1"].dump();
  EXPECT_EQ(result["out"], "captured\n") << answers["1"].dump();
  EXPECT_EQ(answers["2"]["result"], "genuine") << answers["2"].dump();
}

// Answers going to a regular file (pyhost serve > answers.jsonl): the file cannot be
// opened, truncated or linked by its name, nor its descriptor mapped, to forge or
// corrupt answers, under yolo too.
TEST_F(ServeTest, AnswersFileCannotBeReachedByNameOrMapping) {
  const std::string answers_path = dir_.PathOf("answers.jsonl");
  constexpr char kCode[] = R"PY(
import mmap, os
FORGED = b'{"id": 9, "ok": true, "forged": true}\n'
path = args['answers']
fds = [n for n in range(64) if os.path.exists('/proc/self/fd/%d' % n) and
       os.readlink('/proc/self/fd/%d' % n) == path]
reached = []
def attempt(how, act):
    try:
        act()
        reached.append(how)
    except PermissionError:
        pass  # refused
    except OSError:
        pass  # not possible here anyway (a link across file systems)
def link_then_append():
    os.link(path, WORK_DIR + '/hard')
    with open(WORK_DIR + '/hard', 'ab') as f:
        f.write(FORGED)
def symlink_then_append():
    os.symlink(path, WORK_DIR + '/soft')
    with open(WORK_DIR + '/soft', 'ab') as f:
        f.write(FORGED)
attempt('append by name', lambda: open(path, 'ab').write(FORGED))
attempt('overwrite by name', lambda: open(path, 'r+b').write(b'X'))
attempt('read by name', lambda: open(path, 'rb').read())
attempt('truncate by name', lambda: os.truncate(path, 0))
attempt('hard link', link_then_append)
attempt('symlink', symlink_then_append)
for n in fds:
    attempt('mmap %d' % n, lambda: mmap.mmap(n, os.fstat(n).st_size, access=mmap.ACCESS_WRITE).write(b'X'))
result = {'found': len(fds) > 0, 'reached': reached}
)PY";
  ServeProcess serve({"--workers", "1"}, answers_path);
  serve.Feed(Lines({
      {{"id", 1}, {"op", "exec"}, {"code", "result = 'first'"}},
      {{"id", 2}, {"op", "exec"}, {"policy", "yolo"}, {"args", {{"answers", answers_path}}}, {"code", kCode}},
      {{"id", 3}, {"op", "exec"}, {"code", "result = 'last'"}},
  }));
  Outcome run = serve.Finish(std::chrono::seconds(60));
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  std::ifstream file(answers_path);
  run.out.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  ASSERT_EQ(CountLines(run.out), 3u) << run.out.substr(0, 3000);
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 3u) << run.out.substr(0, 3000);
  EXPECT_EQ(answers["1"]["result"], "first");
  EXPECT_EQ(answers["2"]["result"]["found"], true) << answers["2"].dump();
  EXPECT_EQ(answers["2"]["result"]["reached"], json::array()) << answers["2"].dump();
  EXPECT_EQ(answers["3"]["result"], "last");
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
  std::filesystem::create_directory_symlink(farm.parent_path(), farm.string() + farm.string() + "/host");
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
  Outcome run = RunPyhost({"exec", "--policy", policy, "--args",
                           json({{"canary", canary}, {"farm", farm.string()}}).dump(), "-c", kCode});
  ASSERT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  json result = OnlyJson(run)["result"];
  EXPECT_EQ(result["read"], "denied") << result.dump();
  EXPECT_EQ(result["remove"], "denied") << result.dump();
  EXPECT_EQ(result["rename"], "denied") << result.dump();
  EXPECT_EQ(result["link"], "denied") << result.dump();
  EXPECT_EQ(result["inside"], json::array()) << result.dump();
  std::ifstream still(canary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(still), std::istreambuf_iterator<char>()),
            "host secret");
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
  Outcome run = RunPyhost({"exec", "--policy", dir_.Write("p.json", R"({"extends": "yolo", "processes": false})"),
                           "--args", json({{"canary", canary}}).dump(), "-c", kCode});
  ASSERT_TRUE(run.exited && run.exit_code == 1) << run.Describe();
  json error = OnlyJson(run)["error"];
  EXPECT_EQ(error["type"], "PermissionError") << error.dump();
  EXPECT_THAT(error["message"].get<std::string>(), HasSubstr("processes are not allowed"));
  EXPECT_FALSE(std::filesystem::exists(canary));
}

}  // namespace

// ---------------------------------------------------------------------------------
// Stopping: SIGINT, SIGTERM, SIGHUP, a closed output, a crash (issue 7, item 8)

// The command's work root (/dev/shm/pyhost-<pid>, or under $TMPDIR).
bool WorkRootExists(pid_t pid) {
  for (const char* base : {"/dev/shm", "/tmp"}) {
    if (std::filesystem::exists(std::string(base) + "/pyhost-" + std::to_string(pid))) return true;
  }
  return false;
}

struct StopCase {
  const char* name;
  int signal;
  const char* code;
  int max_seconds;  // from the signal to the exit, generously
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

// serve stops reading: the running request is answered with KeyboardInterrupt, the
// ones not started with Interrupted, each once; exit 128+N; no work root left.
TEST_F(ServeTest, StopsOnSigintAnsweringEverything) {
  Outcome run = RunPyhost({"serve", "--workers", "1"},
                          Lines({{{"id", 1}, {"op", "exec"}, {"code", "while True:\n    pass\n"}},
                                 {{"id", 2}, {"op", "exec"}, {"code", "result = 2"}},
                                 {{"id", 3}, {"op", "exec"}, {"code", "result = 3"}}}),
                          std::chrono::seconds(20),
                          {SIGINT, std::chrono::milliseconds(600), /*keep_stdin_open=*/true});
  ASSERT_TRUE(run.exited) << run.Describe();
  EXPECT_EQ(run.exit_code, 130) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 3u) << run.Describe();
  EXPECT_EQ(answers["1"]["error"]["type"], "KeyboardInterrupt") << answers["1"];
  for (const char* id : {"2", "3"}) EXPECT_EQ(answers[id]["error"]["type"], "Interrupted");
  EXPECT_FALSE(WorkRootExists(run.pid));
}

// Code stuck in C past the grace: serve exits anyway, and still answers every request
// it read, the stuck one and those not started, with Interrupted (found by
// adversarial testing: the forced exit answered none).
TEST_F(ServeTest, ForcedExitStillAnswersEveryRequest) {
  Outcome run = RunPyhost({"serve", "--workers", "1"},
                          Lines({{{"id", 1}, {"op", "exec"}, {"code", "sum(range(10**12))"}},
                                 {{"id", 2}, {"op", "exec"}, {"code", "result = 2"}},
                                 {{"id", 3}, {"op", "exec"}, {"code", "result = 3"}}}),
                          std::chrono::seconds(20),
                          {SIGTERM, std::chrono::milliseconds(600), /*keep_stdin_open=*/true});
  ASSERT_TRUE(run.exited) << run.Describe();
  EXPECT_EQ(run.exit_code, 128 + SIGTERM) << run.Describe();
  std::map<std::string, json> answers = AnswersById(run);
  ASSERT_EQ(answers.size(), 3u) << run.Describe();
  ASSERT_EQ(CountLines(run.out), 3u) << run.Describe();
  for (const char* id : {"1", "2", "3"}) EXPECT_EQ(answers[id]["error"]["type"], "Interrupted") << id;
  EXPECT_FALSE(WorkRootExists(run.pid));
}

// A closed output is the end: no SIGPIPE death, no work root left.
TEST_F(ServeTest, ClosedOutputEndsTheServerCleanly) {
  std::vector<json> requests;
  for (int i = 0; i < 50; ++i) requests.push_back({{"id", i}, {"op", "exec"}, {"code", "print('x' * 1000)"}});
  Interrupt closed;
  closed.close_stdout = true;
  Outcome run = RunPyhost({"serve"}, Lines(requests), std::chrono::seconds(20), closed);
  EXPECT_TRUE(run.exited) << run.Describe();
  EXPECT_FALSE(WorkRootExists(run.pid));
}

// Once answers cannot be written, the requests read but not started are not run:
// their effects would be answered to no one (found by adversarial testing: serve ran
// every queued request after its output closed).
TEST_F(ServeTest, ClosedOutputRunsNoQueuedRequest) {
  std::string ran = dir_.PathOf("ran.txt");
  std::vector<json> requests;
  for (int i = 0; i < 40; ++i) {
    requests.push_back({{"id", i}, {"op", "exec"}, {"policy", "yolo"},
                        {"code", absl::StrCat("import time\ntime.sleep(0.05)\nopen(",
                                              json(ran).dump(), ", 'a').write('x')\n")}});
  }
  Interrupt closed;
  closed.close_stdout = true;
  Outcome run = RunPyhost({"serve", "--workers", "1"}, Lines(requests), std::chrono::seconds(20), closed);
  EXPECT_TRUE(run.exited) << run.Describe();
  std::ifstream file(ran);
  std::string marks((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  EXPECT_LE(marks.size(), 2u) << "requests ran after the output closed";
  EXPECT_FALSE(WorkRootExists(run.pid));
}

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

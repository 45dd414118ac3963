// The `pyhost` command's exit status (pyhost/outcome.h: 0 ok, 1 the code failed,
// 2 usage error, 3 host error, 128+N signal) where the cases of cli_test.cc do not
// reach: pyhost's own failures and options the host refuses, and the isolation names
// on the command line. Every test runs the real binary.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

#ifndef PYHOST_BINARY
#error "PYHOST_BINARY must name the pyhost executable"
#endif

struct Exit {
  int code = -1;    // -1: did not exit (killed, or not started)
  std::string out;  // what it wrote on stdout and stderr
  std::string err;
};

std::string ReadAll(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

// Runs `pyhost ARGS...` with INPUT on stdin (all three streams are files in a scratch
// directory) and, when `max_descriptors` is set, that RLIMIT_NOFILE. Killed after 60 s.
Exit RunPyhost(const std::vector<std::string>& args, const std::string& input = "",
               rlim_t max_descriptors = 0) {
  Exit exit;
  char pattern[] = "/tmp/pyhost_exit_status_test.XXXXXX";
  if (mkdtemp(pattern) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed";
    return exit;
  }
  const std::string dir = pattern, in = dir + "/in", out = dir + "/out", err = dir + "/err";
  std::ofstream(in, std::ios::binary) << input;
  std::vector<std::string> strings = {PYHOST_BINARY};
  strings.insert(strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : strings) argv.push_back(arg.data());
  argv.push_back(nullptr);

  pid_t pid = fork();
  if (pid == 0) {  // only async-signal-safe calls until exec
    int fds[3] = {open(in.c_str(), O_RDONLY), open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600),
                  open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600)};
    for (int target = 0; target < 3; ++target) {
      if (fds[target] < 0 || dup2(fds[target], target) < 0) _exit(125);
    }
    if (max_descriptors != 0) {
      rlimit limit = {max_descriptors, max_descriptors};
      if (setrlimit(RLIMIT_NOFILE, &limit) != 0) _exit(126);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  if (pid < 0) {
    ADD_FAILURE() << "fork failed";
    return exit;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "pyhost did not exit in 60 s";
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (WIFEXITED(status)) exit.code = WEXITSTATUS(status);
  exit.out = ReadAll(out);
  exit.err = ReadAll(err);
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  return exit;
}

std::string Describe(const Exit& exit) {
  return "exit " + std::to_string(exit.code) + "\n--- stdout ---\n" + exit.out +
         "\n--- stderr ---\n" + exit.err;
}

// Far too few descriptors for the pool's reserve (64 kept before every creation):
// no interpreter can be created, a failure of pyhost's, not of the request.
constexpr rlim_t kTooFewDescriptors = 32;

// ---------------------------------------------------------------------------------
// Host errors: exit 3, the reason on stderr, nothing on stdout.

TEST(ExitStatusTest, ExecThatCannotStartTheHostExitsThree) {
  Exit exit = RunPyhost({"exec", "-c", "print('ran')"}, "", kTooFewDescriptors);
  EXPECT_EQ(exit.code, 3) << Describe(exit);
  EXPECT_THAT(exit.out, IsEmpty());
  EXPECT_THAT(exit.err, HasSubstr("pyhost: cannot start: "));
  EXPECT_THAT(exit.err, HasSubstr("descriptor table is full"));
  // Not a usage error: the request was fine.
  EXPECT_THAT(exit.err, Not(HasSubstr("--help")));
}

TEST(ExitStatusTest, CallAndServeThatCannotStartTheHostExitThree) {
  char path[] = "/tmp/pyhost_exit_status_tool.XXXXXX.py";
  int fd = mkstemps(path, 3);
  ASSERT_GE(fd, 0);
  const std::string tool = "def run(args):\n    return 1\n";
  ASSERT_EQ(write(fd, tool.data(), tool.size()), static_cast<ssize_t>(tool.size()));
  close(fd);
  Exit call = RunPyhost({"call", path}, "", kTooFewDescriptors);
  EXPECT_EQ(call.code, 3) << Describe(call);
  EXPECT_THAT(call.out, IsEmpty());
  EXPECT_THAT(call.err, HasSubstr("cannot start: "));
  unlink(path);
  Exit serve = RunPyhost({"serve"}, R"({"id": 1, "op": "exec", "code": "1"})" "\n", kTooFewDescriptors);
  EXPECT_EQ(serve.code, 3) << Describe(serve);
  EXPECT_THAT(serve.out, IsEmpty());
  EXPECT_THAT(serve.err, HasSubstr("cannot start: "));
}

// A prewarm module that does not import is a bad option of the command (Host::Create's
// InvalidArgument): a usage error, not pyhost's failure.
TEST(ExitStatusTest, PrewarmOfAModuleThatDoesNotImportIsAUsageError) {
  Exit exit = RunPyhost({"serve", "--prewarm", "json,no_such_module_pyhost_xyz"},
                  R"({"id": 1, "op": "exec", "code": "1"})" "\n");
  EXPECT_EQ(exit.code, 2) << Describe(exit);
  EXPECT_THAT(exit.out, IsEmpty());
  EXPECT_THAT(exit.err, HasSubstr("cannot start: prewarm module 'no_such_module_pyhost_xyz'"));
  EXPECT_THAT(exit.err, HasSubstr("run 'pyhost --help'"));
}

// The code's failure and success, through the same mapping (ExitCodeForOutcome).
TEST(ExitStatusTest, OutcomesOfTheCode) {
  Exit ok = RunPyhost({"exec", "-c", "result = 1"});
  EXPECT_EQ(ok.code, 0) << Describe(ok);
  EXPECT_EQ(json::parse(ok.out)["outcome"], "ok");
  Exit failed = RunPyhost({"exec", "-c", "raise ValueError('no')"});
  EXPECT_EQ(failed.code, 1) << Describe(failed);
  EXPECT_EQ(json::parse(failed.out)["outcome"], "code_error");
  Exit usage = RunPyhost({"exec", "--memory-mb", "64", "-c", "print('ran')"});
  EXPECT_EQ(usage.code, 2) << Describe(usage);
  EXPECT_THAT(usage.out, IsEmpty());
}

TEST(ExitStatusTest, HelpNamesEveryExitStatus) {
  Exit help = RunPyhost({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_THAT(help.out, HasSubstr("exit status: 0 ok; 1 the code failed"));
  EXPECT_THAT(help.out, HasSubstr("2 usage error"));
  EXPECT_THAT(help.out, HasSubstr("3 pyhost itself failed"));
  EXPECT_THAT(help.out, HasSubstr("128+N stopped by signal N"));
}

// ---------------------------------------------------------------------------------
// Isolation names: answers say "resident"; "tool", its old name, is still accepted.

TEST(IsolationNameTest, ResidentIsTheNameAndToolIsStillAccepted) {
  for (const char* name : {"resident", "tool"}) {
    SCOPED_TRACE(name);
    Exit exec = RunPyhost({"exec", "--isolation", name, "-c", "result = 3"});
    ASSERT_EQ(exec.code, 0) << Describe(exec);
    json answer = json::parse(exec.out);
    EXPECT_EQ(answer["result"], 3);
    EXPECT_EQ(answer["stats"]["isolation"], "resident");
  }
  Exit serve = RunPyhost({"serve"},
                   R"({"id": 1, "op": "exec", "code": "result = 1", "isolation": "tool"})" "\n"
                   R"({"id": 2, "op": "register", "name": "t", "isolation": "tool", "source": "def run(args):\n    return 2\n"})" "\n"
                   R"({"id": 3, "op": "call", "name": "t"})" "\n");
  ASSERT_EQ(serve.code, 0) << Describe(serve);
  std::vector<json> answers;
  size_t start = 0;
  for (size_t end; (end = serve.out.find('\n', start)) != std::string::npos; start = end + 1) {
    answers.push_back(json::parse(serve.out.substr(start, end - start)));
  }
  ASSERT_EQ(answers.size(), 3u) << Describe(serve);
  for (const json& answer : answers) {
    EXPECT_EQ(answer["ok"], true) << answer.dump();
    if (answer["id"] != 2) {  // exec and call; register answers no stats
      EXPECT_EQ(answer["stats"]["isolation"], "resident") << answer.dump();
    }
  }
}

TEST(IsolationNameTest, AnUnknownNameListsTheNames) {
  Exit exit = RunPyhost({"exec", "--isolation", "shared", "-c", "1"});
  EXPECT_EQ(exit.code, 2) << Describe(exit);
  EXPECT_THAT(exit.err,
              HasSubstr("--isolation: unknown isolation 'shared' (expected fresh, resident or process)"));
}

}  // namespace

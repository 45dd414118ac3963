// End-to-end tests of the `pyhost` command's exit status (pyhost/outcome.h: 0 ok, 1 the
// code failed, 2 usage error, 3 host error, 128+N signal) where the other files do not
// reach: pyhost's own failures and options the host refuses; and the isolation names
// on the command line ("resident", and "tool", its old name, still accepted).

#include <sys/resource.h>

#include <string>
#include <vector>

#include "tests/cli/cli_harness.h"

namespace pyhost::cli_test {
namespace {

using ::testing::Not;

// While it lives, this process's soft RLIMIT_NOFILE is `limit`, so the commands it
// spawns inherit that limit (the harness itself needs a handful of descriptors).
class DescriptorLimit {
 public:
  explicit DescriptorLimit(rlim_t limit) {
    EXPECT_EQ(getrlimit(RLIMIT_NOFILE, &saved_), 0);
    rlimit lowered = saved_;
    lowered.rlim_cur = limit;
    EXPECT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);
  }
  ~DescriptorLimit() { setrlimit(RLIMIT_NOFILE, &saved_); }
  DescriptorLimit(const DescriptorLimit&) = delete;
  DescriptorLimit& operator=(const DescriptorLimit&) = delete;

 private:
  rlimit saved_{};
};

// Far too few descriptors for the pool's reserve (64 kept before every creation): no
// interpreter can be created, a failure of pyhost's, not of the request.
constexpr rlim_t kTooFewDescriptors = 32;

using ExitStatusTest = CliTest;
using IsolationNameTest = CliTest;

// --- host errors: exit 3, the reason on stderr, nothing on stdout --------------------

TEST_F(ExitStatusTest, ExecThatCannotStartTheHostExitsThree) {
  Outcome run;
  {
    DescriptorLimit few(kTooFewDescriptors);
    run = RunPyhost({"exec", "-c", "print('ran')"});
  }
  EXPECT_TRUE(run.exited && run.exit_code == 3) << run.Describe();
  EXPECT_THAT(run.out, IsEmpty());
  EXPECT_THAT(run.err, HasSubstr("pyhost: cannot start: "));
  EXPECT_THAT(run.err, HasSubstr("descriptor table is full"));
  // Not a usage error: the request was fine.
  EXPECT_THAT(run.err, Not(HasSubstr("--help")));
}

TEST_F(ExitStatusTest, CallAndServeThatCannotStartTheHostExitThree) {
  std::string tool = dir_.Write("one.py", "def run(args):\n    return 1\n");
  Outcome call, serve;
  {
    DescriptorLimit few(kTooFewDescriptors);
    call = RunPyhost({"call", tool});
    serve = RunPyhost({"serve"}, Lines({{{"id", 1}, {"op", "exec"}, {"code", "1"}}}));
  }
  for (const Outcome* run : {&call, &serve}) {
    EXPECT_TRUE(run->exited && run->exit_code == 3) << run->Describe();
    EXPECT_THAT(run->out, IsEmpty());
    EXPECT_THAT(run->err, HasSubstr("cannot start: "));
  }
}

// A prewarm module that does not import is a bad option of the command (Host::Create's
// InvalidArgument): a usage error, not pyhost's failure.
TEST_F(ExitStatusTest, PrewarmOfAModuleThatDoesNotImportIsAUsageError) {
  Outcome run = RunPyhost({"serve", "--prewarm", "json,no_such_module_pyhost_xyz"},
                          Lines({{{"id", 1}, {"op", "exec"}, {"code", "1"}}}));
  EXPECT_TRUE(run.exited && run.exit_code == 2) << run.Describe();
  EXPECT_THAT(run.out, IsEmpty());
  EXPECT_THAT(run.err, HasSubstr("cannot start: prewarm module 'no_such_module_pyhost_xyz'"));
  EXPECT_THAT(run.err, HasSubstr("run 'pyhost --help'"));
}

// The code's success and failure, through the same mapping (ExitCodeForOutcome).
TEST_F(ExitStatusTest, OutcomesOfTheCode) {
  Outcome ok = RunPyhost({"exec", "-c", "result = 1"});
  EXPECT_TRUE(ok.exited && ok.exit_code == 0) << ok.Describe();
  EXPECT_EQ(OnlyJson(ok)["outcome"], "ok");
  Outcome failed = RunPyhost({"exec", "-c", "raise ValueError('no')"});
  EXPECT_TRUE(failed.exited && failed.exit_code == 1) << failed.Describe();
  EXPECT_EQ(OnlyJson(failed)["outcome"], "code_error");
  Outcome usage = RunPyhost({"exec", "--memory-mb", "4096", "-c", "print('ran')"});
  EXPECT_TRUE(usage.exited && usage.exit_code == 2) << usage.Describe();
  EXPECT_THAT(usage.out, IsEmpty());
  for (const char* limited : {"--timeout-ms", "--cpu-ms"}) {
    Outcome stopped = RunPyhost({"exec", limited, "300", "-c", "while True: pass"});
    EXPECT_TRUE(stopped.exited && stopped.exit_code == 1) << stopped.Describe();
    EXPECT_EQ(OnlyJson(stopped)["outcome"],
              limited == std::string("--timeout-ms") ? "timeout" : "cpu_limit");
  }
}

TEST_F(ExitStatusTest, HelpNamesEveryExitStatus) {
  Outcome help = RunPyhost({"--help"});
  EXPECT_TRUE(help.exited && help.exit_code == 0) << help.Describe();
  EXPECT_THAT(help.out, HasSubstr("exit status: 0 ok; 1 the code failed"));
  EXPECT_THAT(help.out, HasSubstr("2 usage error"));
  EXPECT_THAT(help.out, HasSubstr("3 pyhost itself failed"));
  EXPECT_THAT(help.out, HasSubstr("128+N stopped by signal N"));
}

// --- isolation names: answers say "resident"; "tool" is still accepted ----------------

TEST_F(IsolationNameTest, ResidentIsTheNameAndToolIsStillAccepted) {
  for (const char* name : {"resident", "tool"}) {
    SCOPED_TRACE(name);
    Outcome exec = RunPyhost({"exec", "--isolation", name, "-c", "result = 3"});
    ASSERT_TRUE(exec.exited && exec.exit_code == 0) << exec.Describe();
    json answer = OnlyJson(exec);
    EXPECT_EQ(answer["result"], 3);
    EXPECT_EQ(answer["stats"]["isolation"], "resident");
  }
  Outcome serve = RunPyhost(
      {"serve"}, Lines({{{"id", 1}, {"op", "exec"}, {"code", "result = 1"}, {"isolation", "tool"}},
                        {{"id", 2},
                         {"op", "register"},
                         {"name", "t"},
                         {"isolation", "tool"},
                         {"source", "def run(args):\n    return 2\n"}},
                        {{"id", 3}, {"op", "call"}, {"name", "t"}}}));
  ASSERT_TRUE(serve.exited && serve.exit_code == 0) << serve.Describe();
  std::map<std::string, json> answers = AnswersById(serve);
  ASSERT_EQ(answers.size(), 3u) << serve.Describe();
  for (const auto& [id, answer] : answers) EXPECT_EQ(answer["ok"], true) << answer.dump();
  EXPECT_EQ(answers["1"]["stats"]["isolation"], "resident");
  EXPECT_EQ(answers["3"]["stats"]["isolation"], "resident");  // register answers no stats
}

TEST_F(IsolationNameTest, AnUnknownNameListsTheNames) {
  Outcome run = RunPyhost({"exec", "--isolation", "shared", "-c", "1"});
  EXPECT_TRUE(run.exited && run.exit_code == 2) << run.Describe();
  EXPECT_THAT(
      run.err,
      HasSubstr("--isolation: unknown isolation 'shared' (expected fresh, resident or process)"));
}

}  // namespace
}  // namespace pyhost::cli_test

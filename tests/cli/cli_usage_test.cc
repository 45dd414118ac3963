// End-to-end tests of the `pyhost` command's usage: errors exit 2 with a message on
// stderr and nothing on stdout; --help; the files a user names on the command line.

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "tests/cli/cli_harness.h"

namespace pyhost::cli_test {
namespace {

// --- usage errors: exit 2, a message on stderr, nothing on stdout --------------------

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
        UsageCase{
            "ExecBadArgsJson", {"exec", "--args", "{bad", "-c", "1"}, "--args is not valid JSON"},
        UsageCase{"ExecMissingCode", {"exec"}, "exec needs -c CODE, FILE or -"},
        UsageCase{"ExecMissingCodeWithArgs", {"exec", "--args", "{}"}, "exec needs"},
        UsageCase{"ExecDashCWithoutCode", {"exec", "-c"}, "-c needs the code"},
        UsageCase{"ExecTwoCodes", {"exec", "-c", "1", "-c", "2"}, "one of -c CODE, FILE or -"},
        UsageCase{"ExecUnknownFlag", {"exec", "--bogus", "1", "-c", "1"}, "unknown flag --bogus"},
        UsageCase{"ExecFlagWithoutValue", {"exec", "-c", "1", "--args"}, "--args needs a value"},
        UsageCase{"ExecMissingFile",
                  {"exec", "/nonexistent/pyhost_cli_test/missing.py"},
                  "cannot read '/nonexistent/pyhost_cli_test/missing.py'"},
        UsageCase{"ExecBadIsolation",
                  {"exec", "--isolation", "bogus", "-c", "1"},
                  "unknown isolation 'bogus'"},
        UsageCase{"ExecZeroMaxOutput",
                  {"exec", "--max-output-bytes", "0", "-c", "1"},
                  "positive integer"},
        UsageCase{"ExecNonNumericTimeout",
                  {"exec", "--timeout-ms", "soon", "-c", "1"},
                  "positive integer"},
        // Flags accepted on the command line but not enforced yet: refused, never ignored.
        UsageCase{"UnknownPolicy",
                  {"exec", "--policy", "lenient", "-c", "1"},
                  "unknown policy 'lenient'"},
        UsageCase{"MissingPolicyFile",
                  {"exec", "--policy", "/nonexistent/p.json", "-c", "1"},
                  "cannot read policy file"},
        UsageCase{"TimeoutAboveTheCeiling",
                  {"exec", "--timeout-ms", "300001", "-c", "1"},
                  "timeout_ms 300001 is above policy 'strict''s ceiling of 300000"},
        UsageCase{"CpuNotPositive",
                  {"exec", "--cpu-ms", "0", "-c", "1"},
                  "--cpu-ms takes a positive integer, got '0'"},
        UsageCase{"MemoryAboveTheCeiling",
                  {"exec", "--memory-mb", "4096", "-c", "1"},
                  "memory_mb 4096 is above policy 'strict''s ceiling of 1024"},
        UsageCase{
            "CallMissingFile", {"call", "/nonexistent/pyhost_cli_test/tool.py"}, "cannot read"},
        UsageCase{"CallNoFile", {"call"}, "call needs a FILE"},
        UsageCase{
            "CallUnknownFlag", {"call", "x.py", "--bogus", "1"}, "call: unknown flag --bogus"},
        UsageCase{
            "CallBadIsolation", {"call", "x.py", "--isolation", "bogus"}, "unknown isolation"},
        UsageCase{"ServeUnknownFlag", {"serve", "--bogus", "1"}, "serve: unknown flag --bogus"},
        UsageCase{"ServeZeroWorkers", {"serve", "--workers", "0"}, "--workers takes 1 to 256"},
        UsageCase{
            "ServeTooManyWorkers", {"serve", "--workers", "1000"}, "--workers takes 1 to 256"}),
    [](const ::testing::TestParamInfo<UsageCase>& info) { return info.param.name; });

TEST_F(UsageTest, HelpExitsZero) {
  Outcome run = RunPyhost({"--help"});
  EXPECT_TRUE(run.exited && run.exit_code == 0) << run.Describe();
  EXPECT_THAT(run.out, HasSubstr("usage:"));
  EXPECT_THAT(run.out, HasSubstr("pyhost serve"));
}

TEST_F(UsageTest, PolicyFileWithUnknownFieldNamesIt) {
  std::string file = dir_.Write("p.json", R"({"extends": "strict", "netwrok": ["*"]})");
  Outcome run = RunPyhost({"exec", "--policy", file, "-c", "1"});
  EXPECT_TRUE(run.exited && run.exit_code == 2) << run.Describe();
  EXPECT_THAT(run.err, HasSubstr("unknown policy field 'netwrok'"));
}

// --- files a user names are regular files of bounded size (issue 7, items 9, 17) -----

// Files a user names are read only if they are regular files of bounded size; the
// error names the path and why, and nothing blocks or grows without end.
INSTANTIATE_TEST_SUITE_P(
    UserFiles, UsageErrorTest,
    ::testing::Values(
        UsageCase{"ExecDirectory",
                  {"exec", "/usr"},
                  "cannot read '/usr': a directory, not a regular file"},
        UsageCase{"CallDirectory", {"call", "/usr"}, "cannot read '/usr': a directory"},
        UsageCase{"ExecDevZero",
                  {"exec", "/dev/zero"},
                  "'/dev/zero': a character device, not a regular file"},
        UsageCase{"CallDevZero", {"call", "/dev/zero"}, "'/dev/zero': a character device"},
        UsageCase{"PolicyDevZero",
                  {"exec", "--policy", "/dev/zero", "-c", "1"},
                  "cannot read policy file '/dev/zero': a character device, not a regular file"},
        UsageCase{"PolicyDirectory",
                  {"exec", "--policy", "/usr/", "-c", "1"},
                  "cannot read policy file '/usr/': a directory"},
        UsageCase{"CallPolicyDevZero",
                  {"call", "x.py", "--policy", "/dev/zero"},
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
  for (const std::vector<std::string>& args : {std::vector<std::string>{"exec", fifo},
                                               {"call", fifo},
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
  EXPECT_THAT(run.err,
              HasSubstr("policy file '" + policy + "': larger than the limit of 1048576 bytes"));
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

}  // namespace
}  // namespace pyhost::cli_test

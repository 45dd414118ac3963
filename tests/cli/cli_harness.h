// The harness of the end-to-end tests of the `pyhost` command (cli_*_test.cc): it runs
// the built binary (PYHOST_BINARY) with pipes on stdin, stdout and stderr, a timeout
// and optionally a signal, and reads its answers (one JSON object, or serve's lines).
#ifndef PYHOST_TESTS_CLI_CLI_HARNESS_H_
#define PYHOST_TESTS_CLI_CLI_HARNESS_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/files.h"
#include "tests/testing/process.h"

namespace pyhost::cli_test {

using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

// How a run of the command ended, and what it printed.
struct Outcome {
  pid_t pid = -1;
  bool exited = false;  // false: killed by a signal (see term_signal) or not started
  int exit_code = -1;
  int term_signal = 0;
  bool timed_out = false;
  std::string out;
  std::string err;

  std::string Describe() const;
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
                  const Interrupt& interrupt = {});

// The one JSON object a one-shot command prints: stdout must be exactly one line.
json OnlyJson(const Outcome& run);

// The answers of `pyhost serve`, one JSON object per stdout line, by id (as dumped
// JSON: 1 -> "1", "a" -> "\"a\""). Every line must be an object with a unique id.
std::map<std::string, json> AnswersById(const Outcome& run);

// JSON lines for `pyhost serve`.
std::string Lines(const std::vector<json>& requests);

size_t CountLines(const std::string& text);

// The command's work root (/dev/shm/pyhost-<pid>, or under $TMPDIR).
bool WorkRootExists(pid_t pid);

// `pyhost serve ARGS...` fed by one thread and read by others while the test watches
// it from outside (its pid, its memory): for what RunPyhost's all-at-once cannot see.
class ServeProcess {
 public:
  // With `stdout_path`, the answers go to that file instead of a pipe.
  explicit ServeProcess(const std::vector<std::string>& args, const std::string& stdout_path = "");
  ~ServeProcess();

  pid_t pid() const { return child_.pid(); }

  // Writes `input` from a thread, with blocking writes; written() is the progress.
  void Feed(std::string input);
  size_t written() const { return written_; }

  // Waits until the writer is done or has made no progress for `quiet` (the server
  // stopped reading); false if neither happened within `limit`.
  bool WaitUntilWriterDoneOrStalled(std::chrono::milliseconds quiet, std::chrono::seconds limit);

  // Waits until stdout holds `lines` lines; false after `limit`.
  bool WaitForLines(size_t lines, std::chrono::seconds limit);

  // A field of /proc/<pid>/status in kB (VmRSS, VmHWM), or -1.
  int64_t StatusKb(const std::string& field) const;

  // Ends the input once the writer is done and waits for the exit (killing the
  // server after `limit`).
  Outcome Finish(std::chrono::seconds limit);

 private:
  void CloseInput();
  void Drain(int fd, std::string& sink);

  testutil::Child child_;
  testutil::Fd in_;
  std::thread writer_;
  std::atomic<size_t> written_{0};
  std::atomic<bool> feed_done_{false};
  std::vector<std::thread> readers_;
  std::mutex mu_;
  std::string out_, err_;
};

// Every command test: SIGPIPE ignored (a command that exits early closes our pipes),
// and a scratch directory of its own.
class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  testutil::TempDir dir_{"pyhost_cli_test"};
};

using ExecTest = CliTest;
using UsageTest = CliTest;
using CallTest = CliTest;
using ServeTest = CliTest;

}  // namespace pyhost::cli_test

#endif  // PYHOST_TESTS_CLI_CLI_HARNESS_H_

#include "tests/cli/cli_harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#ifndef PYHOST_BINARY
#error "PYHOST_BINARY must name the pyhost executable"
#endif

namespace pyhost::cli_test {

using testutil::Child;
using testutil::Fd;
using testutil::Pipe;

std::string Outcome::Describe() const {
  std::ostringstream text;
  if (timed_out) text << "TIMED OUT; ";
  if (exited) {
    text << "exit " << exit_code;
  } else {
    text << "killed by signal " << term_signal << " (" << strsignal(term_signal) << ")";
  }
  text << "\n--- stdout ---\n"
       << out.substr(0, 4000) << "\n--- stderr ---\n"
       << err.substr(0, 4000);
  return text.str();
}

Outcome RunPyhost(const std::vector<std::string>& args, const std::string& input,
                  std::chrono::milliseconds timeout, const Interrupt& interrupt) {
  Outcome outcome;
  Pipe in = Pipe::Make(), out = Pipe::Make(), err = Pipe::Make();
  if (!in.read.open() || !out.read.open() || !err.read.open()) return outcome;

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 clears O_CLOEXEC on the target; every other pipe end closes at exec.
  posix_spawn_file_actions_adddup2(&actions, in.read.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out.write.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err.write.get(), STDERR_FILENO);

  std::vector<std::string> argv = {PYHOST_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());

  Child child;
  pid_t pid = testutil::Spawn(argv, &actions);
  posix_spawn_file_actions_destroy(&actions);
  if (pid < 0) return outcome;
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

std::string Lines(const std::vector<json>& requests) {
  std::string text;
  for (const json& request : requests) text += request.dump() + "\n";
  return text;
}

size_t CountLines(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

bool WorkRootExists(pid_t pid) {
  for (const char* base : {"/dev/shm", "/tmp"}) {
    if (std::filesystem::exists(std::string(base) + "/pyhost-" + std::to_string(pid))) return true;
  }
  return false;
}

ServeProcess::ServeProcess(const std::vector<std::string>& args, const std::string& stdout_path) {
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
  std::vector<std::string> argv = {PYHOST_BINARY, "serve"};
  argv.insert(argv.end(), args.begin(), args.end());
  pid_t pid = testutil::Spawn(argv, &actions);
  posix_spawn_file_actions_destroy(&actions);
  if (pid < 0) return;
  child_.set_pid(pid);
  in_ = std::move(in.write);
  readers_.emplace_back([this, fd = std::move(out.read)] { Drain(fd.get(), out_); });
  readers_.emplace_back([this, fd = std::move(err.read)] { Drain(fd.get(), err_); });
}

ServeProcess::~ServeProcess() {
  child_.Kill();  // still running only if the test failed: unblocks the threads
  CloseInput();
  for (std::thread& thread : readers_) thread.join();
}

void ServeProcess::Feed(std::string input) {
  writer_ = std::thread([this, input = std::move(input)] {
    size_t done = 0;
    while (done < input.size()) {
      // In pieces: one blocking write of everything would only return at the end.
      ssize_t n =
          ::write(in_.get(), input.data() + done, std::min<size_t>(input.size() - done, 65536));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
      written_ = done;
    }
    feed_done_ = true;
  });
}

bool ServeProcess::WaitUntilWriterDoneOrStalled(std::chrono::milliseconds quiet,
                                                std::chrono::seconds limit) {
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

bool ServeProcess::WaitForLines(size_t lines, std::chrono::seconds limit) {
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

int64_t ServeProcess::StatusKb(const std::string& field) const {
  std::ifstream status("/proc/" + std::to_string(pid()) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  }
  return -1;
}

Outcome ServeProcess::Finish(std::chrono::seconds limit) {
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

void ServeProcess::CloseInput() {
  if (writer_.joinable()) writer_.join();
  in_.Close();
}

void ServeProcess::Drain(int fd, std::string& sink) {
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    sink.append(buffer, static_cast<size_t>(n));
  }
}

void CliTest::SetUpTestSuite() { ::signal(SIGPIPE, SIG_IGN); }

}  // namespace pyhost::cli_test

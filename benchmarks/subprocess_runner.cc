#include "benchmarks/subprocess_runner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "process/unique_fd.h"

namespace pyhost_bench {
namespace {

using json = nlohmann::json;

// What the child runs (python3 -c RUNNER TOOL_SOURCE): the usual shape of a
// subprocess tool runner.
constexpr char kRunnerScript[] = R"py(import sys, json
args = json.loads(sys.stdin.read() or "{}")
ns = {"__name__": "tool"}
try:
    exec(compile(sys.argv[1], "<tool>", "exec"), ns)
    out = ns["run"](args)
except Exception as e:
    out = {"ok": False, "error": {"message": str(e), "type": type(e).__name__}}
sys.stdout.write(json.dumps(out))
)py";

using Fd = pyhost::UniqueFd;

absl::Status MakePipe(Fd& read_end, Fd& write_end) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe2");
  read_end.reset(fds[0]);
  write_end.reset(fds[1]);
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "write to the child's stdin");
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

SubprocessToolRunner::SubprocessToolRunner(SubprocessOptions options)
    : options_(std::move(options)) {
  argv_.push_back(options_.python);
  for (const std::string& flag : options_.flags) argv_.push_back(flag);
  argv_.push_back("-c");
  argv_.push_back(kRunnerScript);
  argv_.push_back(options_.tool_source);
  // A cleared environment with PATH and HOME re-added, as the seed runners do.
  for (const char* name : {"PATH", "HOME"}) {
    if (const char* value = std::getenv(name)) env_.push_back(absl::StrCat(name, "=", value));
  }
}

absl::StatusOr<json> SubprocessToolRunner::Call(const json& args) const {
  const std::string payload = args.dump();
  Fd in_read, in_write, out_read, out_write, err_read, err_write;
  if (absl::Status s = MakePipe(in_read, in_write); !s.ok()) return s;
  if (absl::Status s = MakePipe(out_read, out_write); !s.ok()) return s;
  if (absl::Status s = MakePipe(err_read, err_write); !s.ok()) return s;

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  absl::Cleanup destroy_actions = [&] { posix_spawn_file_actions_destroy(&actions); };
  // dup2 onto 0/1/2 clears O_CLOEXEC there; every other pipe fd closes at exec.
  posix_spawn_file_actions_adddup2(&actions, in_read.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_write.get(), STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  absl::Cleanup destroy_attr = [&] { posix_spawnattr_destroy(&attr); };
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  sigset_t no_mask;
  sigemptyset(&no_mask);
  posix_spawnattr_setsigmask(&attr, &no_mask);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<std::string> argv = argv_;
  std::vector<std::string> env = env_;
  std::vector<char*> c_argv = CStrings(argv);
  std::vector<char*> c_env = CStrings(env);
  pid_t pid = -1;
  int spawn_error =
      posix_spawn(&pid, options_.python.c_str(), &actions, &attr, c_argv.data(), c_env.data());
  if (spawn_error != 0) {
    return absl::ErrnoToStatus(spawn_error, absl::StrCat("posix_spawn ", options_.python));
  }
  bool reaped = false;
  absl::Cleanup reap = [&] {
    if (!reaped) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  };
  in_read.reset();
  out_write.reset();
  err_write.reset();

  absl::Status written = WriteAll(in_write.get(), payload);
  in_write.reset();  // EOF for the child
  if (!written.ok()) return written;

  std::string out, err;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.timeout_ms);
  char buffer[16384];
  while (out_read.get() >= 0 || err_read.get() >= 0) {
    pollfd fds[2] = {{out_read.get(), POLLIN, 0}, {err_read.get(), POLLIN, 0}};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("the child ran longer than ", options_.timeout_ms, " ms"));
    }
    int ready = poll(fds, 2, static_cast<int>(left));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "poll");
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      Fd& fd = i == 0 ? out_read : err_read;
      std::string& sink = i == 0 ? out : err;
      ssize_t n = read(fd.get(), buffer, sizeof buffer);
      if (n > 0) {
        sink.append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        fd.reset();  // EOF (or an error: treat as EOF)
      }
    }
  }

  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return absl::ErrnoToStatus(errno, "waitpid");
  }
  reaped = true;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat("the child ended with status ", status, "; stderr: ", err.substr(0, 2000)));
  }
  json value = json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    return absl::InternalError(absl::StrCat("the child printed no JSON: '", out.substr(0, 200),
                                            "'; stderr: ", err.substr(0, 2000)));
  }
  if (value.is_object() && value.contains("ok")) return value;
  return json{{"ok", true}, {"data", std::move(value)}};
}

}  // namespace pyhost_bench

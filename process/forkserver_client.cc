#include "process/forkserver_client.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "process/channel.h"
#include "process/child_uids.h"

namespace pyhost {

// The control descriptor the server is given.
constexpr int kControlFd = 3;

struct ForkserverClient::Server {
  pid_t pid = -1;
  UniqueFd control;
  std::thread reader;

  // Closing the control channel ends the server (and its children); then it is reaped.
  ~Server() {
    if (control) shutdown(control.get(), SHUT_RDWR);
    if (reader.joinable()) reader.join();
    control.reset();
    if (pid > 0) {
      // It ends on its own once the channel closed; a server that hangs is killed.
      for (int i = 0; i < 200; ++i) {
        if (waitpid(pid, nullptr, WNOHANG) == pid) return;
        absl::SleepFor(absl::Milliseconds(5));
      }
      kill(pid, SIGKILL);
      while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
  }
};

ForkserverClient::ForkserverClient(std::vector<std::string> argv,
                                   std::vector<std::pair<std::string, std::string>> env)
    : argv_(std::move(argv)), env_(std::move(env)) {}

ForkserverClient::~ForkserverClient() {
  absl::MutexLock lock(&fork_mu_);
  StopServer();
}

absl::Status ForkserverClient::StartLocked() {
  StopServer();  // a dead one
  UniqueFd ours, theirs;
  if (absl::Status made = MakeSocketPair(/*records=*/true, ours, theirs); !made.ok()) return made;

  std::vector<std::string> args = argv_;
  args.insert(args.end(), {"--control-fd", std::to_string(kControlFd)});
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  // Not the host's environment: its strings would stay in every child's memory (a
  // cleared environment keeps them on the stack). Requests carry the policy's.
  std::vector<std::string> env_text;
  for (const auto& [name, value] : env_) env_text.push_back(absl::StrCat(name, "=", value));
  std::vector<char*> envp;
  for (std::string& entry : env_text) envp.push_back(entry.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDWR, 0);
  posix_spawn_file_actions_adddup2(&actions, 0, 1);
  posix_spawn_file_actions_adddup2(&actions, 0, 2);
  posix_spawn_file_actions_adddup2(&actions, theirs.get(), kControlFd);
  posix_spawn_file_actions_addclosefrom_np(&actions, kControlFd + 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The host may block or ignore signals (a stop-signal thread): the server starts
  // with the defaults.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (spawned != 0) {
    return absl::UnavailableError(
        absl::StrCat("starting the worker ", argv_[0], ": ", strerror(spawned)));
  }
  theirs.reset();
  auto server = std::make_unique<Server>();
  server->pid = pid;
  server->control = std::move(ours);
  int64_t generation;
  {
    absl::MutexLock lock(&mu_);
    generation = ++stats_.starts;
    failed_.clear();
  }
  server->reader =
      std::thread([this, fd = server->control.get(), generation] { ReadLoop(fd, generation); });
  {
    absl::MutexLock lock(&mu_);
    control_fd_ = server->control.get();
  }
  server_ = std::move(server);

  absl::MutexLock lock(&mu_);
  auto settled = [this, generation]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return ready_ == generation || ended_generation_ == generation;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&settled), kStartTimeout)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "the worker ", argv_[0], " did not start within ", absl::FormatDuration(kStartTimeout)));
  }
  if (ready_ == generation) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(
      "the worker ", argv_[0],
      " did not start: ", failed_.empty() ? "it ended before saying it was ready" : failed_));
}

void ForkserverClient::ReadLoop(int control, int64_t generation) {
  for (;;) {
    absl::StatusOr<std::optional<std::string>> record = ReceiveRecord(control);
    if (!record.ok() || !record->has_value()) break;
    nlohmann::json message = nlohmann::json::parse(**record, nullptr, false);
    if (!message.is_object()) continue;
    // The worker is pyhost's, but read as untrusted: a field of the wrong type is a
    // record ignored, never an exception on this thread.
    auto number = [&message](const char* key) -> int64_t {
      auto it = message.find(key);
      return it != message.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
    };
    auto flag = [&message](const char* key) {
      auto it = message.find(key);
      return it != message.end() && it->is_boolean() && it->get<bool>();
    };
    absl::MutexLock lock(&mu_);
    if (message.contains("ready")) {
      ready_ = generation;
    } else if (message.contains("failed")) {
      failed_ = message["failed"].is_string() ? message["failed"].get<std::string>() : "?";
    } else if (message.contains("forked") || message.contains("fork_failed")) {
      fork_reply_ = **record;
    } else if (message.contains("ended")) {
      const pid_t pid = static_cast<pid_t>(number("ended"));
      ChildEnd end;
      end.wait_status = static_cast<int>(number("status"));
      end.killed_at_deadline = flag("killed");
      end.killed_over_cpu = flag("cpu_killed");
      end.swept = static_cast<int>(number("swept"));
      end.wall = absl::Microseconds(number("wall_us"));
      end.user = absl::Microseconds(number("user_us"));
      end.system = absl::Microseconds(number("system_us"));
      end.max_rss_kb = number("max_rss_kb");
      running_.erase(pid);
      // A child given up on: its report is dropped, or it would be taken for a later
      // child's that reuses the pid.
      if (abandoned_.erase(pid) == 0) ended_[pid] = end;
      // Swept: nothing of its uid runs any more.
      if (auto id = identity_of_.find(pid); id != identity_of_.end()) {
        ChildUids::ForThisProcess().Release(id->second);
        identity_of_.erase(id);
      }
    }
  }
  absl::MutexLock lock(&mu_);
  ended_generation_ = generation;
  if (ready_ == generation) ++stats_.deaths;
  for (auto it = running_.begin(); it != running_.end();) {
    if (it->second == generation) {
      // Its uid stays in use: what it started may outlive the server.
      lost_.insert(it->first);
      identity_of_.erase(it->first);
      running_.erase(it++);
    } else {
      ++it;
    }
  }
}

absl::StatusOr<pid_t> ForkserverClient::Fork(int channel, const ChildIdentity& identity,
                                             absl::Duration kill_after, absl::Duration cpu_limit,
                                             bool sweep) {
  absl::StatusOr<pid_t> pid = SendFork(channel, identity, kill_after, cpu_limit, sweep);
  if (!pid.ok()) ChildUids::ForThisProcess().Release(identity);
  return pid;
}

absl::StatusOr<pid_t> ForkserverClient::SendFork(int channel, const ChildIdentity& identity,
                                                 absl::Duration kill_after,
                                                 absl::Duration cpu_limit, bool sweep) {
  absl::MutexLock fork_lock(&fork_mu_);
  int64_t generation;
  {
    absl::MutexLock lock(&mu_);
    generation = stats_.starts;
    const bool alive = server_ != nullptr && ended_generation_ != generation;
    if (!alive) generation = 0;
    fork_reply_.reset();
  }
  if (generation == 0) {
    if (absl::Status started = StartLocked(); !started.ok()) {
      StopServer();
      return started;
    }
    absl::MutexLock lock(&mu_);
    generation = stats_.starts;
  }
  const nlohmann::json request = {{"op", "fork"},
                                  {"kill_after_us", absl::ToInt64Microseconds(kill_after)},
                                  {"cpu_limit_us", absl::ToInt64Microseconds(cpu_limit)},
                                  {"uid", identity.switched() ? int64_t{identity.uid} : -1},
                                  {"gid", identity.switched() ? int64_t{identity.gid} : -1},
                                  {"sweep", sweep}};
  if (absl::Status sent = SendRecord(server_->control.get(), request.dump(), channel); !sent.ok()) {
    return absl::UnavailableError(absl::StrCat("the forkserver is gone: ", sent.message()));
  }
  bool answered;
  {
    absl::MutexLock lock(&mu_);
    auto replied = [this, generation]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return fork_reply_.has_value() || ended_generation_ == generation;
    };
    answered = mu_.AwaitWithTimeout(absl::Condition(&replied), absl::Seconds(10)) &&
               fork_reply_.has_value();
  }
  if (!answered) {
    // A reply that comes late would be taken for the next fork's: this server is done
    // (ending it ends the child it may still fork).
    StopServer();
    return absl::UnavailableError("the forkserver did not answer a fork; it was stopped");
  }
  absl::MutexLock lock(&mu_);
  nlohmann::json reply = nlohmann::json::parse(*fork_reply_, nullptr, false);
  if (!reply.contains("forked")) {
    return absl::UnavailableError(absl::StrCat("the forkserver could not fork: ", reply.dump()));
  }
  const pid_t pid = reply["forked"].is_number_integer() ? reply["forked"].get<pid_t>() : -1;
  if (pid <= 0) return absl::UnavailableError("the forkserver answered a fork with no pid");
  // Its end may be reported before this line runs: only a child not seen ending runs.
  if (!ended_.contains(pid)) {
    running_[pid] = generation;
    identity_of_[pid] = identity;
  } else {
    ChildUids::ForThisProcess().Release(identity);
  }
  ++stats_.forks;
  return pid;
}

void ForkserverClient::StopServer() {
  {
    absl::MutexLock lock(&mu_);
    control_fd_ = -1;
  }
  server_.reset();
}

// Not behind fork_mu_: an interrupt must not wait for a fork or a worker's start. One
// record is one send, whole, beside a fork request's.
void ForkserverClient::Kill(pid_t pid) {
  absl::MutexLock lock(&mu_);
  auto running = running_.find(pid);
  if (control_fd_ < 0 || running == running_.end() || running->second != stats_.starts) return;
  (void)SendRecord(control_fd_, nlohmann::json{{"op", "kill"}, {"pid", pid}}.dump());
}

absl::StatusOr<ChildEnd> ForkserverClient::AwaitEnd(pid_t pid, absl::Time give_up) {
  absl::MutexLock lock(&mu_);
  auto known = [this, pid]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return ended_.contains(pid) || lost_.contains(pid);
  };
  if (!mu_.AwaitWithDeadline(absl::Condition(&known), give_up)) {
    return absl::DeadlineExceededError("the forkserver did not report the child's end");
  }
  if (lost_.erase(pid) > 0) {
    return absl::UnavailableError("the forkserver died while the child ran (the child with it)");
  }
  ChildEnd end = ended_[pid];
  ended_.erase(pid);
  return end;
}

void ForkserverClient::Abandon(pid_t pid) {
  absl::MutexLock lock(&mu_);
  if (ended_.erase(pid) > 0 || lost_.erase(pid) > 0) return;
  if (running_.contains(pid)) abandoned_.insert(pid);
}

ForkserverStats ForkserverClient::stats() {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace pyhost

#include "process/forkserver.h"

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "process/channel.h"

namespace pyhost {
namespace {

struct Child {
  UniqueFd pidfd;  // readable once the child has ended
  absl::Time started;
  absl::Time kill_at;
  bool killed = false;
};

void KillGroup(pid_t pid) {
  kill(-pid, SIGKILL);  // the group it leads once it called setsid()
  kill(pid, SIGKILL);   // and itself, if it had not yet
}

int64_t Micros(const timeval& t) { return int64_t{t.tv_sec} * 1000000 + t.tv_usec; }

class Server {
 public:
  Server(UniqueFd control, absl::FunctionRef<int(UniqueFd)> child)
      : control_(std::move(control)), child_(child) {}

  int Run() {
    for (;;) {
      std::vector<pollfd> fds{{control_.get(), POLLIN, 0}};
      std::vector<pid_t> pids;
      absl::Time wake = absl::InfiniteFuture();
      for (const auto& [pid, child] : children_) {
        fds.push_back({child.pidfd.get(), POLLIN, 0});
        pids.push_back(pid);
        if (!child.killed) wake = std::min(wake, child.kill_at);
      }
      int timeout = -1;
      if (wake != absl::InfiniteFuture()) {
        timeout = static_cast<int>(
            std::max<int64_t>(0, absl::ToInt64Milliseconds(wake - absl::Now()) + 1));
      }
      const int ready = poll(fds.data(), fds.size(), timeout);
      if (ready < 0 && errno != EINTR) return Stop(1);
      KillOverdue();
      for (size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents != 0) Reap(pids[i - 1]);
      }
      if (fds[0].revents != 0) {
        UniqueFd passed;
        absl::StatusOr<std::optional<std::string>> record = ReceiveRecord(control_.get(), &passed);
        if (!record.ok()) return Stop(1);
        if (!record->has_value()) return Stop(0);  // the host is gone, or let go
        Handle(**record, std::move(passed));
      }
    }
  }

 private:
  void Handle(const std::string& text, UniqueFd passed) {
    nlohmann::json request = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    const std::string op = request.is_object() ? request.value("op", "") : "";
    if (op == "fork") {
      Fork(std::move(passed), request.value("kill_after_us", int64_t{0}));
    } else if (op == "kill") {
      auto found = children_.find(request.value("pid", pid_t{-1}));
      if (found != children_.end()) KillGroup(found->first);
    }
  }

  void Fork(UniqueFd channel, int64_t kill_after_us) {
    if (!channel) {
      Reply({{"fork_failed", "no channel came with the request"}});
      return;
    }
    const pid_t pid = fork();
    if (pid < 0) {
      Reply({{"fork_failed", absl::StrCat("fork: ", strerror(errno))}});
      return;
    }
    if (pid == 0) {
      control_.reset();
      for (auto& [other, child] : children_) child.pidfd.reset();
      _exit(child_(std::move(channel)));
    }
    Child child;
    child.pidfd.reset(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
    child.started = absl::Now();
    child.kill_at = child.started + absl::Microseconds(kill_after_us);
    if (!child.pidfd) {  // cannot watch it: it must not run unwatched
      KillGroup(pid);
      while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
      Reply({{"fork_failed", absl::StrCat("pidfd_open: ", strerror(errno))}});
      return;
    }
    children_.emplace(pid, std::move(child));
    Reply({{"forked", pid}});
  }

  void KillOverdue() {
    const absl::Time now = absl::Now();
    for (auto& [pid, child] : children_) {
      if (!child.killed && now >= child.kill_at) {
        KillGroup(pid);
        child.killed = true;
      }
    }
  }

  // The child ended: what it started is killed while its group id cannot be reused
  // (the leader is not reaped yet), then it is reaped and reported.
  void Reap(pid_t pid) {
    auto found = children_.find(pid);
    siginfo_t info{};
    if (waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid != pid) return;
    kill(-pid, SIGKILL);
    int status = 0;
    rusage usage{};
    while (wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
    }
    const Child& child = found->second;
    Reply({{"ended", pid},
           {"status", status},
           {"killed", child.killed},
           {"wall_us", absl::ToInt64Microseconds(absl::Now() - child.started)},
           {"user_us", Micros(usage.ru_utime)},
           {"system_us", Micros(usage.ru_stime)},
           {"max_rss_kb", usage.ru_maxrss}});
    children_.erase(found);
  }

  void Reply(const nlohmann::json& record) {
    (void)SendRecord(control_.get(), record.dump());  // a host that is gone: Run ends
  }

  int Stop(int code) {
    for (auto& [pid, child] : children_) KillGroup(pid);
    for (auto& [pid, child] : children_) {
      while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
    children_.clear();
    return code;
  }

  UniqueFd control_;
  absl::FunctionRef<int(UniqueFd)> child_;
  std::map<pid_t, Child> children_;
};

}  // namespace

int ServeForks(UniqueFd control, absl::FunctionRef<int(UniqueFd channel)> child) {
  signal(SIGPIPE, SIG_IGN);
  return Server(std::move(control), child).Run();
}

}  // namespace pyhost

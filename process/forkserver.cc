#include "process/forkserver.h"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "process/channel.h"

namespace pyhost {
namespace {

struct Child {
  UniqueFd pidfd;  // readable once the child has ended
  absl::Time started;
  absl::Time kill_at;
  bool killed = false;
  ChildIdentity identity;
  clockid_t cpu_clock{};     // the child's CPU clock (all its threads)
  int64_t cpu_limit_ns = 0;  // 0: none
  bool cpu_killed = false;
  bool sweep = false;  // it may start processes: what its uid runs is killed after it
};

// How often children with a CPU limit are checked, and how far past the limit the
// group is killed (the child's own limits stop code in Python at the limit).
constexpr absl::Duration kCpuCheck = absl::Milliseconds(10);
constexpr int64_t kCpuGraceNs = 100'000'000;

void KillGroup(pid_t pid) {
  kill(-pid, SIGKILL);  // the group it leads once it called setsid()
  kill(pid, SIGKILL);   // and itself, if it had not yet
}

int64_t Micros(const timeval& t) { return int64_t{t.tv_sec} * 1000000 + t.tv_usec; }

// Kills every live process whose real, effective or saved uid is `uid` (from
// /proc/<pid>/status); true if one was found. kill(-1) from a process of that uid
// cannot tell: it answers success whenever any other process exists.
bool KillEveryProcessOf(uid_t uid) {
  bool found = false;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return false;
  while (dirent* entry = readdir(proc)) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &pid) || pid <= 1) continue;
    std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
    std::string line;
    bool zombie = false, matches = false;
    while (std::getline(status, line)) {
      if (absl::StartsWith(line, "State:")) zombie = line.find('Z') != std::string::npos;
      if (!absl::StartsWith(line, "Uid:")) continue;
      for (absl::string_view field : absl::StrSplit(line.substr(4), '\t', absl::SkipEmpty())) {
        uid_t id = 0;
        matches = matches || (absl::SimpleAtoi(field, &id) && id == uid);
      }
      break;
    }
    if (matches && !zombie) {
      kill(pid, SIGKILL);
      found = true;
    }
  }
  closedir(proc);
  return found;
}

class Server {
 public:
  Server(UniqueFd control, absl::FunctionRef<int(UniqueFd, const ChildIdentity&)> child)
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
        if (!child.killed && child.cpu_limit_ns > 0) wake = std::min(wake, absl::Now() + kCpuCheck);
      }
      int timeout = -1;
      if (wake != absl::InfiniteFuture()) {
        timeout = static_cast<int>(
            std::max<int64_t>(0, absl::ToInt64Milliseconds(wake - absl::Now()) + 1));
      }
      const int ready = poll(fds.data(), fds.size(), timeout);
      if (ready < 0 && errno != EINTR) return Stop(1);
      ReapOrphans();
      // Reaped first: a child that ended by itself as its deadline came is not killed.
      for (size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents != 0) Reap(pids[i - 1]);
      }
      KillOverdue();
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
      ChildIdentity identity;
      identity.uid = request.value("uid", static_cast<uid_t>(-1));
      identity.gid = request.value("gid", static_cast<gid_t>(-1));
      Fork(std::move(passed), request.value("kill_after_us", int64_t{0}),
           request.value("cpu_limit_us", int64_t{0}), identity, request.value("sweep", false));
    } else if (op == "kill") {
      auto found = children_.find(request.value("pid", pid_t{-1}));
      if (found != children_.end()) KillGroup(found->first);
    }
  }

  // Orphans come to this server (a child subreaper): reaped here, so none stays a
  // zombie. Stops at a tracked child, which Reap reaps and reports.
  void ReapOrphans() {
    for (;;) {
      siginfo_t info{};
      if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return;
      if (children_.count(info.si_pid)) return;
      waitpid(info.si_pid, nullptr, WNOHANG);
    }
  }

  // For a child that could start processes: until nothing of its uid runs (a fork
  // bomb may leave a new one while signalled); the rounds that found some. Only for a
  // uid of its own (never the server's: that would take the host with it).
  int SweepUid(const Child& child) {
    if (!child.sweep || !child.identity.switched()) return 0;
    // A few rounds even when one finds nothing: a process being forked as the child
    // ended shows up a moment later.
    int found = 0;
    for (int round = 0, empty = 0; round < 100 && empty < 3; ++round) {
      ReapOrphans();
      if (KillEveryProcessOf(child.identity.uid)) {
        ++found;
        empty = 0;
      } else {
        ++empty;
      }
      usleep(1000);
    }
    ReapOrphans();  // what was killed last is a zombie by now
    return found;
  }

  void Fork(UniqueFd channel, int64_t kill_after_us, int64_t cpu_limit_us,
            const ChildIdentity& identity, bool sweep) {
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
      _exit(child_(std::move(channel), identity));
    }
    Child child;
    child.pidfd.reset(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
    child.started = absl::Now();
    child.kill_at = child.started + absl::Microseconds(kill_after_us);
    child.identity = identity;
    child.sweep = sweep;
    if (cpu_limit_us > 0 && clock_getcpuclockid(pid, &child.cpu_clock) == 0) {
      child.cpu_limit_ns = cpu_limit_us * 1000 + kCpuGraceNs;
    }
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

  // Past its deadline, or past its CPU limit (code stuck in C, which the child's own
  // limits cannot stop; RLIMIT_CPU counts whole seconds only).
  void KillOverdue() {
    const absl::Time now = absl::Now();
    for (auto& [pid, child] : children_) {
      if (child.killed || child.cpu_killed) continue;
      timespec used{};
      if (now >= child.kill_at) {
        KillGroup(pid);
        child.killed = true;
      } else if (child.cpu_limit_ns > 0 && clock_gettime(child.cpu_clock, &used) == 0 &&
                 int64_t{used.tv_sec} * 1'000'000'000 + used.tv_nsec >= child.cpu_limit_ns) {
        KillGroup(pid);
        child.cpu_killed = true;
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
    const int swept = SweepUid(child);
    Reply({{"ended", pid},
           {"status", status},
           {"killed", child.killed},
           {"cpu_killed", child.cpu_killed},
           {"swept", swept},
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
      SweepUid(child);
    }
    children_.clear();
    return code;
  }

  UniqueFd control_;
  absl::FunctionRef<int(UniqueFd, const ChildIdentity&)> child_;
  std::map<pid_t, Child> children_;
};

}  // namespace

int ServeForks(UniqueFd control,
               absl::FunctionRef<int(UniqueFd channel, const ChildIdentity& identity)> child) {
  signal(SIGPIPE, SIG_IGN);
  // What a child starts and leaves comes here, not to init: reaped, and swept by uid.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  return Server(std::move(control), child).Run();
}

}  // namespace pyhost

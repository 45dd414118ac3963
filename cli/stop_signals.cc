#include "cli/stop_signals.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <memory>
#include <thread>

namespace pyhost::cli {
namespace {

constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP};
constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

// The directory the crash handler removes; written before the handler can run.
char g_crash_root[4096];

struct LinuxDirent64 {
  ino64_t d_ino;
  off64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

// Removes what `dir_fd` holds (at the top, all but the lock file), then closes it;
// whether all of it went. Only async-signal-safe calls (open,
// getdents64, unlinkat, close); bounded depth, a buffer per level on the stack.
bool RemoveContents(int dir_fd, int depth) {
  if (depth > 32) {
    close(dir_fd);
    return false;
  }
  bool all = true;
  char buffer[2048];
  for (;;) {
    long n = syscall(SYS_getdents64, dir_fd, buffer, sizeof buffer);
    if (n <= 0) break;
    for (long at = 0; at < n;) {
      auto* entry = reinterpret_cast<LinuxDirent64*>(buffer + at);
      at += entry->d_reclen;
      const char* name = entry->d_name;
      if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
      // The root's lock file stays: if this removal stops short (too deep), the next
      // pyhost sweeps what is left (embed/work_dirs.h).
      if (depth == 0 && strcmp(name, ".lock") == 0) continue;
      if (unlinkat(dir_fd, name, 0) == 0) continue;
      int child = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child >= 0) RemoveContents(child, depth + 1);
      all = unlinkat(dir_fd, name, AT_REMOVEDIR) == 0 && all;
    }
  }
  close(dir_fd);
  return all;
}

void OnFatalSignal(int signo) {
  if (g_crash_root[0] == '/') {
    int fd = open(g_crash_root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 && RemoveContents(fd, 0)) {
      char lock[sizeof g_crash_root + 8];
      size_t n = strlen(g_crash_root);
      memcpy(lock, g_crash_root, n);
      memcpy(lock + n, "/.lock", 7);
      unlink(lock);
      rmdir(g_crash_root);
    }
  }
  signal(signo, SIG_DFL);
  raise(signo);  // delivered when the handler returns: the process dies as it would have
}

// The thread's alternate stack, installed while the thread lives and freed when it
// ends (the main thread's at exit), after being uninstalled.
struct AltStack {
  static constexpr size_t kSize = 64 * 1024;
  std::unique_ptr<char[]> memory{new char[kSize]};
  AltStack() {
    stack_t stack{};
    stack.ss_sp = memory.get();
    stack.ss_size = kSize;
    sigaltstack(&stack, nullptr);
  }
  ~AltStack() {
    stack_t off{};
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, nullptr);
  }
};

}  // namespace

StopSignals& StopSignals::Install() {
  static StopSignals* signals = new StopSignals();  // lives as long as the process
  return *signals;
}

StopSignals::StopSignals() {
  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  for (int signo : kStopSignals) sigaddset(&set, signo);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // inherited by every thread started later
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  PrepareThread();
  for (int signo : kFatalSignals) {
    struct sigaction action {};
    action.sa_handler = OnFatalSignal;
    action.sa_flags = SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&action.sa_mask);
    sigaction(signo, &action, nullptr);
  }
  std::thread([this] { Loop(); }).detach();
}

void StopSignals::PrepareThread() { thread_local AltStack alt_stack; }

void StopSignals::OnStop(std::function<void(int)> callback) {
  absl::MutexLock lock(&mu_);
  on_stop_ = std::move(callback);
}

void StopSignals::SetEmergencyExit(std::function<void()> cleanup) {
  absl::MutexLock lock(&mu_);
  emergency_ = std::move(cleanup);
}

void StopSignals::SetLastWords(std::function<void()> words) {
  absl::MutexLock lock(&mu_);
  last_words_ = std::move(words);
}

void StopSignals::RemoveOnCrash(const std::string& root) {
  if (root.size() < sizeof g_crash_root) memcpy(g_crash_root, root.c_str(), root.size() + 1);
}

void StopSignals::Loop() {
  sigset_t set;
  sigemptyset(&set);
  for (int signo : kStopSignals) sigaddset(&set, signo);
  int signo = 0;
  while (sigwait(&set, &signo) != 0) {
  }
  received_.store(signo);
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
  const absl::Time give_up = absl::Now() + kGrace;
  timespec repeat = absl::ToTimespec(kRepeat);
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (on_stop_) on_stop_(signo);
    }
    // A second signal, or the grace spent: the work did not stop; leave now.
    if (sigtimedwait(&set, nullptr, &repeat) > 0 || absl::Now() >= give_up) break;
  }
  {
    absl::MutexLock lock(&mu_);
    if (last_words_) last_words_();
    if (emergency_) emergency_();
  }
  _exit(128 + signo);
}

}  // namespace pyhost::cli

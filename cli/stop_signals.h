// How the pyhost command stops: SIGINT, SIGTERM and SIGHUP are blocked in every thread
// and taken by one thread of their own (sigwait), so no Python code and no library
// thread ever handles them; SIGPIPE is ignored (a closed output is an EPIPE error, and
// the command ends as if its input had ended).
//
//   StopSignals& stop = StopSignals::Install();  // first thing in main: no thread yet
//   stop.OnStop([&host](int) { host->InterruptAll(); });
//   stop.SetEmergencyExit([root] { RemoveTree(root); });
//   ... poll(stop.wake_fd()) beside the input; stop.received() after the work ...
//
// At the first signal the callback runs on the signal thread, and again every 100 ms
// (code may catch KeyboardInterrupt) until the process exits. If the process is still
// running kGrace after the first signal (code stuck in C), or at a second signal, the
// emergency cleanup runs and the process exits with 128 + the signal's number.
// Fatal signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) run a last cleanup that
// uses only async-signal-safe calls (RemoveTreeOnCrash), then die as they would have.
//
// Thread-safety: Install once, before any thread starts; the rest is thread-safe.
#ifndef PYHOST_CLI_STOP_SIGNALS_H_
#define PYHOST_CLI_STOP_SIGNALS_H_

#include <atomic>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace pyhost::cli {

class StopSignals {
 public:
  static constexpr absl::Duration kGrace = absl::Seconds(2);
  static constexpr absl::Duration kRepeat = absl::Milliseconds(100);

  static StopSignals& Install();

  void OnStop(std::function<void(int signo)> callback) ABSL_LOCKS_EXCLUDED(mu_);
  void SetEmergencyExit(std::function<void()> cleanup) ABSL_LOCKS_EXCLUDED(mu_);
  // What the command says before an emergency exit (answers for requests it will not
  // finish), called before the cleanup, on the signal thread. Null: nothing.
  void SetLastWords(std::function<void()> words) ABSL_LOCKS_EXCLUDED(mu_);
  // A directory to remove if the process dies of a fatal signal (one at a time).
  void RemoveOnCrash(const std::string& root);
  // Gives the calling thread a stack for fatal signals (a C stack overflow leaves no
  // room on its own). For threads that run code; the main thread has one.
  static void PrepareThread();

  // The first stop signal received, or 0.
  int received() const { return received_.load(); }
  // Readable once a stop signal has arrived (never read from: stays readable).
  int wake_fd() const { return wake_fd_; }

 private:
  StopSignals();
  void Loop();

  std::atomic<int> received_{0};
  int wake_fd_ = -1;
  absl::Mutex mu_;
  std::function<void(int)> on_stop_ ABSL_GUARDED_BY(mu_);
  std::function<void()> emergency_ ABSL_GUARDED_BY(mu_);
  std::function<void()> last_words_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pyhost::cli

#endif  // PYHOST_CLI_STOP_SIGNALS_H_

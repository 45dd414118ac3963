// A forked child, owned: it runs in its own process group, and the owner kills the
// whole group (the child and anything it started) at the deadline or when it lets go.
// How it ended is classified as sandbox2's Result does (ClassifyEnd, below).
//
//   absl::StatusOr<ChildProcess> child = ChildProcess::Fork([] { ...; return 0; });
//   ChildEnd end = child->WaitUntil(absl::Now() + absl::Milliseconds(500));
//   EndOutcome outcome = ClassifyEnd(end, violation_line);
//
// Thread-safety: one owner thread. The body runs in the child: after a fork of a
// multi-threaded process only async-signal-safe calls are allowed there, so the host
// forks through its single-threaded forkserver; tests fork directly.
#ifndef PYHOST_PROCESS_CHILD_PROCESS_H_
#define PYHOST_PROCESS_CHILD_PROCESS_H_

#include <sys/resource.h>
#include <sys/types.h>

#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "pyhost/limits.h"
#include "pyhost/outcome.h"

namespace pyhost {

struct ChildEnd {
  int wait_status = 0;
  bool killed_at_deadline = false;
  bool killed_over_cpu = false;  // its CPU time passed the limit (the forkserver's check)
  int swept = 0;                 // rounds of the uid sweep that found processes left (forkserver.h)
  absl::Duration wall;
  // The child's own use (not its descendants').
  absl::Duration user;
  absl::Duration system;
  int64_t max_rss_kb = 0;
};

class ChildProcess {
 public:
  // The child calls setsid() first in `body` (ApplyRestrictions does); until it has,
  // the group kill also signals the child itself.
  static absl::StatusOr<ChildProcess> Fork(absl::FunctionRef<int()> body);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ChildProcess(const ChildProcess&) = delete;
  ~ChildProcess();  // kills the group and reaps the child if it was not waited for

  pid_t pid() const { return pid_; }

  // Until the child ends or `deadline`, when its group is killed; reaps it.
  ChildEnd WaitUntil(absl::Time deadline);

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid), started_(absl::Now()) {}
  void KillGroup() const;

  pid_t pid_;
  absl::Time started_;
};

// How a child ended, as an outcome and a message naming the cause.
struct EndOutcome {
  Outcome outcome;
  std::string message;
};
// `violation`: what the child's SIGSYS handler wrote ("seccomp <nr>"), if anything;
// `limits`: those in force, for the messages.
EndOutcome ClassifyEnd(const ChildEnd& end, const std::string& violation, const Limits& limits);

}  // namespace pyhost

#endif  // PYHOST_PROCESS_CHILD_PROCESS_H_

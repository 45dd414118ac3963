// Enforces one execution's limits in-process: the wall deadline and the CPU time of
// the thread running the code (checked by the watchdog, which stops the execution's
// Cancellation with the limit's outcome and a message naming it), and the memory
// budget (guards/memory_budget.h). The process worker arms the same in its child.
//
//   Cancellation cancellation(Cancellation::kInterrupt);
//   ExecutionLimits limits(in_force, cancellation);  // the deadline runs from here
//   ... on the thread that will run the code:
//   {
//     ExecutionLimits::OnThisThread here(limits);  // its CPU clock, its allocations
//     ... run the code under `cancellation` ...
//   }
//   limits.cpu_us(); limits.budget().peak_bytes();
//
// A field of `in_force` left unset is no limit (a Host always sets every one:
// policy/limits.h's ResolveLimits).
// Thread-safety: thread-safe; at most one OnThisThread at a time.
#ifndef PYHOST_GUARDS_EXECUTION_LIMITS_H_
#define PYHOST_GUARDS_EXECUTION_LIMITS_H_

#include <pthread.h>
#include <time.h>

#include <atomic>
#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "bindings/cancellation.h"
#include "guards/memory_budget.h"
#include "guards/watchdog.h"
#include "pyhost/limits.h"

namespace pyhost {

class ExecutionLimits {
 public:
  ExecutionLimits(const Limits& in_force, Cancellation& cancellation);
  ~ExecutionLimits();
  ExecutionLimits(const ExecutionLimits&) = delete;
  ExecutionLimits& operator=(const ExecutionLimits&) = delete;

  class OnThisThread {
   public:
    explicit OnThisThread(ExecutionLimits& limits);
    ~OnThisThread();
    OnThisThread(const OnThisThread&) = delete;
    OnThisThread& operator=(const OnThisThread&) = delete;

   private:
    ExecutionLimits& limits_;
    MemoryBudget::Charge charge_;
  };

  // No check runs after this returns (the destructor does it too).
  void Disarm() { watch_.Drop(); }

  const Limits& in_force() const { return in_force_; }
  absl::Time deadline() const { return deadline_; }
  MemoryBudget& budget() { return budget_; }
  const MemoryBudget& budget() const { return budget_; }
  // When a limit stopped the execution, if one did.
  std::optional<absl::Time> stopped_at() const;
  // CPU time the code's thread used under OnThisThread scopes so far.
  int64_t cpu_us() const;

 private:
  void Check();  // the watchdog's callback

  const Limits in_force_;
  Cancellation& cancellation_;
  const absl::Time start_;
  const absl::Time deadline_;
  MemoryBudget budget_;
  // The running thread's CPU clock and its reading when the scope began (valid while
  // `running_`); the CPU time of the scopes that ended.
  std::atomic<bool> running_{false};
  clockid_t clock_{};
  int64_t clock_start_ns_ = 0;
  std::atomic<int64_t> ended_cpu_ns_{0};
  // absl::ToUnixNanos of the moment a limit stopped the execution; 0 until then.
  std::atomic<int64_t> stopped_at_ns_{0};
  Watchdog::Watch watch_;  // last: dropped first, so no check runs on a dying object
};

// The limit behind an outcome, as the request names it: "timeout_ms" (kTimeout),
// "cpu_ms" (kCpuLimit), "memory_mb" (kMemoryLimit); empty for the others.
absl::string_view LimitName(Outcome outcome);

}  // namespace pyhost

#endif  // PYHOST_GUARDS_EXECUTION_LIMITS_H_

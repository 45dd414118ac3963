#include "guards/execution_limits.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace pyhost {
namespace {

// How often the CPU clock is read; the wall deadline is met to within it too.
constexpr absl::Duration kCheckPeriod = absl::Milliseconds(5);

int64_t ClockNs(clockid_t clock) {
  timespec ts;
  if (clock_gettime(clock, &ts) != 0) return 0;
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace

ExecutionLimits::ExecutionLimits(const Limits& in_force, Cancellation& cancellation)
    : in_force_(in_force),
      cancellation_(cancellation),
      start_(absl::Now()),
      deadline_(in_force.timeout_ms ? start_ + absl::Milliseconds(*in_force.timeout_ms)
                                    : absl::InfiniteFuture()),
      budget_(in_force.memory_mb && *in_force.memory_mb <= kMaxMemoryMb ? *in_force.memory_mb << 20
                                                                        : INT64_MAX) {
  if (in_force.timeout_ms || in_force.cpu_ms) {
    watch_ = Watchdog::Global().Arm(std::min(start_ + kCheckPeriod, deadline_), kCheckPeriod,
                                    [this] { Check(); });
  }
}

ExecutionLimits::~ExecutionLimits() { watch_.Drop(); }

absl::string_view LimitName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kTimeout:
      return "timeout_ms";
    case Outcome::kCpuLimit:
      return "cpu_ms";
    case Outcome::kMemoryLimit:
      return "memory_mb";
    default:
      return "";
  }
}

ExecutionLimits::OnThisThread::OnThisThread(ExecutionLimits& limits)
    : limits_(limits), charge_(&limits.budget_) {
  pthread_getcpuclockid(pthread_self(), &limits_.clock_);
  limits_.clock_start_ns_ = ClockNs(limits_.clock_);
  limits_.running_.store(true, std::memory_order_release);
}

ExecutionLimits::OnThisThread::~OnThisThread() {
  limits_.running_.store(false, std::memory_order_release);
  limits_.ended_cpu_ns_.fetch_add(ClockNs(limits_.clock_) - limits_.clock_start_ns_);
}

int64_t ExecutionLimits::cpu_us() const {
  int64_t ns = ended_cpu_ns_.load();
  if (running_.load(std::memory_order_acquire)) ns += ClockNs(clock_) - clock_start_ns_;
  return ns / 1000;
}

std::optional<absl::Time> ExecutionLimits::stopped_at() const {
  const int64_t ns = stopped_at_ns_.load();
  if (ns == 0) return std::nullopt;
  return absl::FromUnixNanos(ns);
}

void ExecutionLimits::Check() {
  if (stopped_at_ns_.load() != 0) {
    cancellation_.Resignal();  // a racing eval_breaker store must not hide the stop
    return;
  }
  const absl::Time now = absl::Now();
  if (now >= deadline_) {
    stopped_at_ns_.store(absl::ToUnixNanos(now));
    cancellation_.Stop(Outcome::kTimeout,
                       absl::StrCat("wall-clock limit of ", *in_force_.timeout_ms,
                                    " ms (timeout_ms) reached after ",
                                    absl::ToInt64Milliseconds(now - start_), " ms"));
    return;
  }
  // The clock of a thread that ended its scope is not read: the thread may be gone.
  const int64_t used_ms = cpu_us() / 1000;
  if (in_force_.cpu_ms && used_ms >= *in_force_.cpu_ms) {
    stopped_at_ns_.store(absl::ToUnixNanos(now));
    cancellation_.Stop(Outcome::kCpuLimit,
                       absl::StrCat("CPU time limit of ", *in_force_.cpu_ms,
                                    " ms (cpu_ms) reached after ", used_ms, " ms of CPU time"));
  }
}

}  // namespace pyhost

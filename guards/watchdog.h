// A timer thread that calls back when a deadline passes, and again every period
// after it, until the watch is dropped. No Python here: callbacks must not take the
// GIL or block (they run on the watchdog's one thread); Cancellation::Cancel is the
// kind of thing they call.
//
//   Watchdog::Watch watch = Watchdog::Global().Arm(
//       absl::Now() + absl::Milliseconds(500), absl::Milliseconds(50),
//       [&cancellation] { cancellation.Cancel(); });
//   ... work that the callback may interrupt ...
//   // ~Watch: no callback runs after this returns
//
// Thread-safety: thread-safe. A callback never runs after the destructor of its Watch
// returns: dropping a Watch waits for a callback in progress (so a callback must not
// drop its own Watch).
#ifndef PYHOST_GUARDS_WATCHDOG_H_
#define PYHOST_GUARDS_WATCHDOG_H_

#include <cstdint>
#include <functional>
#include <map>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace pyhost {

class Watchdog {
 public:
  // The process's watchdog, started on first use and never stopped.
  static Watchdog& Global();

  class Watch {
   public:
    Watch() = default;
    Watch(Watch&& other) noexcept;
    Watch& operator=(Watch&& other) noexcept;
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;

    // Stops the callbacks (waits for one in progress). Idempotent.
    void Drop();

   private:
    friend class Watchdog;
    Watch(Watchdog* owner, int64_t id) : owner_(owner), id_(id) {}
    Watchdog* owner_ = nullptr;
    int64_t id_ = 0;
  };

  // Calls `callback` at `deadline`, then every `period` (none if zero) until the
  // returned Watch is dropped.
  Watch Arm(absl::Time deadline, absl::Duration period, std::function<void()> callback)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    absl::Time due;
    absl::Duration period;
    std::function<void()> callback;
  };
  Watchdog();
  void Loop();
  void Drop(int64_t id) ABSL_LOCKS_EXCLUDED(mu_);

  absl::Mutex mu_;
  std::map<int64_t, Entry> entries_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t running_ ABSL_GUARDED_BY(mu_) = 0;  // id whose callback runs now, or 0
  // When the thread wakes next, and whether it must wake sooner (an earlier entry).
  absl::Time wake_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  // The thread ticks every kTick for kTickFor after it last had entries.
  static constexpr absl::Duration kTick = absl::Milliseconds(5);
  static constexpr absl::Duration kTickFor = absl::Seconds(1);
  absl::Time last_busy_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::thread thread_;
};

}  // namespace pyhost

#endif  // PYHOST_GUARDS_WATCHDOG_H_

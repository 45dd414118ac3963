#include "guards/watchdog.h"

#include <utility>

namespace pyhost {

Watchdog& Watchdog::Global() {
  static Watchdog* watchdog = new Watchdog();  // leaked: lives as long as the process
  return *watchdog;
}

Watchdog::Watchdog() {
  thread_ = std::thread([this] { Loop(); });
  thread_.detach();
}

Watchdog::Watch Watchdog::Arm(absl::Time deadline, absl::Duration period,
                              std::function<void()> callback) {
  absl::MutexLock lock(&mu_);
  int64_t id = next_id_++;
  entries_[id] = Entry{deadline, period, std::move(callback)};
  // Woken only when due before it would wake anyway: a watch armed and dropped within
  // a tick (a resident tool call's) costs the thread nothing.
  if (deadline < wake_at_) wake_ = true;
  return Watch(this, id);
}

void Watchdog::Drop(int64_t id) {
  absl::MutexLock lock(&mu_);
  // A callback in progress uses its entry: wait for it to return first.
  auto not_running = [this, id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return running_ != id; };
  mu_.Await(absl::Condition(&not_running));
  entries_.erase(id);
}

void Watchdog::Loop() ABSL_NO_THREAD_SAFETY_ANALYSIS {  // unlocks around callbacks
  mu_.Lock();
  for (;;) {
    absl::Time next = absl::InfiniteFuture();
    int64_t due_id = 0;
    for (const auto& [id, entry] : entries_) {
      if (entry.due < next) {
        next = entry.due;
        due_id = id;
      }
    }
    const absl::Time now = absl::Now();
    if (due_id != 0) last_busy_ = now;
    if (due_id == 0 || next > now) {
      // Idle for a while: sleep until an entry is armed. Recently busy: tick, so that
      // the next Arm (due a tick or more ahead) need not wake the thread.
      if (due_id == 0 && now - last_busy_ < kTickFor) next = now + kTick;
      wake_at_ = next;
      wake_ = false;
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return wake_; };
      mu_.AwaitWithDeadline(absl::Condition(&woken), next);
      continue;
    }
    Entry& entry = entries_[due_id];
    entry.due =
        entry.period > absl::ZeroDuration() ? absl::Now() + entry.period : absl::InfiniteFuture();
    std::function<void()> callback = entry.callback;
    running_ = due_id;
    mu_.Unlock();
    callback();
    mu_.Lock();
    running_ = 0;
  }
}

Watchdog::Watch::Watch(Watch&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), id_(std::exchange(other.id_, 0)) {}

Watchdog::Watch& Watchdog::Watch::operator=(Watch&& other) noexcept {
  if (this != &other) {
    Drop();
    owner_ = std::exchange(other.owner_, nullptr);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

Watchdog::Watch::~Watch() { Drop(); }

void Watchdog::Watch::Drop() {
  if (owner_ != nullptr) owner_->Drop(id_);
  owner_ = nullptr;
}

}  // namespace pyhost

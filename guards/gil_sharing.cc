#include "guards/gil_sharing.h"

#include <atomic>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bindings/cpython_internals.h"

namespace pyhost {
namespace {

// Short against the 5 ms switch interval: a waiter's request reaches the holder at
// most a tick after the waiter made it.
constexpr absl::Duration kTick = absl::Milliseconds(1);

class Ticker {
 public:
  static Ticker& Global() {
    static Ticker* ticker = new Ticker();  // leaked: its thread lives as long as the process
    return *ticker;
  }

  void Enter() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    ++running_;
  }
  void Leave() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    --running_;
  }
  int64_t forwarded() const { return forwarded_.load(std::memory_order_relaxed); }

 private:
  Ticker() {
    std::thread([this] { Loop(); }).detach();
  }

  void Loop() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto busy = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return running_ > 0; };
    for (;;) {
      mu_.Await(absl::Condition(&busy));
      mu_.Unlock();
      if (pyhost_gil_share_tick()) forwarded_.fetch_add(1, std::memory_order_relaxed);
      absl::SleepFor(kTick);
      mu_.Lock();
    }
  }

  absl::Mutex mu_;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<int64_t> forwarded_{0};
};

}  // namespace

GilSharing::Running::Running() { Ticker::Global().Enter(); }
GilSharing::Running::~Running() { Ticker::Global().Leave(); }
int64_t GilSharing::forwarded() { return Ticker::Global().forwarded(); }

}  // namespace pyhost

#include "embed/cancellation.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <ctime>

#include "absl/container/flat_hash_map.h"
#include "embed/cpython_internals.h"
#include "embed/check.h"
#include "embed/thread_state.h"

namespace pyhost {
namespace {

// Threads sleeping in InterruptibleSleep, by thread state: what a wake-up targets.
// Each OS thread sleeps on a futex word of its own.
absl::Mutex sleepers_mu(absl::kConstInit);

absl::flat_hash_map<PyThreadState*, std::atomic<uint32_t>*>& Sleepers()
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(sleepers_mu) {
  static auto* sleepers = new absl::flat_hash_map<PyThreadState*, std::atomic<uint32_t>*>();
  return *sleepers;
}

thread_local std::atomic<uint32_t> t_wake_word{0};

void WakeSleeper(PyThreadState* tstate) {
  absl::MutexLock lock(&sleepers_mu);
  auto it = Sleepers().find(tstate);
  if (it == Sleepers().end()) return;
  it->second->store(1);
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(it->second), FUTEX_WAKE_PRIVATE, 1,
          nullptr, nullptr, 0);
}

// Registers the calling thread as sleeping with `tstate` for its lifetime.
class SleepRegistration {
 public:
  explicit SleepRegistration(PyThreadState* tstate) : tstate_(tstate) {
    absl::MutexLock lock(&sleepers_mu);
    Sleepers()[tstate_] = &t_wake_word;
  }
  ~SleepRegistration() {
    absl::MutexLock lock(&sleepers_mu);
    Sleepers().erase(tstate_);
  }

 private:
  PyThreadState* const tstate_;
};

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Raises the thread's pending asynchronous exception now, as the eval loop would.
PyObject* RaisePending(PyThreadState* tstate) {
  PyObject* pending = pyhost_async_exc_take_back(tstate);
  PyErr_SetNone(pending);
  Py_DECREF(pending);
  return nullptr;
}

}  // namespace

Cancellation::Cancellation(PyObject* exception_type)
    : exception_type_(exception_type != nullptr ? exception_type : PyExc_KeyboardInterrupt) {}

void Cancellation::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  DeliverLocked();
}

bool Cancellation::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

void Cancellation::DeliverLocked() {
  if (running_ == nullptr || banked_ == 0) return;
  if (pyhost_async_exc_offer(running_, exception_type_)) --banked_;
  WakeSleeper(running_);
}

Cancellation::UserCode::UserCode(Cancellation* cancellation) : cancellation_(cancellation) {
  if (cancellation_ == nullptr) return;
  PyThreadState* tstate = CurrentThreadStateOrNull();
  PYHOST_CHECK(tstate != nullptr, "user code runs with the GIL held");
  absl::MutexLock lock(&cancellation_->mu_);
  PYHOST_CHECK(cancellation_->running_ == nullptr, "UserCode scopes of one Cancellation nest");
  // The GIL is held: the references Cancel() hands over are taken now.
  Py_SET_REFCNT(cancellation_->exception_type_,
                Py_REFCNT(cancellation_->exception_type_) + kDeliveries);
  cancellation_->banked_ = kDeliveries;
  cancellation_->running_ = tstate;
  if (cancellation_->cancelled_) cancellation_->DeliverLocked();
}

Cancellation::UserCode::~UserCode() {
  if (cancellation_ == nullptr) return;
  PyObject* other = nullptr;  // an exception the code itself made pending
  {
    absl::MutexLock lock(&cancellation_->mu_);
    PyObject* pending = pyhost_async_exc_take_back(cancellation_->running_);
    if (pending == cancellation_->exception_type_) {
      ++cancellation_->banked_;
    } else {
      other = pending;
    }
    Py_SET_REFCNT(cancellation_->exception_type_,
                  Py_REFCNT(cancellation_->exception_type_) - cancellation_->banked_);
    cancellation_->banked_ = 0;
    cancellation_->running_ = nullptr;
  }
  Py_XDECREF(other);  // outside the lock: it may run code
}

CancellationSet::Member::Member(CancellationSet& set, Cancellation& cancellation)
    : set_(set), cancellation_(cancellation) {
  absl::MutexLock lock(&set_.mu_);
  set_.members_.insert(&cancellation_);
}

CancellationSet::Member::~Member() {
  absl::MutexLock lock(&set_.mu_);
  set_.members_.erase(&cancellation_);
}

void CancellationSet::CancelAll() {
  absl::MutexLock lock(&mu_);
  for (Cancellation* cancellation : members_) cancellation->Cancel();
}

int CancellationSet::size() {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(members_.size());
}

void RaiseInThread(PyThreadState* tstate, PyObject* exception_type) {
  Py_INCREF(exception_type);
  if (!pyhost_async_exc_offer(tstate, exception_type)) Py_DECREF(exception_type);
  WakeSleeper(tstate);
}

PyObject* InterruptibleSleep(PyObject* seconds) {
  _PyTime_t timeout;
  if (_PyTime_FromSecondsObject(&timeout, seconds, _PyTime_ROUND_TIMEOUT) != 0) return nullptr;
  if (timeout < 0) {
    PyErr_SetString(PyExc_ValueError, "sleep length must be non-negative");
    return nullptr;
  }
  PyThreadState* tstate = PyThreadState_Get();
  SleepRegistration registered(tstate);
  const int64_t deadline = MonotonicNs() + _PyTime_AsNanoseconds(timeout);
  for (;;) {
    t_wake_word.store(0);
    if (tstate->async_exc != nullptr) return RaisePending(tstate);
    const int64_t remaining = deadline - MonotonicNs();
    if (remaining <= 0) {
      // time.sleep(0) lets other threads run, as python3's does.
      Py_BEGIN_ALLOW_THREADS
      Py_END_ALLOW_THREADS
      break;
    }
    timespec wait{static_cast<time_t>(remaining / 1000000000),
                  static_cast<long>(remaining % 1000000000)};
    long rc;
    int error;
    Py_BEGIN_ALLOW_THREADS
    rc = syscall(SYS_futex, reinterpret_cast<uint32_t*>(&t_wake_word), FUTEX_WAIT_PRIVATE, 0,
                 &wait, nullptr, 0);
    error = errno;
    Py_END_ALLOW_THREADS
    if (rc != 0 && error == EINTR && PyErr_CheckSignals() != 0) return nullptr;
  }
  Py_RETURN_NONE;
}

}  // namespace pyhost

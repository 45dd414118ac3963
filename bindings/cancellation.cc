#include "bindings/cancellation.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <ctime>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "bindings/check.h"
#include "bindings/cpython_internals.h"
#include "bindings/python_error.h"
#include "bindings/thread_state.h"

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
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(it->second), FUTEX_WAKE_PRIVATE, 1, nullptr,
          nullptr, 0);
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

// pyhost.ExecutionStopped. An instance is made when code catches it (or anything
// looks at it): the thread is then stopped again, at its next bytecode boundary.
int ExecutionStoppedInit(PyObject* self, PyObject* args, PyObject* kwargs);

PyTypeObject g_execution_stopped = {
    PyVarObject_HEAD_INIT(nullptr, 0) "pyhost.ExecutionStopped",  // tp_name
    sizeof(PyBaseExceptionObject),                                // tp_basicsize
};

PyObject* Stopped() { return reinterpret_cast<PyObject*>(&g_execution_stopped); }

// The references Cancel() hands over without the GIL come from a bank set aside in
// the two exception types' reference counts (the eval loop drops one for each it
// raises); it is topped up, GIL held, long before it could run out.
constexpr Py_ssize_t kBank = Py_ssize_t{1} << 30;

void TopUp(PyObject* type) {
  if (Py_REFCNT(type) < kBank / 2) Py_SET_REFCNT(type, Py_REFCNT(type) + kBank);
}

PyObject* ExceptionFor(Cancellation::Kind kind) {
  return kind == Cancellation::kStop ? Stopped() : PyExc_KeyboardInterrupt;
}

bool IsBanked(PyObject* type) { return type == PyExc_KeyboardInterrupt || type == Stopped(); }

// Hands `type` (banked) to `tstate` and wakes it from time.sleep. Any thread.
void Deliver(PyThreadState* tstate, PyObject* type) {
  pyhost_async_exc_offer(tstate, type);
  WakeSleeper(tstate);
}

int ExecutionStoppedInit(PyObject* self, PyObject* args, PyObject* kwargs) {
  if (reinterpret_cast<PyTypeObject*>(PyExc_BaseException)->tp_init(self, args, kwargs) < 0) {
    return -1;
  }
  StopThread(PyThreadState_Get());
  return 0;
}

// Raises the thread's pending asynchronous exception now, as the eval loop would.
PyObject* RaisePending(PyThreadState* tstate) {
  PyObject* pending = pyhost_async_exc_take_back(tstate);
  PyErr_SetNone(pending);
  if (!IsBanked(pending)) Py_DECREF(pending);
  return nullptr;
}

}  // namespace

absl::Status ReadyCancellation() {
  auto* base = reinterpret_cast<PyTypeObject*>(PyExc_BaseException);
  g_execution_stopped.tp_base = base;
  g_execution_stopped.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
  g_execution_stopped.tp_traverse = base->tp_traverse;  // a static type names them itself
  g_execution_stopped.tp_clear = base->tp_clear;
  g_execution_stopped.tp_dealloc = base->tp_dealloc;
  g_execution_stopped.tp_init = ExecutionStoppedInit;
  g_execution_stopped.tp_doc =
      "pyhost stopped this execution (a limit, a teardown); catching it does not help.";
  if (PyType_Ready(&g_execution_stopped) != 0) {
    return StatusFromPythonError("readying pyhost.ExecutionStopped");
  }
  TopUp(PyExc_KeyboardInterrupt);
  TopUp(Stopped());
  return absl::OkStatus();
}

Cancellation::Cancellation(Kind kind) : kind_(kind) {}

void Cancellation::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  DeliverLocked();
}

void Cancellation::Stop(Outcome reason, std::string message) {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  if (!stop_) stop_ = StopReason{reason, std::move(message)};
  DeliverLocked();
}

void Cancellation::Resignal() {
  absl::MutexLock lock(&mu_);
  if (stop_ && running_ != nullptr) pyhost_async_exc_resignal(running_);
}

std::optional<Cancellation::StopReason> Cancellation::stop_reason() const {
  absl::MutexLock lock(&mu_);
  return stop_;
}

bool Cancellation::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

void Cancellation::DeliverLocked() {
  if (running_ != nullptr) Deliver(running_, ExceptionFor(stop_ ? kStop : kind_));
}

Cancellation::UserCode::UserCode(Cancellation* cancellation, bool now)
    : cancellation_(cancellation) {
  if (cancellation_ == nullptr) return;
  PyThreadState* tstate = CurrentThreadStateOrNull();
  PYHOST_CHECK(tstate != nullptr, "user code runs with the GIL held");
  TopUp(ExceptionFor(cancellation_->kind_));
  TopUp(Stopped());
  absl::MutexLock lock(&cancellation_->mu_);
  PYHOST_CHECK(cancellation_->running_ == nullptr, "UserCode scopes of one Cancellation nest");
  cancellation_->running_ = tstate;
  if (now && cancellation_->cancelled_) cancellation_->DeliverLocked();
}

Cancellation::UserCode::~UserCode() {
  if (cancellation_ == nullptr) return;
  {
    absl::MutexLock lock(&cancellation_->mu_);  // no delivery after this
    cancellation_->running_ = nullptr;
  }
  DropPendingInterrupt();
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

void StopThread(PyThreadState* tstate) {
  TopUp(Stopped());
  Deliver(tstate, Stopped());
}

namespace {

// A trace and profile function that never returns: the thread gives up the GIL and
// waits for the process to end.
int Park(PyObject*, PyFrameObject*, int, PyObject*) {
  PyEval_SaveThread();
  for (;;) pause();
}

}  // namespace

void ParkThread(PyThreadState* tstate) {
  PYHOST_CHECK(tstate != PyThreadState_Get(), "parking the current thread");
  // Both: a line traced catches Python loops, a call profiled catches a loop of
  // one line that calls functions (sys.settrace(None) included).
  if (_PyEval_SetTrace(tstate, Park, nullptr) != 0 ||
      _PyEval_SetProfile(tstate, Park, nullptr) != 0) {
    PyErr_Clear();
  }
}

void DropPendingInterrupt() {
  PyObject* pending = pyhost_async_exc_take_back(PyThreadState_Get());
  if (pending == nullptr || IsBanked(pending)) return;
  PyObject *type, *value, *traceback;  // releasing the code's own may run code
  PyErr_Fetch(&type, &value, &traceback);
  Py_DECREF(pending);
  PyErr_Restore(type, value, traceback);
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
  const int64_t now = MonotonicNs();
  if (_PyTime_AsNanoseconds(timeout) > INT64_MAX - now) {
    errno = EINVAL;  // as python3's clock_nanosleep answers a deadline past the clock's range
    return PyErr_SetFromErrno(PyExc_OSError);
  }
  const int64_t deadline = now + _PyTime_AsNanoseconds(timeout);
  for (;;) {
    t_wake_word.store(0);
    if (tstate->async_exc != nullptr) return RaisePending(tstate);
    const int64_t remaining = deadline - MonotonicNs();
    if (remaining <= 0) {
      // time.sleep(0) lets other threads run, as python3's does.
      Py_BEGIN_ALLOW_THREADS Py_END_ALLOW_THREADS break;
    }
    timespec wait{static_cast<time_t>(remaining / 1000000000),
                  static_cast<long>(remaining % 1000000000)};
    long rc;
    int error;
    Py_BEGIN_ALLOW_THREADS rc = syscall(SYS_futex, reinterpret_cast<uint32_t*>(&t_wake_word),
                                        FUTEX_WAIT_PRIVATE, 0, &wait, nullptr, 0);
    error = errno;
    Py_END_ALLOW_THREADS if (rc != 0 && error == EINTR && PyErr_CheckSignals() != 0) return nullptr;
  }
  Py_RETURN_NONE;
}

bool RaisePendingInterrupt() {
  PyThreadState* tstate = PyThreadState_Get();
  if (__atomic_load_n(&tstate->async_exc, __ATOMIC_SEQ_CST) == nullptr) return false;
  RaisePending(tstate);
  return true;
}

bool IsCancellationException(PyObject* type) {
  return PyErr_GivenExceptionMatches(type, PyExc_KeyboardInterrupt) ||
         PyErr_GivenExceptionMatches(type, Stopped());
}

}  // namespace pyhost

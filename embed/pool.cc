#include "embed/pool.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "embed/check.h"
#include "embed/runtime.h"
#include "embed/thread_state.h"

namespace pyhost {

// Lock order: mu_ is never held while waiting for the GIL. The factory takes mu_
// with the GIL held (briefly, no waiting inside); everyone else takes it without.

InterpreterLease& InterpreterLease::operator=(InterpreterLease&& other) {
  if (this != &other) {
    if (interpreter_) pool_->Retire(std::move(interpreter_));
    pool_ = other.pool_;
    interpreter_ = std::move(other.interpreter_);
  }
  return *this;
}

InterpreterLease::~InterpreterLease() {
  if (interpreter_) pool_->Retire(std::move(interpreter_));
}

InterpreterPool::InterpreterPool(PoolOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<InterpreterPool>> InterpreterPool::Start(PoolOptions options) {
  if (options.size < 1) return absl::InvalidArgumentError("pool size must be at least 1");
  absl::StatusOr<Runtime*> runtime = Runtime::Get();
  if (!runtime.ok()) return runtime.status();
  std::unique_ptr<InterpreterPool> pool(new InterpreterPool(std::move(options)));
  pool->factory_ = std::thread([p = pool.get()] { p->FactoryLoop(); });
  absl::Status error;
  {
    absl::MutexLock lock(&pool->mu_);
    pool->mu_.Await(absl::Condition(
        +[](InterpreterPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
          return !p->ready_.empty() || !p->creation_error_.ok();
        },
        pool.get()));
    error = pool->creation_error_;
  }
  if (!error.ok()) return error;  // ~InterpreterPool joins the factory
  return pool;
}

InterpreterPool::~InterpreterPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  factory_.join();
}

absl::StatusOr<InterpreterLease> InterpreterPool::Acquire() {
  absl::MutexLock lock(&mu_);
  ++waiters_;
  mu_.Await(absl::Condition(
      +[](InterpreterPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
        return !p->ready_.empty() || !p->creation_error_.ok() || p->stopping_;
      },
      this));
  --waiters_;
  if (!ready_.empty()) {
    std::unique_ptr<Interpreter> interpreter = std::move(ready_.front());
    ready_.pop_front();
    return InterpreterLease(this, std::move(interpreter));
  }
  if (stopping_) return absl::FailedPreconditionError("the interpreter pool is stopping");
  return absl::UnavailableError(
      absl::StrCat("no interpreter can be created: ", creation_error_.message()));
}

InterpreterPool::Busy::Busy(InterpreterPool& pool) : pool_(pool) {
  absl::MutexLock lock(&pool_.mu_);
  ++pool_.busy_;
}

InterpreterPool::Busy::~Busy() {
  absl::MutexLock lock(&pool_.mu_);
  --pool_.busy_;
}

void InterpreterPool::Retire(std::unique_ptr<Interpreter> interpreter) {
  absl::MutexLock lock(&mu_);
  retired_.push_back(std::move(interpreter));
}

PoolStats InterpreterPool::stats() {
  absl::MutexLock lock(&mu_);
  PoolStats stats = stats_;
  stats.ready = static_cast<int>(ready_.size());
  stats.retired = static_cast<int>(retired_.size());
  return stats;
}

// GIL held with the factory's own thread state current.
void InterpreterPool::Destroy(std::unique_ptr<Interpreter> interpreter) {
  interpreter->sandbox().Deactivate();  // lockdown for what the code left behind
  bool threads_left = interpreter->StopAndCountThreads() > 0;
  if (threads_left) {
    interpreter.release();  // Py_EndInterpreter would abort the process
  } else {
    interpreter.reset();
  }
  absl::MutexLock lock(&mu_);
  ++(threads_left ? stats_.leaked : stats_.destroyed);
}

void InterpreterPool::FactoryLoop() {
  PyInterpreterState* main = (*Runtime::Get())->main_interpreter();
  // This thread's own main-interpreter thread state: creating and ending
  // interpreters needs the GIL held with some thread state current.
  PyThreadState* home = PyThreadState_New(main);
  PYHOST_CHECK(home != nullptr, "PyThreadState_New failed (out of memory)");
  const size_t target = static_cast<size_t>(options_.size);
  for (;;) {
    std::unique_ptr<Interpreter> to_destroy;
    std::vector<std::unique_ptr<Interpreter>> at_exit;
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        if (stopping_) return true;
        bool can_create = creation_error_.ok() && ready_.size() < target;
        // Urgent work goes ahead even while requests run: a request waits for an
        // interpreter, or used ones pile up (each holds its memory).
        if ((waiters_ > 0 && ready_.empty() && can_create) || retired_.size() > target) {
          return true;
        }
        return busy_ == 0 && (can_create || !retired_.empty());
      };
      mu_.Await(absl::Condition(&has_work));
      if (stopping_) {
        for (auto& interpreter : ready_) at_exit.push_back(std::move(interpreter));
        for (auto& interpreter : retired_) at_exit.push_back(std::move(interpreter));
        ready_.clear();
        retired_.clear();
      } else if (!retired_.empty() &&
                 (waiters_ == 0 || !ready_.empty() || !creation_error_.ok() ||
                  retired_.size() > target)) {
        // Destroy first unless a request is waiting for a new interpreter; but never
        // let used interpreters pile up past `target` (under steady load a request
        // is always waiting, and each retired interpreter holds its memory).
        to_destroy = std::move(retired_.back());
        retired_.pop_back();
      }
    }
    PyEval_RestoreThread(home);
    if (!at_exit.empty() || to_destroy) {
      for (auto& interpreter : at_exit) Destroy(std::move(interpreter));
      if (to_destroy) Destroy(std::move(to_destroy));
    } else {
      bool stop_now;
      {
        absl::MutexLock lock(&mu_);
        stop_now = stopping_;
      }
      if (!stop_now) {
        absl::StatusOr<std::unique_ptr<Interpreter>> created =
            Interpreter::Create(options_.interpreter);
        absl::MutexLock lock(&mu_);
        if (created.ok()) {
          ready_.push_back(*std::move(created));
          ++stats_.created;
        } else {
          creation_error_ = created.status();
        }
      }
    }
    PyEval_SaveThread();
    if (!at_exit.empty()) break;
    absl::MutexLock lock(&mu_);
    if (stopping_ && ready_.empty() && retired_.empty()) break;
  }
  PyEval_RestoreThread(home);
  PyThreadState_Clear(home);
  PyThreadState_DeleteCurrent();
}

}  // namespace pyhost

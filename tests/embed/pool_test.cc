#include "embed/pool.h"

#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "bindings/thread_state.h"

namespace pyhost {
namespace {

using ::testing::HasSubstr;

PoolOptions Options(int size, std::vector<std::string> prewarm = {}) {
  PoolOptions options;
  options.size = size;
  options.interpreter.prewarm_modules = std::move(prewarm);
  return options;
}

// Waits until the factory has nothing left to do (bounded, for stats checks).
void WaitIdle(InterpreterPool& pool, int size) {
  for (int i = 0; i < 2000; ++i) {
    PoolStats stats = pool.stats();
    if (stats.ready == size && stats.retired == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  FAIL() << "pool did not settle";
}

TEST(PoolTest, HandsOutNeverUsedInterpretersOnce) {
  absl::StatusOr<std::unique_ptr<InterpreterPool>> pool = InterpreterPool::Start(Options(2));
  ASSERT_TRUE(pool.ok()) << pool.status();
  std::set<int64_t> ids;
  for (int i = 0; i < 6; ++i) {
    absl::StatusOr<InterpreterLease> lease = (*pool)->Acquire();
    ASSERT_TRUE(lease.ok()) << lease.status();
    EXPECT_TRUE(ids.insert((*lease)->id()).second) << "interpreter reused";
  }
  WaitIdle(**pool, 2);
  PoolStats stats = (*pool)->stats();
  EXPECT_EQ(stats.destroyed, 6);
  EXPECT_EQ(stats.created, 8);
  EXPECT_EQ(stats.leaked, 0);
}

TEST(PoolTest, PrewarmedModulesAreAlreadyImported) {
  absl::StatusOr<std::unique_ptr<InterpreterPool>> pool =
      InterpreterPool::Start(Options(1, {"json", "decimal"}));
  ASSERT_TRUE(pool.ok()) << pool.status();
  absl::StatusOr<InterpreterLease> lease = (*pool)->Acquire();
  ASSERT_TRUE(lease.ok());
  ThreadStateScope scope((*lease)->state());
  PyObject* modules = PyImport_GetModuleDict();
  EXPECT_NE(PyDict_GetItemString(modules, "json"), nullptr);
  EXPECT_NE(PyDict_GetItemString(modules, "decimal"), nullptr);
  EXPECT_EQ(PyDict_GetItemString(modules, "csv"), nullptr);
}

TEST(PoolTest, BadPrewarmModuleFailsStartWithItsName) {
  absl::StatusOr<std::unique_ptr<InterpreterPool>> pool =
      InterpreterPool::Start(Options(2, {"json", "no_such_module_xyz"}));
  ASSERT_FALSE(pool.ok());
  EXPECT_THAT(std::string(pool.status().message()), HasSubstr("no_such_module_xyz"));
}

TEST(PoolTest, RejectsEmptyPool) {
  EXPECT_TRUE(absl::IsInvalidArgument(InterpreterPool::Start(Options(0)).status()));
}

TEST(PoolTest, DrainedPoolMakesRequestsWaitNeverShare) {
  absl::StatusOr<std::unique_ptr<InterpreterPool>> pool = InterpreterPool::Start(Options(1));
  ASSERT_TRUE(pool.ok());
  constexpr int kThreads = 4;
  std::vector<int64_t> ids(kThreads * 3);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 3; ++i) {
        absl::StatusOr<InterpreterLease> lease = (*pool)->Acquire();
        ASSERT_TRUE(lease.ok());
        ids[t * 3 + i] = (*lease)->id();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), ids.size());
}

// On 3.11 the factory would hold the shared GIL against a running request for a
// whole interpreter creation: it waits while requests run, unless work is urgent.
TEST(PoolTest, FactoryWaitsWhileRequestsRunUnlessUrgent) {
  absl::StatusOr<std::unique_ptr<InterpreterPool>> pool = InterpreterPool::Start(Options(2));
  ASSERT_TRUE(pool.ok());
  WaitIdle(**pool, 2);
  {
    InterpreterPool::Busy busy(**pool);
    {
      absl::StatusOr<InterpreterLease> used = (*pool)->Acquire();
      ASSERT_TRUE(used.ok());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    PoolStats during = (*pool)->stats();
    EXPECT_EQ(during.created, 2);  // no refill while busy
    EXPECT_EQ(during.destroyed, 0);
    EXPECT_EQ(during.retired, 1);
    // Drained with a request waiting: creation is urgent and goes ahead.
    absl::StatusOr<InterpreterLease> a = (*pool)->Acquire();
    absl::StatusOr<InterpreterLease> b = (*pool)->Acquire();
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ((*pool)->stats().created, 3);
  }
  WaitIdle(**pool, 2);  // idle again: refilled, and the used ones destroyed
  EXPECT_EQ((*pool)->stats().destroyed, 3);
}

// Runs `code` in a leased interpreter, then hands it back (to be torn down).
void RunAndRetire(InterpreterPool& pool, const char* code) {
  absl::StatusOr<InterpreterLease> lease = pool.Acquire();
  ASSERT_TRUE(lease.ok());
  ThreadStateScope scope((*lease)->state());
  ASSERT_EQ(PyRun_SimpleString(code), 0);
}

// Waits up to 2 s for a count of the pool's stats to become nonzero; returns it.
int64_t AwaitStat(InterpreterPool& pool, int64_t PoolStats::*count) {
  for (int i = 0; i < 400 && pool.stats().*count == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pool.stats().*count;
}

// A daemon thread that outlives the execution and cannot be stopped (blocked in C,
// reading a pipe nobody writes; a lock's wait would be woken: interruptible_waits.h):
// Py_EndInterpreter would abort.
constexpr char kThreadBlockedInC[] =
    "import threading, os\n"
    "r, w = os.pipe()\n"
    "threading.Thread(target=os.read, args=(r, 1), daemon=True).start()\n";

TEST(PoolTest, InterpreterWithRunningThreadIsLeakedNotEnded) {
  absl::StatusOr<std::unique_ptr<InterpreterPool>> pool = InterpreterPool::Start(Options(1));
  ASSERT_TRUE(pool.ok());
  RunAndRetire(**pool, kThreadBlockedInC);
  EXPECT_EQ(AwaitStat(**pool, &PoolStats::leaked), 1);
  EXPECT_TRUE((*pool)->Acquire().ok());  // and the pool goes on
}

// Teardown decides from C state (the interpreter's thread list), not from the code's
// Python: a sleeping thread is woken and stopped, and the interpreter is ended, even
// when the code replaced what threading and _thread would report.
TEST(PoolTest, ThreadsLeftRunningAreStoppedBeforeTheInterpreterEnds) {
  absl::StatusOr<std::unique_ptr<InterpreterPool>> pool = InterpreterPool::Start(Options(1));
  ASSERT_TRUE(pool.ok());
  RunAndRetire(**pool,
               "import threading, time, _thread, sys\n"
               "threading.Thread(target=time.sleep, args=(30,)).start()\n"
               "_thread._count = lambda: 0\n"
               "threading.enumerate = lambda: []\n"
               "sys.modules['threading'] = 1\n");
  EXPECT_EQ(AwaitStat(**pool, &PoolStats::destroyed), 1);
  EXPECT_EQ((*pool)->stats().leaked, 0);
}

// A teardown still running at abandon_after (here: waiting out the grace of a thread
// blocked in C) is given up on: a new reaper takes over, the pool goes on, and the
// old one finishes that interpreter (leaked: its thread never stops) when it can.
TEST(PoolTest, ATeardownPastItsHardBudgetIsAbandoned) {
  PoolOptions options = Options(1);
  options.thread_grace = absl::Seconds(1);
  options.abandon_after = absl::Milliseconds(100);
  absl::StatusOr<std::unique_ptr<InterpreterPool>> pool = InterpreterPool::Start(options);
  ASSERT_TRUE(pool.ok());
  RunAndRetire(**pool, kThreadBlockedInC);
  EXPECT_EQ(AwaitStat(**pool, &PoolStats::abandoned), 1);
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<InterpreterLease> next = (*pool)->Acquire();
    EXPECT_TRUE(next.ok());  // the pool goes on, with the new reaper tearing down
  }
  EXPECT_EQ(AwaitStat(**pool, &PoolStats::leaked), 1);
}

}  // namespace
}  // namespace pyhost

// Fault tests of the in-process limits through the public API: each case asserts the
// error type, a generous time bound (these machines are noisy), that the host
// answers the next request, and that nothing was left behind.
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "pyhost/host.h"
#include "tests/security/shared_host.h"

namespace pyhost {
namespace {

using ::testing::HasSubstr;

int ThreadCount() {
  return static_cast<int>(std::distance(std::filesystem::directory_iterator("/proc/self/task"),
                                        std::filesystem::directory_iterator()));
}

long RssKb() {
  long pages = 0, resident = 0;
  FILE* statm = fopen("/proc/self/statm", "r");
  if (statm == nullptr) return 0;
  if (fscanf(statm, "%ld %ld", &pages, &resident) != 2) resident = 0;
  fclose(statm);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

class LimitFaultsTest : public SharedHostTest {
 protected:
  struct Run {
    ExecResult result;
    double seconds = 0;
  };
  static Run Execute(const std::string& code, Limits limits, const char* policy = "strict",
                     Isolation isolation = Isolation::kFresh) {
    ExecRequest request;
    request.code = code;
    request.limits = limits;
    request.isolation = isolation;
    request.policy = *NamedPolicy(policy);
    auto start = std::chrono::steady_clock::now();
    absl::StatusOr<ExecResult> run = host_->Execute(request);
    Run out;
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_TRUE(run.ok()) << run.status();
    if (run.ok()) out.result = *std::move(run);
    return out;
  }
  // The host answers the next request correctly.
  static void ExpectTheNextRequestWorks() {
    Run next = Execute("result = sum(range(10))", Limits{});
    EXPECT_EQ(next.result.result, 45) << next.result.ToJson().dump();
  }
  static Limits Timeout(int64_t ms) { return Limits{ms, std::nullopt, std::nullopt}; }
};

struct Case {
  const char* name;
  const char* policy;
  const char* code;
};

TEST_F(LimitFaultsTest, CodeLoopingOrWaitingInPythonEndsAtItsDeadline) {
  const Case cases[] = {
      {"loop", "strict", "while True: pass"},
      {"loop catching the stop", "strict",
       "while True:\n    try:\n        while True: pass\n    except BaseException:\n"
       "        pass\n"},
      {"sleep", "strict", "import time\ntime.sleep(30)"},
      {"event", "strict", "import threading\nthreading.Event().wait()"},
      {"condition", "strict",
       "import threading\nc = threading.Condition()\nwith c:\n    c.wait(60)"},
      {"queue", "strict", "import queue\nqueue.Queue().get()"},
      {"simple queue", "strict", "import queue\nqueue.SimpleQueue().get()"},
      {"lock", "strict", "import threading\nl = threading.Lock()\nl.acquire()\nl.acquire()"},
      {"with lock", "strict",
       "import threading\nl = threading.Lock()\nl.acquire()\nwith l:\n  pass"},
      {"rlock in a thread's hold", "yolo",
       "import threading\nl = threading.RLock()\nt = threading.Thread(target=l.acquire)\n"
       "t.start(); t.join()\nl.acquire()"},
      {"select", "balanced", "import os, select\nr, w = os.pipe()\nselect.select([r], [], [])"},
      {"poll", "balanced",
       "import os, select\nr, w = os.pipe()\np = select.poll()\np.register(r, select.POLLIN)\n"
       "p.poll()"},
      {"selectors (epoll)", "balanced",
       "import os, selectors\nr, w = os.pipe()\ns = selectors.DefaultSelector()\n"
       "s.register(r, selectors.EVENT_READ)\ns.select()"},
      {"asyncio", "balanced",
       "import asyncio\nasync def main():\n    await asyncio.sleep(30)\nasyncio.run(main())"},
      {"print forever", "strict", "while True:\n    print('x' * 100)"},
      // Sockets (guards/socket_waits.h): blocking, and with a timeout past the deadline.
      {"socket recv", "balanced", "import socket\na, b = socket.socketpair()\na.recv(10)"},
      {"socket recv with MSG_WAITALL", "balanced",
       "import socket\na, b = socket.socketpair()\na.recv(10, socket.MSG_WAITALL)"},
      {"socket recv of MSG_ERRQUEUE beside data (never blocks: in a loop)", "yolo",
       "import socket\nu = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
       "u.bind(('127.0.0.1', 0))\nu.sendto(b'abc', u.getsockname())\nwhile True:\n"
       "    try:\n        u.recv(10, socket.MSG_ERRQUEUE)\n    except BlockingIOError:\n"
       "        pass"},
      {"socket recv_into", "balanced",
       "import socket\na, b = socket.socketpair()\na.recv_into(bytearray(4), flags=0)"},
      {"socket recvfrom", "balanced", "import socket\na, b = socket.socketpair()\na.recvfrom(10)"},
      {"socket recvmsg_into", "balanced",
       "import socket\na, b = socket.socketpair()\na.recvmsg_into(iter([bytearray(4)]))"},
      {"socket makefile readline", "balanced",
       "import socket\na, b = socket.socketpair()\na.makefile('rb').readline()"},
      {"socket recv, a timeout of an hour", "balanced",
       "import socket\na, b = socket.socketpair()\na.settimeout(3600)\na.recv(10)"},
      {"socket sendall to a peer that never reads", "balanced",
       "import socket\na, b = socket.socketpair()\na.sendall(b'x' * 10**7)"},
      {"socket send to a peer that never reads", "balanced",
       "import socket\na, b = socket.socketpair()\na.send(b'x' * 10**7)"},
      {"socket sendall, a timeout of an hour", "balanced",
       "import socket\na, b = socket.socketpair()\na.settimeout(3600)\na.sendall(b'x' * 10**7)"},
      {"socket accept", "yolo",
       "import socket\nl = socket.socket()\nl.bind(('127.0.0.1', 0))\nl.listen()\nl.accept()"},
      // A listener whose backlog is full drops the SYN: connect waits as for a host
      // that never answers.
      {"socket connect, nobody answering", "yolo",
       "import socket\nl = socket.socket()\nl.bind(('127.0.0.1', 0))\nl.listen(0)\n"
       "held = [socket.socket() for i in range(4)]\n"
       "for c in held:\n    c.setblocking(False)\n    c.connect_ex(l.getsockname())\n"
       "socket.socket().connect(l.getsockname())"},
      {"socket connect_ex, a timeout of an hour", "yolo",
       "import socket\nl = socket.socket()\nl.bind(('127.0.0.1', 0))\nl.listen(0)\n"
       "held = [socket.socket() for i in range(4)]\n"
       "for c in held:\n    c.setblocking(False)\n    c.connect_ex(l.getsockname())\n"
       "s = socket.socket()\ns.settimeout(3600)\ns.connect_ex(l.getsockname())"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Run run = Execute(c.code, Timeout(300), c.policy);
    EXPECT_EQ(run.result.outcome, Outcome::kTimeout) << run.result.ToJson().dump();
    ASSERT_TRUE(run.result.error.has_value());
    EXPECT_EQ(run.result.error->type, "Timeout");
    EXPECT_THAT(run.result.error->message, HasSubstr("300 ms (timeout_ms)"));
    EXPECT_GT(run.result.error->line, 0);
    EXPECT_FALSE(run.result.stats.quarantined) << "stopped in Python, not stuck in C";
    EXPECT_LT(run.seconds, 0.3 + 2);
    ExpectTheNextRequestWorks();
  }
  EXPECT_EQ(host_->pool_stats().quarantined, 0);
}

// Code that catches the stop where nothing more runs (around a wait) and ends still
// ended by the limit: its result is not the answer.
TEST_F(LimitFaultsTest, CatchingTheStopAndEndingIsStillTheLimit) {
  Run run = Execute(
      "import time\nresult = 'forged'\ntry:\n    time.sleep(5)\nexcept BaseException:\n"
      "    pass\n",
      Timeout(300));
  EXPECT_EQ(run.result.outcome, Outcome::kTimeout) << run.result.ToJson().dump();
  EXPECT_TRUE(run.result.result.is_null());
  ASSERT_TRUE(host_
                  ->RegisterTool("catcher",
                                 "import time\ndef run(args):\n    try:\n        time.sleep(5)\n"
                                 "    except BaseException:\n        return 'forged'\n",
                                 {Isolation::kResident, std::nullopt, Timeout(300)})
                  .ok());
  absl::StatusOr<ToolCallResult> call = host_->CallTool("catcher", nlohmann::json::object());
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->outcome, Outcome::kTimeout) << call->envelope.dump();
  EXPECT_EQ(call->envelope["error"]["type"], "Timeout");
  ASSERT_TRUE(host_->UnregisterTool("catcher").ok());
  ExpectTheNextRequestWorks();
}

TEST_F(LimitFaultsTest, ACpuBurnerEndsAtItsCpuLimit) {
  Run run = Execute("x = 0\nwhile True:\n    x += 1", Limits{std::nullopt, 300, std::nullopt});
  EXPECT_EQ(run.result.outcome, Outcome::kCpuLimit) << run.result.ToJson().dump();
  EXPECT_EQ(run.result.error->type, "CpuLimitExceeded");
  EXPECT_THAT(run.result.error->message, HasSubstr("300 ms (cpu_ms)"));
  EXPECT_GE(run.result.stats.cpu_us, 300e3);
  EXPECT_EQ(run.result.stats.limit_hit, "cpu_ms");
  EXPECT_LT(run.seconds, 0.3 + 2);
  // Sleeping uses no CPU: the CPU limit does not end it, the wall limit does.
  Run sleeper =
      Execute("import time\ntime.sleep(0.5)\nresult = 1", Limits{2000, 100, std::nullopt});
  EXPECT_EQ(sleeper.result.result, 1) << sleeper.result.ToJson().dump();
  ExpectTheNextRequestWorks();
}

// sum(range(3 * 10**7)) runs in C, reaching no bytecode boundary for 1-3 s: the
// caller gets Timeout at the deadline plus the grace, the interpreter is quarantined,
// and torn down once the code returns.
TEST_F(LimitFaultsTest, CodeStuckInCIsAnsweredAtTheDeadlinePlusTheGraceAndQuarantined) {
  const int64_t before = host_->pool_stats().quarantined_total;
  Run run = Execute("sum(range(3 * 10**7))", Timeout(200));
  EXPECT_EQ(run.result.outcome, Outcome::kTimeout) << run.result.ToJson().dump();
  EXPECT_EQ(run.result.error->type, "Timeout");
  EXPECT_THAT(run.result.error->message, HasSubstr("stuck in C"));
  EXPECT_TRUE(run.result.stats.quarantined);
  EXPECT_LT(run.seconds, 0.2 + 2);
  EXPECT_EQ(host_->pool_stats().quarantined_total, before + 1);
  // The next request waits for the GIL until the C call returns (3.11: one GIL), then
  // is answered; the quarantined interpreter is then torn down.
  ExpectTheNextRequestWorks();
  for (int i = 0; i < 600 && host_->pool_stats().quarantined > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(host_->pool_stats().quarantined, 0);
}

// A CPU limit reached inside one C call is the CPU limit's, and another request waiting
// for the GIL the stuck call holds still gets its answer at its own deadline.
TEST_F(LimitFaultsTest, StuckCodeKeepsItsLimitAndOthersStillGetTheirAnswers) {
  Run cpu = Execute("sum(range(3 * 10**7))", Limits{5000, 100, std::nullopt});
  EXPECT_EQ(cpu.result.outcome, Outcome::kCpuLimit) << cpu.result.ToJson().dump();
  EXPECT_EQ(cpu.result.error->type, "CpuLimitExceeded");
  EXPECT_TRUE(cpu.result.stats.quarantined);
  EXPECT_LT(cpu.seconds, 0.1 + 2);
  Run other;
  std::thread stuck([] { Execute("sum(range(3 * 10**7))", Timeout(100)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  other = Execute("result = 1", Timeout(300));
  stuck.join();
  EXPECT_TRUE(other.result.outcome == Outcome::kOk || other.result.outcome == Outcome::kTimeout)
      << other.result.ToJson().dump();
  EXPECT_LT(other.seconds, 0.3 + 2);
  ExpectTheNextRequestWorks();
  for (int i = 0; i < 600 && host_->pool_stats().quarantined > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(host_->pool_stats().quarantined, 0);
}

TEST_F(LimitFaultsTest, MemoryPastTheBudgetFailsAtOnceAndTheGrowthStopsNearIt) {
  const long rss_before = RssKb();
  Run huge = Execute("x = bytearray(3 * 1024**3)", Limits{});
  EXPECT_EQ(huge.result.outcome, Outcome::kMemoryLimit) << huge.result.ToJson().dump();
  EXPECT_EQ(huge.result.error->type, "MemoryLimitExceeded");
  EXPECT_THAT(huge.result.error->message, HasSubstr("256 MB (memory_mb)"));
  EXPECT_LT(huge.seconds, 2);
  EXPECT_LT(RssKb() - rss_before, 50 * 1024) << "the refused block was never mapped";

  Run growing = Execute("x = []\nwhile True:\n    x.append(' ' * 2**20)",
                        Limits{std::nullopt, std::nullopt, 64});
  EXPECT_EQ(growing.result.outcome, Outcome::kMemoryLimit) << growing.result.ToJson().dump();
  EXPECT_LE(growing.result.stats.peak_memory_bytes, int64_t{64} << 20);
  EXPECT_GE(growing.result.stats.peak_memory_bytes, int64_t{60} << 20);
  EXPECT_EQ(growing.result.stats.limit_hit, "memory_mb");

  // Code that catches the MemoryError and goes on behaves as under python3's ulimit.
  Run caught = Execute(
      "try:\n    x = bytes(2**31)\nexcept MemoryError:\n    result = 'fell back'\n", Limits{});
  EXPECT_EQ(caught.result.result, "fell back") << caught.result.ToJson().dump();
  ExpectTheNextRequestWorks();
}

TEST_F(LimitFaultsTest, AnOutputFloodIsCappedAndFlagged) {
  for (const char* code :
       {"print('x' * 10**8)", "import sys\nsys.stdout.buffer.write(b'y' * 10**8)",
        "for i in range(10**6):\n    print(i)"}) {
    SCOPED_TRACE(code);
    ExecRequest request;
    request.code = code;
    request.max_output_bytes = 1 << 16;
    absl::StatusOr<ExecResult> run = host_->Execute(request);
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_TRUE(run->stdout_stream.truncated);
    EXPECT_LE(run->stdout_stream.text.size(), size_t{1} << 16);
    EXPECT_LT(run->stats.peak_memory_bytes, int64_t{200} << 20);
  }
  ExpectTheNextRequestWorks();
}

// Recursion through Python and through C ends in RecursionError on the caller's thread
// too, whose stack may be small: here 256 KiB (resident executions run on it).
TEST_F(LimitFaultsTest, RecursionEndsInRecursionErrorOnASmallCallerStack) {
  const char* cases[] = {
      "def f(n): return f(n + 1)\nf(0)",
      "x = []\nfor i in range(200000):\n    x = [x]\nrepr(x)",
      "import json\nd = {}\nfor i in range(200000):\n    d = {'a': d}\njson.dumps(d)",
      "import pickle\nx = []\nfor i in range(200000):\n    x = [x]\npickle.dumps(x)",
  };
  for (const char* code : cases) {
    SCOPED_TRACE(code);
    ExecResult result;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    struct Job {
      const char* code;
      ExecResult* result;
    } job{code, &result};
    pthread_t thread;
    ASSERT_EQ(pthread_create(
                  &thread, &attr,
                  [](void* arg) -> void* {
                    auto* job = static_cast<Job*>(arg);
                    *job->result =
                        Execute(job->code, Limits{}, "strict", Isolation::kResident).result;
                    return nullptr;
                  },
                  &job),
              0);
    pthread_join(thread, nullptr);
    pthread_attr_destroy(&attr);
    ASSERT_TRUE(result.error.has_value()) << result.ToJson().dump();
    EXPECT_EQ(result.error->type, "RecursionError") << result.ToJson().dump();
  }
  ExpectTheNextRequestWorks();
}

// With one request looping in Python, the others are answered (fair GIL sharing), and
// the looping one still ends at its deadline.
TEST_F(LimitFaultsTest, ALoopingRequestDoesNotHoldUpTheOthers) {
  ASSERT_TRUE(host_
                  ->RegisterTool("add", "def run(args):\n    return args['a'] + 1\n",
                                 {Isolation::kResident})
                  .ok());
  std::atomic<bool> looping_done{false};
  Run looping;
  std::thread loop([&] {
    looping = Execute("while True: pass", Timeout(3000));
    looping_done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  double slowest = 0;
  for (int i = 0; i < 50; ++i) {
    auto start = std::chrono::steady_clock::now();
    absl::StatusOr<ToolCallResult> call = host_->CallTool("add", {{"a", i}});
    slowest = std::max(
        slowest, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    ASSERT_TRUE(call.ok()) << call.status();
    EXPECT_EQ(call->envelope["data"], i + 1);
  }
  EXPECT_FALSE(looping_done) << "the calls were answered while the loop ran";
  EXPECT_LT(slowest, 1.0) << "a call waited for the loop";  // generous: the target is 20 ms
  loop.join();
  EXPECT_EQ(looping.result.outcome, Outcome::kTimeout);
  EXPECT_LT(looping.seconds, 3 + 2);
  ASSERT_TRUE(host_->UnregisterTool("add").ok());
}

TEST_F(LimitFaultsTest, RepeatedLimitsLeaveNoThreadsOrInterpretersBehind) {
  Execute("while True: pass", Timeout(100));  // the kept threads exist from here
  const int threads = ThreadCount();
  for (int i = 0; i < 5; ++i) {
    Execute("import threading\nthreading.Event().wait()", Timeout(100));
    Execute("x = bytearray(3 * 1024**3)", Limits{});
    Execute("while True: pass", Limits{std::nullopt, 100, std::nullopt});
  }
  EXPECT_LE(ThreadCount(), threads + 1);
  PoolStats stats = host_->pool_stats();
  EXPECT_EQ(stats.quarantined, 0);
  EXPECT_EQ(stats.leaked, 0);
  ExpectTheNextRequestWorks();
}

}  // namespace
}  // namespace pyhost

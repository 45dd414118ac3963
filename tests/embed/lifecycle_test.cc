// What one execution leaves behind must not wedge, crash or leak the host: threads,
// finalizers, replaced modules, descriptors, directories (issue 7, items 4, 5, 7, 10,
// 12) — and an execution can be interrupted from another thread (item 8).
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "pyhost/host.h"
#include "tests/testing/descriptors.h"
#include "tests/testing/files.h"

namespace pyhost {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

std::unique_ptr<Host> MakeHost(int pool_size = 1) {
  HostOptions options;
  options.pool_size = pool_size;
  options.prewarm_modules = {};
  absl::StatusOr<std::unique_ptr<Host>> host = Host::Create(options);
  EXPECT_TRUE(host.ok()) << host.status();
  return host.ok() ? *std::move(host) : nullptr;
}

ExecResult Exec(Host& host, const std::string& code, const char* policy = "strict",
                Isolation isolation = Isolation::kFresh) {
  ExecRequest request;
  request.code = code;
  request.policy = *LoadPolicy(policy);
  request.isolation = isolation;
  absl::StatusOr<ExecResult> result = host.Execute(request);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *std::move(result) : ExecResult{};
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Waits (bounded) until `done` holds.
template <typename F>
bool Eventually(F done, std::chrono::seconds limit = std::chrono::seconds(10)) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

// The host answers `count` more fresh executions, each within `seconds`.
void ExpectAnswers(Host& host, int count, double seconds) {
  for (int i = 0; i < count; ++i) {
    auto start = std::chrono::steady_clock::now();
    ExecResult next = Exec(host, "result = 6 * 7");
    EXPECT_TRUE(next.ok) << next.ToJson().dump();
    EXPECT_EQ(next.result, json(42));
    EXPECT_LT(SecondsSince(start), seconds) << "request " << i << " waited on a teardown";
  }
}

// --- code left behind at teardown (items 5, 7, 10) ---------------------------------

struct LeftBehind {
  const char* name;
  const char* policy;
  const char* code;
};

class LeftBehindTest : public ::testing::TestWithParam<LeftBehind> {};

// Each case leaves something that runs (or would run) when its interpreter is torn
// down. The host answers the next requests promptly (nothing of the execution's runs
// unbounded on a host thread), is destroyed within a bound, and aborts nowhere.
TEST_P(LeftBehindTest, NextRequestsAndShutdownAreNotHeldUp) {
  auto host = MakeHost();
  ASSERT_NE(host, nullptr);
  ExecResult left = Exec(*host, GetParam().code, GetParam().policy);
  EXPECT_TRUE(left.ok) << left.ToJson().dump();
  ExpectAnswers(*host, 3, 5.0);
  auto start = std::chrono::steady_clock::now();
  host.reset();
  EXPECT_LT(SecondsSince(start), 8.0) << "Host destruction waited on a teardown";
}

INSTANTIATE_TEST_SUITE_P(
    Teardown, LeftBehindTest,
    ::testing::Values(LeftBehind{"FinalizerSleeps", "strict", R"PY(
import sys, time
class X:
    def __del__(self, sleep=time.sleep):
        sleep(60)
sys.x = X()
)PY"},
                      LeftBehind{"FinalizerLoops", "strict", R"PY(
import sys
class X:
    def __del__(self):
        while True:
            pass
sys.x = X()
)PY"},
                      LeftBehind{"FinalizerSwallowsInterrupts", "strict", R"PY(
import sys, time
class X:
    def __del__(self, sleep=time.sleep):
        while True:
            try:
                sleep(60)
            except BaseException:
                pass
sys.x = X()
)PY"},
                      LeftBehind{"FakeAtexitSleeps", "strict", R"PY(
import sys, time
class FakeAtexit:
    def _clear(self, sleep=time.sleep):
        sleep(60)
    def _run_exitfuncs(self, sleep=time.sleep):
        sleep(60)
sys.modules['atexit'] = FakeAtexit()
)PY"},
                      LeftBehind{"AtexitCallbackSleeps", "yolo", R"PY(
import atexit, time
atexit.register(time.sleep, 60)
)PY"},
                      LeftBehind{"FakeThreadingShutdownSleeps", "yolo", R"PY(
import sys, time, types
fake = types.ModuleType('threading')
fake._shutdown = lambda sleep=time.sleep: sleep(60)
sys.modules['threading'] = fake
)PY"},
                      LeftBehind{"ThreadWithReplacedCount", "yolo", R"PY(
import threading, time, _thread
threading.Thread(target=time.sleep, args=(60,)).start()
_thread._count = lambda: 0
)PY"},
                      LeftBehind{"ThreadThatWillNotStop", "yolo", R"PY(
import threading, time
def stay():
    while True:
        try:
            time.sleep(60)
        except BaseException:
            pass
threading.Thread(target=stay, daemon=True).start()
)PY"},
                      LeftBehind{"UnraisableHookSleeps", "strict", R"PY(
import sys, time
sys.unraisablehook = lambda *a, sleep=time.sleep: sleep(60)
class X:
    def __del__(self):
        raise ValueError('at teardown')
sys.x = X()
)PY"},
                      LeftBehind{"AuditHookSleeps", "yolo", R"PY(
import sys, time
def hook(event, args, sleep=time.sleep):
    if event == 'object.__delattr__' or event.startswith('os.'):
        sleep(60)
sys.addaudithook(hook)
)PY"},
                      // Found by adversarial testing: a finalizer that catches every interrupt,
                      // objects hung on pyhost's own import gate, finalizers that put threading or
                      // atexit back, async generator hooks, and threads that catch SystemExit.
                      LeftBehind{"FinalizerCatchesEveryInterrupt", "strict", R"PY(
import sys
class D:
    def __del__(self):
        while True:
            try:
                m = 0
                while True:
                    m += 1
            except BaseException:
                pass
sys.keep = D()
)PY"},
                      LeftBehind{"ObjectHungOnTheImportGate", "strict", R"PY(
import sys
class D:
    def __del__(self):
        while True:
            pass
d = D()
try:
    sys.meta_path[0].keep = d
except AttributeError:  # pyhost's gate has no __dict__: its class, then
    type(sys.meta_path[0]).keep = d
)PY"},
                      LeftBehind{"FinalizerReinstallsThreading", "strict", R"PY(
import sys, math
class Fake:
    def _shutdown(self):
        while True:
            pass
class D:
    def __del__(self, sys=sys, Fake=Fake):
        sys.modules['threading'] = Fake()
math._keep = D()
)PY"},
                      LeftBehind{"FinalizerRegistersAtexit", "yolo", R"PY(
import math, atexit
def forever():
    while True:
        pass
class D:
    def __del__(self, register=atexit.register, f=forever):
        register(f)
math._keep = D()
)PY"},
                      LeftBehind{"AsyncGeneratorFinalizerLoops", "strict", R"PY(
import sys
class F:
    def __call__(self, *a):
        pass
    def __del__(self):
        while True:
            pass
sys.set_asyncgen_hooks(finalizer=F())
)PY"},
                      LeftBehind{"GeneratorFinallyLoops", "strict", R"PY(
import sys
def g():
    try:
        yield 1
    finally:
        while True:
            pass
sys.g = g()
next(sys.g)
)PY"},
                      LeftBehind{"ThreadCatchesEveryInterrupt", "yolo", R"PY(
import threading
def spin():
    while True:
        try:
            m = 0
            while True:
                m += 1
        except BaseException:
            pass
threading.Thread(target=spin, daemon=True).start()
)PY"},
                      LeftBehind{"BuiltinsHoldAFinalizer", "strict", R"PY(
import builtins, time
class X:
    def __del__(self, sleep=time.sleep):
        sleep(60)
builtins.x = X()
)PY"}),
    [](const ::testing::TestParamInfo<LeftBehind>& info) { return info.param.name; });

// `sys.modules['atexit'] = 1` made teardown fail and the interpreter was kept (about
// 2 MB a request, without bound): interpreters are destroyed, none leaked.
TEST(LifecycleTest, ReplacedAtexitDoesNotLeakTheInterpreter) {
  auto host = MakeHost();
  for (int i = 0; i < 6; ++i) {
    ExecResult r = Exec(*host, "import sys\nsys.modules['atexit'] = 1\n");
    EXPECT_TRUE(r.ok) << r.ToJson().dump();
  }
  EXPECT_TRUE(Eventually([&] { return host->pool_stats().destroyed >= 6; }))
      << host->pool_stats().destroyed;
  EXPECT_EQ(host->pool_stats().leaked, 0);
}

// At teardown none of the code's Python runs (every frame raises ExecutionStopped),
// so even a finalizer that would sleep and swallow every interrupt never holds the
// reaper: nothing is abandoned, and the interpreter is destroyed.
TEST(LifecycleTest, TeardownRunsNoneOfTheCodesPython) {
  auto host = MakeHost();
  Exec(*host, R"PY(
import sys, time
class X:
    def __del__(self, sleep=time.sleep):
        while True:
            try:
                sleep(60)
            except BaseException:
                pass
sys.x = X()
)PY");
  ExpectAnswers(*host, 2, 5.0);
  EXPECT_TRUE(Eventually([&] { return host->pool_stats().destroyed >= 2; }));
  EXPECT_EQ(host->pool_stats().abandoned, 0);
}

// --- interrupting a running execution (item 8) ---------------------------------------

// InterruptAll from another thread stops code looping in Python and code sleeping,
// with KeyboardInterrupt at the line it was at; the host answers the next request.
TEST(LifecycleTest, InterruptAllStopsRunningCode) {
  auto host = MakeHost();
  for (const char* code : {"while True:\n    pass\n", "import time\ntime.sleep(60)\n",
                           "import time\nwhile True:\n    try:\n        time.sleep(60)\n"
                           "    except KeyboardInterrupt:\n        break\nresult = 'caught'\n"}) {
    auto start = std::chrono::steady_clock::now();
    std::future<ExecResult> running =
        std::async(std::launch::async, [&] { return Exec(*host, code); });
    // An interrupt reaches only code that runs: one sent before the code has started
    // (a slow machine, a sanitizer build) is not kept, so it is sent again until the
    // execution ends.
    while (running.wait_for(std::chrono::milliseconds(200)) != std::future_status::ready &&
           SecondsSince(start) < 5.0) {
      host->InterruptAll();
    }
    ASSERT_EQ(running.wait_for(std::chrono::seconds(0)), std::future_status::ready) << code;
    ExecResult r = running.get();
    EXPECT_LT(SecondsSince(start), 5.0);
    if (r.ok) {
      EXPECT_EQ(r.result, json("caught"));
    } else {
      ASSERT_TRUE(r.error.has_value());
      EXPECT_EQ(r.error->type, "KeyboardInterrupt");
      EXPECT_GT(r.error->line, 0);
    }
  }
  ExpectAnswers(*host, 1, 5.0);
}

// An interrupt never lands in pyhost's own code around the user's: one that arrives
// as the code finishes is taken back, and a resident interpreter's next call is clean.
TEST(LifecycleTest, LateInterruptDoesNotReachTheNextResidentCall) {
  auto host = MakeHost();
  std::atomic<bool> stop{false};
  std::thread interrupter([&] {
    while (!stop) {
      host->InterruptAll();
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });
  int interrupted = 0;
  for (int i = 0; i < 200; ++i) {
    ExecResult r = Exec(*host, "result = sum(range(2000))", "strict", Isolation::kResident);
    if (!r.ok) {
      ASSERT_TRUE(r.error.has_value());
      EXPECT_EQ(r.error->type, "KeyboardInterrupt") << r.ToJson().dump();
      ++interrupted;
    } else {
      EXPECT_EQ(r.result, json(1999000));
    }
  }
  stop = true;
  interrupter.join();
  for (int i = 0; i < 20; ++i) {
    ExecResult r = Exec(*host, "result = sum(range(2000))", "strict", Isolation::kResident);
    EXPECT_TRUE(r.ok) << "an interrupt outlived its call: " << r.ToJson().dump();
  }
}

// What pyhost runs of its own around the code, and that runs the code's methods
// (describing its exception, its audit hooks on traceback access), is interrupted
// like the code.
TEST(LifecycleTest, InterruptAllStopsTheCodesMethodsInPyhostsOwnSteps) {
  auto host = MakeHost();
  for (const char* code :
       {"class E(Exception):\n    def __str__(self):\n        while True:\n            pass\n"
        "raise E()\n",
        "import sys\ndef hook(event, args):\n"
        "    if event == 'object.__getattr__' and args[1] == 'tb_frame':\n"
        "        while True:\n            pass\n"
        "sys.addaudithook(hook)\nraise ValueError('boom')\n"}) {
    std::future<ExecResult> running =
        std::async(std::launch::async, [&] { return Exec(*host, code); });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    for (int i = 0;
         i < 50 && running.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready;
         ++i) {
      host->InterruptAll();
    }
    ASSERT_EQ(running.wait_for(std::chrono::seconds(5)), std::future_status::ready) << code;
    ExecResult r = running.get();
    EXPECT_FALSE(r.ok);
  }
  ExpectAnswers(*host, 1, 5.0);
}

// A resident tool's interpreter is torn down (re-registered) with an async generator
// finalizer the tool installed on a caller's thread state: nothing of it runs.
TEST(LifecycleTest, ResidentTeardownRunsNothingOfTheTools) {
  auto host = MakeHost();
  ToolOptions resident;
  resident.isolation = Isolation::kResident;
  ASSERT_TRUE(host->RegisterTool("t", R"PY(
import sys
class F:
    def __call__(self, *a):
        pass
    def __del__(self):
        while True:
            pass
def run(args):
    sys.set_asyncgen_hooks(finalizer=F())
    return 1
)PY",
                                 resident)
                  .ok());
  ASSERT_TRUE(host->CallTool("t", json::object()).ok());
  ASSERT_TRUE(host->RegisterTool("t", "def run(args):\n    return 2\n", resident).ok());
  absl::StatusOr<ToolCallResult> second = host->CallTool("t", json::object());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->envelope, json({{"ok", true}, {"data", 2}}));
  ExpectAnswers(*host, 2, 5.0);
}

// --- descriptors (item 4) --------------------------------------------------------------

// Numbers the code closed with os.close stay taken (pointed at a placeholder): a file
// object of one execution that kept such a number never reads what another execution
// (or the host) opens next.
// Every closed number pointed at one writable file: what one execution wrote through
// a stale file object, the next read back (found by adversarial testing). The
// placeholder is empty and read-only: reads see end of file, writes fail as on a
// closed descriptor (EBADF).
TEST(LifecycleTest, ClosedDescriptorsCarryNothingBetweenExecutions) {
  auto host = MakeHost();
  ExecResult writer = Exec(*host, R"PY(
import errno, os
f = open(WORK_DIR + '/x', 'w+b', buffering=0)
os.close(f.fileno())
try:
    f.write(b'SECRET-FROM-EXEC-1')
    result = 'written'
except OSError as e:
    result = errno.errorcode[e.errno]
)PY");
  EXPECT_EQ(writer.result, "EBADF") << writer.ToJson().dump();
  ExecResult reader = Exec(*host, R"PY(
import os
g = open(WORK_DIR + '/y', 'w+b', buffering=0)
os.close(g.fileno())
g.seek(0)
result = g.read().decode()
)PY");
  EXPECT_EQ(reader.result, "") << reader.ToJson().dump();
}

// Numbers no object closes (os.pipe, os.open, os.openpty) stayed open in the host
// for good: after a few executions every request failed at the descriptor floor.
// Teardown releases them.
TEST(LifecycleTest, DescriptorsTheCodeLeftOpenAreReleased) {
  auto host = MakeHost();
  auto open_descriptors = testutil::CountOpenDescriptors;
  ExpectAnswers(*host, 2, 5.0);
  const int before = open_descriptors();
  for (int i = 0; i < 12; ++i) {
    ExecResult r =
        Exec(*host, "import os\nps = [os.pipe() for i in range(100)]\nm, s = os.openpty()\n");
    ASSERT_TRUE(r.ok) << r.ToJson().dump();
  }
  ExpectAnswers(*host, 2, 5.0);
  int after = open_descriptors();
  for (int i = 0; i < 200 && after > before + 250; ++i) {  // teardown runs off the request path
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    after = open_descriptors();
  }
  EXPECT_LT(after, before + 250) << "12 executions left 202 descriptors each";
}

TEST(LifecycleTest, ClosedDescriptorNumbersAreNotHandedToAnotherExecution) {
  auto host = MakeHost(2);
  std::future<ExecResult> stale = std::async(std::launch::async, [&] {
    return Exec(*host, R"PY(
import os, time
files = []
for i in range(20):
    path = os.path.join(WORK_DIR, 'a%d' % i)
    open(path, 'w').close()
    f = open(path, 'rb', buffering=0)
    os.close(f.fileno())
    files.append(f)
seen = []
until = time.monotonic() + 1.5
while time.monotonic() < until and not seen:
    for f in files:
        try:
            f.seek(0)
            data = f.read(100)
            if data:
                seen.append(data.decode(errors='replace'))
        except OSError as e:
            pass
    time.sleep(0.01)
try:
    os.fstat(files[0].fileno())
    after_close = 'open'
except OSError as e:
    after_close = e.errno
result = {'seen': seen, 'after_close': after_close}
)PY");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ExecResult secret = Exec(*host, R"PY(
import os, time
path = os.path.join(WORK_DIR, 'secret.txt')
open(path, 'w').write('SECRET-OF-B')
f = open(path, 'rb')
time.sleep(1.0)
result = f.read().decode()
)PY");
  EXPECT_EQ(secret.result, json("SECRET-OF-B")) << secret.ToJson().dump();
  ExecResult r = stale.get();
  ASSERT_TRUE(r.ok) << r.ToJson().dump();
  EXPECT_EQ(r.result["seen"], json::array()) << r.result;
  EXPECT_EQ(r.result["after_close"], 9) << "os.fstat of a closed number: EBADF, as python3";
}

// Routes to descriptors that are not the code's by number (os.scandir, epoll objects,
// fcntl(F_DUPFD)) are bounded too: the cap, or the process's free floor.
TEST(LifecycleTest, UncountedDescriptorRoutesAreBounded) {
  auto host = MakeHost();
  struct Route {
    const char* policy;
    const char* make;
  } routes[] = {{"strict", "os.scandir(WORK_DIR)"},
                {"yolo", "select.epoll()"},
                {"yolo", "fcntl.fcntl(r, fcntl.F_DUPFD_CLOEXEC, 0)"}};
  for (const Route& route : routes) {
    ExecResult r = Exec(*host,
                        absl::StrCat(R"PY(
import os, sys
try:
    import select, fcntl
except ImportError:
    pass
r, w = os.pipe()
held = []
try:
    for i in range(30000):
        held.append()PY",
                                     route.make, R"PY()
    result = 'unbounded'
except OSError as e:
    result = e.errno
sys.held = held
)PY"),
                        route.policy);
    EXPECT_EQ(r.result, json(24)) << route.make << ": " << r.ToJson().dump();
    ExpectAnswers(*host, 2, 5.0);
  }
}

// A loop of os.pipe()/open() filled the process's descriptor table, and the next
// interpreter creation aborted the host. Now the code gets EMFILE at pyhost's cap,
// and the host goes on.
// Numbers the code closes with os.close are freed as in python3 (only those a file or
// socket object still holds stay buried): opening and closing thousands in one
// execution (subprocess's pipes, mkstemp) reached the cap (found by adversarial
// testing).
TEST(LifecycleTest, OpeningAndClosingThousandsOfDescriptorsWorks) {
  auto host = MakeHost();
  ExecResult r = Exec(*host, R"PY(
import errno, os, tempfile
for i in range(2000):
    fd, path = tempfile.mkstemp(dir=WORK_DIR)
    os.close(fd)
    os.remove(path)
    r, w = os.pipe()
    os.close(r)
    os.close(w)
try:
    os.write(w, b'x')
    after = 'written'
except OSError as e:
    after = errno.errorcode[e.errno]
result = after
)PY");
  EXPECT_EQ(r.result, "EBADF") << r.ToJson().dump();
}

TEST(LifecycleTest, DescriptorsPerExecutionAreCapped) {
  auto host = MakeHost();
  for (const char* policy : {"yolo", "strict"}) {
    ExecResult r = Exec(*host, R"PY(
import os, sys
held = []
errors = []
for make in (os.pipe, lambda: open(WORK_DIR + '/f', 'w')):
    try:
        while True:
            held.append(make())
    except OSError as e:
        errors.append((e.errno, str(e)))
sys.held = held  # kept until teardown
result = errors
)PY",
                        policy);
    ASSERT_TRUE(r.ok) << policy << ": " << r.ToJson().dump();
    ASSERT_EQ(r.result.size(), 2u);
    for (const json& error : r.result) {
      EXPECT_EQ(error[0], 24) << error;  // EMFILE
      EXPECT_THAT(error[1].get<std::string>(), HasSubstr("pyhost lets an execution hold"));
    }
    ExpectAnswers(*host, 3, 5.0);
  }
}

// Files the code opened are its own: raw descriptor calls on them work under strict.
TEST(LifecycleTest, DescriptorsOfOpenedFilesAreTheCodes) {
  auto host = MakeHost();
  ExecResult r = Exec(*host, R"PY(
import os
with open(WORK_DIR + '/f', 'w') as f:
    os.write(f.fileno(), b'raw')
    os.fsync(f.fileno())
result = open(WORK_DIR + '/f').read()
)PY");
  EXPECT_TRUE(r.ok) << r.ToJson().dump();
  EXPECT_EQ(r.result, json("raw"));
}

// --- execution directories (item 12) ---------------------------------------------------

// What one execution leaves on its directory (xattrs, mode, times) never reaches the
// next: no directory is handed out twice.
TEST(LifecycleTest, ExecutionDirectoriesAreNeverReused) {
  auto host = MakeHost(2);
  std::set<std::string> seen;
  for (int i = 0; i < 8; ++i) {
    ExecResult r = Exec(*host, R"PY(
import os
marks = {}
try:
    marks['xattr'] = os.getxattr(WORK_DIR, 'user.pyhost_test').decode()
except OSError:
    pass
marks['mode'] = oct(os.stat(WORK_DIR).st_mode & 0o7777)
marks['mtime'] = os.stat(WORK_DIR).st_mtime
try:
    os.setxattr(WORK_DIR, 'user.pyhost_test', b'left by an earlier execution')
except OSError:
    pass
os.chmod(WORK_DIR, 0o700)
os.utime(WORK_DIR, (1, 1))
result = [WORK_DIR, marks]
)PY");
    ASSERT_TRUE(r.ok) << r.ToJson().dump();
    std::string dir = r.result[0];
    EXPECT_TRUE(seen.insert(dir).second) << dir << " was handed out twice";
    EXPECT_FALSE(r.result[1].contains("xattr")) << r.result;
    EXPECT_NE(r.result[1]["mode"], "0o700") << r.result;
    EXPECT_NE(r.result[1]["mtime"], 1) << r.result;
  }
}

// A directory whose OUTPUT_DIR the code removed, or left holding only an empty folder
// or a symlink, reports nothing and is removed; one with files reported stays, with
// only its regular files; nothing else is left under the root after the host.
TEST(LifecycleTest, OnlyReportedOutputsOutliveTheHost) {
  std::string root;
  std::string kept_dir;
  {
    HostOptions options;  // a root of its own: other tests' hosts share the default one
    options.pool_size = 1;
    options.prewarm_modules = {};
    options.work_root = ::testing::TempDir() + "/lifecycle_outputs";
    fs::remove_all(options.work_root);
    auto host = *Host::Create(options);
    root = host->work_root();
    for (const char* code : {"import shutil\nshutil.rmtree(OUTPUT_DIR)\n",
                             "import os\nos.mkdir(OUTPUT_DIR + '/empty')\n",
                             "import os\nos.symlink(WORK_DIR, OUTPUT_DIR + '/link')\n"}) {
      ExecResult r = Exec(*host, code);
      EXPECT_TRUE(r.ok) << r.ToJson().dump();
      EXPECT_TRUE(r.output.files.empty()) << code;
    }
    ExecResult kept = Exec(*host, R"PY(
import os
open(OUTPUT_DIR + '/report.txt', 'w').write('kept')
os.symlink(WORK_DIR, OUTPUT_DIR + '/link')
)PY");
    ASSERT_TRUE(kept.ok) << kept.ToJson().dump();
    ASSERT_EQ(kept.output.files, std::vector<std::string>{"report.txt"});
    kept_dir = kept.output.dir;
  }
  ASSERT_TRUE(fs::exists(root)) << "the kept output's root";
  std::vector<std::string> left;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    left.push_back(fs::relative(entry.path(), root).string());
  }
  std::string kept_rel = fs::relative(fs::path(kept_dir).parent_path(), root).string();
  EXPECT_THAT(left, ::testing::UnorderedElementsAre(kept_rel, kept_rel + "/output",
                                                    kept_rel + "/output/report.txt"));
  fs::remove_all(root);
}

// A stock whose process died without tidying leaves its root locked by nobody: the
// next stock whose root is named like a default one ("pyhost-<its pid>") removes it
// from beside its own. A root that ended normally (only reported outputs left, no lock
// file) and a live one (locked) are left alone, and a root named otherwise sweeps
// nothing. In a directory of the test's own: every default-root host of the other test
// processes running in parallel sweeps /dev/shm.
TEST(LifecycleTest, AbandonedRootsAreSweptOthersAreNot) {
  const fs::path base = testutil::MakeTempDir("/tmp/pyhost-sweep-");
  ASSERT_FALSE(base.empty()) << "mkdtemp";
  const fs::path abandoned = base / "pyhost-999999901";
  const fs::path finished = base / "pyhost-999999902";
  const fs::path live = base / "pyhost-999999903";
  fs::create_directories(abandoned / "exec-x/work");
  std::ofstream(abandoned / ".lock");
  fs::create_directories(finished / "exec-y/output");
  std::ofstream(finished / "exec-y/output/report.txt") << "the caller's";
  fs::create_directories(live);
  int live_lock = open((live / ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_EQ(flock(live_lock, LOCK_EX), 0);
  auto host_at = [](const fs::path& root) {
    HostOptions options;
    options.pool_size = 1;
    options.prewarm_modules = {};
    options.work_root = root.string();
    auto host = Host::Create(options);
    ASSERT_TRUE(host.ok()) << host.status();
  };
  host_at(base / "chosen");
  EXPECT_TRUE(fs::exists(abandoned)) << "a root named otherwise swept";
  host_at(base / absl::StrCat("pyhost-", getpid()));
  EXPECT_FALSE(fs::exists(abandoned));
  EXPECT_TRUE(fs::exists(finished / "exec-y/output/report.txt"));
  EXPECT_TRUE(fs::exists(live));
  close(live_lock);
  fs::remove_all(base);
}

}  // namespace
}  // namespace pyhost

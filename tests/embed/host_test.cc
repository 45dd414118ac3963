#include "pyhost/host.h"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace pyhost {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

std::unique_ptr<Host> MakeHost(int pool_size = 4, std::vector<std::string> prewarm = {"json"}) {
  HostOptions options;
  options.pool_size = pool_size;
  options.prewarm_modules = std::move(prewarm);
  absl::StatusOr<std::unique_ptr<Host>> host = Host::Create(options);
  EXPECT_TRUE(host.ok()) << host.status();
  return host.ok() ? *std::move(host) : nullptr;
}

ExecResult Exec(Host& host, const std::string& code, json args = json::object(),
                Isolation isolation = Isolation::kFresh) {
  ExecRequest request;
  request.code = code;
  request.args = std::move(args);
  request.isolation = isolation;
  absl::StatusOr<ExecResult> result = host.Execute(request);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *std::move(result) : ExecResult{};
}

TEST(HostTest, TheReadmeExample) {
  auto host = MakeHost();
  ExecResult r = Exec(*host, "print('hello'); result = {'ok': True, 'answer': 42}");
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.stdout_stream.text, "hello\n");
  EXPECT_EQ(r.result, json({{"ok", true}, {"answer", 42}}));
  EXPECT_EQ(r.stats.isolation, Isolation::kFresh);
  EXPECT_GT(r.stats.wall_us, 0);
  EXPECT_GT(r.stats.cpu_us, 0);
  EXPECT_GE(r.stats.interpreter_id, 1);
}

// An agent that runs in a temporary directory and removes it: every interpreter made
// afterwards must still start (3.11 aborts the process when Py_NewInterpreter fails).
// In a child process, since the working directory is the whole process's.
TEST(HostDeathTest, SurvivesItsWorkingDirectoryBeingRemoved) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        char dir[] = "/tmp/pyhost-cwd-XXXXXX";
        if (mkdtemp(dir) == nullptr || chdir(dir) != 0 || rmdir(dir) != 0) _exit(2);
        auto host = MakeHost(/*pool_size=*/1);
        bool all_ok = host != nullptr;
        for (int i = 0; i < 6 && all_ok; ++i)
          all_ok = Exec(*host, "import json; result = 1").result == 1;
        _exit(all_ok ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(HostTest, NoStateLeaksBetweenFreshExecutions) {
  auto host = MakeHost();
  ASSERT_TRUE(Exec(*host,
                   "import json, sys, fractions\n"
                   "leaked_global = 1\n"
                   "json.leaked_attribute = 2\n"
                   "sys.leaked_sys = 3\n"
                   "import builtins; builtins.leaked_builtin = 4\n"
                   "sys.modules['leaked_module'] = json\n"
                   "sys.path.append('/leaked')\n")
                  .ok);
  ExecResult r = Exec(*host,
                      "import json, sys, builtins\n"
                      "result = {\n"
                      "  'global': 'leaked_global' in globals(),\n"
                      "  'attribute': hasattr(json, 'leaked_attribute'),\n"
                      "  'sys': hasattr(sys, 'leaked_sys'),\n"
                      "  'builtin': hasattr(builtins, 'leaked_builtin'),\n"
                      "  'module': 'leaked_module' in sys.modules,\n"
                      "  'imported': 'fractions' in sys.modules,\n"
                      "  'path': '/leaked' in sys.path,\n"
                      "}\n");
  ASSERT_TRUE(r.ok) << (r.error ? r.error->traceback : "");
  for (const auto& [what, leaked] : r.result.items()) EXPECT_EQ(leaked, json(false)) << what;
}

TEST(HostTest, ResidentSnippetsKeepModulesButNotGlobals) {
  auto host = MakeHost();
  ASSERT_TRUE(
      Exec(*host, "import json\njson.marker = 1\nmine = 2", json::object(), Isolation::kResident)
          .ok);
  ExecResult r = Exec(*host, "import json\nresult = [hasattr(json, 'marker'), 'mine' in globals()]",
                      json::object(), Isolation::kResident);
  EXPECT_EQ(r.result, json({true, false}));
  EXPECT_EQ(r.stats.isolation, Isolation::kResident);
}

TEST(HostTest, ProcessIsolationRunsSnippetsAndToolsAndEveryLimitIsTaken) {
  auto host = MakeHost(1);
  ExecRequest request;
  request.code = "result = 1";
  request.isolation = Isolation::kProcess;
  absl::StatusOr<ExecResult> isolated = host->Execute(request);
  ASSERT_TRUE(isolated.ok()) << isolated.status();
  EXPECT_EQ(isolated->result, 1);
  EXPECT_EQ(isolated->stats.isolation, Isolation::kProcess);
  ASSERT_TRUE(
      host->RegisterTool("t", "def run(a):\n    return a['x'] + 1\n", {Isolation::kProcess}).ok());
  absl::StatusOr<ToolCallResult> call = host->CallTool("t", {{"x", 41}});
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->envelope, json({{"ok", true}, {"data", 42}}));
  EXPECT_EQ(call->stats.isolation, Isolation::kProcess);
  request.isolation = Isolation::kFresh;
  for (auto limit : {&Limits::timeout_ms, &Limits::cpu_ms, &Limits::memory_mb}) {
    ExecRequest limited = request;
    limited.limits.*limit = 100;
    absl::StatusOr<ExecResult> run = host->Execute(limited);
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_EQ(run->result, 1);
    EXPECT_EQ(run->stats.limits.*limit, 100);
    limited.limits.*limit = -1;
    EXPECT_TRUE(absl::IsInvalidArgument(host->Execute(limited).status()));
  }
}

TEST(HostTest, BadOptionsFailCreate) {
  HostOptions options;
  options.prewarm_modules = {"definitely_not_a_module"};
  absl::StatusOr<std::unique_ptr<Host>> host = Host::Create(options);
  ASSERT_FALSE(host.ok());
  EXPECT_THAT(std::string(host.status().message()), HasSubstr("definitely_not_a_module"));
  options.prewarm_modules.clear();
  options.pool_size = 0;
  EXPECT_FALSE(Host::Create(options).ok());
}

TEST(HostTest, ConcurrentExecuteFromEightThreads) {
  auto host = MakeHost(4);
  constexpr int kThreads = 8, kPerThread = 6;
  std::atomic<int> correct{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        int n = t * 100 + i;
        ExecResult r = Exec(*host,
                            "import json\n"
                            "seen = globals().get('mark')\n"
                            "mark = args['n']\n"
                            "print(args['n'])\n"
                            "result = {'n': args['n'] * 2, 'seen': seen}",
                            {{"n", n}});
        if (r.ok && r.result == json({{"n", n * 2}, {"seen", nullptr}}) &&
            r.stdout_stream.text == std::to_string(n) + "\n") {
          ++correct;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(correct.load(), kThreads * kPerThread);
}

TEST(HostTest, ConcurrentToolCallsAndExecutionsMix) {
  auto host = MakeHost(2);
  ToolOptions resident;
  resident.isolation = Isolation::kResident;
  ASSERT_TRUE(
      host->RegisterTool("sq", "def run(args):\n    return args['x'] ** 2\n", resident).ok());
  std::atomic<int> correct{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        absl::StatusOr<ToolCallResult> r = host->CallTool("sq", {{"x", t + i}});
        if (r.ok() && r->envelope["data"] == json((t + i) * (t + i))) ++correct;
      }
      if (Exec(*host, "result = 7").result == json(7)) ++correct;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(correct.load(), 8 * 51);
}

long ResidentMemoryKb() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// 10,000 fresh executions in one process: after a warm-up of 1,000, resident memory
// grows by less than 32 MiB (the interpreters themselves are all destroyed).
TEST(HostTest, TenThousandExecutionsDoNotGrowMemory) {
  auto host = MakeHost(2, {});
  auto run = [&](int i) {
    ExecResult r = Exec(*host, "result = sum(range(args['n']))", {{"n", i % 100}});
    ASSERT_TRUE(r.ok);
    ASSERT_EQ(r.result, json((i % 100) * (i % 100 - 1) / 2));
  };
  for (int i = 0; i < 1000; ++i) run(i);
  long warm_kb = ResidentMemoryKb();
  for (int i = 1000; i < 10000; ++i) run(i);
  long end_kb = ResidentMemoryKb();
  PoolStats stats = host->pool_stats();
  std::printf(
      "RSS after 1000: %ld KiB, after 10000: %ld KiB (growth %ld KiB); "
      "created %ld, destroyed %ld, leaked %ld\n",
      warm_kb, end_kb, end_kb - warm_kb, static_cast<long>(stats.created),
      static_cast<long>(stats.destroyed), static_cast<long>(stats.leaked));
  EXPECT_LT(end_kb - warm_kb, 32 * 1024);
  EXPECT_EQ(stats.leaked, 0);
}

}  // namespace
}  // namespace pyhost

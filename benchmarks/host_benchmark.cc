// pyhost_bench: in-process Python tool calls and snippets against the subprocess
// baseline (one /usr/bin/python3 per call), in one run, with a summary table.
//
//   cmake --build build -j2 --target pyhost_bench && ./build/benchmarks/pyhost_bench
//   ./build/benchmarks/pyhost_bench --benchmark_filter=ToolCall   # Google Benchmark flags work
//   ./build/benchmarks/pyhost_bench --python=/usr/bin/python3     # the baseline's interpreter
//
// Every benchmark times each call itself (steady_clock around the call, reported to
// Google Benchmark as manual time) and publishes p50/p99/mean in microseconds as
// counters, since Google Benchmark alone reports means. What runs between timed calls
// (waiting for the warm pool to refill, checking the answer) is not timed.
// See docs/benchmarks.md for what each benchmark measures and figures measured here.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "audit_hooks/sandbox.h"
#include "audit_hooks/stdlib_bytecode.h"
#include "benchmarks/subprocess_runner.h"
#include "embed/execution_context.h"
#include "embed/runner.h"
#include "pyhost/host.h"
#include "embed/pool.h"
#include "bindings/thread_state.h"

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------
// The workload: a seed-style run(args) tool and the same work as a snippet.

constexpr char kToolSource[] =
    "def run(args):\n"
    "    text = args.get(\"text\", \"\")\n"
    "    return {\"ok\": True, \"data\": {\"wordCount\": len(text.split())}}\n";
constexpr char kSnippet[] = "result = {\"words\": len(args[\"text\"].split())}\n";
constexpr char kText[] = "the quick brown fox jumps over the lazy dog";

const json& ToolArgs() {
  static const json* args = new json{{"text", kText}};
  return *args;
}
const json& ExpectedEnvelope() {
  static const json* envelope = new json{{"ok", true}, {"data", {{"wordCount", 9}}}};
  return *envelope;
}
const json& ExpectedSnippetResult() {
  static const json* result = new json{{"words", 9}};
  return *result;
}

constexpr int kPoolSize = 4;
constexpr char kResidentTool[] = "wc_resident";
constexpr char kFreshTool[] = "wc_fresh";
constexpr char kResidentUnenforcedTool[] = "wc_resident_unenforced";

// The policy cost is measured against this: no rules, no per-execution directories.
pyhost::Policy Unenforced() {
  pyhost::Policy policy = *pyhost::NamedPolicy("yolo");
  policy.name = "unenforced";
  policy.work_dir = false;
  return policy;
}

std::string g_python = "/usr/bin/python3";

// Resident set size of this process, in MiB (0 if unknown).
double RssMiB() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  long pages = 0, resident = 0;
  int n = std::fscanf(f, "%ld %ld", &pages, &resident);
  std::fclose(f);
  return n == 2 ? static_cast<double>(resident) * sysconf(_SC_PAGESIZE) / (1 << 20) : 0;
}

// ---------------------------------------------------------------------------------
// Latency samples and what each benchmark published, for the summary.

struct Summary {
  std::string name;
  size_t samples = 0;
  double p50_us = 0, p99_us = 0, mean_us = 0, min_us = 0, max_us = 0;
  std::optional<double> target_p50_us;  // the design target, if any
  bool baseline = false;                // the subprocess baseline the ratios use
  bool in_process = true;
  std::string note;
};

std::vector<Summary>& Summaries() {
  static auto* summaries = new std::vector<Summary>;
  return *summaries;
}

// Nearest-rank percentile of sorted samples.
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

// Sets the p50/p99/mean counters and records the summary (the last run of a name wins).
void Publish(benchmark::State& state, Summary summary, std::vector<double> samples_us) {
  if (samples_us.empty()) return;
  std::sort(samples_us.begin(), samples_us.end());
  double sum = 0;
  for (double v : samples_us) sum += v;
  summary.samples = samples_us.size();
  summary.p50_us = Percentile(samples_us, 0.50);
  summary.p99_us = Percentile(samples_us, 0.99);
  summary.mean_us = sum / static_cast<double>(samples_us.size());
  summary.min_us = samples_us.front();
  summary.max_us = samples_us.back();
  state.counters["p50_us"] = summary.p50_us;
  state.counters["p99_us"] = summary.p99_us;
  state.counters["mean_us"] = summary.mean_us;
  state.counters["max_us"] = summary.max_us;
  if (summary.target_p50_us && *summary.target_p50_us >= 100) {
    // Fresh interpreters: calls that lost the GIL to the pool's factory take ms.
    size_t slow = static_cast<size_t>(
        samples_us.end() - std::upper_bound(samples_us.begin(), samples_us.end(), 1000.0));
    double pct = 100.0 * static_cast<double>(slow) / static_cast<double>(samples_us.size());
    state.counters["over_1ms_pct"] = pct;
    summary.note = absl::StrFormat("%.0f%% of calls > 1 ms", pct);
  }
  auto& all = Summaries();
  auto same = std::find_if(all.begin(), all.end(),
                           [&](const Summary& s) { return s.name == summary.name; });
  if (same != all.end()) {
    *same = std::move(summary);
  } else {
    all.push_back(std::move(summary));
  }
}

// Times one call; also reports it to Google Benchmark as this iteration's time.
template <typename F>
auto Timed(benchmark::State& state, std::vector<double>& samples_us, F&& call) {
  Clock::time_point start = Clock::now();
  auto value = call();
  Clock::time_point end = Clock::now();
  std::chrono::duration<double> elapsed = end - start;
  state.SetIterationTime(elapsed.count());
  samples_us.push_back(elapsed.count() * 1e6);
  return value;
}

// ---------------------------------------------------------------------------------
// One Host per benchmark family, kept for the whole run.

std::unique_ptr<pyhost::Host> g_tool_host;  // ToolCall/*
std::unique_ptr<pyhost::Host> g_exec_host;  // Execute/*
std::unique_ptr<pyhost::InterpreterPool> g_probe_pool;  // Diagnostic/*

pyhost::HostOptions BenchHostOptions() {
  pyhost::HostOptions options;
  options.pool_size = kPoolSize;  // prewarm json/re/math: the defaults
  return options;
}

// Waits until the pool holds pool_size ready interpreters and nothing is waiting to
// be destroyed: the factory is idle and holds no GIL. False after `timeout`.
template <typename Pool>
bool WaitForQuietPool(Pool& pool, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const Clock::time_point deadline = Clock::now() + timeout;
  for (;;) {
    pyhost::PoolStats stats;
    if constexpr (std::is_same_v<Pool, pyhost::Host>) {
      stats = pool.pool_stats();
    } else {
      stats = pool.stats();
    }
    if (stats.ready >= kPoolSize && stats.retired == 0) return true;
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

// Lets every host's factory finish its work, so no interpreter is being created
// (holding the shared GIL, using a core) while a benchmark measures.
bool QuietAllPools() {
  for (pyhost::Host* host : {g_tool_host.get(), g_exec_host.get()}) {
    if (host != nullptr && !WaitForQuietPool(*host)) return false;
  }
  return !g_probe_pool || WaitForQuietPool(*g_probe_pool);
}

pyhost::Host* ToolHost(benchmark::State& state) {
  if (!g_tool_host) {
    absl::StatusOr<std::unique_ptr<pyhost::Host>> host =
        pyhost::Host::Create(BenchHostOptions());
    if (!host.ok()) {
      state.SkipWithError(absl::StrCat("Host::Create: ", host.status().ToString()).c_str());
      return nullptr;
    }
    absl::Status resident = (*host)->RegisterTool(
        kResidentTool, kToolSource, {.isolation = pyhost::Isolation::kResident});
    absl::Status fresh = (*host)->RegisterTool(kFreshTool, kToolSource,
                                               {.isolation = pyhost::Isolation::kFresh});
    if (resident.ok()) {
      resident = (*host)->RegisterTool(
          kResidentUnenforcedTool, kToolSource,
          {.isolation = pyhost::Isolation::kResident, .policy = Unenforced()});
    }
    if (!resident.ok() || !fresh.ok()) {
      state.SkipWithError(absl::StrCat("RegisterTool: ", resident.ToString(), " / ",
                                       fresh.ToString())
                              .c_str());
      return nullptr;
    }
    g_tool_host = *std::move(host);
  }
  return g_tool_host.get();
}

pyhost::Host* ExecHost(benchmark::State& state) {
  if (!g_exec_host) {
    absl::StatusOr<std::unique_ptr<pyhost::Host>> host =
        pyhost::Host::Create(BenchHostOptions());
    if (!host.ok()) {
      state.SkipWithError(absl::StrCat("Host::Create: ", host.status().ToString()).c_str());
      return nullptr;
    }
    g_exec_host = *std::move(host);
  }
  return g_exec_host.get();
}

// Reports a wrong answer (and stops the benchmark). True if the answer is right.
bool CheckEnvelope(benchmark::State& state,
                   const absl::StatusOr<pyhost::ToolCallResult>& call) {
  if (!call.ok()) {
    state.SkipWithError(absl::StrCat("CallTool: ", call.status().ToString()).c_str());
    return false;
  }
  if (call->envelope != ExpectedEnvelope()) {
    state.SkipWithError(absl::StrCat("unexpected envelope: ", call->envelope.dump()).c_str());
    return false;
  }
  return true;
}

bool CheckExec(benchmark::State& state, const absl::StatusOr<pyhost::ExecResult>& run) {
  if (!run.ok()) {
    state.SkipWithError(absl::StrCat("Execute: ", run.status().ToString()).c_str());
    return false;
  }
  if (!run->ok || run->result != ExpectedSnippetResult()) {
    state.SkipWithError(absl::StrCat("unexpected result: ", run->ToJson().dump()).c_str());
    return false;
  }
  return true;
}

pyhost::ExecRequest SnippetRequest(pyhost::Isolation isolation) {
  pyhost::ExecRequest request;
  request.code = kSnippet;
  request.args = ToolArgs();
  request.isolation = isolation;
  return request;
}

// ---------------------------------------------------------------------------------
// The benchmarks.

// A registered tool in its resident interpreter: C++ json args -> C++ json envelope.
// `tool` is the one registered under the default policy (strict) or unenforced.
void BM_ToolCallResident(benchmark::State& state, const char* tool, const char* name,
                         std::optional<double> target) {
  pyhost::Host* host = ToolHost(state);
  if (host == nullptr) return;
  if (!QuietAllPools()) return state.SkipWithError("the pools did not refill");
  for (int i = 0; i < 1000; ++i) {  // warm caches and the per-thread thread state
    if (!CheckEnvelope(state, host->CallTool(tool, ToolArgs()))) return;
  }
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(state.max_iterations));
  for (auto _ : state) {
    auto call = Timed(state, samples, [&] { return host->CallTool(tool, ToolArgs()); });
    if (!CheckEnvelope(state, call)) return;
  }
  Publish(state, {.name = name, .target_p50_us = target}, std::move(samples));
}

// A registered tool with the default kFresh isolation: each call loads the tool's
// code into a never-used interpreter from the warm pool. Between calls (untimed) the
// pool refills.
void BM_ToolCallFresh(benchmark::State& state) {
  pyhost::Host* host = ToolHost(state);
  if (host == nullptr) return;
  if (!QuietAllPools()) return state.SkipWithError("the pools did not refill");
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(state.max_iterations));
  double wait_sum = 0, cpu_sum = 0;
  for (auto _ : state) {
    auto call = Timed(state, samples, [&] { return host->CallTool(kFreshTool, ToolArgs()); });
    if (!CheckEnvelope(state, call)) return;
    wait_sum += call->stats.wait_us;
    cpu_sum += call->stats.cpu_us;
    if (!WaitForQuietPool(*host)) return state.SkipWithError("the pool did not refill");
  }
  state.counters["pool_wait_us"] = wait_sum / static_cast<double>(samples.size());
  state.counters["exec_cpu_us"] = cpu_sum / static_cast<double>(samples.size());
  Publish(state, {.name = "ToolCall/fresh", .target_p50_us = 300.0}, std::move(samples));
}

// A snippet in the host's resident interpreter (compiled on every call).
void BM_ExecuteResidentSnippet(benchmark::State& state) {
  pyhost::Host* host = ExecHost(state);
  if (host == nullptr) return;
  const pyhost::ExecRequest request = SnippetRequest(pyhost::Isolation::kResident);
  // The first call takes the resident interpreter from the pool; let it refill.
  if (!CheckExec(state, host->Execute(request))) return;
  if (!QuietAllPools()) return state.SkipWithError("the pools did not refill");
  for (int i = 0; i < 500; ++i) {
    if (!CheckExec(state, host->Execute(request))) return;
  }
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(state.max_iterations));
  for (auto _ : state) {
    auto run = Timed(state, samples, [&] { return host->Execute(request); });
    if (!CheckExec(state, run)) return;
  }
  Publish(state, {.name = "Execute/resident_snippet"}, std::move(samples));
}

// A snippet in a never-used interpreter, the pool warm: each timed execution finds
// a ready interpreter; the refill (destroy the used one, create and prewarm a new
// one, ~10-20 ms) happens between timed calls.
void BM_ExecuteFreshWarmPool(benchmark::State& state, bool unenforced, const char* name,
                             std::optional<double> target) {
  pyhost::Host* host = ExecHost(state);
  if (host == nullptr) return;
  if (!QuietAllPools()) return state.SkipWithError("the pools did not refill");
  pyhost::ExecRequest request = SnippetRequest(pyhost::Isolation::kFresh);
  if (unenforced) request.policy = Unenforced();
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(state.max_iterations));
  double wait_sum = 0, cpu_sum = 0;
  for (auto _ : state) {
    auto run = Timed(state, samples, [&] { return host->Execute(request); });
    if (!CheckExec(state, run)) return;
    wait_sum += run->stats.wait_us;
    cpu_sum += run->stats.cpu_us;
    if (!WaitForQuietPool(*host)) return state.SkipWithError("the pool did not refill");
  }
  state.counters["pool_wait_us"] = wait_sum / static_cast<double>(samples.size());
  state.counters["exec_cpu_us"] = cpu_sum / static_cast<double>(samples.size());
  Publish(state, {.name = name, .target_p50_us = target}, std::move(samples));
}

// Fresh executions back to back with the pool drained: the sustained rate, bound by
// how fast the factory creates (and destroys) interpreters.
void BM_ExecuteFreshSustained(benchmark::State& state) {
  pyhost::Host* host = ExecHost(state);
  if (host == nullptr) return;
  if (!QuietAllPools()) return state.SkipWithError("the pools did not refill");
  const pyhost::ExecRequest request = SnippetRequest(pyhost::Isolation::kFresh);
  for (int i = 0; i < 2 * kPoolSize; ++i) {  // drain the pool first (untimed)
    if (!CheckExec(state, host->Execute(request))) return;
  }
  const double rss_before = RssMiB();
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(state.max_iterations));
  double wait_sum = 0, cpu_sum = 0;
  for (auto _ : state) {
    auto run = Timed(state, samples, [&] { return host->Execute(request); });
    if (!CheckExec(state, run)) return;
    wait_sum += run->stats.wait_us;
    cpu_sum += run->stats.cpu_us;
  }
  double total_us = 0;
  for (double v : samples) total_us += v;
  state.counters["pool_wait_us"] = wait_sum / static_cast<double>(samples.size());
  state.counters["exec_cpu_us"] = cpu_sum / static_cast<double>(samples.size());
  // Used interpreters not destroyed yet: the factory creates before it destroys
  // while a request waits, so under sustained load these pile up.
  state.counters["retired_at_end"] = host->pool_stats().retired;
  state.counters["rss_growth_mib"] = RssMiB() - rss_before;
  const double per_sec = 1e6 * static_cast<double>(samples.size()) / total_us;
  state.counters["per_sec"] = per_sec;
  Publish(state,
          {.name = "Execute/fresh_sustained",
           .note = absl::StrFormat("%.0f executions/s, one at a time", per_sec)},
          std::move(samples));
}

// Diagnostic: Execute's fresh path done by hand with the library's own pieces
// (InterpreterPool::Acquire, ThreadStateScope, RunSnippet), timing only entering
// the interpreter, running the snippet and leaving it, AFTER the factory has
// finished creating the replacement interpreter. Host::Execute cannot avoid that
// overlap: Acquire wakes the factory, which takes the shared GIL to create an
// interpreter while the request wants it too. This shows what
// Execute/fresh_warm_pool would cost without that contention.
void BM_FreshUncontended(benchmark::State& state) {
  if (!g_probe_pool) {
    pyhost::PoolOptions options;
    options.size = kPoolSize;
    options.interpreter.prewarm_modules = pyhost::HostOptions().prewarm_modules;
    absl::StatusOr<std::unique_ptr<pyhost::InterpreterPool>> pool =
        pyhost::InterpreterPool::Start(std::move(options));
    if (!pool.ok()) return state.SkipWithError(pool.status().ToString().c_str());
    g_probe_pool = *std::move(pool);
  }
  if (!QuietAllPools()) return state.SkipWithError("the pools did not refill");
  const pyhost::ExecRequest request = SnippetRequest(pyhost::Isolation::kFresh);
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(state.max_iterations));
  for (auto _ : state) {
    absl::StatusOr<pyhost::InterpreterLease> lease = g_probe_pool->Acquire();
    if (!lease.ok()) return state.SkipWithError(lease.status().ToString().c_str());
    // Holding the lease, the pool refills to its size: the factory's work is done.
    if (!WaitForQuietPool(*g_probe_pool)) return state.SkipWithError("no refill");
    pyhost::ExecResult result;
    Timed(state, samples, [&] {
      pyhost::ThreadStateScope scope((*lease)->state());
      pyhost::RunSnippet(lease->get(), request, pyhost::HostOptions().max_output_bytes,
                         nlohmann::json::object(), result);
      return true;
    });
    if (!CheckExec(state, result)) return;
    *lease = pyhost::InterpreterLease();  // retire it (destroyed by the factory)
    if (!WaitForQuietPool(*g_probe_pool)) return state.SkipWithError("no refill");
  }
  Publish(state, {.name = "Diagnostic/fresh_uncontended", .target_p50_us = 300.0},
          std::move(samples));
}

// The baseline: one python3 process per call, as the seeds' subprocess runners do.
void RunSubprocess(benchmark::State& state, const char* name, std::vector<std::string> flags,
                   bool baseline) {
  if (!QuietAllPools()) return state.SkipWithError("the pools did not refill");
  pyhost_bench::SubprocessToolRunner runner(
      {.python = g_python, .flags = std::move(flags), .tool_source = kToolSource});
  for (int i = 0; i < 3; ++i) {  // page cache, and check it works at all
    absl::StatusOr<json> envelope = runner.Call(ToolArgs());
    if (!envelope.ok()) return state.SkipWithError(envelope.status().ToString().c_str());
  }
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(state.max_iterations));
  for (auto _ : state) {
    auto envelope = Timed(state, samples, [&] { return runner.Call(ToolArgs()); });
    if (!envelope.ok()) return state.SkipWithError(envelope.status().ToString().c_str());
    if (*envelope != ExpectedEnvelope()) {
      return state.SkipWithError(absl::StrCat("unexpected envelope: ", envelope->dump()).c_str());
    }
  }
  Publish(state, {.name = name, .baseline = baseline, .in_process = false},
          std::move(samples));
}

void BM_SubprocessPerCall(benchmark::State& state) {
  RunSubprocess(state, "Subprocess/python3_per_call", {}, /*baseline=*/true);
}

// The cheapest python3 start there is (-I: no environment or user site, -S: no site):
// a lower bound for any subprocess runner.
void BM_SubprocessIsolatedPerCall(benchmark::State& state) {
  RunSubprocess(state, "Subprocess/python3_-I_-S_per_call", {"-I", "-S"}, /*baseline=*/false);
}

// The summary line of BM_AuditEventCost (not a latency: kept out of the table).
std::string& AuditNote() {
  static auto* note = new std::string();
  return *note;
}

// What the audit hook costs per event, measured inside an interpreter running under
// strict: an event with no rule (the common case), "compile" (a rule, allowed), "open"
// of a file in WORK_DIR (a rule that resolves the path) and "marshal.loads" of a
// stdlib module's cached bytecode (importlib loading it: the bytecode is compared
// with the file it names, audit_hooks/stdlib_bytecode.h). ns per event, as the
// difference against the same loop in an interpreter with no sandbox active.
void BM_AuditEventCost(benchmark::State& state) {
  pyhost::PoolOptions options;
  options.size = 1;
  absl::StatusOr<std::unique_ptr<pyhost::InterpreterPool>> pool =
      pyhost::InterpreterPool::Start(options);
  if (!pool.ok()) return state.SkipWithError(pool.status().ToString().c_str());
  absl::StatusOr<pyhost::InterpreterLease> lease = (*pool)->Acquire();
  if (!lease.ok()) return state.SkipWithError(lease.status().ToString().c_str());
  pyhost::WorkDirStock dirs(pyhost::DefaultWorkRoot(), 1);
  pyhost::ThreadStateScope scope((*lease)->state());
  constexpr int kEvents = 20000;
  auto time_ns = [&](const char* event, const char* format, auto... args) {
    Clock::time_point start = Clock::now();
    for (int i = 0; i < kEvents; ++i) {
      if (PySys_Audit(event, format, args...) != 0) PyErr_Clear();
    }
    return std::chrono::duration<double, std::nano>(Clock::now() - start).count() / kEvents;
  };
  struct Probe {
    const char* name;
    double inactive_ns = 0, strict_ns = 0;
  } probes[] = {{"unruled"}, {"compile"}, {"open"}, {"stdlib_bytecode"}};
  std::string pyc;  // statistics.py's cached bytecode, without its header
  std::ifstream in(pyhost::CachedBytecodePath(pyhost::StdlibDir() + "/statistics.py"), std::ios::binary);
  pyc.assign(std::istreambuf_iterator<char>(in), {});
  if (pyc.size() <= 16) return state.SkipWithError("no cached bytecode for statistics.py");
  pyc.erase(0, 16);
  for (auto _ : state) {
    for (bool strict : {false, true}) {
      std::unique_ptr<pyhost::ExecutionContext> context;
      std::string file = "/usr/lib/python3.11/os.py";
      if (strict) {
        context = *pyhost::ExecutionContext::Enter(lease->get(), *pyhost::NamedPolicy("strict"),
                                                   {{}, &dirs});
        file = context->Globals()["WORK_DIR"].get<std::string>() + "/data.txt";
      }
      auto slot = [&](int i) { return strict ? &probes[i].strict_ns : &probes[i].inactive_ns; };
      *slot(0) = time_ns("pyhost.bench", "(i)", 1);
      *slot(1) = time_ns("compile", "(ss)", "1", "<bench>");
      *slot(2) = time_ns("open", "(ssi)", file.c_str(), "r", 0);
      *slot(3) = time_ns("marshal.loads", "(y#)", pyc.data(), static_cast<Py_ssize_t>(pyc.size()));
    }
    state.SetIterationTime(1e-9);
  }
  std::string note;
  for (const Probe& probe : probes) {
    state.counters[absl::StrCat(probe.name, "_ns")] = probe.strict_ns;
    absl::StrAppend(&note, note.empty() ? "" : ", ", probe.name, " ",
                    absl::StrFormat("%.0f ns (%.0f without a policy)", probe.strict_ns,
                                    probe.inactive_ns));
  }
  AuditNote() = note;
}

void RegisterAll() {
  auto reg = [](const char* name, auto fn, int64_t iterations, auto... args) {
    benchmark::RegisterBenchmark(name, fn, args...)
        ->Iterations(iterations)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  };
  reg("ToolCall/resident", BM_ToolCallResident, 20000, kResidentTool, "ToolCall/resident",
      std::optional<double>(10.0));
  reg("Policy/tool_call_resident_unenforced", BM_ToolCallResident, 20000,
      kResidentUnenforcedTool, "Policy/tool_call_resident_unenforced", std::optional<double>());
  reg("ToolCall/fresh", BM_ToolCallFresh, 200);
  reg("Execute/resident_snippet", BM_ExecuteResidentSnippet, 5000);
  reg("Execute/fresh_warm_pool", BM_ExecuteFreshWarmPool, 200, false, "Execute/fresh_warm_pool",
      std::optional<double>(300.0));
  reg("Policy/fresh_warm_pool_unenforced", BM_ExecuteFreshWarmPool, 200, true,
      "Policy/fresh_warm_pool_unenforced", std::optional<double>());
  reg("Policy/audit_event_cost", BM_AuditEventCost, 1);
  reg("Execute/fresh_sustained", BM_ExecuteFreshSustained, 100);
  reg("Diagnostic/fresh_uncontended", BM_FreshUncontended, 150);
  reg("Subprocess/python3_per_call", BM_SubprocessPerCall, 100);
  reg("Subprocess/python3_-I_-S_per_call", BM_SubprocessIsolatedPerCall, 100);
}

// ---------------------------------------------------------------------------------
// The summary table.

std::string FormatUs(double us) {
  if (us >= 10000) return absl::StrFormat("%.1f ms", us / 1000);
  if (us >= 1000) return absl::StrFormat("%.2f ms", us / 1000);
  if (us >= 100) return absl::StrFormat("%.0f us", us);
  return absl::StrFormat("%.1f us", us);
}

void PrintSummary() {
  const std::vector<Summary>& all = Summaries();
  if (all.empty()) return;
  const Summary* baseline = nullptr;
  for (const Summary& s : all) {
    if (s.baseline) baseline = &s;
  }
  std::printf("\n== pyhost_bench summary: latency per call (C++ args in, C++ answer out) ==\n");
  std::printf("%-36s %7s %10s %10s %10s  %-22s %s\n", "benchmark", "calls", "p50", "p99",
              "mean", "python3 p50 / p50", "target");
  for (const Summary& s : all) {
    std::string ratio = "n/a (baseline not run)";
    if (s.baseline) {
      ratio = "1x (baseline)";
    } else if (baseline != nullptr && s.p50_us > 0) {
      ratio = absl::StrFormat("%.0fx", baseline->p50_us / s.p50_us);
      if (baseline->p50_us / s.p50_us < 10) {
        ratio = absl::StrFormat("%.2fx", baseline->p50_us / s.p50_us);
      }
    }
    std::string target = "-";
    if (s.target_p50_us) {
      target = absl::StrFormat("p50 <= %.0f us: %s", *s.target_p50_us,
                               s.p50_us <= *s.target_p50_us ? "MET" : "MISSED");
    }
    if (!s.note.empty()) target = absl::StrCat(target == "-" ? "" : target + "; ", s.note);
    std::printf("%-36s %7zu %10s %10s %10s  %-22s %s\n", s.name.c_str(), s.samples,
                FormatUs(s.p50_us).c_str(), FormatUs(s.p99_us).c_str(),
                FormatUs(s.mean_us).c_str(), ratio.c_str(), target.c_str());
  }
  if (baseline != nullptr) {
    std::printf("\n");
    for (const Summary& s : all) {
      if (s.baseline || !s.in_process || s.p50_us <= 0) continue;
      std::printf("%-30s is %6.0fx faster than python3 per call (p50 %s vs %s)\n",
                  s.name.c_str(), baseline->p50_us / s.p50_us, FormatUs(s.p50_us).c_str(),
                  FormatUs(baseline->p50_us).c_str());
    }
  }
  auto find = [&](const char* name) -> const Summary* {
    for (const Summary& s : all) {
      if (s.name == name) return &s;
    }
    return nullptr;
  };
  std::printf("\n== the policy's cost (strict, the default, against no rules) ==\n");
  for (auto [with, without, target] :
       {std::tuple{"ToolCall/resident", "Policy/tool_call_resident_unenforced", 5.0},
        std::tuple{"Execute/fresh_warm_pool", "Policy/fresh_warm_pool_unenforced", -1.0}}) {
    const Summary* a = find(with);
    const Summary* b = find(without);
    if (a == nullptr || b == nullptr || b->p50_us <= 0) continue;
    double pct = 100.0 * (a->p50_us - b->p50_us) / b->p50_us;
    std::printf("%-26s p50 %s strict vs %s unenforced: %+.1f%%%s\n", with,
                FormatUs(a->p50_us).c_str(), FormatUs(b->p50_us).c_str(), pct,
                target > 0 ? absl::StrFormat(" (target <= %.0f%%: %s)", target,
                                             pct <= target ? "MET" : "MISSED").c_str()
                           : "");
  }
  if (!AuditNote().empty()) std::printf("audit hook per event: %s\n", AuditNote().c_str());
  std::printf("\nTimes are wall clock per call on a shared, noisy machine; "
              "see docs/benchmarks.md.\n");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  // A python3 child that dies before reading its stdin must not kill us.
  signal(SIGPIPE, SIG_IGN);
  benchmark::Initialize(&argc, argv);
  // Our own flag; Google Benchmark removed its own from argv.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--python=", 9) == 0) {
      g_python = argv[i] + 9;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  PrintSummary();
  g_tool_host.reset();
  g_exec_host.reset();
  g_probe_pool.reset();
  benchmark::Shutdown();
  return 0;
}

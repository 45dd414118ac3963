// pyhost_bench: in-process Python tool calls and snippets through the public API
// (pyhost/host.h) against the subprocess baseline (one /usr/bin/python3 per call), in
// one run, with a summary table.
//
//   cmake --build build -j2 --target pyhost_bench && ./build/benchmarks/pyhost_bench
//   ./build/benchmarks/pyhost_bench --benchmark_filter=ToolCall   # Google Benchmark flags work
//   ./build/benchmarks/pyhost_bench --python=/usr/bin/python3     # the baseline's interpreter
//
// Every benchmark times each call itself (steady_clock around the call, reported to
// Google Benchmark as manual time) and publishes p50/p99/mean in microseconds as
// counters, since Google Benchmark alone reports means. What runs between timed calls
// (waiting for the warm pool to refill, checking the answer) is not timed.
// What needs the library's own pieces is in internals_benchmark.cc
// (pyhost_internals_bench). See docs/benchmarks.md for what each benchmark measures and
// figures measured here.
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "benchmarks/bench_support.h"
#include "benchmarks/process_benchmark.h"
#include "benchmarks/subprocess_runner.h"
#include "pyhost/host.h"

namespace pyhost_bench {
namespace {

constexpr char kResidentTool[] = "wc_resident";
constexpr char kFreshTool[] = "wc_fresh";
constexpr char kResidentUnenforcedTool[] = "wc_resident_unenforced";

std::string g_python = "/usr/bin/python3";

// ---------------------------------------------------------------------------------
// One Host per benchmark family, kept for the whole run.

std::unique_ptr<pyhost::Host> g_tool_host;  // ToolCall/*
std::unique_ptr<pyhost::Host> g_exec_host;  // Execute/*

pyhost::HostOptions BenchHostOptions() {
  pyhost::HostOptions options;
  options.pool_size = kPoolSize;  // prewarm json/re/math: the defaults
  return options;
}

// Lets every host's factory finish its work, so no interpreter is being created
// (holding the shared GIL, using a core) while a benchmark measures.
bool QuietAllPools() {
  for (pyhost::Host* host : {g_tool_host.get(), g_exec_host.get()}) {
    if (host != nullptr && !WaitForQuietPool(*host)) return false;
  }
  return true;
}

pyhost::Host* ToolHost(benchmark::State& state) {
  if (!g_tool_host) {
    absl::StatusOr<std::unique_ptr<pyhost::Host>> host = pyhost::Host::Create(BenchHostOptions());
    if (!host.ok()) {
      state.SkipWithError(absl::StrCat("Host::Create: ", host.status().ToString()).c_str());
      return nullptr;
    }
    absl::Status resident = (*host)->RegisterTool(kResidentTool, kToolSource,
                                                  {.isolation = pyhost::Isolation::kResident});
    absl::Status fresh =
        (*host)->RegisterTool(kFreshTool, kToolSource, {.isolation = pyhost::Isolation::kFresh});
    if (resident.ok()) {
      resident = (*host)->RegisterTool(
          kResidentUnenforcedTool, kToolSource,
          {.isolation = pyhost::Isolation::kResident, .policy = Unenforced()});
    }
    if (!resident.ok() || !fresh.ok()) {
      state.SkipWithError(
          absl::StrCat("RegisterTool: ", resident.ToString(), " / ", fresh.ToString()).c_str());
      return nullptr;
    }
    g_tool_host = *std::move(host);
  }
  return g_tool_host.get();
}

pyhost::Host* ExecHost(benchmark::State& state) {
  if (!g_exec_host) {
    absl::StatusOr<std::unique_ptr<pyhost::Host>> host = pyhost::Host::Create(BenchHostOptions());
    if (!host.ok()) {
      state.SkipWithError(absl::StrCat("Host::Create: ", host.status().ToString()).c_str());
      return nullptr;
    }
    g_exec_host = *std::move(host);
  }
  return g_exec_host.get();
}

// Reports a wrong answer (and stops the benchmark). True if the answer is right.
bool CheckEnvelope(benchmark::State& state, const absl::StatusOr<pyhost::ToolCallResult>& call) {
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

// The baseline: one python3 process per call, as the seeds' subprocess runners do.
void RunSubprocess(benchmark::State& state, const char* name, std::vector<std::string> flags,
                   bool baseline) {
  if (!QuietAllPools()) return state.SkipWithError("the pools did not refill");
  SubprocessToolRunner runner(
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
  Publish(state, {.name = name, .baseline = baseline, .in_process = false}, std::move(samples));
}

void BM_SubprocessPerCall(benchmark::State& state) {
  RunSubprocess(state, "Subprocess/python3_per_call", {}, /*baseline=*/true);
}

// The cheapest python3 start there is (-I: no environment or user site, -S: no site):
// a lower bound for any subprocess runner.
void BM_SubprocessIsolatedPerCall(benchmark::State& state) {
  RunSubprocess(state, "Subprocess/python3_-I_-S_per_call", {"-I", "-S"}, /*baseline=*/false);
}

// A resident tool call while another request loops in Python in a fresh interpreter
// (3.11: one GIL): what fair GIL sharing (guards/gil_sharing.h) keeps it at. The loop
// is stopped at its deadline after the calls.
void BM_ToolCallBesideALoop(benchmark::State& state) {
  pyhost::Host* host = ToolHost(state);
  if (host == nullptr) return;
  if (!QuietAllPools()) return state.SkipWithError("the pools did not refill");
  pyhost::ExecRequest loop;
  loop.code = "while True: pass";
  loop.limits.timeout_ms = 60000;
  absl::StatusOr<pyhost::ExecResult> looped;
  std::thread looping([&] { looped = host->Execute(loop); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(state.max_iterations));
  for (auto _ : state) {
    auto call = Timed(state, samples, [&] { return host->CallTool(kResidentTool, ToolArgs()); });
    if (!CheckEnvelope(state, call)) break;
  }
  host->InterruptAll();  // the loop: KeyboardInterrupt, at once
  looping.join();
  if (!looped.ok() || looped->outcome != pyhost::Outcome::kInterrupted) {
    return state.SkipWithError("the looping request did not end as interrupted");
  }
  std::vector<double> sorted = samples;
  std::sort(sorted.begin(), sorted.end());
  const double p99 = sorted.empty() ? 0 : sorted[sorted.size() * 99 / 100];
  Publish(state,
          {.name = "ToolCall/resident_beside_a_loop",
           .note = absl::StrFormat("p99 <= 20 ms: %s", p99 <= 20000 ? "MET" : "MISSED")},
          std::move(samples));
}

// Allocation-heavy Python (small objects in arenas, blocks over 512 bytes in the raw
// domain), timed inside the code, under a 256 MB budget against python3 running the
// same code in the same run: the memory accounting's cost (guards/memory_budget.h).
constexpr char kAllocHeavy[] =
    "import time\n"
    "t = time.perf_counter()\n"
    "for _ in range(20):\n"
    "    x = [bytes(600) for _ in range(5000)]\n"
    "    y = [{'k': i, 'v': [i] * 3} for i in range(5000)]\n"
    "    del x, y\n"
    "result = (time.perf_counter() - t) * 1e6\n";

void BM_AllocHeavy(benchmark::State& state) {
  pyhost::Host* host = ExecHost(state);
  if (host == nullptr) return;
  if (!QuietAllPools()) return state.SkipWithError("the pools did not refill");
  pyhost::ExecRequest request;
  request.code = kAllocHeavy;
  request.isolation = pyhost::Isolation::kResident;
  std::vector<double> in_pyhost, in_python3;
  for (auto _ : state) {
    absl::StatusOr<pyhost::ExecResult> run = host->Execute(request);
    if (!run.ok() || !run->ok || !run->result.is_number()) {
      return state.SkipWithError("the allocation-heavy snippet failed");
    }
    in_pyhost.push_back(run->result.get<double>());
    state.SetIterationTime(in_pyhost.back() / 1e6);
  }
  // python3 in the same run, the same code (its timing from inside, as above).
  for (size_t i = 0; i < in_pyhost.size(); ++i) {
    std::string script = absl::StrCat("/tmp/pyhost-alloc-heavy-", getpid(), ".py");
    FILE* file = fopen(script.c_str(), "w");
    if (file == nullptr) return state.SkipWithError("cannot write the python3 script");
    fputs(kAllocHeavy, file);
    fputs("print(result)\n", file);
    fclose(file);
    FILE* pipe = popen(absl::StrCat(g_python, " ", script).c_str(), "r");
    double us = 0;
    if (pipe == nullptr || fscanf(pipe, "%lf", &us) != 1) {
      if (pipe != nullptr) pclose(pipe);
      return state.SkipWithError("python3 did not run the script");
    }
    pclose(pipe);
    unlink(script.c_str());
    in_python3.push_back(us);
  }
  std::sort(in_python3.begin(), in_python3.end());
  std::vector<double> sorted = in_pyhost;
  std::sort(sorted.begin(), sorted.end());
  const double ratio = sorted[sorted.size() / 2] / in_python3[in_python3.size() / 2];
  state.counters["python3_p50_us"] = in_python3[in_python3.size() / 2];
  state.counters["overhead_pct"] = (ratio - 1) * 100;
  AddNote(absl::StrFormat(
      "Memory/alloc_heavy: p50 %.0f us in pyhost (256 MB budget) vs %.0f us in python3: "
      "%+.1f%% (target <= +10%%)",
      sorted[sorted.size() / 2], in_python3[in_python3.size() / 2], (ratio - 1) * 100));
  Publish(state, {.name = "Memory/alloc_heavy"}, std::move(in_pyhost));
}

void RegisterAll(const Flags& flags) {
  g_python = flags.python;
  auto reg = [](const char* name, auto fn, int64_t iterations, auto... args) {
    benchmark::RegisterBenchmark(name, fn, args...)
        ->Iterations(iterations)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  };
  reg("ToolCall/resident", BM_ToolCallResident, 20000, kResidentTool, "ToolCall/resident",
      std::optional<double>(10.0));
  reg("Policy/tool_call_resident_unenforced", BM_ToolCallResident, 20000, kResidentUnenforcedTool,
      "Policy/tool_call_resident_unenforced", std::optional<double>());
  reg("ToolCall/fresh", BM_ToolCallFresh, 200);
  reg("Execute/resident_snippet", BM_ExecuteResidentSnippet, 5000);
  reg("Execute/fresh_warm_pool", BM_ExecuteFreshWarmPool, 200, false, "Execute/fresh_warm_pool",
      std::optional<double>(300.0));
  reg("Policy/fresh_warm_pool_unenforced", BM_ExecuteFreshWarmPool, 200, true,
      "Policy/fresh_warm_pool_unenforced", std::optional<double>());
  reg("Execute/fresh_sustained", BM_ExecuteFreshSustained, 100);
  reg("ToolCall/resident_beside_a_loop", BM_ToolCallBesideALoop, 300);
  reg("Memory/alloc_heavy", BM_AllocHeavy, 15);
  reg("Subprocess/python3_per_call", BM_SubprocessPerCall, 100);
  reg("Subprocess/python3_-I_-S_per_call", BM_SubprocessIsolatedPerCall, 100);
  RegisterProcessBenchmarks(flags.python);
}

void Shutdown() {
  ShutdownProcessBenchmarks();
  g_tool_host.reset();
  g_exec_host.reset();
}

}  // namespace
}  // namespace pyhost_bench

int main(int argc, char** argv) {
  return pyhost_bench::BenchMain(argc, argv, "pyhost_bench", pyhost_bench::RegisterAll,
                                 pyhost_bench::Shutdown);
}

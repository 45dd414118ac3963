#include "benchmarks/process_benchmark.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "benchmarks/bench_support.h"
#include "benchmarks/subprocess_runner.h"
#include "embed/process_isolation.h"
#include "pyhost/host.h"

namespace pyhost_bench {
namespace {

using json = nlohmann::json;

std::string g_python;
std::unique_ptr<pyhost::Host> g_host;

pyhost::Host* ProcessHost(benchmark::State& state) {
  if (!g_host) {
    pyhost::HostOptions options;
    options.pool_size = 1;
    absl::StatusOr<std::unique_ptr<pyhost::Host>> host = pyhost::Host::Create(options);
    if (!host.ok()) {
      state.SkipWithError(absl::StrCat("Host::Create: ", host.status().ToString()).c_str());
      return nullptr;
    }
    g_host = *std::move(host);
  }
  return g_host.get();
}

// Per call through the warm forkserver: fork, restrictions, the snippet, the answer.
void BM_ProcessPerCall(benchmark::State& state) {
  pyhost::Host* host = ProcessHost(state);
  if (host == nullptr) return;
  const pyhost::ExecRequest request = SnippetRequest(pyhost::Isolation::kProcess);
  for (int i = 0; i < 5; ++i) {  // the worker's start, untimed
    if (!CheckExec(state, host->Execute(request))) return;
  }
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(state.max_iterations));
  double fork_sum = 0;
  for (auto _ : state) {
    auto run = Timed(state, samples, [&] { return host->Execute(request); });
    if (!CheckExec(state, run)) return;
    fork_sum += run->stats.process.value("fork_us", 0.0);
  }
  state.counters["fork_round_trip_us"] = fork_sum / static_cast<double>(samples.size());
  Publish(state, {.name = "Process/forkserver_per_call", .target_p50_us = 2000.0},
          std::move(samples));
}

// The cold path: `pyhost exec --isolation process` per call, a new host and worker
// each time (what a caller without a resident host pays).
void BM_ProcessColdPerCall(benchmark::State& state) {
  const std::string program = pyhost::DefaultWorkerProgram();
  const std::string args = ToolArgs().dump();
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(state.max_iterations));
  for (auto _ : state) {
    bool answered = false;
    Timed(state, samples, [&] {
      int out[2];
      if (pipe2(out, O_CLOEXEC) != 0) return 0;
      posix_spawn_file_actions_t actions;
      posix_spawn_file_actions_init(&actions);
      posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
      std::vector<std::string> argv_text = {program,  "exec", "--isolation", "process",
                                            "--args", args,   "-c",          kSnippet};
      std::vector<char*> argv;
      for (std::string& arg : argv_text) argv.push_back(arg.data());
      argv.push_back(nullptr);
      pid_t pid = -1;
      const int spawned =
          posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
      posix_spawn_file_actions_destroy(&actions);
      close(out[1]);
      std::string text;
      char buffer[4096];
      for (ssize_t got; spawned == 0 && (got = read(out[0], buffer, sizeof(buffer))) > 0;) {
        text.append(buffer, static_cast<size_t>(got));
      }
      close(out[0]);
      if (spawned == 0) waitpid(pid, nullptr, 0);
      json answer = json::parse(text, nullptr, false);
      answered = answer.is_object() && answer.value("result", json()) == ExpectedSnippetResult();
      return 0;
    });
    if (!answered) return state.SkipWithError("pyhost exec --isolation process answered wrongly");
  }
  Publish(state, {.name = "Process/cold_exec_per_call", .in_process = false}, std::move(samples));
}

// `calls` spread over `callers` threads; the rate of the whole.
template <typename Call>
double CallsPerSecond(int callers, int calls, Call call) {
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < callers; ++t) {
    threads.emplace_back([&] {
      while (next.fetch_add(1) < calls) {
        if (!call()) failed = true;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return failed ? -1 : calls / seconds;
}

// Sustained process-isolated executions per second with `callers` concurrent
// callers, against one python3 per call at the same concurrency, in the same run.
void BM_ProcessRate(benchmark::State& state) {
  const int callers = static_cast<int>(state.range(0));
  pyhost::Host* host = ProcessHost(state);
  if (host == nullptr) return;
  const pyhost::ExecRequest request = SnippetRequest(pyhost::Isolation::kProcess);
  SubprocessToolRunner runner({.python = g_python, .tool_source = kToolSource});
  double process_rate = 0, subprocess_rate = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    process_rate = CallsPerSecond(callers, 400, [&] {
      absl::StatusOr<pyhost::ExecResult> run = host->Execute(request);
      return run.ok() && run->ok && run->result == ExpectedSnippetResult();
    });
    subprocess_rate = CallsPerSecond(callers, 60, [&] {
      absl::StatusOr<json> envelope = runner.Call(ToolArgs());
      return envelope.ok() && *envelope == ExpectedEnvelope();
    });
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  if (process_rate < 0 || subprocess_rate < 0) return state.SkipWithError("a call failed");
  state.counters["process_per_sec"] = process_rate;
  state.counters["subprocess_per_sec"] = subprocess_rate;
  state.counters["ratio"] = process_rate / subprocess_rate;
  AddNote(absl::StrFormat(
      "Process/rate with %d caller%s: %.0f process-isolated executions/s vs %.0f python3 "
      "per call/s in the same run: %.1fx (target >= 10x)",
      callers, callers == 1 ? "" : "s", process_rate, subprocess_rate,
      process_rate / subprocess_rate));
}

}  // namespace

void RegisterProcessBenchmarks(const std::string& python) {
  g_python = python;
  benchmark::RegisterBenchmark("Process/forkserver_per_call", BM_ProcessPerCall)
      ->Iterations(500)
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("Process/cold_exec_per_call", BM_ProcessColdPerCall)
      ->Iterations(30)
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("Process/rate", BM_ProcessRate)
      ->Arg(1)
      ->Arg(2)
      ->Arg(4)
      ->Iterations(1)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
}

void ShutdownProcessBenchmarks() { g_host.reset(); }

}  // namespace pyhost_bench

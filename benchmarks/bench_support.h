// What pyhost's two benchmark binaries share (pyhost_bench: the public API,
// host_benchmark.cc; pyhost_internals_bench: the library's own pieces,
// internals_benchmark.cc): the workload, the per-call timing and its percentiles, the
// summary table, and main(). Only the public header: nothing here reaches inside.
#ifndef PYHOST_BENCHMARKS_BENCH_SUPPORT_H_
#define PYHOST_BENCHMARKS_BENCH_SUPPORT_H_

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "pyhost/host.h"

namespace pyhost_bench {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------
// The workload: a seed-style run(args) tool and the same work as a snippet.

inline constexpr char kToolSource[] =
    "def run(args):\n"
    "    text = args.get(\"text\", \"\")\n"
    "    return {\"ok\": True, \"data\": {\"wordCount\": len(text.split())}}\n";
inline constexpr char kSnippet[] = "result = {\"words\": len(args[\"text\"].split())}\n";
inline constexpr char kText[] = "the quick brown fox jumps over the lazy dog";

const json& ToolArgs();
const json& ExpectedEnvelope();
const json& ExpectedSnippetResult();

inline constexpr int kPoolSize = 4;

// The policy cost is measured against this: no rules, no per-execution directories.
pyhost::Policy Unenforced();

// Resident set size of this process, in MiB (0 if unknown).
double RssMiB();

pyhost::ExecRequest SnippetRequest(pyhost::Isolation isolation);

// Reports a wrong answer (and stops the benchmark). True if the answer is right.
bool CheckExec(benchmark::State& state, const absl::StatusOr<pyhost::ExecResult>& run);

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

// Sets the p50/p99/mean counters and records the summary (the last run of a name wins).
void Publish(benchmark::State& state, Summary summary, std::vector<double> samples_us);

// A line printed under the summary table (a figure that is not a latency).
void AddNote(std::string note);

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

// Waits until the pool (a Host's, or an InterpreterPool) holds kPoolSize ready
// interpreters and nothing is waiting to be destroyed: the factory is idle and holds no
// GIL. False after `timeout`.
template <typename Pool>
bool WaitForQuietPool(Pool& pool, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const Clock::time_point deadline = Clock::now() + timeout;
  for (;;) {
    auto stats = [&] {
      if constexpr (std::is_same_v<Pool, pyhost::Host>) {
        return pool.pool_stats();
      } else {
        return pool.stats();
      }
    }();
    if (stats.ready >= kPoolSize && stats.retired == 0) return true;
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

// ---------------------------------------------------------------------------------
// main()

// The binary's own flags, taken out of argv before Google Benchmark sees it.
struct Flags {
  std::string python = "/usr/bin/python3";  // --python=PATH: the baseline's interpreter
};

// Parses the flags, runs `register_all`, the benchmarks, prints the summary titled
// `title`, then `shutdown` (to destroy hosts and pools before Python goes).
int BenchMain(int argc, char** argv, const char* title, void (*register_all)(const Flags&),
              void (*shutdown)());

}  // namespace pyhost_bench

#endif  // PYHOST_BENCHMARKS_BENCH_SUPPORT_H_

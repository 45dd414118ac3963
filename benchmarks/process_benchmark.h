// Process isolation's benchmarks (pyhost_bench): the forkserver path per call, the
// cold path (a new host and worker per call: `pyhost exec --isolation process`), and
// sustained process-isolated executions per second with 1, 2 and 4 callers against
// the subprocess baseline at the same concurrency, measured in the same run.
#ifndef PYHOST_BENCHMARKS_PROCESS_BENCHMARK_H_
#define PYHOST_BENCHMARKS_PROCESS_BENCHMARK_H_

#include <string>

namespace pyhost_bench {

// `python`: the baseline's interpreter.
void RegisterProcessBenchmarks(const std::string& python);
void ShutdownProcessBenchmarks();

}  // namespace pyhost_bench

#endif  // PYHOST_BENCHMARKS_PROCESS_BENCHMARK_H_

// pyhost_internals_bench: the figures that need the library's own pieces, not only its
// public API (pyhost_bench, host_benchmark.cc, is that): Diagnostic/fresh_uncontended,
// the fresh path done by hand with the pool and the runner, and Policy/audit_event_cost,
// the audit hook per event inside an interpreter under strict.
//
//   cmake --build build -j2 --target pyhost_internals_bench &&
//   ./build/benchmarks/pyhost_internals_bench
//
// Timed and summarized like pyhost_bench (bench_support.h); there is no subprocess
// baseline in this binary, so the ratio column says n/a: compare with pyhost_bench's.
// See docs/benchmarks.md.
#include <Python.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "audit_hooks/sandbox.h"
#include "audit_hooks/stdlib_bytecode.h"
#include "benchmarks/bench_support.h"
#include "bindings/thread_state.h"
#include "embed/execution_context.h"
#include "embed/pool.h"
#include "embed/runner.h"
#include "embed/work_dirs.h"
#include "guards/memory_budget.h"
#include "pyhost/host.h"

namespace pyhost_bench {
namespace {

std::unique_ptr<pyhost::InterpreterPool> g_probe_pool;  // Diagnostic/*

// Lets the probe pool's factory finish its work, so no interpreter is being created
// (holding the shared GIL, using a core) while a benchmark measures.
bool QuietAllPools() { return !g_probe_pool || WaitForQuietPool(*g_probe_pool); }

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

// A pool of one and the interpreter it hands out, for probes inside one interpreter.
struct OneInterpreter {
  absl::Status Start() {
    pyhost::PoolOptions options;
    options.size = 1;
    absl::StatusOr<std::unique_ptr<pyhost::InterpreterPool>> started =
        pyhost::InterpreterPool::Start(options);
    if (!started.ok()) return started.status();
    pool = *std::move(started);
    absl::StatusOr<pyhost::InterpreterLease> acquired = pool->Acquire();
    if (!acquired.ok()) return acquired.status();
    lease = *std::move(acquired);
    return absl::OkStatus();
  }
  std::unique_ptr<pyhost::InterpreterPool> pool;
  pyhost::InterpreterLease lease;  // declared after the pool: handed back first
};

// What the audit hook costs per event, measured inside an interpreter running under
// strict: an event with no rule (the common case), "compile" (a rule, allowed), "open"
// of a file in WORK_DIR (a rule that resolves the path) and "marshal.loads" of a
// stdlib module's cached bytecode (importlib loading it: the bytecode is compared
// with the file it names, audit_hooks/stdlib_bytecode.h). ns per event, as the
// difference against the same loop in an interpreter with no sandbox active.
void BM_AuditEventCost(benchmark::State& state) {
  OneInterpreter one;
  if (absl::Status started = one.Start(); !started.ok()) {
    return state.SkipWithError(started.ToString().c_str());
  }
  pyhost::InterpreterLease* lease = &one.lease;
  auto dirs = std::make_shared<pyhost::WorkDirStock>(pyhost::DefaultWorkRoot(), 1);
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
  std::ifstream in(pyhost::CachedBytecodePath(pyhost::StdlibDir() + "/statistics.py"),
                   std::ios::binary);
  pyc.assign(std::istreambuf_iterator<char>(in), {});
  if (pyc.size() <= 16) return state.SkipWithError("no cached bytecode for statistics.py");
  pyc.erase(0, 16);
  for (auto _ : state) {
    for (bool strict : {false, true}) {
      std::unique_ptr<pyhost::ExecutionContext> context;
      std::string file = "/usr/lib/python3.11/os.py";
      if (strict) {
        context = *pyhost::ExecutionContext::Enter(lease->get(), *pyhost::NamedPolicy("strict"),
                                                   {{}, dirs.get()});
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
    absl::StrAppend(
        &note, note.empty() ? "" : ", ", probe.name, " ",
        absl::StrFormat("%.0f ns (%.0f without a policy)", probe.strict_ns, probe.inactive_ns));
  }
  AddNote(absl::StrCat("audit hook per event: ", note));
}

// What charging the memory budget costs (guards/memory_budget.h): the same code, in one
// interpreter, alternately with the thread's allocations charged to a budget (as every
// execution's are) and not. The allocators are wrapped in both: this is the charging,
// not the indirection. Two workloads: allocation-heavy Python (small objects in
// arenas, blocks over 512 bytes in the raw domain) and a tool call's worth (a dict
// built and dropped).
void BM_MemoryBudgetCost(benchmark::State& state) {
  OneInterpreter one;
  if (absl::Status started = one.Start(); !started.ok()) {
    return state.SkipWithError(started.ToString().c_str());
  }
  pyhost::InterpreterLease* lease = &one.lease;
  pyhost::ThreadStateScope scope((*lease)->state());
  struct Workload {
    const char* name;
    const char* code;
    int repeats;
    double charged_ns = 0, uncharged_ns = 0;
  } workloads[] = {
      {"alloc_heavy",
       "x = [bytes(600) for _ in range(5000)]\ny = [{'k': i, 'v': [i] * 3} for i in range(5000)]\n"
       "del x, y\n",
       40},
      {"tool_call", "d = {'a': 1, 'b': [1, 2, 3]}\nr = {'ok': True, 'data': d['a'] + 1}\n", 20000},
  };
  for (auto _ : state) {
    for (Workload& w : workloads) {
      PyObject* code = Py_CompileString(w.code, "<bench>", Py_file_input);
      PyObject* globals = PyDict_New();
      if (code == nullptr || globals == nullptr ||
          PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) != 0) {
        return state.SkipWithError("compiling the workload");
      }
      std::vector<double> charged, uncharged;
      for (int round = 0; round < 7; ++round) {
        for (bool charge : {true, false}) {
          pyhost::MemoryBudget budget(int64_t{1} << 40);
          pyhost::MemoryBudget::Charge charging(charge ? &budget : nullptr);
          Clock::time_point start = Clock::now();
          for (int i = 0; i < w.repeats; ++i) {
            PyObject* ran = PyEval_EvalCode(code, globals, globals);
            if (ran == nullptr) return state.SkipWithError("running the workload");
            Py_DECREF(ran);
          }
          (charge ? charged : uncharged)
              .push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
                         w.repeats);
        }
      }
      std::sort(charged.begin(), charged.end());
      std::sort(uncharged.begin(), uncharged.end());
      w.charged_ns = charged[charged.size() / 2];
      w.uncharged_ns = uncharged[uncharged.size() / 2];
      Py_DECREF(globals);
      Py_DECREF(code);
    }
    state.SetIterationTime(1e-9);
  }
  std::string note;
  for (const Workload& w : workloads) {
    const double pct = (w.charged_ns / w.uncharged_ns - 1) * 100;
    state.counters[absl::StrCat(w.name, "_overhead_pct")] = pct;
    absl::StrAppend(&note, note.empty() ? "" : "; ", w.name,
                    absl::StrFormat(" %.1f us charged vs %.1f us not: %+.1f%%", w.charged_ns / 1e3,
                                    w.uncharged_ns / 1e3, pct));
  }
  AddNote(absl::StrCat("memory budget charging (targets: alloc-heavy <= +10%, tool call <= +5%): ",
                       note));
}

void RegisterAll(const Flags&) {
  auto reg = [](const char* name, auto fn, int64_t iterations, auto... args) {
    benchmark::RegisterBenchmark(name, fn, args...)
        ->Iterations(iterations)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  };
  reg("Policy/audit_event_cost", BM_AuditEventCost, 1);
  reg("Diagnostic/fresh_uncontended", BM_FreshUncontended, 150);
  reg("Memory/budget_cost", BM_MemoryBudgetCost, 1);
}

void Shutdown() { g_probe_pool.reset(); }

}  // namespace
}  // namespace pyhost_bench

int main(int argc, char** argv) {
  return pyhost_bench::BenchMain(argc, argv, "pyhost_internals_bench", pyhost_bench::RegisterAll,
                                 pyhost_bench::Shutdown);
}

#include "benchmarks/bench_support.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pyhost_bench {

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

pyhost::Policy Unenforced() {
  pyhost::Policy policy = *pyhost::NamedPolicy("yolo");
  policy.name = "unenforced";
  policy.work_dir = false;
  return policy;
}

double RssMiB() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  long pages = 0, resident = 0;
  int n = std::fscanf(f, "%ld %ld", &pages, &resident);
  std::fclose(f);
  return n == 2 ? static_cast<double>(resident) * sysconf(_SC_PAGESIZE) / (1 << 20) : 0;
}

pyhost::ExecRequest SnippetRequest(pyhost::Isolation isolation) {
  pyhost::ExecRequest request;
  request.code = kSnippet;
  request.args = ToolArgs();
  request.isolation = isolation;
  return request;
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

namespace {

std::vector<Summary>& Summaries() {
  static auto* summaries = new std::vector<Summary>;
  return *summaries;
}

std::vector<std::string>& Notes() {
  static auto* notes = new std::vector<std::string>;
  return *notes;
}

// Nearest-rank percentile of sorted samples.
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

std::string FormatUs(double us) {
  if (us >= 10000) return absl::StrFormat("%.1f ms", us / 1000);
  if (us >= 1000) return absl::StrFormat("%.2f ms", us / 1000);
  if (us >= 100) return absl::StrFormat("%.0f us", us);
  return absl::StrFormat("%.1f us", us);
}

void PrintSummary(const char* title) {
  const std::vector<Summary>& all = Summaries();
  if (all.empty()) return;
  const Summary* baseline = nullptr;
  for (const Summary& s : all) {
    if (s.baseline) baseline = &s;
  }
  std::printf("\n== %s summary: latency per call (C++ args in, C++ answer out) ==\n", title);
  std::printf("%-36s %7s %10s %10s %10s  %-22s %s\n", "benchmark", "calls", "p50", "p99", "mean",
              "python3 p50 / p50", "target");
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
                FormatUs(s.p50_us).c_str(), FormatUs(s.p99_us).c_str(), FormatUs(s.mean_us).c_str(),
                ratio.c_str(), target.c_str());
  }
  if (baseline != nullptr) {
    std::printf("\n");
    for (const Summary& s : all) {
      if (s.baseline || !s.in_process || s.p50_us <= 0) continue;
      std::printf("%-30s is %6.0fx faster than python3 per call (p50 %s vs %s)\n", s.name.c_str(),
                  baseline->p50_us / s.p50_us, FormatUs(s.p50_us).c_str(),
                  FormatUs(baseline->p50_us).c_str());
    }
  }
  auto find = [&](const char* name) -> const Summary* {
    for (const Summary& s : all) {
      if (s.name == name) return &s;
    }
    return nullptr;
  };
  bool cost_header = false;
  for (auto [with, without, target] :
       {std::tuple{"ToolCall/resident", "Policy/tool_call_resident_unenforced", 5.0},
        std::tuple{"Execute/fresh_warm_pool", "Policy/fresh_warm_pool_unenforced", -1.0}}) {
    const Summary* a = find(with);
    const Summary* b = find(without);
    if (a == nullptr || b == nullptr || b->p50_us <= 0) continue;
    if (!cost_header) {
      std::printf("\n== the policy's cost (strict, the default, against no rules) ==\n");
      cost_header = true;
    }
    double pct = 100.0 * (a->p50_us - b->p50_us) / b->p50_us;
    std::printf("%-26s p50 %s strict vs %s unenforced: %+.1f%%%s\n", with,
                FormatUs(a->p50_us).c_str(), FormatUs(b->p50_us).c_str(), pct,
                target > 0 ? absl::StrFormat(" (target <= %.0f%%: %s)", target,
                                             pct <= target ? "MET" : "MISSED")
                                 .c_str()
                           : "");
  }
  if (!Notes().empty()) std::printf("\n");
  for (const std::string& note : Notes()) std::printf("%s\n", note.c_str());
  std::printf(
      "\nTimes are wall clock per call on a shared, noisy machine; "
      "see docs/benchmarks.md.\n");
  std::fflush(stdout);
}

}  // namespace

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

void AddNote(std::string note) { Notes().push_back(std::move(note)); }

int BenchMain(int argc, char** argv, const char* title, void (*register_all)(const Flags&),
              void (*shutdown)()) {
  // A python3 child that dies before reading its stdin must not kill us.
  signal(SIGPIPE, SIG_IGN);
  benchmark::Initialize(&argc, argv);
  // Our own flag; Google Benchmark removed its own from argv.
  Flags flags;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--python=", 9) == 0) {
      flags.python = argv[i] + 9;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_all(flags);
  benchmark::RunSpecifiedBenchmarks();
  PrintSummary(title);
  shutdown();
  benchmark::Shutdown();
  return 0;
}

}  // namespace pyhost_bench

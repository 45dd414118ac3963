// A small C++ "agent loop" on pyhost: it registers three run(args) tools, answers a
// scripted sequence of tool calls the way an agent would (including a bad call),
// runs a snippet an LLM might have written in a fresh subinterpreter, and prints
// every answer with its timing.
//
//   ./build/examples/agent_loop [TOOLS_DIR]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "pyhost/host.h"

namespace {

using json = nlohmann::json;

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

struct Step {
  std::string tool;
  json args;
};

double Percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  return values[static_cast<size_t>(p * static_cast<double>(values.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  const std::string tools_dir = argc > 1 ? argv[1] : PYHOST_EXAMPLE_TOOLS_DIR;
  absl::StatusOr<std::unique_ptr<pyhost::Host>> host = pyhost::Host::Create({});
  if (!host.ok()) {
    std::cerr << "cannot start pyhost: " << host.status() << "\n";
    return 1;
  }
  std::printf("pyhost with Python %s\n\n", (*host)->python_version().c_str());

  // Trusted tools stay resident (lowest latency); the validator gets a fresh
  // interpreter per call, as untrusted tools should.
  struct {
    const char* name;
    pyhost::Isolation isolation;
  } tools[] = {{"text_processor", pyhost::Isolation::kResident},
               {"list_processor", pyhost::Isolation::kResident},
               {"email_validator", pyhost::Isolation::kFresh}};
  for (const auto& tool : tools) {
    std::string source = ReadFile(tools_dir + "/" + tool.name + ".py");
    pyhost::ToolOptions options;
    options.isolation = tool.isolation;
    absl::Status registered = (*host)->RegisterTool(tool.name, source, options);
    if (!registered.ok()) {
      std::cerr << "register " << tool.name << ": " << registered << "\n";
      return 1;
    }
    std::printf("registered %-16s (%s)\n", tool.name,
                std::string(pyhost::IsolationName(tool.isolation)).c_str());
  }

  const std::vector<Step> plan = {
      {"text_processor", {{"text", "pyhost runs Python tools in microseconds"}}},
      {"list_processor", {{"items", {3, 1, 4, 1, 5, 9, 2, 6}}, {"operation", "mean"}}},
      {"list_processor", {{"items", {3, 1, 4}}, {"operation", "median"}}},  // tool says no
      {"email_validator", {{"email", "agent@example.com"}}},
      {"email_validator", {{"address", "typo in the key"}}},  // raises KeyError
      {"text_processor", json::object()},
      {"web_search", {{"q", "not registered"}}},  // no such tool
  };
  std::printf("\n-- tool calls --\n");
  for (const Step& step : plan) {
    absl::StatusOr<pyhost::ToolCallResult> call = (*host)->CallTool(step.tool, step.args);
    if (!call.ok()) {
      std::printf("%-16s -> host error: %s\n", step.tool.c_str(),
                  std::string(call.status().message()).c_str());
      continue;
    }
    std::printf("%-16s %8.1f us  %s\n", step.tool.c_str(), call->stats.wall_us,
                call->envelope.dump().c_str());
  }

  std::printf("\n-- a snippet in a fresh subinterpreter --\n");
  pyhost::ExecRequest request;
  request.code = R"(
import collections, json
words = args["text"].lower().split()
top = collections.Counter(words).most_common(3)
print(f"{len(words)} words, {len(set(words))} distinct")
result = {"top": [{"word": w, "count": c} for w, c in top]}
)";
  request.args = {{"text", "the cat and the dog and the bird saw the cat"}};
  absl::StatusOr<pyhost::ExecResult> run = (*host)->Execute(request);
  if (!run.ok()) {
    std::cerr << "execute: " << run.status() << "\n";
    return 1;
  }
  std::printf("%s", run->stdout_stream.text.c_str());
  std::printf("result %s in %.1f us (interpreter %ld)\n", run->result.dump().c_str(),
              run->stats.wall_us, static_cast<long>(run->stats.interpreter_id));

  std::printf("\n-- 2000 resident calls of text_processor --\n");
  std::vector<double> latencies;
  for (int i = 0; i < 2000; ++i) {
    auto start = std::chrono::steady_clock::now();
    absl::StatusOr<pyhost::ToolCallResult> call =
        (*host)->CallTool("text_processor", {{"text", "call number " + std::to_string(i)}});
    latencies.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
    if (!call.ok() || call->envelope["ok"] != true) {
      std::cerr << "call " << i << " failed\n";
      return 1;
    }
  }
  std::printf("p50 %.1f us, p99 %.1f us (C++ json args to C++ json envelope)\n",
              Percentile(latencies, 0.5), Percentile(latencies, 0.99));
  return run->ok ? 0 : 1;
}

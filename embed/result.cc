#include "pyhost/result.h"

#include "absl/strings/str_cat.h"

namespace pyhost {

using json = nlohmann::json;

absl::string_view IsolationName(Isolation isolation) {
  switch (isolation) {
    case Isolation::kFresh:
      return "fresh";
    case Isolation::kResident:
      return "resident";
    case Isolation::kProcess:
      return "process";
  }
  return "unknown";
}

absl::StatusOr<Isolation> ParseIsolation(absl::string_view name) {
  for (Isolation isolation : {Isolation::kFresh, Isolation::kResident, Isolation::kProcess}) {
    if (name == IsolationName(isolation)) return isolation;
  }
  if (name == "tool") return Isolation::kResident;  // its old name, still accepted
  return absl::InvalidArgumentError(
      absl::StrCat("unknown isolation '", name, "' (expected fresh, resident or process)"));
}

json ExecError::ToJson() const {
  return json{{"type", type},
              {"message", message},
              {"line", line},
              {"traceback", traceback},
              {"hint", hint}};
}

json ExecStats::ToJson() const {
  return json{{"isolation", std::string(IsolationName(isolation))},
              {"policy", policy},
              {"wall_us", wall_us},
              {"cpu_us", cpu_us},
              {"wait_us", wait_us},
              {"interpreter_id", interpreter_id},
              {"limits", LimitsToJson(limits)},
              {"peak_memory_bytes", peak_memory_bytes},
              {"limit_hit", limit_hit.empty() ? json(nullptr) : json(limit_hit)},
              {"quarantined", quarantined},
              {"rerouted", rerouted.empty() ? json(nullptr) : json(rerouted)},
              {"process", process}};
}

json ExecResult::ToJson() const {
  return json{{"ok", ok},
              {"outcome", std::string(OutcomeName(outcome))},
              {"stdout", stdout_stream.text},
              {"stderr", stderr_stream.text},
              {"stdout_truncated", stdout_stream.truncated},
              {"stderr_truncated", stderr_stream.truncated},
              {"result", result},
              {"error", error ? error->ToJson() : json(nullptr)},
              {"output_dir", output.dir},
              {"output_files", output.files},
              {"stats", stats.ToJson()}};
}

}  // namespace pyhost

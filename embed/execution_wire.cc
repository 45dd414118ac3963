#include "embed/execution_wire.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "embed/executions.h"

namespace pyhost {

using json = nlohmann::json;

namespace {

absl::Status Bad(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("the worker's message: ", what));
}

json LimitsWire(const Limits& limits) { return LimitsToJson(limits); }

absl::StatusOr<Limits> LimitsFromWire(const json& wire) {
  if (!wire.is_object()) return Bad("limits are not an object");
  Limits limits;
  for (auto [name, field] :
       {std::pair{"timeout_ms", &Limits::timeout_ms}, std::pair{"cpu_ms", &Limits::cpu_ms},
        std::pair{"memory_mb", &Limits::memory_mb}}) {
    auto it = wire.find(name);
    if (it == wire.end()) continue;
    if (!it->is_number_integer()) return Bad(absl::StrCat("limit ", name, " is not an integer"));
    limits.*field = it->get<int64_t>();
  }
  return limits;
}

// The policy's JSON with every list field replaced, so PolicyFromJson remakes it
// exactly (not added to a profile's lists).
json PolicyWire(const Policy& policy) {
  json wire = policy.ToJson();
  wire["replace"] = PolicyListFields();
  return wire;
}

absl::StatusOr<Outcome> OutcomeFromWire(const json& wire) {
  if (!wire.is_string()) return Bad("the outcome is not a string");
  for (int i = 0; i <= static_cast<int>(Outcome::kHostError); ++i) {
    if (OutcomeName(static_cast<Outcome>(i)) == wire.get_ref<const std::string&>()) {
      return static_cast<Outcome>(i);
    }
  }
  return Bad(absl::StrCat("unknown outcome ", wire.dump()));
}

absl::Status StreamFromWire(const json& wire, const char* name, CapturedStream& stream) {
  auto it = wire.find(name);
  if (it == wire.end() || !it->is_object() || !it->contains("text") || !(*it)["text"].is_string() ||
      !it->contains("truncated") || !(*it)["truncated"].is_boolean()) {
    return Bad(absl::StrCat(name, " is not {text, truncated}"));
  }
  stream.text = (*it)["text"].get<std::string>();
  stream.truncated = (*it)["truncated"].get<bool>();
  return absl::OkStatus();
}

}  // namespace

json RequestToWire(const ExecutionSettings& settings, const Execution& execution,
                   const std::string& dir) {
  return json{{"policy", PolicyWire(*settings.policy)},
              {"limits", LimitsWire(settings.limits)},
              {"max_output_bytes", settings.max_output_bytes},
              {"extra_network", settings.extra_network},
              {"dir", dir},
              {"execution", execution.WireInputs()}};
}

absl::StatusOr<std::unique_ptr<WireRequest>> RequestFromWire(const json& wire) {
  if (!wire.is_object()) return Bad("the request is not an object");
  auto request = std::make_unique<WireRequest>();
  absl::StatusOr<Policy> policy = PolicyFromJson(wire.value("policy", json()));
  if (!policy.ok()) return policy.status();
  request->policy = *std::move(policy);
  request->settings.policy = &request->policy;
  absl::StatusOr<Limits> limits = LimitsFromWire(wire.value("limits", json()));
  if (!limits.ok()) return limits.status();
  request->settings.limits = *limits;
  request->settings.max_output_bytes = wire.value("max_output_bytes", size_t{0});
  request->settings.extra_network = wire.value("extra_network", std::vector<std::string>());
  request->dir = wire.value("dir", "");
  absl::StatusOr<std::unique_ptr<Execution>> execution =
      ExecutionFromWire(wire.value("execution", json()));
  if (!execution.ok()) return execution.status();
  request->execution = *std::move(execution);
  return request;
}

json AnswerToWire(const Answer& answer) {
  return json{
      {"outcome", std::string(OutcomeName(answer.outcome))},
      {"stdout",
       {{"text", answer.stdout_stream.text}, {"truncated", answer.stdout_stream.truncated}}},
      {"stderr",
       {{"text", answer.stderr_stream.text}, {"truncated", answer.stderr_stream.truncated}}},
      {"cpu_us", answer.stats.cpu_us},
      {"peak_memory_bytes", answer.stats.peak_memory_bytes},
      {"interpreter_id", answer.stats.interpreter_id}};
}

absl::Status AnswerFromWire(const json& wire, Answer& answer) {
  if (!wire.is_object()) return Bad("the answer is not an object");
  absl::StatusOr<Outcome> outcome = OutcomeFromWire(wire.value("outcome", json()));
  if (!outcome.ok()) return outcome.status();
  if (absl::Status s = StreamFromWire(wire, "stdout", answer.stdout_stream); !s.ok()) return s;
  if (absl::Status s = StreamFromWire(wire, "stderr", answer.stderr_stream); !s.ok()) return s;
  if (!wire.contains("cpu_us") || !wire["cpu_us"].is_number()) return Bad("cpu_us is not a number");
  for (const char* figure : {"peak_memory_bytes", "interpreter_id"}) {
    if (!wire.contains(figure) || !wire[figure].is_number_integer()) {
      return Bad(absl::StrCat(figure, " is not an integer"));
    }
  }
  answer.outcome = *outcome;
  answer.stats.cpu_us = wire["cpu_us"].get<double>();
  answer.stats.peak_memory_bytes = wire["peak_memory_bytes"].get<int64_t>();
  answer.stats.interpreter_id = wire["interpreter_id"].get<int64_t>();
  return absl::OkStatus();
}

absl::StatusOr<ExecError> ErrorFromWire(const json& wire) {
  if (!wire.is_object()) return Bad("the error is not an object");
  ExecError error;
  for (auto [name, field] :
       {std::pair{"type", &ExecError::type}, std::pair{"message", &ExecError::message},
        std::pair{"traceback", &ExecError::traceback}, std::pair{"hint", &ExecError::hint}}) {
    if (!wire.contains(name) || !wire[name].is_string()) {
      return Bad(absl::StrCat("error.", name, " is not a string"));
    }
    error.*field = wire[name].get<std::string>();
  }
  if (!wire.contains("line") || !wire["line"].is_number_integer()) {
    return Bad("error.line is not an integer");
  }
  error.line = wire["line"].get<int>();
  return error;
}

}  // namespace pyhost

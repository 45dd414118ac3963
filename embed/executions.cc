#include "embed/executions.h"

#include <optional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "bindings/check.h"
#include "embed/execution_wire.h"

namespace pyhost {
namespace {

// A context that could not be entered, as an answer: interrupted while the
// environment was set (Cancelled), or pyhost's failure.
Failure ContextFailure(const absl::Status& why) {
  bool interrupted = absl::IsCancelled(why);
  return Failure{
      interrupted ? Outcome::kInterrupted : Outcome::kHostError,
      ExecError{std::string(interrupted ? error_type::kKeyboardInterrupt : error_type::kHost),
                std::string(why.message())}};
}

// What a detached execution owns: the inputs it was made from, and its answer. A
// base (initialized first) of the owning executions below.
struct SnippetStorage {
  ExecRequest request;
  ExecResult result;
};
class OwnedSnippet : private SnippetStorage, public SnippetExecution {
 public:
  explicit OwnedSnippet(const ExecRequest& copied)
      : SnippetStorage{copied, {}}, SnippetExecution(request, result) {}
};

struct ToolCallStorage {
  CompiledTool tool;
  nlohmann::json args;
  ToolCallResult result;
};
class OwnedToolCall : private ToolCallStorage, public ToolCallExecution {
 public:
  OwnedToolCall(const CompiledTool& copied, const nlohmann::json& args)
      : ToolCallStorage{copied, args, {}}, ToolCallExecution(tool, nullptr, this->args, result) {}
};

}  // namespace

std::unique_ptr<Execution> SnippetExecution::Detached() const {
  return std::make_unique<OwnedSnippet>(request_);
}

void SnippetExecution::Adopt(Execution& detached) {
  result_ = std::move(static_cast<SnippetExecution&>(detached).result_);
}

std::unique_ptr<Execution> ToolLoadExecution::Detached() const {
  return std::make_unique<ToolLoadExecution>(name_, source_);
}

void ToolLoadExecution::Abandon(const Failure& failure) {
  answer_.outcome = failure.outcome;
  error_ = failure.error;
}

void ToolLoadExecution::Adopt(Execution& detached) {
  auto& done = static_cast<ToolLoadExecution&>(detached);
  answer_ = std::move(done.answer_);
  context_status_ = std::move(done.context_status_);
  error_ = std::move(done.error_);
  compiled_ = std::move(done.compiled_);
  // Not the module: it lived in the detached run's fresh interpreter, now gone.
}

std::unique_ptr<Execution> ToolCallExecution::Detached() const {
  PYHOST_CHECK(module_ == nullptr, "a resident tool call is detached");
  return std::make_unique<OwnedToolCall>(tool_, args_);
}

void ToolCallExecution::Adopt(Execution& detached) {
  result_ = std::move(static_cast<ToolCallExecution&>(detached).result_);
}

void SnippetExecution::Run(const ExecutionSettings& settings, Interpreter& interp,
                           const ExecutionContext& context, Cancellation& cancellation) {
  RunSnippet(interp, request_, settings.max_output_bytes, context.Globals(), result_,
             &cancellation);
}

void SnippetExecution::Fail(const absl::Status& why) { Abandon(ContextFailure(why)); }

void SnippetExecution::Abandon(const Failure& failure) {
  result_.outcome = failure.outcome;
  result_.ok = false;
  result_.error = failure.error;
}

void ToolLoadExecution::Run(const ExecutionSettings&, Interpreter& interp,
                            const ExecutionContext& context, Cancellation& cancellation) {
  std::optional<Failure> failure = CompileTool(interp, name_, source_, compiled_);
  if (!failure) {
    failure = LoadToolModule(interp, compiled_, context.Globals(), module_, &cancellation);
  }
  answer_.outcome = failure ? failure->outcome : Outcome::kOk;
  if (failure) error_ = std::move(failure->error);
}

absl::Status ToolLoadExecution::status() const {
  if (!context_status_.ok()) return context_status_;
  if (!error_) return absl::OkStatus();
  std::string where = error_->line > 0 ? absl::StrCat(" at line ", error_->line) : "";
  std::string hint = error_->hint.empty() ? "" : absl::StrCat(" (hint: ", error_->hint, ")");
  return absl::InvalidArgumentError(
      absl::StrCat("tool '", name_, "': ", error_->type, where, ": ", error_->message, hint));
}

void ToolCallExecution::Run(const ExecutionSettings& settings, Interpreter& interp,
                            const ExecutionContext& context, Cancellation& cancellation) {
  if (module_ != nullptr) {
    CallToolRun(interp, tool_, *module_, args_, /*isolate_globals=*/true, settings.max_output_bytes,
                result_, &cancellation);
    return;
  }
  ToolModule module;
  if (std::optional<Failure> failure =
          LoadToolModule(interp, tool_, context.Globals(), module, &cancellation)) {
    result_.outcome = failure->outcome;
    result_.envelope = ErrorEnvelope(failure->error);
    return;
  }
  CallToolRun(interp, tool_, module, args_, /*isolate_globals=*/false, settings.max_output_bytes,
              result_, &cancellation);
}

void ToolCallExecution::Fail(const absl::Status& why) { Abandon(ContextFailure(why)); }

void ToolCallExecution::Abandon(const Failure& failure) {
  result_.outcome = failure.outcome;
  result_.envelope = ErrorEnvelope(failure.error);
}

}  // namespace pyhost

// Process isolation's side of each execution (execution_wire.h).
namespace pyhost {
namespace {

using json = nlohmann::json;

absl::Status BadWire(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("the worker's message: ", what));
}

json ToolWire(const CompiledTool& tool) {
  return json{{"name", tool.name},
              {"filename", tool.filename},
              {"source", tool.source},
              {"marshaled_code", absl::Base64Escape(tool.marshaled_code)}};
}

absl::StatusOr<CompiledTool> ToolFromWire(const json& wire) {
  CompiledTool tool;
  for (auto [name, field] :
       {std::pair{"name", &CompiledTool::name}, std::pair{"filename", &CompiledTool::filename},
        std::pair{"source", &CompiledTool::source},
        std::pair{"marshaled_code", &CompiledTool::marshaled_code}}) {
    if (!wire.is_object() || !wire.contains(name) || !wire[name].is_string()) {
      return BadWire(absl::StrCat("tool.", name, " is not a string"));
    }
    tool.*field = wire[name].get<std::string>();
  }
  std::string code;
  if (!absl::Base64Unescape(tool.marshaled_code, &code)) return BadWire("tool code is not base64");
  tool.marshaled_code = std::move(code);
  return tool;
}

// An optional ExecError: null, or its JSON.
absl::StatusOr<std::optional<ExecError>> OptionalErrorFromWire(const json& wire) {
  if (wire.is_null()) return std::optional<ExecError>();
  absl::StatusOr<ExecError> error = ErrorFromWire(wire);
  if (!error.ok()) return error.status();
  return std::optional<ExecError>(*std::move(error));
}

}  // namespace

json SnippetExecution::WireInputs() const {
  return json{{"kind", "snippet"}, {"code", request_.code}, {"args", request_.args}};
}

json SnippetExecution::WireAnswer() const {
  json wire = AnswerToWire(result_);
  wire["ok"] = result_.ok;
  wire["result"] = result_.result;
  wire["error"] = result_.error ? result_.error->ToJson() : json(nullptr);
  return wire;
}

absl::Status SnippetExecution::AdoptWireAnswer(const json& wire) {
  if (absl::Status s = AnswerFromWire(wire, result_); !s.ok()) return s;
  absl::StatusOr<std::optional<ExecError>> error =
      OptionalErrorFromWire(wire.value("error", json()));
  if (!error.ok()) return error.status();
  result_.error = *std::move(error);
  result_.ok = result_.outcome == Outcome::kOk;
  // Typed reads only: a field of the wrong type is a bad answer, never an exception.
  const json ok = wire.value("ok", json());
  if (!ok.is_boolean() || result_.ok != ok.get<bool>() || result_.ok == result_.error.has_value()) {
    return BadWire("ok, outcome and error disagree");
  }
  result_.result = wire.value("result", json());
  return absl::OkStatus();
}

json ToolLoadExecution::WireInputs() const {
  return json{{"kind", "tool_load"}, {"name", name_}, {"source", source_}};
}

json ToolLoadExecution::WireAnswer() const {
  json wire = AnswerToWire(answer_);
  wire["error"] = error_ ? error_->ToJson() : json(nullptr);
  wire["context_error"] = context_status_.ok() ? json(nullptr) : json(context_status_.ToString());
  wire["tool"] = ToolWire(compiled_);
  return wire;
}

absl::Status ToolLoadExecution::AdoptWireAnswer(const json& wire) {
  if (absl::Status s = AnswerFromWire(wire, answer_); !s.ok()) return s;
  absl::StatusOr<std::optional<ExecError>> error =
      OptionalErrorFromWire(wire.value("error", json()));
  if (!error.ok()) return error.status();
  error_ = *std::move(error);
  if (const json context = wire.value("context_error", json()); context.is_string()) {
    context_status_ = absl::InternalError(context.get<std::string>());
  }
  if (answer_.outcome == Outcome::kOk) {
    absl::StatusOr<CompiledTool> tool = ToolFromWire(wire.value("tool", json()));
    if (!tool.ok()) return tool.status();
    if (tool->name != name_ || tool->source != source_) return BadWire("another tool was compiled");
    compiled_ = *std::move(tool);
  }
  return absl::OkStatus();
}

json ToolCallExecution::WireInputs() const {
  PYHOST_CHECK(module_ == nullptr, "a resident tool call crosses to a process");
  return json{{"kind", "tool_call"}, {"tool", ToolWire(tool_)}, {"args", args_}};
}

json ToolCallExecution::WireAnswer() const {
  json wire = AnswerToWire(result_);
  wire["envelope"] = result_.envelope;
  return wire;
}

absl::Status ToolCallExecution::AdoptWireAnswer(const json& wire) {
  if (absl::Status s = AnswerFromWire(wire, result_); !s.ok()) return s;
  const json envelope = wire.value("envelope", json());
  if (!envelope.is_object() || !envelope.contains("ok")) return BadWire("no envelope");
  result_.envelope = envelope;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Execution>> ExecutionFromWire(const json& wire) {
  const std::string kind = wire.is_object() ? wire.value("kind", "") : "";
  if (kind == "snippet") {
    ExecRequest request;
    if (!wire.contains("code") || !wire["code"].is_string()) return BadWire("no code");
    request.code = wire["code"].get<std::string>();
    request.args = wire.value("args", json::object());
    return std::unique_ptr<Execution>(std::make_unique<OwnedSnippet>(request));
  }
  if (kind == "tool_load") {
    if (!wire.contains("name") || !wire["name"].is_string() || !wire.contains("source") ||
        !wire["source"].is_string()) {
      return BadWire("a tool load without name and source");
    }
    return std::unique_ptr<Execution>(std::make_unique<ToolLoadExecution>(
        wire["name"].get<std::string>(), wire["source"].get<std::string>()));
  }
  if (kind == "tool_call") {
    absl::StatusOr<CompiledTool> tool = ToolFromWire(wire.value("tool", json()));
    if (!tool.ok()) return tool.status();
    return std::unique_ptr<Execution>(
        std::make_unique<OwnedToolCall>(*tool, wire.value("args", json::object())));
  }
  return BadWire(absl::StrCat("unknown execution kind '", kind, "'"));
}

}  // namespace pyhost

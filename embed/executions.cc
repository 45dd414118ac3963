#include "embed/executions.h"

#include "absl/strings/str_cat.h"
#include "bindings/check.h"

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

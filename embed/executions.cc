#include "embed/executions.h"

#include "absl/strings/str_cat.h"

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

}  // namespace

void SnippetExecution::Run(const ExecutionSettings& settings, Interpreter& interp,
                           const ExecutionContext& context, Cancellation& cancellation) {
  RunSnippet(interp, request_, settings.max_output_bytes, context.Globals(), result_,
             &cancellation);
}

void SnippetExecution::Fail(const absl::Status& why) {
  Failure failure = ContextFailure(why);
  result_.outcome = failure.outcome;
  result_.ok = false;
  result_.error = std::move(failure.error);
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

void ToolCallExecution::Fail(const absl::Status& why) {
  Failure failure = ContextFailure(why);
  result_.outcome = failure.outcome;
  result_.envelope = ErrorEnvelope(failure.error);
}

}  // namespace pyhost

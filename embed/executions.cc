#include "embed/executions.h"

namespace pyhost {

void SnippetExecution::Run(Interpreter& interp, const ExecutionContext& context,
                           Cancellation& cancellation) {
  RunSnippet(interp, request_, max_output_bytes_, context.Globals(), result_, &cancellation);
}

void SnippetExecution::Fail(Outcome outcome, ExecError error) {
  result_.outcome = outcome;
  result_.ok = false;
  result_.error = std::move(error);
}

void ToolLoadExecution::Run(Interpreter& interp, const ExecutionContext& context,
                            Cancellation& cancellation) {
  failure_ = CompileTool(interp, name_, source_, compiled_);
  if (!failure_) {
    failure_ = LoadToolModule(interp, compiled_, context.Globals(), module_, &cancellation);
  }
  if (failure_) answer_.outcome = failure_->outcome;
}

void ToolLoadExecution::Fail(Outcome outcome, ExecError error) {
  answer_.outcome = outcome;
  failure_ = Failure{outcome, std::move(error)};
}

void ToolCallExecution::Run(Interpreter& interp, const ExecutionContext& context,
                            Cancellation& cancellation) {
  if (module_ != nullptr) {
    CallToolRun(interp, tool_, *module_, args_, /*isolate_globals=*/true, max_output_bytes_,
                result_, &cancellation);
    return;
  }
  ToolModule module;
  if (std::optional<Failure> failure =
          LoadToolModule(interp, tool_, context.Globals(), module, &cancellation)) {
    Fail(failure->outcome, std::move(failure->error));
    return;
  }
  CallToolRun(interp, tool_, module, args_, /*isolate_globals=*/false, max_output_bytes_, result_,
              &cancellation);
}

void ToolCallExecution::Fail(Outcome outcome, ExecError error) {
  result_.outcome = outcome;
  result_.envelope = ErrorEnvelope(error);
}

}  // namespace pyhost

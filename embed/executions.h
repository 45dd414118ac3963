// The three things a request can run once an isolation mode has entered an
// interpreter (isolation.h): a snippet, a tool's load (its registration), a tool call.
// Each adapts the runner (runner.h) to the Execution interface and fills its answer.
//
//   ExecResult result;
//   SnippetExecution snippet(request, result);
//   absl::Status ran = isolations.Run(mode, settings, snippet);  // settings: the caps
#ifndef PYHOST_EMBED_EXECUTIONS_H_
#define PYHOST_EMBED_EXECUTIONS_H_

#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "embed/isolation.h"
#include "embed/runner.h"

namespace pyhost {

class SnippetExecution : public Execution {
 public:
  // `request` and `result` outlive the execution.
  SnippetExecution(const ExecRequest& request, ExecResult& result)
      : request_(request), result_(result) {}
  void Run(const ExecutionSettings& settings, Interpreter& interp, const ExecutionContext& context,
           Cancellation& cancellation) override;
  void Fail(const absl::Status& why) override;
  void Abandon(const Failure& failure) override;
  Answer& answer() override { return result_; }
  std::unique_ptr<Execution> Detached() const override;
  void Adopt(Execution& detached) override;
  nlohmann::json WireInputs() const override;
  nlohmann::json WireAnswer() const override;
  absl::Status AdoptWireAnswer(const nlohmann::json& wire) override;

 private:
  const ExecRequest& request_;
  ExecResult& result_;
};

// Compiles a tool and runs its module body (under the tool's policy: it is the tool's
// code) so that what is wrong with it is reported at registration. The module stays
// in the interpreter the mode chose (a resident tool's own).
class ToolLoadExecution : public Execution {
 public:
  ToolLoadExecution(absl::string_view name, absl::string_view source)
      : name_(name), source_(source) {}
  void Run(const ExecutionSettings& settings, Interpreter& interp, const ExecutionContext& context,
           Cancellation& cancellation) override;
  void Fail(const absl::Status& why) override { context_status_ = why; }
  void Abandon(const Failure& failure) override;
  bool ReportsOutputs() const override { return false; }
  Answer& answer() override { return answer_; }
  std::unique_ptr<Execution> Detached() const override;
  void Adopt(Execution& detached) override;
  nlohmann::json WireInputs() const override;
  nlohmann::json WireAnswer() const override;
  absl::Status AdoptWireAnswer(const nlohmann::json& wire) override;

  // OK when the tool loaded. The context's own Status when it could not be entered;
  // InvalidArgument naming the tool, the error and its line when the tool did not
  // compile or load (whatever the error's outcome: it is the tool's source that
  // cannot be registered).
  absl::Status status() const;
  CompiledTool& compiled() { return compiled_; }
  const ToolModule& module() const { return module_; }

 private:
  const std::string name_;
  const std::string source_;
  Answer answer_;
  absl::Status context_status_;
  std::optional<ExecError> error_;
  CompiledTool compiled_;
  ToolModule module_;
};

// Calls a tool's run(args). `module`: the tool's module loaded in the interpreter the
// mode enters (a resident tool: its globals are put back after the call), or null to
// load the compiled tool afresh in it (a fresh tool).
class ToolCallExecution : public Execution {
 public:
  ToolCallExecution(const CompiledTool& tool, const ToolModule* module, const nlohmann::json& args,
                    ToolCallResult& result)
      : tool_(tool), module_(module), args_(args), result_(result) {}
  void Run(const ExecutionSettings& settings, Interpreter& interp, const ExecutionContext& context,
           Cancellation& cancellation) override;
  void Fail(const absl::Status& why) override;
  void Abandon(const Failure& failure) override;
  Answer& answer() override { return result_; }
  // Null `module` only: a resident tool's module cannot leave its interpreter.
  std::unique_ptr<Execution> Detached() const override;
  void Adopt(Execution& detached) override;
  // A fresh tool's call only (null `module`).
  nlohmann::json WireInputs() const override;
  nlohmann::json WireAnswer() const override;
  absl::Status AdoptWireAnswer(const nlohmann::json& wire) override;

 private:
  const CompiledTool& tool_;
  const ToolModule* module_;
  const nlohmann::json& args_;
  ToolCallResult& result_;
};

// The execution a process-isolation child runs, remade from WireInputs(): it owns its
// inputs and its answer. InvalidArgument naming what is wrong with `wire`.
absl::StatusOr<std::unique_ptr<Execution>> ExecutionFromWire(const nlohmann::json& wire);

}  // namespace pyhost

#endif  // PYHOST_EMBED_EXECUTIONS_H_

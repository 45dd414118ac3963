// The three things a request can run once an isolation mode has entered an
// interpreter (isolation.h): a snippet, a tool's load (its registration), a tool call.
// Each adapts the runner (runner.h) to the Execution interface and fills its answer.
//
//   ExecResult result;
//   SnippetExecution snippet(request, result);
//   absl::Status ran = isolations.Run(mode, settings, snippet);
#ifndef PYHOST_EMBED_EXECUTIONS_H_
#define PYHOST_EMBED_EXECUTIONS_H_

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "embed/isolation.h"
#include "embed/runner.h"

namespace pyhost {

class SnippetExecution : public Execution {
 public:
  // `request` and `result` outlive the execution.
  SnippetExecution(const ExecRequest& request, size_t max_output_bytes, ExecResult& result)
      : request_(request), max_output_bytes_(max_output_bytes), result_(result) {}
  void Run(Interpreter& interp, const ExecutionContext& context,
           Cancellation& cancellation) override;
  void Fail(Outcome outcome, ExecError error) override;
  Answer& answer() override { return result_; }

 private:
  const ExecRequest& request_;
  const size_t max_output_bytes_;
  ExecResult& result_;
};

// Compiles a tool and runs its module body (under the tool's policy: it is the tool's
// code) so that what is wrong with it is reported at registration. The module stays
// in the interpreter the mode chose (a resident tool's own).
class ToolLoadExecution : public Execution {
 public:
  ToolLoadExecution(absl::string_view name, absl::string_view source)
      : name_(name), source_(source) {}
  void Run(Interpreter& interp, const ExecutionContext& context,
           Cancellation& cancellation) override;
  void Fail(Outcome outcome, ExecError error) override;
  Answer& answer() override { return answer_; }

  // Why the tool did not load; nullopt when it did.
  const std::optional<Failure>& failure() const { return failure_; }
  CompiledTool& compiled() { return compiled_; }
  const ToolModule& module() const { return module_; }

 private:
  const std::string name_;
  const std::string source_;
  Answer answer_;
  std::optional<Failure> failure_;
  CompiledTool compiled_;
  ToolModule module_;
};

// Calls a tool's run(args). `module`: the tool's module loaded in the interpreter the
// mode enters (a resident tool: its globals are put back after the call), or null to
// load the compiled tool afresh in it (a fresh tool).
class ToolCallExecution : public Execution {
 public:
  ToolCallExecution(const CompiledTool& tool, const ToolModule* module, const nlohmann::json& args,
                    size_t max_output_bytes, ToolCallResult& result)
      : tool_(tool), module_(module), args_(args), max_output_bytes_(max_output_bytes),
        result_(result) {}
  void Run(Interpreter& interp, const ExecutionContext& context,
           Cancellation& cancellation) override;
  void Fail(Outcome outcome, ExecError error) override;
  Answer& answer() override { return result_; }

 private:
  const CompiledTool& tool_;
  const ToolModule* module_;
  const nlohmann::json& args_;
  const size_t max_output_bytes_;
  ToolCallResult& result_;
};

}  // namespace pyhost

#endif  // PYHOST_EMBED_EXECUTIONS_H_

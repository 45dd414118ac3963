#include "embed/execution_context.h"

#include <stdlib.h>
#include <unistd.h>

#include <pybind11/pytypes.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "bindings/json_convert.h"
#include "bindings/python_error.h"

namespace pyhost {

namespace py = pybind11;

absl::StatusOr<std::unique_ptr<ExecutionContext>> ExecutionContext::Enter(
    Interpreter& interp, const Policy& policy, const ExecutionSetup& setup,
    Cancellation* cancellation) {
  std::unique_ptr<ExecutionContext> context(new ExecutionContext(interp, setup.dirs));
  if (policy.work_dir) {
    std::string dir = setup.given_dir;
    if (setup.dirs != nullptr) {
      absl::StatusOr<std::string> taken = setup.dirs->Take();
      if (!taken.ok()) return taken.status();
      dir = context->base_dir_ = *std::move(taken);
    }
    if (dir.empty()) return absl::InternalError("no execution directories configured");
    context->work_dir_ = dir + "/work";
    context->output_dir_ = dir + "/output";
  }
  nlohmann::json environ = nlohmann::json::object();
  for (const std::string& name : policy.env) {
    if (const char* value = getenv(name.c_str())) environ[name] = value;
  }
  if (!context->work_dir_.empty()) {
    environ["TMPDIR"] = context->work_dir_;
    environ["HOME"] = context->work_dir_;
  }
  // Activate first: a resident interpreter's os.environ may have been replaced by an
  // earlier execution, so setting it runs code, which must run under this policy.
  interp.sandbox().Activate(
      {&policy, context->work_dir_, context->output_dir_, setup.extra_network});
  absl::StatusOr<py::object> values = JsonToPython(environ);
  if (!values.ok()) return values.status();
  bool set;
  {
    Cancellation::UserCode setting(cancellation);
    set = interp.support().SetEnviron(values->ptr());
  }
  if (!set) {
    if (cancellation != nullptr && cancellation->cancelled()) {
      PyErr_Clear();
      return absl::CancelledError("interrupted before the code started");
    }
    return StatusFromPythonError("setting the execution's environment");
  }
  interp.sandbox().ForgetEnvironChanges();  // installing it is not the code's change
  return context;
}

ExecutionContext::~ExecutionContext() {
  interp_.sandbox().Deactivate();
  if (!base_dir_.empty()) dirs_->Return(base_dir_, outputs_reported_);
}

nlohmann::json ExecutionContext::Globals() const {
  if (work_dir_.empty()) return nlohmann::json::object();
  return {{"WORK_DIR", work_dir_}, {"OUTPUT_DIR", output_dir_}};
}

std::vector<std::string> ExecutionContext::OutputFiles() {
  if (output_dir_.empty() || !interp_.sandbox().output_written()) return {};
  std::vector<std::string> files = RegularFilesUnder(output_dir_);
  outputs_reported_ = outputs_reported_ || !files.empty();
  return files;
}

}  // namespace pyhost

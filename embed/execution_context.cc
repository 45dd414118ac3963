#include "embed/execution_context.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <pybind11/pytypes.h>

#include "absl/strings/str_cat.h"
#include "bindings/json_convert.h"
#include "bindings/python_error.h"

namespace pyhost {

namespace fs = std::filesystem;
namespace py = pybind11;

std::string DefaultWorkRoot() {
  const char* tmp = getenv("TMPDIR");
  return absl::StrCat(tmp != nullptr && tmp[0] == '/' ? tmp : "/tmp", "/pyhost-", getpid());
}

absl::StatusOr<std::unique_ptr<ExecutionContext>> ExecutionContext::Enter(
    Interpreter& interp, const Policy& policy, const ExecutionSetup& setup) {
  std::unique_ptr<ExecutionContext> context(new ExecutionContext(interp.sandbox()));
  if (policy.work_dir) {
    std::error_code error;
    fs::create_directories(setup.work_root, error);
    std::string pattern = absl::StrCat(setup.work_root, "/exec-XXXXXX");
    if (error || mkdtemp(pattern.data()) == nullptr) {
      return absl::UnavailableError(
          absl::StrCat("cannot create an execution directory under '", setup.work_root, "'"));
    }
    context->base_dir_ = pattern;
    context->work_dir_ = pattern + "/work";
    context->output_dir_ = pattern + "/output";
    if (!fs::create_directory(context->work_dir_, error) ||
        !fs::create_directory(context->output_dir_, error)) {
      return absl::UnavailableError(absl::StrCat("cannot create directories in '", pattern, "'"));
    }
  }
  nlohmann::json environ = nlohmann::json::object();
  for (const std::string& name : policy.env) {
    if (const char* value = getenv(name.c_str())) environ[name] = value;
  }
  if (!context->work_dir_.empty()) {
    environ["TMPDIR"] = context->work_dir_;
    environ["HOME"] = context->work_dir_;
  }
  absl::StatusOr<py::object> values = JsonToPython(environ);
  if (!values.ok()) return values.status();
  auto set = py::reinterpret_steal<py::object>(PyObject_CallFunctionObjArgs(
      PyDict_GetItemString(interp.support(), "set_environ"), values->ptr(), nullptr));
  if (!set) return StatusFromPythonError("setting the execution's environment");
  interp.sandbox().Activate(
      {policy, context->work_dir_, context->output_dir_, setup.extra_network});
  return context;
}

ExecutionContext::~ExecutionContext() {
  sandbox_.Deactivate();
  if (base_dir_.empty()) return;
  std::error_code error;
  fs::remove_all(work_dir_, error);
  if (fs::is_empty(output_dir_, error)) {
    fs::remove_all(base_dir_, error);
  }
}

nlohmann::json ExecutionContext::Globals() const {
  if (work_dir_.empty()) return nlohmann::json::object();
  return {{"WORK_DIR", work_dir_}, {"OUTPUT_DIR", output_dir_}};
}

std::vector<std::string> ExecutionContext::OutputFiles() const {
  std::vector<std::string> files;
  if (output_dir_.empty()) return files;
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(output_dir_, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    if (it->is_regular_file(error)) {
      files.push_back(fs::relative(it->path(), output_dir_, error).string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace pyhost

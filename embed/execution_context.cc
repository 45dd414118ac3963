#include "embed/execution_context.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <pybind11/pytypes.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "bindings/json_convert.h"
#include "bindings/python_error.h"

namespace pyhost {

namespace fs = std::filesystem;
namespace py = pybind11;

std::string DefaultWorkRoot() {
  // tmpfs: creating and removing an execution's directories takes ~70 us there, and
  // 0.5-10 ms on the disk behind /tmp on these machines (measured).
  if (access("/dev/shm", W_OK | X_OK) == 0) return absl::StrCat("/dev/shm/pyhost-", getpid());
  const char* tmp = getenv("TMPDIR");
  return absl::StrCat(tmp != nullptr && tmp[0] == '/' ? tmp : "/tmp", "/pyhost-", getpid());
}

absl::StatusOr<std::string> MakeExecutionDir(const std::string& root) {
  std::error_code error;
  fs::create_directories(root, error);
  std::string pattern = absl::StrCat(root, "/exec-XXXXXX");
  if (error || mkdtemp(pattern.data()) == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot create an execution directory under '", root, "'"));
  }
  if (!fs::create_directory(pattern + "/work", error) ||
      !fs::create_directory(pattern + "/output", error)) {
    return absl::UnavailableError(absl::StrCat("cannot create directories in '", pattern, "'"));
  }
  return pattern;
}

void TidyExecutionDir(const std::string& dir) {
  std::error_code error;
  fs::remove_all(dir + "/work", error);
  if (fs::is_empty(dir + "/output", error)) fs::remove_all(dir, error);
}

absl::StatusOr<std::unique_ptr<ExecutionContext>> ExecutionContext::Enter(
    Interpreter& interp, const Policy& policy, const ExecutionSetup& setup, bool one_shot) {
  std::unique_ptr<ExecutionContext> context(new ExecutionContext(interp));
  context->one_shot_ = one_shot;
  if (policy.work_dir) {
    std::string dir = interp.TakeSpareDir();
    if (dir.empty() || !absl::StartsWith(dir, setup.work_root + "/")) {
      if (!dir.empty()) interp.TidyAtEnd(std::move(dir));
      absl::StatusOr<std::string> made = MakeExecutionDir(setup.work_root);
      if (!made.ok()) return made.status();
      dir = *std::move(made);
    }
    context->base_dir_ = dir;
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
  interp_.sandbox().Deactivate();
  if (base_dir_.empty()) return;
  if (one_shot_) {
    interp_.TidyAtEnd(base_dir_);
  } else {
    TidyExecutionDir(base_dir_);
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

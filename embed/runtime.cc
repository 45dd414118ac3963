#include "embed/runtime.h"

#include <thread>

#include "absl/strings/str_cat.h"

namespace pyhost {
namespace {

absl::Status CheckStatus(PyStatus status, const char* what) {
  if (!PyStatus_Exception(status)) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(
      "Python initialization failed at ", what, ": ",
      status.err_msg != nullptr ? status.err_msg : "unknown error",
      status.func != nullptr ? absl::StrCat(" (", status.func, ")") : ""));
}

// Runs on its own thread; returns with the GIL released and no thread state current.
absl::StatusOr<Runtime*> Initialize() {
  if (Py_IsInitialized()) {
    return absl::FailedPreconditionError(
        "Python is already initialized in this process by someone other than pyhost");
  }
  PyConfig config;
  PyConfig_InitIsolatedConfig(&config);
  config.site_import = 0;
  config.install_signal_handlers = 0;
  config.write_bytecode = 0;
  config.parse_argv = 0;
  config.user_site_directory = 0;
  config.use_environment = 0;
  config.safe_path = 1;
  absl::Status status = CheckStatus(
      PyConfig_SetBytesString(&config, &config.home, PYHOST_PYTHON_HOME), "home");
  if (status.ok()) {
    status = CheckStatus(
        PyConfig_SetBytesString(&config, &config.program_name, "pyhost"), "program name");
  }
  if (status.ok()) status = CheckStatus(Py_InitializeFromConfig(&config), "startup");
  PyConfig_Clear(&config);
  if (!status.ok()) return status;

  std::string version = Py_GetVersion();  // "3.11.2 (main, ...) [GCC ...]"
  version.resize(version.find(' ') == std::string::npos ? version.size()
                                                         : version.find(' '));
  auto* runtime = new Runtime(PyInterpreterState_Main(), std::move(version));
  PyEval_SaveThread();
  return runtime;
}

}  // namespace

absl::StatusOr<Runtime*> Runtime::Get() {
  // A function-local static: initialized once, thread-safe, and deliberately leaked.
  static const absl::StatusOr<Runtime*>* const runtime = [] {
    absl::StatusOr<Runtime*> result;
    std::thread([&result] { result = Initialize(); }).join();
    return new absl::StatusOr<Runtime*>(std::move(result));
  }();
  return *runtime;
}

}  // namespace pyhost

// The process-wide CPython runtime: initialized once, never finalized.
//
//   absl::StatusOr<pyhost::Runtime*> runtime = pyhost::Runtime::Get();
//   if (!runtime.ok()) return runtime.status();
//
// Initialization uses an isolated PyConfig: no `site`, no PYTHON* environment
// variables, no user site-packages, no current directory on sys.path, no signal
// handlers (the host keeps its own), stdlib from the prefix pyhost was built against.
// It runs on a short-lived thread, so no caller thread is left holding the main
// interpreter's thread state (see thread_state.h for why that matters).
//
// Never finalized: Py_FinalizeEx with subinterpreters alive aborts, and a host that
// embeds Python keeps it for the life of the process.
// Not for: processes where something else already initialized Python (an error).
#ifndef PYHOST_EMBED_RUNTIME_H_
#define PYHOST_EMBED_RUNTIME_H_

#include <Python.h>

#include <string>

#include "absl/status/statusor.h"

namespace pyhost {

class Runtime {
 public:
  // Thread-safe; the first call initializes. A failed initialization is reported to
  // every caller, and not retried.
  static absl::StatusOr<Runtime*> Get();

  PyInterpreterState* main_interpreter() const { return main_; }
  // "3.11.2" etc.
  const std::string& python_version() const { return version_; }

  // Use Get(); public only for its initializer.
  Runtime(PyInterpreterState* main, std::string version)
      : main_(main), version_(std::move(version)) {}

 private:
  PyInterpreterState* const main_;
  const std::string version_;
};

}  // namespace pyhost

#endif  // PYHOST_EMBED_RUNTIME_H_

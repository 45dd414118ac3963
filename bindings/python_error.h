// Turning the Python error indicator into an absl::Status, for the host's own calls
// into Python (not for errors of user code: those become ExecError, see embed/runner.h).
//
//   if (PyObject_SetAttrString(sys, "stdout", w) != 0)
//     return pyhost::StatusFromPythonError("installing stdout capture");
//
// Thread-safety: requires the GIL. Uses only the C API (docs/architecture.md, "Pitfalls" 1).
#ifndef PYHOST_BINDINGS_PYTHON_ERROR_H_
#define PYHOST_BINDINGS_PYTHON_ERROR_H_

#include <Python.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace pyhost {

// Fetches and clears the current Python error; returns Internal("<context>: Type: msg").
// With no error set, still returns Internal naming the context.
absl::Status StatusFromPythonError(absl::string_view context);

// "Type: message" of an exception object, bounded; never raises.
std::string DescribeException(PyObject* exception);

}  // namespace pyhost

#endif  // PYHOST_BINDINGS_PYTHON_ERROR_H_

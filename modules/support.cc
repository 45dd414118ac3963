#include "modules/support.h"

#include <climits>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "bindings/check.h"
#include "bindings/py_string.h"
#include "bindings/python_error.h"
#include "bindings/thread_state.h"

namespace pyhost::modules {

// Generated from the files modules/CMakeLists.txt lists (cmake/EmbedPythonSources.cmake).
extern const char kErrorsSource[];
extern const char kStdinSource[];
extern const char kImportGateSource[];
extern const char kEnvironSource[];

namespace py = pybind11;

namespace {

constexpr char kFilenamePrefix[] = "<pyhost_support/";

// One file per concern, in load order. errors.py first: it imports difflib (and what
// difflib imports), which the helpers have always imported first; the others import
// only modules every interpreter has from its start (io, os, sys). So sys.modules
// keeps its order, which teardown clears in reverse (embed/interpreter.cc, Quiesce).
// No file uses another's names.
const SupportSource kEmbedded[] = {
    {"<pyhost_support/errors.py>", kErrorsSource},
    {"<pyhost_support/stdin.py>", kStdinSource},
    {"<pyhost_support/import_gate.py>", kImportGateSource},
    {"<pyhost_support/environ.py>", kEnvironSource},
};

// A str item of describe_error's dict, shown with what UTF-8 cannot encode escaped
// (an exception message may hold lone surrogates); "" when absent or not a str.
std::string TextItem(PyObject* dict, const char* key) {
  return DisplayText(PyDict_GetItemString(dict, key));
}

// An error if running `filename` unbound or rebound a name of `before` (the
// namespace as the earlier files left it): the files share one namespace, so one
// would silently replace another's.
absl::Status CheckNothingRebound(PyObject* before, PyObject* now, const char* filename) {
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(before, &pos, &key, &value)) {
    PyObject* current = PyDict_GetItemWithError(now, key);  // borrowed
    if (current != value) {
      PyErr_Clear();
      return absl::InternalError(absl::StrCat(filename, " rebinds ", DisplayText(key),
                                              ", which an earlier helper file bound"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Span<const SupportSource> EmbeddedSources() { return kEmbedded; }

bool IsSupportFilename(absl::string_view filename) {
  if (!absl::StartsWith(filename, kFilenamePrefix)) return false;
  for (const SupportSource& source : kEmbedded) {
    if (filename == source.filename) return true;
  }
  return false;
}

absl::StatusOr<Support> Support::Load(PyObject* builtins) {
  return Load(EmbeddedSources(), builtins);
}

absl::StatusOr<Support> Support::Load(absl::Span<const SupportSource> sources, PyObject* builtins) {
  PyThreadState* current = CurrentThreadStateOrNull();
  PYHOST_CHECK(current != nullptr, "pyhost's Python helpers are loaded with the GIL held");
  Support support;
  support.interp_ = current->interp;  // from here its objects are this interpreter's
  auto module = py::reinterpret_steal<py::object>(PyModule_New("_pyhost_support"));
  if (!module) return StatusFromPythonError("creating the support module");
  support.namespace_ = py::reinterpret_borrow<py::object>(PyModule_GetDict(module.ptr()));
  PyObject* ns = support.namespace_.ptr();
  if (PyDict_SetItemString(ns, "__builtins__", builtins) != 0) {
    return StatusFromPythonError("support module builtins");
  }
  for (const SupportSource& source : sources) {
    auto before = py::reinterpret_steal<py::object>(PyDict_Copy(ns));
    if (!before) return StatusFromPythonError("copying the support module's namespace");
    auto code = py::reinterpret_steal<py::object>(
        Py_CompileString(source.text, source.filename, Py_file_input));
    if (!code) return StatusFromPythonError(absl::StrCat("compiling ", source.filename));
    auto ran = py::reinterpret_steal<py::object>(PyEval_EvalCode(code.ptr(), ns, ns));
    if (!ran) return StatusFromPythonError(absl::StrCat("running ", source.filename));
    if (absl::Status kept = CheckNothingRebound(before.ptr(), ns, source.filename); !kept.ok()) {
      return kept;
    }
  }

  // Every helper the methods call, and the file that defines it.
  const struct {
    const char* name;
    const char* file;
    py::object Support::*slot;
  } helpers[] = {
      {"eof_stdin", "modules/stdin.py", &Support::eof_stdin_},
      {"install_import_gate", "modules/import_gate.py", &Support::install_import_gate_},
      {"set_environ", "modules/environ.py", &Support::set_environ_},
      {"describe_error", "modules/errors.py", &Support::describe_error_},
  };
  for (const auto& helper : helpers) {
    PyObject* found = PyDict_GetItemString(ns, helper.name);  // borrowed
    if (found == nullptr) {
      return absl::InternalError(absl::StrCat("pyhost's Python helper ", helper.name,
                                              " is missing (", helper.file, " defines it)"));
    }
    if (!PyCallable_Check(found)) {
      return absl::InternalError(absl::StrCat("pyhost's Python helper ", helper.name,
                                              " is not callable (", helper.file, ")"));
    }
    support.*(helper.slot) = py::reinterpret_borrow<py::object>(found);
  }
  return support;
}

Support::Support(Support&& other) noexcept
    : interp_(std::exchange(other.interp_, nullptr)),
      namespace_(std::move(other.namespace_)),
      eof_stdin_(std::move(other.eof_stdin_)),
      install_import_gate_(std::move(other.install_import_gate_)),
      set_environ_(std::move(other.set_environ_)),
      describe_error_(std::move(other.describe_error_)) {}

Support& Support::operator=(Support&& other) noexcept {
  if (this != &other) {
    Release();
    interp_ = std::exchange(other.interp_, nullptr);
    namespace_ = std::move(other.namespace_);
    eof_stdin_ = std::move(other.eof_stdin_);
    install_import_gate_ = std::move(other.install_import_gate_);
    set_environ_ = std::move(other.set_environ_);
    describe_error_ = std::move(other.describe_error_);
  }
  return *this;
}

Support::~Support() { Release(); }

void Support::Release() {
  if (interp_ == nullptr) return;  // holds nothing
  CheckInterpreter();
  describe_error_ = py::object();
  set_environ_ = py::object();
  install_import_gate_ = py::object();
  eof_stdin_ = py::object();
  namespace_ = py::object();
  interp_ = nullptr;
}

void Support::CheckInterpreter() const {
  PYHOST_CHECK(interp_ != nullptr, "pyhost's Python helpers are called once loaded, until cleared");
  PyThreadState* current = CurrentThreadStateOrNull();
  PYHOST_CHECK(current != nullptr && current->interp == interp_,
               "pyhost's Python helpers are called with the GIL held in their interpreter");
}

py::object Support::EofStdin() const {
  CheckInterpreter();
  return py::reinterpret_steal<py::object>(PyObject_CallNoArgs(eof_stdin_.ptr()));
}

bool Support::InstallImportGate(PyObject* check) const {
  CheckInterpreter();
  auto installed =
      py::reinterpret_steal<py::object>(PyObject_CallOneArg(install_import_gate_.ptr(), check));
  return static_cast<bool>(installed);
}

bool Support::SetEnviron(PyObject* values) const {
  CheckInterpreter();
  auto set = py::reinterpret_steal<py::object>(PyObject_CallOneArg(set_environ_.ptr(), values));
  return static_cast<bool>(set);
}

std::optional<ExecError> Support::DescribeError(PyObject* exception, absl::string_view filename,
                                                absl::string_view source, PyObject* args,
                                                PyObject* ns) const {
  CheckInterpreter();
  auto sources = py::reinterpret_steal<py::object>(PyDict_New());
  auto text = py::reinterpret_steal<py::object>(
      PyUnicode_DecodeUTF8(source.data(), static_cast<Py_ssize_t>(source.size()), "replace"));
  const std::string name(filename);
  if (!sources || !text || PyDict_SetItemString(sources.ptr(), name.c_str(), text.ptr()) != 0) {
    PyErr_Clear();
    return std::nullopt;
  }
  auto described = py::reinterpret_steal<py::object>(PyObject_CallFunctionObjArgs(
      describe_error_.ptr(), exception, sources.ptr(), args != nullptr ? args : Py_None,
      ns != nullptr ? ns : Py_None, nullptr));
  if (!described || !PyDict_Check(described.ptr())) {
    PyErr_Clear();
    return std::nullopt;
  }
  ExecError error;
  error.type = TextItem(described.ptr(), "type");
  error.message = TextItem(described.ptr(), "message");
  error.traceback = TextItem(described.ptr(), "traceback");
  error.hint = TextItem(described.ptr(), "hint");
  PyObject* line = PyDict_GetItemString(described.ptr(), "line");
  int overflow = 0;
  long number =
      line != nullptr && PyLong_Check(line) ? PyLong_AsLongAndOverflow(line, &overflow) : 0;
  if (overflow == 0 && number > 0 && number <= INT_MAX) error.line = static_cast<int>(number);
  PyErr_Clear();
  return error;
}

bool Support::Keep(const char* name, PyObject* object) {
  CheckInterpreter();
  return PyDict_SetItemString(namespace_.ptr(), name, object) == 0;
}

void Support::Clear() {
  CheckInterpreter();
  PyDict_Clear(namespace_.ptr());
  Release();
}

}  // namespace pyhost::modules

// pyhost's Python helpers in one interpreter (modules/*.py, embedded in the binary),
// as typed C++ calls. Each helper is looked up once, when the helpers are loaded: a
// missing one fails the loading (and so the interpreter's creation), naming it.
//
//   // At interpreter creation, GIL held in it, no policy in force:
//   absl::StatusOr<modules::Support> support = modules::Support::Load(PyEval_GetBuiltins());
//   if (!support.ok()) return support.status();
//   if (!support->SetEnviron(values)) return StatusFromPythonError("setting os.environ");
//
// The helper files run in one module namespace, "_pyhost_support", that is in no
// sys.modules (user code gets no name for it). Each file's code is compiled under a
// filename of its own, "<pyhost_support/NAME.py>" (IsSupportFilename): the audit hook
// trusts frames of those files as import machinery (audit_hooks/audit_hook.cc), and
// code may not compile or build code under a "<pyhost" name, nor load bytecode that
// claims one (audit_hooks/stdlib_bytecode.h). The files are loaded before the
// interpreter is hardened and prewarmed, with no policy in force, so what they import
// they import then; the error path runs later, under the code's policy.
//
// Thread-safety: Load and every method require the GIL held in the interpreter the
// helpers are (to be) loaded in; the methods check it (PYHOST_CHECK aborts), and so
// does the destructor of a Support that holds objects. Calls that may run the code's
// Python (SetEnviron once os.environ was replaced, DescribeError) are the caller's to
// run as user code (bindings/cancellation.h).
#ifndef PYHOST_MODULES_SUPPORT_H_
#define PYHOST_MODULES_SUPPORT_H_

#include <Python.h>

#include <optional>

#include <pybind11/pytypes.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "pyhost/result.h"

namespace pyhost::modules {

// One helper file: the filename its code is compiled under and its text.
struct SupportSource {
  const char* filename;  // "<pyhost_support/errors.py>" for modules/errors.py
  const char* text;
};

// The embedded helper files, in the order they are loaded (modules/support.cc says
// why that order).
absl::Span<const SupportSource> EmbeddedSources();

// Whether `filename` (a code object's co_filename) is one of the embedded helper
// files'. Any thread, no GIL needed.
bool IsSupportFilename(absl::string_view filename);

class Support {
 public:
  // Runs the embedded helper files in a new namespace whose builtins are `builtins`
  // (the interpreter's), then looks every helper up. An error names the file that
  // failed to compile or run, or the helper that is missing or not callable.
  static absl::StatusOr<Support> Load(PyObject* builtins);
  // The same with other files (tests). A file may not rebind a name an earlier file
  // bound (they share the namespace): that is an error naming the file and the name.
  static absl::StatusOr<Support> Load(absl::Span<const SupportSource> sources, PyObject* builtins);

  Support() = default;  // holds nothing; only a loaded one may be called
  ~Support();
  Support(Support&& other) noexcept;
  Support& operator=(Support&& other) noexcept;
  Support(const Support&) = delete;
  Support& operator=(const Support&) = delete;

  // Whether the helpers are loaded (and not cleared). Any thread.
  bool loaded() const { return interp_ != nullptr; }

  // The calls that can fail answer as the C API does: false (or a null object) with
  // the Python error set, for the caller to turn into a Status with what it was doing
  // (StatusFromPythonError) or to clear, once the code's Python it may have run is
  // over (a cancelled execution's error is not described).

  // stdin.py eof_stdin(): a new standard input at its end, as python3's with nothing
  // to read (input() raises EOFError, read() returns "").
  pybind11::object EofStdin() const;

  // import_gate.py install_import_gate(check): puts first on sys.meta_path a finder
  // that calls `check(name)` (pyhost's C function: raises ImportError or returns
  // None) for every module importlib looks for.
  [[nodiscard]] bool InstallImportGate(PyObject* check) const;

  // environ.py set_environ(values): makes os.environ exactly `values` (a dict of str;
  // the process's environment is untouched once hardened: os.putenv and os.unsetenv
  // are no-ops in a sandbox) and has tempfile recompute its directory.
  [[nodiscard]] bool SetEnviron(PyObject* values) const;

  // errors.py describe_error(exception, sources, args, namespace): the exception
  // raised by user code compiled as `filename` from `source` (decoded as UTF-8, bad
  // bytes replaced), as an ExecError: type, message, line, a traceback of that code's
  // frames only, and a hint (fed by `args` and `ns`, the globals the code ran in; both
  // may be null). nullopt if it could not be described; never leaves a Python error set.
  std::optional<ExecError> DescribeError(PyObject* exception, absl::string_view filename,
                                         absl::string_view source, PyObject* args,
                                         PyObject* ns) const;

  // Keeps `object` alive as long as the helpers, as the namespace's global `name`
  // (what pyhost makes for the interpreter and holds nowhere else: guards/hardening.cc).
  [[nodiscard]] bool Keep(const char* name, PyObject* object);

  // Teardown (embed/interpreter.h, Quiesce): empties the namespace (the code can reach
  // it through the import gate's class and hang its objects there) and drops the
  // helpers; nothing may be called after.
  void Clear();

 private:
  void CheckInterpreter() const;  // the GIL is held in interp_ (PYHOST_CHECK)
  void Release();                 // drops every object (checked first), holds nothing

  PyInterpreterState* interp_ = nullptr;
  pybind11::object namespace_;  // the module dict all helper files run in
  pybind11::object eof_stdin_;
  pybind11::object install_import_gate_;
  pybind11::object set_environ_;
  pybind11::object describe_error_;
};

}  // namespace pyhost::modules

#endif  // PYHOST_MODULES_SUPPORT_H_

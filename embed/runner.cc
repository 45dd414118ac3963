#include "embed/runner.h"

#include <algorithm>

#include <marshal.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "bindings/check.h"
#include "bindings/json_convert.h"
#include "bindings/python_error.h"
#include "bindings/thread_state.h"
#include "guards/execution_limits.h"
#include "guards/memory_budget.h"

namespace pyhost {
namespace {

namespace py = pybind11;
using json = nlohmann::json;

void CheckEntered(Interpreter& interp) {
  PyThreadState* current = CurrentThreadStateOrNull();
  PYHOST_CHECK(current != nullptr && current->interp == interp.state(),
               "the runner runs with the GIL held in its interpreter");
}

// How the pending exception ended the execution: once a limit stopped it, the limit's
// (whatever the code raised after, catching the stop); what a Cancellation raises
// (KeyboardInterrupt) once the execution was interrupted is the interruption's,
// whoever raised it; a MemoryError
// once the memory budget refused an allocation is the budget's; any other exception is
// the code's (also one the code raised after being stopped, catching it), as is a
// KeyboardInterrupt the code raises itself.
Outcome OutcomeOfPendingError(PyObject* type, Cancellation* cancellation,
                              std::optional<Cancellation::StopReason>& stop) {
  if (type == nullptr) return Outcome::kCodeError;
  if (cancellation != nullptr) {
    // A limit ended the execution, whatever the code raised once stopped (catching it).
    stop = cancellation->stop_reason();
    if (stop) return stop->outcome;
    if (cancellation->cancelled() && IsCancellationException(type)) return Outcome::kInterrupted;
  }
  const MemoryBudget* budget = MemoryBudget::Current();
  if (budget != nullptr && budget->refused() &&
      PyErr_GivenExceptionMatches(type, PyExc_MemoryError)) {
    return Outcome::kMemoryLimit;
  }
  return Outcome::kCodeError;
}

// A limit's error: its type, the message naming the limit and what was used, and
// where the code was.
void DescribeLimit(Outcome outcome, const std::optional<Cancellation::StopReason>& stop,
                   ExecError& error) {
  error.type = std::string(ErrorTypeForOutcome(outcome));
  error.message = stop ? stop->message : MemoryBudget::Current()->DescribeRefusal();
  if (error.line > 0) absl::StrAppend(&error.message, ", at line ", error.line);
  // The traceback ends with what ended the code: the limit, not the exception
  // (ExecutionStopped, MemoryError) that carried it.
  if (size_t last = error.traceback.rfind('\n'); last != std::string::npos) {
    error.traceback.resize(last + 1);
    absl::StrAppend(&error.traceback, error.type, ": ", error.message);
  }
  error.hint = outcome == Outcome::kMemoryLimit
                   ? "allocate less, or ask for a higher memory_mb within the policy's ceiling"
                   : "do less work per call, or ask for a higher limit within the policy's "
                     "ceiling; code stuck in C cannot be stopped in-process";
}

// Fetches the pending Python error and describes it (describe_error, modules/support.h).
// `args` and `ns` (may be null) feed the hints.
// Describing runs the code's own methods (the exception's __str__, its audit hooks on
// traceback access): as user code, under `cancellation`, and outside the memory
// budget (it may have been spent: describing must not fail for it).
// The pending exception as the code's error (what describe_error makes of it).
ExecError DescribeRaised(Interpreter& interp, const std::string& filename, absl::string_view source,
                         PyObject* args, PyObject* ns, Cancellation* cancellation) {
  MemoryBudget::Charge uncounted(nullptr);
  Cancellation::UserCode describing(cancellation, /*now=*/false);
  PyObject *type = nullptr, *value = nullptr, *traceback = nullptr;
  PyErr_Fetch(&type, &value, &traceback);
  PyErr_NormalizeException(&type, &value, &traceback);
  // Making an ExecutionStopped stops the thread again (cancellation.h): not this
  // describing, which is pyhost's.
  if (type != nullptr && IsCancellationException(type)) DropPendingInterrupt();
  auto owned_type = py::reinterpret_steal<py::object>(type);
  auto owned_value = py::reinterpret_steal<py::object>(value);
  auto owned_tb = py::reinterpret_steal<py::object>(traceback);
  ExecError error;
  error.type = type != nullptr ? reinterpret_cast<PyTypeObject*>(type)->tp_name : "Error";
  if (!owned_value) return error;
  if (owned_tb) PyException_SetTraceback(owned_value.ptr(), owned_tb.ptr());
  error.message = DescribeException(owned_value.ptr());
  if (std::optional<ExecError> described =
          interp.support().DescribeError(owned_value.ptr(), filename, source, args, ns)) {
    error = *std::move(described);
  }
  return error;
}

Failure DescribePendingError(Interpreter& interp, const std::string& filename,
                             absl::string_view source, PyObject* args, PyObject* ns,
                             Cancellation* cancellation) {
  std::optional<Cancellation::StopReason> stop;
  Failure failure{OutcomeOfPendingError(PyErr_Occurred(), cancellation, stop), ExecError{}};
  failure.error = DescribeRaised(interp, filename, source, args, ns, cancellation);
  if (!LimitName(failure.outcome).empty()) DescribeLimit(failure.outcome, stop, failure.error);
  return failure;
}

// Code that ended without an exception after a limit stopped it (it caught the stop
// where nothing more ran, e.g. around a wait) still ended by the limit.
std::optional<Failure> StoppedByALimit(Cancellation* cancellation) {
  std::optional<Cancellation::StopReason> stop =
      cancellation != nullptr ? cancellation->stop_reason() : std::nullopt;
  if (!stop) return std::nullopt;
  Failure failure{stop->outcome, ExecError{}};
  DescribeLimit(stop->outcome, stop, failure.error);
  return failure;
}

Failure NotSerializable(const absl::Status& status, absl::string_view what) {
  return Failure{Outcome::kCodeError,
                 ExecError{std::string(error_type::kResultNotSerializable),
                           std::string(status.message()), 0, "",
                           absl::StrCat("make ", what,
                                        " plain data: dict, list, str, int, float, bool or None "
                                        "(sets: list(...), objects: a dict of their fields)")}};
}

// pyhost failed around the code: `step` names what it was doing.
Failure HostFailure(absl::string_view step) {
  return Failure{Outcome::kHostError,
                 ExecError{std::string(error_type::kHost),
                           std::string(StatusFromPythonError(step).message())}};
}

Failure ArgsFailure(const absl::Status& status) {
  return Failure{Outcome::kCodeError, ExecError{std::string(error_type::kArgs),
                                                absl::StrCat("args: ", status.message())}};
}

void Fail(ExecResult& result, Failure failure) {
  result.outcome = failure.outcome;
  result.error = std::move(failure.error);
}

void Fail(ToolCallResult& result, const Failure& failure) {
  result.outcome = failure.outcome;
  result.envelope = ErrorEnvelope(failure.error);
}

// A new globals dict for user code: __name__, __builtins__, `extra` (an object of
// name -> value), and `args` if given.
py::object NewGlobals(Interpreter& interp, const char* name, const json& extra, PyObject* args) {
  auto globals = py::reinterpret_steal<py::object>(PyDict_New());
  auto py_name = py::reinterpret_steal<py::object>(PyUnicode_FromString(name));
  if (!globals || !py_name || PyDict_SetItemString(globals.ptr(), "__name__", py_name.ptr()) != 0 ||
      PyDict_SetItemString(globals.ptr(), "__builtins__", interp.builtins()) != 0 ||
      (args != nullptr && PyDict_SetItemString(globals.ptr(), "args", args) != 0)) {
    return py::object();
  }
  for (const auto& [key, value] : extra.items()) {
    absl::StatusOr<py::object> converted = JsonToPython(value);
    if (!converted.ok() ||
        PyDict_SetItemString(globals.ptr(), key.c_str(), converted->ptr()) != 0) {
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "bad extra global");
      return py::object();
    }
  }
  return globals;
}

// The SyntaxError python3 (3.12+, for a file) raises for a NUL byte, naming the file,
// the line holding the first NUL and that line's text before it. Py_CompileString
// itself would stop at the NUL.
void SetNulByteError(absl::string_view source, size_t nul, const std::string& filename) {
  size_t line_start = source.rfind('\n', nul);
  line_start = line_start == absl::string_view::npos ? 0 : line_start + 1;
  long line = 1 + static_cast<long>(std::count(source.begin(), source.begin() + nul, '\n'));
  absl::string_view before = source.substr(line_start, nul - line_start);
  auto text = py::reinterpret_steal<py::object>(
      PyUnicode_DecodeUTF8(before.data(), static_cast<Py_ssize_t>(before.size()), "replace"));
  auto args = py::reinterpret_steal<py::object>(
      text ? Py_BuildValue("(s(slnO))", "source code cannot contain null bytes", filename.c_str(),
                           line, PyUnicode_GET_LENGTH(text.ptr()) + 1, text.ptr())
           : nullptr);
  if (args) PyErr_SetObject(PyExc_SyntaxError, args.ptr());
}

py::object Compile(absl::string_view source, const std::string& filename) {
  if (size_t nul = source.find('\0'); nul != absl::string_view::npos) {
    SetNulByteError(source, nul, filename);
    return py::object();
  }
  std::string text(source);  // NUL-terminated for the compiler
  return py::reinterpret_steal<py::object>(
      Py_CompileString(text.c_str(), filename.c_str(), Py_file_input));
}

// Whether `globals` binds exactly what `snapshot` does: the same keys to the same
// objects, in the same order (what RestoreGlobals leaves). No hashing: a walk of both.
bool SameBindings(PyObject* globals, PyObject* snapshot) {
  if (PyDict_GET_SIZE(globals) != PyDict_GET_SIZE(snapshot)) return false;
  Py_ssize_t i = 0, j = 0;
  PyObject *key, *value, *their_key, *their_value;
  while (PyDict_Next(snapshot, &i, &key, &value)) {
    if (!PyDict_Next(globals, &j, &their_key, &their_value) || key != their_key ||
        value != their_value) {
      return false;
    }
  }
  return true;
}

// Puts a resident tool's global bindings back as its module body left them. Every
// function of the tool runs against the module's own globals (so a decorator's
// wrapper, helpers and closures see what a call assigns while it runs); restoring them
// is what keeps a call's globals from the next call. What the call assigned stays
// alive until the bindings are restored: finalizers it triggers run after, and
// whatever they assign is undone before the next call. No Python error pending.
void RestoreGlobals(const ToolModule& module) {
  if (SameBindings(module.globals, module.snapshot)) return;
  auto assigned = py::reinterpret_steal<py::object>(PyDict_Copy(module.globals));
  PyDict_Clear(module.globals);
  if (!assigned || PyDict_Update(module.globals, module.snapshot) != 0) PyErr_Clear();
}

// The envelope of what run() returned: {"ok": true, "data": ...}, or run()'s own dict
// when it has an "ok" key.
void SetEnvelope(PyObject* returned, ToolCallResult& result) {
  absl::StatusOr<json> value = PythonToJson(returned, "run() result");
  if (!value.ok()) {
    Fail(result, NotSerializable(value.status(), "run()'s return value"));
    return;
  }
  // Decided on what it converted to: a lookup of "ok" in the dict would run a key's
  // __eq__, which may claim to be "ok".
  bool passthrough = PyDict_Check(returned) && value->is_object() && value->contains("ok");
  result.outcome = Outcome::kOk;
  result.envelope =
      passthrough ? *std::move(value) : json{{"ok", true}, {"data", *std::move(value)}};
}

}  // namespace

json ErrorEnvelope(const ExecError& error) {
  json body = {{"message", error.message}, {"type", error.type}};
  if (!error.traceback.empty()) body["traceback"] = error.traceback;
  if (error.line > 0) body["line"] = error.line;
  if (!error.hint.empty()) body["hint"] = error.hint;
  return json{{"ok", false}, {"error", std::move(body)}};
}

void RunSnippet(Interpreter& interp, const ExecRequest& request, size_t max_output_bytes,
                const json& extra_globals, ExecResult& result, Cancellation* cancellation) {
  CheckEntered(interp);
  ArmOutputCaptures(interp.captures(), max_output_bytes);
  result.outcome = Outcome::kOk;
  absl::Cleanup take_output = [&] {
    TakeOutputCapture(interp.captures().out.ptr(), result.stdout_stream);
    TakeOutputCapture(interp.captures().err.ptr(), result.stderr_stream);
    result.ok = result.outcome == Outcome::kOk;
  };

  absl::StatusOr<py::object> args = JsonToPython(request.args);
  if (!args.ok()) {
    Fail(result, ArgsFailure(args.status()));
    return;
  }
  // The snippet runs as the __main__ module, as a script does under python3: pickle,
  // typing.get_type_hints, dataclasses and unittest.main() look its names up there.
  auto main_module = py::reinterpret_steal<py::object>(PyModule_New("__main__"));
  py::object fields = NewGlobals(interp, "__main__", extra_globals, args->ptr());
  py::object globals = main_module
                           ? py::reinterpret_borrow<py::object>(PyModule_GetDict(main_module.ptr()))
                           : py::object();
  PyObject* modules = PyImport_GetModuleDict();
  auto previous_main =
      py::reinterpret_borrow<py::object>(PyDict_GetItemString(modules, "__main__"));
  if (!fields || !globals || PyDict_Update(globals.ptr(), fields.ptr()) != 0 ||
      PyDict_SetItemString(modules, "__main__", main_module.ptr()) != 0) {
    Fail(result, HostFailure("globals"));
    return;
  }
  // Functions the code defines refer to globals (a cycle); clearing frees them now,
  // running the code's finalizers: user code too.
  absl::Cleanup clear_globals = [&] {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    if (previous_main && PyDict_SetItemString(modules, "__main__", previous_main.ptr()) != 0) {
      PyErr_Clear();
    }
    {
      Cancellation::UserCode finalizers(cancellation);
      PyDict_Clear(globals.ptr());
    }
    PyErr_Restore(type, value, traceback);
  };

  py::object code = Compile(request.code, kSnippetFilename);
  py::object ran;
  if (code) {
    Cancellation::UserCode running(cancellation);
    ran = py::reinterpret_steal<py::object>(
        PyEval_EvalCode(code.ptr(), globals.ptr(), globals.ptr()));
  }
  if (!ran) {
    Fail(result, DescribePendingError(interp, kSnippetFilename, request.code, args->ptr(),
                                      globals.ptr(), cancellation));
    return;
  }
  if (std::optional<Failure> limit = StoppedByALimit(cancellation)) {
    Fail(result, *std::move(limit));
    return;
  }
  PyObject* value = PyDict_GetItemString(globals.ptr(), "result");  // borrowed
  if (value == nullptr) return;
  absl::StatusOr<json> converted = PythonToJson(value, "result");
  if (converted.ok()) {
    result.result = *std::move(converted);
  } else {
    Fail(result, NotSerializable(converted.status(), "`result`"));
  }
}

std::optional<Failure> CompileTool(Interpreter& interp, absl::string_view name,
                                   absl::string_view source, CompiledTool& out) {
  CheckEntered(interp);
  out.name = std::string(name);
  out.filename = absl::StrCat("<tool:", name, ">");
  out.source = std::string(source);
  py::object code = Compile(source, out.filename);
  if (!code) return DescribePendingError(interp, out.filename, source, nullptr, nullptr, nullptr);
  auto bytes = py::reinterpret_steal<py::object>(
      PyMarshal_WriteObjectToString(code.ptr(), Py_MARSHAL_VERSION));
  if (!bytes) return HostFailure("marshal");
  out.marshaled_code.assign(PyBytes_AS_STRING(bytes.ptr()),
                            static_cast<size_t>(PyBytes_GET_SIZE(bytes.ptr())));
  return std::nullopt;
}

std::optional<Failure> LoadToolModule(Interpreter& interp, const CompiledTool& tool,
                                      const json& extra_globals, ToolModule& out,
                                      Cancellation* cancellation) {
  CheckEntered(interp);
  auto code = py::reinterpret_steal<py::object>(PyMarshal_ReadObjectFromString(
      tool.marshaled_code.data(), static_cast<Py_ssize_t>(tool.marshaled_code.size())));
  if (!code) return HostFailure("unmarshal");
  py::object globals = NewGlobals(interp, tool.name.c_str(), extra_globals, nullptr);
  if (!globals) return HostFailure("globals");
  py::object ran;
  {
    Cancellation::UserCode running(cancellation);
    ran = py::reinterpret_steal<py::object>(
        PyEval_EvalCode(code.ptr(), globals.ptr(), globals.ptr()));
  }
  if (!ran) {
    return DescribePendingError(interp, tool.filename, tool.source, nullptr, globals.ptr(),
                                cancellation);
  }
  if (std::optional<Failure> limit = StoppedByALimit(cancellation)) return limit;
  PyObject* run = PyDict_GetItemString(globals.ptr(), "run");  // borrowed
  if (run == nullptr || !PyCallable_Check(run)) {
    return Failure{
        Outcome::kCodeError,
        ExecError{std::string(error_type::kTool),
                  absl::StrCat("tool '", tool.name, "' defines no run(args) function"), 0, "",
                  "define `def run(args):` at the top level of the tool's source"}};
  }
  auto snapshot = py::reinterpret_steal<py::object>(PyDict_Copy(globals.ptr()));
  if (!snapshot) return HostFailure("globals");
  out.run = interp.Adopt(py::reinterpret_borrow<py::object>(run));
  out.globals = interp.Adopt(std::move(globals));
  out.snapshot = interp.Adopt(std::move(snapshot));
  return std::nullopt;
}

void CallToolRun(Interpreter& interp, const CompiledTool& tool, const ToolModule& module,
                 const json& args, bool isolate_globals, size_t max_output_bytes,
                 ToolCallResult& result, Cancellation* cancellation) {
  CheckEntered(interp);
  ArmOutputCaptures(interp.captures(), max_output_bytes);
  absl::Cleanup take_output = [&] {
    TakeOutputCapture(interp.captures().out.ptr(), result.stdout_stream);
    TakeOutputCapture(interp.captures().err.ptr(), result.stderr_stream);
  };
  absl::StatusOr<py::object> py_args = JsonToPython(args);
  if (!py_args.ok()) {
    Fail(result, ArgsFailure(py_args.status()));
    return;
  }
  if (isolate_globals) {  // what ran since the last call (frees objects: user code)
    Cancellation::UserCode undoing(cancellation);
    RestoreGlobals(module);
  }
  py::object returned;
  {
    Cancellation::UserCode running(cancellation);
    returned = py::reinterpret_steal<py::object>(PyObject_CallOneArg(module.run, py_args->ptr()));
  }
  if (std::optional<Failure> limit = returned ? StoppedByALimit(cancellation) : std::nullopt) {
    Fail(result, *limit);
  } else if (returned) {
    SetEnvelope(returned.ptr(), result);
  } else {
    Fail(result, DescribePendingError(interp, tool.filename, tool.source, py_args->ptr(),
                                      module.globals, cancellation));
  }
  if (isolate_globals) {
    // What the call assigned goes now (finalizers: the code's).
    Cancellation::UserCode finalizers(cancellation);
    returned = py::object();  // before the bindings go back: it may refer to them
    RestoreGlobals(module);
  }
}

}  // namespace pyhost

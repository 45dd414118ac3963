#include "embed/interpreter.h"

#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "bindings/python_error.h"
#include "embed/check.h"
#include "embed/thread_state.h"
#include "guards/hardening.h"

namespace pyhost {
namespace modules {
extern const char kPyhostSupportSource[];
}  // namespace modules

namespace py = pybind11;

namespace {

// Seconds threads left running get to finish before their interpreter is leaked.
constexpr double kThreadGraceSeconds = 0.2;

void CheckHostThreadState() {
  PYHOST_CHECK(CurrentThreadStateOrNull() != nullptr,
               "interpreters are created and destroyed with the GIL held");
}

}  // namespace

absl::StatusOr<std::unique_ptr<Interpreter>> Interpreter::Create(
    const InterpreterConfig& config) {
  CheckHostThreadState();
  PyThreadState* saved = CurrentThreadStateOrNull();
  std::unique_ptr<Interpreter> interp(new Interpreter());
  interp->owner_thread_ = std::this_thread::get_id();
  interp->initial_tstate_ = Py_NewInterpreter();  // on success it is current
  if (interp->initial_tstate_ == nullptr) {
    PyThreadState_Swap(saved);
    return absl::ResourceExhaustedError("Py_NewInterpreter failed");
  }
  interp->state_ = interp->initial_tstate_->interp;
  interp->id_ = PyInterpreterState_GetID(interp->state_);
  interp->sandbox_ = std::make_unique<Sandbox>(interp->state_);
  absl::Status loaded = interp->LoadSupport(config);
  PyThreadState_Swap(saved);
  if (!loaded.ok()) return loaded;  // the destructor ends the interpreter
  return interp;
}

absl::Status Interpreter::LoadSupport(const InterpreterConfig& config) {
  builtins_ = py::reinterpret_borrow<py::object>(PyEval_GetBuiltins());
  auto module = py::reinterpret_steal<py::object>(PyModule_New("_pyhost_support"));
  if (!module) return StatusFromPythonError("creating the support module");
  support_ = py::reinterpret_borrow<py::object>(PyModule_GetDict(module.ptr()));
  if (PyDict_SetItemString(support_.ptr(), "__builtins__", builtins_.ptr()) != 0) {
    return StatusFromPythonError("support module builtins");
  }
  auto code = py::reinterpret_steal<py::object>(
      Py_CompileString(modules::kPyhostSupportSource, "<pyhost_support>", Py_file_input));
  if (!code) return StatusFromPythonError("compiling pyhost_support.py");
  auto ran = py::reinterpret_steal<py::object>(
      PyEval_EvalCode(code.ptr(), support_.ptr(), support_.ptr()));
  if (!ran) return StatusFromPythonError("running pyhost_support.py");

  absl::StatusOr<OutputCaptures> captures = InstallOutputCaptures(config.max_output_bytes);
  if (!captures.ok()) return captures.status();
  captures_ = *std::move(captures);
  describe_error_ = py::reinterpret_borrow<py::object>(
      PyDict_GetItemString(support_.ptr(), "describe_error"));
  // Before prewarming, so modules imported later find only the hardened functions.
  if (absl::Status hardened = HardenInterpreter(*sandbox_, support_.ptr()); !hardened.ok()) {
    return hardened;
  }
  // The host's environment is not the code's: empty os.environ now, off the request
  // path (os.putenv is a no-op by now, so the process's environment stays).
  auto empty = py::reinterpret_steal<py::object>(PyDict_New());
  auto cleared = py::reinterpret_steal<py::object>(
      empty ? PyObject_CallFunctionObjArgs(PyDict_GetItemString(support_.ptr(), "set_environ"),
                                           empty.ptr(), nullptr)
            : nullptr);
  if (!cleared) return StatusFromPythonError("clearing os.environ");

  for (const std::string& name : config.prewarm_modules) {
    auto imported = py::reinterpret_steal<py::object>(PyImport_ImportModule(name.c_str()));
    if (!imported) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prewarm module '", name, "' failed to import: ",
          StatusFromPythonError("import").message()));
    }
  }
  ArmOutputCaptures(captures_, config.max_output_bytes);  // what prewarming printed (`this`)
  return absl::OkStatus();
}

PyThreadState* Interpreter::ThreadStateForThisThread() {
  absl::MutexLock lock(&mu_);
  PyThreadState*& tstate = thread_states_[std::this_thread::get_id()];
  if (tstate == nullptr) {
    tstate = PyThreadState_New(state_);  // needs no GIL (documented)
    PYHOST_CHECK(tstate != nullptr, "PyThreadState_New failed (out of memory)");
  }
  return tstate;
}

PyObject* Interpreter::Adopt(py::object object) {
  adopted_.push_back(std::move(object));
  return adopted_.back().ptr();
}

int Interpreter::StopAndCountThreads() {
  PyThreadState* saved = PyThreadState_Swap(initial_tstate_);
  absl::Cleanup swap_back = [saved] { PyThreadState_Swap(saved); };
  auto running = py::reinterpret_steal<py::object>(PyObject_CallFunction(
      PyDict_GetItemString(support_.ptr(), "before_end"), "d", kThreadGraceSeconds));
  if (!running) {
    PyErr_Clear();
    return 1;  // unknown: leaking is safe, ending with a thread alive aborts
  }
  return static_cast<int>(PyLong_AsLong(running.ptr()));
}

Interpreter::~Interpreter() {
  if (initial_tstate_ == nullptr) return;
  CheckHostThreadState();
  PYHOST_CHECK(std::this_thread::get_id() == owner_thread_,
               "an interpreter is destroyed on the thread that created it");
  PyThreadState* saved = PyThreadState_Swap(initial_tstate_);
  PYHOST_CHECK(saved != initial_tstate_, "destroyed from inside itself");
  adopted_.clear();
  describe_error_ = py::object();
  captures_ = OutputCaptures();
  support_ = py::object();
  builtins_ = py::object();
  {
    absl::MutexLock lock(&mu_);
    for (auto& [thread, tstate] : thread_states_) {
      PyThreadState_Clear(tstate);
      PyThreadState_Delete(tstate);
    }
    thread_states_.clear();
  }
  Py_EndInterpreter(initial_tstate_);
  PyThreadState_Swap(saved);
  sandbox_.reset();
}

}  // namespace pyhost

#include "embed/interpreter.h"

#include <fcntl.h>
#include <unistd.h>

#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "bindings/cancellation.h"
#include "bindings/check.h"
#include "bindings/cpython_internals.h"
#include "bindings/gilstate_binding.h"
#include "bindings/python_error.h"
#include "bindings/thread_state.h"
#include "guards/hardening.h"

namespace pyhost {

namespace py = pybind11;

namespace {

// Descriptors that must be free before Py_NewInterpreter runs: it opens stdlib files,
// and on 3.11 a creation that fails aborts the whole process ("tstate is still
// current" in its error path), so a full descriptor table must be an error instead.
constexpr int kDescriptorHeadroom = 32;

void CheckHostThreadState() {
  PYHOST_CHECK(CurrentThreadStateOrNull() != nullptr,
               "interpreters are created and destroyed with the GIL held");
}

absl::Status CheckDescriptorHeadroom() {
  int fds[kDescriptorHeadroom];
  int opened = 0;
  while (opened < kDescriptorHeadroom &&
         (fds[opened] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0) {
    ++opened;
  }
  for (int i = 0; i < opened; ++i) close(fds[i]);
  if (opened == kDescriptorHeadroom) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "the process's descriptor table is nearly full (fewer than ", kDescriptorHeadroom,
      " free): no interpreter is created until descriptors are closed"));
}

// A copy of a module's dict whose lists and dicts are copies too (sys.meta_path is
// changed in place), except `keep` (sys.modules: the interpreter's own).
py::object Snapshot(PyObject* dict, PyObject* keep) {
  auto copy = py::reinterpret_steal<py::object>(PyDict_New());
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  while (copy && PyDict_Next(dict, &pos, &key, &value)) {
    py::object kept;
    if (value != keep && PyList_CheckExact(value)) {
      kept = py::reinterpret_steal<py::object>(PySequence_List(value));
    } else if (value != keep && PyDict_CheckExact(value)) {
      kept = py::reinterpret_steal<py::object>(PyDict_Copy(value));
    } else {
      kept = py::reinterpret_borrow<py::object>(value);
    }
    if (!kept || PyDict_SetItem(copy.ptr(), key, kept.ptr()) != 0) return py::object();
  }
  return copy;
}

// Makes `dict` hold exactly what `snapshot` held (the snapshot's lists are copied
// again, so a later restore still has the originals).
void Restore(PyObject* dict, PyObject* snapshot) {
  auto keys = py::reinterpret_steal<py::object>(PyDict_Keys(dict));
  for (Py_ssize_t i = 0; keys && i < PyList_GET_SIZE(keys.ptr()); ++i) {
    PyObject* key = PyList_GET_ITEM(keys.ptr(), i);
    if (PyDict_Contains(snapshot, key) == 0) PyDict_DelItem(dict, key);
  }
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(snapshot, &pos, &key, &value)) {
    auto fresh = py::reinterpret_steal<py::object>(PyList_CheckExact(value) ? PySequence_List(value)
                                                                            : Py_NewRef(value));
    if (fresh) PyDict_SetItem(dict, key, fresh.ptr());
  }
  PyErr_Clear();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Interpreter>> Interpreter::Create(const InterpreterConfig& config) {
  CheckHostThreadState();
  if (absl::Status headroom = CheckDescriptorHeadroom(); !headroom.ok()) return headroom;
  PyThreadState* saved = CurrentThreadStateOrNull();
  std::unique_ptr<Interpreter> interp(new Interpreter());
  interp->initial_tstate_ = Py_NewInterpreter();  // on success it is current
  if (interp->initial_tstate_ == nullptr) {
    PyThreadState_Swap(saved);
    return absl::ResourceExhaustedError("Py_NewInterpreter failed");
  }
  interp->state_ = interp->initial_tstate_->interp;
  interp->id_ = PyInterpreterState_GetID(interp->state_);
  interp->sandbox_ = std::make_unique<Sandbox>(interp->state_);
  pyhost_inherit_int_max_str_digits(interp->state_);
  absl::Status loaded = interp->LoadSupport(config);
  PyThreadState_Swap(saved);
  if (!loaded.ok()) return loaded;  // the destructor ends the interpreter
  return interp;
}

absl::Status Interpreter::LoadSupport(const InterpreterConfig& config) {
  builtins_ = py::reinterpret_borrow<py::object>(PyEval_GetBuiltins());
  absl::StatusOr<modules::Support> support = modules::Support::Load(builtins_.ptr());
  if (!support.ok()) return support.status();
  support_ = *std::move(support);

  absl::StatusOr<OutputCaptures> captures = InstallOutputCaptures(config.max_output_bytes);
  if (!captures.ok()) return captures.status();
  captures_ = *std::move(captures);
  // Standard input at its end, as python3's with nothing to read (input() raises
  // EOFError); never the host's descriptor 0.
  py::object stdin_stream = support_.EofStdin();
  if (!stdin_stream || PySys_SetObject("stdin", stdin_stream.ptr()) != 0 ||
      PySys_SetObject("__stdin__", stdin_stream.ptr()) != 0) {
    return StatusFromPythonError("installing standard input");
  }
  // Before prewarming, so modules imported later find only the hardened functions.
  if (absl::Status hardened = HardenInterpreter(*sandbox_, &support_); !hardened.ok()) {
    return hardened;
  }
  // The host's environment is not the code's: empty os.environ now, off the request
  // path (os.putenv is a no-op by now, so the process's environment stays).
  auto empty = py::reinterpret_steal<py::object>(PyDict_New());
  if (!empty || !support_.SetEnviron(empty.ptr())) {
    return StatusFromPythonError("clearing os.environ");
  }

  PyObject* path = PySys_GetObject("path");  // borrowed
  for (const std::string& dir : config.sys_path) {
    sandbox_->AllowExtensionsUnder(dir);
    auto entry = py::reinterpret_steal<py::object>(PyUnicode_DecodeFSDefault(dir.c_str()));
    if (path == nullptr || !entry || PyList_Append(path, entry.ptr()) != 0) {
      return StatusFromPythonError("extending sys.path");
    }
  }
  for (const auto* names : {&config.prewarm_modules, &config.prewarm_if_found}) {
    for (const std::string& name : *names) {
      auto imported = py::reinterpret_steal<py::object>(PyImport_ImportModule(name.c_str()));
      if (!imported && names == &config.prewarm_if_found &&
          PyErr_ExceptionMatches(PyExc_ModuleNotFoundError)) {
        PyErr_Clear();  // not installed: the code's own import will say so
        continue;
      }
      if (!imported) {
        return absl::InvalidArgumentError(
            absl::StrCat("prewarm module '", name,
                         "' failed to import: ", StatusFromPythonError("import").message()));
      }
    }
  }
  ArmOutputCaptures(captures_, config.max_output_bytes);  // what prewarming printed (`this`)
  // Last, so that teardown restores the interpreter as requests found it.
  auto atexit = py::reinterpret_steal<py::object>(PyImport_ImportModule("atexit"));
  atexit_clear_ =
      atexit ? py::reinterpret_steal<py::object>(PyObject_GetAttrString(atexit.ptr(), "_clear"))
             : py::object();
  PyObject* sys = PyImport_AddModule("sys");  // borrowed
  sys_dict_ =
      sys != nullptr ? py::reinterpret_borrow<py::object>(PyModule_GetDict(sys)) : py::object();
  if (!atexit_clear_ || !sys_dict_) return StatusFromPythonError("reading atexit and sys");
  sys_snapshot_ = Snapshot(sys_dict_.ptr(), PyImport_GetModuleDict());
  builtins_snapshot_ = Snapshot(builtins_.ptr(), nullptr);
  if (!sys_snapshot_ || !builtins_snapshot_) return StatusFromPythonError("snapshots");
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

int Interpreter::OtherThreads(PyThreadState* except) const {
  int count = 0;
  for (PyThreadState* t = PyInterpreterState_ThreadHead(state_); t != nullptr;
       t = PyThreadState_Next(t)) {
    if (t != except && t != initial_tstate_) ++count;
  }
  return count;
}

void Interpreter::StopThreads(PyThreadState* current, absl::Duration grace) {
  const absl::Time give_up = absl::Now() + grace;
  while (OtherThreads(current) > 0 && absl::Now() < give_up) {
    for (PyThreadState* t = PyInterpreterState_ThreadHead(state_); t != nullptr;
         t = PyThreadState_Next(t)) {
      if (t != current && t != initial_tstate_) StopThread(t);
    }
    Py_BEGIN_ALLOW_THREADS absl::SleepFor(absl::Milliseconds(2));
    Py_END_ALLOW_THREADS
  }
  // A thread that catches the stop in a loop would otherwise keep the GIL for good
  // (on 3.11 a drop request from another interpreter never reaches it).
  for (PyThreadState* t = PyInterpreterState_ThreadHead(state_); t != nullptr;
       t = PyThreadState_Next(t)) {
    if (t != current && t != initial_tstate_) ParkThread(t);
  }
}

void Interpreter::UndoHooks() {
  if (PyObject_CallNoArgs(atexit_clear_.ptr()) == nullptr) PyErr_Clear();
  pyhost_clear_audit_hooks(state_);
  Restore(sys_dict_.ptr(), sys_snapshot_.ptr());
  Restore(builtins_.ptr(), builtins_snapshot_.ptr());
  // Py_EndInterpreter calls threading._shutdown() from sys.modules: the code's, if it
  // replaced it. Its threads are stopped (or the interpreter is leaked) already.
  if (PyDict_DelItemString(PyImport_GetModuleDict(), "threading") != 0) PyErr_Clear();
}

bool Interpreter::MayRunThreads() const { return pyhost_running_threads_hint(state_) > 0; }

int Interpreter::Quiesce(absl::Duration thread_grace) {
  ThreadStateScope scope(state_);
  sandbox_->Deactivate();      // GIL held: the code's threads read the sandbox too
  StopThread(scope.tstate());  // from here, no Python frame of this thread runs
  // Parking a thread raises "sys.settrace": no hook of the code's may answer it.
  pyhost_clear_audit_hooks(state_);
  {
    absl::MutexLock lock(&mu_);  // the callers of a resident interpreter are gone
    for (auto& [thread, tstate] : thread_states_) {
      PyThreadState_Clear(tstate);
      PyThreadState_Delete(tstate);
    }
    thread_states_.clear();
  }
  StopThreads(scope.tstate(), thread_grace);
  UndoHooks();
  adopted_.clear();
  // Module globals in reverse import order (the code's last), then the entries
  // that are not modules at all, then pyhost's own helpers' globals (the code can
  // reach them through the import gate's class).
  PyObject* modules = PyImport_GetModuleDict();
  auto entries = py::reinterpret_steal<py::object>(PyDict_Items(modules));
  for (Py_ssize_t i = entries ? PyList_GET_SIZE(entries.ptr()) - 1 : -1; i >= 0; --i) {
    PyObject* pair = PyList_GET_ITEM(entries.ptr(), i);
    PyObject* module = PyTuple_GET_ITEM(pair, 1);
    if (!PyModule_Check(module)) {
      PyDict_DelItem(modules, PyTuple_GET_ITEM(pair, 0));
    } else if (PyModule_GetDict(module) != sys_dict_.ptr() &&
               PyModule_GetDict(module) != builtins_.ptr()) {
      _PyModule_Clear(module);
    }
  }
  entries = py::object();
  support_.Clear();
  PyGC_Collect();
  sandbox_->BuryOwned();  // what no object closes (os.pipe's numbers)
  UndoHooks();            // anything a finalizer managed to put back
  PyErr_Clear();
  return OtherThreads(scope.tstate());
}

void Interpreter::KeepForever(std::unique_ptr<Interpreter> interpreter) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* kept = new std::vector<std::unique_ptr<Interpreter>>();  // never destroyed
  absl::MutexLock lock(&mu);
  kept->push_back(std::move(interpreter));
}

Interpreter::~Interpreter() {
  if (initial_tstate_ == nullptr) return;
  CheckHostThreadState();
  PyThreadState* saved = PyThreadState_Swap(initial_tstate_);
  PYHOST_CHECK(saved != initial_tstate_, "destroyed from inside itself");
  // Finalizers that call back through PyGILState (sqlite3, ctypes) must find this
  // interpreter, whichever thread ends it.
  PyThreadState* saved_gilstate = pyhost_gilstate_bind(initial_tstate_);
  adopted_.clear();
  atexit_clear_ = py::object();
  sys_snapshot_ = py::object();
  builtins_snapshot_ = py::object();
  sys_dict_ = py::object();
  captures_ = OutputCaptures();
  support_ = modules::Support();
  builtins_ = py::object();
  {
    absl::MutexLock lock(&mu_);
    for (auto& [thread, tstate] : thread_states_) {
      PyThreadState_Clear(tstate);
      PyThreadState_Delete(tstate);
    }
    thread_states_.clear();
  }
  StopThread(initial_tstate_);  // no Python of the code's runs inside Py_EndInterpreter
  Py_EndInterpreter(initial_tstate_);
  sandbox_->CloseBuried();  // nothing of the code's holds those numbers any more
  pyhost_gilstate_bind(saved_gilstate);
  PyThreadState_Swap(saved);
  sandbox_.reset();
}

}  // namespace pyhost

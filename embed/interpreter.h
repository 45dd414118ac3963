// One CPython subinterpreter, as an RAII object: pyhost's helpers loaded, hardened
// (guards/hardening.h) under its own Sandbox, and a prewarm list imported.
//
//   // On the pool's factory thread, GIL held with a main-interpreter thread state:
//   absl::StatusOr<std::unique_ptr<Interpreter>> interp = Interpreter::Create(config);
//   ...
//   interp->reset();  // same thread, same conditions: Py_EndInterpreter
//
// Creation and destruction cost milliseconds (DESIGN.md), so they belong to the pool
// (pool.h), never to the request path. Requests enter an interpreter with a
// ThreadStateScope (thread_state.h) on their own thread.
//
// Thread-safety: Create and the destructor run on one thread (checked), with the GIL
// held and a thread state of ANOTHER interpreter current (checked); they return with
// that same thread state current. ThreadStateForThisThread is thread-safe. The
// accessors of Python objects require the GIL held in this interpreter.
#ifndef PYHOST_EMBED_INTERPRETER_H_
#define PYHOST_EMBED_INTERPRETER_H_

#include <Python.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <pybind11/pytypes.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "audit_hooks/sandbox.h"
#include "embed/output_capture.h"

namespace pyhost {

struct InterpreterConfig {
  // Imported at creation so requests find them in sys.modules (e.g. "json", "re").
  std::vector<std::string> prewarm_modules;
  // Initial caps of the stdout/stderr captures (requests may set their own).
  size_t max_output_bytes = 1 << 20;
};

class Interpreter {
 public:
  static absl::StatusOr<std::unique_ptr<Interpreter>> Create(const InterpreterConfig& config);
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  PyInterpreterState* state() const { return state_; }
  int64_t id() const { return id_; }
  // What the audit hook and the hardened functions enforce here (inactive until a
  // request activates a policy).
  Sandbox& sandbox() const { return *sandbox_; }
  // The dict of pyhost_support.py (borrowed; GIL held in this interpreter).
  PyObject* support() const { return support_.ptr(); }

  // A thread state of this interpreter for the calling thread, made on first use and
  // deleted with the interpreter (for resident interpreters: no per-call allocation).
  PyThreadState* ThreadStateForThisThread() ABSL_LOCKS_EXCLUDED(mu_);

  // Keeps a reference alive as long as the interpreter; returns it borrowed. Objects
  // of an interpreter must be released inside it, which the destructor does.
  PyObject* Adopt(pybind11::object object);

  // pyhost_support.py objects (borrowed; GIL held in this interpreter).
  PyObject* builtins() const { return builtins_.ptr(); }
  // sys.stdout and sys.stderr (embed/output_capture.h).
  const OutputCaptures& captures() const { return captures_; }
  PyObject* describe_error() const { return describe_error_.ptr(); }

  // Number of Python threads (other than the caller's) still running after a grace
  // period; such an interpreter must be leaked, not ended (Py_EndInterpreter aborts
  // the process when threads remain). GIL held, any thread state current.
  int StopAndCountThreads();

 private:
  Interpreter() = default;
  absl::Status LoadSupport(const InterpreterConfig& config);

  PyInterpreterState* state_ = nullptr;
  PyThreadState* initial_tstate_ = nullptr;  // made by Py_NewInterpreter
  std::thread::id owner_thread_;
  int64_t id_ = -1;
  std::unique_ptr<Sandbox> sandbox_;

  pybind11::object builtins_;
  pybind11::object support_;  // module dict of pyhost_support.py
  OutputCaptures captures_;
  pybind11::object describe_error_;
  std::vector<pybind11::object> adopted_;

  absl::Mutex mu_;
  absl::flat_hash_map<std::thread::id, PyThreadState*> thread_states_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pyhost

#endif  // PYHOST_EMBED_INTERPRETER_H_

// One CPython subinterpreter, as an RAII object: pyhost's helpers loaded, hardened
// (guards/hardening.h) under its own Sandbox, and a prewarm list imported.
//
//   // On the pool's factory thread, GIL held with a main-interpreter thread state:
//   absl::StatusOr<std::unique_ptr<Interpreter>> interp = Interpreter::Create(config);
//   ...
//   // On the pool's reaper thread, no GIL held:
//   int left = (*interp)->Quiesce(absl::Milliseconds(200));
//   if (left == 0) interp->reset();  // GIL held, another interpreter's thread state
//
// Creation and destruction cost milliseconds (docs/architecture.md, "Measured costs"), so they
// belong to the pool (pool.h), never to the request path. Requests enter an interpreter with a
// ThreadStateScope (thread_state.h) on their own thread.
//
// Teardown must not run what the code left behind (finalizers, threads, hooks):
// Quiesce stops every thread of the code's and undoes its hooks from C state, so
// Py_EndInterpreter finds nothing of the code's left to run.
//
// Thread-safety: Create and the destructor run with the GIL held and a thread state
// of ANOTHER interpreter current (checked), and return with that same thread state
// current; they may run on different threads (3.11's Py_EndInterpreter needs the
// interpreter's first thread state current, not the thread that made it).
// ThreadStateForThisThread is thread-safe. The accessors of Python objects require
// the GIL held in this interpreter.
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
#include "absl/time/time.h"
#include "audit_hooks/sandbox.h"
#include "embed/output_capture.h"
#include "modules/support.h"

namespace pyhost {

struct InterpreterConfig {
  // Imported at creation so requests find them in sys.modules (e.g. "json", "re").
  std::vector<std::string> prewarm_modules;
  // Imported too when they are found (a policy's packages, which may not be installed).
  std::vector<std::string> prewarm_if_found;
  // Appended to sys.path before prewarming, and their extension modules allowed (a
  // policy's package directories: process isolation's workers only).
  std::vector<std::string> sys_path;
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
  // pyhost's Python helpers, loaded here (modules/support.h; GIL held in this
  // interpreter to call them).
  const modules::Support& support() const { return support_; }

  // A thread state of this interpreter for the calling thread, made on first use and
  // deleted with the interpreter (for resident interpreters: no per-call allocation).
  PyThreadState* ThreadStateForThisThread() ABSL_LOCKS_EXCLUDED(mu_);

  // Keeps a reference alive as long as the interpreter; returns it borrowed. Objects
  // of an interpreter must be released inside it, which the destructor does.
  PyObject* Adopt(pybind11::object object);

  // The interpreter's builtins dict (borrowed; GIL held in this interpreter).
  PyObject* builtins() const { return builtins_.ptr(); }
  // sys.stdout and sys.stderr (embed/output_capture.h).
  const OutputCaptures& captures() const { return captures_; }

  // Readies the interpreter for Py_EndInterpreter, with its Sandbox deactivated
  // (lockdown) and none of the code's Python allowed to run: on a thread state of
  // its own, every Python frame raises ExecutionStopped at once (bindings/cancellation.h),
  // so finalizers, atexit and weakref callbacks, hooks and generators' `finally`
  // blocks the code left do not run. Its threads are stopped the same way and
  // given `thread_grace`, and those that still run (they catch the stop in a loop)
  // are parked for good (ParkThread); atexit callbacks are dropped; hooks the code installed
  // (sys.addaudithook, sys.*hook, sys.std*, meta_path, builtins and sys attributes)
  // are undone; pyhost's references to its objects are released and module globals
  // cleared. Returns the number of threads still running: such an interpreter must
  // be leaked, never ended (Py_EndInterpreter aborts the process when threads
  // remain). Decides from C state only (the thread list), never from the code's
  // Python. No GIL held by the caller; at most once.
  int Quiesce(absl::Duration thread_grace);

  // Keeps an interpreter that must not be ended (Quiesce left threads running) for the
  // life of the process: never ended, never freed, but still referenced, so it is
  // known to be kept on purpose (LeakSanitizer reports only memory nothing points at).
  // Any thread; no GIL needed.
  static void KeepForever(std::unique_ptr<Interpreter> interpreter);

  // Whether threads the code started may still run (a hint: read without the GIL).
  // Such an interpreter is torn down at once rather than when requests are idle: on
  // 3.11 its threads keep the GIL from every other interpreter. Any thread.
  bool MayRunThreads() const;

 private:
  Interpreter() = default;
  absl::Status LoadSupport(const InterpreterConfig& config);
  // Threads of this interpreter other than `except` and its first thread state.
  int OtherThreads(PyThreadState* except) const;
  void StopThreads(PyThreadState* current, absl::Duration grace);
  void UndoHooks();

  PyInterpreterState* state_ = nullptr;
  PyThreadState* initial_tstate_ = nullptr;  // made by Py_NewInterpreter
  int64_t id_ = -1;
  std::unique_ptr<Sandbox> sandbox_;

  pybind11::object builtins_;
  modules::Support support_;
  OutputCaptures captures_;
  std::vector<pybind11::object> adopted_;
  // Taken at creation, before any request: the genuine atexit._clear (code can
  // replace sys.modules['atexit'], never this function), and what sys and builtins
  // held (their lists copied), to undo the code's changes at teardown.
  pybind11::object atexit_clear_;
  pybind11::object sys_dict_;  // the sys module's dict (borrowed from the module)
  pybind11::object sys_snapshot_;
  pybind11::object builtins_snapshot_;

  absl::Mutex mu_;
  absl::flat_hash_map<std::thread::id, PyThreadState*> thread_states_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pyhost

#endif  // PYHOST_EMBED_INTERPRETER_H_

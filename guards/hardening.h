// What the audit hook cannot see: in each sandbox interpreter, pyhost replaces, in
// that interpreter's own module objects, the functions that harm the host and raise
// no audit event (docs/architecture.md, "Pitfalls" 3), and gates the import machinery.
//
//   // At interpreter creation, GIL held in it, its Sandbox inactive; `support` is
//   // pyhost's Python helpers loaded in that interpreter (modules/support.h):
//   absl::Status hardened = HardenInterpreter(sandbox, &support);
//
// Always (every policy, yolo too; the host process is not the code's to change):
//   os._exit -> SystemExit; os.abort, setuid/setsid/umask/nice/chdir/..., signal
//   alarm/setitimer/pthread_kill/raise_signal/..., sys.setswitchinterval -> refused;
//   os.putenv/unsetenv -> change only the execution's os.environ (which starts empty);
//   raw descriptor calls (os.close, dup2, write, read, lseek, ...) only on descriptors
//   the code opened; sys.setrecursionlimit capped; _imp.create_builtin/exec_builtin
//   never re-create a hardened module (that would hand back the originals).
// By policy: thread starts (Policy::threads), _posixsubprocess.fork_exec
//   (Policy::processes); builtins.__import__ checks every import statement, also of
//   modules already loaded; a finder first on sys.meta_path.
// locale.setlocale answers queries and no-ops; a change is refused with a locale.Error
// that is also a PermissionError (code that falls back on locale.Error still works).
// The replacements are C functions whose __self__ is an empty module holding their
// state in C, so Python code cannot pull the original back out of them; they keep
// the original's name, doc and __module__ (they pickle and print as it does).
// Every replaced function is a row of hardening.cc's table ({module, the name it goes
// by, functions, handler}); a guard is added with a row and, for what no handler does
// yet, a handler.
#ifndef PYHOST_GUARDS_HARDENING_H_
#define PYHOST_GUARDS_HARDENING_H_

#include <Python.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "audit_hooks/sandbox.h"
#include "modules/support.h"

namespace pyhost {

// Highest recursion limit code may set: frames through C calls use the host
// thread's own stack, which pyhost does not size.
inline constexpr int kMaxRecursionLimit = 1000;

// `support` may be null (the main interpreter: no import gate finder there); it keeps
// what the hardening makes for the interpreter alive (os.fork's refusal type).
absl::Status HardenInterpreter(Sandbox& sandbox, modules::Support* support);

// Every function a guard replaces, as {module, attribute}: the module object it is
// replaced in ("posix", "_imp", "_posixsubprocess"), in the order of the table.
std::vector<std::pair<std::string, std::string>> GuardedFunctions();

}  // namespace pyhost

#endif  // PYHOST_GUARDS_HARDENING_H_

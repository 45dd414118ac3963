// pyhost's PEP 578 audit hook: one C-level hook for the whole process, registered
// before Py_Initialize, that hands each event raised in a sandbox interpreter to that
// interpreter's Sandbox and raises PermissionError (ImportError for imports) naming
// the operation and the rule when the policy says no.
//
//   pyhost::InstallAuditHook();  // once, before Py_Initialize (embed/runtime.cc does it)
//
// Events of the main interpreter, of interpreters in host mode, and events the hook
// has no rule for cost one hash lookup and are allowed. PEP 578 hooks are not a
// sandbox on their own: guards/hardening.h covers what raises no event.
// Thread-safety: CPython calls the hook with the GIL held.
#ifndef PYHOST_AUDIT_HOOKS_AUDIT_HOOK_H_
#define PYHOST_AUDIT_HOOKS_AUDIT_HOOK_H_

#include <Python.h>

#include <string>

#include "absl/strings/string_view.h"

namespace pyhost {

// Registers the hook; idempotent. Must run before Py_Initialize.
void InstallAuditHook();

// Whether the import of `module` running now was asked for by the sandboxed code
// itself rather than by a stdlib module it uses (an import statement of a stdlib
// file that names `module`). With `through_importlib`, importlib's frames are looked
// through (events raised deep inside importlib on behalf of its caller); without,
// the innermost frame is the importer (an import statement). GIL held.
bool ImportIsUserInitiated(absl::string_view module, bool through_importlib = true);

// Whether the innermost Python frame is importlib's own code (or there is none:
// pyhost's C calls). GIL held.
bool CallerIsImportMachinery();

class Sandbox;

// Raises ImportError naming the rule and returns false when `sandbox`'s policy refuses
// importing `name` (a str; anything else, or "", has nothing to judge). A name that is
// not valid UTF-8 text is judged by Sandbox::UnencodableImportAllowed, never by an
// approximation of it. `through_importlib` as for ImportIsUserInitiated. GIL held.
bool CheckImportName(Sandbox& sandbox, PyObject* name, bool through_importlib = true);

// "a/b.py" under the stdlib -> "a.b"; "" for paths outside it.
std::string ModuleNameForStdlibPath(absl::string_view path);

}  // namespace pyhost

#endif  // PYHOST_AUDIT_HOOKS_AUDIT_HOOK_H_

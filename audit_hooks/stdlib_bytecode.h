// Whether bytecode may claim to be the stdlib's. importlib loads stdlib modules from
// their cached bytecode with marshal.loads, and the import gate trusts frames whose
// code claims a file under the stdlib directory (a stdlib module importing for
// itself). Marshal data the sandboxed code put together could claim such a file
// too, through importlib's own helpers: data that names a stdlib file is accepted
// only if it is, byte for byte, that file's cached bytecode.
//
//   // data: what importlib hands marshal.loads (a .pyc without its 16-byte header)
//   absl::Status origin = CheckStdlibClaim(data, StdlibDir());
#ifndef PYHOST_AUDIT_HOOKS_STDLIB_BYTECODE_H_
#define PYHOST_AUDIT_HOOKS_STDLIB_BYTECODE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace pyhost {

// Whether frames running code with this co_filename are trusted as the stdlib's or
// importlib's by the import gate: a file under `stdlib_dir`, "<frozen ...>", pyhost's own.
bool IsTrustedFilename(absl::string_view filename, const std::string& stdlib_dir);

// OK if `data` claims no trusted filename (a string naming a file under `stdlib_dir`,
// or starting "<frozen"/"<pyhost") or is the cached bytecode of a stdlib file it
// names; PermissionDenied naming the claim if not. `stdlib_dir`: resolved, no
// trailing slash.
absl::Status CheckStdlibClaim(absl::string_view data, const std::string& stdlib_dir);

// "dir/name.py" -> "dir/__pycache__/name.cpython-311.pyc" (this interpreter's tag).
std::string CachedBytecodePath(absl::string_view source);

}  // namespace pyhost

#endif  // PYHOST_AUDIT_HOOKS_STDLIB_BYTECODE_H_

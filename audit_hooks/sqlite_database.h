// Which databases SQLite may open for sandboxed code: the judgment behind the
// "sqlite3.connect" audit rule and the ATTACH refusals of the SQLite authorizer
// (guards/sqlite.h).
//
//   std::string why;
//   if (!SqliteDatabaseAllowed(sandbox, "file:data.db?mode=ro", &why)) ...
#ifndef PYHOST_AUDIT_HOOKS_SQLITE_DATABASE_H_
#define PYHOST_AUDIT_HOOKS_SQLITE_DATABASE_H_

#include <string>

#include "absl/strings/string_view.h"
#include "audit_hooks/sandbox.h"

namespace pyhost {

// Whether SQLite may open database `name` (a path, ":memory:", "" for a temporary
// database, or a "file:" URI) for the sandbox's code: in memory, or a path it may
// write. On false, `why` says why.
bool SqliteDatabaseAllowed(Sandbox& sandbox, absl::string_view name, std::string* why);

}  // namespace pyhost

#endif  // PYHOST_AUDIT_HOOKS_SQLITE_DATABASE_H_

// SQLite under a policy. SQLite opens files through its own C code, with no audit
// event: sqlite3.connect() raises one for the database it opens, but ATTACH DATABASE,
// VACUUM INTO and URI filenames (Debian builds SQLite with SQLITE_USE_URI: "file:..."
// is a URI everywhere) name files inside SQL. pyhost puts an authorizer on every
// connection made in its interpreters, which SQLite asks while it prepares each
// statement, and which refuses, under the enforcing policy in force at that moment:
//   - ATTACH (also the one VACUUM INTO runs) only of a database the policy lets the
//     code write, or an in-memory/temporary one; an ATTACH whose file name is an
//     expression or a bound parameter (SQLite shows the authorizer no name) is denied;
//   - PRAGMA temp_store_directory / data_store_directory = ... denied (they move
//     SQLite's temporary files);
//   - the SQL function load_extension() denied (loading is refused by the audit hook).
// A denied statement fails as SQLite fails it ("sqlite3.DatabaseError: not
// authorized"), and the reason, naming the policy, goes to stderr.
// The code cannot remove the authorizer: Connection.set_authorizer(f) installs f
// behind pyhost's (asked only for what pyhost allows), set_authorizer(None) leaves
// pyhost's alone.
//
//   // in the _imp.exec_dynamic guard, after _sqlite3's module ran (GIL held):
//   absl::Status guarded = GuardSqliteModule(module);
#ifndef PYHOST_GUARDS_SQLITE_H_
#define PYHOST_GUARDS_SQLITE_H_

#include <Python.h>

#include "absl/status/status.h"

namespace pyhost {

// Guards a freshly executed _sqlite3 module: every Connection it makes gets pyhost's
// authorizer when its __init__ succeeds in one of pyhost's interpreters, and the
// process-wide Connection.set_authorizer is replaced once. GIL held in the module's
// interpreter.
absl::Status GuardSqliteModule(PyObject* module);

}  // namespace pyhost

#endif  // PYHOST_GUARDS_SQLITE_H_

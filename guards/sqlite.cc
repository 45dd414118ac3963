#include "guards/sqlite.h"

#include <optional>

#include <pybind11/pytypes.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "audit_hooks/sqlite_database.h"
#include "bindings/py_string.h"
#include "guards/shared_types.h"

#if PY_VERSION_HEX >= 0x030C0000
#error "3.12 gives each interpreter its own GIL: the process-wide guard state here needs a lock"
#endif

namespace pyhost {
namespace {

namespace py = pybind11;

// SQLite's authorizer codes and answers (sqlite3.h).
constexpr int kSqliteOk = 0;
constexpr int kSqliteDeny = 1;
constexpr int kSqlitePragma = 19;
constexpr int kSqliteAttach = 24;
constexpr int kSqliteFunction = 31;

// Why SQLite may not run a statement that needs `action`, or "" (it may).
std::string Refusal(Sandbox& sandbox, int action, PyObject* arg1, PyObject* arg2) {
  if (action == kSqliteAttach) {
    std::optional<std::string> name = Utf8(arg1);
    if (!name) {
      return "ATTACH of a database named by an expression or a bound parameter (pyhost must "
             "see the file name: write it as a string literal)";
    }
    std::string why;
    if (SqliteDatabaseAllowed(sandbox, *name, &why)) return "";
    return absl::StrCat("ATTACH '", *name, "': ", why);
  }
  if (action == kSqlitePragma && arg2 != Py_None) {
    std::string pragma = absl::AsciiStrToLower(Utf8(arg1).value_or(""));
    if (pragma == "temp_store_directory" || pragma == "data_store_directory") {
      return absl::StrCat("PRAGMA ", pragma, " (it moves SQLite's temporary files)");
    }
  }
  if (action == kSqliteFunction &&
      absl::AsciiStrToLower(Utf8(arg2).value_or("")) == "load_extension") {
    return "load_extension() (native extensions cannot be loaded)";
  }
  return "";
}

// The authorizer SQLite calls (through _sqlite3) as f(action, arg1, arg2, database,
// trigger). `self` is the code's own authorizer, asked after pyhost's, or null.
PyObject* Authorize(PyObject* self, PyObject* args) {
  if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) != 5) {
    PyErr_SetString(PyExc_TypeError, "authorizer(action, arg1, arg2, database, trigger)");
    return nullptr;
  }
  Sandbox* sandbox = Sandbox::Current();
  int overflow = 0;
  long action = PyLong_Check(PyTuple_GET_ITEM(args, 0))
                    ? PyLong_AsLongAndOverflow(PyTuple_GET_ITEM(args, 0), &overflow)
                    : -1;
  if (Sandbox::Enforcing(sandbox)) {
    std::string why = Refusal(*sandbox, static_cast<int>(action), PyTuple_GET_ITEM(args, 1),
                              PyTuple_GET_ITEM(args, 2));
    if (!why.empty()) {
      // SQLite reports only "not authorized": the reason goes to stderr.
      std::string message = absl::StrCat("pyhost: SQLite statement denied by pyhost policy '",
                                         sandbox->policy().name, "': ", why, "\n");
      PyObject* stderr_stream = PySys_GetObject("stderr");  // borrowed
      if (stderr_stream == nullptr || PyFile_WriteString(message.c_str(), stderr_stream) != 0) {
        PyErr_Clear();
      }
      return PyLong_FromLong(kSqliteDeny);
    }
  }
  if (self == nullptr) return PyLong_FromLong(kSqliteOk);
  return PyObject_Call(self, args, nullptr);
}

PyMethodDef kAuthorizeDef = {
    "authorizer", Authorize, METH_VARARGS,
    "pyhost's SQLite authorizer; the code's own, if it set one, is asked after it."};

// Connection.set_authorizer(authorizer_callback), METH_METHOD | METH_FASTCALL | METH_KEYWORDS.
PyCMethod g_set_authorizer = nullptr;
PyMethodDef* g_set_authorizer_def = nullptr;

// In pyhost's interpreters, installs pyhost's authorizer with the code's behind it
// (None: pyhost's alone). Elsewhere (no Sandbox: another embedder's) the original.
PyObject* GuardedSetAuthorizer(PyObject* self, PyTypeObject* cls, PyObject* const* args,
                               Py_ssize_t nargs, PyObject* kwnames) {
  if (Sandbox::Current() == nullptr) return g_set_authorizer(self, cls, args, nargs, kwnames);
  Py_ssize_t keywords = kwnames != nullptr ? PyTuple_GET_SIZE(kwnames) : 0;
  bool one = nargs + keywords == 1 &&
             (keywords == 0 || (PyUnicode_CheckExact(PyTuple_GET_ITEM(kwnames, 0)) &&
                                PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0),
                                                                 "authorizer_callback") == 0));
  if (!one) {
    PyErr_SetString(PyExc_TypeError,
                    "set_authorizer() takes exactly one argument (authorizer_callback)");
    return nullptr;
  }
  PyObject* user = args[0] == Py_None ? nullptr : args[0];
  auto authorizer =
      py::reinterpret_steal<py::object>(PyCFunction_NewEx(&kAuthorizeDef, user, nullptr));
  if (!authorizer) return nullptr;
  PyObject* wrapped[] = {authorizer.ptr()};
  return g_set_authorizer(self, cls, wrapped, 1, nullptr);
}

// The class whose set_authorizer a connection of `type` has (the defining class the
// original needs for its module state).
PyTypeObject* SetAuthorizerClass(PyTypeObject* type) {
  PyObject* mro = type->tp_mro;
  for (Py_ssize_t i = 0; mro != nullptr && i < PyTuple_GET_SIZE(mro); ++i) {
    auto* base = reinterpret_cast<PyTypeObject*>(PyTuple_GET_ITEM(mro, i));
    PyObject* descr = PyDict_GetItemString(base->tp_dict, "set_authorizer");  // borrowed
    if (descr != nullptr && Py_IS_TYPE(descr, &PyMethodDescr_Type) &&
        reinterpret_cast<PyMethodDescrObject*>(descr)->d_method == g_set_authorizer_def) {
      return PyDescr_TYPE(descr);
    }
  }
  return nullptr;
}

initproc g_connection_init = nullptr;

// Connection.__init__: every connection opened in one of pyhost's interpreters gets
// pyhost's authorizer before the code can run a statement (if that fails, it is
// closed), whatever the policy in force: the authorizer asks the policy of the moment
// (a resident interpreter keeps a connection a yolo execution made for the next,
// strict one).
int GuardedConnectionInit(PyObject* self, PyObject* args, PyObject* kwargs) {
  if (g_connection_init(self, args, kwargs) != 0) return -1;
  if (Sandbox::Current() == nullptr) return 0;
  PyTypeObject* cls = SetAuthorizerClass(Py_TYPE(self));
  PyObject* none[] = {Py_None};
  auto installed = py::reinterpret_steal<py::object>(
      cls != nullptr ? GuardedSetAuthorizer(self, cls, none, 1, nullptr) : nullptr);
  if (installed) return 0;
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  PyObject* close = cls != nullptr ? PyDict_GetItemString(cls->tp_dict, "close") : nullptr;
  auto closed = py::reinterpret_steal<py::object>(
      close != nullptr ? PyObject_CallOneArg(close, self) : nullptr);
  PyErr_Clear();
  PyErr_Restore(type, value, traceback);
  if (!PyErr_Occurred()) {
    PyErr_SetString(PyExc_PermissionError, "sqlite3: pyhost could not install its authorizer");
  }
  return -1;
}

}  // namespace

absl::Status GuardSqliteModule(PyObject* module) {
  PyObject* connection = PyModule_Check(module)
                             ? PyDict_GetItemString(PyModule_GetDict(module), "Connection")
                             : nullptr;
  if (connection == nullptr || !PyType_Check(connection)) {
    return absl::InternalError("_sqlite3 has no Connection type");
  }
  auto* type = reinterpret_cast<PyTypeObject*>(connection);
  if (g_set_authorizer == nullptr) {  // one method table for every interpreter's type
    PyObject* descr = PyDict_GetItemString(type->tp_dict, "set_authorizer");
    PyCFunction original = nullptr;
    if (absl::Status s = SwapMethod(
            type->tp_dict, "set_authorizer", METH_METHOD | METH_FASTCALL | METH_KEYWORDS,
            reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(GuardedSetAuthorizer)),
            &original);
        !s.ok()) {
      return s;
    }
    g_set_authorizer = reinterpret_cast<PyCMethod>(reinterpret_cast<void (*)()>(original));
    g_set_authorizer_def = reinterpret_cast<PyMethodDescrObject*>(descr)->d_method;
  }
  if (type->tp_init == GuardedConnectionInit) return absl::OkStatus();
  return SwapInit(type, GuardedConnectionInit, &g_connection_init);
}

}  // namespace pyhost

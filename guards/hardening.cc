#include "guards/hardening.h"

#include <fcntl.h>
#include <locale.h>
#include <stdlib.h>

#include <deque>
#include <memory>
#include <string>

#include <pybind11/pytypes.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "audit_hooks/audit_hook.h"
#include "audit_hooks/stdlib_bytecode.h"
#include "bindings/python_error.h"
#include "guards/shared_types.h"
#include "guards/sqlite.h"

namespace pyhost {
namespace {

namespace py = pybind11;

enum class Kind {
  kExit,            // os._exit(n): ends the execution like sys.exit(n)
  kHostOnly,        // changes the whole process: refused
  kEnvironNoop,     // os.putenv/unsetenv: os.environ is the execution's own copy
  kFdUse,           // acts on an existing descriptor (first argument)
  kFdUseTwo,        // acts on two existing descriptors (first and second arguments)
  kWaitChild,       // waits for a child: only a specific pid, only if processes are allowed
  kFdDup2,          // dup2(fd, fd2): fd owned, fd2 owned or not open
  kFdCreate,        // returns new descriptors: remembered as the code's
  kThreadStart,     // by Policy::threads
  kRecursionLimit,  // capped
  kCreateBuiltin,   // _imp.create_builtin(spec)
  kCreateDynamic,   // _imp.create_dynamic(spec, file=None): an extension module
  kExecBuiltin,     // _imp.exec_builtin(module)
  kExecDynamic,     // _imp.exec_dynamic(module): an extension module's body
  kImport,          // builtins.__import__
  kImportCheck,     // the meta-path finder's check(name)
  kGetAddrInfo,     // remembers the addresses an allowed name resolved to
  kSetlocale,       // locale.setlocale: queries and no-ops only (the locale is process-wide)
  kProcessStart,    // starts a process without an audit event: by Policy::processes
  kImportlibOnly,   // only importlib itself may call it (the import lock)
  kFixCoFilename,   // _imp._fix_co_filename: importlib only, never renaming into the stdlib
  kOpen,            // builtins.open / io.open: an opener's descriptor is checked
};

struct Guard {
  Kind kind;
  std::string name;  // "os.close"
  py::object original;
  py::object error_type;  // what a refusal raises, if not PermissionError itself
};

// A guard's state lives in a module object of its own, its __self__ (the only place
// the original is kept; Python code sees an empty module). Bound to a module, the
// guard pickles, prints and introspects as the module function it replaces does:
// builtins.open pickles as builtins.open, its repr is "<built-in function open>".
void FreeGuardState(void* module);
PyModuleDef kGuardStateDef = {
    PyModuleDef_HEAD_INIT, "pyhost.guard", "The state of a function pyhost replaced.",
    sizeof(Guard*), nullptr, nullptr, nullptr, nullptr, FreeGuardState};

void FreeGuardState(void* module) {
  auto** slot = static_cast<Guard**>(PyModule_GetState(static_cast<PyObject*>(module)));
  if (slot == nullptr) return;
  delete *slot;
  *slot = nullptr;
}

// The guard a GuardedCall's self holds; null with a Python error if self is none.
Guard* GuardOf(PyObject* self) {
  auto** slot = self != nullptr && PyModule_Check(self) && PyModule_GetDef(self) == &kGuardStateDef
                    ? static_cast<Guard**>(PyModule_GetState(self)) : nullptr;
  if (slot == nullptr || *slot == nullptr) {
    PyErr_SetString(PyExc_SystemError, "a pyhost guard without its state");
    return nullptr;
  }
  return *slot;
}

PyObject* SetPermissionError(const Guard& guard, absl::string_view why) {
  std::string message = absl::StrCat(guard.name, " is not available in pyhost: ", why);
  PyErr_SetString(guard.error_type ? guard.error_type.ptr() : PyExc_PermissionError, message.c_str());
  return nullptr;
}

// An exception type that is both PermissionError (pyhost's refusals) and `base`, what
// callers of the refused function already handle (code that falls back on
// locale.Error keeps working): "<module>.PermissionError". Null with a Python error.
py::object RefusalType(const char* module, PyObject* base) {
  std::string name = absl::StrCat(module, ".PermissionError");
  auto bases = py::reinterpret_steal<py::object>(PyTuple_Pack(2, PyExc_PermissionError, base));
  if (!bases) return py::object();
  return py::reinterpret_steal<py::object>(PyErr_NewException(name.c_str(), bases.ptr(), nullptr));
}

// glibc's locale categories, with the environment variable that names each.
constexpr std::pair<int, const char*> kLocaleCategories[] = {
    {LC_CTYPE, "LC_CTYPE"},       {LC_NUMERIC, "LC_NUMERIC"},
    {LC_TIME, "LC_TIME"},         {LC_COLLATE, "LC_COLLATE"},
    {LC_MONETARY, "LC_MONETARY"}, {LC_MESSAGES, "LC_MESSAGES"},
#ifdef LC_PAPER
    {LC_PAPER, "LC_PAPER"},       {LC_NAME, "LC_NAME"},
    {LC_ADDRESS, "LC_ADDRESS"},   {LC_TELEPHONE, "LC_TELEPHONE"},
    {LC_MEASUREMENT, "LC_MEASUREMENT"}, {LC_IDENTIFICATION, "LC_IDENTIFICATION"},
#endif
};

std::string CanonicalLocale(std::string name) { return name == "POSIX" ? "C" : name; }

// What setlocale(category, "") would pick for a single category: the process's
// environment, as the C library reads it.
std::string LocaleFromEnvironment(int category) {
  for (const auto& [known, variable] : kLocaleCategories) {
    if (known != category) continue;
    for (const char* name : {"LC_ALL", variable, "LANG"}) {
      const char* value = getenv(name);
      if (value != nullptr && value[0] != '\0') return CanonicalLocale(value);
    }
  }
  return "C";
}

// Whether setlocale(category, value) would leave the locale as it is: the value names
// the current locale, or is "" and the environment names it. Reads only.
bool LocaleUnchanged(int category, const std::string& value) {
  const char* current = setlocale(category, nullptr);
  if (current == nullptr) return false;
  if (!value.empty()) return CanonicalLocale(value) == CanonicalLocale(current);
  if (category != LC_ALL) return LocaleFromEnvironment(category) == CanonicalLocale(current);
  for (const auto& [each, variable] : kLocaleCategories) {
    const char* now = setlocale(each, nullptr);
    if (now == nullptr || LocaleFromEnvironment(each) != CanonicalLocale(now)) return false;
  }
  return true;
}

std::optional<int> IntArg(PyObject* args, Py_ssize_t i) {
  if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) <= i) return std::nullopt;
  PyObject* value = PyTuple_GET_ITEM(args, i);
  if (!PyLong_Check(value)) return std::nullopt;
  int overflow = 0;
  long v = PyLong_AsLongAndOverflow(value, &overflow);
  if (overflow != 0 || v < INT_MIN || v > INT_MAX) return std::nullopt;
  return static_cast<int>(v);
}

void RecordFds(Sandbox& sandbox, PyObject* result) {
  if (PyLong_Check(result)) {
    sandbox.RecordFd(static_cast<int>(PyLong_AsLong(result)));
  } else if (PyTuple_Check(result)) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(result); ++i) {
      PyObject* item = PyTuple_GET_ITEM(result, i);
      if (PyLong_Check(item)) sandbox.RecordFd(static_cast<int>(PyLong_AsLong(item)));
    }
  }
  PyErr_Clear();
}

std::string ModuleName(PyObject* spec_or_name) {
  auto name = py::reinterpret_steal<py::object>(
      PyUnicode_Check(spec_or_name) ? Py_NewRef(spec_or_name)
                                    : PyObject_GetAttrString(spec_or_name, "name"));
  const char* text = name ? PyUnicode_AsUTF8(name.ptr()) : nullptr;
  if (text == nullptr) {
    PyErr_Clear();
    return "";
  }
  return text;
}

// The absolute module name of an __import__(name, globals, locals, fromlist, level).
std::string AbsoluteImportName(PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"name", "globals", "locals", "fromlist", "level", nullptr};
  PyObject *name = nullptr, *globals = nullptr, *locals = nullptr, *fromlist = nullptr;
  int level = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "U|OOOi:__import__",
                                   const_cast<char**>(keywords), &name, &globals, &locals,
                                   &fromlist, &level)) {
    PyErr_Clear();
    return "";
  }
  std::string module = PyUnicode_AsUTF8(name);
  if (level <= 0) return module;
  std::string package;
  if (globals != nullptr && PyDict_Check(globals)) {
    PyObject* value = PyDict_GetItemString(globals, "__package__");
    if (value == nullptr || !PyUnicode_Check(value)) value = PyDict_GetItemString(globals, "__name__");
    if (value != nullptr && PyUnicode_Check(value)) package = PyUnicode_AsUTF8(value);
  }
  for (int i = 1; i < level && !package.empty(); ++i) {
    size_t dot = package.rfind('.');
    package = dot == std::string::npos ? "" : package.substr(0, dot);
  }
  if (package.empty()) return module;
  return module.empty() ? package : absl::StrCat(package, ".", module);
}

// Raises ImportError when the sandbox's policy refuses `module`.
bool CheckImport(Sandbox& sandbox, const std::string& module, bool through_importlib) {
  std::string why;
  if (module.empty() ||
      sandbox.ImportAllowed(module, ImportIsUserInitiated(module, through_importlib), &why)) {
    return true;
  }
  auto name = py::reinterpret_steal<py::object>(PyUnicode_FromString(module.c_str()));
  auto message = py::reinterpret_steal<py::object>(PyUnicode_FromString(why.c_str()));
  if (name && message) PyErr_SetImportError(message.ptr(), name.ptr(), nullptr);
  return false;
}

PyObject* CallOriginal(const Guard& guard, PyObject* args, PyObject* kwargs) {
  return PyObject_Call(guard.original.ptr(), args, kwargs);
}

bool GuardCreatedBuiltin(const std::string& name, PyObject* module);

PyObject* GuardedCall(PyObject* self, PyObject* args, PyObject* kwargs) {
  Guard* guard = GuardOf(self);
  if (guard == nullptr) return nullptr;
  Sandbox* sandbox = Sandbox::Current();
  const bool active = sandbox != nullptr && !sandbox->host_mode();
  py::object plain_kwargs = PlainKeywords(kwargs);  // what the guard reads, the original gets
  if (kwargs != nullptr && !plain_kwargs) return nullptr;
  kwargs = plain_kwargs.ptr();
  switch (guard->kind) {
    case Kind::kExit: {
      PyObject* code = PyTuple_Check(args) && PyTuple_GET_SIZE(args) > 0
                           ? PyTuple_GET_ITEM(args, 0) : Py_None;
      PyErr_SetObject(PyExc_SystemExit, code);
      return nullptr;
    }
    case Kind::kHostOnly:
      return SetPermissionError(*guard, "it acts on the host process or machine, outside the execution");
    case Kind::kEnvironNoop:
      Py_RETURN_NONE;
    case Kind::kFdUse: {
      std::optional<int> fd = IntArg(args, 0);
      if (active && !(fd && sandbox->OwnsFd(*fd))) {
        return SetPermissionError(*guard, "only on file descriptors the code opened itself");
      }
      PyObject* result = CallOriginal(*guard, args, kwargs);
      if (result != nullptr && active && (guard->name == "os.close" || guard->name == "socket.close")) {
        sandbox->ForgetFd(*fd);
      }
      return result;
    }
    case Kind::kFdUseTwo: {
      std::optional<int> out = IntArg(args, 0), in = IntArg(args, 1);
      if (active && !(out && in && sandbox->OwnsFd(*out) && sandbox->OwnsFd(*in))) {
        return SetPermissionError(*guard, "only on file descriptors the code opened itself");
      }
      return CallOriginal(*guard, args, kwargs);
    }
    case Kind::kWaitChild: {
      // wait(), waitpid(-1 or 0) would reap the host's own children.
      std::optional<int> pid = IntArg(args, 0);
      bool specific = guard->name != "os.wait" && guard->name != "os.wait3" && pid && *pid > 0;
      if (active && !(specific && sandbox->policy().processes)) {
        return SetPermissionError(*guard, "only for a child the code started, by its pid, "
                                          "under a policy that allows processes");
      }
      return CallOriginal(*guard, args, kwargs);
    }
    case Kind::kFdDup2: {
      std::optional<int> fd = IntArg(args, 0), fd2 = IntArg(args, 1);
      bool fd2_free = fd2 && fcntl(*fd2, F_GETFD) == -1;
      if (active && !(fd && fd2 && sandbox->OwnsFd(*fd) && (fd2_free || sandbox->OwnsFd(*fd2)))) {
        return SetPermissionError(*guard, "only between file descriptors the code opened itself");
      }
      PyObject* result = CallOriginal(*guard, args, kwargs);
      if (result != nullptr && active) sandbox->RecordFd(*fd2);
      return result;
    }
    case Kind::kFdCreate: {
      if (active && (guard->name == "os.dup" || guard->name == "socket.dup")) {
        std::optional<int> fd = IntArg(args, 0);
        if (!(fd && sandbox->OwnsFd(*fd))) {
          return SetPermissionError(*guard, "only on file descriptors the code opened itself");
        }
      }
      PyObject* result = CallOriginal(*guard, args, kwargs);
      if (result != nullptr && active) RecordFds(*sandbox, result);
      return result;
    }
    case Kind::kThreadStart:
      if (active && !sandbox->policy().threads) {
        std::string message = absl::StrCat("starting threads denied by pyhost policy '",
                                           sandbox->policy().name, "'");
        PyErr_SetString(PyExc_PermissionError, message.c_str());
        return nullptr;
      }
      return CallOriginal(*guard, args, kwargs);
    case Kind::kRecursionLimit: {
      std::optional<int> limit = IntArg(args, 0);
      if (limit && *limit > kMaxRecursionLimit) {
        std::string message = absl::StrCat("sys.setrecursionlimit(", *limit, ") is above pyhost's cap of ",
                                           kMaxRecursionLimit, " (deep C recursion would overflow the host thread's stack)");
        PyErr_SetString(PyExc_RecursionError, message.c_str());
        return nullptr;
      }
      return CallOriginal(*guard, args, kwargs);
    }
    case Kind::kCreateBuiltin:
    case Kind::kCreateDynamic: {
      // Only importlib's own ModuleSpec, whose name is a plain str in its __dict__:
      // a look-alike could answer one name to the check and another to the call.
      bool no_keywords = kwargs == nullptr || PyDict_GET_SIZE(kwargs) == 0;
      PyObject* spec = PyTuple_Check(args) && PyTuple_GET_SIZE(args) == 1 && no_keywords
                           ? PyTuple_GET_ITEM(args, 0) : nullptr;
      PyObject* spec_dict = spec != nullptr && sandbox != nullptr &&
                                    reinterpret_cast<PyObject*>(Py_TYPE(spec)) == sandbox->module_spec_type()
                                ? PyObject_GenericGetDict(spec, nullptr) : nullptr;
      auto owned_dict = py::reinterpret_steal<py::object>(spec_dict);
      PyObject* name = spec_dict != nullptr ? PyDict_GetItemString(spec_dict, "name") : nullptr;
      if (name == nullptr || !PyUnicode_CheckExact(name)) {
        PyErr_Clear();
        if (sandbox != nullptr) {
          return SetPermissionError(*guard, "only importlib's own module specs");
        }
        return CallOriginal(*guard, args, kwargs);
      }
      std::string module = PyUnicode_AsUTF8(name);
      if (guard->kind == Kind::kCreateDynamic && sandbox != nullptr) {
        // The init function is found by the name's last part, in the file at origin:
        // only the stdlib's extension directory, and never a hardened module's init.
        PyObject* origin = PyDict_GetItemString(spec_dict, "origin");
        std::string last = module.substr(module.rfind('.') + 1);
        bool in_dynload = origin != nullptr && PyUnicode_CheckExact(origin) &&
                          absl::StartsWith(PyUnicode_AsUTF8(origin), StdlibDir() + "/lib-dynload/");
        if (!in_dynload || sandbox->IsSealed(last)) {
          return SetPermissionError(*guard, "only the stdlib's own extension modules");
        }
      }
      if (sandbox != nullptr && sandbox->IsSealed(module)) {
        return SetPermissionError(*guard, absl::StrCat("module '", module, "' cannot be created again"));
      }
      if (active && !CheckImport(*sandbox, module, /*through_importlib=*/true)) return nullptr;
      PyObject* created = CallOriginal(*guard, args, kwargs);
      if (created != nullptr && guard->kind == Kind::kCreateBuiltin &&
          !GuardCreatedBuiltin(module, created)) {
        Py_DECREF(created);
        return nullptr;
      }
      return created;
    }
    case Kind::kExecBuiltin:
    case Kind::kExecDynamic: {
      // Both run any module's body (exec_builtin a dynamic one's too); a body whose
      // objects pyhost guards is guarded as soon as it ran, before the code has them.
      PyObject* module = PyTuple_Check(args) && PyTuple_GET_SIZE(args) > 0
                             ? PyTuple_GET_ITEM(args, 0) : nullptr;
      PyModuleDef* def = module != nullptr && PyModule_Check(module) ? PyModule_GetDef(module) : nullptr;
      PyErr_Clear();
      if (sandbox != nullptr && def != nullptr && sandbox->IsSealedDef(def)) {
        return SetPermissionError(*guard, "a hardened module cannot be executed again");
      }
      PyObject* result = CallOriginal(*guard, args, kwargs);
      if (result == nullptr || def == nullptr || def->m_name == nullptr ||
          std::string(def->m_name) != "_sqlite3") {
        return result;
      }
      if (absl::Status guarded = GuardSqliteModule(module); !guarded.ok()) {
        Py_DECREF(result);
        return SetPermissionError(*guard, guarded.message());
      }
      return result;
    }
    case Kind::kImport:
      if (active && !CheckImport(*sandbox, AbsoluteImportName(args, kwargs),
                                 /*through_importlib=*/false)) {
        return nullptr;
      }
      return CallOriginal(*guard, args, kwargs);
    case Kind::kImportCheck: {
      std::string module = PyTuple_Check(args) && PyTuple_GET_SIZE(args) > 0
                               ? ModuleName(PyTuple_GET_ITEM(args, 0)) : "";
      if (active && !CheckImport(*sandbox, module, /*through_importlib=*/true)) return nullptr;
      Py_RETURN_NONE;
    }
    case Kind::kImportlibOnly:
      if (active && !CallerIsImportMachinery()) {
        return SetPermissionError(*guard, "only importlib itself may call it");
      }
      return CallOriginal(*guard, args, kwargs);
    case Kind::kFixCoFilename: {
      // (code, source_path): renames code and its nested code to the file importlib
      // found. importlib calls it on a loader the code may have written, so a name in
      // the stdlib is kept only if the code already had it (bytecode claiming the
      // stdlib is checked when loaded): renamed code would pass for the stdlib's.
      if (active && !CallerIsImportMachinery()) {
        return SetPermissionError(*guard, "only importlib itself may call it");
      }
      PyObject* code = PyTuple_Check(args) && PyTuple_GET_SIZE(args) == 2 ? PyTuple_GET_ITEM(args, 0) : nullptr;
      PyObject* path = code != nullptr ? PyTuple_GET_ITEM(args, 1) : nullptr;
      if (active && sandbox->policy().enforce && code != nullptr && PyCode_Check(code) &&
          PyUnicode_Check(path)) {
        PyObject* current = reinterpret_cast<PyCodeObject*>(code)->co_filename;
        const char* target = PyUnicode_AsUTF8(path);
        if (target == nullptr) return nullptr;
        if (IsTrustedFilename(target, StdlibDir()) && PyUnicode_Compare(current, path) != 0) {
          return SetPermissionError(*guard, "code may not be renamed into the stdlib");
        }
      }
      return CallOriginal(*guard, args, kwargs);
    }
    case Kind::kSetlocale: {
      // setlocale(category, locale=None): a str changes the process's locale, unless
      // it is the one in force (then its name is the answer, as setlocale gives it).
      // Other values are the original's TypeError to raise.
      PyObject* value = PyTuple_Check(args) && PyTuple_GET_SIZE(args) > 1 ? PyTuple_GET_ITEM(args, 1)
                        : kwargs != nullptr ? PyDict_GetItemString(kwargs, "locale") : nullptr;
      std::optional<int> category = IntArg(args, 0);
      if (active && value != nullptr && PyUnicode_Check(value)) {
        const char* text = PyUnicode_AsUTF8(value);
        if (text == nullptr) return nullptr;
        if (category && LocaleUnchanged(*category, text)) {
          return PyUnicode_DecodeLocale(setlocale(*category, nullptr), nullptr);
        }
        return SetPermissionError(*guard, "the locale belongs to the whole host process "
                                          "(setlocale(category) without a value may query it)");
      }
      return CallOriginal(*guard, args, kwargs);
    }
    case Kind::kProcessStart:
      if (active && !sandbox->policy().processes) {
        std::string message = absl::StrCat(guard->name, " denied by pyhost policy '",
                                           sandbox->policy().name, "': processes are not allowed");
        PyErr_SetString(PyExc_PermissionError, message.c_str());
        return nullptr;
      }
      return CallOriginal(*guard, args, kwargs);
    case Kind::kOpen: {
      // open(file, mode, buffering, encoding, errors, newline, closefd, opener): the
      // audit event names `file`, but an opener may hand back any descriptor.
      if (!active) return CallOriginal(*guard, args, kwargs);
      constexpr Py_ssize_t kOpenerPosition = 7;
      py::object checked_args, checked_kwargs;
      if (!WrapOpener(args, kwargs, kOpenerPosition, &checked_args, &checked_kwargs)) return nullptr;
      return CallOriginal(*guard, checked_args.ptr(), checked_kwargs.ptr());
    }
    case Kind::kGetAddrInfo: {
      PyObject* result = CallOriginal(*guard, args, kwargs);
      if (result == nullptr || !active || !PyList_Check(result)) return result;
      // Only the answers for an allowed *name* are remembered (getaddrinfo(None, ...)
      // answers the local addresses, which no allowlist named).
      PyObject* host = PyTuple_Check(args) && PyTuple_GET_SIZE(args) > 0 ? PyTuple_GET_ITEM(args, 0) : nullptr;
      const char* host_text = host != nullptr && PyUnicode_Check(host) ? PyUnicode_AsUTF8(host) : nullptr;
      if (host_text == nullptr || !sandbox->HostAllowed(host_text)) {
        PyErr_Clear();
        return result;
      }
      for (Py_ssize_t i = 0; i < PyList_GET_SIZE(result); ++i) {
        PyObject* entry = PyList_GET_ITEM(result, i);  // (family, type, proto, name, sockaddr)
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) < 5) continue;
        PyObject* sockaddr = PyTuple_GET_ITEM(entry, 4);
        if (!PyTuple_Check(sockaddr) || PyTuple_GET_SIZE(sockaddr) < 1) continue;
        const char* ip = PyUnicode_Check(PyTuple_GET_ITEM(sockaddr, 0))
                             ? PyUnicode_AsUTF8(PyTuple_GET_ITEM(sockaddr, 0)) : nullptr;
        if (ip != nullptr) sandbox->RecordResolved(ip);
      }
      PyErr_Clear();
      return result;
    }
  }
  return CallOriginal(*guard, args, kwargs);
}

// PyMethodDefs must outlive every function made from them: one per name, for the
// life of the process (shared by all interpreters). Its doc is the original's (the
// same C function in every interpreter), so __doc__ and inspect.signature() stay.
PyMethodDef* MethodDefFor(const std::string& name, PyObject* original) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* names = new std::deque<std::string>();
  static auto* defs = new absl::flat_hash_map<std::string, PyMethodDef*>();
  absl::MutexLock lock(&mu);
  PyMethodDef*& def = (*defs)[name];
  if (def == nullptr) {
    names->push_back(name.substr(name.rfind('.') + 1));
    const char* doc = original != nullptr && PyCFunction_Check(original)
                          ? reinterpret_cast<PyCFunctionObject*>(original)->m_ml->ml_doc
                          : "Replaced by pyhost: see pyhost's docs/security.md.";
    def = new PyMethodDef{names->back().c_str(), reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(GuardedCall)),
                          METH_VARARGS | METH_KEYWORDS, doc};
  }
  return def;
}

// A C function running GuardedCall for `kind`, with the original's name, doc and
// __module__; its __self__ holds the guard (kGuardStateDef). Null with a Python error
// on failure.
py::object MakeGuard(Kind kind, const std::string& name, py::object original,
                     py::object error_type = py::object()) {
  auto state = py::reinterpret_steal<py::object>(PyModule_Create(&kGuardStateDef));
  auto** slot = state ? static_cast<Guard**>(PyModule_GetState(state.ptr())) : nullptr;
  if (slot == nullptr) return py::object();
  auto module_name = py::reinterpret_steal<py::object>(
      original ? PyObject_GetAttrString(original.ptr(), "__module__") : nullptr);
  if (!module_name || !PyUnicode_Check(module_name.ptr())) {
    PyErr_Clear();
    module_name = py::object();
  }
  PyMethodDef* def = MethodDefFor(name, original.ptr());
  *slot = new Guard{kind, name, std::move(original), std::move(error_type)};
  return py::reinterpret_steal<py::object>(PyCFunction_NewEx(def, state.ptr(), module_name.ptr()));
}

// Builtin modules guarded whenever one is made, rather than preloaded and sealed, so
// that importing them stays the import gate's to decide: _posixsubprocess.fork_exec
// starts programs (subprocess calls it after its own "subprocess.Popen" event; called
// directly it raises none). False with a Python error on failure.
bool GuardCreatedBuiltin(const std::string& name, PyObject* module) {
  if (name != "_posixsubprocess") return true;
  auto original = py::reinterpret_steal<py::object>(PyObject_GetAttrString(module, "fork_exec"));
  if (!original) {
    PyErr_Clear();
    return true;
  }
  py::object guard = MakeGuard(Kind::kProcessStart, "_posixsubprocess.fork_exec", original);
  return guard && PyObject_SetAttrString(module, "fork_exec", guard.ptr()) == 0;
}

class Hardener {
 public:
  explicit Hardener(Sandbox& sandbox) : sandbox_(sandbox) {}

  absl::Status Module(const char* module_name) {
    auto module = py::reinterpret_steal<py::object>(PyImport_ImportModule(module_name));
    if (!module) return StatusFromPythonError(absl::StrCat("hardening: import ", module_name));
    return Module(std::move(module), module_name);
  }

  absl::Status Module(py::object module, const char* module_name) {
    module_ = std::move(module);
    module_name_ = module_name;
    sandbox_.Seal(module_name, PyModule_Check(module_.ptr()) ? PyModule_GetDef(module_.ptr()) : nullptr);
    PyErr_Clear();
    return absl::OkStatus();
  }

  // Replaces module.attr (if the platform has it) with a guard of `kind`, whose
  // refusals raise `error_type` (PermissionError if none).
  absl::Status Replace(const char* attr, Kind kind, const char* public_module = nullptr,
                       py::object error_type = py::object()) {
    auto original = py::reinterpret_steal<py::object>(PyObject_GetAttrString(module_.ptr(), attr));
    if (!original) {
      PyErr_Clear();
      return absl::OkStatus();
    }
    std::string name = absl::StrCat(public_module ? public_module : module_name_, ".", attr);
    py::object wrapper = MakeGuard(kind, name, original, std::move(error_type));
    if (!wrapper || PyObject_SetAttrString(module_.ptr(), attr, wrapper.ptr()) != 0) {
      return StatusFromPythonError(absl::StrCat("hardening: replace ", name));
    }
    PyObject* key = original.ptr();
    replaced_[key] = {std::move(original), std::move(wrapper)};
    return absl::OkStatus();
  }

  absl::Status ReplaceAll(std::initializer_list<const char*> attrs, Kind kind,
                          const char* public_module = nullptr) {
    for (const char* attr : attrs) {
      if (absl::Status s = Replace(attr, kind, public_module); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // Modules loaded before hardening may hold the originals under their own names
  // (os does `from posix import *`): swap every such reference for its guard.
  absl::Status SwapCopies() {
    PyObject* modules = PyImport_GetModuleDict();
    auto values = py::reinterpret_steal<py::object>(PyDict_Values(modules));
    if (!values) return StatusFromPythonError("hardening: sys.modules");
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(values.ptr()); ++i) {
      PyObject* module = PyList_GET_ITEM(values.ptr(), i);
      if (!PyModule_Check(module)) continue;
      PyObject* dict = PyModule_GetDict(module);
      auto items = py::reinterpret_steal<py::object>(PyDict_Items(dict));
      if (!items) return StatusFromPythonError("hardening: module dict");
      for (Py_ssize_t j = 0; j < PyList_GET_SIZE(items.ptr()); ++j) {
        PyObject* pair = PyList_GET_ITEM(items.ptr(), j);
        auto found = replaced_.find(PyTuple_GET_ITEM(pair, 1));
        if (found != replaced_.end()) {
          PyDict_SetItem(dict, PyTuple_GET_ITEM(pair, 0), found->second.second.ptr());
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  Sandbox& sandbox_;
  py::object module_;
  std::string module_name_;
  // original -> (original kept alive, its guard)
  absl::flat_hash_map<PyObject*, std::pair<py::object, py::object>> replaced_;
};

#define PYHOST_RETURN_IF_ERROR(expr)        \
  do {                                      \
    if (absl::Status _s = (expr); !_s.ok()) \
      return _s;                            \
  } while (0)

}  // namespace

absl::Status HardenInterpreter(Sandbox& sandbox, PyObject* support) {
  Hardener h(sandbox);
  PYHOST_RETURN_IF_ERROR(h.Module("posix"));
  PYHOST_RETURN_IF_ERROR(h.Replace("_exit", Kind::kExit, "os"));
  PYHOST_RETURN_IF_ERROR(h.ReplaceAll(
      {"abort", "chdir", "fchdir", "chroot", "umask", "setuid", "setgid", "seteuid", "setegid",
       "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "initgroups", "setsid",
       "setpgid", "setpgrp", "setpriority", "nice", "sched_setaffinity", "sched_setscheduler",
       "sched_setparam", "closerange", "login_tty", "tcsetpgrp", "mkfifo", "mknod"},
      Kind::kHostOnly, "os"));
  PYHOST_RETURN_IF_ERROR(h.ReplaceAll({"putenv", "unsetenv"}, Kind::kEnvironNoop, "os"));
  PYHOST_RETURN_IF_ERROR(h.ReplaceAll(
      {"close", "write", "writev", "pwrite", "pwritev", "read", "readv", "pread", "preadv",
       "lseek", "ftruncate", "fchmod", "fchown", "fsync", "fdatasync", "set_blocking",
       "set_inheritable", "posix_fallocate", "posix_fadvise", "lockf", "eventfd_read",
       "eventfd_write"},
      Kind::kFdUse, "os"));
  PYHOST_RETURN_IF_ERROR(h.ReplaceAll({"sendfile", "copy_file_range", "splice"}, Kind::kFdUseTwo, "os"));
  PYHOST_RETURN_IF_ERROR(h.ReplaceAll({"wait", "wait3", "wait4", "waitpid", "waitid"},
                                      Kind::kWaitChild, "os"));
  PYHOST_RETURN_IF_ERROR(h.Replace("dup2", Kind::kFdDup2, "os"));
  PYHOST_RETURN_IF_ERROR(h.ReplaceAll({"open", "pipe", "pipe2", "dup", "openpty", "memfd_create", "eventfd"},
                                      Kind::kFdCreate, "os"));
  PYHOST_RETURN_IF_ERROR(h.SwapCopies());

  PYHOST_RETURN_IF_ERROR(h.Module("time"));
  PYHOST_RETURN_IF_ERROR(h.ReplaceAll({"clock_settime", "clock_settime_ns"}, Kind::kHostOnly));

  PYHOST_RETURN_IF_ERROR(h.Module("_thread"));
  PYHOST_RETURN_IF_ERROR(h.ReplaceAll({"start_new_thread", "start_new"}, Kind::kThreadStart));
  PYHOST_RETURN_IF_ERROR(h.Replace("interrupt_main", Kind::kHostOnly));

  PYHOST_RETURN_IF_ERROR(h.Module("_signal"));
  PYHOST_RETURN_IF_ERROR(h.ReplaceAll(
      {"signal", "alarm", "setitimer", "pthread_kill", "pthread_sigmask", "raise_signal",
       "set_wakeup_fd", "siginterrupt", "sigwait", "sigwaitinfo", "sigtimedwait", "pidfd_send_signal"},
      Kind::kHostOnly, "signal"));

  PYHOST_RETURN_IF_ERROR(h.Module("sys"));
  PYHOST_RETURN_IF_ERROR(h.Replace("setrecursionlimit", Kind::kRecursionLimit));
  PYHOST_RETURN_IF_ERROR(h.ReplaceAll({"setswitchinterval", "setdlopenflags"}, Kind::kHostOnly));

  PYHOST_RETURN_IF_ERROR(h.Module("_socket"));
  PYHOST_RETURN_IF_ERROR(h.Replace("getaddrinfo", Kind::kGetAddrInfo, "socket"));
  PYHOST_RETURN_IF_ERROR(h.Replace("close", Kind::kFdUse, "socket"));
  PYHOST_RETURN_IF_ERROR(h.Replace("dup", Kind::kFdCreate, "socket"));

  // Tracing allocations is process-wide on 3.11 (runtime state, every interpreter).
  PYHOST_RETURN_IF_ERROR(h.Module("_tracemalloc"));
  PYHOST_RETURN_IF_ERROR(h.ReplaceAll({"start", "stop", "clear_traces", "reset_peak"},
                                      Kind::kHostOnly, "tracemalloc"));

  PYHOST_RETURN_IF_ERROR(h.Module("_locale"));
  auto locale_error = py::reinterpret_steal<py::object>(
      PyObject_GetAttrString(PyImport_AddModule("_locale"), "Error"));
  py::object locale_refusal = locale_error ? RefusalType("locale", locale_error.ptr()) : py::object();
  if (!locale_refusal) return StatusFromPythonError("hardening: locale's refusal type");
  PYHOST_RETURN_IF_ERROR(h.Replace("setlocale", Kind::kSetlocale, "locale", locale_refusal));

  // os.fork()'s refusal (audit_hooks/audit_hook.cc): a RuntimeError as 3.12 raises,
  // and a PermissionError naming the rule. Kept alive by the support module.
  if (support != nullptr) {
    py::object fork_refusal = RefusalType("builtins", PyExc_RuntimeError);
    if (!fork_refusal || PyDict_SetItemString(support, "_fork_refusal", fork_refusal.ptr()) != 0) {
      return StatusFromPythonError("hardening: fork's refusal type");
    }
    sandbox.set_fork_error_type(fork_refusal.ptr());
  }

  PYHOST_RETURN_IF_ERROR(h.Module("builtins"));
  PYHOST_RETURN_IF_ERROR(h.Replace("__import__", Kind::kImport));

  // importlib keeps its own reference to _imp, which need not be sys.modules['_imp']:
  // every distinct one is hardened.
  auto bootstrap = py::reinterpret_borrow<py::object>(
      PyDict_GetItemString(PyImport_GetModuleDict(), "_frozen_importlib"));
  auto spec_type = bootstrap ? py::reinterpret_steal<py::object>(
                                   PyObject_GetAttrString(bootstrap.ptr(), "ModuleSpec"))
                             : py::object();
  if (!spec_type) return StatusFromPythonError("hardening: importlib's ModuleSpec");
  sandbox.set_module_spec_type(spec_type.ptr());
  std::vector<py::object> imps;
  auto imp = py::reinterpret_steal<py::object>(PyImport_ImportModule("_imp"));
  if (!imp) return StatusFromPythonError("hardening: import _imp");
  imps.push_back(imp);
  for (const char* holder : {"_frozen_importlib", "_frozen_importlib_external"}) {
    PyObject* module = PyDict_GetItemString(PyImport_GetModuleDict(), holder);
    PyObject* theirs = module != nullptr ? PyObject_GetAttrString(module, "_imp") : nullptr;
    if (theirs == nullptr) {
      PyErr_Clear();
      continue;
    }
    auto owned = py::reinterpret_steal<py::object>(theirs);
    bool seen = false;
    for (const py::object& known : imps) seen = seen || known.ptr() == owned.ptr();
    if (!seen) imps.push_back(owned);
  }
  for (const py::object& module : imps) {
    PYHOST_RETURN_IF_ERROR(h.Module(module, "_imp"));
    PYHOST_RETURN_IF_ERROR(h.Replace("create_builtin", Kind::kCreateBuiltin));
    PYHOST_RETURN_IF_ERROR(h.Replace("exec_builtin", Kind::kExecBuiltin));
    PYHOST_RETURN_IF_ERROR(h.Replace("exec_dynamic", Kind::kExecDynamic));
    PYHOST_RETURN_IF_ERROR(h.Replace("_fix_co_filename", Kind::kFixCoFilename));
    // The import lock is the whole process's on 3.11: held, every import hangs.
    PYHOST_RETURN_IF_ERROR(h.ReplaceAll({"acquire_lock", "release_lock"}, Kind::kImportlibOnly));
    PYHOST_RETURN_IF_ERROR(h.Replace("create_dynamic", Kind::kCreateDynamic));
  }
  PYHOST_RETURN_IF_ERROR(h.Module("builtins"));
  PYHOST_RETURN_IF_ERROR(h.Replace("open", Kind::kOpen));
  PYHOST_RETURN_IF_ERROR(h.SwapCopies());

  if (support == nullptr) return absl::OkStatus();
  py::object check = MakeGuard(Kind::kImportCheck, "pyhost.import_check", py::none());
  auto installed = py::reinterpret_steal<py::object>(
      check ? PyObject_CallFunctionObjArgs(PyDict_GetItemString(support, "install_import_gate"),
                                           check.ptr(), nullptr)
            : nullptr);
  if (!installed) return StatusFromPythonError("hardening: import gate");
  return absl::OkStatus();
}

}  // namespace pyhost

#include "guards/hardening.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdlib.h>

#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <pybind11/pytypes.h>
// types.SimpleNamespace, a static type (its attributes cannot be changed by the code).
#define Py_BUILD_CORE 1
#include <internal/pycore_namespace.h>
#undef Py_BUILD_CORE

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "audit_hooks/audit_hook.h"
#include "audit_hooks/stdlib_bytecode.h"
#include "bindings/cancellation.h"
#include "bindings/py_string.h"
#include "bindings/python_error.h"
#include "guards/c_stack.h"
#include "guards/interruptible_waits.h"
#include "guards/shared_types.h"
#include "guards/sqlite.h"

namespace pyhost {
namespace {

namespace py = pybind11;

struct Call;
// What a guarded function runs instead of its original (below, "the handlers").
using Handler = PyObject* (*)(const Call& call);

struct Guard {
  Handler handler;
  std::string name;  // "os.close"
  py::object original;
  py::object error_type;  // what a refusal raises, if not PermissionError itself
  py::object partner;     // another original of the module the handler calls
};

// A guard's state lives in a module object of its own, its __self__ (the only place
// the original is kept; Python code sees an empty module). Bound to a module, the
// guard pickles, prints and introspects as the module function it replaces does:
// builtins.open pickles as builtins.open, its repr is "<built-in function open>".
void FreeGuardState(void* module);
PyModuleDef kGuardStateDef = {PyModuleDef_HEAD_INIT,
                              "pyhost.guard",
                              "The state of a function pyhost replaced.",
                              sizeof(Guard*),
                              nullptr,
                              nullptr,
                              nullptr,
                              nullptr,
                              FreeGuardState};

void FreeGuardState(void* module) {
  auto** slot = static_cast<Guard**>(PyModule_GetState(static_cast<PyObject*>(module)));
  if (slot == nullptr) return;
  delete *slot;
  *slot = nullptr;
}

// The guard a GuardedCall's self holds; null with a Python error if self is none.
Guard* GuardOf(PyObject* self) {
  auto** slot = self != nullptr && PyModule_Check(self) && PyModule_GetDef(self) == &kGuardStateDef
                    ? static_cast<Guard**>(PyModule_GetState(self))
                    : nullptr;
  if (slot == nullptr || *slot == nullptr) {
    PyErr_SetString(PyExc_SystemError, "a pyhost guard without its state");
    return nullptr;
  }
  return *slot;
}

PyObject* SetPermissionError(const Guard& guard, absl::string_view why) {
  std::string message = absl::StrCat(guard.name, " is not available in pyhost: ", why);
  PyErr_SetString(guard.error_type ? guard.error_type.ptr() : PyExc_PermissionError,
                  message.c_str());
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
    {LC_CTYPE, "LC_CTYPE"},
    {LC_NUMERIC, "LC_NUMERIC"},
    {LC_TIME, "LC_TIME"},
    {LC_COLLATE, "LC_COLLATE"},
    {LC_MONETARY, "LC_MONETARY"},
    {LC_MESSAGES, "LC_MESSAGES"},
#ifdef LC_PAPER
    {LC_PAPER, "LC_PAPER"},
    {LC_NAME, "LC_NAME"},
    {LC_ADDRESS, "LC_ADDRESS"},
    {LC_TELEPHONE, "LC_TELEPHONE"},
    {LC_MEASUREMENT, "LC_MEASUREMENT"},
    {LC_IDENTIFICATION, "LC_IDENTIFICATION"},
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

std::optional<int> IntValue(PyObject* value) {
  if (!PyLong_Check(value)) return std::nullopt;
  int overflow = 0;
  long v = PyLong_AsLongAndOverflow(value, &overflow);
  if (overflow != 0 || v < INT_MIN || v > INT_MAX) return std::nullopt;
  return static_cast<int>(v);
}

// Argument i as text (str, or bytes as os.environ passes them), or nullopt.
std::optional<std::string> TextArg(PyObject* args, Py_ssize_t i) {
  if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) <= i) return std::nullopt;
  PyObject* value = PyTuple_GET_ITEM(args, i);
  if (PyBytes_Check(value)) {
    return std::string(PyBytes_AS_STRING(value), static_cast<size_t>(PyBytes_GET_SIZE(value)));
  }
  Py_ssize_t size = 0;
  const char* text = PyUnicode_Check(value) ? PyUnicode_AsUTF8AndSize(value, &size) : nullptr;
  if (text == nullptr) {
    PyErr_Clear();
    return std::nullopt;
  }
  return std::string(text, static_cast<size_t>(size));
}

std::optional<int> IntArg(PyObject* args, Py_ssize_t i) {
  if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) <= i) return std::nullopt;
  return IntValue(PyTuple_GET_ITEM(args, i));
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

// A module name the import gate's check is given: the name (a str), or a spec's
// `name`. Null for anything else (nothing to judge).
py::object ModuleName(PyObject* spec_or_name) {
  auto name = py::reinterpret_steal<py::object>(PyUnicode_Check(spec_or_name)
                                                    ? Py_NewRef(spec_or_name)
                                                    : PyObject_GetAttrString(spec_or_name, "name"));
  PyErr_Clear();
  return name;
}

// Where the last '.' of str `name` is: -1 if it has none, -2 with a Python error set.
Py_ssize_t LastDot(PyObject* name) {
  return PyUnicode_FindChar(name, '.', 0, PyUnicode_GET_LENGTH(name), -1);
}

// The absolute module name of an __import__(name, globals, locals, fromlist, level),
// built as a str (a name or package that is not UTF-8 text stays what it is, for the
// check to judge). An empty str when the arguments are not __import__'s (the original
// then raises python3's error); null with a Python error set when memory runs out.
py::object AbsoluteImportName(PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"name", "globals", "locals", "fromlist", "level", nullptr};
  PyObject *name = nullptr, *globals = nullptr, *locals = nullptr, *fromlist = nullptr;
  int level = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "U|OOOi:__import__", const_cast<char**>(keywords),
                                   &name, &globals, &locals, &fromlist, &level)) {
    PyErr_Clear();
    return py::reinterpret_steal<py::object>(PyUnicode_New(0, 0));
  }
  auto module = py::reinterpret_borrow<py::object>(name);
  if (level <= 0) return module;
  py::object package;
  if (globals != nullptr && PyDict_Check(globals)) {
    PyObject* value = PyDict_GetItemString(globals, "__package__");
    if (value == nullptr || !PyUnicode_Check(value))
      value = PyDict_GetItemString(globals, "__name__");
    if (value != nullptr && PyUnicode_Check(value))
      package = py::reinterpret_borrow<py::object>(value);
  }
  for (int i = 1; i < level && package && PyUnicode_GET_LENGTH(package.ptr()) > 0; ++i) {
    Py_ssize_t dot = LastDot(package.ptr());
    if (dot == -2) return py::object();
    package =
        py::reinterpret_steal<py::object>(PyUnicode_Substring(package.ptr(), 0, dot < 0 ? 0 : dot));
    if (!package) return package;
  }
  if (!package || PyUnicode_GET_LENGTH(package.ptr()) == 0) return module;
  if (PyUnicode_GET_LENGTH(name) == 0) return package;
  return py::reinterpret_steal<py::object>(PyUnicode_FromFormat("%U.%U", package.ptr(), name));
}

// The refusal for a descriptor the code does not own: python3's EBADF for one it
// closed itself (see Sandbox::Bury), else the rule.
PyObject* NotTheCodes(const Guard& guard, const Sandbox& sandbox, std::optional<int> fd) {
  if (fd && sandbox.IsBuried(*fd)) {
    errno = EBADF;
    return PyErr_SetFromErrno(PyExc_OSError);
  }
  return SetPermissionError(guard, "only on file descriptors the code opened itself");
}

PyObject* CallOriginal(const Guard& guard, PyObject* args, PyObject* kwargs) {
  return PyObject_Call(guard.original.ptr(), args, kwargs);
}

// One call of a guarded function, as its handler sees it.
struct Call {
  const Guard& guard;
  Sandbox* sandbox;  // the calling interpreter's; null outside sandboxes
  bool active;       // a sandbox past its first activation: a policy is in force
  PyObject* args;
  PyObject* kwargs;  // plain (PlainKeywords), or null

  PyObject* Original() const { return CallOriginal(guard, args, kwargs); }
  // PermissionError (or the guard's error type): "<name> is not available in pyhost: <why>".
  PyObject* Refuse(absl::string_view why) const { return SetPermissionError(guard, why); }
};

bool HardenOnExecution(Sandbox& sandbox, PyObject* module, const char* name);

// -1 or a descriptor the code opened; an int exactly (anything else could answer
// the check and the call differently).
bool ChildMayGet(Sandbox& sandbox, PyObject* value) {
  if (value == nullptr || !PyLong_CheckExact(value)) return false;
  int overflow = 0;
  long fd = PyLong_AsLongAndOverflow(value, &overflow);
  return overflow == 0 &&
         (fd == -1 || (fd >= 0 && fd <= INT_MAX && sandbox.OwnsFd(static_cast<int>(fd))));
}

// os.open(path, flags, mode=0o777, *, dir_fd=None) with a dir_fd. Its "open" audit
// event does not carry the dir_fd, so the guard announces it to the hook for the path
// object it passes on, having made every argument a plain object first: no code of
// the caller's (__fspath__, __index__) runs between the announcement and the event.
PyObject* OsOpenAt(const Guard& guard, Sandbox& sandbox, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"path", "flags", "mode", "dir_fd", nullptr};
  PyObject *path = nullptr, *flags = nullptr, *mode = nullptr, *dir_fd = nullptr;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|O$O:open", const_cast<char**>(keywords), &path,
                                   &flags, &mode, &dir_fd)) {
    return nullptr;
  }
  auto plain_path = py::reinterpret_steal<py::object>(PyOS_FSPath(path));
  auto plain_flags =
      py::reinterpret_steal<py::object>(plain_path ? PyNumber_Index(flags) : nullptr);
  auto plain_mode = py::reinterpret_steal<py::object>(!plain_flags      ? nullptr
                                                      : mode != nullptr ? PyNumber_Index(mode)
                                                                        : PyLong_FromLong(0777));
  auto plain_dir_fd =
      py::reinterpret_steal<py::object>(plain_mode ? PyNumber_Index(dir_fd) : nullptr);
  if (!plain_dir_fd) return nullptr;
  auto plain_args = py::reinterpret_steal<py::object>(
      PyTuple_Pack(3, plain_path.ptr(), plain_flags.ptr(), plain_mode.ptr()));
  auto plain_kwargs = py::reinterpret_steal<py::object>(PyDict_New());
  if (!plain_args || !plain_kwargs ||
      PyDict_SetItemString(plain_kwargs.ptr(), "dir_fd", plain_dir_fd.ptr()) != 0) {
    return nullptr;
  }
  std::optional<int> fd = IntValue(plain_dir_fd.ptr());
  sandbox.ExpectOpenAt(plain_path.ptr(), fd.value_or(-1));
  PyObject* result = CallOriginal(guard, plain_args.ptr(), plain_kwargs.ptr());
  sandbox.ExpectOpenAt(nullptr, -1);
  if (result != nullptr) RecordFds(sandbox, result);
  return result;
}

// What a path argument names, as the bytes the kernel gets (str: the filesystem
// encoding, as posixmodule does). nullopt with a Python error set.
std::optional<std::string> PathBytes(PyObject* path) {
  auto fspath = py::reinterpret_steal<py::object>(PyOS_FSPath(path));
  auto bytes = py::reinterpret_steal<py::object>(!fspath ? nullptr
                                                 : PyBytes_Check(fspath.ptr())
                                                     ? Py_NewRef(fspath.ptr())
                                                     : PyUnicode_EncodeFSDefault(fspath.ptr()));
  if (!bytes) return std::nullopt;
  return std::string(PyBytes_AS_STRING(bytes.ptr()),
                     static_cast<size_t>(PyBytes_GET_SIZE(bytes.ptr())));
}

// os.posix_spawn[p](..., file_actions=[...]): the actions run in the child, which
// holds copies of the host's descriptors until it execs. Each is copied as plain
// values, checked (DUP2: the code's descriptor; OPEN: a path judged as an open
// here), and the copies are what the original gets. Null with an error if refused.
py::object CheckedFileActions(const Guard& guard, Sandbox& sandbox, PyObject* actions) {
  auto items = py::reinterpret_steal<py::object>(PySequence_Tuple(actions));
  auto checked = py::reinterpret_steal<py::object>(items ? PyList_New(0) : nullptr);
  if (!checked) return py::object();
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(items.ptr()); ++i) {
    auto action =
        py::reinterpret_steal<py::object>(PySequence_Tuple(PyTuple_GET_ITEM(items.ptr(), i)));
    if (!action) return py::object();
    Py_ssize_t size = PyTuple_GET_SIZE(action.ptr());
    std::vector<py::object> plain;
    for (Py_ssize_t j = 0; j < size; ++j) {
      PyObject* item = PyTuple_GET_ITEM(action.ptr(), j);
      // (OPEN, fd, path, flags, mode): the path stays a path; everything else an int.
      plain.push_back(py::reinterpret_steal<py::object>(
          j == 2 && size == 5 ? PyOS_FSPath(item) : PyNumber_Index(item)));
      if (!plain.back()) return py::object();
    }
    std::optional<int> tag = size > 0 ? IntValue(plain[0].ptr()) : std::nullopt;
    if (tag == 0 && size == 5) {  // POSIX_SPAWN_OPEN
      std::optional<std::string> path = PathBytes(plain[2].ptr());
      std::optional<int> flags = IntValue(plain[3].ptr());
      if (!path || !flags) return py::object();
      if (sandbox.JudgePath(*path, Sandbox::FlagsWrite(*flags) ? Sandbox::FileAccess::kWrite
                                                               : Sandbox::FileAccess::kRead) !=
          Sandbox::PathVerdict::kAllowed) {
        SetPermissionError(guard,
                           absl::StrCat("file_actions may not open '", *path,
                                        "' (outside the policy's paths, or a host descriptor)"));
        return py::object();
      }
    } else if (tag == 2 && size == 3 &&
               !ChildMayGet(sandbox, plain[1].ptr())) {  // POSIX_SPAWN_DUP2
      SetPermissionError(guard, "file_actions may only dup2 a descriptor the code opened itself");
      return py::object();
    }
    auto tuple = py::reinterpret_steal<py::object>(PyTuple_New(size));
    if (!tuple) return py::object();
    for (Py_ssize_t j = 0; j < size; ++j)
      PyTuple_SET_ITEM(tuple.ptr(), j, plain[j].release().ptr());
    if (PyList_Append(checked.ptr(), tuple.ptr()) != 0) return py::object();
  }
  return checked;
}

// Hardens a builtin module that is not loaded at interpreter creation when importlib
// creates it (below, after Hardener). Error: a Python error is set.
absl::Status HardenCreatedModule(Sandbox& sandbox, const std::string& name,
                                 const py::object& module);

// --- the handlers: what each guarded function does instead of its original ---------

// os._exit(n): ends the execution like sys.exit(n); in a process of its own, the process.
PyObject* Exit(const Call& c) {
  if (c.sandbox != nullptr && c.sandbox->own_process()) return c.Original();
  PyObject* code =
      PyTuple_Check(c.args) && PyTuple_GET_SIZE(c.args) > 0 ? PyTuple_GET_ITEM(c.args, 0) : Py_None;
  PyErr_SetObject(PyExc_SystemExit, code);
  return nullptr;
}

PyObject* HostOnly(const Call& c) {  // changes the whole process: refused
  return c.Refuse("it acts on the host process or machine, outside the execution");
}

// os.putenv/unsetenv: os.environ is the execution's own copy. TZ is remembered,
// time.tzset() needs it.
PyObject* Putenv(const Call& c) {  // putenv(key, value)
  std::optional<std::string> key = TextArg(c.args, 0);
  if (c.active && key && *key == "TZ") c.sandbox->RecordEnvironTz(TextArg(c.args, 1));
  Py_RETURN_NONE;
}

PyObject* Unsetenv(const Call& c) {  // unsetenv(key)
  std::optional<std::string> key = TextArg(c.args, 0);
  if (c.active && key && *key == "TZ") c.sandbox->RecordEnvironTz(std::nullopt);
  Py_RETURN_NONE;
}

PyObject* FdUse(const Call& c) {  // acts on an existing descriptor (first argument)
  std::optional<int> fd = IntArg(c.args, 0);
  if (c.active && !(fd && c.sandbox->OwnsFd(*fd))) return NotTheCodes(c.guard, *c.sandbox, fd);
  return c.Original();
}

PyObject* FdClose(const Call& c) {  // os.close, socket.close: the sandbox closes or buries it
  std::optional<int> fd = IntArg(c.args, 0);
  if (!c.active) return c.Original();
  if (!(fd && c.sandbox->OwnsFd(*fd))) return NotTheCodes(c.guard, *c.sandbox, fd);
  c.sandbox->Close(*fd);
  Py_RETURN_NONE;
}

PyObject* FdUseTwo(const Call& c) {  // acts on two existing descriptors (first and second)
  std::optional<int> out = IntArg(c.args, 0), in = IntArg(c.args, 1);
  if (c.active && !(out && c.sandbox->OwnsFd(*out))) return NotTheCodes(c.guard, *c.sandbox, out);
  if (c.active && !(in && c.sandbox->OwnsFd(*in))) return NotTheCodes(c.guard, *c.sandbox, in);
  return c.Original();
}

// Waiting for a child: only a specific pid, only if processes are allowed. wait(),
// waitpid(-1 or 0) would reap the host's own children.
PyObject* RefuseWait(const Call& c) {
  return c.Refuse(
      "only for a child the code started, by its pid, under a policy that allows "
      "processes");
}

PyObject* WaitAnyChild(const Call& c) {  // os.wait, os.wait3: never a specific child
  return c.active ? RefuseWait(c) : c.Original();
}

PyObject* WaitChild(const Call& c) {  // os.wait4, waitpid, waitid: the first argument
  std::optional<int> pid = IntArg(c.args, 0);
  if (c.active && !(pid && *pid > 0 && c.sandbox->policy().processes)) return RefuseWait(c);
  return c.Original();
}

PyObject* FdDup2(const Call& c) {  // dup2(fd, fd2): fd owned, fd2 owned or not open
  if (c.active && !c.sandbox->CheckDescriptorCap()) return nullptr;
  std::optional<int> fd = IntArg(c.args, 0), fd2 = IntArg(c.args, 1);
  bool fd2_free = fd2 && fcntl(*fd2, F_GETFD) == -1;
  fd2_free = fd2_free || (fd2 && c.active && c.sandbox->IsBuried(*fd2));  // closed by the code
  if (c.active && !(fd && fd2 && c.sandbox->OwnsFd(*fd) && (fd2_free || c.sandbox->OwnsFd(*fd2)))) {
    return c.Refuse("only between file descriptors the code opened itself");
  }
  PyObject* result = c.Original();
  if (result != nullptr && c.active) c.sandbox->RecordFd(*fd2);
  return result;
}

PyObject* FdCreate(const Call& c) {  // returns new descriptors: remembered as the code's
  if (c.active && !c.sandbox->CheckDescriptorCap()) return nullptr;
  PyObject* result = c.Original();
  if (result != nullptr && c.active) RecordFds(*c.sandbox, result);
  return result;
}

PyObject* FdDup(const Call& c) {  // os.dup, socket.dup: a new descriptor of one the code owns
  if (c.active && !c.sandbox->CheckDescriptorCap()) return nullptr;
  if (c.active) {
    std::optional<int> fd = IntArg(c.args, 0);
    if (!(fd && c.sandbox->OwnsFd(*fd))) return NotTheCodes(c.guard, *c.sandbox, fd);
  }
  PyObject* result = c.Original();
  if (result != nullptr && c.active) RecordFds(*c.sandbox, result);
  return result;
}

PyObject* AuditHook(const Call& c) {  // sys.addaudithook: not under an enforcing policy
  // A hook of the code's runs between pyhost's checks and what they allow (it could
  // swap a checked symlink before the open that follows it).
  if (c.active && c.sandbox->policy().enforce) {
    return c.Refuse(absl::StrCat("under policy '", c.sandbox->policy().name,
                                 "' the code cannot hook pyhost's checks"));
  }
  return c.Original();
}

PyObject* ThreadStart(const Call& c) {  // by Policy::threads
  if (c.active && !c.sandbox->policy().threads) {
    std::string message =
        absl::StrCat("starting threads denied by pyhost policy '", c.sandbox->policy().name, "'");
    PyErr_SetString(PyExc_PermissionError, message.c_str());
    return nullptr;
  }
  return c.Original();
}

PyObject* RecursionLimit(const Call& c) {  // capped
  std::optional<int> limit = IntArg(c.args, 0);
  if (limit && *limit > kMaxRecursionLimit) {
    std::string message = absl::StrCat(
        "sys.setrecursionlimit(", *limit, ") is above pyhost's cap of ", kMaxRecursionLimit,
        " (deep C recursion would overflow the host thread's stack)");
    PyErr_SetString(PyExc_RecursionError, message.c_str());
    return nullptr;
  }
  return c.Original();
}

// _imp.create_builtin(spec), _imp.create_dynamic(spec, file=None) (`dynamic`: an
// extension module).
PyObject* CreateModule(const Call& c, bool dynamic) {
  Sandbox* sandbox = c.sandbox;
  // Only importlib's own ModuleSpec, whose name is a plain str in its __dict__:
  // a look-alike could answer one name to the check and another to the call.
  bool no_keywords = c.kwargs == nullptr || PyDict_GET_SIZE(c.kwargs) == 0;
  PyObject* spec = PyTuple_Check(c.args) && PyTuple_GET_SIZE(c.args) == 1 && no_keywords
                       ? PyTuple_GET_ITEM(c.args, 0)
                       : nullptr;
  PyObject* spec_dict =
      spec != nullptr && sandbox != nullptr &&
              reinterpret_cast<PyObject*>(Py_TYPE(spec)) == sandbox->module_spec_type()
          ? PyObject_GenericGetDict(spec, nullptr)
          : nullptr;
  auto owned_dict = py::reinterpret_steal<py::object>(spec_dict);
  PyObject* name = spec_dict != nullptr ? PyDict_GetItemString(spec_dict, "name") : nullptr;
  if (name == nullptr || !PyUnicode_CheckExact(name)) {
    PyErr_Clear();
    if (sandbox != nullptr) return c.Refuse("only importlib's own module specs");
    return c.Original();
  }
  std::optional<std::string> module = Utf8(name);  // nullopt: sealed names are ASCII
  PyObject* origin = PyDict_GetItemString(spec_dict, "origin");
  if (dynamic && sandbox != nullptr) {
    // The init function is found by the name's last part, in the file at origin:
    // only a file directly in the stdlib's extension directory (no "..", no
    // subdirectory: nothing the code could have written or linked), and never a
    // hardened module's init.
    std::optional<std::string> path =
        origin != nullptr && PyUnicode_CheckExact(origin) ? FsEncoded(origin) : std::nullopt;
    const std::string dynload = StdlibDir() + "/lib-dynload/";
    bool in_dynload = path && absl::StartsWith(*path, dynload) && path->size() > dynload.size() &&
                      (*path)[dynload.size()] != '.' &&
                      path->find('/', dynload.size()) == std::string::npos &&
                      path->find('\0') == std::string::npos;
    Py_ssize_t dot = LastDot(name);
    auto last = py::reinterpret_steal<py::object>(
        dot == -2 ? nullptr : PyUnicode_Substring(name, dot + 1, PyUnicode_GET_LENGTH(name)));
    std::optional<std::string> last_text = last ? Utf8(last.ptr()) : std::nullopt;
    // A package directory's extensions (process isolation's workers): anywhere under
    // it, by a path without "." or ".." parts.
    bool in_packages = false;
    for (const std::string& dir : sandbox->extension_dirs()) {
      in_packages =
          in_packages ||
          (path && absl::StartsWith(*path, dir + "/") && path->find("/./") == std::string::npos &&
           path->find("/../") == std::string::npos && path->find('\0') == std::string::npos);
    }
    if ((!in_dynload && !in_packages) || !last || (last_text && sandbox->IsSealed(*last_text))) {
      PyErr_Clear();
      return c.Refuse(
          "only the stdlib's own extension modules (a policy's packages' "
          "only in process isolation)");
    }
  }
  if (sandbox != nullptr && module && sandbox->IsSealed(*module)) {
    return c.Refuse(absl::StrCat("module '", *module, "' cannot be created again"));
  }
  if (c.active && !CheckImportName(*sandbox, name)) return nullptr;
  // The call reads the spec's attributes again, through its class, which the code
  // can change (a property `origin` would name another file): it gets a namespace
  // holding exactly what was checked.
  auto checked = py::reinterpret_steal<py::object>(PyDict_New());
  if (!checked || PyDict_SetItemString(checked.ptr(), "name", name) != 0 ||
      PyDict_SetItemString(checked.ptr(), "origin", origin != nullptr ? origin : Py_None) != 0) {
    return nullptr;
  }
  auto frozen_spec = py::reinterpret_steal<py::object>(_PyNamespace_New(checked.ptr()));
  if (!frozen_spec) return nullptr;
  auto created = py::reinterpret_steal<py::object>(
      PyObject_CallOneArg(c.guard.original.ptr(), frozen_spec.ptr()));
  if (created && sandbox != nullptr && module &&
      !HardenCreatedModule(*sandbox, *module, created).ok()) {
    return nullptr;
  }
  return created.release().ptr();
}

PyObject* CreateBuiltin(const Call& c) { return CreateModule(c, /*dynamic=*/false); }
PyObject* CreateDynamic(const Call& c) { return CreateModule(c, /*dynamic=*/true); }

// _imp.exec_builtin(module), _imp.exec_dynamic(module): both run any module's body
// (exec_builtin a dynamic one's too); a body whose objects pyhost guards is guarded as
// soon as it ran, before the code has them.
PyObject* ExecModule(const Call& c) {
  PyObject* module =
      PyTuple_Check(c.args) && PyTuple_GET_SIZE(c.args) > 0 ? PyTuple_GET_ITEM(c.args, 0) : nullptr;
  PyModuleDef* def =
      module != nullptr && PyModule_Check(module) ? PyModule_GetDef(module) : nullptr;
  PyErr_Clear();
  if (c.sandbox != nullptr && def != nullptr && c.sandbox->IsSealedDef(def)) {
    return c.Refuse("a hardened module cannot be executed again");
  }
  PyObject* result = c.Original();
  // Modules hardened when first executed, not at creation: importing them ahead
  // would put them in sys.modules, where imports the policy denies would find them.
  if (result != nullptr && def != nullptr && c.sandbox != nullptr &&
      !HardenOnExecution(*c.sandbox, module, def->m_name)) {
    Py_DECREF(result);
    return nullptr;
  }
  return result;
}

PyObject* Import(const Call& c) {  // builtins.__import__
  if (!c.active) return c.Original();
  py::object module = AbsoluteImportName(c.args, c.kwargs);
  if (!module || !CheckImportName(*c.sandbox, module.ptr(), /*through_importlib=*/false)) {
    return nullptr;
  }
  return c.Original();
}

PyObject* ImportCheck(const Call& c) {  // the meta-path finder's check(name)
  py::object module = PyTuple_Check(c.args) && PyTuple_GET_SIZE(c.args) > 0
                          ? ModuleName(PyTuple_GET_ITEM(c.args, 0))
                          : py::object();
  if (c.active && !CheckImportName(*c.sandbox, module.ptr())) return nullptr;
  Py_RETURN_NONE;
}

PyObject* ImportlibOnly(const Call& c) {  // only importlib itself may call it (the import lock)
  if (c.active && !CallerIsImportMachinery()) return c.Refuse("only importlib itself may call it");
  return c.Original();
}

// _imp._fix_co_filename(code, source_path): renames code and its nested code to the
// file importlib found. importlib calls it on a loader the code may have written, so
// a name in the stdlib is kept only if the code already had it (bytecode claiming the
// stdlib is checked when loaded): renamed code would pass for the stdlib's.
PyObject* FixCoFilename(const Call& c) {
  if (c.active && !CallerIsImportMachinery()) return c.Refuse("only importlib itself may call it");
  PyObject* code = PyTuple_Check(c.args) && PyTuple_GET_SIZE(c.args) == 2
                       ? PyTuple_GET_ITEM(c.args, 0)
                       : nullptr;
  PyObject* path = code != nullptr ? PyTuple_GET_ITEM(c.args, 1) : nullptr;
  if (c.active && c.sandbox->policy().enforce && code != nullptr && PyCode_Check(code) &&
      PyUnicode_Check(path)) {
    PyObject* current = reinterpret_cast<PyCodeObject*>(code)->co_filename;
    // A name that is not UTF-8 text is never trusted (audit_hook.cc reads it as ""),
    // so renaming to one claims nothing.
    std::optional<std::string> target = Utf8(path);
    if (target && IsTrustedFilename(*target, StdlibDir()) &&
        PyUnicode_Compare(current, path) != 0) {
      return c.Refuse("code may not be renamed into the stdlib");
    }
  }
  return c.Original();
}

// locale.setlocale(category, locale=None): queries and no-ops only (the locale is
// process-wide). A str changes the process's locale, unless it is the one in force
// (then its name is the answer, as setlocale gives it). Other values are the
// original's TypeError to raise.
PyObject* Setlocale(const Call& c) {
  PyObject* value = PyTuple_Check(c.args) && PyTuple_GET_SIZE(c.args) > 1
                        ? PyTuple_GET_ITEM(c.args, 1)
                    : c.kwargs != nullptr ? PyDict_GetItemString(c.kwargs, "locale")
                                          : nullptr;
  std::optional<int> category = IntArg(c.args, 0);
  if (c.active && value != nullptr && PyUnicode_Check(value)) {
    const char* text = PyUnicode_AsUTF8(value);
    if (text == nullptr) return nullptr;
    if (category && LocaleUnchanged(*category, text)) {
      return PyUnicode_DecodeLocale(setlocale(*category, nullptr), nullptr);
    }
    return c.Refuse(
        "the locale belongs to the whole host process "
        "(setlocale(category) without a value may query it)");
  }
  return c.Original();
}

// time.tzset/mktime: they read the process's TZ, not os.environ's. The C library's
// time zone is the process's, read from the process's TZ: with the execution's TZ
// changed, python3 would switch zones and pyhost would not.
PyObject* TimeZone(const Call& c) {
  const auto& tz = c.active ? c.sandbox->environ_tz() : std::nullopt;
  const char* process_tz = getenv("TZ");
  if (tz && (*tz ? process_tz == nullptr || **tz != process_tz : process_tz != nullptr)) {
    return c.Refuse(
        absl::StrCat("os.environ['TZ'] is ", *tz ? absl::StrCat("'", **tz, "'") : "unset",
                     " but the time zone belongs to the whole host process (TZ ",
                     process_tz ? absl::StrCat("'", process_tz, "'") : "unset",
                     "): local time cannot change for one execution; use zoneinfo.ZoneInfo(...) "
                     "with datetime instead"));
  }
  return c.Original();
}

// locale.textdomain(domain) (the value at 0), bindtextdomain(domain, dir) and
// bind_textdomain_codeset(domain, codeset) (at 1): queries only, None asks for the
// current value (the domain is process-wide).
template <Py_ssize_t kValue>
PyObject* GettextQuery(const Call& c) {
  PyObject* value = PyTuple_Check(c.args) && PyTuple_GET_SIZE(c.args) > kValue
                        ? PyTuple_GET_ITEM(c.args, kValue)
                        : Py_None;
  if (c.active && value != Py_None) {
    return c.Refuse(
        "the message catalogs belong to the whole host "
        "process (None as the value may query them)");
  }
  return c.Original();
}

// socket.setdefaulttimeout: this interpreter's own default. The original parses and
// normalizes; the process's default is put back at once (nothing runs in between)
// and the value kept for this interpreter's sockets. The partner is the original
// getdefaulttimeout.
PyObject* SetDefaultTimeout(const Call& c) {
  if (c.sandbox == nullptr) return c.Original();
  auto previous = py::reinterpret_steal<py::object>(PyObject_CallNoArgs(c.guard.partner.ptr()));
  if (!previous) return nullptr;
  auto set = py::reinterpret_steal<py::object>(c.Original());
  if (!set) return nullptr;
  auto value = py::reinterpret_steal<py::object>(PyObject_CallNoArgs(c.guard.partner.ptr()));
  auto restored = py::reinterpret_steal<py::object>(
      PyObject_CallOneArg(c.guard.original.ptr(), previous.ptr()));
  if (!value || !restored) return nullptr;
  c.sandbox->set_socket_default_timeout(value.ptr() == Py_None ? -1.0
                                                               : PyFloat_AsDouble(value.ptr()));
  Py_RETURN_NONE;
}

PyObject* GetDefaultTimeout(const Call& c) {  // socket.getdefaulttimeout: this interpreter's
  std::optional<double> own =
      c.sandbox != nullptr ? c.sandbox->socket_default_timeout() : std::nullopt;
  if (!own) return c.Original();
  if (*own < 0) Py_RETURN_NONE;
  return PyFloat_FromDouble(*own);
}

// builtins.open / io.open(file, mode, buffering, encoding, errors, newline, closefd,
// opener): the audit event names `file`, but an opener may hand back any descriptor.
PyObject* Open(const Call& c) {
  if (!c.active) return c.Original();
  constexpr Py_ssize_t kOpenerPosition = 7;
  py::object checked_args, checked_kwargs;
  if (!WrapOpener(c.args, c.kwargs, kOpenerPosition, &checked_args, &checked_kwargs))
    return nullptr;
  return CallOriginal(c.guard, checked_args.ptr(), checked_kwargs.ptr());
}

PyObject* FdStat(const Call& c) {  // os.fstat & co.: python3's EBADF for a number the code closed
  std::optional<int> fd = IntArg(c.args, 0);
  if (c.active && fd && c.sandbox->IsBuried(*fd)) return NotTheCodes(c.guard, *c.sandbox, fd);
  return c.Original();
}

PyObject* Fcntl(const Call& c) {  // fcntl.fcntl: F_DUPFD makes a descriptor (counted, the code's)
  std::optional<int> command = IntArg(c.args, 1);
  const bool dups = command && (*command == F_DUPFD || *command == F_DUPFD_CLOEXEC);
  if (!c.active || !dups) return c.Original();
  if (!c.sandbox->CheckDescriptorCap()) return nullptr;
  PyObject* result = c.Original();
  if (result != nullptr && PyLong_Check(result)) RecordFds(*c.sandbox, result);
  return result;
}

PyObject* Sleep(const Call& c) {  // time.sleep: woken early by a Cancellation
  if (c.kwargs != nullptr && PyDict_GET_SIZE(c.kwargs) > 0) {
    PyErr_SetString(PyExc_TypeError, "time.sleep() takes no keyword arguments");
    return nullptr;
  }
  if (!PyTuple_Check(c.args) || PyTuple_GET_SIZE(c.args) != 1) {
    PyErr_Format(PyExc_TypeError, "time.sleep() takes exactly one argument (%zd given)",
                 PyTuple_Check(c.args) ? PyTuple_GET_SIZE(c.args) : 0);
    return nullptr;
  }
  return InterruptibleSleep(PyTuple_GET_ITEM(c.args, 0));
}

PyObject* Select(const Call& c) {  // select.select: in slices, woken by a Cancellation
  return SelectSliced(c.args, c.kwargs,
                      [&c](PyObject* args) { return CallOriginal(c.guard, args, c.kwargs); });
}

PyObject* OsOpen(const Call& c) {  // os.open: a dir_fd is handed to the "open" audit rule
  PyObject* dir_fd = c.kwargs != nullptr ? PyDict_GetItemString(c.kwargs, "dir_fd") : nullptr;
  if (c.active && !c.sandbox->CheckDescriptorCap()) return nullptr;
  if (c.active && dir_fd != nullptr && dir_fd != Py_None)
    return OsOpenAt(c.guard, *c.sandbox, c.args, c.kwargs);
  PyObject* result = c.Original();
  if (result != nullptr && c.active) RecordFds(*c.sandbox, result);
  return result;
}

// _posixsubprocess.fork_exec(args, executable_list, close_fds, pass_fds, cwd, env,
// p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite, errpipe_read,
// errpipe_write, ...): the child gets only the code's descriptors. It keeps pass_fds
// and errpipe_write and gets p2cread, c2pwrite and errwrite as its 0, 1 and 2. The
// other ends are the parent's, closed in the child. subprocess's own audit event
// ("subprocess.Popen") is not raised when fork_exec is called directly: the policy's
// process rule is applied here too.
PyObject* ChildFds(const Call& c) {
  if (!c.active) return c.Original();
  if (!c.sandbox->policy().processes) {
    PyErr_SetString(PyExc_PermissionError,
                    absl::StrCat(c.guard.name, " denied by pyhost policy '",
                                 c.sandbox->policy().name, "': processes are not allowed")
                        .c_str());
    return nullptr;
  }
  bool plain = PyTuple_Check(c.args) && PyTuple_GET_SIZE(c.args) > 13 &&
               (c.kwargs == nullptr || PyDict_GET_SIZE(c.kwargs) == 0) &&
               PyTuple_CheckExact(PyTuple_GET_ITEM(c.args, 3));
  for (Py_ssize_t i : {6, 9, 11, 13})
    plain = plain && ChildMayGet(*c.sandbox, PyTuple_GET_ITEM(c.args, i));
  PyObject* pass_fds = plain ? PyTuple_GET_ITEM(c.args, 3) : nullptr;
  for (Py_ssize_t i = 0; plain && i < PyTuple_GET_SIZE(pass_fds); ++i) {
    plain = ChildMayGet(*c.sandbox, PyTuple_GET_ITEM(pass_fds, i));
  }
  if (!plain) {
    return c.Refuse(
        "a child process gets only descriptors the code opened itself (not the host's)");
  }
  return c.Original();
}

// os.posix_spawn[p]: file actions only on the code's descriptors and paths.
PyObject* Spawn(const Call& c) {
  PyObject* actions =
      c.kwargs != nullptr ? PyDict_GetItemString(c.kwargs, "file_actions") : nullptr;
  if (!c.active || actions == nullptr || actions == Py_None) return c.Original();
  py::object checked = CheckedFileActions(c.guard, *c.sandbox, actions);
  auto copy = py::reinterpret_steal<py::object>(checked ? PyDict_Copy(c.kwargs) : nullptr);
  if (!copy || PyDict_SetItemString(copy.ptr(), "file_actions", checked.ptr()) != 0) return nullptr;
  return CallOriginal(c.guard, c.args, copy.ptr());
}

// socket.getaddrinfo: remembers the addresses an allowed name resolved to. Only the
// answers for an allowed *name* are remembered (getaddrinfo(None, ...) answers the
// local addresses, which no allowlist named).
PyObject* GetAddrInfo(const Call& c) {
  PyObject* result = c.Original();
  if (result == nullptr || !c.active || !PyList_Check(result)) return result;
  PyObject* host =
      PyTuple_Check(c.args) && PyTuple_GET_SIZE(c.args) > 0 ? PyTuple_GET_ITEM(c.args, 0) : nullptr;
  std::optional<std::string> host_text = Utf8(host);
  if (!host_text || !c.sandbox->HostAllowed(*host_text)) return result;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(result); ++i) {
    PyObject* entry = PyList_GET_ITEM(result, i);  // (family, type, proto, name, sockaddr)
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) < 5) continue;
    PyObject* sockaddr = PyTuple_GET_ITEM(entry, 4);
    if (!PyTuple_Check(sockaddr) || PyTuple_GET_SIZE(sockaddr) < 1) continue;
    if (std::optional<std::string> ip = Utf8(PyTuple_GET_ITEM(sockaddr, 0))) {
      c.sandbox->RecordResolved(*ip);
    }
  }
  return result;
}

PyObject* GuardedCall(PyObject* self, PyObject* args, PyObject* kwargs) {
  Guard* guard = GuardOf(self);
  if (guard == nullptr) return nullptr;
  Sandbox* sandbox = Sandbox::Current();
  const bool active = sandbox != nullptr && !sandbox->host_mode();
  py::object plain_kwargs = PlainKeywords(kwargs);  // what the guard reads, the original gets
  if (kwargs != nullptr && !plain_kwargs) return nullptr;
  return guard->handler(Call{*guard, sandbox, active, args, plain_kwargs.ptr()});
}

// --- the table: every function pyhost replaces, and its handler -------------------

// Functions of one module that one handler guards. The module object they are
// replaced in is `module`; a guard goes by `shown_as`.<function> (its name in
// messages; its repr, pickling and __module__ are the original's).
struct GuardRow {
  const char* module;
  const char* shown_as;
  std::vector<const char*> functions;
  Handler handler;
  const char* partner = nullptr;       // another original of the module the handler calls
  const char* refusal_base = nullptr;  // the module's exception refusals also are
};

const std::vector<GuardRow>& GuardTable() {
  static const auto* rows = new std::vector<GuardRow>{
      // Hardened with every interpreter (HardenInterpreter), in the order it names
      // the modules.
      {"posix", "os", {"_exit"}, Exit},
      {"posix",
       "os",
       {"abort",
        "chdir",
        "fchdir",
        "chroot",
        "umask",
        "setuid",
        "setgid",
        "seteuid",
        "setegid",
        "setreuid",
        "setregid",
        "setresuid",
        "setresgid",
        "setgroups",
        "initgroups",
        "setsid",
        "setpgid",
        "setpgrp",
        "setpriority",
        "nice",
        "sched_setaffinity",
        "sched_setscheduler",
        "sched_setparam",
        "closerange",
        "login_tty",
        "tcsetpgrp",
        "mkfifo",
        "mknod"},
       HostOnly},
      {"posix", "os", {"putenv"}, Putenv},
      {"posix", "os", {"unsetenv"}, Unsetenv},
      {"posix", "os", {"close"}, FdClose},
      {"posix",
       "os",
       {"write",           "writev",          "pwrite",        "pwritev",   "read",
        "readv",           "pread",           "preadv",        "lseek",     "ftruncate",
        "fchmod",          "fchown",          "fsync",         "fdatasync", "set_blocking",
        "set_inheritable", "posix_fallocate", "posix_fadvise", "lockf",     "eventfd_read",
        "eventfd_write"},
       FdUse},
      {"posix", "os", {"sendfile", "copy_file_range", "splice"}, FdUseTwo},
      {"posix", "os", {"wait", "wait3"}, WaitAnyChild},
      {"posix", "os", {"wait4", "waitpid", "waitid"}, WaitChild},
      {"posix", "os", {"dup2"}, FdDup2},
      {"posix", "os", {"fstat", "fstatvfs", "isatty"}, FdStat},
      {"posix", "os", {"open"}, OsOpen},
      {"posix", "os", {"dup"}, FdDup},
      {"posix",
       "os",
       {"pipe", "pipe2", "openpty", "memfd_create", "eventfd", "pidfd_open"},
       FdCreate},
      {"posix", "os", {"posix_spawn", "posix_spawnp"}, Spawn},
      {"time", "time", {"clock_settime", "clock_settime_ns"}, HostOnly},
      {"time", "time", {"sleep"}, Sleep},
      {"time", "time", {"tzset", "mktime"}, TimeZone},
      {"_thread", "_thread", {"start_new_thread", "start_new"}, ThreadStart},
      {"_thread", "_thread", {"interrupt_main"}, HostOnly},
      {"_signal",
       "signal",
       {"signal", "alarm", "setitimer", "pthread_kill", "pthread_sigmask", "raise_signal",
        "set_wakeup_fd", "siginterrupt", "sigwait", "sigwaitinfo", "sigtimedwait",
        "pidfd_send_signal"},
       HostOnly},
      {"sys", "sys", {"setrecursionlimit"}, RecursionLimit},
      {"sys", "sys", {"addaudithook"}, AuditHook},
      {"sys", "sys", {"setswitchinterval", "setdlopenflags"}, HostOnly},
      {"_socket", "socket", {"getaddrinfo"}, GetAddrInfo},
      {"_socket", "socket", {"close"}, FdClose},
      {"_socket", "socket", {"dup"}, FdDup},
      // The process has one default timeout; each interpreter gets its own (the setter
      // first: its guard keeps the original getter).
      {"_socket", "socket", {"setdefaulttimeout"}, SetDefaultTimeout, "getdefaulttimeout"},
      {"_socket", "socket", {"getdefaulttimeout"}, GetDefaultTimeout},
      // Tracing allocations is process-wide on 3.11 (runtime state, every interpreter).
      {"_tracemalloc", "tracemalloc", {"start", "stop", "clear_traces", "reset_peak"}, HostOnly},
      {"_locale", "locale", {"setlocale"}, Setlocale, nullptr, "Error"},
      {"_locale", "locale", {"textdomain"}, GettextQuery<0>},
      {"_locale", "locale", {"bindtextdomain", "bind_textdomain_codeset"}, GettextQuery<1>},
      {"builtins", "builtins", {"__import__"}, Import},
      {"builtins", "builtins", {"open"}, Open},
      // Every distinct _imp importlib holds.
      {"_imp", "_imp", {"create_builtin"}, CreateBuiltin},
      {"_imp", "_imp", {"exec_builtin", "exec_dynamic"}, ExecModule},
      {"_imp", "_imp", {"_fix_co_filename"}, FixCoFilename},
      // The import lock is the whole process's on 3.11: held, every import hangs.
      {"_imp", "_imp", {"acquire_lock", "release_lock"}, ImportlibOnly},
      {"_imp", "_imp", {"create_dynamic"}, CreateDynamic},
      // Hardened when importlib creates the module (HardenCreatedModule).
      {"_posixsubprocess", "_posixsubprocess", {"fork_exec"}, ChildFds},
      // Hardened each time the module is executed (HardenOnExecution).
      {"fcntl", "fcntl", {"fcntl"}, Fcntl},
      {"select", "select", {"select"}, Select},
  };
  return *rows;
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
    def = new PyMethodDef{names->back().c_str(),
                          reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(GuardedCall)),
                          METH_VARARGS | METH_KEYWORDS, doc};
  }
  return def;
}

// A C function running GuardedCall for `handler`, with the original's name, doc and
// __module__; its __self__ holds the guard (kGuardStateDef). Null with a Python error
// on failure.
py::object MakeGuard(Handler handler, const std::string& name, py::object original,
                     py::object error_type = py::object(), py::object partner = py::object()) {
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
  *slot = new Guard{handler, name, std::move(original), std::move(error_type), std::move(partner)};
  return py::reinterpret_steal<py::object>(PyCFunction_NewEx(def, state.ptr(), module_name.ptr()));
}

class Hardener {
 public:
  explicit Hardener(Sandbox& sandbox) : sandbox_(sandbox) {}

  absl::Status Module(const char* module_name) {
    auto module = py::reinterpret_steal<py::object>(PyImport_ImportModule(module_name));
    if (!module) return StatusFromPythonError(absl::StrCat("hardening: import ", module_name));
    return Module(std::move(module), module_name);
  }

  // `seal`: kAll, the module is never to be created or executed again (hardened at
  // interpreter creation); kName, a module importlib has created but not executed
  // yet; kNone, modules hardened as they are executed (re-hardened each time).
  enum class Seal { kAll, kName, kNone };
  absl::Status Module(py::object module, const char* module_name, Seal seal = Seal::kAll) {
    module_ = std::move(module);
    if (seal != Seal::kNone) {
      sandbox_.Seal(module_name, seal == Seal::kAll && PyModule_Check(module_.ptr())
                                     ? PyModule_GetDef(module_.ptr())
                                     : nullptr);
    }
    PyErr_Clear();
    return absl::OkStatus();
  }

  // Module(module_name), and every row of the table for it.
  absl::Status Harden(const char* module_name) {
    if (absl::Status s = Module(module_name); !s.ok()) return s;
    return ReplaceRows(module_name);
  }

  // Replaces, in the current module, the functions of every row of the table for
  // `module_name`, in the table's order.
  absl::Status ReplaceRows(const char* module_name) {
    for (const GuardRow& row : GuardTable()) {
      if (strcmp(row.module, module_name) != 0) continue;
      for (const char* function : row.functions) {
        if (absl::Status s = Replace(function, row); !s.ok()) return s;
      }
    }
    return absl::OkStatus();
  }

  // Replaces module.attr (if the platform has it) with a guard running `row`'s
  // handler, named `row.shown_as`.attr, whose refusals raise a type that is also the
  // module's `row.refusal_base` (PermissionError itself if none).
  absl::Status Replace(const char* attr, const GuardRow& row) {
    auto original = py::reinterpret_steal<py::object>(PyObject_GetAttrString(module_.ptr(), attr));
    if (!original) {
      PyErr_Clear();
      return absl::OkStatus();
    }
    std::string name = absl::StrCat(row.shown_as, ".", attr);
    py::object other;
    if (row.partner != nullptr) {
      other = py::reinterpret_steal<py::object>(PyObject_GetAttrString(module_.ptr(), row.partner));
      if (!other) return StatusFromPythonError(absl::StrCat("hardening: ", name, "'s partner"));
    }
    py::object error_type;
    if (row.refusal_base != nullptr) {
      auto base = py::reinterpret_steal<py::object>(
          PyObject_GetAttrString(module_.ptr(), row.refusal_base));
      error_type = base ? RefusalType(row.shown_as, base.ptr()) : py::object();
      if (!error_type)
        return StatusFromPythonError(absl::StrCat("hardening: ", row.shown_as, "'s refusal type"));
    }
    py::object wrapper =
        MakeGuard(row.handler, name, original, std::move(error_type), std::move(other));
    if (!wrapper || PyObject_SetAttrString(module_.ptr(), attr, wrapper.ptr()) != 0) {
      return StatusFromPythonError(absl::StrCat("hardening: replace ", name));
    }
    PyObject* key = original.ptr();
    replaced_[key] = {std::move(original), std::move(wrapper)};
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
        PyObject* value = PyTuple_GET_ITEM(pair, 1);
        auto found = replaced_.find(value);
        if (found != replaced_.end()) {
          PyDict_SetItem(dict, PyTuple_GET_ITEM(pair, 0), found->second.second.ptr());
        } else if (PySet_CheckExact(value)) {
          SwapMembers(value);  // os.supports_dir_fd & co.: `os.open in ...` must hold
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  void SwapMembers(PyObject* set) {
    for (const auto& [original, pair] : replaced_) {
      if (PySet_Discard(set, original) == 1) PySet_Add(set, pair.second.ptr());
    }
    PyErr_Clear();
  }

  Sandbox& sandbox_;
  py::object module_;
  // original -> (original kept alive, its guard)
  absl::flat_hash_map<PyObject*, std::pair<py::object, py::object>> replaced_;
};

// select.epoll is a type of each interpreter's own select module (heap type): its
// tp_new is wrapped there, so an epoll object counts against the descriptor cap.
newfunc g_epoll_new = nullptr;  // the same C function in every interpreter

PyObject* GuardedEpollNew(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  Sandbox* sandbox = Sandbox::Current();
  const bool active = sandbox != nullptr && !sandbox->host_mode();
  if (active && !sandbox->CheckDescriptorCap()) return nullptr;
  PyObject* epoll = g_epoll_new(type, args, kwargs);
  if (epoll != nullptr && active) {
    // select.epoll's own fileno, never a subclass's (it could name a host descriptor).
    PyTypeObject* base = type;
    while (base->tp_base != nullptr && base->tp_base->tp_new == GuardedEpollNew)
      base = base->tp_base;
    PyObject* fileno = PyDict_GetItemString(base->tp_dict, "fileno");  // borrowed
    auto fd = py::reinterpret_steal<py::object>(fileno != nullptr &&
                                                        Py_IS_TYPE(fileno, &PyMethodDescr_Type)
                                                    ? PyObject_CallOneArg(fileno, epoll)
                                                    : nullptr);
    if (fd) RecordFds(*sandbox, fd.ptr());
    PyErr_Clear();
  }
  return epoll;
}

absl::Status GuardEpollIn(PyObject* select) {
  auto epoll = py::reinterpret_steal<py::object>(PyObject_GetAttrString(select, "epoll"));
  if (!epoll) {
    PyErr_Clear();
    return absl::OkStatus();  // no epoll on this platform
  }
  auto* type = reinterpret_cast<PyTypeObject*>(epoll.ptr());
  if (!PyType_Check(epoll.ptr()) || !(type->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
    return absl::InternalError("select.epoll is not a heap type: revisit its guard");
  }
  if (type->tp_new != GuardedEpollNew) {
    g_epoll_new = type->tp_new;
    type->tp_new = GuardedEpollNew;
  }
  return absl::OkStatus();
}

absl::Status HardenCreatedModule(Sandbox& sandbox, const std::string& name,
                                 const py::object& module) {
  // _posixsubprocess: loading it at creation would put it in sys.modules, where
  // importlib's own __import__ finds it without asking the import gate. Hardened here,
  // its name is sealed: it cannot be created again unhardened. (Executing it, next,
  // adds no functions: it is not sealed against that.)
  if (name != "_posixsubprocess") return absl::OkStatus();
  Hardener h(sandbox);
  if (absl::Status s = h.Module(module, "_posixsubprocess", Hardener::Seal::kName); !s.ok())
    return s;
  absl::Status replaced = h.ReplaceRows("_posixsubprocess");
  if (!replaced.ok()) PyErr_SetString(PyExc_RuntimeError, std::string(replaced.message()).c_str());
  return replaced;
}

#define PYHOST_RETURN_IF_ERROR(expr)                   \
  do {                                                 \
    if (absl::Status _s = (expr); !_s.ok()) return _s; \
  } while (0)

bool HardenOnExecution(Sandbox& sandbox, PyObject* module, const char* name) {
  absl::Status status;
  if (strcmp(name, "select") == 0) {
    status = GuardEpollIn(module);
    if (status.ok()) {
      Hardener h(sandbox);
      status =
          h.Module(py::reinterpret_borrow<py::object>(module), "select", Hardener::Seal::kNone);
      if (status.ok()) status = h.ReplaceRows("select");
      if (status.ok()) status = MakeWaitsInterruptible(module, name);
    }
  } else if (strcmp(name, "_queue") == 0) {
    status = MakeWaitsInterruptible(module, name);
  } else if (strcmp(name, "_sqlite3") == 0) {
    status = GuardSqliteModule(module);
  } else if (strcmp(name, "fcntl") == 0) {
    Hardener h(sandbox);
    status = h.Module(py::reinterpret_borrow<py::object>(module), "fcntl", Hardener::Seal::kNone);
    if (status.ok()) status = h.ReplaceRows("fcntl");
  }
  if (status.ok()) return true;
  PyErr_SetString(PyExc_ImportError, std::string(status.message()).c_str());
  return false;
}

}  // namespace

absl::Status HardenInterpreter(Sandbox& sandbox, modules::Support* support) {
  Hardener h(sandbox);
  PYHOST_RETURN_IF_ERROR(h.Harden("posix"));
  PYHOST_RETURN_IF_ERROR(h.SwapCopies());
  for (const char* module :
       {"time", "_thread", "_signal", "sys", "_socket", "_tracemalloc", "_locale"}) {
    PYHOST_RETURN_IF_ERROR(h.Harden(module));
  }
  PyObject* thread = PyDict_GetItemString(PyImport_GetModuleDict(), "_thread");  // borrowed
  if (thread == nullptr) return absl::InternalError("hardening: no _thread module");
  PYHOST_RETURN_IF_ERROR(MakeWaitsInterruptible(thread, "_thread"));

  // os.fork()'s refusal (audit_hooks/audit_hook.cc): a RuntimeError as 3.12 raises,
  // and a PermissionError naming the rule. Kept alive by the support module.
  if (support != nullptr) {
    py::object fork_refusal = RefusalType("builtins", PyExc_RuntimeError);
    if (!fork_refusal || !support->Keep("_fork_refusal", fork_refusal.ptr())) {
      return StatusFromPythonError("hardening: fork's refusal type");
    }
    sandbox.set_fork_error_type(fork_refusal.ptr());
  }

  PYHOST_RETURN_IF_ERROR(h.Harden("builtins"));

  // importlib keeps its own reference to _imp, which need not be sys.modules['_imp']:
  // every distinct one is hardened.
  auto bootstrap = py::reinterpret_borrow<py::object>(
      PyDict_GetItemString(PyImport_GetModuleDict(), "_frozen_importlib"));
  auto spec_type =
      bootstrap
          ? py::reinterpret_steal<py::object>(PyObject_GetAttrString(bootstrap.ptr(), "ModuleSpec"))
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
    PYHOST_RETURN_IF_ERROR(h.ReplaceRows("_imp"));
  }
  PYHOST_RETURN_IF_ERROR(h.SwapCopies());

  PYHOST_RETURN_IF_ERROR(GuardCRecursionInInterpreter());

  if (support == nullptr) return absl::OkStatus();
  py::object check = MakeGuard(ImportCheck, "pyhost.import_check", py::none());
  if (!check || !support->InstallImportGate(check.ptr())) {
    return StatusFromPythonError("hardening: import gate");
  }
  return absl::OkStatus();
}

std::vector<std::pair<std::string, std::string>> GuardedFunctions() {
  std::vector<std::pair<std::string, std::string>> functions;
  for (const GuardRow& row : GuardTable()) {
    for (const char* function : row.functions) functions.emplace_back(row.module, function);
  }
  return functions;
}

}  // namespace pyhost

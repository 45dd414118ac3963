#include "guards/hardening.h"

#include <fcntl.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

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
  kImport,          // builtins.__import__
  kImportCheck,     // the meta-path finder's check(name)
  kGetAddrInfo,     // remembers the addresses an allowed name resolved to
  kSetlocale,       // locale.setlocale: queries only (the locale is process-wide)
  kImportlibOnly,   // only importlib itself may call it (the import lock)
  kFixCoFilename,   // _imp._fix_co_filename: importlib only, never renaming into the stdlib
  kOpen,            // builtins.open / io.open: an opener's descriptor is checked
  kOsOpen,          // os.open: a dir_fd is handed to the "open" audit rule
  kChildFds,        // _posixsubprocess.fork_exec: the child gets only the code's descriptors
  kSpawn,           // os.posix_spawn[p]: file actions only on the code's descriptors and paths
};

struct Guard {
  Kind kind;
  std::string name;  // "os.close"
  py::object original;
};

constexpr char kCapsuleName[] = "pyhost.guard";

PyObject* SetPermissionError(const Guard& guard, absl::string_view why) {
  std::string message = absl::StrCat(guard.name, " is not available in pyhost: ", why);
  PyErr_SetString(PyExc_PermissionError, message.c_str());
  return nullptr;
}

std::optional<int> IntValue(PyObject* value) {
  if (!PyLong_Check(value)) return std::nullopt;
  int overflow = 0;
  long v = PyLong_AsLongAndOverflow(value, &overflow);
  if (overflow != 0 || v < INT_MIN || v > INT_MAX) return std::nullopt;
  return static_cast<int>(v);
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
      sandbox.ImportAllowed(module, ImportIsUserInitiated(through_importlib), &why)) {
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

// -1 or a descriptor the code opened; an int exactly (anything else could answer
// the check and the call differently).
bool ChildMayGet(Sandbox& sandbox, PyObject* value) {
  if (value == nullptr || !PyLong_CheckExact(value)) return false;
  int overflow = 0;
  long fd = PyLong_AsLongAndOverflow(value, &overflow);
  return overflow == 0 && (fd == -1 || (fd >= 0 && fd <= INT_MAX && sandbox.OwnsFd(static_cast<int>(fd))));
}

// os.open(path, flags, mode=0o777, *, dir_fd=None) with a dir_fd. Its "open" audit
// event does not carry the dir_fd, so the guard announces it to the hook for the path
// object it passes on, having made every argument a plain object first: no code of
// the caller's (__fspath__, __index__) runs between the announcement and the event.
PyObject* OsOpenAt(const Guard& guard, Sandbox& sandbox, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"path", "flags", "mode", "dir_fd", nullptr};
  PyObject *path = nullptr, *flags = nullptr, *mode = nullptr, *dir_fd = nullptr;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|O$O:open", const_cast<char**>(keywords),
                                   &path, &flags, &mode, &dir_fd)) {
    return nullptr;
  }
  auto plain_path = py::reinterpret_steal<py::object>(PyOS_FSPath(path));
  auto plain_flags = py::reinterpret_steal<py::object>(plain_path ? PyNumber_Index(flags) : nullptr);
  auto plain_mode = py::reinterpret_steal<py::object>(
      !plain_flags ? nullptr : mode != nullptr ? PyNumber_Index(mode) : PyLong_FromLong(0777));
  auto plain_dir_fd = py::reinterpret_steal<py::object>(plain_mode ? PyNumber_Index(dir_fd) : nullptr);
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
  auto bytes = py::reinterpret_steal<py::object>(
      !fspath ? nullptr
      : PyBytes_Check(fspath.ptr()) ? Py_NewRef(fspath.ptr())
                                    : PyUnicode_EncodeFSDefault(fspath.ptr()));
  if (!bytes) return std::nullopt;
  return std::string(PyBytes_AS_STRING(bytes.ptr()), static_cast<size_t>(PyBytes_GET_SIZE(bytes.ptr())));
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
    auto action = py::reinterpret_steal<py::object>(PySequence_Tuple(PyTuple_GET_ITEM(items.ptr(), i)));
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
      bool writes = (*flags & O_ACCMODE) != O_RDONLY || (*flags & (O_CREAT | O_TRUNC | O_APPEND)) != 0;
      if (sandbox.JudgePath(*path, writes ? Sandbox::FileAccess::kWrite : Sandbox::FileAccess::kRead) !=
          Sandbox::PathVerdict::kAllowed) {
        SetPermissionError(guard, absl::StrCat("file_actions may not open '", *path,
                                               "' (outside the policy's paths, or a host descriptor)"));
        return py::object();
      }
    } else if (tag == 2 && size == 3 && !ChildMayGet(sandbox, plain[1].ptr())) {  // POSIX_SPAWN_DUP2
      SetPermissionError(guard, "file_actions may only dup2 a descriptor the code opened itself");
      return py::object();
    }
    auto tuple = py::reinterpret_steal<py::object>(PyTuple_New(size));
    if (!tuple) return py::object();
    for (Py_ssize_t j = 0; j < size; ++j) PyTuple_SET_ITEM(tuple.ptr(), j, plain[j].release().ptr());
    if (PyList_Append(checked.ptr(), tuple.ptr()) != 0) return py::object();
  }
  return checked;
}

// Hardens a builtin module that is not loaded at interpreter creation when importlib
// creates it (below, after Hardener). Error: a Python error is set.
absl::Status HardenCreatedModule(Sandbox& sandbox, const std::string& name, const py::object& module);

PyObject* GuardedCall(PyObject* self, PyObject* args, PyObject* kwargs) {
  auto* guard = static_cast<Guard*>(PyCapsule_GetPointer(self, kCapsuleName));
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
      auto created = py::reinterpret_steal<py::object>(CallOriginal(*guard, args, kwargs));
      if (created && sandbox != nullptr && guard->kind == Kind::kCreateBuiltin &&
          !HardenCreatedModule(*sandbox, module, created).ok()) {
        return nullptr;
      }
      return created.release().ptr();
    }
    case Kind::kExecBuiltin: {
      PyObject* module = PyTuple_Check(args) && PyTuple_GET_SIZE(args) > 0
                             ? PyTuple_GET_ITEM(args, 0) : nullptr;
      PyModuleDef* def = module != nullptr && PyModule_Check(module) ? PyModule_GetDef(module) : nullptr;
      PyErr_Clear();
      if (sandbox != nullptr && def != nullptr && sandbox->IsSealedDef(def)) {
        return SetPermissionError(*guard, "a hardened module cannot be executed again");
      }
      return CallOriginal(*guard, args, kwargs);
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
      PyObject* value = PyTuple_Check(args) && PyTuple_GET_SIZE(args) > 1 ? PyTuple_GET_ITEM(args, 1)
                        : kwargs != nullptr ? PyDict_GetItemString(kwargs, "locale") : nullptr;
      if (active && value != nullptr && value != Py_None) {
        return SetPermissionError(*guard, "the locale belongs to the whole host process "
                                          "(setlocale(category) without a value may query it)");
      }
      return CallOriginal(*guard, args, kwargs);
    }
    case Kind::kOpen: {
      // open(file, mode, buffering, encoding, errors, newline, closefd, opener): the
      // audit event names `file`, but an opener may hand back any descriptor.
      if (!active) return CallOriginal(*guard, args, kwargs);
      constexpr Py_ssize_t kOpenerPosition = 7;
      py::object checked_args, checked_kwargs;
      if (!WrapOpener(args, kwargs, kOpenerPosition, &checked_args, &checked_kwargs)) return nullptr;
      return CallOriginal(*guard, checked_args.ptr(), checked_kwargs.ptr());
    }
    case Kind::kOsOpen: {
      PyObject* dir_fd = kwargs != nullptr ? PyDict_GetItemString(kwargs, "dir_fd") : nullptr;
      if (active && dir_fd != nullptr && dir_fd != Py_None) return OsOpenAt(*guard, *sandbox, args, kwargs);
      PyObject* result = CallOriginal(*guard, args, kwargs);
      if (result != nullptr && active) RecordFds(*sandbox, result);
      return result;
    }
    case Kind::kChildFds: {
      // fork_exec(args, executable_list, close_fds, pass_fds, cwd, env, p2cread,
      // p2cwrite, c2pread, c2pwrite, errread, errwrite, errpipe_read, errpipe_write,
      // ...): the child keeps pass_fds and errpipe_write and gets p2cread, c2pwrite
      // and errwrite as its 0, 1 and 2. The other ends are the parent's, closed in the
      // child. subprocess's own audit event ("subprocess.Popen") is not raised when
      // fork_exec is called directly: the policy's process rule is applied here too.
      if (!active) return CallOriginal(*guard, args, kwargs);
      if (!sandbox->policy().processes) return SetPermissionError(*guard, "processes are not allowed");
      bool plain = PyTuple_Check(args) && PyTuple_GET_SIZE(args) > 13 &&
                   (kwargs == nullptr || PyDict_GET_SIZE(kwargs) == 0) &&
                   PyTuple_CheckExact(PyTuple_GET_ITEM(args, 3));
      for (Py_ssize_t i : {6, 9, 11, 13}) plain = plain && ChildMayGet(*sandbox, PyTuple_GET_ITEM(args, i));
      PyObject* pass_fds = plain ? PyTuple_GET_ITEM(args, 3) : nullptr;
      for (Py_ssize_t i = 0; plain && i < PyTuple_GET_SIZE(pass_fds); ++i) {
        plain = ChildMayGet(*sandbox, PyTuple_GET_ITEM(pass_fds, i));
      }
      if (!plain) {
        return SetPermissionError(*guard, "a child process gets only descriptors the code opened "
                                          "itself (not the host's)");
      }
      return CallOriginal(*guard, args, kwargs);
    }
    case Kind::kSpawn: {
      PyObject* actions = kwargs != nullptr ? PyDict_GetItemString(kwargs, "file_actions") : nullptr;
      if (!active || actions == nullptr || actions == Py_None) return CallOriginal(*guard, args, kwargs);
      py::object checked = CheckedFileActions(*guard, *sandbox, actions);
      auto copy = py::reinterpret_steal<py::object>(checked ? PyDict_Copy(kwargs) : nullptr);
      if (!copy || PyDict_SetItemString(copy.ptr(), "file_actions", checked.ptr()) != 0) return nullptr;
      return CallOriginal(*guard, args, copy.ptr());
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
// life of the process (shared by all interpreters).
PyMethodDef* MethodDefFor(const std::string& name) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* names = new std::deque<std::string>();
  static auto* defs = new absl::flat_hash_map<std::string, PyMethodDef*>();
  absl::MutexLock lock(&mu);
  PyMethodDef*& def = (*defs)[name];
  if (def == nullptr) {
    names->push_back(name.substr(name.rfind('.') + 1));
    def = new PyMethodDef{names->back().c_str(), reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(GuardedCall)),
                          METH_VARARGS | METH_KEYWORDS,
                          "Replaced by pyhost: see pyhost's docs/security.md."};
  }
  return def;
}

// A C function running GuardedCall for `kind`; its __self__ is a capsule, the only
// place the original lives. Null with a Python error on failure.
py::object MakeGuard(Kind kind, const std::string& name, py::object original) {
  auto* guard = new Guard{kind, name, std::move(original)};
  auto capsule = py::reinterpret_steal<py::object>(PyCapsule_New(guard, kCapsuleName, [](PyObject* c) {
    delete static_cast<Guard*>(PyCapsule_GetPointer(c, kCapsuleName));
  }));
  if (!capsule) {
    delete guard;
    return py::object();
  }
  return py::reinterpret_steal<py::object>(
      PyCFunction_NewEx(MethodDefFor(name), capsule.ptr(), nullptr));
}

class Hardener {
 public:
  explicit Hardener(Sandbox& sandbox) : sandbox_(sandbox) {}

  absl::Status Module(const char* module_name) {
    auto module = py::reinterpret_steal<py::object>(PyImport_ImportModule(module_name));
    if (!module) return StatusFromPythonError(absl::StrCat("hardening: import ", module_name));
    return Module(std::move(module), module_name);
  }

  // `seal_def`: false for a module importlib has created but not executed yet.
  absl::Status Module(py::object module, const char* module_name, bool seal_def = true) {
    module_ = std::move(module);
    module_name_ = module_name;
    sandbox_.Seal(module_name, seal_def && PyModule_Check(module_.ptr()) ? PyModule_GetDef(module_.ptr())
                                                                         : nullptr);
    PyErr_Clear();
    return absl::OkStatus();
  }

  // Replaces module.attr (if the platform has it) with a guard of `kind`.
  absl::Status Replace(const char* attr, Kind kind, const char* public_module = nullptr) {
    auto original = py::reinterpret_steal<py::object>(PyObject_GetAttrString(module_.ptr(), attr));
    if (!original) {
      PyErr_Clear();
      return absl::OkStatus();
    }
    std::string name = absl::StrCat(public_module ? public_module : module_name_, ".", attr);
    py::object wrapper = MakeGuard(kind, name, original);
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

absl::Status HardenCreatedModule(Sandbox& sandbox, const std::string& name, const py::object& module) {
  // _posixsubprocess: loading it at creation would put it in sys.modules, where
  // importlib's own __import__ finds it without asking the import gate. Hardened here,
  // its name is sealed: it cannot be created again unhardened. (Executing it, next,
  // adds no functions: it is not sealed against that.)
  if (name != "_posixsubprocess") return absl::OkStatus();
  Hardener h(sandbox);
  if (absl::Status s = h.Module(module, "_posixsubprocess", /*seal_def=*/false); !s.ok()) return s;
  absl::Status replaced = h.Replace("fork_exec", Kind::kChildFds);
  if (!replaced.ok()) PyErr_SetString(PyExc_RuntimeError, std::string(replaced.message()).c_str());
  return replaced;
}

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
  PYHOST_RETURN_IF_ERROR(h.ReplaceAll({"pipe", "pipe2", "dup", "openpty", "memfd_create", "eventfd"},
                                      Kind::kFdCreate, "os"));
  PYHOST_RETURN_IF_ERROR(h.Replace("open", Kind::kOsOpen, "os"));
  PYHOST_RETURN_IF_ERROR(h.ReplaceAll({"posix_spawn", "posix_spawnp"}, Kind::kSpawn, "os"));
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
  PYHOST_RETURN_IF_ERROR(h.Replace("setlocale", Kind::kSetlocale, "locale"));

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

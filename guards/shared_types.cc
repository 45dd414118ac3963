#include "guards/shared_types.h"

#include <climits>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "audit_hooks/sandbox.h"
#include "bindings/python_error.h"

#if PY_VERSION_HEX >= 0x030C0000
#error "3.12 gives each interpreter its own static types' dicts: revisit these guards"
#endif

namespace pyhost {
namespace {

namespace py = pybind11;

bool Active(const Sandbox* sandbox) { return sandbox != nullptr && !sandbox->host_mode(); }

std::optional<int> Descriptor(PyObject* value) {
  int overflow = 0;
  long fd = PyLong_Check(value) ? PyLong_AsLongAndOverflow(value, &overflow) : -1;
  PyErr_Clear();
  if (overflow != 0 || fd < 0 || fd > INT_MAX) return std::nullopt;
  return static_cast<int>(fd);
}

}  // namespace

// --- helpers that swap what a shared type runs -------------------------------------

// Replaces `type`'s tp_init and the C function its __init__ descriptor calls.
absl::Status SwapInit(PyTypeObject* type, initproc replacement, initproc* original) {
  PyObject* descr = PyDict_GetItemString(type->tp_dict, "__init__");  // borrowed
  auto* wrapper = descr != nullptr && Py_IS_TYPE(descr, &PyWrapperDescr_Type)
                      ? reinterpret_cast<PyWrapperDescrObject*>(descr) : nullptr;
  if (wrapper == nullptr || wrapper->d_wrapped != reinterpret_cast<void*>(type->tp_init)) {
    return absl::InternalError(absl::StrCat("cannot guard ", type->tp_name, ".__init__"));
  }
  *original = type->tp_init;
  type->tp_init = replacement;
  wrapper->d_wrapped = reinterpret_cast<void*>(replacement);
  return absl::OkStatus();
}

// Replaces the C function behind `dict[name]`, a type's method or a module's function
// (one PyMethodDef, shared by every interpreter and every bound copy), after checking
// its calling convention is `flags`.
absl::Status SwapMethod(PyObject* dict, const char* name, int flags, PyCFunction replacement,
                        PyCFunction* original) {
  PyObject* value = PyDict_GetItemString(dict, name);  // borrowed
  PyMethodDef* def = nullptr;
  if (value != nullptr && Py_IS_TYPE(value, &PyMethodDescr_Type)) {
    def = reinterpret_cast<PyMethodDescrObject*>(value)->d_method;
  } else if (value != nullptr && PyCFunction_Check(value)) {
    def = reinterpret_cast<PyCFunctionObject*>(value)->m_ml;
  }
  if (def == nullptr || def->ml_flags != flags) {
    return absl::InternalError(absl::StrCat("cannot guard ", name, ": not the C function expected"));
  }
  *original = def->ml_meth;
  def->ml_meth = replacement;
  return absl::OkStatus();
}

namespace {

absl::StatusOr<py::object> Attribute(const char* module_name, const char* name) {
  auto module = py::reinterpret_steal<py::object>(PyImport_ImportModule(module_name));
  auto value = module ? py::reinterpret_steal<py::object>(PyObject_GetAttrString(module.ptr(), name))
                      : py::object();
  if (!value) return StatusFromPythonError(absl::StrCat("guarding ", module_name, ".", name));
  return value;
}

// --- type.__subclasses__ -------------------------------------------------------------

PyObject* g_original_subclasses = nullptr;  // type.__dict__['__subclasses__'], kept

// Whether heap type `type` is reachable in the running interpreter's sys.modules as
// module.qualname (so it belongs to this interpreter).
bool BelongsHere(PyObject* type) {
  auto module_name = py::reinterpret_steal<py::object>(PyObject_GetAttrString(type, "__module__"));
  auto qualname = py::reinterpret_steal<py::object>(PyObject_GetAttrString(type, "__qualname__"));
  if (!module_name || !qualname || !PyUnicode_Check(module_name.ptr()) ||
      !PyUnicode_Check(qualname.ptr())) {
    PyErr_Clear();
    return false;
  }
  PyObject* module = PyDict_GetItem(PyImport_GetModuleDict(), module_name.ptr());  // borrowed
  if (module == nullptr) return false;
  py::object current = py::reinterpret_borrow<py::object>(module);
  std::string path = PyUnicode_AsUTF8(qualname.ptr());
  size_t start = 0;
  while (current && start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (part == "<locals>") return false;
    current = py::reinterpret_steal<py::object>(PyObject_GetAttrString(current.ptr(), part.c_str()));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  PyErr_Clear();
  return current && current.ptr() == type;
}

PyObject* FilteredSubclasses(PyObject* self, PyObject*) {
  PyObject* all = PyObject_CallOneArg(g_original_subclasses, self);
  PyThreadState* tstate = PyThreadState_Get();
  if (all == nullptr || tstate->interp == PyInterpreterState_Main() ||
      Sandbox::Current() == nullptr || !PyList_Check(all)) {
    return all;
  }
  auto owned = py::reinterpret_steal<py::object>(all);
  auto kept = py::reinterpret_steal<py::object>(PyList_New(0));
  if (!kept) return nullptr;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(all); ++i) {
    PyObject* type = PyList_GET_ITEM(all, i);
    bool heap = PyType_Check(type) &&
                (reinterpret_cast<PyTypeObject*>(type)->tp_flags & Py_TPFLAGS_HEAPTYPE);
    if ((!heap || BelongsHere(type)) && PyList_Append(kept.ptr(), type) != 0) return nullptr;
  }
  return kept.release().ptr();
}

PyMethodDef kFilteredSubclassesDef = {
    "__subclasses__", FilteredSubclasses, METH_NOARGS,
    "Immediate subclasses of the type (in a pyhost sandbox: this interpreter's only)."};

// On 3.11 the list behind object.__subclasses__() is shared too: code in one
// interpreter would reach classes (and through their methods' __globals__, the
// modules and data) of every other.
absl::Status IsolateTypeSubclasses() {
  PyObject* dict = PyType_Type.tp_dict;
  PyObject* original = PyDict_GetItemString(dict, "__subclasses__");
  if (original == nullptr) return absl::InternalError("type has no __subclasses__");
  auto replacement = py::reinterpret_steal<py::object>(
      PyDescr_NewMethod(&PyType_Type, &kFilteredSubclassesDef));
  if (!replacement) return StatusFromPythonError("isolating __subclasses__");
  g_original_subclasses = Py_NewRef(original);
  if (PyDict_SetItemString(dict, "__subclasses__", replacement.ptr()) != 0) {
    return StatusFromPythonError("isolating __subclasses__");
  }
  PyType_Modified(&PyType_Type);
  return absl::OkStatus();
}

// --- code.replace --------------------------------------------------------------------

_PyCFunctionFastWithKeywords g_code_replace = nullptr;

// types.coroutine turns a generator function into a coroutine with
// code.replace(co_flags=flags | CO_ITERABLE_COROUTINE), and asyncio does that to its
// own generators when it is imported. That change (this flag only, added to a
// generator's code, nothing else) is the one the audit hook lets code claiming a
// trusted filename undergo: the bytecode, constants and names stay the stdlib's.
PyObject* GuardedCodeReplace(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                             PyObject* kwnames) {
  Sandbox* sandbox = Sandbox::Current();
  bool vetted = Active(sandbox) && PyCode_Check(self) && nargs == 0 && kwnames != nullptr &&
                PyTuple_GET_SIZE(kwnames) == 1 &&
                PyUnicode_CheckExact(PyTuple_GET_ITEM(kwnames, 0)) &&
                PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "co_flags") == 0 &&
                PyLong_CheckExact(args[0]);  // no __index__ of the code's to run
  if (vetted) {
    long flags = PyLong_AsLong(args[0]);
    long old = reinterpret_cast<PyCodeObject*>(self)->co_flags;
    vetted = !PyErr_Occurred() && (old & CO_GENERATOR) != 0 &&
             (flags ^ old) == CO_ITERABLE_COROUTINE && (flags & CO_ITERABLE_COROUTINE) != 0;
    PyErr_Clear();
  }
  if (!vetted) return g_code_replace(self, args, nargs, kwnames);
  sandbox->set_code_replace_vetted(true);
  PyObject* result = g_code_replace(self, args, nargs, kwnames);
  sandbox->set_code_replace_vetted(false);
  return result;
}

// --- openers -------------------------------------------------------------------------

// The opener wrapper: its self is the code's own opener (nothing to hide there).
PyObject* CheckedOpenerCall(PyObject* opener, PyObject* args, PyObject* kwargs) {
  PyObject* result = PyObject_Call(opener, args, kwargs);
  Sandbox* sandbox = Sandbox::Current();
  if (result == nullptr || !Active(sandbox)) return result;
  std::optional<int> fd = Descriptor(result);
  if (fd && sandbox->OwnsFd(*fd)) return result;
  Py_DECREF(result);
  PyErr_SetString(PyExc_PermissionError, "opener is not available in pyhost: an opener must "
                                         "return a descriptor the code opened itself");
  return nullptr;
}

PyMethodDef kCheckedOpenerDef = {
    "opener", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(CheckedOpenerCall)),
    METH_VARARGS | METH_KEYWORDS, "The code's opener, checked by pyhost."};

initproc g_fileio_init = nullptr;

int GuardedFileIOInit(PyObject* self, PyObject* args, PyObject* kwargs) {
  if (!Active(Sandbox::Current())) return g_fileio_init(self, args, kwargs);
  constexpr Py_ssize_t kOpenerPosition = 3;  // FileIO(file, mode, closefd, opener)
  py::object plain = PlainKeywords(kwargs), checked_args, checked_kwargs;
  if (kwargs != nullptr && !plain) return -1;
  if (!WrapOpener(args, plain.ptr(), kOpenerPosition, &checked_args, &checked_kwargs)) return -1;
  return g_fileio_init(self, checked_args.ptr(), checked_kwargs.ptr());
}

// --- sockets -------------------------------------------------------------------------

initproc g_socket_init = nullptr;
PyCFunction g_socket_listen = nullptr;
PyCFunction g_socket_accept = nullptr;
PyCFunction g_socketpair = nullptr;
PyObject* g_socket_fileno = nullptr;  // _socket.socket.fileno: C, never a subclass's

// A socket the code created is its own: its descriptor may be used by number.
// Returns the descriptor.
std::optional<int> RecordSocket(Sandbox& sandbox, PyObject* socket) {
  auto fd = py::reinterpret_steal<py::object>(PyObject_CallOneArg(g_socket_fileno, socket));
  std::optional<int> n = fd ? Descriptor(fd.ptr()) : std::nullopt;
  if (n) sandbox.RecordFd(*n);
  PyErr_Clear();
  return n;
}

// socket(family=-1, type=-1, proto=-1, fileno=None): the "socket.__new__" event does
// not carry fileno, and a socket on the host's descriptor writes to its connection.
int GuardedSocketInit(PyObject* self, PyObject* args, PyObject* kwargs) {
  Sandbox* sandbox = Sandbox::Current();
  if (!Active(sandbox)) return g_socket_init(self, args, kwargs);
  py::object plain = PlainKeywords(kwargs);
  if (kwargs != nullptr && !plain) return -1;
  kwargs = plain.ptr();
  constexpr Py_ssize_t kFilenoPosition = 3;
  PyObject* fileno = kwargs != nullptr ? PyDict_GetItemString(kwargs, "fileno") : nullptr;
  if (fileno == nullptr && PyTuple_GET_SIZE(args) > kFilenoPosition) {
    fileno = PyTuple_GET_ITEM(args, kFilenoPosition);
  }
  const bool adopts = fileno != nullptr && fileno != Py_None;
  bool local = false;
  if (adopts) {
    std::optional<int> fd = Descriptor(fileno);
    if (!fd || !sandbox->OwnsFd(*fd)) {
      PyErr_SetString(PyExc_PermissionError, "socket.socket(fileno=...) is not available in "
                                             "pyhost: only on descriptors the code opened itself");
      return -1;
    }
    local = sandbox->IsLocalSocket(*fd);
  }
  if (local) sandbox->set_adopting_local_socket(self);
  int initialized = g_socket_init(self, args, kwargs);
  sandbox->set_adopting_local_socket(nullptr);
  if (initialized != 0) return -1;
  if (!adopts) RecordSocket(*sandbox, self);
  return 0;
}

// 3.11 raises no event for listen(), and on an unbound socket it binds an ephemeral
// port without a "socket.bind" event either: the policy's rule sees this one.
PyObject* GuardedListen(PyObject* self, PyObject* args) {
  if (PySys_Audit("socket.listen", "O", self) < 0) return nullptr;
  return g_socket_listen(self, args);
}

PyObject* GuardedAccept(PyObject* self, PyObject* unused) {
  PyObject* result = g_socket_accept(self, unused);  // (fd, address)
  Sandbox* sandbox = Sandbox::Current();
  if (result != nullptr && Active(sandbox) && PyTuple_Check(result) && PyTuple_GET_SIZE(result) == 2) {
    if (std::optional<int> fd = Descriptor(PyTuple_GET_ITEM(result, 0))) sandbox->RecordFd(*fd);
  }
  return result;
}

PyObject* GuardedSocketpair(PyObject* module, PyObject* args) {
  PyObject* result = g_socketpair(module, args);  // (socket, socket)
  Sandbox* sandbox = Sandbox::Current();
  if (result != nullptr && Active(sandbox) && PyTuple_Check(result)) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(result); ++i) {
      if (std::optional<int> fd = RecordSocket(*sandbox, PyTuple_GET_ITEM(result, i))) {
        sandbox->RecordLocalSocket(*fd);
      }
    }
  }
  return result;
}

absl::Status GuardSockets() {
  absl::StatusOr<py::object> type = Attribute("_socket", "socket");
  if (!type.ok()) return type.status();
  auto* socket_type = reinterpret_cast<PyTypeObject*>(type->ptr());
  // _socket adds its type without readying it: the first attribute lookup would.
  if (PyType_Ready(socket_type) != 0) return StatusFromPythonError("guarding _socket.socket");
  g_socket_fileno = PyDict_GetItemString(socket_type->tp_dict, "fileno");
  if (g_socket_fileno == nullptr) return absl::InternalError("_socket.socket has no fileno");
  Py_INCREF(g_socket_fileno);
  PyObject* methods = socket_type->tp_dict;
  for (absl::Status s : {
           SwapInit(socket_type, GuardedSocketInit, &g_socket_init),
           SwapMethod(methods, "listen", METH_VARARGS, GuardedListen, &g_socket_listen),
           SwapMethod(methods, "_accept", METH_NOARGS, GuardedAccept, &g_socket_accept),
       }) {
    if (!s.ok()) return s;
  }
  absl::StatusOr<py::object> module = Attribute("sys", "modules");
  if (!module.ok()) return module.status();
  PyObject* socket_module = PyDict_GetItemString(module->ptr(), "_socket");
  if (socket_module == nullptr) return absl::InternalError("_socket is not loaded");
  return SwapMethod(PyModule_GetDict(socket_module), "socketpair", METH_VARARGS,
                    GuardedSocketpair, &g_socketpair);
}

}  // namespace

py::object PlainKeywords(PyObject* kwargs) {
  if (kwargs == nullptr) return py::object();
  auto plain = py::reinterpret_steal<py::object>(PyDict_New());
  if (!plain) return py::object();
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(kwargs, &pos, &key, &value)) {
    if (!PyUnicode_Check(key)) {
      PyErr_SetString(PyExc_TypeError, "keywords must be strings");
      return py::object();
    }
    // A str subclass: its exact-str copy, so lookups compare text, never call __eq__.
    auto name = py::reinterpret_steal<py::object>(
        PyUnicode_CheckExact(key) ? Py_NewRef(key) : _PyUnicode_Copy(key));
    if (!name || PyDict_SetItem(plain.ptr(), name.ptr(), value) != 0) return py::object();
  }
  return plain;
}

bool WrapOpener(PyObject* args, PyObject* kwargs, Py_ssize_t position, py::object* new_args,
                py::object* new_kwargs) {
  *new_args = py::reinterpret_borrow<py::object>(args);
  *new_kwargs = py::reinterpret_borrow<py::object>(kwargs);
  PyObject* opener = kwargs != nullptr ? PyDict_GetItemString(kwargs, "opener") : nullptr;
  const bool positional = opener == nullptr && PyTuple_GET_SIZE(args) > position;
  if (positional) opener = PyTuple_GET_ITEM(args, position);
  if (opener == nullptr || opener == Py_None) return true;
  auto checked = py::reinterpret_steal<py::object>(PyCFunction_NewEx(&kCheckedOpenerDef, opener, nullptr));
  if (!checked) return false;
  if (positional) {
    // A new tuple: PyTuple_GetSlice of a whole tuple is the same tuple, not a copy.
    const Py_ssize_t n = PyTuple_GET_SIZE(args);
    auto copy = py::reinterpret_steal<py::object>(PyTuple_New(n));
    if (!copy) return false;
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyTuple_SET_ITEM(copy.ptr(), i, Py_NewRef(i == position ? checked.ptr() : PyTuple_GET_ITEM(args, i)));
    }
    *new_args = std::move(copy);
  } else {
    auto copy = py::reinterpret_steal<py::object>(PyDict_Copy(kwargs));
    if (!copy || PyDict_SetItemString(copy.ptr(), "opener", checked.ptr()) != 0) return false;
    *new_kwargs = std::move(copy);
  }
  return true;
}

absl::Status GuardSharedTypes() {
  static const absl::Status guarded = []() -> absl::Status {
    if (absl::Status s = IsolateTypeSubclasses(); !s.ok()) return s;
    PyCFunction original_replace = nullptr;
    if (absl::Status s = SwapMethod(PyCode_Type.tp_dict, "replace", METH_FASTCALL | METH_KEYWORDS,
                                    reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(GuardedCodeReplace)),
                                    &original_replace);
        !s.ok()) {
      return s;
    }
    g_code_replace = reinterpret_cast<_PyCFunctionFastWithKeywords>(
        reinterpret_cast<void (*)()>(original_replace));
    absl::StatusOr<py::object> fileio = Attribute("_io", "FileIO");
    if (!fileio.ok()) return fileio.status();
    if (absl::Status s = SwapInit(reinterpret_cast<PyTypeObject*>(fileio->ptr()), GuardedFileIOInit,
                                  &g_fileio_init);
        !s.ok()) {
      return s;
    }
    return GuardSockets();
  }();
  return guarded;
}

}  // namespace pyhost

#include "guards/shared_types.h"

#include <climits>
#include <functional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "audit_hooks/sandbox.h"
#include "bindings/py_string.h"
#include "bindings/python_error.h"
#include "guards/c_stack.h"
#include "guards/socket_waits.h"

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
  if (absl::Status s = SwapSlotWrapper(type, "__init__", reinterpret_cast<void*>(type->tp_init),
                                       reinterpret_cast<void*>(replacement));
      !s.ok()) {
    return s;
  }
  *original = type->tp_init;
  type->tp_init = replacement;
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
    return absl::InternalError(
        absl::StrCat("cannot guard ", name, ": not the C function expected"));
  }
  *original = def->ml_meth;
  def->ml_meth = replacement;
  return absl::OkStatus();
}

namespace {

absl::StatusOr<py::object> Attribute(const char* module_name, const char* name) {
  auto module = py::reinterpret_steal<py::object>(PyImport_ImportModule(module_name));
  auto value = module
                   ? py::reinterpret_steal<py::object>(PyObject_GetAttrString(module.ptr(), name))
                   : py::object();
  if (!value) return StatusFromPythonError(absl::StrCat("guarding ", module_name, ".", name));
  return value;
}

// --- which interpreter created each heap type -----------------------------------------

PyObject* g_original_subclasses = nullptr;  // type.__dict__['__subclasses__'], kept

int64_t RunningInterpreterId() { return PyInterpreterState_GetID(PyThreadState_Get()->interp); }

// Heap type -> id of the interpreter that created it (ids are never reused; type
// addresses are, so an entry goes when its type is freed). Types made by C code
// (PyType_FromSpec) are not in it.
absl::Mutex g_creators_mu(absl::kConstInit);
absl::flat_hash_map<const void*, int64_t>& Creators() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_creators_mu) {
  static auto* creators = new absl::flat_hash_map<const void*, int64_t>();
  return *creators;
}

newfunc g_type_new = nullptr;
destructor g_type_dealloc = nullptr;
setattrofunc g_type_setattro = nullptr;

// type.__new__, shared by every interpreter on 3.11 (class statements, type(name,
// bases, dict), metaclasses, namedtuple, enum): records who made the class.
PyObject* RecordingTypeNew(PyTypeObject* metatype, PyObject* args, PyObject* kwargs) {
  PyObject* type = g_type_new(metatype, args, kwargs);
  // type.__new__(type, obj) hands back obj's existing type: that is not a creation.
  const bool created = PyTuple_Check(args) && PyTuple_GET_SIZE(args) == 3;
  if (type != nullptr && created && PyType_Check(type)) {
    absl::MutexLock lock(&g_creators_mu);
    Creators().try_emplace(type, RunningInterpreterId());
  }
  return type;
}

void ForgettingTypeDealloc(PyObject* type) {
  {
    absl::MutexLock lock(&g_creators_mu);
    Creators().erase(type);
  }
  g_type_dealloc(type);
}

// "module.qualname" of a class, for messages (never fails: "?" parts).
py::object QualifiedName(PyObject* type) {
  auto part = [type](const char* attr) {
    auto value = py::reinterpret_steal<py::object>(PyObject_GetAttrString(type, attr));
    if (!value || !PyUnicode_Check(value.ptr())) {
      PyErr_Clear();
      return py::reinterpret_steal<py::object>(PyUnicode_FromString("?"));
    }
    return value;
  };
  return py::reinterpret_steal<py::object>(
      PyUnicode_FromFormat("%S.%S", part("__module__").ptr(), part("__qualname__").ptr()));
}

// Classes of another interpreter reachable through objects all interpreters share
// (the exception classes of single-phase modules: socket.herror) must not be changed
// from a sandbox: every other execution would see the change.
int GuardedTypeSetattro(PyObject* type, PyObject* name, PyObject* value) {
  if (Active(Sandbox::Current()) && PyType_Check(type) &&
      (reinterpret_cast<PyTypeObject*>(type)->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
    std::optional<int64_t> creator = HeapTypeCreator(type);
    if (creator && *creator != RunningInterpreterId()) {
      py::object name = QualifiedName(type);
      PyErr_Format(PyExc_PermissionError,
                   "class %S is not the execution's own to change in pyhost: it is shared by "
                   "every interpreter of the process (Python 3.11 shares the classes of "
                   "single-phase extension modules), so the change would reach other executions",
                   name ? name.ptr() : Py_None);
      return -1;
    }
  }
  return g_type_setattro(type, name, value);
}

// Once, in the main interpreter: the heap types that exist are its own; from here on
// type.__new__ records each class's creator and type's deallocation forgets it.
absl::Status RecordTypeCreators() {
  ForEachSubclass(&PyBaseObject_Type, [](PyTypeObject* type) {
    if (!(type->tp_flags & Py_TPFLAGS_HEAPTYPE)) return;
    absl::MutexLock lock(&g_creators_mu);
    Creators().try_emplace(type, RunningInterpreterId());
  });
  g_type_new = PyType_Type.tp_new;
  g_type_dealloc = PyType_Type.tp_dealloc;
  g_type_setattro = PyType_Type.tp_setattro;
  for (absl::Status s : {
           SwapSlotWrapper(&PyType_Type, "__setattr__", reinterpret_cast<void*>(g_type_setattro),
                           reinterpret_cast<void*>(GuardedTypeSetattro)),
           SwapSlotWrapper(&PyType_Type, "__delattr__", reinterpret_cast<void*>(g_type_setattro),
                           reinterpret_cast<void*>(GuardedTypeSetattro)),
       }) {
    if (!s.ok()) return s;
  }
  // Metaclasses made already inherited the originals (tp_new_wrapper insists that a
  // metaclass's tp_new be type's own).
  ForEachSubclass(&PyType_Type, [](PyTypeObject* type) {
    if (type->tp_new == g_type_new) type->tp_new = RecordingTypeNew;
    if (type->tp_dealloc == g_type_dealloc) type->tp_dealloc = ForgettingTypeDealloc;
    if (type->tp_setattro == g_type_setattro) type->tp_setattro = GuardedTypeSetattro;
  });
  return absl::OkStatus();
}

// --- type.__subclasses__ -------------------------------------------------------------

// Whether heap type `type` is reachable in the running interpreter's sys.modules as
// module.qualname (so showing it reveals nothing the code cannot name already).
bool ReachableByName(PyObject* type) {
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
  // A __qualname__ that is not UTF-8 text names no attribute path to follow.
  std::optional<std::string> qualified = Utf8(qualname.ptr());
  if (!qualified) return false;
  const std::string& path = *qualified;
  size_t start = 0;
  while (current && start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (part == "<locals>") return false;
    current =
        py::reinterpret_steal<py::object>(PyObject_GetAttrString(current.ptr(), part.c_str()));
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
    // Its own classes; another interpreter's only if this one's modules name it
    // already (socket.herror, shared by a single-phase module).
    if (heap && HeapTypeCreator(type) != RunningInterpreterId() && !ReachableByName(type)) continue;
    if (PyList_Append(kept.ptr(), type) != 0) return nullptr;
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
  auto replacement =
      py::reinterpret_steal<py::object>(PyDescr_NewMethod(&PyType_Type, &kFilteredSubclassesDef));
  if (!replacement) return StatusFromPythonError("isolating __subclasses__");
  g_original_subclasses = Py_NewRef(original);
  if (absl::Status s = RecordTypeCreators(); !s.ok()) return s;
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
  PyErr_SetString(PyExc_PermissionError,
                  "opener is not available in pyhost: an opener must "
                  "return a descriptor the code opened itself");
  return nullptr;
}

PyMethodDef kCheckedOpenerDef = {
    "opener", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(CheckedOpenerCall)),
    METH_VARARGS | METH_KEYWORDS, "The code's opener, checked by pyhost."};

// A descriptor held by one file or socket object of the code is not wrapped in a
// second (Sandbox::RecordHeld says why).
int RefuseSecondHolder(const char* what) {
  PyErr_Format(PyExc_PermissionError,
               "%s(fd) is not available in pyhost for a descriptor a file or socket object of "
               "the code already holds: use os.dup(fd), or close the first object",
               what);
  return -1;
}

initproc g_fileio_init = nullptr;
PyObject* g_fileio_fileno = nullptr;  // _io.FileIO.fileno: C, never a subclass's

int GuardedFileIOInit(PyObject* self, PyObject* args, PyObject* kwargs) {
  Sandbox* sandbox = Sandbox::Current();
  if (!Active(sandbox)) return g_fileio_init(self, args, kwargs);
  if (!sandbox->CheckDescriptorCap()) return -1;
  constexpr Py_ssize_t kOpenerPosition = 3;  // FileIO(file, mode, closefd, opener)
  py::object plain = PlainKeywords(kwargs), checked_args, checked_kwargs;
  if (kwargs != nullptr && !plain) return -1;
  PyObject* file = PyTuple_GET_SIZE(args) > 0 ? PyTuple_GET_ITEM(args, 0)
                   : plain                    ? PyDict_GetItemString(plain.ptr(), "file")
                                              : nullptr;
  if (std::optional<int> fd = file != nullptr ? Descriptor(file) : std::nullopt;
      fd && sandbox->IsHeld(*fd)) {
    return RefuseSecondHolder("io.FileIO");
  }
  if (!WrapOpener(args, plain.ptr(), kOpenerPosition, &checked_args, &checked_kwargs)) return -1;
  if (g_fileio_init(self, checked_args.ptr(), checked_kwargs.ptr()) != 0) return -1;
  // A file the policy let the code open is its own: os.fsync(f.fileno()) works, and
  // it counts against the descriptor cap. (A FileIO on a number it already owned
  // changes nothing.)
  auto fd = py::reinterpret_steal<py::object>(PyObject_CallOneArg(g_fileio_fileno, self));
  if (std::optional<int> n = fd ? Descriptor(fd.ptr()) : std::nullopt) sandbox->RecordHeld(*n);
  PyErr_Clear();
  return 0;
}

// --- sockets -------------------------------------------------------------------------

initproc g_socket_init = nullptr;
PyCFunction g_socket_listen = nullptr;
PyCFunction g_socket_accept = nullptr;
PyCFunction g_socket_detach = nullptr;
PyCFunction g_socketpair = nullptr;
PyObject* g_socket_fileno = nullptr;  // _socket.socket.fileno: C, never a subclass's

PyObject* g_socket_settimeout = nullptr;  // _socket.socket.settimeout

// A socket the code created is its own: its descriptor may be used by number.
// Returns the descriptor.
std::optional<int> RecordSocket(Sandbox& sandbox, PyObject* socket) {
  auto fd = py::reinterpret_steal<py::object>(PyObject_CallOneArg(g_socket_fileno, socket));
  std::optional<int> n = fd ? Descriptor(fd.ptr()) : std::nullopt;
  if (n) sandbox.RecordHeld(*n);
  PyErr_Clear();
  return n;
}

// A new socket starts with the interpreter's own default timeout (guards/hardening.h
// keeps socket.setdefaulttimeout per interpreter; the C default stays the process's).
bool ApplyDefaultTimeout(const Sandbox& sandbox, PyObject* socket) {
  std::optional<double> timeout = sandbox.socket_default_timeout();
  if (!timeout) return true;
  auto value = py::reinterpret_steal<py::object>(*timeout < 0 ? Py_NewRef(Py_None)
                                                              : PyFloat_FromDouble(*timeout));
  auto set = py::reinterpret_steal<py::object>(
      value ? PyObject_CallFunctionObjArgs(g_socket_settimeout, socket, value.ptr(), nullptr)
            : nullptr);
  return static_cast<bool>(set);
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
  if (!adopts && !sandbox->CheckDescriptorCap()) return -1;
  bool local = false;
  if (adopts) {
    std::optional<int> fd = Descriptor(fileno);
    if (fd && sandbox->IsHeld(*fd)) return RefuseSecondHolder("socket.socket");
    if (!fd || !sandbox->OwnsFd(*fd)) {
      PyErr_SetString(PyExc_PermissionError,
                      "socket.socket(fileno=...) is not available in "
                      "pyhost: only on descriptors the code opened itself");
      return -1;
    }
    local = sandbox->IsLocalSocket(*fd);
  }
  if (local) sandbox->set_adopting_local_socket(self);
  int initialized = g_socket_init(self, args, kwargs);
  sandbox->set_adopting_local_socket(nullptr);
  if (initialized != 0) return -1;
  RecordSocket(*sandbox, self);  // the socket holds its descriptor now, adopted or not
  return ApplyDefaultTimeout(*sandbox, self) ? 0 : -1;
}

// 3.11 raises no event for listen(), and on an unbound socket it binds an ephemeral
// port without a "socket.bind" event either: the policy's rule sees this one.
PyObject* GuardedListen(PyObject* self, PyObject* args) {
  if (PySys_Audit("socket.listen", "O", self) < 0) return nullptr;
  return g_socket_listen(self, args);
}

PyObject* GuardedAccept(PyObject* self, PyObject* unused) {
  Sandbox* sandbox = Sandbox::Current();
  if (Active(sandbox) && !sandbox->CheckDescriptorCap()) return nullptr;
  PyObject* result = g_socket_accept(self, unused);  // (fd, address)
  if (result != nullptr && Active(sandbox) && PyTuple_Check(result) &&
      PyTuple_GET_SIZE(result) == 2) {
    if (std::optional<int> fd = Descriptor(PyTuple_GET_ITEM(result, 0))) sandbox->RecordFd(*fd);
  }
  return result;
}

// detach(): the socket lets go of its descriptor, which stays the code's: a new
// object may hold it.
PyObject* GuardedDetach(PyObject* self, PyObject* unused) {
  PyObject* result = g_socket_detach(self, unused);  // the descriptor
  Sandbox* sandbox = Sandbox::Current();
  if (result != nullptr && Active(sandbox)) {
    if (std::optional<int> fd = Descriptor(result)) sandbox->RecordFd(*fd);
  }
  return result;
}

PyObject* GuardedSocketpair(PyObject* module, PyObject* args) {
  Sandbox* sandbox = Sandbox::Current();
  if (Active(sandbox) && !sandbox->CheckDescriptorCap()) return nullptr;
  PyObject* result = g_socketpair(module, args);  // (socket, socket)
  if (result != nullptr && Active(sandbox) && PyTuple_Check(result)) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(result); ++i) {
      PyObject* socket = PyTuple_GET_ITEM(result, i);
      if (std::optional<int> fd = RecordSocket(*sandbox, socket)) sandbox->RecordLocalSocket(*fd);
      if (!ApplyDefaultTimeout(*sandbox, socket)) {
        Py_DECREF(result);
        return nullptr;
      }
    }
  }
  return result;
}

// --- host names ----------------------------------------------------------------------
// _socket turns a str host name into bytes through the "idna" codec (getaddrinfo for
// every str, the others for non-ASCII ones) after pyhost's audit rule judged the str:
// a codec of the code's (codecs.register, encodings._cache, encodings.idna's globals)
// could have an allowed name resolve as another. Under an enforcing policy each call
// gets the bytes instead, made as _socket makes them, so the rule judges what is
// resolved.

PyCFunction g_getaddrinfo = nullptr;
PyCFunction g_gethostbyname = nullptr;
PyCFunction g_gethostbyname_ex = nullptr;
PyCFunction g_gethostbyaddr = nullptr;
PyCFunction g_socket_connect = nullptr;
PyCFunction g_socket_connect_ex = nullptr;
PyCFunction g_socket_sendto = nullptr;
PyCFunction g_socket_sendmsg = nullptr;

// `host` as the bytes _socket resolves: ASCII text as it is, other text through the
// codec (as python3: with its errors), anything else unchanged.
py::object ResolvedHost(PyObject* host) {
  if (host == nullptr || !PyUnicode_Check(host)) return py::reinterpret_borrow<py::object>(host);
  if (PyUnicode_IS_ASCII(host)) {
    return py::reinterpret_steal<py::object>(PyBytes_FromStringAndSize(
        static_cast<const char*>(PyUnicode_DATA(host)), PyUnicode_GET_LENGTH(host)));
  }
  return py::reinterpret_steal<py::object>(PyUnicode_AsEncodedString(host, "idna", nullptr));
}

// getaddrinfo encodes ASCII names through the codec too, whose checks python3 shows
// (labels of 1 to 63 characters); the same errors here, without the codec.
bool CheckAsciiLabels(PyObject* host) {
  if (host == nullptr || !PyUnicode_Check(host) || !PyUnicode_IS_ASCII(host)) return true;
  absl::string_view name(static_cast<const char*>(PyUnicode_DATA(host)),
                         static_cast<size_t>(PyUnicode_GET_LENGTH(host)));
  std::vector<absl::string_view> labels = absl::StrSplit(name, '.');
  for (size_t i = 0; i + 1 < labels.size(); ++i) {
    if (labels[i].empty() || labels[i].size() >= 64) {
      PyErr_SetString(PyExc_UnicodeError,
                      "encoding with 'idna' codec failed (UnicodeError: label empty or too long)");
      return false;
    }
  }
  if (labels.back().size() >= 64) {
    PyErr_SetString(PyExc_UnicodeError,
                    "encoding with 'idna' codec failed (UnicodeError: label too long)");
    return false;
  }
  return true;
}

// A copy of `args` whose item `i` (if there) is replaced by `make(item)`; null with an
// error if `make` fails.
// (A new tuple: the caller's, shared with whoever passed it, is never changed.)
template <typename Make>
py::object ReplacedArg(PyObject* args, Py_ssize_t i, Make make) {
  const Py_ssize_t n = PyTuple_GET_SIZE(args);
  if (i < 0 || i >= n) return py::reinterpret_borrow<py::object>(args);
  py::object item = make(PyTuple_GET_ITEM(args, i));
  auto copy = py::reinterpret_steal<py::object>(item ? PyTuple_New(n) : nullptr);
  if (!copy) return py::object();
  for (Py_ssize_t j = 0; j < n; ++j) {
    PyTuple_SET_ITEM(copy.ptr(), j,
                     j == i ? item.release().ptr() : Py_NewRef(PyTuple_GET_ITEM(args, j)));
  }
  return copy;
}

// An (host, port, ...) address with its host as resolved; others unchanged.
py::object ResolvedAddress(PyObject* address) {
  if (!PyTuple_Check(address) || PyTuple_GET_SIZE(address) < 1) {
    return py::reinterpret_borrow<py::object>(address);
  }
  return ReplacedArg(address, 0, ResolvedHost);
}

PyObject* GuardedGetaddrinfo(PyObject* module, PyObject* args, PyObject* kwargs) {
  auto original =
      reinterpret_cast<PyCFunctionWithKeywords>(reinterpret_cast<void (*)()>(g_getaddrinfo));
  if (!Sandbox::Enforcing(Sandbox::Current())) return original(module, args, kwargs);
  PyObject* host = PyTuple_GET_SIZE(args) > 0 ? PyTuple_GET_ITEM(args, 0)
                   : kwargs != nullptr        ? PyDict_GetItemString(kwargs, "host")
                                              : nullptr;
  if (!CheckAsciiLabels(host)) return nullptr;
  if (PyTuple_GET_SIZE(args) > 0) {
    py::object resolved = ReplacedArg(args, 0, ResolvedHost);
    return resolved ? original(module, resolved.ptr(), kwargs) : nullptr;
  }
  if (host == nullptr) return original(module, args, kwargs);
  py::object resolved = ResolvedHost(host);
  auto copy = py::reinterpret_steal<py::object>(resolved ? PyDict_Copy(kwargs) : nullptr);
  if (!copy || PyDict_SetItemString(copy.ptr(), "host", resolved.ptr()) != 0) return nullptr;
  return original(module, args, copy.ptr());
}

// A METH_VARARGS function whose argument `i` is a host name or an address.
template <PyCFunction* kOriginal, Py_ssize_t kIndex, bool kAddress>
PyObject* GuardedHostArg(PyObject* self, PyObject* args) {
  if (!Sandbox::Enforcing(Sandbox::Current())) return (*kOriginal)(self, args);
  // sendto(data, address) or sendto(data, flags, address): the address is last.
  Py_ssize_t i = kIndex < 0 ? PyTuple_GET_SIZE(args) - 1 : kIndex;
  py::object resolved = ReplacedArg(args, i, kAddress ? ResolvedAddress : ResolvedHost);
  return resolved ? (*kOriginal)(self, resolved.ptr()) : nullptr;
}

// connect(address), connect_ex(address): METH_O.
template <PyCFunction* kOriginal>
PyObject* GuardedConnect(PyObject* self, PyObject* address) {
  if (!Sandbox::Enforcing(Sandbox::Current())) return (*kOriginal)(self, address);
  py::object resolved = ResolvedAddress(address);
  return resolved ? (*kOriginal)(self, resolved.ptr()) : nullptr;
}

absl::Status GuardHostNames(PyTypeObject* socket_type, PyObject* module_dict) {
  PyObject* methods = socket_type->tp_dict;
  for (absl::Status s : {
           SwapMethod(
               module_dict, "getaddrinfo", METH_VARARGS | METH_KEYWORDS,
               reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(GuardedGetaddrinfo)),
               &g_getaddrinfo),
           SwapMethod(module_dict, "gethostbyname", METH_VARARGS,
                      GuardedHostArg<&g_gethostbyname, 0, false>, &g_gethostbyname),
           SwapMethod(module_dict, "gethostbyname_ex", METH_VARARGS,
                      GuardedHostArg<&g_gethostbyname_ex, 0, false>, &g_gethostbyname_ex),
           SwapMethod(module_dict, "gethostbyaddr", METH_VARARGS,
                      GuardedHostArg<&g_gethostbyaddr, 0, false>, &g_gethostbyaddr),
           SwapMethod(methods, "connect", METH_O, GuardedConnect<&g_socket_connect>,
                      &g_socket_connect),
           SwapMethod(methods, "connect_ex", METH_O, GuardedConnect<&g_socket_connect_ex>,
                      &g_socket_connect_ex),
           SwapMethod(methods, "sendto", METH_VARARGS, GuardedHostArg<&g_socket_sendto, -1, true>,
                      &g_socket_sendto),
           SwapMethod(methods, "sendmsg", METH_VARARGS, GuardedHostArg<&g_socket_sendmsg, 3, true>,
                      &g_socket_sendmsg),
       }) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
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
  g_socket_settimeout = PyDict_GetItemString(socket_type->tp_dict, "settimeout");
  if (g_socket_settimeout == nullptr)
    return absl::InternalError("_socket.socket has no settimeout");
  Py_INCREF(g_socket_settimeout);
  PyObject* methods = socket_type->tp_dict;
  for (absl::Status s : {
           SwapInit(socket_type, GuardedSocketInit, &g_socket_init),
           SwapMethod(methods, "listen", METH_VARARGS, GuardedListen, &g_socket_listen),
           SwapMethod(methods, "_accept", METH_NOARGS, GuardedAccept, &g_socket_accept),
           SwapMethod(methods, "detach", METH_NOARGS, GuardedDetach, &g_socket_detach),
       }) {
    if (!s.ok()) return s;
  }
  absl::StatusOr<py::object> module = Attribute("sys", "modules");
  if (!module.ok()) return module.status();
  PyObject* socket_module = PyDict_GetItemString(module->ptr(), "_socket");
  if (socket_module == nullptr) return absl::InternalError("_socket is not loaded");
  if (absl::Status s = GuardHostNames(socket_type, PyModule_GetDict(socket_module)); !s.ok())
    return s;
  if (absl::Status s = SwapMethod(PyModule_GetDict(socket_module), "socketpair", METH_VARARGS,
                                  GuardedSocketpair, &g_socketpair);
      !s.ok()) {
    return s;
  }
  return MakeSocketWaitsInterruptible(socket_type);  // around the guards above
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
    auto name = py::reinterpret_steal<py::object>(PyUnicode_CheckExact(key) ? Py_NewRef(key)
                                                                            : _PyUnicode_Copy(key));
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
  auto checked =
      py::reinterpret_steal<py::object>(PyCFunction_NewEx(&kCheckedOpenerDef, opener, nullptr));
  if (!checked) return false;
  if (positional) {
    // A new tuple: PyTuple_GetSlice of a whole tuple is the same tuple, not a copy.
    const Py_ssize_t n = PyTuple_GET_SIZE(args);
    auto copy = py::reinterpret_steal<py::object>(PyTuple_New(n));
    if (!copy) return false;
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyTuple_SET_ITEM(copy.ptr(), i,
                       Py_NewRef(i == position ? checked.ptr() : PyTuple_GET_ITEM(args, i)));
    }
    *new_args = std::move(copy);
  } else {
    auto copy = py::reinterpret_steal<py::object>(PyDict_Copy(kwargs));
    if (!copy || PyDict_SetItemString(copy.ptr(), "opener", checked.ptr()) != 0) return false;
    *new_kwargs = std::move(copy);
  }
  return true;
}

std::optional<int64_t> HeapTypeCreator(const void* type) {
  absl::MutexLock lock(&g_creators_mu);
  auto it = Creators().find(type);
  if (it == Creators().end()) return std::nullopt;
  return it->second;
}

absl::Status SwapSlotWrapper(PyTypeObject* type, const char* name, void* original,
                             void* replacement) {
  PyObject* descr = PyDict_GetItemString(type->tp_dict, name);  // borrowed
  auto* wrapper = descr != nullptr && Py_IS_TYPE(descr, &PyWrapperDescr_Type)
                      ? reinterpret_cast<PyWrapperDescrObject*>(descr)
                      : nullptr;
  if (wrapper == nullptr || wrapper->d_wrapped != original) {
    return absl::InternalError(absl::StrCat("cannot guard ", type->tp_name, ".", name));
  }
  wrapper->d_wrapped = replacement;
  return absl::OkStatus();
}

void ForEachSubclass(PyTypeObject* root, const std::function<void(PyTypeObject*)>& visit) {
  std::vector<py::object> stack = {
      py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(root))};
  absl::flat_hash_map<PyObject*, bool> seen;
  while (!stack.empty()) {
    py::object type = std::move(stack.back());
    stack.pop_back();
    if (!seen.try_emplace(type.ptr(), true).second) continue;
    visit(reinterpret_cast<PyTypeObject*>(type.ptr()));
    // Before isolation the type's own __subclasses__ is still the original.
    PyObject* list_them = g_original_subclasses != nullptr
                              ? g_original_subclasses
                              : PyDict_GetItemString(PyType_Type.tp_dict, "__subclasses__");
    auto subclasses = py::reinterpret_steal<py::object>(PyObject_CallOneArg(list_them, type.ptr()));
    if (!subclasses || !PyList_Check(subclasses.ptr())) {
      PyErr_Clear();
      continue;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(subclasses.ptr()); ++i) {
      stack.push_back(py::reinterpret_borrow<py::object>(PyList_GET_ITEM(subclasses.ptr(), i)));
    }
  }
}

absl::Status GuardSharedTypes() {
  static const absl::Status guarded = []() -> absl::Status {
    if (absl::Status s = IsolateTypeSubclasses(); !s.ok()) return s;
    PyCFunction original_replace = nullptr;
    if (absl::Status s = SwapMethod(
            PyCode_Type.tp_dict, "replace", METH_FASTCALL | METH_KEYWORDS,
            reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(GuardedCodeReplace)),
            &original_replace);
        !s.ok()) {
      return s;
    }
    g_code_replace = reinterpret_cast<_PyCFunctionFastWithKeywords>(
        reinterpret_cast<void (*)()>(original_replace));
    absl::StatusOr<py::object> fileio = Attribute("_io", "FileIO");
    if (!fileio.ok()) return fileio.status();
    g_fileio_fileno =
        PyDict_GetItemString(reinterpret_cast<PyTypeObject*>(fileio->ptr())->tp_dict, "fileno");
    if (g_fileio_fileno == nullptr) return absl::InternalError("_io.FileIO has no fileno");
    Py_INCREF(g_fileio_fileno);
    if (absl::Status s = SwapInit(reinterpret_cast<PyTypeObject*>(fileio->ptr()), GuardedFileIOInit,
                                  &g_fileio_init);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = GuardSockets(); !s.ok()) return s;
    return GuardCRecursion();
  }();
  return guarded;
}

}  // namespace pyhost

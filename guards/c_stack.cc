#include "guards/c_stack.h"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

#include <pybind11/pytypes.h>

#include "absl/strings/str_cat.h"
#include "bindings/python_error.h"
#include "guards/shared_types.h"

#if PY_VERSION_HEX >= 0x030C0000
#error "3.12 counts C recursion and 3.14 checks the C stack itself: revisit these guards"
#endif

namespace pyhost {
namespace {

namespace py = pybind11;

// --- the running thread's stack ---------------------------------------------------------

// The lowest address recursion may reach on this thread: its stack's bottom plus a
// reserve for what runs below the last guarded call (Python code recursing up to the
// recursion limit through C slots needs up to ~2 MB on these machines). UINTPTR_MAX
// until computed (every address is below it, which sends the first check to
// ComputeStackFloor); 0 if unknown.
thread_local uintptr_t t_stack_floor = UINTPTR_MAX;

[[gnu::noinline]] bool StackLowSlow(uintptr_t here) {
  if (t_stack_floor == UINTPTR_MAX) {
    t_stack_floor = 0;
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      void* low = nullptr;
      size_t size = 0;
      if (pthread_attr_getstack(&attr, &low, &size) == 0 && size > 0) {
        size_t reserve = std::min(size / 2, size / 4 + (size_t{1} << 20));
        t_stack_floor = reinterpret_cast<uintptr_t>(low) + reserve;
      }
      pthread_attr_destroy(&attr);
    }
  }
  return here < t_stack_floor;
}

// On every guarded call: one thread-local load and a comparison.
inline bool StackLow() {
  const auto here = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  return __builtin_expect(here < t_stack_floor, 0) && StackLowSlow(here);
}

[[gnu::noinline]] void RaiseNested(const char* what) {
  PyErr_Format(PyExc_RecursionError,
               "C stack nearly exhausted %s: pyhost stops this C-level recursion, which "
               "Python 3.11's recursion limit does not count, before it crashes the process",
               what);
}

// --- slots that raise RecursionError near the bottom of the stack ----------------------

constexpr size_t kMaxPerSignature = 64;

template <typename R>
R Failure() {
  if constexpr (std::is_pointer_v<R>) {
    return nullptr;
  } else {
    return -1;
  }
}

// One trampoline per original C function of a given signature: it checks the stack,
// then calls the original.
template <typename Signature>
struct Guarded;

template <typename R, typename... A>
struct Guarded<R(A...)> {
  using Fn = R (*)(A...);
  struct Entry {
    Fn original = nullptr;
    const char* what = nullptr;
  };
  static inline std::array<Entry, kMaxPerSignature> entries{};
  static inline size_t used = 0;

  template <size_t I>
  static R Call(A... args) {
    if (StackLow()) {
      RaiseNested(entries[I].what);
      return Failure<R>();
    }
    return entries[I].original(args...);
  }

  template <size_t... I>
  static constexpr std::array<Fn, sizeof...(I)> Trampolines(std::index_sequence<I...>) {
    return {&Call<I>...};
  }
  static inline const std::array<Fn, kMaxPerSignature> trampolines =
      Trampolines(std::make_index_sequence<kMaxPerSignature>());

  // The trampoline for `original` (made once per original); `original` itself if it
  // is one already or the table is full. GIL held.
  static Fn Wrap(Fn original, const char* what) {
    if (original == nullptr) return nullptr;
    for (size_t i = 0; i < used; ++i) {
      if (entries[i].original == original || trampolines[i] == original) return trampolines[i];
    }
    if (used == kMaxPerSignature) return original;
    entries[used] = {original, what};
    return trampolines[used++];
  }
};

template <typename Fn>
void WrapSlot(Fn* slot, const char* what) {
  using Signature = std::remove_pointer_t<Fn>;
  *slot = Guarded<Signature>::Wrap(*slot, what);
}

// --- deallocation unwound like CPython's trashcan -----------------------------------------

// Past this many nested guarded deallocations, an object's is deferred (CPython's
// trashcan uses the same depth).
constexpr int kUnwindDepth = 50;
constexpr size_t kMaxDeallocs = 512;

struct Deferred {
  PyObject* object;
  destructor original;
  bool tracked;
};

thread_local int t_dealloc_depth = 0;
// Freed with its thread (fresh executions run on pooled threads that may end).
thread_local std::unique_ptr<std::vector<Deferred>> t_deferred;

std::array<destructor, kMaxDeallocs> g_deallocs{};
size_t g_deallocs_used = 0;

// Runs deferred deallocations until none is left (each may defer more: the chain is
// walked kUnwindDepth levels at a time, never deeper).
[[gnu::noinline]] void DrainDeferred() {
  while (!t_deferred->empty()) {
    Deferred next = t_deferred->back();
    t_deferred->pop_back();
    if (next.tracked) PyObject_GC_Track(next.object);
    ++t_dealloc_depth;
    next.original(next.object);
    --t_dealloc_depth;
  }
}

template <size_t I>
void GuardedDealloc(PyObject* object);

template <size_t... I>
constexpr std::array<destructor, sizeof...(I)> DeallocTrampolines(std::index_sequence<I...>) {
  return {&GuardedDealloc<I>...};
}
const std::array<destructor, kMaxDeallocs> g_dealloc_trampolines =
    DeallocTrampolines(std::make_index_sequence<kMaxDeallocs>());

template <size_t I>
void GuardedDealloc(PyObject* object) {
  // A subclass's instance comes through subtype_dealloc, which has a trashcan of its
  // own and must find its object freed when the base's dealloc returns.
  if (t_dealloc_depth >= kUnwindDepth && Py_TYPE(object)->tp_dealloc == g_dealloc_trampolines[I]) {
    const bool tracked = PyObject_IS_GC(object) && PyObject_GC_IsTracked(object);
    if (tracked) PyObject_GC_UnTrack(object);  // a refcount-0 object must not be collected
    if (t_deferred == nullptr) t_deferred = std::make_unique<std::vector<Deferred>>();
    t_deferred->push_back({object, g_deallocs[I], tracked});
    return;
  }
  ++t_dealloc_depth;
  g_deallocs[I](object);
  if (--t_dealloc_depth == 0 && t_deferred != nullptr && !t_deferred->empty()) DrainDeferred();
}

// What every class made by Python code is freed with (subtype_dealloc, which has a
// trashcan of its own); null with a Python error if it cannot be found. GIL held.
destructor SubtypeDealloc() {
  static destructor dealloc = []() -> destructor {
    auto probe = py::reinterpret_steal<py::object>(PyObject_CallFunction(
        reinterpret_cast<PyObject*>(&PyType_Type), "s()N", "probe", PyDict_New()));
    return probe ? reinterpret_cast<PyTypeObject*>(probe.ptr())->tp_dealloc : nullptr;
  }();
  return dealloc;
}

void WrapDealloc(PyTypeObject* type) {
  destructor original = type->tp_dealloc;
  if (original == nullptr) return;
  for (size_t i = 0; i < g_deallocs_used; ++i) {
    if (g_deallocs[i] == original || g_dealloc_trampolines[i] == original) {
      type->tp_dealloc = g_dealloc_trampolines[i];
      return;
    }
  }
  if (g_deallocs_used == kMaxDeallocs) return;
  g_deallocs[g_deallocs_used] = original;
  type->tp_dealloc = g_dealloc_trampolines[g_deallocs_used++];
}

// --- types.MethodType chains ---------------------------------------------------------------

// A bound method's calls go through its own vectorcall pointer, never a type slot:
// the nesting is bounded where methods of methods are made.
bool MethodTooDeep(PyObject* method) {
  int depth = 0;
  for (PyObject* m = method; m != nullptr && PyMethod_Check(m); m = PyMethod_GET_FUNCTION(m)) {
    if (++depth > kMaxMethodNesting) {
      PyErr_Format(PyExc_RecursionError,
                   "types.MethodType nested more than %d deep: pyhost refuses it (calling, "
                   "hashing or freeing it recurses in C, which would overflow the stack)",
                   kMaxMethodNesting);
      return true;
    }
  }
  return false;
}

newfunc g_method_new = nullptr;
PyObject* GuardedMethodNew(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  PyObject* method = g_method_new(type, args, kwargs);
  if (method != nullptr && MethodTooDeep(method)) Py_CLEAR(method);
  return method;
}

descrgetfunc g_classmethod_get = nullptr;
PyObject* GuardedClassmethodGet(PyObject* self, PyObject* obj, PyObject* type) {
  // classmethod(x).__get__ calls x's __get__ (a chain of classmethods recurses) or
  // binds x (a bound method: a method of a method).
  if (CStackExhausted("in nested classmethod objects")) return nullptr;
  PyObject* bound = g_classmethod_get(self, obj, type);
  if (bound != nullptr && MethodTooDeep(bound)) Py_CLEAR(bound);
  return bound;
}

// --- what is guarded -------------------------------------------------------------------------

constexpr char kIterating[] =
    "in nested iterators (map, filter, zip, enumerate, itertools, csv.reader...)";

absl::Status GuardIterator(PyObject* type_object) {
  if (type_object == nullptr || !PyType_Check(type_object)) {
    return absl::InternalError("guarding C recursion: not a type");
  }
  auto* type = reinterpret_cast<PyTypeObject*>(type_object);
  WrapSlot(&type->tp_iternext, kIterating);
  WrapDealloc(type);
  return absl::OkStatus();
}

// The iterator types of a module, by attribute: the classes themselves, or (for types
// with no public name) an expression's type.
absl::Status GuardIterators(const char* module_name,
                            std::initializer_list<const char*> expressions) {
  auto module = py::reinterpret_steal<py::object>(PyImport_ImportModule(module_name));
  if (!module)
    return StatusFromPythonError(absl::StrCat("guarding C recursion: import ", module_name));
  auto globals = py::reinterpret_steal<py::object>(PyDict_New());
  if (!globals || PyDict_SetItemString(globals.ptr(), "m", module.ptr()) != 0 ||
      PyDict_SetItemString(globals.ptr(), "__builtins__", PyEval_GetBuiltins()) != 0) {
    return StatusFromPythonError("guarding C recursion");
  }
  for (const char* expression : expressions) {
    auto type = py::reinterpret_steal<py::object>(
        PyRun_String(expression, Py_eval_input, globals.ptr(), globals.ptr()));
    if (!type) return StatusFromPythonError(absl::StrCat("guarding C recursion: ", expression));
    if (absl::Status s = GuardIterator(type.ptr()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// Deallocation of every static GC type but the containers that have CPython's own
// trashcan (hot, and already unwound) and type (guards/shared_types.h wraps it).
void GuardStaticDeallocs() {
  const std::array<PyTypeObject*, 7> own = {&PyTuple_Type,     &PyList_Type,      &PyDict_Type,
                                            &PySet_Type,       &PyFrozenSet_Type, &PyType_Type,
                                            &PyBaseObject_Type};
  ForEachSubclass(&PyBaseObject_Type, [&own](PyTypeObject* type) {
    if ((type->tp_flags & Py_TPFLAGS_HEAPTYPE) || !(type->tp_flags & Py_TPFLAGS_HAVE_GC)) return;
    if (std::find(own.begin(), own.end(), type) != own.end()) return;
    if (type->tp_dealloc == PyType_Type.tp_dealloc) return;  // metatypes (ctypes')
    WrapDealloc(type);
  });
}

}  // namespace

bool CStackExhausted(const char* what) {
  if (!StackLow()) return false;
  RaiseNested(what);
  return true;
}

absl::Status GuardCRecursion() {
  static const absl::Status guarded = []() -> absl::Status {
    // Builtin modules with static types: ready them now so that they are guarded.
    for (const char* module : {"itertools", "_collections"}) {
      auto imported = py::reinterpret_steal<py::object>(PyImport_ImportModule(module));
      if (!imported)
        return StatusFromPythonError(absl::StrCat("guarding C recursion: import ", module));
    }
    for (PyTypeObject* type : {&PyMap_Type, &PyFilter_Type, &PyZip_Type, &PyEnum_Type}) {
      WrapSlot(&type->tp_iternext, kIterating);
    }
    if (absl::Status s =
            GuardIterators("itertools", {"m.chain", "m.islice", "m.takewhile", "m.dropwhile",
                                         "m.starmap", "m.accumulate", "m.compress", "m.filterfalse",
                                         "m.zip_longest", "m.cycle", "m.pairwise", "m.groupby",
                                         "type(m.tee(())[0])", "type(next(m.groupby([0]))[1])"});
        !s.ok()) {
      return s;
    }
    constexpr char kProxy[] = "in nested mappingproxy objects";
    WrapSlot(&PyDictProxy_Type.tp_as_mapping->mp_subscript, kProxy);
    WrapSlot(&PyDictProxy_Type.tp_as_mapping->mp_length, kProxy);
    WrapSlot(&PyDictProxy_Type.tp_as_sequence->sq_contains, kProxy);
    WrapSlot(&PyDictProxy_Type.tp_iter, kProxy);
    WrapSlot(&PyDictProxy_Type.tp_as_number->nb_or, kProxy);
    WrapSlot(&Py_GenericAliasType.tp_getattro, "in nested types.GenericAlias objects");
    WrapSlot(&PyMethod_Type.tp_hash, "hashing nested bound methods");
    // Tuples: also the static subtypes that copied tuple's hash (struct sequences).
    hashfunc tuple_hash = PyTuple_Type.tp_hash;
    ForEachSubclass(&PyTuple_Type, [tuple_hash](PyTypeObject* type) {
      if (type->tp_hash == tuple_hash) WrapSlot(&type->tp_hash, "hashing a deeply nested tuple");
    });
    g_classmethod_get = PyClassMethod_Type.tp_descr_get;
    PyClassMethod_Type.tp_descr_get = GuardedClassmethodGet;
    // classmethod(f).__get__(None, cls) called directly makes methods of methods too.
    if (absl::Status s = SwapSlotWrapper(&PyClassMethod_Type, "__get__",
                                         reinterpret_cast<void*>(g_classmethod_get),
                                         reinterpret_cast<void*>(GuardedClassmethodGet));
        !s.ok()) {
      return s;
    }
    g_method_new = PyMethod_Type.tp_new;
    PyMethod_Type.tp_new = GuardedMethodNew;
    GuardStaticDeallocs();
    return absl::OkStatus();
  }();
  return guarded;
}

absl::Status GuardCRecursionInInterpreter() {
  // Heap types of C modules, one set per interpreter (the same C functions). Struct
  // sequences made so far (os.stat_result, time.struct_time...) hold any object and
  // free their items without a trashcan. (Only modules loaded anyway are imported
  // here: a module in sys.modules is reachable without an import statement.)
  destructor python_class = SubtypeDealloc();
  if (python_class == nullptr) return StatusFromPythonError("guarding C recursion: a probe class");
  ForEachSubclass(&PyTuple_Type, [python_class](PyTypeObject* type) {
    if ((type->tp_flags & Py_TPFLAGS_HEAPTYPE) && type->tp_dealloc != python_class)
      WrapDealloc(type);
  });
  if (absl::Status s = GuardIterators("_csv", {"type(m.reader([]))"}); !s.ok()) return s;
  auto guard_dealloc = [](const char* module_name, std::initializer_list<const char*> expressions) {
    auto module = py::reinterpret_steal<py::object>(PyImport_ImportModule(module_name));
    if (!module)
      return StatusFromPythonError(absl::StrCat("guarding C recursion: import ", module_name));
    for (const char* expression : expressions) {
      auto value = py::reinterpret_steal<py::object>(
          PyObject_CallMethod(module.ptr(), expression, "O", Py_None));
      if (!value) return StatusFromPythonError(absl::StrCat("guarding C recursion: ", expression));
      WrapDealloc(Py_TYPE(value.ptr()));
    }
    return absl::OkStatus();
  };
  if (absl::Status s = guard_dealloc("_operator", {"itemgetter"}); !s.ok()) return s;
  return guard_dealloc("_functools", {"cmp_to_key"});
}

}  // namespace pyhost

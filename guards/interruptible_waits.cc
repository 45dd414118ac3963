#include "guards/interruptible_waits.h"

#include <climits>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "bindings/cancellation.h"
#include "bindings/python_error.h"

namespace pyhost {
namespace {

// The longest wait sliced: beyond, the original call answers (OverflowError).
constexpr double kMaxSlicedSeconds = 1e9;

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// A timeout argument the slicing understands: absent or None (forever), or an exact
// int or float. Anything else goes to the original call unchanged, which checks it.
// Sets *forever or *seconds; false for "call the original as it is". `scale`: the
// argument's units per second (1000 for poll's milliseconds).
bool ReadTimeout(PyObject* timeout, bool none_is_forever, double minus_one_value, bool* forever,
                 double* seconds, bool negative_is_forever = false, double scale = 1) {
  *forever = false;
  if (timeout == nullptr || (none_is_forever && timeout == Py_None)) {
    *forever = true;
    return true;
  }
  if (!PyLong_CheckExact(timeout) && !PyFloat_CheckExact(timeout)) return false;
  double value = PyFloat_AsDouble(timeout);
  if (value == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    return false;
  }
  if (value == minus_one_value || (negative_is_forever && value < 0)) {
    *forever = true;
    return true;
  }
  value /= scale;
  if (!(value > Seconds(kWaitSlice)) || value > kMaxSlicedSeconds) {  // NaN fails the first
    return false;
  }
  *seconds = value;
  return true;
}

// Calls `slice(remaining)` until it returns something other than `retry` (a new
// reference, or null with an error), the time is up, or an interruption is pending.
// `retry` answers the slice that found nothing (false, an empty result).
template <typename Slice, typename Retry>
PyObject* Sliced(bool forever, double seconds, Slice slice, Retry retry) {
  const absl::Time end = forever ? absl::InfiniteFuture() : absl::Now() + absl::Seconds(seconds);
  for (;;) {
    const absl::Duration left = end - absl::Now();
    const bool last = !forever && left <= kWaitSlice;
    PyObject* result = slice(last ? std::max(0.0, Seconds(left)) : Seconds(kWaitSlice));
    if (last || !retry(result)) return result;
    Py_XDECREF(result);
    PyErr_Clear();
    if (RaisePendingInterrupt()) return nullptr;
  }
}

// --- methods of the code's heap types -------------------------------------------------

// A method replaced in its type's dict; the original's PyMethodDef is static data of
// the module's C code (the same for every interpreter), kept at the first replacement.
struct Replaced {
  const char* type_attr;  // the type's name in the module
  const char* method;
  PyMethodDef* original = nullptr;
  PyMethodDef wrapper;
};

// The class a METH_METHOD function is defined in (it reads its module's state): the
// first of `self`'s types that belongs to a module.
PyTypeObject* DefiningClass(PyObject* self) {
  PyObject* mro = Py_TYPE(self)->tp_mro;
  for (Py_ssize_t i = 0; mro != nullptr && i < PyTuple_GET_SIZE(mro); ++i) {
    auto* type = reinterpret_cast<PyTypeObject*>(PyTuple_GET_ITEM(mro, i));
    if ((type->tp_flags & Py_TPFLAGS_HEAPTYPE) &&
        reinterpret_cast<PyHeapTypeObject*>(type)->ht_module != nullptr) {
      return type;
    }
  }
  return Py_TYPE(self);
}

PyObject* CallOriginal(const PyMethodDef* def, PyObject* self, PyObject* args, PyObject* kwargs) {
  PyObject* bound = PyCMethod_New(const_cast<PyMethodDef*>(def), self, nullptr,
                                  (def->ml_flags & METH_METHOD) ? DefiningClass(self) : nullptr);
  if (bound == nullptr) return nullptr;
  PyObject* result = PyObject_Call(bound, args, kwargs);
  Py_DECREF(bound);
  return result;
}

// original(self, True, slice): acquire(blocking, timeout), get(block, timeout).
PyObject* CallBlockingFor(const PyMethodDef* original, PyObject* self, double slice) {
  PyObject* slice_args = Py_BuildValue("(Od)", Py_True, slice);
  if (slice_args == nullptr) return nullptr;
  PyObject* got = CallOriginal(original, self, slice_args, nullptr);
  Py_DECREF(slice_args);
  return got;
}

PyObject* AcquireSliced(const PyMethodDef* original, PyObject* self, PyObject* args,
                        PyObject* kwargs) {
  static const char* keywords[] = {"blocking", "timeout", nullptr};
  int blocking = 1;
  PyObject* timeout = nullptr;
  bool forever = false;
  double seconds = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|pO:acquire", const_cast<char**>(keywords),
                                   &blocking, &timeout) ||
      !blocking || !ReadTimeout(timeout, /*none_is_forever=*/false, -1.0, &forever, &seconds)) {
    PyErr_Clear();
    return CallOriginal(original, self, args, kwargs);
  }
  return Sliced(
      forever, seconds, [&](double slice) { return CallBlockingFor(original, self, slice); },
      [](PyObject* got) { return got == Py_False; });
}

PyObject* GetSliced(const PyMethodDef* original, PyObject* self, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"block", "timeout", nullptr};
  PyObject* block = Py_True;
  PyObject* timeout = nullptr;
  bool forever = false;
  double seconds = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:get", const_cast<char**>(keywords), &block,
                                   &timeout) ||
      !PyLong_Check(block) || PyObject_IsTrue(block) != 1 ||
      !ReadTimeout(timeout, /*none_is_forever=*/true, NAN, &forever, &seconds)) {
    PyErr_Clear();
    return CallOriginal(original, self, args, kwargs);
  }
  // Its module's Empty, found from the type, never imported: a policy may deny the
  // code `_queue` (which queue.py may still use).
  PyObject* module = PyType_GetModule(DefiningClass(self));  // borrowed
  PyObject* empty_type = module != nullptr ? PyObject_GetAttrString(module, "Empty") : nullptr;
  if (empty_type == nullptr) {
    PyErr_Clear();
    return CallOriginal(original, self, args, kwargs);
  }
  PyObject* result = Sliced(
      forever, seconds, [&](double slice) { return CallBlockingFor(original, self, slice); },
      [&](PyObject* got) { return got == nullptr && PyErr_ExceptionMatches(empty_type); });
  Py_DECREF(empty_type);
  return result;
}

// epoll.poll(timeout=None, maxevents=-1) (seconds) and poll.poll(timeout=None)
// (milliseconds): None or a negative timeout waits for good; an empty list is nothing
// ready in a slice.
template <int kScale>
PyObject* PollSliced(const PyMethodDef* original, PyObject* self, PyObject* args,
                     PyObject* kwargs) {
  static const char* keywords[] = {"timeout", "maxevents", nullptr};
  PyObject* timeout = nullptr;
  PyObject* maxevents = nullptr;
  bool forever = false;
  double seconds = 0;
  const bool parsed =
      kScale == 1 ? PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:poll",
                                                const_cast<char**>(keywords), &timeout, &maxevents)
                  : PyArg_ParseTuple(args, "|O:poll", &timeout) &&
                        (kwargs == nullptr || PyDict_GET_SIZE(kwargs) == 0);
  // Both take at most INT_MAX milliseconds: beyond, python3's OverflowError.
  if (!parsed ||
      !ReadTimeout(timeout, /*none_is_forever=*/true, NAN, &forever, &seconds,
                   /*negative_is_forever=*/true, kScale) ||
      (!forever && seconds >= INT_MAX / 1000.0)) {
    PyErr_Clear();
    return CallOriginal(original, self, args, kwargs);
  }
  return Sliced(
      forever, seconds,
      [&](double slice) {
        PyObject* slice_args = kScale != 1
                                   ? Py_BuildValue("(i)", static_cast<int>(slice * kScale + 0.5))
                               : maxevents != nullptr ? Py_BuildValue("(dO)", slice, maxevents)
                                                      : Py_BuildValue("(d)", slice);
        if (slice_args == nullptr) return static_cast<PyObject*>(nullptr);
        PyObject* ready = CallOriginal(original, self, slice_args, nullptr);
        Py_DECREF(slice_args);
        return ready;
      },
      [](PyObject* ready) {
        return ready != nullptr && PyList_Check(ready) && PyList_GET_SIZE(ready) == 0;
      });
}

using SlicedMethod = PyObject* (*)(const PyMethodDef*, PyObject*, PyObject*, PyObject*);

template <int kIndex>
PyObject* Wrapper(PyObject* self, PyObject* args, PyObject* kwargs);

// Which methods, per module: lock and RLock (acquire, and `with`, the same call),
// SimpleQueue.get.
struct Row {
  const char* module;
  Replaced replaced;
  SlicedMethod sliced;
};

Row* Rows() {
  static Row rows[] = {
      {"_thread", {"LockType", "acquire"}, AcquireSliced},
      {"_thread", {"LockType", "__enter__"}, AcquireSliced},
      {"_thread", {"RLock", "acquire"}, AcquireSliced},
      {"_thread", {"RLock", "__enter__"}, AcquireSliced},
      {"_queue", {"SimpleQueue", "get"}, GetSliced},
      {"select", {"epoll", "poll"}, PollSliced<1>},
      {"select", {"poll", "poll"}, PollSliced<1000>},  // the type of what select.poll() makes
  };
  return rows;
}
constexpr int kRows = 7;

template <int kIndex>
PyObject* Wrapper(PyObject* self, PyObject* args, PyObject* kwargs) {
  Row& row = Rows()[kIndex];
  return row.sliced(row.replaced.original, self, args, kwargs);
}

template <int... kIndex>
void SetWrappers(std::integer_sequence<int, kIndex...>) {
  ((Rows()[kIndex].replaced.wrapper.ml_meth =
        reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(Wrapper<kIndex>))),
   ...);
}

absl::Status Replace(PyObject* module, Row& row) {
  Replaced& r = row.replaced;
  PyObject* type = PyObject_GetAttrString(module, r.type_attr);
  if (type != nullptr && !PyType_Check(type) && PyCallable_Check(type)) {  // a factory
    PyObject* made = PyObject_CallNoArgs(type);
    Py_DECREF(type);
    type = made != nullptr ? reinterpret_cast<PyObject*>(Py_TYPE(made)) : nullptr;
    Py_XINCREF(type);
    Py_XDECREF(made);
  }
  if (type == nullptr || !PyType_Check(type)) {
    Py_XDECREF(type);
    return StatusFromPythonError(absl::StrCat("waits: ", row.module, ".", r.type_attr));
  }
  auto* heap = reinterpret_cast<PyTypeObject*>(type);
  PyObject* dict = heap->tp_dict;
  PyObject* current = PyDict_GetItemString(dict, r.method);  // borrowed
  absl::Status status;
  if (current == nullptr || !PyObject_TypeCheck(current, &PyMethodDescr_Type)) {
    status = absl::InternalError(absl::StrCat("waits: ", row.module, ".", r.type_attr, ".",
                                              r.method, " is not a C method: revisit"));
  } else {
    PyMethodDef* def = reinterpret_cast<PyMethodDescrObject*>(current)->d_method;
    if (def->ml_meth != r.wrapper.ml_meth) {
      if (r.original == nullptr) r.original = def;
      if (r.original != def) {
        status = absl::InternalError(
            absl::StrCat("waits: ", r.type_attr, ".", r.method, " changed its C function"));
      } else {
        if (r.wrapper.ml_name == nullptr) {
          r.wrapper.ml_name = r.method;
          r.wrapper.ml_flags = METH_VARARGS | METH_KEYWORDS;
          r.wrapper.ml_doc = def->ml_doc;
        }
        PyObject* descr = PyDescr_NewMethod(heap, &r.wrapper);
        if (descr == nullptr || PyDict_SetItemString(dict, r.method, descr) != 0) {
          status = StatusFromPythonError("waits: replacing a method");
        }
        Py_XDECREF(descr);
        PyType_Modified(heap);
      }
    }
  }
  Py_DECREF(type);
  return status;
}

}  // namespace

PyObject* SelectSliced(PyObject* args, PyObject* kwargs,
                       absl::FunctionRef<PyObject*(PyObject* args)> call) {
  PyObject *rlist, *wlist, *xlist, *timeout = Py_None;
  bool forever = false;
  double seconds = 0;
  if ((kwargs != nullptr && PyDict_GET_SIZE(kwargs) > 0) || !PyTuple_Check(args) ||
      !PyArg_UnpackTuple(args, "select", 3, 4, &rlist, &wlist, &xlist, &timeout) ||
      !ReadTimeout(timeout, /*none_is_forever=*/true, NAN, &forever, &seconds)) {
    PyErr_Clear();
    return call(args);
  }
  // Iterated once, as python3 does (an iterator would be used up by the first slice).
  PyObject* lists[3] = {PySequence_List(rlist), PySequence_List(wlist), PySequence_List(xlist)};
  absl::Cleanup release = [&lists] {
    for (PyObject* list : lists) Py_XDECREF(list);
  };
  if (lists[0] == nullptr || lists[1] == nullptr || lists[2] == nullptr) {
    PyErr_Clear();
    return call(args);  // python3's own error for what is not iterable
  }
  return Sliced(
      forever, seconds,
      [&](double slice) {
        PyObject* slice_args = Py_BuildValue("(OOOd)", lists[0], lists[1], lists[2], slice);
        if (slice_args == nullptr) return static_cast<PyObject*>(nullptr);
        PyObject* ready = call(slice_args);
        Py_DECREF(slice_args);
        return ready;
      },
      [](PyObject* ready) {  // ([], [], []): nothing was ready in this slice
        if (ready == nullptr || !PyTuple_Check(ready)) return false;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(ready); ++i) {
          PyObject* list = PyTuple_GET_ITEM(ready, i);
          if (!PyList_Check(list) || PyList_GET_SIZE(list) != 0) return false;
        }
        return true;
      });
}

absl::Status MakeWaitsInterruptible(PyObject* module, const char* name) {
  static bool wrappers_set = (SetWrappers(std::make_integer_sequence<int, kRows>{}), true);
  (void)wrappers_set;
  for (int i = 0; i < kRows; ++i) {
    Row& row = Rows()[i];
    if (strcmp(row.module, name) != 0) continue;
    if (absl::Status s = Replace(module, row); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace pyhost

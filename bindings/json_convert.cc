#include "bindings/json_convert.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bindings/py_string.h"
#include "bindings/python_error.h"

namespace pyhost {
namespace {

namespace py = pybind11;
using json = nlohmann::json;

// --- JSON -> Python --------------------------------------------------------------

absl::StatusOr<py::object> ToPython(const json& value, int depth) {
  PyObject* out = nullptr;
  if (value.is_structured() && depth >= kMaxValueDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat("value nested deeper than ", kMaxValueDepth, " levels"));
  }
  switch (value.type()) {
    case json::value_t::null:
      return py::reinterpret_borrow<py::object>(Py_None);
    case json::value_t::boolean:
      return py::reinterpret_borrow<py::object>(value.get<bool>() ? Py_True : Py_False);
    case json::value_t::number_integer:
      out = PyLong_FromLongLong(value.get<int64_t>());
      break;
    case json::value_t::number_unsigned:
      out = PyLong_FromUnsignedLongLong(value.get<uint64_t>());
      break;
    case json::value_t::number_float:
      out = PyFloat_FromDouble(value.get<double>());
      break;
    case json::value_t::string: {
      const auto& s = value.get_ref<const std::string&>();
      out = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "strict");
      if (out == nullptr) {
        PyErr_Clear();
        return absl::InvalidArgumentError("string is not valid UTF-8");
      }
      break;
    }
    case json::value_t::array: {
      // The items first: a list with empty slots must never exist while an allocation
      // can run the garbage collector (finalizers, gc.get_objects() would see it).
      std::vector<py::object> items;
      items.reserve(value.size());
      for (const auto& item : value) {
        absl::StatusOr<py::object> converted = ToPython(item, depth + 1);
        if (!converted.ok()) return converted.status();
        items.push_back(*std::move(converted));
      }
      auto list =
          py::reinterpret_steal<py::object>(PyList_New(static_cast<Py_ssize_t>(items.size())));
      if (!list) return StatusFromPythonError("list allocation");
      for (size_t i = 0; i < items.size(); ++i) {
        PyList_SET_ITEM(list.ptr(), static_cast<Py_ssize_t>(i), items[i].release().ptr());
      }
      return list;
    }
    case json::value_t::object: {
      auto dict = py::reinterpret_steal<py::object>(PyDict_New());
      if (!dict) return StatusFromPythonError("dict allocation");
      for (const auto& [key, item] : value.items()) {
        auto py_key = py::reinterpret_steal<py::object>(
            PyUnicode_DecodeUTF8(key.data(), static_cast<Py_ssize_t>(key.size()), "strict"));
        if (!py_key) {
          PyErr_Clear();
          return absl::InvalidArgumentError("object key is not valid UTF-8");
        }
        absl::StatusOr<py::object> converted = ToPython(item, depth + 1);
        if (!converted.ok()) return converted.status();
        if (PyDict_SetItem(dict.ptr(), py_key.ptr(), converted->ptr()) != 0) {
          return StatusFromPythonError("dict insert");
        }
      }
      return dict;
    }
    case json::value_t::binary:
      out = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(value.get_binary().data()),
                                      static_cast<Py_ssize_t>(value.get_binary().size()));
      break;
    case json::value_t::discarded:
      return absl::InvalidArgumentError("discarded JSON value");
  }
  if (out == nullptr) return StatusFromPythonError("value conversion");
  return py::reinterpret_steal<py::object>(out);
}

// --- describing a value without running its code ----------------------------------

constexpr size_t kMaxShown = 120;    // bytes of a value's description in a message
constexpr size_t kMaxShownKey = 40;  // bytes of one dict key in a path
constexpr int kMaxShownDepth = 3;

// `text` cut to at most `limit` bytes at a UTF-8 character boundary, "..." marking a cut.
std::string Bounded(std::string text, size_t limit) {
  if (text.size() <= limit) return text;
  size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  text.resize(end);
  return text + "...";
}

// Appends the str that `repr` (a C repr function, may be null-returning) makes of `value`.
void AppendRepr(reprfunc repr, PyObject* value, std::string& out) {
  auto text = py::reinterpret_steal<py::object>(repr(value));
  if (!text) {
    PyErr_Clear();
    absl::StrAppend(&out, "<", Py_TYPE(value)->tp_name, ">");
    return;
  }
  out += DisplayText(text.ptr());
}

void Describe(PyObject* value, int depth, std::string& out);

// Items of a list/tuple/set/dict, C-level: `next` yields new references (key and
// value for a dict) until it returns false.
template <typename Next>
void DescribeItems(const char* open, const char* close, int depth, std::string& out, Next next) {
  out += open;
  if (depth >= kMaxShownDepth) {
    out += "...";
  } else {
    py::object key, item;
    for (bool first = true; out.size() <= kMaxShown && next(key, item); first = false) {
      if (!first) out += ", ";
      if (key) {
        Describe(key.ptr(), depth + 1, out);
        out += ": ";
      }
      Describe(item.ptr(), depth + 1, out);
    }
  }
  out += close;
}

// Every object here is kept alive by a strong reference while it is described: an
// allocation can run a finalizer that changes the container.
void Describe(PyObject* value, int depth, std::string& out) {
  if (out.size() > kMaxShown) return;
  if (value == Py_None || PyBool_Check(value)) {
    out += value == Py_None ? "None" : value == Py_True ? "True" : "False";
  } else if (PyLong_Check(value)) {
    constexpr size_t kMaxBits = 4000;  // about 1200 digits: always cheap to print
    size_t bits = _PyLong_NumBits(value);
    if (bits > kMaxBits) {
      absl::StrAppend(&out, "<int of ", bits, " bits>");
    } else {
      AppendRepr(PyLong_Type.tp_repr, value, out);
    }
  } else if (PyFloat_Check(value)) {
    AppendRepr(PyFloat_Type.tp_repr, value, out);
  } else if (PyComplex_Check(value)) {
    AppendRepr(PyComplex_Type.tp_repr, value, out);
  } else if (PyUnicode_Check(value)) {
    Py_ssize_t length = PyUnicode_GET_LENGTH(value);
    auto head = py::reinterpret_steal<py::object>(
        PyUnicode_Substring(value, 0, std::min<Py_ssize_t>(length, kMaxShown)));
    if (head) AppendRepr(PyUnicode_Type.tp_repr, head.ptr(), out);
    PyErr_Clear();
    if (length > static_cast<Py_ssize_t>(kMaxShown)) out += "...";
  } else if (PyBytes_Check(value) || PyByteArray_Check(value)) {
    bool array = PyByteArray_Check(value);
    const char* data = array ? PyByteArray_AS_STRING(value) : PyBytes_AS_STRING(value);
    Py_ssize_t size = array ? PyByteArray_GET_SIZE(value) : PyBytes_GET_SIZE(value);
    auto head = py::reinterpret_steal<py::object>(
        PyBytes_FromStringAndSize(data, std::min<Py_ssize_t>(size, kMaxShown)));
    if (array) out += "bytearray(";
    if (head) AppendRepr(PyBytes_Type.tp_repr, head.ptr(), out);
    PyErr_Clear();
    if (size > static_cast<Py_ssize_t>(kMaxShown)) out += "...";
    if (array) out += ")";
  } else if (PyList_Check(value) || PyTuple_Check(value)) {
    bool list = PyList_Check(value);
    Py_ssize_t i = 0;
    DescribeItems(list ? "[" : "(", list ? "]" : ")", depth, out,
                  [&](py::object&, py::object& item) {
                    if (i >= Py_SIZE(value))
                      return false;  // re-read: a finalizer may have shrunk it
                    item = py::reinterpret_borrow<py::object>(list ? PyList_GET_ITEM(value, i)
                                                                   : PyTuple_GET_ITEM(value, i));
                    ++i;
                    return true;
                  });
  } else if (PyAnySet_Check(value)) {
    // The set type's own iterator, whatever a subclass defines; it stops with an
    // error if the set changes size meanwhile.
    auto it = py::reinterpret_steal<py::object>(PySet_Type.tp_iter(value));
    bool frozen = PyFrozenSet_Check(value);
    if (PySet_GET_SIZE(value) == 0 || !it) {
      out += frozen ? "frozenset()" : "set()";
    } else {
      DescribeItems(frozen ? "frozenset({" : "{", frozen ? "})" : "}", depth, out,
                    [&](py::object&, py::object& item) {
                      item = py::reinterpret_steal<py::object>(PyIter_Next(it.ptr()));
                      return static_cast<bool>(item);
                    });
    }
    PyErr_Clear();
  } else if (PyDict_Check(value)) {
    Py_ssize_t pos = 0;
    DescribeItems("{", "}", depth, out, [&](py::object& key, py::object& item) {
      PyObject *k = nullptr, *v = nullptr;
      if (!PyDict_Next(value, &pos, &k, &v)) return false;
      key = py::reinterpret_borrow<py::object>(k);
      item = py::reinterpret_borrow<py::object>(v);
      return true;
    });
  } else {
    absl::StrAppend(&out, "<", Py_TYPE(value)->tp_name, " object>");
  }
}

std::string BoundedDescription(PyObject* value) {
  std::string out;
  Describe(value, 0, out);
  return Bounded(std::move(out), kMaxShown);
}

// --- Python -> JSON --------------------------------------------------------------

// Where the walk is. Turned into text ("result['a'][2]") only when an error is
// reported, so the cost of a walk stays linear in the size of the value.
class Path {
 public:
  explicit Path(absl::string_view root) : root_(root) {}
  void PushIndex() { steps_.push_back({0, nullptr}); }
  void SetIndex(Py_ssize_t index) { steps_.back().index = index; }
  void PushKey(const std::string* key) { steps_.push_back({0, key}); }
  void Pop() { steps_.pop_back(); }

  std::string ToString() const {
    constexpr size_t kHead = 8, kTail = 4;  // a cycle's path would be hundreds of "[0]"
    std::string out(root_);
    for (size_t i = 0; i < steps_.size(); ++i) {
      if (steps_.size() > kHead + kTail && i == kHead) {
        out += "...";
        i = steps_.size() - kTail;
      }
      const Step& step = steps_[i];
      if (step.key != nullptr) {
        absl::StrAppend(&out, "['", Bounded(*step.key, kMaxShownKey), "']");
      } else {
        absl::StrAppend(&out, "[", step.index, "]");
      }
    }
    return out;
  }

 private:
  struct Step {
    Py_ssize_t index;
    const std::string* key;  // a dict key, alive while the step is on the path
  };
  absl::string_view root_;
  std::vector<Step> steps_;
};

// Converts by C-level content only: no method of a subclass (__str__, __repr__,
// __iter__, items(), __eq__, __hash__...) ever runs, so the code cannot change or free
// what is being walked. Allocations can still run a finalizer (the garbage collector):
// every object walked is held by a strong reference, lists by a copy.
class Converter {
 public:
  Converter(absl::string_view where, size_t max_bytes) : path_(where), max_bytes_(max_bytes) {}

  // `value` must be kept alive by the caller for the whole call.
  absl::StatusOr<json> ToJson(PyObject* value, int depth) {
    if (absl::Status spent = Spend(kValueCost); !spent.ok()) return spent;
    if (value == Py_None) return json(nullptr);
    if (PyBool_Check(value)) return json(value == Py_True);
    if (PyLong_Check(value)) {
      int overflow = 0;
      long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
      if (overflow == 0) {
        if (v == -1 && PyErr_Occurred()) return StatusFromPythonError("int conversion");
        return json(static_cast<int64_t>(v));
      }
      if (overflow > 0) {
        unsigned long long u = PyLong_AsUnsignedLongLong(value);
        if (!PyErr_Occurred()) return json(static_cast<uint64_t>(u));
        PyErr_Clear();
      }
      return NotRepresentable(value, "int does not fit in 64 bits");
    }
    if (PyFloat_Check(value)) {
      double d = PyFloat_AS_DOUBLE(value);
      if (!std::isfinite(d)) return NotRepresentable(value, "float is not finite");
      return json(d);
    }
    if (PyUnicode_Check(value)) {
      std::optional<std::string> text = Utf8(value);
      if (!text) return NotRepresentable(value, "string is not encodable as UTF-8");
      if (absl::Status spent = Spend(text->size()); !spent.ok()) return spent;
      return json(*std::move(text));
    }
    if (PyList_Check(value) || PyTuple_Check(value) || PyDict_Check(value)) {
      if (depth >= kMaxValueDepth) {
        return absl::InvalidArgumentError(absl::StrCat(path_.ToString(), ": nested deeper than ",
                                                       kMaxValueDepth, " levels (a cycle?)"));
      }
      return PyDict_Check(value) ? DictToJson(value, depth) : SequenceToJson(value, depth);
    }
    return NotRepresentable(value, "not JSON-representable");
  }

 private:
  absl::StatusOr<json> SequenceToJson(PyObject* value, int depth) {
    // A tuple's items cannot change; a list is copied (the copy holds its items).
    auto items = PyList_Check(value)
                     ? py::reinterpret_steal<py::object>(PyList_GetSlice(value, 0, PY_SSIZE_T_MAX))
                     : py::reinterpret_borrow<py::object>(value);
    if (!items) return StatusFromPythonError("list copy");
    json out = json::array();
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items.ptr());
    path_.PushIndex();
    for (Py_ssize_t i = 0; i < n; ++i) {
      path_.SetIndex(i);
      absl::StatusOr<json> item = ToJson(PySequence_Fast_GET_ITEM(items.ptr(), i), depth + 1);
      if (!item.ok()) return item.status();
      out.push_back(*std::move(item));
    }
    path_.Pop();
    // Moved into the StatusOr explicitly: clang copied it (the whole subtree, per level).
    return absl::StatusOr<json>(std::move(out));
  }

  absl::StatusOr<json> DictToJson(PyObject* value, int depth) {
    // A snapshot of the items (new (key, value) tuples holding both).
    auto items = py::reinterpret_steal<py::object>(PyDict_Items(value));
    if (!items) return StatusFromPythonError("dict items");
    json out = json::object();
    Py_ssize_t n = PyList_GET_SIZE(items.ptr());
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* pair = PyList_GET_ITEM(items.ptr(), i);
      absl::StatusOr<std::string> key = KeyText(PyTuple_GET_ITEM(pair, 0));
      if (!key.ok()) return key.status();
      if (absl::Status spent = Spend(kKeyCost + key->size()); !spent.ok()) return spent;
      path_.PushKey(&*key);
      absl::StatusOr<json> item = ToJson(PyTuple_GET_ITEM(pair, 1), depth + 1);
      if (!item.ok()) return item.status();
      path_.Pop();
      out[*std::move(key)] = *std::move(item);
    }
    return absl::StatusOr<json>(std::move(out));
  }

  // Dict keys the way json.dumps makes them (int and float keys by int.__repr__ and
  // float.__repr__, whatever a subclass defines); non-finite floats are refused as
  // they are as values.
  absl::StatusOr<std::string> KeyText(PyObject* key) {
    if (PyUnicode_Check(key)) {
      std::optional<std::string> text = Utf8(key);
      if (!text) return NotRepresentable(key, "dict key is not encodable as UTF-8");
      return *std::move(text);
    }
    if (key == Py_None) return std::string("null");
    if (PyBool_Check(key)) return std::string(key == Py_True ? "true" : "false");
    bool is_float = PyFloat_Check(key);
    if (is_float && !std::isfinite(PyFloat_AS_DOUBLE(key))) {
      return NotRepresentable(key, "float dict key is not finite");
    }
    if (is_float || PyLong_Check(key)) {
      auto text = py::reinterpret_steal<py::object>(is_float ? PyFloat_Type.tp_repr(key)
                                                             : PyLong_Type.tp_repr(key));
      if (!text) {  // an int past sys.get_int_max_str_digits()
        PyErr_Clear();
        return NotRepresentable(key, "int dict key has too many digits");
      }
      return DisplayText(text.ptr());  // ASCII digits
    }
    return NotRepresentable(key, "dict key is not str, int, float, bool or None");
  }

  // What a converted value weighs, roughly in bytes: a part the value shares (the same
  // list twice) counts each time, as it is copied each time. Without a bound, 40 lines
  // of `a = [a, a]` make a value of 2^40 items from a few objects.
  static constexpr size_t kValueCost = 16, kKeyCost = 64;
  absl::Status Spend(size_t cost) {
    weight_ += cost;
    if (weight_ <= max_bytes_) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(path_.ToString(), ": the value is larger than ",
                     max_bytes_ >= (1 << 20) ? absl::StrCat(max_bytes_ >> 20, " MiB")
                                             : absl::StrCat(max_bytes_, " bytes"),
                     " once converted (a part it shares counts each time it appears)"));
  }

  absl::Status NotRepresentable(PyObject* value, absl::string_view why) const {
    return absl::InvalidArgumentError(absl::StrCat(path_.ToString(), ": ", why, " (type '",
                                                   Py_TYPE(value)->tp_name, "', value ",
                                                   BoundedDescription(value), ")"));
  }

  Path path_;
  const size_t max_bytes_;
  size_t weight_ = 0;
};

}  // namespace

absl::StatusOr<py::object> JsonToPython(const json& value) { return ToPython(value, 0); }

absl::StatusOr<json> PythonToJson(PyObject* value, absl::string_view where, size_t max_bytes) {
  // The caller's reference may be borrowed (a dict's item): a finalizer run by an
  // allocation during the walk could drop it.
  py::object hold = py::reinterpret_borrow<py::object>(value);
  return Converter(where, max_bytes).ToJson(hold.ptr(), 0);
}

}  // namespace pyhost

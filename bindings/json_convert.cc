#include "bindings/json_convert.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "bindings/python_error.h"

namespace pyhost {
namespace {

namespace py = pybind11;
using json = nlohmann::json;

absl::StatusOr<py::object> ToPython(const json& value, int depth) {
  if (depth > kMaxValueDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat("value nested deeper than ", kMaxValueDepth, " levels"));
  }
  PyObject* out = nullptr;
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
      auto list = py::reinterpret_steal<py::object>(
          PyList_New(static_cast<Py_ssize_t>(value.size())));
      if (!list) return StatusFromPythonError("list allocation");
      Py_ssize_t i = 0;
      for (const auto& item : value) {
        absl::StatusOr<py::object> converted = ToPython(item, depth + 1);
        if (!converted.ok()) return converted.status();
        PyList_SET_ITEM(list.ptr(), i++, converted->release().ptr());
      }
      return list;
    }
    case json::value_t::object: {
      auto dict = py::reinterpret_steal<py::object>(PyDict_New());
      if (!dict) return StatusFromPythonError("dict allocation");
      for (const auto& [key, item] : value.items()) {
        auto py_key = py::reinterpret_steal<py::object>(PyUnicode_DecodeUTF8(
            key.data(), static_cast<Py_ssize_t>(key.size()), "strict"));
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
      out = PyBytes_FromStringAndSize(
          reinterpret_cast<const char*>(value.get_binary().data()),
          static_cast<Py_ssize_t>(value.get_binary().size()));
      break;
    case json::value_t::discarded:
      return absl::InvalidArgumentError("discarded JSON value");
  }
  if (out == nullptr) return StatusFromPythonError("value conversion");
  return py::reinterpret_steal<py::object>(out);
}

// repr() of an object for an error message, bounded; never fails.
std::string BoundedRepr(PyObject* value) {
  constexpr size_t kMaxRepr = 120;
  auto repr = py::reinterpret_steal<py::object>(PyObject_Repr(value));
  if (!repr) {
    PyErr_Clear();
    return "<repr failed>";
  }
  Py_ssize_t size = 0;
  const char* text = PyUnicode_AsUTF8AndSize(repr.ptr(), &size);
  if (text == nullptr) {
    PyErr_Clear();
    return "<repr not UTF-8>";
  }
  std::string out(text, static_cast<size_t>(size));
  if (out.size() > kMaxRepr) out = absl::StrCat(out.substr(0, kMaxRepr), "...");
  return out;
}

absl::Status NotRepresentable(PyObject* value, const std::string& path,
                              absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", why, " (type '",
                                                 Py_TYPE(value)->tp_name, "', value ",
                                                 BoundedRepr(value), ")"));
}

absl::StatusOr<std::string> Utf8(PyObject* str, const std::string& path) {
  Py_ssize_t size = 0;
  const char* text = PyUnicode_AsUTF8AndSize(str, &size);
  if (text == nullptr) {
    PyErr_Clear();
    return NotRepresentable(str, path, "string is not encodable as UTF-8");
  }
  return std::string(text, static_cast<size_t>(size));
}

// Dict keys the way json.dumps accepts them.
absl::StatusOr<std::string> KeyToString(PyObject* key, const std::string& path) {
  if (PyUnicode_Check(key)) return Utf8(key, path);
  if (key == Py_None) return std::string("null");
  if (PyBool_Check(key)) return std::string(key == Py_True ? "true" : "false");
  if (PyLong_Check(key) || PyFloat_Check(key)) {
    auto text = py::reinterpret_steal<py::object>(PyObject_Str(key));
    if (!text) return StatusFromPythonError("key conversion");
    return Utf8(text.ptr(), path);
  }
  return NotRepresentable(key, path, "dict key is not str, int, float, bool or None");
}

absl::StatusOr<json> ToJson(PyObject* value, const std::string& path, int depth) {
  if (depth > kMaxValueDepth) {
    constexpr size_t kShownPath = 40;  // a cycle's path would be thousands of "[0]"
    std::string shown = path.size() > kShownPath ? path.substr(0, kShownPath) + "..." : path;
    return absl::InvalidArgumentError(absl::StrCat(
        shown, ": nested deeper than ", kMaxValueDepth, " levels (a cycle?)"));
  }
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
    return NotRepresentable(value, path, "int does not fit in 64 bits");
  }
  if (PyFloat_Check(value)) {
    double d = PyFloat_AS_DOUBLE(value);
    if (!std::isfinite(d)) return NotRepresentable(value, path, "float is not finite");
    return json(d);
  }
  if (PyUnicode_Check(value)) {
    absl::StatusOr<std::string> s = Utf8(value, path);
    if (!s.ok()) return s.status();
    return json(*std::move(s));
  }
  if (PyList_Check(value) || PyTuple_Check(value)) {
    // PySequence_Fast holds the items even if a __del__ elsewhere mutates the list.
    auto seq = py::reinterpret_steal<py::object>(PySequence_Fast(value, "sequence"));
    if (!seq) return StatusFromPythonError("sequence conversion");
    json out = json::array();
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.ptr());
    for (Py_ssize_t i = 0; i < n; ++i) {
      absl::StatusOr<json> item = ToJson(PySequence_Fast_GET_ITEM(seq.ptr(), i),
                                         absl::StrCat(path, "[", i, "]"), depth + 1);
      if (!item.ok()) return item.status();
      out.push_back(*std::move(item));
    }
    return out;
  }
  if (PyDict_Check(value)) {
    json out = json::object();
    // Iterate over a snapshot of the items: keys' __hash__/__eq__ can't mutate it.
    auto items = py::reinterpret_steal<py::object>(PyDict_Items(value));
    if (!items) return StatusFromPythonError("dict conversion");
    Py_ssize_t n = PyList_GET_SIZE(items.ptr());
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* pair = PyList_GET_ITEM(items.ptr(), i);
      absl::StatusOr<std::string> key = KeyToString(PyTuple_GET_ITEM(pair, 0), path);
      if (!key.ok()) return key.status();
      absl::StatusOr<json> item = ToJson(PyTuple_GET_ITEM(pair, 1),
                                         absl::StrCat(path, "['", *key, "']"), depth + 1);
      if (!item.ok()) return item.status();
      out[*std::move(key)] = *std::move(item);
    }
    return out;
  }
  return NotRepresentable(value, path, "not JSON-representable");
}

}  // namespace

absl::StatusOr<py::object> JsonToPython(const json& value) { return ToPython(value, 0); }

absl::StatusOr<json> PythonToJson(PyObject* value, absl::string_view where) {
  return ToJson(value, std::string(where), 0);
}

}  // namespace pyhost

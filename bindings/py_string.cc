#include "bindings/py_string.h"

namespace pyhost {
namespace {

// Steals `bytes` (may be null, with a Python error set).
std::optional<std::string> TakeBytes(PyObject* bytes) {
  if (bytes == nullptr) {
    PyErr_Clear();
    return std::nullopt;
  }
  std::string out(PyBytes_AS_STRING(bytes), static_cast<size_t>(PyBytes_GET_SIZE(bytes)));
  Py_DECREF(bytes);
  return out;
}

}  // namespace

std::optional<std::string> Utf8(PyObject* value) {
  if (value == nullptr || !PyUnicode_Check(value)) return std::nullopt;
  Py_ssize_t size = 0;
  const char* text = PyUnicode_AsUTF8AndSize(value, &size);
  if (text == nullptr) {
    PyErr_Clear();
    return std::nullopt;
  }
  return std::string(text, static_cast<size_t>(size));
}

std::optional<std::string> FsEncoded(PyObject* value) {
  if (value != nullptr && PyBytes_Check(value)) {
    return std::string(PyBytes_AS_STRING(value), static_cast<size_t>(PyBytes_GET_SIZE(value)));
  }
  if (value == nullptr || !PyUnicode_Check(value)) return std::nullopt;
  return TakeBytes(PyUnicode_EncodeFSDefault(value));
}

std::string DisplayText(PyObject* value) {
  if (std::optional<std::string> text = Utf8(value)) return *std::move(text);
  if (value == nullptr || !PyUnicode_Check(value)) return "";
  // The built-in error handler: no codec lookup, no Python code.
  return TakeBytes(PyUnicode_AsEncodedString(value, "utf-8", "backslashreplace")).value_or("");
}

PyObject* DisplayStr(absl::string_view text) {
  return PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()),
                              "backslashreplace");
}

}  // namespace pyhost

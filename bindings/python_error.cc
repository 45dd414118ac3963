#include "bindings/python_error.h"

#include <pybind11/pytypes.h>

#include "absl/strings/str_cat.h"
#include "bindings/py_string.h"

namespace pyhost {

namespace py = pybind11;

std::string DescribeException(PyObject* exception) {
  std::string type = Py_TYPE(exception)->tp_name;
  auto text = py::reinterpret_steal<py::object>(PyObject_Str(exception));
  if (!text) {
    PyErr_Clear();
    return type;
  }
  return absl::StrCat(type, ": ", DisplayText(text.ptr()));
}

absl::Status StatusFromPythonError(absl::string_view context) {
  PyObject *type = nullptr, *value = nullptr, *traceback = nullptr;
  PyErr_Fetch(&type, &value, &traceback);
  if (type == nullptr) {
    return absl::InternalError(absl::StrCat(context, ": failed with no Python error set"));
  }
  PyErr_NormalizeException(&type, &value, &traceback);
  auto owned_type = py::reinterpret_steal<py::object>(type);
  auto owned_value = py::reinterpret_steal<py::object>(value);
  auto owned_tb = py::reinterpret_steal<py::object>(traceback);
  std::string what = owned_value ? DescribeException(owned_value.ptr())
                                 : std::string(reinterpret_cast<PyTypeObject*>(type)->tp_name);
  return absl::InternalError(absl::StrCat(context, ": ", what));
}

}  // namespace pyhost

// Direct conversion between nlohmann::json and Python objects, with no JSON text in
// between (a text round trip would cost more than a whole tool call).
//
//   // GIL held, the target interpreter's thread state current:
//   absl::StatusOr<pybind11::object> args = pyhost::JsonToPython(request.args);
//   absl::StatusOr<nlohmann::json> value = pyhost::PythonToJson(result.ptr());
//
// PythonToJson follows json.dumps: dict keys that are str/int/float/bool/None become
// strings, tuples become arrays; anything else (sets, NaN, ints past 64 bits, objects,
// cycles) is an error naming where in the value it sits, its type and its repr.
// Not for: pickling arbitrary objects; that is what the error is for.
//
// Thread-safety: both functions require the GIL. They call only the C API, never a
// pybind11 function that can throw error_already_set (DESIGN.md, pitfall 1).
#ifndef PYHOST_BINDINGS_JSON_CONVERT_H_
#define PYHOST_BINDINGS_JSON_CONVERT_H_

#include <Python.h>

#include <nlohmann/json.hpp>
#include <pybind11/pytypes.h>

#include "absl/status/statusor.h"

namespace pyhost {

// Deepest nesting either direction accepts; deeper values (or cycles) are errors,
// never a stack overflow.
inline constexpr int kMaxValueDepth = 256;

// Returns a new reference. InvalidArgument for strings that are not UTF-8.
absl::StatusOr<pybind11::object> JsonToPython(const nlohmann::json& value);

// `where` names the value in messages, e.g. "result" gives "result['a'][2]: ...".
// InvalidArgument when the value is not JSON-representable. Leaves no Python error set.
absl::StatusOr<nlohmann::json> PythonToJson(PyObject* value,
                                            absl::string_view where = "value");

}  // namespace pyhost

#endif  // PYHOST_BINDINGS_JSON_CONVERT_H_

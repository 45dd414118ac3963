// Direct conversion between nlohmann::json and Python objects, with no JSON text in
// between (a text round trip would cost more than a whole tool call).
//
//   // GIL held, the target interpreter's thread state current:
//   absl::StatusOr<pybind11::object> args = pyhost::JsonToPython(request.args);
//   absl::StatusOr<nlohmann::json> value = pyhost::PythonToJson(result.ptr());
//
// PythonToJson follows json.dumps: dict keys that are str/int/float/bool/None become
// strings, tuples become arrays; anything else (sets, NaN, ints past 64 bits, objects,
// cycles, more than kMaxValueBytes) is an error naming where in the value it sits, its type and a
// bounded description of it. Subclasses of str/int/float/list/tuple/dict convert by their C-level
// content: no method the code defined (__str__, __repr__, __iter__, items(),
// __hash__, ...) runs during a conversion, not even to describe a value in an error,
// and what is walked is held by strong references (a finalizer the garbage collector
// runs meanwhile cannot free it). The cost is linear in the size of the value.
// Not for: pickling arbitrary objects; that is what the error is for.
//
// Thread-safety: both functions require the GIL. They call only the C API, never a
// pybind11 function that can throw error_already_set (docs/architecture.md, "Pitfalls" 1).
#ifndef PYHOST_BINDINGS_JSON_CONVERT_H_
#define PYHOST_BINDINGS_JSON_CONVERT_H_

#include <Python.h>

#include <nlohmann/json.hpp>
#include <pybind11/pytypes.h>

#include "absl/status/statusor.h"

namespace pyhost {

// Most arrays/objects (lists, tuples, dicts) nested in one another that either
// direction accepts; deeper values (or cycles) are errors, never a stack overflow.
// JSON text is held to the same bound where it enters (bindings/json_text.h).
inline constexpr int kMaxValueDepth = 256;

// The most a value converted from Python may weigh by default, roughly in bytes of
// JSON (16 per value, strings and keys by their length; a part the value shares counts
// each time it appears). Bigger values are errors, never an unbounded allocation.
inline constexpr size_t kMaxValueBytes = size_t{64} << 20;

// Returns a new reference. InvalidArgument for strings that are not UTF-8.
absl::StatusOr<pybind11::object> JsonToPython(const nlohmann::json& value);

// `where` names the value in messages, e.g. "result" gives "result['a'][2]: ...".
// InvalidArgument when the value is not JSON-representable or weighs more than
// `max_bytes`. Leaves no Python error set.
absl::StatusOr<nlohmann::json> PythonToJson(PyObject* value, absl::string_view where = "value",
                                            size_t max_bytes = kMaxValueBytes);

}  // namespace pyhost

#endif  // PYHOST_BINDINGS_JSON_CONVERT_H_

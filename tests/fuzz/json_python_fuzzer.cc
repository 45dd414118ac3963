// libFuzzer target: JSON <-> Python conversion (bindings/json_convert.h), in a pooled
// subinterpreter, Python initialized once per process. The first byte chooses:
// - even: the rest is JSON text; what ParseJsonText accepts must convert to Python and
//   back to exactly the same value;
// - odd: the rest is a small program that builds a Python value (tests/fuzz/fuzz_values.py:
//   nested lists, tuples, dicts, sets, big ints, NaN, lone surrogates, cycles, and
//   subclasses whose every method empties the values built so far). Converting it must
//   call none of those methods, leave no Python error set, and what converts must
//   convert back and forth unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "bindings/json_convert.h"
#include "bindings/json_text.h"
#include "bindings/thread_state.h"
#include "embed/pool.h"
#include "embed/runtime.h"

namespace pyhost::modules {
extern const char kFuzzValuesSource[];  // tests/fuzz/fuzz_values.py
}  // namespace pyhost::modules

namespace {

namespace py = pybind11;
using json = nlohmann::json;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

struct Fixture {
  std::unique_ptr<pyhost::InterpreterPool> pool;
  pyhost::InterpreterLease lease;
  py::object build;  // build(data: bytes) -> value
  py::object armed;  // [bool]: the hostile methods act (and count) while True
  py::object calls;  // [int]: how often they ran while armed
};

Fixture* fixture = nullptr;

void RoundTrip(const json& value) {
  absl::StatusOr<py::object> python = pyhost::JsonToPython(value);
  Check(python.ok(), "accepted JSON converts to Python");
  absl::StatusOr<json> back = pyhost::PythonToJson(python->ptr());
  Check(back.ok(), "and back to JSON");
  Check(*back == value, "unchanged");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Python objects from malloc, not pymalloc's arenas: AddressSanitizer then sees a
  // use after free of one (what PYTHONMALLOC=malloc does; pyhost ignores the
  // environment).
  PyMemAllocatorEx raw;
  PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &raw);
  PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &raw);
  PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &raw);
  absl::StatusOr<pyhost::Runtime*> runtime = pyhost::Runtime::Get();
  Check(runtime.ok(), "Python starts");
  fixture = new Fixture;
  pyhost::PoolOptions options;
  options.size = 1;
  options.interpreter.prewarm_modules = {};
  absl::StatusOr<std::unique_ptr<pyhost::InterpreterPool>> pool =
      pyhost::InterpreterPool::Start(options);
  Check(pool.ok(), "the pool starts");
  fixture->pool = *std::move(pool);
  absl::StatusOr<pyhost::InterpreterLease> lease = fixture->pool->Acquire();
  Check(lease.ok(), "an interpreter");
  fixture->lease = *std::move(lease);
  pyhost::Interpreter& interp = fixture->lease.get();
  pyhost::ThreadStateScope scope(interp.ThreadStateForThisThread(),
                                 pyhost::ThreadStateScope::Borrow{});
  auto globals = py::reinterpret_steal<py::object>(PyDict_New());
  PyDict_SetItemString(globals.ptr(), "__builtins__", interp.builtins());
  auto ran = py::reinterpret_steal<py::object>(PyRun_String(
      pyhost::modules::kFuzzValuesSource, Py_file_input, globals.ptr(), globals.ptr()));
  if (!ran) PyErr_Print();
  Check(static_cast<bool>(ran), "fuzz_values.py runs");
  fixture->build = py::reinterpret_borrow<py::object>(PyDict_GetItemString(globals.ptr(), "build"));
  fixture->armed = py::reinterpret_borrow<py::object>(PyDict_GetItemString(globals.ptr(), "ARMED"));
  fixture->calls = py::reinterpret_borrow<py::object>(PyDict_GetItemString(globals.ptr(), "CALLS"));
  Check(fixture->build && fixture->armed && fixture->calls,
        "fuzz_values.py defines build, ARMED, CALLS");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  pyhost::Interpreter& interp = fixture->lease.get();
  pyhost::ThreadStateScope scope(interp.ThreadStateForThisThread(),
                                 pyhost::ThreadStateScope::Borrow{});
  const char* rest = reinterpret_cast<const char*>(data + 1);
  if (data[0] % 2 == 0) {
    absl::StatusOr<json> value = pyhost::ParseJsonText(absl::string_view(rest, size - 1));
    if (value.ok()) RoundTrip(*value);
    Check(!PyErr_Occurred(), "no Python error is left set");
    return 0;
  }
  auto program = py::reinterpret_steal<py::object>(
      PyBytes_FromStringAndSize(rest, static_cast<Py_ssize_t>(size - 1)));
  auto value =
      py::reinterpret_steal<py::object>(PyObject_CallOneArg(fixture->build.ptr(), program.ptr()));
  Check(static_cast<bool>(value), "build() returns a value");
  PyList_SetItem(fixture->armed.ptr(), 0, Py_NewRef(Py_True));  // no allocation
  // A smaller bound than the host's: values sharing their parts reach it quickly, and
  // each conversion stays fast under the sanitizer.
  constexpr size_t kMaxBytes = 1 << 20;
  absl::StatusOr<json> converted = pyhost::PythonToJson(value.ptr(), "result", kMaxBytes);
  PyList_SetItem(fixture->armed.ptr(), 0, Py_NewRef(Py_False));
  Check(PyLong_AsLong(PyList_GET_ITEM(fixture->calls.ptr(), 0)) == 0,
        "no method the code defined ran during the conversion");
  Check(!PyErr_Occurred(), "no Python error is left set");
  if (converted.ok()) {
    RoundTrip(*converted);
  } else {
    Check(converted.status().message().size() < 2048, "an error message is bounded");
  }
  return 0;
}

#include "bindings/json_convert.h"

#include <cmath>
#include <limits>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "embed/runtime.h"
#include "embed/thread_state.h"

namespace pyhost {
namespace {

namespace py = pybind11;
using json = nlohmann::json;
using ::testing::HasSubstr;

// Each test runs with the GIL held in the main interpreter.
class JsonConvertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<Runtime*> runtime = Runtime::Get();
    ASSERT_TRUE(runtime.ok()) << runtime.status();
    scope_ = std::make_unique<ThreadStateScope>((*runtime)->main_interpreter());
  }
  void TearDown() override { scope_.reset(); }

  // Evaluates a Python expression (main interpreter) to a new reference.
  py::object Eval(const char* expression) {
    auto globals = py::reinterpret_steal<py::object>(PyDict_New());
    PyDict_SetItemString(globals.ptr(), "__builtins__", PyEval_GetBuiltins());
    auto value = py::reinterpret_steal<py::object>(
        PyRun_String(expression, Py_eval_input, globals.ptr(), globals.ptr()));
    if (!value) PyErr_Print();
    return value;
  }

  std::unique_ptr<ThreadStateScope> scope_;
};

TEST_F(JsonConvertTest, RoundTripsEveryJsonType) {
  json value = {{"null", nullptr},       {"t", true},       {"f", false},
                {"int", -42},            {"big", 1LL << 62}, {"unsigned", 18446744073709551615ULL},
                {"float", 2.5},          {"str", "héllo ✓"}, {"list", {1, "two", 3.0}},
                {"nested", {{"a", {{"b", json::array()}}}}}, {"empty", json::object()}};
  absl::StatusOr<py::object> py_value = JsonToPython(value);
  ASSERT_TRUE(py_value.ok()) << py_value.status();
  absl::StatusOr<json> back = PythonToJson(py_value->ptr());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, value);
}

TEST_F(JsonConvertTest, PythonTypesBecomeTheirJsonCounterparts) {
  py::object value = Eval("{'t': (1, 2), 'b': True, 1: 'int key', None: 0, 2.5: 'f', True: 1}");
  ASSERT_TRUE(value);
  absl::StatusOr<json> converted = PythonToJson(value.ptr());
  ASSERT_TRUE(converted.ok()) << converted.status();
  EXPECT_EQ((*converted)["t"], json({1, 2}));
  EXPECT_EQ((*converted)["b"], json(true));
  EXPECT_TRUE((*converted)["b"].is_boolean());  // bool is checked before int
  EXPECT_EQ((*converted)["1"], json(1));        // True == 1 shares the key, as in Python
  EXPECT_EQ((*converted)["null"], json(0));
  EXPECT_EQ((*converted)["2.5"], json("f"));
}

TEST_F(JsonConvertTest, SubclassesOfDictAndListConvert) {
  py::object value = Eval(
      "__import__('collections').OrderedDict(a=__import__('collections').Counter('aab'))");
  ASSERT_TRUE(value);
  absl::StatusOr<json> converted = PythonToJson(value.ptr());
  ASSERT_TRUE(converted.ok()) << converted.status();
  EXPECT_EQ(*converted, json({{"a", {{"a", 2}, {"b", 1}}}}));
}

TEST_F(JsonConvertTest, NonRepresentableValuesNameTheirPathAndType) {
  struct Case {
    const char* expression;
    const char* expected;
  } cases[] = {
      {"{'a': [1, {2, 3}]}", "result['a'][1]: not JSON-representable (type 'set'"},
      {"[float('nan')]", "result[0]: float is not finite"},
      {"{'x': float('inf')}", "result['x']: float is not finite"},
      {"2 ** 70", "result: int does not fit in 64 bits"},
      {"{(1, 2): 'tuple key'}", "dict key is not str, int, float, bool or None"},
      {"object()", "type 'object'"},
      {"'\\ud800'", "string is not encodable as UTF-8"},
  };
  for (const Case& c : cases) {
    py::object value = Eval(c.expression);
    ASSERT_TRUE(value) << c.expression;
    absl::StatusOr<json> converted = PythonToJson(value.ptr(), "result");
    ASSERT_FALSE(converted.ok()) << c.expression;
    EXPECT_TRUE(absl::IsInvalidArgument(converted.status()));
    EXPECT_THAT(std::string(converted.status().message()), HasSubstr(c.expected)) << c.expression;
    EXPECT_FALSE(PyErr_Occurred()) << c.expression;
  }
}

TEST_F(JsonConvertTest, CyclesAndDeepNestingAreErrorsNotCrashes) {
  py::object cycle = Eval("(lambda a: (a.append(a), a)[1])([])");
  ASSERT_TRUE(cycle);
  absl::StatusOr<json> converted = PythonToJson(cycle.ptr(), "result");
  ASSERT_FALSE(converted.ok());
  EXPECT_THAT(std::string(converted.status().message()), HasSubstr("a cycle?"));
  PyList_SetSlice(cycle.ptr(), 0, 1, nullptr);  // break the cycle

  json deep = json::array();
  for (int i = 0; i < kMaxValueDepth + 10; ++i) deep = json::array({deep});
  absl::StatusOr<py::object> py_deep = JsonToPython(deep);
  ASSERT_FALSE(py_deep.ok());
  EXPECT_THAT(std::string(py_deep.status().message()), HasSubstr("nested deeper"));
}

TEST_F(JsonConvertTest, InvalidUtf8FromCppIsAnError) {
  json bad = {{"text", std::string("\xff\xfe", 2)}};
  absl::StatusOr<py::object> converted = JsonToPython(bad);
  ASSERT_FALSE(converted.ok());
  EXPECT_THAT(std::string(converted.status().message()), HasSubstr("UTF-8"));
  EXPECT_FALSE(PyErr_Occurred());
}

TEST_F(JsonConvertTest, ReprThatRaisesIsStillDescribed) {
  py::object value =
      Eval("type('Bad', (), {'__repr__': lambda self: 1 / 0})()");
  ASSERT_TRUE(value);
  absl::StatusOr<json> converted = PythonToJson(value.ptr(), "result");
  ASSERT_FALSE(converted.ok());
  EXPECT_THAT(std::string(converted.status().message()), HasSubstr("<repr failed>"));
  EXPECT_FALSE(PyErr_Occurred());
}

}  // namespace
}  // namespace pyhost

#include "bindings/json_convert.h"

#include <chrono>
#include <cmath>
#include <limits>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "bindings/thread_state.h"
#include "embed/runtime.h"

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
  void TearDown() override {
    ns_ = py::object();  // with the GIL
    scope_.reset();
  }

  // Evaluates a Python expression (main interpreter) to a new reference.
  py::object Eval(const char* expression) {
    auto globals = py::reinterpret_steal<py::object>(PyDict_New());
    PyDict_SetItemString(globals.ptr(), "__builtins__", PyEval_GetBuiltins());
    auto value = py::reinterpret_steal<py::object>(
        PyRun_String(expression, Py_eval_input, globals.ptr(), globals.ptr()));
    if (!value) PyErr_Print();
    return value;
  }

  // Runs statements in a namespace kept for the test; returns false if they raised.
  bool Exec(const char* code) {
    if (!ns_) {
      ns_ = py::reinterpret_steal<py::object>(PyDict_New());
      PyDict_SetItemString(ns_.ptr(), "__builtins__", PyEval_GetBuiltins());
    }
    auto done =
        py::reinterpret_steal<py::object>(PyRun_String(code, Py_file_input, ns_.ptr(), ns_.ptr()));
    if (!done) PyErr_Print();
    return static_cast<bool>(done);
  }
  PyObject* Global(const char* name) { return PyDict_GetItemString(ns_.ptr(), name); }
  // go[0] = True with no allocation (which could start a collection first).
  void Go() { PyList_SetItem(Global("go"), 0, Py_NewRef(Py_True)); }

  std::unique_ptr<ThreadStateScope> scope_;
  py::object ns_;
};

TEST_F(JsonConvertTest, RoundTripsEveryJsonType) {
  json value = {{"null", nullptr},
                {"t", true},
                {"f", false},
                {"int", -42},
                {"big", 1LL << 62},
                {"unsigned", 18446744073709551615ULL},
                {"float", 2.5},
                {"str", "héllo ✓"},
                {"list", {1, "two", 3.0}},
                {"nested", {{"a", {{"b", json::array()}}}}},
                {"empty", json::object()}};
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
  py::object value =
      Eval("__import__('collections').OrderedDict(a=__import__('collections').Counter('aab'))");
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

// What the code defined never runs to describe a value in an error (a __repr__ could
// change or free what is being converted).
TEST_F(JsonConvertTest, ErrorsDescribeValuesWithoutRunningTheirCode) {
  ASSERT_TRUE(Exec(R"PY(
calls = []
class Bad:
    def __repr__(self):
        calls.append('repr')
        return 1 / 0
class BadInt(int):
    def __repr__(self):
        calls.append('int repr')
        return 'x'
values = [Bad(), {Bad()}, {'k': {(Bad(), b'\xff' * 500): 1}}, [BadInt(2) ** 70], 10 ** 5000]
)PY"));
  const char* expected[] = {"type 'Bad', value <Bad object>)", "value {<Bad object>})",
                            "value (<Bad object>, b'\\xff\\xff", "", "value <int of 16610 bits>"};
  PyObject* values = Global("values");
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(values); ++i) {
    PyObject* value = PyList_GET_ITEM(values, i);
    absl::StatusOr<json> converted = PythonToJson(value, "result");
    ASSERT_FALSE(converted.ok()) << i;
    if (i == 2) {  // a tuple key, in the dict at result['k']
      EXPECT_THAT(std::string(converted.status().message()), HasSubstr("result['k']: dict key"));
    }
    EXPECT_THAT(std::string(converted.status().message()), HasSubstr(expected[i]));
    EXPECT_LT(converted.status().message().size(), 400u) << converted.status();
    EXPECT_FALSE(PyErr_Occurred());
  }
  EXPECT_EQ(PyList_GET_SIZE(Global("calls")), 0) << "a method the code defined ran";
}

// The reproducer of issue 7 (a key's __str__ emptied the list being walked: SIGSEGV).
TEST_F(JsonConvertTest, KeyMethodThatEmptiesTheListBeingWalkedNeverRuns) {
  ASSERT_TRUE(Exec(R"PY(
L = []
class K(int):
    def __str__(self):
        L.clear()
        return 'k'
L += [{K(1): 1}, 'a', 'b']
)PY"));
  absl::StatusOr<json> converted = PythonToJson(Global("L"), "result");
  ASSERT_TRUE(converted.ok()) << converted.status();
  EXPECT_EQ(*converted, json::parse(R"([{"1": 1}, "a", "b"])"));  // as json.dumps has it
  EXPECT_EQ(PyList_GET_SIZE(Global("L")), 3);
}

// Subclasses convert by their C-level content, as json.dumps reads them; none of their
// methods runs.
TEST_F(JsonConvertTest, SubclassesConvertByContentWithoutRunningTheirMethods) {
  ASSERT_TRUE(Exec(R"PY(
calls = []
def trap(name):
    def method(self, *args, **kwargs):
        calls.append(name)
        raise RuntimeError(name)
    return method
def hostile(base, *names):
    return type('Hostile' + base.__name__, (base,), {n: trap(n) for n in names})
text = ('__str__', '__repr__', '__format__', '__iter__', '__len__', '__getitem__')
HS = hostile(str, *text)
HI = hostile(int, '__str__', '__repr__', '__index__', '__int__', '__float__', '__format__')
HF = hostile(float, '__str__', '__repr__', '__float__', '__format__')
HL = hostile(list, '__iter__', '__len__', '__getitem__', '__reversed__', '__repr__')
HT = hostile(tuple, '__iter__', '__len__', '__getitem__', '__repr__')
HD = hostile(dict, '__iter__', '__len__', '__getitem__', 'items', 'keys', 'values', '__repr__')
value = HD({HS('k'): HL([HI(1), HF(2.5), HT((HS('s'), HI(2) ** 63))]), HI(7): HS('v'),
            HF(1e16): None, HI(2) ** 70: True})
)PY"));
  absl::StatusOr<json> converted = PythonToJson(Global("value"), "result");
  ASSERT_TRUE(converted.ok()) << converted.status();
  EXPECT_EQ(*converted, json::parse(R"({"k": [1, 2.5, ["s", 9223372036854775808]], "7": "v",
                                        "1e+16": null, "1180591620717411303424": true})"));
  EXPECT_EQ(PyList_GET_SIZE(Global("calls")), 0) << "a method the code defined ran";
}

// A finalizer run by the garbage collector during a conversion (an allocation can
// start a collection once the free lists are used up) must not free or change what is
// being walked. With the threshold at 1, a collection runs at every allocation past
// the free lists; each empties the list being converted, reuses the memory freed and
// leaves a new finalizer behind.
TEST_F(JsonConvertTest, FinalizersRunByTheCollectorCannotFreeWhatIsWalked) {
  ASSERT_TRUE(Exec(R"PY(
import gc
L = []
armed, go, fired, junk = [True], [False], [0], []
class Bomb:
    def __del__(self):
        if go[0]:
            fired[0] += 1
            if L:
                L.clear()
                junk.append([{'q': i} for i in range(100)] + [(i, i) for i in range(3000)])
        if armed[0]:
            arm()
def arm():
    b = Bomb()
    b.cycle = b
big = {str(i): i for i in range(5000)}  # its items outnumber the free (key, value) tuples
L += [{'a': [1, {'b': 2}]}, big, 'x', dict(big), 'y']
expected = list(L)
del big
arm()
gc.set_threshold(1)
)PY"));
  Go();  // from here on, the finalizers act
  absl::StatusOr<json> converted = PythonToJson(Global("L"), "result");
  long fired = PyLong_AsLong(PyList_GET_ITEM(Global("fired"), 0));
  ASSERT_TRUE(Exec("gc.set_threshold(700, 10, 10)\narmed[0] = False\ngc.collect()\n"));
  EXPECT_GT(fired, 0) << "no finalizer ran during the conversion";
  ASSERT_TRUE(converted.ok()) << converted.status();
  // One snapshot, whichever: taken before or after the first finalizer emptied it.
  absl::StatusOr<json> expected = PythonToJson(Global("expected"));
  ASSERT_TRUE(expected.ok());
  EXPECT_TRUE(*converted == json::array() || *converted == *expected);
}

// The same finalizers, while JSON becomes Python: a list being filled must never be
// visible with empty slots (gc.get_objects() finds every list).
TEST_F(JsonConvertTest, FinalizersNeverSeeAListBeingFilled) {
  ASSERT_TRUE(Exec(R"PY(
import gc
armed, go, fired = [True], [False], [0]
class Walker:
    def __del__(self):
        if go[0]:
            fired[0] += 1
            for o in gc.get_objects(0) + gc.get_objects(1):  # where young lists are
                if type(o) is list:
                    for item in o:
                        pass
        if armed[0]:
            arm_walker()
def arm_walker():
    w = Walker()
    w.cycle = w
arm_walker()
gc.set_threshold(1)
)PY"));
  json value = json::array();
  for (int i = 0; i < 300; ++i)
    value.push_back({i, {{"a", {i}}}});  // more lists than the free list holds
  Go();
  absl::StatusOr<py::object> converted = JsonToPython(value);
  long fired = PyLong_AsLong(PyList_GET_ITEM(Global("fired"), 0));
  ASSERT_TRUE(Exec("gc.set_threshold(700, 10, 10)\narmed[0] = False\ngc.collect()\n"));
  EXPECT_GT(fired, 0) << "no finalizer ran during the conversion";
  ASSERT_TRUE(converted.ok()) << converted.status();
  absl::StatusOr<json> back = PythonToJson(converted->ptr());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, value);
}

// Paths are built only when an error is reported: a long key over many items used to
// cost key length x items (seconds, and memory growing with depth x key length).
TEST_F(JsonConvertTest, CostStaysLinearWithLongKeys) {
  ASSERT_TRUE(
      Exec("value = {'k' * 10**6: [0] * 10**6}\n"
           "deep = bad = {1, 2}\n"
           "for i in range(200): deep = {'k' * 10**5: deep}\n"));
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<json> converted = PythonToJson(Global("value"), "result");
  ASSERT_TRUE(converted.ok()) << converted.status();
  absl::StatusOr<json> deep = PythonToJson(Global("deep"), "result");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 10.0) << "quadratic again (was ~80 s)";  // a few ms here
  ASSERT_FALSE(deep.ok());
  // The message is bounded too: 200 keys of 100,000 characters are summarized.
  ASSERT_LT(deep.status().message().size(), 1000u);
  EXPECT_THAT(std::string(deep.status().message()), HasSubstr("result['kkkkkkkk"));
  EXPECT_THAT(std::string(deep.status().message()), HasSubstr("...']...['kkkk"));
}

// Found by tests/fuzz/json_python_fuzzer (a timeout): a value sharing its parts is
// copied out once per appearance, 2^40 items from 40 lines of `a = [a, a]`.
TEST_F(JsonConvertTest, SharedPartsCannotMakeAnUnboundedValue) {
  ASSERT_TRUE(
      Exec("a = []\nfor i in range(40): a = [a, a]\n"
           "s = 'x' * 10**6\nstrings = [s] * 100\n"));
  auto start = std::chrono::steady_clock::now();
  for (const char* name : {"a", "strings"}) {
    absl::StatusOr<json> converted = PythonToJson(Global(name), "result");
    ASSERT_FALSE(converted.ok()) << name;
    EXPECT_THAT(std::string(converted.status().message()),
                HasSubstr("the value is larger than 64 MiB once converted"));
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 30.0);
  ASSERT_TRUE(Exec("strings = [s] * 60\n"));  // 60 MB: converts
  EXPECT_TRUE(PythonToJson(Global("strings"), "result").ok());
  absl::StatusOr<json> small_bound = PythonToJson(Global("strings"), "result", 1000);
  ASSERT_FALSE(small_bound.ok());
  EXPECT_THAT(std::string(small_bound.status().message()),
              HasSubstr("result[0]: the value is larger than 1000 bytes"));
}

TEST_F(JsonConvertTest, NestingLimitIsTheSameBothWays) {
  for (int levels : {kMaxValueDepth, kMaxValueDepth + 1}) {
    json deep = json::array();
    for (int i = 1; i < levels; ++i) deep = json::array({deep});
    absl::StatusOr<py::object> py_deep = JsonToPython(deep);
    EXPECT_EQ(py_deep.ok(), levels <= kMaxValueDepth) << levels;
    std::string code = absl::StrCat("deep = []\nfor i in range(", levels - 1, "): deep = [deep]\n");
    ASSERT_TRUE(Exec(code.c_str()));
    absl::StatusOr<json> back = PythonToJson(Global("deep"), "result");
    EXPECT_EQ(back.ok(), levels <= kMaxValueDepth) << levels;
    if (back.ok()) {
      EXPECT_EQ(*back, deep);
    }
  }
}

// Integers: exactly what 64 bits hold (signed or unsigned) passes, anything past is
// an error naming it, never a float.
TEST_F(JsonConvertTest, IntegersPast64BitsAreErrorsNeverFloats) {
  py::object fits = Eval("[-2**63, 2**63 - 1, 2**63, 2**64 - 1]");
  absl::StatusOr<json> converted = PythonToJson(fits.ptr(), "result");
  ASSERT_TRUE(converted.ok()) << converted.status();
  EXPECT_EQ((*converted)[0].get<int64_t>(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ((*converted)[3].get<uint64_t>(), std::numeric_limits<uint64_t>::max());
  for (const char* past : {"[-2**63 - 1]", "{'n': 2**64}", "2**200"}) {
    py::object value = Eval(past);
    absl::StatusOr<json> refused = PythonToJson(value.ptr(), "result");
    ASSERT_FALSE(refused.ok()) << past;
    EXPECT_THAT(std::string(refused.status().message()), HasSubstr("int does not fit in 64 bits"));
  }
  py::object nan_key = Eval("{float('nan'): 1}");
  EXPECT_FALSE(PythonToJson(nan_key.ptr(), "result").ok());
}

}  // namespace
}  // namespace pyhost

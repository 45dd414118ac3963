#include "modules/support.h"

#include <stdlib.h>

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "audit_hooks/stdlib_bytecode.h"
#include "bindings/thread_state.h"
#include "embed/interpreter.h"
#include "embed/runtime.h"

namespace pyhost::modules {
namespace {

namespace py = pybind11;
using ::testing::HasSubstr;

// The helpers are called in an interpreter of their own per test (never the main
// interpreter: set_environ there would change the process's environment), created
// and ended with the main interpreter's GIL; a test enters it to hold its GIL.
class SupportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<Runtime*> runtime = Runtime::Get();
    ASSERT_TRUE(runtime.ok()) << runtime.status();
    main_ = (*runtime)->main_interpreter();
    ThreadStateScope scope(main_);
    absl::StatusOr<std::unique_ptr<Interpreter>> interp = Interpreter::Create({});
    ASSERT_TRUE(interp.ok()) << interp.status();
    interp_ = *std::move(interp);
  }
  void TearDown() override {
    ThreadStateScope scope(main_);
    interp_.reset();
  }

  const Support& support() const { return interp_->support(); }

  // Runs `code` in `ns` (a fresh namespace if null); false with the error printed.
  static bool Run(const std::string& code, PyObject* ns) {
    auto ran = py::reinterpret_steal<py::object>(PyRun_String(code.c_str(), Py_file_input, ns, ns));
    if (!ran) PyErr_Print();
    return static_cast<bool>(ran);
  }
  static py::object Namespace() {
    auto ns = py::reinterpret_steal<py::object>(PyDict_New());
    PyDict_SetItemString(ns.ptr(), "__builtins__", PyEval_GetBuiltins());
    return ns;
  }
  static py::object Eval(const std::string& expression, PyObject* ns) {
    auto value =
        py::reinterpret_steal<py::object>(PyRun_String(expression.c_str(), Py_eval_input, ns, ns));
    if (!value) PyErr_Print();
    return value;
  }
  static std::string Str(const py::object& value) {
    auto text = py::reinterpret_steal<py::object>(PyObject_Str(value.ptr()));
    const char* utf8 = text ? PyUnicode_AsUTF8(text.ptr()) : nullptr;
    if (utf8 == nullptr) PyErr_Clear();
    return utf8 != nullptr ? utf8 : "";
  }

  // The embedded files' texts with "def NAME(" made "def NAME_gone(" (the helper
  // missing) or with `replacement` there instead.
  struct Edited {
    std::vector<std::string> texts;
    std::vector<SupportSource> sources;
  };
  static Edited WithoutDefinition(const std::string& name, const std::string& replacement = "") {
    Edited edited;
    const std::string def = "def " + name + "(";
    for (const SupportSource& source : EmbeddedSources()) {
      std::string text = source.text;
      for (size_t at = text.find(def); at != std::string::npos; at = text.find(def, at + 1)) {
        std::string instead = replacement + "def " + name + "_gone(";
        text.replace(at, def.size(), instead);
        at += instead.size() - 1;
      }
      edited.texts.push_back(std::move(text));
    }
    for (size_t i = 0; i < edited.texts.size(); ++i) {
      edited.sources.push_back({EmbeddedSources()[i].filename, edited.texts[i].c_str()});
    }
    return edited;
  }

  PyInterpreterState* main_ = nullptr;
  std::unique_ptr<Interpreter> interp_;
};

// ---- loading ----------------------------------------------------------------------

TEST_F(SupportTest, TheEmbeddedHelpersLoadAndTheInterpreterHoldsThem) {
  ThreadStateScope scope(interp_->state());
  EXPECT_TRUE(support().loaded());
  absl::StatusOr<Support> again = Support::Load(PyEval_GetBuiltins());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->loaded());
}

TEST_F(SupportTest, EveryEmbeddedFilenameIsPyhostsAndNoOther) {
  ASSERT_FALSE(EmbeddedSources().empty());
  for (const SupportSource& source : EmbeddedSources()) {
    EXPECT_TRUE(IsSupportFilename(source.filename)) << source.filename;
    // A name code may not compile under, build code with or claim in bytecode.
    EXPECT_TRUE(IsTrustedFilename(source.filename, "/no/stdlib")) << source.filename;
    EXPECT_FALSE(IsSupportFilename(std::string(source.filename) + "x"));
  }
  for (const char* other : {"", "<code>", "<tool:x>", "<pyhost", "<pyhost_support>", "<frozen os>",
                            "<pyhost_supportx>"}) {
    EXPECT_FALSE(IsSupportFilename(other)) << other;
  }
}

TEST_F(SupportTest, AMissingHelperFailsTheLoadingNamingIt) {
  ThreadStateScope scope(interp_->state());
  for (const char* name : {"eof_stdin", "install_import_gate", "set_environ", "describe_error"}) {
    Edited edited = WithoutDefinition(name);
    absl::StatusOr<Support> loaded = Support::Load(edited.sources, PyEval_GetBuiltins());
    ASSERT_FALSE(loaded.ok()) << name;
    EXPECT_THAT(loaded.status().message(),
                HasSubstr(std::string("pyhost's Python helper ") + name + " is missing"));
    EXPECT_FALSE(PyErr_Occurred());
  }
}

TEST_F(SupportTest, AHelperThatIsNotCallableFailsTheLoading) {
  ThreadStateScope scope(interp_->state());
  Edited edited = WithoutDefinition("set_environ", "set_environ = 'not a function'\n");
  absl::StatusOr<Support> loaded = Support::Load(edited.sources, PyEval_GetBuiltins());
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(),
              HasSubstr("pyhost's Python helper set_environ is not callable"));
}

TEST_F(SupportTest, AFileThatFailsNamesItself) {
  ThreadStateScope scope(interp_->state());
  const SupportSource raises[] = {{"<pyhost_test/raises.py>", "raise ValueError('boom')\n"}};
  absl::StatusOr<Support> loaded = Support::Load(raises, PyEval_GetBuiltins());
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(), HasSubstr("running <pyhost_test/raises.py>"));
  EXPECT_THAT(loaded.status().message(), HasSubstr("boom"));

  const SupportSource bad[] = {{"<pyhost_test/bad.py>", "def (:\n"}};
  loaded = Support::Load(bad, PyEval_GetBuiltins());
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(), HasSubstr("compiling <pyhost_test/bad.py>"));
  EXPECT_FALSE(PyErr_Occurred());
}

TEST_F(SupportTest, AFileMayNotRebindWhatAnEarlierFileBound) {
  ThreadStateScope scope(interp_->state());
  std::vector<SupportSource> sources(EmbeddedSources().begin(), EmbeddedSources().end());
  sources.push_back({"<pyhost_test/late.py>", "import sys\ndescribe_error = None\n"});
  absl::StatusOr<Support> loaded = Support::Load(sources, PyEval_GetBuiltins());
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(), HasSubstr("<pyhost_test/late.py> rebinds describe_error"));

  // Importing a module an earlier file imported binds the same object: allowed.
  sources.back().text = "import sys, os\n";
  EXPECT_TRUE(Support::Load(sources, PyEval_GetBuiltins()).ok());
}

// ---- every helper, called ---------------------------------------------------------

TEST_F(SupportTest, EofStdinIsAtItsEnd) {
  ThreadStateScope scope(interp_->state());
  py::object stdin_stream = support().EofStdin();
  ASSERT_TRUE(stdin_stream);
  py::object ns = Namespace();
  PyDict_SetItemString(ns.ptr(), "s", stdin_stream.ptr());
  EXPECT_EQ(Str(Eval("(s.read(), s.readline(), s.mode, s.encoding)", ns.ptr())),
            "('', '', 'r', 'utf-8')");
  // What the interpreter installed is one of these.
  EXPECT_EQ(Str(Eval("__import__('sys').stdin.read()", ns.ptr())), "");
}

TEST_F(SupportTest, InstallImportGateAsksTheCheckFirst) {
  ThreadStateScope scope(interp_->state());
  py::object ns = Namespace();
  ASSERT_TRUE(
      Run("asked = []\n"
          "def check(name):\n"
          "    asked.append(name)\n"
          "    if name == 'refused_here':\n"
          "        raise ImportError('refused: ' + name)\n",
          ns.ptr()));
  ASSERT_TRUE(support().InstallImportGate(PyDict_GetItemString(ns.ptr(), "check")));
  ASSERT_TRUE(
      Run("import sys\n"
          "gate = sys.meta_path[0]\n"
          "found = gate.find_spec('some_module')\n"
          "try:\n"
          "    import refused_here\n"
          "    refused = ''\n"
          "except ImportError as e:\n"
          "    refused = str(e)\n",
          ns.ptr()));
  EXPECT_EQ(Str(Eval("(found, asked, refused)", ns.ptr())),
            "(None, ['some_module', 'refused_here'], 'refused: refused_here')");
  EXPECT_EQ(Str(Eval("type(gate).__name__", ns.ptr())), "ImportGate");
}

TEST_F(SupportTest, SetEnvironMakesOsEnvironExactlyTheValues) {
  ASSERT_EQ(setenv("PYHOST_SUPPORT_TEST", "the process's", 1), 0);
  {
    ThreadStateScope scope(interp_->state());
    py::object ns = Namespace();
    ASSERT_TRUE(Run("import os, tempfile\ntempfile.tempdir = '/nowhere'\n", ns.ptr()));
    py::object values = Eval("{'A': '1', 'TMPDIR': '/tmp'}", ns.ptr());
    ASSERT_TRUE(support().SetEnviron(values.ptr()));
    EXPECT_EQ(Str(Eval("(dict(os.environ), tempfile.tempdir)", ns.ptr())),
              "({'A': '1', 'TMPDIR': '/tmp'}, None)");
    // Not a dict: the Python error is the caller's.
    EXPECT_FALSE(support().SetEnviron(Py_None));
    EXPECT_TRUE(PyErr_Occurred());
    PyErr_Clear();
  }
  // The process's environment is not the interpreter's (os.putenv is a no-op there).
  const char* kept = getenv("PYHOST_SUPPORT_TEST");
  EXPECT_STREQ(kept, "the process's");
  unsetenv("PYHOST_SUPPORT_TEST");
}

TEST_F(SupportTest, DescribeErrorGivesTheUsersFramesAndAHint) {
  ThreadStateScope scope(interp_->state());
  const std::string source = "x = 1\nprnt(x)\n";
  py::object ns = Namespace();
  auto code =
      py::reinterpret_steal<py::object>(Py_CompileString(source.c_str(), "<code>", Py_file_input));
  ASSERT_TRUE(code);
  auto ran = py::reinterpret_steal<py::object>(PyEval_EvalCode(code.ptr(), ns.ptr(), ns.ptr()));
  ASSERT_FALSE(ran);
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  PyErr_NormalizeException(&type, &value, &traceback);
  auto owned_type = py::reinterpret_steal<py::object>(type);
  auto owned_value = py::reinterpret_steal<py::object>(value);
  auto owned_tb = py::reinterpret_steal<py::object>(traceback);
  PyException_SetTraceback(value, traceback);

  std::optional<ExecError> error =
      support().DescribeError(value, "<code>", source, nullptr, ns.ptr());
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->type, "NameError");
  EXPECT_EQ(error->message, "name 'prnt' is not defined");
  EXPECT_EQ(error->line, 2);
  EXPECT_EQ(error->traceback,
            "Traceback (most recent call last):\n"
            "  File \"<code>\", line 2, in <module>\n"
            "    prnt(x)\n"
            "NameError: name 'prnt' is not defined");
  EXPECT_EQ(error->hint, "did you mean 'print'?");
  EXPECT_FALSE(PyErr_Occurred());

  // args feed the KeyError hint.
  auto key_error =
      py::reinterpret_steal<py::object>(PyObject_CallFunction(PyExc_KeyError, "s", "nmae"));
  py::object args = Eval("{'name': 'x'}", ns.ptr());
  error = support().DescribeError(key_error.ptr(), "<code>", source, args.ptr(), nullptr);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->hint,
            "args has no key 'nmae' (keys: 'name'); use args.get('nmae') for optional ones");
}

TEST_F(SupportTest, DescribeErrorThatFailsLeavesNoError) {
  ThreadStateScope scope(interp_->state());
  // Not an exception: describe_error raises, which is no description.
  EXPECT_FALSE(support().DescribeError(Py_None, "<code>", "", nullptr, nullptr).has_value());
  EXPECT_FALSE(PyErr_Occurred());
}

TEST_F(SupportTest, KeepHoldsUntilClear) {
  ThreadStateScope scope(interp_->state());
  absl::StatusOr<Support> own = Support::Load(PyEval_GetBuiltins());
  ASSERT_TRUE(own.ok()) << own.status();
  py::object ns = Namespace();
  ASSERT_TRUE(
      Run("import weakref\nclass Kept: pass\nkept = Kept()\nref = weakref.ref(kept)\n", ns.ptr()));
  ASSERT_TRUE(own->Keep("_kept", PyDict_GetItemString(ns.ptr(), "kept")));
  ASSERT_EQ(PyDict_DelItemString(ns.ptr(), "kept"), 0);
  EXPECT_EQ(Str(Eval("ref() is not None", ns.ptr())), "True");
  own->Clear();
  EXPECT_FALSE(own->loaded());
  EXPECT_EQ(Str(Eval("ref() is None", ns.ptr())), "True");
}

// ---- the GIL precondition ---------------------------------------------------------

using SupportDeathTest = SupportTest;

TEST_F(SupportDeathTest, CallingWithoutTheGilAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH((void)support().EofStdin(), "GIL held in their interpreter");
}

TEST_F(SupportDeathTest, CallingFromAnotherInterpreterAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        ThreadStateScope scope(main_);
        (void)support().SetEnviron(Py_None);
      },
      "GIL held in their interpreter");
}

TEST_F(SupportDeathTest, CallingHelpersNotLoadedAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        ThreadStateScope scope(interp_->state());
        Support none;
        (void)none.InstallImportGate(Py_None);
      },
      "called once loaded");
}

}  // namespace
}  // namespace pyhost::modules

// The audit hook's rule factories (audit_hooks/audit_rules.h), each on synthetic
// events: an argument tuple built here, a Sandbox activated here, the rule called
// directly (no hook, no sandbox interpreter).
#include "audit_hooks/audit_rules.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "audit_hooks/sandbox.h"
#include "bindings/thread_state.h"
#include "embed/runtime.h"
#include "pyhost/policy.h"
#include "tests/testing/files.h"

namespace pyhost {
namespace {

using audit::Access;
using ::testing::HasSubstr;

int fake_interpreter;  // the test's sandbox is never looked up by interpreter

// What a rule left: its answer, and the exception it set ("" if none).
struct Outcome {
  int answer;
  std::string type;
  std::string message;
};

class AuditRulesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<Runtime*> runtime = Runtime::Get();
    ASSERT_TRUE(runtime.ok()) << runtime.status();
    main_ = (*runtime)->main_interpreter();
  }

  void SetUp() override {
    scope_ = std::make_unique<ThreadStateScope>(main_);
    work_ = dir_.path();
    ASSERT_FALSE(work_.empty());
    std::ofstream(work_ + "/mine") << "x";
    Use("strict");
  }

  void TearDown() override {
    PyErr_Clear();
    for (int fd : fds_) close(fd);
    scope_.reset();
  }

  void Use(const char* profile) {
    policy_ = *NamedPolicy(profile);
    Activate();
  }
  void Activate() { sandbox_.Activate({&policy_, work_, "", {}}); }

  // Runs `rule` on `event` with `args` (a new reference, consumed).
  Outcome Run(const audit::Rule& rule, const char* event, PyObject* args) {
    EXPECT_NE(args, nullptr);
    Outcome outcome{rule(sandbox_, event, args), "", ""};
    Py_XDECREF(args);
    PyObject *type = nullptr, *value = nullptr, *traceback = nullptr;
    PyErr_Fetch(&type, &value, &traceback);
    if (type != nullptr) {
      outcome.type = reinterpret_cast<PyTypeObject*>(type)->tp_name;
      PyObject* text = value != nullptr ? PyObject_Str(value) : nullptr;
      const char* utf8 = text != nullptr ? PyUnicode_AsUTF8(text) : nullptr;
      outcome.message = utf8 != nullptr ? utf8 : "";
      Py_XDECREF(text);
      PyErr_Clear();
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    return outcome;
  }
  int OwnFd(const std::string& path, int flags) {
    int fd = open(path.c_str(), flags | O_CLOEXEC);
    EXPECT_GE(fd, 0) << path;
    fds_.push_back(fd);
    sandbox_.RecordFd(fd);
    return fd;
  }
  // An object made by Python code of the test's (not the stdlib's).
  static PyObject* Evaluate(const char* setup, const char* expression) {
    PyObject* globals = PyDict_New();
    PyObject* builtins = PyEval_GetBuiltins();
    PyDict_SetItemString(globals, "__builtins__", builtins);
    PyObject* ran = PyRun_String(setup, Py_file_input, globals, globals);
    Py_XDECREF(ran);
    PyObject* value =
        ran != nullptr ? PyRun_String(expression, Py_eval_input, globals, globals) : nullptr;
    Py_DECREF(globals);
    EXPECT_NE(value, nullptr);
    return value;
  }

  static PyInterpreterState* main_;
  std::unique_ptr<ThreadStateScope> scope_;
  testutil::TempDir dir_{"pyhost-rules"};
  std::string work_;
  Policy policy_;
  Sandbox sandbox_{reinterpret_cast<PyInterpreterState*>(&fake_interpreter)};
  std::vector<int> fds_;
};

PyInterpreterState* AuditRulesTest::main_ = nullptr;

TEST_F(AuditRulesTest, PathRuleAllowsTheRootsAndNamesTheRuleOtherwise) {
  audit::Rule read = audit::PathRule(0, Access::kRead);
  EXPECT_EQ(Run(read, "os.listdir", Py_BuildValue("(s)", work_.c_str())).answer, 0);
  EXPECT_EQ(Run(read, "os.listdir", Py_BuildValue("(s)", StdlibDir().c_str())).answer, 0);
  Outcome outside = Run(read, "os.listdir", Py_BuildValue("(s)", "/etc"));
  EXPECT_EQ(outside.answer, -1);
  EXPECT_EQ(outside.type, "PermissionError");
  EXPECT_EQ(outside.message,
            "os.listdir('/etc') denied by pyhost policy 'strict': outside the readable paths");
  Outcome write = Run(audit::PathRule(0, Access::kWrite), "os.truncate",
                      Py_BuildValue("(si)", (StdlibDir() + "/os.py").c_str(), 0));
  EXPECT_EQ(write.answer, -1);
  EXPECT_THAT(write.message, HasSubstr("': outside the writable paths (WORK_DIR, OUTPUT_DIR and "
                                       "the policy's)"));
  EXPECT_EQ(Run(audit::PathRule(1, Access::kWrite), "shutil.copyfile",
                Py_BuildValue("(ss)", "/etc/passwd", (work_ + "/copy").c_str()))
                .answer,
            0);
}

TEST_F(AuditRulesTest, PathRuleWithoutAPathJudgesTheCurrentDirectory) {
  audit::Rule read = audit::PathRule(0, Access::kRead);
  Outcome none = Run(read, "os.listdir", Py_BuildValue("(O)", Py_None));
  EXPECT_EQ(none.answer, -1);
  EXPECT_THAT(none.message, HasSubstr("os.listdir('.') denied"));
  // An argument that is no path at all (a buffer size, ...) is not this rule's.
  EXPECT_EQ(Run(read, "os.listdir", Py_BuildValue("(d)", 1.5)).answer, 0);
  EXPECT_EQ(Run(read, "os.listdir", PyTuple_New(0)).answer, -1);  // absent: the cwd too
}

TEST_F(AuditRulesTest, PathRuleReadsTheDirFdArgumentItIsGiven) {
  int work = OwnFd(work_, O_RDONLY | O_DIRECTORY);
  audit::Rule mkdir_rule = audit::PathRule(0, Access::kWriteEntry, 2);
  EXPECT_EQ(Run(mkdir_rule, "os.mkdir", Py_BuildValue("(sii)", "new", 0777, work)).answer, 0);
  EXPECT_EQ(Run(mkdir_rule, "os.mkdir", Py_BuildValue("(siO)", "new", 0777, Py_None)).answer, -1);
  int host = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);  // not the code's
  fds_.push_back(host);
  Outcome refused = Run(mkdir_rule, "os.mkdir", Py_BuildValue("(sii)", "new", 0777, host));
  EXPECT_EQ(refused.answer, -1);
  EXPECT_EQ(refused.message, absl::StrCat("os.mkdir('new', dir_fd=", host,
                                          ") denied by pyhost policy "
                                          "'strict': it reaches a file descriptor of the host (one "
                                          "the code did not open), whatever the policy"));
  // Without a dir_fd argument the third item is not read.
  EXPECT_EQ(Run(audit::PathRule(0, Access::kWriteEntry), "os.mkdir",
                Py_BuildValue("(sii)", (work_ + "/x").c_str(), 0777, host))
                .answer,
            0);
}

TEST_F(AuditRulesTest, PathRuleOnADescriptorAsksWhoseItIs) {
  audit::Rule rule = audit::PathRule(0, Access::kWrite);
  int own = OwnFd(work_ + "/mine", O_RDONLY);
  EXPECT_EQ(Run(rule, "os.chmod", Py_BuildValue("(ii)", own, 0600)).answer, 0);
  Outcome host = Run(rule, "os.chmod", Py_BuildValue("(ii)", 0, 0600));
  EXPECT_EQ(host.answer, -1);
  EXPECT_EQ(host.message,
            "os.chmod(fd 0) denied by pyhost policy 'strict': file descriptors the "
            "code did not open belong to the host");
  sandbox_.Close(own);  // closed by the code: python3's answer
  fds_.pop_back();
  Outcome closed = Run(rule, "os.chmod", Py_BuildValue("(ii)", own, 0600));
  EXPECT_EQ(closed.answer, -1);
  EXPECT_EQ(closed.type, "OSError");
  EXPECT_THAT(closed.message, HasSubstr("Bad file descriptor"));
}

TEST_F(AuditRulesTest, PathRuleRefusesPathsItCannotTrustOrEncode) {
  audit::Rule rule = audit::PathRule(0, Access::kRead);
  PyObject* unstable =
      Evaluate("class Shifty:\n  def __fspath__(self): return '/etc'\n", "Shifty()");
  Outcome shifty = Run(rule, "open", Py_BuildValue("(N)", unstable));
  EXPECT_EQ(shifty.answer, -1);
  EXPECT_THAT(shifty.message,
              HasSubstr("open(<Shifty object>) denied by pyhost policy 'strict': "
                        "a path must be str, bytes, an int or a stdlib path object"));
  PyObject* lone = Evaluate("", "'/tmp/\\ud800'");  // not a surrogateescape byte
  Outcome unencodable = Run(rule, "open", Py_BuildValue("(N)", lone));
  EXPECT_EQ(unencodable.answer, -1);
  EXPECT_THAT(unencodable.message, HasSubstr("the path cannot be encoded for the filesystem"));
  Use("yolo");
  EXPECT_EQ(Run(rule, "open", Py_BuildValue("(N)", Evaluate("", "'/tmp/\\ud800'"))).answer, 0);
  EXPECT_EQ(Run(rule, "open",
                Py_BuildValue("(N)", Evaluate("class S:\n  def __fspath__(self): "
                                              "return '/'\n",
                                              "S()")))
                .answer,
            -1);  // under every policy
}

TEST_F(AuditRulesTest, PathRuleJudgesBytesAsTheyAre) {
  audit::Rule rule = audit::PathRule(0, Access::kWrite);
  std::string inside = work_ + "/\xff\xfe";
  PyObject* bytes =
      PyBytes_FromStringAndSize(inside.data(), static_cast<Py_ssize_t>(inside.size()));
  EXPECT_EQ(Run(rule, "open", Py_BuildValue("(N)", bytes)).answer, 0);
  PyObject* escaped = Evaluate("", "'/tmp/\\udcff'");  // surrogateescape: the byte 0xff
  Outcome outside = Run(rule, "open", Py_BuildValue("(N)", escaped));
  EXPECT_EQ(outside.answer, -1);
  EXPECT_THAT(outside.message, HasSubstr("outside the writable paths"));
}

TEST_F(AuditRulesTest, AllOfStopsAtTheFirstRefusal) {
  int second_ran = 0;
  audit::Rule counting = [&second_ran](Sandbox&, const char*, PyObject*) {
    ++second_ran;
    return 0;
  };
  audit::Rule both = audit::AllOf(audit::PathRule(0, Access::kRead), counting);
  EXPECT_EQ(Run(both, "shutil.copyfile", Py_BuildValue("(ss)", "/etc/passwd", "x")).answer, -1);
  EXPECT_EQ(second_ran, 0);
  EXPECT_EQ(Run(both, "shutil.copyfile", Py_BuildValue("(ss)", work_.c_str(), "x")).answer, 0);
  EXPECT_EQ(second_ran, 1);
  audit::Rule copy =
      audit::AllOf(audit::PathRule(0, Access::kRead), audit::PathRule(1, Access::kWrite));
  Outcome target = Run(copy, "shutil.copyfile", Py_BuildValue("(ss)", work_.c_str(), "/etc/x"));
  EXPECT_EQ(target.answer, -1);
  EXPECT_THAT(target.message, HasSubstr("shutil.copyfile('/etc/x') denied"));
}

TEST_F(AuditRulesTest, DenyAlwaysRefusesUnderEveryPolicy) {
  audit::Rule rule = audit::DenyAlways(audit::kChangesTheHost);
  for (const char* profile : {"yolo", "strict"}) {
    Use(profile);
    Outcome outcome = Run(rule, "os.putenv", Py_BuildValue("(ss)", "A", "B"));
    EXPECT_EQ(outcome.answer, -1);
    EXPECT_EQ(outcome.type, "PermissionError");
    EXPECT_EQ(outcome.message, absl::StrCat("os.putenv denied by pyhost policy '", profile,
                                            "': it changes the whole host process"));
  }
}

TEST_F(AuditRulesTest, DenyIfEnforcingRefusesOnlyUnderRules) {
  audit::Rule rule = audit::DenyIfEnforcing("heap walks reach the host's objects");
  Outcome outcome = Run(rule, "gc.get_objects", PyTuple_New(0));
  EXPECT_EQ(outcome.answer, -1);
  EXPECT_EQ(outcome.message,
            "gc.get_objects denied by pyhost policy 'strict': heap walks reach "
            "the host's objects");
  Use("yolo");
  outcome = Run(rule, "gc.get_objects", PyTuple_New(0));
  EXPECT_EQ(outcome.answer, 0);
  EXPECT_EQ(outcome.type, "");
}

TEST_F(AuditRulesTest, RequireProcessesFollowsThePolicy) {
  audit::Rule rule = audit::RequireProcesses();
  Outcome outcome = Run(rule, "subprocess.Popen", PyTuple_New(0));
  EXPECT_EQ(outcome.answer, -1);
  EXPECT_EQ(outcome.message,
            "subprocess.Popen denied by pyhost policy 'strict': processes are not "
            "allowed");
  policy_.processes = true;
  Activate();
  EXPECT_EQ(Run(rule, "subprocess.Popen", PyTuple_New(0)).answer, 0);
}

TEST_F(AuditRulesTest, SignalRuleKeepsTheHostOutOfReach) {
  audit::Rule kill = audit::SignalRule(getpid);
  policy_.processes = true;
  Activate();
  for (PyObject* args : {Py_BuildValue("(ii)", getpid(), 9), Py_BuildValue("(ii)", 0, 9),
                         Py_BuildValue("(ii)", -1, 9), Py_BuildValue("(si)", "1", 9)}) {
    Outcome outcome = Run(kill, "os.kill", args);
    EXPECT_EQ(outcome.answer, -1);
    EXPECT_THAT(outcome.message, HasSubstr("os.kill denied by pyhost policy 'strict': it changes "
                                           "the whole host process"));
  }
  EXPECT_EQ(Run(kill, "os.kill", Py_BuildValue("(ii)", 99999, 9)).answer, 0);  // a child's
  policy_.processes = false;
  Activate();
  Outcome child = Run(kill, "os.kill", Py_BuildValue("(ii)", 99999, 9));
  EXPECT_EQ(child.answer, -1);
  EXPECT_THAT(child.message, HasSubstr("processes are not allowed"));
  Outcome group = Run(audit::SignalRule(getpgrp), "os.killpg", Py_BuildValue("(ii)", getpgrp(), 9));
  EXPECT_EQ(group.answer, -1);
  EXPECT_THAT(group.message, HasSubstr("it changes the whole host process"));
}

TEST_F(AuditRulesTest, AddressRuleAllowsListedHostsAndResolvedAddresses) {
  policy_.network = {"api.example.com"};
  Activate();
  audit::Rule connect = audit::AddressRule(1);
  PyObject* socket = Py_None;
  EXPECT_EQ(Run(connect, "socket.connect", Py_BuildValue("(O(si))", socket, "api.example.com", 443))
                .answer,
            0);
  Outcome other =
      Run(connect, "socket.connect", Py_BuildValue("(O(si))", socket, "evil.example", 443));
  EXPECT_EQ(other.answer, -1);
  EXPECT_EQ(other.message,
            "socket.connect('evil.example') denied by pyhost policy 'strict': host "
            "not on the network allowlist");
  EXPECT_EQ(
      Run(connect, "socket.connect", Py_BuildValue("(O(si))", socket, "192.0.2.7", 443)).answer,
      -1);
  sandbox_.RecordResolved("192.0.2.7");  // an allowed name resolved to it
  EXPECT_EQ(
      Run(connect, "socket.connect", Py_BuildValue("(O(si))", socket, "192.0.2.7", 443)).answer, 0);
  Outcome path = Run(connect, "socket.connect", Py_BuildValue("(Os)", socket, "/tmp/unix.sock"));
  EXPECT_EQ(path.answer, -1);
  EXPECT_THAT(path.message,
              HasSubstr("only IPv4/IPv6 addresses of allowlisted hosts are reachable"));
  // sendmsg's address is optional: none is the connected peer's.
  audit::Rule sendmsg = audit::AddressRule(1, /*optional=*/true);
  EXPECT_EQ(Run(sendmsg, "socket.sendmsg", Py_BuildValue("(OO)", socket, Py_None)).answer, 0);
  EXPECT_EQ(Run(sendmsg, "socket.sendmsg", Py_BuildValue("(O)", socket)).answer, 0);
  EXPECT_EQ(Run(connect, "socket.connect", Py_BuildValue("(OO)", socket, Py_None)).answer, -1);
  Use("yolo");
  EXPECT_EQ(
      Run(connect, "socket.connect", Py_BuildValue("(O(si))", socket, "evil.example", 1)).answer,
      0);
}

TEST_F(AuditRulesTest, ArgumentsAreReadWithoutRunningTheirCode) {
  PyObject* args = Py_BuildValue("(siO)", "text", 7, Py_None);
  EXPECT_EQ(audit::Arg(args, 3), nullptr);
  EXPECT_EQ(audit::Arg(Py_None, 0), nullptr);  // not a tuple
  EXPECT_EQ(audit::Text(audit::Arg(args, 0)), "text");
  EXPECT_EQ(audit::Text(audit::Arg(args, 1)), "");
  EXPECT_EQ(audit::Fd(audit::Arg(args, 1)), 7);
  EXPECT_EQ(audit::Fd(audit::Arg(args, 0)), std::nullopt);
  EXPECT_EQ(audit::DirFd(audit::Arg(args, 2)), -1);
  EXPECT_EQ(audit::DirFd(nullptr), -1);
  Py_DECREF(args);
  PyObject* big = PyLong_FromString("99999999999999999999", nullptr, 10);
  EXPECT_EQ(audit::Fd(big), std::nullopt);
  Py_DECREF(big);
  EXPECT_TRUE(audit::IsIpLiteral("192.0.2.1"));
  EXPECT_TRUE(audit::IsIpLiteral("::1"));
  EXPECT_FALSE(audit::IsIpLiteral("example.com"));
  EXPECT_FALSE(audit::IsIpLiteral(""));
}

}  // namespace
}  // namespace pyhost

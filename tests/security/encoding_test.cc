// Strings the host cannot encode as UTF-8: lone surrogates ("\ud800"), and the
// "\udcXX" that surrogateescape makes of bytes that are not UTF-8 (which map back to
// real bytes on the filesystem). Every place that reads a Python str in C++ must
// handle them: never crash the host, never let such a name past a policy check, never
// match it as a name it is not; and where the policy allows, behave as python3 does.
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/security/shared_host.h"
#include "tests/testing/files.h"

namespace pyhost {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

class EncodingTest : public SharedHostTest {
 protected:
  // The execution failed with `type` and a message containing `message`.
  static void ExpectError(const ExecResult& r, const std::string& type,
                          const std::string& message) {
    ASSERT_TRUE(r.error.has_value()) << r.ToJson().dump();
    EXPECT_EQ(r.error->type, type) << r.ToJson().dump();
    EXPECT_THAT(r.error->message, HasSubstr(message)) << r.ToJson().dump();
  }

  static void ExpectResult(const ExecResult& r, const json& expected) {
    ASSERT_FALSE(r.error.has_value()) << r.ToJson().dump();
    EXPECT_EQ(r.result, expected) << r.ToJson().dump();
  }
};

constexpr char kUnencodableRule[] = "not valid UTF-8 text";

// --- imports --------------------------------------------------------------------------

TEST_F(EncodingTest, ImportOfAnUnencodableNameIsRefusedByAPolicy) {
  for (const char* code : {
           "__import__('\\ud800')",
           "__import__('os\\udcff')",
           "import os\n__import__('x', {'__package__': '\\ud800', '__name__': 'm'}, None, ['y'], "
           "1)",
           "__package__ = '\\ud800'\nfrom . import x\n",
           // the import gate's own check, as importlib's finders call it
           "import sys\nsys.meta_path[0].find_spec('\\udcff')",
       }) {
    SCOPED_TRACE(code);
    ExpectError(Run(code), "ImportError", kUnencodableRule);
    ExpectError(Run(code, "balanced"), "ImportError", kUnencodableRule);
  }
}

TEST_F(EncodingTest, ImportOfAnUnencodableNameWithoutRulesIsPython3s) {
  // python3: ModuleNotFoundError: No module named '\ud800'
  ExpectError(Run("__import__('\\ud800')", "yolo"), "ModuleNotFoundError",
              "No module named '\\ud800'");
  ExpectError(Run("__package__ = '\\ud800'\nfrom . import x\n", "yolo"), "ModuleNotFoundError",
              "No module named '\\ud800'");
}

// "\udcff" is the byte 0xff on the filesystem: a module file the code wrote.
constexpr char kWriteByteNamedModule[] = R"PY(
import os, sys
with open(os.fsencode(WORK_DIR) + b'/\xff.py', 'w') as f:
    f.write('x = 42\n')
sys.path.insert(0, WORK_DIR)
)PY";

TEST_F(EncodingTest, SurrogateEscapedModuleNameImportsOnlyWithoutRules) {
  std::string by_import = std::string(kWriteByteNamedModule) + "result = __import__('\\udcff').x\n";
  std::string by_importlib = std::string(kWriteByteNamedModule) +
                             "import importlib\nresult = importlib.import_module('\\udcff').x\n";
  ExpectResult(Run(by_import, "yolo"), 42);  // as python3 does
  ExpectResult(Run(by_importlib, "yolo"), 42);
  ExpectError(Run(by_import), "ImportError", kUnencodableRule);
  ExpectError(Run(by_importlib, "balanced"), "ImportError", kUnencodableRule);
}

TEST_F(EncodingTest, CreateBuiltinWithAnUnencodableSpecName) {
  const char* code = R"PY(
import sys, json
spec = type(json.__spec__)('\ud800', None)
result = sys.modules['_imp'].create_builtin(spec)
)PY";
  ExpectResult(Run(code, "yolo"), nullptr);  // python3: None, no such built-in module
  ExpectError(Run(code), "ImportError", kUnencodableRule);
}

TEST_F(EncodingTest, CreateDynamicOnlyFromTheStdlibExtensionDirectory) {
  // The init function is looked up in the file at `origin`: a path that merely starts
  // with lib-dynload/ could lead anywhere (a shared object the code wrote).
  for (const char* origin :
       {"'\\ud800'", "dynload + '/\\ud800.so'", "dynload + '/../../../../' + WORK_DIR + '/x.so'",
        "dynload + '/./_json.cpython-311-x86_64-linux-gnu.so'"}) {
    SCOPED_TRACE(origin);
    std::string code = absl::StrCat(R"PY(
import sys, json
dynload = sys.modules['_json'].__file__.rsplit('/', 1)[0]
spec = type(json.__spec__)('json', None, origin=)PY",
                                    origin, R"PY()
sys.modules['_imp'].create_dynamic(spec)
)PY");
    for (const char* policy : {"strict", "yolo"}) {
      ExpectError(Run(code, policy), "PermissionError", "only the stdlib's own extension modules");
    }
  }
  // A name in that directory goes on to the loader ("\udcff" is the byte 0xff there).
  ExpectError(Run(R"PY(
import sys, json
dynload = sys.modules['_json'].__file__.rsplit('/', 1)[0]
sys.modules['_imp'].create_dynamic(type(json.__spec__)('json', None, origin=dynload + '/\udcff.so'))
)PY"),
              "ImportError", "lib-dynload/\\udcff.so: cannot open shared object file");
}

// The call reads the spec's name and origin again, through its class: a property
// there must not name another file (one the code wrote) or another module.
TEST_F(EncodingTest, CreateDynamicUsesTheSpecAsChecked) {
  const char* code = R"PY(
import sys, json
spec_type = type(json.__spec__)
spec = spec_type('json', None, origin=sys.modules['_json'].__file__)
spec_type.origin = property(lambda self: WORK_DIR + '/x.so')
spec_type.name = property(lambda self: 'posix')
sys.modules['_imp'].create_dynamic(spec)
)PY";
  ExecResult r = Run(code);
  ASSERT_TRUE(r.error.has_value()) << r.ToJson().dump();
  EXPECT_THAT(r.error->message, ::testing::Not(HasSubstr("x.so"))) << r.ToJson().dump();
  EXPECT_THAT(r.error->message, ::testing::Not(HasSubstr("posix"))) << r.ToJson().dump();
  // create_builtin likewise: the checked name, never a property's "posix" (hardened).
  ExecResult builtin = Run(R"PY(
import sys, json
spec_type = type(json.__spec__)
spec = spec_type('json', None)
spec_type.name = property(lambda self: 'posix')
result = sys.modules['_imp'].create_builtin(spec)
)PY");
  ExpectResult(builtin, nullptr);
}

// importlib renames code loaded from a .pyc to the source's path with
// _imp._fix_co_filename: a path with surrogates must work as in python3.
TEST_F(EncodingTest, BytecodeForAnUnencodableSourcePathLoads) {
  const char* code = R"PY(
import os, sys, json, types
marshal = sys.modules['marshal']
source = WORK_DIR + '/\udcff.py'
with open(source, 'w') as f:
    f.write('x = 1\n')
st = os.stat(source)
os.mkdir(WORK_DIR + '/__pycache__')
header = sys.modules['_frozen_importlib_external'].MAGIC_NUMBER + bytes(4)
header += (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, 'little') + (st.st_size & 0xFFFFFFFF).to_bytes(4, 'little')
with open(WORK_DIR + '/__pycache__/\udcff.' + sys.implementation.cache_tag + '.pyc', 'wb') as f:
    f.write(header + marshal.dumps(compile('x = 42\n', '<cached>', 'exec')))
module = types.ModuleType('json')
type(json.__loader__)('json', source).exec_module(module)
result = [module.x, module.__spec__ is None]
)PY";
  ExpectResult(Run(code), json::array({42, true}));
}

// --- classes, frames, compile() --------------------------------------------------------

TEST_F(EncodingTest, SubclassesWithAnUnencodableQualnameInTheSameInterpreter) {
  ExecResult r = Run(R"PY(
class Odd:
    pass
Odd.__qualname__ = '\ud800'
result = len(object.__subclasses__()) > 0
)PY");
  ExpectResult(r, true);
}

// A class in a resident tool's interpreter, the walk in a fresh execution's.
TEST_F(EncodingTest, SubclassesWithAnUnencodableQualnameInAnotherInterpreter) {
  ToolOptions resident;
  resident.isolation = Isolation::kResident;
  ASSERT_TRUE(host_
                  ->RegisterTool("odd_qualname", R"PY(
class OddTool:
    pass
OddTool.__qualname__ = '\ud800'
OddTool.__module__ = '__main__'
def run(args):
    return OddTool.__name__
)PY",
                                 resident)
                  .ok());
  absl::StatusOr<ToolCallResult> call = host_->CallTool("odd_qualname", json::object());
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->envelope, json({{"ok", true}, {"data", "OddTool"}}));
  ExecResult r =
      Run("result = [c.__name__ for c in object.__subclasses__() if c.__name__ == 'OddTool']\n");
  ExpectResult(r, json::array());  // another interpreter's class is never reached
  ASSERT_TRUE(host_->UnregisterTool("odd_qualname").ok());
}

TEST_F(EncodingTest, CompileJudgesAnUnencodableFilenameByWhatItClaims) {
  ExpectError(Run("compile('1', '<frozen importlib._bootstrap>\\udcff', 'exec')"),
              "PermissionError", "may not claim");
  ExpectError(Run("compile('1', '/usr/lib/python3.11/os.py\\udcff', 'exec')"), "PermissionError",
              "may not claim");
  // A frame whose filename has surrogates is the code's own: its imports are the code's.
  ExpectResult(Run("exec(compile('import json\\nresult = json.dumps(1)', '<gen\\udcff>', 'exec'))"),
               "1");
  ExpectError(Run("exec(compile('import ctypes', '<gen\\udcff>', 'exec'))"), "ImportError",
              "not allowed by policy 'strict'");
}

// --- paths ---------------------------------------------------------------------------

// "\udcff" is the byte 0xff to the OS: the audit hook must judge the bytes the OS gets.
TEST_F(EncodingTest, PathsAreJudgedByTheBytesTheOsGets) {
  std::string outside = testutil::MakeTempDir("/tmp/encoding-test-");
  ASSERT_FALSE(outside.empty()) << "mkdtemp";
  ExecResult created = Run(absl::StrCat("import os\nos.mkdir('", outside, "/\\udcff')\n"));
  ExpectError(created, "PermissionError", "outside the writable paths");
  struct stat st;
  EXPECT_NE(stat((outside + "/\xff").c_str(), &st), 0) << "a directory was made outside the roots";
  rmdir((outside + "/\xff").c_str());
  rmdir(outside.c_str());

  // A directory of its own named with the byte 0xff, then out through "..".
  ExecResult read = Run(R"PY(
import os
os.mkdir(WORK_DIR + '/\udcff')
up = WORK_DIR + '/\udcff' + '/..' * 12
result = open(up + '/etc/passwd').read()
)PY");
  ExpectError(read, "PermissionError", "outside the readable paths");
  EXPECT_EQ(read.ToJson().dump().find("root:"), std::string::npos);

  // sqlite3.connect took a name it could not read as ":memory:" (under a policy that
  // allows sqlite3: files still only in the execution's directories).
  std::string db_dir = testutil::MakeTempDir("/tmp/encoding-test-db-");
  ASSERT_FALSE(db_dir.empty()) << "mkdtemp";
  ExecResult db =
      Run(absl::StrCat("import sqlite3\nsqlite3.connect('", db_dir,
                       "/\\udcff.db').execute('create table t (x)')\n"),
          *PolicyFromJson(json::parse(R"({"name": "sqlite", "imports": {"allow": ["sqlite3"]}})")));
  ExpectError(db, "PermissionError", "outside the writable paths");
  EXPECT_NE(stat((db_dir + "/\xff.db").c_str(), &st), 0) << "a database was made outside the roots";
  unlink((db_dir + "/\xff.db").c_str());
  rmdir(db_dir.c_str());

  // Inside the roots, such names work as in python3.
  ExpectResult(Run(R"PY(
import os
with open(WORK_DIR + '/\udcff', 'w') as f:
    f.write('ok')
result = [open(WORK_DIR + '/\udcff').read(), os.fsencode('\udcff') in os.listdir(os.fsencode(WORK_DIR))]
)PY"),
               json::array({"ok", true}));
}

TEST_F(EncodingTest, PathTheFilesystemCannotEncode) {
  // python3: UnicodeEncodeError: 'utf-8' codec can't encode character '\ud800' (open
  // and os encode the path before their audit event).
  for (const char* policy : {"strict", "yolo"}) {
    ExpectError(Run("open(WORK_DIR + '/\\ud800', 'w')", policy), "UnicodeEncodeError",
                "surrogates not allowed");
  }
  // An event raised before any encoding (shutil's) is refused under rules.
  const char* copy =
      "import shutil\nopen(WORK_DIR + '/a', 'w').close()\n"
      "shutil.copyfile(WORK_DIR + '/a', WORK_DIR + '/\\ud800')\n";
  ExpectError(Run(copy), "PermissionError", "cannot be encoded for the filesystem");
  ExpectError(Run(copy, "yolo"), "UnicodeEncodeError", "surrogates not allowed");
}

// The filesystem encoding is UTF-8, as python3's here: without UTF-8 mode the isolated
// configuration read the host's "C" locale, ASCII, and every non-ASCII path or text
// file failed with UnicodeEncodeError.
TEST_F(EncodingTest, NonAsciiPathsAndTextWorkAsInPython3) {
  ExpectResult(Run(R"PY(
import os, sys
with open(WORK_DIR + '/données ✓.txt', 'w') as f:
    f.write('é ✓')
result = [sys.getfilesystemencoding(), open(WORK_DIR + '/données ✓.txt').read(),
          'données ✓.txt' in os.listdir(WORK_DIR)]
)PY"),
               json::array({"utf-8", "é ✓", true}));
}

// --- values and messages ---------------------------------------------------------------

TEST_F(EncodingTest, ExceptionMessageWithSurrogatesKeepsItsDetails) {
  ExecResult r = Run("x = 1\nraise ValueError('bad \\ud800 value')\n");
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->type, "ValueError");
  EXPECT_EQ(r.error->message, "bad \\ud800 value");
  EXPECT_EQ(r.error->line, 2);
  EXPECT_THAT(r.error->traceback, HasSubstr("ValueError: bad \\ud800 value"));
}

TEST_F(EncodingTest, OutputAndHostNamesWithSurrogates) {
  // Printing a lone surrogate: python3's error (its UTF-8 streams are strict), the
  // output before it kept.
  ExecResult printed = Run("print('before')\nprint('a\\ud800b')\nresult = 1\n");
  ExpectError(printed, "UnicodeEncodeError", "surrogates not allowed");
  EXPECT_EQ(printed.stdout_stream.text, "before\n");
  // A host name that is not text: python3's error (the name is encoded before the
  // audit event), no crash, nothing resolved.
  Policy net = *LoadPolicy("strict");
  net.network = {"*.example.com"};
  ExpectError(Run("import socket\nsocket.getaddrinfo('\\udcff.example.com', 80)\n", net),
              "UnicodeError", "encoding with 'idna' codec failed");
}

// _socket encodes a non-ASCII host name through the "idna" codec after the allowlist
// judged the str: a codec of the code's turned an allowed name into another one
// (here localhost). The allowlist now judges the bytes that are resolved.
TEST_F(EncodingTest, AReplacedIdnaCodecCannotTurnAnAllowedNameIntoAnother) {
  Policy net = *LoadPolicy("strict");
  net.network = {"*.example.com"};
  ExecResult r = Run(R"PY(
import codecs, encodings, socket
evil = codecs.CodecInfo(lambda s, errors='strict': (b'localhost', len(s)),
                        lambda b, errors='strict': ('localhost', len(b)), name='idna')
encodings._cache['idna'] = evil
def other(name):
    return None
codecs.register(other)
codecs.unregister(other)  # empties the interpreter's codec cache
assert codecs.lookup('idna') is evil
host = '\u00e9.example.com'
outcome = {}
for name, call in [('getaddrinfo', lambda: socket.getaddrinfo(host, 80)),
                   ('getaddrinfo host=', lambda: socket.getaddrinfo(host=host, port=80)),
                   ('gethostbyname', lambda: socket.gethostbyname(host)),
                   ('gethostbyname_ex', lambda: socket.gethostbyname_ex(host)),
                   ('connect', lambda: socket.socket().connect((host, 80))),
                   ('connect_ex', lambda: socket.socket().connect_ex((host, 80))),
                   ('sendto', lambda: socket.socket(type=socket.SOCK_DGRAM).sendto(b'x', (host, 80)))]:
    try:
        outcome[name] = repr(call())
    except PermissionError as e:
        outcome[name] = 'denied: ' + str(e)
result = outcome
)PY",
                     net);
  ASSERT_TRUE(r.ok) << r.ToJson().dump();
  for (const auto& [name, outcome] : r.result.items()) {
    EXPECT_THAT(outcome.get<std::string>(), HasSubstr("denied: ")) << name;
    EXPECT_THAT(outcome.get<std::string>(), HasSubstr("'localhost'")) << name;
  }
  EXPECT_EQ(r.result.size(), 7u) << r.ToJson().dump();
}

// A call converts its path argument before its audit event (FileIO, os.*) or after
// (sqlite3.connect), and the check converted it again: an __index__ or __fspath__ of
// the code's could answer the check one thing and the call another (the host's
// descriptor 1, a database outside the roots). Such objects are refused under every
// policy; str, bytes, ints, pathlib paths and os.DirEntry work as in python3.
TEST_F(EncodingTest, PathArgumentsThatCouldAnswerTwiceAreRefused) {
  const char* code = R"PY(
import io, os, pathlib, sqlite3
outside = args_outside = '/tmp/pyhost-double-answer-%d' % os.getpid()
class Index:
    def __index__(self):
        return 1  # the host's standard output
class Path:
    def __init__(self, first):
        self.calls, self.first = 0, first
    def __fspath__(self):
        self.calls += 1
        inside = WORK_DIR + '/inside.db'
        return (outside if self.calls == 1 else inside) if self.first else (inside if self.calls == 1 else outside)
outcome = {}
def attempt(name, call):
    try:
        call()
        outcome[name] = 'ran'
    except PermissionError as e:
        outcome[name] = 'denied' if 'could answer the check' in str(e) else str(e)
attempt('open(__index__)', lambda: open(Index(), 'w', closefd=False))
attempt('FileIO(__index__)', lambda: io.FileIO(Index(), 'w', closefd=False))
attempt('os.fstat-free chmod(__index__)', lambda: os.chmod(Index(), 0o600))
for first in (True, False):
    attempt('FileIO(__fspath__) %s' % first, lambda: io.FileIO(Path(first), 'w'))
    attempt('sqlite3.connect(__fspath__) %s' % first, lambda: sqlite3.connect(Path(first)).execute('create table t(x)'))
# os.* convert once and raise their event with the converted path: judged as opened.
judged = False
try:
    os.close(os.open(Path(True), os.O_CREAT | os.O_WRONLY))
    os.remove(outside)
except PermissionError as e:
    judged = 'outside the writable paths' in str(e)
os.close(os.open(Path(False), os.O_CREAT | os.O_WRONLY))
os.remove(WORK_DIR + '/inside.db')
# The stdlib's own path objects work as in python3.
p = pathlib.Path(WORK_DIR) / 'a.txt'
p.write_text('x')
db = sqlite3.connect(pathlib.Path(WORK_DIR) / 'ok.db')
db.execute('create table t(x)')
db.close()
entries = sorted(e.name for e in os.scandir(WORK_DIR))
for e in os.scandir(WORK_DIR):
    os.remove(e)
result = {'outcome': outcome, 'stdlib': [entries, os.listdir(WORK_DIR), os.path.exists(outside)],
          'os.open judged what it opened': judged}
)PY";
  for (const char* policy : {"strict", "yolo"}) {
    SCOPED_TRACE(policy);
    ExecResult r = Run(code, policy);
    ASSERT_TRUE(r.ok) << r.ToJson().dump();
    for (const auto& [name, outcome] : r.result["outcome"].items()) {
      EXPECT_EQ(outcome, "denied") << name;
    }
    EXPECT_EQ(r.result["outcome"].size(), 7u) << r.ToJson().dump();
    EXPECT_EQ(r.result["os.open judged what it opened"], std::string(policy) == "strict")
        << r.ToJson().dump();
    EXPECT_EQ(r.result["stdlib"], json::parse(R"([["a.txt", "ok.db"], [], false])"))
        << r.ToJson().dump();
  }
}

// sys.stdout.reconfigure(encoding='utf-8'), common in generated programs, raised
// AttributeError: what the capture already is is answered, anything else refused.
TEST_F(EncodingTest, StdoutReconfigureToUtf8Works) {
  ExecResult r =
      Run("import sys\nsys.stdout.reconfigure(encoding='utf-8')\n"
          "sys.stderr.reconfigure(encoding='UTF8', errors='strict', line_buffering=True)\n"
          "print('é')\nresult = 1\n");
  ExpectResult(r, 1);
  EXPECT_EQ(r.stdout_stream.text, "é\n");
  ExpectError(Run("import sys\nsys.stdout.reconfigure(encoding='latin-1')\n"), "PermissionError",
              "cannot be reconfigured");
}

TEST_F(EncodingTest, UnencodableResultIsNamedNotDropped) {
  ExecResult r = Run("result = {'k': ['\\ud800']}\n");
  ExpectError(r, "ResultNotSerializable", "result['k'][0]: string is not encodable as UTF-8");
  EXPECT_THAT(r.error->message, HasSubstr("value '\\ud800'"));
  ExecResult key = Run("result = {'\\udcff': 1}\n");
  ExpectError(key, "ResultNotSerializable", "dict key is not encodable as UTF-8");
}

}  // namespace
}  // namespace pyhost

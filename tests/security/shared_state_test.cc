// State that crosses executions through what every interpreter of the process shares
// on Python 3.11, and the fidelity cases next to it:
//   - type.__subclasses__() shows the classes the execution created (the interpreter
//     that created a class decides), never another interpreter's;
//   - single-phase C modules whose objects are the whole process's (decimal's
//     contexts and DecimalTuple, asyncio's and zoneinfo's accelerators, socket's
//     exception classes and default timeout, the gettext domain): no execution sees
//     another's change (docs/security.md, "State shared by every interpreter");
//   - time.tzset() with a TZ the execution set: refused, never silently ignored.
// Each case states what python3 answers for the same code.
#include <stdlib.h>
#include <time.h>

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "guards/shared_types.h"
#include "pyhost/host.h"
#include "tests/security/shared_host.h"

namespace pyhost {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

class SharedStateTest : public SharedHostTest {
 protected:
  // The result of code that must succeed.
  static json Result(const std::string& code, const std::string& policy = "strict") {
    ExecResult r = Run(code, policy);
    EXPECT_TRUE(r.ok) << code << "\n" << r.ToJson().dump();
    return r.result;
  }

  static void ExpectDenied(const std::string& code, const std::string& type,
                           const std::string& fragment, const std::string& policy = "strict") {
    ExecResult r = Run(code, policy);
    ASSERT_FALSE(r.ok) << code << "\n" << r.ToJson().dump();
    ASSERT_TRUE(r.error.has_value());
    EXPECT_EQ(r.error->type, type) << r.error->message;
    EXPECT_THAT(r.error->message, HasSubstr(fragment));
  }

  static void RegisterResident(const std::string& name, const std::string& source,
                               const std::string& policy = "yolo") {
    ToolOptions options;
    options.isolation = Isolation::kResident;
    options.policy = *NamedPolicy(policy);
    absl::Status registered = host_->RegisterTool(name, source, options);
    ASSERT_TRUE(registered.ok()) << registered;
  }

  static json Call(const std::string& name, const json& args = json::object()) {
    absl::StatusOr<ToolCallResult> call = host_->CallTool(name, args);
    EXPECT_TRUE(call.ok()) << call.status();
    if (!call.ok()) return json();
    EXPECT_EQ(call->envelope["ok"], json(true)) << call->envelope.dump();
    return call->envelope["data"];
  }
};

// --- type.__subclasses__: membership by the creating interpreter ---------------------

// python3: ['A', 'T', 'N'] (classes made in functions, by type() and by a metaclass).
TEST_F(SharedStateTest, SubclassesIncludeClassesMadeInFunctions) {
  EXPECT_EQ(Result(R"PY(
class Base: pass
def make():
    class A(Base): pass
    T = type('T', (Base,), {})
    class Meta(type): pass
    N = Meta('N', (Base,), {})
    return A, T, N
made = make()
result = [c.__name__ for c in Base.__subclasses__()]
)PY"),
            json({"A", "T", "N"}));
}

// python3: [True, True, True, True]: top-level classes of the snippet, a namedtuple,
// an enum and types.new_class are all their base's subclasses.
TEST_F(SharedStateTest, SubclassesIncludeTopLevelAndLibraryMadeClasses) {
  EXPECT_EQ(Result(R"PY(
import collections, enum, types, dataclasses
class Top: pass
class Sub(Top): pass
Point = collections.namedtuple('Point', 'x y')
def colors():
    class Color(enum.Enum):
        RED = 1
    return Color
Color = colors()
@dataclasses.dataclass
class Data(Top):
    x: int = 0
New = types.new_class('New', (Top,))
result = [Sub in Top.__subclasses__(), Point in tuple.__subclasses__(),
          Color in enum.Enum.__subclasses__(), {Data, New} <= set(Top.__subclasses__())]
)PY"),
            json({true, true, true, true}));
}

// python3: True. An ABC finds a class registered on one of its subclasses through
// __subclasses__(); hiding the subclass made issubclass answer False.
TEST_F(SharedStateTest, AbcIssubclassThroughARegisteredSubclass) {
  EXPECT_EQ(Result(R"PY(
import abc
class Plugin(abc.ABC): pass
def make():
    class Mid(Plugin): pass
    return Mid
Mid = make()
class Registered: pass
Mid.register(Registered)
result = [issubclass(Registered, Plugin), isinstance(Registered(), Plugin)]
)PY"),
            json({true, true}));
}

// The property the filter exists for: classes a resident tool created (in functions,
// by type()) stay out of every other interpreter's walks, and the other way round.
TEST_F(SharedStateTest, SubclassesNeverShowAnotherInterpretersClasses) {
  // The names of every class a walk from object reaches.
  const std::string names = R"PY(
def _names():
    seen, stack, names = set(), [object], set()
    while stack:
        for c in type.__subclasses__(stack.pop()):
            if c not in seen:
                seen.add(c)
                stack.append(c)
                names.add(c.__name__)
    return names
)PY";
  RegisterResident("keeps_classes", names + R"PY(
class ToolSecretBase(Exception): pass
def _make():
    class ToolSecretInFunction(ToolSecretBase): pass
    return ToolSecretInFunction, type('ToolSecretByType', (Exception,), {})
KEPT = _make()
def run(args):
    return sorted(n for n in _names() if n.startswith(('ToolSecret', 'SnippetSecret')))
)PY");
  const std::string walk = names + R"PY(
class SnippetSecret(Exception): pass
result = sorted(n for n in _names() if n.startswith(('ToolSecret', 'SnippetSecret')))
)PY";
  EXPECT_EQ(Result(walk), json({"SnippetSecret"}));
  EXPECT_EQ(Result(walk, "yolo"), json({"SnippetSecret"}));
  EXPECT_EQ(Call("keeps_classes"),
            json({"ToolSecretBase", "ToolSecretByType", "ToolSecretInFunction"}));
  ASSERT_TRUE(host_->UnregisterTool("keeps_classes").ok());
}

// A freed class's address can be reused by a class another interpreter makes: the
// creator is forgotten with the class.
TEST_F(SharedStateTest, AFreedClassIsForgotten) {
  RegisterResident("class_maker", R"PY(
import gc
KEPT = {}
def run(args):
    if args['op'] == 'make':
        KEPT['c'] = type('Made', (), {})
        return id(KEPT['c'])
    KEPT.clear()
    gc.collect()
    return 0
)PY");
  json address = Call("class_maker", {{"op", "make"}});
  ASSERT_TRUE(address.is_number_integer());
  const void* type = reinterpret_cast<const void*>(address.get<uintptr_t>());
  EXPECT_TRUE(HeapTypeCreator(type).has_value());
  Call("class_maker", {{"op", "free"}});
  EXPECT_FALSE(HeapTypeCreator(type).has_value());
  ASSERT_TRUE(host_->UnregisterTool("class_maker").ok());
}

// Only a creation records a creator: asking type.__new__ about an existing class (or
// making a subclass of a shared one) must not make that class the caller's own.
TEST_F(SharedStateTest, TypeOfAnObjectDoesNotAdoptItsClass) {
  ExpectDenied(R"PY(
import socket
try:
    type.__new__(type, socket.herror('x'))
except TypeError:
    pass
type('Sub', (socket.herror,), {})
socket.herror.planted = 1
)PY",
               "PermissionError", "class socket.herror is not the execution's own", "yolo");
}

// --- objects of single-phase modules ---------------------------------------------------

// python3 (two processes): '0.333', then 28 digits. Before pyhost ran _decimal's one
// DefaultContext for every interpreter, the second execution got '0.333' too.
TEST_F(SharedStateTest, DecimalDefaultContextStaysInItsExecution) {
  EXPECT_EQ(Result(R"PY(
import decimal
decimal.DefaultContext.prec = 3
decimal.BasicContext.prec = 2
decimal.DefaultContext.traps[decimal.Inexact] = True
decimal.DefaultContext.traps[decimal.Inexact] = False
decimal.ExtendedContext.rounding = decimal.ROUND_DOWN
result = str(decimal.Decimal(1) / decimal.Decimal(3))
)PY"),
            json("0.333"));
  EXPECT_EQ(Result(R"PY(
import decimal
result = [str(decimal.Decimal(1) / decimal.Decimal(3)), decimal.BasicContext.prec,
          decimal.ExtendedContext.rounding, bool(decimal.getcontext().traps[decimal.Inexact])]
)PY"),
            json({"0.3333333333333333333333333333", 9, "ROUND_HALF_EVEN", false}));
  // A trap left on in one execution does not fire in the next.
  Result("import decimal\ndecimal.DefaultContext.traps[decimal.Inexact] = True\n");
  EXPECT_EQ(Result("import decimal\nresult = str(decimal.Decimal(2) / 3)\n"),
            json("0.6666666666666666666666666667"));
}

// decimal.DecimalTuple was a class made by the first interpreter to import _decimal:
// its methods' __globals__ were that interpreter's collections module (a resident
// tool's, reachable and writable from every sandbox).
TEST_F(SharedStateTest, DecimalClassesAreTheExecutionsOwn) {
  RegisterResident("decimal_first", R"PY(
import decimal, collections
collections.PLANTED_BY_TOOL = 'tool'
def run(args):
    return str(decimal.Decimal('1.5').as_tuple())
)PY");
  Call("decimal_first");
  EXPECT_EQ(Result(R"PY(
import decimal, sys
g = decimal.DecimalTuple._make.__func__.__globals__
result = [g is sys.modules['collections'].__dict__, 'PLANTED_BY_TOOL' in g,
          type(decimal.Decimal(1).as_tuple()) is decimal.DecimalTuple]
)PY"),
            json({true, false, true}));
  ASSERT_TRUE(host_->UnregisterTool("decimal_first").ok());
}

// zoneinfo's C accelerator kept the first importer's weakref.WeakValueDictionary: a
// traceback from inside it handed another interpreter's module globals to the code.
TEST_F(SharedStateTest, ZoneinfoFramesAreTheExecutionsOwn) {
  RegisterResident("zoneinfo_first", R"PY(
import weakref, zoneinfo
weakref.WeakValueDictionary.get.__globals__['PLANTED_BY_TOOL'] = 'tool'
def run(args):
    return str(zoneinfo.ZoneInfo('UTC'))
)PY");
  Call("zoneinfo_first");
  EXPECT_EQ(Result(R"PY(
import zoneinfo, datetime
class Key(str):
    def __hash__(self):
        raise KeyError('probe')
foreign = []
try:
    zoneinfo.ZoneInfo(Key('UTC'))
except KeyError as e:
    tb = e.__traceback__
    while tb:
        foreign.append('PLANTED_BY_TOOL' in tb.tb_frame.f_globals)
        tb = tb.tb_next
berlin = datetime.datetime(2024, 7, 1, tzinfo=zoneinfo.ZoneInfo('Europe/Berlin'))
result = [any(foreign), str(berlin.utcoffset())]
)PY",
                   "yolo"),
            json({false, "2:00:00"}));
  ASSERT_TRUE(host_->UnregisterTool("zoneinfo_first").ok());
}

// asyncio works on its pure-Python futures and tasks; _asyncio (its tasks registry
// and loop helpers were the first importer's) is refused.
TEST_F(SharedStateTest, AsyncioRunsWithoutItsSharedAccelerator) {
  EXPECT_EQ(Result(R"PY(
import asyncio
async def double(x):
    await asyncio.sleep(0)
    return 2 * x
async def main():
    return await asyncio.gather(double(1), double(2))
result = asyncio.run(main())
)PY",
                   "yolo"),
            json({2, 4}));
  ExpectDenied("import _asyncio\n", "ImportError", "shared by every interpreter", "yolo");
  ExpectDenied("import _decimal\n", "ImportError", "shared by every interpreter", "yolo");
}

// A host that prewarms decimal: prewarming must not load the shared module either.
TEST(SharedStatePrewarmTest, PrewarmedDecimalIsTheExecutionsOwn) {
  HostOptions options;
  options.pool_size = 1;
  options.prewarm_modules = {"decimal", "zoneinfo", "asyncio"};
  absl::StatusOr<std::unique_ptr<Host>> host = Host::Create(options);
  ASSERT_TRUE(host.ok()) << host.status();
  for (const char* code :
       {"import decimal\ndecimal.DefaultContext.prec = 3\n",
        "import decimal, sys\nresult = [str(decimal.Decimal(1) / 3), "
        "[m for m in ('_decimal', '_zoneinfo', '_asyncio') if m in sys.modules]]\n"}) {
    ExecRequest request;
    request.code = code;
    absl::StatusOr<ExecResult> r = (*host)->Execute(request);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(r->ok) << r->ToJson().dump();
    if (!r->result.is_null()) {
      EXPECT_EQ(r->result, json({"0.3333333333333333333333333333", json::array()}));
    }
  }
}

// python3 (two processes): 2.5 then None. _socket's default timeout is one C variable
// for the whole process: each interpreter now has its own, applied to its sockets.
TEST_F(SharedStateTest, SocketDefaultTimeoutStaysInItsExecution) {
  EXPECT_EQ(Result(R"PY(
import socket
socket.setdefaulttimeout(2.5)
a, b = socket.socketpair()
s = socket.socket()
result = [socket.getdefaulttimeout(), s.gettimeout(), a.gettimeout()]
)PY",
                   "yolo"),
            json({2.5, 2.5, 2.5}));
  EXPECT_EQ(Result(R"PY(
import socket
result = [socket.getdefaulttimeout(), socket.socket().gettimeout()]
)PY",
                   "yolo"),
            json({nullptr, nullptr}));
  // The original's checks still apply.
  ExpectDenied("import socket\nsocket.setdefaulttimeout(-1)\n", "ValueError", "out of range",
               "yolo");
}

// socket.herror/gaierror are one class for every interpreter: changing them is refused
// (reading, raising, catching and subclassing them are not).
TEST_F(SharedStateTest, SharedExceptionClassesCannotBeChanged) {
  ExpectDenied("import socket\nsocket.herror.planted = 1\n", "PermissionError",
               "class socket.herror is not the execution's own", "yolo");
  ExpectDenied("import socket\ndel socket.gaierror.__doc__\n", "PermissionError", "socket.gaierror",
               "yolo");
  ExpectDenied("import socket\ntype.__setattr__(socket.herror, 'planted', 1)\n", "PermissionError",
               "socket.herror", "yolo");
  EXPECT_EQ(Result(R"PY(
import socket
class Mine(socket.herror): pass
Mine.extra = 1
try:
    raise Mine(1, 'x')
except socket.herror as e:
    caught = e.extra
result = [caught, hasattr(socket.herror, 'planted'), socket.herror.__name__]
)PY",
                   "yolo"),
            json({1, false, "herror"}));
}

// The gettext domain is the C library's, for the whole process.
TEST_F(SharedStateTest, GettextDomainIsQueriedNotChanged) {
  EXPECT_EQ(Result("import locale\nresult = locale.textdomain(None)\n", "yolo"), json("messages"));
  ExpectDenied("import locale\nlocale.textdomain('planted')\n", "PermissionError",
               "locale.textdomain", "yolo");
  ExpectDenied("import locale\nlocale.bindtextdomain('messages', '/tmp')\n", "PermissionError",
               "locale.bindtextdomain", "yolo");
  EXPECT_EQ(Result("import locale\nresult = locale.textdomain(None)\n", "yolo"), json("messages"));
}

// --- time zones --------------------------------------------------------------------------

// python3: tzname ('JST', 'JST'). pyhost's os.environ is the execution's own and the
// C library reads the process's TZ, so the answer would be the host's zone: refused.
TEST_F(SharedStateTest, TzsetWithAnotherZoneIsRefused) {
  ExpectDenied("import os, time\nos.environ['TZ'] = 'Asia/Tokyo'\ntime.tzset()\n",
               "PermissionError", "os.environ['TZ'] is 'Asia/Tokyo'");
  // mktime reads TZ like tzset (POSIX), and strptime calls tzset.
  ExpectDenied("import os, time\nos.environ['TZ'] = 'Asia/Tokyo'\ntime.mktime(time.localtime())\n",
               "PermissionError", "time.mktime");
  ExpectDenied(R"PY(
import os, datetime
os.environ['TZ'] = 'Asia/Tokyo'
datetime.datetime.strptime('2024-01-01', '%Y-%m-%d')
)PY",
               "PermissionError", "time.tzset");
  // Unchanged, or changed back, TZ is fine, and the next execution starts clean.
  EXPECT_EQ(Result(R"PY(
import os, time, datetime
time.tzset()
os.environ['TZ'] = 'Asia/Tokyo'
os.environ.pop('TZ')
time.tzset()
result = [str(datetime.datetime.strptime('2024-01-01', '%Y-%m-%d')), time.mktime(time.gmtime(0)) >= -86400]
)PY"),
            json({"2024-01-01 00:00:00", true}));
}

// With the host's TZ set, the execution may set the same value (a no-op), not another
// one, and not remove it.
TEST_F(SharedStateTest, TzsetToTheHostsZoneIsAllowed) {
  const char* saved = getenv("TZ");
  std::string previous = saved != nullptr ? saved : "";
  setenv("TZ", "Europe/Berlin", 1);
  tzset();
  EXPECT_EQ(Result("import os, time\nos.environ['TZ'] = 'Europe/Berlin'\ntime.tzset()\n"
                   "result = list(time.tzname)\n"),
            json({"CET", "CEST"}));
  ExpectDenied(
      "import os, time\nos.environ['TZ'] = 'Europe/Berlin'\ndel os.environ['TZ']\n"
      "time.tzset()\n",
      "PermissionError", "os.environ['TZ'] is unset");
  if (saved != nullptr) {
    setenv("TZ", previous.c_str(), 1);
  } else {
    unsetenv("TZ");
  }
  tzset();
}

// 3.11 sets the int<->str digit limit in the main interpreter only: subinterpreters
// converted without limit (sys.get_int_max_str_digits() 0), unlike python3's 4300.
TEST_F(SharedStateTest, IntStrDigitLimitIsPython3s) {
  EXPECT_EQ(Result("import sys\nresult = sys.get_int_max_str_digits()\n"), 4300);
  ExpectDenied("str(10 ** 5000)\n", "ValueError", "Exceeds the limit (4300 digits)");
}

// SQLite's shared cache is the process's: a named in-memory database with
// cache=shared was read by every later execution while one kept it open.
TEST_F(SharedStateTest, SqliteSharedCacheIsRefused) {
  ExpectDenied(
      "import sqlite3\nsqlite3.connect('file:leakdb?mode=memory&cache=shared', uri=True)\n",
      "PermissionError", "cache=shared");
  EXPECT_EQ(Result("import sqlite3\nc = sqlite3.connect('file:own?mode=memory', uri=True)\n"
                   "c.execute('create table t(x)')\nresult = 1\n"),
            1);
}

}  // namespace
}  // namespace pyhost

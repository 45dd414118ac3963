// Programs as an LLM commonly writes them, run under the default policy (strict):
// they must run, and give exactly what plain python3 gives for the same code (the
// oracle: each program also runs in /usr/bin/python3, as __main__, with stdin at its
// end and the environment strict gives: TMPDIR and HOME in WORK_DIR). Issue 7, item
// 20: asyncio, __future__ annotations, dataclasses and typing, unittest and
// unittest.mock, zoneinfo, mimetypes, sqlite3 in memory and in WORK_DIR, pickle,
// compile() of generated code, input() at EOF, logging, argparse, locale fallbacks.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "pyhost/host.h"
#include "tests/security/shared_host.h"
#include "tests/testing/files.h"
#include "tests/testing/process.h"

namespace pyhost {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

// Runs `code` like pyhost runs a snippet, in plain python3; returns its `result`.
constexpr char kPython3Runner[] = R"PY(
import __main__, json, os, sys, tempfile
work, out = tempfile.mkdtemp(), tempfile.mkdtemp()
os.environ.clear()
os.environ.update(TMPDIR=work, HOME=work)
tempfile.tempdir = None
g = __main__.__dict__
g.update(WORK_DIR=work, OUTPUT_DIR=out, args={})
exec(compile(open(sys.argv[1]).read(), '<code>', 'exec'), g)
sys.__stdout__.write('\n@@RESULT@@' + json.dumps(g.get('result')) + '\n')
)PY";

class StrictProgramsTest : public SharedHostTest {
 protected:
  static std::string TempFile(const std::string& text) {
    return testutil::MakeTempFile("/tmp/strict_programs_", text);
  }

  // python3's `result` for `code`, or an error string.
  static json Python3Result(const std::string& code) {
    std::string program = TempFile(code), runner = TempFile(kPython3Runner);
    std::string command =
        std::string(PYHOST_PYTHON_EXECUTABLE) + " " + runner + " " + program + " </dev/null 2>&1";
    std::string output = testutil::RunShell(command).output;
    unlink(program.c_str());
    unlink(runner.c_str());
    size_t at = output.rfind("@@RESULT@@");
    if (at == std::string::npos) return "python3 failed: " + output;
    return json::parse(output.substr(at + 10), nullptr, /*allow_exceptions=*/false);
  }

  // Runs `code` under strict (or `policy`), expects it to succeed with python3's
  // result; returns it.
  static json RunLikePython3(const std::string& code, const char* policy = "strict") {
    ExecRequest request;
    request.code = code;
    request.policy = *NamedPolicy(policy);
    absl::StatusOr<ExecResult> r = host_->Execute(request);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return nullptr;
    EXPECT_TRUE(r->ok) << r->ToJson().dump();
    json expected = Python3Result(code);
    EXPECT_EQ(r->result, expected) << "pyhost strict and python3 differ";
    last_stderr_ = r->stderr_stream.text;
    return r->result;
  }

  static std::string last_stderr_;
};
std::string StrictProgramsTest::last_stderr_;

// The socket waits made in slices (guards/socket_waits.h) answer as python3's: data,
// partial and whole sends, errors, timeouts, connect's results.
TEST_F(StrictProgramsTest, SocketOperationsAnswerAsPython3) {
  json r = RunLikePython3(R"PY(
import socket, threading
out = []
def attempt(f):
    try:
        return f()
    except Exception as e:
        return repr(e)
a, b = socket.socketpair()
sender = threading.Thread(target=b.sendall, args=(b'x' * 300000,))
sender.start()
got = 0
while got < 300000:
    got += len(a.recv(70000))
sender.join()
out.append(got)
buf = bytearray(4)
b.send(b'wxyz'); out.append([a.recv_into(buf, flags=0), bytes(buf).decode()])
b.send(b'pq'); out.append(a.recvfrom(2)[0].decode())
b.send(b'msg'); out.append(a.recvmsg(3)[0].decode())
b.send(b'into'); bufs = [bytearray(2), bytearray(2)]
out.append([a.recvmsg_into(iter(bufs))[0], [x.decode() for x in bufs]])
b.send(b'all'); out.append(a.recv(3, socket.MSG_WAITALL).decode())
b.send(b'pk'); out.append([a.recv(2, socket.MSG_PEEK).decode(), a.recv(2).decode()])
out.append(attempt(lambda: a.recv(-1)))
out.append(attempt(lambda: a.recv_into(bytearray(2), 5)))
out.append(attempt(lambda: a.send('text')))
out.append(attempt(lambda: a.sendall('text')))
out.append(attempt(lambda: a.recvmsg_into(5)))
out.append([attempt(lambda: a.recv(1, socket.MSG_DONTWAIT)), attempt(lambda: a.recv_into(bytearray(1), flags=socket.MSG_DONTWAIT))])
out.append([attempt(a.recv), attempt(lambda: a.recv(1, 'x')), attempt(lambda: a.recv(1, 2**40)), attempt(lambda: a.recv(1, -1))])
def failing():
    yield bytearray(4)
    raise ValueError('boom')
out.append(attempt(lambda: a.recvmsg_into(failing())))
dgram = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
out.append(attempt(dgram.accept))
out.append([a.send(b''), a.send(b'z' * 1000), len(b.recv(1000))])
a.settimeout(0.2)
out.append([attempt(lambda: a.recv(1)), attempt(lambda: a.recv_into(bytearray(1))), a.gettimeout()])
a.setblocking(False)
out.append(attempt(lambda: a.recv(1)))
b.close()
a.setblocking(True)
out.append(a.recv(5).decode())
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()
c = socket.socket(); out.append(c.connect(l.getsockname()))
s, _ = l.accept(); c.sendall(b'abc'); out.append(s.recv(3).decode())
out.append([c.gettimeout(), c.getblocking()])
out.append(socket.socket().connect_ex(('127.0.0.1', 1)))
out.append(attempt(lambda: socket.socket().connect(('127.0.0.1', 1))))
out.append(attempt(lambda: c.connect(l.getsockname())))
full = socket.socket(); full.bind(('127.0.0.1', 0)); full.listen(0)
held = [socket.socket() for i in range(4)]
for h in held:
    h.setblocking(False); h.connect_ex(full.getsockname())
t = socket.socket(); t.settimeout(0.3)
out.append([t.connect_ex(full.getsockname()), t.gettimeout()])
t = socket.socket(); t.settimeout(0.3)
out.append(attempt(lambda: t.connect(full.getsockname())))
l.settimeout(0.3); out.append(attempt(l.accept))
w = socket.socket(); w.settimeout(5); w.connect(l.getsockname())
out.append([attempt(lambda: w.connect(l.getsockname())), attempt(lambda: w.connect(l.getsockname()))])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('127.0.0.1', 0))
v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
out.append(v.sendto(b'dgram', u.getsockname()))
out.append(v.sendto(b'flags', 0, u.getsockname()))
out.append([u.recvfrom(10)[0].decode(), u.recv(10).decode()])
result = out
)PY",
                          "yolo");
  EXPECT_EQ(r.size(), 33u) << r.dump();
}

TEST_F(StrictProgramsTest, AsyncioTasksGatherQueuesAndTimeouts) {
  json r = RunLikePython3(R"PY(
import asyncio

async def square(i):
    await asyncio.sleep(0.001 * (5 - i))
    return i * i

async def producer(queue):
    for i in range(3):
        await queue.put(i)
    await queue.put(None)

async def consumer(queue, seen):
    while (item := await queue.get()) is not None:
        seen.append(item)

async def ticker():
    i = 0
    while True:
        yield i
        i += 1

async def main():
    out = {}
    tasks = [asyncio.create_task(square(i)) for i in range(5)]
    out['gather'] = await asyncio.gather(*tasks)
    queue, seen = asyncio.Queue(), []
    await asyncio.gather(producer(queue), consumer(queue, seen))
    out['queue'] = seen
    try:
        await asyncio.wait_for(asyncio.sleep(10), timeout=0.01)
    except asyncio.TimeoutError:
        out['timeout'] = True
    async with asyncio.TaskGroup() as group:
        a = group.create_task(square(2))
        b = group.create_task(square(3))
    out['taskgroup'] = [a.result(), b.result()]
    gen = ticker()
    out['agen'] = [await gen.__anext__() for _ in range(3)]
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    loop.call_later(0.001, future.set_result, 'called later')
    out['call_later'] = await future
    return out

result = asyncio.run(main())
)PY");
  EXPECT_EQ(r["gather"], json({0, 1, 4, 9, 16}));
  EXPECT_EQ(r["queue"], json({0, 1, 2}));
  EXPECT_EQ(r["timeout"], true);
  EXPECT_EQ(r["taskgroup"], json({4, 9}));
}

TEST_F(StrictProgramsTest, FutureAnnotationsDataclassesAndTyping) {
  json r = RunLikePython3(R"PY(
from __future__ import annotations
import dataclasses, json, typing
from dataclasses import dataclass, field
from typing import ClassVar, Generic, Literal, Optional, Protocol, TypedDict, TypeVar

T = TypeVar('T')

@dataclass(frozen=True, order=True)
class Point:
    x: int
    y: int = 0
    origin: ClassVar[Point]

@dataclass
class Box(Generic[T]):
    items: list[T] = field(default_factory=list)
    label: Optional[str] = None
    kind: Literal['a', 'b'] = 'a'

class Movie(TypedDict):
    title: str
    year: int

class Greeter(Protocol):
    def greet(self) -> str: ...

class English:
    def greet(self) -> str:
        return 'hello'

def use(g: Greeter) -> str:
    return g.greet()

Point.origin = Point(0, 0)
box = Box([Point(2, 1), Point(1, 2)])
result = {
    'fields': [f.name for f in dataclasses.fields(Point)],
    'hints': sorted(typing.get_type_hints(Point)),
    'box_hints': {k: str(v) for k, v in typing.get_type_hints(Box).items()},
    'sorted': [dataclasses.astuple(p) for p in sorted(box.items)],
    'asdict': dataclasses.asdict(box),
    'movie': typing.get_type_hints(Movie) == {'title': str, 'year': int},
    'protocol': use(English()),
    'annotation_is_string': Point.__annotations__['x'],
    'replace': dataclasses.astuple(dataclasses.replace(Point(1), y=5)),
}
)PY");
  EXPECT_EQ(r["fields"], json({"x", "y"}));  // ClassVar is not a field
  EXPECT_EQ(r["hints"], json({"origin", "x", "y"}));
  EXPECT_EQ(r["annotation_is_string"], "int");
}

TEST_F(StrictProgramsTest, UnittestAndMockOnTheProgramsOwnFunctions) {
  json r = RunLikePython3(R"PY(
import io, sys, unittest
from unittest import mock

def fetch_price(item):
    raise RuntimeError('no network here')

def total(items):
    return sum(fetch_price(i) for i in items)

class TotalTest(unittest.TestCase):
    @mock.patch('__main__.fetch_price', side_effect=lambda i: {'a': 2, 'b': 3}[i])
    def test_total(self, fake):
        self.assertEqual(total(['a', 'b']), 5)
        fake.assert_any_call('a')

    def test_magicmock(self):
        m = mock.MagicMock()
        m.method.return_value = 42
        self.assertEqual(m.method(1, k=2), 42)
        m.method.assert_called_once_with(1, k=2)

    async def test_async_mock(self):
        pass

    def test_fails(self):
        self.assertEqual(1, 2)

class AsyncTest(unittest.IsolatedAsyncioTestCase):
    async def test_async(self):
        fake = mock.AsyncMock(return_value=7)
        self.assertEqual(await fake(), 7)

stream = io.StringIO()
suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules['__main__'])
outcome = unittest.TextTestRunner(stream=stream, verbosity=0).run(suite)
main = unittest.main(module='__main__', exit=False, argv=['x'], testRunner=unittest.TextTestRunner(stream=io.StringIO()))
result = {'run': outcome.testsRun, 'failures': len(outcome.failures), 'errors': len(outcome.errors),
          'main_run': main.result.testsRun}
)PY");
  EXPECT_EQ(r["run"], 5);
  EXPECT_EQ(r["failures"], 1);
  EXPECT_EQ(r["errors"], 0);
}

TEST_F(StrictProgramsTest, ZoneinfoMimetypesAndLocaleFallbacks) {
  json r = RunLikePython3(R"PY(
import datetime, locale, mimetypes, zoneinfo
berlin = zoneinfo.ZoneInfo('Europe/Berlin')
summer = datetime.datetime(2024, 7, 1, 12, tzinfo=berlin)
winter = datetime.datetime(2024, 1, 1, 12, tzinfo=berlin)
try:
    zoneinfo.ZoneInfo('Not/AZone')
except zoneinfo.ZoneInfoNotFoundError:
    missing = 'ZoneInfoNotFoundError'
current = locale.setlocale(locale.LC_NUMERIC)
same = locale.setlocale(locale.LC_NUMERIC, current)   # a no-op
try:
    locale.setlocale(locale.LC_ALL, 'xx_XX.UTF-8')
    fallback = 'set'
except locale.Error:
    fallback = 'fell back'
result = {
    'summer': summer.isoformat(), 'winter': winter.isoformat(),
    'utc': summer.astimezone(zoneinfo.ZoneInfo('UTC')).isoformat(),
    'tokyo': winter.astimezone(zoneinfo.ZoneInfo('Asia/Tokyo')).strftime('%Y-%m-%d %H:%M %Z'),
    'missing': missing,
    'mime': [mimetypes.guess_type(n) for n in ('a.csv', 'b.json', 'c.tar.gz', 'd.png', 'e.unknownext')],
    'ext': mimetypes.guess_extension('application/pdf'),
    'locale_noop': same == current,
    'locale_fallback': fallback,
}
)PY");
  EXPECT_EQ(r["summer"], "2024-07-01T12:00:00+02:00");
  EXPECT_EQ(r["winter"], "2024-01-01T12:00:00+01:00");
  EXPECT_EQ(r["mime"][0], json({"text/csv", nullptr}));
  EXPECT_EQ(r["locale_noop"], true);
  EXPECT_EQ(r["locale_fallback"], "fell back");
}

TEST_F(StrictProgramsTest, Sqlite3InMemoryAndInWorkDir) {
  json r = RunLikePython3(R"PY(
import os, sqlite3
out = {}
db = sqlite3.connect(':memory:')
db.row_factory = sqlite3.Row
db.create_function('double', 1, lambda v: v * 2)
db.execute('create table t(id integer primary key, name text, score real)')
db.executemany('insert into t(name, score) values (?, ?)', [('a', 1.5), ('b', 2.5), ('c', None)])
out['rows'] = [dict(row) for row in db.execute('select * from t order by id')]
out['double'] = db.execute('select sum(double(coalesce(score, 0))) from t').fetchone()[0]
calls = []
db.set_authorizer(lambda action, *rest: calls.append(action) or sqlite3.SQLITE_OK)
db.execute('select name from t').fetchall()
out['own_authorizer_called'] = bool(calls)
db.set_authorizer(None)
path = os.path.join(WORK_DIR, 'data.db')
with sqlite3.connect(path) as disk:
    disk.execute('create table kv(k text primary key, v text)')
    disk.execute("insert into kv values ('x', '1')")
disk.close()
db.commit()
db.execute(f"attach database '{path}' as other")
cursor = db.execute('select v from other.kv')
out['attached'] = cursor.fetchall()[0][0]
cursor.close()
db.execute('detach other')
db.execute('create table copy as select name from t')
db.execute(f"vacuum into '{os.path.join(WORK_DIR, 'backup.db')}'")
out['vacuumed'] = sqlite3.connect(os.path.join(WORK_DIR, 'backup.db')).execute('select count(*) from copy').fetchone()[0]
backup = sqlite3.connect(':memory:')
db.backup(backup)
out['backup'] = backup.execute('select count(*) from t').fetchone()[0]
# (A named in-memory database with cache=shared is refused under strict: SQLite's shared
# cache is the whole process's, so other executions would see it. shared_state_test.)
out['uri_in_work_dir'] = sqlite3.connect('file:' + path + '?mode=ro', uri=True).execute('select k from kv').fetchone()[0]
with sqlite3.connect(os.path.join(WORK_DIR, 'wal.db')) as wal:
    out['journal'] = wal.execute('pragma journal_mode=wal').fetchone()[0]
    wal.execute('create table w(a)')
out['files'] = sorted(f for f in os.listdir(WORK_DIR) if f.endswith('.db'))
try:
    db.execute('select * from nope')
except sqlite3.OperationalError as e:
    out['error'] = str(e)
result = out
)PY");
  EXPECT_EQ(r["double"], 8.0);
  EXPECT_EQ(r["attached"], "1");
  EXPECT_EQ(r["vacuumed"], 3);
  EXPECT_EQ(r["journal"], "wal");
  EXPECT_EQ(r["own_authorizer_called"], true);
}

TEST_F(StrictProgramsTest, PickleAndCopyRoundTrips) {
  json r = RunLikePython3(R"PY(
import copy, dataclasses, enum, os, pickle
from collections import OrderedDict, defaultdict, namedtuple

class Color(enum.Enum):
    RED = 1

@dataclasses.dataclass
class Order:
    id: int
    lines: list
    color: Color = Color.RED

Pair = namedtuple('Pair', 'a b')
data = {'order': Order(1, [Pair(1, 2)]), 'od': OrderedDict(a=1), 'dd': defaultdict(int, b=2),
        'set': {1, 2}, 'bytes': b'\x00\xff', 'nested': [[1, (2, 3)], {'k': None}], 'big': 2 ** 100}
out = {}
for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
    out.setdefault('round_trips', []).append(pickle.loads(pickle.dumps(data, protocol)) == data)
out['deepcopy'] = copy.deepcopy(data) == data
with open(os.path.join(WORK_DIR, 'data.pkl'), 'wb') as f:
    pickle.dump(data, f)
with open(os.path.join(WORK_DIR, 'data.pkl'), 'rb') as f:
    out['file'] = pickle.load(f)['order'].lines[0].b
try:
    pickle.loads(b'not a pickle')
except pickle.UnpicklingError as e:
    out['bad'] = type(e).__name__
result = out
)PY");
  EXPECT_EQ(r["round_trips"], json(std::vector<bool>(6, true)));
  EXPECT_EQ(r["file"], 2);
}

TEST_F(StrictProgramsTest, GeneratedCodeStdinAndCommandLineTools) {
  json r = RunLikePython3(R"PY(
import argparse, ast, codecs, locale, logging, os, sys, types
source = 'def area(w, h):\n    return w * h\n'
namespace = {}
exec(compile(source, 'generated.py', 'exec'), namespace)
tree = ast.parse(source)
tree.body[0].name = 'area2'
exec(compile(tree, os.path.join(WORK_DIR, 'gen.py'), 'exec'), namespace)
fn = types.FunctionType(compile('lambda: 7', 'made.py', 'eval').co_consts[0], {})
def gen():
    yield 1
gen.__code__ = gen.__code__.replace(co_name='renamed')
try:
    input('name? ')
    got = 'read'
except EOFError:
    got = 'EOFError'
parser = argparse.ArgumentParser(prog='tool')
parser.add_argument('--count', type=int, default=1)
parser.add_argument('names', nargs='*')
options = parser.parse_args(['--count', '3', 'a', 'b'])
logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
log = logging.getLogger('tool')
log.info('working on %d', options.count)
handler = logging.FileHandler(os.path.join(WORK_DIR, 'tool.log'))
log.addHandler(handler)
log.warning('to the file')
handler.close()
with open(os.path.join(WORK_DIR, 'text.txt'), 'w') as f:
    f.write('naïve café ✓\n')
with open(os.path.join(WORK_DIR, 'text.txt')) as f:
    text = [f.read(), codecs.lookup(f.encoding).name]
result = {
    'text_file': text, 'preferred': codecs.lookup(locale.getpreferredencoding(False)).name,
    'generated': namespace['area'](3, 4), 'from_ast': namespace['area2'](2, 5), 'function': fn(),
    'renamed': gen.__code__.co_name, 'input': got, 'stdin': sys.stdin.read(),
    'stdin_readline': sys.stdin.readline(), 'args': [options.count, options.names],
    'log_file': open(os.path.join(WORK_DIR, 'tool.log')).read(),
}
)PY");
  EXPECT_EQ(r["text_file"], json({"naïve café ✓\n", "utf-8"}));
  EXPECT_EQ(r["generated"], 12);
  EXPECT_EQ(r["input"], "EOFError");
  EXPECT_EQ(r["stdin"], "");
  EXPECT_THAT(last_stderr_, HasSubstr("INFO working on 3"));
}

TEST_F(StrictProgramsTest, DoctestFindsTheProgramsFunctions) {
  json r = RunLikePython3(R"PY(
import doctest, io, contextlib
def add(a, b):
    """
    >>> add(2, 3)
    5
    >>> add(1, 1)
    3
    """
    return a + b
with contextlib.redirect_stdout(io.StringIO()):
    outcome = doctest.testmod()
result = [outcome.attempted, outcome.failed]
)PY");
  EXPECT_EQ(r, json({2, 1}));
}

// The functions pyhost replaced print, pickle and introspect as the originals do.
TEST_F(StrictProgramsTest, ReplacedFunctionsLookLikeTheOriginals) {
  json r = RunLikePython3(R"PY(
import builtins, inspect, os, pickle, sys, time
functions = [open, __import__, os.close, os.write, os.chdir, os.umask, sys.setrecursionlimit,
             time.clock_settime]
result = {
    'repr': [repr(f) for f in functions],
    'module': [f.__module__ for f in functions],
    'pickle': [pickle.loads(pickle.dumps(f)) is f for f in functions],
    'signature': [str(inspect.signature(f)) for f in (open, os.close, os.write)],
    'doc': os.close.__doc__,
    'builtins': sorted(n for n, f in vars(builtins).items()
                       if callable(f) and type(f).__name__ == 'builtin_function_or_method'
                       and pickle.loads(pickle.dumps(f)) is not f),
}
)PY");
  EXPECT_EQ(r["repr"][0], "<built-in function open>");
  EXPECT_EQ(r["builtins"], json::array());
}

// What stays refused is refused loudly, with the type the code already handles.
TEST_F(StrictProgramsTest, RefusalsAreLoud) {
  ExecRequest request;
  request.code = R"PY(
import concurrent.futures, locale, os, sqlite3
out = {}
try:
    with concurrent.futures.ThreadPoolExecutor() as pool:
        pool.submit(print, 'x').result()
except PermissionError as e:
    out['threads'] = str(e)
try:
    locale.setlocale(locale.LC_ALL, 'C.UTF-8' if locale.setlocale(locale.LC_ALL) != 'C.UTF-8' else 'C')
except locale.Error as e:
    out['locale'] = [type(e).__name__, isinstance(e, PermissionError), str(e)]
db = sqlite3.connect(':memory:')
try:
    db.execute("attach database '/tmp/outside.db' as x")
except sqlite3.DatabaseError as e:
    out['attach'] = str(e)
try:
    os.fork()
except RuntimeError as e:
    out['fork'] = str(e)
result = out
)PY";
  absl::StatusOr<ExecResult> r = host_->Execute(request);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->ok) << r->ToJson().dump();
  EXPECT_THAT(r->result["threads"].get<std::string>(), HasSubstr("policy 'strict'"));
  EXPECT_EQ(r->result["locale"][0], "PermissionError");
  EXPECT_EQ(r->result["locale"][1], true);
  EXPECT_THAT(r->result["locale"][2].get<std::string>(), HasSubstr("locale.setlocale"));
  EXPECT_EQ(r->result["attach"], "not authorized");
  EXPECT_THAT(
      r->stderr_stream.text,
      HasSubstr("SQLite statement denied by pyhost policy 'strict': ATTACH '/tmp/outside.db'"));
  EXPECT_THAT(r->result["fork"].get<std::string>(),
              HasSubstr("os.fork denied by pyhost policy 'strict'"));
}

}  // namespace
}  // namespace pyhost

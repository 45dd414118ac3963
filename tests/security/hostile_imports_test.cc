// Hostile cases, imports and modules: reaching a module the policy refuses (through
// __subclasses__, sys.modules, modules the stdlib imported, the import machinery,
// extension loaders and _imp, pickle), and the stdlib work strict allows.
#include "tests/security/hostile_fixture.h"

namespace pyhost::hostile {

std::vector<Case> ImportCases() {
  return {
      // ---- __subclasses__ walks ----------------------------------------------------
      Perm("WrapCloseGlobalsSystem", R"PY(
g = _cls('_wrap_close').__init__.__globals__
g['system']('touch ' + args['canary'])
)PY",
           {"os.system denied by pyhost policy 'strict'"}),
      Perm("WrapCloseGlobalsFork", R"PY(
g = _cls('_wrap_close').__init__.__globals__
if g['fork']() == 0:
    g['_exit'](0)
)PY",
           {"os.fork denied by pyhost policy 'strict'"}),
      Perm("WrapCloseGlobalsOpenOutside", R"PY(
g = _cls('_wrap_close').__init__.__globals__
g['open'](args['canary'], g['O_WRONLY'] | g['O_CREAT'])
)PY",
           {"outside the writable paths"}),
      Denied("WrapCloseGlobalsExit", R"PY(
g = _cls('_wrap_close').__init__.__globals__
g['_exit'](7)
)PY",
             {"SystemExit"}, {"7"})
          .Isolated(),
      // subprocess is the stdlib's to import (asyncio does); starting the process is refused.
      Perm("CatchWarningsSysModulesOsPopen", R"PY(
import warnings
sys = _cls('catch_warnings').__init__.__globals__['sys']
sys.modules['os'].popen('touch ' + args['canary']).read()
)PY",
           {"subprocess.Popen denied by pyhost policy 'strict'"}),
      FixedEscape("BuiltinImporterLoadModuleForkExec", R"PY(
import os
m = _cls('BuiltinImporter').load_module('_posixsubprocess')
r, w = os.pipe()
pid = m.fork_exec([b'/bin/sh', b'-c', ('touch ' + args['canary']).encode()], [b'/bin/sh'], True,
                  (w,), None, None, -1, -1, -1, -1, -1, -1, r, w, False, False, -1, None, None,
                  None, -1, None, False)
os.waitpid(pid, 0)
)PY"),
      FixedEscape("BuiltinImporterLoadModuleFreshPosix", R"PY(
import sys
del sys.modules['posix']
m = _cls('BuiltinImporter').load_module('posix')
m.write(args['pipe_fd'], PWN.encode())
)PY"),
      FixedEscape("ImpCreateBuiltinFreshPosixWritesHostPipe", R"PY(
posix = _fresh_builtin('posix')
posix.write(args['pipe_fd'], PWN.encode())
)PY"),
      FixedEscape("ImpCreateBuiltinFreshPosixLeaksHostEnviron", R"PY(
posix = _fresh_builtin('posix')
result = {k.decode(): v.decode() for k, v in posix.environ.items()}
)PY"),
      FixedEscape("ImpCreateBuiltinFreshThreadStartsThread", R"PY(
import time
thread = _fresh_builtin('_thread')
box = []
thread.start_new_thread(box.append, (PWN,))
time.sleep(0.05)
result = box
)PY"),
      FixedEscape("ImpCreateBuiltinFreshSignalMasksHostThread", R"PY(
signal = _fresh_builtin('_signal')
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
)PY"),
      FixedEscape("ImpCreateBuiltinFaulthandlerSigsegv", R"PY(
fh = _bootstrap()['_imp'].create_builtin(_Spec('faulthandler'))
fh._sigsegv()
)PY")
          .Isolated(),
      Perm("HardenedImpCreateBuiltinPosixRefused", R"PY(
import sys
posix = sys.modules['_imp'].create_builtin(_Spec('posix'))
posix.write(args['pipe_fd'], PWN.encode())
)PY",
           {"cannot be created again", "only importlib's own module specs"}),
      Perm("ImpCreateBuiltinRealSpecPosixRefused", R"PY(
b = _bootstrap()
posix = b['_imp'].create_builtin(b['ModuleSpec']('posix', _cls('BuiltinImporter'), origin='built-in'))
b['_imp'].exec_builtin(posix)
posix.write(args['pipe_fd'], PWN.encode())
)PY",
           {"cannot be created again"}),
      Perm("HardenedImpExecBuiltinPosixRefused", R"PY(
import sys
sys.modules['_imp'].exec_builtin(sys.modules['posix'])
sys.modules['posix'].write(args['pipe_fd'], PWN.encode())
)PY",
           {"cannot be executed again"}),
      Imp("ImportlibReloadPosix", R"PY(
import importlib, posix
importlib.reload(posix)
)PY"),
      Via("ImportlibReloadPosixKeepsGuards", R"PY(
import sys
_reach('importlib').reload(sys.modules['posix'])
sys.modules['posix'].write(args['pipe_fd'], PWN.encode())
)PY",
          {"os.write is not available in pyhost"}),

      // ---- extension loaders and _imp: fresh copies of built-in modules ------------------

      FixedEscape("CreateDynamicLoadsFreshPosixUnderAllowedName", R"PY(
# An extension "module" named like an allowed one ('os.*'), whose init function is
# libpython's own PyInit_posix (the last part of the name picks the init function).
libpython = '/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0'  # Debian's: the one pyhost links
loader = _cls('ExtensionFileLoader')('os.posix', libpython)
spec = _bootstrap()['ModuleSpec']('os.posix', loader, origin=libpython)
posix = loader.create_module(spec)
posix.write(args['pipe_fd'], PWN.encode())
)PY"),

      FixedEscape("CreateDynamicFreshPosixLeaksHostEnviron", R"PY(
libpython = '/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0'
loader = _cls('ExtensionFileLoader')('os.posix', libpython)
posix = loader.create_module(_bootstrap()['ModuleSpec']('os.posix', loader, origin=libpython))
_bootstrap()['_imp'].exec_dynamic(posix)
result = {k.decode(): v.decode() for k, v in posix.environ.items()}
)PY"),
      FixedEscape("CreateDynamicPosixsubprocessSpawnsProcess", R"PY(
import os
libpython = '/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0'
loader = _cls('ExtensionFileLoader')('os._posixsubprocess', libpython)
m = loader.create_module(_bootstrap()['ModuleSpec']('os._posixsubprocess', loader, origin=libpython))
r, w = os.pipe()
pid = m.fork_exec([b'/bin/sh', b'-c', ('touch ' + args['canary']).encode()], [b'/bin/sh'], True,
                  (w,), None, None, -1, -1, -1, -1, -1, -1, r, w, False, False, -1, None, None,
                  None, -1, None, False)
import time
for _ in range(100):
    if os.path.exists(args['canary']):
        break
    time.sleep(0.01)
)PY"),
      FixedEscape("ImpAcquireLockHangsTheHost", R"PY(
_bootstrap()['_imp'].acquire_lock()
)PY")
          .Isolated(),

      // ---- sys.modules lookups ----------------------------------------------------------
      Perm("SysModulesOsSystem", R"PY(
import sys
sys.modules['os'].system('touch ' + args['canary'])
)PY",
           {"os.system denied"}),
      Denied("SysModulesPosixForkpty", R"PY(
import sys
sys.modules['posix'].forkpty()
)PY",
             {"PermissionError", "RuntimeError"},
             {"os.forkpty denied", "not supported for subinterpreters"}),
      Perm("SysModulesPosixWriteHostPipe", R"PY(
import sys
sys.modules['posix'].write(args['pipe_fd'], PWN.encode())
)PY",
           {"os.write is not available in pyhost"}),
      Imp("SysModulesSubprocessAbsent", R"PY(
import sys
sp = sys.modules.get('subprocess') or __import__('subprocess')
sp.run(['touch', args['canary']])
)PY"),

      // ---- modules reached transitively -------------------------------------------------
      Perm("RandomOsSystem", R"PY(
import random
random._os.system('touch ' + args['canary'])
)PY",
           {"os.system denied"}),
      Perm("TempfileOsPosixSpawn", R"PY(
import tempfile
tempfile._os.posix_spawn('/bin/sh', ['sh', '-c', 'touch ' + args['canary']], {})
)PY",
           {"os.posix_spawn denied"}),
      Perm("ShutilOsFork", R"PY(
import shutil
if shutil.os.fork() == 0:
    shutil.os._exit(0)
)PY",
           {"os.fork denied"}),
      Perm("TempfileOsOpenOutside", R"PY(
import tempfile
os = tempfile._os
os.write(os.open(args['canary'], os.O_WRONLY | os.O_CREAT), PWN.encode())
)PY",
           {"outside the writable paths"}),
      Perm("ShutilOsExecv", R"PY(
import shutil
shutil.os.execv('/bin/sh', ['sh', '-c', 'touch ' + args['canary']])
)PY",
           {"os.exec denied"}),
      Perm("RandomOsKillHostChild", R"PY(
import random
random._os.kill(args['child_pid'], 9)
)PY",
           {"os.kill denied"}),

      // ---- the import machinery ---------------------------------------------------------
      Imp("ReplacedImportWithBootstrapStillGated", R"PY(
import builtins
builtins.__import__ = _bootstrap()['__import__']
import socket
)PY"),
      Imp("MetaPathClearedThenImport", R"PY(
import sys
sys.meta_path.clear()
import mmap
)PY"),
      Imp("GateRemovedGcdImport", R"PY(
import sys
sys.meta_path[:] = [m for m in sys.meta_path if type(m).__name__ != 'ImportGate']
_bootstrap()['_gcd_import']('mmap')
)PY"),
      Imp("DunderImportCtypes", "__import__('ctypes')\n"),
      Imp("BuiltinsDunderImportMultiprocessing",
          "import builtins\nbuiltins.__import__('multiprocessing')\n"),
      Imp("BootstrapDunderImportPosixsubprocess",
          "_bootstrap()['__import__']('_posixsubprocess')\n"),
      Imp("ImportlibImportModuleSocket", "import importlib\nimportlib.import_module('socket')\n"),
      Imp("ImportSocket", "import socket\n"),
      Imp("ImportMmap", "import mmap\n"),
      Imp("ImportXxsubinterpreters", "import _xxsubinterpreters\n", {"never allowed in pyhost"}),
      Imp("ImportFaulthandler", "import faulthandler\nfaulthandler._sigsegv()\n",
          {"never allowed in pyhost"})
          .Isolated(),
      FixedEscape("StdlibCallbackImportsUnlistedModule", R"PY(
import sys
_reach('select')
result = PWN + ' imported select' if 'select' in sys.modules else 'refused'
)PY"),
      FixedEscape("DbmOpenCreatesOutsideFile", R"PY(
db = _reach('_dbm').open(args['canary'], 'c')
db[b'k'] = PWN.encode()
db.close()
)PY"),

      // ---- pickle under strict: what a callable does is governed as if the code called it --
      Perm("PickleOsSystem", R"PY(
import pickle
pickle.loads(b"cos\nsystem\n(S'touch %s'\ntR." % args['canary'].encode())
)PY",
           {"os.system denied by pyhost policy 'strict'"}),
      Imp("PicklePopenAfterAsyncioLoadedSubprocess", R"PY(
import asyncio, pickle, sys
assert 'subprocess' in sys.modules
pickle.loads(b"csubprocess\nPopen\n((S'touch'\nS'%s'\nltR." % args['canary'].encode())
)PY"),
      Imp("PickleForkExec", R"PY(
import pickle
pickle.loads(b"c_posixsubprocess\nfork_exec\n(tR.")
)PY"),
      Perm("ForkExecThroughAsyncioSubprocess", R"PY(
import asyncio, sys
sys.modules['subprocess']._fork_exec(['/bin/sh'], [b'/bin/sh'], True, (), None, None,
                                     -1, -1, -1, -1, -1, -1, -1, -1, False, False, None,
                                     None, None, -1, None, False)
)PY",
           {"fork_exec denied by pyhost policy 'strict': processes are not allowed"}),
  };
}

TEST_F(HostileTest, BroadStdlibWorkloadSucceedsUnderStrict) {
  ExecResult r = Run(*host_, R"PY(
import json, re, math, statistics, decimal, fractions, datetime, collections, itertools
import functools, hashlib, random, textwrap, string, heapq, bisect, base64, csv, io
import dataclasses, enum, typing, uuid, zlib, difflib, unicodedata, tempfile, pathlib
import traceback, warnings, os
out = {}
out['json'] = json.loads(json.dumps({'a': [1, 2]}))
out['re'] = re.findall(r'\d+', 'a1b22c333')
out['math'] = math.isqrt(10**6)
out['statistics'] = statistics.mean([1, 2, 3, 4])
out['decimal'] = str(decimal.Decimal('1.1') + decimal.Decimal('2.2'))
out['fractions'] = str(fractions.Fraction(1, 3) * 3)
out['datetime'] = (datetime.date(2024, 2, 28) + datetime.timedelta(days=1)).isoformat()
out['collections'] = collections.Counter('abracadabra').most_common(1)[0][0]
out['itertools'] = len(list(itertools.permutations(range(4))))
out['functools'] = functools.reduce(lambda a, b: a * b, range(1, 6))
out['hashlib'] = hashlib.sha256(b'abc').hexdigest()[:8]
random.seed(7)
out['random'] = 0 <= random.random() < 1
out['textwrap'] = textwrap.wrap('word ' * 10, 12)[0]
out['string'] = string.Template('$x!').substitute(x='hi')
out['heapq'] = heapq.nsmallest(2, [5, 1, 4])
out['bisect'] = bisect.bisect([1, 3, 5], 4)
out['base64'] = base64.b64encode(b'hi').decode()
buffer = io.StringIO()
csv.writer(buffer).writerow(['a', 'b,c'])
out['csv'] = next(csv.reader(io.StringIO(buffer.getvalue())))
@dataclasses.dataclass
class Point:
    x: int
    y: int = 2
out['dataclasses'] = dataclasses.asdict(Point(1))
class Color(enum.Enum):
    RED = 1
out['enum'] = Color.RED.name
out['typing'] = typing.get_type_hints(Point)['x'].__name__
out['uuid'] = len(str(uuid.uuid4()))
out['zlib'] = zlib.decompress(zlib.compress(b'abc' * 10))[:3].decode()
out['difflib'] = list(difflib.unified_diff(['a'], ['b'], lineterm=''))[-1]
out['unicodedata'] = unicodedata.name('\u00e9')
with tempfile.NamedTemporaryFile('w', delete=False) as f:
    f.write('temp')
out['tempfile_in_work_dir'] = os.path.realpath(f.name).startswith(os.path.realpath(WORK_DIR))
p = pathlib.Path(OUTPUT_DIR) / 'sub'
p.mkdir()
(p / 'a.txt').write_text('hello')
out['pathlib'] = (p / 'a.txt').read_text()
try:
    1 / 0
except ZeroDivisionError:
    out['traceback'] = traceback.format_exc().strip().splitlines()[-1]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    warnings.warn('careful')
out['warnings'] = str(caught[0].message)
warnings.warn('to stderr')
result = out
)PY");
  ASSERT_TRUE(r.ok) << r.ToJson().dump();
  EXPECT_EQ(r.result, json({{"json", {{"a", {1, 2}}}},
                            {"re", {"1", "22", "333"}},
                            {"math", 1000},
                            {"statistics", 2.5},
                            {"decimal", "3.3"},
                            {"fractions", "1"},
                            {"datetime", "2024-02-29"},
                            {"collections", "a"},
                            {"itertools", 24},
                            {"functools", 120},
                            {"hashlib", "ba7816bf"},
                            {"random", true},
                            {"textwrap", "word word"},
                            {"string", "hi!"},
                            {"heapq", {1, 4}},
                            {"bisect", 2},
                            {"base64", "aGk="},
                            {"csv", {"a", "b,c"}},
                            {"dataclasses", {{"x", 1}, {"y", 2}}},
                            {"enum", "RED"},
                            {"typing", "int"},
                            {"uuid", 36},
                            {"zlib", "abc"},
                            {"difflib", "+b"},
                            {"unicodedata", "LATIN SMALL LETTER E WITH ACUTE"},
                            {"tempfile_in_work_dir", true},
                            {"pathlib", "hello"},
                            {"traceback", "ZeroDivisionError: division by zero"},
                            {"warnings", "careful"}}));
  EXPECT_THAT(r.stderr_stream.text, ::testing::HasSubstr("to stderr"));
  EXPECT_EQ(r.output.files, std::vector<std::string>{"sub/a.txt"});
  std::vector<std::string> problems;
  CheckNoSideEffects(r, problems);
  for (const std::string& p : problems) ADD_FAILURE() << p;
  if (!r.output.dir.empty()) RemoveTree(r.output.dir);
  Repair();
}

}  // namespace pyhost::hostile

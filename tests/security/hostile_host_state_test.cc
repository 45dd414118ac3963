// Hostile cases, the host's state: its file descriptors and the process-wide state
// (cwd, umask, ids, limits, recursion, threads, locale, hostname, environment), under
// strict and under yolo.
#include "tests/security/hostile_fixture.h"

namespace pyhost::hostile {

std::vector<Case> HostStateCases() {
  return {
      // ---- the host's file descriptors ----------------------------------------------------
      Perm("OsCloseHostPipe", "import os\nos.close(args['pipe_fd'])\n",
           {"os.close is not available in pyhost"}),
      Perm("OsCloserange", "import os\nos.closerange(3, 1024)\n",
           {"os.closerange is not available in pyhost"}),
      Perm("OsDup2OntoStdout", "import os\nr, w = os.pipe()\nos.dup2(r, 1)\n",
           {"os.dup2 is not available in pyhost"}),
      Perm("OsDup2OntoHostPipe", "import os\nr, w = os.pipe()\nos.dup2(w, args['pipe_fd'])\n",
           {"os.dup2 is not available in pyhost"}),
      Perm("OsWriteStderr", "import os\nos.write(2, PWN.encode())\n",
           {"os.write is not available in pyhost"}),
      Perm("OsWriteHostPipe", "import os\nos.write(args['pipe_fd'], PWN.encode())\n",
           {"os.write is not available in pyhost"}),
      Perm("OsReadHostSecretFd", "import os\nresult = os.read(args['secret_fd'], 100).decode()\n",
           {"os.read is not available in pyhost"}),
      Perm("OsPreadHostSecretFd",
           "import os\nresult = os.pread(args['secret_fd'], 100, 0).decode()\n",
           {"os.pread is not available in pyhost"}),
      Perm("OsLseekHostSecretFd", "import os\nos.lseek(args['secret_fd'], 5, 0)\n",
           {"os.lseek is not available in pyhost"}),
      Perm("OsFdopenHostPipe", "import os\nos.fdopen(args['pipe_fd'], 'w').write(PWN)\n",
           {"file descriptors the code did not open belong to the host"}),
      Perm("OpenIntHostSecretFd", "result = open(args['secret_fd']).read()\n",
           {"file descriptors the code did not open belong to the host"}),
      Perm("OsDupHostPipe", "import os\nfd = os.dup(args['pipe_fd'])\nos.write(fd, PWN.encode())\n",
           {"os.dup is not available in pyhost"}),
      Perm("OsFchmodHostLog", "import os\nos.fchmod(args['log_fd'], 0o777)\n",
           {"os.fchmod is not available in pyhost"}),
      Perm("OsFtruncateHostLog", "import os\nos.ftruncate(args['log_fd'], 4096)\n",
           {"os.ftruncate is not available in pyhost"}),
      Perm("OsChmodFdHostLog", "import os\nos.chmod(args['log_fd'], 0o777)\n",
           {"file descriptors the code did not open belong to the host"}),
      Perm("OsSetBlockingHostPipe", "import os\nos.set_blocking(args['pipe_fd'], False)\n",
           {"os.set_blocking is not available in pyhost"}),
      FixedEscape("SpliceIntoHostPipe", R"PY(
import os
r, w = os.pipe()
os.write(w, PWN.encode())
os.splice(r, args['pipe_fd'], len(PWN))
)PY"),
      FixedEscape("SendfileFromHostSecretFd", R"PY(
import os
r, w = os.pipe()
n = os.sendfile(w, args['secret_fd'], 0, 4096)
result = os.read(r, n).decode()
)PY"),
      FixedEscape("CopyFileRangeIntoHostLog", R"PY(
import os
fd = os.open(WORK_DIR + '/src', os.O_RDWR | os.O_CREAT)
os.write(fd, PWN.encode())
os.lseek(fd, 0, 0)
os.copy_file_range(fd, args['log_fd'], len(PWN))
)PY"),
      FixedEscape("SocketModuleCloseHostFd", R"PY(
_socket().close(args['pipe_fd'])
)PY"),
      FixedEscape("TermiosOnHostPty", R"PY(
termios = _reach('termios')
attrs = termios.tcgetattr(args['pty_fd'])
attrs[3] &= ~termios.ECHO
termios.tcsetattr(args['pty_fd'], termios.TCSANOW, attrs)
)PY"),

      // ---- a replaced function's __self__ is an empty module: no way to the original ----
      Perm("GuardSelfGivesNoOriginal", R"PY(
import os
state = os.write.__self__
found = [getattr(state, n) for n in dir(state) if callable(getattr(state, n, None))
         and not n.startswith('__')]
for f in found:
    f(args['pipe_fd'], PWN.encode())
state.__dict__.clear()
os.write(args['pipe_fd'], PWN.encode())
)PY",
           {"only on file descriptors the code opened itself"}),

      // ---- process-wide state -------------------------------------------------------------
      Perm("OsChdir", "import os\nos.chdir('/')\n", {"os.chdir"}),
      Perm("OsFchdir", R"PY(
import os
os.fchdir(os.open(WORK_DIR, os.O_RDONLY))
)PY",
           {"os.fchdir is not available in pyhost"}),
      Perm("OsChdirViaSupportsFd", R"PY(
import os
chdir = [f for f in os.supports_fd if f.__name__ == 'chdir'][0]
chdir(WORK_DIR)
)PY",
           {"os.chdir is not available in pyhost"}),  // the set holds the guard, not the original
      Perm("OsUmask", "import os\nos.umask(0o777)\n", {"os.umask is not available in pyhost"}),
      Perm("OsSetuid", "import os\nos.setuid(65534)\n", {"os.setuid is not available in pyhost"}),
      Perm("OsSetsid", "import os\nos.setsid()\n", {"os.setsid is not available in pyhost"}),
      Perm("OsNice", "import os\nos.nice(5)\n", {"os.nice is not available in pyhost"}),
      Perm("OsSchedSetaffinity", "import os\nos.sched_setaffinity(0, {0})\n",
           {"os.sched_setaffinity is not available in pyhost"}),
      Imp("ResourceImportDenied",
          "import resource\nresource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))\n"),
      Via("ResourceSetrlimitViaStdlib", R"PY(
resource = _reach('resource')
resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))
)PY",
          {"resource.setrlimit denied"}),
      Via("ResourcePrlimitViaStdlib", R"PY(
import os
resource = _reach('resource')
resource.prlimit(os.getpid(), resource.RLIMIT_CORE, (0, 0))
)PY",
          {"resource.prlimit denied"}),
      Denied("SetRecursionLimitHuge", "import sys\nsys.setrecursionlimit(10**6)\n",
             {"RecursionError"}, {"above pyhost's cap"}),
      Denied("DeepRecursionAfterRaisingLimit", R"PY(
import sys
try:
    sys.setrecursionlimit(10**6)
except RecursionError:
    pass
def f(n):
    return f(n + 1) + 1
f(0)
)PY",
             {"RecursionError"}, {"maximum recursion depth"}),
      Denied("DeepRecursionThroughCCalls", R"PY(
class R:
    def __repr__(self):
        return repr(self)
repr(R())
)PY",
             {"RecursionError"}, {"maximum recursion depth"}),
      Perm("SetSwitchInterval", "import sys\nsys.setswitchinterval(1e-9)\n",
           {"sys.setswitchinterval is not available in pyhost"}),
      Perm("ThreadingThreadStart", R"PY(
threading = _threading()
threading.Thread(target=lambda: open(args['canary'], 'w')).start()
)PY",
           {"starting threads denied by pyhost policy 'strict'"}),
      Perm("ThreadingStartNewThread", R"PY(
_threading()._start_new_thread(print, ())
)PY",
           {"starting threads denied by pyhost policy 'strict'"}),
      Perm("ThreadInterruptMain", R"PY(
_threading().get_ident.__self__.interrupt_main()
)PY",
           {"interrupt_main is not available in pyhost"}),
      Perm("SysCurrentFrames", "import sys\nresult = len(sys._current_frames())\n",
           {"sys._current_frames denied"}),
      Via("MmapViaStdlib", "mmap = _reach('mmap')\nmmap.mmap(-1, 4096)\n",
          {"memory maps are not allowed"}),
      Via("CtypesViaStdlib", "_reach('ctypes').CDLL(None)\n", {}),
      Via("SqliteLoadExtension", R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
db.enable_load_extension(True)
db.load_extension('/usr/lib/x86_64-linux-gnu/libc.so.6')
)PY",
          {"native extensions cannot be loaded"}),
      FixedEscape("LocaleSetlocaleChangesHostProcess", R"PY(
import locale
locale.setlocale(locale.LC_NUMERIC, args['other_locale'])
)PY"),
      FixedEscape("SethostnameReachesKernel", R"PY(
_socket().sethostname('x' * 100)
)PY"),
      [] {
        Case c;
        c.name = "OsPutenvStaysInTheExecution";
        c.code = R"PY(
import os
os.putenv('PYHOST_HOSTILE_PLANTED', PWN)
os.environ['PYHOST_HOSTILE_PLANTED2'] = PWN
os.unsetenv('PATH')
os.environ.pop('HOME', None)
result = sorted(os.environ)
)PY";
        c.expect = Expect::kContained;
        return c;
      }(),

      // ---- yolo: "no rules; the host is still protected" -----------------------------------
      Denied("YoloOsExitStaysSystemExit", "import os\nos._exit(0)\n", {"SystemExit"}, {"0"})
          .WithPolicy("yolo")
          .Isolated(),
      Perm("YoloChdirRefused", "import os\nos.chdir('/')\n", {"os.chdir"}).WithPolicy("yolo"),
      Perm("YoloUmaskRefused", "import os\nos.umask(0)\n", {"os.umask is not available in pyhost"})
          .WithPolicy("yolo"),
      Perm("YoloKillOwnPid", "import os\nos.kill(os.getpid(), 12)\n",
           {"pyhost policy 'yolo'", "in pyhost"})
          .WithPolicy("yolo"),
  };
}

}  // namespace pyhost::hostile

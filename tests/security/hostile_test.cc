// The hostile-code corpus: code that tries to escape the sandbox or harm the host
// process, run through the public Host API under the default ("strict") policy, and a
// few under network allowlists and "yolo".
//
// Every hostile case asserts two things:
//   1. the denial: the execution failed with the expected exception type and a message
//      naming pyhost's rule or policy;
//   2. the absence of the side effect, checked from C++ outside the sandbox: no new file
//      in a directory the policy does not allow (canary), no secret token anywhere in the
//      ExecResult JSON, no connection on a loopback listener, the host's environment /
//      cwd / umask / signal dispositions and mask / rlimits / itimers / locale / hostname
//      / child processes unchanged, the host's own descriptors (a pipe, a deleted secret
//      file, a log file, a TCP connection, a pty, the listener) still open, the same
//      files, unwritten and unread; and the host still answers the next request.
//
// 55 of the tests reproduce escapes this suite found and the library has since closed
// (they were named BUG_* until they all passed; FixedEscape(...) builds those whose right
// answer is any denial naming the policy): they are regression cases, and pass; do not
// weaken them.
// Cases that would kill the whole test process if the guard failed (signals, aborts,
// crashes) run in a child process (a gtest "threadsafe" death test that must exit 0).
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <locale.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pyhost/host.h"

extern char** environ;

namespace pyhost {
namespace {

using json = nlohmann::json;

// --- small POSIX helpers -------------------------------------------------------------

std::string RandomToken(const char* prefix) {
  unsigned char bytes[12] = {};
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  urandom.read(reinterpret_cast<char*>(bytes), sizeof(bytes));
  std::string token = prefix;
  static const char* hex = "0123456789abcdef";
  for (unsigned char b : bytes) {
    token += hex[b >> 4];
    token += hex[b & 15];
  }
  return token;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

std::set<std::string> ListDir(const std::string& dir) {
  std::set<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.insert(name);
    }
    closedir(d);
  }
  return names;
}

void RemoveTree(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    for (const std::string& name : ListDir(path)) RemoveTree(path + "/" + name);
    rmdir(path.c_str());
  } else {
    unlink(path.c_str());
  }
}

bool PathExists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// Moves `fd` to the number `target` (close-on-exec), closing the original.
void MoveFd(int fd, int target) {
  ASSERT_GE(fd, 0) << strerror(errno);
  if (fd == target) return;
  ASSERT_EQ(dup3(fd, target, O_CLOEXEC), target) << strerror(errno);
  close(fd);
}

int ListenLoopback(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 16) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

int ConnectLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Connections waiting on a non-blocking listener (accepted and closed), after
// waiting up to `timeout_ms` for the first one.
int DrainConnections(int listener, int timeout_ms) {
  pollfd p{listener, POLLIN, 0};
  poll(&p, 1, timeout_ms);
  int count = 0;
  for (;;) {
    int c = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) break;
    ++count;
    close(c);
  }
  return count;
}

// Inodes of the listening TCP sockets this process holds, with their ports.
std::map<unsigned long, int> OwnListeningSockets() {
  std::set<unsigned long> own;
  for (const std::string& name : ListDir("/proc/self/fd")) {
    char target[256];
    ssize_t n = readlink(("/proc/self/fd/" + name).c_str(), target, sizeof(target) - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    unsigned long inode = 0;
    if (sscanf(target, "socket:[%lu]", &inode) == 1) own.insert(inode);
  }
  std::map<unsigned long, int> listening;
  for (const char* table : {"/proc/self/net/tcp", "/proc/self/net/tcp6"}) {
    std::istringstream lines(ReadFile(table));
    std::string line;
    std::getline(lines, line);  // header
    while (std::getline(lines, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout;
      unsigned long inode = 0;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode;
      if (state != "0A" || !own.count(inode)) continue;
      listening[inode] = static_cast<int>(std::stoul(local.substr(local.find(':') + 1), nullptr, 16));
    }
  }
  return listening;
}

// --- the host's state, as seen from outside the sandbox ------------------------------

std::atomic<int> g_sigusr2_count{0};

// The suite's temporary directory: a child process (isolated case) removes its own
// before it exits, since it never reaches TearDownTestSuite.
std::string* g_suite_root = nullptr;
void CountSigusr2(int) { g_sigusr2_count.fetch_add(1); }

// Fixed numbers for the descriptors the host owns (high, so never reused by Python).
constexpr int kPipeRead = 200;
constexpr int kPipeWrite = 201;      // passed to code as args['pipe_fd']
constexpr int kDeletedSecret = 202;  // args['secret_fd']: an unlinked file with a secret
constexpr int kLog = 203;            // args['log_fd']: a host file open for writing
constexpr int kConnClient = 204;     // args['conn_fd']: a connected TCP socket
constexpr int kConnServer = 205;
constexpr int kPtyMaster = 206;
constexpr int kPtySlave = 207;       // args['pty_fd']
constexpr int kListener = 208;       // args['port'] is its port
constexpr int kHostFds[] = {0, 1, 2, kPipeRead, kPipeWrite, kDeletedSecret, kLog,
                            kConnClient, kConnServer, kPtyMaster, kPtySlave, kListener};

struct FdIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  mode_t mode = 0;
  int access = -1;
  bool operator==(const FdIdentity& o) const {
    return dev == o.dev && ino == o.ino && mode == o.mode && access == o.access;
  }
};

std::optional<FdIdentity> Identity(int fd) {
  struct stat st;
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fstat(fd, &st) != 0) return std::nullopt;
  return FdIdentity{st.st_dev, st.st_ino, st.st_mode, flags & O_ACCMODE};
}

struct HostState {
  std::vector<std::string> env;
  std::string cwd;
  mode_t umask_value = 0;
  std::vector<std::pair<uintptr_t, int>> dispositions;
  std::string sigmask;
  std::vector<std::pair<rlim_t, rlim_t>> rlimits;
  std::vector<std::string> itimers;
  std::string locale;
  std::string hostname;
  std::map<int, std::optional<FdIdentity>> fds;
  std::string pty_attrs;
  off_t secret_offset = 0;
  std::set<std::string> outside;
  std::set<std::string> host_cwd;
};

std::string TermiosBytes(int fd) {
  termios t{};
  if (tcgetattr(fd, &t) != 0) return "tcgetattr failed";
  return absl::StrCat(t.c_iflag, "/", t.c_oflag, "/", t.c_cflag, "/", t.c_lflag, "/",
                      std::string(reinterpret_cast<const char*>(t.c_cc), sizeof(t.c_cc)));
}

// --- the snippets' toolbox ------------------------------------------------------------

// Prepended to every hostile snippet: ways to reach things that the code has no name for.
constexpr char kPrelude[] = R"PY(
def _classes():
    seen, stack = [], [object]
    while stack:
        for s in type.__subclasses__(stack.pop()):
            if s not in seen:
                seen.append(s)
                stack.append(s)
    return seen
def _cls(name):
    return [c for c in _classes() if c.__name__ == name][0]
def _bootstrap():
    return _cls('BuiltinImporter').create_module.__globals__
def _external():
    return _cls('SourceLoader').get_code.__globals__
def _reach(name):
    # A module by name, imported from a stdlib frame (contextlib calls the callback), so
    # that the import counts as the standard library's, not the code's.
    import sys, contextlib
    if name not in sys.modules:
        with contextlib.ExitStack() as stack:
            stack.callback(__import__, name)
    return sys.modules[name]
def _socket():
    try:
        import email.utils
        return email.utils.socket
    except (ImportError, AttributeError):
        return _reach('socket')
def _threading():
    import queue
    return queue.threading
class _Spec:
    def __init__(self, name):
        self.name = name
        self.origin = 'built-in'
def _fresh_builtin(name):
    imp = _bootstrap()['_imp']
    module = imp.create_builtin(_Spec(name))
    imp.exec_builtin(module)
    return module
PWN = 'PWN' + 'ED'
)PY";

// --- cases ----------------------------------------------------------------------------

enum class Expect {
  kDenied,     // fails with one of `types`, message containing one of `messages`
  kContained,  // succeeds (the operation is a documented no-op), no side effect
};

struct Case {
  std::string name;
  std::string code;
  std::vector<std::string> types;
  std::vector<std::string> messages;
  Expect expect = Expect::kDenied;
  std::string policy;  // "" strict, "yolo", "socket" (strict + import of socket)
  std::vector<std::string> allow_net;
  bool isolate = false;       // run in a child process (a failure could kill the host)
  std::string known_gap;      // non-empty: an escape pyhost does not stop yet (docs/security.md)
  std::string stderr_contains;  // non-empty: the denial's reason, which stderr must show
  int settle_ms = 0;          // isolated: time for a pending signal to arrive

  Case Net(std::vector<std::string> hosts) const {
    Case c = *this;
    c.allow_net = std::move(hosts);
    return c;
  }
  Case WithPolicy(std::string name) const {
    Case c = *this;
    c.policy = std::move(name);
    return c;
  }
  // Kept, but skipped with its reason: the escape is real and documented as a known
  // gap; the case is the reproduction to turn back on when it is closed.
  Case KnownGap(std::string why) const {
    Case c = *this;
    c.known_gap = std::move(why);
    return c;
  }
  Case Isolated(int settle = 0) const {
    Case c = *this;
    c.isolate = true;
    c.settle_ms = settle;
    return c;
  }
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// Message fragments naming pyhost's rules.
const std::vector<std::string> kPolicyWords = {"pyhost policy", "in pyhost", "policy 'strict'"};
const std::vector<std::string> kImportWords = {"not allowed by policy 'strict'",
                                               "is denied by policy 'strict'",
                                               "never allowed in pyhost"};
const std::vector<std::string> kImportOrPolicy = {"pyhost policy", "in pyhost", "policy 'strict'"};

Case Denied(std::string name, std::string code, std::vector<std::string> types,
            std::vector<std::string> messages) {
  Case c;
  c.name = std::move(name);
  c.code = std::move(code);
  c.types = std::move(types);
  c.messages = std::move(messages);
  return c;
}
Case Perm(std::string name, std::string code, std::vector<std::string> messages = kPolicyWords) {
  return Denied(std::move(name), std::move(code), {"PermissionError"}, std::move(messages));
}
Case Imp(std::string name, std::string code, std::vector<std::string> messages = kImportWords) {
  return Denied(std::move(name), std::move(code), {"ImportError", "ModuleNotFoundError"},
                std::move(messages));
}
// Reaching a module the policy refuses, then using it: refused either way.
Case Via(std::string name, std::string code, std::vector<std::string> messages) {
  messages.insert(messages.end(), kImportWords.begin(), kImportWords.end());
  return Denied(std::move(name), std::move(code),
                {"PermissionError", "ImportError", "ModuleNotFoundError"}, std::move(messages));
}
// SQLite refuses a statement its authorizer denies as it refuses any: with
// sqlite3.DatabaseError ("not authorized"), which code using SQLite handles; the
// reason, naming the policy, is on stderr.
Case SqliteDenied(std::string name, std::string code) {
  Case c = Denied(std::move(name), std::move(code), {"DatabaseError", "OperationalError"},
                  {"not authorized", "authorization denied"});
  c.stderr_contains = "SQLite statement denied by pyhost policy 'strict'";
  return c;
}
// A regression case of a fixed escape (one this suite found): the right answer, which
// the library now gives, is a denial naming the policy.
Case FixedEscape(std::string name, std::string code) {
  return Denied(std::move(name), std::move(code),
                {"PermissionError", "ImportError", "ModuleNotFoundError"}, kImportOrPolicy);
}

std::vector<Case> AllCases() {
  std::vector<Case> cases = {
      // ---- __subclasses__ walks ----------------------------------------------------
      Perm("WrapCloseGlobalsSystem", R"PY(
g = _cls('_wrap_close').__init__.__globals__
g['system']('touch ' + args['canary'])
)PY", {"os.system denied by pyhost policy 'strict'"}),
      Perm("WrapCloseGlobalsFork", R"PY(
g = _cls('_wrap_close').__init__.__globals__
if g['fork']() == 0:
    g['_exit'](0)
)PY", {"os.fork denied by pyhost policy 'strict'"}),
      Perm("WrapCloseGlobalsOpenOutside", R"PY(
g = _cls('_wrap_close').__init__.__globals__
g['open'](args['canary'], g['O_WRONLY'] | g['O_CREAT'])
)PY", {"outside the writable paths"}),
      Denied("WrapCloseGlobalsExit", R"PY(
g = _cls('_wrap_close').__init__.__globals__
g['_exit'](7)
)PY", {"SystemExit"}, {"7"}).Isolated(),
      // subprocess is the stdlib's to import (asyncio does); starting the process is refused.
      Perm("CatchWarningsSysModulesOsPopen", R"PY(
import warnings
sys = _cls('catch_warnings').__init__.__globals__['sys']
sys.modules['os'].popen('touch ' + args['canary']).read()
)PY", {"subprocess.Popen denied by pyhost policy 'strict'"}),
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
)PY").Isolated(),
      Perm("HardenedImpCreateBuiltinPosixRefused", R"PY(
import sys
posix = sys.modules['_imp'].create_builtin(_Spec('posix'))
posix.write(args['pipe_fd'], PWN.encode())
)PY", {"cannot be created again", "only importlib's own module specs"}),
      Perm("ImpCreateBuiltinRealSpecPosixRefused", R"PY(
b = _bootstrap()
posix = b['_imp'].create_builtin(b['ModuleSpec']('posix', _cls('BuiltinImporter'), origin='built-in'))
b['_imp'].exec_builtin(posix)
posix.write(args['pipe_fd'], PWN.encode())
)PY", {"cannot be created again"}),
      Perm("HardenedImpExecBuiltinPosixRefused", R"PY(
import sys
sys.modules['_imp'].exec_builtin(sys.modules['posix'])
sys.modules['posix'].write(args['pipe_fd'], PWN.encode())
)PY", {"cannot be executed again"}),
      Imp("ImportlibReloadPosix", R"PY(
import importlib, posix
importlib.reload(posix)
)PY"),
      Via("ImportlibReloadPosixKeepsGuards", R"PY(
import sys
_reach('importlib').reload(sys.modules['posix'])
sys.modules['posix'].write(args['pipe_fd'], PWN.encode())
)PY", {"os.write is not available in pyhost"}),

      // ---- gc heap walks ----------------------------------------------------------------
      // gc may be imported (collect() is the interpreter's own); walking the heap may not.
      Perm("GcGetObjectsDenied", "import gc\ngc.collect()\ngc.get_objects()\n",
           {"gc.get_objects denied by pyhost policy 'strict': heap walks reach the host's objects"}),
      Via("GcGetObjectsViaStdlib", R"PY(
gc = _reach('gc')
mods = [o for o in gc.get_objects() if type(o).__name__ == 'module' and o.__name__ == 'posix']
mods[0].system('touch ' + args['canary'])
)PY", {"heap walks reach the host's objects"}),
      Via("GcGetReferrersViaStdlib", R"PY(
import sys
gc = _reach('gc')
gc.get_referrers(sys.modules)
)PY", {"heap walks reach the host's objects"}),
      Via("GcGetReferentsViaStdlib", R"PY(
gc = _reach('gc')
gc.get_referents(_cls)
)PY", {"heap walks reach the host's objects"}),

      // ---- sys.modules lookups ----------------------------------------------------------
      Perm("SysModulesOsSystem", R"PY(
import sys
sys.modules['os'].system('touch ' + args['canary'])
)PY", {"os.system denied"}),
      Denied("SysModulesPosixForkpty", R"PY(
import sys
sys.modules['posix'].forkpty()
)PY", {"PermissionError", "RuntimeError"}, {"os.forkpty denied", "not supported for subinterpreters"}),
      Perm("SysModulesPosixWriteHostPipe", R"PY(
import sys
sys.modules['posix'].write(args['pipe_fd'], PWN.encode())
)PY", {"os.write is not available in pyhost"}),
      Imp("SysModulesSubprocessAbsent", R"PY(
import sys
sp = sys.modules.get('subprocess') or __import__('subprocess')
sp.run(['touch', args['canary']])
)PY"),

      // ---- modules reached transitively -------------------------------------------------
      Perm("RandomOsSystem", R"PY(
import random
random._os.system('touch ' + args['canary'])
)PY", {"os.system denied"}),
      Perm("TempfileOsPosixSpawn", R"PY(
import tempfile
tempfile._os.posix_spawn('/bin/sh', ['sh', '-c', 'touch ' + args['canary']], {})
)PY", {"os.posix_spawn denied"}),
      Perm("ShutilOsFork", R"PY(
import shutil
if shutil.os.fork() == 0:
    shutil.os._exit(0)
)PY", {"os.fork denied"}),
      Perm("TempfileOsOpenOutside", R"PY(
import tempfile
os = tempfile._os
os.write(os.open(args['canary'], os.O_WRONLY | os.O_CREAT), PWN.encode())
)PY", {"outside the writable paths"}),
      Perm("ShutilOsExecv", R"PY(
import shutil
shutil.os.execv('/bin/sh', ['sh', '-c', 'touch ' + args['canary']])
)PY", {"os.exec denied"}),
      Perm("RandomOsKillHostChild", R"PY(
import random
random._os.kill(args['child_pid'], 9)
)PY", {"os.kill denied"}),

      // ---- exec / eval / compile of strings ---------------------------------------------
      Perm("ExecStringSystem", R"PY(
exec("__import__('os').system('touch ' + c)", {'c': args['canary']})
)PY", {"os.system denied"}),
      Imp("EvalImportSubprocess", R"PY(
eval("__import__('subprocess')").run(['touch', args['canary']])
)PY"),
      Perm("CompileForgedStdlibFilename", R"PY(
code = compile("import socket\nsocket.socket().connect(('127.0.0.1', %d))" % args['port'],
               '/usr/lib/python3.11/os.py', 'exec')
exec(code)
)PY", {"may not claim to be a stdlib, frozen or pyhost module"}),
      Perm("CompileForgedFrozenFilename", R"PY(
exec(compile("import ctypes", '<frozen os>', 'exec'))
)PY", {"may not claim to be a stdlib, frozen or pyhost module"}),
      Perm("CompileForgedSupportFilename", R"PY(
exec(compile("import _posixsubprocess", '<pyhost_support>', 'exec'))
)PY", {"may not claim to be a stdlib, frozen or pyhost module"}),
      Perm("CompileForgedBytesFilename", R"PY(
exec(compile("import mmap", b'/usr/lib/python3.11/json/__init__.py', 'exec'))
)PY", {"may not claim to be a stdlib, frozen or pyhost module"}),

      // ---- code-object surgery ----------------------------------------------------------
      Perm("CodeReplaceForgedFilename", R"PY(
def f():
    import socket
    return socket
f.__code__.replace(co_filename='/usr/lib/python3.11/json/decoder.py')
)PY", {"code objects cannot be built or altered"}),
      Perm("TypesCodeTypeConstructor", R"PY(
import types
c = compile('import os; os.system("touch " + args["canary"])', '<x>', 'exec')
types.CodeType(c.co_argcount, c.co_posonlyargcount, c.co_kwonlyargcount, c.co_nlocals,
               c.co_stacksize, c.co_flags, c.co_code, c.co_consts, c.co_names, c.co_varnames,
               '/usr/lib/python3.11/os.py', c.co_name, c.co_qualname, c.co_firstlineno,
               c.co_linetable, c.co_exceptiontable)
)PY", {"code objects cannot be built or altered"}),
      Perm("SetFunctionCode", R"PY(
import json
def f(*a, **k):
    pass
json.dumps.__code__ = f.__code__
)PY", {"code objects cannot be swapped"}),
      Perm("FunctionTypeOnStdlibCode", R"PY(
import json, types
types.FunctionType(json.dumps.__code__, {'__builtins__': __builtins__})
)PY", {"functions cannot be built from code objects"}),
      Imp("MarshalImportDenied", "import marshal\n"),
      Perm("MarshalLoadsViaImportlibGlobals", R"PY(
marshal = _external()['marshal']
exec(marshal.loads(marshal.dumps(compile('x = 1', '<x>', 'exec'))))
)PY", {"code cannot be loaded from bytes"}),
      Denied("MarshalViaCompileBytecodeForgesStdlibFrame", R"PY(
g = _external()
fake = '/usr/lib/python3.11/zz.py'
placeholder = '<' + 'x' * (len(fake) - 2) + '>'
module = compile('def f():\n    import socket\n    global result\n    result = PWN + socket.__name__\n',
                 placeholder, 'exec')
fcode = [c for c in module.co_consts if hasattr(c, 'co_name')][0]
data = g['marshal'].dumps(fcode).replace(placeholder.encode(), fake.encode())
exec(g['_compile_bytecode'](data))
)PY", {"PermissionError"}, {"is not the stdlib's own"}),
      Denied("SourcelessLoaderForgesStdlibFrame", R"PY(
import types
g = _external()
fake = '/usr/lib/python3.11/zz.py'
placeholder = '<' + 'x' * (len(fake) - 2) + '>'
fcode = [c for c in compile('def f():\n    import socket\n    global result\n    result = PWN + socket.__name__\n',
                            placeholder, 'exec').co_consts if hasattr(c, 'co_name')][0]
body = g['marshal'].dumps(fcode).replace(placeholder.encode(), fake.encode())
open(WORK_DIR + '/zz.pyc', 'wb').write(g['MAGIC_NUMBER'] + bytes(12) + body)
m = types.ModuleType('zz')
g['SourcelessFileLoader']('zz', WORK_DIR + '/zz.pyc').exec_module(m)
result = m.__dict__.get('result')
)PY", {"PermissionError"}, {"is not the stdlib's own"}),
      Denied("CompileBytecodeRenamesCodeFrozen", R"PY(
g = _external()
code = g['_compile_bytecode'](g['marshal'].dumps(compile('import socket\nresult = PWN + socket.__name__\n', '<x>', 'exec')),
                              source_path='<frozen os>')
exec(code, globals())
)PY", {"PermissionError"}, {"may not be renamed into the stdlib"}),
      Denied("FrozenImportlibBytecodeTakesTheImportLock", R"PY(
g = _external()
imp = _bootstrap()['_imp']
data = g['marshal'].dumps(compile('imp.acquire_lock()\nresult = PWN\n', '<' + 'x' * 27 + '>', 'exec'))
data = data.replace(('<' + 'x' * 27 + '>').encode(), b'<frozen importlib._bootstrap>')
exec(g['_compile_bytecode'](data), {'imp': imp, 'PWN': PWN})
)PY", {"PermissionError"}, {"is not the stdlib's own"}),
      Denied("LoaderRenamesCodeIntoTheStdlib", R"PY(
g = _external()
fcode = [c for c in compile('def f():\n    import socket\n    global result\n    result = PWN + socket.__name__\n',
                            '<x>', 'exec').co_consts if hasattr(c, 'co_name')][0]
pyc = g['MAGIC_NUMBER'] + bytes(12) + g['marshal'].dumps(fcode)
class Loader(g['SourceLoader']):
    def get_filename(self, name):
        return '/usr/lib/python3.11/zz.py'
    def path_stats(self, path):
        return {'mtime': 0, 'size': 0}
    def get_data(self, path):
        return pyc
exec(Loader().get_code('zz'))
)PY", {"PermissionError"}, {"may not be renamed into the stdlib"}),

      FixedEscape("ImpFixCoFilenameForgesImportlibFrame", R"PY(
imp = _bootstrap()['_imp']
marshal = _external()['marshal']
def f():
    global result
    code = marshal.loads(marshal.dumps(compile('1', '<x>', 'eval')))
    result = PWN + ' loaded ' + type(code).__name__ + ' from bytes'
import os
imp._fix_co_filename(f.__code__, os.path.dirname(os.__file__) + '/importlib/zz.py')
f()
)PY"),
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
)PY").Isolated(),

      // ---- frame walking ----------------------------------------------------------------
      Imp("FrameWalkToOutermostGlobals", R"PY(
import sys
f = sys._getframe()
while f.f_back is not None:
    f = f.f_back
b = f.f_globals['__builtins__']
imp = b['__import__'] if isinstance(b, dict) else b.__import__
imp('ctypes').CDLL(None).system(('touch ' + args['canary']).encode())
)PY"),
      Imp("TracebackFrameGlobals", R"PY(
try:
    raise ValueError
except ValueError as e:
    g = e.__traceback__.tb_frame.f_globals
b = g['__builtins__']
imp = b['__import__'] if isinstance(b, dict) else b.__import__
imp('_posixsubprocess')
)PY"),
      Perm("GeneratorGiFrame", R"PY(
def gen():
    yield 1
g = gen()
g.gi_frame.f_globals['__builtins__']
)PY", {"suspended frames are not reachable"}),
      Perm("CoroutineCrFrame", R"PY(
async def co():
    pass
c = co()
try:
    c.cr_frame.f_globals
finally:
    c.close()
)PY", {"suspended frames are not reachable"}),
      Denied("ErrorStrFrameReachesSupportGlobals", R"PY(
import sys
class Sneaky(Exception):
    def __str__(self):
        f = sys._getframe(1)
        try:
            f.f_globals['os'].system('touch ' + args['canary'])
            return PWN + ' from ' + f.f_code.co_filename
        except BaseException as e:
            return repr(e)
raise Sneaky()
)PY", {"Sneaky"}, {"os.system denied by pyhost policy 'strict'"}),

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
      Imp("BuiltinsDunderImportMultiprocessing", "import builtins\nbuiltins.__import__('multiprocessing')\n"),
      Imp("BootstrapDunderImportPosixsubprocess", "_bootstrap()['__import__']('_posixsubprocess')\n"),
      Imp("ImportlibImportModuleSocket", "import importlib\nimportlib.import_module('socket')\n"),
      Imp("ImportSocket", "import socket\n"),
      Imp("ImportMmap", "import mmap\n"),
      Imp("ImportXxsubinterpreters", "import _xxsubinterpreters\n", {"never allowed in pyhost"}),
      Imp("ImportFaulthandler", "import faulthandler\nfaulthandler._sigsegv()\n",
          {"never allowed in pyhost"}).Isolated(),
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

      // ---- files --------------------------------------------------------------------------
      Perm("ReadProcSelfEnviron", "result = open('/proc/self/environ', 'rb').read().decode()\n",
           {"outside the readable paths"}),
      Perm("ReadProcSelfMem", R"PY(
with open('/proc/self/mem', 'rb') as f:
    f.seek(int(open('/proc/self/maps').read().split('-')[0], 16))
    result = f.read(64).hex()
)PY", {"outside the readable paths"}),
      Perm("ReadProcSelfMaps", "result = open('/proc/self/maps').read()\n",
           {"outside the readable paths"}),
      Perm("ReadEtcPasswd", "result = open('/etc/passwd').read()\n", {"outside the readable paths"}),
      Perm("ReadSecretFile", "result = open(args['secret_path']).read()\n",
           {"outside the readable paths"}),
      Perm("ReadSecretViaProcSelfCwd", R"PY(
import os
result = open('/proc/self/cwd/host-secret.txt').read()
)PY", {"outside the readable paths"}),
      Perm("WriteCanaryOutside", "open(args['canary'], 'w').write(PWN)\n",
           {"outside the writable paths"}),
      Perm("WriteHostCwdRelative", "open('planted.txt', 'w').write(PWN)\n",
           {"outside the writable paths"}),
      Perm("AppendHostCwdViaOsOpen", R"PY(
import os
os.open('planted.txt', os.O_WRONLY | os.O_CREAT | os.O_APPEND)
)PY", {"outside the writable paths"}),
      Perm("SymlinkToOutsideDirThenWrite", R"PY(
import os
os.symlink(args['outside'], OUTPUT_DIR + '/d')
open(OUTPUT_DIR + '/d/canary', 'w').write(PWN)
)PY", {"outside the writable paths"}),
      Perm("SymlinkToSecretThenRead", R"PY(
import os
os.symlink(args['secret_path'], OUTPUT_DIR + '/s')
result = open(OUTPUT_DIR + '/s').read()
)PY", {"outside the readable paths", "the link's target is outside the writable paths"}),
      FixedEscape("DanglingSymlinkInOutputDirCreatesOutsideFile", R"PY(
import os
os.symlink(args['canary'], OUTPUT_DIR + '/l')
with open(OUTPUT_DIR + '/l', 'w') as f:
    f.write(PWN)
)PY"),
      Perm("DotDotTraversalOutOfOutputDir", R"PY(
import os
rel = os.path.relpath(args['canary'], OUTPUT_DIR)
open(OUTPUT_DIR + '/' + rel, 'w').write(PWN)
)PY", {"outside the writable paths"}),
      FixedEscape("SymlinkToProcFdReadsHostDeletedSecret", R"PY(
import os
os.symlink('/proc/self/fd/%d' % args['secret_fd'], OUTPUT_DIR + '/fd')
result = open(OUTPUT_DIR + '/fd').read()
)PY"),
      FixedEscape("SymlinkToProcFdWritesHostPipe", R"PY(
import os
os.symlink('/proc/self/fd/%d' % args['pipe_fd'], WORK_DIR + '/fd')
with open(WORK_DIR + '/fd', 'w') as f:
    f.write(PWN)
)PY"),
      Perm("ProcSelfFdDirect", "open('/proc/self/fd/%d' % args['pipe_fd'], 'w').write(PWN)\n",
           {"outside the writable paths"}),
      FixedEscape("MkfifoOutside", "import os\nos.mkfifo(args['canary'])\n"),
      FixedEscape("MknodOutside", "import os\nos.mknod(args['canary'])\n"),
      // ---- sqlite3 under strict: what SQL opens is its authorizer's (guards/sqlite.h) ------
      SqliteDenied("SqliteAttachCreatesOutsideFile", R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
db.execute("ATTACH DATABASE ? AS x", (args['canary'],))
db.execute("CREATE TABLE x.t(a)")
db.commit()
)PY"),
      SqliteDenied("SqliteVacuumIntoOutsideFile", R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
db.execute("CREATE TABLE t(a)")
db.execute("VACUUM INTO ?", (args['canary'],))
)PY"),
      SqliteDenied("SqliteAttachLiteralHostFile", R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
db.execute("ATTACH DATABASE '%s' AS x" % args['canary'])
db.execute("CREATE TABLE x.t(a)")
)PY"),
      SqliteDenied("SqliteVacuumIntoLiteralOutsideWorkDir", R"PY(
import sqlite3
db = sqlite3.connect(WORK_DIR + '/db')
db.execute("CREATE TABLE t(a)")
db.execute("VACUUM INTO '%s'" % args['canary'])
)PY"),
      SqliteDenied("SqliteAttachUriHostFile", R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
db.execute("ATTACH DATABASE 'file:%s?mode=rwc' AS x" % args['canary'])
db.execute("CREATE TABLE x.t(a)")
)PY"),
      SqliteDenied("SqliteAttachUriPercentEncodedDotDot", R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
up = '%2e%2e/' * 12
db.execute("ATTACH DATABASE 'file:%s%s%s' AS x" % (WORK_DIR + '/', up, args['canary'].lstrip('/')))
db.execute("CREATE TABLE x.t(a)")
)PY"),
      SqliteDenied("SqliteSetAuthorizerNoneThenAttach", R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
db.set_authorizer(None)
sqlite3.Connection.set_authorizer(db, authorizer_callback=None)
db.execute("ATTACH DATABASE '%s' AS x" % args['canary'])
db.execute("CREATE TABLE x.t(a)")
)PY"),
      SqliteDenied("SqliteAllowAllAuthorizerThenAttach", R"PY(
import sqlite3
class Db(sqlite3.Connection):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.set_authorizer(lambda *args: sqlite3.SQLITE_OK)
db = sqlite3.connect(':memory:', factory=Db)
db.execute("ATTACH DATABASE '%s' AS x" % args['canary'])
db.execute("CREATE TABLE x.t(a)")
)PY"),
      SqliteDenied("SqliteReinitConnectionThenAttach", R"PY(
import sqlite3
db = sqlite3.Connection.__new__(sqlite3.Connection)
sqlite3.Connection.__init__(db, ':memory:')
db.__init__(':memory:')
db.execute("ATTACH DATABASE '%s' AS x" % args['canary'])
db.execute("CREATE TABLE x.t(a)")
)PY"),
      SqliteDenied("SqliteTempStoreDirectoryOutside", R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
db.execute("PRAGMA temp_store_directory = '%s'" % args['outside'])
)PY"),
      SqliteDenied("SqliteLoadExtensionSqlFunction", R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
db.execute("SELECT load_extension('/usr/lib/x86_64-linux-gnu/libc.so.6')")
)PY"),
      Via("SqliteConnectOutside", "import sqlite3\nsqlite3.connect(args['canary']).execute('create table t(a)')\n",
          {"outside the writable paths"}),
      Perm("SqliteConnectUriOutside", R"PY(
import sqlite3
sqlite3.connect('file:%s?mode=rwc' % args['canary'], uri=True).execute('create table t(a)')
)PY", {"sqlite3.connect('file:", "outside the writable paths"}),
      Perm("SqliteConnectUriTwoModes", R"PY(
import sqlite3
sqlite3.connect('file:%s?mode=memory&mode=rwc' % args['canary'], uri=True).execute('create table t(a)')
)PY", {"outside the writable paths"}),
      Perm("SqliteJournalSymlinkToHostFile", R"PY(
import os, sqlite3
os.symlink(args['canary'], WORK_DIR + '/x.db-journal')
db = sqlite3.connect(WORK_DIR + '/x.db')
db.execute('create table t(a)')
db.commit()
)PY", {"the link's target is outside the writable paths"}),
      Perm("RelativeSymlinkClimbingOutLater", R"PY(
import os
os.makedirs(WORK_DIR + '/a/b')
os.symlink('../../x', WORK_DIR + '/a/b/l')
)PY", {"a relative link target may not contain '..'"}),
      // A file the policy lets the code read (the stdlib, say) must not become writable
      // through a hard link in WORK_DIR (before the fix this wrote the file itself).
      Perm("HardLinkReadableFileIntoWorkDirThenWrite", R"PY(
import os
os.link(args['secret_path'], WORK_DIR + '/s')
open(WORK_DIR + '/s', 'a').write(PWN)
)PY", {"outside the writable paths"}).WithPolicy("read-outside"),

      // ---- code objects under strict: the code's own may be built, not the stdlib's -------
      Perm("CodeReplaceStdlibGeneratorBeyondTheFlag", R"PY(
import asyncio, types
gen = asyncio.tasks.__sleep0
code = gen.__code__
code.replace(co_flags=code.co_flags | 0x100, co_names=('socket',) + code.co_names)
)PY", {"code objects cannot be built or altered"}),
      Perm("CodeReplaceStdlibGeneratorOtherFlag", R"PY(
import json.decoder
def find():
    import inspect
    for name, f in vars(json.decoder).items():
        if inspect.isfunction(f):
            return f
f = find()
f.__code__.replace(co_flags=f.__code__.co_flags | 0x20 | 0x100)
)PY", {"code objects cannot be built or altered"}),
      // An audit hook of the code's would run inside pyhost's checks: enforcing policies
      // refuse the hook itself (the rule that closes this case and the socketpair one).
      Perm("UserAuditHookInsideVettedReplace", R"PY(
import sys
done = []
def hook(event, a):
    if event == 'code.__new__' and not done:
        done.append(1)
        compile('import socket', '<x>', 'exec').replace(co_filename='/usr/lib/python3.11/json/zz.py')
sys.addaudithook(hook)
import asyncio
)PY", {"the code cannot hook pyhost's checks"}),
      Perm("SetUserFunctionCodeToStdlibCode", R"PY(
import json
def f(*a, **k):
    pass
f.__code__ = json.dumps.__code__
)PY", {"code objects cannot be swapped"}),
      Imp("ExecStdlibModuleCodeWithForgedPackage", R"PY(
import os
loader = _cls('SourceFileLoader')('json', os.path.dirname(os.__file__) + '/json/__init__.py')
exec(loader.get_code('json'), {'__name__': 'http.x', '__package__': 'http', '__builtins__': __builtins__})
)PY"),
      Imp("LoaderExecModuleWithForgedPackage", R"PY(
import os, types
loader = _cls('SourceFileLoader')('json', os.path.dirname(os.__file__) + '/json/__init__.py')
m = types.ModuleType('json')
m.__package__ = 'http'
loader.exec_module(m)
)PY"),
      Imp("FunctionFromGeneratedCodeImportsSocket", R"PY(
import types
code = compile('import socket', 'generated.py', 'exec')
types.FunctionType(code, {'__builtins__': __builtins__})()
)PY"),

      // ---- pickle under strict: what a callable does is governed as if the code called it --
      Perm("PickleOsSystem", R"PY(
import pickle
pickle.loads(b"cos\nsystem\n(S'touch %s'\ntR." % args['canary'].encode())
)PY", {"os.system denied by pyhost policy 'strict'"}),
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
)PY", {"fork_exec denied by pyhost policy 'strict': processes are not allowed"}),

      // ---- sockets: a socketpair is the process's own; nothing else opens ----------------
      Perm("SocketpairPassesHostFdThenWrites", R"PY(
import os, struct
socket = _socket()
a, b = socket.socketpair()
a.sendmsg([b'x'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack('i', args['pipe_fd']))])
msg, ancdata, flags, addr = b.recvmsg(1, socket.CMSG_SPACE(4))
fd = struct.unpack('i', ancdata[0][2][:4])[0]
os.write(fd, PWN.encode())
)PY", {"only on file descriptors the code opened itself"}),
      Perm("AuditHookReusesSocketpairAllowance", R"PY(
import sys
socket = _socket()
made = []
def hook(event, a):
    if event == 'socket.__new__' and not made:
        made.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
sys.addaudithook(hook)
socket.socketpair()
made[0].connect(('127.0.0.1', args['port']))
)PY", {"the code cannot hook pyhost's checks"}),

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
)PY", {"only on file descriptors the code opened itself"}),

      // ---- os.fork() in a subinterpreter: refused under every policy ---------------------
      Denied("YoloForkRefusedInSubinterpreter", R"PY(
import os
pid = os.fork()
if pid == 0:
    os._exit(0)
)PY", {"PermissionError"}, {"fork() is not supported in a subinterpreter"}).WithPolicy("yolo").Isolated(),
      FixedEscape("OpenerReturnsHostPipeFd", R"PY(
with open(WORK_DIR + '/x', 'w', opener=lambda path, flags: args['pipe_fd']) as f:
    f.write(PWN)
)PY"),
      FixedEscape("PositionalOpenerReturnsHostPipeFd", R"PY(
with open(WORK_DIR + '/x', 'w', -1, None, None, None, True, lambda path, flags: args['pipe_fd']) as f:
    f.write(PWN)
)PY"),
      FixedEscape("FileIOOpenerReturnsHostPipeFd", R"PY(
import io
io.FileIO(WORK_DIR + '/x', 'w', True, lambda path, flags: args['pipe_fd']).write(PWN.encode())
)PY"),
      FixedEscape("FileIOInitDescriptorWithHostOpener", R"PY(
import io
f = io.FileIO.__new__(io.FileIO)
io.FileIO.__init__(f, WORK_DIR + '/x', 'w', opener=lambda path, flags: args['pipe_fd'])
f.write(PWN.encode())
)PY"),
      Perm("ShutilCopySecretIntoOutputDir", R"PY(
import shutil
shutil.copy(args['secret_path'], OUTPUT_DIR + '/stolen')
)PY", {"denied by pyhost policy 'strict'"}),
      Perm("HardLinkSecretIntoOutputDir", R"PY(
import os
os.link(args['secret_path'], OUTPUT_DIR + '/stolen')
)PY", {"outside the readable paths", "outside the writable paths"}),
      Perm("TempfileMkstempOutside", R"PY(
import tempfile
tempfile.mkstemp(dir=args['outside'])
)PY", {"outside the writable paths"}),
      Perm("PathlibWriteOutside", "import pathlib\npathlib.Path(args['canary']).write_text(PWN)\n",
           {"outside the writable paths"}),
      Perm("ZipfileWriteOutside", "import zipfile\nzipfile.ZipFile(args['canary'], 'w').close()\n",
           {"outside the writable paths"}),
      Perm("RenameIntoOutside", R"PY(
import os
open(WORK_DIR + '/x', 'w').write(PWN)
os.rename(WORK_DIR + '/x', args['canary'])
)PY", {"outside the writable paths"}),
      FixedEscape("PasswdViaTarfilePwd", R"PY(
import tarfile
pwd = tarfile.pwd or _reach('pwd')
result = [':'.join(map(str, p)) for p in pwd.getpwall()]
)PY"),
      FixedEscape("ShadowViaStdlibSpwd", R"PY(
result = [':'.join(map(str, s)) for s in _reach('spwd').getspall()]
)PY"),
      Perm("ListdirDefaultListsHostCwd", "import os\nresult = os.listdir()\n",
           {"outside the readable paths"}),
      Perm("ListdirOutside", "import os\nresult = os.listdir(args['outside'])\n",
           {"outside the readable paths"}),

      // ---- processes ----------------------------------------------------------------------
      Perm("OsSystem", "import os\nos.system('touch ' + args['canary'])\n", {"os.system denied"}),
      Perm("OsPopen", "import os\nos.popen('touch ' + args['canary']).read()\n",
           {"subprocess.Popen denied by pyhost policy 'strict'"}),
      Imp("ImportSubprocess", "import subprocess\nsubprocess.run(['touch', args['canary']])\n"),
      Perm("OsPosixSpawn", R"PY(
import os
os.posix_spawn('/bin/sh', ['sh', '-c', 'touch ' + args['canary']], {})
)PY", {"os.posix_spawn denied"}),
      Perm("OsPosixSpawnp", R"PY(
import os
os.posix_spawnp('touch', ['touch', args['canary']], {})
)PY", {"os.posix_spawn denied"}),
      Perm("OsFork", "import os\nif os.fork() == 0:\n    os._exit(0)\n", {"os.fork denied"}),
      Denied("OsForkpty", "import os\nos.forkpty()\n", {"PermissionError", "RuntimeError"},
             {"os.forkpty denied", "not supported for subinterpreters"}),
      Imp("PtyImport", "import pty\npty.spawn(['touch', args['canary']])\n"),
      Imp("MultiprocessingImport", R"PY(
import multiprocessing
multiprocessing.Process(target=print).start()
)PY"),
      Perm("OsExecv", "import os\nos.execv('/bin/touch', ['touch', args['canary']])\n",
           {"os.exec denied"}),
      Perm("OsSpawnv", "import os\nos.spawnv(os.P_WAIT, '/bin/touch', ['touch', args['canary']])\n",
           {"denied by pyhost policy 'strict'"}),
      FixedEscape("WaitpidReapsHostChild", R"PY(
import os
result = os.waitpid(args['child_pid'], 0)
)PY"),

      // ---- signals and ending the process -------------------------------------------------
      Perm("OsKillSelfSigkill", "import os\nos.kill(os.getpid(), 9)\n", {"os.kill denied"}).Isolated(),
      Perm("OsKillSelfSigterm", "import os\nos.kill(os.getpid(), 15)\n", {"os.kill denied"}).Isolated(),
      Perm("OsKillSelfSigusr2", "import os\nos.kill(os.getpid(), 12)\n", {"os.kill denied"}),
      Perm("OsKillpgSelf", "import os\nos.killpg(os.getpgid(0), 12)\n", {"os.killpg denied"}),
      Imp("SignalImportDenied", "import signal\nsignal.raise_signal(signal.SIGTERM)\n"),
      Via("SignalRaiseSignalViaStdlib", "signal = _reach('signal')\nsignal.raise_signal(signal.SIGUSR2)\n",
           {"signal.raise_signal is not available in pyhost"}),
      Via("SignalAlarmViaStdlib", "signal = _reach('signal')\nsignal.alarm(1)\n",
           {"signal.alarm is not available in pyhost"}).Isolated(1300),
      Via("SignalSetitimerViaStdlib", R"PY(
signal = _reach('signal')
signal.setitimer(signal.ITIMER_REAL, 0.05)
)PY", {"signal.setitimer is not available in pyhost"}).Isolated(250),
      Via("SignalPthreadKillViaStdlib", R"PY(
signal = _reach('signal')
signal.pthread_kill(_threading().get_ident(), signal.SIGUSR2)
)PY", {"is not available in pyhost", "denied by pyhost policy"}),
      Via("SignalSignalViaStdlib", R"PY(
signal = _reach('signal')
signal.signal(signal.SIGUSR2, signal.SIG_IGN)
)PY", {"signal.signal is not available in pyhost"}),
      Via("SignalPthreadSigmaskViaStdlib", R"PY(
signal = _reach('signal')
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
)PY", {"signal.pthread_sigmask is not available in pyhost"}),
      Denied("OsExit", "import os\nos._exit(0)\n", {"SystemExit"}, {"0"}).Isolated(),
      Perm("OsAbort", "import os\nos.abort()\n", {"os.abort is not available in pyhost"}).Isolated(),
      Denied("SysExitInFinally", R"PY(
import sys
try:
    raise ValueError('first')
finally:
    sys.exit(3)
)PY", {"SystemExit"}, {"3"}),
      Denied("RaiseSystemExit", "raise SystemExit(5)\n", {"SystemExit"}, {"5"}),
      Denied("RaiseKeyboardInterrupt", "raise KeyboardInterrupt('stop')\n", {"KeyboardInterrupt"}, {"stop"}),
      Denied("RaiseGeneratorExit", "raise GeneratorExit('bye')\n", {"GeneratorExit"}, {"bye"}),
      Imp("FaulthandlerViaSysModules", R"PY(
import sys
fh = sys.modules.get('faulthandler') or __import__('faulthandler')
fh._sigsegv()
)PY", {"never allowed in pyhost"}).Isolated(),

      // ---- the host's file descriptors ----------------------------------------------------
      Perm("OsCloseHostPipe", "import os\nos.close(args['pipe_fd'])\n", {"os.close is not available in pyhost"}),
      Perm("OsCloserange", "import os\nos.closerange(3, 1024)\n", {"os.closerange is not available in pyhost"}),
      Perm("OsDup2OntoStdout", "import os\nr, w = os.pipe()\nos.dup2(r, 1)\n",
           {"os.dup2 is not available in pyhost"}),
      Perm("OsDup2OntoHostPipe", "import os\nr, w = os.pipe()\nos.dup2(w, args['pipe_fd'])\n",
           {"os.dup2 is not available in pyhost"}),
      Perm("OsWriteStderr", "import os\nos.write(2, PWN.encode())\n", {"os.write is not available in pyhost"}),
      Perm("OsWriteHostPipe", "import os\nos.write(args['pipe_fd'], PWN.encode())\n",
           {"os.write is not available in pyhost"}),
      Perm("OsReadHostSecretFd", "import os\nresult = os.read(args['secret_fd'], 100).decode()\n",
           {"os.read is not available in pyhost"}),
      Perm("OsPreadHostSecretFd", "import os\nresult = os.pread(args['secret_fd'], 100, 0).decode()\n",
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

      // ---- process-wide state -------------------------------------------------------------
      Perm("OsChdir", "import os\nos.chdir('/')\n", {"os.chdir"}),
      Perm("OsFchdir", R"PY(
import os
os.fchdir(os.open(WORK_DIR, os.O_RDONLY))
)PY", {"os.fchdir is not available in pyhost"}),
      Perm("OsChdirViaSupportsFd", R"PY(
import os
chdir = [f for f in os.supports_fd if f.__name__ == 'chdir'][0]
chdir(WORK_DIR)
)PY", {"os.chdir is not available in pyhost"}),  // the set holds the guard, not the original
      Perm("OsUmask", "import os\nos.umask(0o777)\n", {"os.umask is not available in pyhost"}),
      Perm("OsSetuid", "import os\nos.setuid(65534)\n", {"os.setuid is not available in pyhost"}),
      Perm("OsSetsid", "import os\nos.setsid()\n", {"os.setsid is not available in pyhost"}),
      Perm("OsNice", "import os\nos.nice(5)\n", {"os.nice is not available in pyhost"}),
      Perm("OsSchedSetaffinity", "import os\nos.sched_setaffinity(0, {0})\n",
           {"os.sched_setaffinity is not available in pyhost"}),
      Imp("ResourceImportDenied", "import resource\nresource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))\n"),
      Via("ResourceSetrlimitViaStdlib", R"PY(
resource = _reach('resource')
resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))
)PY", {"resource.setrlimit denied"}),
      Via("ResourcePrlimitViaStdlib", R"PY(
import os
resource = _reach('resource')
resource.prlimit(os.getpid(), resource.RLIMIT_CORE, (0, 0))
)PY", {"resource.prlimit denied"}),
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
)PY", {"RecursionError"}, {"maximum recursion depth"}),
      Denied("DeepRecursionThroughCCalls", R"PY(
class R:
    def __repr__(self):
        return repr(self)
repr(R())
)PY", {"RecursionError"}, {"maximum recursion depth"}),
      Perm("SetSwitchInterval", "import sys\nsys.setswitchinterval(1e-9)\n",
           {"sys.setswitchinterval is not available in pyhost"}),
      Perm("ThreadingThreadStart", R"PY(
threading = _threading()
threading.Thread(target=lambda: open(args['canary'], 'w')).start()
)PY", {"starting threads denied by pyhost policy 'strict'"}),
      Perm("ThreadingStartNewThread", R"PY(
_threading()._start_new_thread(print, ())
)PY", {"starting threads denied by pyhost policy 'strict'"}),
      Perm("ThreadInterruptMain", R"PY(
_threading().get_ident.__self__.interrupt_main()
)PY", {"interrupt_main is not available in pyhost"}),
      Perm("SysCurrentFrames", "import sys\nresult = len(sys._current_frames())\n",
           {"sys._current_frames denied"}),
      Via("MmapViaStdlib", "mmap = _reach('mmap')\nmmap.mmap(-1, 4096)\n", {"memory maps are not allowed"}),
      Via("CtypesViaStdlib", "_reach('ctypes').CDLL(None)\n", {}),
      Via("SqliteLoadExtension", R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
db.enable_load_extension(True)
db.load_extension('/usr/lib/x86_64-linux-gnu/libc.so.6')
)PY", {"native extensions cannot be loaded"}),
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

      // ---- network --------------------------------------------------------------------------
      Perm("SocketWithoutAllowlist", R"PY(
socket = _socket()
socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(('127.0.0.1', args['port']))
)PY", {"no network access"}),
      Perm("ConnectLoopbackWhenOtherHostAllowed", R"PY(
socket = _socket()
socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(('127.0.0.1', args['port']))
)PY", {"host not on the network allowlist"}).Net({"api.example.com"}),
      Perm("CreateConnectionNameNotAllowed", R"PY(
_socket().create_connection(('localhost', args['port']), timeout=2)
)PY", {"host not on the network allowlist"}).Net({"api.example.com"}),
      Perm("IpLiteralWhenOnlyNameAllowed", R"PY(
_socket().create_connection(('127.0.0.1', args['port']), timeout=2)
)PY", {"host not on the network allowlist"}).Net({"localhost"}),
      Perm("ConnectIpLiteralWhenOnlyNameAllowed", R"PY(
socket = _socket()
socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(('127.0.0.1', args['port']))
)PY", {"host not on the network allowlist"}).Net({"localhost"}),
      Perm("GetaddrinfoDeniedName", "_socket().getaddrinfo('exfil.attacker.example', 53)\n",
           {"host not on the network allowlist"}).Net({"api.example.com"}),
      Perm("SendtoLoopbackUdp", R"PY(
socket = _socket()
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', args['port']))
)PY", {"host not on the network allowlist"}).Net({"api.example.com"}),
      Perm("SocketAfUnix", R"PY(
socket = _socket()
socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
)PY", {"only IPv4/IPv6"}).Net({"api.example.com"}),
      Perm("SocketBind", R"PY(
socket = _socket()
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(('127.0.0.1', 0))
s.listen()
)PY", {"listening for connections is not allowed"}).Net({"*"}),
      Perm("GethostbyaddrDenied", "_socket().gethostbyaddr('127.0.0.1')\n",
           {"address not on the network allowlist"}).Net({"api.example.com"}),
      FixedEscape("GetaddrinfoNoneWhitelistsLoopback", R"PY(
socket = _socket()
socket.getaddrinfo(None, args['port'])
socket.create_connection(('127.0.0.1', args['port']), timeout=2).close()
)PY").Net({"api.example.com"}),
      FixedEscape("SocketOnHostFdWithAllowlist", R"PY(
socket = _socket()
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, fileno=args['conn_fd'])
s.send(PWN.encode())
)PY").Net({"api.example.com"}),
      FixedEscape("SocketInitDescriptorOnHostFd", R"PY(
socket = _socket()
s = socket.socket.__new__(socket.socket)
socket.socket.__bases__[0].__init__(s, socket.AF_INET, socket.SOCK_STREAM, 0, args['conn_fd'])
s.send(PWN.encode())
)PY").Net({"api.example.com"}),
      FixedEscape("SocketFilenoKeywordAsStrSubclass", R"PY(
class Key(str):
    calls = 0
    def __hash__(self):
        return hash('fileno')
    def __eq__(self, other):
        Key.calls += 1
        return Key.calls > 1
socket = _socket()
raw = socket.socket.__bases__[0]
s = raw.__new__(raw)
raw.__init__(s, socket.AF_INET, socket.SOCK_STREAM, 0, **{Key('fileno'): args['conn_fd']})
s.send(PWN.encode())
)PY").Net({"api.example.com"}),
      FixedEscape("FileIOOpenerKeywordAsStrSubclass", R"PY(
import io
class Key(str):
    calls = 0
    def __hash__(self):
        return hash('opener')
    def __eq__(self, other):
        Key.calls += 1
        return Key.calls > 1
io.FileIO(WORK_DIR + '/x', 'w', **{Key('opener'): lambda path, flags: args['pipe_fd']}).write(PWN.encode())
)PY"),
      FixedEscape("SocketFromDetachedHostFd", R"PY(
socket = _socket()
socket.socket(fileno=args['conn_fd']).send(PWN.encode())
)PY").WithPolicy("yolo"),

      // ---- yolo: "no rules; the host is still protected" -----------------------------------
      Denied("YoloOsExitStaysSystemExit", "import os\nos._exit(0)\n", {"SystemExit"}, {"0"})
          .WithPolicy("yolo").Isolated(),
      Perm("YoloChdirRefused", "import os\nos.chdir('/')\n", {"os.chdir"}).WithPolicy("yolo"),
      Perm("YoloUmaskRefused", "import os\nos.umask(0)\n", {"os.umask is not available in pyhost"})
          .WithPolicy("yolo"),
      Perm("YoloKillOwnPid", "import os\nos.kill(os.getpid(), 12)\n",
           {"pyhost policy 'yolo'", "in pyhost"}).WithPolicy("yolo"),
  };
  return cases;
}

// --- the fixture ----------------------------------------------------------------------

class HostileTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    char pattern[] = "/tmp/hostile-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    root_ = new std::string(pattern);
    g_suite_root = root_;
    outside_ = new std::string(*root_ + "/outside");
    host_cwd_ = new std::string(*root_ + "/host_cwd");
    work_root_ = new std::string(*root_ + "/work");
    for (const std::string* dir : {outside_, host_cwd_, work_root_}) {
      ASSERT_EQ(mkdir(dir->c_str(), 0755), 0);
    }
    secret_ = new std::string(RandomToken("file-secret-"));
    env_secret_ = new std::string(RandomToken("env-secret-"));
    deleted_secret_ = new std::string(RandomToken("deleted-secret-"));
    cwd_secret_ = new std::string(RandomToken("cwd-secret-"));
    WriteFile(*outside_ + "/secret.txt", *secret_ + "\n");
    WriteFile(*host_cwd_ + "/host-secret.txt", *secret_ + "\n");
    WriteFile(*host_cwd_ + "/" + *cwd_secret_ + ".txt", "a file whose name is a secret\n");
    setenv("PYHOST_HOSTILE_ENV_SECRET", env_secret_->c_str(), 1);
    passwd_line_ = new std::string(FirstLine(ReadFile("/etc/passwd")));
    std::string shadow = FirstLine(ReadFile("/etc/shadow"));
    size_t third = shadow.find(':', shadow.find(':') + 1);
    shadow_prefix_ = new std::string(third == std::string::npos ? "" : shadow.substr(0, third + 1));

    struct sigaction sa {};
    sa.sa_handler = CountSigusr2;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, nullptr);

    original_cwd_ = new std::string(get_current_dir_name());
    ASSERT_EQ(chdir(host_cwd_->c_str()), 0);
    ForkZombie();
    MakeHostFds();

    HostOptions options;
    options.pool_size = 2;
    options.work_root = *work_root_;
    absl::StatusOr<std::unique_ptr<Host>> host = Host::Create(options);
    ASSERT_TRUE(host.ok()) << host.status();
    host_ = host->release();
    baseline_ = new HostState(Snapshot());
  }

  static void TearDownTestSuite() {
    delete host_;
    host_ = nullptr;
    if (original_cwd_ != nullptr && chdir(original_cwd_->c_str()) != 0) perror("chdir");
    if (child_pid_ > 0) waitpid(child_pid_, nullptr, 0);
    for (int fd : kHostFds) {
      if (fd > 2) close(fd);
    }
    if (root_ != nullptr) RemoveTree(*root_);
  }

  // A child that has exited and that only the host may reap.
  static void ForkZombie() {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    child_pid_ = pid;
    siginfo_t info{};
    waitid(P_PID, pid, &info, WEXITED | WNOWAIT);  // until it is a zombie
  }

  static void MakeHostFds() {
    for (int fd : kHostFds) {
      if (fd > 2) close(fd);
    }
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    MoveFd(p[0], kPipeRead);
    MoveFd(p[1], kPipeWrite);
    std::string deleted = *outside_ + "/deleted-secret.txt";
    WriteFile(deleted, *deleted_secret_ + "\n");
    MoveFd(open(deleted.c_str(), O_RDONLY | O_CLOEXEC), kDeletedSecret);
    unlink(deleted.c_str());
    MoveFd(open((*outside_ + "/host.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640),
           kLog);
    int temp_port = 0;
    int temp = ListenLoopback(&temp_port);
    ASSERT_GE(temp, 0);
    int client = ConnectLoopback(temp_port);
    int server = accept4(temp, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    close(temp);
    MoveFd(client, kConnClient);
    MoveFd(server, kConnServer);
    int master = -1, slave = -1;
    ASSERT_EQ(openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
    MoveFd(master, kPtyMaster);
    MoveFd(slave, kPtySlave);
    int port = 0;
    int listener = ListenLoopback(&port);
    ASSERT_GE(listener, 0);
    MoveFd(listener, kListener);
    fcntl(kListener, F_SETFL, O_NONBLOCK);
    port_ = port;
  }

  static HostState Snapshot() {
    HostState s;
    for (char** e = environ; *e != nullptr; ++e) s.env.push_back(*e);
    std::sort(s.env.begin(), s.env.end());
    char cwd[4096];
    s.cwd = getcwd(cwd, sizeof(cwd)) != nullptr ? cwd : "?";
    s.umask_value = umask(022);
    umask(s.umask_value);
    for (int sig = 1; sig < NSIG; ++sig) {
      struct sigaction sa {};
      sigaction(sig, nullptr, &sa);
      // SA_RESTORER is libc's business (gtest's death tests re-install SIGPROF with it).
      s.dispositions.emplace_back(reinterpret_cast<uintptr_t>(sa.sa_handler),
                                  sa.sa_flags & ~0x04000000);
    }
    sigset_t mask;
    pthread_sigmask(SIG_BLOCK, nullptr, &mask);
    for (int sig = 1; sig < NSIG; ++sig) s.sigmask += sigismember(&mask, sig) ? '1' : '0';
    for (int r = 0; r < RLIM_NLIMITS; ++r) {
      rlimit lim{};
      getrlimit(static_cast<__rlimit_resource_t>(r), &lim);
      s.rlimits.emplace_back(lim.rlim_cur, lim.rlim_max);
    }
    for (int which : {ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF}) {
      itimerval t{};
      getitimer(which, &t);
      s.itimers.push_back(absl::StrCat(t.it_value.tv_sec, ".", t.it_value.tv_usec, "/",
                                       t.it_interval.tv_sec, ".", t.it_interval.tv_usec));
    }
    const char* loc = setlocale(LC_ALL, nullptr);
    s.locale = loc != nullptr ? loc : "?";
    char hostname[256] = {};
    gethostname(hostname, sizeof(hostname) - 1);
    s.hostname = hostname;
    for (int fd : kHostFds) s.fds[fd] = Identity(fd);
    s.pty_attrs = TermiosBytes(kPtySlave);
    s.secret_offset = lseek(kDeletedSecret, 0, SEEK_CUR);
    s.outside = ListDir(*outside_);
    s.host_cwd = ListDir(*host_cwd_);
    return s;
  }

  static json Args() {
    return {{"pipe_fd", kPipeWrite},
            {"secret_fd", kDeletedSecret},
            {"log_fd", kLog},
            {"conn_fd", kConnClient},
            {"pty_fd", kPtySlave},
            {"child_pid", child_pid_},
            {"port", port_},
            {"canary", *outside_ + "/canary"},
            {"secret_path", *outside_ + "/secret.txt"},
            {"outside", *outside_},
            {"other_locale", OtherLocale()}};
  }

  static std::string OtherLocale() {
    const char* numeric = setlocale(LC_NUMERIC, nullptr);
    return numeric != nullptr && std::string(numeric) == "C" ? "C.UTF-8" : "C";
  }

  static std::optional<Policy> PolicyFor(const std::string& name) {
    if (name.empty()) return std::nullopt;
    if (name == "socket") {
      Policy p = *NamedPolicy("strict");
      p.name = "strict";
      p.import_allow.push_back("socket");
      p.import_deny.erase(std::remove(p.import_deny.begin(), p.import_deny.end(), "socket"),
                          p.import_deny.end());
      return p;
    }
    if (name == "read-outside") {  // strict, and the outside directory is readable
      Policy p = *NamedPolicy("strict");
      p.name = "strict";
      p.read_paths.push_back(*outside_);
      return p;
    }
    if (name == "threads") {  // strict, but the code may start threads
      Policy p = *NamedPolicy("strict");
      p.name = "strict";
      p.threads = true;
      return p;
    }
    return *NamedPolicy(name);
  }

  static ExecResult Run(Host& host, const std::string& code, const std::string& policy = "",
                        std::vector<std::string> allow_net = {}, json args = Args()) {
    ExecRequest request;
    request.code = absl::StrCat(kPrelude, code);
    request.args = std::move(args);
    request.policy = PolicyFor(policy);
    request.allow_net = std::move(allow_net);
    absl::StatusOr<ExecResult> result = host.Execute(request);
    if (!result.ok()) {
      ExecResult failed;
      failed.error = ExecError{"StatusError", std::string(result.status().message())};
      return failed;
    }
    return *std::move(result);
  }

  // Everything a hostile execution must not have changed; appends what it did change.
  static void CheckNoSideEffects(const ExecResult& r, std::vector<std::string>& problems,
                                 const std::vector<std::string>& extra_secrets = {}) {
    const std::string dump = r.ToJson().dump();
    std::vector<std::string> secrets = {*secret_, *env_secret_, *deleted_secret_, *cwd_secret_,
                                        "PWNED"};
    if (!passwd_line_->empty()) secrets.push_back(*passwd_line_);
    if (!shadow_prefix_->empty()) secrets.push_back(*shadow_prefix_);
    secrets.insert(secrets.end(), extra_secrets.begin(), extra_secrets.end());
    for (const std::string& secret : secrets) {
      if (dump.find(secret) != std::string::npos) {
        problems.push_back(absl::StrCat("the ExecResult carries a secret/marker '", secret, "'"));
      }
    }
    HostState now = Snapshot();
    const HostState& was = *baseline_;
    if (PathExists(*outside_ + "/canary")) problems.push_back("the canary file exists");
    if (ReadFile(*outside_ + "/secret.txt") != *secret_ + "\n") {
      problems.push_back("the secret file outside the sandbox was changed");
    }
    for (const std::string& name : now.outside) {
      if (!was.outside.count(name)) problems.push_back("new file outside the sandbox: " + name);
    }
    for (const std::string& name : now.host_cwd) {
      if (!was.host_cwd.count(name)) problems.push_back("new file in the host's cwd: " + name);
    }
    if (now.env != was.env) problems.push_back("the host's environment changed");
    if (getenv("PYHOST_HOSTILE_PLANTED") || getenv("PYHOST_HOSTILE_PLANTED2")) {
      problems.push_back("a variable planted by the code reached the host's environ");
    }
    if (now.cwd != was.cwd) problems.push_back("the host's cwd changed to " + now.cwd);
    if (now.umask_value != was.umask_value) problems.push_back("the host's umask changed");
    for (size_t i = 0; i < now.dispositions.size() && i < was.dispositions.size(); ++i) {
      if (now.dispositions[i] != was.dispositions[i]) {
        problems.push_back(absl::StrCat("the disposition of signal ", i + 1, " changed (handler ",
                                        was.dispositions[i].first, " -> ", now.dispositions[i].first,
                                        ", flags ", was.dispositions[i].second, " -> ",
                                        now.dispositions[i].second, ")"));
      }
    }
    if (now.sigmask != was.sigmask) problems.push_back("the host thread's signal mask changed: " + now.sigmask);
    if (now.rlimits != was.rlimits) problems.push_back("an rlimit changed");
    if (now.itimers != was.itimers) problems.push_back("an interval timer is armed: " + absl::StrJoin(now.itimers, " "));
    if (now.locale != was.locale) problems.push_back("the host's locale changed to " + now.locale);
    if (now.hostname != was.hostname) problems.push_back("the hostname changed to " + now.hostname);
    for (int fd : kHostFds) {
      if (!(now.fds[fd] == was.fds.at(fd))) {
        problems.push_back(absl::StrCat("host fd ", fd, now.fds[fd] ? " now refers to another file" : " was closed"));
      }
    }
    if (now.pty_attrs != was.pty_attrs) problems.push_back("the host's pty settings changed");
    if (now.secret_offset != was.secret_offset) problems.push_back("the host's secret fd was read (offset moved)");
    struct stat log {};
    if (fstat(kLog, &log) == 0 && log.st_size != 0) problems.push_back("the host's log file was written");
    char buffer[256];
    ssize_t n = read(kPipeRead, buffer, sizeof(buffer));
    if (n > 0) problems.push_back("the host's pipe received: " + std::string(buffer, static_cast<size_t>(n)));
    if (n == 0) problems.push_back("the host's pipe lost its write end");
    n = recv(kConnServer, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n > 0) problems.push_back("the host's TCP peer received: " + std::string(buffer, static_cast<size_t>(n)));
    if (n == 0) problems.push_back("the host's TCP connection was closed");
    if (int accepted = DrainConnections(kListener, 0); accepted > 0) {
      problems.push_back(absl::StrCat("the loopback listener accepted ", accepted, " connection(s)"));
    }
    if (g_sigusr2_count.load() != 0) problems.push_back("the host received SIGUSR2");
    siginfo_t info{};
    if (waitid(P_PID, child_pid_, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      problems.push_back("the host's child process was reaped by someone else");
    }
  }

  // Puts the host back as it was, so one escape does not spill into the next case.
  static void Repair() {
    const HostState& was = *baseline_;
    RemoveTree(*outside_ + "/canary");
    for (const std::string& name : ListDir(*outside_)) {
      if (!was.outside.count(name)) RemoveTree(*outside_ + "/" + name);
    }
    for (const std::string& name : ListDir(*host_cwd_)) {
      if (!was.host_cwd.count(name)) RemoveTree(*host_cwd_ + "/" + name);
    }
    unsetenv("PYHOST_HOSTILE_PLANTED");
    unsetenv("PYHOST_HOSTILE_PLANTED2");
    if (chdir(host_cwd_->c_str()) != 0) perror("chdir");
    umask(was.umask_value);
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig = 1; sig < NSIG; ++sig) {
      if (was.sigmask[static_cast<size_t>(sig - 1)] == '1') sigaddset(&mask, sig);
    }
    pthread_sigmask(SIG_SETMASK, &mask, nullptr);
    itimerval zero{};
    for (int which : {ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF}) setitimer(which, &zero, nullptr);
    setlocale(LC_ALL, was.locale.c_str());
    g_sigusr2_count = 0;
    siginfo_t info{};
    if (waitid(P_PID, child_pid_, &info, WEXITED | WNOHANG | WNOWAIT) != 0) ForkZombie();
    bool fds_ok = true;
    for (int fd : kHostFds) fds_ok = fds_ok && Identity(fd) == was.fds.at(fd);
    struct stat log {};
    if (!fds_ok || TermiosBytes(kPtySlave) != was.pty_attrs ||
        lseek(kDeletedSecret, 0, SEEK_CUR) != was.secret_offset ||
        (fstat(kLog, &log) == 0 && log.st_size != 0)) {
      MakeHostFds();
      delete baseline_;
      baseline_ = new HostState(Snapshot());
    }
    char buffer[4096];
    while (read(kPipeRead, buffer, sizeof(buffer)) > 0) {
    }
    while (recv(kConnServer, buffer, sizeof(buffer), MSG_DONTWAIT) > 0) {
    }
    DrainConnections(kListener, 0);
  }

  // Waits until every used interpreter has been torn down (destroyed or leaked), so a
  // test about teardown is not passed by a teardown that simply has not happened yet.
  static void WaitForTeardown(std::vector<std::string>& problems) {
    for (int i = 0; i < 100; ++i) {
      if (host_->pool_stats().retired == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
    problems.push_back("used interpreters were not torn down within 3 s (cannot check teardown)");
  }

  // More executions than the pool holds: a new interpreter must be made, too.
  static void CheckHostAnswers(Host& host, std::vector<std::string>& problems) {
    for (int i = 0; i < 3; ++i) CheckHostAnswersOnce(host, problems);
  }

  static void CheckHostAnswersOnce(Host& host, std::vector<std::string>& problems) {
    ExecRequest request;
    request.code = "result = sum(args['xs'])";
    request.args = {{"xs", {1, 2, 3}}};
    absl::StatusOr<ExecResult> r = host.Execute(request);
    if (!r.ok()) {
      problems.push_back(absl::StrCat("the host no longer answers: ", r.status().ToString()));
    } else if (!r->ok || r->result != json(6)) {
      problems.push_back("the host answers wrongly afterwards: " + r->ToJson().dump());
    }
  }

  // For code armed to act when its interpreter is torn down (off the request path):
  // keeps the host busy until the interpreter is gone, then checks that nothing
  // happened. `witness` is the file in OUTPUT_DIR the armed code writes first (shown
  // with HOSTILE_VERBOSE: it tells whether the code ran at all).
  static void ExpectNothingHappenedAtTeardown(const ExecResult& r, const std::string& witness) {
    EXPECT_TRUE(r.ok) << r.ToJson().dump();
    ASSERT_FALSE(r.output.dir.empty());
    std::vector<std::string> problems;
    CheckHostAnswersOnce(*host_, problems);  // the armed interpreter is retired by now
    WaitForTeardown(problems);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (getenv("HOSTILE_VERBOSE") != nullptr) {
      fprintf(stderr, "the armed code wrote %s: %d\n", witness.c_str(),
              PathExists(r.output.dir + "/" + witness));
    }
    CheckNoSideEffects(r, problems);
    RemoveTree(r.output.dir);
    Repair();
    for (const std::string& p : problems) ADD_FAILURE() << p;
  }

  static std::vector<std::string> CheckDenial(const Case& c, const ExecResult& r) {
    std::vector<std::string> problems;
    const std::string dump = r.ToJson().dump();
    if (c.expect == Expect::kContained) {
      if (!r.ok) problems.push_back("expected the code to run (contained), got " + dump);
      return problems;
    }
    if (r.ok || !r.error) {
      problems.push_back("expected a denial, but the code ran: " + dump);
      return problems;
    }
    bool type_ok = std::find(c.types.begin(), c.types.end(), r.error->type) != c.types.end();
    bool message_ok = c.messages.empty();
    for (const std::string& m : c.messages) {
      message_ok = message_ok || r.error->message.find(m) != std::string::npos;
    }
    if (!type_ok || !message_ok) {
      problems.push_back(absl::StrCat("expected ", absl::StrJoin(c.types, "|"), " naming [",
                                      absl::StrJoin(c.messages, " | "), "], got ", r.error->type,
                                      ": ", r.error->message));
    }
    if (r.stderr_stream.text.find(c.stderr_contains) == std::string::npos) {
      problems.push_back(absl::StrCat("expected stderr to say '", c.stderr_contains, "', got: ",
                                      r.stderr_stream.text));
    }
    return problems;
  }

  // Runs a case, checks it, repairs the host; the problems found.
  static std::vector<std::string> RunCase(const Case& c) {
    ExecResult r = Run(*host_, c.code, c.policy, c.allow_net);
    if (getenv("HOSTILE_VERBOSE") != nullptr) {
      fprintf(stderr, "[%s] ok=%d %s: %s\n", c.name.c_str(), r.ok, r.error ? r.error->type.c_str() : "-",
              r.error ? r.error->message.c_str() : r.result.dump().c_str());
    }
    if (c.settle_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(c.settle_ms));
    std::vector<std::string> problems = CheckDenial(c, r);
    CheckNoSideEffects(r, problems);
    Repair();
    CheckHostAnswers(*host_, problems);
    return problems;
  }

  static std::string* root_;
  static std::string* outside_;
  static std::string* host_cwd_;
  static std::string* work_root_;
  static std::string* original_cwd_;
  static std::string* secret_;
  static std::string* env_secret_;
  static std::string* deleted_secret_;
  static std::string* cwd_secret_;
  static std::string* passwd_line_;
  static std::string* shadow_prefix_;
  static HostState* baseline_;
  static pid_t child_pid_;
  static int port_;
  static Host* host_;
};

std::string* HostileTest::root_ = nullptr;
std::string* HostileTest::outside_ = nullptr;
std::string* HostileTest::host_cwd_ = nullptr;
std::string* HostileTest::work_root_ = nullptr;
std::string* HostileTest::original_cwd_ = nullptr;
std::string* HostileTest::secret_ = nullptr;
std::string* HostileTest::env_secret_ = nullptr;
std::string* HostileTest::deleted_secret_ = nullptr;
std::string* HostileTest::cwd_secret_ = nullptr;
std::string* HostileTest::passwd_line_ = nullptr;
std::string* HostileTest::shadow_prefix_ = nullptr;
HostState* HostileTest::baseline_ = nullptr;
pid_t HostileTest::child_pid_ = -1;
int HostileTest::port_ = 0;
Host* HostileTest::host_ = nullptr;

// The host's cwd is inside the suite's directory: leave it first (the pool may be making
// an interpreter, which needs a cwd that exists).
void RemoveSuiteRootInChild() {
  if (g_suite_root == nullptr) return;
  if (chdir("/") != 0) return;
  RemoveTree(*g_suite_root);
}

// In a child process: runs `body` (a case and its checks) and exits 0 only if everything
// held; a watchdog ends the child if the host hangs.
[[noreturn]] void RunIsolated(const std::function<std::vector<std::string>()>& body,
                              int timeout_seconds = 8) {
  std::thread([timeout_seconds] {
    std::this_thread::sleep_for(std::chrono::seconds(timeout_seconds));
    fprintf(stderr, "PROBLEM: the host hung (no answer after %d s)\n", timeout_seconds);
    fflush(stderr);
    RemoveSuiteRootInChild();
    _exit(3);
  }).detach();
  std::vector<std::string> problems = body();
  for (const std::string& p : problems) fprintf(stderr, "PROBLEM: %s\n", p.c_str());
  fflush(stderr);
  RemoveSuiteRootInChild();
  _exit(problems.empty() ? 0 : 1);
}

class HostileCaseTest : public HostileTest, public ::testing::WithParamInterface<Case> {
 public:
  static std::vector<std::string> RunParam(const Case& c) { return RunCase(c); }
};

TEST_P(HostileCaseTest, IsDeniedWithoutSideEffects) {
  ASSERT_NE(host_, nullptr);
  const Case& c = GetParam();
  if (!c.known_gap.empty() && getenv("HOSTILE_RUN_KNOWN_GAPS") == nullptr) {
    GTEST_SKIP() << "known gap (docs/security.md): " << c.known_gap
                 << " (HOSTILE_RUN_KNOWN_GAPS=1 runs it)";
  }
  if (c.isolate) {
    EXPECT_EXIT(RunIsolated([&] { return RunParam(c); }), ::testing::ExitedWithCode(0), "")
        << "the case must be denied without side effects, and the host process must survive";
  } else {
    for (const std::string& problem : RunParam(c)) ADD_FAILURE() << problem;
  }
  std::vector<std::string> problems;
  CheckHostAnswers(*host_, problems);
  for (const std::string& problem : problems) ADD_FAILURE() << problem;
}

INSTANTIATE_TEST_SUITE_P(Corpus, HostileCaseTest, ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// --- cases that need more than one execution or something happening meanwhile ---------

TEST_F(HostileTest, BuiltinsTamperingDoesNotLeakIntoTheNextExecution) {
  ExecResult tampered = Run(*host_, R"PY(
import builtins, sys
builtins.__import__ = lambda *a, **k: 'TAMPERED'
builtins.open = lambda *a, **k: 'TAMPERED'
builtins.print = lambda *a, **k: None
sys.modules['json'] = 'TAMPERED'
sys.meta_path.clear()
import os
result = [os, open('x')]
)PY");
  ASSERT_TRUE(tampered.ok) << tampered.ToJson().dump();
  EXPECT_EQ(tampered.result, json({"TAMPERED", "TAMPERED"}));
  for (int i = 0; i < 3; ++i) {  // more than the pool holds: every interpreter is fresh
    ExecResult next = Run(*host_, R"PY(
import builtins, json
out = {'json': json.__name__, 'import_self': builtins.__import__.__self__.__name__}  # pyhost's guard
try:
    open(args['secret_path'])
    out['open'] = 'opened'
except PermissionError:
    out['open'] = 'denied'
try:
    import socket
    out['socket'] = 'imported'
except ImportError:
    out['socket'] = 'denied'
print('printed')
result = out
)PY");
    ASSERT_TRUE(next.ok) << next.ToJson().dump();
    EXPECT_EQ(next.result, json({{"json", "json"}, {"import_self", "pyhost.guard"},
                                 {"open", "denied"}, {"socket", "denied"}}));
    EXPECT_EQ(next.stdout_stream.text, "printed\n");
    std::vector<std::string> problems;
    CheckNoSideEffects(next, problems);
    for (const std::string& p : problems) ADD_FAILURE() << p;
  }
  Repair();
}

// _tracemalloc is process-wide: started from one execution it hooks the allocators of
// the whole process (the host's and every interpreter's). Runs in a child process: the
// host may never answer again.
TEST_F(HostileTest, TracemallocCannotStartProcessWide) {
  auto body = [] {
    ExecResult started = Run(*host_, "_reach('_tracemalloc').start()\n");
    std::vector<std::string> problems = CheckDenial(FixedEscape("tracemalloc", ""), started);
    CheckNoSideEffects(started, problems);
    // The side effect: tracing is on for the whole process, seen from a later execution.
    ExecResult probe = Run(*host_, "result = _reach('_tracemalloc').is_tracing()\n");
    if (probe.result == json(true)) {
      problems.push_back("tracemalloc started by one execution is still tracing in the next one");
    }
    Run(*host_, "_reach('_tracemalloc').stop()\n");
    Repair();
    CheckHostAnswers(*host_, problems);
    return problems;
  };
  EXPECT_EXIT(RunIsolated(body, 10), ::testing::ExitedWithCode(0), "")
      << "tracemalloc must not be startable, and the host must keep answering";
}

// Objects the code keeps alive past the end of its execution are finalized when the
// interpreter is destroyed, after the policy has been lifted: __del__ must still be held
// to the policy (or never run).
TEST_F(HostileTest, FinalizerAtTeardownHasNoSideEffects) {
  ExecResult r = Run(*host_, R"PY(
import os, sys
class Bomb:
    # Everything __del__ needs is held here: module globals are gone at teardown.
    def __init__(self, canary, pipe_fd, witness):
        self.canary, self.pipe_fd, self.witness = canary, pipe_fd, witness
        self.open, self.write, self.system, self.marker = open, os.write, os.system, PWN
    def __del__(self):
        # First a witness in OUTPUT_DIR (refused too if teardown is locked down), then harm.
        for attempt in (lambda: self.open(self.witness, 'w').write('finalized'),
                        lambda: self.open(self.canary, 'w').write(self.marker),
                        lambda: self.write(self.pipe_fd, self.marker.encode()),
                        lambda: self.system('touch ' + self.canary + '.system')):
            try:
                attempt()
            except BaseException:
                pass
open(OUTPUT_DIR + '/keep.txt', 'w').write('keeps OUTPUT_DIR')
sys.bomb = Bomb(args['canary'], args['pipe_fd'], OUTPUT_DIR + '/finalized.txt')
result = 'armed'
)PY");
  ExpectNothingHappenedAtTeardown(r, "finalized.txt");
}

// Under a policy that allows threads, a thread outlives its execution: once the answer is
// given the interpreter's policy is lifted, and the thread is still running the code.
TEST_F(HostileTest, ThreadOutlivingItsExecutionHasNoSideEffects) {
  ExecResult r = Run(*host_, R"PY(
import os, queue, time
threading = queue.threading
def later(canary, pipe_fd, mark, write=os.write, sleep=time.sleep, open=open):
    sleep(0.15)
    for attempt in (lambda: open(canary, 'w').write(mark),
                    lambda: write(pipe_fd, mark.encode())):
        try:
            attempt()
        except BaseException:
            pass
threading.Thread(target=later, args=(args['canary'], args['pipe_fd'], PWN)).start()
result = 'started'
)PY", "threads");
  EXPECT_TRUE(r.ok) << r.ToJson().dump();
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  std::vector<std::string> problems;
  WaitForTeardown(problems);
  CheckNoSideEffects(r, problems);
  Repair();
  CheckHostAnswers(*host_, problems);
  for (const std::string& p : problems) ADD_FAILURE() << p;
}

// pyhost's own teardown (pyhost_support.before_end) looks up sys.modules['atexit'] and
// sys.modules['threading'] and calls them after the policy has been lifted.
TEST_F(HostileTest, ModulesTheCodeReplacedHaveNoSideEffectsAtTeardown) {
  ExecResult r = Run(*host_, R"PY(
import os, sys
class StandIn:
    def __init__(self, canary, pipe_fd, witness):
        self.canary, self.pipe_fd, self.witness = canary, pipe_fd, witness
        self.open, self.write, self.marker = open, os.write, PWN
    def _clear(self):
        # First a witness in OUTPUT_DIR (refused too if teardown is locked down), then harm.
        for attempt in (lambda: self.open(self.witness, 'w').write('called'),
                        lambda: self.open(self.canary, 'w').write(self.marker),
                        lambda: self.write(self.pipe_fd, self.marker.encode())):
            try:
                attempt()
            except BaseException:
                pass
open(OUTPUT_DIR + '/keep.txt', 'w').write('keeps OUTPUT_DIR')
sys.modules['atexit'] = StandIn(args['canary'], args['pipe_fd'], OUTPUT_DIR + '/called.txt')
result = 'armed'
)PY");
  ExpectNothingHappenedAtTeardown(r, "called.txt");
}

// A resident interpreter keeps module state between executions, and pyhost runs some
// Python of its own there before the next execution's policy is in force (it resets
// os.environ): code that replaced what that Python calls runs with no policy at all.
TEST_F(HostileTest, ResidentHookBeforeThePolicyIsInForceHasNoSideEffects) {
  ExecRequest request;
  request.isolation = Isolation::kResident;
  request.args = Args();
  request.code = absl::StrCat(kPrelude, R"PY(
import os
class Hooked(type(os.environ)):
    # Defaults, not globals: the execution's globals are cleared when it ends.
    def clear(self, _canary=args['canary'], _pipe=args['pipe_fd'], _mark=PWN, _open=open,
              _write=os.write):
        for attempt in (lambda: _open(_canary, 'w').write(_mark),
                        lambda: _write(_pipe, _mark.encode())):
            try:
                attempt()
            except BaseException:
                pass
        return super().clear()
hooked = Hooked(os.environ._data, os.environ.encodekey, os.environ.decodekey,
                os.environ.encodevalue, os.environ.decodevalue)
os.environ = hooked
result = 'armed'
)PY");
  absl::StatusOr<ExecResult> armed = host_->Execute(request);
  ASSERT_TRUE(armed.ok()) << armed.status();
  EXPECT_TRUE(armed->ok) << armed->ToJson().dump();
  std::vector<std::string> problems;
  CheckNoSideEffects(*armed, problems);
  request.code = "result = 'second'";
  absl::StatusOr<ExecResult> second = host_->Execute(request);
  ASSERT_TRUE(second.ok()) << second.status();
  CheckNoSideEffects(*second, problems);
  Repair();
  CheckHostAnswers(*host_, problems);
  for (const std::string& p : problems) ADD_FAILURE() << p;
}

TEST_F(HostileTest, ListenWithoutBindIsRefused) {
  std::map<unsigned long, int> before = OwnListeningSockets();
  ExecResult r;
  std::thread run([&] {
    r = Run(*host_, R"PY(
socket = _socket()
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.listen(1)
s.settimeout(2)
try:
    c, peer = s.accept()
    result = PWN + ' accepted a connection from ' + peer[0]
except OSError:
    result = 'nobody came'
)PY", "", {"api.example.com"});
  });
  std::optional<int> seen_port;
  bool connected = false;
  for (int i = 0; i < 100 && !seen_port; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
    for (const auto& [inode, port] : OwnListeningSockets()) {
      if (!before.count(inode) && port != port_) seen_port = port;
    }
  }
  if (seen_port) {
    int fd = ConnectLoopback(*seen_port);
    connected = fd >= 0;
    if (fd >= 0) close(fd);
  }
  run.join();
  Case expected = Perm("listen", "", {"listening for connections is not allowed"});
  std::vector<std::string> problems = CheckDenial(expected, r);
  if (seen_port) problems.push_back(absl::StrCat("the host process listened on port ", *seen_port));
  if (connected) problems.push_back("a connection from outside reached the sandbox's listener");
  CheckNoSideEffects(r, problems);
  Repair();
  CheckHostAnswers(*host_, problems);
  for (const std::string& p : problems) ADD_FAILURE() << p;
}

TEST_F(HostileTest, RawSocketCannotSniffHostTraffic) {
  std::string traffic = RandomToken("traffic-secret-");
  std::atomic<bool> done{false};
  std::thread sender([&] {
    while (!done) {
      ssize_t n = send(kConnClient, traffic.data(), traffic.size(), MSG_NOSIGNAL);
      (void)n;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  ExecResult r = Run(*host_, R"PY(
import time
socket = _socket()
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
raw.settimeout(0.1)
seen = b''
end = time.monotonic() + 0.8
while time.monotonic() < end:
    try:
        seen += raw.recv(65535)
    except OSError:
        pass
result = ''.join(ch for ch in seen.decode('latin-1') if ch.isalnum() or ch == '-')
)PY", "", {"api.example.com"});
  done = true;
  sender.join();
  char buffer[4096];
  while (recv(kConnServer, buffer, sizeof(buffer), MSG_DONTWAIT) > 0) {
  }
  Case expected = Perm("raw", "", kPolicyWords);
  std::vector<std::string> problems = CheckDenial(expected, r);
  CheckNoSideEffects(r, problems, {traffic});
  Repair();
  CheckHostAnswers(*host_, problems);
  for (const std::string& p : problems) ADD_FAILURE() << p;
}

// --- allowed network ------------------------------------------------------------------

// The listener saw exactly one connection, the code succeeded, nothing else changed.
void ExpectConnected(const ExecResult& r, int listener) {
  EXPECT_TRUE(r.ok) << r.ToJson().dump();
  EXPECT_EQ(r.result, json("connected")) << r.ToJson().dump();
  EXPECT_EQ(DrainConnections(listener, 1000), 1) << "the listener must see the connection";
}

constexpr char kConnectLocalhost[] = R"PY(
import socket
socket.create_connection(('localhost', args['port']), timeout=2).close()
result = 'connected'
)PY";

TEST_F(HostileTest, AllowedLocalhostUnderStrictWithAllowNet) {
  // The request's allowlist names localhost: the default policy must let the code reach it.
  ExecResult r = Run(*host_, kConnectLocalhost, "", {"localhost"});
  ExpectConnected(r, kListener);
  Repair();
}

TEST_F(HostileTest, AllowedLocalhostWithSocketPolicyAndAllowNet) {
  ExecResult r = Run(*host_, kConnectLocalhost, "socket", {"localhost"});
  ExpectConnected(r, kListener);
  Repair();
}

TEST_F(HostileTest, AllowedListedIpLiteral) {
  ExecResult r = Run(*host_, R"PY(
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(2)
s.connect(('127.0.0.1', args['port']))
s.close()
result = 'connected'
)PY", "socket", {"127.0.0.1"});
  ExpectConnected(r, kListener);
  Repair();
}

TEST_F(HostileTest, AllowedByEnvironmentAllowlistReadAtCreate) {
  setenv("PYHOST_NETWORK_ALLOWLIST", "localhost", 1);
  HostOptions options;
  options.pool_size = 1;
  options.work_root = *work_root_;
  absl::StatusOr<std::unique_ptr<Host>> host = Host::Create(options);
  unsetenv("PYHOST_NETWORK_ALLOWLIST");  // read at Create: changing it later changes nothing
  ASSERT_TRUE(host.ok()) << host.status();
  ExecResult r = Run(**host, kConnectLocalhost, "socket");
  ExpectConnected(r, kListener);
  // Without the variable, the suite's host refuses the same code.
  ExecResult refused = Run(*host_, kConnectLocalhost, "socket");
  EXPECT_FALSE(refused.ok);
  ASSERT_TRUE(refused.error.has_value());
  EXPECT_EQ(refused.error->type, "PermissionError") << refused.ToJson().dump();
  EXPECT_EQ(DrainConnections(kListener, 100), 0);
  Repair();
}

TEST_F(HostileTest, AllowlistPatternSemantics) {
  constexpr char kDecide[] = R"PY(
import socket
def decide(host):
    try:
        socket.getaddrinfo(host, 80)
        return 'allowed'
    except PermissionError:
        return 'denied'
    except OSError:
        return 'allowed'  # past the guard; the name just does not resolve here
result = {h: decide(h) for h in args['hosts']}
)PY";
  json args = Args();
  args["hosts"] = {"api.example.com", "API.Example.COM.", "other.example.com",
                   "a.corp.example", "x.y.corp.example", "corp.example", "corp.example.evil",
                   "evilcorp.example", "localhost"};
  ExecResult r = Run(*host_, kDecide, "socket", {"api.example.com", "*.corp.example"}, args);
  ASSERT_TRUE(r.ok) << r.ToJson().dump();
  EXPECT_EQ(r.result, json({{"api.example.com", "allowed"}, {"API.Example.COM.", "allowed"},
                            {"other.example.com", "denied"}, {"a.corp.example", "allowed"},
                            {"x.y.corp.example", "allowed"}, {"corp.example", "denied"},
                            {"corp.example.evil", "denied"}, {"evilcorp.example", "denied"},
                            {"localhost", "denied"}}));
  ExecResult all = Run(*host_, kDecide, "socket", {"*"}, args);
  ASSERT_TRUE(all.ok) << all.ToJson().dump();
  for (const auto& [host, decision] : all.result.items()) EXPECT_EQ(decision, "allowed") << host;
  ExecResult none = Run(*host_, kDecide, "socket", {}, args);
  ASSERT_TRUE(none.ok) << none.ToJson().dump();
  for (const auto& [host, decision] : none.result.items()) EXPECT_EQ(decision, "denied") << host;
  Repair();
}

// The resident interpreter keeps module state across executions whatever their policy:
// a connection a yolo execution left behind must be as guarded under strict as one
// strict opens (the authorizer is on every connection, and asks the policy in force).
TEST_F(HostileTest, SqliteConnectionLeftByYoloIsGuardedUnderStrict) {
  ExecRequest opened;
  opened.code = "import sqlite3, sys\nsys.kept_connection = sqlite3.connect(':memory:')\n";
  opened.isolation = Isolation::kResident;
  opened.policy = *NamedPolicy("yolo");
  absl::StatusOr<ExecResult> first = host_->Execute(opened);
  ASSERT_TRUE(first.ok() && first->ok) << (first.ok() ? first->ToJson().dump() : first.status().ToString());
  Repair();  // what yolo may do (code earlier cases left in this interpreter runs too) is not checked
  ExecRequest used;
  used.code = R"PY(
import sys
db = sys.kept_connection
db.execute("ATTACH DATABASE '%s' AS x" % args['canary'])
db.execute('CREATE TABLE x.t(a)')
)PY";
  used.args = Args();
  used.isolation = Isolation::kResident;
  absl::StatusOr<ExecResult> second = host_->Execute(used);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(second->error.has_value()) << second->ToJson().dump();
  EXPECT_EQ(second->error->type, "DatabaseError") << second->ToJson().dump();
  EXPECT_THAT(second->stderr_stream.text, ::testing::HasSubstr("denied by pyhost policy 'strict'"));
  std::vector<std::string> problems;
  CheckNoSideEffects(*second, problems);
  for (const std::string& p : problems) ADD_FAILURE() << p;
  Repair();
}

// --- allowed work ------------------------------------------------------------------------

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

// User functions (called back through PyGILState) work inside a sandbox, also with
// pyhost's authorizer on the connection (it is on every connection, yolo's too).
TEST_F(HostileTest, SqliteInMemoryWithUserFunctionUnderYolo) {
  ExecResult r = Run(*host_, R"PY(
import sqlite3
db = sqlite3.connect(':memory:')
db.create_function('dbl', 1, lambda v: v * 2)
db.execute('create table t(v)')
db.executemany('insert into t values (?)', [(1,), (2,)])
result = db.execute('select sum(dbl(v)) from t').fetchone()[0]
)PY", "yolo");
  EXPECT_TRUE(r.ok) << r.ToJson().dump();
  EXPECT_EQ(r.result, json(6));
  std::vector<std::string> problems;
  CheckNoSideEffects(r, problems);
  for (const std::string& p : problems) ADD_FAILURE() << p;
  Repair();
}

TEST_F(HostileTest, OutputDirFileIsListed) {
  ExecResult r = Run(*host_, R"PY(
with open(OUTPUT_DIR + '/x.txt', 'w') as f:
    f.write('artifact')
result = 'written'
)PY");
  ASSERT_TRUE(r.ok) << r.ToJson().dump();
  EXPECT_EQ(r.output.files, std::vector<std::string>{"x.txt"});
  ASSERT_FALSE(r.output.dir.empty());
  EXPECT_EQ(ReadFile(r.output.dir + "/x.txt"), "artifact");
  EXPECT_EQ(r.output.dir.rfind(*work_root_ + "/", 0), 0u) << r.output.dir;
  RemoveTree(r.output.dir);
  Repair();
}

}  // namespace
}  // namespace pyhost

#include "audit_hooks/audit_hook.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <utility>
#include <vector>

#include <opcode.h>
#include <pybind11/pytypes.h>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "audit_hooks/audit_rules.h"
#include "audit_hooks/sandbox.h"
#include "audit_hooks/sqlite_database.h"
#include "audit_hooks/stdlib_bytecode.h"
#include "bindings/py_string.h"
#include "modules/support.h"
#include "policy/module_rules.h"

namespace pyhost {
namespace {

namespace py = pybind11;

using audit::Access;
using audit::AddressRule;
using audit::AllOf;
using audit::Arg;
using audit::CheckNetworkAddress;
using audit::CheckPath;
using audit::Deny;
using audit::DenyAlways;
using audit::DenyIfEnforcing;
using audit::DenyImport;
using audit::DirFd;
using audit::Enforced;
using audit::Fd;
using audit::IsIpLiteral;
using audit::kChangesTheHost;
using audit::PathArg;
using audit::PathRule;
using audit::PathText;
using audit::RequireProcesses;
using audit::Rule;
using audit::SignalRule;
using audit::Text;

bool OpensForWriting(PyObject* mode, PyObject* flags) {
  if (mode != nullptr && PyUnicode_Check(mode)) {
    std::string m = Text(mode);
    return m.find_first_of("wax+") != std::string::npos;
  }
  std::optional<int> f = Fd(flags);
  return f && Sandbox::FlagsWrite(*f);
}

int CheckOpen(Sandbox& sandbox, const char* event, PyObject* args) {
  PyObject* path = Arg(args, 0);
  int dir_fd = sandbox.TakeOpenAt(path);  // os.open(..., dir_fd=): its guard says so
  return CheckPath(sandbox, event, path,
                   OpensForWriting(Arg(args, 1), Arg(args, 2)) ? Access::kWrite : Access::kRead,
                   dir_fd);
}

int CheckImportOf(Sandbox& sandbox, const std::string& module, bool through_importlib = true) {
  if (module.empty()) return 0;
  std::string why;
  if (sandbox.ImportAllowed(module, ImportIsUserInitiated(module, through_importlib), &why))
    return 0;
  return DenyImport(module, why);
}

// The module a stdlib file is ("json.decoder" for .../json/decoder.py, "os" for
// "<frozen os>"), and whether it is a package; empty for other filenames.
std::pair<std::string, bool> StdlibModuleOf(const std::string& filename) {
  if (absl::StartsWith(filename, "<frozen ") && absl::EndsWith(filename, ">")) {
    return {filename.substr(8, filename.size() - 9), false};
  }
  return {ModuleNameForStdlibPath(filename), absl::EndsWith(filename, "/__init__.py")};
}

std::string ParentOf(absl::string_view module) {
  size_t dot = module.rfind('.');
  return dot == absl::string_view::npos ? "" : std::string(module.substr(0, dot));
}

// Whether `frame` is executing an import statement (IMPORT_NAME) right now, as
// opposed to calling __import__ or importlib with a name it was handed, and the
// statement itself names `module`: its target (the name in the frame's own code,
// absolute, or relative to the package of the stdlib file the code is), one of the
// target's parent packages, or a submodule a from-import asks for. A relative import
// resolves against the frame's globals, and those can be forged
// (exec(stdlib_code, {"__package__": ...}), a module object handed to a loader): an
// import the file itself would not make is not the stdlib's own.
bool AtImportStatementOf(PyFrameObject* frame, PyCodeObject* code, const std::string& filename,
                         absl::string_view module) {
  int lasti = PyFrame_GetLasti(frame);
  auto bytes = py::reinterpret_steal<py::object>(PyCode_GetCode(code));
  if (!bytes || lasti < 0 || lasti + 1 >= PyBytes_GET_SIZE(bytes.ptr())) {
    PyErr_Clear();
    return false;
  }
  const auto* units = reinterpret_cast<const unsigned char*>(PyBytes_AS_STRING(bytes.ptr()));
  if (units[lasti] != IMPORT_NAME) return false;
  size_t oparg = units[lasti + 1];
  for (int i = lasti - 2, shift = 8; i >= 0 && units[i] == EXTENDED_ARG; i -= 2, shift += 8) {
    oparg |= static_cast<size_t>(units[i + 1]) << shift;
  }
  PyObject* names = code->co_names;
  if (!PyTuple_Check(names) || oparg >= static_cast<size_t>(PyTuple_GET_SIZE(names))) return false;
  const std::string name = Text(PyTuple_GET_ITEM(names, static_cast<Py_ssize_t>(oparg)));
  auto [own, is_package] = StdlibModuleOf(filename);
  std::vector<std::string> targets;
  if (!name.empty()) targets.push_back(name);  // absolute
  // Relative: level 1 is the file's package (a frozen module's may be itself).
  for (std::string base = is_package ? own : ParentOf(own); !base.empty(); base = ParentOf(base)) {
    targets.push_back(name.empty() ? base : absl::StrCat(base, ".", name));
  }
  if (absl::StartsWith(filename, "<frozen ") && !own.empty()) {
    targets.push_back(name.empty() ? own : absl::StrCat(own, ".", name));
  }
  for (const std::string& target : targets) {
    if (InPackage(target, module)) return true;  // the target or a parent package
    if (absl::StartsWith(module, absl::StrCat(target, ".")) &&
        module.find('.', target.size() + 1) == absl::string_view::npos) {
      return true;  // from target import submodule
    }
  }
  return false;
}

// The filename of each Python frame, innermost first.
template <typename Visit>  // bool(filename, frame, code): false stops the walk
void WalkFrames(Visit visit) {
  PyFrameObject* borrowed = PyEval_GetFrame();
  py::object frame = py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(borrowed));
  while (frame) {
    auto code = py::reinterpret_steal<py::object>(reinterpret_cast<PyObject*>(
        PyFrame_GetCode(reinterpret_cast<PyFrameObject*>(frame.ptr()))));
    auto* co = reinterpret_cast<PyCodeObject*>(code.ptr());
    if (!visit(Text(co->co_filename), reinterpret_cast<PyFrameObject*>(frame.ptr()), co)) return;
    frame = py::reinterpret_steal<py::object>(reinterpret_cast<PyObject*>(
        PyFrame_GetBack(reinterpret_cast<PyFrameObject*>(frame.ptr()))));
  }
}

// importlib, and pyhost's own Python (its import gate finder among it).
bool IsImportMachinery(const std::string& filename) {
  static const std::string importlib_dir = absl::StrCat(StdlibDir(), "/importlib/");
  return absl::StartsWith(filename, "<frozen importlib") ||
         absl::StartsWith(filename, importlib_dir) || modules::IsSupportFilename(filename);
}

// Whether a filename (str, bytes or path; a code object's co_filename) is one the
// import gate trusts: a stdlib file, "<frozen ...>", pyhost's own.
// A str is read as displayed (escapes replace only what is not text, never a prefix),
// so a name that is not text still claims what it starts with.
std::string ClaimedFilename(PyObject* filename) {
  return filename != nullptr && PyUnicode_Check(filename) ? DisplayText(filename) : Text(filename);
}

bool ClaimsTrustedFilename(PyObject* filename) {
  return IsTrustedFilename(ClaimedFilename(filename), StdlibDir());
}

// Whether `replacement` is `code` with other flags only (what code.replace(co_flags=)
// makes: the same bytecode, the same constant, name and table objects, equal local
// variable tables; these hold only str and bytes, so comparing runs no code).
bool SameCodeButFlags(PyObject* code, PyObject* replacement) {
  if (!PyCode_Check(code) || !PyCode_Check(replacement)) return false;
  auto* a = reinterpret_cast<PyCodeObject*>(code);
  auto* b = reinterpret_cast<PyCodeObject*>(replacement);
  auto equal = [](PyObject* x, PyObject* y) {
    int same = PyObject_RichCompareBool(x, y, Py_EQ);
    if (same < 0) PyErr_Clear();
    return same == 1;
  };
  if (a->co_consts != b->co_consts || a->co_names != b->co_names ||
      !equal(a->co_localsplusnames, b->co_localsplusnames) ||
      !equal(a->co_localspluskinds, b->co_localspluskinds) || a->co_filename != b->co_filename ||
      a->co_name != b->co_name || a->co_qualname != b->co_qualname ||
      a->co_linetable != b->co_linetable || a->co_exceptiontable != b->co_exceptiontable ||
      a->co_argcount != b->co_argcount || a->co_posonlyargcount != b->co_posonlyargcount ||
      a->co_kwonlyargcount != b->co_kwonlyargcount || a->co_stacksize != b->co_stacksize ||
      a->co_firstlineno != b->co_firstlineno) {
    return false;
  }
  auto bytes_a = py::reinterpret_steal<py::object>(PyCode_GetCode(a));
  auto bytes_b = py::reinterpret_steal<py::object>(PyCode_GetCode(b));
  if (!bytes_a || !bytes_b) PyErr_Clear();
  return bytes_a && bytes_b && equal(bytes_a.ptr(), bytes_b.ptr());
}

// A symbolic link in a writable directory must lead to a writable path: C code that
// opens paths without an audit event (SQLite's journal and WAL files next to a
// database) follows it. A relative target may not climb (".."), so that moving the
// link (os.rename checks names, not what links point to) keeps it inside.
int CheckSymlink(Sandbox& sandbox, const char* event, PyObject* target, PyObject* link,
                 int dir_fd) {
  if (CheckPath(sandbox, event, link, Access::kWriteEntry, dir_fd) != 0) return -1;
  if (!sandbox.policy().enforce) return 0;
  PathArg text = PathText(target);
  PathArg where = PathText(link);
  if (text.kind != PathArg::kPath || where.kind != PathArg::kPath) {
    return text.kind == PathArg::kUnencodable ? CheckPath(sandbox, event, target, Access::kWrite)
                                              : 0;
  }
  std::string resolved = text.text;
  if (text.text.empty() || text.text[0] != '/') {
    for (absl::string_view part : absl::StrSplit(text.text, '/')) {
      if (part == "..") {
        return Deny(sandbox, absl::StrCat(event, "('", text.text, "')"),
                    "a relative link target may not contain '..'");
      }
    }
    size_t slash = where.text.rfind('/');
    resolved = slash == std::string::npos
                   ? text.text
                   : absl::StrCat(where.text.substr(0, slash + 1), text.text);
  }
  // Relative to the link's directory: dir_fd's too, when the link's name is relative.
  const int base = where.text[0] != '/' && resolved[0] != '/' ? dir_fd : -1;
  if (sandbox.JudgePath(resolved, Access::kWrite, base) == Sandbox::PathVerdict::kAllowed) return 0;
  return Deny(
      sandbox, absl::StrCat(event, "('", text.text, "')"),
      "the link's target is outside the writable paths (WORK_DIR, OUTPUT_DIR and the policy's)");
}

// --- the rules ----------------------------------------------------------------------

// fork() in a subinterpreter copies the whole host process (its other threads gone,
// its locks held) into a child that cannot run on: refused whatever the policy, as
// 3.12 refuses it, with an error that is both a RuntimeError (3.12's) and a
// PermissionError naming the rule. subprocess, which execs at once, is governed by
// Policy::processes.
int NoFork(Sandbox& sandbox, const char* event, PyObject*) {
  std::string message = absl::StrCat(
      event, " denied by pyhost policy '", sandbox.policy().name, "': ",
      sandbox.policy().processes
          ? "fork() is not supported in a subinterpreter (the child would be a copy of the "
            "whole host process); start programs with subprocess"
          : "processes are not allowed");
  PyObject* type =
      sandbox.fork_error_type() != nullptr ? sandbox.fork_error_type() : PyExc_PermissionError;
  PyErr_SetString(type, message.c_str());
  return -1;
}

const absl::flat_hash_map<std::string, Rule>& Rules() {
  static const auto* rules = new absl::flat_hash_map<std::string, Rule>{
      // Files.
      {"open", CheckOpen},
      {"os.listdir", PathRule(0, Access::kRead)},
      {"os.scandir", PathRule(0, Access::kRead)},
      {"os.getxattr", PathRule(0, Access::kRead)},
      {"os.listxattr", PathRule(0, Access::kRead)},
      // Events of calls that take dir_fd carry it (os.open's does not: guards/hardening.h).
      {"os.mkdir", PathRule(0, Access::kWriteEntry, 2)},
      {"os.rmdir", PathRule(0, Access::kWriteEntry, 1)},
      {"os.remove", PathRule(0, Access::kWriteEntry, 1)},
      {"os.chmod", PathRule(0, Access::kWrite, 2)},
      {"os.chown", PathRule(0, Access::kWrite, 3)},
      {"os.chflags", PathRule(0, Access::kWrite)},
      {"os.truncate", PathRule(0, Access::kWrite)},
      {"os.utime", PathRule(0, Access::kWrite, 3)},
      {"os.setxattr", PathRule(0, Access::kWrite)},
      {"os.removexattr", PathRule(0, Access::kWrite)},
      // os.rename, also os.replace.
      {"os.rename", AllOf(PathRule(0, Access::kWriteEntry, 2), PathRule(1, Access::kWriteEntry, 3))},
      // A hard link writes its source: both must be writable.
      {"os.link", AllOf(PathRule(0, Access::kWrite, 2), PathRule(1, Access::kWriteEntry, 3))},
      {"os.symlink", [](Sandbox& s, const char* e, PyObject* a) {
         return CheckSymlink(s, e, Arg(a, 0), Arg(a, 1), DirFd(Arg(a, 2))); }},
      {"shutil.copyfile", AllOf(PathRule(0, Access::kRead), PathRule(1, Access::kWrite))},
      {"shutil.copymode", AllOf(PathRule(0, Access::kRead), PathRule(1, Access::kWrite))},
      {"shutil.copystat", AllOf(PathRule(0, Access::kRead), PathRule(1, Access::kWrite))},
      {"shutil.copytree", AllOf(PathRule(0, Access::kRead), PathRule(1, Access::kWrite))},
      {"shutil.move", AllOf(PathRule(0, Access::kWrite), PathRule(1, Access::kWrite))},
      {"shutil.rmtree", PathRule(0, Access::kWrite)},
      {"shutil.chown", PathRule(0, Access::kWrite)},
      {"shutil.make_archive", PathRule(0, Access::kWrite)},
      {"shutil.unpack_archive", AllOf(PathRule(0, Access::kRead), PathRule(1, Access::kWrite))},
      {"tempfile.mkstemp", PathRule(0, Access::kWrite)},
      {"tempfile.mkdtemp", PathRule(0, Access::kWrite)},
      // What SQLite opens inside SQL is its authorizer's (guards/sqlite.h).
      {"sqlite3.connect", [](Sandbox& s, const char* e, PyObject* a) {
         PathArg db = PathText(Arg(a, 0));
         if (db.kind == PathArg::kUnencodable || db.kind == PathArg::kUnstable) {
           return CheckPath(s, e, Arg(a, 0), Access::kWrite);
         }
         std::string why;
         if (SqliteDatabaseAllowed(s, db.text, &why)) return 0;
         return Deny(s, absl::StrCat(e, "('", db.text, "')"), why); }},
      {"sqlite3.enable_load_extension", DenyIfEnforcing("native extensions cannot be loaded")},
      {"sqlite3.load_extension", DenyIfEnforcing("native extensions cannot be loaded")},
      // Processes.
      {"subprocess.Popen", RequireProcesses()}, {"os.system", RequireProcesses()},
      {"os.exec", RequireProcesses()}, {"os.posix_spawn", RequireProcesses()},
      {"os.spawn", RequireProcesses()}, {"os.fork", NoFork}, {"os.forkpty", NoFork},
      {"pty.spawn", RequireProcesses()}, {"os.startfile", RequireProcesses()},
      {"os.kill", SignalRule(getpid)}, {"os.killpg", SignalRule(getpgrp)},
      {"signal.pthread_kill", RequireProcesses()},
      // The host process's own state: never.
      {"os.putenv", DenyAlways(kChangesTheHost)}, {"os.unsetenv", DenyAlways(kChangesTheHost)},
      {"os.chdir", DenyAlways(kChangesTheHost)}, {"resource.setrlimit", DenyAlways(kChangesTheHost)},
      {"resource.prlimit", DenyAlways(kChangesTheHost)},
      {"sys._current_frames", DenyAlways(kChangesTheHost)},
      {"sys._current_exceptions", DenyAlways(kChangesTheHost)},
      {"socket.sethostname", DenyAlways(kChangesTheHost)},
      {"fcntl.fcntl", PathRule(0, Access::kWrite)},
      {"fcntl.ioctl", PathRule(0, Access::kWrite)},
      {"fcntl.flock", PathRule(0, Access::kWrite)},
      {"fcntl.lockf", PathRule(0, Access::kWrite)},
      // Network.
      {"socket.__new__", [](Sandbox& s, const char* e, PyObject* a) {
         if (!s.policy().enforce) return 0;
         // The socket object around a socketpair() descriptor (asyncio's self-pipe):
         // a connected pair inside the process, reaching nothing outside.
         if (s.TakeAdoptingLocalSocket(Arg(a, 0))) return 0;
         if (s.policy().network.empty() && s.activation().extra_network.empty()) {
           return Deny(s, e, "no network access (the network allowlist is empty)");
         }
         std::optional<int> family = Fd(Arg(a, 1));
         std::optional<int> type = Fd(Arg(a, 2));
         int kind = type ? (*type & 0xf) : -1;  // without SOCK_NONBLOCK / SOCK_CLOEXEC
         if (family && (*family == AF_INET || *family == AF_INET6) &&
             (kind == SOCK_STREAM || kind == SOCK_DGRAM)) {
           return 0;
         }
         return Deny(s, e, "only IPv4/IPv6 stream or datagram sockets, created with an "
                           "explicit family and type"); }},
      {"socket.connect", AddressRule(1)},
      {"socket.sendto", AddressRule(1)},
      {"socket.sendmsg", AddressRule(1, /*optional=*/true)},
      {"socket.bind", DenyIfEnforcing("listening for connections is not allowed")},
      // Raised by pyhost's guard (guards/shared_types.h): listen() on an unbound
      // socket binds an ephemeral port with no "socket.bind" event.
      {"socket.listen", DenyIfEnforcing("listening for connections is not allowed")},
      {"socket.getaddrinfo", [](Sandbox& s, const char* e, PyObject* a) {
         if (!s.policy().enforce || Arg(a, 0) == Py_None) return 0;
         std::string host = Text(Arg(a, 0));
         if (IsIpLiteral(host) ? s.AddressAllowed(host) : s.HostAllowed(host)) return 0;
         return Deny(s, absl::StrCat(e, "('", host, "')"), "host not on the network allowlist"); }},
      {"socket.gethostbyname", [](Sandbox& s, const char* e, PyObject* a) {
         if (!s.policy().enforce || s.HostAllowed(Text(Arg(a, 0)))) return 0;
         return Deny(s, absl::StrCat(e, "('", Text(Arg(a, 0)), "')"), "host not on the network allowlist"); }},
      {"socket.gethostbyaddr", [](Sandbox& s, const char* e, PyObject* a) {
         if (!s.policy().enforce || s.AddressAllowed(Text(Arg(a, 0)))) return 0;
         return Deny(s, e, "address not on the network allowlist"); }},
      {"socket.getnameinfo", DenyIfEnforcing("reverse lookups are not allowed")},
      // Introspection and code surgery.
      {"gc.get_objects", DenyIfEnforcing("heap walks reach the host's objects")},
      {"gc.get_referrers", DenyIfEnforcing("heap walks reach the host's objects")},
      {"gc.get_referents", DenyIfEnforcing("heap walks reach the host's objects")},
      // Code is trusted by its filename (the import gate, CallerIsImportMachinery): code
      // objects the code builds, renames, binds to other globals or swaps in may not
      // claim a trusted one. Others are the code's own, as compile() makes them.
      // (types.coroutine's flag change on a stdlib generator is vetted by
      // guards/shared_types.h.)
      {"code.__new__", [](Sandbox& s, const char* e, PyObject* a) {
         if (s.TakeCodeReplaceVetted() || !ClaimsTrustedFilename(Arg(a, 1))) return 0;
         return Enforced(s, absl::StrCat(e, "(filename='", Text(Arg(a, 1)), "')").c_str(),
                         "code objects cannot be built or altered to claim a stdlib, frozen or pyhost filename"); }},
      {"function.__new__", [](Sandbox& s, const char* e, PyObject* a) {
         PyObject* code = Arg(a, 0);
         if (code == nullptr || !PyCode_Check(code) ||
             !ClaimsTrustedFilename(reinterpret_cast<PyCodeObject*>(code)->co_filename)) {
           return 0;
         }
         return Enforced(s, e, "functions cannot be built from code objects of the stdlib, frozen modules or pyhost"); }},
      // importlib loads every .pyc with marshal.loads; the code may call importlib's
      // helpers with bytes of its own, which must not pass for the stdlib's.
      {"marshal.loads", [](Sandbox& s, const char* e, PyObject* a) {
         if (!CallerIsImportMachinery()) return Enforced(s, e, "code cannot be loaded from bytes");
         PyObject* data = Arg(a, 0);
         if (!s.policy().enforce || data == nullptr || !PyBytes_Check(data)) return 0;
         absl::Status origin = CheckStdlibClaim(
             absl::string_view(PyBytes_AS_STRING(data), static_cast<size_t>(PyBytes_GET_SIZE(data))),
             StdlibDir());
         return origin.ok() ? 0 : Deny(s, e, origin.message()); }},
      {"marshal.load", DenyIfEnforcing("code cannot be loaded from bytes")},
      {"mmap.__new__", [](Sandbox& s, const char* e, PyObject* a) {
         // (fileno, length, access, offset): -1 maps anonymous memory.
         std::optional<int> fd = Fd(Arg(a, 0));
         if (fd && *fd != -1 && !s.OwnsFd(*fd)) {
           return Deny(s, absl::StrCat(e, "(fd ", *fd, ")"),
                       "file descriptors the code did not open belong to the host");
         }
         return Enforced(s, e, "memory maps are not allowed"); }},
      {"builtins.breakpoint", DenyIfEnforcing("no debugger")},
      {"webbrowser.open", DenyIfEnforcing("no browser")},
      {"object.__getattr__", [](Sandbox& s, const char* e, PyObject* a) {
         std::string name = Text(Arg(a, 1));
         if (name != "gi_frame" && name != "cr_frame" && name != "ag_frame") return 0;
         return Enforced(s, absl::StrCat(e, "('", name, "')").c_str(), "suspended frames are not reachable"); }},
      {"object.__setattr__", [](Sandbox& s, const char*, PyObject* a) {
         if (Text(Arg(a, 1)) != "__code__") return 0;
         // Between the code's own functions only (and types.coroutine's flag).
         PyObject* function = Arg(a, 0);
         PyObject* code = Arg(a, 2);
         PyObject* current = function != nullptr && PyFunction_Check(function)
                                 ? PyFunction_GET_CODE(function) : nullptr;
         auto trusted = [](PyObject* c) {
           return c != nullptr && PyCode_Check(c) &&
                  ClaimsTrustedFilename(reinterpret_cast<PyCodeObject*>(c)->co_filename);
         };
         if (!trusted(code) && !trusted(current)) return 0;
         if (current != nullptr && code != nullptr && SameCodeButFlags(current, code)) return 0;
         return Enforced(s, "setting __code__",
                         "code objects cannot be swapped in or out of the stdlib's, frozen or pyhost functions"); }},
      {"compile", [](Sandbox& s, const char* e, PyObject* a) {
         if (!ClaimsTrustedFilename(Arg(a, 1))) return 0;
         return Enforced(s, absl::StrCat(e, "(filename='", ClaimedFilename(Arg(a, 1)), "')").c_str(),
                         "a compiled string may not claim to be a stdlib, frozen or pyhost module"); }},
      // Imports, by every route: import statements and __import__ ("import"),
      // extension modules loaded by any loader ("import" from the dynamic loader),
      // and source modules run by importlib however it was reached ("exec").
      {"import", [](Sandbox& s, const char*, PyObject* a) { return CheckImportName(s, Arg(a, 0)) ? 0 : -1; }},
      {"exec", [](Sandbox& s, const char*, PyObject* a) {
         PyObject* code = Arg(a, 0);
         if (code == nullptr || !PyCode_Check(code)) return 0;
         auto* co = reinterpret_cast<PyCodeObject*>(code);
         if (Text(co->co_name) != "<module>") return 0;
         return CheckImportOf(s, ModuleNameForStdlibPath(Text(co->co_filename))); }},
  };
  return *rules;
}

// Events that give the code a descriptor it cannot use by number (so not counted
// against its cap): under every policy, the process must keep some free.
bool TakesADescriptor(const char* event) {
  for (const char* taking : {"os.scandir", "sqlite3.connect", "mmap.__new__"}) {
    if (strcmp(event, taking) == 0) return true;
  }
  return false;
}

int AuditHook(const char* event, PyObject* args, void*) {
  if (TakesADescriptor(event)) {
    Sandbox* sandbox = Sandbox::Current();
    if (sandbox != nullptr && !sandbox->host_mode() && !Sandbox::CheckProcessDescriptors()) {
      return -1;
    }
  }
  const auto& rules = Rules();
  auto rule = rules.end();
  if (absl::StartsWith(event, "ctypes.")) {
    Sandbox* sandbox = Sandbox::Current();
    if (sandbox == nullptr || sandbox->host_mode()) return 0;
    return Enforced(*sandbox, event, "ctypes reaches native memory");
  }
  rule = rules.find(event);
  if (rule == rules.end()) return 0;
  Sandbox* sandbox = Sandbox::Current();
  if (sandbox == nullptr) return 0;
  if (sandbox->host_mode()) {
    // Prewarming too: once in an interpreter, such a module's shared objects are
    // the code's (the main interpreter's own imports never reach a sandbox).
    const bool shared = strcmp(event, "import") == 0 && SharesProcessState(Text(Arg(args, 0))) &&
                        PyThreadState_Get()->interp != PyInterpreterState_Main();
    return shared ? DenyImport(Text(Arg(args, 0)),
                               "its state is shared by every interpreter of "
                               "the process on Python 3.11")
                  : 0;
  }
  return rule->second(*sandbox, event, args);
}

}  // namespace

void InstallAuditHook() {
  static const bool installed = [] {
    Rules();  // built before any event can arrive
    return PySys_AddAuditHook(AuditHook, nullptr) == 0;
  }();
  (void)installed;
}

bool CallerIsImportMachinery() {
  bool machinery = true;  // no Python frame: pyhost's own C calls
  WalkFrames([&](const std::string& filename, PyFrameObject*, PyCodeObject*) {
    machinery = IsImportMachinery(filename);
    return false;
  });
  return machinery;
}

bool ImportIsUserInitiated(absl::string_view module, bool through_importlib) {
  const std::string& stdlib = StdlibDir();
  bool user = false;  // no Python frame: pyhost itself, or C code
  WalkFrames([&](const std::string& filename, PyFrameObject* frame, PyCodeObject* code) {
    if (through_importlib && IsImportMachinery(filename)) {
      // importlib's own modules import for themselves too (importlib.util's body).
      if (!AtImportStatementOf(frame, code, filename, module)) return true;  // look further out
      user = false;
      return false;
    }
    bool stdlib_frame = absl::StartsWith(filename, "<frozen ") ||
                        (!stdlib.empty() && absl::StartsWith(filename, stdlib + "/"));
    // A stdlib module imports for itself with an import statement; one that calls
    // __import__ or importlib with a name it was handed (a callback, pickle, a parser
    // list) imports on behalf of its caller: that is the code's import.
    bool machinery = IsImportMachinery(filename);  // importlib, and pyhost's own Python
    user = !(stdlib_frame || machinery) ||
           !(machinery || AtImportStatementOf(frame, code, filename, module));
    return false;
  });
  return user;
}

bool CheckImportName(Sandbox& sandbox, PyObject* name, bool through_importlib) {
  if (name == nullptr || !PyUnicode_Check(name)) return true;
  if (std::optional<std::string> module = Utf8(name)) {
    return CheckImportOf(sandbox, *module, through_importlib) == 0;
  }
  std::string why;
  if (sandbox.UnencodableImportAllowed(DisplayText(name), &why)) return true;
  auto message = py::reinterpret_steal<py::object>(PyUnicode_FromString(why.c_str()));
  if (message) PyErr_SetImportError(message.ptr(), name, nullptr);
  return false;
}

std::string ModuleNameForStdlibPath(absl::string_view path) {
  const std::string& stdlib = StdlibDir();
  if (stdlib.empty() || !absl::StartsWith(path, stdlib + "/") || !absl::EndsWith(path, ".py")) {
    return "";
  }
  std::string relative(path.substr(stdlib.size() + 1, path.size() - stdlib.size() - 4));
  if (absl::EndsWith(relative, "/__init__")) relative.resize(relative.size() - 9);
  return absl::StrReplaceAll(relative, {{"/", "."}});
}

}  // namespace pyhost

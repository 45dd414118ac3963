#include "audit_hooks/audit_hook.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>

#include <opcode.h>
#include <pybind11/pytypes.h>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "audit_hooks/sandbox.h"
#include "audit_hooks/stdlib_bytecode.h"

namespace pyhost {
namespace {

namespace py = pybind11;

// --- reading event arguments ------------------------------------------------------

PyObject* Arg(PyObject* args, Py_ssize_t i) {
  return PyTuple_Check(args) && i < PyTuple_GET_SIZE(args) ? PyTuple_GET_ITEM(args, i) : nullptr;
}

// A path argument as text: str, bytes or os.PathLike. nullopt for anything else
// (None, an int file descriptor).
std::optional<std::string> PathText(PyObject* value) {
  if (value == nullptr || value == Py_None || PyLong_Check(value)) return std::nullopt;
  auto fspath = py::reinterpret_steal<py::object>(PyOS_FSPath(value));
  if (!fspath) {
    PyErr_Clear();
    return std::nullopt;
  }
  if (PyBytes_Check(fspath.ptr())) {
    return std::string(PyBytes_AS_STRING(fspath.ptr()),
                       static_cast<size_t>(PyBytes_GET_SIZE(fspath.ptr())));
  }
  Py_ssize_t size = 0;
  const char* text = PyUnicode_AsUTF8AndSize(fspath.ptr(), &size);
  if (text == nullptr) {
    PyErr_Clear();
    return std::nullopt;
  }
  return std::string(text, static_cast<size_t>(size));
}

std::string Text(PyObject* value) {
  if (value == nullptr) return "";
  if (PyUnicode_Check(value)) {
    const char* text = PyUnicode_AsUTF8(value);
    if (text != nullptr) return text;
    PyErr_Clear();
    return "";
  }
  if (std::optional<std::string> path = PathText(value)) return *path;
  return "";
}

std::optional<int> Fd(PyObject* value) {
  if (value == nullptr || !PyLong_Check(value)) return std::nullopt;
  int overflow = 0;
  long fd = PyLong_AsLongAndOverflow(value, &overflow);
  if (overflow != 0 || fd < INT_MIN || fd > INT_MAX) return std::nullopt;
  return static_cast<int>(fd);
}

bool IsIpLiteral(const std::string& host) {
  unsigned char buffer[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

// --- denials ------------------------------------------------------------------------

int Deny(const Sandbox& sandbox, absl::string_view operation, absl::string_view rule) {
  std::string message = absl::StrCat(operation, " denied by pyhost policy '",
                                     sandbox.policy().name, "': ", rule);
  PyErr_SetString(PyExc_PermissionError, message.c_str());
  return -1;
}

int DenyImport(absl::string_view module, const std::string& why) {
  auto name = py::reinterpret_steal<py::object>(
      PyUnicode_FromStringAndSize(module.data(), static_cast<Py_ssize_t>(module.size())));
  auto message = py::reinterpret_steal<py::object>(PyUnicode_FromString(why.c_str()));
  if (name && message) PyErr_SetImportError(message.ptr(), name.ptr(), nullptr);
  return -1;
}

using Access = Sandbox::FileAccess;

// `dir_fd`: the directory a relative path is relative to, -1 for the cwd.
int CheckPath(Sandbox& sandbox, absl::string_view event, PyObject* path, Access access,
              int dir_fd = -1) {
  if (std::optional<int> fd = Fd(path)) {
    if (sandbox.OwnsFd(*fd)) return 0;
    return Deny(sandbox, absl::StrCat(event, "(fd ", *fd, ")"),
                "file descriptors the code did not open belong to the host");
  }
  std::optional<std::string> text = PathText(path);
  if (!text) {
    if (path != nullptr && path != Py_None) return 0;  // not a path at all
    text = ".";  // os.listdir() / os.scandir(): the host's current directory
  }
  switch (sandbox.JudgePath(*text, access, dir_fd)) {
    case Sandbox::PathVerdict::kAllowed:
      return 0;
    case Sandbox::PathVerdict::kHostDescriptor:
      return Deny(sandbox, absl::StrCat(event, "('", *text, "')"),
                  "it reaches a file descriptor of the host (one the code did not open), "
                  "whatever the policy");
    case Sandbox::PathVerdict::kOutsideRoots:
      break;
  }
  return Deny(sandbox, absl::StrCat(event, "('", *text, "')"),
              access == Access::kRead
                  ? "outside the readable paths"
                  : "outside the writable paths (WORK_DIR, OUTPUT_DIR and the policy's)");
}

// A dir_fd argument of an audit event: an int, -1 when the call had none.
int DirFd(PyObject* value) { return Fd(value).value_or(-1); }

int CheckRead(Sandbox& sandbox, absl::string_view event, PyObject* path, int dir_fd = -1) {
  return CheckPath(sandbox, event, path, Access::kRead, dir_fd);
}

int CheckWrite(Sandbox& sandbox, absl::string_view event, PyObject* path, int dir_fd = -1) {
  return CheckPath(sandbox, event, path, Access::kWrite, dir_fd);
}

bool OpensForWriting(PyObject* mode, PyObject* flags) {
  if (mode != nullptr && PyUnicode_Check(mode)) {
    std::string m = Text(mode);
    return m.find_first_of("wax+") != std::string::npos;
  }
  std::optional<int> f = Fd(flags);
  return f && ((*f & O_ACCMODE) != O_RDONLY || (*f & (O_CREAT | O_TRUNC | O_APPEND)) != 0);
}

int CheckOpen(Sandbox& sandbox, const char* event, PyObject* args) {
  PyObject* path = Arg(args, 0);
  int dir_fd = sandbox.TakeOpenAt(path);  // os.open(..., dir_fd=): its guard says so
  return OpensForWriting(Arg(args, 1), Arg(args, 2)) ? CheckWrite(sandbox, event, path, dir_fd)
                                                     : CheckRead(sandbox, event, path, dir_fd);
}

int CheckImportOf(Sandbox& sandbox, const std::string& module) {
  if (module.empty()) return 0;
  std::string why;
  if (sandbox.ImportAllowed(module, ImportIsUserInitiated(), &why)) return 0;
  return DenyImport(module, why);
}

// Whether `frame` is executing an import statement (IMPORT_NAME) right now, as
// opposed to calling __import__ or importlib with a name it was handed.
bool AtImportStatement(PyFrameObject* frame, PyCodeObject* code) {
  int lasti = PyFrame_GetLasti(frame);
  auto bytes = py::reinterpret_steal<py::object>(PyCode_GetCode(code));
  if (!bytes || lasti < 0 || lasti >= PyBytes_GET_SIZE(bytes.ptr())) {
    PyErr_Clear();
    return false;
  }
  return static_cast<unsigned char>(PyBytes_AS_STRING(bytes.ptr())[lasti]) == IMPORT_NAME;
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

// pyhost's own Python (its import gate finder among it) runs under this filename.
constexpr char kSupportFilename[] = "<pyhost_support>";

bool IsImportMachinery(const std::string& filename) {
  static const std::string importlib_dir = absl::StrCat(StdlibDir(), "/importlib/");
  return absl::StartsWith(filename, "<frozen importlib") ||
         absl::StartsWith(filename, importlib_dir) || filename == kSupportFilename;
}


// --- the rules ----------------------------------------------------------------------

using Rule = std::function<int(Sandbox&, const char* event, PyObject* args)>;

int NoProcesses(Sandbox& sandbox, const char* event, PyObject*) {
  if (sandbox.policy().processes) return 0;
  return Deny(sandbox, event, "processes are not allowed");
}

// Process-wide state belongs to the host, whatever the policy.
int HostState(Sandbox& sandbox, const char* event, PyObject*) {
  return Deny(sandbox, event, "it changes the whole host process");
}

int Enforced(Sandbox& sandbox, const char* event, absl::string_view rule) {
  if (!sandbox.policy().enforce) return 0;
  return Deny(sandbox, event, rule);
}

int CheckNetworkAddress(Sandbox& sandbox, const char* event, PyObject* address) {
  if (!sandbox.policy().enforce) return 0;
  if (address != nullptr && PyTuple_Check(address) && PyTuple_GET_SIZE(address) >= 2) {
    std::string host = Text(PyTuple_GET_ITEM(address, 0));
    bool allowed = IsIpLiteral(host) ? sandbox.AddressAllowed(host) : sandbox.HostAllowed(host);
    if (allowed) return 0;
    return Deny(sandbox, absl::StrCat(event, "('", host, "')"),
                "host not on the network allowlist");
  }
  return Deny(sandbox, event, "only IPv4/IPv6 addresses of allowlisted hosts are reachable");
}

const absl::flat_hash_map<std::string, Rule>& Rules() {
  static const auto* rules = new absl::flat_hash_map<std::string, Rule>{
      // Files.
      {"open", [](Sandbox& s, const char* e, PyObject* a) { return CheckOpen(s, e, a); }},
      {"os.listdir", [](Sandbox& s, const char* e, PyObject* a) { return CheckRead(s, e, Arg(a, 0)); }},
      {"os.scandir", [](Sandbox& s, const char* e, PyObject* a) { return CheckRead(s, e, Arg(a, 0)); }},
      {"os.getxattr", [](Sandbox& s, const char* e, PyObject* a) { return CheckRead(s, e, Arg(a, 0)); }},
      {"os.listxattr", [](Sandbox& s, const char* e, PyObject* a) { return CheckRead(s, e, Arg(a, 0)); }},
      {"os.mkdir", [](Sandbox& s, const char* e, PyObject* a) { return CheckWrite(s, e, Arg(a, 0), DirFd(Arg(a, 2))); }},
      {"os.rmdir", [](Sandbox& s, const char* e, PyObject* a) { return CheckWrite(s, e, Arg(a, 0), DirFd(Arg(a, 1))); }},
      {"os.remove", [](Sandbox& s, const char* e, PyObject* a) { return CheckWrite(s, e, Arg(a, 0), DirFd(Arg(a, 1))); }},
      {"os.chmod", [](Sandbox& s, const char* e, PyObject* a) { return CheckWrite(s, e, Arg(a, 0), DirFd(Arg(a, 2))); }},
      {"os.chown", [](Sandbox& s, const char* e, PyObject* a) { return CheckWrite(s, e, Arg(a, 0), DirFd(Arg(a, 3))); }},
      {"os.chflags", [](Sandbox& s, const char* e, PyObject* a) { return CheckWrite(s, e, Arg(a, 0)); }},
      {"os.truncate", [](Sandbox& s, const char* e, PyObject* a) { return CheckWrite(s, e, Arg(a, 0)); }},
      {"os.utime", [](Sandbox& s, const char* e, PyObject* a) { return CheckWrite(s, e, Arg(a, 0), DirFd(Arg(a, 3))); }},
      {"os.setxattr", [](Sandbox& s, const char* e, PyObject* a) { return CheckWrite(s, e, Arg(a, 0)); }},
      {"os.removexattr", [](Sandbox& s, const char* e, PyObject* a) { return CheckWrite(s, e, Arg(a, 0)); }},
      {"os.rename", [](Sandbox& s, const char* e, PyObject* a) {
         return CheckWrite(s, e, Arg(a, 0), DirFd(Arg(a, 2))) ? -1
                                                              : CheckWrite(s, e, Arg(a, 1), DirFd(Arg(a, 3))); }},
      {"os.link", [](Sandbox& s, const char* e, PyObject* a) {
         return CheckRead(s, e, Arg(a, 0), DirFd(Arg(a, 2))) ? -1
                                                             : CheckWrite(s, e, Arg(a, 1), DirFd(Arg(a, 3))); }},
      {"os.symlink", [](Sandbox& s, const char* e, PyObject* a) {
         return CheckWrite(s, e, Arg(a, 1), DirFd(Arg(a, 2))); }},
      {"shutil.copyfile", [](Sandbox& s, const char* e, PyObject* a) {
         return CheckRead(s, e, Arg(a, 0)) ? -1 : CheckWrite(s, e, Arg(a, 1)); }},
      {"shutil.copymode", [](Sandbox& s, const char* e, PyObject* a) {
         return CheckRead(s, e, Arg(a, 0)) ? -1 : CheckWrite(s, e, Arg(a, 1)); }},
      {"shutil.copystat", [](Sandbox& s, const char* e, PyObject* a) {
         return CheckRead(s, e, Arg(a, 0)) ? -1 : CheckWrite(s, e, Arg(a, 1)); }},
      {"shutil.copytree", [](Sandbox& s, const char* e, PyObject* a) {
         return CheckRead(s, e, Arg(a, 0)) ? -1 : CheckWrite(s, e, Arg(a, 1)); }},
      {"shutil.move", [](Sandbox& s, const char* e, PyObject* a) {
         return CheckWrite(s, e, Arg(a, 0)) ? -1 : CheckWrite(s, e, Arg(a, 1)); }},
      {"shutil.rmtree", [](Sandbox& s, const char* e, PyObject* a) { return CheckWrite(s, e, Arg(a, 0)); }},
      {"shutil.chown", [](Sandbox& s, const char* e, PyObject* a) { return CheckWrite(s, e, Arg(a, 0)); }},
      {"shutil.make_archive", [](Sandbox& s, const char* e, PyObject* a) { return CheckWrite(s, e, Arg(a, 0)); }},
      {"shutil.unpack_archive", [](Sandbox& s, const char* e, PyObject* a) {
         return CheckRead(s, e, Arg(a, 0)) ? -1 : CheckWrite(s, e, Arg(a, 1)); }},
      {"tempfile.mkstemp", [](Sandbox& s, const char* e, PyObject* a) { return CheckWrite(s, e, Arg(a, 0)); }},
      {"tempfile.mkdtemp", [](Sandbox& s, const char* e, PyObject* a) { return CheckWrite(s, e, Arg(a, 0)); }},
      {"sqlite3.connect", [](Sandbox& s, const char* e, PyObject* a) {
         std::string db = Text(Arg(a, 0));
         if (db.empty() || db == ":memory:") return 0;
         return CheckWrite(s, e, Arg(a, 0)); }},
      {"sqlite3.enable_load_extension", [](Sandbox& s, const char* e, PyObject*) {
         return Enforced(s, e, "native extensions cannot be loaded"); }},
      {"sqlite3.load_extension", [](Sandbox& s, const char* e, PyObject*) {
         return Enforced(s, e, "native extensions cannot be loaded"); }},
      // Processes.
      {"subprocess.Popen", NoProcesses}, {"os.system", NoProcesses}, {"os.exec", NoProcesses},
      {"os.posix_spawn", NoProcesses}, {"os.spawn", NoProcesses}, {"os.fork", NoProcesses},
      {"os.forkpty", NoProcesses}, {"pty.spawn", NoProcesses}, {"os.startfile", NoProcesses},
      {"os.kill", [](Sandbox& s, const char* e, PyObject* a) {
         std::optional<int> pid = Fd(Arg(a, 0));
         if (!pid || *pid <= 0 || *pid == getpid()) return HostState(s, e, a);  // the host itself
         return NoProcesses(s, e, a); }},
      {"os.killpg", [](Sandbox& s, const char* e, PyObject* a) {
         std::optional<int> group = Fd(Arg(a, 0));
         if (!group || *group <= 0 || *group == getpgrp()) return HostState(s, e, a);
         return NoProcesses(s, e, a); }},
      {"signal.pthread_kill", NoProcesses},
      // The host process's own state: never.
      {"os.putenv", HostState}, {"os.unsetenv", HostState}, {"os.chdir", HostState},
      {"resource.setrlimit", HostState}, {"resource.prlimit", HostState},
      {"sys._current_frames", HostState}, {"sys._current_exceptions", HostState},
      {"socket.sethostname", HostState},
      {"fcntl.fcntl", [](Sandbox& s, const char* e, PyObject* a) { return CheckWrite(s, e, Arg(a, 0)); }},
      {"fcntl.ioctl", [](Sandbox& s, const char* e, PyObject* a) { return CheckWrite(s, e, Arg(a, 0)); }},
      {"fcntl.flock", [](Sandbox& s, const char* e, PyObject* a) { return CheckWrite(s, e, Arg(a, 0)); }},
      {"fcntl.lockf", [](Sandbox& s, const char* e, PyObject* a) { return CheckWrite(s, e, Arg(a, 0)); }},
      // Network.
      {"socket.__new__", [](Sandbox& s, const char* e, PyObject* a) {
         if (!s.policy().enforce) return 0;
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
      {"socket.connect", [](Sandbox& s, const char* e, PyObject* a) { return CheckNetworkAddress(s, e, Arg(a, 1)); }},
      {"socket.sendto", [](Sandbox& s, const char* e, PyObject* a) { return CheckNetworkAddress(s, e, Arg(a, 1)); }},
      {"socket.sendmsg", [](Sandbox& s, const char* e, PyObject* a) {
         PyObject* address = Arg(a, 1);
         return address == nullptr || address == Py_None ? 0 : CheckNetworkAddress(s, e, address); }},
      {"socket.bind", [](Sandbox& s, const char* e, PyObject*) {
         return Enforced(s, e, "listening for connections is not allowed"); }},
      // Raised by pyhost's guard (guards/shared_types.h): listen() on an unbound
      // socket binds an ephemeral port with no "socket.bind" event.
      {"socket.listen", [](Sandbox& s, const char* e, PyObject*) {
         return Enforced(s, e, "listening for connections is not allowed"); }},
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
      {"socket.getnameinfo", [](Sandbox& s, const char* e, PyObject*) {
         return Enforced(s, e, "reverse lookups are not allowed"); }},
      // Introspection and code surgery.
      {"gc.get_objects", [](Sandbox& s, const char* e, PyObject*) { return Enforced(s, e, "heap walks reach the host's objects"); }},
      {"gc.get_referrers", [](Sandbox& s, const char* e, PyObject*) { return Enforced(s, e, "heap walks reach the host's objects"); }},
      {"gc.get_referents", [](Sandbox& s, const char* e, PyObject*) { return Enforced(s, e, "heap walks reach the host's objects"); }},
      {"code.__new__", [](Sandbox& s, const char* e, PyObject*) { return Enforced(s, e, "code objects cannot be built or altered"); }},
      {"function.__new__", [](Sandbox& s, const char* e, PyObject*) { return Enforced(s, e, "functions cannot be built from code objects"); }},
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
      {"marshal.load", [](Sandbox& s, const char* e, PyObject*) {
         return Enforced(s, e, "code cannot be loaded from bytes"); }},
      {"mmap.__new__", [](Sandbox& s, const char* e, PyObject* a) {
         // (fileno, length, access, offset): -1 maps anonymous memory.
         std::optional<int> fd = Fd(Arg(a, 0));
         if (fd && *fd != -1 && !s.OwnsFd(*fd)) {
           return Deny(s, absl::StrCat(e, "(fd ", *fd, ")"),
                       "file descriptors the code did not open belong to the host");
         }
         return Enforced(s, e, "memory maps are not allowed"); }},
      {"builtins.breakpoint", [](Sandbox& s, const char* e, PyObject*) { return Enforced(s, e, "no debugger"); }},
      {"webbrowser.open", [](Sandbox& s, const char* e, PyObject*) { return Enforced(s, e, "no browser"); }},
      {"object.__getattr__", [](Sandbox& s, const char* e, PyObject* a) {
         std::string name = Text(Arg(a, 1));
         if (name != "gi_frame" && name != "cr_frame" && name != "ag_frame") return 0;
         return Enforced(s, absl::StrCat(e, "('", name, "')").c_str(), "suspended frames are not reachable"); }},
      {"object.__setattr__", [](Sandbox& s, const char*, PyObject* a) {
         if (Text(Arg(a, 1)) != "__code__") return 0;
         return Enforced(s, "setting __code__", "code objects cannot be swapped"); }},
      {"compile", [](Sandbox& s, const char* e, PyObject* a) {
         std::string filename = Text(Arg(a, 1));
         if (filename.empty() || (filename[0] == '<' && !absl::StartsWith(filename, "<frozen") &&
                                  !absl::StartsWith(filename, "<pyhost"))) {
           return 0;
         }
         return Enforced(s, absl::StrCat(e, "(filename='", filename, "')").c_str(),
                         "a compiled string may not claim to be a real, frozen or pyhost module"); }},
      // Imports, by every route: import statements and __import__ ("import"),
      // extension modules loaded by any loader ("import" from the dynamic loader),
      // and source modules run by importlib however it was reached ("exec").
      {"import", [](Sandbox& s, const char*, PyObject* a) { return CheckImportOf(s, Text(Arg(a, 0))); }},
      {"exec", [](Sandbox& s, const char*, PyObject* a) {
         PyObject* code = Arg(a, 0);
         if (code == nullptr || !PyCode_Check(code)) return 0;
         auto* co = reinterpret_cast<PyCodeObject*>(code);
         if (Text(co->co_name) != "<module>") return 0;
         return CheckImportOf(s, ModuleNameForStdlibPath(Text(co->co_filename))); }},
  };
  return *rules;
}

int AuditHook(const char* event, PyObject* args, void*) {
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
  if (sandbox == nullptr || sandbox->host_mode()) return 0;
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

bool ImportIsUserInitiated(bool through_importlib) {
  const std::string& stdlib = StdlibDir();
  bool user = false;  // no Python frame: pyhost itself, or C code
  WalkFrames([&](const std::string& filename, PyFrameObject* frame, PyCodeObject* code) {
    if (through_importlib && IsImportMachinery(filename)) return true;  // look further out
    bool stdlib_frame = absl::StartsWith(filename, "<frozen ") ||
                        (!stdlib.empty() && absl::StartsWith(filename, stdlib + "/"));
    // A stdlib module imports for itself with an import statement; one that calls
    // __import__ or importlib with a name it was handed (a callback, pickle, a parser
    // list) imports on behalf of its caller: that is the code's import.
    bool machinery = IsImportMachinery(filename);  // importlib, and pyhost's own Python
    user = !(stdlib_frame || machinery) || !(machinery || AtImportStatement(frame, code));
    return false;
  });
  return user;
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

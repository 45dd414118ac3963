#include "audit_hooks/audit_rules.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <sys/socket.h>

#include <optional>
#include <utility>

#include <pybind11/pytypes.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "bindings/py_string.h"

namespace pyhost {
namespace audit {

namespace py = pybind11;

// --- reading event arguments ------------------------------------------------------

PyObject* Arg(PyObject* args, Py_ssize_t i) {
  return PyTuple_Check(args) && i < PyTuple_GET_SIZE(args) ? PyTuple_GET_ITEM(args, i) : nullptr;
}

namespace {

// Whether `attribute` of `value`'s type is C code or a function of the stdlib's (code
// objects cannot claim a stdlib filename: the compile and code.replace rules).
bool StdlibMethod(PyObject* value, const char* attribute) {
  auto name = py::reinterpret_steal<py::object>(PyUnicode_InternFromString(attribute));
  PyObject* method = name ? _PyType_Lookup(Py_TYPE(value), name.ptr()) : nullptr;  // borrowed
  PyErr_Clear();
  if (method == nullptr) return false;
  if (Py_IS_TYPE(method, &PyMethodDescr_Type) || Py_IS_TYPE(method, &PyWrapperDescr_Type))
    return true;
  if (!PyFunction_Check(method)) return false;
  auto* code = reinterpret_cast<PyCodeObject*>(PyFunction_GET_CODE(method));
  std::optional<std::string> filename = Utf8(code->co_filename);
  return filename && absl::StartsWith(*filename, StdlibDir() + "/");
}

// Whether os.fspath(value) answers the check what it answered the call: os.DirEntry's
// is C; pathlib's returns str(self), which caches the text on the first call.
bool StableFsPath(PyObject* value) {
  auto name = py::reinterpret_steal<py::object>(PyUnicode_InternFromString("__fspath__"));
  PyObject* method = name ? _PyType_Lookup(Py_TYPE(value), name.ptr()) : nullptr;
  PyErr_Clear();
  if (method == nullptr) return true;  // not a path at all
  if (!StdlibMethod(value, "__fspath__")) return false;
  return !PyFunction_Check(method) || StdlibMethod(value, "__str__");
}

}  // namespace

PathArg PathText(PyObject* value) {
  if (value == nullptr || value == Py_None || PyLong_Check(value)) return {};  // an fd, or none
  if (!PyUnicode_Check(value) && !PyBytes_Check(value) &&
      (PyIndex_Check(value) || !StableFsPath(value))) {
    return {PathArg::kUnstable, Py_TYPE(value)->tp_name};
  }
  auto fspath = py::reinterpret_steal<py::object>(PyOS_FSPath(value));
  if (!fspath) {
    PyErr_Clear();
    return {};
  }
  if (std::optional<std::string> bytes = FsEncoded(fspath.ptr())) return {PathArg::kPath, *bytes};
  return {PathArg::kUnencodable, DisplayText(fspath.ptr())};
}

std::string Text(PyObject* value) {
  if (value == nullptr) return "";
  if (PyUnicode_Check(value)) return Utf8(value).value_or("");
  PathArg path = PathText(value);
  return path.kind == PathArg::kPath ? path.text : "";
}

std::optional<int> Fd(PyObject* value) {
  if (value == nullptr || !PyLong_Check(value)) return std::nullopt;
  int overflow = 0;
  long fd = PyLong_AsLongAndOverflow(value, &overflow);
  if (overflow != 0 || fd < INT_MIN || fd > INT_MAX) return std::nullopt;
  return static_cast<int>(fd);
}

int DirFd(PyObject* value) { return Fd(value).value_or(-1); }

bool IsIpLiteral(const std::string& host) {
  unsigned char buffer[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

// --- refusals ------------------------------------------------------------------------

int Deny(const Sandbox& sandbox, absl::string_view operation, absl::string_view rule) {
  std::string message =
      absl::StrCat(operation, " denied by pyhost policy '", sandbox.policy().name, "': ", rule);
  // The operation may name a path's bytes, which need not be UTF-8.
  auto text = py::reinterpret_steal<py::object>(DisplayStr(message));
  if (text) PyErr_SetObject(PyExc_PermissionError, text.ptr());
  return -1;
}

int DenyImport(absl::string_view module, const std::string& why) {
  auto name = py::reinterpret_steal<py::object>(
      PyUnicode_FromStringAndSize(module.data(), static_cast<Py_ssize_t>(module.size())));
  auto message = py::reinterpret_steal<py::object>(PyUnicode_FromString(why.c_str()));
  if (name && message) PyErr_SetImportError(message.ptr(), name.ptr(), nullptr);
  return -1;
}

int NoProcesses(Sandbox& sandbox, const char* event, PyObject*) {
  if (sandbox.policy().processes) return 0;
  return Deny(sandbox, event, "processes are not allowed");
}

// Process-wide state belongs to the host, whatever the policy.
int HostState(Sandbox& sandbox, const char* event, PyObject*) {
  return Deny(sandbox, event, kChangesTheHost);
}

int Enforced(const Sandbox& sandbox, const char* event, absl::string_view rule) {
  if (!sandbox.policy().enforce) return 0;
  return Deny(sandbox, event, rule);
}

// --- paths --------------------------------------------------------------------------

namespace {

// python3's answer for a descriptor the code closed (its number stays buried).
int ClosedDescriptor() {
  errno = EBADF;
  PyErr_SetFromErrno(PyExc_OSError);
  return -1;
}

}  // namespace

int CheckPath(Sandbox& sandbox, absl::string_view event, PyObject* path, Access access,
              int dir_fd) {
  if (std::optional<int> fd = Fd(path)) {
    if (sandbox.OwnsFd(*fd)) return 0;
    if (sandbox.IsBuried(*fd)) return ClosedDescriptor();
    return Deny(sandbox, absl::StrCat(event, "(fd ", *fd, ")"),
                "file descriptors the code did not open belong to the host");
  }
  PathArg arg = PathText(path);
  if (arg.kind == PathArg::kUnstable) {
    return Deny(sandbox, absl::StrCat(event, "(<", arg.text, " object>)"),
                "a path must be str, bytes, an int or a stdlib path object (pathlib, "
                "os.DirEntry): this one's __index__ or __fspath__ could answer the check "
                "otherwise than the call");
  }
  if (arg.kind == PathArg::kUnencodable) {
    // The OS call would fail too; under rules, say so rather than guess what it meant.
    if (!sandbox.policy().enforce) return 0;
    return Deny(sandbox, absl::StrCat(event, "('", arg.text, "')"),
                "the path cannot be encoded for the filesystem");
  }
  if (arg.kind == PathArg::kNotAPath) {
    if (path != nullptr && path != Py_None) return 0;  // not a path at all
    arg.text = ".";  // os.listdir() / os.scandir(): the host's current directory
  }
  std::string shown = absl::StrCat("'", arg.text, "'");
  if (dir_fd >= 0 && !absl::StartsWith(arg.text, "/")) {
    if (sandbox.IsBuried(dir_fd)) return ClosedDescriptor();
    absl::StrAppend(&shown, ", dir_fd=", dir_fd);
  }
  switch (sandbox.JudgePath(arg.text, access, dir_fd)) {
    case Sandbox::PathVerdict::kAllowed:
      return 0;
    case Sandbox::PathVerdict::kHostDescriptor:
      return Deny(sandbox, absl::StrCat(event, "(", shown, ")"),
                  "it reaches a file descriptor of the host (one the code did not open), "
                  "whatever the policy");
    case Sandbox::PathVerdict::kOutsideRoots:
      break;
  }
  return Deny(sandbox, absl::StrCat(event, "(", shown, ")"),
              access == Access::kRead
                  ? "outside the readable paths"
                  : "outside the writable paths (WORK_DIR, OUTPUT_DIR and the policy's)");
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

// --- rule factories -----------------------------------------------------------------

Rule PathRule(int arg, Access access, int dir_fd_arg) {
  return [arg, access, dir_fd_arg](Sandbox& s, const char* e, PyObject* a) {
    return CheckPath(s, e, Arg(a, arg), access,
                     dir_fd_arg == kNoDirFd ? -1 : DirFd(Arg(a, dir_fd_arg)));
  };
}

Rule AllOf(Rule first, Rule second) {
  return [first = std::move(first), second = std::move(second)](Sandbox& s, const char* e,
                                                                PyObject* a) {
    return first(s, e, a) != 0 ? -1 : second(s, e, a);
  };
}

Rule DenyAlways(std::string reason) {
  return [reason = std::move(reason)](Sandbox& s, const char* e, PyObject*) {
    return Deny(s, e, reason);
  };
}

Rule DenyIfEnforcing(std::string reason) {
  return [reason = std::move(reason)](Sandbox& s, const char* e, PyObject*) {
    return Enforced(s, e, reason);
  };
}

Rule RequireProcesses() { return NoProcesses; }

Rule SignalRule(pid_t (*own)()) {
  return [own](Sandbox& s, const char* e, PyObject* a) {
    std::optional<int> target = Fd(Arg(a, 0));
    if (!target || *target <= 0 || *target == own()) return HostState(s, e, a);  // the host itself
    return NoProcesses(s, e, a);
  };
}

Rule AddressRule(int arg, bool optional) {
  return [arg, optional](Sandbox& s, const char* e, PyObject* a) {
    PyObject* address = Arg(a, arg);
    if (optional && (address == nullptr || address == Py_None)) return 0;
    return CheckNetworkAddress(s, e, address);
  };
}

}  // namespace audit
}  // namespace pyhost

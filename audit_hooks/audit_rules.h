// The parts the audit hook's rules (audit_hook.cc) are made of: reading an event's
// arguments, refusals, the path check, and the rule factories most rules are one of.
// Internal to audit_hooks/ (and its tests).
//
//   {"os.mkdir", PathRule(0, Access::kWriteEntry, /*dir_fd_arg=*/2)},
//   {"os.rename", AllOf(PathRule(0, Access::kWriteEntry, 2), PathRule(1, Access::kWriteEntry, 3))},
//   {"os.putenv", DenyAlways(kChangesTheHost)},
//   {"gc.get_objects", DenyIfEnforcing("heap walks reach the host's objects")},
//   {"subprocess.Popen", RequireProcesses()},
//   {"socket.connect", AddressRule(1)},
//
// GIL held, in the interpreter that raised the event.
#ifndef PYHOST_AUDIT_HOOKS_AUDIT_RULES_H_
#define PYHOST_AUDIT_HOOKS_AUDIT_RULES_H_

#include <Python.h>

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "audit_hooks/sandbox.h"

namespace pyhost {
namespace audit {

// A rule judges one event raised in an active sandbox: 0 allows it, -1 refuses it
// with a Python exception set.
using Rule = std::function<int(Sandbox& sandbox, const char* event, PyObject* args)>;
using Access = Sandbox::FileAccess;

// --- reading event arguments --------------------------------------------------------

// Argument i of an event (borrowed), or null.
PyObject* Arg(PyObject* args, Py_ssize_t i);

// A path argument as the bytes the OS gets: a str in the filesystem encoding (as os
// and io encode it: with surrogateescape, "\udcff" is the byte 0xff), bytes, or an
// os.PathLike giving either.
// kUnstable: an object whose conversion runs code the check cannot trust to answer
// again what it answered the call (the call converts before its event, the check
// after): an object with __index__ that is not an int, or a path whose __fspath__
// (or, for a Python one, __str__) is not the stdlib's. Refused under every policy.
struct PathArg {
  enum Kind { kNotAPath, kPath, kUnencodable, kUnstable } kind = kNotAPath;
  std::string text;  // kPath: the bytes; kUnencodable: the str, escaped; kUnstable: the type
};
PathArg PathText(PyObject* value);

// A str argument's UTF-8 text, or a path's bytes; "" for anything else, and for a str
// UTF-8 cannot encode: every rule must read "" as naming nothing it allows.
std::string Text(PyObject* value);

// An int argument that fits an int (a descriptor, a pid, a family), else nullopt.
std::optional<int> Fd(PyObject* value);

// A dir_fd argument of an audit event: an int, -1 when the call had none.
int DirFd(PyObject* value);

bool IsIpLiteral(const std::string& host);

// --- refusals -----------------------------------------------------------------------

// PermissionError("<operation> denied by pyhost policy '<name>': <rule>"); -1.
int Deny(const Sandbox& sandbox, absl::string_view operation, absl::string_view rule);
// Deny under an enforcing policy only; 0 under one without rules.
int Enforced(const Sandbox& sandbox, const char* event, absl::string_view rule);
// ImportError(why) naming `module`; -1.
int DenyImport(absl::string_view module, const std::string& why);

// What changing process-wide state is refused for, whatever the policy.
inline constexpr char kChangesTheHost[] = "it changes the whole host process";
// Deny(event, kChangesTheHost) under every policy.
int HostState(Sandbox& sandbox, const char* event, PyObject* args);
// Deny(event, "processes are not allowed") unless the policy allows processes.
int NoProcesses(Sandbox& sandbox, const char* event, PyObject* args);

// --- paths --------------------------------------------------------------------------

// Whether `path` (an event argument: a path, or a descriptor) may be accessed so: a
// descriptor must be the code's (one it closed answers python3's EBADF); a path is
// judged by Sandbox::JudgePath against `dir_fd`'s directory (-1: the cwd). None, as
// os.listdir()'s, is the host's current directory.
int CheckPath(Sandbox& sandbox, absl::string_view event, PyObject* path, Access access,
              int dir_fd = -1);

// A host (str) and port address: an IP the sandbox allows, or an allowed name.
int CheckNetworkAddress(Sandbox& sandbox, const char* event, PyObject* address);

// --- rule factories -----------------------------------------------------------------

inline constexpr int kNoDirFd = -1;

// CheckPath of argument `arg` for `access`, relative to the dir_fd in argument
// `dir_fd_arg` (kNoDirFd: the event carries none).
Rule PathRule(int arg, Access access, int dir_fd_arg = kNoDirFd);
// `first`, then `second` if `first` allowed the event.
Rule AllOf(Rule first, Rule second);
// Refused with `reason` under every policy (the host process's own state).
Rule DenyAlways(std::string reason);
// Refused with `reason` under an enforcing policy, allowed under one without rules.
Rule DenyIfEnforcing(std::string reason);
// Allowed only under a policy that allows processes.
Rule RequireProcesses();
// A signal to argument 0, a pid or a process group: the host's own (0, negative, or
// `own()`, getpid or getpgrp) is host state; another is a process of the code's.
Rule SignalRule(pid_t (*own)());
// The address in argument `arg` must be reachable (CheckNetworkAddress); with
// `optional`, an absent or None address is allowed (sendmsg to a connected socket).
Rule AddressRule(int arg, bool optional = false);

}  // namespace audit
}  // namespace pyhost

#endif  // PYHOST_AUDIT_HOOKS_AUDIT_RULES_H_

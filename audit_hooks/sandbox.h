// The enforcement state of one sandbox interpreter: the policy in force, the
// execution's directories, what it opened, what it resolved. The audit hook
// (audit_hook.h) and the guarded functions (guards/hardening.h) look it up by the
// interpreter that is running and ask it.
//
//   Sandbox* sandbox = Sandbox::Current();      // nullptr outside sandboxes
//   if (sandbox && sandbox->JudgePath(path, Sandbox::FileAccess::kWrite) !=
//                      Sandbox::PathVerdict::kAllowed) ...  // PermissionError
//
// Until its first activation (creation, prewarm) a sandbox is in host mode and decides
// nothing; Activate() puts a policy in force, and Deactivate() a lockdown policy.
//
// Thread-safety: a Sandbox is used with the GIL held in its interpreter (one thread
// at a time on 3.11). The registry is thread-safe.
#ifndef PYHOST_AUDIT_HOOKS_SANDBOX_H_
#define PYHOST_AUDIT_HOOKS_SANDBOX_H_

#include <Python.h>

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "guards/policy.h"

namespace pyhost {

class Sandbox {
 public:
  explicit Sandbox(PyInterpreterState* interp);
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  // The sandbox of the interpreter whose thread state is current (GIL held), or null.
  static Sandbox* Current();

  struct Activation {
    const Policy* policy = nullptr;  // not owned: outlives the activation
    std::string work_dir;    // empty: none; else canonical (no symlinks, no ..)
    std::string output_dir;  // empty: none; else canonical
    std::vector<std::string> extra_network;  // request and environment allowlists
  };
  void Activate(Activation activation);
  // Ends an activation. The interpreter does not return to host mode: a lockdown
  // policy (nothing outside the stdlib, no imports of the code's own, no network,
  // no processes) stays in force, because what the code left behind (finalizers,
  // hooks, replaced methods) can run at teardown or in the next execution's setup.
  void Deactivate();
  // True only before the interpreter's first activation (creation, prewarm). pyhost
  // never lifts rules around its own calls (a __repr__ it triggers is user code).
  bool host_mode() const { return !active_; }
  const Policy& policy() const { return *activation_.policy; }
  const Activation& activation() const { return activation_; }

  // Files. A path is made absolute against `dir_fd`'s directory (-1: the process's
  // cwd; a dir_fd must be a descriptor the code opened) and resolved (symlinks, ..)
  // before it is compared with the roots. Whatever the policy, a path whose
  // resolution passes through a descriptor link (/proc/<pid>/fd/<n>, and so
  // /dev/fd/<n>, /dev/stdout, a symlink to one) to a descriptor the code did not
  // open, or that names a file the host protects (ProtectHostDescriptor), is
  // kHostDescriptor: it would reopen what belongs to the host.
  enum class FileAccess { kRead, kWrite };
  enum class PathVerdict { kAllowed, kOutsideRoots, kHostDescriptor };
  PathVerdict JudgePath(absl::string_view path, FileAccess access, int dir_fd = -1);
  // The "open" audit event carries no dir_fd: os.open's guard announces it for the
  // path object it passes on, and the hook takes it back (-1 if `path` is not that
  // object). One announcement is taken once.
  void ExpectOpenAt(PyObject* path, int dir_fd) { open_at_ = {path, dir_fd}; }
  int TakeOpenAt(PyObject* path) {
    int dir_fd = open_at_.first == path ? open_at_.second : -1;
    open_at_ = {nullptr, -1};
    return dir_fd;
  }
  // Whether a write under OUTPUT_DIR was allowed since Activate() (so the host lists
  // OUTPUT_DIR only when something may be there). Only a hint under yolo, which
  // checks nothing.
  bool output_written() const { return output_written_ || !activation_.policy->enforce; }

  // Network: a host name allowed by a pattern, or an IP that is listed or that an
  // allowed name resolved to during this activation.
  bool HostAllowed(absl::string_view host) const;
  bool AddressAllowed(absl::string_view ip) const;
  void RecordResolved(absl::string_view ip) { resolved_.insert(std::string(ip)); }

  // File descriptors the code created (os.open, os.pipe, ...), remembered with their
  // identity so a number reused by the host after a close is not mistaken for one.
  void RecordFd(int fd);
  void ForgetFd(int fd) { owned_fds_.erase(fd); }
  bool OwnsFd(int fd) const;
  // Whether the process holds a descriptor the code did not open on the file with
  // this identity.
  bool HostHolds(dev_t dev, ino_t ino) const;

  // Whether an import of `module` is allowed now. `user_initiated`: the importing
  // frame is the code's own (not an allowed stdlib module importing what it needs).
  // On denial returns false and fills `why`.
  bool ImportAllowed(absl::string_view module, bool user_initiated, std::string* why) const;

  // Builtin modules hardened at creation must never be created or executed again
  // (that would hand out their original functions).
  // By name (what _imp.create_builtin creates) and by module definition (what
  // _imp.exec_builtin runs, whatever __name__ the module object claims).
  void Seal(absl::string_view module, const PyModuleDef* def) {
    sealed_.insert(std::string(module));
    if (def != nullptr) sealed_defs_.insert(def);
  }
  bool IsSealed(absl::string_view module) const { return sealed_.contains(module); }
  // importlib's ModuleSpec type in this interpreter (borrowed; lives as long).
  void set_module_spec_type(PyObject* type) { module_spec_type_ = type; }
  PyObject* module_spec_type() const { return module_spec_type_; }
  bool IsSealedDef(const PyModuleDef* def) const { return sealed_defs_.contains(def); }

 private:
  PyInterpreterState* const interp_;
  bool active_ = false;
  Activation activation_;
  std::vector<std::string> read_roots_;   // resolved at activation
  std::vector<std::string> write_roots_;
  bool output_written_ = false;
  absl::flat_hash_set<std::string> resolved_;
  absl::flat_hash_map<int, std::pair<dev_t, ino_t>> owned_fds_;
  absl::flat_hash_set<std::string> sealed_;
  absl::flat_hash_set<const PyModuleDef*> sealed_defs_;
  PyObject* module_spec_type_ = nullptr;
  std::pair<PyObject*, int> open_at_{nullptr, -1};  // compared, never dereferenced
};

// Files no code may reach by any path, whatever the policy: those of `fd` (the
// command's protocol descriptors, cli/protocol_channel.h). Process-wide; call before
// code runs. Thread-safe.
void ProtectHostDescriptor(int fd);

// Modules no policy lets code import or create: they run code in other
// interpreters or crash the process on purpose.
bool NeverImportable(absl::string_view module);

// The directory of the stdlib this process runs (always readable; code under it is
// "the stdlib" when deciding who imports what).
const std::string& StdlibDir();
void SetStdlibDir(std::string dir);

}  // namespace pyhost

#endif  // PYHOST_AUDIT_HOOKS_SANDBOX_H_

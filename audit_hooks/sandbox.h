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

#include <fcntl.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "pyhost/policy.h"

namespace pyhost {

class Sandbox {
 public:
  static constexpr size_t kMaxOpenDescriptors = 256;

  explicit Sandbox(PyInterpreterState* interp);
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  // The sandbox of the interpreter whose thread state is current (GIL held), or null.
  static Sandbox* Current();

  struct Activation {
    const Policy* policy = nullptr;          // not owned: outlives the activation
    std::string work_dir;                    // empty: none; else canonical (no symlinks, no ..)
    std::string output_dir;                  // empty: none; else canonical
    std::vector<std::string> extra_network;  // request and environment allowlists
  };
  void Activate(Activation activation);
  // Ends an activation. The interpreter does not return to host mode: the lockdown
  // policy (policy/lockdown.h: nothing outside the stdlib, no imports of the code's
  // own, no network, no processes) stays in force, because what the code left behind (finalizers,
  // hooks, replaced methods) can run at teardown or in the next execution's setup.
  void Deactivate();
  // True only before the interpreter's first activation (creation, prewarm). pyhost
  // never lifts rules around its own calls (a __repr__ it triggers is user code).
  bool host_mode() const { return !active_; }
  // Whether `sandbox` (the current one, or null) runs an enforcing policy now.
  static bool Enforcing(const Sandbox* sandbox) {
    return sandbox != nullptr && !sandbox->host_mode() && sandbox->policy().enforce;
  }
  // Whether open(2) flags can change the file: written, created, truncated, appended.
  static bool FlagsWrite(int flags) {
    return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC | O_APPEND)) != 0;
  }
  const Policy& policy() const { return *activation_.policy; }
  const Activation& activation() const { return activation_; }

  // Files. A path is made absolute against `dir_fd`'s directory (-1: the process's
  // cwd; a dir_fd must be a descriptor the code opened) and resolved (symlinks, ..)
  // before it is compared with the roots. Whatever the policy, a path whose
  // resolution passes through a descriptor link (/proc/<pid>/fd/<n>, and so
  // /dev/fd/<n>, /dev/stdout, a symlink to one) to a descriptor the code did not
  // open, or that names a file the host protects (ProtectHostDescriptor), is
  // kHostDescriptor: it would reopen what belongs to the host. kWriteEntry: calls on
  // the directory entry itself (remove, rmdir, rename, a link's new name), whose last
  // symlink is not followed (removing a link to outside is allowed).
  enum class FileAccess { kRead, kWrite, kWriteEntry };
  enum class PathVerdict { kAllowed, kOutsideRoots, kHostDescriptor };
  PathVerdict JudgePath(absl::string_view path, FileAccess access, int dir_fd = -1);
  bool CanWrite(absl::string_view path);  // JudgePath(path, kWrite) allows it
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

  // File descriptors the code created (os.open, os.pipe, open(), sockets, ...),
  // remembered with their identity so a number reused by the host after a close is
  // not mistaken for one.
  void RecordFd(int fd);
  // Whether the code may create another descriptor: at most kMaxOpenDescriptors of
  // its own may be open at once (a loop of os.pipe() would otherwise fill the
  // process's descriptor table, and the host could create no interpreter), and the
  // process must keep kFreeDescriptorFloor free. Raises OSError(EMFILE) naming the
  // cap when not. Under every policy.
  bool CheckDescriptorCap();
  // For descriptors the code gets but cannot use by number (os.scandir, an epoll
  // object, an SQLite connection): only the process-wide floor, kFreeDescriptorFloor
  // free at the top of the table. Raises OSError(EMFILE) when not.
  static bool CheckProcessDescriptors();
  static constexpr int kFreeDescriptorFloor = 128;
  // Whether the process is short of descriptors: fewer than one execution's cap free
  // above the floor (interpreters holding descriptors are then torn down at once).
  // Any thread; no GIL.
  static bool DescriptorsScarce();
  bool OwnsFd(int fd) const;
  // A file or socket object of the code holds this descriptor: wrapping its number in
  // a second object (open(fd), socket(fileno=fd)) is refused, since the first one's
  // close would leave the second holding a number the host or another execution may
  // get next.
  void RecordHeld(int fd);
  bool IsHeld(int fd) const;

  // os.close() of the code's descriptor. One a file or socket object holds stays
  // taken, pointed at a placeholder (the object reads end of file, instead of whatever
  // the host or another execution opens there next), until CloseBuried frees the
  // numbers once nothing of the code's is left (after Py_EndInterpreter); buried
  // numbers count against the descriptor cap. Any other is closed, as python3 does
  // (subprocess's pipes: a program may open and close thousands).
  void Close(int fd);
  void Bury(int fd);
  // Whether the code closed this number (python3 answers EBADF for it), and neither it
  // nor the host has it open again as its own.
  bool IsBuried(int fd) const;
  // At teardown: every descriptor the code opened and left open (os.open, os.pipe:
  // numbers no object closes) is buried, so its file is released now and its number
  // freed by CloseBuried.
  void BuryOwned();
  void CloseBuried();

  // TZ as the code set it in os.environ (os.putenv/unsetenv, which change only the
  // execution's copy) since the execution's environment was installed: nullopt if
  // untouched, an empty optional inside if unset. time.tzset()/mktime() read the
  // process's TZ, so they are refused while this differs from it (guards/hardening).
  void RecordEnvironTz(std::optional<std::string> value) { environ_tz_ = std::move(value); }
  const std::optional<std::optional<std::string>>& environ_tz() const { return environ_tz_; }
  // Called once the execution's own os.environ is in place (installing it sets TZ).
  void ForgetEnvironChanges() { environ_tz_.reset(); }

  // socket.setdefaulttimeout() of this interpreter (the C module keeps one for the
  // whole process on 3.11): nullopt until the code sets one; negative for None. Kept
  // across activations, like module state.
  std::optional<double> socket_default_timeout() const { return socket_default_timeout_; }
  void set_socket_default_timeout(double seconds) { socket_default_timeout_ = seconds; }

  // Whether the process holds a descriptor the code did not open on the file with
  // this identity.
  bool HostHolds(dev_t dev, ino_t ino) const;

  // Whether an import of `module` is allowed now, as policy/module_rules.h judges it
  // under this activation. `user_initiated`: the importing frame is the code's own
  // (not an allowed stdlib module importing what it needs). On denial returns false
  // and fills `why`.
  bool ImportAllowed(absl::string_view module, bool user_initiated, std::string* why) const;
  // The same for a module name that is not valid UTF-8 text (JudgeUnencodableImport:
  // python3 would then answer, usually ModuleNotFoundError). `shown`: the name for
  // the message.
  bool UnencodableImportAllowed(absl::string_view shown, std::string* why) const;

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

  // What the audit hook lets through once while one of pyhost's guards runs the
  // original it vetted (guards/shared_types.h): the code object code.replace() makes,
  // the socket object that wraps a socketpair() descriptor. Set just before that
  // call, cleared after it; the first matching event takes it (an audit hook the code
  // added runs after pyhost's, inside the same event, and finds nothing left).
  void set_code_replace_vetted(bool vetted) { code_replace_vetted_ = vetted; }
  bool TakeCodeReplaceVetted() { return std::exchange(code_replace_vetted_, false); }
  void set_adopting_local_socket(PyObject* socket) { adopting_local_socket_ = socket; }
  bool TakeAdoptingLocalSocket(PyObject* socket) {
    if (socket == nullptr || socket != adopting_local_socket_) return false;
    adopting_local_socket_ = nullptr;
    return true;
  }
  // Descriptors of socketpair()s the code made: a connected pair inside the process.
  void RecordLocalSocket(int fd) { local_sockets_.insert(fd); }
  bool IsLocalSocket(int fd) const { return local_sockets_.contains(fd) && OwnsFd(fd); }

  // The exception type os.fork() raises here: a PermissionError that is also a
  // RuntimeError (borrowed; made when the interpreter is hardened, lives as long).
  void set_fork_error_type(PyObject* type) { fork_error_type_ = type; }
  // Process isolation's child: the process exists for this one execution, so
  // os._exit(n) ends it with n (the host answers WorkerExited) instead of ending only
  // the execution, as it must in-process.
  void set_own_process() { own_process_ = true; }
  bool own_process() const { return own_process_; }
  // Directories (a policy's packages, on this interpreter's sys.path) whose extension
  // modules may be loaded, besides the stdlib's lib-dynload (guards/hardening.cc).
  void AllowExtensionsUnder(std::string dir) { extension_dirs_.push_back(std::move(dir)); }
  const std::vector<std::string>& extension_dirs() const { return extension_dirs_; }
  PyObject* fork_error_type() const { return fork_error_type_; }

 private:
  PyInterpreterState* const interp_;
  bool active_ = false;
  Activation activation_;
  std::vector<std::string> read_roots_;  // resolved at activation
  std::vector<std::string> write_roots_;
  bool output_written_ = false;
  absl::flat_hash_set<std::string> resolved_;
  std::optional<std::optional<std::string>> environ_tz_;
  std::optional<double> socket_default_timeout_;
  struct OwnedFd {
    dev_t dev;
    ino_t ino;
    bool held = false;  // by a file or socket object
  };
  // Whether `fd` still is the file `owned` recorded (numbers are reused).
  static bool Same(int fd, const OwnedFd& owned);
  absl::flat_hash_map<int, OwnedFd> owned_fds_;
  absl::flat_hash_map<int, OwnedFd> buried_fds_;
  absl::flat_hash_set<int> closed_fds_;  // closed for real (Close): numbers only
  absl::flat_hash_set<std::string> sealed_;
  absl::flat_hash_set<const PyModuleDef*> sealed_defs_;
  PyObject* module_spec_type_ = nullptr;
  bool code_replace_vetted_ = false;
  PyObject* adopting_local_socket_ = nullptr;
  absl::flat_hash_set<int> local_sockets_;
  PyObject* fork_error_type_ = nullptr;
  bool own_process_ = false;
  std::vector<std::string> extension_dirs_;
  std::pair<PyObject*, int> open_at_{nullptr, -1};  // compared, never dereferenced
};

// Files no code may reach by any path, whatever the policy: those of `fd` (the
// command's protocol descriptors, cli/protocol_channel.h). Process-wide; call before
// code runs. Thread-safe.
void ProtectHostDescriptor(int fd);

// The module sysconfig imports its build-time data from (by a computed name:
// "_sysconfigdata__x86_64-linux-gnu" on Debian). Part of sysconfig for the import
// rules: allowed exactly where sysconfig is.
const std::string& SysconfigDataModule();
void SetSysconfigDataModule(std::string module);

// The directory of the stdlib this process runs (always readable; code under it is
// "the stdlib" when deciding who imports what).
const std::string& StdlibDir();
void SetStdlibDir(std::string dir);

}  // namespace pyhost

#endif  // PYHOST_AUDIT_HOOKS_SANDBOX_H_

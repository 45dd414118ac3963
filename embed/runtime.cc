#include "embed/runtime.h"

#include <limits.h>
#include <stdlib.h>

#include <thread>

#include "bindings/asan.h"
#ifdef PYHOST_ASAN
#include <sanitizer/lsan_interface.h>
#endif

#include "absl/strings/str_cat.h"
#include "audit_hooks/audit_hook.h"
#include "audit_hooks/sandbox.h"
#include "bindings/cancellation.h"
#include "bindings/py_string.h"
#include "guards/hardening.h"
#include "guards/memory_budget.h"
#include "guards/shared_types.h"

namespace pyhost {
namespace {

absl::Status CheckStatus(PyStatus status, const char* what) {
  if (!PyStatus_Exception(status)) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("Python initialization failed at ", what, ": ",
                   status.err_msg != nullptr ? status.err_msg : "unknown error",
                   status.func != nullptr ? absl::StrCat(" (", status.func, ")") : ""));
}

#ifdef PYHOST_ASAN
// Under AddressSanitizer (scripts/sanitize.sh) Python's object and buffer domains take
// their memory from malloc instead of pymalloc's arenas, so ASan checks every object
// access and LeakSanitizer scans objects for the pointers they hold. Their blocks are
// allocated with leak checking off: Python is never finalized and 3.11 leaves objects
// of every ended interpreter behind, so a leaked object says nothing about pyhost
// (HostTest.TenThousandExecutionsDoNotGrowMemory finds reference leaks); they are
// still scanned, so what they point at is reachable. Everything else (pyhost's own
// allocations, CPython's raw domain: thread and interpreter states) is judged.
PyMemAllocatorEx untracked_base;

void* UntrackedMalloc(void* ctx, size_t size) {
  __lsan::ScopedDisabler off;
  return untracked_base.malloc(ctx, size);
}
void* UntrackedCalloc(void* ctx, size_t n, size_t size) {
  __lsan::ScopedDisabler off;
  return untracked_base.calloc(ctx, n, size);
}
void* UntrackedRealloc(void* ctx, void* p, size_t size) {
  __lsan::ScopedDisabler off;
  return untracked_base.realloc(ctx, p, size);
}
void UntrackedFree(void* ctx, void* p) { untracked_base.free(ctx, p); }

void UseSanitizerAllocators() {
  PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &untracked_base);  // malloc (preconfig below)
  PyMemAllocatorEx untracked{untracked_base.ctx, UntrackedMalloc, UntrackedCalloc, UntrackedRealloc,
                             UntrackedFree};
  PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &untracked);
  PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &untracked);
}
#endif

// Runs on its own thread; returns with the GIL released and no thread state current.
absl::StatusOr<Runtime*> Initialize() {
  if (Py_IsInitialized()) {
    return absl::FailedPreconditionError(
        "Python is already initialized in this process by someone other than pyhost");
  }
  // UTF-8 mode (PEP 540), as python3 runs on these machines (LANG=C.UTF-8): paths,
  // open() and the streams default to UTF-8. The isolated configuration would read the
  // process's own "C" locale instead: ASCII, where every non-ASCII file name or text
  // file fails. It changes no locale of the host process.
  PyPreConfig preconfig;
  PyPreConfig_InitIsolatedConfig(&preconfig);
  preconfig.utf8_mode = 1;
#ifdef PYHOST_ASAN
  preconfig.allocator = PYMEM_ALLOCATOR_MALLOC;
#endif
  if (absl::Status s = CheckStatus(Py_PreInitialize(&preconfig), "pre-initialization"); !s.ok()) {
    return s;
  }
#ifdef PYHOST_ASAN
  UseSanitizerAllocators();
  InstallMemoryAccounting(/*malloc_object_domains=*/true);
#else
  InstallMemoryAccounting(/*malloc_object_domains=*/false);
#endif
  PyConfig config;
  PyConfig_InitIsolatedConfig(&config);
  config.site_import = 0;
  config.install_signal_handlers = 0;
  config.write_bytecode = 0;
  config.parse_argv = 0;
  config.user_site_directory = 0;
  config.use_environment = 0;
  config.safe_path = 1;
  absl::Status status =
      CheckStatus(PyConfig_SetBytesString(&config, &config.home, PYHOST_PYTHON_HOME), "home");
  if (status.ok()) {
    status = CheckStatus(PyConfig_SetBytesString(&config, &config.program_name, "pyhost"),
                         "program name");
  }
  // An absolute executable: otherwise the path calculation, which every new
  // interpreter runs again, makes "pyhost" absolute against the working directory,
  // and fails once the host's working directory is removed.
  if (status.ok()) {
    status = CheckStatus(
        PyConfig_SetBytesString(&config, &config.executable, PYHOST_PYTHON_HOME "/bin/python3"),
        "executable");
  }
  InstallAuditHook();  // PEP 578: C hooks must be in place before initialization
  if (status.ok()) status = CheckStatus(Py_InitializeFromConfig(&config), "startup");
  PyConfig_Clear(&config);
  if (!status.ok()) return status;

  // Where the stdlib is: always readable, and "the stdlib" when judging imports.
  PyObject* os = PyImport_ImportModule("os");
  PyObject* file = os != nullptr ? PyObject_GetAttrString(os, "__file__") : nullptr;
  std::optional<std::string> path = FsEncoded(file);
  PyErr_Clear();
  if (!path) {
    Py_XDECREF(file);
    Py_XDECREF(os);
    return absl::InternalError("cannot find the stdlib directory (os.__file__)");
  }
  char resolved[PATH_MAX];
  std::string dir = realpath(path->c_str(), resolved) != nullptr ? resolved : *path;
  SetStdlibDir(dir.substr(0, dir.rfind('/')));
  Py_DECREF(file);
  Py_DECREF(os);

  // The data module sysconfig imports by a computed name (zoneinfo needs it); without
  // it, such imports stay refused under allow lists (loudly: ImportError).
  PyObject* sysconfig = PyImport_ImportModule("sysconfig");
  PyObject* data_name = sysconfig != nullptr
                            ? PyObject_CallMethod(sysconfig, "_get_sysconfigdata_name", nullptr)
                            : nullptr;
  const char* data_text = data_name != nullptr ? PyUnicode_AsUTF8(data_name) : nullptr;
  if (data_text != nullptr) SetSysconfigDataModule(data_text);
  PyErr_Clear();
  Py_XDECREF(data_name);
  Py_XDECREF(sysconfig);

  // The shared types and C functions themselves are guarded first
  // (guards/shared_types.h), so the C functions they patch are the originals, not
  // hardening's wrappers; sandboxes can reach the main interpreter's objects
  // (through shared static types), so its modules get the same hardening.
  if (absl::Status s = GuardSharedTypes(); !s.ok()) return s;
  static Sandbox* main_sandbox = new Sandbox(PyInterpreterState_Main());  // never active
  if (absl::Status s = HardenInterpreter(*main_sandbox, nullptr); !s.ok()) return s;
  if (absl::Status s = ReadyCancellation(); !s.ok()) return s;

  std::string version = Py_GetVersion();  // "3.11.2 (main, ...) [GCC ...]"
  version.resize(version.find(' ') == std::string::npos ? version.size() : version.find(' '));
  auto* runtime = new Runtime(PyInterpreterState_Main(), std::move(version));
  PyEval_SaveThread();
  return runtime;
}

}  // namespace

absl::StatusOr<Runtime*> Runtime::Get() {
  // A function-local static: initialized once, thread-safe, and deliberately leaked.
  static const absl::StatusOr<Runtime*>* const runtime = [] {
    absl::StatusOr<Runtime*> result;
    std::thread([&result] { result = Initialize(); }).join();
    return new absl::StatusOr<Runtime*>(std::move(result));
  }();
  return *runtime;
}

}  // namespace pyhost

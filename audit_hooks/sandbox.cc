#include "audit_hooks/sandbox.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "bindings/thread_state.h"
#include "policy/lockdown.h"
#include "policy/module_rules.h"

namespace pyhost {
namespace {

absl::Mutex registry_mu(absl::kConstInit);
absl::flat_hash_map<PyInterpreterState*, Sandbox*>& Registry()
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(registry_mu) {
  static auto* registry = new absl::flat_hash_map<PyInterpreterState*, Sandbox*>();
  return *registry;
}

std::string& StdlibDirStorage() {
  static auto* dir = new std::string();
  return *dir;
}

std::string& SysconfigDataStorage() {
  static auto* module = new std::string();
  return *module;
}

constexpr char kUnresolvable[] = "/nonexistent/unresolvable";  // never under a root

// The pid or tid whose descriptors `dir` (resolved) lists, when it is a procfs
// /proc/<id>/fd or /proc/<id>/task/<id>/fd directory; else -1.
pid_t FdDirectoryOwner(const std::string& dir) {
  if (!absl::EndsWith(dir, "/fd")) return -1;
  absl::string_view parent(dir.data(), dir.size() - 3);
  int id = 0;
  if (!absl::SimpleAtoi(parent.substr(parent.rfind('/') + 1), &id) || id <= 0) return -1;
  struct statfs fs;
  if (statfs(dir.c_str(), &fs) != 0 || fs.f_type != PROC_SUPER_MAGIC) return -1;
  return id;
}

bool IsThreadOfThisProcess(pid_t id) {
  struct stat st;
  return id == getpid() || stat(absl::StrCat("/proc/self/task/", id).c_str(), &st) == 0;
}

// Whether the descriptor link `link` in the fd directory of `owner` names a host
// descriptor; true stops the walk.
using FdLinkCheck = std::function<bool(pid_t owner, const std::string& link)>;

struct Resolved {
  std::string path;
  bool host_descriptor = false;
};

void PushComponents(absl::string_view path, std::vector<std::string>& todo) {
  std::vector<absl::string_view> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) todo.emplace_back(*it);
}

// An absolute, resolved form of `path` (relative ones against `base`, "" for the
// cwd), walked one component at a time as the kernel does: symlinks followed, "." and
// ".." applied to what they follow. What does not exist yet is kept as written (a
// file about to be created; the kernel fails on anything past it). Every descriptor
// link passed through (/proc/<id>/fd/<n>, however it was reached) is shown to
// `host_link` first, if set. Without `follow_last`, a symlink as the last component
// is kept (the entry itself is acted on: remove, rename, a link's new name).
Resolved Resolve(absl::string_view path, absl::string_view base = "",
                 const FdLinkCheck& host_link = nullptr, bool follow_last = true) {
  std::string current;  // resolved so far, no trailing '/'; "" is the root
  if (path.empty() || path[0] != '/') {
    char cwd[PATH_MAX];
    current = base.empty() ? (getcwd(cwd, sizeof(cwd)) ? cwd : "/") : std::string(base);
    if (current == "/") current.clear();
  }
  std::vector<std::string> todo;  // components still to walk, the next one last
  PushComponents(path, todo);
  int links = 0;
  while (!todo.empty()) {
    std::string name = std::move(todo.back());
    todo.pop_back();
    if (name == ".") continue;
    if (name == "..") {
      current.resize(current.rfind('/') == std::string::npos ? 0 : current.rfind('/'));
      continue;
    }
    std::string next = absl::StrCat(current, "/", name);
    struct stat st;
    if (lstat(next.c_str(), &st) != 0) {
      // An fd directory's entry that is not there now can be by the open that
      // follows (another thread of the host opens one): judged as the host's.
      if (host_link && FdDirectoryOwner(current) > 0) return {std::move(next), true};
      current = std::move(next);
      for (; !todo.empty(); todo.pop_back()) absl::StrAppend(&current, "/", todo.back());
      break;
    }
    if (!S_ISLNK(st.st_mode) || (!follow_last && todo.empty())) {
      current = std::move(next);
      continue;
    }
    if (++links > 40) return {kUnresolvable};  // ELOOP
    pid_t owner = host_link ? FdDirectoryOwner(current) : -1;
    if (owner > 0 && host_link(owner, next)) return {std::move(next), true};
    char target[PATH_MAX];
    ssize_t n = readlink(next.c_str(), target, sizeof(target) - 1);
    if (n <= 0) return {kUnresolvable};
    target[n] = '\0';
    if (owner > 0 && target[0] != '/') {
      current = std::move(next);  // a descriptor of what has no path: pipe:[...]
      continue;
    }
    if (target[0] == '/') current.clear();
    PushComponents(target, todo);
  }
  return {current.empty() ? "/" : current};
}

absl::Mutex protected_mu(absl::kConstInit);
std::atomic<bool> any_protected{false};
std::vector<std::pair<dev_t, ino_t>>& Protected() ABSL_EXCLUSIVE_LOCKS_REQUIRED(protected_mu) {
  static auto* files = new std::vector<std::pair<dev_t, ino_t>>();
  return *files;
}

// Whether `resolved` is (a link to) a file ProtectHostDescriptor named.
bool IsProtected(const std::string& resolved) {
  if (!any_protected.load(std::memory_order_acquire)) return false;
  struct stat st;
  if (stat(resolved.c_str(), &st) != 0) return false;
  absl::MutexLock lock(&protected_mu);
  for (const auto& file : Protected()) {
    if (file == std::make_pair(st.st_dev, st.st_ino)) return true;
  }
  return false;
}

bool UnderAny(const std::vector<std::string>& roots, const std::string& path) {
  for (const std::string& root : roots) {
    if (path == root) return true;
    if (absl::StartsWith(path, root) && (root.back() == '/' || path[root.size()] == '/')) {
      return true;
    }
  }
  return false;
}

std::vector<std::string> ResolveAll(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  for (const std::string& path : paths) {
    if (!path.empty()) out.push_back(Resolve(path).path);
  }
  return out;
}

}  // namespace

const std::string& StdlibDir() { return StdlibDirStorage(); }
void SetStdlibDir(std::string dir) { StdlibDirStorage() = std::move(dir); }
const std::string& SysconfigDataModule() { return SysconfigDataStorage(); }
void SetSysconfigDataModule(std::string module) { SysconfigDataStorage() = std::move(module); }

Sandbox::Sandbox(PyInterpreterState* interp) : interp_(interp) {
  absl::MutexLock lock(&registry_mu);
  Registry()[interp_] = this;
}

Sandbox::~Sandbox() {
  absl::MutexLock lock(&registry_mu);
  Registry().erase(interp_);
}

Sandbox* Sandbox::Current() {
  PyThreadState* tstate = CurrentThreadStateOrNull();
  if (tstate == nullptr) return nullptr;
  absl::MutexLock lock(&registry_mu);
  auto it = Registry().find(tstate->interp);
  return it == Registry().end() ? nullptr : it->second;
}

void Sandbox::Activate(Activation activation) {
  activation_ = std::move(activation);
  // The execution directories and the stdlib directory are canonical already (made
  // under a resolved root; resolved at start-up): only the policy's own paths are
  // resolved here.
  write_roots_ = ResolveAll(activation_.policy->write_paths);
  for (const std::string* dir : {&activation_.work_dir, &activation_.output_dir}) {
    if (!dir->empty()) write_roots_.push_back(*dir);
  }
  read_roots_ = ResolveAll(activation_.policy->read_paths);
  read_roots_.push_back(StdlibDir());
  read_roots_.insert(read_roots_.end(), write_roots_.begin(), write_roots_.end());
  resolved_.clear();
  environ_tz_.reset();
  output_written_ = false;
  active_ = true;
}

void Sandbox::Deactivate() {
  // Not back to host mode: the policy pointer is dropped (it must not outlive its
  // owner) for the lockdown policy, which lives forever.
  Activate(Activation{&LockdownPolicy(), "", "", {}});
}

bool Sandbox::CanWrite(absl::string_view path) {
  return JudgePath(path, FileAccess::kWrite) == PathVerdict::kAllowed;
}

Sandbox::PathVerdict Sandbox::JudgePath(absl::string_view path, FileAccess access, int dir_fd) {
  std::string base;
  if (dir_fd >= 0 && (path.empty() || path[0] != '/')) {
    if (!OwnsFd(dir_fd)) return PathVerdict::kHostDescriptor;
    char target[PATH_MAX];
    ssize_t n =
        readlink(absl::StrCat("/proc/self/fd/", dir_fd).c_str(), target, sizeof(target) - 1);
    base = n > 0 && target[0] == '/' ? std::string(target, static_cast<size_t>(n)) : kUnresolvable;
  }
  auto host_link = [this](pid_t owner, const std::string& link) {
    if (IsThreadOfThisProcess(owner)) {
      int fd = -1;
      return !absl::SimpleAtoi(link.substr(link.rfind('/') + 1), &fd) || !OwnsFd(fd);
    }
    // Another process's descriptor (a child's, the client's end of a pipe): the
    // host's if it is one of the host's files.
    struct stat st;
    return stat(link.c_str(), &st) == 0 && HostHolds(st.st_dev, st.st_ino);
  };
  Resolved resolved = Resolve(path, base, host_link, access != FileAccess::kWriteEntry);
  // The policy's own rule is named first when it refuses too.
  if (activation_.policy->enforce &&
      !UnderAny(access == FileAccess::kRead ? read_roots_ : write_roots_, resolved.path)) {
    return PathVerdict::kOutsideRoots;
  }
  if (resolved.host_descriptor || IsProtected(resolved.path)) return PathVerdict::kHostDescriptor;
  if (access != FileAccess::kRead && activation_.policy->enforce &&
      !activation_.output_dir.empty() && UnderAny({activation_.output_dir}, resolved.path)) {
    output_written_ = true;
  }
  return PathVerdict::kAllowed;
}

bool Sandbox::HostAllowed(absl::string_view host) const {
  if (!activation_.policy->enforce) return true;
  return pyhost::HostAllowed(activation_.policy->network, host) ||
         pyhost::HostAllowed(activation_.extra_network, host);
}

bool Sandbox::AddressAllowed(absl::string_view ip) const {
  if (HostAllowed(ip)) return true;  // listed literally, or "*"
  return resolved_.contains(ip);
}

namespace {

// What buried descriptors point at: one empty file for the whole process, so a buried
// number is told from anything else by its identity, open read-only with no writable
// descriptor left anywhere: what an object of the code's that still holds the number
// reads is end of file, and a write fails with EBADF, as on a closed descriptor. No
// execution can pass data to another through it.
int Placeholder() {
  static const int fd = [] {
    int writable = memfd_create("pyhost-closed-descriptor", MFD_CLOEXEC);
    if (writable < 0) return -1;
    int readable = open(absl::StrCat("/proc/self/fd/", writable).c_str(), O_RDONLY | O_CLOEXEC);
    close(writable);
    return readable;
  }();
  return fd;
}

}  // namespace

bool Sandbox::Same(int fd, const OwnedFd& owned) {
  struct stat st;
  return fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == owned.dev && st.st_ino == owned.ino;
}

void Sandbox::RecordFd(int fd) {
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0) owned_fds_[fd] = {st.st_dev, st.st_ino};
  closed_fds_.erase(fd);
}

void Sandbox::RecordHeld(int fd) {
  RecordFd(fd);
  if (auto it = owned_fds_.find(fd); it != owned_fds_.end()) it->second.held = true;
}

bool Sandbox::IsHeld(int fd) const {
  auto it = owned_fds_.find(fd);
  return it != owned_fds_.end() && it->second.held && Same(fd, it->second);
}

void Sandbox::Close(int fd) {
  if (IsHeld(fd)) {
    Bury(fd);
    return;
  }
  owned_fds_.erase(fd);
  close(fd);
  closed_fds_.insert(fd);
}

void Sandbox::Bury(int fd) {
  owned_fds_.erase(fd);
  struct stat st;
  if (Placeholder() < 0 || dup3(Placeholder(), fd, O_CLOEXEC) != fd || fstat(fd, &st) != 0) {
    close(fd);  // no placeholder: the plain close python3 does
    return;
  }
  buried_fds_[fd] = {st.st_dev, st.st_ino};
}

bool Sandbox::IsBuried(int fd) const {
  if (OwnsFd(fd)) return false;
  if (closed_fds_.contains(fd)) return true;
  auto it = buried_fds_.find(fd);
  return it != buried_fds_.end() && Same(fd, it->second);
}

void Sandbox::BuryOwned() {
  std::vector<int> open_numbers;
  for (const auto& [fd, owned] : owned_fds_) {
    if (Same(fd, owned)) open_numbers.push_back(fd);
  }
  for (int fd : open_numbers) Bury(fd);
  owned_fds_.clear();
}

void Sandbox::CloseBuried() {
  for (const auto& [fd, placeholder] : buried_fds_) {
    if (Same(fd, placeholder)) close(fd);
  }
  buried_fds_.clear();
}

namespace {

bool SetTooManyFiles(const std::string& why) {
  errno = EMFILE;
  std::string message = absl::StrCat("Too many open files: ", why);
  PyObject* value = Py_BuildValue("(is)", EMFILE, message.c_str());
  if (value != nullptr) {
    PyErr_SetObject(PyExc_OSError, value);  // OSError(errno, strerror): errno is set
    Py_DECREF(value);
  }
  return false;
}

// Whether some descriptor among the top `top` of the table is free. Descriptors are
// handed out lowest first: a free one near the top means the table is not nearly
// full (two system calls, no scan).
bool FreeAtTop(int top) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || Placeholder() < 0) return true;
  rlim_t soft = std::min<rlim_t>(limit.rlim_cur, rlim_t{1} << 20);
  if (soft <= static_cast<rlim_t>(2 * top)) return true;
  int probe = fcntl(Placeholder(), F_DUPFD_CLOEXEC, static_cast<int>(soft - top));
  if (probe < 0) return false;
  close(probe);
  return true;
}

}  // namespace

bool Sandbox::DescriptorsScarce() {
  return !FreeAtTop(kFreeDescriptorFloor + static_cast<int>(kMaxOpenDescriptors));
}

bool Sandbox::CheckProcessDescriptors() {
  if (FreeAtTop(kFreeDescriptorFloor)) return true;
  return SetTooManyFiles(absl::StrCat("the host process keeps ", kFreeDescriptorFloor,
                                      " descriptors free for itself"));
}

bool Sandbox::CheckDescriptorCap() {
  auto prune = [](absl::flat_hash_map<int, OwnedFd>& fds) {
    for (auto it = fds.begin(); it != fds.end();) {
      auto next = std::next(it);
      if (!Same(it->first, it->second)) fds.erase(it);
      it = next;
    }
  };
  if (owned_fds_.size() + buried_fds_.size() >= kMaxOpenDescriptors) {
    // Entries of descriptors closed since (by a file object, a socket) go first.
    prune(owned_fds_);
    prune(buried_fds_);
  }
  if (owned_fds_.size() + buried_fds_.size() >= kMaxOpenDescriptors) {
    return SetTooManyFiles(absl::StrCat("pyhost lets an execution hold ", kMaxOpenDescriptors,
                                        " descriptors at once"));
  }
  return CheckProcessDescriptors();
}

bool Sandbox::OwnsFd(int fd) const {
  auto it = owned_fds_.find(fd);
  return it != owned_fds_.end() && Same(fd, it->second);
}

bool Sandbox::HostHolds(dev_t dev, ino_t ino) const {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return true;  // cannot tell: the host's, to be safe
  bool held = false;
  while (dirent* entry = readdir(dir)) {
    int fd = -1;
    struct stat st;
    if (absl::SimpleAtoi(entry->d_name, &fd) && fd != dirfd(dir) && fstat(fd, &st) == 0 &&
        st.st_dev == dev && st.st_ino == ino && !OwnsFd(fd)) {
      held = true;
      break;
    }
  }
  closedir(dir);
  return held;
}

void ProtectHostDescriptor(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return;
  absl::MutexLock lock(&protected_mu);
  Protected().emplace_back(st.st_dev, st.st_ino);
  any_protected.store(true, std::memory_order_release);
}

bool Sandbox::ImportAllowed(absl::string_view module, bool user_initiated, std::string* why) const {
  ImportContext context;
  context.user_initiated = user_initiated;
  context.extra_network = !activation_.extra_network.empty();
  context.sysconfig_data_module = SysconfigDataModule();
  return JudgeImport(*activation_.policy, module, context, why);
}

bool Sandbox::UnencodableImportAllowed(absl::string_view shown, std::string* why) const {
  return JudgeUnencodableImport(*activation_.policy, shown, why);
}

}  // namespace pyhost

#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "process/restrictions.h"

namespace pyhost {
namespace {

int g_violation_fd = -1;

// Async-signal-safe: writes "seccomp <nr>\n" (the host names the call) and ends the
// process by SIGSYS, which the host classifies as PolicyViolation.
void OnViolation(int, siginfo_t* info, void*) {
  char line[32] = "seccomp ";
  int at = 8;
  char digits[12];
  int n = 0;
  unsigned value = static_cast<unsigned>(info->si_syscall);
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0 && n < 11);
  while (n > 0) line[at++] = digits[--n];
  line[at++] = '\n';
  if (g_violation_fd >= 0) (void)!write(g_violation_fd, line, at);
  raise(SIGSYS);  // SA_RESETHAND and SA_NODEFER: the default action, now
}

}  // namespace

absl::Status LoadSeccompFilter(bool allow_network, bool allow_processes, int violation_fd) {
  g_violation_fd = violation_fd;
  struct sigaction action {};
  action.sa_sigaction = OnViolation;
  action.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGSYS, &action, nullptr) != 0) {
    return absl::InternalError(absl::StrCat("sigaction(SIGSYS): ", strerror(errno)));
  }
  std::unique_ptr<void, void (*)(scmp_filter_ctx)> filter(seccomp_init(SCMP_ACT_ALLOW),
                                                          seccomp_release);
  if (filter == nullptr) return absl::InternalError("seccomp_init failed");
  int rc = 0;
  auto deny = [&](int nr) {
    if (rc == 0) rc = seccomp_rule_add(filter.get(), SCMP_ACT_TRAP, nr, 0);
  };
  if (!allow_processes) {
    for (int nr : {SCMP_SYS(fork), SCMP_SYS(vfork), SCMP_SYS(execve), SCMP_SYS(execveat)}) {
      deny(nr);
    }
  }
  for (int nr : {
           // other processes: tracing, their memory
           SCMP_SYS(ptrace),
           SCMP_SYS(process_vm_readv),
           SCMP_SYS(process_vm_writev),
           SCMP_SYS(pidfd_getfd),
           // the file system's and the kernel's shape
           SCMP_SYS(mount),
           SCMP_SYS(umount2),
           SCMP_SYS(pivot_root),
           SCMP_SYS(chroot),
           SCMP_SYS(unshare),
           SCMP_SYS(setns),
           SCMP_SYS(open_tree),
           SCMP_SYS(move_mount),
           SCMP_SYS(fsopen),
           SCMP_SYS(fsmount),
           SCMP_SYS(init_module),
           SCMP_SYS(finit_module),
           SCMP_SYS(delete_module),
           SCMP_SYS(kexec_load),
           SCMP_SYS(kexec_file_load),
           SCMP_SYS(reboot),
           SCMP_SYS(swapon),
           SCMP_SYS(swapoff),
           SCMP_SYS(bpf),
           SCMP_SYS(perf_event_open),
           SCMP_SYS(userfaultfd),
           // io_uring makes sockets and opens files without the calls above
           SCMP_SYS(io_uring_setup),
           SCMP_SYS(io_uring_enter),
           SCMP_SYS(io_uring_register),
           // keyrings
           SCMP_SYS(add_key),
           SCMP_SYS(request_key),
           SCMP_SYS(keyctl),
       }) {
    deny(nr);
  }
  // clone: threads only (CLONE_THREAD set); clone3's flags are behind a pointer the
  // filter cannot read, so it answers ENOSYS and the C library falls back to clone.
  if (rc == 0 && !allow_processes) {
    rc = seccomp_rule_add(filter.get(), SCMP_ACT_TRAP, SCMP_SYS(clone), 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
  }
  // Never a new namespace, processes allowed or not (unshare and setns are refused
  // above): a rule per flag, as the filter can only test bits all set or all clear.
  for (scmp_datum_t flag : {CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
                            CLONE_NEWNET, CLONE_NEWCGROUP}) {
    if (rc == 0) {
      rc = seccomp_rule_add(filter.get(), SCMP_ACT_TRAP, SCMP_SYS(clone), 1,
                            SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
    }
  }
  if (rc == 0) rc = seccomp_rule_add(filter.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  if (rc == 0 && !allow_network) {
    rc = seccomp_rule_add(filter.get(), SCMP_ACT_TRAP, SCMP_SYS(socket), 1,
                          SCMP_A0(SCMP_CMP_NE, AF_UNIX));
  }
  if (rc == 0) rc = seccomp_load(filter.get());
  if (rc != 0) return absl::InternalError(absl::StrCat("seccomp: ", strerror(-rc)));
  return absl::OkStatus();
}

}  // namespace pyhost

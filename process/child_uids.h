// The uids and gids process-isolation children switch to when the host runs as root:
// one per running child, so children cannot signal, trace or write to each other,
// RLIMIT_NPROC is each one's own, and what one leaves running is found by its uid.
// The range is this process's (by its pid: live pids are unique, so two hosts on one
// machine never share a uid), and so is the pool: every worker of every Host in the
// process takes from it. A uid is given back once its child's end was reported (after
// the worker's sweep), never while something of it may run.
//
//   absl::StatusOr<ChildIdentity> id = ChildUids::ForThisProcess().Reserve();
//   ... fork the child as *id; when the worker reports its end:
//   ChildUids::ForThisProcess().Release(*id);
//
// Thread-safety: thread-safe.
#ifndef PYHOST_PROCESS_CHILD_UIDS_H_
#define PYHOST_PROCESS_CHILD_UIDS_H_

#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "process/forkserver.h"

namespace pyhost {

class ChildUids {
 public:
  static constexpr uid_t kBase = 0x60000000;
  static constexpr int kPerProcess = 64;  // children running at once, per host process

  static ChildUids& ForThisProcess();

  // A free uid/gid, waiting for one until `deadline` when all kPerProcess are in use
  // (then ResourceExhausted); an unswitched identity when the host is not root
  // (nothing to switch from).
  absl::StatusOr<ChildIdentity> Reserve(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);
  void Release(const ChildIdentity& identity) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  ChildUids();
  const uid_t first_;
  absl::Mutex mu_;
  std::vector<bool> in_use_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pyhost

#endif  // PYHOST_PROCESS_CHILD_UIDS_H_

// The host's side of a forkserver (process/forkserver.h): starts it by fork-then-exec
// (posix_spawn of the worker program, never a bare fork of the multi-threaded host),
// asks it for children, and learns how each ended. A server that died (or never
// started) is started again on the next fork, and counted.
//
//   ForkserverClient server({"/usr/bin/pyhost", "worker", "--policy-packages", ...});
//   absl::StatusOr<ChildIdentity> id = ChildUids::ForThisProcess().Reserve(deadline);
//   absl::StatusOr<pid_t> pid = server.Fork(child_end.get(), *id, absl::Seconds(30),
//                                           /*cpu_limit=*/absl::Seconds(30), /*sweep=*/false);
//   ... talk to the child over the other end ...
//   absl::StatusOr<ChildEnd> end = server.AwaitEnd(*pid, absl::Now() + absl::Seconds(35));
//
// The program gets its control channel as descriptor 3 (`--control-fd 3` is added),
// /dev/null as 0, 1 and 2, `env` as its whole environment (never the host's: its
// strings would stay in every child's memory), and no other descriptor. Its first record is
// {"ready": true} or {"failed": "why"} (within kStartTimeout), which Fork reports as its Status.
// Thread-safety: thread-safe. A reader thread per running server delivers its records.
#ifndef PYHOST_PROCESS_FORKSERVER_CLIENT_H_
#define PYHOST_PROCESS_FORKSERVER_CLIENT_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "process/child_process.h"
#include "process/forkserver.h"
#include "process/unique_fd.h"

namespace pyhost {

struct ForkserverStats {
  int64_t starts = 0;  // servers started (the first, and every restart)
  int64_t deaths = 0;  // servers that ended while the host still used them
  int64_t forks = 0;   // children forked
};

class ForkserverClient {
 public:
  static constexpr absl::Duration kStartTimeout = absl::Seconds(60);

  ForkserverClient(std::vector<std::string> argv,
                   std::vector<std::pair<std::string, std::string>> env);
  // Ends the server (its children are killed with it) and reaps it.
  ~ForkserverClient();
  ForkserverClient(const ForkserverClient&) = delete;
  ForkserverClient& operator=(const ForkserverClient&) = delete;

  // A child whose channel is `channel` (the caller keeps its copy, and closes it),
  // who becomes `identity`, whose process group the server kills `kill_after` from
  // now or once it used `cpu_limit` of CPU (zero: none). Starts the server when none
  // runs. `identity` (ChildUids') is given back when the child's end is reported, or
  // at once when the fork fails.
  // `sweep`: the child may start processes (its policy allows them): after it ends,
  // whatever its uid still runs is killed (what left its group: a new session).
  absl::StatusOr<pid_t> Fork(int channel, const ChildIdentity& identity, absl::Duration kill_after,
                             absl::Duration cpu_limit, bool sweep) ABSL_LOCKS_EXCLUDED(fork_mu_);
  // Kills the child's group now (an interrupted execution); a child that is not the
  // running server's (ended, or its server gone) is left alone.
  void Kill(pid_t pid) ABSL_LOCKS_EXCLUDED(mu_);
  // How the child ended, reported by the server: DeadlineExceeded past `give_up`,
  // Unavailable when the server died first (its children died with it).
  absl::StatusOr<ChildEnd> AwaitEnd(pid_t pid, absl::Time give_up) ABSL_LOCKS_EXCLUDED(mu_);
  // The caller gave up waiting for the child's end (AwaitEnd's deadline passed twice):
  // its report, if it ever comes, is dropped.
  void Abandon(pid_t pid) ABSL_LOCKS_EXCLUDED(mu_);
  ForkserverStats stats() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // One started server: its process, its control channel, the thread reading it.
  struct Server;
  absl::Status StartLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(fork_mu_);
  // Ends the server (its children with it); Kill stops using its channel first.
  void StopServer() ABSL_EXCLUSIVE_LOCKS_REQUIRED(fork_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<pid_t> SendFork(int channel, const ChildIdentity& identity,
                                 absl::Duration kill_after, absl::Duration cpu_limit, bool sweep)
      ABSL_LOCKS_EXCLUDED(fork_mu_);
  void ReadLoop(int control, int64_t generation) ABSL_LOCKS_EXCLUDED(mu_);

  const std::vector<std::string> argv_;
  const std::vector<std::pair<std::string, std::string>> env_;

  absl::Mutex fork_mu_ ABSL_ACQUIRED_BEFORE(mu_);  // one fork request in flight
  std::unique_ptr<Server> server_ ABSL_GUARDED_BY(fork_mu_);

  // What the reader threads deliver, by server generation (stats_.starts when it
  // started).
  absl::Mutex mu_;
  int64_t ready_ ABSL_GUARDED_BY(mu_) = 0;             // the last generation that said ready
  std::string failed_ ABSL_GUARDED_BY(mu_);            // why the last start failed
  int64_t ended_generation_ ABSL_GUARDED_BY(mu_) = 0;  // the last that ended
  std::optional<std::string> fork_reply_ ABSL_GUARDED_BY(mu_);
  int control_fd_ ABSL_GUARDED_BY(mu_) = -1;  // the running server's, for Kill
  absl::flat_hash_map<pid_t, int64_t> running_ ABSL_GUARDED_BY(mu_);  // pid -> generation
  absl::flat_hash_map<pid_t, ChildEnd> ended_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<pid_t> lost_ ABSL_GUARDED_BY(mu_);       // their server died
  absl::flat_hash_set<pid_t> abandoned_ ABSL_GUARDED_BY(mu_);  // running, not awaited
  // The identity (process/child_uids.h) each running child was forked as, given back
  // when its end is reported.
  absl::flat_hash_map<pid_t, ChildIdentity> identity_of_ ABSL_GUARDED_BY(mu_);
  ForkserverStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pyhost

#endif  // PYHOST_PROCESS_FORKSERVER_CLIENT_H_

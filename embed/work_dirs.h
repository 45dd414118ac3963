// Execution directories (WORK_DIR, OUTPUT_DIR) made ahead of need and removed after
// use, on a thread of its own, so neither costs the request path anything:
// creating and removing them is ~70 us on tmpfs and 0.5-10 ms on the disk behind /tmp
// on these machines (measured).
//
//   WorkDirStock dirs("/dev/shm/pyhost-123", /*spares=*/4);
//   absl::StatusOr<std::string> dir = dirs.Take();  // dir/work and dir/output exist
//   ...
//   dirs.Return(*dir, /*keep_outputs=*/!files.empty());  // later: removed, or work/ only
//
// A directory is never handed out twice: what one execution leaves on it (extended
// attributes, mode, times, files) must not reach the next. The files listed to the
// caller (RegularFilesUnder(dir + "/output")) belong to the caller: their output/
// stays, holding only regular files and directories; everything else goes.
// The root holds a lock while its stock lives; a stock whose root is the default one
// removes the roots of stocks that died without tidying (a crash, SIGKILL).
// Thread-safety: thread-safe. No Python involved.
#ifndef PYHOST_EMBED_WORK_DIRS_H_
#define PYHOST_EMBED_WORK_DIRS_H_

#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace pyhost {

class WorkDirStock {
 public:
  WorkDirStock(std::string root, int spares);
  // Tidies what was returned, removes the spares, and the root if it is then empty.
  ~WorkDirStock();
  WorkDirStock(const WorkDirStock&) = delete;
  WorkDirStock& operator=(const WorkDirStock&) = delete;

  // A fresh directory holding work/ and output/ (made now if no spare is ready).
  absl::StatusOr<std::string> Take() ABSL_LOCKS_EXCLUDED(mu_);
  // `keep_outputs`: the caller was told of files in output/ (they stay).
  void Return(std::string dir, bool keep_outputs) ABSL_LOCKS_EXCLUDED(mu_);
  const std::string& root() const { return root_; }  // canonical
  // Removes everything under the root except the outputs returned as the caller's:
  // for a process that must exit now (executions may still hold their directories).
  void RemoveAllButKeptOutputs() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Returned {
    std::string dir;
    bool keep_outputs;
  };
  void Loop();

  const std::string root_;
  const size_t spares_;
  int lock_fd_ = -1;  // flock'ed while this stock lives (see RemoveAbandonedRoots)
  absl::Mutex mu_;
  std::deque<std::string> ready_ ABSL_GUARDED_BY(mu_);
  std::vector<Returned> returned_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> kept_ ABSL_GUARDED_BY(mu_);  // returned with outputs
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool failing_ ABSL_GUARDED_BY(mu_) = false;  // making spares failed: stop trying
  std::thread thread_;
};

// Regular files under `dir` (symlinks not followed), relative to it, sorted.
std::vector<std::string> RegularFilesUnder(const std::string& dir);

}  // namespace pyhost

#endif  // PYHOST_EMBED_WORK_DIRS_H_

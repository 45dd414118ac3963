// Execution directories (WORK_DIR, OUTPUT_DIR) made ahead of need and tidied after
// use, on a thread of its own, so neither costs the request path anything:
// creating and removing them is ~70 us on tmpfs and 0.5-10 ms on the disk behind /tmp
// on these machines (measured).
//
//   WorkDirStock dirs("/dev/shm/pyhost-123", /*spares=*/4);
//   absl::StatusOr<std::string> dir = dirs.Take();  // dir/work and dir/output exist
//   ...
//   dirs.Return(*dir);  // later: work/ emptied; reused if output/ is empty
//
// Files left in output/ belong to the caller, who was told where they are: such a
// directory is never handed out again. One the code left empty is reused (emptying
// it is cheaper than making a new one).
// Thread-safety: thread-safe. No Python involved.
#ifndef PYHOST_EMBED_WORK_DIRS_H_
#define PYHOST_EMBED_WORK_DIRS_H_

#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
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
  void Return(std::string dir) ABSL_LOCKS_EXCLUDED(mu_);
  const std::string& root() const { return root_; }  // canonical

 private:
  void Loop();

  const std::string root_;
  const size_t spares_;
  absl::Mutex mu_;
  std::deque<std::string> ready_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> returned_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool failing_ ABSL_GUARDED_BY(mu_) = false;  // making spares failed: stop trying
  std::thread thread_;
};

// Where execution directories go by default: /dev/shm/pyhost-<pid> (tmpfs: fast to
// create and remove; files there use memory) when writable, else $TMPDIR or /tmp.
std::string DefaultWorkRoot();

}  // namespace pyhost

#endif  // PYHOST_EMBED_WORK_DIRS_H_

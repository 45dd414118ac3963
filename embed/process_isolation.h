// Process isolation: every execution in a child process of its own, forked by a
// worker (`pyhost worker`, worker/) that was started by fork-then-exec and has
// Python initialized and the policy's modules prewarmed, so no interpreter starts on
// the request path. The child applies its restrictions to itself
// (process/restrictions.h), runs the execution with the in-process layers on, and
// answers over its channel (embed/execution_wire.h); this side enforces the wall
// deadline by the worker killing the child's process group, and classifies how the
// child ended (process/child_process.h's ClassifyEnd: Timeout, CpuLimitExceeded,
// Crashed, WorkerExited, PolicyViolation).
//
// One worker per distinct (packages, prewarm) of the policies it runs, started on
// first use and again when it dies (ExecStats::process says so).
// Thread-safety: thread-safe; executions run concurrently, each in its own child.
#ifndef PYHOST_EMBED_PROCESS_ISOLATION_H_
#define PYHOST_EMBED_PROCESS_ISOLATION_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "embed/isolation.h"
#include "embed/work_dirs.h"
#include "process/forkserver_client.h"

namespace pyhost {

// The largest answer a child may send beyond its two capped streams (its result and
// error): past it, the child is killed and the answer is OutputLimitExceeded.
inline constexpr size_t kMaxProcessAnswerBytes = size_t{256} << 20;
// How deep the answer's own objects nest around a result or an envelope (which may
// nest kMaxValueDepth).
inline constexpr int kWireAnswerDepth = 4;

class ProcessIsolation : public IsolationMode {
 public:
  ProcessIsolation(ProcessIsolationOptions options, std::shared_ptr<WorkDirStock> dirs);
  ~ProcessIsolation() override;
  Isolation isolation() const override { return Isolation::kProcess; }
  EnforcedLimits enforced() const override { return {true, true, true}; }
  absl::Status Run(const ExecutionSettings& settings,
                   const std::shared_ptr<ExecutionControl>& control, Execution& execution) override;

 private:
  // The worker for the policy's packages and prewarm; ResourceExhausted past
  // kMaxWorkers distinct ones (each is a Python process that stays).
  absl::StatusOr<ForkserverClient*> ServerFor(const Policy& policy) ABSL_LOCKS_EXCLUDED(mu_);
  static constexpr size_t kMaxWorkers = 8;

  ProcessIsolationOptions options_;  // worker_program resolved at construction
  const std::shared_ptr<WorkDirStock> dirs_;
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<ForkserverClient>> servers_ ABSL_GUARDED_BY(mu_);
};

// The pyhost binary to start workers from when HostOptions::worker_program is empty:
// $PYHOST_WORKER, else this build's cli/pyhost, else the installed one.
std::string DefaultWorkerProgram();

}  // namespace pyhost

#endif  // PYHOST_EMBED_PROCESS_ISOLATION_H_

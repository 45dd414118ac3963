// Where a request runs: the seam every isolation mode implements, and the one request
// skeleton around it.
//
//   Host (host.cc) or ToolRegistry      resolve the request's defaults into
//                                       ExecutionSettings, pick an IsolationMode
//   Isolations::Run                     checks the limits against the mode, marks the
//                                       pool busy (in-process modes), arms the limits,
//                                       makes the request interruptible, times it
//   IsolationMode::Run                  chooses and enters an interpreter (a fresh one
//                                       on a thread of its own), enters the
//                                       execution's context (policy, directories)
//   Execution::Run (executions.h)       runs the snippet, the tool call or the tool's
//                                       load: fills the Answer
//
//   Isolations isolations(pool, std::make_shared<WorkDirStock>(root, 4), running);
//   absl::StatusOr<IsolationMode*> fresh = isolations.Shared(Isolation::kFresh);
//   ExecResult result;
//   SnippetExecution snippet(request, result);
//   absl::Status ran = isolations.Run(**fresh, settings, snippet);
//
// A Status means nothing ran (the mode cannot enforce a limit, or could not provide an
// interpreter); everything that happened once an interpreter was taken is the
// execution's to report (Execution::Fail): snippets and tool calls answer it, as an
// outcome (pyhost/outcome.h); a tool's load turns it into the registration's Status.
// Thread-safety: Isolations and the modes are thread-safe; a resident mode runs one
// execution at a time.
#ifndef PYHOST_EMBED_ISOLATION_H_
#define PYHOST_EMBED_ISOLATION_H_

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bindings/cancellation.h"
#include "embed/execution_context.h"
#include "embed/interpreter.h"
#include "embed/pool.h"
#include "embed/runner.h"
#include "embed/work_dirs.h"
#include "guards/execution_limits.h"
#include "pyhost/limits.h"
#include "pyhost/policy.h"
#include "pyhost/request.h"
#include "pyhost/result.h"

namespace pyhost {

// One request's settings, resolved by the Host: nothing is left to default.
struct ExecutionSettings {
  const Policy* policy = nullptr;  // outlives the execution
  Limits limits;                   // in force (policy/limits.h's ResolveLimits): every field set
  size_t max_output_bytes = 0;     // cap of captured stdout, and of stderr
  std::vector<std::string> extra_network;   // PYHOST_NETWORK_ALLOWLIST + the request's
  Isolation requested = Isolation::kFresh;  // what the request asked for
};

// The request's own step: what runs once a mode has entered an interpreter.
class Execution {
 public:
  virtual ~Execution() = default;
  // GIL held in `interp`, `context` entered (its policy in force). Sets the answer's
  // outcome, streams and result; Python errors never escape.
  virtual void Run(const ExecutionSettings& settings, Interpreter& interp,
                   const ExecutionContext& context, Cancellation& cancellation) = 0;
  // The execution's context could not be entered (`why`: Cancelled when it was
  // interrupted while its environment was set), so Run never started: records it.
  virtual void Fail(const absl::Status& why) = 0;
  // It was given up on past its deadline (stuck in C, or no interpreter could be had
  // in time): `failure` (a limit's outcome) is its answer.
  virtual void Abandon(const Failure& failure) = 0;
  // A copy that owns its inputs and its answer, for a thread that may outlive the
  // request (a fresh execution stuck in C); Adopt takes its answer back once it ran.
  virtual std::unique_ptr<Execution> Detached() const = 0;
  virtual void Adopt(Execution& detached) = 0;
  // Whether the files the code leaves in OUTPUT_DIR are the caller's (listed in the
  // answer, the directory kept); a tool's load has no caller to hand them to.
  virtual bool ReportsOutputs() const { return true; }
  virtual Answer& answer() = 0;
  // Process isolation (execution_wire.h): the inputs a child remakes this execution
  // from (ExecutionFromWire, executions.h), and the answer it sends back, adopted
  // here (InvalidArgument naming what is wrong with it).
  virtual nlohmann::json WireInputs() const = 0;
  virtual nlohmann::json WireAnswer() const = 0;
  virtual absl::Status AdoptWireAnswer(const nlohmann::json& wire) = 0;
};

// Which limits a mode enforces; a request setting another is refused, never run
// without it.
struct EnforcedLimits {
  bool timeout = false;
  bool cpu = false;
  bool memory = false;
};

// What process isolation's workers are started with (embed/process_isolation.h).
struct ProcessIsolationOptions {
  std::string worker_program;         // empty: DefaultWorkerProgram()
  std::vector<std::string> prewarm;   // the host's prewarm modules
  size_t max_output_bytes = 1 << 20;  // the host's default cap
};

// What stops one execution: its cancellation and its limits (armed from
// construction), shared with the thread that runs it, which may outlive the request.
struct ExecutionControl {
  explicit ExecutionControl(const Limits& in_force)
      : cancellation(Cancellation::kInterrupt), limits(in_force, cancellation) {}
  Cancellation cancellation;
  ExecutionLimits limits;
};

// How long past its deadline (or past being stopped by a limit) a fresh execution is
// waited for before its caller gets a Timeout and its interpreter is quarantined:
// code that stays in Python stops within milliseconds of being stopped.
inline constexpr absl::Duration kStuckGrace = absl::Milliseconds(100);

class IsolationMode {
 public:
  virtual ~IsolationMode() = default;
  virtual Isolation isolation() const = 0;
  virtual EnforcedLimits enforced() const = 0;
  // Runs `execution` in an interpreter of this mode, entered on this thread, inside
  // the execution's context; sets the answer's interpreter id, wait and output files.
  // A Status: no interpreter could be had, nothing ran.
  // The thread that runs the code holds an ExecutionLimits::OnThisThread of
  // `control`'s limits while it does (a fresh execution's: a thread of its own).
  virtual absl::Status Run(const ExecutionSettings& settings,
                           const std::shared_ptr<ExecutionControl>& control,
                           Execution& execution) = 0;
};

// InvalidArgument for a non-positive limit, Unimplemented for one `mode` does not
// enforce (naming it and the mode).
absl::Status CheckEnforced(const IsolationMode& mode, const Limits& limits);

// The host's isolation modes, and the skeleton every request runs through.
class Isolations {
 public:
  // `pool` and `running` must outlive the Isolations and the modes it makes; `dirs`
  // is shared with executions that outlive their request (stuck in C).
  Isolations(InterpreterPool& pool, std::shared_ptr<WorkDirStock> dirs, CancellationSet& running,
             ProcessIsolationOptions process = {});
  ~Isolations();

  // The host's mode for `requested` under `policy`: kFresh, kResident (the one
  // resident interpreter of snippets, made on first use) or kProcess; kProcess
  // whatever was asked when the policy requires it or names packages (their
  // extensions do not live in subinterpreters).
  IsolationMode& Shared(Isolation requested, const Policy& policy);
  // A resident mode of its own, for a resident tool: its interpreter, and the context
  // of its first execution (the load) kept in force until the mode is destroyed.
  std::unique_ptr<IsolationMode> DedicatedResident();

  // Checks the settings' limits against `mode`, marks the pool busy (not for process
  // isolation: its code holds no GIL of this process's), registers the
  // execution to be interrupted (Host::InterruptAll), runs it and times it.
  absl::Status Run(IsolationMode& mode, const ExecutionSettings& settings, Execution& execution);

 private:
  InterpreterPool& pool_;
  std::shared_ptr<WorkDirStock> dirs_;
  CancellationSet& running_;
  std::unique_ptr<IsolationMode> fresh_;
  std::unique_ptr<IsolationMode> resident_;
  std::unique_ptr<IsolationMode> process_;
};

}  // namespace pyhost

#endif  // PYHOST_EMBED_ISOLATION_H_

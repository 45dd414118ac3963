// How a request ended, as data: the outcome vocabulary every isolation mode, the
// C++ API, `pyhost serve` and the command's exit status share (after sandbox2's
// Result: a final status, a reason, and the figures).
//
//   absl::StatusOr<pyhost::ExecResult> run = host->Execute(request);
//   if (!run.ok()) return pyhost::ExitCodeForStatus(run.status());  // 2 or 3
//   switch (run->outcome) {
//     case pyhost::Outcome::kOk: ...
//     case pyhost::Outcome::kCodeError: ...  // run->error->type: "KeyError", ...
//   }
//
// An answer (ExecResult, ToolCallResult) always has an outcome; a Status instead of
// an answer means nothing ran: the request was bad (a usage error), or pyhost could not
// even take an interpreter for it (a host error). Once an interpreter was taken,
// pyhost's own failures are answers too, with Outcome::kHostError. The type names on the wire (the
// "type" of an "error" object) are the constants below, or a Python exception's name
// for code errors.
#ifndef PYHOST_OUTCOME_H_
#define PYHOST_OUTCOME_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace pyhost {

enum class Outcome {
  kOk,               // the code ran to its end
  kCodeError,        // the code raised, or left a result that is not data
  kInterrupted,      // stopped from outside (Host::InterruptAll, a stop signal)
  kTimeout,          // passed its wall-clock deadline
  kCpuLimit,         // used up its CPU time
  kMemoryLimit,      // passed its memory budget
  kOutputLimit,      // wrote more than its output may hold
  kPolicyViolation,  // did what its policy forbids, in a way that could not be refused
  kCrashed,          // the process running it died of a signal
  kWorkerExited,     // the process running it exited before answering
  kHostError,        // pyhost failed around the code (not the code's fault)
};

// "ok", "code_error", "interrupted", "timeout", "cpu_limit", "memory_limit",
// "output_limit", "policy_violation", "crashed", "worker_exited", "host_error":
// the answer's "outcome" on the wire.
absl::string_view OutcomeName(Outcome outcome);

// The "type" of the error object of answers that did not come from a Python exception.
namespace error_type {
inline constexpr absl::string_view kArgs = "ArgsError";  // args not convertible
inline constexpr absl::string_view kResultNotSerializable = "ResultNotSerializable";
inline constexpr absl::string_view kTool = "ToolError";           // no run(args)
inline constexpr absl::string_view kToolLoad = "ToolLoadError";   // registration failed
inline constexpr absl::string_view kInterrupted = "Interrupted";  // stopped, no answer
inline constexpr absl::string_view kKeyboardInterrupt = "KeyboardInterrupt";
inline constexpr absl::string_view kTimeout = "Timeout";
inline constexpr absl::string_view kCpuLimit = "CpuLimitExceeded";
inline constexpr absl::string_view kMemoryLimit = "MemoryLimitExceeded";
inline constexpr absl::string_view kOutputLimit = "OutputLimitExceeded";
inline constexpr absl::string_view kPolicyViolation = "PolicyViolation";
inline constexpr absl::string_view kCrashed = "Crashed";
inline constexpr absl::string_view kWorkerExited = "WorkerExited";
inline constexpr absl::string_view kHost = "HostError";         // Internal, Unavailable
inline constexpr absl::string_view kBadRequest = "BadRequest";  // InvalidArgument
inline constexpr absl::string_view kNotFound = "NotFound";
inline constexpr absl::string_view kNotImplemented = "NotImplemented";
}  // namespace error_type

// The error type of an answer that ended with `outcome` when pyhost, not the code,
// names it: kTimeout, kCpuLimit, kMemoryLimit, kOutputLimit, kPolicyViolation,
// kCrashed, kWorkerExited, kHost (kHostError); empty for the others.
absl::string_view ErrorTypeForOutcome(Outcome outcome);

// The wire type of a request that got a Status instead of an answer: kHost for
// pyhost's own failures (Internal, Unavailable, and codes no request can cause),
// kNotFound, kNotImplemented, kInterrupted (Cancelled), else `invalid` (what an
// InvalidArgument means for the operation: kBadRequest, or kToolLoad for a tool
// that does not load).
absl::string_view ErrorTypeForStatus(const absl::Status& status,
                                     absl::string_view invalid = error_type::kBadRequest);

// The command's exit status (documented in README.md and `pyhost --help`):
inline constexpr int kExitOk = 0;          // the code ran and succeeded
inline constexpr int kExitCodeFailed = 1;  // the code failed, was stopped or hit a limit
inline constexpr int kExitUsage = 2;       // the request was bad: nothing ran
inline constexpr int kExitHostError = 3;   // pyhost itself failed
// (128 + N: stopped by signal N.)

int ExitCodeForOutcome(Outcome outcome);
// kExitUsage for what the request got wrong (InvalidArgument, NotFound,
// Unimplemented, FailedPrecondition, OutOfRange, AlreadyExists), kExitCodeFailed for
// Cancelled, kExitHostError for everything else.
int ExitCodeForStatus(const absl::Status& status);

}  // namespace pyhost

#endif  // PYHOST_OUTCOME_H_

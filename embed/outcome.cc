#include "pyhost/outcome.h"

namespace pyhost {

absl::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kCodeError:
      return "code_error";
    case Outcome::kInterrupted:
      return "interrupted";
    case Outcome::kTimeout:
      return "timeout";
    case Outcome::kCpuLimit:
      return "cpu_limit";
    case Outcome::kMemoryLimit:
      return "memory_limit";
    case Outcome::kOutputLimit:
      return "output_limit";
    case Outcome::kPolicyViolation:
      return "policy_violation";
    case Outcome::kCrashed:
      return "crashed";
    case Outcome::kWorkerExited:
      return "worker_exited";
    case Outcome::kHostError:
      return "host_error";
  }
  return "host_error";
}

absl::string_view ErrorTypeForOutcome(Outcome outcome) {
  switch (outcome) {
    case Outcome::kTimeout:
      return error_type::kTimeout;
    case Outcome::kCpuLimit:
      return error_type::kCpuLimit;
    case Outcome::kMemoryLimit:
      return error_type::kMemoryLimit;
    case Outcome::kOutputLimit:
      return error_type::kOutputLimit;
    case Outcome::kPolicyViolation:
      return error_type::kPolicyViolation;
    case Outcome::kCrashed:
      return error_type::kCrashed;
    case Outcome::kWorkerExited:
      return error_type::kWorkerExited;
    case Outcome::kHostError:
      return error_type::kHost;
    default:
      return "";
  }
}

absl::string_view ErrorTypeForStatus(const absl::Status& status, absl::string_view invalid) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kAlreadyExists:
      return invalid;
    case absl::StatusCode::kNotFound:
      return error_type::kNotFound;
    case absl::StatusCode::kUnimplemented:
      return error_type::kNotImplemented;
    case absl::StatusCode::kCancelled:
      return error_type::kInterrupted;
    default:
      return error_type::kHost;
  }
}

int ExitCodeForOutcome(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return kExitOk;
    case Outcome::kHostError:
      return kExitHostError;
    default:
      return kExitCodeFailed;
  }
}

int ExitCodeForStatus(const absl::Status& status) {
  if (status.ok()) return kExitOk;
  absl::string_view type = ErrorTypeForStatus(status);
  if (type == error_type::kHost) return kExitHostError;
  if (type == error_type::kInterrupted) return kExitCodeFailed;
  return kExitUsage;
}

}  // namespace pyhost

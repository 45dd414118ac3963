// Which limits are in force for one execution (the rules are in pyhost/limits.h), and
// the profiles' ceilings. Data only: guards/ enforces them.
//
//   absl::StatusOr<Limits> defaults = DefaultLimitsFromEnvironment();  // at Host::Create
//   absl::StatusOr<Limits> in_force = ResolveLimits(policy, request.limits, *defaults);
#ifndef PYHOST_POLICY_LIMITS_H_
#define PYHOST_POLICY_LIMITS_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pyhost/limits.h"

namespace pyhost {

// The ceilings of a named profile ("strict": 5 minutes of wall and CPU time, 1 GiB);
// every field set.
Limits ProfileCeilings(absl::string_view profile);

// kDefaultTimeoutMs and kDefaultMemoryMb, replaced by PYHOST_TIMEOUT_MS and
// PYHOST_MAX_MEMORY_MB when set; InvalidArgument naming the variable when one is not
// a positive integer. cpu_ms stays unset (it follows the wall limit).
absl::StatusOr<Limits> DefaultLimitsFromEnvironment();

// The limits in force: each of the request's fields if set (InvalidArgument if not
// positive, or above the policy's ceiling: naming the limit, the value and the
// ceiling), else the default lowered to the ceiling. cpu_ms unset in both: the wall
// limit in force. Every field of the result is set.
absl::StatusOr<Limits> ResolveLimits(absl::string_view policy_name, const Limits& ceilings,
                                     const Limits& request, const Limits& defaults);

}  // namespace pyhost

#endif  // PYHOST_POLICY_LIMITS_H_

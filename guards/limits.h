// Resource limits of one execution, as data.
//
//   pyhost::Limits limits;
//   limits.timeout_ms = 2000;
//   absl::Status supported = pyhost::CheckLimitsSupported(limits);
//
// The fields are part of the API now so that requests can carry them; enforcement
// (deadline, CPU, memory) comes with the limits work. Until then a request that sets
// one is rejected with Unimplemented, never silently run without it.
#ifndef PYHOST_GUARDS_LIMITS_H_
#define PYHOST_GUARDS_LIMITS_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"

namespace pyhost {

struct Limits {
  std::optional<int64_t> timeout_ms;  // wall clock
  std::optional<int64_t> cpu_ms;      // CPU time of the execution
  std::optional<int64_t> memory_mb;   // memory the execution may allocate
};

// InvalidArgument for a non-positive value, Unimplemented for a limit not enforced yet.
absl::Status CheckLimitsSupported(const Limits& limits);

}  // namespace pyhost

#endif  // PYHOST_GUARDS_LIMITS_H_

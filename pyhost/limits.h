// Resource limits of one execution, as data.
//
//   pyhost::ExecRequest request;
//   request.limits.timeout_ms = 2000;  // wall clock
//   request.limits.memory_mb = 64;
//
// Where the limits in force come from, most specific first (ResolveLimits,
// policy/limits.h): the request's; else the environment's (PYHOST_TIMEOUT_MS,
// PYHOST_MAX_MEMORY_MB, read when the Host is created); else the defaults below. A
// policy's limits are ceilings: a request above one is refused naming the limit and
// the ceiling (never clamped), and the environment's or default value is lowered to
// it. The CPU limit defaults to the wall limit in force.
// An execution that passes one ends with Outcome::kTimeout, kCpuLimit or kMemoryLimit
// (pyhost/outcome.h); docs/security.md says what in-process limits cannot stop.
#ifndef PYHOST_LIMITS_H_
#define PYHOST_LIMITS_H_

#include <cstdint>
#include <optional>

#include <nlohmann/json.hpp>

namespace pyhost {

struct Limits {
  std::optional<int64_t> timeout_ms;  // wall clock, from the request to its answer
  std::optional<int64_t> cpu_ms;      // CPU time of the thread running the code
  std::optional<int64_t> memory_mb;   // what the execution may hold allocated (MiB)
};

// {"timeout_ms", "cpu_ms", "memory_mb"}: the fields that are set.
nlohmann::json LimitsToJson(const Limits& limits);

inline constexpr int64_t kDefaultTimeoutMs = 30000;
inline constexpr int64_t kDefaultMemoryMb = 256;
// The largest memory_mb taken (its bytes fit in an int64_t); larger is refused.
inline constexpr int64_t kMaxMemoryMb = INT64_MAX >> 20;

}  // namespace pyhost

#endif  // PYHOST_LIMITS_H_

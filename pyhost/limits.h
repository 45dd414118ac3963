// Resource limits of one execution, as data.
//
//   pyhost::Limits limits;
//   limits.timeout_ms = 2000;
//
// The fields are part of the API now so that requests and policies can carry them;
// each isolation mode says which it enforces (embed/isolation.h), and a request that
// sets one its mode does not enforce is rejected with Unimplemented, never silently
// run without it. None is enforced yet.
#ifndef PYHOST_LIMITS_H_
#define PYHOST_LIMITS_H_

#include <cstdint>
#include <optional>

namespace pyhost {

struct Limits {
  std::optional<int64_t> timeout_ms;  // wall clock
  std::optional<int64_t> cpu_ms;      // CPU time of the execution
  std::optional<int64_t> memory_mb;   // memory the execution may allocate
};

}  // namespace pyhost

#endif  // PYHOST_LIMITS_H_

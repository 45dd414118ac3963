#include "policy/limits.h"

#include <stdlib.h>

#include <algorithm>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace pyhost {
namespace {

struct Field {
  const char* name;
  std::optional<int64_t> Limits::*member;
};
constexpr Field kFields[] = {{"timeout_ms", &Limits::timeout_ms},
                             {"cpu_ms", &Limits::cpu_ms},
                             {"memory_mb", &Limits::memory_mb}};

constexpr int64_t kMinute = 60 * 1000;

Limits Ceilings(int64_t minutes, int64_t memory_mb) {
  return Limits{minutes * kMinute, minutes * kMinute, memory_mb};
}

absl::Status ReadVariable(const char* variable, std::optional<int64_t>& out) {
  const char* text = getenv(variable);
  if (text == nullptr) return absl::OkStatus();
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value) || value <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(variable, " must be a positive integer, got '", text, "'"));
  }
  out = value;
  return absl::OkStatus();
}

}  // namespace

nlohmann::json LimitsToJson(const Limits& limits) {
  nlohmann::json out = nlohmann::json::object();
  for (const Field& field : kFields) {
    if (const std::optional<int64_t>& value = limits.*field.member) out[field.name] = *value;
  }
  return out;
}

Limits ProfileCeilings(absl::string_view profile) {
  // Generous enough for the profile's work, finite so a policy bounds what one
  // request can take. yolo trusts the code, not its resource use.
  if (profile == "yolo") return Ceilings(60, 8192);
  if (profile == "balanced") return Ceilings(10, 2048);
  if (profile == "data_science") return Ceilings(10, 4096);
  return Ceilings(5, 1024);  // strict, enterprise
}

absl::StatusOr<Limits> DefaultLimitsFromEnvironment() {
  Limits defaults{kDefaultTimeoutMs, std::nullopt, kDefaultMemoryMb};
  if (absl::Status read = ReadVariable("PYHOST_TIMEOUT_MS", defaults.timeout_ms); !read.ok()) {
    return read;
  }
  if (absl::Status read = ReadVariable("PYHOST_MAX_MEMORY_MB", defaults.memory_mb); !read.ok()) {
    return read;
  }
  return defaults;
}

absl::StatusOr<Limits> ResolveLimits(absl::string_view policy_name, const Limits& ceilings,
                                     const Limits& request, const Limits& defaults) {
  Limits in_force;
  for (const Field& field : kFields) {
    const std::optional<int64_t>& asked = request.*field.member;
    const std::optional<int64_t>& ceiling = ceilings.*field.member;
    std::optional<int64_t>& value = in_force.*field.member;
    if (asked) {
      if (*asked <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(field.name, " must be positive, got ", *asked));
      }
      if (field.member == &Limits::memory_mb && *asked > kMaxMemoryMb) {
        return absl::InvalidArgumentError(
            absl::StrCat("memory_mb ", *asked, " is too large (at most ", kMaxMemoryMb, ")"));
      }
      if (ceiling && *asked > *ceiling) {
        return absl::InvalidArgumentError(absl::StrCat(field.name, " ", *asked,
                                                       " is above policy '", policy_name,
                                                       "''s ceiling of ", *ceiling));
      }
      value = asked;
      continue;
    }
    value = defaults.*field.member;
    if (value && ceiling) value = std::min(*value, *ceiling);
  }
  if (!in_force.cpu_ms) {
    in_force.cpu_ms = in_force.timeout_ms;
    if (ceilings.cpu_ms) in_force.cpu_ms = std::min(*in_force.cpu_ms, *ceilings.cpu_ms);
  }
  return in_force;
}

}  // namespace pyhost

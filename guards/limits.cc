#include "guards/limits.h"

#include "absl/strings/str_cat.h"

namespace pyhost {

absl::Status CheckLimitsSupported(const Limits& limits) {
  const struct {
    const char* name;
    const std::optional<int64_t>& value;
  } fields[] = {{"timeout_ms", limits.timeout_ms},
                {"cpu_ms", limits.cpu_ms},
                {"memory_mb", limits.memory_mb}};
  for (const auto& field : fields) {
    if (!field.value.has_value()) continue;
    if (*field.value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field.name, " must be positive, got ", *field.value));
    }
    return absl::UnimplementedError(
        absl::StrCat("limit ", field.name, " is not implemented yet"));
  }
  return absl::OkStatus();
}

}  // namespace pyhost

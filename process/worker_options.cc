#include "process/worker_options.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace pyhost {

absl::StatusOr<WorkerOptions> ParseWorkerArgs(const std::vector<std::string>& args) {
  WorkerOptions options;
  for (size_t i = 0; i < args.size(); i += 2) {
    const std::string& flag = args[i];
    if (i + 1 >= args.size())
      return absl::InvalidArgumentError(absl::StrCat(flag, " needs a value"));
    const std::string& value = args[i + 1];
    auto list = [&value](char separator) {
      return std::vector<std::string>(absl::StrSplit(value, separator, absl::SkipEmpty()));
    };
    if (flag == "--control-fd") {
      if (!absl::SimpleAtoi(value, &options.control_fd) || options.control_fd < 0) {
        return absl::InvalidArgumentError(absl::StrCat("--control-fd: not a descriptor: ", value));
      }
    } else if (flag == "--prewarm") {
      options.prewarm = list(',');
    } else if (flag == "--prewarm-if-found") {
      options.prewarm_if_found = list(',');
    } else if (flag == "--packages") {
      options.packages = list(':');
    } else if (flag == "--max-output-bytes") {
      if (!absl::SimpleAtoi(value, &options.max_output_bytes)) {
        return absl::InvalidArgumentError(absl::StrCat("--max-output-bytes: not a size: ", value));
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown worker argument ", flag));
    }
  }
  if (options.control_fd < 0) return absl::InvalidArgumentError("--control-fd is required");
  return options;
}

std::vector<std::string> WorkerArgs(const WorkerOptions& options) {
  return {"--prewarm",          absl::StrJoin(options.prewarm, ","),
          "--prewarm-if-found", absl::StrJoin(options.prewarm_if_found, ","),
          "--packages",         absl::StrJoin(options.packages, ":"),
          "--max-output-bytes", absl::StrCat(options.max_output_bytes)};
}

}  // namespace pyhost

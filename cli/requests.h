// Reading requests for the pyhost command: the JSON objects of `pyhost serve`, and the
// pieces command-line flags share with them. Every error names the field at fault.
#ifndef PYHOST_CLI_REQUESTS_H_
#define PYHOST_CLI_REQUESTS_H_

#include <string>
#include "absl/strings/string_view.h"

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "embed/request.h"

namespace pyhost::cli {

// {"code", "args"?, "policy"?, "isolation"?, "timeout_ms"?, "cpu_ms"?, "memory_mb"?,
//  "network_allowlist"? (array or comma-separated string), "max_output_bytes"?}
absl::StatusOr<ExecRequest> ExecRequestFromJson(const nlohmann::json& request);

// A request's "policy" field: a profile name, a policy file path, or a policy object
// (guards/policy.h). nullopt when absent.
absl::StatusOr<std::optional<Policy>> PolicyField(const nlohmann::json& request);

// Parses JSON text given for `what` (e.g. "--args"); the error quotes the parser.
absl::StatusOr<nlohmann::json> ParseJsonArgument(absl::string_view what, absl::string_view text);

// A positive integer flag or field value.
absl::StatusOr<int64_t> ParsePositive(absl::string_view what, absl::string_view text);

// The most code `pyhost exec FILE|-` and `pyhost call FILE` read: far above any
// hand- or LLM-written program, low enough that a mistaken path (a log, a core dump)
// is refused instead of compiled.
inline constexpr size_t kMaxSourceBytes = 16 << 20;

// Reads code from a regular file of at most kMaxSourceBytes (guards/user_file.h: not a
// directory, device or FIFO), or from standard input for "-" (a pipe or a terminal,
// as much as kMaxSourceBytes).
absl::StatusOr<std::string> ReadSource(const std::string& path);

}  // namespace pyhost::cli

#endif  // PYHOST_CLI_REQUESTS_H_

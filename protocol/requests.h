// Reading requests for the pyhost command: the JSON objects of `pyhost serve`, and the
// pieces command-line flags share with them. Every error names the field at fault.
#ifndef PYHOST_PROTOCOL_REQUESTS_H_
#define PYHOST_PROTOCOL_REQUESTS_H_

#include <string>
#include "absl/strings/string_view.h"

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "pyhost/request.h"

namespace pyhost::cli {

// One line of `pyhost serve`, read without a Host: the request object with its id and
// op, or what was wrong with the line. The answer to a line always carries `id`: the
// request's own, or null when the line has none that can be kept exactly (it is not a
// JSON object, nests deeper than values may, or its id is an integer past 64 bits;
// the message then quotes the id as written).
struct ServeLine {
  absl::Status status;    // not OK: answer {"ok": false} with this message, and `id`
  nlohmann::json id;      // null unless the request has one
  nlohmann::json request;  // the object, when `status` is OK
};
ServeLine ParseServeLine(absl::string_view text, int64_t number);

// {"code", "args"?, "policy"?, "isolation"?, "timeout_ms"?, "cpu_ms"?, "memory_mb"?,
//  "network_allowlist"? (array or comma-separated string), "max_output_bytes"?}
absl::StatusOr<ExecRequest> ExecRequestFromJson(const nlohmann::json& request);

// A request's "policy" field: a profile name, a policy file path, or a policy object
// (pyhost/policy.h). nullopt when absent.
absl::StatusOr<std::optional<Policy>> PolicyField(const nlohmann::json& request);

// Parses JSON text given for `what` (e.g. "--args"), with bindings/json_text.h's bounds;
// the error quotes the parser.
absl::StatusOr<nlohmann::json> ParseJsonArgument(absl::string_view what, absl::string_view text);

// A positive integer flag or field value.
absl::StatusOr<int64_t> ParsePositive(absl::string_view what, absl::string_view text);

// The most code `pyhost exec FILE|-` and `pyhost call FILE` read: far above any
// hand- or LLM-written program, low enough that a mistaken path (a log, a core dump)
// is refused instead of compiled.
inline constexpr size_t kMaxSourceBytes = 16 << 20;

// Reads code from a regular file of at most kMaxSourceBytes (bindings/user_file.h: not a
// directory, device or FIFO), or from standard input for "-" (a pipe or a terminal,
// as much as kMaxSourceBytes).
absl::StatusOr<std::string> ReadSource(const std::string& path);

}  // namespace pyhost::cli

#endif  // PYHOST_PROTOCOL_REQUESTS_H_

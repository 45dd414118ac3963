// The one reader of requests: every field a request can carry is defined once, with
// its JSON name, its command-line flag, how its value is read from either, and where
// it goes (ExecRequest, ToolOptions, a call's args). `pyhost serve`'s JSON lines and
// the flags of `pyhost exec` and `pyhost call` are read through the same tables, so a
// field is checked alike wherever it comes from; another front end (an MCP server's
// arguments) maps onto them the same way.
//
//   absl::StatusOr<ExecRequest> exec = ExecRequestFromJson(line);  // {"code": ..., ...}
//
//   ExecRequest request;                                  // --timeout-ms 500
//   const Field<ExecRequest>* field = FieldForFlag(ExecFields(), "--timeout-ms");
//   absl::Status read = field->from_text("500", request);  // request.limits.timeout_ms
//
// Every error names the field (JSON: "field 'timeout_ms' must be a positive integer")
// or the flag ("--timeout-ms takes a positive integer, got 'soon'") at fault, and
// keeps the code of the check that failed (an unknown policy profile is NotFound).
// JSON null is an absent field, except where null is a value (args).
#ifndef PYHOST_PROTOCOL_REQUEST_CODEC_H_
#define PYHOST_PROTOCOL_REQUEST_CODEC_H_

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pyhost/request.h"

namespace pyhost::protocol {

// Registering a tool: serve's {"op": "register"}; the first half of `pyhost call FILE`.
struct RegisterRequest {
  std::string name;
  std::string source;
  ToolOptions options;
};

// Calling a registered tool: serve's {"op": "call"}; the second half of `pyhost call`.
struct CallRequest {
  std::string name;
  nlohmann::json args = nlohmann::json::object();
};

// One field of a request of type R.
template <typename R>
struct Field {
  std::string name;         // the JSON key: "timeout_ms"
  std::string alias;        // another key read as this field ("networkAllowlist"), or empty
  std::string flag;         // "--timeout-ms"; empty: no flag sets it
  bool required = false;    // absent: "missing field 'code'"
  bool takes_null = false;  // null is a value, not an absent field
  // Reads the value found under `key` (the name or the alias) into `out`; errors name
  // `key`. A list field adds to what `out` holds (name and alias both count).
  std::function<absl::Status(absl::string_view key, const nlohmann::json& value, R& out)> from_json;
  // Reads the flag's text into `out`; errors name the flag. A list field (host patterns)
  // adds to what `out` holds, so a flag may be given again; any other is replaced.
  std::function<absl::Status(absl::string_view text, R& out)> from_text;
};

// The tables, in the order fields are read (the first error is the one reported).
// exec: code (required), args, policy, isolation, timeout_ms, cpu_ms, memory_mb,
//   max_output_bytes, network_allowlist (alias networkAllowlist; an array or a
//   comma-separated string). Flags: --args, --policy, --isolation, --timeout-ms,
//   --cpu-ms, --memory-mb, --max-output-bytes, --allow-net (code: -c, FILE or -).
const std::vector<Field<ExecRequest>>& ExecFields();
// register: name, source (both required), policy, isolation. Flags: --policy, --isolation.
const std::vector<Field<RegisterRequest>>& RegisterFields();
// call: name (required), args. Flags: --args.
const std::vector<Field<CallRequest>>& CallFields();

// The field `flag` sets ("--timeout-ms", without "=value"), or nullptr.
template <typename R>
const Field<R>* FieldForFlag(const std::vector<Field<R>>& fields, absl::string_view flag);

// Reads every field of `fields` from `object`; keys that are no field ("id", "op")
// are not looked at.
template <typename R>
absl::StatusOr<R> FromJson(const std::vector<Field<R>>& fields, const nlohmann::json& object);

absl::StatusOr<ExecRequest> ExecRequestFromJson(const nlohmann::json& object);
absl::StatusOr<RegisterRequest> RegisterRequestFromJson(const nlohmann::json& object);
absl::StatusOr<CallRequest> CallRequestFromJson(const nlohmann::json& object);

// The text readers the fields share, for flags that are no request field (serve's
// --workers): JSON text given for `what` (bindings/json_text.h's bounds; the error
// quotes the parser), and a positive integer.
absl::StatusOr<nlohmann::json> ParseJsonArgument(absl::string_view what, absl::string_view text);
absl::StatusOr<int64_t> ParsePositive(absl::string_view what, absl::string_view text);

}  // namespace pyhost::protocol

#endif  // PYHOST_PROTOCOL_REQUEST_CODEC_H_

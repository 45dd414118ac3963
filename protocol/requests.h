// The text around requests: the lines of `pyhost serve` (each a request object for
// protocol/request_codec.h to read) and the code `pyhost exec` and `pyhost call` read
// from a file or standard input.
#ifndef PYHOST_PROTOCOL_REQUESTS_H_
#define PYHOST_PROTOCOL_REQUESTS_H_

#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pyhost::protocol {

// One line of `pyhost serve`, read without a Host: the request object with its id and
// op, or what was wrong with the line. The answer to a line always carries `id`: the
// request's own, or null when the line has none that can be kept exactly (it is not a
// JSON object, nests deeper than values may, or its id is an integer past 64 bits;
// the message then quotes the id as written).
struct ServeLine {
  absl::Status status;     // not OK: answer {"ok": false} with this message, and `id`
  nlohmann::json id;       // null unless the request has one
  nlohmann::json request;  // the object, when `status` is OK
};
ServeLine ParseServeLine(absl::string_view text, int64_t number);

// The most code `pyhost exec FILE|-` and `pyhost call FILE` read: far above any
// hand- or LLM-written program, low enough that a mistaken path (a log, a core dump)
// is refused instead of compiled.
inline constexpr size_t kMaxSourceBytes = 16 << 20;

// Reads code from a regular file of at most kMaxSourceBytes (bindings/user_file.h: not a
// directory, device or FIFO), or from standard input for "-" (a pipe or a terminal,
// as much as kMaxSourceBytes).
absl::StatusOr<std::string> ReadSource(const std::string& path);

}  // namespace pyhost::protocol

#endif  // PYHOST_PROTOCOL_REQUESTS_H_

// Reading JSON text that comes from outside the process (serve lines, --args, policy
// files) into nlohmann::json, with two checks nlohmann::json::parse does not make:
// - nesting deeper than a bound is refused before anything deeper is built (a line of
//   70,000 "[" overflowed the stack copying, dumping or converting the value);
// - an integer outside 64 bits is refused (nlohmann::json would keep it as a double,
//   silently changing an id or an argument).
// Every error names where in the value it is.
//
//   absl::StatusOr<nlohmann::json> args = pyhost::ParseJsonText(text);  // any problem: an error
//   pyhost::JsonText line = pyhost::ReadJsonText(text, pyhost::kMaxValueDepth + 1);
//   if (line.problem == pyhost::JsonText::kUnfitInteger && !line.unfit_top_keys.count("id"))
//     ...  // the rest of the value is there (nulls in place of what did not fit)
//
// Not for: JSON the host writes itself (it never exceeds these bounds).
#ifndef PYHOST_BINDINGS_JSON_TEXT_H_
#define PYHOST_BINDINGS_JSON_TEXT_H_

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "bindings/json_convert.h"

namespace pyhost {

struct JsonText {
  enum Problem {
    kNone,
    kSyntax,        // not JSON (nlohmann's message)
    kTooDeep,       // more than max_depth arrays/objects nested: nothing was kept
    kUnfitInteger,  // an integer outside [-2^63, 2^64): the value holds null there
                    // (discarded if the integer was past a double's range too: the
                    // parser stops there)
  };
  Problem problem = kNone;
  absl::Status status;   // the first problem, naming where it is; OK when kNone
  nlohmann::json value;  // discarded unless problem is kNone or kUnfitInteger
  // For kUnfitInteger: each top-level object key under which an integer did not fit,
  // with the first such integer as written (bounded).
  std::map<std::string, std::string> unfit_top_keys;
};

// `max_depth`: the most arrays/objects nested in one another that are accepted.
JsonText ReadJsonText(absl::string_view text, int max_depth = kMaxValueDepth);

// ReadJsonText, any problem being an InvalidArgument error.
absl::StatusOr<nlohmann::json> ParseJsonText(absl::string_view text,
                                             int max_depth = kMaxValueDepth);

}  // namespace pyhost

#endif  // PYHOST_BINDINGS_JSON_TEXT_H_

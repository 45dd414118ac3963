#include "protocol/requests.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "bindings/json_text.h"
#include "bindings/user_file.h"

namespace pyhost::protocol {

using json = nlohmann::json;

ServeLine ParseServeLine(absl::string_view text, int64_t number) {
  ServeLine out;
  // The request object, then what values may nest inside it.
  JsonText read = ReadJsonText(text, kMaxValueDepth + 1);
  if (read.problem == JsonText::kSyntax ||
      (read.problem == JsonText::kNone && !read.value.is_object())) {
    out.status = absl::InvalidArgumentError(absl::StrCat("line ", number, " is not a JSON object"));
    return out;
  }
  if (read.problem == JsonText::kTooDeep) {
    out.status = absl::InvalidArgumentError(
        absl::StrCat("line ", number, " is ", read.status.message(),
                     "; a request's values may nest ", kMaxValueDepth, " levels"));
    return out;
  }
  if (read.value.is_object() && read.unfit_top_keys.count("id") == 0) {
    if (auto id = read.value.find("id"); id != read.value.end()) out.id = *id;
  }
  if (read.problem == JsonText::kUnfitInteger) {
    auto id = read.unfit_top_keys.find("id");
    out.status = absl::InvalidArgumentError(
        id != read.unfit_top_keys.end()
            // The answer cannot carry this id exactly: it says so, quoting it.
            ? absl::StrCat("line ", number, ": field 'id' holds the integer ", id->second,
                           ", which does not fit in 64 bits, so this answer's id is null (ids "
                           "must be strings or integers in [-2^63, 2^64))")
            : absl::StrCat("line ", number, ": ", read.status.message(),
                           read.value.is_discarded()
                               ? " (the line cannot be read past it, so this answer's id is null)"
                               : ""));
    return out;
  }
  out.request = std::move(read.value);
  return out;
}

absl::StatusOr<std::string> ReadSource(const std::string& path) {
  if (path != "-") return ReadUserFile(path, kMaxSourceBytes, "");
  std::string text;
  char chunk[65536];
  while (text.size() <= kMaxSourceBytes && std::cin.read(chunk, sizeof chunk).gcount() > 0) {
    text.append(chunk, static_cast<size_t>(std::cin.gcount()));
  }
  if (text.size() > kMaxSourceBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot read standard input: more than the limit of ", kMaxSourceBytes, " bytes of code"));
  }
  return text;
}

}  // namespace pyhost::protocol

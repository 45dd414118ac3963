#include "protocol/requests.h"

#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "bindings/json_text.h"
#include "bindings/user_file.h"

namespace pyhost::cli {

using json = nlohmann::json;

namespace {

absl::Status FieldError(absl::string_view field, absl::string_view expected) {
  return absl::InvalidArgumentError(
      absl::StrCat("field '", field, "' must be ", expected));
}

absl::StatusOr<std::optional<int64_t>> OptionalPositive(const json& request,
                                                        const char* field) {
  auto it = request.find(field);
  if (it == request.end() || it->is_null()) return std::optional<int64_t>();
  if (it->is_number_unsigned() && it->get<uint64_t>() > INT64_MAX) {
    return FieldError(field, absl::StrCat("a positive integer up to ", INT64_MAX, ", not ",
                                          it->get<uint64_t>()));
  }
  if (!it->is_number_integer() || it->get<int64_t>() <= 0) {
    return FieldError(field, "a positive integer");
  }
  return std::optional<int64_t>(it->get<int64_t>());
}

absl::StatusOr<std::vector<std::string>> AllowList(const json& value) {
  std::vector<std::string> patterns;
  if (value.is_string()) {
    for (absl::string_view part : absl::StrSplit(value.get_ref<const std::string&>(), ',')) {
      part = absl::StripAsciiWhitespace(part);
      if (!part.empty()) patterns.emplace_back(part);
    }
    return patterns;
  }
  if (!value.is_array()) return FieldError("network_allowlist", "an array of host patterns");
  for (const json& item : value) {
    if (!item.is_string()) return FieldError("network_allowlist", "an array of strings");
    patterns.push_back(item.get<std::string>());
  }
  return patterns;
}

}  // namespace

absl::StatusOr<ExecRequest> ExecRequestFromJson(const json& request) {
  ExecRequest out;
  auto code = request.find("code");
  if (code == request.end()) return absl::InvalidArgumentError("missing field 'code'");
  if (!code->is_string()) return FieldError("code", "a string");
  out.code = code->get<std::string>();
  if (auto args = request.find("args"); args != request.end()) out.args = *args;
  absl::StatusOr<std::optional<Policy>> policy = PolicyField(request);
  if (!policy.ok()) return policy.status();
  out.policy = *std::move(policy);
  if (auto isolation = request.find("isolation");
      isolation != request.end() && !isolation->is_null()) {
    if (!isolation->is_string()) return FieldError("isolation", "\"fresh\", \"tool\" or \"process\"");
    absl::StatusOr<Isolation> parsed = ParseIsolation(isolation->get<std::string>());
    if (!parsed.ok()) return parsed.status();
    out.isolation = *parsed;
  }
  struct {
    const char* field;
    std::optional<int64_t>* target;
  } limits[] = {{"timeout_ms", &out.limits.timeout_ms},
                {"cpu_ms", &out.limits.cpu_ms},
                {"memory_mb", &out.limits.memory_mb}};
  for (const auto& limit : limits) {
    absl::StatusOr<std::optional<int64_t>> value = OptionalPositive(request, limit.field);
    if (!value.ok()) return value.status();
    *limit.target = *value;
  }
  absl::StatusOr<std::optional<int64_t>> max_output =
      OptionalPositive(request, "max_output_bytes");
  if (!max_output.ok()) return max_output.status();
  if (*max_output) out.max_output_bytes = static_cast<size_t>(**max_output);
  for (const char* field : {"network_allowlist", "networkAllowlist"}) {
    auto it = request.find(field);
    if (it == request.end() || it->is_null()) continue;
    absl::StatusOr<std::vector<std::string>> patterns = AllowList(*it);
    if (!patterns.ok()) return patterns.status();
    out.allow_net = *std::move(patterns);
  }
  return out;
}

absl::StatusOr<std::optional<Policy>> PolicyField(const json& request) {
  auto it = request.find("policy");
  if (it == request.end() || it->is_null()) return std::optional<Policy>();
  absl::StatusOr<Policy> policy =
      it->is_string() ? LoadPolicy(it->get<std::string>())
      : it->is_object() ? PolicyFromJson(*it)
                        : absl::InvalidArgumentError("field 'policy' must be a name or an object");
  if (!policy.ok()) return policy.status();
  return std::optional<Policy>(*std::move(policy));
}

ServeLine ParseServeLine(absl::string_view text, int64_t number) {
  ServeLine out;
  // The request object, then what values may nest inside it.
  JsonText read = ReadJsonText(text, kMaxValueDepth + 1);
  if (read.problem == JsonText::kSyntax || (read.problem == JsonText::kNone && !read.value.is_object())) {
    out.status = absl::InvalidArgumentError(absl::StrCat("line ", number, " is not a JSON object"));
    return out;
  }
  if (read.problem == JsonText::kTooDeep) {
    out.status = absl::InvalidArgumentError(
        absl::StrCat("line ", number, " is ", read.status.message(), "; a request's values may nest ",
                     kMaxValueDepth, " levels"));
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

absl::StatusOr<json> ParseJsonArgument(absl::string_view what, absl::string_view text) {
  JsonText read = ReadJsonText(text);
  if (read.problem == JsonText::kSyntax) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is ", read.status.message()));
  }
  if (read.problem != JsonText::kNone) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", read.status.message()));
  }
  return std::move(read.value);
}

absl::StatusOr<int64_t> ParsePositive(absl::string_view what, absl::string_view text) {
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value) || value <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " takes a positive integer, got '", text, "'"));
  }
  return value;
}

absl::StatusOr<std::string> ReadSource(const std::string& path) {
  if (path != "-") return ReadUserFile(path, kMaxSourceBytes, "");
  std::string text;
  char chunk[65536];
  while (text.size() <= kMaxSourceBytes &&
         std::cin.read(chunk, sizeof chunk).gcount() > 0) {
    text.append(chunk, static_cast<size_t>(std::cin.gcount()));
  }
  if (text.size() > kMaxSourceBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot read standard input: more than the limit of ", kMaxSourceBytes, " bytes of code"));
  }
  return text;
}

}  // namespace pyhost::cli

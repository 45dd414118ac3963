#include "protocol/request_codec.h"

#include <cstdint>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bindings/json_text.h"
#include "pyhost/policy.h"

namespace pyhost::protocol {

using json = nlohmann::json;

namespace {

absl::Status FieldError(absl::string_view key, absl::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat("field '", key, "' must be ", expected));
}

// `status` with its message said of `who` ("--policy", "field 'policy'"), its code kept.
absl::Status Of(absl::string_view who, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(who, ": ", status.message()));
}

// `read`, or its error said of `who`.
template <typename T>
absl::StatusOr<T> Of(absl::string_view who, absl::StatusOr<T> read) {
  if (!read.ok()) return Of(who, read.status());
  return read;
}

std::string FieldNamed(absl::string_view key) { return absl::StrCat("field '", key, "'"); }

// How one kind of value is read: from a JSON value found under `key`, and from the
// text given to `flag`.
template <typename T>
struct Value {
  bool takes_null;
  absl::StatusOr<T> (*from_json)(absl::string_view key, const json& value);
  absl::StatusOr<T> (*from_text)(absl::string_view flag, absl::string_view text);
};

constexpr Value<std::string> kText = {
    false,
    [](absl::string_view key, const json& value) -> absl::StatusOr<std::string> {
      if (!value.is_string()) return FieldError(key, "a string");
      return value.get<std::string>();
    },
    [](absl::string_view, absl::string_view text) -> absl::StatusOr<std::string> {
      return std::string(text);
    }};

// Any JSON value, null included (JSON text on the command line).
constexpr Value<json> kAnyJson = {
    true, [](absl::string_view, const json& value) -> absl::StatusOr<json> { return value; },
    [](absl::string_view flag, absl::string_view text) { return ParseJsonArgument(flag, text); }};

constexpr Value<int64_t> kPositive = {
    false,
    [](absl::string_view key, const json& value) -> absl::StatusOr<int64_t> {
      if (value.is_number_unsigned() && value.get<uint64_t>() > INT64_MAX) {
        return FieldError(key, absl::StrCat("a positive integer up to ", INT64_MAX, ", not ",
                                            value.get<uint64_t>()));
      }
      if (!value.is_number_integer() || value.get<int64_t>() <= 0) {
        return FieldError(key, "a positive integer");
      }
      return value.get<int64_t>();
    },
    [](absl::string_view flag, absl::string_view text) { return ParsePositive(flag, text); }};

constexpr Value<Isolation> kIsolation = {
    false,
    [](absl::string_view key, const json& value) -> absl::StatusOr<Isolation> {
      if (!value.is_string()) return FieldError(key, "\"fresh\", \"resident\" or \"process\"");
      return Of(FieldNamed(key), ParseIsolation(value.get_ref<const std::string&>()));
    },
    [](absl::string_view flag, absl::string_view text) { return Of(flag, ParseIsolation(text)); }};

// A profile name or a policy file's path (pyhost/policy.h's LoadPolicy), or in JSON
// a policy object.
constexpr Value<Policy> kPolicy = {
    false,
    [](absl::string_view key, const json& value) -> absl::StatusOr<Policy> {
      if (!value.is_string() && !value.is_object()) return FieldError(key, "a name or an object");
      return Of(FieldNamed(key), value.is_string() ? LoadPolicy(value.get_ref<const std::string&>())
                                                   : PolicyFromJson(value));
    },
    [](absl::string_view flag, absl::string_view text) { return Of(flag, LoadPolicy(text)); }};

// Host patterns: an array of strings, or a comma-separated string (as a flag's text).
constexpr Value<std::vector<std::string>> kHostPatterns = {
    false,
    [](absl::string_view key, const json& value) -> absl::StatusOr<std::vector<std::string>> {
      if (value.is_string()) return SplitHostPatterns(value.get_ref<const std::string&>());
      if (!value.is_array()) return FieldError(key, "an array of host patterns");
      std::vector<std::string> patterns;
      for (const json& item : value) {
        if (!item.is_string()) return FieldError(key, "an array of strings");
        patterns.push_back(item.get<std::string>());
      }
      return patterns;
    },
    [](absl::string_view, absl::string_view text) -> absl::StatusOr<std::vector<std::string>> {
      return SplitHostPatterns(text);
    }};

// A field's definition: its names and how its value is read. Bind() says where the
// value goes in one request type; a field two requests carry is defined once here.
template <typename T>
struct Spec {
  const char* name;
  const char* flag;  // "": none
  const Value<T>* value;
  bool required = false;
  const char* alias = "";
};

constexpr Spec<std::string> kCodeField = {"code", "", &kText, /*required=*/true};
constexpr Spec<std::string> kNameField = {"name", "", &kText, /*required=*/true};
constexpr Spec<std::string> kSourceField = {"source", "", &kText, /*required=*/true};
constexpr Spec<json> kArgsField = {"args", "--args", &kAnyJson};
constexpr Spec<Policy> kPolicyField = {"policy", "--policy", &kPolicy};
constexpr Spec<Isolation> kIsolationField = {"isolation", "--isolation", &kIsolation};
constexpr Spec<int64_t> kTimeoutField = {"timeout_ms", "--timeout-ms", &kPositive};
constexpr Spec<int64_t> kCpuField = {"cpu_ms", "--cpu-ms", &kPositive};
constexpr Spec<int64_t> kMemoryField = {"memory_mb", "--memory-mb", &kPositive};
constexpr Spec<int64_t> kMaxOutputField = {"max_output_bytes", "--max-output-bytes", &kPositive};
constexpr Spec<std::vector<std::string>> kNetworkField = {
    "network_allowlist", "--allow-net", &kHostPatterns, false, "networkAllowlist"};

// The field `spec` defines, its value put into a request of type R by `put(R&, T)`.
template <typename R, typename T, typename Put>
Field<R> Bind(const Spec<T>& spec, Put put) {
  Field<R> field;
  field.name = spec.name;
  field.alias = spec.alias;
  field.flag = spec.flag;
  field.required = spec.required;
  field.takes_null = spec.value->takes_null;
  const Value<T>* value = spec.value;
  field.from_json = [value, put](absl::string_view key, const json& given, R& out) {
    absl::StatusOr<T> read = value->from_json(key, given);
    if (!read.ok()) return read.status();
    put(out, *std::move(read));
    return absl::OkStatus();
  };
  field.from_text = [value, put, flag = field.flag](absl::string_view text, R& out) {
    absl::StatusOr<T> read = value->from_text(flag, text);
    if (!read.ok()) return read.status();
    put(out, *std::move(read));
    return absl::OkStatus();
  };
  return field;
}

void AddPatterns(std::vector<std::string>& to, std::vector<std::string> patterns) {
  to.insert(to.end(), std::make_move_iterator(patterns.begin()),
            std::make_move_iterator(patterns.end()));
}

}  // namespace

const std::vector<Field<ExecRequest>>& ExecFields() {
  using R = ExecRequest;
  static const auto* fields = new std::vector<Field<R>>{
      Bind<R>(kCodeField, [](R& r, std::string code) { r.code = std::move(code); }),
      Bind<R>(kArgsField, [](R& r, json args) { r.args = std::move(args); }),
      Bind<R>(kPolicyField, [](R& r, Policy policy) { r.policy = std::move(policy); }),
      Bind<R>(kIsolationField, [](R& r, Isolation isolation) { r.isolation = isolation; }),
      Bind<R>(kTimeoutField, [](R& r, int64_t ms) { r.limits.timeout_ms = ms; }),
      Bind<R>(kCpuField, [](R& r, int64_t ms) { r.limits.cpu_ms = ms; }),
      Bind<R>(kMemoryField, [](R& r, int64_t mb) { r.limits.memory_mb = mb; }),
      Bind<R>(kMaxOutputField,
              [](R& r, int64_t bytes) { r.max_output_bytes = static_cast<size_t>(bytes); }),
      Bind<R>(kNetworkField,
              [](R& r, std::vector<std::string> patterns) {
                AddPatterns(r.allow_net, std::move(patterns));
              }),
  };
  return *fields;
}

const std::vector<Field<RegisterRequest>>& RegisterFields() {
  using R = RegisterRequest;
  static const auto* fields = new std::vector<Field<R>>{
      Bind<R>(kNameField, [](R& r, std::string name) { r.name = std::move(name); }),
      Bind<R>(kSourceField, [](R& r, std::string source) { r.source = std::move(source); }),
      Bind<R>(kPolicyField, [](R& r, Policy policy) { r.options.policy = std::move(policy); }),
      Bind<R>(kIsolationField, [](R& r, Isolation isolation) { r.options.isolation = isolation; }),
      Bind<R>(kTimeoutField, [](R& r, int64_t ms) { r.options.limits.timeout_ms = ms; }),
      Bind<R>(kCpuField, [](R& r, int64_t ms) { r.options.limits.cpu_ms = ms; }),
      Bind<R>(kMemoryField, [](R& r, int64_t mb) { r.options.limits.memory_mb = mb; }),
  };
  return *fields;
}

const std::vector<Field<CallRequest>>& CallFields() {
  using R = CallRequest;
  static const auto* fields = new std::vector<Field<R>>{
      Bind<R>(kNameField, [](R& r, std::string name) { r.name = std::move(name); }),
      Bind<R>(kArgsField, [](R& r, json args) { r.args = std::move(args); }),
  };
  return *fields;
}

template <typename R>
const Field<R>* FieldForFlag(const std::vector<Field<R>>& fields, absl::string_view flag) {
  for (const Field<R>& field : fields) {
    if (!field.flag.empty() && field.flag == flag) return &field;
  }
  return nullptr;
}

template <typename R>
absl::StatusOr<R> FromJson(const std::vector<Field<R>>& fields, const json& object) {
  if (!object.is_object()) return absl::InvalidArgumentError("a request must be a JSON object");
  R out;
  for (const Field<R>& field : fields) {
    bool given = false;
    for (const std::string* key : {&field.name, &field.alias}) {
      if (key->empty()) continue;
      auto it = object.find(*key);
      if (it == object.end()) continue;
      // A required field's null is a wrong value ("must be a string"), not an absence.
      if (it->is_null() && !field.takes_null && !field.required) continue;
      given = true;
      if (absl::Status read = field.from_json(*key, *it, out); !read.ok()) return read;
    }
    if (field.required && !given) {
      return absl::InvalidArgumentError(absl::StrCat("missing field '", field.name, "'"));
    }
  }
  return out;
}

template const Field<ExecRequest>* FieldForFlag(const std::vector<Field<ExecRequest>>&,
                                                absl::string_view);
template const Field<RegisterRequest>* FieldForFlag(const std::vector<Field<RegisterRequest>>&,
                                                    absl::string_view);
template const Field<CallRequest>* FieldForFlag(const std::vector<Field<CallRequest>>&,
                                                absl::string_view);
template absl::StatusOr<ExecRequest> FromJson(const std::vector<Field<ExecRequest>>&, const json&);
template absl::StatusOr<RegisterRequest> FromJson(const std::vector<Field<RegisterRequest>>&,
                                                  const json&);
template absl::StatusOr<CallRequest> FromJson(const std::vector<Field<CallRequest>>&, const json&);

absl::StatusOr<ExecRequest> ExecRequestFromJson(const json& object) {
  return FromJson(ExecFields(), object);
}

absl::StatusOr<RegisterRequest> RegisterRequestFromJson(const json& object) {
  return FromJson(RegisterFields(), object);
}

absl::StatusOr<CallRequest> CallRequestFromJson(const json& object) {
  return FromJson(CallFields(), object);
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

}  // namespace pyhost::protocol

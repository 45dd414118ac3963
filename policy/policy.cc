#include "pyhost/policy.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "bindings/json_text.h"
#include "bindings/user_file.h"
#include "policy/limits.h"
#include "policy/module_rules.h"

namespace pyhost {
namespace {

using json = nlohmann::json;

// Public data files that allowed modules read: the time zone database (zoneinfo's
// TZPATH), the MIME type tables (mimetypes.knownfiles).
const std::vector<std::string>& PublicDataPaths() {
  static const auto* paths = new std::vector<std::string>{"/usr/share/zoneinfo",
                                                          "/usr/lib/zoneinfo",
                                                          "/usr/share/lib/zoneinfo",
                                                          "/etc/zoneinfo",
                                                          "/etc/mime.types",
                                                          "/etc/httpd/mime.types",
                                                          "/etc/httpd/conf/mime.types",
                                                          "/etc/apache/mime.types",
                                                          "/etc/apache2/mime.types",
                                                          "/usr/local/etc/httpd/conf/mime.types",
                                                          "/usr/local/lib/netscape/mime.types",
                                                          "/usr/local/etc/mime.types"};
  return *paths;
}

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

absl::Status FieldError(absl::string_view field, absl::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat("policy field '", field, "' must be ", expected));
}

// The policy fields that hold lists, by their JSON names (what "replace" names).
struct ListField {
  const char* name;
  std::vector<std::string> Policy::*list;
};
constexpr ListField kListFields[] = {{"imports.allow", &Policy::import_allow},
                                     {"imports.deny", &Policy::import_deny},
                                     {"files.read", &Policy::read_paths},
                                     {"files.write", &Policy::write_paths},
                                     {"network", &Policy::network},
                                     {"env", &Policy::env},
                                     {"packages", &Policy::packages},
                                     {"prewarm", &Policy::prewarm}};

// Appends an array of non-empty strings to `out`, skipping those it holds already.
absl::Status ReadStrings(const json& value, absl::string_view field,
                         std::vector<std::string>& out) {
  if (!value.is_array()) return FieldError(field, "an array of strings");
  std::vector<std::string> items = out;
  for (const json& item : value) {
    if (!item.is_string() || item.get_ref<const std::string&>().empty()) {
      return FieldError(field, "an array of non-empty strings");
    }
    if (std::find(items.begin(), items.end(), item.get_ref<const std::string&>()) == items.end()) {
      items.push_back(item.get<std::string>());
    }
  }
  out = std::move(items);
  return absl::OkStatus();
}

absl::Status ReadBool(const json& value, absl::string_view field, bool& out) {
  if (!value.is_boolean()) return FieldError(field, "true or false");
  out = value.get<bool>();
  return absl::OkStatus();
}

absl::Status ReadPaths(const json& value, absl::string_view field, std::vector<std::string>& out) {
  if (absl::Status s = ReadStrings(value, field, out); !s.ok()) return s;
  for (const std::string& path : out) {
    if (path[0] != '/') return FieldError(field, "absolute paths");
  }
  return absl::OkStatus();
}

// Checks that `object` has only `known` keys.
absl::Status OnlyKnownFields(const json& object, absl::string_view where,
                             std::initializer_list<const char*> known) {
  for (const auto& [key, value] : object.items()) {
    bool found = false;
    for (const char* k : known) found = found || key == k;
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown policy field '", where, where.empty() ? "" : ".", key, "'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool Policy::ImportAllowed(absl::string_view module) const {
  if (!enforce) return true;
  if (AnyModuleMatches(import_deny, module)) return false;
  if (import_allow.empty() || AnyModuleMatches(import_allow, module)) return true;
  for (const std::string& pattern : import_allow) {  // an ancestor of an allowed module
    if (pattern.size() > module.size() && InPackage(pattern, module)) return true;
  }
  return false;
}

json Policy::ToJson() const {
  return json{{"name", name},
              {"enforce", enforce},
              {"imports", {{"allow", import_allow}, {"deny", import_deny}}},
              {"files", {{"read", read_paths}, {"write", write_paths}, {"work_dir", work_dir}}},
              {"processes", processes},
              {"threads", threads},
              {"network", network},
              {"env", env},
              {"limits", LimitsToJson(limits)},
              {"packages", packages},
              {"prewarm", prewarm},
              {"process_isolation", process_isolation}};
}

std::vector<std::string> PolicyListFields() {
  std::vector<std::string> names;
  for (const ListField& field : kListFields) names.push_back(field.name);
  return names;
}

absl::StatusOr<Policy> NamedPolicy(absl::string_view name) {
  Policy policy;
  policy.name = std::string(name);
  policy.limits = ProfileCeilings(name);
  if (name == "yolo") {
    policy.enforce = false;
    policy.processes = true;
    policy.threads = true;
    policy.network = {"*"};
    policy.work_dir = true;
    return policy;
  }
  if (name == "balanced") {
    policy.import_deny = DangerousModules();
    policy.read_paths = Concat({"/usr/share", "/usr/lib", "/etc/ssl/certs"}, PublicDataPaths());
    return policy;
  }
  if (name == "data_science") {
    // fontTools: Matplotlib's PDF and PostScript output embeds fonts with it.
    policy.import_allow = Concat(
        CuratedStdlib(),
        {"numpy", "pandas", "scipy", "sklearn", "matplotlib", "PIL", "statsmodels", "fontTools"});
    policy.import_deny = DangerousModules();
    // Debian's python3-numpy, python3-matplotlib, ... (README's setup), and the fonts
    // and data files Matplotlib reads.
    policy.packages = {"/usr/lib/python3/dist-packages"};
    policy.read_paths =
        Concat({"/usr/share/matplotlib", "/usr/share/fonts", "/etc/fonts"}, PublicDataPaths());
    policy.prewarm = {"numpy", "matplotlib", "matplotlib.pyplot"};
    policy.process_isolation = true;
    return policy;
  }
  if (name == "strict" || name == "enterprise") {
    policy.import_allow = CuratedStdlib();
    policy.import_deny = DangerousModules();
    policy.read_paths = PublicDataPaths();
    return policy;
  }
  return absl::NotFoundError(absl::StrCat("unknown policy '", name,
                                          "' (profiles: yolo, balanced, data_science, strict, "
                                          "enterprise; or a path to a .json policy file)"));
}

absl::StatusOr<Policy> PolicyFromJson(const json& doc) {
  if (!doc.is_object()) return absl::InvalidArgumentError("a policy must be a JSON object");
  if (absl::Status s = OnlyKnownFields(
          doc, "",
          {"name", "extends", "replace", "enforce", "imports", "files", "processes", "threads",
           "network", "env", "limits", "packages", "prewarm", "process_isolation"});
      !s.ok()) {
    return s;
  }
  // A list field adds to the profile's list; one named in "replace" is the given list
  // alone (empty if the field is absent).
  std::vector<std::string> replaced;
  if (auto replace = doc.find("replace"); replace != doc.end()) {
    if (absl::Status s = ReadStrings(*replace, "replace", replaced); !s.ok()) return s;
    for (const std::string& field : replaced) {
      if (std::none_of(std::begin(kListFields), std::end(kListFields),
                       [&](const ListField& known) { return field == known.name; })) {
        return absl::InvalidArgumentError(absl::StrCat(
            "policy field 'replace' names '", field, "', which is not a list field (",
            absl::StrJoin(kListFields, ", ",
                          [](std::string* out, const ListField& f) { out->append(f.name); }),
            ")"));
      }
    }
  }
  Policy policy;
  if (auto extends = doc.find("extends"); extends != doc.end()) {
    if (!extends->is_string()) return FieldError("extends", "a profile name");
    absl::StatusOr<Policy> base = NamedPolicy(extends->get<std::string>());
    if (!base.ok())
      return absl::InvalidArgumentError(
          absl::StrCat("policy field 'extends': ", base.status().message()));
    policy = *std::move(base);
  }
  auto is_replaced = [&](const char* field) {
    return std::find(replaced.begin(), replaced.end(), field) != replaced.end();
  };
  for (const ListField& field : kListFields) {
    if (is_replaced(field.name)) (policy.*field.list).clear();
  }
  // An extended profile without an allow list allows every module not denied: adding
  // names to it must not narrow it to those names.
  const bool allows_all = doc.contains("extends") && policy.import_allow.empty();
  policy.name = "custom";
  if (auto name = doc.find("name"); name != doc.end()) {
    if (!name->is_string() || name->get_ref<const std::string&>().empty()) {
      return FieldError("name", "a non-empty string");
    }
    policy.name = name->get<std::string>();
  }
  absl::Status status;
  auto field = [&](const json& object, const char* key, auto&& read) {
    if (!status.ok()) return;
    if (auto it = object.find(key); it != object.end()) status = read(*it);
  };
  field(doc, "enforce", [&](const json& v) { return ReadBool(v, "enforce", policy.enforce); });
  field(doc, "processes",
        [&](const json& v) { return ReadBool(v, "processes", policy.processes); });
  field(doc, "threads", [&](const json& v) { return ReadBool(v, "threads", policy.threads); });
  field(doc, "network", [&](const json& v) { return ReadStrings(v, "network", policy.network); });
  field(doc, "env", [&](const json& v) { return ReadStrings(v, "env", policy.env); });
  field(doc, "packages", [&](const json& v) { return ReadPaths(v, "packages", policy.packages); });
  field(doc, "prewarm", [&](const json& v) { return ReadStrings(v, "prewarm", policy.prewarm); });
  field(doc, "process_isolation",
        [&](const json& v) { return ReadBool(v, "process_isolation", policy.process_isolation); });
  field(doc, "imports", [&](const json& v) {
    if (!v.is_object()) return FieldError("imports", "an object {\"allow\", \"deny\"}");
    if (absl::Status s = OnlyKnownFields(v, "imports", {"allow", "deny"}); !s.ok()) return s;
    absl::Status s;
    if (v.contains("allow")) s = ReadStrings(v["allow"], "imports.allow", policy.import_allow);
    if (allows_all && !is_replaced("imports.allow")) policy.import_allow.clear();
    if (s.ok() && v.contains("deny"))
      s = ReadStrings(v["deny"], "imports.deny", policy.import_deny);
    return s;
  });
  field(doc, "files", [&](const json& v) {
    if (!v.is_object()) return FieldError("files", "an object {\"read\", \"write\", \"work_dir\"}");
    if (absl::Status s = OnlyKnownFields(v, "files", {"read", "write", "work_dir"}); !s.ok())
      return s;
    absl::Status s;
    if (v.contains("read")) s = ReadPaths(v["read"], "files.read", policy.read_paths);
    if (s.ok() && v.contains("write")) s = ReadPaths(v["write"], "files.write", policy.write_paths);
    if (s.ok() && v.contains("work_dir"))
      s = ReadBool(v["work_dir"], "files.work_dir", policy.work_dir);
    return s;
  });
  field(doc, "limits", [&](const json& v) {
    if (!v.is_object()) return FieldError("limits", "an object");
    if (absl::Status s = OnlyKnownFields(v, "limits", {"timeout_ms", "cpu_ms", "memory_mb"});
        !s.ok())
      return s;
    for (auto [key, target] : {std::pair{"timeout_ms", &policy.limits.timeout_ms},
                               std::pair{"cpu_ms", &policy.limits.cpu_ms},
                               std::pair{"memory_mb", &policy.limits.memory_mb}}) {
      if (!v.contains(key)) continue;
      if (!v[key].is_number_integer() || v[key].get<int64_t>() <= 0 ||
          (v[key].is_number_unsigned() && v[key].get<uint64_t>() > INT64_MAX)) {
        return FieldError(absl::StrCat("limits.", key),
                          absl::StrCat("a positive integer up to ", INT64_MAX));
      }
      *target = v[key].get<int64_t>();
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return policy;
}

absl::StatusOr<Policy> LoadPolicy(absl::string_view name_or_path) {
  if (!absl::StrContains(name_or_path, '/') && !absl::EndsWith(name_or_path, ".json")) {
    return NamedPolicy(name_or_path);
  }
  absl::StatusOr<std::string> text =
      ReadUserFile(std::string(name_or_path), kMaxPolicyFileBytes, "policy file");
  if (!text.ok()) return text.status();
  JsonText doc = ReadJsonText(*text);
  if (doc.problem != JsonText::kNone) {
    return absl::InvalidArgumentError(absl::StrCat("policy file '", name_or_path, "'",
                                                   doc.problem == JsonText::kSyntax ? " is " : ": ",
                                                   doc.status.message()));
  }
  absl::StatusOr<Policy> policy = PolicyFromJson(doc.value);
  if (!policy.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy file '", name_or_path, "': ", policy.status().message()));
  }
  return policy;
}

bool HostMatches(absl::string_view pattern, absl::string_view host) {
  pattern = absl::StripSuffix(absl::StripAsciiWhitespace(pattern), ".");
  host = absl::StripSuffix(host, ".");
  if (pattern.empty() || host.empty()) return false;
  if (pattern == "*") return true;
  if (absl::StartsWith(pattern, "*.")) {
    absl::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && absl::EndsWithIgnoreCase(host, suffix);
  }
  return absl::EqualsIgnoreCase(pattern, host);
}

bool HostAllowed(const std::vector<std::string>& patterns, absl::string_view host) {
  for (const std::string& pattern : patterns) {
    if (HostMatches(pattern, host)) return true;
  }
  return false;
}

std::vector<std::string> SplitHostPatterns(absl::string_view text) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (!part.empty()) out.emplace_back(part);
  }
  return out;
}

}  // namespace pyhost

// What code running in pyhost may do, as data: imports, files, processes, threads,
// network, environment. Named profiles, a JSON form, and the matching rules.
//
//   absl::StatusOr<pyhost::Policy> strict = pyhost::NamedPolicy("strict");
//   pyhost::Policy mine = *strict;
//   mine.name = "strict+api";
//   mine.network.push_back("api.example.com");
//   absl::StatusOr<pyhost::Policy> loaded = pyhost::LoadPolicy("policies/team.json");
//
// Profiles: "yolo" (no rules; the host is still protected), "balanced" (a deny list of
// dangerous modules), "data_science" (an allow list for numeric and data work),
// "strict" / "enterprise" (a curated stdlib allow list, files only in the execution's
// own directories, no processes, no network unless allowlisted).
// Enforcement lives in audit_hooks/ and guards/hardening; this file only decides.
#ifndef PYHOST_POLICY_H_
#define PYHOST_POLICY_H_

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pyhost/limits.h"

namespace pyhost {

struct Policy {
  std::string name = "custom";
  // false: no import, file, process or network rules ("yolo"). What protects the host
  // process itself (no os._exit, no signals, no process-wide state) always applies.
  bool enforce = true;
  // Module patterns: "json" matches json and json.*; "*" matches everything.
  // Deny wins; an empty allow list allows everything not denied.
  std::vector<std::string> import_allow;
  std::vector<std::string> import_deny;
  // Absolute paths (files or directories). The stdlib is always readable (imports).
  std::vector<std::string> read_paths;
  std::vector<std::string> write_paths;
  // A fresh working directory and OUTPUT_DIR per execution, both writable.
  bool work_dir = true;
  bool processes = false;
  bool threads = false;
  // Host patterns: "api.example.com", "*.example.com" (subdomains only), "*".
  std::vector<std::string> network;
  // Names of host environment variables the code sees (none by default).
  std::vector<std::string> env;
  Limits limits;
  // Directories of third-party packages (a virtualenv's site-packages, Debian's
  // /usr/lib/python3/dist-packages) put on sys.path, and readable. Their extension
  // modules run only in process isolation (docs/security.md).
  std::vector<std::string> packages;
  // Modules a process worker for this policy imports ahead of need, when found (e.g.
  // "numpy"): its children start with them loaded.
  std::vector<std::string> prewarm;
  // Every execution under this policy runs in process isolation, whatever the
  // request asks ("data_science": its packages are extensions).
  bool process_isolation = false;

  // Whether code may import `module` (a dotted name) itself. Ancestor packages of an
  // allowed pattern are allowed ("xml.etree" allows importing "xml").
  bool ImportAllowed(absl::string_view module) const;
  nlohmann::json ToJson() const;
};

// "yolo", "balanced", "data_science", "strict" or "enterprise"; NotFound otherwise.
absl::StatusOr<Policy> NamedPolicy(absl::string_view name);

// {"name"?, "extends"?: profile, "replace"?: [list field, ...], "enforce"?,
//  "imports"?: {"allow"?, "deny"?}, "files"?: {"read"?, "write"?, "work_dir"?},
//  "processes"?, "threads"?, "network"?: [...], "env"?: [...],
//  "limits"?: {"timeout_ms", "cpu_ms", "memory_mb"}, "packages"?: [dir, ...],
//  "prewarm"?: [module, ...], "process_isolation"?}
// A list given adds to the extended profile's list (an empty imports.allow, "every
// module not denied", stays so); a list field named in "replace" ("imports.allow",
// "imports.deny", "files.read", "files.write", "network", "env", "packages", "prewarm")
// is exactly the list
// given, or empty. Errors name the field at fault; unknown fields are errors (a typo
// must not loosen a policy).
absl::StatusOr<Policy> PolicyFromJson(const nlohmann::json& json);
// The list fields' JSON names (what "replace" may name).
std::vector<std::string> PolicyListFields();

// A profile name, or a path to a JSON policy file (anything containing '/' or ending
// in ".json"): a regular file of at most kMaxPolicyFileBytes (bindings/user_file.h).
inline constexpr size_t kMaxPolicyFileBytes = 1 << 20;
absl::StatusOr<Policy> LoadPolicy(absl::string_view name_or_path);

// Host pattern matching, case-insensitive, trailing dots ignored.
bool HostMatches(absl::string_view pattern, absl::string_view host);
bool HostAllowed(const std::vector<std::string>& patterns, absl::string_view host);

// Patterns from a comma-separated list (PYHOST_NETWORK_ALLOWLIST, --allow-net a,b).
std::vector<std::string> SplitHostPatterns(absl::string_view text);

}  // namespace pyhost

#endif  // PYHOST_POLICY_H_

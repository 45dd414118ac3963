// The facts the import rules decide by: which modules the profiles list, which no
// policy lets in, which a network allowlist unlocks, how a pattern names modules,
// and the decision itself. audit_hooks/ and guards/ only enforce what this says.
// Internal to pyhost (the public API is pyhost/policy.h). No Python.
//
//   std::string why;
//   if (!JudgeImport(policy, "ctypes", ImportContext{}, &why)) ...  // ImportError(why)
#ifndef PYHOST_POLICY_MODULE_RULES_H_
#define PYHOST_POLICY_MODULE_RULES_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "pyhost/policy.h"

namespace pyhost {

// Whether `name` is `package` or inside it: "json" and "json.decoder" are in "json",
// "jsonschema" is not.
bool InPackage(absl::string_view name, absl::string_view package);

// The one module pattern matcher: "json" matches json and json.*; "*" matches every
// module.
bool ModuleMatches(absl::string_view pattern, absl::string_view module);
bool AnyModuleMatches(const std::vector<std::string>& patterns, absl::string_view module);

// Modules that are dangerous in-process whatever the policy says they are for: the
// deny list of every enforcing profile (docs/security.md has each reason).
const std::vector<std::string>& DangerousModules();

// The strict profile's allow list: the stdlib for computation, data, text, time,
// async code and testing.
const std::vector<std::string>& CuratedStdlib();

// Modules no policy lets code import or create, yolo's included: they run code in
// other interpreters or crash the process on purpose. Matched as patterns (a
// package's submodules too).
const std::vector<std::string>& NeverImportableModules();
bool NeverImportable(absl::string_view module);

// C accelerators whose objects are shared by every interpreter on 3.11 (single-phase
// modules whose classes and state were made by the first interpreter to import them,
// with that interpreter's Python objects inside): never in a sandbox. The stdlib
// module using each falls back on its pure-Python twin (decimal -> _pydecimal,
// asyncio's pure-Python futures and tasks, zoneinfo._zoneinfo). docs/security.md,
// "State shared by every interpreter". Exact names.
const std::vector<std::string>& ProcessStateModules();
bool SharesProcessState(absl::string_view module);

// The modules that connect, which code may import itself while a network allowlist
// is in force even when the policy's allow list does not name them (what they reach
// is still checked, host by host). Exact names: "http" unlocks http, not http.server.
const std::vector<std::string>& NetworkModules();
bool UnlockedByNetworkAllowlist(absl::string_view module);

// What an import's judge knows besides the policy and the module's name.
struct ImportContext {
  // The importing frame is the code's own, not an allowed stdlib module importing
  // what it needs.
  bool user_initiated = true;
  // The request or the environment adds network patterns to the policy's.
  bool extra_network = false;
  // The module sysconfig imports its build-time data from ("" if unknown): part of
  // sysconfig for these rules, allowed exactly where sysconfig is.
  absl::string_view sysconfig_data_module;
};

// Whether `policy` lets `module` be imported now; on denial false, with `why` filled
// (the ImportError's message).
bool JudgeImport(const Policy& policy, absl::string_view module, const ImportContext& context,
                 std::string* why);
// The same for a module name that is not valid UTF-8 text (lone surrogates, which
// surrogateescape may map to real bytes on the filesystem): no rule can name it, so
// only a policy without rules lets it through. `shown`: the name for the message.
bool JudgeUnencodableImport(const Policy& policy, absl::string_view shown, std::string* why);

}  // namespace pyhost

#endif  // PYHOST_POLICY_MODULE_RULES_H_

#include "embed/tool_registry.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "embed/executions.h"
#include "policy/limits.h"

namespace pyhost {

absl::Status ValidateToolName(absl::string_view name) {
  bool valid =
      !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' ||
               c == '-';
      });
  if (valid) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid tool name '", name, "': use 1-64 characters of letters, digits, _ . -"));
}

absl::Status ToolRegistry::Register(absl::string_view name, absl::string_view source,
                                    ToolOptions options) {
  if (absl::Status valid = ValidateToolName(name); !valid.ok()) return valid;
  auto tool = std::make_shared<Tool>();
  tool->policy = options.policy.value_or(default_policy_);
  tool->settings.policy = &tool->policy;
  tool->settings.requested = options.isolation;
  IsolationMode& shared = isolations_.Shared(options.isolation, tool->policy);
  absl::StatusOr<Limits> limits =
      ResolveLimits(tool->policy.name, tool->policy.limits, options.limits, default_limits_);
  if (!limits.ok()) return limits.status();
  tool->settings.limits = *limits;
  tool->settings.max_output_bytes = max_output_bytes_;
  tool->settings.extra_network = extra_network_;
  if (shared.isolation() == Isolation::kResident) {
    tool->dedicated = isolations_.DedicatedResident();
    tool->mode = tool->dedicated.get();
  } else {
    tool->mode = &shared;
  }
  ToolLoadExecution load(name, source);
  if (absl::Status ran = isolations_.Run(*tool->mode, tool->settings, load); !ran.ok()) return ran;
  if (absl::Status loaded = load.status(); !loaded.ok()) return loaded;
  tool->compiled = std::move(load.compiled());
  // A fresh tool's module lived in the throwaway interpreter; calls load it afresh.
  if (tool->dedicated != nullptr) tool->module = load.module();
  absl::MutexLock lock(&mu_);
  tools_[std::string(name)] = std::move(tool);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<ToolRegistry::Tool>> ToolRegistry::Find(absl::string_view name) {
  absl::MutexLock lock(&mu_);
  auto it = tools_.find(name);
  if (it != tools_.end()) return it->second;
  std::vector<std::string> names;
  for (const auto& [known, tool] : tools_) names.push_back(known);
  std::sort(names.begin(), names.end());
  return absl::NotFoundError(absl::StrCat(
      "no tool named '", name,
      "' is registered (registered: ", names.empty() ? "none" : absl::StrJoin(names, ", "), ")"));
}

absl::StatusOr<ToolCallResult> ToolRegistry::Call(absl::string_view name,
                                                  const nlohmann::json& args) {
  absl::StatusOr<std::shared_ptr<Tool>> found = Find(name);
  if (!found.ok()) return found.status();
  const Tool& tool = **found;
  ToolCallResult result;
  ToolCallExecution call(tool.compiled, tool.dedicated != nullptr ? &tool.module : nullptr, args,
                         result);
  if (absl::Status ran = isolations_.Run(*tool.mode, tool.settings, call); !ran.ok()) return ran;
  return result;
}

absl::Status ToolRegistry::Unregister(absl::string_view name) {
  std::shared_ptr<Tool> removed;  // released after the lock: may retire an interpreter
  absl::MutexLock lock(&mu_);
  auto it = tools_.find(name);
  if (it == tools_.end()) {
    return absl::NotFoundError(absl::StrCat("no tool named '", name, "' is registered"));
  }
  removed = std::move(it->second);
  tools_.erase(it);
  return absl::OkStatus();
}

std::vector<std::string> ToolRegistry::Names() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> names;
  for (const auto& [name, tool] : tools_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace pyhost

#include "embed/tool_registry.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "embed/stopwatch.h"
#include "embed/thread_state.h"

namespace pyhost {

absl::Status ValidateToolName(absl::string_view name) {
  bool valid = !name.empty() && name.size() <= 64 &&
               std::all_of(name.begin(), name.end(), [](char c) {
                 return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
                        c == '.' || c == '-';
               });
  if (valid) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid tool name '", name, "': use 1-64 characters of letters, digits, _ . -"));
}

absl::Status ToolRegistry::Register(absl::string_view name, absl::string_view source,
                                    ToolOptions options) {
  if (absl::Status valid = ValidateToolName(name); !valid.ok()) return valid;
  if (options.isolation == Isolation::kProcess) {
    return absl::UnimplementedError("process isolation is not implemented yet");
  }
  InterpreterPool::Busy busy(pool_);
  Cancellation cancellation(Cancellation::kInterrupt);
  std::optional<CancellationSet::Member> interruptible;
  if (setup_.running != nullptr) interruptible.emplace(*setup_.running, cancellation);
  auto tool = std::make_shared<Tool>();
  tool->options = options;
  tool->policy = options.policy.value_or(default_policy_);
  if (absl::Status limits = CheckLimitsSupported(tool->policy.limits); !limits.ok()) return limits;
  absl::StatusOr<InterpreterLease> lease = pool_.Acquire();
  if (!lease.ok()) return lease.status();
  std::optional<ExecError> error;
  std::unique_ptr<ExecutionContext> context;
  {
    ThreadStateScope scope((*lease)->state());
    error = CompileTool(lease->get(), name, source, tool->compiled);
    if (!error) {
      // The module body is the tool's code: it runs under the tool's policy.
      absl::StatusOr<std::unique_ptr<ExecutionContext>> entered =
          ExecutionContext::Enter(lease->get(), tool->policy, setup_, &cancellation);
      if (!entered.ok()) return entered.status();
      context = *std::move(entered);
      error = LoadToolModule(lease->get(), tool->compiled, context->Globals(), tool->module,
                             &cancellation);
    }
  }
  if (error) {
    std::string where = error->line > 0 ? absl::StrCat(" at line ", error->line) : "";
    std::string hint = error->hint.empty() ? "" : absl::StrCat(" (hint: ", error->hint, ")");
    return absl::InvalidArgumentError(absl::StrCat("tool '", name, "': ", error->type, where,
                                                   ": ", error->message, hint));
  }
  if (options.isolation == Isolation::kResident) {
    tool->resident = *std::move(lease);
    tool->context = std::move(context);
  } else {
    tool->module = ToolModule{};  // it lived in the throwaway interpreter
  }
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
      "no tool named '", name, "' is registered (registered: ",
      names.empty() ? "none" : absl::StrJoin(names, ", "), ")"));
}

absl::StatusOr<ToolCallResult> ToolRegistry::Call(absl::string_view name,
                                                  const nlohmann::json& args) {
  absl::StatusOr<std::shared_ptr<Tool>> found = Find(name);
  if (!found.ok()) return found.status();
  Tool& tool = **found;
  InterpreterPool::Busy busy(pool_);
  Cancellation cancellation(Cancellation::kInterrupt);
  std::optional<CancellationSet::Member> interruptible;
  if (setup_.running != nullptr) interruptible.emplace(*setup_.running, cancellation);
  ToolCallResult result;
  result.stats.isolation = tool.options.isolation;
  result.stats.policy = tool.policy.name;
  Stopwatch watch;
  if (tool.options.isolation == Isolation::kResident) {
    absl::MutexLock serialize(&tool.call_mu);
    ThreadStateScope scope(tool.resident->ThreadStateForThisThread(), ThreadStateScope::Borrow{});
    CallToolRun(tool.resident.get(), tool.compiled, tool.module, args,
                /*isolate_globals=*/true, max_output_bytes_, result, &cancellation);
    result.stats.interpreter_id = tool.resident->id();
  } else {
    absl::StatusOr<InterpreterLease> lease = pool_.Acquire();
    if (!lease.ok()) return lease.status();
    result.stats.wait_us = watch.WallUs();
    ThreadStateScope scope((*lease)->state());
    absl::StatusOr<std::unique_ptr<ExecutionContext>> context =
        ExecutionContext::Enter(lease->get(), tool.policy, setup_, &cancellation);
    if (absl::IsCancelled(context.status())) {
      result.envelope = ErrorEnvelope(
          ExecError{"KeyboardInterrupt", std::string(context.status().message())});
      return result;
    }
    if (!context.ok()) return context.status();
    ToolModule module;
    if (std::optional<ExecError> error =
            LoadToolModule(lease->get(), tool.compiled, (*context)->Globals(), module,
                           &cancellation)) {
      result.envelope = ErrorEnvelope(*error);
    } else {
      CallToolRun(lease->get(), tool.compiled, module, args, /*isolate_globals=*/false,
                  max_output_bytes_, result, &cancellation);
    }
    result.output.files = (*context)->OutputFiles();
    if (!result.output.files.empty()) result.output.dir = (*context)->output_dir();
    result.stats.interpreter_id = (*lease)->id();
  }
  result.stats.cpu_us = watch.CpuUs();
  result.stats.wall_us = watch.WallUs();
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

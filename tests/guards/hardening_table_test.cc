// guards/hardening's table, end to end: every function it lists is a guard in a
// sandbox interpreter (where the platform has it), so a row can be neither left out
// of the modules the hardening walks nor shadowed by another row.
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "guards/hardening.h"
#include "pyhost/host.h"
#include "pyhost/policy.h"

namespace pyhost {
namespace {

TEST(HardeningTableTest, EveryListedFunctionIsAGuardInASandbox) {
  HostOptions options;
  options.pool_size = 1;
  absl::StatusOr<std::unique_ptr<Host>> host = Host::Create(options);
  ASSERT_TRUE(host.ok()) << host.status();
  nlohmann::json functions = nlohmann::json::array();
  for (const auto& [module, function] : GuardedFunctions()) functions.push_back({module, function});
  ASSERT_GT(functions.size(), 100u);
  ExecRequest request;
  request.policy = *NamedPolicy("yolo");  // every module may be imported
  request.args = {{"functions", functions}};
  // Modules hardened when importlib creates or executes them are imported here.
  request.code = R"(
import importlib
checked, unguarded = 0, []
for module, function in args["functions"]:
    value = getattr(importlib.import_module(module), function, None)
    if value is None:
        continue  # not on this platform: nothing to replace
    checked += 1
    owner = getattr(value, "__self__", None)
    if getattr(owner, "__name__", None) != "pyhost.guard" or value.__name__ != function:
        unguarded.append(f"{module}.{function}")
result = {"checked": checked, "unguarded": unguarded}
)";
  absl::StatusOr<ExecResult> result = (*host)->Execute(request);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(result->ok) << result->ToJson().dump();
  EXPECT_EQ(result->result["unguarded"], nlohmann::json::array()) << result->result.dump();
  EXPECT_GT(result->result["checked"].get<int>(), 100);
}

TEST(HardeningTableTest, NoFunctionIsListedTwice) {
  std::vector<std::pair<std::string, std::string>> functions = GuardedFunctions();
  for (size_t i = 0; i < functions.size(); ++i) {
    for (size_t j = i + 1; j < functions.size(); ++j) {
      EXPECT_NE(functions[i], functions[j]) << functions[i].first << "." << functions[i].second;
    }
  }
}

}  // namespace
}  // namespace pyhost

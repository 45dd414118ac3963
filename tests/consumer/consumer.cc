// Uses the installed public API only: one snippet and one resident tool call.
// Exits 0 when both answer as documented in <pyhost/host.h>.
#include <pyhost/host.h>

#include <cstdio>

#ifdef Py_PYTHON_H
#error "a public header pulled in Python.h"
#endif
#ifdef PYBIND11_VERSION_MAJOR
#error "a public header pulled in pybind11"
#endif

int main() {
  pyhost::HostOptions options;
  options.pool_size = 1;
  absl::StatusOr<std::unique_ptr<pyhost::Host>> host = pyhost::Host::Create(options);
  if (!host.ok()) {
    std::fprintf(stderr, "consumer: %s\n", std::string(host.status().message()).c_str());
    return 3;
  }
  pyhost::ExecRequest request;
  request.code = "result = {'sum': sum(args['xs'])}";
  request.args = {{"xs", {1, 2, 3}}};
  absl::StatusOr<pyhost::ExecResult> run = (*host)->Execute(request);
  if (!run.ok() || run->outcome != pyhost::Outcome::kOk || run->result["sum"] != 6) {
    std::fprintf(
        stderr, "consumer: snippet: %s\n",
        run.ok() ? run->ToJson().dump().c_str() : std::string(run.status().message()).c_str());
    return 1;
  }
  pyhost::ToolOptions resident;
  resident.isolation = pyhost::Isolation::kResident;
  absl::Status registered = (*host)->RegisterTool(
      "wc", "def run(args):\n    return len(args['text'].split())\n", resident);
  absl::StatusOr<pyhost::ToolCallResult> call = (*host)->CallTool("wc", {{"text", "a b c"}});
  if (!registered.ok() || !call.ok() ||
      call->envelope != nlohmann::json{{"ok", true}, {"data", 3}}) {
    std::fprintf(stderr, "consumer: tool call failed\n");
    return 1;
  }
  std::printf("consumer: ok (Python %s)\n", (*host)->python_version().c_str());
  return 0;
}

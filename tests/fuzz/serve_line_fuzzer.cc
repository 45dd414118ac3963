// libFuzzer target: one line of `pyhost serve`, read as serve.cc reads it (no Host, no
// Python): ParseServeLine, then what each op reads from the request. Properties: no
// crash or sanitizer report; an accepted request is an object whose id is the one the
// answer will carry; every error message is bounded; what is accepted survives a dump
// and a re-read unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bindings/json_text.h"
#include "protocol/request_codec.h"
#include "protocol/requests.h"

namespace {

using json = nlohmann::json;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

// The message quotes at most bounded pieces of the input.
void CheckBounded(const absl::Status& status) {
  Check(status.message().size() < 4096, "an error message is bounded");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  pyhost::protocol::ServeLine line = pyhost::protocol::ParseServeLine(text, 1);
  if (!line.status.ok()) {
    CheckBounded(line.status);
    return 0;
  }
  Check(line.request.is_object(), "an accepted line is an object");
  auto id = line.request.find("id");
  Check(id == line.request.end() ? line.id.is_null() : line.id == *id, "the id is the request's");
  // What serve writes back must read back the same.
  absl::StatusOr<json> again =
      pyhost::ParseJsonText(line.request.dump(), pyhost::kMaxValueDepth + 1);
  Check(again.ok() && *again == line.request, "a dumped request reads back the same");

  // What the ops read (a policy named by a string would read a file: left out).
  json request = line.request;
  if (auto policy = request.find("policy"); policy != request.end() && policy->is_string()) {
    request.erase(policy);
  }
  absl::StatusOr<pyhost::ExecRequest> exec = pyhost::protocol::ExecRequestFromJson(request);
  if (!exec.ok()) CheckBounded(exec.status());
  absl::StatusOr<pyhost::protocol::RegisterRequest> tool =
      pyhost::protocol::RegisterRequestFromJson(request);
  if (!tool.ok()) CheckBounded(tool.status());
  absl::StatusOr<pyhost::protocol::CallRequest> call =
      pyhost::protocol::CallRequestFromJson(request);
  if (!call.ok()) CheckBounded(call.status());
  absl::StatusOr<json> argument = pyhost::protocol::ParseJsonArgument("--args", text);
  if (!argument.ok()) CheckBounded(argument.status());
  return 0;
}

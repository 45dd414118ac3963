// How one execution crosses to a process-isolation child and its answer comes back
// (embed/process_isolation.h, worker/): the settings and the execution's inputs as
// one JSON request, the answer as JSON. Both ends are the same binary's code, so
// the form is pyhost's own; only the answer comes from a process that ran untrusted
// code, and is read as such (every field checked, unknown outcomes refused).
//
//   // host:  channel << RequestToWire(settings, execution, dir)
//   // child: absl::StatusOr<WireRequest> request = RequestFromWire(text);
//   //        ... run request->execution under request->settings ...
//   //        channel << request->execution->WireAnswer()
//   // host:  execution.AdoptWireAnswer(answer)
#ifndef PYHOST_EMBED_EXECUTION_WIRE_H_
#define PYHOST_EMBED_EXECUTION_WIRE_H_

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "embed/isolation.h"
#include "pyhost/policy.h"
#include "pyhost/result.h"

namespace pyhost {

// `dir`: the execution's directory (holding work/ and output/), made by the host.
nlohmann::json RequestToWire(const ExecutionSettings& settings, const Execution& execution,
                             const std::string& dir);

// A request as the child remakes it: it owns everything its settings point at.
struct WireRequest {
  Policy policy;  // settings.policy points here
  ExecutionSettings settings;
  std::unique_ptr<Execution> execution;
  std::string dir;
};
absl::StatusOr<std::unique_ptr<WireRequest>> RequestFromWire(const nlohmann::json& request);

// The parts every answer has (outcome, streams, the child's own figures) both ways,
// and an ExecError from its JSON (ExecError::ToJson). FromWire: InvalidArgument
// naming what is wrong.
nlohmann::json AnswerToWire(const Answer& answer);
absl::Status AnswerFromWire(const nlohmann::json& wire, Answer& answer);
absl::StatusOr<ExecError> ErrorFromWire(const nlohmann::json& wire);

}  // namespace pyhost

#endif  // PYHOST_EMBED_EXECUTION_WIRE_H_

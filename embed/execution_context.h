// One execution's surroundings, as RAII: its own working directory and OUTPUT_DIR,
// its environment (os.environ holds only what the policy passes), and its policy
// activated in the interpreter's Sandbox.
//
//   ThreadStateScope scope(interp.state());
//   absl::StatusOr<std::unique_ptr<ExecutionContext>> context =
//       ExecutionContext::Enter(interp, policy, setup);
//   ... run user code with (*context)->Globals() ...
//   result.output_files = (*context)->OutputFiles();
//   context->reset();  // policy off, working directory removed
//
// OUTPUT_DIR is kept when OutputFiles() listed files (the caller owns them then);
// everything else is removed (by the WorkDirStock, off the request path).
// Thread-safety: Enter needs the GIL held in `interp`; the destructor needs no GIL
// (it touches no Python) but must run before the interpreter goes back to the pool.
#ifndef PYHOST_EMBED_EXECUTION_CONTEXT_H_
#define PYHOST_EMBED_EXECUTION_CONTEXT_H_

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "bindings/cancellation.h"
#include "embed/interpreter.h"
#include "embed/work_dirs.h"
#include "pyhost/policy.h"

namespace pyhost {

struct ExecutionSetup {
  std::vector<std::string> extra_network;  // request + PYHOST_NETWORK_ALLOWLIST
  WorkDirStock* dirs = nullptr;            // where WORK_DIR/OUTPUT_DIR come from
  // Or a directory made for this execution by someone else (process isolation's
  // host), holding work/ and output/: used, never returned.
  std::string given_dir;
};

class ExecutionContext {
 public:
  // `policy` must outlive the context. Setting os.environ may run the code's own
  // methods in a resident interpreter: under `cancellation` (may be null); Cancelled
  // when it interrupted them.
  static absl::StatusOr<std::unique_ptr<ExecutionContext>> Enter(
      Interpreter& interp, const Policy& policy, const ExecutionSetup& setup,
      Cancellation* cancellation = nullptr);
  ~ExecutionContext();
  ExecutionContext(const ExecutionContext&) = delete;
  ExecutionContext& operator=(const ExecutionContext&) = delete;

  // {"WORK_DIR": ..., "OUTPUT_DIR": ...} (empty when the policy has no work_dir).
  nlohmann::json Globals() const;
  const std::string& output_dir() const { return output_dir_; }
  // Regular files the code left in OUTPUT_DIR, relative to it, sorted. Once some
  // were listed, OUTPUT_DIR is the caller's: it outlives the context.
  std::vector<std::string> OutputFiles();

 private:
  ExecutionContext(Interpreter& interp, WorkDirStock* dirs) : interp_(interp), dirs_(dirs) {}

  Interpreter& interp_;
  WorkDirStock* dirs_;
  std::string base_dir_;  // holds work/ and output/
  std::string work_dir_;
  std::string output_dir_;
  bool outputs_reported_ = false;
};

}  // namespace pyhost

#endif  // PYHOST_EMBED_EXECUTION_CONTEXT_H_

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
// OUTPUT_DIR is kept when the code wrote files there (the caller owns them then);
// the working directory is always removed.
// Thread-safety: Enter needs the GIL held in `interp`; the destructor needs no GIL
// (it touches no Python) but must run before the interpreter goes back to the pool.
#ifndef PYHOST_EMBED_EXECUTION_CONTEXT_H_
#define PYHOST_EMBED_EXECUTION_CONTEXT_H_

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "embed/interpreter.h"
#include "guards/policy.h"

namespace pyhost {

struct ExecutionSetup {
  std::vector<std::string> extra_network;  // request + PYHOST_NETWORK_ALLOWLIST
  std::string work_root;                   // parent of per-execution directories
};

class ExecutionContext {
 public:
  // `one_shot`: the interpreter is destroyed after this execution, so the
  // directories are tidied then, by the pool's factory, not on the request path.
  static absl::StatusOr<std::unique_ptr<ExecutionContext>> Enter(Interpreter& interp,
                                                                 const Policy& policy,
                                                                 const ExecutionSetup& setup,
                                                                 bool one_shot = false);
  ~ExecutionContext();
  ExecutionContext(const ExecutionContext&) = delete;
  ExecutionContext& operator=(const ExecutionContext&) = delete;

  // {"WORK_DIR": ..., "OUTPUT_DIR": ...} (empty when the policy has no work_dir).
  nlohmann::json Globals() const;
  const std::string& output_dir() const { return output_dir_; }
  // Files the code left in OUTPUT_DIR, relative to it, sorted.
  std::vector<std::string> OutputFiles() const;

 private:
  explicit ExecutionContext(Interpreter& interp) : interp_(interp) {}

  Interpreter& interp_;
  bool one_shot_ = false;
  std::string base_dir_;  // holds work/ and output/
  std::string work_dir_;
  std::string output_dir_;
};

// Makes `root`/exec-XXXXXX with work/ and output/ in it; returns its path.
absl::StatusOr<std::string> MakeExecutionDir(const std::string& root);
// Removes dir/work, and all of dir if dir/output is empty (its files are the
// caller's otherwise).
void TidyExecutionDir(const std::string& dir);

// Where execution directories go by default: /dev/shm/pyhost-<pid> (tmpfs: fast to
// create and remove; files there use memory) when writable, else $TMPDIR or /tmp.
std::string DefaultWorkRoot();

}  // namespace pyhost

#endif  // PYHOST_EMBED_EXECUTION_CONTEXT_H_

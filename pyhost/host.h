// pyhost's public C++ API: run Python snippets and run(args) tools inside this process.
//
//   #include <pyhost/host.h>
//
//   absl::StatusOr<std::unique_ptr<pyhost::Host>> host = pyhost::Host::Create({});
//   pyhost::ExecRequest request;
//   request.code = "print('hi'); result = {'sum': sum(args['xs'])}";
//   request.args = {{"xs", {1, 2, 3}}};
//   absl::StatusOr<pyhost::ExecResult> run = (*host)->Execute(request);
//   // run->ok, run->stdout_stream.text == "hi\n", run->result == {"sum": 6}
//
//   pyhost::ToolOptions resident;
//   resident.isolation = pyhost::Isolation::kResident;
//   (*host)->RegisterTool("wc", "def run(args):\n    return len(args['text'].split())\n",
//                         resident);
//   absl::StatusOr<pyhost::ToolCallResult> call = (*host)->CallTool("wc", {{"text", "a b"}});
//   // call->envelope == {"ok": true, "data": 2}
//
// Every Execute with Isolation::kFresh runs in a never-used subinterpreter taken from
// a warm pool, so no state leaks between executions. Status errors mean the request
// itself was bad (or asks for something not implemented yet); failures of the code
// are answers (ExecResult::ok == false, the envelope's "ok": false).
//
// Every execution runs under a policy (pyhost/policy.h; default "strict"): the import
// gate, the audit hook and the hardened interpreter enforce it in-process. For code
// you do not trust at all, in-process isolation is not enough (docs/security.md);
// process isolation and limits are later work, and requests asking for them are
// rejected with Unimplemented.
// The network allowlist of every request also includes the host patterns in the
// PYHOST_NETWORK_ALLOWLIST environment variable (comma-separated), read at Create.
// Thread-safety: every method may be called from many threads at once. Do not call
// into a Host from Python code running inside it. Destroy a Host only when no call
// is in flight.
#ifndef PYHOST_HOST_H_
#define PYHOST_HOST_H_

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pyhost/policy.h"
#include "pyhost/request.h"
#include "pyhost/result.h"

namespace pyhost {

// Where execution directories go by default: /dev/shm/pyhost-<pid> (tmpfs: fast to
// create and remove; files there use memory) when writable, else $TMPDIR or /tmp.
std::string DefaultWorkRoot();

struct HostOptions {
  int pool_size = 4;  // fresh interpreters kept ready
  // The policy of requests and tools that name none.
  Policy default_policy = *NamedPolicy("strict");
  // Where per-execution directories (WORK_DIR, OUTPUT_DIR) are made.
  std::string work_root = DefaultWorkRoot();
  // Imported into every interpreter ahead of need (off the request path).
  std::vector<std::string> prewarm_modules = {"json", "re", "math"};
  size_t max_output_bytes = 1 << 20;  // default cap of captured stdout, and of stderr
  // The pyhost binary process isolation starts its workers from (`pyhost worker`);
  // empty: $PYHOST_WORKER, else the one built or installed with this library.
  std::string worker_program;
};

// Counts of the host's interpreters (Host::pool_stats).
struct PoolStats {
  int64_t created = 0;
  int64_t destroyed = 0;
  int64_t leaked = 0;     // threads still running at teardown: kept, never destroyed
  int64_t abandoned = 0;  // teardowns that never finished within abandon_after
  int ready = 0;
  int retired = 0;  // waiting to be torn down
  // Fresh interpreters whose code was stuck in C past its deadline: the caller got its
  // Timeout, the interpreter is never reused and is torn down when the code returns.
  int quarantined = 0;  // still stuck now
  int64_t quarantined_total = 0;
};

class Host {
 public:
  // Initializes Python on first use and fills the pool; fails on a bad option
  // (e.g. a prewarm module that does not import).
  static absl::StatusOr<std::unique_ptr<Host>> Create(HostOptions options = {});
  // Leaks what it cannot tear down: while code stuck in C holds the GIL (see
  // PoolStats::quarantined) the host is left for the process to end.
  ~Host();
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  absl::StatusOr<ExecResult> Execute(const ExecRequest& request);

  absl::Status RegisterTool(absl::string_view name, absl::string_view source,
                            ToolOptions options = {});
  absl::StatusOr<ToolCallResult> CallTool(absl::string_view name, const nlohmann::json& args);
  absl::Status UnregisterTool(absl::string_view name);
  std::vector<std::string> ToolNames();

  // Interrupts every execution and tool call running now: KeyboardInterrupt in its
  // code (see bindings/cancellation.h for what cannot be interrupted). Thread-safe, and
  // safe to call from any thread while executions run (e.g. a signal-handling
  // thread); calls that start later are not affected.
  void InterruptAll();

  PoolStats pool_stats();
  // Where this host's execution directories are (canonical).
  const std::string& work_root() const;
  // For a process that must exit now, with executions still running: removes their
  // directories and everything else under work_root() but the outputs already
  // reported. Thread-safe; the Host is unusable afterwards.
  void RemoveUnreportedFiles();
  const std::string& python_version() const;

  class Impl;  // embed/host.cc

 private:
  explicit Host(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pyhost

#endif  // PYHOST_HOST_H_
